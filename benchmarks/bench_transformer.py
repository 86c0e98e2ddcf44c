"""dynloop.sweep of looped transformer blocks against JAX running the same blocks, in one run.

Workload: three blocks, each BlockSpec(width=d, tokens=T, layers=k, heads=4, mixer="transformer",
hidden=4d, activation="gelu" (exact), norm_kind="rms", weight_gain=0.5, seed=0), causal:

- sandwich + concat (Huginn-like): ``norm="sandwich", injection="concat"``;
- pre + concat (retrofitted):      ``norm="pre", injection="concat"``;
- peri_outer, no injection (Ouro-like): ``norm="peri_outer", injection="none"``.

Each is swept over P points, a √P × √P grid of residual scale α ∈ [0, 1.5] by injection strength
β ∈ [0, 1] (skip scale s ∈ [0.5, 1.5] for the block without injection), for ``loops`` loops, early
exit and Lyapunov exponents off so that dynloop does the same iterations as JAX; the early-exit
column is dynloop's sweep with its default early exit ("(loops)": its mean loops per point).
"jax/dynloop" is JAX's time over dynloop's (above 1: dynloop is faster). Compilation is excluded
on both sides (dynloop: a warm-up sweep of a 2 × 2 sub-grid; JAX: a first call on the whole grid).

The JAX reference is written from dynloop/systems/MODEL.md with the weights, input e and start
state of ``spec.materialize()``: one ``point(α, β)`` is the state after ``loops`` loops
(``jax.lax.scan``), and ``jax.jit(jax.vmap(point))`` runs the grid. One loop is the injection
``X W_hᵀ + β e W_eᵀ`` (concat; ``e W_eᵀ`` computed once), then per layer the attention sub-layer
and the MLP sub-layer with the placement's norms (RMSNorm with its gains and ε = norm_eps), then,
for peri_outer, the outer norm. Attention: per head ``softmax(Q_h K_hᵀ / sqrt(d/4))`` with the
causal mask, times ``V_h``, then ``Wo``. float64 runs under ``jax_enable_x64``; float32 casts
every array and scalar to float32 so that nothing promotes.

Agreement: "final" is the larger of (1) the relative Frobenius distance between JAX's final state
and ``dynloop.simulate``'s at 4 sampled grid points and (2) the largest relative difference between
JAX's final state norms and the sweep's ``final_norm`` over the whole grid; "1-loop" is the largest
relative difference, at the same 4 points, between dynloop's state after each loop and JAX's loop
applied to dynloop's state entering it. Both must stay below 1e-10 in float64 and 1e-3 in float32
("ok"). A block that JAX does not reproduce fails the 1-loop check ("FAIL"). Where only the final
check fails ("sensitive"), every loop agrees and the dynamics amplified the two implementations'
different roundings over the loops (at such points dynloop's own final state moves as much when its
start moves by a rounding error, and its float32 run departs from its float64 run as far).
A state that vanishes is flushed to zero by dynloop once its entries fall below 2^-400 (float64)
or 2^-50 (float32), MODEL.md; JAX keeps the tiny numbers. Norms and distances below those limits
(times the state's size) count as zero in both checks.

FLOPs (the GFLOP/s and % peak of dynloop) count the multiply-adds of the products only, 2 FLOPs
each, per point and loop: the concat injection's ``X W_hᵀ`` (2·T·d²; ``β e W_eᵀ`` is a constant),
and per layer the Q, K, V, O projections (4·2·T·d²), the MLP (2·2·T·d·4d) and the attention scores
and weighted sum over the causal pairs only (2·2·d·T(T+1)/2). Norms, softmax, GELU and residual
updates are not counted. (JAX computes the full T × T scores and masks them: more work than
counted.) The peak is the fastest of 5 products of 2048 × 2048 matrices in the same precision,
by numpy and by JAX.

Every time is the fastest of ``--repeat`` runs (5), taken in turns (dynloop, early exit, JAX,
dynloop, ...) so that a slow spell of a shared machine falls on all of them. The sweep with and
without early exit then take more turns between themselves, up to ``--early-repeat`` runs each
(3 × ``--repeat``): where few points settle the two differ by less than a shared machine's
run-to-run noise. "early/all" is their ratio, and "decide" what the early exit adds where no
point settles: the decisions taken before the last loop (one per point at loop 50 of 100), each
the filter of windows that may settle, timed alone on a ring of 16 points (best of 200), times
the points, shared by the threads, as a share of the sweep's time without early exit. Besides
keeping every loop's state (a copy of the state per loop), that is all the early exit adds
where no point settles; everything else it changes only drops loops.

Run:  python benchmarks/bench_transformer.py [--sizes 256,64,8,4[,100] ...]
          [--blocks sandwich pre peri_outer] [--dtype float64|float32|both] [--repeat 5]
          [--early-repeat 15]
"""

