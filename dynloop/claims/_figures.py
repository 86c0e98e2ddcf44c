"""Figures of the claims atlas: one panel per cell of the norm × injection table."""

from pathlib import Path

import numpy as np

#: colours of where the criteria agree with the paper (claim 1's disagreement figure)
_AGREEMENT = (
    ("both criteria", "#2a9d8f"),
    ("only cosine at 128 loops", "#e9c46a"),
    ("only converged", "#8ab17d"),
    ("neither", "#e76f51"),
)


def _edges(values, log):
    """Cell edges half-way between neighbours (geometrically on a log axis)."""
    base = np.log(values) if log else np.asarray(values, dtype=float)
    if base.size == 1:
        middle, first, last = np.array([]), base[0] - 0.1, base[0] + 0.1
    else:
        middle = (base[1:] + base[:-1]) / 2
        first, last = 2 * base[0] - middle[0], 2 * base[-1] - middle[-1]
    edges = np.concatenate([[first], middle, [last]])
    return np.exp(edges) if log else edges


def _panels(cells, names, title):
    import matplotlib.pyplot as plt

    placements = list(dict.fromkeys(n for n, _ in cells))
    injections = list(dict.fromkeys(i for _, i in cells))
    fig, axes = plt.subplots(
        len(injections),
        len(placements),
        figsize=(4.0 * len(placements) + 2.2, 3.3 * len(injections)),
        sharex=True,
        sharey=True,
        layout="constrained",
        squeeze=False,
    )
    where = {}
    for norm, injection in cells:
        row, col = injections.index(injection), placements.index(norm)
        ax = axes[row, col]
        ax.set_title(
            f"{names[norm]}, {'with' if injection != 'none' else 'without'} injection", fontsize="medium"
        )
        if row == len(injections) - 1:
            ax.set_xlabel("weight_gain (× 1/√fan_in std)")
        if col == 0:
            ax.set_ylabel("residual_scale")
        where[(norm, injection)] = ax
    fig.suptitle(title, fontsize="medium")
    return fig, where


def _overlay(ax, x_edges, y_edges, mask):
    """Hatch the cells where ``mask`` (gains × scales) is true: the region where the verdict holds."""
    import matplotlib.colors as mcolors

    shown = np.ma.masked_where(~mask.T, np.ones(mask.T.shape))
    ax.pcolor(
        x_edges,
        y_edges,
        shown,
        cmap=mcolors.ListedColormap(["none"]),
        hatch="///",
        edgecolor="0.15",
        linewidth=0.0,
        shading="flat",
    )


def _common_marker(ax, gain):
    ax.plot(
        [gain], [1.0], marker="*", markersize=13, color="white", markeredgecolor="black", linestyle="none"
    )


def atlas_figures(measures, outdir, name):
    """Draw claim 1's figures for every block size; returns their paths relative to ``outdir``."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, ListedColormap, BoundaryNorm
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    from ..plotting import _regime_handles, _regime_style
    from .norm_injection import CELLS, PAPER, PLACEMENT_NAMES, agrees, common_gain, outcomes

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
            if kind == "regimes":
                codes = measures["regimes"][a, 0]
                handles = _regime_handles(codes) + [holds_patch, star]
                fig.legend(
                    handles=handles,
                    loc="outside right center",
                    title="regime",
                    frameon=False,
                    fontsize="small",
                )
            elif kind == "criteria":
                handles = [Patch(color=colour, label=label) for label, colour in _AGREEMENT] + [star]
                fig.legend(
                    handles=handles,
                    loc="outside right center",
                    title="the paper's verdict holds by",
                    frameon=False,
                    fontsize="small",
                )
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
