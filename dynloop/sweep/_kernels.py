"""Compiled, parallel per-point classification for sweeps: one kernel per system family.

Block points are iterated in groups, a group's points side by side as the columns of one state
(``numba.prange`` over lanes of groups; a point's result depends neither on its group nor on the
thread count), map points one by one (``prange`` over the points), each keeping only a ring of
the last ``window`` loop states:
memory is O(points × window × state), never O(points × loops × state). The decision is the same
compiled :func:`~dynloop.dynamics.regimes.decide` that ``classify`` calls, on the same statistics
from :func:`~dynloop.dynamics.regimes.window_statistics`.
"""

import math

import numpy as np
from numba import njit, prange, types

from ..dynamics import regimes as R
from ..dynamics._measures import convergence, stage_degeneracy
from ..systems._block_kernels import BRANCH_ATTENTION, stage_apply, with_point
from ..systems._column_kernels import _padded_points, column_buffers, column_stage
from ..systems._fastmath import flush_tiny
from ..systems._map_kernels import JacobianFunction, StepFunction

DIAGNOSTICS = ("period", "convergence_rate", "lyapunov", "final_norm", "distinct_stage_points", "min_cos",
               "max_step_relative", "transient_loops", "loops_run")
(D_PERIOD, D_RATE, D_LYAPUNOV, D_FINAL_NORM, D_DISTINCT, D_MIN_COS, D_MAX_STEP, D_TRANSIENT,
 D_LOOPS) = range(len(DIAGNOSTICS))

# the columns of a block sweep's values: systems.block.POINT_FIELDS, in its order
# (tests/sweep/test_sweep.py checks)
P_RESIDUAL_SCALE, P_INJECTION_SCALE, P_NORM_EPS, P_SKIP_SCALE = range(4)

_JIT = dict(cache=True, error_model="numpy")


@njit(**_JIT)
def _ordered(ring, t):
    """The ring's rows in loop order, given ``t`` loops written (``t >= len(ring)``)."""
    window = ring.shape[0]
    out = np.empty_like(ring)
    start = t % window
    out[:window - start] = ring[start:]
    out[window - start:] = ring[:start]
    return out


@njit(**_JIT)
def _norm(x):
    """``|x|`` of an array of any shape, summed in float64."""
    return R._length(x.ravel())


@njit(**_JIT)
def _window_decision(states, reference_scale, max_period, tolerances, is_map):
    """Decision statistics of a window of loop states (rows in loop order)."""
    stats = R.window_statistics(states, reference_scale, max_period, tolerances[0])
    stats[R.S_IS_MAP] = 1.0 if is_map else 0.0
    return stats


# inlined: as a call per loop it made a logistic sweep (20,000 points, 1,000 loops) 1.17-1.62 s against
# 0.94-1.28 s with these lines written out in each loop (four runs each)
@njit(cache=True, error_model="numpy", inline="always")
def _watch(ring, state, t, loops, reference_scale, max_period, tolerances, early_exit, is_map, states, stats):
    """Keep loop ``t``'s state (flat; loops counted from 1) in the ring, and say whether the point stops.

    Returns ``(stop, states, stats)``. A state that is not finite stops it (``stats`` says so). At
    the last loop, and with ``early_exit`` at the end of every window, the window's rows in loop
    order and their statistics replace ``states`` and ``stats``; a settled regime stops it.
    """
    window = ring.shape[0]
    ring[(t - 1) % window] = state
    if not math.isfinite(_norm(state)):
        stats[R.S_FINITE] = 0.0
        return True, states, stats
    if t >= window and (t == loops or (early_exit and t % window == 0)):
        states = _ordered(ring, t)
        stats = _window_decision(states, reference_scale, max_period, tolerances, is_map)
        return early_exit and R.settled(stats, tolerances), states, stats
    return False, states, stats