import argparse
import math
import sys
from pathlib import Path

import numba
import numpy as np

import dynloop
from dynloop.systems._fastmath import FLUSH_BELOW_32, FLUSH_BELOW_64

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package
from _common import (DTYPE_CHOICES, best_seconds, chosen_dtypes, import_jax, jax_precision,  # noqa: E402
                     matmul_peak, race)

SIZES = [(256, 64, 8, 4), (64, 32, 16, 12), (64, 128, 16, 4), (256, 64, 32, 4)]  # P, d, T, k
LOOPS = 100
BLOCKS = {"sandwich": ("sandwich+concat", dict(norm="sandwich", injection="concat")),
          "pre": ("pre+concat", dict(norm="pre", injection="concat")),
          "peri_outer": ("peri_outer+none", dict(norm="peri_outer", injection="none"))}
RANGES = {"residual_scale": (0.0, 1.5), "injection_scale": (0.0, 1.0), "skip_scale": (0.5, 1.5)}
TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-3}
SAMPLES = 4
PARTS = ("readme", "classify", "sweeps")


def block_spec(block, d, tokens, layers):
    return dynloop.BlockSpec(width=d, tokens=tokens, layers=layers, heads=4, mixer="transformer",
                             hidden=4 * d, activation="gelu", norm_kind="rms", weight_gain=0.5, seed=0,
                             causal=True, **BLOCKS[block][1])


def grid_axes(spec, points):
    """The sweep's axes: residual scale by injection strength (skip scale without injection)."""
    side = math.isqrt(points)
    second = "injection_scale" if spec.injection != "none" else "skip_scale"
    return {name: np.linspace(*RANGES[name], side) for name in ("residual_scale", second)}


def grid_points(axes):
    """The two axes' values at every grid point, flat, in the sweep's order (the first axis slowest)."""
    return tuple(values.ravel() for values in np.meshgrid(*axes.values(), indexing="ij"))


def flops_per_loop(spec):
    """FLOPs of one loop of one point: the products' multiply-adds (see the module docstring)."""
    t, d, h = spec.tokens, spec.width, spec.hidden_size
    pairs = t * (t + 1) // 2 if spec.causal else t * t
    layer = 4 * 2 * t * d * d + 2 * 2 * t * d * h + 2 * 2 * d * pairs
    return spec.layers * layer + (2 * t * d * d if spec.injection == "concat" else 0)


