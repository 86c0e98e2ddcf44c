"""Matplotlib figures for dynloop's result objects (imported lazily by their ``plot`` methods)."""

__all__ = ["plot_trajectory", "plot_classification"]

import numpy as np


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


def _distances_to_stage_points(classification):
    """Loops, distances and ``1 - cos`` of every stage state to its stage point.

    With a converged orbit the run is repeated from the start state and compared, phase by phase,
    with the refined stage points; otherwise the examined window is compared with its last loop.
    """
    from .dynamics.simulate import simulate

    period = classification.period or 1
    n_stages = len(classification.stage_names)
    points = classification.stage_fixed_points
    if points is not None and classification.period and classification.system is not None:
        loops = int(min(max(classification.transient_loops or 0, 40) + 40, 2000))
        run = simulate(classification.system, loops, x0=classification.x0, params=classification.params)
        flat = run.stage_states.reshape(run.loops_run, n_stages + 1, -1)[:, 1:]
        targets = points.reshape(period, n_stages, -1)
        last_phase = int(np.argmin(np.linalg.norm(targets[:, -1] - flat[-1, -1], axis=-1)))
        phase = (last_phase - (run.loops_run - 1 - np.arange(run.loops_run))) % period
        target = targets[phase]
        label = "loop t"
    else:
        states = classification.window_states
        finite = np.all(np.isfinite(states.reshape(states.shape[0], -1)), axis=1)
        states = states[finite] if finite.any() else np.zeros((1,) + states.shape[1:])
        flat = states.reshape(states.shape[0], n_stages + 1, -1)[:, 1:]
        target = flat[-period:][(np.arange(flat.shape[0]) - flat.shape[0]) % period]
        label = "loop in the last examined window"
    distances = np.linalg.norm(flat - target, axis=-1)
    cosines = np.sum(flat * target, axis=-1) / (np.linalg.norm(flat, axis=-1) * np.linalg.norm(target, axis=-1) + 1e-300)
    return np.arange(flat.shape[0]), distances, np.maximum(1.0 - cosines, 1e-17), label


def plot_classification(classification, path=None):
    """Distances and cosines to the per-stage fixed points against loops, and the orbit in 2-D.

    The first two panels show, for every stage ``j``, the distance ``|h_{t,j} - Y_j|`` and
    ``1 - cos(h_{t,j}, Y_j)`` to its point ``Y_j`` against the loop ``t`` from the start state
    (for a periodic orbit, to the point of the same phase). Without a converged orbit they show the
    last window examined, against its last loop. The third panel is a 2-D PCA of every stage state
    of one token over that window (for a one-variable map, the return map ``x_t`` against
    ``x_{t+1}``).

    Examples
    --------
    >>> import dynloop
    >>> from dynloop.plotting import plot_classification
    >>> fig = plot_classification(dynloop.classify(dynloop.maps.logistic(r=3.5)))
    """
    import matplotlib.pyplot as plt

    loops, distances, one_minus_cos, label = _distances_to_stage_points(classification)
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
    axes[0].set(xlabel=label, ylabel=r"$\|h_{t,j} - Y_j\|$", title="distance to the stage points")
    axes[1].set(xlabel=label, ylabel=r"$1 - \cos(h_{t,j}, Y_j)$", title="cosine to the stage points")
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
        projected = centred @ vt[:2].T if vt.shape[0] > 1 else np.column_stack([centred @ vt[0], 0 * centred[:, 0]])
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
