"""The regimes of a looped block (or any map) and the one place where the rules that decide them live.

``classify`` (one system, rich evidence) and the sweep engine (many points in a compiled kernel)
both reduce a window of loop states to the same vector of statistics with
:func:`window_statistics` and call the same compiled :func:`decide` on it.
"""

__all__ = ["Regime", "window_statistics", "period_error", "held_period", "decide", "settled", "STAT_NAMES",
           "Tolerances"]

import enum
import math
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from .._errors import invalid


class Regime(str, enum.Enum):
    """What a system ends up doing, loop after loop.

    Members (the string value is the name; ``Regime.code`` the integer used in arrays and files,
    declared with each member and independent of the order of the members):

    ``vanishing``
        The loop map converged and every stage's point is the same point: every layer acts as
        the identity there, the block's contribution vanished.
    ``cyclic``
        The loop map converged and the stage points are not all equal: every loop traces the same
        closed k-point cycle in latent space (a cyclic fixed point; partial degeneracy, some
        consecutive points equal, is reported by ``distinct_stage_points``).
    ``fixed_point``
        A one-stage map converged to a fixed point.
    ``periodic``
        The loop map repeats with period ``p >= 2`` (``p <= max_period``).
    ``quasiperiodic``
        Bounded, no period up to ``max_period``, largest Lyapunov exponent zero within its error,
        and not converging towards a cycle.
    ``chaotic``
        Bounded, largest Lyapunov exponent positive beyond its error.
    ``drifting``
        The norm grows without bound but linearly, not exponentially: the norm grows by the same
        amount over both halves of the window and the per-loop increment converges to a constant
        vector (the unnormalised residual stream of pre-norm blocks).
    ``divergent``
        Non-finite values, exponential growth (the norm grows by the same factor over both halves
        of the window, and the per-loop increment by the same factor as the norm), or a norm beyond
        the bound without a constant increment. Growth that is
        neither yet linear nor exponential is undetermined.
    ``undetermined``
        None of the above is established within the budget (for example algebraic convergence
        at a bifurcation point, or a period longer than ``max_period``); the evidence says what
        was seen.
    """

    # name, code: the code is what arrays and files store. Codes are declared here, once, and never
    # change or get reused (files saved with them must keep their meaning); a new regime may go
    # anywhere in this list with a new code. The compiled kernels read the constants derived below.
    VANISHING = "vanishing", 0
    CYCLIC = "cyclic", 1
    FIXED_POINT = "fixed_point", 2
    PERIODIC = "periodic", 3
    QUASIPERIODIC = "quasiperiodic", 4
    CHAOTIC = "chaotic", 5
    DRIFTING = "drifting", 6
    DIVERGENT = "divergent", 7
    UNDETERMINED = "undetermined", 8

    def __new__(cls, name, code):
        member = str.__new__(cls, name)
        member._value_ = name
        member._code = code
        return member

    @property
    def code(self):
        """Integer code of the regime, as stored in arrays, phase diagrams and sweep stores.

        Declared with the regime and fixed for good (not its position in the enum).

        Examples
        --------
        >>> from dynloop import Regime
        >>> Regime.from_code(Regime.CHAOTIC.code) is Regime.CHAOTIC
        True
        """
        return self._code

    @classmethod
    def from_code(cls, code):
        """The regime with integer code ``code``.

        Raises
        ------
        ValueError
            For an integer that is no regime's code.

        Examples
        --------
        >>> from dynloop import Regime
        >>> [Regime.from_code(r.code).value for r in (Regime.PERIODIC, Regime.DRIFTING)]
        ['periodic', 'drifting']
        """
        try:
            return _BY_CODE[int(code)]
        except KeyError:
            raise invalid("regime code", code, f"one of {sorted(_BY_CODE)} (Regime.from_code)") from None

    @classmethod
    def codes(cls):
        """Every regime code, ascending (an array index ``0..max(codes)`` covers them all).

        Examples
        --------
        >>> from dynloop import Regime
        >>> Regime.codes() == sorted(r.code for r in Regime)
        True
        """
        return sorted(_BY_CODE)

    def __str__(self):
        return self.value


