"""Claim 6: stage metrics are flat once converged, and keep drifting where there is no fixed point.

Per-layer ColSum concentration, mixing score and sink rate of analysed runs: at a converged block
they must stay constant from the loop it converged at out to 8 times that many loops; where the
block has no fixed point they keep changing.
"""

import time

import numpy as np

from ..dynamics.regimes import Regime
from ._common import attention_settings, save_figure, stored_settings, unique_legend
from ._report import ClaimResult, decide
from .norm_injection import PLACEMENT_NAMES, block

NAME = "stage_metrics"
TITLE = "6. Stage metrics are flat once converged"
LAYERS = 4
FLAT = 1e-6  # a metric changes by at most this from the loop of convergence on: flat
METRICS = ("colsum_concentration", "mixing", "sink_rate")
UNSETTLED_LOOPS = 256
SINK_THRESHOLD = 0.3  # dynloop.analyze's default


def measure(context):
    from ..analysis.analyze import _stage_metrics
    from ..dynamics.classify import classify
    from ..dynamics.simulate import simulate

    items = attention_settings(context.quick)

    def one(index):
        norm, injection, gain, scale, seed = items[index]
        spec = block(LAYERS, seed, norm, injection, gain, scale)
        result = classify(spec, lyapunov=False)
        converged = result.regime in (Regime.CYCLIC, Regime.VANISHING)
        settled = max(int(result.transient_loops or 0), 1) if converged else UNSETTLED_LOOPS // 8
        horizon = min(8 * settled, 4096)
        recording = simulate(spec, horizon, record_attention=True).recording()
        values = _stage_metrics(recording, SINK_THRESHOLD)[0]  # the metrics dynloop.analyze reports
        changes = []
        for name in METRICS:
            series = np.asarray(values[name], dtype=float).reshape(horizon, -1)
            changes.append(np.max(np.abs(series - series[-1]), axis=1))  # per loop, over layers and heads
        return {"regime": result.regime.code, "settled": settled, "changes": np.array(changes)}

    return items, stored_settings(context, f"{NAME}/runs", items, one, system=block(LAYERS, 0))


def verdict_of(record):
    """``(converged, holds)`` of one run: flat after convergence, or still drifting without it."""
    converged = Regime.from_code(int(record["regime"])) in (Regime.CYCLIC, Regime.VANISHING)
    changes = np.asarray(record["changes"])
    settled = int(record["settled"])
    if converged:
        return True, bool(np.all(changes[:, settled:] <= FLAT))
    half = changes.shape[1] // 2
    return False, bool(np.any(changes[:, half:-1] > FLAT))


def evaluate(items, records, figures=(), seconds=0.0, quick=False):
    verdicts = [verdict_of(r) for r in records]
    share = float(np.mean([ok for _, ok in verdicts])) if verdicts else 0.0
    converged = [ok for c, ok in verdicts if c]
    drifting = [ok for c, ok in verdicts if not c]
    where = (
        f"flat after convergence in {sum(converged)} of {len(converged)} converged runs; still changing in "
        f"{sum(drifting)} of {len(drifting)} runs without a fixed point"
    )
    rows = [
        "| norm | injection | weight_gain | residual_scale | seed | regime | converged by loop "
        "| largest change after it (ColSum, mixing, sink rate) | holds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (norm, injection, gain, scale, seed), r, (c, ok) in zip(items, records, verdicts):
        settled = int(r["settled"])
        tail = (
            np.asarray(r["changes"])[:, settled:]
            if c
            else np.asarray(r["changes"])[:, r["changes"].shape[1] // 2 :]
        )
        rows.append(
            f"| {PLACEMENT_NAMES[norm]} | {injection} | {gain:g} | {scale:g} | {seed} "
            f"| {Regime.from_code(int(r['regime'])).value} | {settled if c else '-'} | "
            + ", ".join(f"{v:.2g}" for v in tail.max(axis=1))
            + f" | {'yes' if ok else 'no'} |"
        )
    return ClaimResult(
        NAME,
        TITLE,
        "Per-layer ColSum concentration, mixing score and sink rate stay constant once the block has "
        "converged (out to 8× the loops it needed), and keep drifting where there is no fixed point.",
        f"The atlas' transformer blocks at k = {LAYERS} in {len(items)} settings (table); each classified by "
        "`dynloop.classify`, then simulated with attention for 8× the loops it needed to converge (or "
        f"{UNSETTLED_LOOPS} loops without a fixed point; at most 4,096), with the stage metrics "
        "`dynloop.analyze` reports.",
        [
            f"Flat: every metric, every layer and head, within {FLAT:g} of its last value from the loop the "
            "classifier says the block converged at.",
            "Drifting: some metric more than that away in the second half of a run without a fixed point.",
            "Holds for a run that is flat and converged, or drifting without a fixed point.",
        ],
        decide(share),
        where,
        share,
        table="\n".join(rows),
        figures=list(figures),
        seconds=seconds,
        numbers={
            "converged_flat": sum(converged),
            "converged": len(converged),
            "unsettled_drifting": sum(drifting),
            "unsettled": len(drifting),
        },
    )


def figure(items, records, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.6), layout="constrained")
    for r in records:
        converged, _ = verdict_of(r)
        change = np.asarray(r["changes"]).max(axis=0)
        loops = np.arange(change.size) / int(r["settled"])
        ax.semilogy(
            loops,
            np.maximum(change, 1e-18),
            lw=0.8,
            alpha=0.6,
            color="#2a9d8f" if converged else "#e76f51",
            label="converged" if converged else "no fixed point",
        )
    ax.axhline(FLAT, color="black", ls="--", lw=1, label=f"flat below {FLAT:g}")
    ax.axvline(1.0, color="0.5", ls=":", lw=1, label="loop of convergence")
    ax.set_xlabel("loop / loops needed to converge (runs without a fixed point: / 32)")
    ax.set_ylabel("largest change of a stage metric to its last value")
    ax.set_title("ColSum concentration, mixing and sink rate after convergence\n"
                 "(values below 1e-18 drawn at 1e-18)", fontsize="medium")
    unique_legend(ax, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, outdir, NAME, "metric_changes")


def run(context):
    start = time.perf_counter()
    items, records = measure(context)
    return evaluate(
        items, records, [figure(items, records, context.outdir)], time.perf_counter() - start, context.quick
    )
