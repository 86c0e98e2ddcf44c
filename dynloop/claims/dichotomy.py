"""Claim 9: periodic and quasi-periodic loop orbits, where the vanishing/cyclic dichotomy is not exhaustive.

The dichotomy says what a block that converges does; a block can also settle on a periodic or
quasi-periodic loop orbit, or a chaotic one. This claim measures how much of the norm × injection
atlas (claim 1's sweeps, loaded from their stores) does so, and where.
"""

import time

import numpy as np

from ..dynamics.regimes import Regime
from ._common import save_figure
from ._report import ClaimResult, decide
from .norm_injection import CELLS, PLACEMENT_NAMES, diagrams

NAME = "dichotomy"
TITLE = "9. Periodic and quasi-periodic loop orbits"
BEYOND = (Regime.PERIODIC, Regime.QUASIPERIODIC, Regime.CHAOTIC)


def measure(context):
    """Regime codes of the atlas, shape ``(k, seeds, cells, gains, scales)``."""
    grid, found = diagrams(context)
    codes = np.stack(
        [
            np.stack(
                [
                    np.stack([found[layers, seed].select(norm=n, injection=i).regimes for n, i in CELLS])
                    for seed in grid["seeds"]
                ]
            )
            for layers in grid["layers"]
        ]
    )
    return grid, codes


def evaluate(grid, codes, figures=(), seconds=0.0, quick=False):
    beyond = np.isin(codes, [r.code for r in BEYOND])
    share = 1.0 - float(beyond.mean())
    places = []
    lines = [
        "| cell | k | vanishing | cyclic | periodic | quasi-periodic | chaotic | other (drifting, divergent, "
        "undetermined) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c, (norm, injection) in enumerate(CELLS):
        for a, layers in enumerate(grid["layers"]):
            cell = codes[a, :, c]
            fractions = [
                float(np.isin(cell, [r.code]).mean())
                for r in (
                    Regime.VANISHING,
                    Regime.CYCLIC,
                    Regime.PERIODIC,
                    Regime.QUASIPERIODIC,
                    Regime.CHAOTIC,
                )
            ]
            other = 1.0 - sum(fractions)
            lines.append(
                f"| {PLACEMENT_NAMES[norm]}, {injection} | {layers} | "
                + " | ".join(f"{100 * f:.0f} %" for f in fractions + [other])
                + " |"
            )
            if sum(fractions[2:]) > 0:
                places.append(
                    f"{PLACEMENT_NAMES[norm]} {injection} at k = {layers} ({100 * sum(fractions[2:]):.1f} %)"
                )
    where = (
        (
            f"{100 * (1 - share):.1f} % of the atlas settles on periodic, quasi-periodic or chaotic "
            "loop orbits: "
            + "; ".join(places)
        )
        if places
        else "no point of the atlas has a periodic, quasi-periodic or chaotic orbit"
    )
    return ClaimResult(
        NAME,
        TITLE,
        "A looped block that settles either vanishes or traces a cyclic fixed point; where does "
        "it instead settle on a periodic or quasi-periodic loop orbit (or a chaotic one), and how "
        "much of the "
        "atlas is that?",
        "Every point of the norm × injection atlas (claim 1's sweeps with Lyapunov exponents: all "
        "cells, block "
        "sizes and seeds).",
        [
            "Regimes as `dynloop.sweep` decides them: periodic (period 2 up to the window's limit), "
            "quasi-periodic "
            "(bounded, no period, largest Lyapunov exponent zero within its error), chaotic "
            "(positive beyond its "
            "error).",
            "The dichotomy holds at a point unless its regime is one of those three.",
        ],
        decide(share),
        where,
        share,
        table="\n".join(lines),
        figures=list(figures),
        numbers={"beyond_share": 1 - share},
        seconds=seconds,
    )


def figure(grid, codes, outdir):
    import matplotlib.pyplot as plt

    from ..plotting import REGIME_COLOURS

    labels = [f"{PLACEMENT_NAMES[n]}, {i}, k = {k}" for n, i in CELLS for k in grid["layers"]]
    order = [(c, a) for c in range(len(CELLS)) for a in range(len(grid["layers"]))]
    fig, ax = plt.subplots(figsize=(9, 0.8 + 0.38 * len(order)), layout="constrained")
    left = np.zeros(len(order))
    for regime in Regime:
        widths = np.array([100 * np.mean(codes[a, :, c] == regime.code) for c, a in order])
        if widths.any():
            ax.barh(
                labels,
                widths,
                left=left,
                color=REGIME_COLOURS[regime.value],
                label=regime.value,
                edgecolor="0.3",
                linewidth=0.3,
            )
            left += widths
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the atlas' points (%)")
    ax.set_title(
        "Regimes over each cell's atlas (all seeds): periodic, quasi-periodic and chaotic orbits "
        "are beyond the dichotomy",
        fontsize="medium",
    )
    fig.legend(loc="outside right center", title="regime", frameon=False, fontsize="small")
    return save_figure(fig, outdir, NAME, "regime_shares")


def run(context):
    start = time.perf_counter()
    grid, codes = measure(context)
    return evaluate(
        grid, codes, [figure(grid, codes, context.outdir)], time.perf_counter() - start, context.quick
    )
