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
from . import norm_injection
from .norm_injection import CELLS, PLACEMENT_NAMES

NAME = "vanishing_action"
TITLE = "4. Degeneracy means a vanishing block action"
DEGENERATE = 1e-6  # 1 − min cos at most this: degenerate
VANISHING = 1e-3  # the largest layer update ‖X_ℓ − X_(ℓ−1)‖ / ‖X_ℓ‖ at most this: the action vanishes


def measure(context):
    """``(cell index, k, 1 − min cos, largest layer update)`` at every converged atlas point.

    Converged by dynloop's classification (cyclic or vanishing); the two measures are those of the
    atlas' 128-loop runs (:func:`~dynloop.claims.norm_injection.horizon_measures`), all loaded
    from claim 1's stores when it has run.
    """
    measures = norm_injection.measure(context)
    grid = measures["grid"]
    converged = np.isin(measures["regimes"], [Regime.CYCLIC.code, Regime.VANISHING.code])
    index = np.nonzero(converged)  # (k, seed, cell, gain, scale)
    rows = np.column_stack([index[2], np.asarray(grid["layers"])[index[0]], 1.0 - measures["min_cos"][index],
                            measures["layer_update"][index]])
    return grid, rows.astype(float).reshape(-1, 4)


def evaluate(rows, figures=(), seconds=0.0, quick=False):
    """Verdict from rows ``(cell, k, 1 − min cos, largest update)`` of converged points."""
    degenerate = rows[:, 2] <= DEGENERATE
    vanishing = rows[:, 3] <= VANISHING
    agree = degenerate == vanishing
    share = float(agree.mean()) if rows.size else 0.0
    forward = int((degenerate & ~vanishing).sum())  # degenerate by cosine, yet the layers still act
    backward = int((vanishing & ~degenerate).sum())
    where = "no point of the atlas converged, so nothing was tested" if rows.size == 0 else (
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
    "Every point of the norm × injection atlas (all cells, block sizes and seeds) that dynloop's sweep "
    "classifies as converged (cyclic or vanishing), measured on the atlas' 128-loop runs, the last loop's "
    "layer states X_ℓ standing in for the fixed points."
)


def _criteria():
    return [
        f"Degenerate: 1 − min_(j≠1) cos(X*_1, X*_j) ≤ {DEGENERATE:g}.",
        f"Vanishing action: every layer's update ‖X_ℓ − X_(ℓ−1)‖/‖X_ℓ‖ ≤ {VANISHING:g} (X_0 the first "
        "layer's input, after the injection).",
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
    ax.set_xlabel("largest layer update ‖X_ℓ − X_(ℓ−1)‖ / ‖X_ℓ‖")
    ax.set_ylabel("1 − min_(j≠1) cos(X*_1, X*_j)  (values below 1e-18 drawn at 1e-18)")
    ax.set_title(
        "Degeneracy against the block's action, converged atlas points\n"
        "(the claim: points lie bottom-left or top-right)"
    )
    ax.legend(fontsize="small", loc="upper left")
    return save_figure(fig, outdir, NAME, "degeneracy_vs_action")


def run(context):
    start = time.perf_counter()
    _, rows = measure(context)
    figures = [figure(rows, context.outdir)] if rows.size else []
    return evaluate(rows, figures, time.perf_counter() - start, context.quick)
