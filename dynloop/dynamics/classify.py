"""Say which regime a system ends up in, and prove it with evidence."""

__all__ = ["classify", "Classification", "Degeneracy"]

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .._errors import check_int
from ..systems.base import check_system, register_fixed_point_finder
from ._measures import convergence, stage_degeneracy
from .lyapunov import QRRun, default_exponent_count
from .orbits import find_cycle
from .regimes import (STAT_NAMES, S_IS_MAP, S_LYAPUNOV, S_LYAPUNOV_ERROR, S_NORM_LAST, S_NORM_MIDDLE,
                      S_PERIOD, S_PERIOD_ERROR, S_PERIOD_ERROR_MIDDLE, S_PERIOD_ERROR_START, S_SCALE,
                      S_SPECTRAL_RADIUS, S_STAGE_SPREAD, S_BEST_PERIOD, S_SUBPERIOD, S_SUBPERIOD_ERROR,
                      S_SUBPERIOD_ERROR_MIDDLE, S_SUBPERIOD_ERROR_START,
                      Regime, Tolerances, decide, held_period, period_error, settled, window_statistics)
from .simulate import simulate

def _default_budget(state_size):
    """Loops the adaptive run may take: 20,000 for small states, 4,000 beyond 64 variables."""
    return 20000 if state_size <= 64 else 4000


@dataclass
class Degeneracy:
    """How far apart the per-stage points of a converged loop are.

    See docs/background.md, Metrics on real checkpoints.

    Attributes
    ----------
    min_cos : float
        ``min_{j != 1} cos(X*_1, X*_j)`` over the layer points: near 1, all layers share one point.
    max_step : float
        Largest distance between consecutive stage points (around the cycle).
    max_step_relative : float
        ``max_step`` over the state scale.
    """

    min_cos: float
    max_step: float
    max_step_relative: float


