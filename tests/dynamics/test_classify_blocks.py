"""Each regime of a looped block, built on purpose, and classified back (docs/background.md:
Norm placements, Injection schemes, Regimes).

Every block here is constructed so that its long-run behaviour is known without the classifier:
zero branches (vanishing), a contracting loop (cyclic fixed point), W = cI under pre-norm (linear
drift with an analytic velocity), post-norm linear blocks as the normalised power method (period 2
for a negative dominant eigenvalue, rotation by 1 radian for a complex pair), expanding linear
maps without a norm (divergence), and a bounded block whose largest Lyapunov exponent is measured
independently over a long run (chaos). Then ``dynloop.classify`` has to give the same answer.
"""

import json

import matplotlib.figure
import numpy as np
import pytest

import dynloop
from dynloop import BlockSpec, Regime

LAYER_ARRAYS = ("linear", "attn_q", "attn_k", "attn_v", "attn_o", "mlp_in", "mlp_out", "norm_in", "norm_out")


def orthogonal(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def linear_block(matrices, *, norm, residual_scale=1.0, tokens=2, **fields):
    """A linear block with layer ``ℓ`` equal to ``I + a W_ℓ = matrices[ℓ]`` (exact textbook weights)."""
    matrices = np.asarray(matrices, dtype=float)
    k, d, _ = matrices.shape
    weights = (matrices - np.eye(d)) / residual_scale
    return BlockSpec(width=d, tokens=tokens, layers=k, mixer="linear", norm=norm, injection="none",
                     norm_eps=0.0, residual_scale=residual_scale, weights={"linear": weights}, **fields)


def relative(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300))


