"""dynloop.continuation of a transformer block's fixed point beside the same points done by hand, in one run.

Workload: the sandwich + concat block (k = 4, d = 64, T = 8, 4 heads, hidden 256, exact GELU, RMSNorm,
seed 0), its cyclic fixed point continued in the residual scale from 0.5 for 200 branch points
(target: under 1 minute warm). Reference: natural-parameter continuation by hand at the same 200
parameter values, each point refined by dynloop.find_cycle from the previous one (Newton's method
with the analytic Jacobian) and its multipliers taken: the least that gives the same branch and
multipliers, without arclength (it cannot pass a fold) and without locating bifurcations.

Also a map's fixed point (Hénon, logistic; target: under 1 s each).

Run:  python benchmarks/bench_continuation.py [--points 200] [--repeat 2]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dynloop  # noqa: E402
from _common import race  # noqa: E402


def block(residual_scale=0.5):
    return dynloop.BlockSpec(width=64, tokens=8, layers=4, heads=4, mixer="transformer", norm="sandwich",
                             injection="concat", residual_scale=residual_scale, seed=0)


def by_hand(values, x0):
    x = x0
    spectra = []
    for value in values:
        cycle = dynloop.find_cycle(block(value), 1, x)
        x = cycle.loop_points[0]
        spectra.append(cycle.multipliers)
    return np.array(spectra)


def bench_maps(repeat):
    """Continuing a map's fixed point (target: under 1 s): Henon in a, the logistic cascade to period 4."""
    henon, logistic = dynloop.maps.henon(b=0.3), dynloop.maps.logistic()
    cases = {"henon, a from 0.1 to 0.6": lambda: dynloop.continuation(henon, "a", start=0.1, stop=0.6),
             "logistic, r from 2.5 to 3.3": lambda: dynloop.continuation(logistic, "r", start=2.5, stop=3.3,
                                                                          x0=[0.6])}
    for run in cases.values():
        run()
    best = race(cases, repeat)
    for name, seconds in best.items():
        print(f"  map: {name}: {seconds:.3f} s ({'met' if seconds < 1 else 'NOT met'}: target under 1 s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    bench_maps(args.repeat)
    spec = block()
    x0 = dynloop.classify(spec, lyapunov=False).stage_fixed_points[-1]
    # a range the branch does not leave within the points asked for, with the default step
    run = lambda: dynloop.continuation(spec, "residual_scale", start=0.5, stop=5.0, x0=x0,  # noqa: E731
                                       max_points=args.points)
    started = time.perf_counter()
    branch = run()  # compiles what is not cached yet
    print(f"first call: {time.perf_counter() - started:.1f} s; {branch.summary()}")
    values = branch.parameter
    best = race({"dynloop.continuation": run,
                 "by hand (find_cycle + multipliers)": lambda: by_hand(values, x0)}, args.repeat)
    spectra = by_hand(values, x0)
    agree = np.max(np.abs(np.abs(spectra[:, 0]) - np.abs(branch.multipliers[:, 0])))
    print(f"{len(branch)} branch points, residual scale {values.min():.4f} … {values.max():.4f}; "
          f"largest |multiplier| agrees with the hand-made points to {agree:.1e}")
    for name, seconds in best.items():
        print(f"  {name:>36}: {seconds:.2f} s ({1000 * seconds / len(branch):.0f} ms per point)")
    ratio = best["by hand (find_cycle + multipliers)"] / best["dynloop.continuation"]
    print(f"  by hand / continuation: {ratio:.2f}x")
    print(f"  target: 200 points under 60 s warm -> "
          f"{'met' if best['dynloop.continuation'] < 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
