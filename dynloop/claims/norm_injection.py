"""Claim 1: the seed study's norm placement × input injection table, as an atlas.

The study initialised transformer blocks at random, ran 128 loops and judged, partly by cosine,
whether each layer reached a stable fixed point and whether the layers' points coincided. Here
every cell of its table is a phase diagram over ``weight_gain`` × ``residual_scale``, at k = 4 and
k = 12, judged twice: by the study's criterion at its horizon and by dynloop's converged
classification.
"""

import math
import time
from pathlib import Path

import numpy as np

from ..dynamics.regimes import Regime
from ._common import stored
from ._report import ClaimResult, decide

NAME = "norm_injection"
TITLE = "1. Norm placement × input injection"

#: (norm placement, injection), the paper's verdict, and the outcome classes that agree with it
CELLS = (
    ("pre", "concat"),
    ("pre", "none"),
    ("sandwich", "concat"),
    ("sandwich", "none"),
    ("peri_outer", "concat"),
    ("peri_outer", "none"),
)
PAPER = {
    ("pre", "concat"): ("stable, non-degenerate cyclic fixed point", ("cyclic",)),
    ("pre", "none"): ("stable but degenerate: all layers share one point", ("degenerate",)),
    ("sandwich", "concat"): ("stable fixed point", ("cyclic", "degenerate")),
    ("sandwich", "none"): ("no stable fixed point", ("none",)),
    ("peri_outer", "concat"): ("no stable fixed point", ("none",)),
    ("peri_outer", "none"): ("no stable fixed point", ("none",)),
}
PLACEMENT_NAMES = {"pre": "pre-norm", "sandwich": "Huginn sandwich", "peri_outer": "Ouro peri-norm + outer"}

HORIZON = 128  # the study's loops
COS_CONVERGED = 1.0 - 1e-4  # every layer's cos(X_128, X_127) at least this: converged by cosine
COS_DEGENERATE = 0.99  # min over j of cos(X*_1, X*_j) at least this: one shared point
COMMON_STD = 0.02  # the usual initialisation of real models, per weight
WIDTH, TOKENS, HEADS, HIDDEN = 64, 8, 4, 256


def grids(quick):
    """The atlas' grids: block sizes, seeds, weight gains, residual scales, and dynloop's loop budget."""
    if quick:
        return {
            "layers": (4, 12),
            "seeds": (0,),
            "weight_gain": np.geomspace(0.05, 2.0, 5),
            "residual_scale": np.linspace(0.1, 1.5, 4),
            "loops": 1000,
        }
    return {
        "layers": (4, 12),
        "seeds": (0, 1, 2),
        "weight_gain": np.geomspace(0.05, 2.0, 12),
        "residual_scale": np.linspace(0.1, 1.5, 12),
        "loops": 2000,
    }


def block(layers, seed, norm="pre", injection="concat", weight_gain=1.0, residual_scale=1.0):
    """The atlas' block: k = ``layers`` and ``seed``, at one setting of the claims' four knobs."""
    from ..systems.block import BlockSpec

    return BlockSpec(
        width=WIDTH,
        tokens=TOKENS,
        layers=layers,
        heads=HEADS,
        hidden=HIDDEN,
        mixer="transformer",
        activation="gelu",
        norm_kind="rms",
        norm=norm,
        injection=injection,
        weight_gain=weight_gain,
        residual_scale=residual_scale,
        state_init="normal",
        init_scale=1.0,
        seed=seed,
    )


def common_gain():
    """``weight_gain`` that gives every weight the common std 0.02 (the gain multiplies 1/√d)."""
    return COMMON_STD * math.sqrt(WIDTH)


# ----------------------------------------------------------------------------------------- outcomes
def converged_outcome(regime_code):
    """dynloop's class of a regime: ``cyclic``, ``degenerate`` (vanishing), ``none`` or ``undetermined``.

    Undetermined (nothing established within the loop budget) agrees with no verdict of the paper.
    """
    regime = Regime.from_code(int(regime_code))
    if regime in (Regime.CYCLIC, Regime.FIXED_POINT):
        return "cyclic"
    if regime is Regime.VANISHING:
        return "degenerate"
    if regime is Regime.UNDETERMINED:
        return "undetermined"
    return "none"


def cosine_outcome(successive_cos, min_cos):
    """The study's verdict class from cosines at its horizon (NaN, from a blow-up, is ``none``)."""
    if not successive_cos >= COS_CONVERGED:
        return "none"
    return "degenerate" if min_cos >= COS_DEGENERATE else "cyclic"


