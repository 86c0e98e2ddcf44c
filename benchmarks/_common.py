"""What the benchmark scripts share: fair timing, the machine's matrix-multiply peak, optional JAX.

Not a script: bench_sweep.py, bench_transformer.py and bench_floor.py import it from their own
folder (benchmarks/ is not a package; each script puts its folder on ``sys.path``).
"""

import time

import numpy as np

DTYPE_CHOICES = ["float64", "float32", "both"]


def chosen_dtypes(name):
    """The numpy precisions a ``--dtype`` value names (``"both"``: float64, then float32)."""
    return [np.float64, np.float32] if name == "both" else [getattr(np, name)]


def best_seconds(run, repeat):
    """The shortest of ``repeat`` timed calls of ``run()`` (others on a shared machine only add to it)."""
    return race({"run": run}, repeat)["run"]


def race(runs, repeat):
    """The shortest of ``repeat`` timed calls of each of ``runs`` (name -> callable), taken in turns.

    Round after round every contender runs once, so that a slow spell of a shared machine falls on
    all of them rather than on whichever happened to be timed then. Each waits a moment first: the
    thread pools of OpenMP, OpenBLAS and XLA spin for a while after their work, on the same cores.
    """
    best = dict.fromkeys(runs, np.inf)
    for _ in range(repeat):
        for name, run in runs.items():
            time.sleep(0.25)
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def matmul_peak(dtype, n=2048, repeat=5, jax_modules=None):
    """GFLOP/s of the fastest of ``repeat`` n × n matrix products on every core.

    numpy's BLAS, and JAX's too when ``jax_modules`` (from :func:`import_jax`) are given: OpenBLAS
    0.3.31 runs its AVX2 kernels on AMD Zen 5, where JAX's product uses AVX-512 (120 against 189
    GFLOP/s in float64), so the machine's peak is the faster of the two.
    """
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    a @ a
    seconds = best_seconds(lambda: a @ a, repeat)
    if jax_modules is not None:
        jax, jnp = jax_modules[0], jax_modules[1]
        b = jnp.asarray(a)
        product = jax.jit(lambda m: m @ m)
        product(b).block_until_ready()
        seconds = min(seconds, best_seconds(lambda: product(b).block_until_ready(), repeat))
    return 2 * n ** 3 / seconds / 1e9


def import_jax():
    """``(jax, jax.numpy)``, or None when JAX is not installed (``pip install jax``)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    return jax, jnp


def jax_precision(jax, dtype):
    """Let JAX compute in ``dtype``: float64 needs ``jax_enable_x64`` (float32 arrays stay float32 then)."""
    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