# ----------------------------------------------------------------------------- vanishing
@pytest.mark.parametrize("case", ["residual_scale_zero", "zero_weights_transformer", "zero_mlp_out_concat"])
def test_vanishing_when_every_branch_is_zero(case):
    if case == "residual_scale_zero":
        spec = BlockSpec(width=4, tokens=2, layers=3, mixer="mlp", norm="pre", injection="none",
                         residual_scale=0.0, seed=3)
    elif case == "zero_weights_transformer":
        zeros = np.zeros((3, 8, 8))
        spec = BlockSpec(width=8, tokens=3, layers=3, heads=2, mixer="transformer", norm="sandwich",
                         injection="none", norm_eps=0.0, seed=4,
                         weights={"attn_v": zeros, "mlp_out": np.zeros((3, 8, 32))})
    else:
        # the concat adapter is the identity (W_h = I, W_e = 0) and the MLP output weights are zero
        spec = BlockSpec(width=4, tokens=2, layers=2, mixer="mlp", norm="pre", injection="concat", seed=5,
                         weights={"mlp_out": np.zeros((2, 4, 16)), "inject_h": np.eye(4),
                                  "inject_e": np.zeros((4, 4))})
    result = dynloop.classify(spec)
    assert result.regime is Regime.VANISHING, result.summary()
    assert result.period == 1
    assert result.distinct_stage_points == 1
    # independently: with zero branches every stage maps the point to itself, and the point is the
    # start state (renormalised row by row under the sandwich norm: g = 1, eps = 0)
    start = spec.start_state()
    if spec.norm == "sandwich":
        start = start / np.sqrt(np.mean(start ** 2, axis=1, keepdims=True))
    unchanged = np.broadcast_to(start, (spec.n_stages + 1,) + start.shape)
    np.testing.assert_allclose(spec.stage_maps(start), unchanged, rtol=0, atol=1e-12)
    for point in result.stage_fixed_points:
        np.testing.assert_allclose(point, start, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- cyclic
CYCLIC_SPEC = BlockSpec(width=8, tokens=3, layers=3, heads=2, mixer="transformer", norm="pre",
                        injection="concat", residual_scale=0.3, weight_gain=0.5, state_init="normal",
                        init_scale=0.62, seed=2)


@pytest.fixture(scope="module")
def cyclic_result():
    return dynloop.classify(CYCLIC_SPEC)


def test_contracting_pre_norm_concat_block_is_cyclic(cyclic_result):
    spec, result = CYCLIC_SPEC, cyclic_result
    assert result.regime is Regime.CYCLIC, result.summary()
    assert result.period == 1
    assert result.newton_agrees is True
    k = spec.layers
    assert result.distinct_stage_points == k
    # the stage points are Newton's (find_cycle) from the last state the iteration reached
    cycle = dynloop.find_cycle(spec, 1, result.window_states[-1, -1])
    assert cycle.converged
    np.testing.assert_allclose(result.stage_fixed_points, cycle.stage_points, rtol=0,
                               atol=1e-9 * np.linalg.norm(cycle.loop_points[0]))
    # independently of classify: the last stage point is a fixed point of the loop, and the stage
    # points are the stages of that loop
    x_star = result.stage_fixed_points[-1]
    assert relative(spec.loop(x_star), x_star) < 1e-10
    np.testing.assert_allclose(spec.stage_maps(x_star)[1:], result.stage_fixed_points, rtol=0,
                               atol=1e-9 * np.linalg.norm(x_star))
    # the k per-layer points are pairwise far apart (a non-degenerate cycle)
    layer_points = result.stage_fixed_points[1:]  # stage 0 is the injection
    gaps = [np.linalg.norm(layer_points[i] - layer_points[j]) for i in range(k) for j in range(i)]
    assert min(gaps) > 1e-3 * np.linalg.norm(x_star)
    # multipliers: the eigenvalues of the loop Jacobian at X*, all inside the unit circle
    eigenvalues = np.linalg.eigvals(spec.jacobian(x_star))
    np.testing.assert_allclose(np.sort(np.abs(result.multipliers)), np.sort(np.abs(eigenvalues)), atol=1e-9)
    assert result.spectral_radius == pytest.approx(np.max(np.abs(eigenvalues)), rel=1e-9)
    assert np.all(np.abs(result.multipliers) < 1.0)
    # geometric convergence at the rate of the leading multiplier
    assert result.convergence_rate == pytest.approx(result.spectral_radius, rel=0.1)
    # Lyapunov exponents of a stable fixed point: ln|multiplier|
    assert result.lyapunov[0] == pytest.approx(np.log(result.spectral_radius), rel=1e-9)


def test_fixed_point_does_not_depend_on_the_start_state(cyclic_result):
    rng = np.random.default_rng(11)
    reference = cyclic_result.stage_fixed_points
    for scale in (0.01, 1.0, 10.0):
        x0 = scale * rng.standard_normal(CYCLIC_SPEC.state_shape)
        result = dynloop.classify(CYCLIC_SPEC, x0=x0)
        assert result.regime is Regime.CYCLIC, result.summary()
        assert relative(result.stage_fixed_points, reference) < 1e-9


# --------------------------------------------------------- rotation (docs/background.md, Regimes)
ROTATION_SPEC = BlockSpec(width=8, tokens=3, layers=3, heads=2, hidden=16, mixer="transformer",
                          norm="sandwich", injection="none", residual_scale=1.0, seed=1)


def rotated(spec, shift):
    """The block with its layers applied in the order shift, shift+1, …, shift-1 (no injection)."""
    weights = spec.materialize()["weights"]
    return spec.replace(weights={name: np.roll(array, -shift, axis=0) if name in LAYER_ARRAYS else array
                                 for name, array in weights.items()})


def test_each_rotation_of_the_layer_order_has_its_own_fixed_point():
    spec = ROTATION_SPEC
    result = dynloop.classify(spec, lyapunov=False)
    assert result.regime is Regime.CYCLIC, result.summary()
    assert result.distinct_stage_points == spec.layers
    points = result.stage_fixed_points  # Y_0 … Y_{k-1}: the state after each layer
    x_star = points[-1]
    assert relative(spec.loop(x_star), x_star) < 1e-10
    multipliers = np.sort(np.abs(result.multipliers))
    for j in range(spec.layers):
        # the stack B_j ∘ … ∘ B_{j+1}: starts after layer j, so Y_j is its fixed point
        stack = rotated(spec, j + 1)
        y = points[j]
        assert relative(stack.loop(y), y) < 1e-10, f"rotation {j + 1}: Y_{j} is not a fixed point"
        cycle = dynloop.find_cycle(stack, 1, y)
        assert cycle.converged and relative(cycle.loop_points[0], y) < 1e-10
        # its stage points are the original ones, rotated
        np.testing.assert_allclose(cycle.stage_points, np.roll(points, -(j + 1), axis=0), rtol=0,
                                   atol=1e-9 * np.linalg.norm(y))
        # J(B_j…B_{j+1}) and J(B_k…B_1) are cyclic products of the same factors: same multipliers
        np.testing.assert_allclose(np.sort(np.abs(cycle.multipliers)), multipliers, atol=1e-9)
    # the rotation by one layer is a different stack: Y_0 is not a fixed point of the original one
    assert relative(spec.loop(points[0]), points[0]) > 1e-3


# ----------------------------------------------------------------------------- drifting
def test_pre_norm_with_non_cancelling_updates_drifts_at_the_analytic_velocity():
    # W = cI under pre-norm, g = 1, eps = 0: a sub-layer maps each token row h to
    # h + a·c·h/rms(h), so the row norm grows by exactly a·c·sqrt(d) per layer in the direction of h;
    # every row grows by s = k·a·c·sqrt(d) per loop, and the Frobenius norm by s·sqrt(T) asymptotically.
    d, tokens, k, a, c = 4, 3, 2, 0.5, 0.7
    spec = BlockSpec(width=d, tokens=tokens, layers=k, mixer="linear", norm="pre", injection="none",
                     norm_eps=0.0, residual_scale=a, weights={"linear": np.stack([c * np.eye(d)] * k)},
                     seed=7)
    result = dynloop.classify(spec)
    assert result.regime is Regime.DRIFTING, result.summary()
    assert result.period is None
    s = k * a * c * np.sqrt(d)
    assert result.drift_velocity == pytest.approx(s * np.sqrt(tokens), rel=1e-3)
    # limiting directions: every row keeps its start direction, all rows of equal norm
    start = spec.start_state()
    expected = start / np.linalg.norm(start, axis=1, keepdims=True) / np.sqrt(tokens)
    for direction in result.drift_directions:
        np.testing.assert_allclose(direction, expected, atol=1e-2)
    # the state is unbounded, not settled: its norm far exceeds the start's
    assert result.evidence["statistics"]["norm_last"] > 50 * np.linalg.norm(start)


def test_orthogonal_update_drifts_too():
    # W = cI plus a skew part: the update a·c·(I + S)h/rms(h) still grows every row without bound
    d, a = 4, 1.0
    skew = np.array([[0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 0.5], [0, 0, -0.5, 0]])
    spec = BlockSpec(width=d, tokens=2, layers=1, mixer="linear", norm="pre", injection="none", norm_eps=0.0,
                     residual_scale=a, weights={"linear": (0.3 * np.eye(d) + 0.1 * skew)[None]}, seed=1)
    result = dynloop.classify(spec)
    assert result.regime is Regime.DRIFTING, result.summary()
    assert result.drift_velocity > 0


# ----------------------------------------------------------------------------- periodic
def test_post_norm_linear_block_with_negative_dominant_eigenvalue_has_period_two():
    # normalised power method: layer matrices Q diag(·) Qᵀ whose product has eigenvalues
    # (-3, 1.5, 0.96, 0.5); the state flips between ±sqrt(d)·v (v the dominant eigenvector)
    d = 4
    q = orthogonal(d, 1)
    first = q @ np.diag([-2.0, 1.5, 1.2, 0.5]) @ q.T
    second = q @ np.diag([1.5, 1.0, 0.8, 1.0]) @ q.T
    spec = linear_block([first, second], norm="post", tokens=2, seed=3)
    result = dynloop.classify(spec)
    assert result.regime is Regime.PERIODIC, result.summary()
    assert result.period == 2
    assert result.newton_agrees
    v = q[:, 0] * np.sqrt(d)
    points = result.stage_fixed_points  # 2 loops × 2 layers
    assert points.shape == (4, 2, d)
    for point in points:
        for row in point:
            assert min(np.linalg.norm(row - v), np.linalg.norm(row + v)) < 1e-9
    # the first layer flips the sign, the second keeps it, the next loop flips it back
    np.testing.assert_allclose(points[1], points[0], atol=1e-9)
    np.testing.assert_allclose(points[2], -points[1], atol=1e-9)
    # multipliers of the 2-fold loop map: (λ_i/λ_1)² per token, and 0 for the radial direction
    ratios = np.array([1.5, 0.96, 0.5]) / 3.0
    expected = np.sort(np.concatenate([np.repeat(ratios ** 2, 2), np.zeros(2)]))[::-1]
    np.testing.assert_allclose(np.abs(result.multipliers), expected, atol=1e-9)


def test_periodic_orbit_reports_its_convergence():
    d = 4
    q = orthogonal(d, 1)
    spec = linear_block([q @ np.diag([-2.0, 1.5, 1.2, 0.5]) @ q.T], norm="post", tokens=2, seed=3)
    result = dynloop.classify(spec)
    assert result.regime is Regime.PERIODIC and result.period == 2
    # the power method converges at |λ2/λ1| = 0.75 per loop, reaching 1e-9 in well under 200 loops
    assert result.convergence_rate == pytest.approx(0.75, rel=0.1)
    assert result.transient_loops < result.evidence["loops"]


# ----------------------------------------------------------------------------- quasi-periodic
def test_post_norm_linear_block_with_irrational_rotation_is_quasiperiodic():
    # dominant eigenpair 2·e^{±i}: on the invariant plane the normalised state turns by exactly 1 radian
    # per loop (irrational fraction of a turn), the rest contracts by 0.5/2
    d = 4
    q = orthogonal(d, 2)
    block = np.zeros((d, d))
    block[:2, :2] = 2.0 * np.array([[np.cos(1.0), -np.sin(1.0)], [np.sin(1.0), np.cos(1.0)]])
    block[2, 2], block[3, 3] = 0.5, -0.3
    spec = linear_block([q @ block @ q.T], norm="post", tokens=2, seed=5)
    result = dynloop.classify(spec)
    assert result.regime is Regime.QUASIPERIODIC, result.summary()
    assert result.period is None
    assert abs(result.lyapunov[0]) < 0.02
    # independently: the window's states lie in the rotation plane and turn by 1 radian per loop
    states = result.window_states[:, -1] @ q  # coordinates in the eigenbasis
    assert np.max(np.abs(states[..., 2:])) < 1e-9
    plane = states[..., 0] + 1j * states[..., 1]
    turn = np.angle(plane[1:] / plane[:-1])
    np.testing.assert_allclose(turn, 1.0, atol=1e-9)


# ----------------------------------------------------------------------------- chaotic
# a bounded block (it ends in a norm) found by a small search over post/sandwich/sphere MLP blocks
CHAOTIC_SPEC = BlockSpec(width=8, tokens=1, layers=1, hidden=16, mixer="mlp", activation="tanh",
                         norm="sandwich", injection="none", weight_gain=6.0, residual_scale=1.0, seed=0)


@pytest.fixture(scope="module")
def chaotic_exponent():
    spectrum = dynloop.lyapunov_spectrum(CHAOTIC_SPEC, steps=40000, transient=1000)
    return spectrum


def test_chaotic_block_has_a_positive_exponent_over_a_long_run(chaotic_exponent):
    spectrum = chaotic_exponent
    assert not spectrum.diverged
    assert spectrum.largest > 0.15
    # the error estimate is itself a statistic of one chaotic orbit: ask that it is small, and
    # that the exponent stays positive with a wide margin
    assert spectrum.error[0] < 0.05
    assert spectrum.largest - 3 * spectrum.error[0] > 0.05
    assert spectrum.sum_check < 1e-6  # the tangent map is consistent with ln|det J|
    # bounded: the sandwich norm fixes the row norm at sqrt(d) (up to eps)
    final = dynloop.simulate(CHAOTIC_SPEC, 500, record="none").stage_norms[1:, -1]
    assert np.all(np.abs(final - np.sqrt(CHAOTIC_SPEC.width)) < 1e-5)


def test_chaotic_block_is_classified_chaotic_with_a_long_window(chaotic_exponent):
    rng = np.random.default_rng(0)
    for x0 in [None] + [rng.standard_normal(CHAOTIC_SPEC.state_shape) for _ in range(3)]:
        result = dynloop.classify(CHAOTIC_SPEC, x0=x0, window=2000)
        assert result.regime is Regime.CHAOTIC, result.summary()
        assert result.period is None
        assert result.lyapunov[0] == pytest.approx(chaotic_exponent.largest, abs=0.06)


def test_chaotic_block_is_classified_chaotic_with_default_settings(chaotic_exponent):
    rng = np.random.default_rng(0)
    for x0 in [None] + [rng.standard_normal(CHAOTIC_SPEC.state_shape) for _ in range(3)]:
        result = dynloop.classify(CHAOTIC_SPEC, x0=x0)
        assert result.regime is Regime.CHAOTIC, result.summary()


# ----------------------------------------------------------------------------- divergent
@pytest.mark.parametrize("c", [0.5, 0.01])
def test_unnormalised_expanding_linear_block_diverges(c):
    # no norm, layers I + aW = (1 + c) I: the norm grows by (1 + c)^k per loop, exponentially
    d, k = 4, 2
    spec = linear_block(np.stack([(1 + c) * np.eye(d)] * k), norm="none", seed=1)
    result = dynloop.classify(spec)
    assert result.regime is Regime.DIVERGENT, result.summary()
    assert result.period is None and result.drift_velocity is None


def test_random_expanding_block_without_norm_diverges():
    spec = BlockSpec(width=8, tokens=2, layers=2, mixer="linear", norm="none", injection="none",
                     weight_gain=10.0)
    result = dynloop.classify(spec)
    assert result.regime is Regime.DIVERGENT, result.summary()
    assert "non-finite" in result.summary()


@pytest.mark.parametrize("case", [
    "exponential",
    "overflow",
])
def test_plot_of_a_divergent_classification(case, tmp_path):
    # exponential growth seen in the window, or overflow to non-finite values (plot the loops before it)
    if case == "overflow":
        spec = BlockSpec(width=8, tokens=2, layers=2, mixer="linear", norm="none", injection="none",
                         weight_gain=10.0)
    else:
        spec = linear_block(np.stack([1.01 * np.eye(4)] * 2), norm="none", seed=1)
    result = dynloop.classify(spec)
    assert result.regime is Regime.DIVERGENT
    figure = result.plot(tmp_path / "divergent.png")
    assert isinstance(figure, matplotlib.figure.Figure)
    assert (tmp_path / "divergent.png").stat().st_size > 1000


# ----------------------------------------------------------------------------- reporting
def test_summary_plot_and_save(cyclic_result, tmp_path):
    result = cyclic_result
    text = result.summary()
    assert "cyclic" in text
    assert "spectral radius" in text and "multipliers" in text
    assert "Newton" in text and "distinct per-layer points: 3" in text
    assert f"{result.spectral_radius:.6g}" in text
    figure = result.plot()
    assert isinstance(figure, matplotlib.figure.Figure)
    path = tmp_path / "cyclic.png"
    result.plot(path)
    assert path.stat().st_size > 1000
    json_path = tmp_path / "cyclic.json"
    result.save(json_path)
    saved = json.loads(json_path.read_text())
    assert saved["regime"] == "cyclic"
    assert saved["distinct_stage_points"] == 3
    assert saved["spectral_radius"] == pytest.approx(result.spectral_radius)
    assert np.allclose(np.array(saved["stage_fixed_points"]), result.stage_fixed_points)
    assert saved["evidence"]["tolerances"]["period"] == pytest.approx(1e-9)


def test_summary_of_drift_names_the_velocity():
    spec = BlockSpec(width=4, tokens=1, layers=1, mixer="linear", norm="pre", injection="none", norm_eps=0.0,
                     weights={"linear": 0.5 * np.eye(4)[None]})
    result = dynloop.classify(spec)
    assert result.regime is Regime.DRIFTING
    text = result.summary()
    assert "drifting" in text and "norm grows by" in text
    assert json.loads(json.dumps(result.to_dict()))["regime"] == "drifting"