def jax_reference(jax, jnp, spec, second, loops, dtype):
    """``(run, step)``: the final states (P, T, d) of ``loops`` loops of ``spec`` from its start state,
    ``run(a, b)``, at the points (a_i, b_i); and one loop applied to each of ``states`` at one point,
    ``step(a, b, states)``.

    Written from MODEL.md (not from dynloop's kernels); ``b`` is the injection strength β or,
    when ``second == "skip_scale"``, the skip scale s.
    """
    from jax.scipy.special import erf

    if (spec.injection not in ("concat", "none") or spec.norm not in _PLACEMENTS
            or spec.mixer != "transformer" or spec.norm_kind != "rms" or spec.activation != "gelu"):
        raise ValueError(f"the JAX reference has no {spec.name}")
    arrays = spec.materialize()
    weights = {name: jnp.asarray(np.asarray(value, dtype=dtype)) for name, value in arrays["weights"].items()}
    if spec.injection == "concat":  # the injected term at β = 1, e W_eᵀ, as dynloop forms it: float64, cast
        weights["unit"] = jnp.asarray((arrays["inputs"] @ arrays["weights"]["inject_e"].T).astype(dtype))
    x0 = jnp.asarray(arrays["start_state"].astype(dtype))
    tokens, d, heads, layers = spec.tokens, spec.width, spec.heads, spec.layers
    dh = d // heads
    scale, eps = 1.0 / math.sqrt(dh), float(spec.norm_eps)  # Python floats: weakly typed, never promote
    mask = np.tril(np.ones((tokens, tokens), dtype=bool)) if spec.causal else np.ones((tokens, tokens), bool)
    placement = _PLACEMENTS[spec.norm]

    def norm(x, gain):  # RMSNorm of each row
        return gain * (x * (1.0 / jnp.sqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)))

    def attention(w, layer, x):
        q, k, v = (jnp.reshape(x @ w[name][layer].T, (tokens, heads, dh))
                   for name in ("attn_q", "attn_k", "attn_v"))
        scores = jnp.einsum("ihc,jhc->hij", q, k) * scale
        scores = jnp.where(mask, scores, -jnp.inf)
        weights_ = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
        weights_ = weights_ / jnp.sum(weights_, axis=-1, keepdims=True)
        out = jnp.reshape(jnp.einsum("hij,jhc->ihc", weights_, v), (tokens, d))
        return out @ w["attn_o"][layer].T

    def mlp(w, layer, x):
        z = x @ w["mlp_in"][layer].T
        return (z * (0.5 * (1.0 + erf(z * (1.0 / math.sqrt(2.0)))))) @ w["mlp_out"][layer].T

    def loop(x, a, b, w):
        """One loop at the point (a, b) (the placement's sub-layers, then the outer norm if any)."""
        beta, s = (b, spec.skip_scale) if second == "injection_scale" else (spec.injection_scale, b)
        s = jnp.asarray(s, dtype=dtype)
        if spec.injection == "concat":
            x = x @ w["inject_h"].T + beta * w["unit"]
        for layer in range(layers):
            for sub, branch in enumerate((attention, mlp)):
                x = placement(x, lambda u: branch(w, layer, u), a, s,
                              lambda u: norm(u, w["norm_in"][layer, sub]),
                              lambda u: norm(u, w["norm_out"][layer, sub]))
        if "norm_outer" in w:
            x = norm(x, w["norm_outer"])
        return x

    def point(a, b, w):
        return jax.lax.scan(lambda x, _: (loop(x, a, b, w), None), x0, None, length=loops)[0]

    batched = jax.jit(jax.vmap(point, in_axes=(0, 0, None)))
    steps = jax.jit(jax.vmap(loop, in_axes=(0, None, None, None)))

    def run(a, b):
        return batched(jnp.asarray(a, dtype=dtype), jnp.asarray(b, dtype=dtype), weights)

    def step(a, b, states):
        a, b, states = (jnp.asarray(value, dtype=dtype) for value in (a, b, states))
        return steps(states, a, b, weights)

    return run, step


# MODEL.md, Norm placement: one sub-layer X -> ... with branch F, residual scale a, skip scale s,
# N_in = N(·; norm_in[ℓ, sub]), N_out = N(·; norm_out[ℓ, sub]) (the outer norm is applied after the layers)
_PLACEMENTS = {
    "none": lambda x, f, a, s, n_in, n_out: s * x + a * f(x),
    "pre": lambda x, f, a, s, n_in, n_out: s * x + a * f(n_in(x)),
    "pre_outer": lambda x, f, a, s, n_in, n_out: s * x + a * f(n_in(x)),
    "post": lambda x, f, a, s, n_in, n_out: n_out(s * x + a * f(x)),
    "sandwich": lambda x, f, a, s, n_in, n_out: n_out(s * x + a * f(n_in(x))),
    "peri": lambda x, f, a, s, n_in, n_out: s * x + a * n_out(f(n_in(x))),
    "peri_outer": lambda x, f, a, s, n_in, n_out: s * x + a * n_out(f(n_in(x))),
}


# MODEL.md, State and stages
FLUSHED = {np.dtype(np.float64): FLUSH_BELOW_64, np.dtype(np.float32): FLUSH_BELOW_32}


def _flushed(values, size, dtype):
    """``values`` (norms) with those below the flush limit for ``size`` entries set to zero."""
    values = np.asarray(values, np.float64)
    return np.where(np.abs(values) < FLUSHED[np.dtype(dtype)] * np.sqrt(size), 0.0, values)


