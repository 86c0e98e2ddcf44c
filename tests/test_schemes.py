"""Schemes added as registry entries (dynloop.components), each checked where it acts.

The generic checks (kernels against the numpy oracle, analytic Jacobians against finite
differences, column kernels against stage_apply, every scheme in a sweep) cover every registry
entry by parametrisation (tests/systems/test_block.py, tests/systems/test_column_kernels.py,
tests/test_oracle_self.py).
Here each scheme's defining equation is checked on its own.
"""

import numpy as np
import pytest
import sympy

import dynloop
from dynloop import components
from dynloop.symbolic.stages import Scheme, block_stages


def _symbolic_stage(spec, stage, x):
    """Value and Jacobian of ``stage`` at ``x`` (one token) by dynloop.symbolic, with the block's weights."""
    arrays = spec.materialize()
    stages, _ = block_stages(Scheme.from_spec(spec), "general", spec.width, arrays["weights"],
                             arrays["inputs"])
    value, jacobian = stages[stage].at([sympy.Float(v, 30) for v in x.ravel()])
    return np.array(value.evalf(), dtype=float).ravel(), np.array(jacobian.evalf(), dtype=float)


def _agrees_with_kernels(spec, x):
    """Every stage of dynloop.symbolic equals the compiled one along the loop from ``x`` (one token)."""
    states, jacobians = spec.stage_maps(x), spec.stage_jacobians(x)
    for stage in range(spec.n_stages):
        value, jacobian = _symbolic_stage(spec, stage, states[stage])
        assert np.allclose(value, states[stage + 1].ravel(), rtol=1e-12, atol=1e-13), stage
        assert np.allclose(jacobian, jacobians[stage], rtol=1e-11, atol=1e-12), stage


# ----------------------------------------------------------------------------- skip_scale
def test_skip_scale_multiplies_the_residual_path():
    spec = dynloop.BlockSpec(width=3, tokens=2, layers=1, mixer="linear", norm="none", injection="none",
                             residual_scale=0.4, skip_scale=0.7, seed=1)
    x = spec.start_state()
    w = spec.materialize()["weights"]["linear"][0]
    np.testing.assert_allclose(spec.stage_maps(x)[1], 0.7 * x + 0.4 * x @ w.T, rtol=1e-15)
    np.testing.assert_allclose(spec.jacobian(x), np.kron(np.eye(2), 0.7 * np.eye(3) + 0.4 * w), rtol=1e-14)


def test_deepnorm_is_post_norm_with_a_scaled_skip():
    k = 3
    s = (2 * k) ** 0.25
    spec = dynloop.BlockSpec(width=4, tokens=1, layers=k, mixer="mlp", hidden=4, norm="post",
                             norm_kind="layer", injection="none", skip_scale=s, seed=2)
    x = spec.start_state()
    w = spec.materialize()["weights"]
    # its stage is a F(X) alone
    branch = dynloop.BlockSpec(width=4, tokens=1, layers=k, mixer="mlp", hidden=4, norm="none",
                               injection="none", skip_scale=0.0, seed=2)
    y = s * x + branch.stage_maps(x)[1]
    centred = y - y.mean(axis=-1, keepdims=True)
    expected = centred / np.sqrt((centred ** 2).mean(axis=-1, keepdims=True) + spec.norm_eps)
    np.testing.assert_allclose(spec.stage_maps(x)[1], expected * w["norm_out"][0, 0], rtol=1e-13)
    _agrees_with_kernels(spec, x)


def test_sphere_refuses_a_skip_scale():
    with pytest.raises(ValueError, match=r"skip_scale=0\.5 .*no residual path"):
        dynloop.BlockSpec(norm="sphere", skip_scale=0.5)
    assert dynloop.BlockSpec(norm="sphere", skip_scale=1.0).skip_scale == 1.0


def test_skip_scale_is_left_out_of_files_at_its_default():
    """Specs and sweep manifests written before skip_scale existed read the same text."""
    assert "skip_scale" not in dynloop.BlockSpec().to_dict()
    spec = dynloop.BlockSpec(skip_scale=1.25)
    assert spec.to_dict()["skip_scale"] == 1.25
    assert dynloop.BlockSpec.from_toml(spec.to_toml()) == spec


