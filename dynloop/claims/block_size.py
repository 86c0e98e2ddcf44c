"""Claim 8: block size, with convergence rate, transient length and degeneracy against k = 1 … 16.

The study says block size, injection and normalization decide whether a shared block's contribution
vanishes or traces a cycle. Here each block family (norm, injection, weight gain, residual scale,
seed) is classified at every k, and the claim that k decides is tested as: does the outcome change
with k within a family?
"""

import time

import numpy as np

from ._common import label_colours, save_figure, stored_settings
from ._report import ClaimResult, decide
from .norm_injection import PLACEMENT_NAMES, block, converged_outcome

NAME = "block_size"
TITLE = "8. Block size"


def block_sizes(quick):
    return (1, 2, 4, 8, 16) if quick else tuple(range(1, 17))


def families(quick):
    """(norm, injection, weight_gain, residual_scale, seed) of every block family."""
    cells = (("pre", "concat"), ("sandwich", "concat"), ("pre", "none"), ("sandwich", "none"))
    gains = (0.16, 1.0) if quick else (0.16, 0.5, 1.0)
    seeds = (0,) if quick else (0, 1, 2)
    return [(n, i, g, 0.5, s) for n, i in cells for g in gains for s in seeds]


def measure(context):
    from ..dynamics.classify import classify

    items, ks = families(context.quick), block_sizes(context.quick)

    def one(index):
        norm, injection, gain, scale, seed = items[index]
        rows = []
        for layers in ks:
            spec = block(layers, seed, norm, injection, gain, scale)
            result = classify(spec, lyapunov=False)
            min_cos = result.degeneracy.min_cos if result.degeneracy is not None else np.nan
            rows.append(
                (
                    result.regime.code,
                    result.convergence_rate if result.convergence_rate is not None else np.nan,
                    result.transient_loops if result.transient_loops is not None else np.nan,
                    min_cos,
                )
            )
        return {"rows": np.array(rows, dtype=float)}

    records = stored_settings(context, f"{NAME}/families", items, one, system=block(1, 0), key="families",
                              layers=list(ks))
    return items, ks, records


def evaluate(items, ks, records, figures=(), seconds=0.0, quick=False):
    outcomes = [[converged_outcome(int(code)) for code in r["rows"][:, 0]] for r in records]
    changes = [len(set(o)) > 1 for o in outcomes]
    share = float(np.mean(changes)) if records else 0.0
    where = (
        f"the outcome changes with k in {sum(changes)} of {len(records)} block families; in the others "
        "k only changes how fast and how degenerate"
    )
    rows = [
        "| norm | injection | weight_gain | seed | outcome by k (" + ", ".join(map(str, ks)) + ") |",
        "|---|---|---|---|---|",
    ]
    short = {"cyclic": "C", "degenerate": "V", "none": "-", "undetermined": "?"}
    for (norm, injection, gain, _, seed), o in zip(items, outcomes):
        rows.append(
            f"| {PLACEMENT_NAMES[norm]} | {injection} | {gain:g} | {seed} | {' '.join(short[x] for x in o)} |"
        )
    return ClaimResult(
        NAME,
        TITLE,
        "Block size decides (with injection and normalization) whether a shared block's contribution "
        "vanishes or traces a cyclic fixed point: within one family of blocks, the outcome changes with k.",
        f"The atlas' transformer blocks (residual scale 0.5) in {len(items)} families of norm, injection, "
        f"weight gain and seed, each classified by `dynloop.classify` at k = {', '.join(map(str, ks))}.",
        [
            "Outcome: cyclic (C), vanishing (V), no stable fixed point (-) or undetermined (?), as in "
            "claim 1's "
            "converged criterion.",
            "Holds for a family whose outcome is not the same at every k; the figure gives convergence rate, "
            "transient length and degeneracy against k.",
        ],
        decide(share),
        where,
        share,
        table="\n".join(rows),
        figures=list(figures),
        seconds=seconds,
        numbers={"families": len(records), "changing": int(sum(changes))},
    )


def figure(items, ks, records, outdir):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
    titles = ("convergence rate per loop", "transient (loops until settled)", "1 − min_(j≠1) cos(X*_1, X*_j)")
    colours = label_colours(f"{PLACEMENT_NAMES[n]}, {i}, gain {g:g}" for n, i, g, _, _ in items)
    for (norm, injection, gain, _, seed), r in zip(items, records):
        data = np.asarray(r["rows"])
        label = f"{PLACEMENT_NAMES[norm]}, {injection}, gain {gain:g}"
        axes[0].plot(ks, data[:, 1], marker="o", markersize=3, lw=0.8, label=label, color=colours[label])
        axes[1].plot(ks, data[:, 2], marker="o", markersize=3, lw=0.8, label=label, color=colours[label])
        degeneracy = np.where(np.asarray(ks) > 1, np.maximum(1.0 - data[:, 3], 1e-18), np.nan)  # k = 1: none
        axes[2].semilogy(ks, degeneracy, marker="o", markersize=3, lw=0.8, label=label, color=colours[label])
    for ax, title in zip(axes, titles):
        ax.set_xlabel("block size k (layers)")
        ax.set_ylabel(title)
        ax.set_title(title[0].upper() + title[1:] + " against k", fontsize="medium")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("1 − min_(j≠1) cos(X*_1, X*_j), k ≥ 2")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(
        unique.values(),
        unique.keys(),
        loc="outside right center",
        fontsize="small",
        frameon=False,
        title="family, all seeds\n(missing points: no fixed point)",
    )
    return save_figure(fig, outdir, NAME, "against_k")


def run(context):
    start = time.perf_counter()
    items, ks, records = measure(context)
    return evaluate(
        items,
        ks,
        records,
        [figure(items, ks, records, context.outdir)],
        time.perf_counter() - start,
        context.quick,
    )
