"""The block sweep's early-exit filter: every window that settles passes it, and most that don't, don't."""

import numpy as np
import pytest

from dynloop.dynamics import regimes as R
from dynloop.sweep import _kernels

WINDOW = 50
MAX_PERIOD = (WINDOW - 4) // 4  # as the sweep chooses it
N = 12  # numbers per state


def _windows():
    """Windows of loop states (``WINDOW`` × ``N``) of every kind, named."""
    rng = np.random.default_rng(3)
    t = np.arange(WINDOW)[:, None]
    c, v, w = (rng.standard_normal(N) for _ in range(3))
    cases = {
        "fixed point": c + 0.5 ** t * v,
        "2-cycle": c + np.where(t % 2 == 0, 1.0, -1.0) * v + 0.5 ** t * w,
        "3-cycle": np.array([c, v, w])[t[:, 0] % 3],
        "oscillating approach": c + (-0.9) ** t * v,
        "drift": c + 0.3 * (t + 200) * v,
        "exponential growth": 1.2 ** t * v,
        "beyond the bound": 1e12 * rng.standard_normal((WINDOW, N)),
        "slow approach": c + 0.97 ** t * v,
        "rotation": c + np.cos(0.7 * np.sqrt(2) * t) * v + np.sin(0.7 * np.sqrt(2) * t) * w,
        "noise": c + 0.1 * rng.standard_normal((WINDOW, N)),
        "wandering": np.cumsum(rng.standard_normal((WINDOW, N)), axis=0),
    }
    # the period-1 test at its threshold: a constant state with wiggles of sizes around the tolerance
    scale = np.linalg.norm(c)
    for factor in (0.3, 0.9, 0.999, 1.0, 1.001, 1.1, 3.0):
        wiggle = rng.standard_normal((WINDOW, N))
        wiggle *= factor * R.Tolerances().period * scale / np.linalg.norm(wiggle, axis=1, keepdims=True) / 2
        cases[f"wiggle {factor}"] = c + wiggle
    # ... and exactly at it: a constant state but for its last loop, a step of this many tolerances
    for factor in (0.99, 0.999999, 1.000001, 1.01):
        step = rng.standard_normal(N)
        states = np.tile(c, (WINDOW, 1))
        states[-1] += factor * R.Tolerances().period * np.linalg.norm(c) * step / np.linalg.norm(step)
        cases[f"step {factor}"] = states
    return cases


def _filter(windows, reference_scale, dtype=np.float64):
    """``_may_settle`` on a ring holding these windows (one point each), as the group kernel fills it."""
    m = len(windows)
    t = 3 * WINDOW + 7  # any loop count from WINDOW on: the ring's slots wrap around
    ring = np.empty((WINDOW, N, m), dtype=dtype)
    norms = np.empty((WINDOW, m))
    for j, states in enumerate(windows):
        for r in range(WINDOW):
            slot = (t - WINDOW + r) % WINDOW
            ring[slot, :, j] = states[r]
            norms[slot, j] = R._length(ring[slot, :, j].astype(np.float64))
    running = np.ones(m, dtype=np.bool_)
    return _kernels._may_settle(ring, norms, t, np.arange(m), running, np.full(m, reference_scale),
                                MAX_PERIOD, R.Tolerances().as_array())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_window_that_settles_passes_the_filter(dtype):
    cases = _windows()
    windows = [states.astype(dtype) for states in cases.values()]
    tolerances = R.Tolerances()
    settled = np.array([R.settled(R.window_statistics(states.astype(np.float64), 1.0, MAX_PERIOD,
                                                      tolerances.period), tolerances.as_array())
                        for states in windows])
    passed = np.zeros(len(windows), dtype=bool)
    passed[_filter(windows, 1.0, dtype)] = True
    names = np.array(list(cases))
    missed = names[settled & ~passed]
    assert missed.size == 0, f"settled but filtered out: {missed}"
    # the cases are what their names say: periods, drift and divergence settle; the rest do not
    for name in ("fixed point", "2-cycle", "3-cycle", "drift", "exponential growth", "beyond the bound"):
        assert settled[list(cases).index(name)], name
    # a step at the last loop settles up to the tolerance, and passes the filter exactly as far
    for factor in (0.99, 0.999999, 1.000001, 1.01):
        index = list(cases).index(f"step {factor}")
        if dtype == np.float64:
            assert settled[index] == passed[index] == (factor < 1), factor
    # ... and the filter spares the full decision of windows that cannot settle
    for name in ("rotation", "noise", "wandering"):
        index = list(cases).index(name)
        assert not settled[index] and not passed[index], name


def test_the_filter_skips_points_that_left_and_keeps_column_order():
    cases = _windows()
    windows = [cases["noise"], cases["fixed point"], cases["rotation"], cases["2-cycle"]]
    assert list(_filter(windows, 1.0)) == [1, 3]
    m = len(windows)
    t = WINDOW
    ring = np.empty((WINDOW, N, m))
    norms = np.empty((WINDOW, m))
    for j, states in enumerate(windows):
        ring[:, :, j] = states
        norms[:, j] = np.linalg.norm(states, axis=1)
    running = np.array([True, False, True, True])  # column 1 left at this loop (it diverged)
    assert list(_kernels._may_settle(ring, norms, t, np.arange(m), running, np.ones(m), MAX_PERIOD,
                                     R.Tolerances().as_array())) == [3]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_kernels_norms_are_those_of_window_statistics(dtype):
    # the filter's norm tests are exact only because the group kernel's per-loop norms
    # (_column_squares, columns of d numbers per token) equal window_statistics' (_length of the
    # flat state) bit for bit
    rng = np.random.default_rng(5)
    d, tokens, m = 24, 3, 7
    x = (rng.standard_normal((d, tokens * m)) * 10.0 ** rng.integers(-3, 4, (1, tokens * m))).astype(dtype)
    squares = np.empty(m)
    _kernels._column_squares(x, tokens, squares)
    for j in range(m):
        flat = np.concatenate([x[:, k * m + j] for k in range(tokens)]).astype(np.float64)
        assert np.sqrt(squares[j]) == R._length(flat)
