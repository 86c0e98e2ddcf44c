"""Window statistics, the numbers every regime decision reads, against a plain numpy oracle."""

import numpy as np
import pytest

from dynloop.dynamics import regimes as R


def _statistics_oracle(states, reference_scale, max_period, tolerance):
    """What window_statistics computes, written with numpy row norms (no blocks, no early give-up)."""
    states = states.astype(np.float64)
    n_rows = len(states)
    norms = np.linalg.norm(states, axis=1)
    scale = max(norms.mean(), reference_scale, 1e-300)
    last, middle, span = n_rows - 1, n_rows // 2, max(n_rows // 4, max_period)

    def error(first, stop, period):
        return max(np.linalg.norm(states[t] - states[t - period]) for t in range(first, stop + 1)) / scale

    errors = [error(last - span + 1, last, p) for p in range(1, max_period + 1)]
    holding = [p for p, e in zip(range(1, max_period + 1), errors) if e <= tolerance]
    period = holding[0] if holding else 0
    best = period or 1 + int(np.argmin(errors))
    # for a period p >= 2 that holds: the proper divisor with the smallest error over the last quarter
    divisors = [q for q in range(1, period) if period % q == 0]
    sub = min(divisors, key=lambda q: (errors[q - 1], q)) if period >= 2 else 0
    subperiod = {R.S_SUBPERIOD: sub}
    if sub:
        subperiod.update({R.S_SUBPERIOD_ERROR: errors[sub - 1],
                          R.S_SUBPERIOD_ERROR_START: error(max_period, max_period + span - 1, sub),
                          R.S_SUBPERIOD_ERROR_MIDDLE: error(middle - span // 2, middle - span // 2 + span - 1,
                                                            sub)})
    at_last, at_middle = states[last] - states[last - 1], states[middle] - states[middle - 1]
    size, size_middle, change = (np.linalg.norm(v) for v in (at_last, at_middle, at_last - at_middle))
    return {R.S_FINITE: 1.0, R.S_SCALE: scale, R.S_NORM_FIRST: norms[0], R.S_NORM_MIDDLE: norms[middle],
            R.S_NORM_LAST: norms[last], R.S_GROWING_FRACTION: np.mean(norms[1:] > norms[:-1]),
            R.S_PERIOD: period, R.S_BEST_PERIOD: best, R.S_PERIOD_ERROR: errors[best - 1],
            R.S_PERIOD_ERROR_START: error(max_period, max_period + span - 1, best),
            R.S_PERIOD_ERROR_MIDDLE: error(middle - span // 2, middle - span // 2 + span - 1, best),
            R.S_INCREMENT: size / scale, R.S_INCREMENT_CHANGE: change / size if size > 0 else np.inf,
            R.S_INCREMENT_GROWTH: size / size_middle if size_middle > 0 else np.inf, **subperiod}


def _windows(n_rows=100, n=8):
    rng = np.random.default_rng(5)
    t = np.arange(n_rows)[:, None]
    cycle = rng.standard_normal((3, n))
    return {
        "converging to a point": 2.0 + rng.standard_normal(n) * 0.7 ** t,
        "converging to a 3-cycle": cycle[t[:, 0] % 3] + rng.standard_normal((n_rows, n)) * 0.8 ** t,
        "6-cycle": rng.standard_normal((6, n))[t[:, 0] % 6],
        "oscillating approach": 2.0 + rng.standard_normal(n) * (-0.95) ** t,
        "5-cycle": rng.standard_normal((5, n))[t[:, 0] % 5],
        "drifting": rng.standard_normal(n) + 0.3 * t * rng.standard_normal(n) + 0.1 * np.sin(t),
        "random walk": np.cumsum(rng.standard_normal((n_rows, n)), axis=0),
        "slow spiral": (1 + 0.01 * t) * np.column_stack([np.cos(0.37 * t[:, 0]), np.sin(0.37 * t[:, 0])]
                                                        * (n // 2)),
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(_windows()))
def test_window_statistics_match_a_numpy_oracle(name, dtype):
    states = _windows()[name].astype(dtype)
    tolerance = 3e-3 if name == "oscillating approach" else 1e-6  # (period 2 holds before period 1)
    stats = R.window_statistics(states, 0.5, 24, tolerance)
    expected = _statistics_oracle(states, 0.5, 24, tolerance)
    for index, value in expected.items():
        assert stats[index] == pytest.approx(value, rel=1e-12, abs=1e-300), R.STAT_NAMES[index]
    assert R.window_statistics(np.full((100, 8), np.inf, dtype=dtype), 0.5, 24, 1e-6)[R.S_FINITE] == 0.0


def test_periods_found_where_known():
    windows = _windows()
    found = {name: int(R.window_statistics(w, 0.5, 24, 1e-6)[R.S_PERIOD]) for name, w in windows.items()}
    assert found["converging to a point"] == 1 and found["5-cycle"] == 5
    assert found["converging to a 3-cycle"] == 3
    assert found["drifting"] == 0 and found["random walk"] == 0 and found["slow spiral"] == 0
    # the period error of a window, as classify reads it from an earlier window
    assert R.period_error(windows["5-cycle"], 5) == 0.0
    assert R.period_error(windows["drifting"], 1) > 0.0


def test_held_period_tells_a_cycle_from_a_slow_approach():
    """An oscillating approach to a point repeats with period 2 first; only a real 2-cycle holds it."""
    windows = _windows()
    tolerances = R.Tolerances(period=3e-3, collapse=0.1).as_array()
    approach = R.window_statistics(windows["oscillating approach"], 0.5, 24, 3e-3)
    assert approach[R.S_PERIOD] == 2 and approach[R.S_SUBPERIOD] == 1
    assert R.held_period(approach, tolerances) == 1  # converging to a point, not a 2-cycle
    assert R.settled(approach, tolerances)
    assert R.decide(approach, tolerances) == (R.CYCLIC, 1)
    # the same error shrinking but not steadily: nothing is established
    unsteady = approach.copy()
    unsteady[R.S_SUBPERIOD_ERROR_MIDDLE] = 2 * unsteady[R.S_SUBPERIOD_ERROR_START]
    assert R.held_period(unsteady, tolerances) == 0 and not R.settled(unsteady, tolerances)
    assert R.decide(unsteady, tolerances) == (R.UNDETERMINED, 0)
    for name, period in (("6-cycle", 6), ("converging to a 3-cycle", 3), ("5-cycle", 5)):
        stats = R.window_statistics(windows[name], 0.5, 24, 1e-6)
        assert R.held_period(stats, tolerances) == period, name
        assert R.settled(stats, tolerances)


# ------------------------------------------------------------------------------ codes in files
#: The codes files saved before codes were declared explicitly hold (they were the enum positions
#: then). Frozen: changing one would change the meaning of every saved phase diagram and store.
FROZEN_CODES = {"vanishing": 0, "cyclic": 1, "fixed_point": 2, "periodic": 3, "quasiperiodic": 4,
                "chaotic": 5, "drifting": 6, "divergent": 7, "undetermined": 8}


def test_every_regime_declares_its_frozen_code():
    assert {regime.value: regime.code for regime in R.Regime} == FROZEN_CODES
    assert all(type(regime.code) is int for regime in R.Regime)
    assert all(R.Regime.from_code(regime.code) is regime for regime in R.Regime)
    assert R.Regime.codes() == sorted(FROZEN_CODES.values())


def test_compiled_constants_are_the_declared_codes():
    # the kernels' plain-int globals (VANISHING, ..., UNDETERMINED) are the declared codes
    for regime in R.Regime:
        value = getattr(R, regime.name)
        assert type(value) is int and value == regime.code, regime


def test_code_table_does_not_depend_on_declaration_order():
    members = list(R.Regime)
    forward = R._code_table(members)
    assert R._code_table(members[::-1]) == forward == R._code_table(members[3:] + members[:3])
    assert {code: regime.value for code, regime in forward.items()} == {c: n for n, c in FROZEN_CODES.items()}


@pytest.mark.parametrize("codes, message", [((0, 1, 1), "both declare code 1"), ((0, -1), "declares code -1"),
                                            ((0, 2.0), "declares code 2.0")])
def test_code_table_refuses_repeated_or_non_integer_codes(codes, message):
    from types import SimpleNamespace

    members = [SimpleNamespace(name=f"R{i}", code=code) for i, code in enumerate(codes)]
    with pytest.raises(TypeError, match=message):
        R._code_table(members)


@pytest.mark.parametrize("code", [-1, 9, 127])
def test_from_code_refuses_a_code_no_regime_declares(code):
    # -1 used to index list(Regime) from the end and answer 'undetermined'
    with pytest.raises(ValueError, match=rf"regime code={code} is not allowed: one of \[0, 1, .*8\]"):
        R.Regime.from_code(code)