def horizon_measures(spec, horizon=HORIZON):
    """The study's measures after ``horizon`` loops of ``spec``.

    Returns ``(successive_cos, min_cos, successive_distance, layer_update)``: the smallest over the
    layers of ``cos(X_{H,ℓ}, X_{H−1,ℓ})``, ``min_{j≠1} cos(X_{H,1}, X_{H,j})`` (the study's
    degeneracy, the last loop standing in for the fixed points), the largest
    ``‖X_{H,ℓ} − X_{H−1,ℓ}‖ / ‖X_{H,ℓ}‖``, which the cosines are blind to, and the largest update
    of one layer in the last loop, ``‖X_{H,ℓ} − X_{H,ℓ−1}‖ / ‖X_{H,ℓ}‖`` (``X_{H,0}`` the first
    layer's input); NaN where the run blew up.
    """
    from ..dynamics.simulate import simulate

    run = simulate(spec, horizon, record=("last", 2))
    if run.diverged_at is not None or run.loops_run < horizon:
        return math.nan, math.nan, math.nan, math.nan
    layers = [j + 1 for j, name in enumerate(run.stage_names) if name.startswith("layer")]
    now = run.stage_states[-1, layers].reshape(len(layers), -1)
    before = run.stage_states[-2, layers].reshape(len(layers), -1)
    norms_now, norms_before = np.linalg.norm(now, axis=1), np.linalg.norm(before, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        successive = np.sum(now * before, axis=1) / (norms_now * norms_before)
        to_first = now[1:] @ now[0] / (norms_now[1:] * norms_now[0])
        distance = np.linalg.norm(now - before, axis=1) / norms_now
        inputs = run.stage_states[-1, [j - 1 for j in layers]].reshape(len(layers), -1)
        update = np.linalg.norm(now - inputs, axis=1) / norms_now
    min_cos = float(to_first.min()) if to_first.size else 1.0
    return float(successive.min()), min_cos, float(distance.max()), float(update.max())


# ----------------------------------------------------------------------------------------- running
def _cosine_grid(context, layers, seed, grid):
    """:func:`horizon_measures` over the grid, shape (4, cells, gains, scales), one stored chunk per row."""
    gains, scales = grid["weight_gain"], grid["residual_scale"]
    base = block(layers, seed)
    manifest = {
        "claim": NAME,
        "criterion": f"cosine at {HORIZON} loops",
        "measures": ["successive_cos", "min_cos", "successive_distance", "layer_update"],
        "system": base.to_dict(),
        "cells": [list(c) for c in CELLS],
        "weight_gain": gains.tolist(),
        "residual_scale": scales.tolist(),
        "horizon": HORIZON,
    }

    def row(index):
        c, g = divmod(index, len(gains))
        norm, injection = CELLS[c]
        spec = base.replace(norm=norm, injection=injection, weight_gain=float(gains[g]))
        return {
            "measures": np.array([horizon_measures(spec.replace(residual_scale=float(a))) for a in scales]).T
        }

    rows = stored(context, f"{NAME}/cosine-k{layers}-seed{seed}", manifest, len(CELLS) * len(gains), row)
    return np.stack([r["measures"] for r in rows], axis=1).reshape(4, len(CELLS), len(gains), len(scales))


def _cosine_common(context, layers, seed):
    """:func:`horizon_measures` of every cell at the common initialisation, shape (4, cells), stored."""
    cells = [block(layers, seed, norm, injection, common_gain(), 1.0) for norm, injection in CELLS]
    manifest = {"claim": NAME, "criterion": f"cosine at {HORIZON} loops",
                "common": [spec.to_dict() for spec in cells]}
    rows = stored(context, f"{NAME}/cosine-k{layers}-seed{seed}-common", manifest, 1,
                  lambda _: {"measures": np.array([horizon_measures(spec) for spec in cells]).T})
    return rows[0]["measures"]


def _converged_grid(context, layers, seed, grid, gains=None, scales=None):
    """dynloop's phase diagram over norm × injection × weight_gain × residual_scale."""
    from ..sweep.engine import sweep

    gains = grid["weight_gain"] if gains is None else gains
    scales = grid["residual_scale"] if scales is None else scales
    axes = {
        "norm": [c for c in dict.fromkeys(n for n, _ in CELLS)],
        "injection": [i for i in dict.fromkeys(i for _, i in CELLS)],
        "weight_gain": np.asarray(gains, dtype=float),
        "residual_scale": np.asarray(scales, dtype=float),
    }
    tag = "" if gains is grid["weight_gain"] else "-common"
    return sweep(
        block(layers, seed),
        axes,
        loops=grid["loops"],
        lyapunov=True,
        progress=False,
        store=context.store(f"{NAME}/converged-k{layers}-seed{seed}{tag}"),
    )


def diagrams(context):
    """The atlas' grids and its converged phase diagrams, ``{(k, seed): PhaseDiagram}`` (from the stores)."""
    grid = grids(context.quick)
    return grid, {
        (layers, seed): _converged_grid(context, layers, seed, grid)
        for layers in grid["layers"]
        for seed in grid["seeds"]
    }


def _cell_slice(diagram, cell):
    norm, injection = cell
    return diagram.select(norm=norm, injection=injection)


def measure(context):
    """Run (or load) every grid of the atlas; returns the arrays :func:`evaluate` takes."""
    grid, converged = diagrams(context)
    ks, seeds = grid["layers"], grid["seeds"]
    shape = (len(ks), len(seeds), len(CELLS), len(grid["weight_gain"]), len(grid["residual_scale"]))
    regimes = np.empty(shape, dtype=np.int8)
    rates, cos_measures = np.empty(shape), np.empty((4,) + shape)
    common_regimes = np.empty(shape[:3], dtype=np.int8)
    common_measures = np.empty((4,) + shape[:3])
    gain = common_gain()
    for a, layers in enumerate(ks):
        for b, seed in enumerate(seeds):
            diagram = converged[layers, seed]
            common = _converged_grid(context, layers, seed, grid, gains=[gain], scales=[1.0])
            for c, cell in enumerate(CELLS):
                part = _cell_slice(diagram, cell)
                regimes[a, b, c] = part.regimes
                rates[a, b, c] = part.diagnostics["convergence_rate"]
                common_regimes[a, b, c] = _cell_slice(common, cell).regimes.ravel()[0]
            common_measures[:, a, b] = _cosine_common(context, layers, seed)
            cos_measures[:, a, b] = _cosine_grid(context, layers, seed, grid)
            context.tick()
    return {
        "grid": grid,
        "regimes": regimes,
        "convergence_rate": rates,
        "successive_cos": cos_measures[0],
        "min_cos": cos_measures[1],
        "successive_distance": cos_measures[2],
        "layer_update": cos_measures[3],
        "common_regimes": common_regimes,
        "common_successive_cos": common_measures[0],
        "common_min_cos": common_measures[1],
    }


# ----------------------------------------------------------------------------------------- verdicts
def outcomes(measures):
    """Outcome classes under both criteria, arrays of strings shaped like ``measures['regimes']``."""
    converged = np.vectorize(converged_outcome, otypes=[object])(measures["regimes"])
    cosine = np.vectorize(cosine_outcome, otypes=[object])(measures["successive_cos"], measures["min_cos"])
    return converged, cosine


def agrees(outcome, cell):
    """Boolean array: where an outcome class array agrees with the paper's verdict for ``cell``."""
    return np.isin(outcome.astype(str), PAPER[cell][1])


def evaluate(measures, figures=(), seconds=0.0, quick=False):
    """The claim's :class:`ClaimResult` from the arrays of :func:`measure` (or synthetic ones)."""
    grid = measures["grid"]
    converged, cosine = outcomes(measures)
    rows, held = [], []
    holding_cells = []
    for c, cell in enumerate(CELLS):
        verdict_words = PAPER[cell][0]
        for a, layers in enumerate(grid["layers"]):
            share_converged = float(agrees(converged[a, :, c], cell).mean())
            share_cosine = float(agrees(cosine[a, :, c], cell).mean())
            common_converged = [converged_outcome(code) for code in measures["common_regimes"][a, :, c]]
            common_cosine = [
                cosine_outcome(s, m)
                for s, m in zip(
                    measures["common_successive_cos"][a, :, c], measures["common_min_cos"][a, :, c]
                )
            ]
            common_regime = ", ".join(
                sorted({Regime.from_code(int(code)).value for code in measures["common_regimes"][a, :, c]})
            )
            common_ok = sum(o in PAPER[cell][1] for o in common_converged)
            common_cos_ok = sum(o in PAPER[cell][1] for o in common_cosine)
            disagree = float((agrees(converged[a, :, c], cell) != agrees(cosine[a, :, c], cell)).mean())
            undetermined = float((converged[a, :, c] == "undetermined").mean())
            held.append(share_converged)
            rows.append(
                f"| {PLACEMENT_NAMES[cell[0]]} | {'with' if cell[1] != 'none' else 'without'} | {layers} "
                f"| {verdict_words} | {100 * share_cosine:.0f} % | {100 * share_converged:.0f} % "
                f"| {100 * undetermined:.0f} % | {100 * disagree:.0f} % "
                f"| {common_regime}: {common_ok}/{len(common_converged)} "
                f"(cosine {common_cos_ok}/{len(common_cosine)}) |"
            )
            if share_converged >= 0.5:
                holding_cells.append(
                    f"{PLACEMENT_NAMES[cell[0]]} {'with' if cell[1] != 'none' else 'without'} "
                    f"injection at k = {layers} ({100 * share_converged:.0f} %)"
                )
    share = float(np.mean(held))
    verdict = decide(share)
    table = "\n".join(
        [
            "| norm placement | injection | k | the paper's verdict "
            "| holds at the study's horizon, by cosine | holds, converged | undetermined in the budget "
            "| the two verdicts differ | at the common initialisation (converged; seeds) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        + rows
    )
    where = (
        "the paper's verdict holds on at least half of the atlas of: " + "; ".join(holding_cells)
        if holding_cells
        else "in no cell does the paper's verdict hold on half of the atlas or more"
    )
    n_points = measures["regimes"][0, :, 0].size
    gains, scales = grid["weight_gain"], grid["residual_scale"]
    setup = (
        f"Transformer blocks: d = {WIDTH}, T = {TOKENS}, {HEADS} heads, MLP hidden {HIDDEN}, exact GELU, "
        f"RMSNorm, causal attention; concat injection for 'with', none for 'without'; start state "
        f"standard normal; k = {', '.join(map(str, grid['layers']))}; seeds {list(grid['seeds'])}. "
        f"Each cell is a grid of {len(gains)} weight gains ({gains[0]:.3g} to {gains[-1]:.3g}, "
        f"log-spaced) × {len(scales)} residual scales ({scales[0]:.3g} to {scales[-1]:.3g}): "
        f"{n_points} points per cell and k. The common initialisation is std {COMMON_STD} per weight, "
        f"weight_gain = {COMMON_STD}·√d = {common_gain():.3g}, residual scale 1."
        + (" Quick grids." if quick else "")
    )
    criteria = [
        f"At the study's horizon ({HORIZON} loops, by cosine): converged when every layer's "
        f"cos(X_{HORIZON}, X_{HORIZON - 1}) ≥ 1 − 10⁻⁴; degenerate when "
        f"min_(j≠1) cos(X*_1, X*_j) ≥ {COS_DEGENERATE} "
        "with the last loop's layer states as X*; 'no stable fixed point' otherwise.",
        f"Converged (dynloop): `sweep` with a budget of {grid['loops']} loops and Lyapunov exponents; "
        "cyclic = a stable cyclic fixed point (non-degenerate), vanishing = degenerate, every other "
        "regime (drifting, periodic, quasi-periodic, chaotic, divergent) = no stable "
        "fixed point; undetermined (nothing established in the budget) agrees with no verdict.",
        "A cell's share is the fraction of its grid points and seeds where the paper's verdict holds by "
        "the converged criterion; the claim's share is the mean over cells and block sizes.",
    ]
    numbers = {"share_converged": share}
    return ClaimResult(
        NAME,
        TITLE,
        "Random initialisation, by norm placement and input injection (the study's "
        "table): pre-norm with injection reaches a stable, non-degenerate cyclic fixed point, "
        "without injection a stable but degenerate one; Huginn's sandwich reaches a stable "
        "fixed point with injection and none without; Ouro's peri-norm + outer norm reaches no "
        "stable fixed point either way.",
        setup,
        criteria,
        verdict,
        where,
        share,
        table=table,
        figures=list(figures),
        numbers=numbers,
        seconds=seconds,
    )


def run(context):
    """Measure the atlas (resuming from its stores), draw its figures and judge the claim."""
    start = time.perf_counter()
    measures = measure(context)
    drawn = draw_figures(measures, context.outdir)
    return evaluate(measures, drawn, time.perf_counter() - start, context.quick)


# ----------------------------------------------------------------------------------------- figures
def draw_figures(measures, outdir, name=NAME):
    """Draw claim 1's figures for every block size; returns their paths relative to ``outdir``."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, ListedColormap, BoundaryNorm
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    from ..plotting import _regime_handles, _regime_style
    from ._figures import _AGREEMENT, _common_marker, _edges, _overlay, _panels

    grid = measures["grid"]
    gains, scales = grid["weight_gain"], grid["residual_scale"]
    x_edges, y_edges = _edges(gains, log=True), _edges(scales, log=False)
    converged, cosine = outcomes(measures)
    folder = Path(outdir) / name
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    holds_patch = Patch(
        facecolor="none",
        edgecolor="0.15",
        hatch="///",
        label="the paper's verdict holds\n(converged, most seeds)",
    )
    star = Line2D(
        [],
        [],
        marker="*",
        markersize=11,
        color="white",
        markeredgecolor="black",
        linestyle="none",
        label="common initialisation\n(std 0.02, residual 1)",
    )
    cmap, norm = _regime_style()
    for a, layers in enumerate(grid["layers"]):
        holds = {cell: agrees(converged[a, :, c], cell).mean(axis=0) >= 0.5 for c, cell in enumerate(CELLS)}
        seeds = len(grid["seeds"])
        kinds = [
            (
                "regimes",
                f"k = {layers}: regime (seed {grid['seeds'][0]}), dynloop's converged classification",
            ),
            (
                "convergence_rate",
                f"k = {layers}: convergence rate per loop (seed {grid['seeds'][0]}; blank: no fixed point)",
            ),
            (
                "degeneracy",
                f"k = {layers}: degeneracy 1 − min cos(X*_1, X*_j) at 128 loops (seed "
                f"{grid['seeds'][0]}; small: one shared point)",
            ),
            (
                "criteria",
                f"k = {layers}: where the paper's verdict holds, by criterion (majority of {seeds} "
                f"seed{'s' if seeds > 1 else ''})",
            ),
        ]
        for kind, title in kinds:
            fig, where = _panels(CELLS, PLACEMENT_NAMES, title)
            mesh = None
            for c, cell in enumerate(CELLS):
                ax = where[cell]
                if kind == "regimes":
                    mesh = ax.pcolormesh(
                        x_edges,
                        y_edges,
                        measures["regimes"][a, 0, c].T,
                        cmap=cmap,
                        norm=norm,
                        shading="flat",
                        rasterized=True,
                    )
                elif kind == "convergence_rate":
                    values = np.ma.masked_invalid(measures["convergence_rate"][a, 0, c].T)
                    mesh = ax.pcolormesh(
                        x_edges,
                        y_edges,
                        values,
                        cmap="viridis",
                        vmin=0.0,
                        vmax=1.0,
                        shading="flat",
                        rasterized=True,
                    )
                elif kind == "degeneracy":
                    values = np.clip(1.0 - measures["min_cos"][a, 0, c].T, 1e-12, 2.0)
                    mesh = ax.pcolormesh(
                        x_edges,
                        y_edges,
                        np.ma.masked_invalid(values),
                        cmap="magma",
                        norm=LogNorm(1e-12, 2.0),
                        shading="flat",
                        rasterized=True,
                    )
                else:
                    by_cosine = agrees(cosine[a, :, c], cell).mean(axis=0) >= 0.5
                    by_converged = holds[cell]
                    category = np.select([by_cosine & by_converged, by_cosine, by_converged], [0, 1, 2], 3)
                    colours = ListedColormap([colour for _, colour in _AGREEMENT])
                    mesh = ax.pcolormesh(
                        x_edges,
                        y_edges,
                        category.T,
                        cmap=colours,
                        norm=BoundaryNorm(np.arange(5) - 0.5, 4),
                        shading="flat",
                        rasterized=True,
                    )
                if kind != "criteria":
                    _overlay(ax, x_edges, y_edges, holds[cell])
                _common_marker(ax, common_gain())
                ax.set_xscale("log")
                ax.set_xlim(x_edges[0], x_edges[-1])
                ax.set_ylim(y_edges[0], y_edges[-1])
                ax.text(
                    0.02,
                    0.02,
                    "paper: " + PAPER[cell][0],
                    transform=ax.transAxes,
                    fontsize="x-small",
                    va="bottom",
                    bbox=dict(facecolor="white", alpha=0.8, lw=0),
                )
            axes = list(where.values())
            if kind in ("regimes", "criteria"):
                if kind == "regimes":
                    handles, title = _regime_handles(measures["regimes"][a, 0]) + [holds_patch], "regime"
                else:
                    handles = [Patch(color=colour, label=label) for label, colour in _AGREEMENT]
                    title = "the paper's verdict holds by"
                fig.legend(handles=handles + [star], loc="outside right center", title=title, frameon=False,
                           fontsize="small")
            else:
                label = (
                    "convergence rate (distance shrinks by this factor per loop)"
                    if kind == "convergence_rate"
                    else "1 − min_(j≠1) cos(X*_1, X*_j)"
                )
                fig.colorbar(mesh, ax=axes, label=label, shrink=0.9)
                fig.legend(
                    handles=[holds_patch, star],
                    loc="outside lower center",
                    ncols=2,
                    frameon=False,
                    fontsize="small",
                )
            path = folder / f"k{layers}_{kind}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(str(path.relative_to(outdir)))
    return written
