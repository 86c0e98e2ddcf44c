"""The compiled looped block against the numpy oracle, its Jacobians, its spec and its files."""

import os
import subprocess
import sys

import numpy as np
import pytest

import dynloop
from dynloop import BlockSpec, components

from oracle import ALL_COMBINATIONS, fd_jacobian, oracle_attention, oracle_stage_functions, oracle_stages
from oracle import random_arrays, random_fields

ORACLE_FIELDS = ("width", "tokens", "layers", "heads", "mixer", "activation", "norm", "norm_kind",
                 "norm_eps", "injection", "residual_scale", "injection_scale", "causal", "skip_scale")


def oracle_fields(spec):
    fields = {name: getattr(spec, name) for name in ORACLE_FIELDS}
    fields["hidden"] = spec.hidden_size
    return fields


def random_spec(index, **fixed):
    """A random small block (fields and weights drawn independently of dynloop)."""
    rng = np.random.default_rng(1000 + index)
    fields = random_fields(rng, **fixed)
    arrays = random_arrays(fields, rng)
    return BlockSpec(**fields, weights=arrays["weights"], inputs=arrays["inputs"], state_init="input"), arrays


def relative_error(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ----------------------------------------------------------------------------- kernels vs oracle
@pytest.mark.parametrize("index, combination", list(enumerate(ALL_COMBINATIONS)),
                         ids=["-".join(c) for c in ALL_COMBINATIONS])
def test_kernel_matches_numpy_oracle(index, combination):
    mixer, norm, injection = combination
    spec, arrays = random_spec(index, mixer=mixer, norm=norm, injection=injection)
    trajectory = dynloop.simulate(spec, 4)
    assert trajectory.loops_run == 4
    for t in range(4):  # each loop from the kernel's own entering state: no chaotic amplification
        expected = oracle_stages(oracle_fields(spec), arrays, trajectory.stage_states[t, 0])
        assert relative_error(trajectory.stage_states[t], expected) <= 1e-12, (t, spec)


@pytest.mark.parametrize("index, combination", list(enumerate(ALL_COMBINATIONS))[::3],
                         ids=["-".join(c) for c in ALL_COMBINATIONS[::3]])
def test_stage_jacobians_match_finite_differences(index, combination):
    mixer, norm, injection = combination
    spec, arrays = random_spec(index, mixer=mixer, norm=norm, injection=injection)
    x = spec.start_state()
    stages = oracle_stages(oracle_fields(spec), arrays, x)
    functions = oracle_stage_functions(oracle_fields(spec), arrays)
    jacobians = spec.stage_jacobians(x)
    assert jacobians.shape == (spec.n_stages, x.size, x.size)
    for j, function in enumerate(functions):
        numeric = fd_jacobian(function, stages[j])
        scale = max(np.max(np.abs(numeric)), 1.0)
        assert np.max(np.abs(jacobians[j] - numeric)) / scale <= 1e-6, (j, spec)


def test_loop_jacobian_is_product_in_stage_order():
    spec, _ = random_spec(7, mixer="mlp", norm="sandwich", injection="concat", layers=3)
    x = spec.start_state()
    stages = spec.stage_jacobians(x)
    expected = stages[-1]
    for j in range(spec.n_stages - 2, -1, -1):
        expected = expected @ stages[j]
    np.testing.assert_allclose(spec.jacobian(x), expected, rtol=1e-13, atol=1e-14)
    numeric = fd_jacobian(lambda z: spec.loop(z), x)
    assert np.max(np.abs(spec.jacobian(x) - numeric)) <= 1e-6 * max(1.0, np.max(np.abs(numeric)))


@pytest.mark.parametrize("norm_kind", components.NORM_KINDS)
@pytest.mark.parametrize("activation", components.ACTIVATIONS)
def test_every_norm_kind_and_activation(norm_kind, activation):
    spec, arrays = random_spec(3, mixer="transformer", norm="peri_outer", injection="diagonal")
    spec = spec.replace(norm_kind=norm_kind, activation=activation)
    trajectory = dynloop.simulate(spec, 3)
    for t in range(3):
        expected = oracle_stages(oracle_fields(spec), arrays, trajectory.stage_states[t, 0])
        assert relative_error(trajectory.stage_states[t], expected) <= 1e-12


def test_attention_matrices_recorded_match_oracle():
    spec, arrays = random_spec(11, mixer="transformer", norm="pre", injection="additive", heads=2,
                               width=4, tokens=3, layers=2)
    trajectory = dynloop.simulate(spec, 3, record_attention=True)
    assert trajectory.attention.shape == (3, 2, 2, 3, 3)
    for t in range(3):
        for layer in range(2):
            entering = trajectory.stage_states[t, 1 + layer]  # stage 0 is the injection
            expected = oracle_attention(oracle_fields(spec), arrays, entering, layer)
            np.testing.assert_allclose(trajectory.attention[t, layer], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(trajectory.attention.sum(axis=-1), 1.0, rtol=1e-13)


@pytest.mark.slow  # compiles every block kernel again in float32 (~40 s on a cold cache)
def test_float32_tracks_float64():
    spec = BlockSpec(width=8, tokens=3, layers=2, mixer="transformer", heads=2, norm="sandwich",
                     injection="concat", seed=5)
    single = dynloop.simulate(spec, 5, dtype=np.float32)
    double = dynloop.simulate(spec, 5)
    assert single.stage_states.dtype == np.float32 and single.final_state.dtype == np.float32
    assert double.stage_states.dtype == np.float64
    assert relative_error(single.stage_states[1].astype(np.float64), double.stage_states[1]) < 1e-4


# ----------------------------------------------------------------------------- spec and arrays
def test_materialize_round_trip_is_bitwise():
    for mixer, norm, injection in [("transformer", "sandwich", "concat"),
                                   ("attention", "peri_outer", "diagonal"),
                                   ("mlp", "pre", "convex"), ("linear", "post", "additive")]:
        spec = BlockSpec(width=6, tokens=3, layers=2, heads=3, mixer=mixer, norm=norm, injection=injection,
                         seed=4, state_init="normal", weight_gain=1.3)
        arrays = spec.materialize()
        assert set(arrays["weights"]) == set(spec.weight_shapes())
        twin = spec.replace(seed=spec.seed, weights=arrays["weights"], inputs=arrays["inputs"])
        a = dynloop.simulate(spec, 6)
        b = dynloop.simulate(twin, 6)
        assert np.array_equal(a.stage_states, b.stage_states)


def test_random_draws_follow_the_documented_laws():
    spec = BlockSpec(width=64, tokens=2, layers=3, mixer="transformer", hidden=128, weight_gain=2.0,
                     injection="concat", seed=1)
    weights = spec.materialize()["weights"]
    assert abs(weights["attn_q"].std() - 2.0 / 8.0) < 0.01
    assert abs(weights["mlp_out"].std() - 2.0 / np.sqrt(128)) < 0.01
    assert abs(weights["inject_h"].std() - 2.0 / np.sqrt(128)) < 0.01
    assert np.array_equal(weights["norm_in"], np.ones((3, 2, 64)))
    # one stream per array and layer: a deeper block starts with the same layers,
    # and changing an unrelated field does not change the draw
    deeper = spec.replace(layers=5).materialize()["weights"]
    assert np.array_equal(deeper["attn_q"][:3], weights["attn_q"])
    assert np.array_equal(spec.replace(norm="post").materialize()["weights"]["mlp_in"], weights["mlp_in"])
    assert not np.array_equal(spec.replace(seed=2).materialize()["weights"]["mlp_in"], weights["mlp_in"])


def test_state_init_choices():
    spec = BlockSpec(width=4, tokens=2, seed=3)
    arrays = spec.materialize()
    assert np.array_equal(arrays["start_state"], arrays["inputs"])
    assert np.array_equal(spec.replace(state_init="zeros").start_state(), np.zeros((2, 4)))
    normal = spec.replace(state_init="normal", init_scale=0.62, width=256, tokens=64).start_state()
    assert abs(normal.std() - 0.62) < 0.01


@pytest.mark.parametrize("changes, field, allowed", [
    ({"heads": 3}, "heads", "divide width"),
    ({"mixer": "rnn"}, "mixer", "'linear'"),
    ({"norm": "postnorm"}, "norm", "'sandwich'"),
    ({"norm_kind": "batch"}, "norm_kind", "'rms'"),
    ({"injection": "gated"}, "injection", "'concat'"),
    ({"activation": "sigmoid"}, "activation", "'gelu'"),
    ({"width": 0}, "width", ">= 1"),
    ({"layers": 2.5}, "layers", "integer"),
    ({"norm_eps": -1.0}, "norm_eps", ">= 0"),
    ({"residual_scale": float("nan")}, "residual_scale", "finite"),
    ({"state_init": "random"}, "state_init", "'normal'"),
    ({"weights": {"attn_q": np.zeros((2, 4, 4))}}, "weights['attn_q']", "uses only"),
    ({"weights": {"mlp_in": np.zeros((2, 5, 4))}}, "weights['mlp_in']", "(2, 16, 4)"),
    ({"inputs": np.zeros((3, 4))}, "inputs", "(4, 4)"),
    ({"inputs": np.full((4, 4), np.inf)}, "inputs", "finite"),
])
def test_invalid_values_name_field_value_and_allowed(changes, field, allowed):
    with pytest.raises(ValueError) as error:
        BlockSpec(width=4, tokens=4, layers=2, mixer="mlp", heads=2).replace(**changes)
    message = str(error.value)
    assert field in message and allowed in message


def test_replace_rejects_unknown_field():
    with pytest.raises(ValueError, match="not a BlockSpec field"):
        BlockSpec().replace(depth=3)


@pytest.mark.parametrize("build", [lambda: BlockSpec(injecton="concat"),
                                   lambda: BlockSpec().replace(injecton="concat"),
                                   lambda: BlockSpec.from_dict({"injecton": "concat"})])
def test_a_mistyped_field_is_named_with_the_close_one(build):
    with pytest.raises(ValueError, match=r"injecton='concat' is not allowed: not a BlockSpec field; .*"
                                         r"did you mean 'injection'\?"):
        build()


def test_spec_is_frozen_and_arrays_read_only():
    spec = BlockSpec(width=4, tokens=2, weights={"mlp_in": np.ones((2, 16, 4))})
    with pytest.raises(AttributeError):
        spec.width = 8
    with pytest.raises(ValueError):
        spec.weights["mlp_in"][0, 0, 0] = 2.0


def test_toml_round_trip_with_weights(tmp_path):
    spec = BlockSpec(width=4, tokens=2, layers=2, mixer="attention", heads=2, norm="pre_outer",
                     injection="diagonal", residual_scale=0.37, seed=9)
    arrays = spec.materialize()
    full = spec.replace(weights=arrays["weights"], inputs=arrays["inputs"])
    path = tmp_path / "block.toml"
    full.to_toml(path)
    again = BlockSpec.from_toml(path)
    assert again == full
    assert np.array_equal(dynloop.simulate(again, 5).stage_states, dynloop.simulate(spec, 5).stage_states)
    assert BlockSpec.from_toml(BlockSpec(norm="sphere").to_toml()) == BlockSpec(norm="sphere")


def test_toml_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="not a BlockSpec field"):
        BlockSpec.from_toml("[block]\nwidht = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        BlockSpec.from_toml("[block\nwidth = 3\n")
    with pytest.raises(FileNotFoundError):
        BlockSpec.from_toml(tmp_path / "missing.toml")


def test_symbolic_fields_are_accepted_but_not_simulated():
    sympy = pytest.importorskip("sympy")
    spec = BlockSpec(residual_scale=sympy.Symbol("a"))
    assert spec.is_symbolic
    with pytest.raises(ValueError, match="residual_scale"):
        dynloop.simulate(spec, 3)


# ----------------------------------------------------------------------------- recording


# ----------------------------------------------------------------------------- closed forms
def test_linear_block_is_a_product_of_residual_maps():
    spec = BlockSpec(width=5, tokens=2, layers=3, mixer="linear", norm="none", injection="none",
                     residual_scale=0.4, seed=8)
    w = spec.materialize()["weights"]["linear"]
    x = spec.start_state()
    expected = x.copy()
    for layer in range(3):
        expected = expected @ (np.eye(5) + 0.4 * w[layer]).T
    np.testing.assert_allclose(spec.loop(x), expected, rtol=1e-13)


def test_linearize_at_fixed_point_reproduces_the_block():
    spec = BlockSpec(width=4, tokens=2, layers=2, mixer="mlp", norm="pre", injection="concat",
                     residual_scale=0.3, weight_gain=0.8, seed=1)
    affine = spec.linearize()
    fixed = affine.fixed_point()
    np.testing.assert_allclose(spec.loop(fixed.reshape(2, 4)).ravel(), fixed, atol=1e-10)
    assert affine.spectral_radius() < 1
    at = spec.start_state()
    exact = spec.linearize(at=at)
    np.testing.assert_allclose(exact.loop(at.ravel()), spec.loop(at).ravel(), rtol=1e-12)


# ----------------------------------------------------------------------------- determinism
DETERMINISM_SCRIPT = """
import hashlib, numpy as np, dynloop
spec = dynloop.BlockSpec(width=8, tokens=4, layers=3, mixer="transformer", heads=2, norm="sandwich",
                         injection="concat", seed=7)
t = dynloop.simulate(spec, 50)
print(hashlib.sha256(t.stage_states.tobytes()).hexdigest())
"""


def test_bitwise_identical_across_runs_and_thread_counts():
    digests = set()
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
                   OPENBLAS_NUM_THREADS=threads)
        result = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT], env=env,
                                capture_output=True, text=True, check=True)
        digests.add(result.stdout.strip())
    spec = BlockSpec(width=8, tokens=4, layers=3, mixer="transformer", heads=2, norm="sandwich",
                     injection="concat", seed=7)
    import hashlib
    digests.add(hashlib.sha256(dynloop.simulate(spec, 50).stage_states.tobytes()).hexdigest())
    assert len(digests) == 1