def _code_table(regimes):
    """``{code: regime}`` for ``regimes``, refusing a missing, non-integer or repeated code."""
    table = {}
    for regime in regimes:
        code = regime.code
        if type(code) is not int or code < 0:
            raise TypeError(f"Regime.{regime.name} declares code {code!r}; codes are non-negative integers")
        if code in table:
            raise TypeError(f"Regime.{regime.name} and Regime.{table[code].name} both declare code {code}")
        table[code] = regime
    return table


_BY_CODE = _code_table(Regime)

# The codes as plain ints for the compiled kernels (numba reads module globals as constants).
VANISHING = Regime.VANISHING.code
CYCLIC = Regime.CYCLIC.code
FIXED_POINT = Regime.FIXED_POINT.code
PERIODIC = Regime.PERIODIC.code
QUASIPERIODIC = Regime.QUASIPERIODIC.code
CHAOTIC = Regime.CHAOTIC.code
DRIFTING = Regime.DRIFTING.code
DIVERGENT = Regime.DIVERGENT.code
UNDETERMINED = Regime.UNDETERMINED.code


@dataclass(frozen=True)
class Tolerances:
    """Every threshold a decision uses (all relative to the state's scale where they are distances).

    Attributes
    ----------
    period : float
        A period ``p`` holds when ``max |h_t - h_{t-p}| <= period * scale`` over the last cycle.
    stage : float
        Two stage points are the same point when closer than ``stage * scale``.
    linear_growth : float
        Norm growth is linear (drift) when the increments of the norm over the two halves of the
        window agree to this relative tolerance, exponential when the growth factors (log ratios)
        of the two halves agree to it.
    increment : float
        Drift needs the per-loop increment to change by less than this fraction over the window.
    bound : float
        A norm beyond ``bound`` times the reference scale (the start state's norm, at least 1)
        that is not drifting is divergent.
    multiplier : float
        A converged orbit whose spectral radius exceeds ``1 + multiplier`` cannot be an attractor:
        it is a floating-point collapse onto an unstable orbit.
    converging : float
        No period and a zero exponent, but the best period error shrank by more than this fraction
        from the first to the middle and from the middle to the last part of the run: still
        converging algebraically (undetermined), not quasi-periodic.
    growing : float
        Growth (drift or exponential divergence) needs the norm to grow in at least this fraction
        of the loops of the window; a bounded chaotic orbit grows in about half of them.
    lyapunov_zero : float
        Quasi-periodicity needs the largest Lyapunov exponent zero within an error no larger than
        this (per loop); a vaguer estimate leaves the orbit undetermined.
    collapse : float
        A period ``p >= 2`` that holds is not taken while the orbit is still approaching a shorter
        orbit: when, for a proper divisor ``q`` of ``p``, the period-``q`` error is below
        ``collapse * scale`` and shrank over the window by more than the ``converging`` fraction
        (see :func:`held_period`).
    """

    period: float = 1e-9
    stage: float = 1e-6
    linear_growth: float = 0.05
    increment: float = 0.05
    bound: float = 1e12
    multiplier: float = 1e-6
    converging: float = 0.1
    growing: float = 0.9
    lyapunov_zero: float = 0.01
    collapse: float = 1e-4

    def as_array(self):
        """The tolerances in the order the compiled :func:`decide` reads them."""
        return np.array(list(asdict(self).values()), dtype=np.float64)