@dataclass
class Classification:
    """The regime of a system, with the evidence each decision rests on.

    Attributes
    ----------
    regime : Regime
    period : int or None
        Loops per repeat of the loop map (1 at a fixed point), ``None`` when there is none.
    stage_fixed_points : ndarray or None
        The attractor's points, one per stage: shape ``(p * S, *state_shape)``.
    distinct_stage_points : int or None
        How many of the per-layer points are distinct (``k`` for a non-degenerate cycle, 1 when the
        block's contribution vanished).
    multipliers : ndarray or None
        Eigenvalues of the loop map's Jacobian around the orbit, largest modulus first.
    spectral_radius : float or None
    lyapunov : ndarray or None
        Lyapunov exponents per loop (per step of a map), descending.
    lyapunov_sum_check : float or None
        ``|sum(lyapunov) - mean ln|det J||`` along the orbit (NaN where not applicable).
    convergence_rate : float or None
        Observed geometric rate per loop of the successive differences.
    transient_loops : int or None
        Loops until the successive difference stayed within tolerance.
    drift_velocity : float or None
        Growth of the state norm per loop (drifting regime).
    drift_directions : ndarray or None
        Limiting direction of every stage state (drifting regime), shape ``(S, *state_shape)``.
    degeneracy : Degeneracy or None
    newton_agrees : bool or None
        Whether Newton's method on the loop map converged to the point the iteration reached.
    evidence : dict
        Tolerances, budgets and every measured number the decision used.
    """

    regime: Regime
    period: int | None
    stage_fixed_points: np.ndarray | None
    distinct_stage_points: int | None
    multipliers: np.ndarray | None
    spectral_radius: float | None
    lyapunov: np.ndarray | None
    lyapunov_sum_check: float | None
    convergence_rate: float | None
    transient_loops: int | None
    drift_velocity: float | None
    drift_directions: np.ndarray | None
    degeneracy: Degeneracy | None
    newton_agrees: bool | None
    evidence: dict
    system_name: str = ""
    stage_names: tuple = ()
    window_states: np.ndarray | None = field(default=None, repr=False)
    system: object = field(default=None, repr=False)
    x0: np.ndarray | None = field(default=None, repr=False)
    params: dict | None = field(default=None, repr=False)

    def summary(self):
        """The regime and its evidence in words.

        Examples
        --------
        >>> import dynloop
        >>> print(dynloop.classify(dynloop.maps.logistic(r=2.5)).summary())  # doctest: +ELLIPSIS
        logistic: fixed_point...
        """
        e = self.evidence
        lines = [f"{self.system_name}: {self.regime.value}"
                 + (f" (period {self.period})" if self.period and self.period > 1 else "")]
        lines.append(f"  iterated {e['loops']} loops; window of {e['window']} loops; state scale "
                     f"{e['scale']:.4g}; tolerances: period {e['tolerances']['period']:.0e}, stage "
                     f"{e['tolerances']['stage']:.0e} (relative to the scale)")
        if e.get("period_error") is not None:
            lines.append(f"  smallest period error over the last quarter window: {e['period_error']:.3g} "
                         f"(first quarter: {e['period_error_start']:.3g})")
        if self.multipliers is not None:
            shown = ", ".join(f"{m:.6g}" for m in self.multipliers[:6])
            more = " …" if self.multipliers.size > 6 else ""
            lines.append(f"  multipliers (largest first): {shown}{more}; "
                         f"spectral radius {self.spectral_radius:.6g}")
        if self.newton_agrees is not None:
            verdict = "agrees" if self.newton_agrees else "DISAGREES"
            lines.append(f"  Newton on the loop map {verdict} with the "
                         f"iteration (distance {e['newton_distance']:.3g} relative to the scale)")
        if self.convergence_rate is not None:
            line = f"  observed convergence rate per loop {self.convergence_rate:.6g}"
            if self.spectral_radius is not None and self.period:  # a period the regime keeps
                root = "" if self.period == 1 else f" ^ (1/{self.period})"
                line += f" (spectral radius{root} predicts {self.spectral_radius ** (1.0 / self.period):.6g})"
            lines.append(f"{line}; transient {self.transient_loops} loops")
        if self.distinct_stage_points is not None:
            lines.append(f"  distinct per-layer points: {self.distinct_stage_points}; "
                         f"largest step between stage points {self.degeneracy.max_step:.4g} "
                         f"({self.degeneracy.max_step_relative:.3g} of the scale), min cos "
                         f"{self.degeneracy.min_cos:.6f}")
        if self.drift_velocity is not None:
            lines.append(f"  norm grows by {self.drift_velocity:.6g} per loop")
        if self.lyapunov is not None:
            shown = ", ".join(f"{v:+.5f}" for v in self.lyapunov[:6])
            error = e.get("lyapunov_error", float("nan"))
            lines.append(f"  Lyapunov exponents per loop: {shown} (± {error:.1e}"
                         f", from {e.get('lyapunov_source')})")
        for note in e.get("notes", []):
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def plot(self, path=None):
        """Distances and cosines to the per-stage fixed points against loops, and a 2-D PCA of the orbit
        of one token (docs/background.md, Metrics on real checkpoints). Returns the figure.

        Examples
        --------
        >>> import dynloop
        >>> fig = dynloop.classify(dynloop.maps.henon()).plot()
        """
        from ..plotting import plot_classification

        return plot_classification(self, path=path, run=self._replay())

    def _replay(self):
        """The run from the classified start state that the plot compares with the stage points.

        It covers the transient and 40 loops more (at least 80, at most 2000 loops); ``None``
        without a converged orbit (no stage points) or without the system.
        """
        from .simulate import simulate

        if self.stage_fixed_points is None or not self.period or self.system is None:
            return None
        loops = int(min(max(self.transient_loops or 0, 40) + 40, 2000))
        return simulate(self.system, loops, x0=self.x0, params=self.params)

    def to_dict(self):
        """The classification as JSON-ready Python values (arrays as lists, complex as pairs)."""
        def plain(value):
            if isinstance(value, np.ndarray):
                if np.iscomplexobj(value):
                    return {"real": value.real.tolist(), "imag": value.imag.tolist()}
                return value.tolist()
            if isinstance(value, (np.floating, np.integer)):
                return value.item()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        out = {name: plain(getattr(self, name)) for name in (
            "period", "stage_fixed_points", "distinct_stage_points", "multipliers", "spectral_radius",
            "lyapunov", "lyapunov_sum_check", "convergence_rate", "transient_loops", "drift_velocity",
            "newton_agrees", "evidence", "system_name", "stage_names")}
        out["regime"] = self.regime.value
        out["degeneracy"] = None if self.degeneracy is None else asdict(self.degeneracy)
        return out

    def save(self, path):
        """Write the classification (regime and evidence) as JSON."""
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=1)


