"""What a held period says about the run that reached it: one compiled copy, for ``classify`` and sweeps.

- :func:`convergence`: the observed rate per loop and the transient, from ``|h_t - h_{t-p}|``;
- :func:`stage_degeneracy`: at a fixed point of the loop, how many distinct per-layer points the
  block visits, how aligned they are and the largest step between consecutive stage points.

Distances are summed in float64 whatever the state's dtype (:func:`~dynloop.dynamics.regimes._distance`).
"""

import math

import numpy as np
from numba import njit

from .regimes import _distance, _dot, _length

_RATES_USED = 64  # the rate is the median over this many last ratios


@njit(cache=True, error_model="numpy")
def convergence(history, period, scale, tolerance, loops_before):
    """Observed geometric rate per loop and transient length of a run that holds period ``period``.

    With ``d_t = |h_t - h_{t-p}|`` over the rows of ``history`` (loop states in loop order, flat),
    the rate is ``exp(median(log(d_t / d_{t-p})) / p)`` over the last 64 ratios whose distances
    are above the rounding floor ``1e-12 * scale`` (NaN with fewer than 4), and the transient is
    the number of loops until ``d_t`` stayed within ``tolerance * scale``.

    Parameters
    ----------
    history : ndarray, shape (L, n)
        The last ``L`` loop states.
    period : int
        The held period ``p`` (``1 <= p < L``).
    scale : float
        The state scale distances are relative to.
    tolerance : float
        Relative distance under which the period holds.
    loops_before : int
        Loops run before ``history``'s first row (the transient counts from the start of the run).

    Returns
    -------
    rate : float
        The rate per loop, or NaN.
    transient : int
        Loops until the run stayed on its orbit.

    Examples
    --------
    >>> import numpy as np
    >>> from dynloop.dynamics._measures import convergence
    >>> history = (0.5 ** np.arange(40.0))[:, None]  # x_t = 0.5^t approaching 0
    >>> rate, transient = convergence(history, 1, 1.0, 1e-6, 0)
    >>> float(rate), int(transient)
    (0.5, 20)
    """
    n_rows = history.shape[0]
    distances = np.empty(n_rows - period)
    for t in range(period, n_rows):
        distances[t - period] = _distance(history[t], history[t - period])
    last_outside = -1
    for t in range(distances.shape[0]):
        if not distances[t] <= tolerance * scale:
            last_outside = t
    transient = loops_before + (last_outside + period + 1 if last_outside >= 0 else 0)
    logs = np.empty(distances.shape[0])
    count = 0
    floor = 1e-12 * scale
    for t in range(period, distances.shape[0]):
        if distances[t] > floor and distances[t - period] > floor:
            logs[count] = math.log(distances[t] / distances[t - period])
            count += 1
    rate = np.nan
    if count >= 4:
        rate = math.exp(np.median(logs[max(0, count - _RATES_USED):count]) / period)
    return rate, transient


@njit(cache=True, error_model="numpy")
def stage_degeneracy(stage_states, first_layer, n_layers, tolerance):
    """Distinct per-layer points, their least alignment and the largest stage step, at a fixed point.

    Parameters
    ----------
    stage_states : ndarray, shape (S + 1, n)
        The state entering the loop (row 0) and after each of its ``S`` stages (row ``i + 1``).
    first_layer, n_layers : int
        The layers are stages ``first_layer, ..., first_layer + n_layers - 1``.
    tolerance : float
        Distance within which two layer points count as one.

    Returns
    -------
    distinct : int
        How many layer points are distinct (each compared with the ones before it).
    min_cos : float
        The least cosine between the first layer point and another (1.0 when a point is zero).
    max_step : float
        The largest distance between consecutive rows.

    Examples
    --------
    >>> import numpy as np
    >>> from dynloop.dynamics._measures import stage_degeneracy
    >>> points = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # enter, layer 0, layer 1
    >>> distinct, min_cos, max_step = stage_degeneracy(points, 0, 2, 1e-9)
    >>> int(distinct), float(min_cos), round(float(max_step), 6)
    (2, 0.0, 1.414214)
    """
    first = stage_states[first_layer + 1]
    first_size = _length(first)
    distinct = 0
    min_cos = 1.0
    for layer in range(n_layers):
        point = stage_states[first_layer + 1 + layer]
        new = True
        for other in range(layer):
            if _distance(point, stage_states[first_layer + 1 + other]) <= tolerance:
                new = False
                break
        distinct += 1 if new else 0
        norms = first_size * _length(point)
        if layer > 0 and norms > 0:
            min_cos = min(min_cos, _dot(first, point) / norms)
    max_step = 0.0
    for stage in range(stage_states.shape[0] - 1):
        max_step = max(max_step, _distance(stage_states[stage + 1], stage_states[stage]))
    return distinct, min_cos, max_step
