"""dynloop.sweep against numpy (and JAX, when installed) on the reference workload, in one run.

Workload (the sweep issue's): BlockSpec(width=d, tokens=1, layers=2, mixer="mlp", hidden=d,
activation="tanh", norm="pre", norm_kind="rms", injection="additive"), residual scale α and
injection strength β on a G × G grid (α ∈ [0, 3], β ∈ [0, 2]), T loops, early exit and Lyapunov
exponents off so that every implementation does the same work. Each loop is ``u = h + β e``, then
for each of the 2 layers ``u = u + α W2 tanh(W1 RMSNorm(u))``. The references are vectorised over
the grid; the check is the final state norm of every point (1e-10 relative in float64).

Every time is the fastest of ``--repeat`` runs (5), taken in turns (dynloop, numpy, JAX, dynloop,
...) so that a slow spell of a shared machine falls on all of them, and the matrix-multiply peak is
the fastest of 5 2048 × 2048 products: other work on the machine does not decide the ratios.

Run:  python benchmarks/bench_sweep.py [--sizes 64,8,200 ...] [--dtype float64|float32|both] [--repeat 5]
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

import dynloop
from dynloop.sweep import sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package
from _common import DTYPE_CHOICES, chosen_dtypes, import_jax, jax_precision, matmul_peak, race  # noqa: E402

SIZES = [(64, 8, 200), (256, 8, 200), (128, 32, 200), (64, 128, 100)]


def workload(d, dtype):
    spec = dynloop.BlockSpec(width=d, tokens=1, layers=2, mixer="mlp", hidden=d, activation="tanh",
                             norm="pre", norm_kind="rms", injection="additive", seed=0)
    arrays = spec.materialize()
    w = arrays["weights"]
    w_in = [w["mlp_in"][i].astype(dtype) for i in range(2)]
    w_out = [w["mlp_out"][i].astype(dtype) for i in range(2)]
    return spec, w_in, w_out, arrays["inputs"][0].astype(dtype), arrays["start_state"][0].astype(dtype)


def numpy_reference(alpha, beta, w_in, w_out, e, h0, loops, eps):
    h = np.tile(h0, (alpha.size, 1))
    a = alpha.reshape(-1, 1).astype(h0.dtype)
    b = beta.reshape(-1, 1).astype(h0.dtype)
    for _ in range(loops):
        h = h + b * e
        for layer in range(2):
            n = h / np.sqrt(np.mean(h * h, axis=1, keepdims=True) + eps)
            h = h + a * (np.tanh(n @ w_in[layer].T) @ w_out[layer].T)
    return np.linalg.norm(h.astype(np.float64), axis=1)


def jax_reference():
    modules = import_jax()
    if modules is None:
        return None
    jax, jnp = modules

    def prepare(alpha, beta, w_in, w_out, e, h0, loops, eps):
        jax_precision(jax, h0.dtype)

        def point(a, b):
            def body(h, _):
                h = h + b * e
                for layer in range(2):
                    n = h / jnp.sqrt(jnp.mean(h * h) + eps)
                    h = h + a * (w_out[layer] @ jnp.tanh(w_in[layer] @ n))
                return h, None
            final, _ = jax.lax.scan(body, h0, None, length=loops)
            return jnp.linalg.norm(final)

        batched = jax.jit(jax.vmap(point))
        alpha, beta = alpha.astype(h0.dtype), beta.astype(h0.dtype)  # x64 mode would promote float32
        batched(alpha[:2], beta[:2]).block_until_ready()  # compile
        result = np.asarray(batched(alpha, beta).block_until_ready())
        return result, lambda: batched(alpha, beta).block_until_ready()

    return prepare


_STARTUP = """
import time
start = time.perf_counter()
import numpy as np
import dynloop
spec = dynloop.BlockSpec(width=8, tokens=1, layers=2, mixer="mlp", hidden=8, activation="tanh", norm="pre",
                         norm_kind="rms", injection="additive", seed=0)
