"""Claim 4: degeneracy means a vanishing block action, and only then.

``min_{j≠1} cos(X*_1, X*_j) → 1`` (the study's degeneracy) exactly when every layer's update
``‖f_j‖/‖X*‖ → 0``. Tested in both directions at every converged point of the norm × injection
atlas (claim 1's sweeps, loaded from their stores).
"""

import time

import numpy as np

from ..dynamics.regimes import Regime
from ._common import save_figure
from ._report import ClaimResult, decide
from .norm_injection import CELLS, PLACEMENT_NAMES, diagrams

NAME = "vanishing_action"
TITLE = "4. Degeneracy means a vanishing block action"
DEGENERATE = 1e-6  # 1 − min cos at most this: degenerate
VANISHING = 1e-3  # the largest layer update ‖Y_(j+1) − Y_j‖ / scale at most this: the action vanishes


def measure(context):
    """``(cell index, k, 1 − min cos, largest update)`` of every converged atlas point."""
    grid, found = diagrams(context)
    rows = []
    for (layers, seed), diagram in found.items():
        for c, (norm, injection) in enumerate(CELLS):
            part = diagram.select(norm=norm, injection=injection)
            converged = np.isin(part.regimes, [Regime.CYCLIC.code, Regime.VANISHING.code])
            one_minus = 1.0 - part.diagnostics["min_cos"][converged]
            update = part.diagnostics["max_step_relative"][converged]
            rows += [(c, layers, float(a), float(b)) for a, b in zip(one_minus, update)]
    return grid, np.array(rows, dtype=float).reshape(-1, 4)


def evaluate(rows, figures=(), seconds=0.0, quick=False):
    """Verdict from rows ``(cell, k, 1 − min cos, largest update)`` of converged points."""
    if rows.size == 0:
        return ClaimResult(
            NAME,
            TITLE,
            _CLAIM,
            _SETUP,
            _criteria(),
            "does not hold",
            "no point of the atlas converged, so nothing was tested",
            0.0,
            figures=list(figures),
            seconds=seconds,
        )
    degenerate = rows[:, 2] <= DEGENERATE
    vanishing = rows[:, 3] <= VANISHING
    agree = degenerate == vanishing
    share = float(agree.mean())
    forward = int((degenerate & ~vanishing).sum())  # degenerate by cosine, yet the layers still act
    backward = int((vanishing & ~degenerate).sum())
    where = (
        f"{int(agree.sum())} of {rows.shape[0]} converged atlas points agree ({int(degenerate.sum())} "
        f"degenerate, {int(vanishing.sum())} with a vanishing action); {forward} are degenerate by cosine "
        f"while some layer still moves the state, {backward} have a vanishing action without degeneracy"
    )
    lines = [
        "| cell | k | converged points | degenerate | vanishing action | both or neither |",
        "|---|---|---|---|---|---|",
    ]
    for c, (norm, injection) in enumerate(CELLS):
        for layers in np.unique(rows[:, 1]).astype(int):
            mask = (rows[:, 0] == c) & (rows[:, 1] == layers)
            if mask.any():
                lines.append(
                    f"| {PLACEMENT_NAMES[norm]}, {injection} | {layers} | {int(mask.sum())} "
                    f"| {int(degenerate[mask].sum())} | {int(vanishing[mask].sum())} "
                    f"| {100 * agree[mask].mean():.0f} % |"
                )
    return ClaimResult(
        NAME,
        TITLE,
        _CLAIM,
        _SETUP,
        _criteria(),
        decide(share),
        where,
        share,
        table="\n".join(lines),
        figures=list(figures),
        numbers={
            "points": int(rows.shape[0]),
            "degenerate_but_acting": forward,
            "vanishing_not_degenerate": backward,
        },
        seconds=seconds,
    )


_CLAIM = (
    "The layers' points coincide in direction (min_(j≠1) cos(X*_1, X*_j) → 1) exactly when every layer's "
    "update ‖f_j‖/‖X*‖ → 0: degeneracy is a vanishing block action, in both directions."
)
_SETUP = (
    "Every converged point (cyclic or vanishing) of the norm × injection atlas (claim 1's sweeps, all cells, "
    "block sizes and seeds), with the sweep's refined stage points."
)


def _criteria():
    return [
        f"Degenerate: 1 − min_(j≠1) cos(X*_1, X*_j) ≤ {DEGENERATE:g}.",
        f"Vanishing action: the largest distance between consecutive stage points, over the state's scale, "
        f"≤ {VANISHING:g} (the sweep's max_step_relative).",
        "Holds at a point when both or neither apply.",
    ]


def figure(rows, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    for c, (norm, injection) in enumerate(CELLS):
        mask = rows[:, 0] == c
        if mask.any():
            ax.loglog(
                np.maximum(rows[mask, 3], 1e-18),
                np.maximum(rows[mask, 2], 1e-18),
                "o",
                markersize=4,
                alpha=0.7,
                label=f"{PLACEMENT_NAMES[norm]}, {injection}",
            )
    ax.axvline(VANISHING, color="black", ls="--", lw=1, label=f"vanishing action below {VANISHING:g}")
    ax.axhline(DEGENERATE, color="0.4", ls=":", lw=1, label=f"degenerate below {DEGENERATE:g}")
    ax.set_xlabel("largest layer update ‖Y_(j+1) − Y_j‖ / scale")
    ax.set_ylabel("1 − min_(j≠1) cos(X*_1, X*_j)  (values below 1e-18 drawn at 1e-18)")
    ax.set_title(
        "Degeneracy against the block's action, converged atlas points\n"
        "(the claim: points lie bottom-left or top-right)"
    )
    ax.legend(fontsize="small", loc="lower right")
    return save_figure(fig, outdir, NAME, "degeneracy_vs_action")


def run(context):
    start = time.perf_counter()
    _, rows = measure(context)
    figures = [figure(rows, context.outdir)] if rows.size else []
    return evaluate(rows, figures, time.perf_counter() - start, context.quick)
