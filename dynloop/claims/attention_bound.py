"""Claim 5: attention stabilises with the state (the study's Prop. 4.2).

Between consecutive loops, a layer's attention change is at most ``L_sm · 2 B κ / √d_h`` times the
change of its input (``κ = ‖W_Q,h W_K,hᵀ‖_F``, ``B`` the larger input norm, ``L_sm = 1/2``). Checked
on every loop, layer and head of analysed runs, with how tight the bound is.
"""

import time

import numpy as np

from ._common import attention_settings, label_colours, save_figure, stored_settings, unique_legend
from ._report import ClaimResult, decide
from .norm_injection import PLACEMENT_NAMES, block

NAME = "attention_bound"
TITLE = "5. Attention stabilises with the state (Prop. 4.2)"
LAYERS = 4


def loops(quick):
    return 64 if quick else 128


def measure(context):
    from ..analysis import analyze
    from ..dynamics.simulate import simulate

    items = attention_settings(context.quick)
    horizon = loops(context.quick)

    def one(index):
        norm, injection, gain, scale, seed = items[index]
        spec = block(LAYERS, seed, norm, injection, gain, scale)
        analysis = analyze(simulate(spec, horizon, record_attention=True))
        check = analysis.bound_check
        inputs = np.asarray(analysis.recording.meta["attention_inputs"], dtype=np.float64)
        state_change = np.linalg.norm(np.diff(inputs, axis=0), axis=(-2, -1))  # (loops − 1, layers)
        return {
            "bound": check["bound"],
            "observed": check["observed"],
            "violations": check["violations"],
            "tightness": check["tightness"],
            "input_change": state_change,
        }

    return items, stored_settings(context, f"{NAME}/runs", items, one, system=block(LAYERS, 0), loops=horizon)


def evaluate(items, records, figures=(), seconds=0.0, quick=False):
    violated = [int(np.sum(r["violations"])) for r in records]
    share = float(np.mean([v == 0 for v in violated])) if records else 0.0
    tightness = [float(np.max(r["tightness"])) for r in records]
    where = (
        f"no violation in {sum(v == 0 for v in violated)} of {len(records)} runs "
        f"({sum(violated)} violating (loop, head) entries in all); the largest observed / bound "
        "ratio per run "
        f"ranges from {min(tightness):.2g} to {max(tightness):.2g}"
    )
    rows = [
        "| norm | injection | weight_gain | residual_scale | seed | violations | tightness (largest ratio) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (norm, injection, gain, scale, seed), v, t in zip(items, violated, tightness):
        rows.append(
            f"| {PLACEMENT_NAMES[norm]} | {injection} | {gain:g} | {scale:g} | {seed} | {v} | {t:.3g} |"
        )
    return ClaimResult(
        NAME,
        TITLE,
        "With tied weights and bounded attention inputs, a layer's attention change between loops "
        "is at most L_sm · 2Bκ/√d_h times its input's change (L_sm = 1/2), so attention freezes when the "
        "states converge.",
        f"The atlas' transformer blocks at k = {LAYERS} in {len(items)} settings (converging and "
        "not; table), "
        f"{loops(quick)} loops each, analysed with `dynloop.analyze` (attention recorded).",
        [
            "Violation: ‖A_(t+1) − A_t‖_F above the bound by more than rounding (1e-9 relative + 1e-12·√T), "
            "for any loop, layer and head.",
            "Holds for a run with no violation at all (an exact claim).",
            "Tightness: the largest observed / bound ratio of a run.",
        ],
        decide(share, exact=True),
        where,
        share,
        table="\n".join(rows),
        figures=list(figures),
        numbers={"violations": int(sum(violated)), "tightness_max": max(tightness)},
        seconds=seconds,
    )


def figure(items, records, outdir):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    colours = label_colours(f"{PLACEMENT_NAMES[item[0]]}, {item[1]}" for item in items)
    for item, r in zip(items, records):
        label = f"{PLACEMENT_NAMES[item[0]]}, {item[1]}"
        change = np.repeat(np.asarray(r["input_change"])[..., None], r["observed"].shape[-1], axis=-1)
        keep = (change > 0) & (r["observed"] > 0)
        left.loglog(change[keep], r["observed"][keep], ".", markersize=2, alpha=0.4, label=label,
                    color=colours[label])
        keep = (r["bound"] > 0) & (r["observed"] > 0)
        right.loglog(r["bound"][keep], r["observed"][keep], ".", markersize=2, alpha=0.4, label=label,
                     color=colours[label])
    low, high = right.get_xlim()
    right.plot([low, high], [low, high], color="black", lw=1, label="bound (observed = bound)")
    left.set_xlabel("input change ‖X_(t+1) − X_t‖_F")
    left.set_ylabel("attention change ‖A_(t+1) − A_t‖_F")
    left.set_title("Attention change against state change")
    right.set_xlabel("bound L_sm · 2Bκ/√d_h · ‖ΔX‖_F")
    right.set_ylabel("attention change ‖A_(t+1) − A_t‖_F")
    right.set_title("Observed against the bound: every point below the line")
    for ax in (left, right):
        unique_legend(ax, fontsize="small", markerscale=4, loc="upper left")
    return save_figure(fig, outdir, NAME, "attention_vs_state")


def run(context):
    start = time.perf_counter()
    items, records = measure(context)
    return evaluate(
        items, records, [figure(items, records, context.outdir)], time.perf_counter() - start, context.quick
    )
