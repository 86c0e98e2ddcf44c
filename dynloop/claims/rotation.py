"""Claim 2: rotation invariance (the study's Prop. 4.1).

If the loop map S = B_k ∘ … ∘ B_1 has a fixed point X*, every rotated stack
B_j ∘ … ∘ B_1 ∘ B_k ∘ … ∘ B_{j+1} has Y_j = B_j(…B_1(X*)) as its own fixed point. Tested on
converged transformer blocks: the residual of every rotation at its stage point, against the
floor the refined fixed point itself reaches.
"""

import time

import numpy as np

from ..dynamics.regimes import Regime
from ._common import label_colours, save_figure, stored_settings, unique_legend
from ._report import ClaimResult, decide
from .norm_injection import PLACEMENT_NAMES, block

NAME = "rotation"
TITLE = "2. Rotation invariance (Prop. 4.1)"
TOLERANCE = 1e-10  # a rotation's relative residual at most this: Y_j is its fixed point
CONVERGED = (Regime.CYCLIC, Regime.VANISHING)


def settings(quick):
    """(norm, injection, weight_gain, residual_scale, k, seed) of every block tested."""
    cells = (("pre", "concat"), ("sandwich", "concat"), ("pre", "none"), ("peri_outer", "concat"))
    gains, scales = ((0.3, 1.0), (0.5,)) if quick else ((0.16, 0.3, 1.0), (0.5, 1.0))
    ks, seeds = ((4,), (0,)) if quick else ((4, 12), (0, 1, 2))
    return [(n, i, g, a, k, s) for k in ks for n, i in cells for g in gains for a in scales for s in seeds]


def rotation_residuals(spec, fixed_point):
    """``‖R_j(Y_j) − Y_j‖ / ‖Y_j‖`` for j = 0 … S−1 (j = 0 is the loop map itself at ``fixed_point``).

    ``R_j`` applies stages j+1 … S, then 1 … j (injection and outer norm are stages too).
    """
    from ..systems import _block_kernels as kernels

    config, arrays = spec._compiled(np.float64)
    points = spec.stage_maps(fixed_point)
    stages = spec.n_stages
    no_tangent = np.empty((0,) + spec.state_shape)
    residuals = np.empty(stages)
    for j in range(stages):
        x = points[j]
        for stage in list(range(j, stages)) + list(range(j)):
            x = kernels.stage_apply(config, arrays, stage, x, no_tangent)[0]
        residuals[j] = np.linalg.norm(x - points[j]) / np.linalg.norm(points[j])
    return residuals


def measure(context):
    """Classify every block, and at the converged ones take every rotation's residual."""
    from ..dynamics.classify import classify

    items = settings(context.quick)

    def one(index):
        norm, injection, gain, scale, layers, seed = items[index]
        spec = block(layers, seed, norm, injection, gain, scale)
        result = classify(spec, lyapunov=False)
        residuals = np.full(spec.n_stages, np.nan)
        if result.regime in CONVERGED and result.period == 1:
            residuals = rotation_residuals(spec, result.stage_fixed_points[-1])
        return {"regime": Regime(result.regime).code, "residuals": residuals}

    return items, stored_settings(context, f"{NAME}/blocks", items, one, system=block(4, 0))


def evaluate(items, records, figures=(), seconds=0.0, quick=False):
    """The claim's result from per-block records (``regime`` code and ``residuals``)."""
    converged = [
        (item, r)
        for item, r in zip(items, records)
        if Regime.from_code(int(r["regime"])) in CONVERGED and np.isfinite(r["residuals"]).all()
    ]
    holding = [max(r["residuals"]) <= TOLERANCE for _, r in converged]
    share = float(np.mean(holding)) if converged else 0.0
    worst = max((float(np.max(r["residuals"])) for _, r in converged), default=float("nan"))
    floor = max((float(r["residuals"][0]) for _, r in converged), default=float("nan"))
    if converged:
        where = (
            f"{sum(holding)} of {len(converged)} converged blocks have every rotation at its stage point "
            f"to {TOLERANCE:g} (largest residual {worst:.2g}; the loop map's own, the floor, up to "
            f"{floor:.2g}); "
            f"{len(items) - len(converged)} of {len(items)} blocks did not converge and test nothing"
        )
    else:
        where = f"none of the {len(items)} blocks converged, so nothing was tested"
    rows = [
        "| norm | injection | weight_gain | residual_scale | k | seed | regime | loop map residual "
        "| largest rotation residual |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (norm, injection, gain, scale, layers, seed), r in zip(items, records):
        residuals = r["residuals"]
        tested = np.isfinite(residuals).all()
        rows.append(
            f"| {PLACEMENT_NAMES[norm]} | {injection} | {gain:g} | {scale:g} | {layers} | {seed} "
            f"| {Regime.from_code(int(r['regime'])).value} | {residuals[0]:.2g} | "
            + (f"{residuals.max():.2g} |" if tested else "not converged |")
        )
    return ClaimResult(
        NAME,
        TITLE,
        "At a converged cyclic fixed point, every rotated stack (layers j+1 … k, 1 … j) has Y_j "
        "as its own fixed point, to the numerical floor.",
        "The atlas' transformer blocks (d = 64, T = 8, 4 heads, GELU, RMSNorm, random start) in "
        f"{len(items)} "
        "settings of norm placement, injection, weight gain, residual scale, k and seed (table); each is "
        "classified by `dynloop.classify`, and at a fixed point (cyclic or vanishing), refined by Newton's "
        "method, every rotation of its stages is applied to its own stage point.",
        [
            f"Holds for a block when every rotation's residual ‖R_j(Y_j) − Y_j‖/‖Y_j‖ ≤ {TOLERANCE:g} "
            "(the loop map's own residual at X* is the floor, shown beside it).",
            "The share is over the blocks that converged; the others cannot test the claim.",
        ],
        decide(share, exact=True) if converged else "does not hold",
        where,
        share,
        table="\n".join(rows),
        figures=list(figures),
        numbers={"tested": len(converged), "largest_residual": worst},
        seconds=seconds,
    )


def figure(items, records, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    shown = False
    colours = label_colours(f"{PLACEMENT_NAMES[item[0]]}, {item[1]}" for item in items)
    for item, r in zip(items, records):
        residuals = np.asarray(r["residuals"])
        if not np.isfinite(residuals).all():
            continue
        label = f"{PLACEMENT_NAMES[item[0]]}, {item[1]}"
        ax.semilogy(
            np.arange(residuals.size),
            np.maximum(residuals, 1e-18),
            marker="o",
            markersize=3,
            lw=0.8,
            alpha=0.7,
            label=label,
            color=colours[label],
        )
        shown = True
    ax.axhline(TOLERANCE, color="black", ls="--", lw=1, label=f"tolerance {TOLERANCE:g}")
    ax.set_xlabel("rotation j (stages j+1 … S, then 1 … j; j = 0 is the loop map)")
    ax.set_ylabel("relative residual ‖R_j(Y_j) − Y_j‖ / ‖Y_j‖")
    ax.set_title(
        "Every rotated stack has its stage point as a fixed point"
        + ("" if shown else " (no block converged)")
    )
    unique_legend(ax, fontsize="small", loc="upper right")
    return save_figure(fig, outdir, NAME, "residuals")


def run(context):
    start = time.perf_counter()
    items, records = measure(context)
    figures = [figure(items, records, context.outdir)]
    return evaluate(items, records, figures, time.perf_counter() - start, context.quick)