# Statistics of a window of loop states, in the order of this tuple (window_statistics fills them,
# classify adds the spectral radius, the stage spread and the Lyapunov exponent where computed).
STAT_NAMES = (
    "finite", "reference_scale", "scale", "norm_first", "norm_middle", "norm_last", "growing_fraction",
    "period", "best_period", "period_error", "period_error_start", "period_error_middle", "increment",
    "increment_change", "increment_growth",
    "spectral_radius", "stage_spread", "lyapunov", "lyapunov_error", "is_map",
    "subperiod", "subperiod_error_start", "subperiod_error_middle", "subperiod_error")
(S_FINITE, S_REFERENCE_SCALE, S_SCALE, S_NORM_FIRST, S_NORM_MIDDLE, S_NORM_LAST, S_GROWING_FRACTION,
 S_PERIOD, S_BEST_PERIOD, S_PERIOD_ERROR, S_PERIOD_ERROR_START, S_PERIOD_ERROR_MIDDLE, S_INCREMENT,
 S_INCREMENT_CHANGE, S_INCREMENT_GROWTH,
 S_SPECTRAL_RADIUS, S_STAGE_SPREAD, S_LYAPUNOV, S_LYAPUNOV_ERROR, S_IS_MAP,
 S_SUBPERIOD, S_SUBPERIOD_ERROR_START, S_SUBPERIOD_ERROR_MIDDLE, S_SUBPERIOD_ERROR) = range(len(STAT_NAMES))


@njit(cache=True)
def _distance(a, b):
    total = 0.0
    for i in range(a.shape[0]):
        diff = np.float64(a[i]) - np.float64(b[i])
        total += diff * diff
    return math.sqrt(total)


@njit(cache=True)
def _length(a):
    """``|a|``, summed as ``_distance(a, 0)`` sums (the same number, half the memory reads)."""
    total = 0.0
    for i in range(a.shape[0]):
        value = np.float64(a[i])
        total += value * value
    return math.sqrt(total)


@njit(cache=True)
def _dot(a, b):
    """``a · b`` summed in order in float64 (BLAS's dot sums in an order of its own per CPU)."""
    total = 0.0
    for i in range(a.shape[0]):
        total += np.float64(a[i]) * np.float64(b[i])
    return total


@njit(cache=True)
def _increments(states, last, middle):
    """``|Δ_last|``, ``|Δ_last − Δ_middle|`` and ``|Δ_middle|``, for loop increments ``Δ_t = h_t − h_{t−1}``.

    In float64 whatever the states' precision, summed in index order as ``_distance`` sums.
    """
    size = change = size_middle = 0.0
    for i in range(states.shape[1]):
        at_last = np.float64(states[last, i]) - np.float64(states[last - 1, i])
        at_middle = np.float64(states[middle, i]) - np.float64(states[middle - 1, i])
        size += at_last * at_last
        change += (at_last - at_middle) * (at_last - at_middle)
        size_middle += at_middle * at_middle
    return math.sqrt(size), math.sqrt(change), math.sqrt(size_middle)


@njit(cache=True)
def _period_error(states, first, last, period, give_up=np.inf):
    """Largest ``|h_t - h_{t-p}|`` for ``t`` in ``[first, last]`` (rows of ``states``).

    Stops as soon as it exceeds ``give_up`` (the caller then only needs to know that it did).
    """
    worst = 0.0
    for t in range(first, last + 1):
        worst = max(worst, _distance(states[t], states[t - period]))
        if worst > give_up:
            break
    return worst