def _tolerances(tol):
    if tol is None:
        return Tolerances()
    if isinstance(tol, Tolerances):
        return tol
    if isinstance(tol, dict):
        return Tolerances(**tol)
    return Tolerances(period=float(tol), stage=max(float(tol), Tolerances().stage))


def _shortest_period(loop_points, tolerance):
    """The smallest ``q`` dividing ``p = len(loop_points)`` with every point within ``tolerance`` of the
    point ``q`` loops later: an orbit whose ``p`` points coincide that way has period ``q``."""
    p = len(loop_points)
    for q in range(1, p):
        if p % q == 0 and all(np.linalg.norm(loop_points[i] - loop_points[(i + q) % p]) <= tolerance
                              for i in range(p)):
            return q
    return p


def _distance_to_orbit(state, loop_points):
    return min(float(np.linalg.norm(state - point)) for point in loop_points)


def _refine(system, stats, window_states, scale, tolerances, params, evidence, notes):
    """Newton's refinement of the orbit the window settled on (or is still approaching).

    Returns ``(period, cycle, agrees)``: the period of the refined orbit (0 when none is
    established), the :class:`Cycle` and whether Newton's orbit is the one the iteration reached,
    or approaches. Two rules keep slow convergence from being read as a cycle:

    - a refined ``p``-cycle whose points coincide (within the stage tolerance) is an orbit of the
      smallest period ``q`` dividing ``p`` that maps every point onto itself, and is refined again
      with that period;
    - an orbit still approaching a shorter ``q``-orbit (:func:`~dynloop.dynamics.regimes.held_period`)
      takes period ``q`` only when Newton finds a stable ``q``-orbit that the iteration is
      approaching (its distance to it shrank over the window); else nothing is established.

    Newton agrees with the iteration when it converged and the last state lies within
    ``max(100 · period tolerance, 1e-8)`` of its orbit (relative to the scale), or, for a stable
    orbit, when the distance shrank over the window by more than the ``converging`` fraction.
    """
    seen = int(stats[S_PERIOD])
    period = held_period(stats, tolerances.as_array())
    if seen == 0:
        return 0, None, None
    last, first = window_states[-1], window_states[0]
    if period != seen:
        shorter = int(stats[S_SUBPERIOD])
        evidence["approach"] = {"period_seen": seen, "shorter_period": shorter,
                                "error_start": float(stats[S_SUBPERIOD_ERROR_START]),
                                "error_middle": float(stats[S_SUBPERIOD_ERROR_MIDDLE]),
                                "error_last": float(stats[S_SUBPERIOD_ERROR])}
        steadily = "steadily" if period else "but not steadily"
        notes.append(f"the window repeats with period {seen}, but only because it is still approaching a "
                     f"period-{shorter} orbit: its period-{shorter} error shrank {steadily} over the window "
                     f"({stats[S_SUBPERIOD_ERROR_START]:.3g}, {stats[S_SUBPERIOD_ERROR_MIDDLE]:.3g}, "
                     f"{stats[S_SUBPERIOD_ERROR]:.3g} of the scale in its first, middle and last quarters)")
        if period == 0:
            stats[S_PERIOD] = 0.0
            return 0, None, None
    cycle = find_cycle(system, period, last, params=params)
    shortest = _shortest_period(cycle.loop_points, tolerances.stage * scale) if cycle.converged else period
    if shortest < period:
        evidence["period_reduced_from"] = period
        notes.append(f"Newton's period-{period} orbit repeats after {shortest} loop{'s' * (shortest > 1)} "
                     f"(its points coincide within the stage tolerance): it is a period-{shortest} orbit")
        period = shortest
        cycle = find_cycle(system, period, cycle.loop_points[0], params=params)
    distance = _distance_to_orbit(last, cycle.loop_points) / scale
    distance_first = _distance_to_orbit(first, cycle.loop_points) / scale
    evidence["newton_distance"] = distance
    evidence["newton_distance_window_start"] = distance_first
    evidence["newton_residual"] = cycle.residual
    at_orbit = distance <= max(100 * tolerances.period, 1e-8)
    approaching = cycle.stable and distance < (1.0 - tolerances.converging) * distance_first
    agrees = bool(cycle.converged and (at_orbit or approaching))
    if agrees and not at_orbit:
        notes.append(f"the iteration is still approaching the period-{period} orbit Newton found (distance "
                     f"{distance_first:.3g} -> {distance:.3g} of the scale over the window; spectral radius "
                     f"{cycle.spectral_radius:.6g}): converging, slowly")
    if period != seen and not agrees:
        notes.append(f"Newton did not confirm a stable period-{period} orbit that the iteration approaches: "
                     "no period established")
        stats[S_PERIOD] = 0.0
        return 0, None, None
    stats[S_PERIOD] = period
    stats[S_SUBPERIOD] = 0.0
    return period, cycle, agrees


