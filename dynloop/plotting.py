"""Matplotlib figures for dynloop's result objects (imported lazily by their ``plot`` methods)."""

__all__ = ["plot_trajectory", "plot_classification", "plot_phase_diagram", "plot_orbit_diagram",
           "plot_analysis", "REGIME_COLOURS"]

import math

import numpy as np

from .analysis.stages import relative_depth
from .dynamics.regimes import Regime


class _ByRegime(dict):
    """A dict keyed by regime values (``"cyclic"``, ...) that also accepts ``Regime`` members as keys."""

    @staticmethod
    def _key(key):
        return key.value if isinstance(key, Regime) else key

    def __getitem__(self, key):
        return super().__getitem__(self._key(key))

    def __contains__(self, key):
        return super().__contains__(self._key(key))

    def get(self, key, default=None):
        return super().get(self._key(key), default)


#: One fixed colour per regime, the same in every figure (Okabe–Ito, colour-blind safe, plus greys):
#: converged regimes in blues and green, oscillating ones in orange, yellow and purple, unbounded ones
#: in vermillion and dark grey, undetermined in light grey. Keys are regime values; ``Regime``
#: members work too.
REGIME_COLOURS = _ByRegime({
    "vanishing": "#56B4E9",      # sky blue
    "cyclic": "#0072B2",         # blue
    "fixed_point": "#009E73",    # bluish green
    "periodic": "#E69F00",       # orange
    "quasiperiodic": "#F0E442",  # yellow
    "chaotic": "#CC79A7",        # reddish purple
    "drifting": "#D55E00",       # vermillion
    "divergent": "#3C3C3C",      # dark grey
    "undetermined": "#C8C8C8",   # light grey
})


def _figure(ax, ncols, width=11.0, height=4.0):
    if ax is not None:
        axes = np.atleast_1d(ax)
        return axes[0].figure, axes
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height), constrained_layout=True)
    return fig, np.atleast_1d(axes)


def _finish(fig, path):
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_trajectory(trajectory, path=None, ax=None):
    """Per-stage successive differences (log scale) and state norms against loops.

    Parameters
    ----------
    trajectory : Trajectory
    path : str or Path, optional
        Where to write the figure.
    ax : pair of Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import dynloop
    >>> from dynloop.plotting import plot_trajectory
    >>> fig = plot_trajectory(dynloop.simulate(dynloop.maps.logistic(r=3.2), 50))
    """
    import matplotlib.pyplot as plt

    fig, axes = _figure(ax, 2)
    loops = np.arange(trajectory.stage_norms.shape[0])
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(1, len(trajectory.stage_names))))
    for j, (name, colour) in enumerate(zip(trajectory.stage_names, colours), start=1):
        steps = trajectory.stage_steps[:, j]
        positive = steps > 0
        axes[0].semilogy(loops[positive], steps[positive], color=colour, label=name, lw=1.2)
        axes[1].plot(loops, trajectory.stage_norms[:, j], color=colour, label=name, lw=1.2)
    axes[0].set(xlabel="loop t", ylabel=r"$\|h_{t,j} - h_{t-1,j}\|$", title="successive difference per stage")
    axes[1].set(xlabel="loop t", ylabel=r"$\|h_{t,j}\|$", title="state norm per stage")
    if trajectory.diverged:
        for axis in axes[:2]:
            axis.axvline(trajectory.diverged_at, color="crimson", ls="--", lw=1, label="diverged")
    axes[1].legend(fontsize="small", ncol=max(1, len(trajectory.stage_names) // 8), loc="best")
    fig.suptitle(trajectory.system_name, fontsize="medium")
    return _finish(fig, path)


def _distances_to_stage_points(classification, run):
    """Loops, distances and ``1 - cos`` of every stage state to its stage point.

    With a converged orbit and ``run`` (the run from the start state, which
    :meth:`Classification.plot <dynloop.Classification.plot>` passes), the run is compared, phase
    by phase, with the refined stage points; otherwise the examined window is compared with its
    last loop.
    """
    period = classification.period or 1
    n_stages = len(classification.stage_names)
    points = classification.stage_fixed_points
    if points is not None and classification.period and run is not None:
        flat = run.stage_states.reshape(run.loops_run, n_stages + 1, -1)[:, 1:]
        targets = points.reshape(period, n_stages, -1)
        last_phase = int(np.argmin(np.linalg.norm(targets[:, -1] - flat[-1, -1], axis=-1)))
        phase = (last_phase - (run.loops_run - 1 - np.arange(run.loops_run))) % period
        target = targets[phase]
        label, converged = "loop t", True
    else:
        states = classification.window_states
        finite = np.all(np.isfinite(states.reshape(states.shape[0], -1)), axis=1)
        states = states[finite] if finite.any() else np.zeros((1,) + states.shape[1:])
        flat = states.reshape(states.shape[0], n_stages + 1, -1)[:, 1:]
        target = flat[-period:][(np.arange(flat.shape[0]) - flat.shape[0]) % period]
        label, converged = "loop in the last examined window", False
    distances = np.linalg.norm(flat - target, axis=-1)
    cosines = np.sum(flat * target, axis=-1) / (np.linalg.norm(flat, axis=-1)
                                                * np.linalg.norm(target, axis=-1) + 1e-300)
    return np.arange(flat.shape[0]), distances, np.maximum(1.0 - cosines, 1e-17), label, converged


def plot_classification(classification, path=None, *, run=None):
    """Distances and cosines to the per-stage fixed points against loops, and the orbit in 2-D.

    The first two panels show, for every stage ``j``, the distance ``|h_{t,j} - Y_j|`` and
    ``1 - cos(h_{t,j}, Y_j)`` to its point ``Y_j`` against the loop ``t`` of ``run``, the
    :class:`~dynloop.Trajectory` from the start state (for a periodic orbit, to the point of the
    same phase); :meth:`Classification.plot <dynloop.Classification.plot>` runs it and passes it.
    Without a converged orbit there are no stage points, and without ``run`` nothing to compare
    with them: they show the last window examined against its last loop, and say so in their
    titles. The third panel is a 2-D PCA of every stage state
    of one token over that window (for a one-variable map, the return map ``x_t`` against
    ``x_{t+1}``).

    Examples
    --------
    >>> import dynloop
    >>> from dynloop.plotting import plot_classification
    >>> result = dynloop.classify(dynloop.maps.logistic(r=3.5))
    >>> fig = plot_classification(result, run=dynloop.simulate(result.system, 80))
    """
    import matplotlib.pyplot as plt

    loops, distances, one_minus_cos, label, converged = _distances_to_stage_points(classification, run)
    states = classification.window_states            # (W, S + 1, *state_shape)
    finite = np.all(np.isfinite(states.reshape(states.shape[0], -1)), axis=1)
    states = states[finite] if finite.any() else np.zeros((1,) + states.shape[1:])
    n_loops, n_rows = states.shape[0], states.shape[1]
    period = classification.period or 1
    fig, axes = _figure(None, 3, width=14.0)
    names = classification.stage_names
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(1, len(names))))
    for j, (name, colour) in enumerate(zip(names, colours)):
        positive = distances[:, j] > 0
        axes[0].semilogy(loops[positive], distances[positive, j], color=colour, label=name, lw=1.1)
        axes[1].semilogy(loops, one_minus_cos[:, j], color=colour, label=name, lw=1.1)
    # without a converged orbit there are no stage points: the reference is the window's last loop,
    # and the distances fall to 0 at its end whatever the regime, so the titles say what they show
    target = "the stage points" if converged else "the window's last loop"
    axes[0].set(xlabel=label, ylabel=r"$\|h_{t,j} - Y_j\|$", title=f"distance to {target}")
    axes[1].set(xlabel=label, ylabel=r"$1 - \cos(h_{t,j}, Y_j)$", title=f"cosine to {target}")
    if len(names) <= 12:
        axes[0].legend(fontsize="small")
    token = states.reshape(n_loops, n_rows, states.shape[2] if states.ndim > 3 else 1, -1)[:, 1:, 0, :]
    points = token.reshape(-1, token.shape[-1])
    if points.shape[1] == 1:
        axes[2].plot(points[:-1, 0], points[1:, 0], ".", ms=3, color="k")
        axes[2].set(xlabel="$x_t$", ylabel="$x_{t+1}$", title="return map")
    else:
        centred = points - points.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projected = (centred @ vt[:2].T if vt.shape[0] > 1
                     else np.column_stack([centred @ vt[0], 0 * centred[:, 0]]))
        last = projected.reshape(n_loops, -1, 2)
        axes[2].plot(projected[:, 0], projected[:, 1], ".", ms=2, color="0.6")
        ring = np.concatenate([last[-period:].reshape(-1, 2), last[-period:].reshape(-1, 2)[:1]])
        axes[2].plot(ring[:, 0], ring[:, 1], "-o", color="crimson", ms=4, lw=1, label="last loop")
        axes[2].set(xlabel="PC 1", ylabel="PC 2", title="orbit of token 0 (all stages), PCA")
        axes[2].legend(fontsize="small")
    regime = classification.regime.value
    if classification.period and classification.period > 1:
        regime += f", period {classification.period}"
    fig.suptitle(f"{classification.system_name}: {regime}", fontsize="medium")
    return _finish(fig, path)