def relative(ours, reference):
    """|ours − reference| / |reference| elementwise: 0 where equal (zeros too), inf if one isn't finite."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        error = np.abs(ours - reference) / np.abs(reference)
    same = (ours == reference) | (~np.isfinite(ours) & ~np.isfinite(reference))
    return np.where(same, 0.0, np.where(np.isfinite(error), error, np.inf))


def _distance(ours, reference, dtype):
    """The relative Frobenius distance of each pair of states (over the last two axes): 0 if equal.

    Distances and norms below the flush limit count as zero.
    """
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    size = ours.shape[-1] * ours.shape[-2]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        apart = _flushed(np.linalg.norm(ours - reference, axis=(-2, -1)), size, dtype)
        result = apart / _flushed(np.linalg.norm(reference, axis=(-2, -1)), size, dtype)
    return np.where(apart == 0, 0.0, np.where(np.isfinite(result), result, np.inf))


def agreement(spec, axes, loops, dtype, jax_states, jax_step, sweep_norms):
    """``(final, one_loop)``: the largest relative differences described in the module docstring."""
    names = list(axes)
    first, second = grid_points(axes)
    jax_states = np.asarray(jax_states, dtype=np.float64)
    size = jax_states.shape[1] * jax_states.shape[2]
    final = float(np.max(relative(_flushed(np.linalg.norm(jax_states, axis=(1, 2)), size, dtype),
                                  _flushed(sweep_norms.ravel(), size, dtype))))
    one_loop = 0.0
    for i in np.linspace(0, first.size - 1, SAMPLES + 1).round().astype(int)[1:]:
        point = spec.replace(**{names[0]: float(first[i]), names[1]: float(second[i])})
        run = dynloop.simulate(point, loops, record="all", dtype=dtype)
        final = max(final, float(np.max(_distance(jax_states[i], run.final_state, dtype))))
        entering, after = run.stage_states[:, 0], run.stage_states[:, -1]
        one_loop = max(one_loop, float(np.max(_distance(jax_step(first[i], second[i], entering), after,
                                                            dtype))))
    return final, one_loop


def decision_seconds(spec, loops, dtype):
    """The seconds the early exit spends on one point that does not settle, per decision (best of 200).

    What the group kernel does at the end of a window for each point still running: the filter of
    windows that may settle (``_may_settle``, on a ring of 16 points whose states are noise: none
    passes, as none would settle).
    """
    from dynloop.dynamics.regimes import Tolerances
    from dynloop.sweep._kernels import _may_settle
    from dynloop.sweep.engine import _window

    _, _, window, max_period = _window(loops, None)
    n, group = spec.tokens * spec.width, 16
    ring = np.random.default_rng(0).standard_normal((window, n, group)).astype(dtype)
    norms = np.linalg.norm(ring.astype(np.float64), axis=1)
    points, running, scales = np.arange(group), np.ones(group, dtype=bool), np.ones(group)
    tolerances = Tolerances().as_array()

    def decide():
        if _may_settle(ring, norms, loops, points, running, scales, max_period, tolerances).size:
            raise AssertionError("noise passed the early-exit filter")

    decide()
    return best_seconds(decide, 200) / group


def early_decisions(loops):
    """How many early-exit decisions a point that never settles takes before its last loop."""
    from dynloop.sweep.engine import _window

    window = _window(loops, None)[2]
    return len(range(window, loops, window))


def readme_block(repeat, early_repeat):
    """The README's block: what the early exit saves in a sweep, what classify costs over its iterations."""
    spec = dynloop.BlockSpec(width=32, tokens=8, layers=4, heads=4, mixer="transformer", norm="sandwich",
                             injection="concat", residual_scale=0.5, seed=0)
    axes = grid_axes(spec, 256)
    loops = 200

    def run(early_exit, grid=axes):
        return dynloop.sweep(spec, grid, loops=loops, early_exit=early_exit, progress=False)

    run(False)  # compiles or loads the kernels
    mean_loops = float(np.mean(run(True).diagnostics["loops_run"]))
    result = dynloop.classify(spec)
    done = result.evidence["loops"]
    times = race({"all": lambda: run(False), "early": lambda: run(True),
                  "classify": lambda: dynloop.classify(spec),
                  "iterate": lambda: dynloop.simulate(spec, done, record="none")}, repeat)
    more = race({"all": lambda: run(False), "early": lambda: run(True)}, early_repeat - repeat)
    times.update({name: min(times[name], more[name]) for name in more})
    print("The README's block (sandwich + concat, k = 4, d = 32, T = 8, residual scale 0.5, seed 0)")
    print(f"  sweep of 256 points (residual scale x injection strength), {loops} loops: every loop "
          f"{times['all']:.3f} s; early exit {times['early']:.3f} s, {mean_loops:.1f} loops per point "
          f"({100 * (1 - times['early'] / times['all']):.0f} % saved)")
    print(f"  classify: {result.regime.value} after {done} loops in {times['classify']:.3f} s; iterating "
          f"those loops alone (simulate) {times['iterate']:.3f} s, so classification costs "
          f"{times['classify'] - times['iterate']:.3f} s on top\n")


