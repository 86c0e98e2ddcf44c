"""Which regime does a random-init looped transformer block end up in, for every norm placement?

Every norm placement of docs/background.md (none, pre, post, sandwich, peri, pre_outer, peri_outer,
sphere) is combined with no injection and with the concat adapter, on the same small random
transformer block (width 16, 4 tokens, 4 layers, 2 heads). Each block is classified with
``dynloop.classify``; the script prints one row per scheme and writes one figure
(``Classification.plot``) for the first block found in each regime.

Run:  python examples/classify_schemes.py [OUTPUT_DIR]      (default examples/output/)
"""

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import dynloop

NORMS = ("none", "pre", "post", "sandwich", "peri", "pre_outer", "peri_outer", "sphere")
INJECTIONS = ("none", "concat")
BASE = dynloop.BlockSpec(width=16, tokens=4, layers=4, heads=2, mixer="transformer", seed=0)


def _number(value, fmt):
    return "-" if value is None else format(value, fmt)


def main(output="examples/output/"):
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    header = (f"{'scheme':<11} {'injection':<9} {'regime':<14} {'period':>6} {'spectral r.':>11} "
              f"{'max Lyap.':>10} {'distinct':>8} {'drift/loop':>10} {'time':>6}")
    print(header)
    print("-" * len(header))
    figures = {}
    started = time.perf_counter()
    for norm in NORMS:
        for injection in INJECTIONS:
            spec = BASE.replace(norm=norm, injection=injection)
            tic = time.perf_counter()
            result = dynloop.classify(spec)
            elapsed = time.perf_counter() - tic
            lyapunov = None if result.lyapunov is None else float(result.lyapunov[0])
            print(f"{norm:<11} {injection:<9} {result.regime.value:<14} {_number(result.period, 'd'):>6} "
                  f"{_number(result.spectral_radius, '.4f'):>11} {_number(lyapunov, '+.4f'):>10} "
                  f"{_number(result.distinct_stage_points, 'd'):>8} "
                  f"{_number(result.drift_velocity, '.4g'):>10} {elapsed:5.1f}s")
            if result.regime not in figures:
                path = output / f"classify_{result.regime.value}.png"
                plt.close(result.plot(path))
                figures[result.regime] = (path, norm, injection)
    print(f"\nclassified {len(NORMS) * len(INJECTIONS)} blocks in {time.perf_counter() - started:.1f} s")
    for regime, (path, norm, injection) in figures.items():
        print(f"{regime.value:<14} figure {path} (norm={norm}, injection={injection})")


if __name__ == "__main__":
    main(*sys.argv[1:])
