"""Orbit (bifurcation) diagrams: the attractor's points against one parameter, per stage."""

__all__ = ["orbit_diagram"]

import numpy as np

from .._errors import check_int, invalid


def orbit_diagram(system, axis_name, values, *, loops=1000, keep=100, x0=None, coordinate=None, regimes=True):
    """The classic bifurcation diagram: for each parameter value, the last ``keep`` loops' stage points.

    Parameters
    ----------
    system : BlockSpec or Map
    axis_name : str
        A map parameter, or a numeric BlockSpec field.
    values : array_like
        The parameter values (1-D).
    loops : int
        Loops iterated per value (the last ``keep`` are kept).
    keep : int
        Loops of attractor points kept per value.
    x0 : array_like, optional
        Start state (the system's own by default).
    coordinate : int or "pca", optional
        What each stage point is reduced to: a flattened-state index, or ``"pca"``, the projection
        on the first principal component of all kept points (default: index 0 for a map, "pca"
        for a block).
    regimes : bool
        Also classify every value with :func:`dynloop.sweep` (same loops, Lyapunov exponent on),
        to shade the diagram by regime.

    Returns
    -------
    OrbitDiagram

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> diagram = dynloop.orbit_diagram(dynloop.maps.logistic(), "r", np.linspace(2.8, 4.0, 50), loops=500)
    >>> diagram.points.shape
    (50, 100, 1, 1)
    """
    from ..dynamics.simulate import simulate
    from .engine import _MIN_WINDOW, _check_finite, sweep
    from .phase import OrbitDiagram

    try:
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise invalid("values", values, "expected numbers") from None
    if values.ndim != 1 or values.size == 0:
        raise invalid("values", values, "expected a non-empty 1-D array of parameter values")
    _check_finite("values", values)
    loops = check_int("loops", loops, minimum=1)
    keep = check_int("keep", keep, minimum=1)
    if keep > loops:
        raise invalid("keep", keep, f"at most loops={loops}")
    is_block = getattr(system, "kind", None) == "block"
    if is_block and not isinstance(getattr(system, axis_name, None), (int, float)):
        raise invalid("axis_name", axis_name, "a numeric BlockSpec field, e.g. 'residual_scale'")
    collected = []
    for value in values:
        if is_block:
            run = simulate(system.replace(**{axis_name: float(value)}), loops, x0=x0, record=("last", keep))
        else:
            run = simulate(system, loops, x0=x0, params={axis_name: float(value)}, record=("last", keep))
        states = run.stage_states[:, 1:].reshape(run.stage_states.shape[0], len(run.stage_names), -1)
        padded = np.full((keep,) + states.shape[1:], np.nan)
        padded[keep - states.shape[0]:] = states  # a diverged run keeps fewer loops
        collected.append(padded)
    points = np.stack(collected)                                   # (V, keep, S, n)
    if coordinate is None:
        coordinate = "pca" if is_block else 0
    if coordinate == "pca":
        flat = points.reshape(-1, points.shape[-1])
        finite = flat[np.all(np.isfinite(flat), axis=1)]
        centre = finite.mean(axis=0) if finite.size else np.zeros(points.shape[-1])
        direction = np.linalg.svd(finite - centre, full_matrices=False)[2][0] if finite.shape[0] > 1 else \
            np.eye(points.shape[-1])[0]
        reduced = ((points - centre) @ direction)[..., None]
        label = "first principal component"
    else:
        index = check_int("coordinate", coordinate, minimum=0)
        if index >= points.shape[-1]:
            raise invalid("coordinate", coordinate, f"an index below the state size {points.shape[-1]}")
        reduced = points[..., index:index + 1]
        label = f"state[{index}]"
    codes = None
    if regimes:
        codes = sweep(system, {axis_name: values}, loops=max(loops, _MIN_WINDOW), x0=x0, lyapunov=True,
                      progress=False).regimes
    return OrbitDiagram(axis=axis_name, values=values, points=reduced, stage_names=tuple(system.stage_names),
                        regimes=codes, meta={"system_name": system.name, "loops": loops, "keep": keep,
                                             "coordinate": label})