# ------------------------------------------------------------------------------ phase and orbit diagrams
#: Facet panels a phase-diagram figure holds at most (4 × 4).
MAX_PANELS = 16


def _regime_style():
    """Colour map and norm that give every regime code its fixed colour."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    # colour i is code i's (Regime.code, not the enum position); a code no regime declares gets none
    codes = set(Regime.codes())
    colours = [REGIME_COLOURS[Regime.from_code(code).value] if code in codes else "none"
               for code in range(max(codes) + 1)]
    bounds = np.arange(len(colours) + 1) - 0.5
    return ListedColormap(colours, name="dynloop_regimes"), BoundaryNorm(bounds, len(colours))


def _regime_handles(codes):
    """Legend patches, in ``Regime`` declaration order, for the regime codes present."""
    from matplotlib.patches import Patch

    present = {int(c) for c in np.unique(codes)}
    return [Patch(facecolor=REGIME_COLOURS[regime.value], edgecolor="0.35", linewidth=0.5, label=regime.value)
            for regime in Regime if regime.code in present]


def _regime_legend(fig, axes, handles, own_figure):
    if own_figure:
        return fig.legend(handles=handles, loc="outside right center", title="regime", frameon=False)
    return axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                           title="regime", frameon=False)


def _format(value):
    return str(value) if isinstance(value, str) else f"{value:.4g}"


def _axis_layout(name, values):
    """How one diagram axis is drawn: sort order, cell centres and edges, scale, tick labels.

    Numeric values are sorted; cell edges lie half-way between neighbours (geometrically, on a log
    axis, for positive log-spaced values spanning more than two decades), so uneven spacing is
    drawn to scale. Categorical values sit at 0, 1, 2, ... with their names as tick labels.
    """
    values = np.asarray(values)
    n = values.size
    if values.dtype.kind in "US":
        return {"name": name, "order": np.arange(n), "centres": np.arange(n, dtype=float),
                "edges": np.arange(n + 1) - 0.5, "scale": "linear", "labels": [str(v) for v in values]}
    order = np.argsort(values, kind="stable")
    v = values[order].astype(float)
    scale = "linear"
    if n == 1:
        half = 0.5 if v[0] == 0 else 0.05 * abs(v[0])
        edges = np.array([v[0] - half, v[0] + half])
    else:
        if n >= 3 and v[0] > 0 and v[-1] / v[0] > 100:
            steps = np.diff(np.log(v))
            if np.allclose(steps, steps.mean(), rtol=1e-3):
                scale = "log"
        base = np.log(v) if scale == "log" else v
        middle = (base[1:] + base[:-1]) / 2
        edges = np.concatenate([[2 * base[0] - middle[0]], middle, [2 * base[-1] - middle[-1]]])
        if scale == "log":
            edges = np.exp(edges)
    return {"name": name, "order": order, "centres": v, "edges": edges, "scale": scale, "labels": None}


def _style_axis(ax, layout, which, label=True):
    getattr(ax, f"set_{which}scale")(layout["scale"])
    limits = (layout["edges"][0], layout["edges"][-1])
    if which == "y" and layout["labels"] is not None:
        limits = limits[::-1]  # categories read top-down, first on top
    getattr(ax, f"set_{which}lim")(*limits)
    if layout["labels"] is not None:
        rotate = which == "x" and len(layout["labels"]) > 2 and max(len(t) for t in layout["labels"]) > 5
        extra = {"rotation": 30, "ha": "right"} if rotate else {}
        getattr(ax, f"set_{which}ticks")(layout["centres"], layout["labels"], **extra)
    if label:
        getattr(ax, f"set_{which}label")(layout["name"])


def _runs(codes):
    """(start, stop, code) of the runs of equal consecutive codes."""
    codes = np.asarray(codes)
    cuts = np.concatenate([[0], np.nonzero(np.diff(codes))[0] + 1, [codes.size]])
    return [(int(a), int(b), int(codes[a])) for a, b in zip(cuts[:-1], cuts[1:])]


def _regime_bands(ax, layout, codes, alpha):
    """Vertical bands coloured by regime behind a plot (codes in the axis' original order)."""
    ordered = np.asarray(codes)[layout["order"]]
    for start, stop, code in _runs(ordered):
        ax.axvspan(layout["edges"][start], layout["edges"][stop],
                   color=REGIME_COLOURS[Regime.from_code(code).value], alpha=alpha, lw=0, zorder=0)


def _auto_log(values, log, field):
    """Whether to draw ``values`` on a log scale: asked for, or positive spanning > 2 decades."""
    finite = values[np.isfinite(values)]
    if log is None:
        return bool(finite.size and finite.min() > 0 and finite.max() / finite.min() > 100)
    if log and not np.any(finite > 0):
        raise ValueError(f"log=True needs positive values, but {field!r} has none")
    return bool(log)


def _diagnostic_style(values, field, log):
    """Colour map and norm of a diagnostic: viridis (log or linear), or a diverging map centred at 0."""
    import matplotlib
    from matplotlib import colors

    finite = values[np.isfinite(values)]
    use_log = _auto_log(values, log, field)
    if use_log:
        positive = finite[finite > 0]
        low, high = float(positive.min()), float(positive.max())
        norm = colors.LogNorm(low, high if high > low else low * 10.0)
        cmap = "viridis"
    elif finite.size and finite.min() < 0 < finite.max():
        bound = float(np.abs(finite).max())
        norm, cmap = colors.Normalize(-bound, bound), "coolwarm"
    else:
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if high == low:
            low, high = low - 0.5, high + 0.5
        norm, cmap = colors.Normalize(low, high), "viridis"
    cmap = matplotlib.colormaps[cmap].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    return {"cmap": cmap, "norm": norm}, use_log


#: Why a diagnostic can have no finite value at all (where the sweep kernels leave it NaN).
_UNDEFINED_WHERE = {
    "convergence_rate": "it is defined only for points that converged (vanishing, cyclic, fixed point, "
                        "periodic)",
    "transient_loops": "it is defined only for points that converged (vanishing, cyclic, fixed point, "
                       "periodic)",
    "distinct_stage_points": "it is defined only for blocks at a fixed point of the loop (vanishing, cyclic)",
    "min_cos": "it is defined only for points at a fixed point of the loop (vanishing, cyclic, fixed point)",
    "max_step_relative": "it is defined only for points at a fixed point of the loop (vanishing, cyclic, "
                         "fixed point)",
    "lyapunov": "it is computed only with lyapunov=True, and only at points without a period",
}


def _no_values_note(axis, field, width=38):
    """Say, centred in ``axis``, that ``field`` has nothing to draw there, and why it can be so."""
    import textwrap

    text = f"no finite values of {field}"
    if field in _UNDEFINED_WHERE:
        text += ": " + _UNDEFINED_WHERE[field]
    axis.text(0.5, 0.5, textwrap.fill(text, width), transform=axis.transAxes, ha="center", va="center",
              fontsize="small", color="0.25", bbox={"facecolor": "white", "edgecolor": "0.6", "alpha": 0.9})


def _panel_plan(diagram):
    """Panel axes (x first) and facet axes of a phase diagram with two or more axes."""
    names = list(diagram.axes)
    kinds = diagram.axis_kinds
    panel = [n for n in names if kinds[n] == "numeric"][:2]
    panel += [n for n in names if kinds[n] == "categorical"][:2 - len(panel)]
    facets = [n for n in names if n not in panel]
    count = int(np.prod([len(diagram.axes[f]) for f in facets])) if facets else 1
    if count > MAX_PANELS:
        sizes = ", ".join(f"{f} ({len(diagram.axes[f])} values)" for f in facets)
        raise ValueError(f"too many facets: the axes {sizes}, beyond the panel axes {panel[0]} and "
                         f"{panel[1]}, make {count} panels and at most {MAX_PANELS} fit (4 × 4); fix some "
                         f"with diagram.select({facets[0]}=...) first")
    return panel, facets


def _facet_grid(diagram, facets):
    """Facet index combinations, and the rows and columns of the panel grid."""
    import itertools

    sizes = [len(diagram.axes[f]) for f in facets]
    combos = list(itertools.product(*[range(s) for s in sizes]))
    if len(facets) == 2 and max(sizes) <= 4:
        return combos, sizes[0], sizes[1]
    cols = len(combos) if len(combos) <= 3 else math.ceil(math.sqrt(len(combos)))
    return combos, math.ceil(len(combos) / cols), cols


def _panel_data(array, names, panel, facets, combo):
    """The 2-D slice of ``array`` for one facet, dimensions ordered (panel x, panel y)."""
    index = [slice(None)] * len(names)
    for name, k in zip(facets, combo):
        index[names.index(name)] = k
    data = array[tuple(index)]
    return data if [n for n in names if n in panel] == panel else data.T


def _new_panels(nrows, ncols, count, panel_size, extra_width):
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False, layout="constrained",
                             figsize=(panel_size[0] * ncols + extra_width, panel_size[1] * nrows + 0.5))
    for spare in grid.ravel()[count:]:
        spare.remove()
    return fig, grid