dynloop.sweep(spec, {"residual_scale": np.linspace(0, 3, 4)}, loops=20, progress=False)
print(time.perf_counter() - start)
"""


def startup_seconds():
    """Seconds from a new process's start to its first finished sweep, with compiled kernels cached."""
    subprocess.run([sys.executable, "-c", _STARTUP], check=True, capture_output=True)  # fills the cache
    runs = [float(subprocess.run([sys.executable, "-c", _STARTUP], check=True, capture_output=True,
                                 text=True).stdout) for _ in range(3)]
    return min(runs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="both", choices=DTYPE_CHOICES)
    parser.add_argument("--sizes", nargs="+", metavar="G,d,T", default=[",".join(map(str, s)) for s in SIZES],
                        help="grid side, width and loops of each run (default: the reference four)")
    parser.add_argument("--repeat", type=int, default=5, help="time each run this often and keep the fastest")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in size.split(",")) for size in args.sizes]
    dtypes = chosen_dtypes(args.dtype)
    print(f"a new process imports dynloop and finishes a small sweep in {startup_seconds():.2f} s "
          "(kernels cached on disk)\n")
    jax_run = jax_reference()
    if jax_run is None:
        print("JAX not installed (pip install jax): its column is skipped\n")
    for dtype in dtypes:
        peak = matmul_peak(dtype)
        print(f"{np.dtype(dtype).name}: matrix-multiply peak of this machine {peak:.1f} GFLOP/s")
        print(f"{'G':>4} {'d':>4} {'T':>4} {'dynloop s':>10} {'numpy s':>9} {'jax s':>8} {'vs numpy':>9} "
              f"{'vs jax':>7} {'GFLOP/s':>8} {'% peak':>7} {'agree':>9} {'early-exit s':>12}")
        for grid, d, loops in sizes:
            spec, w_in, w_out, e, h0 = workload(d, dtype)
            alpha, beta = (v.ravel() for v in np.meshgrid(np.linspace(0, 3, grid), np.linspace(0, 2, grid),
                                                         indexing="ij"))
            axes = {"residual_scale": np.linspace(0, 3, grid), "injection_scale": np.linspace(0, 2, grid)}
            sweep(spec, {k: v[:2] for k, v in axes.items()}, loops=loops, early_exit=False, progress=False,
                  dtype=dtype)
            diagram = sweep(spec, axes, loops=loops, early_exit=False, progress=False, dtype=dtype)
            reference = numpy_reference(alpha, beta, w_in, w_out, e, h0, loops, spec.norm_eps)
            ours_norms = diagram.diagnostics["final_norm"].ravel()
            agree = np.nanmax(np.abs(ours_norms - reference) / np.maximum(np.abs(reference), 1e-300))
            runs = {"ours": lambda: sweep(spec, axes, loops=loops, early_exit=False, progress=False,
                                          dtype=dtype),
                    "numpy": lambda: numpy_reference(alpha, beta, w_in, w_out, e, h0, loops, spec.norm_eps)}
            if jax_run is not None:
                jax_norms, runs["jax"] = jax_run(alpha, beta, w_in, w_out, e, h0, loops, spec.norm_eps)
                agree = max(agree, np.nanmax(np.abs(jax_norms - reference) / np.abs(reference)))
            runs["early"] = lambda: sweep(spec, axes, loops=loops, early_exit=True, progress=False,
                                          dtype=dtype)
            times = race(runs, args.repeat)
            ours, theirs, early = times["ours"], times["numpy"], times["early"]
            jax_seconds = times.get("jax", float("nan"))
            flops = grid * grid * loops * 2 * (2 * 2 * d * d + 10 * d)
            gflops = flops / ours / 1e9
            print(f"{grid:4d} {d:4d} {loops:4d} {ours:10.3f} {theirs:9.3f} {jax_seconds:8.3f} "
                  f"{theirs / ours:8.2f}x {jax_seconds / ours:6.2f}x {gflops:8.2f} "
                  f"{100 * gflops / peak:6.1f}% {agree:9.1e} {early:12.3f}")
        print()


if __name__ == "__main__":
    main()