@pytest.mark.parametrize("mixer", ["mlp", "attention"])  # the column kernels, and the point-by-point kernel
def test_skip_scale_is_a_per_point_sweep_axis(mixer):
    spec = dynloop.BlockSpec(width=4, tokens=2, layers=2, heads=2, mixer=mixer, hidden=5, norm="pre",
                             injection="additive", residual_scale=0.6, seed=3)
    skips = np.array([0.5, 0.9, 1.0, 1.3])
    diagram = dynloop.sweep(spec, {"skip_scale": skips}, loops=25, early_exit=False, progress=False)
    for i, s in enumerate(skips):
        final = dynloop.simulate(spec.replace(skip_scale=s), 25).final_state
        assert diagram.diagnostics["final_norm"][i] == pytest.approx(np.linalg.norm(final), rel=1e-10), s


# ----------------------------------------------------------------------------- every injection, everywhere
def test_every_injection_is_a_categorical_sweep_axis():
    """Each facet of an injection axis is the sweep of that injection alone, label for label."""
    spec = dynloop.BlockSpec(width=4, tokens=2, layers=2, mixer="mlp", hidden=5, norm="pre", seed=4)
    axes = {"injection": list(components.INJECTIONS), "residual_scale": np.linspace(0.1, 1.5, 4)}
    diagram = dynloop.sweep(spec, axes, loops=200, progress=False)
    for i, injection in enumerate(components.INJECTIONS):
        alone = dynloop.sweep(spec.replace(injection=injection), {"residual_scale": axes["residual_scale"]},
                              loops=200, progress=False)
        assert np.array_equal(diagram.regimes[i], alone.regimes), injection
        assert np.array_equal(diagram.diagnostics["final_norm"][i],
                              alone.diagnostics["final_norm"]), injection


@pytest.mark.parametrize("injection", [name for name, c in components.INJECTIONS.items() if c.injects])
def test_every_injection_agrees_with_its_symbolic_form(injection):
    spec = dynloop.BlockSpec(width=3, tokens=1, layers=2, mixer="mlp", hidden=3, activation="tanh",
                             norm="pre", injection=injection, injection_scale=0.8, residual_scale=0.6, seed=5)
    _agrees_with_kernels(spec, spec.start_state())


# ----------------------------------------------------------------------------- gate
def test_gate_multiplies_the_state_by_the_scaled_input():
    spec = dynloop.BlockSpec(width=4, tokens=3, injection="gate", injection_scale=0.7, seed=6)
    x = spec.start_state() + 0.5
    e = spec.materialize()["inputs"]
    assert spec.stage_names[0] == "inject"
    np.testing.assert_array_equal(spec.stage_maps(x)[1], x * (0.7 * e))
    np.testing.assert_array_equal(spec.stage_jacobians(x)[0], np.diag((0.7 * e).ravel()))


# ----------------------------------------------------------------------------- additive_norm
@pytest.mark.parametrize("kind", components.NORM_KINDS)
def test_additive_norm_normalises_the_injected_sum(kind):
    gain = np.array([0.5, 1.0, 2.0, -1.0])
    spec = dynloop.BlockSpec(width=4, tokens=2, injection="additive_norm", injection_scale=0.6,
                             norm_kind=kind, norm_eps=1e-3, weights={"inject_norm": gain}, seed=7)
    assert dynloop.BlockSpec(width=4, injection="additive_norm").weight_shapes()["inject_norm"] == (4,)
    x = spec.start_state() * 3.0
    u = x + 0.6 * spec.materialize()["inputs"]
    if components.NORM_KINDS[kind].centred:
        u = u - u.mean(axis=-1, keepdims=True)
    square = (u * u).mean(axis=-1, keepdims=True) if components.NORM_KINDS[kind].mean_square else \
        (u * u).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(spec.stage_maps(x)[1], gain * u / np.sqrt(square + 1e-3), rtol=1e-14)


