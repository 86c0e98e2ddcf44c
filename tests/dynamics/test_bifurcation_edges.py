"""Regimes near bifurcations: slow convergence is never read as a cycle (classify and sweeps alike).

Every expected answer is checked here by plain numpy iteration, independently of dynloop.
"""

import numpy as np
import pytest

import dynloop
from dynloop.dynamics.regimes import Tolerances


def _iterate(step, x, loops):
    for _ in range(loops):
        x = step(x)
    return x


def _rotation(rho, theta):
    return rho * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


@pytest.mark.parametrize("r", [2.9085, 2.95, 2.99])
def test_logistic_just_below_period_doubling_is_a_fixed_point(r):
    # plain iteration: the orbit goes to (r - 1) / r (the multiplier 2 - r is in (-1, 0))
    x = _iterate(lambda x: r * x * (1 - x), 0.5, 100_000)
    assert x == pytest.approx((r - 1) / r, abs=1e-12)
    result = dynloop.classify(dynloop.maps.logistic(r=r))
    assert result.regime is dynloop.Regime.FIXED_POINT and result.period == 1
    assert result.stage_fixed_points[0, 0] == pytest.approx(x, abs=1e-12)
    assert result.multipliers[0] == pytest.approx(2 - r, abs=1e-9)  # not (2 - r)**2
    assert result.newton_agrees


@pytest.mark.parametrize("rho, theta", [(0.99, 2 * np.pi / 5), (0.995, 2 * np.pi / 3 + 1e-3),
                                        (0.98, 2 * np.pi * 0.3819)])
def test_complex_pair_just_inside_the_unit_circle_is_a_fixed_point(rho, theta):
    matrix, offset = _rotation(rho, theta), np.array([1.0, 0.5])
    point = np.linalg.solve(np.eye(2) - matrix, offset)
    x = _iterate(lambda x: matrix @ x + offset, np.ones(2), 20_000)
    assert np.allclose(x, point, atol=1e-12)
    result = dynloop.classify(dynloop.maps.linear(matrix, c=offset))
    assert result.regime is dynloop.Regime.FIXED_POINT and result.period == 1
    assert np.allclose(result.stage_fixed_points[0], point, atol=1e-10)
    assert result.spectral_radius == pytest.approx(rho, rel=1e-9)


@pytest.mark.parametrize("r", [3.44, 3.445, 3.449])
def test_two_cycle_just_below_its_flip_has_period_two(r):
    # plain iteration: a 2-cycle (x_{t+2} = x_t != x_{t+1}) with multiplier 4 + 2r - r^2 in (-1, 0)
    x = _iterate(lambda x: r * x * (1 - x), 0.5, 200_000)
    y = r * x * (1 - x)
    assert abs(r * y * (1 - y) - x) < 1e-10 and abs(y - x) > 0.1
    result = dynloop.classify(dynloop.maps.logistic(r=r))
    assert result.regime is dynloop.Regime.PERIODIC and result.period == 2
    assert sorted(result.stage_fixed_points[:, 0]) == pytest.approx(sorted([x, y]), abs=1e-9)
    # (at 3.449 the iteration is still 1e-9 from the orbit; find_cycle takes the multipliers there)
    assert result.multipliers[0] == pytest.approx(4 + 2 * r - r * r, abs=1e-7)


def test_a_refined_orbit_whose_points_coincide_takes_the_shorter_period():
    # without the slow-approach rule (collapse=0) the window holds period 2 first at r = 2.9085;
    # Newton's 2-cycle is then the fixed point twice, and the label is the fixed point's
    r = 2.9085
    result = dynloop.classify(dynloop.maps.logistic(r=r), tol=Tolerances(collapse=0.0))
    assert result.evidence["period_reduced_from"] == 2
    assert result.regime is dynloop.Regime.FIXED_POINT and result.period == 1
    assert result.multipliers[0] == pytest.approx(2 - r, abs=1e-9)
    assert any("period-1 orbit" in note for note in result.evidence["notes"])


def test_a_slow_approach_is_reported_in_the_evidence():
    # modulus 0.999 at angle 2 pi / 7: within the 20,000-loop budget the window repeats with period 7
    # (|1 - mu^7| << |1 - mu|) before it repeats with period 1; Newton confirms the fixed point
    matrix, offset = _rotation(0.999, 2 * np.pi / 7), np.array([1.0, 0.5])
    point = np.linalg.solve(np.eye(2) - matrix, offset)
    x = _iterate(lambda x: matrix @ x + offset, np.ones(2), 40_000)
    assert np.allclose(x, point, atol=1e-12)
    result = dynloop.classify(dynloop.maps.linear(matrix, c=offset))
    assert result.evidence["approach"]["period_seen"] == 7
    assert result.evidence["approach"]["shorter_period"] == 1
    assert result.regime is dynloop.Regime.FIXED_POINT and result.period == 1
    assert np.allclose(result.stage_fixed_points[0], point, atol=1e-9)
    assert "approaching a period-1 orbit" in result.summary()


def test_sweeps_do_not_read_slow_convergence_as_cycles():
    r = np.linspace(2.85, 3.44, 120)
    diagram = dynloop.sweep(dynloop.maps.logistic(), {"r": r}, loops=2000, progress=False)
    labels = np.array([dynloop.Regime.from_code(code) for code in diagram.regimes])
    periods = diagram.diagnostics["period"]
    below, above = r < 3.0, r > 3.0
    # plain iteration says: a fixed point below r = 3, a 2-cycle above (up to 1 + sqrt 6)
    assert not np.any(labels[below] == dynloop.Regime.PERIODIC)
    assert set(labels[below]) <= {dynloop.Regime.FIXED_POINT, dynloop.Regime.UNDETERMINED}
    assert np.all(periods[labels == dynloop.Regime.PERIODIC] == 2)
    assert np.all(periods[labels == dynloop.Regime.FIXED_POINT] == 1)
    # undetermined only right at the bifurcation, where convergence is slowest
    assert np.all(np.abs(r[labels == dynloop.Regime.UNDETERMINED] - 3.0) < 0.02)
    assert np.sum(labels[above] == dynloop.Regime.PERIODIC) >= 0.9 * np.sum(above)
    assert np.sum(labels[below] == dynloop.Regime.FIXED_POINT) >= 0.9 * np.sum(below)


def test_sweeps_do_not_read_a_slow_spiral_as_a_cycle():
    # a complex pair of modulus 0.99 at angle 2 pi / 5: every offset c has one fixed point
    # (I - M)^-1 c, approached along a slow spiral that repeats with period 5 first
    matrix = _rotation(0.99, 2 * np.pi / 5)
    offsets = np.linspace(0.1, 2.0, 12)
    for c in offsets[::4]:  # plain iteration converges to the fixed point
        x = _iterate(lambda x: matrix @ x + np.array([c, 0.5]), np.ones(2), 20_000)
        assert np.allclose(x, np.linalg.solve(np.eye(2) - matrix, [c, 0.5]), atol=1e-12)
    diagram = dynloop.sweep(dynloop.maps.linear(matrix, c=[1.0, 0.5]), {"c[0]": offsets}, loops=4000,
                            progress=False)
    labels = {dynloop.Regime.from_code(code) for code in diagram.regimes}
    assert labels == {dynloop.Regime.FIXED_POINT}
    assert np.all(diagram.diagnostics["period"] == 1)
