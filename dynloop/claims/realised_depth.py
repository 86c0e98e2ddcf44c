"""Claim 3: realised depth repeats with period k, with k distinct stage points unless degenerate.

At a cyclic fixed point every loop visits the same k per-layer points. The claim is that these are
distinct unless the block is degenerate (all coincide); partial degeneracy, some consecutive
points equal and others not, would break it. Counted at k = 16, where it has the most room.
"""

import time

import numpy as np

from ..dynamics.regimes import Regime
from ._common import label_colours, save_figure, stored_settings, unique_legend
from ._report import ClaimResult, decide
from .norm_injection import PLACEMENT_NAMES, block

NAME = "realised_depth"
TITLE = "3. Realised depth repeats with period k"
COINCIDE = 1e-6  # consecutive layer points closer than this, relative to ‖X*‖, coincide
LAYERS = 16


def settings(quick):
    """(norm, injection, weight_gain, residual_scale, seed) of every k = 16 block tested."""
    cells = (("pre", "concat"), ("sandwich", "concat"), ("pre", "none"), ("sandwich", "none"))
    gains, scales = ((0.16, 0.5, 1.0), (0.5,)) if quick else ((0.05, 0.16, 0.5, 1.0), (0.25, 0.5, 1.0))
    seeds = (0,) if quick else (0, 1, 2)
    return [(n, i, g, a, s) for n, i in cells for g in gains for a in scales for s in seeds]


def consecutive_distances(spec, fixed_point):
    """``‖Y_{j+1} − Y_j‖ / ‖X*‖`` between consecutive layer points, around the loop (k values)."""
    points = spec.stage_maps(fixed_point)
    layers = [j + 1 for j, name in enumerate(spec.stage_names) if name.startswith("layer")]
    ys = points[layers].reshape(len(layers), -1)
    return np.linalg.norm(np.roll(ys, -1, axis=0) - ys, axis=1) / np.linalg.norm(fixed_point)


def measure(context):
    from ..dynamics.classify import classify

    items = settings(context.quick)

    def one(index):
        norm, injection, gain, scale, seed = items[index]
        spec = block(LAYERS, seed, norm, injection, gain, scale)
        result = classify(spec, lyapunov=False)
        distances = np.full(LAYERS, np.nan)
        if result.regime in (Regime.CYCLIC, Regime.VANISHING) and result.period == 1:
            distances = consecutive_distances(spec, result.stage_fixed_points[-1])
        return {"regime": result.regime.code, "distances": distances}

    return items, stored_settings(context, f"{NAME}/blocks", items, one, system=block(LAYERS, 0))


def classify_pattern(distances):
    """``"distinct"``, ``"degenerate"`` (all coincide) or ``"partial"`` from consecutive distances."""
    coincide = np.asarray(distances) <= COINCIDE
    if coincide.all():
        return "degenerate"
    return "partial" if coincide.any() else "distinct"


def evaluate(items, records, figures=(), seconds=0.0, quick=False):
    tested = [(item, r) for item, r in zip(items, records) if np.isfinite(r["distances"]).all()]
    patterns = [classify_pattern(r["distances"]) for _, r in tested]
    share = float(np.mean([p != "partial" for p in patterns])) if tested else 0.0
    counts = {p: patterns.count(p) for p in ("distinct", "degenerate", "partial")}
    where = (
        (
            f"of {len(tested)} converged k = {LAYERS} blocks, {counts['distinct']} have {LAYERS} "
            "distinct points, "
            f"{counts['degenerate']} are degenerate and {counts['partial']} partially degenerate; "
            f"{len(items) - len(tested)} of {len(items)} did not converge"
        )
        if tested
        else f"none of the {len(items)} blocks converged, so nothing was tested"
    )
    rows = [
        "| norm | injection | weight_gain | residual_scale | seed | regime | coinciding consecutive points "
        "| smallest consecutive distance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (norm, injection, gain, scale, seed), r in zip(items, records):
        d = np.asarray(r["distances"])
        ok = np.isfinite(d).all()
        rows.append(
            f"| {PLACEMENT_NAMES[norm]} | {injection} | {gain:g} | {scale:g} | {seed} "
            f"| {Regime.from_code(int(r['regime'])).value} | "
            + (f"{int((d <= COINCIDE).sum())} of {LAYERS} | {d.min():.2g} |" if ok else "- | - |")
        )
    return ClaimResult(
        NAME,
        TITLE,
        "At convergence the block's k stage points are distinct unless degenerate, so realised "
        "depth repeats with period k; partial degeneracy (some consecutive points equal) would break this.",
        f"The atlas' transformer blocks at k = {LAYERS} in {len(items)} settings (table), classified by "
        "`dynloop.classify`; at a fixed point refined by Newton's method, the distance between every two "
        "consecutive layer points around the loop.",
        [
            f"Two consecutive layer points coincide when ‖Y_(j+1) − Y_j‖/‖X*‖ ≤ {COINCIDE:g}.",
            "Holds for a block unless some, but not all, consecutive points coincide; the share is over the "
            "blocks that converged.",
        ],
        decide(share) if tested else "does not hold",
        where,
        share,
        table="\n".join(rows),
        figures=list(figures),
        numbers=counts,
        seconds=seconds,
    )


def figure(items, records, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    colours = label_colours(f"{PLACEMENT_NAMES[item[0]]}, {item[1]}" for item in items)
    for item, r in zip(items, records):
        d = np.asarray(r["distances"])
        if np.isfinite(d).all():
            ax.semilogy(
                np.arange(1, d.size + 1),
                np.maximum(d, 1e-18),
                marker="o",
                markersize=3,
                lw=0.8,
                alpha=0.7,
                label=f"{PLACEMENT_NAMES[item[0]]}, {item[1]}",
                color=colours[f"{PLACEMENT_NAMES[item[0]]}, {item[1]}"],
            )
    ax.axhline(COINCIDE, color="black", ls="--", lw=1, label=f"coincide below {COINCIDE:g}")
    ax.set_xlabel(f"layer j (distance from Y_j to Y_(j+1), Y_({LAYERS}) to Y_1 last)")
    ax.set_ylabel("‖Y_(j+1) − Y_j‖ / ‖X*‖")
    ax.set_title(f"Consecutive stage points of converged k = {LAYERS} blocks")
    unique_legend(ax, fontsize="small", loc="lower right")
    return save_figure(fig, outdir, NAME, "consecutive_distances")


def run(context):
    start = time.perf_counter()
    items, records = measure(context)
    return evaluate(
        items, records, [figure(items, records, context.outdir)], time.perf_counter() - start, context.quick
    )
