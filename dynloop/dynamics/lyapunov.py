"""Lyapunov spectra by the QR method on the tangent dynamics, for every system."""

__all__ = ["lyapunov_spectrum", "LyapunovSpectrum", "default_exponent_count"]

from dataclasses import dataclass, field

import numpy as np

from ..systems.base import check_system
from .._errors import check_int, invalid
from .simulate import simulate


def default_exponent_count(state_size):
    """The full spectrum up to 64 state variables, the leading 8 beyond."""
    return state_size if state_size <= 64 else 8


@dataclass
class LyapunovSpectrum:
    """Lyapunov exponents of an orbit, per loop (per step for a map), in descending order.

    Attributes
    ----------
    exponents : ndarray
        The exponents, largest first.
    error : ndarray
        Finite-time uncertainty of each exponent: the difference between its estimates on the two
        halves of the run, and at least ``1/steps``.
    log_det_mean : float
        Orbit mean of ``ln|det J|`` of the loop Jacobian, computed from the stage Jacobians
        directly (NaN unless the whole spectrum was computed).
    sum_check : float
        ``|sum(exponents) - log_det_mean|``: zero up to rounding for a correct tangent map.
    steps : int
        Loops (steps) averaged over; fewer than asked when the orbit diverged.
    final_state : ndarray
        Where the orbit ended.

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> spectrum = dynloop.lyapunov_spectrum(dynloop.maps.henon(), steps=20000, transient=100)
    >>> bool(abs(spectrum.exponents.sum() - np.log(0.3)) < 1e-8)
    True
    """

    exponents: np.ndarray
    error: np.ndarray
    log_det_mean: float
    sum_check: float
    steps: int
    final_state: np.ndarray
    diverged: bool = False
    system_name: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def largest(self):
        """The largest exponent."""
        return float(self.exponents[0])

    def summary(self):
        """The exponents with their errors, and the determinant check, in words."""
        lines = [f"Lyapunov spectrum of {self.system_name} over {self.steps} loops"
                 + (" (the orbit diverged)" if self.diverged else "") + ":"]
        for i, (value, error) in enumerate(zip(self.exponents, self.error), start=1):
            lines.append(f"  λ{i} = {value:+.6f} ± {error:.1e}")
        if np.isfinite(self.log_det_mean):
            lines.append(f"  sum = {self.exponents.sum():+.10f}, orbit mean of ln|det J| = "
                         f"{self.log_det_mean:+.10f} (difference {self.sum_check:.1e})")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


