"""Matplotlib figures for dynloop's result objects (imported lazily by their ``plot`` methods)."""

__all__ = ["plot_trajectory"]

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