def plot_phase_diagram(diagram, path=None, field="regime", *, ax=None, log=None, line=None, **kwargs):
    """Draw a phase diagram: regimes in their fixed colours, or a diagnostic as a heatmap.

    See :meth:`dynloop.sweep.phase.PhaseDiagram.plot` for the parameters.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from dynloop.sweep.phase import PhaseDiagram
    >>> from dynloop import Regime
    >>> from dynloop.plotting import plot_phase_diagram
    >>> rate = np.logspace(-4, -0.01, 12).reshape(3, 4)
    >>> d = PhaseDiagram({"a": np.arange(3.0), "b": np.arange(4.0)},
    ...                  np.full((3, 4), Regime.CYCLIC.code, np.int8), {"convergence_rate": rate})
    >>> fig = plot_phase_diagram(d, field="convergence_rate")
    >>> type(fig.axes[0].collections[0].norm).__name__          # 4 decades: log colour scale
    'LogNorm'
    """
    values = diagram.field(field)
    if diagram.ndim == 1:
        return _plot_phase_1d(diagram, path, field, ax, log, line, kwargs)
    panel, facets = _panel_plan(diagram)
    names = list(diagram.axes)
    combos, nrows, ncols = _facet_grid(diagram, facets)
    own_figure = ax is None
    if own_figure:
        fig, grid = _new_panels(nrows, ncols, len(combos), (3.6, 3.0) if facets else (5.6, 4.4),
                                1.9 if field == "regime" else 1.3)
        axes = list(grid.ravel()[:len(combos)])
    else:
        axes = list(np.ravel(ax))
        if len(axes) < len(combos):
            raise ValueError(f"ax= holds {len(axes)} axes but the diagram has {len(combos)} panels (facet "
                             f"axes {', '.join(facets)}); pass ax=None, or draw one facet with select(...)")
        axes = axes[:len(combos)]
        fig = axes[0].figure
        grid = None
    layouts = [_axis_layout(name, diagram.axes[name]) for name in panel]
    use_log = False
    if field == "regime":
        cmap, norm = _regime_style()
        style = {"cmap": cmap, "norm": norm}
    else:
        style, use_log = _diagnostic_style(values, field, log)
    kwargs.setdefault("rasterized", True)
    mesh = None
    for k, (axis, combo) in enumerate(zip(axes, combos)):
        data = _panel_data(values, names, panel, facets, combo)
        data = data[np.ix_(layouts[0]["order"], layouts[1]["order"])].T
        empty = field != "regime" and not np.isfinite(data).any()
        if field != "regime":
            data = np.ma.masked_where(~np.isfinite(data) | ((data <= 0) if use_log else False), data)
        mesh = axis.pcolormesh(layouts[0]["edges"], layouts[1]["edges"], data, shading="flat", **style,
                               **kwargs)
        if empty:
            _no_values_note(axis, field)
        row, col = divmod(k, ncols)
        below_missing = grid is not None and (row + 1) * ncols + col >= len(combos)
        _style_axis(axis, layouts[0], "x", label=grid is None or below_missing)
        _style_axis(axis, layouts[1], "y", label=grid is None or col == 0)
        if below_missing:
            axis.xaxis.set_tick_params(labelbottom=True)
        if facets:
            axis.set_title(", ".join(f"{f}={_format(diagram.axes[f][i])}" for f, i in zip(facets, combo)),
                           fontsize="medium")
    if field == "regime":
        _regime_legend(fig, axes, _regime_handles(diagram.regimes), own_figure)
    else:
        label = field + (" (blank: not computed / NaN)" if np.isnan(values).any() else "")
        fig.colorbar(mesh, ax=axes, label=label, shrink=1.0 if len(axes) == 1 else 0.9)
    title = str(diagram.meta.get("system_name", "phase diagram"))
    title += ": regimes" if field == "regime" else f": {field}"
    if own_figure:
        fig.suptitle(title, fontsize="medium")
    elif not facets:
        axes[0].set_title(title, fontsize="medium")
    return _finish(fig, path)