def lyapunov_spectrum(system, x0=None, steps=10000, transient=1000, *, params=None, n_exponents=None,
                      seed=0):
    """Lyapunov exponents of the orbit of ``x0``: QR re-orthonormalisation after every loop.

    Parameters
    ----------
    system : BlockSpec, AffineLoop or Map
    x0 : array_like, optional
        Start state (the system's own by default).
    steps : int
        Loops averaged over, after the transient.
    transient : int
        Loops discarded first.
    params : dict, optional
        Map parameter overrides.
    n_exponents : int, optional
        How many leading exponents (default: all up to 64 state variables, else 8).
    seed : int
        Seeds the random orthonormal start basis.

    Returns
    -------
    LyapunovSpectrum

    Notes
    -----
    The tangent vectors are propagated with the analytic stage Jacobians (forward mode) in
    compiled code; ``ln|R_ii|`` of the QR factorisation after every loop sums to the exponents.
    When the whole spectrum is computed, the orbit mean of ``ln|det J|`` is computed separately
    from the stage Jacobians, and ``sum_check`` compares it with the sum of the exponents.

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> spectrum = dynloop.lyapunov_spectrum(dynloop.maps.logistic(r=4.0), steps=100000)
    >>> bool(abs(spectrum.largest - np.log(2)) < 5e-3)
    True
    """
    check_system(system)
    steps = check_int("steps", steps, minimum=1)
    transient = check_int("transient", transient, minimum=0)
    size = system.state_size
    count = default_exponent_count(size) if n_exponents is None else check_int("n_exponents", n_exponents, 1)
    if count > size:
        raise invalid("n_exponents", n_exponents, f"at most the number of state variables, {size}")
    start = simulate(system, transient, x0=x0, params=params, record="none")
    if start.diverged:
        return LyapunovSpectrum(np.full(count, np.inf), np.full(count, np.inf), np.nan, np.nan, 0,
                                start.final_state, diverged=True, system_name=system.name)
    run = QRRun(system, start.final_state, count, params=params, seed=seed)
    run.extend(steps // 2)
    run.extend(steps - steps // 2)
    spectrum = run.spectrum()
    spectrum.meta["transient"] = transient
    return spectrum


class QRRun:
    """The QR method's tangent run, lengthened segment by segment without repeating a loop.

    :func:`lyapunov_spectrum` runs two segments (the two halves it compares);
    :func:`dynloop.classify` doubles the run until the estimate is precise: every doubling adds
    one segment as long as all before it, so the halves it compares are all earlier segments
    against the new one, and no loop is iterated twice.

    Parameters
    ----------
    system : BlockSpec, AffineLoop or Map
    state : ndarray
        The state the run starts from (past any transient).
    count : int
        How many leading exponents.
    params : dict, optional
        Map parameter overrides.
    seed : int
        Seeds the random orthonormal start basis.

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> run = QRRun(dynloop.maps.logistic(r=4.0), np.array([0.3]), 1)
    >>> run.extend(20000)
    >>> run.extend(20000)
    >>> bool(abs(run.spectrum().largest - np.log(2)) < 5e-3), run.steps
    (True, 40000)
    """

    def __init__(self, system, state, count, *, params=None, seed=0):
        self.system = system
        self._resolved = system.resolve_params(params)
        self.state = state
        self.basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((system.state_size, count)))
        self.full = count == system.state_size
        self.seed = seed
        self.diverged = False  # a segment stopped at a non-finite value
        self.segments = []  # (loops done, sum of ln|R_ii| (count,), sum of ln|det J|) per segment

    @property
    def steps(self):
        """Loops run so far."""
        return sum(done for done, _, _ in self.segments)

    def extend(self, loops):
        """Run ``loops`` more loops (nothing once the orbit has diverged)."""
        if self.diverged:
            return
        state, basis, log_r, log_det, done = self.system._tangent_run(self.state, self.basis, loops,
                                                                      self._resolved, self.full)
        self.state, self.basis = state, basis
        self.segments.append((done, log_r, log_det))
        self.diverged = done < loops

    def spectrum(self):
        """The exponents over every loop run, their error from the last segment against all before it."""
        count = self.basis.shape[1]
        done = self.steps
        name = self.system.name
        meta = {"seed": self.seed}
        if done == 0:
            return LyapunovSpectrum(np.full(count, np.nan), np.full(count, np.inf), np.nan, np.nan, 0,
                                    np.asarray(self.state).reshape(self.system.state_shape), diverged=True,
                                    system_name=name, meta=meta)
        done_first = sum(segment[0] for segment in self.segments[:-1])
        done_second = self.segments[-1][0]
        log_r_first = sum((segment[1] for segment in self.segments[:-1]), np.zeros(count))
        log_r_second = self.segments[-1][1]
        exponents = (log_r_first + log_r_second) / done
        order = np.argsort(exponents)[::-1]
        if done_first > 0 and done_second > 0:
            first, second = log_r_first / done_first, log_r_second / done_second
            with np.errstate(invalid="ignore"):  # both halves -inf (a zero Jacobian): they agree exactly
                halves = np.where(first == second, 0.0, np.abs(first - second))
        else:
            halves = np.full(count, np.inf)
        error = np.maximum(halves, 1.0 / done)
        log_det_mean = sum(segment[2] for segment in self.segments) / done if self.full else np.nan
        total = exponents.sum()
        # equal, -inf included (a zero Jacobian: the sum and ln|det J| are both -inf), is no error
        sum_check = (0.0 if total == log_det_mean else abs(total - log_det_mean)) if self.full else np.nan
        return LyapunovSpectrum(exponents[order], error[order], float(log_det_mean), float(sum_check), done,
                                np.asarray(self.state).reshape(self.system.state_shape),
                                diverged=self.diverged, system_name=name, meta=meta)
