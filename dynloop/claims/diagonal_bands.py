"""Claim 7: cross-loop attention similarity shows diagonal bands after a few loops, at a fixed point.

At a cyclic fixed point each layer's attention in one loop is most like the same layer's in other
loops: the (loop, layer) similarity matrix has diagonal bands. Measured by ``dynloop.analyze``'s
band score on runs started at the converged state, and on runs without a fixed point.
"""

import time

import numpy as np

from ..dynamics.regimes import Regime
from ._common import attention_settings, save_figure, stored_settings
from ._report import ClaimResult, decide
from .norm_injection import PLACEMENT_NAMES, block

NAME = "diagonal_bands"
TITLE = "7. Cross-loop attention similarity shows diagonal bands"
LAYERS = 4
LOOPS = 16  # loops analysed after the block has settled
BANDS = 0.95  # band score at least this: diagonal bands


def measure(context):
    from ..analysis import analyze
    from ..dynamics.classify import classify
    from ..dynamics.simulate import simulate

    items = attention_settings(context.quick)

    def one(index):
        norm, injection, gain, scale, seed = items[index]
        spec = block(LAYERS, seed, norm, injection, gain, scale)
        result = classify(spec, lyapunov=False)
        settled = simulate(spec, max(int(result.transient_loops or 0), 8), record="none").final_state
        analysis = analyze(simulate(spec, LOOPS, x0=settled, record_attention=True))
        return {
            "regime": result.regime.code,
            "score": analysis.diagonal_band_score["attention"],
            "similarity": analysis.attention_similarity,
        }

    return items, stored_settings(context, f"{NAME}/runs", items, one, system=block(LAYERS, 0), loops=LOOPS)


def evaluate(items, records, figures=(), seconds=0.0, quick=False):
    cyclic = [float(r["score"]) for r in records if int(r["regime"]) == Regime.CYCLIC.code]
    others = [float(r["score"]) for r in records if int(r["regime"]) != Regime.CYCLIC.code]
    share = float(np.mean([s >= BANDS for s in cyclic])) if cyclic else 0.0
    where = (
        f"band score ≥ {BANDS} in {sum(s >= BANDS for s in cyclic)} of {len(cyclic)} runs at a cyclic fixed "
        f"point (lowest {min(cyclic):.2f})"
        if cyclic
        else "no run reached a cyclic fixed point"
    )
    if others:
        where += f"; runs without one score {min(others):.2f} to {max(others):.2f}"
    rows = [
        "| norm | injection | weight_gain | residual_scale | seed | regime | attention band score |",
        "|---|---|---|---|---|---|---|",
    ]
    for (norm, injection, gain, scale, seed), r in zip(items, records):
        rows.append(
            f"| {PLACEMENT_NAMES[norm]} | {injection} | {gain:g} | {scale:g} | {seed} "
            f"| {Regime.from_code(int(r['regime'])).value} | {float(r['score']):.2f} |"
        )
    return ClaimResult(
        NAME,
        TITLE,
        "After a few loops at a fixed point, each layer's attention is most similar to the same "
        "layer's in other loops: the cross-loop attention similarity shows diagonal bands.",
        f"The atlas' transformer blocks at k = {LAYERS} in {len(items)} settings (table); each "
        "classified, run "
        f"to the loop it settled at, then {LOOPS} more loops analysed with `dynloop.analyze`.",
        [
            "Band score: the fraction of (loop, layer) entries whose most similar entry in another "
            "loop is the "
            f"same layer (similarity 1 − ‖A − A'‖_F / (‖A‖_F + ‖A'‖_F)); bands when ≥ {BANDS}.",
            "The share is over the runs at a cyclic fixed point (at a vanishing one every layer is "
            "the same).",
        ],
        decide(share) if cyclic else "does not hold",
        where,
        share,
        table="\n".join(rows),
        figures=list(figures),
        numbers={"cyclic_runs": len(cyclic)},
        seconds=seconds,
    )


def figure(items, records, outdir):
    import matplotlib.pyplot as plt

    chosen = [i for i, r in enumerate(records) if int(r["regime"]) == Regime.CYCLIC.code][:1]
    chosen += [i for i, r in enumerate(records) if int(r["regime"]) != Regime.CYCLIC.code][:1]
    fig, axes = plt.subplots(
        1, max(len(chosen), 1), figsize=(5.2 * max(len(chosen), 1), 4.6), layout="constrained", squeeze=False
    )
    for ax, i in zip(axes[0], chosen):
        norm, injection, gain, scale, seed = items[i]
        mesh = ax.imshow(records[i]["similarity"], vmax=1, cmap="viridis", interpolation="nearest")
        ax.set_title(
            f"{PLACEMENT_NAMES[norm]}, {injection}, gain {gain:g}: "
            f"{Regime.from_code(int(records[i]['regime'])).value}",
            fontsize="medium",
        )
        ax.set_xlabel(f"(loop, layer) entry: loop · {LAYERS} + layer")
        ax.set_ylabel(f"(loop, layer) entry: loop · {LAYERS} + layer")
        fig.colorbar(mesh, ax=ax, shrink=0.85, label="attention similarity 1 − ‖A − A'‖ / (‖A‖ + ‖A'‖)")
    fig.suptitle(f"Cross-loop attention similarity over {LOOPS} settled loops", fontsize="medium")
    return save_figure(fig, outdir, NAME, "attention_similarity")


def run(context):
    start = time.perf_counter()
    items, records = measure(context)
    return evaluate(
        items, records, [figure(items, records, context.outdir)], time.perf_counter() - start, context.quick
    )