def _default_line(diagram):
    for name in ("lyapunov", "convergence_rate"):
        if name in diagram.diagnostics and np.isfinite(diagram.diagnostics[name]).any():
            return name
    return None


def _plot_phase_1d(diagram, path, field, ax, log, line, kwargs):
    """One axis: a regime strip, and a diagnostic line over faint regime bands."""
    import matplotlib.pyplot as plt

    name, values = next(iter(diagram.axes.items()))
    layout = _axis_layout(name, values)
    if field != "regime":
        line = field
    elif line is None:
        line = _default_line(diagram)
    elif line is False:
        line = None
    elif line == "regime" or line not in diagram.diagnostics:
        raise ValueError(f"line={line!r} is not allowed: expected False or one of "
                         + ", ".join(repr(d) for d in diagram.diagnostics))
    own_figure = ax is None
    if own_figure:
        if line:
            fig, (main, strip) = plt.subplots(2, 1, sharex=True, figsize=(8.5, 4.4), layout="constrained",
                                              gridspec_kw={"height_ratios": [6, 0.7]})
        else:
            fig, strip = plt.subplots(figsize=(8.5, 1.9), layout="constrained")
            main = None
    else:
        fig = ax.figure
        main, strip = (ax, None) if line else (None, ax)
    cmap, norm = _regime_style()
    if strip is not None:
        strip.pcolormesh(layout["edges"], [0.0, 1.0], diagram.regimes[layout["order"]][None, :], cmap=cmap,
                         norm=norm, shading="flat", rasterized=True)
        strip.set_yticks([])
        strip.set_ylim(0.0, 1.0)
        strip.set_ylabel("regime", rotation=0, ha="right", va="center")
        _style_axis(strip, layout, "x")
    if main is not None:
        _regime_bands(main, layout, diagram.regimes, alpha=0.22 if strip is not None else 0.3)
        y = diagram.diagnostics[line][layout["order"]]
        style = {"color": "k", "lw": 1.1}
        if values.size <= 80:
            style.update(marker=".", ms=5)
        style.update(kwargs)
        main.plot(layout["centres"], y, **style)
        finite = y[np.isfinite(y)]
        if not finite.size:
            _no_values_note(main, line, width=70)
        if _auto_log(y, log, line):
            main.set_yscale("log")
        elif finite.size and (line == "lyapunov" or finite.min() < 0 < finite.max()):
            main.axhline(0.0, color="0.35", lw=0.8, ls="--", zorder=1)
        main.set_ylabel(line)
        _style_axis(main, layout, "x", label=strip is None)
        if strip is not None:
            main.tick_params(labelbottom=False)
    handles = _regime_handles(diagram.regimes)
    _regime_legend(fig, [main or strip], handles, own_figure)
    title = str(diagram.meta.get("system_name", "phase diagram"))
    title += ": regimes" if field == "regime" else f": {field}"
    if own_figure:
        fig.suptitle(title, fontsize="medium")
    else:
        ax.set_title(title, fontsize="medium")
    return _finish(fig, path)


def _orbit_stages(diagram, stages):
    names = diagram.stage_names
    if isinstance(stages, str):
        if stages == "all":
            return list(range(len(names)))
        if stages == "layers":
            chosen = [i for i, n in enumerate(names) if n.startswith("layer")]
            return chosen or list(range(len(names)))
        stages = [stages]
    chosen = [diagram._stage_index(s) for s in stages]
    if not chosen:
        raise ValueError("stages=[] is not allowed: expected 'all', 'layers' or stage names / indices")
    return chosen