def classify(system, *, x0=None, params=None, transient=None, window=None, tol=None, max_period=64,
             lyapunov=True, seed=0):
    """Classify the long-run behaviour of a looped block, affine loop or map.

    Parameters
    ----------
    system : BlockSpec, AffineLoop or Map
    x0 : array_like, optional
        Start state (the system's own by default).
    params : dict, optional
        Map parameter overrides.
    transient : int, optional
        Loops discarded before the window. By default the system is iterated window after window
        until a decision is settled or the budget is spent: 20,000 loops for states of at most 64
        numbers, 4,000 beyond.
    window : int, optional
        Loops examined (default ``max(4 * max_period + 4, 256)``).
    tol : float, dict or Tolerances, optional
        Relative tolerances (a float sets the period tolerance; see :class:`Tolerances`).
    max_period : int
        Longest period of the loop map looked for.
    lyapunov : bool or int
        ``True``: the full spectrum up to 64 state variables, else the leading 8; an integer: that
        many leading exponents; ``False``: none (chaos and quasi-periodicity are then undetermined).
    seed : int
        Seeds the tangent basis of the Lyapunov computation.

    Returns
    -------
    Classification

    Notes
    -----
    The rules are in :func:`dynloop.dynamics.regimes.decide`, shared with the sweep engine, and the
    regimes are defined in :class:`Regime`. A converged orbit is refined by Newton's method on the
    ``p``-fold loop map before its multipliers are computed; at a stable converged orbit the
    Lyapunov exponents are ``ln|multiplier| / p`` exactly, elsewhere they come from the QR method.

    Examples
    --------
    >>> import dynloop
    >>> result = dynloop.classify(dynloop.maps.logistic(r=3.2))
    >>> result.regime.value, result.period
    ('periodic', 2)
    """
    check_system(system)
    max_period = check_int("max_period", max_period, minimum=1)
    shortest_window = 4 * max_period + 4
    window = max(shortest_window, 256) if window is None else check_int("window", window, shortest_window)
    tolerances = _tolerances(tol)
    tol_array = tolerances.as_array()
    is_map = system.kind == "map"
    start = system.check_state(system.start_state(system.resolve_params(params)) if x0 is None else x0, "x0")
    reference_scale = float(np.linalg.norm(start))
    notes = []

    # iterate: one transient (given) or window after window until settled (adaptive)
    state = start
    loops_done = 0
    windows = []  # (loops done at the window's end, its loop states): for the convergence check
    if transient is not None:
        run = simulate(system, check_int("transient", transient, 0), x0=state, params=params, record="none")
        loops_done += run.loops_run
        state = run.final_state
    while True:
        run = simulate(system, window, x0=state, params=params, record="all")
        loops_done += run.loops_run
        if run.diverged:
            stats = np.full(len(STAT_NAMES), np.nan)
            stats[0] = 0.0
            break
        state = run.final_state
        # C-ordered: a strided view would compile window_statistics once more (numba types by layout)
        flat = np.ascontiguousarray(run.loop_states.reshape(run.loop_states.shape[0], -1))
        windows.append((loops_done, flat))
        stats = window_statistics(flat, reference_scale, max_period, tolerances.period)
        stats[S_IS_MAP] = 1.0 if is_map else 0.0
        out_of_budget = loops_done >= _default_budget(system.state_size)
        if settled(stats, tol_array) or transient is not None or out_of_budget:
            break
    if stats[0] and stats[S_PERIOD] == 0 and len(windows) > 4:
        # still converging? the best period's error at a quarter and at half of the run
        best = int(stats[S_BEST_PERIOD])
        for index, fraction in ((S_PERIOD_ERROR_START, 0.25), (S_PERIOD_ERROR_MIDDLE, 0.5)):
            _, earlier = min(windows, key=lambda w: abs(w[0] - fraction * loops_done))
            earlier_scale = max(float(np.mean(np.linalg.norm(earlier, axis=1))), reference_scale, 1e-300)
            stats[index] = period_error(earlier, best) / earlier_scale
    evidence = {"tolerances": asdict(tolerances), "loops": loops_done, "window": window,
                "reference_scale": reference_scale,
                "scale": float(stats[S_SCALE]) if stats[0] else float("nan"),
                "max_period": max_period, "statistics": {n: float(v) for n, v in zip(STAT_NAMES, stats)},
                "notes": notes}
    result = dict(period=None, stage_fixed_points=None, distinct_stage_points=None, multipliers=None,
                  spectral_radius=None, lyapunov=None, lyapunov_sum_check=None, convergence_rate=None,
                  transient_loops=None, drift_velocity=None, drift_directions=None, degeneracy=None,
                  newton_agrees=None)
    if stats[0] == 0.0:
        notes.append(f"non-finite values at loop {loops_done}")
        return Classification(regime=Regime.DIVERGENT, evidence=evidence, system_name=system.name,
                              stage_names=tuple(system.stage_names), window_states=run.stage_states,
                              system=system, x0=start, params=params, **result)
    scale = stats[S_SCALE]
    evidence["period_error"] = float(stats[S_PERIOD_ERROR])
    evidence["period_error_start"] = float(stats[S_PERIOD_ERROR_START])

    # a converged orbit (or one still approaching a shorter orbit): refine by Newton, multipliers,
    # stage points
    period, cycle, agrees = _refine(system, stats, run.loop_states, scale, tolerances, params, evidence,
                                    notes)
    if period > 0:
        result["newton_agrees"] = agrees
        stats[S_SPECTRAL_RADIUS] = cycle.spectral_radius
        points = cycle.stage_points if result["newton_agrees"] else np.concatenate(
            [system.stage_maps(run.loop_states[-period + i], params)[1:] for i in range(period)])
        result.update(period=period, stage_fixed_points=points, multipliers=cycle.multipliers,
                      spectral_radius=cycle.spectral_radius)
        entering = cycle.loop_points[0] if result["newton_agrees"] else run.loop_states[-period]
        stats[S_STAGE_SPREAD] = max(np.linalg.norm(p - entering) for p in points) / scale
        if period == 1 and not is_map:
            layers = system.layer_stages
            stage_states = np.concatenate([entering[None], points]).reshape(len(points) + 1, -1)
            distinct, min_cos, max_step = stage_degeneracy(stage_states, layers.start, len(layers),
                                                           tolerances.stage * scale)
            result["degeneracy"] = Degeneracy(min_cos=float(min_cos), max_step=float(max_step),
                                              max_step_relative=float(max_step / scale))
            result["distinct_stage_points"] = int(distinct)
        history = np.concatenate([states for _, states in windows])
        rate, transient = convergence(history, period, scale, tolerances.period,
                                      loops_done - history.shape[0])
        result["convergence_rate"] = None if np.isnan(rate) else float(rate)
        result["transient_loops"] = int(transient)
        if cycle.spectral_radius > 1.0 + tolerances.multiplier:
            notes.append("the iteration settled on an orbit whose multipliers lie outside the unit circle: "
                         "it cannot attract, so this is floating-point collapse, not a genuine fixed point")
        if not result["newton_agrees"]:
            notes.append("Newton's method did not converge to the point the iteration reached")
        orbit = cycle.loop_points if result["newton_agrees"] else run.loop_states[-period:]
        kink = system.jacobian_kink(orbit, params)
        if kink is not None:
            point, coordinate, forward, backward = kink
            evidence["jacobian_reliable"] = False
            notes.append(f"the map is not differentiable on this orbit: at x = "
                         f"{np.array2string(point, precision=6)} the one-sided differences along "
                         f"coordinate {coordinate} are {np.array2string(forward, precision=4)} and "
                         f"{np.array2string(backward, precision=4)}, so its finite-difference Jacobian, "
                         "the multipliers and the Lyapunov exponents computed from it are not precise "
                         "values (their error is reported as infinite)")

    # Lyapunov exponents: exact from the multipliers at a stable orbit, else by the QR method
    count = 0 if lyapunov is False else (default_exponent_count(system.state_size) if lyapunov is True
                                         else check_int("lyapunov", lyapunov, 1))
    exact = (cycle is not None and cycle.stable and result["newton_agrees"]
             and "jacobian_reliable" not in evidence)
    if count and exact:
        exponents = np.sort(np.log(np.abs(cycle.multipliers)) / period)[::-1][:count]
        result.update(lyapunov=exponents, lyapunov_sum_check=float("nan"))
        evidence.update(lyapunov_source="multipliers of the converged orbit", lyapunov_error=0.0)
        stats[S_LYAPUNOV], stats[S_LYAPUNOV_ERROR] = exponents[0], 0.0
    elif count:
        # the QR estimate, lengthened until its error is small against the exponent and against
        # the zero tolerance, within the loop budget; each doubling continues the same run
        steps = max(window, 2000) if is_map else window
        qr_run = QRRun(system, state, min(count, system.state_size), params=params, seed=seed)
        qr_run.extend(steps // 2)
        qr_run.extend(steps - steps // 2)
        while True:
            spectrum = qr_run.spectrum()
            error = 3.0 * spectrum.error[0]
            precise = error <= max(tolerances.lyapunov_zero / 2, 0.2 * abs(spectrum.exponents[0]))
            if precise or spectrum.diverged or 2 * steps > _default_budget(system.state_size):
                break
            qr_run.extend(steps)
            steps *= 2
        if evidence.get("jacobian_reliable") is False:
            error = float("inf")
        if spectrum.steps > 0:
            result.update(lyapunov=spectrum.exponents, lyapunov_sum_check=spectrum.sum_check)
            evidence.update(lyapunov_source=f"QR method over {spectrum.steps} loops",
                            lyapunov_error=float(error))
            stats[S_LYAPUNOV], stats[S_LYAPUNOV_ERROR] = spectrum.exponents[0], error

    code, decided_period = decide(stats, tol_array)
    regime = Regime.from_code(code)
    evidence["statistics"] = {n: float(v) for n, v in zip(STAT_NAMES, stats)}
    if regime is Regime.DRIFTING:
        stages = simulate(system, 2, x0=state, params=params).stage_states
        velocity = (stats[S_NORM_LAST] - stats[S_NORM_MIDDLE]) / (window - 1 - window // 2)
        directions = stages[-1, 1:] / np.linalg.norm(stages[-1, 1:].reshape(len(system.stage_names), -1),
                                                     axis=1).reshape((-1,) + (1,) * len(system.state_shape))
        result.update(drift_velocity=float(velocity), drift_directions=directions)
    if regime is Regime.UNDETERMINED:
        lyap, lyap_error = stats[S_LYAPUNOV], stats[S_LYAPUNOV_ERROR]
        if period == 0 and not count:
            notes.append("no period up to max_period and no Lyapunov exponents (lyapunov=False)")
        elif period == 0 and lyap < -lyap_error:
            notes.append(f"attracting (largest exponent {lyap:+.4g} ± {lyap_error:.1g}) but no period up to "
                         f"max_period={max_period}: a longer period or slow convergence")
        elif period == 0 and lyap_error > tolerances.lyapunov_zero:
            notes.append(f"the largest exponent {lyap:+.4g} ± {lyap_error:.1g} is too uncertain to call "
                         "chaos or quasi-periodicity within the budget")
        elif period == 0:
            notes.append("still converging towards a cycle when the budget ran out (algebraic or slow "
                         "convergence, e.g. at a bifurcation): no confident label")
    if regime not in (Regime.VANISHING, Regime.CYCLIC, Regime.FIXED_POINT, Regime.PERIODIC):
        result.update(period=None)
        if cycle is not None and not cycle.stable:
            result.update(stage_fixed_points=cycle.stage_points)
    else:
        result["period"] = decided_period
    return Classification(regime=regime, evidence=evidence, system_name=system.name,
                          stage_names=tuple(system.stage_names), window_states=run.stage_states,
                              system=system, x0=start, params=params, **result)


def _fixed_point(system):
    """The state entering the loop at the fixed point classify finds (None without one), and the regime.

    ``dynloop.systems.base.attracting_fixed_point`` asks this (registered below).
    """
    result = classify(system, lyapunov=False)
    entering = result.stage_fixed_points[-1] if result.period == 1 else None  # after the last stage
    return entering, result.regime.value


register_fixed_point_finder(_fixed_point)  # BlockSpec.linearize(at=None) linearises there