def test_linearize_without_a_fixed_point_names_the_regime():
    spec = BlockSpec(width=4, tokens=1, layers=2, mixer="linear", norm="none", injection="none",
                     weight_gain=40.0, seed=2)
    with pytest.raises(ValueError, match="divergent"):
        spec.linearize()


@pytest.mark.parametrize("index, combination", list(enumerate(ALL_COMBINATIONS))[::5],
                         ids=["-".join(c) for c in ALL_COMBINATIONS[::5]])
def test_tangents_in_parts_are_bitwise_those_run_one_by_one(index, combination):
    # The Lyapunov QR runs the tangents in as many parts as numba has threads: every split, and
    # every tangent run alone, must give the same bits, or the exponents would depend on the machine.
    from dynloop.systems import _block_kernels as kernels
    spec, _ = random_spec(index, **dict(zip(("mixer", "norm", "injection"), combination)))
    config, arrays = spec._compiled(np.float64)
    # a writable C-ordered state and basis, as BlockSpec._tangent_run passes them (numba compiles the kernel
    # once more, about a minute, for every other layout or a read-only array)
    x0 = spec.start_state().copy()
    n = x0.size
    basis = np.linalg.qr(np.random.default_rng(index).standard_normal((n, 5)))[0]
    runs = [kernels.tangent_run(config, arrays, x0, basis, 6, spec.n_stages, False, parts)
            for parts in (1, 2, 3, 5)]
    for state, q, log_r, _, done in runs[1:]:
        assert done == runs[0][4] == 6
        assert np.array_equal(state, runs[0][0]) and np.array_equal(q, runs[0][1])
        assert np.array_equal(log_r, runs[0][2])
    # one loop, one tangent at a time: each column's growth and direction as when run together
    _, joint, log_joint, _, _ = kernels.tangent_run(config, arrays, x0, basis, 1, spec.n_stages, False, 3)
    _, first, log_first, _, _ = kernels.tangent_run(config, arrays, x0, basis[:, :1].copy(), 1, spec.n_stages,
                                                    False, 1)
    assert np.array_equal(first[:, 0], joint[:, 0]) and log_first[0] == log_joint[0]
    assert np.array_equal(runs[0][0], dynloop.simulate(spec, 6).final_state)