def classify_times(repeat):
    """classify on k = 12, d = 64, T = 8 blocks, and a long horizon beside the sweep kernel per point."""
    print("classify, k = 12, d = 64, T = 8 (warm; target: within 2 s when the block converges)")
    for block in BLOCKS:
        spec = block_spec(block, 64, 8, 12)
        result = dynloop.classify(spec)
        seconds = best_seconds(lambda: dynloop.classify(spec), repeat)
        print(f"  {BLOCKS[block][0]:>16}: {result.regime.value} after {result.evidence['loops']} loops, "
              f"{seconds:.3f} s")
    spec = block_spec("peri_outer", 64, 8, 12).replace(weight_gain=1.0, seed=1)
    result = dynloop.classify(spec)
    loops = result.evidence["loops"]
    seconds = best_seconds(lambda: dynloop.classify(spec), max(1, repeat // 2))
    iterate = best_seconds(lambda: dynloop.simulate(spec, loops, record="none"), max(1, repeat // 2))
    print(f"  long horizon, peri_outer+none with weight_gain 1.0, seed 1: {result.regime.value} after "
          f"{loops} loops, {seconds:.2f} s = {1e3 * seconds / loops:.3f} ms per loop (iterating "
          f"{1e3 * iterate / loops:.3f}, the rest: {result.evidence['lyapunov_source']})")
    sweep_loops = 1040
    for points in (1, 64):
        axes = {"residual_scale": np.linspace(0.999, 1.0, points)}
        for lyapunov in (False, True):
            def run(grid=axes, lyapunov=lyapunov):
                return dynloop.sweep(spec, grid, loops=sweep_loops, early_exit=False, lyapunov=lyapunov,
                                     progress=False)
            dynloop.sweep(spec, axes, loops=16, early_exit=False, lyapunov=lyapunov, progress=False)
            seconds = best_seconds(run, max(1, repeat // 2))
            print(f"  its sweep kernel, {points:2d} point{'s' if points > 1 else ' '}, {sweep_loops} loops, "
                  f"Lyapunov {'on ' if lyapunov else 'off'}: {1e3 * seconds / points / sweep_loops:.3f} "
                  "ms per point and loop")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="both", choices=DTYPE_CHOICES)
    parser.add_argument("--sizes", nargs="+", metavar="P,d,T,k[,loops]",
                        default=[",".join(map(str, s)) for s in SIZES],
                        help=f"grid points (a square), width, tokens, layers and loops ({LOOPS} if left out) "
                             "of each run (default: the reference four)")
    parser.add_argument("--blocks", nargs="+", choices=list(BLOCKS), default=list(BLOCKS),
                        help="which blocks to run (default: all three)")
    parser.add_argument("--repeat", type=int, default=5, help="time each run this often and keep the fastest")
    parser.add_argument("--early-repeat", type=int, default=None,
                        help="time the sweep with and without early exit this often (default: 3 x --repeat)")
    parser.add_argument("--part", nargs="+", choices=PARTS, default=list(PARTS),
                        help="the README's block, classify times, the sweeps against JAX (default: all)")
    args = parser.parse_args(argv)
    early_repeat = 3 * args.repeat if args.early_repeat is None else args.early_repeat
    sizes = []
    for size in args.sizes:
        try:
            values = [int(v) for v in size.split(",")]
        except ValueError:
            values = []
        if len(values) not in (4, 5):
            parser.error(f"--sizes {size}: expected P,d,T,k or P,d,T,k,loops")
        if math.isqrt(values[0]) ** 2 != values[0] or values[1] % 4:
            parser.error(f"--sizes {size}: P must be a square (the grid is √P × √P), d a multiple of 4")
        sizes.append(tuple(values) if len(values) == 5 else (*values, LOOPS))
    if "readme" in args.part:
        readme_block(args.repeat, early_repeat)
    if "classify" in args.part:
        classify_times(args.repeat)
    if "sweeps" not in args.part:
        return
    modules = import_jax()
    if modules is None:
        print("JAX not installed (pip install jax, or .[bench]): dynloop runs alone\n")
    for dtype in chosen_dtypes(args.dtype):
        tolerance = TOLERANCE[np.dtype(dtype)]
        if modules is not None:
            jax_precision(modules[0], dtype)
        peak = matmul_peak(dtype, jax_modules=modules)
        print(f"{np.dtype(dtype).name}: matrix-multiply peak of this machine {peak:.1f} GFLOP/s; "
              f"agreement with JAX must stay below {tolerance:.0e}")
        print(f"{'block':>16} {'P':>4} {'d':>4} {'T':>3} {'k':>3} {'loops':>5} {'dynloop s':>10} "
              f"{'early-exit s':>12} {'(loops)':>7} {'jax s':>8} {'jax/dynloop':>11} {'GFLOP/s':>8} "
              f"{'% peak':>7} {'early/all':>9} {'decide':>7} {'final':>8} {'1-loop':>8} {'agreement':>9}")
        for points, d, tokens, layers, loops in sizes:
            for block in args.blocks:
                spec = block_spec(block, d, tokens, layers)
                axes = grid_axes(spec, points)

                def run(early_exit, grid=axes):
                    return dynloop.sweep(spec, grid, loops=loops, early_exit=early_exit, lyapunov=False,
                                         progress=False, dtype=dtype)

                for early_exit in (False, True):  # compiles (first run only), outside the timing
                    run(early_exit, {name: values[:2] for name, values in axes.items()})
                diagram = run(False)
                early_loops = float(np.mean(run(True).diagnostics["loops_run"]))
                runs = {"dynloop": lambda: run(False), "early": lambda: run(True)}
                agree = "-"
                if modules is not None:
                    first, second = grid_points(axes)
                    reference, step = jax_reference(*modules, spec, list(axes)[1], loops, dtype)
                    states = reference(first, second).block_until_ready()  # compiles, then runs
                    final, one_loop = agreement(spec, axes, loops, dtype, states, step,
                                                diagram.diagnostics["final_norm"])
                    verdict = "FAIL" if one_loop > tolerance else "sensitive" if final > tolerance else "ok"
                    agree = f"{final:8.1e} {one_loop:8.1e} {verdict:>9}"
                    runs["jax"] = lambda: reference(first, second).block_until_ready()
                times = race(runs, args.repeat)
                more = race({name: runs[name] for name in ("dynloop", "early")}, early_repeat - args.repeat)
                ours, early = (min(times[name], more[name]) for name in ("dynloop", "early"))
                decide = (decision_seconds(spec, loops, dtype) * early_decisions(loops) * points
                          / numba.get_num_threads() / ours)  # every row has a group per thread or more
                jax_columns = (f"{times['jax']:8.3f} {times['jax'] / ours:10.2f}x" if "jax" in times
                               else f"{'-':>8} {'-':>11}")
                gflops = flops_per_loop(spec) * points * loops / ours / 1e9
                print(f"{BLOCKS[block][0]:>16} {points:4d} {d:4d} {tokens:3d} {layers:3d} {loops:5d} "
                      f"{ours:10.3f} {early:12.3f} {early_loops:7.1f} {jax_columns} "
                      f"{gflops:8.2f} {100 * gflops / peak:6.1f}% {early / ours:9.3f} {100 * decide:6.2f}% "
                      f"{agree:>26}")
        print()


if __name__ == "__main__":
    main()
