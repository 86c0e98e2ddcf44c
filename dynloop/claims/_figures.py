"""Figures of the claims atlas: one panel per cell of the norm × injection table."""


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