def test_tangent_run_stops_at_the_last_finite_state():
    from dynloop.systems import _block_kernels as kernels
    spec = BlockSpec(width=4, tokens=2, layers=2, mixer="linear", norm="none", injection="none",
                     weight_gain=40.0, seed=2)
    config, arrays = spec._compiled(np.float64)
    x0 = spec.start_state().copy()
    for parts in (1, 2):
        basis = np.eye(x0.size)[:, :3].copy()
        state, _, log_r, _, done = kernels.tangent_run(config, arrays, x0, basis, 10000, spec.n_stages, False,
                                                       parts)
        assert 0 < done < 10000
        assert np.all(np.isfinite(state)) and np.all(np.isfinite(log_r))
        x = x0
        for _ in range(done):
            x = spec.stage_maps(x)[-1]
        assert np.array_equal(state, x)
        assert not np.all(np.isfinite(spec.stage_maps(x)[-1]))


@pytest.mark.parametrize("dtype, loops", [(np.float32, 300), (np.float64, 2500)])
def test_a_vanishing_state_is_flushed_to_zero_and_never_subnormal(dtype, loops):
    # X <- X/2 + 0.2 X W^T contracts to the origin: after every loop, entries below 2^-50 (float32) or
    # 2^-400 (float64) become 0 (MODEL.md), so no stage state ever holds a subnormal number
    from dynloop.systems import _block_kernels as kernels
    spec = BlockSpec(width=4, tokens=2, layers=2, mixer="linear", norm="none", injection="none",
                     residual_scale=0.2, skip_scale=0.5, weight_gain=0.5, seed=1)
    trajectory = dynloop.simulate(spec, loops, dtype=dtype)
    states = np.abs(trajectory.stage_states)
    assert not np.any((states > 0) & (states < np.finfo(dtype).tiny))
    assert np.all(trajectory.final_state == 0) and not trajectory.diverged
    limit = 2.0 ** -50 if dtype == np.float32 else 2.0 ** -400
    entering = states[:, 0]
    assert np.all((entering == 0) | (entering >= limit))
    assert np.any(states[:, 0] > 0)  # it did pass through the small numbers on its way
    if dtype == np.float64:
        config, arrays = spec._compiled(np.float64)
        x0, basis = spec.start_state().copy(), np.eye(8)[:, :2].copy()
        state = kernels.tangent_run(config, arrays, x0, basis, loops, spec.n_stages, False, 2)[0]
        assert np.array_equal(state, trajectory.final_state)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("code", range(4), ids=["tanh", "relu", "gelu", "silu"])
def test_the_vectorised_activation_loops_give_the_scalar_activations_bits(code, dtype):
    from dynloop.systems._block_kernels import _activation, activate
    z = (np.random.default_rng(code).standard_normal(301) * 4).astype(dtype)
    z[:7] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-30, -1e-30]
    out = np.empty_like(z)
    activate(z, out, code)
    if code in (1, 3):  # the loops of their own must not change a bit of the scalar form
        expected = np.array([_activation(value, code)[0] for value in z]).astype(dtype)
        bits = np.int64 if dtype == np.float64 else np.int32  # -0.0 and NaN too
        np.testing.assert_array_equal(out.view(bits), expected.view(bits))
    else:  # tanh and gelu use their own precision's forms in float32 (test_fastmath); float64 is exact
        finite = np.isfinite(z)
        expected = np.array([_activation(value, code)[0] for value in z[finite].astype(np.float64)])
        np.testing.assert_allclose(out[finite], expected, rtol=1e-15 if dtype == np.float64 else 2e-6,
                                   atol=1e-30 if dtype == np.float64 else 1e-6)
