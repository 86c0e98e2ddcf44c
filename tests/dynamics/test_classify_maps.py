"""Regimes of textbook maps and affine loops, against answers known in closed form.

See docs/background.md, Known answers.
"""


import numpy as np
import pytest

import dynloop
from dynloop import Regime

R_PERIOD_4 = 1 + np.sqrt(6)  # period doubling 2 -> 4


def test_regime_enum_values_and_codes():
    assert [r.value for r in Regime] == ["vanishing", "cyclic", "fixed_point", "periodic", "quasiperiodic",
                                         "chaotic", "drifting", "divergent", "undetermined"]
    assert all(Regime.from_code(r.code) is r for r in Regime)
    assert Regime("chaotic") is Regime.CHAOTIC and str(Regime.DRIFTING) == "drifting"


@pytest.mark.parametrize("r", [1.5, 2.5, 2.9])
def test_logistic_fixed_point_and_multiplier(r):
    result = dynloop.classify(dynloop.maps.logistic(r=r))
    assert result.regime is Regime.FIXED_POINT and result.period == 1
    np.testing.assert_allclose(result.stage_fixed_points[0, 0], (r - 1) / r, rtol=1e-12)
    np.testing.assert_allclose(result.multipliers[0], 2 - r, atol=1e-8)
    np.testing.assert_allclose(result.lyapunov[0], np.log(abs(2 - r)), atol=1e-8)
    assert result.newton_agrees
    assert result.convergence_rate == pytest.approx(abs(2 - r), rel=0.05)


@pytest.mark.parametrize("r", [3.2, 3.4])
def test_logistic_two_cycle_closed_form(r):
    result = dynloop.classify(dynloop.maps.logistic(r=r))
    assert result.regime is Regime.PERIODIC and result.period == 2
    expected = sorted((r + 1 + s * np.sqrt((r - 3) * (r + 1))) / (2 * r) for s in (-1, 1))
    np.testing.assert_allclose(sorted(result.stage_fixed_points[:, 0]), expected, rtol=1e-10)
    np.testing.assert_allclose(result.multipliers[0], 4 + 2 * r - r * r, atol=1e-8)


@pytest.mark.parametrize("r, period", [(3.5, 4), (3.55, 8)])
def test_logistic_period_doubling_cascade(r, period):
    result = dynloop.classify(dynloop.maps.logistic(r=r))
    assert result.regime is Regime.PERIODIC and result.period == period
    assert result.spectral_radius < 1
    # the orbit really is a period-p cycle of the map
    cycle = result.stage_fixed_points[:, 0]
    images = r * cycle * (1 - cycle)
    assert np.allclose(np.sort(images), np.sort(cycle), atol=1e-10)


def test_logistic_chaos_at_r4():
    result = dynloop.classify(dynloop.maps.logistic(r=4.0))
    assert result.regime is Regime.CHAOTIC and result.period is None
    spectrum = dynloop.lyapunov_spectrum(dynloop.maps.logistic(r=4.0), steps=200_000)
    assert abs(spectrum.largest - np.log(2)) < 5e-3


@pytest.mark.parametrize("r", [3.0, R_PERIOD_4, 1 + np.sqrt(8)])
def test_bifurcation_points_are_not_given_a_confident_label(r):
    # at a flip or tangent bifurcation convergence is algebraic: say so, never guess
    result = dynloop.classify(dynloop.maps.logistic(r=r))
    assert result.regime is Regime.UNDETERMINED
    assert any("still converging" in note or "slow convergence" in note for note in result.evidence["notes"])


@pytest.mark.parametrize("a, b, regime", [(1.7, 0.5, Regime.CHAOTIC), (0.5, 0.3, Regime.FIXED_POINT)])
def test_lozi_chaos_and_fixed_point(a, b, regime):
    # piecewise linear with det J = -b everywhere. At a = 0.5, b = 0.3 the fixed point x* = 1/(1 + a - b) > 0
    # has J = [[-a, 1], [b, 0]] with eigenvalues 0.352 and -0.852: it attracts
    result = dynloop.classify(dynloop.maps.lozi(a=a, b=b))
    assert result.regime is regime
    if regime is Regime.CHAOTIC:
        assert result.lyapunov[0] > 0.3
        assert abs(result.lyapunov.sum() - np.log(b)) < 1e-8
    else:
        x = 1 / (1 + a - b)
        np.testing.assert_allclose(result.stage_fixed_points[0], [x, b * x], rtol=1e-10)
        multipliers = np.sort(np.abs(np.linalg.eigvals([[-a, 1.0], [b, 0.0]])))[::-1]
        np.testing.assert_allclose(np.abs(result.multipliers), multipliers, rtol=1e-8)


