"""dynloop.basins beside its references, in one run.

1. A 256 × 256 grid of starts of Newton's method for z**3 = 1 (a 2-D map; target: under 5 s warm).
   Reference: the same starts iterated by plain numpy, all at once as arrays, for as many loops
   as the slowest start took in dynloop (numpy cannot stop a start early), then each labelled by
   its nearest root: the least a hand-written basin picture costs.
2. A 64 × 64 plane of starts through a transformer block's start state (k = 4, d = 32, T = 8,
   4 heads, hidden 128; target: under 2 minutes warm). Reference: ``dynloop.sweep`` of 4096 grid
   points of the same block from its own start state, with the same loops and early exit: what
   iterating that many points costs in dynloop without the per-start states and the
   identification of attractors.

Both are timed warm (a first call compiles), best of ``--repeat`` runs taken in turns.

Run:  python benchmarks/bench_basins.py [--repeat 3] [--part map block]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dynloop  # noqa: E402
from _common import race  # noqa: E402

ROOTS = np.array([[1.0, 0.0], [-0.5, np.sqrt(3) / 2], [-0.5, -np.sqrt(3) / 2]])


def newton_step(x, p):
    x2, y2 = x[0] * x[0], x[1] * x[1]
    re3, im3 = x[0] * (x2 - 3.0 * y2) - 1.0, x[1] * (3.0 * x2 - y2)
    re2, im2 = 3.0 * (x2 - y2), 6.0 * x[0] * x[1]
    size = re2 * re2 + im2 * im2
    return np.array([x[0] - (re3 * re2 + im3 * im2) / size, x[1] - (im3 * re2 - re3 * im2) / size])


def numpy_newton(starts, loops):
    """Every start iterated at once with complex numpy arrays, then labelled by its nearest root."""
    z = starts[..., 0] + 1j * starts[..., 1]
    with np.errstate(all="ignore"):
        for _ in range(loops):
            z = z - (z ** 3 - 1) / (3 * z ** 2)
    roots = ROOTS[:, 0] + 1j * ROOTS[:, 1]
    return np.argmin(np.abs(z[..., None] - roots), axis=-1)


def bench_map(repeat):
    newton = dynloop.Map(newton_step, 2, name="newton z^3 = 1")
    axis = np.linspace(-1.5, 1.5, 256)
    starts = dynloop.state_grid(newton, {0: axis, 1: axis})
    result = dynloop.basins(newton, starts, progress=False)  # compiles
    loops = int(result.meta["loops"])
    runs = {"dynloop.basins": lambda: dynloop.basins(newton, starts, progress=False),
            f"numpy, {loops} loops": lambda: numpy_newton(np.asarray(starts), loops)}
    best = race(runs, repeat)
    reference = numpy_newton(np.asarray(starts), loops)
    mapping = {i: int(np.argmin(np.linalg.norm(ROOTS - a.points[0], axis=1)))
               for i, a in enumerate(result.attractors)}
    agree = np.mean(np.vectorize(lambda v: mapping.get(v, -9))(result.labels) == reference)
    print(f"Newton's method, 256 x 256 starts: {len(result.attractors)} attractors, fractions "
          + ", ".join(f"{v:.3f}" for v in result.fractions.values()))
    for name, seconds in best.items():
        print(f"  {name:>26}: {seconds:.3f} s")
    ratio = best[f"numpy, {loops} loops"] / best["dynloop.basins"]
    print(f"  numpy / dynloop: {ratio:.2f}x; labels agree at {100 * agree:.2f} % of the starts "
          "(numpy's loops do not stop a start when it settles)")
    print(f"  target: under 5 s warm -> {'met' if best['dynloop.basins'] < 5 else 'NOT met'}")


def bench_block(repeat):
    spec = dynloop.BlockSpec(width=32, tokens=8, layers=4, heads=4, mixer="transformer", hidden=128,
                             norm="sandwich", injection="concat", residual_scale=0.5, seed=0)
    offsets = np.linspace(-2.0, 2.0, 64)
    starts = dynloop.state_grid(spec, {"a": offsets, "b": offsets})
    loops = 1000
    result = dynloop.basins(spec, starts, loops=loops, progress=False)  # compiles
    grid = {"residual_scale": np.full(64, 0.5), "injection_scale": np.linspace(0.999, 1.0, 64)}
    runs = {"dynloop.basins": lambda: dynloop.basins(spec, starts, loops=loops, progress=False),
            "dynloop.sweep, same points": lambda: dynloop.sweep(spec, grid, loops=loops, lyapunov=True,
                                                                progress=False)}
    dynloop.sweep(spec, grid, loops=loops, lyapunov=True, progress=False)
    best = race(runs, repeat)
    loops_run = result.meta.get("loops")
    print(f"transformer block (k = 4, d = 32, T = 8, sandwich + concat), 64 x 64 plane: "
          f"{len(result.attractors)} attractor(s), fractions "
          + ", ".join(f"{k}: {v:.3f}" for k, v in result.fractions.items()) + f" (at most {loops_run} loops)")
    for name, seconds in best.items():
        print(f"  {name:>26}: {seconds:.3f} s")
    print(f"  basins / sweep: {best['dynloop.basins'] / best['dynloop.sweep, same points']:.2f}x")
    print(f"  target: under 120 s warm -> {'met' if best['dynloop.basins'] < 120 else 'NOT met'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--part", nargs="+", choices=("map", "block"), default=["map", "block"])
    args = parser.parse_args()
    if "map" in args.part:
        bench_map(args.repeat)
    if "block" in args.part:
        bench_block(args.repeat)


if __name__ == "__main__":
    main()