@njit(**_JIT)
def _lyapunov_statistics(halves, window, stats):
    """The largest exponent from the log growths of a renormalised tangent over the two halves of a window.

    Its error is three times the halves' disagreement, at least ``3 / window``.
    """
    first_half = halves[0] / (window // 2)
    second_half = halves[1] / (window - window // 2)
    stats[R.S_LYAPUNOV] = (halves[0] + halves[1]) / window
    stats[R.S_LYAPUNOV_ERROR] = 3.0 * max(abs(first_half - second_half), 1.0 / window)


@njit(**_JIT)
def _start(x0):
    """A point's start: its state, its decision statistics (unknown; finite so far) and ``|x0|``."""
    stats = np.full(len(R.STAT_NAMES), np.nan)
    stats[R.S_FINITE] = 1.0
    return x0.copy(), stats, _norm(x0)


@njit(**_JIT)
def _held(x, states, stats, t, window, tolerances, row):
    """The first conclusions of a point stopped after ``t`` loops with state ``x``, for every family.

    Returns ``(code, period)``: the regime's code when there is nothing more to examine (diverged,
    or too few loops to judge), else ``-1`` and the period the window holds (0 for none), with its
    convergence rate and transient written into ``row``.
    """
    row[D_LOOPS] = t
    row[D_FINAL_NORM] = _norm(x)
    if stats[R.S_FINITE] == 0.0 or t < window:
        if t < window and stats[R.S_FINITE] == 1.0:
            return R.UNDETERMINED, 0  # too few loops to judge
        return R.DIVERGENT, 0
    period = R.held_period(stats, tolerances)
    if period > 0:
        rate, transient = convergence(states, period, stats[R.S_SCALE], tolerances[0], t - states.shape[0])
        row[D_TRANSIENT] = transient
        if not math.isnan(rate):
            row[D_RATE] = rate
    return -1, period


@njit(**_JIT)
def _grow(halves, s, window, size):
    """Add loop ``s``'s log growth ``log(size)`` of the tangent to its half of the window.

    Returns False (and adds nothing) when the tangent vanished or overflowed: the estimate stops there.
    """
    if not (size > 0.0 and math.isfinite(size)):
        return False
    halves[0 if s < window // 2 else 1] += math.log(size)
    return True


@njit(**_JIT)
def _finish(stats, tolerances, row):
    code, period = R.decide(stats, tolerances)
    row[D_PERIOD] = period
    row[D_LYAPUNOV] = stats[R.S_LYAPUNOV]
    return code


# ----------------------------------------------------------------------------- looped blocks
@njit(**_JIT)
def _block_loop(cfg, arrays, x, n_stages, tangent):
    for stage in range(n_stages):
        x, tangent, _ = stage_apply(cfg, arrays, stage, x, tangent)
    flush_tiny(x)
    return x, tangent


@njit(**_JIT)
def _point_system(cfg0, arrays0, unit_constant, point, dtype_like):
    """The configuration and arrays of one grid point, ``point`` its row of values (``POINT_FIELDS``)."""
    kind = dtype_like.dtype.type
    constant = (point[P_INJECTION_SCALE] * unit_constant).astype(dtype_like.dtype)
    return with_point(cfg0, arrays0, kind(point[P_RESIDUAL_SCALE]), kind(point[P_SKIP_SCALE]),
                      point[P_NORM_EPS], constant)


@njit(**_JIT)
def _block_conclude(cfg, arrays, x, states, stats, t, window, tolerances, lyapunov, n_stages, first_layer,
                    n_layers, row):
    """Diagnostics and decision of one point, from its last window of loop states and its state ``x``."""
    n_tokens, d = x.shape
    code, period = _held(x, states, stats, t, window, tolerances, row)
    if code >= 0:
        return code
    scale = stats[R.S_SCALE]
    if period == 1:
        no_tangent = np.empty((0, n_tokens, d), dtype=x.dtype)
        stage_states = np.empty((n_stages + 1, n_tokens, d), dtype=x.dtype)
        stage_states[0] = x
        for stage in range(n_stages):
            stage_states[stage + 1] = stage_apply(cfg, arrays, stage, stage_states[stage], no_tangent)[0]
        spread = 0.0
        for stage in range(1, n_stages + 1):
            spread = max(spread, R._distance(stage_states[stage].ravel(), x.ravel()))
        stats[R.S_STAGE_SPREAD] = spread / scale
        distinct, min_cos, max_step = stage_degeneracy(stage_states.reshape(n_stages + 1, n_tokens * d),
                                                       first_layer, n_layers, tolerances[1] * scale)
        row[D_DISTINCT] = distinct
        row[D_MIN_COS] = min_cos
        row[D_MAX_STEP] = max_step / scale
    if lyapunov and period == 0:
        # the largest exponent: one tangent over one more window of loops, renormalised every loop
        tangent = (np.ones((1, n_tokens, d)) / math.sqrt(n_tokens * d)).astype(x.dtype)
        halves = np.zeros(2)
        for s in range(window):
            x, tangent = _block_loop(cfg, arrays, x, n_stages, tangent)
            size = _norm(tangent)
            if not _grow(halves, s, window, size):
                break
            tangent = (tangent / size).astype(x.dtype)
        _lyapunov_statistics(halves, window, stats)
    return _finish(stats, tolerances, row)


@njit(**_JIT)
def _group_columns(values, unit_constant, active, dtype_like):
    """Residual and skip scales (c,), injected term (d, c) and norm ε (c,) of the ``active`` points' columns.

    Column ``k·B + j`` is token ``k`` of point ``active[j]`` (``B`` points, token-major).
    """
    n_tokens, d = unit_constant.shape
    n_points = active.shape[0]
    columns = n_points * n_tokens
    kind = dtype_like.dtype
    alpha = np.empty(columns, dtype=kind)
    skip = np.empty(columns, dtype=kind)
    eps = np.empty(columns, dtype=kind)
    constant = np.empty((d, columns), dtype=kind)
    for j in range(active.shape[0]):
        p = active[j]
        for k in range(n_tokens):
            alpha[k * n_points + j] = values[p, P_RESIDUAL_SCALE]
            skip[k * n_points + j] = values[p, P_SKIP_SCALE]
            eps[k * n_points + j] = values[p, P_NORM_EPS]
            for a in range(d):
                constant[a, k * n_points + j] = values[p, P_INJECTION_SCALE] * unit_constant[k, a]
    return alpha, skip, constant, eps


@njit(**_JIT)
def _fill_windows(ring, t, points, out):
    """``out[j]`` = the last ``window`` loop states of point ``points[j]`` (rows in loop order).

    The ring holds states as columns (window × n × group); this transposes it for the points
    asked for, slot by slot, so that each cache line of the ring is fetched once rather than once
    per point (the ring of a group is larger than the cache). With fewer than ``window`` loops
    (``t < window``) only the last state, ``out[j, -1]``, is filled.
    """
    window, n, _ = ring.shape
    first = 0 if t >= window else window - 1
    for r in range(first, window):
        slot = ring[(t - window + r) % window]
        for j in range(points.shape[0]):
            p = points[j]
            for a in range(n):
                out[j, r, a] = slot[a, p]


@njit(**_JIT)
def _may_settle(ring, norms, t, active, running, reference_scales, max_period, tolerances):
    """The group's columns ``j`` (``running[j]``) whose window ending at loop ``t`` may settle.

    A cheap filter with no false negatives: a necessary condition of
    ``R.settled(window_statistics(window))``, read from the ring in place for every point at once.
    A period holds over the window's last quarter only if it holds at its last loop
    (``|h_t - h_{t-p}|`` small for some ``p <= max_period``); drift and divergence need a norm that
    grows over both halves of the window on most loops, or one beyond the bound (``decide``'s own
    tests, ``R._grows_over_both_halves`` and ``R._beyond_bound``). ``norms``
    (window × group, float64) holds each loop's state norm in the ring's slots, summed in the
    order ``window_statistics`` sums them (the same numbers, bit for bit), so the norm tests are
    its own; the distances keep a relative slack of 1e-9. A window that settles always passes;
    the windows that pass are decided in full. A point that does not settle costs
    ``max_period`` distances instead of its window transposed and reduced to statistics (56 µs
    for 50 states of 512 numbers; 0.05–0.5 % of a transformer-block sweep's time against
    0.8–1.8 %, benchmarks/README.md). Returns the columns, in order.
    """
    window, n, _ = ring.shape
    m = active.shape[0]
    slack = 1.0 + 1e-9
    maybe = np.zeros(m, dtype=np.bool_)
    limits = np.zeros(m)
    for j in range(m):
        if not running[j]:
            continue
        point = active[j]
        mean_norm = 0.0
        growing = 0
        previous = 0.0
        for r in range(window):
            norm = norms[(t - window + r) % window, point]
            mean_norm += norm / window
            if r > 0 and norm > previous:
                growing += 1
            previous = norm
        first = norms[(t - window) % window, point]
        middle = norms[(t - window + window // 2) % window, point]
        last = norms[(t - 1) % window, point]
        maybe[j] = (R._beyond_bound(last, reference_scales[point], tolerances)
                    or R._grows_over_both_halves(first, middle, last, growing / (window - 1), tolerances))
        limits[j] = tolerances[0] * max(mean_norm, reference_scales[point], 1e-300) * slack
    newest = ring[(t - 1) % window]
    totals = np.empty(m)
    for period in range(1, max_period + 1):
        older = ring[(t - 1 - period) % window]
        totals[:] = 0.0
        for a in range(n):
            for j in range(m):
                difference = np.float64(newest[a, active[j]]) - np.float64(older[a, active[j]])
                totals[j] += difference * difference
        for j in range(m):
            if running[j] and math.sqrt(totals[j]) <= limits[j]:
                maybe[j] = True
    return np.flatnonzero(maybe)


@njit(**_JIT)
def _record(x, n_tokens, active, live, every_live, first, last, n_points, slot):
    """Write the states of the group's live points among ``first:last`` (columns of ``x``) into a ring slot.

    A column that is not ``live`` belongs to a point that left the group but keeps its columns
    until dropping them saves work (``_block_group``): its slots keep the window its conclusion
    reads. ``every_live`` says that all columns are live.
    """
    d = x.shape[0]
    m = active.shape[0]
    if m == n_points and every_live:  # every point still here: whole rows
        for k in range(n_tokens):
            for a in range(d):
                for j in range(first, last):
                    slot[k * d + a, j] = x[a, k * m + j]
        return
    for k in range(n_tokens):
        for a in range(d):
            for j in range(first, last):
                if live[j]:
                    slot[k * d + a, active[j]] = x[a, k * m + j]


@njit(**_JIT)
def _column_squares(x, n_tokens, squares):
    """``squares[j]`` = the squared norm of point ``j``'s state (its ``n_tokens`` columns), in float64."""
    d = x.shape[0]
    m = squares.shape[0]
    squares[:] = 0.0
    for k in range(n_tokens):
        for a in range(d):
            for j in range(m):
                value = np.float64(x[a, k * m + j])
                squares[j] += value * value


@njit(**_JIT)
def _block_group(cfg, arrays, unit_constant, values, x0, loops, window, max_period, tolerances, early_exit,
                 lyapunov, n_stages, first_layer, n_layers, ring, windows, codes, diagnostics, finals):
    """Iterate a group of grid points together, one token row per column.

    The ``B`` points' ``T`` tokens are the ``B·T`` columns of one state (``_column_kernels``),
    so each norm, activation and product is a vectorised pass over the group, and attention
    works on every point's tiles at once. ``x0`` holds one start state for every point, or a
    single one that they share. ``ring`` (window × n ×
    at least B) keeps the last ``window`` states of every point, ``windows`` (batch × window × n, float64)
    receives a batch of them in loop order; both are the caller's, reused from group to group. With
    ``early_exit``, points whose regime is settled (and points that diverged) leave the group: its columns
    are compacted, so later loops cost only what the remaining points need (with attention, once that
    frees a whole vector of points; until then their columns run on unrecorded). Points are concluded one by
    one; ``finals`` (points × n, or no columns) receives each point's last loop state.
    """
    n_points = values.shape[0]
    n_tokens, d = x0.shape[1], x0.shape[2]
    like = x0[0]  # the state's dtype
    shared = x0.shape[0] == 1
    hidden = arrays.mlp_in.shape[1]
    active = np.arange(n_points)
    x = np.empty((d, n_points * n_tokens), dtype=x0.dtype)
    reference_scales = np.empty(n_points)
    for j in range(n_points):
        own = x0[0 if shared else j]
        reference_scales[j] = _norm(own)
        for k in range(n_tokens):
            x[:, k * n_points + j] = own[k]
    alpha, skip, constant, eps = _group_columns(values, unit_constant, active, like)
    attends = False
    for branch in arrays.branches:
        attends = attends or branch == BRANCH_ATTENTION
    tokens = n_tokens if attends else 0
    work = column_buffers(d, hidden, x.shape[1], like, tokens)
    batch = windows.shape[0]
    diverged = np.zeros(n_points, dtype=np.bool_)
    loops_at = np.full(n_points, loops, dtype=np.int64)
    squares = np.empty(n_points)
    norms = np.zeros((window, n_points))  # the ring's states' norms, for _may_settle
    # columns whose point still runs; a point that left keeps its columns while dropping them would
    # not make the group cheaper (attention pads a group to whole vectors of points: 16 float32
    # points cost less than 15 padded to 16)
    live = np.ones(n_points, dtype=np.bool_)
    n_left = 0  # columns of points that left
    still_running = np.empty(n_points, dtype=np.bool_)
    # the statistics of the window a point settled on, kept for its conclusion (same window, same numbers)
    settled_stats = np.empty((n_points, len(R.STAT_NAMES)))
    has_stats = np.zeros(n_points, dtype=np.bool_)
    t = 0
    while t < loops and active.shape[0] > 0:
        for stage in range(n_stages):
            column_stage(cfg, arrays, stage, x, n_tokens, alpha, skip, constant, eps, work)
        flush_tiny(x)
        m = active.shape[0]
        slot = ring[t % window]
        # only the loops a decision examines go into the ring: without early exit, the last window
        recording = early_exit or t >= loops - window
        if recording:
            _record(x, n_tokens, active, live, n_left == 0, 0, m, n_points, slot)
        _column_squares(x, n_tokens, squares[:m])
        if early_exit:  # for _may_settle
            for j in range(m):
                if live[j]:
                    norms[t % window, active[j]] = math.sqrt(squares[j])
        t += 1
        keep = still_running[:m]
        keep[:] = live[:m]
        leaving = 0
        for j in range(m):
            if live[j] and not math.isfinite(squares[j]):
                diverged[active[j]] = True
                loops_at[active[j]] = t
                keep[j] = False
                leaving += 1
                if not recording:  # its last state is its result
                    _record(x, n_tokens, active, live, n_left == 0, j, j + 1, n_points, slot)
        if early_exit and t >= window and t % window == 0 and t < loops:
            # the points that may settle (a cheap filter), then their windows in full
            candidates = _may_settle(ring, norms, t, active, keep, reference_scales, max_period, tolerances)
            n_candidates = candidates.shape[0]
            for start in range(0, n_candidates, batch):
                stop = min(n_candidates, start + batch)
                _fill_windows(ring, t, active[candidates[start:stop]], windows)
                for i in range(start, stop):
                    j = candidates[i]
                    stats = _window_decision(windows[i - start], reference_scales[active[j]], max_period,
                                             tolerances, False)
                    if R.settled(stats, tolerances):
                        loops_at[active[j]] = t
                        keep[j] = False
                        leaving += 1
                        settled_stats[active[j]] = stats
                        has_stats[active[j]] = True
        if leaving > 0:
            live[:m] = keep
            n_left += leaving
            n_staying = m - n_left
            if attends and n_staying > 0 and _padded_points(n_staying, like) == _padded_points(m, like):
                continue  # as many vectors of points either way: the columns stay, their points do not
            # compact: only the points still running keep columns
            staying = np.flatnonzero(keep)
            compact = np.empty((d, n_staying * n_tokens), dtype=x0.dtype)
            for a in range(d):
                for k in range(n_tokens):
                    for j in range(n_staying):
                        compact[a, k * n_staying + j] = x[a, k * m + staying[j]]
            x = compact
            active = active[staying]
            live[:n_staying] = True
            n_left = 0
            alpha, skip, constant, eps = _group_columns(values, unit_constant, active, like)
            work = column_buffers(d, hidden, x.shape[1], like, tokens)
    # conclude the points in batches of those that stopped at the same loop (one ring transpose each)
    stopped = np.minimum(loops_at, t)
    for t_p in np.unique(stopped):
        points = np.flatnonzero(stopped == t_p)
        for start in range(0, points.shape[0], batch):
            stop = min(points.shape[0], start + batch)
            _fill_windows(ring, t_p, points[start:stop], windows)
            for j in range(start, stop):
                p = points[j]
                point_cfg, point_arrays = _point_system(cfg, arrays, unit_constant, values[p], like)
                states = windows[j - start]
                final = states[window - 1].astype(x0.dtype).reshape(n_tokens, d)
                if finals.shape[1] > 0:
                    finals[p] = states[window - 1]
                if has_stats[p]:
                    stats = settled_stats[p]
                elif t_p >= window and not diverged[p]:
                    stats = _window_decision(states, reference_scales[p], max_period, tolerances, False)
                else:  # diverged, or too few loops for a window: no statistics beyond that
                    stats = np.full(len(R.STAT_NAMES), np.nan)
                    stats[R.S_FINITE] = 0.0 if diverged[p] else 1.0
                codes[p] = _block_conclude(point_cfg, point_arrays, final, states, stats, t_p, window,
                                           tolerances, lyapunov, n_stages, first_layer, n_layers,
                                           diagnostics[p])


@njit(cache=True, error_model="numpy", parallel=True)
def sweep_block_columns(cfg, arrays, unit_constant, values, x0, loops, window, max_period, tolerances,
                        early_exit, lyapunov, n_stages, first_layer, n_layers, starts, rings, windows,
                        finals):
    """Classify every point of one or more chunks in groups iterated together.

    Group ``g`` is points ``starts[g]:starts[g + 1]`` (at most ``rings.shape[3]`` of them).
    ``x0`` (1 or points × T × d) is the start state every point shares, or each point's own.
    ``rings`` (lanes × window × n × group) and ``windows`` (lanes × batch × window × n, float64)
    are work memory: each lane runs groups ``lane, lane + lanes, ...`` one after the other in its own
    buffers. They are allocated by the caller and reused across chunks, because fresh memory of
    this size costs a page fault per 4 KiB on first touch, which took a third of the time at
    d = 32. Which lane runs a group does not change its result. ``finals`` (points × n, float64,
    or points × 0 when not wanted) receives every point's last loop state.
    """
    n_points = values.shape[0]
    lanes = rings.shape[0]
    codes = np.empty(n_points, dtype=np.int8)
    diagnostics = np.full((n_points, len(DIAGNOSTICS)), np.nan)
    n_groups = starts.shape[0] - 1
    own = x0.shape[0] > 1  # else one shared start
    for lane in prange(lanes):
        for g in range(lane, n_groups, lanes):
            lo, hi = starts[g], starts[g + 1]
            _block_group(cfg, arrays, unit_constant, values[lo:hi], x0[lo * own:hi if own else 1], loops,
                         window, max_period, tolerances, early_exit, lyapunov, n_stages, first_layer,
                         n_layers, rings[lane], windows[lane], codes[lo:hi], diagnostics[lo:hi],
                         finals[lo:hi])
    return codes, diagnostics


# ----------------------------------------------------------------------------- maps
@njit(**_JIT)
def _map_point(step, jacobian, params, x0, loops, window, max_period, tolerances, early_exit, lyapunov, row,
               final):
    dim = x0.shape[0]
    ring = np.zeros((window, dim))
    x, stats, reference_scale = _start(x0)
    t = 0
    states = ring
    while t < loops:
        x = step(x, params)
        t += 1
        stop, states, stats = _watch(ring, x, t, loops, reference_scale, max_period, tolerances, early_exit,
                                     True, states, stats)
        if stop:
            break
    final[:] = x[:final.shape[0]]  # a final row of no columns: not wanted
    code, period = _held(x, states, stats, t, window, tolerances, row)
    if code >= 0:
        return code
    if lyapunov and period == 0:
        tangent = np.ones(dim) / math.sqrt(dim)
        halves = np.zeros(2)
        for s in range(window):
            tangent = jacobian(x, params) @ tangent
            x = step(x, params)
            size = _norm(tangent)
            if not _grow(halves, s, window, size):
                break
            tangent = tangent / size
        _lyapunov_statistics(halves, window, stats)
    return _finish(stats, tolerances, row)


_SWEEP_MAP_SIGNATURE = types.Tuple((types.int8[::1], types.float64[:, ::1]))(
    StepFunction, JacobianFunction, types.float64[:, ::1], types.float64[:, ::1], types.int64, types.int64,
    types.int64, types.float64[::1], types.boolean, types.boolean, types.float64[:, ::1])


@njit(_SWEEP_MAP_SIGNATURE, cache=True, error_model="numpy", parallel=True)
def sweep_map(step, jacobian, values, x0, loops, window, max_period, tolerances, early_exit, lyapunov,
              finals):
    """Classify every point of a chunk of map parameter vectors ``values`` (points × parameters).

    ``x0`` (1 or points × dim) is the start state every point shares, or each point's own;
    ``finals`` (points × dim, or points × 0 when not wanted) receives every point's last loop state.
    """
    n_points = values.shape[0]
    codes = np.empty(n_points, dtype=np.int8)
    diagnostics = np.full((n_points, len(DIAGNOSTICS)), np.nan)
    own = x0.shape[0] > 1  # else one shared start
    for i in prange(n_points):
        codes[i] = _map_point(step, jacobian, values[i].copy(), x0[i * own], loops, window, max_period,
                              tolerances, early_exit, lyapunov, diagnostics[i], finals[i])
    return codes, diagnostics
