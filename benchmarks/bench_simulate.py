"""dynloop.simulate against a straightforward numpy implementation of the same block, in one run.

The numpy side is the test-suite's oracle (tests/oracle.py): plain vectorised numpy, one call per
operation, exactly the block of dynloop/systems/MODEL.md. Both record every stage state of every
loop. Times are best of ``--repeat`` after compilation; start-up is measured in fresh processes,
first with an empty numba cache directory, then again with the cache that run left behind.

Run:  python benchmarks/bench_simulate.py [--repeat 3]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import dynloop  # noqa: E402
from oracle import oracle_run  # noqa: E402

CASES = {
    "paper-sized (k=12, d=64, T=16, transformer, pre, concat, 128 loops)": (
        dict(width=64, tokens=16, layers=12, heads=4, mixer="transformer", norm="pre",
             injection="concat", residual_scale=0.5, seed=0), 128),
    "small (k=2, d=8, T=1, mlp, pre, concat, 10,000 loops)": (
        dict(width=8, tokens=1, layers=2, mixer="mlp", norm="pre", injection="concat",
             residual_scale=0.5, seed=0), 10_000),
}

STARTUP = """
import time
start = time.perf_counter()
import numpy as np, dynloop
spec = dynloop.BlockSpec(width=8, tokens=1, layers=2, mixer="mlp", norm="pre", injection="concat")
dynloop.simulate(spec, 10)
print(time.perf_counter() - start)
"""


def best_of(repeat, function):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def oracle_fields(spec):
    names = ("width", "tokens", "layers", "heads", "mixer", "activation", "norm", "norm_kind",
             "norm_eps", "injection", "residual_scale", "injection_scale", "causal")
    return dict({name: getattr(spec, name) for name in names}, hidden=spec.hidden_size)


def startup_seconds(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    output = subprocess.run([sys.executable, "-c", STARTUP], env=env, capture_output=True, text=True,
                            check=True, cwd=ROOT)
    return float(output.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"dynloop {dynloop.__version__}, numpy {np.__version__}, {os.cpu_count()} cores\n")
    print(f"{'case':<66} {'dynloop s':>10} {'numpy s':>10} {'speed-up':>9} {'max rel diff':>13}")
    for label, (fields, loops) in CASES.items():
        spec = dynloop.BlockSpec(**fields)
        dynloop.simulate(spec, 2)  # compile (or load from the cache)
        arrays = spec.materialize()
        ours, trajectory = best_of(args.repeat, lambda: dynloop.simulate(spec, loops))
        theirs, reference = best_of(args.repeat, lambda: oracle_run(oracle_fields(spec), arrays,
                                                                    spec.start_state(), loops))
        # compare the first loops, before any sensitivity to rounding can grow
        error = np.max(np.abs(trajectory.stage_states[:8] - reference[:8]))
        difference = error / np.max(np.abs(reference[:8]))
        print(f"{label:<66} {ours:10.4f} {theirs:10.4f} {theirs / ours:8.1f}x {difference:13.2e}")
    with tempfile.TemporaryDirectory() as cache:
        first = startup_seconds(cache)
        second = startup_seconds(cache)
    print(f"\nstart-up to the first simulated loop, fresh process: {first:.2f} s with an empty numba "
          f"cache, {second:.2f} s with the cache from the first process")


if __name__ == "__main__":
    main()