def plot_orbit_diagram(diagram, path=None, stages="all", *, coordinate=0, ax=None, **kwargs):
    """Draw an orbit (bifurcation) diagram: one dots panel per stage, regime bands behind.

    See :meth:`dynloop.sweep.phase.OrbitDiagram.plot` for the parameters.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from dynloop.sweep.phase import OrbitDiagram
    >>> from dynloop.plotting import plot_orbit_diagram
    >>> points = np.random.default_rng(0).random((20, 30, 2, 1))
    >>> fig = plot_orbit_diagram(OrbitDiagram("a", np.arange(20.0), points, ("layer1", "layer2"), None, {}))
    >>> [a.get_title() for a in fig.axes]
    ['layer1', 'layer2']
    """
    chosen = _orbit_stages(diagram, stages)
    m = diagram.points.shape[3]
    if not -m <= int(coordinate) < m:
        raise ValueError(f"coordinate={coordinate!r} is not allowed: the points have {m} coordinate(s)")
    count = len(chosen)
    if ax is None:
        rows = math.ceil(count / 4)
        cols = math.ceil(count / rows)
        import matplotlib.pyplot as plt

        size = (8.5, 4.6) if count == 1 else (4.0, 3.2)
        fig, grid = plt.subplots(rows, cols, sharex=True, squeeze=False, layout="constrained",
                                 figsize=(size[0] * cols + (1.8 if diagram.regimes is not None else 0.0),
                                          size[1] * rows + 0.4))
        for spare in grid.ravel()[count:]:
            spare.remove()
        axes = list(grid.ravel()[:count])
    else:
        axes = list(np.ravel(ax))
        if len(axes) < count:
            raise ValueError(f"ax= holds {len(axes)} axes but {count} stages are drawn; pass stages=... "
                             "or ax=None")
        axes = axes[:count]
        fig, rows, cols = axes[0].figure, None, None
    layout = _axis_layout(diagram.axis, diagram.values)
    n_values, n_kept = diagram.points.shape[:2]
    x = np.repeat(diagram.values, n_kept)
    style = {"ls": "none", "marker": ".", "color": "k", "mec": "none",
             "ms": float(np.clip(250.0 / math.sqrt(n_values * n_kept), 1.0, 4.0)),
             "alpha": 0.7 if n_values * n_kept > 20000 else 0.9, "rasterized": True}
    style.update(kwargs)
    ylabel = str(diagram.meta.get("coordinate", "x"))
    for k, (axis, stage) in enumerate(zip(axes, chosen)):
        if diagram.regimes is not None:
            _regime_bands(axis, layout, diagram.regimes, alpha=0.25)
        axis.plot(x, diagram.points[:, :, stage, coordinate].ravel(), **style)
        bottom = rows is None or (k // cols + 1) * cols + k % cols >= count
        _style_axis(axis, layout, "x", label=bottom)
        if bottom:
            axis.xaxis.set_tick_params(labelbottom=True)
        if rows is None or k % cols == 0:
            axis.set_ylabel(ylabel)
        if count > 1 or len(diagram.stage_names) > 1:
            axis.set_title(diagram.stage_names[stage], fontsize="medium")
    if diagram.regimes is not None:
        _regime_legend(fig, axes, _regime_handles(diagram.regimes), ax is None)
    title = f"{diagram.meta.get('system_name', 'orbit diagram')}: attractor points against {diagram.axis}"
    if ax is None:
        fig.suptitle(title, fontsize="medium")
    return _finish(fig, path)


# --------------------------------------------------------------------------- loop analysis
def _layer_colours(count, name="viridis"):
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return [cmap(i / max(count - 1, 1)) for i in range(count)]


def _colourbar(fig, ax, name, count, label):
    import matplotlib
    from matplotlib.cm import ScalarMappable

    from matplotlib.ticker import MaxNLocator

    mappable = ScalarMappable(norm=matplotlib.colors.Normalize(0, max(count - 1, 1)),
                              cmap=matplotlib.colormaps[name])
    bar = fig.colorbar(mappable, ax=ax, label=label, shrink=0.7, aspect=30)
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()


def _positive(values):
    """Values for a log axis: zeros (exact convergence) drawn at the smallest positive value shown."""
    values = np.asarray(values, dtype=float)
    positive = values[values > 0]
    floor = positive.min() / 10 if positive.size else 1e-300
    return np.where(values > 0, values, floor)


def _plot_distances(analysis, fig, axes):
    rec = analysis.recording
    colours = _layer_colours(rec.layers)
    loops = np.arange(rec.loops)
    for layer, stage in enumerate(rec.layer_stages):
        # the last loop is the fixed point itself (distance 0): not drawn
        distance = analysis.distance_to_fixed_point[:-1, stage]
        axes[0].semilogy(loops[:-1], _positive(distance), color=colours[layer], lw=1.2)
        if rec.loops > 1:
            step = analysis.successive_difference[:, stage]
            axes[1].semilogy(loops[1:], _positive(step), color=colours[layer], lw=1.2)
    axes[0].set(xlabel="loop t", ylabel=r"$\|X_{\ell,t} - X^*_\ell\|_F$",
                title="distance to the per-layer fixed point")
    axes[1].set(xlabel="loop t", ylabel=r"$\|X_{\ell,t} - X_{\ell,t-1}\|_F$", title="successive difference")
    _colourbar(fig, axes[1], "viridis", rec.layers, "layer")


def _plot_metrics(analysis, fig, axes):
    rec = analysis.recording
    layer_colours, loop_colours = _layer_colours(rec.layers), _layer_colours(rec.loops, "plasma")
    for m, name in enumerate(analysis.profile_metrics):
        profile = analysis.stage_profiles[m]  # (loops, layers)
        for layer in range(rec.layers):
            axes[m, 0].plot(np.arange(rec.loops), profile[:, layer], color=layer_colours[layer], lw=1.0)
        for t in range(rec.loops):
            axes[m, 1].plot(np.arange(rec.layers), profile[t], color=loop_colours[t], lw=0.8, alpha=0.7)
        axes[m, 0].set_ylabel(name.replace("_", " "))
    axes[0, 0].set_title("by loop (one line per layer)")
    axes[0, 1].set_title("by layer (one line per loop)")
    axes[-1, 0].set_xlabel("loop t")
    axes[-1, 1].set_xlabel("layer")
    from matplotlib.ticker import MaxNLocator

    for ax in axes[:, 1]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _colourbar(fig, axes[:, 0], "viridis", rec.layers, "layer")
    _colourbar(fig, axes[:, 1], "plasma", rec.loops, "loop")


def _plot_similarity(analysis, fig, axes):
    rec = analysis.recording
    shown = min(rec.loops, max(2, 64 // rec.layers))  # whole loops, about 64 entries: every one visible
    size = shown * rec.layers
    matrices = [("layer states", analysis.state_similarity, analysis.diagonal_band_score["state"]),
                ("attention", analysis.attention_similarity, analysis.diagonal_band_score["attention"])]
    for ax, (name, matrix, band) in zip(axes, matrices):
        if matrix is None:
            ax.axis("off")
            ax.text(0.5, 0.5, "no attention recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        part = matrix[:size, :size]
        image = ax.imshow(part, cmap="magma", vmin=max(0.0, float(np.min(part))), vmax=1.0,
                          interpolation="nearest", extent=(0, size, size, 0))
        for edge in range(rec.layers, size, rec.layers):
            ax.axhline(edge, color="white", lw=0.4, alpha=0.6)
            ax.axvline(edge, color="white", lw=0.4, alpha=0.6)
        step = max(1, shown // 8)
        ticks = np.arange(0, shown, step)
        ax.set_xticks(ticks * rec.layers + rec.layers / 2, [str(t) for t in ticks])
        ax.set_yticks(ticks * rec.layers + rec.layers / 2, [str(t) for t in ticks])
        ax.set(xlabel=f"loop (each spans its {rec.layers} layers)", ylabel="loop",
               title=f"{name}, first {shown} of {rec.loops} loops\n"
                     f"diagonal-band score {band:.2f} (all loops)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="1 − ‖a−b‖/(‖a‖+‖b‖)")


def _plot_pca(analysis, fig, axes, token=None):
    rec = analysis.recording
    token = rec.tokens - 1 if token is None else token
    path = rec.layer_states[:, :, token, :].reshape(rec.loops * rec.layers, rec.width).astype(float)
    centred = path - path.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    if vt.shape[0] >= 2:
        coords = centred @ vt[:2].T
    else:  # one coordinate (d = 1): the path along it
        coords = np.column_stack([centred @ vt[0], np.zeros(len(path))])
    explained = singular[:2] ** 2 / max(np.sum(singular ** 2), 1e-300)
    ax = axes[0]
    loop_of = np.repeat(np.arange(rec.loops), rec.layers)
    ax.plot(coords[:, 0], coords[:, 1], color="0.75", lw=0.6, zorder=1)
    points = ax.scatter(coords[:, 0], coords[:, 1], c=loop_of, cmap="plasma", s=10, zorder=2)
    last = coords[-rec.layers:]
    closed = np.vstack([last, last[:1]])
    ax.plot(closed[:, 0], closed[:, 1], color="black", lw=1.5, zorder=3, label="last loop (closed)")
    for layer, (x, y) in enumerate(last):
        ax.annotate(str(layer), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel=f"PC 1 ({100 * explained[0]:.0f} %)",
           ylabel=f"PC 2 ({100 * (explained[1] if len(explained) > 1 else 0):.0f} %)",
           title=f"token {token}: every layer of every loop (numbers: layers of the last loop)")
    ax.legend(loc="best", fontsize=8)
    fig.colorbar(points, ax=ax, label="loop")


def _plot_profiles(analysis, fig, axes):
    rec = analysis.recording
    colours = _layer_colours(rec.loops, "plasma")
    for m, name in enumerate(analysis.profile_metrics):
        ax = axes[m]
        for t in range(rec.loops):
            ax.plot(analysis.relative_depth, analysis.stage_profiles[m, t], color=colours[t], lw=0.8,
                    alpha=0.7)
        if analysis.reference_profiles is not None and name in analysis.reference_metrics:
            theirs = analysis.reference_profiles[analysis.reference_metrics.index(name)]
            ax.plot(relative_depth(theirs.shape[1]), theirs.mean(axis=0), "k--", lw=1.5, label="reference")
            ax.legend(fontsize=8)
        ax.set(xlabel="relative depth in the loop", title=name.replace("_", " "))
    _colourbar(fig, axes[len(analysis.profile_metrics) - 1], "plasma", rec.loops, "loop")


def _plot_attention_bound(analysis, fig, axes):
    ax = axes[0]
    rec = analysis.recording
    if analysis.attention_change is None:
        ax.axis("off")
        ax.text(0.5, 0.5, "no attention recorded", ha="center", va="center", transform=ax.transAxes)
        return
    colours = _layer_colours(rec.layers)
    if analysis.bound_check is None:
        for layer in range(rec.layers):
            ax.semilogy(np.arange(1, rec.loops), _positive(analysis.attention_change[:, layer].max(axis=-1)),
                        color=colours[layer])
        ax.set(xlabel="loop t", ylabel=r"$\max_h \|A_t - A_{t-1}\|_F$",
               title="attention change (no query/key weights: no bound)")
        _colourbar(fig, ax, "viridis", rec.layers, "layer")
        return
    check = analysis.bound_check
    bound, observed = check["bound"], check["observed"]
    keep = (bound > 0) & (observed > 0)
    layer_of = np.broadcast_to(np.arange(rec.layers)[None, :, None], bound.shape)
    ax.scatter(bound[keep], observed[keep], c=layer_of[keep], cmap="viridis", s=6, vmin=0,
               vmax=max(rec.layers - 1, 1))
    if keep.any():
        low, high = min(bound[keep].min(), observed[keep].min()), max(bound[keep].max(), observed[keep].max())
        ax.plot([low, high], [low, high], "k--", lw=1, label="observed = bound")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel=r"bound $L_{sm}\,2B\kappa/\sqrt{d_h}\,\|\Delta X\|_F$",
           ylabel=r"observed $\|A_t - A_{t-1}\|_F$",
           title=f"attention change against the bound: {int(check['violations'].sum())} violations")
    _colourbar(fig, ax, "viridis", rec.layers, "layer")


def plot_analysis(analysis, kind, path=None):
    """One figure of a :class:`~dynloop.LoopAnalysis` (see its ``plot`` for the kinds)."""
    import matplotlib.pyplot as plt

    if kind == "metrics":
        rows = len(analysis.profile_metrics)
        fig, axes = plt.subplots(rows, 2, figsize=(11, 2.4 * rows + 0.6), constrained_layout=True,
                                 squeeze=False)
        _plot_metrics(analysis, fig, axes)
    elif kind == "profiles":
        count = len(analysis.profile_metrics)
        fig, axes = _figure(None, count, width=3.6 * count + 1, height=3.6)
        _plot_profiles(analysis, fig, axes)
    elif kind in ("distances", "similarity"):
        fig, axes = _figure(None, 2, width=11.5, height=4.6 if kind == "similarity" else 4.0)
        (_plot_distances if kind == "distances" else _plot_similarity)(analysis, fig, axes)
    else:
        fig, axes = _figure(None, 1, width=6.5, height=5.0)
        (_plot_pca if kind == "pca" else _plot_attention_bound)(analysis, fig, axes)
    return _finish(fig, path)


# ----------------------------------------------------------------------------- basins and cell maps
_OUTCOME_GREYS = {-1: REGIME_COLOURS["divergent"], -2: REGIME_COLOURS["undetermined"]}


def _outcome_colours(labels):
    """A colour per outcome label: attractors from a qualitative palette, divergent and undetermined greys."""
    import matplotlib.pyplot as plt

    palette = [plt.get_cmap("tab10")(i) for i in (0, 1, 2, 4, 6, 8, 9, 3, 5)] + \
        [plt.get_cmap("tab20b")(i) for i in range(20)]
    return {int(v): _OUTCOME_GREYS[v] if v < 0 else palette[v % len(palette)] for v in np.unique(labels)}


def _label_image(ax, labels, axes, colours):
    """Draw a 1-D or 2-D grid of outcome labels (2-D: first axis across, second up)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    order = sorted(colours)
    index = {v: i for i, v in enumerate(order)}
    image = np.vectorize(index.get, otypes=[float])(labels)
    cmap = ListedColormap([colours[v] for v in order])
    norm = BoundaryNorm(np.arange(len(order) + 1) - 0.5, len(order))
    names = list(axes)
    values = [np.asarray(v, dtype=float) for v in axes.values()]

    def edges(v):
        if v.size == 1:
            return np.array([v[0] - 0.5, v[0] + 0.5])
        middle = (v[1:] + v[:-1]) / 2
        return np.concatenate([[2 * v[0] - middle[0]], middle, [2 * v[-1] - middle[-1]]])

    if labels.ndim == 1:
        ax.pcolormesh(edges(values[0]), [0, 1], image[None, :], cmap=cmap, norm=norm)
        ax.set_yticks([])
        ax.set_xlabel(names[0])
    else:
        ax.pcolormesh(edges(values[0]), edges(values[1]), image.T, cmap=cmap, norm=norm)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_aspect("auto")


def _outcome_legend(fig, ax, handles, own_figure, title):
    """Below the figure when it is the plot's own, else beside the axes."""
    if own_figure:
        fig.legend(handles=handles, loc="outside lower center", ncols=1 if len(handles) > 3 else len(handles),
                   frameon=False, fontsize=8, title=title)
    else:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8,
                  title=title)


def _plane_coordinates(result, points):
    """Attractor points (rows of states) in the drawn plane's coordinates, or None when not in it."""
    flat = points.reshape(points.shape[0], -1)
    if result.directions is None:  # a map: its own coordinates, when the axes name them
        names = list(result.axes)
        kind = result.meta.get("kind")
        if kind != "map" or result.meta.get("coordinates") is None:
            return None
        coordinates = result.meta["coordinates"]
        return flat[:, coordinates[:len(names)]]
    directions = result.directions.reshape(result.directions.shape[0], -1)
    center = result.center.reshape(-1)
    gram = directions @ directions.T
    return np.linalg.solve(gram, directions @ (flat - center).T).T


def plot_basins(result, path=None, *, ax=None):
    """Draw a :class:`~dynloop.dynamics.basins.BasinMap` (see :meth:`BasinMap.plot`)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    own = ax is None
    fig, axes = _figure(ax, 1, width=9.0, height=5.2 if result.labels.ndim > 1 else 2.6)
    ax = axes[0]
    labels, names = result.labels, dict(result.axes)
    title_extra = ""
    if labels.ndim == 3:
        middle = labels.shape[2] // 2
        last = list(names)[2]
        title_extra = f", slice {last} = {_format(float(names[last][middle]))}"
        labels = labels[:, :, middle]
        names = dict(list(names.items())[:2])
    colours = _outcome_colours(labels)
    _label_image(ax, labels, names, colours)
    outcome_names = result.outcome_names()
    fractions = result.fractions
    handles = [Patch(facecolor=colours[v], edgecolor="0.35", linewidth=0.5,
                     label=f"{outcome_names[v]} ({100 * fractions[v]:.1f} %)")
               for v in fractions if v in colours]
    marked = set()
    for index, attractor in enumerate(result.attractors):
        if index not in colours or attractor.regime.value == "drifting":
            continue
        placed = _plane_coordinates(result, attractor.points)
        if placed is None:
            continue
        across = placed[:, 0]
        up = np.full(len(placed), 0.5) if labels.ndim == 1 else placed[:, 1]
        if attractor.period is None:  # a run on a wandering attractor: its cloud
            ax.plot(across, up, ".", color="white", ms=1.5, alpha=0.8)
            marked.add("cloud")
        else:
            ax.plot(across, up, "o", mfc=colours[index], mec="black", ms=7)
            marked.add("orbit")
    projected = " (projected on the plane)" if result.directions is not None else ""
    if "orbit" in marked:
        handles.append(Line2D([], [], marker="o", ls="", mfc="white", mec="black",
                              label="attractor's orbit points" + projected))
    if "cloud" in marked:
        handles.append(Line2D([], [], marker=".", ls="", color="0.5",
                              label="a run on a chaotic or quasi-periodic attractor" + projected))
    ax.set_title(f"Basins of attraction: {result.meta.get('system_name', '')}{title_extra}\n"
                 f"basin entropy {result.basin_entropy:.3f}, boundary basin entropy "
                 f"{result.boundary_basin_entropy:.3f} (boxes of {result.box} cells)", fontsize=10)
    _outcome_legend(fig, ax, handles, own, "start states reach")
    return _finish(fig, path)


def plot_cell_map(result, path=None, *, ax=None):
    """Draw a :class:`~dynloop.dynamics.cellmap.CellMap` (see :meth:`CellMap.plot`)."""
    from matplotlib.patches import Patch

    own = ax is None
    fig, axes = _figure(ax, 1, width=9.0, height=5.2 if result.dim > 1 else 2.6)
    ax = axes[0]
    labels = result.labels
    coordinates = [f"x{i}" for i in range(result.dim)]
    names = {name: result.bounds[i, 0] + (np.arange(n) + 0.5) * result.widths[i]
             for i, (name, n) in enumerate(zip(coordinates, result.cells))}
    title_extra = ""
    if labels.ndim == 3:
        middle = labels.shape[2] // 2
        title_extra = f", slice x2 = {_format(float(names['x2'][middle]))}"
        labels = labels[:, :, middle]
        names = dict(list(names.items())[:2])
    colours = _outcome_colours(labels)
    _label_image(ax, labels, names, colours)
    fractions = result.fractions
    handles = []
    for label, share in fractions.items():
        if label not in colours:
            continue
        if label < 0:
            handles.append(Patch(facecolor=colours[label],
                                 label=f"sink: leaves the box ({100 * share:.1f} %)"))
            continue
        group = result.periodic_groups[label]
        handles.append(Patch(facecolor=colours[label], edgecolor="0.35", linewidth=0.5,
                             label=f"C{label}: period-{len(group)} cell group ({100 * share:.1f} %)"))
        centres = result.centers(group)
        if result.dim == 1:
            ax.plot(centres[:, 0], np.full(len(centres), 0.5), "s", mfc="white", mec="black", ms=5)
        elif labels.ndim == 2:
            ax.plot(centres[:, 0], centres[:, 1], "s", mfc="white", mec="black", ms=5)
    ax.set_title(f"Simple cell map of {result.meta.get('system_name', '')}{title_extra}: "
                 f"{' × '.join(map(str, result.cells))} cells\n(white squares: the attracting cell groups)",
                 fontsize=10)
    _outcome_legend(fig, ax, handles, own, "cells end in")
    return _finish(fig, path)


# ----------------------------------------------------------------------------- continuation
_BIFURCATION_MARKERS = {"fold": ("^", "#D55E00"), "flip": ("o", "#0072B2"),
                        "neimark_sacker": ("D", "#CC79A7")}


def _branch_values(branch, coordinate, reference=None):
    """(parameter, values) of every loop point of the branch's cycles: shape (n,), (n, period).

    The values are a coordinate, or, with ``reference`` (a state), the distance from it relative to
    its norm, or else the state's norm.
    """
    rows = []
    for points in branch.loop_points():
        flat = points.reshape(points.shape[0], -1)
        if coordinate is not None:
            rows.append(flat[:, coordinate])
        elif reference is not None:
            rows.append(np.linalg.norm(flat - reference, axis=1) / np.linalg.norm(reference))
        else:
            rows.append(np.linalg.norm(flat, axis=1))
    return branch.parameter, np.array(rows)


def plot_branches(branches, path=None, *, coordinate=None, ax=None, diagram=None):
    """Draw continuation branches: stable solid, unstable dashed, bifurcations marked, over an orbit
    diagram when one is given (see :meth:`dynloop.dynamics.continuation.Branch.plot`)."""
    from matplotlib.lines import Line2D

    own = ax is None
    fig, axes = _figure(ax, 1, width=8.5, height=4.8)
    ax = axes[0]
    first = branches[0]
    dim = int(np.prod(first.states.shape[1:]))
    if coordinate is None and (dim == 1 or diagram is not None):
        coordinate = 0
    # a block's state: its distance from the first branch point (a normalised state's norm is fixed)
    reference = np.ravel(first.states[0]) if coordinate is None and dim > 3 else None
    if diagram is not None:
        n_values, n_kept = diagram.points.shape[:2]
        ax.plot(np.repeat(diagram.values, n_kept), diagram.points[:, :, -1, 0].ravel(), ".", color="0.6",
                ms=1.0, alpha=0.6, rasterized=True)
    colours = _layer_colours(max(len(branches), 2), "viridis")
    for colour, branch in zip(colours, branches):
        parameter, values = _branch_values(branch, coordinate, reference)
        stable = branch.stable
        for column in range(values.shape[1]):
            for flag, style in ((True, "-"), (False, "--")):
                shown = np.where(stable == flag, values[:, column], np.nan)
                # join each run to its neighbour so that a change of stability leaves no gap
                edges = np.flatnonzero(np.diff(stable.astype(int)) != 0)
                for e in edges:
                    joint = e if stable[e] != flag else e + 1
                    shown[joint] = values[joint, column]
                ax.plot(parameter, shown, style, color=colour, lw=1.6)
        for b in branch.bifurcations:
            marker, mcolour = _BIFURCATION_MARKERS[b.kind]
            if coordinate is not None:
                value = np.ravel(b.state)[coordinate]
            elif reference is not None:
                value = np.linalg.norm(np.ravel(b.state) - reference) / np.linalg.norm(reference)
            else:
                value = np.linalg.norm(b.state)
            ax.plot([b.parameter], [value], marker, mfc=mcolour, mec="black", ms=8, zorder=5)
    ylabel = (f"x[{coordinate}]" if coordinate is not None else
              f"|x − x({_format(float(first.parameter[0]))})| / |x({_format(float(first.parameter[0]))})|"
              if reference is not None else "|x| (state norm)")
    ax.set_xlabel(first.parameter_name)
    ax.set_ylabel(ylabel)
    over = " over its orbit diagram" if diagram is not None else ""
    ax.set_title(f"Continuation of {first.meta.get('system_name', '')} in {first.parameter_name}{over}",
                 fontsize=10)
    handles = [Line2D([], [], ls="-", color="0.2", label="stable"), Line2D([], [], ls="--", color="0.2",
                                                                           label="unstable")]
    if len(branches) > 1:
        handles += [Line2D([], [], color=c, label=f"period {b.period}") for c, b in zip(colours, branches)
                    if b is next(x for x in branches if x.period == b.period)]
    kinds = {b.kind for branch in branches for b in branch.bifurcations}
    names = {"fold": "fold", "flip": "flip", "neimark_sacker": "Neimark–Sacker"}
    handles += [Line2D([], [], marker=_BIFURCATION_MARKERS[k][0], ls="", mfc=_BIFURCATION_MARKERS[k][1],
                       mec="black", label=names[k]) for k in _BIFURCATION_MARKERS if k in kinds]
    if diagram is not None:
        handles.append(Line2D([], [], marker=".", ls="", color="0.6", label="orbit diagram"))
    if own:
        fig.legend(handles=handles, loc="outside right center", frameon=False, fontsize=8)
    else:
        ax.legend(handles=handles, loc="best", frameon=False, fontsize=8)
    return _finish(fig, path)