@njit(cache=True)
def period_error(states, period):
    """The period error ``max |h_t - h_{t-p}|`` over the last quarter of a window (absolute)."""
    last = states.shape[0] - 1
    span = max(states.shape[0] // 4, period)
    return _period_error(states, last - span + 1, last, period)


@njit(cache=True)
def window_statistics(states, reference_scale, max_period, period_tolerance):
    """Reduce a window of loop states (rows in loop order, flattened) to the decision statistics.

    Parameters
    ----------
    states : ndarray, shape (W, n)
        The last ``W`` loop states, ``W >= 4 * max_period + 4``.
    reference_scale : float
        Scale of the start state; distances are relative to ``max(mean norm, reference_scale)``.
    max_period : int
        Longest period looked for.
    period_tolerance : float
        Relative tolerance under which a period holds.

    Returns
    -------
    ndarray
        Statistics in the order of ``STAT_NAMES`` (spectral radius, stage spread and Lyapunov
        entries are NaN: they are not functions of the window).

    Notes
    -----
    A period ``p`` holds when ``|h_t - h_{t-p}| <= period_tolerance * scale`` for every ``t`` of
    the last quarter of the window (at least one whole cycle). The period errors of the first and
    middle quarters, against the last, tell whether the orbit is still converging towards a cycle.
    For a period ``p >= 2`` that holds, the ``subperiod`` entries give the proper divisor ``q`` of
    ``p`` with the smallest period-``q`` error over the last quarter, and that error over the first,
    middle and last quarters: :func:`held_period` reads them to tell a genuine ``p``-cycle from a
    slow oscillating approach to a shorter orbit.
    """
    n_rows = states.shape[0]
    stats = np.full(len(STAT_NAMES), np.nan)
    stats[S_IS_MAP] = 0.0
    stats[S_REFERENCE_SCALE] = reference_scale
    finite = True
    mean_norm = 0.0
    growing = 0
    previous = 0.0
    middle = n_rows // 2
    last = n_rows - 1
    for t in range(n_rows):
        norm = _length(states[t])
        if not math.isfinite(norm):
            finite = False
        mean_norm += norm / n_rows
        if t > 0 and norm > previous:
            growing += 1
        previous = norm
        if t == 0:
            stats[S_NORM_FIRST] = norm
        if t == middle:
            stats[S_NORM_MIDDLE] = norm
        if t == last:
            stats[S_NORM_LAST] = norm
    stats[S_GROWING_FRACTION] = growing / (n_rows - 1)
    stats[S_FINITE] = 1.0 if finite else 0.0
    if not finite:
        stats[S_NORM_FIRST] = stats[S_NORM_MIDDLE] = stats[S_NORM_LAST] = np.nan
        return stats
    scale = max(mean_norm, reference_scale, 1e-300)
    stats[S_SCALE] = scale
    # the smallest period that holds over the last quarter; else the one closest to holding
    span = max(n_rows // 4, max_period)
    best_period = 0
    best_candidate = 0
    best_error = np.inf
    best_error_start = np.inf
    best_error_middle = np.inf
    for period in range(1, max_period + 1):
        # a period that neither holds nor beats the best so far is not needed in full
        give_up = max(period_tolerance, best_error) * scale
        error = _period_error(states, last - span + 1, last, period, give_up) / scale
        if error <= period_tolerance or error < best_error:
            best_error = error
            best_candidate = period
            best_error_start = _period_error(states, max_period, max_period + span - 1, period) / scale
            best_error_middle = _period_error(states, middle - span // 2, middle - span // 2 + span - 1,
                                              period) / scale
        if error <= period_tolerance:
            best_period = period
            break
    stats[S_PERIOD] = best_period
    stats[S_SUBPERIOD] = 0.0
    # a period p >= 2 that holds: which proper divisor q of p is the orbit closest to repeating with
    # (the smallest period-q error over the last quarter), and that error over the window's quarters
    for q in range(1, best_period):
        if best_period % q == 0:
            error = _period_error(states, last - span + 1, last, q) / scale
            if stats[S_SUBPERIOD] == 0.0 or error < stats[S_SUBPERIOD_ERROR]:
                stats[S_SUBPERIOD] = q
                stats[S_SUBPERIOD_ERROR] = error
                stats[S_SUBPERIOD_ERROR_START] = _period_error(
                    states, max_period, max_period + span - 1, q) / scale
                stats[S_SUBPERIOD_ERROR_MIDDLE] = _period_error(
                    states, middle - span // 2, middle - span // 2 + span - 1, q) / scale
    stats[S_BEST_PERIOD] = best_candidate
    stats[S_PERIOD_ERROR] = best_error
    stats[S_PERIOD_ERROR_START] = best_error_start
    stats[S_PERIOD_ERROR_MIDDLE] = best_error_middle
    # the per-loop increment at the end, and how much it changed since the middle of the window
    size, change, size_middle = _increments(states, last, middle)
    stats[S_INCREMENT] = size / scale
    stats[S_INCREMENT_CHANGE] = change / size if size > 0 else np.inf
    stats[S_INCREMENT_GROWTH] = size / size_middle if size_middle > 0 else np.inf
    return stats


@njit(cache=True)
def held_period(stats, tolerances):
    """The period the window establishes, or 0 (the one rule for when a period counts).

    The smallest period ``p`` that holds over the last quarter of the window counts, unless the
    orbit is still approaching a shorter orbit: for a ``p >= 2``, the period-``q`` error of a proper
    divisor ``q`` of ``p`` is below ``collapse`` and shrank over the window by more than the
    ``converging`` fraction (see :class:`Tolerances`). A slow oscillating approach to a fixed point
    (multiplier near -1, or a complex pair near the unit circle) repeats with period 2 (or ``p``)
    long before it repeats with period 1. Then:

    - if the period-``q`` error shrank steadily (first quarter > middle > last), the orbit converges
      geometrically to a ``q``-orbit, and the period is ``q``, never ``p`` (``classify`` also asks
      Newton's method to confirm that orbit);
    - otherwise nothing is established: 0.

    Parameters
    ----------
    stats : ndarray
        Statistics in the order of ``STAT_NAMES``.
    tolerances : ndarray
        ``Tolerances.as_array()``.

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> from dynloop.dynamics import regimes as R
    >>> t = np.arange(256)[:, None]
    >>> approach = 0.5 + 0.3 * (-0.9) ** t        # x_t -> 0.5, multiplier -0.9
    >>> tolerances = R.Tolerances(period=3e-10)
    >>> stats = R.window_statistics(approach, 1.0, 8, tolerances.period)
    >>> int(stats[R.S_PERIOD]), R.held_period(stats, tolerances.as_array())  # repeats with period 2 ...
    (2, 1)
    >>> cycle = np.where(t % 2 == 0, 0.2, 0.7) + 0.3 * 0.5 ** t  # ... a 2-cycle does hold
    >>> R.held_period(R.window_statistics(cycle, 1.0, 8, tolerances.period), tolerances.as_array())
    2
    """
    period = int(stats[S_PERIOD])
    if period < 2 or stats[S_SUBPERIOD] == 0.0:
        return period
    start = stats[S_SUBPERIOD_ERROR_START]
    middle = stats[S_SUBPERIOD_ERROR_MIDDLE]
    last = stats[S_SUBPERIOD_ERROR]
    if last > tolerances[9] or not last < (1.0 - tolerances[6]) * start:
        return period
    if last < middle < start:
        return int(stats[S_SUBPERIOD])
    return 0


@njit(cache=True)
def settled(stats, tolerances):
    """Whether a window's statistics settle the regime (iterating longer would not change it).

    True for non-finite states, a period that counts (:func:`held_period`), drift and divergence.
    ``classify`` and the sweep kernels stop iterating on it.
    """
    if stats[S_FINITE] == 0.0 or held_period(stats, tolerances) > 0:
        return True
    code, _ = decide(stats, tolerances)
    return code == DRIFTING or code == DIVERGENT


@njit(cache=True)
def _grows_over_both_halves(first, middle, last, growing_fraction, tolerances):
    """Whether a window's norm grows over both halves and on most loops: what drift and growing
    divergence need (:func:`decide`; the sweep's early-exit filter asks it of windows too)."""
    return middle - first > 0.0 and last - middle > 0.0 and growing_fraction >= tolerances[7]


@njit(cache=True)
def _beyond_bound(last, reference_scale, tolerances):
    """Whether the window's last norm lies beyond the bound: divergent (:func:`decide`)."""
    return last > tolerances[4] * max(reference_scale, 1.0)


@njit(cache=True)
def decide(stats, tolerances):
    """The regime code and period the statistics establish (the rules, in one place).

    Parameters
    ----------
    stats : ndarray
        Statistics in the order of ``STAT_NAMES``; NaN where not computed.
    tolerances : ndarray
        ``Tolerances.as_array()``.

    Returns
    -------
    code : int
        A ``Regime`` code.
    period : int
        Loops per repeat (0 when there is none).
    """
    tol_stage = tolerances[1]
    tol_linear = tolerances[2]
    tol_increment = tolerances[3]
    tol_multiplier = tolerances[5]
    tol_converging = tolerances[6]
    tol_zero = tolerances[8]
    if stats[S_FINITE] == 0.0:
        return DIVERGENT, 0
    period = held_period(stats, tolerances)
    lyapunov = stats[S_LYAPUNOV]
    lyapunov_error = stats[S_LYAPUNOV_ERROR]
    has_lyapunov = not math.isnan(lyapunov)
    if period > 0:
        radius = stats[S_SPECTRAL_RADIUS]
        if math.isnan(radius) or radius <= 1.0 + tol_multiplier:
            if period > 1:
                return PERIODIC, period
            if stats[S_IS_MAP] == 1.0:
                return FIXED_POINT, 1
            spread = stats[S_STAGE_SPREAD]
            if not math.isnan(spread) and spread <= tol_stage:
                return VANISHING, 1
            return CYCLIC, 1
        # the iteration settled on an unstable orbit: a floating-point artefact, not an attractor
        if has_lyapunov and lyapunov > lyapunov_error:
            return CHAOTIC, 0
        return UNDETERMINED, 0
    first = stats[S_NORM_FIRST]
    middle = stats[S_NORM_MIDDLE]
    last = stats[S_NORM_LAST]
    growth_early = middle - first
    growth_late = last - middle
    if _grows_over_both_halves(first, middle, last, stats[S_GROWING_FRACTION], tolerances):
        ratio = growth_late / growth_early
        if abs(ratio - 1.0) <= tol_linear and stats[S_INCREMENT_CHANGE] <= tol_increment:
            return DRIFTING, 0
        # exponential: the norm grows by the same factor over both halves of the window
        log_early = math.log(middle / first) if first > 0.0 else np.inf
        log_late = math.log(last / middle)
        # ... and so does the per-loop increment (bounded increments, as in pre-norm blocks, cannot)
        increments_follow = abs(math.log(stats[S_INCREMENT_GROWTH]) - log_late) <= tol_linear * log_late
        if log_early > 0.0 and abs(log_late / log_early - 1.0) <= tol_linear and increments_follow:
            return DIVERGENT, 0
    if _beyond_bound(last, stats[S_REFERENCE_SCALE], tolerances):
        return DIVERGENT, 0
    if has_lyapunov and lyapunov > lyapunov_error:
        return CHAOTIC, 0
    if not has_lyapunov or lyapunov < -lyapunov_error or lyapunov_error > tol_zero:
        # attracting without a period up to max_period (a longer period or slow convergence),
        # or no exponent precise enough to call it zero
        return UNDETERMINED, 0
    # the largest exponent is zero within a small error: quasi-periodic, unless the orbit is still
    # approaching a cycle algebraically (its period error shrinks steadily, as at a bifurcation)
    shrink = 1.0 - tol_converging
    if (stats[S_PERIOD_ERROR] < shrink * stats[S_PERIOD_ERROR_MIDDLE]
            and stats[S_PERIOD_ERROR_MIDDLE] < shrink * stats[S_PERIOD_ERROR_START]):
        return UNDETERMINED, 0
    return QUASIPERIODIC, 0