@pytest.mark.parametrize("seed", range(4))
def test_affine_loops_with_known_spectral_radius(seed):
    rng = np.random.default_rng(seed)
    n, k = 5, 3
    matrices = [rng.standard_normal((n, n)) for _ in range(k)]
    offsets = [rng.standard_normal(n) for _ in range(k)]
    loop = dynloop.AffineLoop(matrices, offsets)
    radius = loop.spectral_radius()
    matrices = [m * (0.8 / radius) ** (1 / k) for m in matrices]   # now rho(loop matrix) = 0.8
    loop = dynloop.AffineLoop(matrices, offsets)
    assert loop.spectral_radius() == pytest.approx(0.8)
    result = dynloop.classify(loop)
    assert result.regime is Regime.CYCLIC and result.distinct_stage_points == k
    np.testing.assert_allclose(result.stage_fixed_points[-1], loop.fixed_point(), rtol=1e-10, atol=1e-12)
    assert result.spectral_radius == pytest.approx(0.8, rel=1e-8)
    grown = dynloop.AffineLoop([m * (1.25 / 0.8) ** (1 / k) for m in matrices], offsets)
    assert dynloop.classify(grown).regime is Regime.DIVERGENT


@pytest.mark.parametrize("epsilon, converges", [(0.5, True), (1.5, False)])
def test_residual_block_converges_iff_every_eigenvalue_is_inside(epsilon, converges):
    a = np.diag([-1.0, -1.8])            # |1 + eps a| < 1 for both iff eps < 1/0.9
    system = dynloop.maps.linear(np.eye(2) + epsilon * a)
    result = dynloop.classify(system, x0=[1.0, -1.0])
    assert (result.regime is Regime.FIXED_POINT) == converges
    if converges:
        np.testing.assert_allclose(result.stage_fixed_points[0], 0.0, atol=1e-12)


def test_doubling_map_float_collapse_is_flagged():
    def doubling(x, p):
        return np.array([(2.0 * x[0]) % 1.0])

    def jacobian(x, p):
        return np.array([[2.0]])

    system = dynloop.Map.from_function(doubling, 1, jacobian=jacobian, name="doubling", x0=0.1234)
    result = dynloop.classify(system)
    assert result.regime is not Regime.FIXED_POINT
    assert result.regime is Regime.CHAOTIC
    assert any("floating-point collapse" in note for note in result.evidence["notes"])


@pytest.mark.parametrize("r, regime", [(1.9, Regime.FIXED_POINT), (2.1, Regime.QUASIPERIODIC)])
def test_delayed_logistic_neimark_sacker(r, regime):
    # fixed point x* = 1 - 1/r loses stability through a complex pair at r = 2 (det J = 1)
    result = dynloop.classify(dynloop.maps.delayed_logistic(r=r))
    assert result.regime is regime
    if regime is Regime.FIXED_POINT:
        np.testing.assert_allclose(result.stage_fixed_points[0], [1 - 1 / r] * 2, rtol=1e-10)
        assert abs(result.multipliers[0].imag) > 0
        assert abs(result.multipliers[0]) == pytest.approx(np.sqrt(r - 1), rel=1e-8)


def test_classification_explains_itself(tmp_path):
    result = dynloop.classify(dynloop.maps.logistic(r=3.2))
    text = result.summary()
    assert "periodic (period 2)" in text and "multipliers" in text and "Newton" in text
    result.save(tmp_path / "result.json")
    import json
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["regime"] == "periodic" and saved["period"] == 2
    figure = result.plot(tmp_path / "result.png")
    assert (tmp_path / "result.png").stat().st_size > 5000 and len(figure.axes) == 3


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_period"):
        dynloop.classify(dynloop.maps.logistic(), max_period=0)
    with pytest.raises(ValueError, match="window"):
        dynloop.classify(dynloop.maps.logistic(), window=10, max_period=8)


@pytest.mark.parametrize("trace, det", [(0.5, 0.3), (-1.2, 0.5), (1.6, 0.7), (0.0, -0.6),   # inside
                                        (1.5, 0.4), (-1.5, 0.4), (0.3, 1.1), (2.2, 0.9)])   # outside
def test_two_dimensional_jury_triangle(trace, det):
    # a 2-D affine map with J of the given trace and determinant: stable iff |tr| < 1 + det and det < 1
    matrix = np.array([[0.0, -det], [1.0, trace]])      # companion matrix: tr = trace, det = det
    system = dynloop.maps.linear(matrix, c=np.array([0.3, -0.2]))
    stable = abs(trace) < 1 + det and det < 1
    result = dynloop.classify(system, x0=[0.1, 0.1])
    assert (result.regime is Regime.FIXED_POINT) == stable, result.summary()
    if stable:
        expected = np.linalg.solve(np.eye(2) - matrix, [0.3, -0.2])
        np.testing.assert_allclose(result.stage_fixed_points[0], expected, rtol=1e-10)
