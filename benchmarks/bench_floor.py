"""The least time the sweep workload can take on this machine, from the cost of its two big parts.

Each loop of the sweep benchmark's workload (bench_sweep.py) is, per point, four d × d products
and 2·d tanh, d in each of its 2 layers (plus norms, residual updates and the classification,
left out here). This measures, on one thread, what each of those two parts costs in dynloop's own
kernels (`column_product` over a group of 512 points, `activate` over 2048 numbers) and a large
matrix product for the machine's peak, then prints the core-seconds they alone take for a G × G
grid of T loops and the time that gives on the machine's cores with perfect scaling. A sweep
can be no faster than that.

Run:  python benchmarks/bench_floor.py [--size 128,32,200] [--dtype float64|float32] [--repeat 15]
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from numba import njit

from dynloop.systems._block_kernels import activate
from dynloop.systems._products import column_product

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package
from _common import best_seconds  # noqa: E402


@njit(cache=True)
def _products(w, x, out, n):
    for _ in range(n):
        column_product(w, x, out)


@njit(cache=True)
def _tanh(z, out, n):
    for _ in range(n):
        activate(z, out, 0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128,32,200", metavar="G,d,T")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    grid, d, loops = map(int, args.size.split(","))
    dtype = np.dtype(args.dtype)
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    w = rng.standard_normal((d, d)).astype(dtype)
    x = rng.standard_normal((d, 512)).astype(dtype)
    out = np.empty_like(x)
    z = (2.0 * rng.standard_normal(2048)).astype(dtype)
    activated = np.empty_like(z)
    big = rng.standard_normal((1024, 1024)).astype(dtype)
    n_products, n_tanh = max(1, 2_000_000 // (d * d)), 500
    _products(w, x, out, 1)
    _tanh(z, activated, 1)
    # BLAS on one thread (the products of more than 128 bytes call it); the loops are serial
    with threadpool_limits(1):
        big @ big
        multiply_adds = n_products * d * d * 512
        product = best_seconds(lambda: _products(w, x, out, n_products), args.repeat) / multiply_adds
        peak = best_seconds(lambda: big @ big, args.repeat) / 1024 ** 3
    tanh = best_seconds(lambda: _tanh(z, activated, n_tanh), args.repeat) / (n_tanh * z.size)
    steps = grid * grid * loops
    core_seconds = {"products": steps * 4 * d * d * product, "tanh": steps * 2 * d * tanh}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{dtype.name}, one thread: a product's multiply-add {product * 1e9:.4f} ns "
          f"({d} inputs, 512 points; {peak * 1e9:.4f} ns in a 1024 × 1024 product), "
          f"tanh {tanh * 1e9:.3f} ns")
    print(f"G = {grid}, d = {d}, T = {loops}: products {core_seconds['products']:.3f} core-s + tanh "
          f"{core_seconds['tanh']:.3f} core-s = {sum(core_seconds.values()):.3f} core-s, at least "
          f"{sum(core_seconds.values()) / cores:.3f} s on {cores} cores")


if __name__ == "__main__":
    main()