# ----------------------------------------------------------------------------- additive_each_layer
def test_additive_each_layer_adds_the_input_inside_every_layer_stage():
    spec = dynloop.BlockSpec(width=3, tokens=2, layers=3, mixer="linear", norm="none",
                             injection="additive_each_layer", injection_scale=0.5, residual_scale=0.3,
                             skip_scale=0.9, seed=8)
    assert spec.stage_names == ("layer0", "layer1", "layer2")
    e = spec.materialize()["inputs"]
    w = spec.materialize()["weights"]["linear"]
    states = spec.stage_maps(spec.start_state())
    for layer in range(3):
        entering = states[layer] + 0.5 * e
        np.testing.assert_allclose(states[layer + 1], 0.9 * entering + 0.3 * entering @ w[layer].T,
                                   rtol=1e-14)
    # the constant shift leaves the Jacobian that of the layer without injection, at the shifted state
    plain = spec.replace(injection="none")
    np.testing.assert_allclose(spec.stage_jacobians(states[0])[0],
                               plain.stage_jacobians(states[0] + 0.5 * e)[0], rtol=1e-14)


# ----------------------------------------------------------------------------- classify, on known answers
def _linear_layers(spec):
    """The layers' maps ``x ↦ x A_ℓᵀ`` of a linear block without norms: ``A_ℓ = s I + a W_ℓ``."""
    w = spec.materialize()["weights"]["linear"]
    return [spec.skip_scale * np.eye(spec.width) + spec.residual_scale * w_l for w_l in w]


@pytest.mark.parametrize("residual_scale, injection_scale", [(0.2, 0.5), (1.4, 3.0)])
def test_classify_a_gated_linear_block(residual_scale, injection_scale):
    """x ↦ ((βe ⊙ x) A_0ᵀ) A_1ᵀ is linear: it vanishes iff the spectral radius of its matrix is below 1."""
    spec = dynloop.BlockSpec(width=3, tokens=1, layers=2, mixer="linear", norm="none", injection="gate",
                             injection_scale=injection_scale, residual_scale=residual_scale, skip_scale=0.8,
                             seed=9)
    e = spec.materialize()["inputs"][0]
    a0, a1 = _linear_layers(spec)
    radius = max(abs(np.linalg.eigvals(a1 @ a0 @ np.diag(injection_scale * e))))  # 0.44 and 1.98
    result = dynloop.classify(spec)
    assert abs(radius - 1) > 0.05  # away from the boundary
    expected = "vanishing" if radius < 1 else "divergent"
    assert result.regime.value == expected, (radius, result.summary())
    if expected == "vanishing":
        assert result.spectral_radius == pytest.approx(radius, rel=1e-6)


def test_classify_finds_the_affine_fixed_point_of_an_each_layer_injection():
    """x ↦ A_1 (A_0 (x + c) + c) (columns) is affine: its fixed point, solved by numpy, is the cyclic one."""
    spec = dynloop.BlockSpec(width=3, tokens=1, layers=2, mixer="linear", norm="none",
                             injection="additive_each_layer", injection_scale=0.7, residual_scale=0.3,
                             skip_scale=0.5, seed=10)
    c = 0.7 * spec.materialize()["inputs"][0]
    a0, a1 = _linear_layers(spec)
    loop = a1 @ a0  # x* = A1 (A0 (x* + c) + c) in column form
    x_star = np.linalg.solve(np.eye(3) - loop, a1 @ a0 @ c + a1 @ c)
    assert max(abs(np.linalg.eigvals(loop))) < 0.9
    result = dynloop.classify(spec)
    assert result.regime.value == "cyclic", result.summary()
    np.testing.assert_allclose(result.stage_fixed_points[-1].ravel(), x_star, rtol=1e-9, atol=1e-12)
    # one point per stage (after each layer): layer 0 ends at A_0 (x* + c)
    np.testing.assert_allclose(result.stage_fixed_points[0].ravel(), a0 @ (x_star + c), rtol=1e-9, atol=1e-12)
    assert result.distinct_stage_points == 2
