"""AffineLoop: the compiled kernel against a numpy oracle, the exact helpers against their
definitions (fixed point, stage order of the loop matrix, cycle points, spectral radius)."""

import numpy as np
import pytest

import dynloop
from dynloop import AffineLoop


def random_loop(seed, k=3, n=4, radius=0.6):
    """k random stages whose product has spectral radius below 1 (each stage norm ≤ radius^(1/k))."""
    rng = np.random.default_rng(seed)
    matrices = []
    for _ in range(k):
        a = rng.standard_normal((n, n))
        matrices.append(a * radius ** (1 / k) / np.linalg.norm(a, 2))
    offsets = rng.standard_normal((k, n))
    return matrices, offsets


def oracle_run(matrices, offsets, x0, loops):
    """Plain numpy: the stage states of every loop, shape (loops, k + 1, n), in the dtype of x0."""
    x = np.asarray(x0)
    records = []
    for _ in range(loops):
        stages = [x]
        for a, b in zip(matrices, offsets):
            stages.append(a @ stages[-1] + b)
        records.append(stages)
        x = stages[-1]
    return np.array(records)


@pytest.mark.parametrize("seed", range(4))
def test_kernel_matches_numpy_oracle(seed):
    matrices, offsets = random_loop(seed, k=1 + seed, n=2 + seed)
    loop = AffineLoop(matrices, offsets)
    x0 = np.random.default_rng(100 + seed).standard_normal(loop.state_size)
    traj = dynloop.simulate(loop, 60, x0=x0)
    expected = oracle_run(matrices, offsets, x0, 60)
    assert traj.stage_names == tuple(f"stage{j}" for j in range(1 + seed))
    np.testing.assert_allclose(traj.stage_states, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(traj.stage_norms, np.linalg.norm(expected, axis=2), rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_fixed_point_is_exact(seed):
    matrices, offsets = random_loop(seed, k=2 + seed % 3, n=3 + seed)
    loop = AffineLoop(matrices, offsets)
    fixed = loop.fixed_point()
    # defining property, checked through the stage maps (not through loop_matrix)
    np.testing.assert_allclose(loop.loop(fixed), fixed, rtol=0, atol=1e-10 * max(1, np.abs(fixed).max()))
    assert loop.spectral_radius() < 1
    final = dynloop.simulate(loop, 400, record="none").final_state
    np.testing.assert_allclose(final, fixed, rtol=1e-10, atol=1e-10)


def test_loop_matrix_multiplies_in_stage_order():
    a0 = np.array([[1.0, 2.0], [0.0, 1.0]])
    a1 = np.array([[0.0, 1.0], [1.0, 0.0]])
    a2 = np.array([[3.0, 0.0], [1.0, -1.0]])
    assert not np.allclose(a1 @ a0, a0 @ a1)
    loop = AffineLoop([a0, a1, a2], [[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
    np.testing.assert_array_equal(loop.loop_matrix(), a2 @ a1 @ a0)
    np.testing.assert_array_equal(loop.jacobian([0.3, 0.2]), a2 @ a1 @ a0)  # System.jacobian agrees
    # the linear part of the oracle's loop
    columns = [oracle_run([a0, a1, a2], loop.offsets, e, 1)[0, -1] - loop.loop_offset() for e in np.eye(2)]
    np.testing.assert_allclose(np.array(columns).T, loop.loop_matrix(), atol=1e-14)
    np.testing.assert_allclose(loop.loop_offset(),
                               oracle_run([a0, a1, a2], loop.offsets, [0.0, 0.0], 1)[0, -1])
    np.testing.assert_array_equal(loop.stage_jacobians(), [a0, a1, a2])


def test_stage_fixed_points_close_the_cycle():
    matrices, offsets = random_loop(11, k=3, n=3)
    loop = AffineLoop(matrices, offsets)
    points = loop.stage_fixed_points()
    assert points.shape == (4, 3)
    np.testing.assert_allclose(points[0], loop.fixed_point(), rtol=1e-14)
    np.testing.assert_allclose(points[-1], points[0], atol=1e-10)
    for j in range(3):
        np.testing.assert_allclose(points[j + 1], matrices[j] @ points[j] + offsets[j], rtol=1e-14)
        # row j is the fixed point of the loop rotated to start at stage j (the rotation argument)
        rotated = AffineLoop(matrices[j:] + matrices[:j], np.roll(offsets, -j, axis=0))
        np.testing.assert_allclose(rotated.fixed_point(), points[j], atol=1e-10)
    # the iterated stage states converge to the cycle
    last = dynloop.simulate(loop, 300, record="last").stage_states[0]
    np.testing.assert_allclose(last, points, atol=1e-10)
    # vanishing: identity stages keep one point
    same = AffineLoop([np.eye(2), 0.5 * np.eye(2)], [[0.0, 0.0], [1.0, 1.0]]).stage_fixed_points()
    np.testing.assert_allclose(same, [[2.0, 2.0]] * 3)


def test_spectral_radius_is_the_convergence_rate():
    loop = AffineLoop([np.diag([0.9, 0.3]), [[0.0, 1.0], [1.0, 0.0]]], [[1.0, 0.0], [0.0, 1.0]])
    assert loop.spectral_radius() == pytest.approx(np.sqrt(0.27))  # M = [[0, .3], [.9, 0]]
    fixed = loop.fixed_point()
    distances = np.linalg.norm(dynloop.simulate(loop, 20).loop_states - fixed, axis=1)
    assert distances[19] / distances[9] == pytest.approx(0.27 ** 5, rel=1e-8)  # M^10 = 0.27^5 I
    expanding = AffineLoop([[[1.5]]], [[1.0]])
    assert expanding.spectral_radius() == 1.5
    assert expanding.fixed_point()[0] == pytest.approx(-2.0)  # exists, but repels


def test_singular_loop_has_no_unique_fixed_point():
    rotation = [[0.0, -1.0], [1.0, 0.0]]
    loop = AffineLoop([rotation] * 4, [[1.0, 0.0]] * 4)  # M = rotation^4 = I
    with pytest.raises(ValueError, match=r"no unique fixed point.*singular.*eigenvalue"):
        loop.fixed_point()
    with pytest.raises(ValueError, match="singular"):
        loop.stage_fixed_points()


def test_validation_errors():
    with pytest.raises(ValueError, match=r"matrices=\[\] is not allowed.*k >= 1"):
        AffineLoop([])
    with pytest.raises(ValueError, match=r"matrices\[0\] has shape \(2, 3\)"):
        AffineLoop([np.ones((2, 3))])
    with pytest.raises(ValueError, match=r"matrices\[1\] has shape \(3, 3\).*\(2, 2\)"):
        AffineLoop([np.eye(2), np.eye(3)])
    with pytest.raises(ValueError, match=r"matrices\[0\] has shape \(2,\)"):
        AffineLoop(np.eye(2))  # one matrix, not a sequence of them
    with pytest.raises(ValueError, match=r"matrices\[0\].*finite"):
        AffineLoop([[[np.inf]]])
    with pytest.raises(ValueError, match=r"offsets=.*one offset per matrix"):
        AffineLoop([np.eye(2)] * 2, [[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"offsets\[0\] has shape \(3,\)"):
        AffineLoop([np.eye(2)], [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"offsets\[0\].*finite"):
        AffineLoop([np.eye(2)], [[np.nan, 0.0]])
    with pytest.raises(ValueError, match=r"x0 has shape"):
        AffineLoop([np.eye(2)], x0=[1.0])
    with pytest.raises(ValueError, match="no parameters"):
        dynloop.simulate(AffineLoop([np.eye(2)]), 3, params={"a": 1.0})


def test_defaults_and_contract():
    loop = AffineLoop([0.5 * np.eye(3)] * 2)
    np.testing.assert_array_equal(loop.offsets, np.zeros((2, 3)))
    np.testing.assert_array_equal(loop.start_state(), np.ones(3))
    assert loop.state_shape == (3,) and loop.n_stages == 2 and loop.resolve_params() is None
    assert loop.stage_maps([1.0, 2.0, 3.0]).shape == (3, 3)
    assert "k=2" in repr(loop) and "n=3" in repr(loop)
    custom = AffineLoop([[[0.5]]], [[1.0]], x0=[4.0], name="halving")
    assert custom.name == "halving" and custom.start_state()[0] == 4.0


def test_record_modes_divergence_and_float32():
    matrices, offsets = random_loop(3, k=2, n=3)
    loop = AffineLoop(matrices, offsets)
    full = dynloop.simulate(loop, 50)
    last = dynloop.simulate(loop, 50, record=("last", 4), stride=3)
    np.testing.assert_array_equal(last.recorded_loops, [39, 42, 45, 48])
    np.testing.assert_array_equal(last.stage_states, full.stage_states[[39, 42, 45, 48]])
    assert dynloop.simulate(loop, 50, record="none").stage_states is None

    doubling = AffineLoop([[[2.0]], [[1.0]]])  # |h|^2 overflows once h = 2**512
    traj = dynloop.simulate(doubling, 2000)
    assert (traj.diverged_at, traj.diverged_stage, traj.loops_run) == (511, 1, 511)
    assert traj.final_state[0] == 2.0 ** 511

    single = dynloop.simulate(loop, 50, dtype=np.float32)
    assert single.stage_states.dtype == np.float32 and single.final_state.dtype == np.float32
    np.testing.assert_allclose(single.stage_states, full.stage_states, rtol=1e-5, atol=1e-5)
    f32 = [np.float32(a) for a in matrices], [np.float32(b) for b in offsets]
    oracle32 = oracle_run(*f32, np.ones(3, dtype=np.float32), 50)
    assert oracle32.dtype == np.float32
    np.testing.assert_allclose(single.stage_states, oracle32, rtol=1e-5, atol=1e-6)
    assert dynloop.simulate(doubling, 400, dtype=np.float32).diverged_at == 127  # float32 overflow


def test_linearized_linear_block_is_the_block():
    spec = dynloop.BlockSpec(width=3, tokens=2, layers=2, mixer="linear", norm="none",
                             injection="concat", residual_scale=0.3, seed=4)
    affine = spec.linearize(at=spec.start_state())
    assert isinstance(affine, AffineLoop) and affine.n_stages == spec.n_stages
    block = dynloop.simulate(spec, 20)
    linear = dynloop.simulate(affine, 20, x0=spec.start_state().ravel())
    np.testing.assert_allclose(linear.stage_states, block.stage_states.reshape(20, 4, 6), rtol=1e-10,
                               atol=1e-12)


def test_tangent_run_exponents_are_log_moduli_of_the_loop_eigenvalues():
    loop = AffineLoop([np.diag([1.1, 0.8]), [[0.5, 0.2], [0.1, 0.9]]], [[1.0, 0.0], [0.0, 1.0]])
    moduli = np.sort(np.abs(np.linalg.eigvals(loop.loop_matrix())))[::-1]
    loops = 3000
    state, basis, log_r, log_det, done = loop._tangent_run(loop.start_state(), np.eye(2), loops, None, True)
    assert done == loops
    np.testing.assert_allclose(log_r / done, np.log(moduli), atol=1e-3)  # finite-time error O(1/loops)
    assert log_det == pytest.approx(loops * np.log(abs(np.linalg.det(loop.loop_matrix()))), rel=1e-12)
    assert log_r.sum() == pytest.approx(log_det, rel=1e-10)
    expected = oracle_run(loop.matrices, loop.offsets, loop.start_state(), loops)[-1, -1]
    np.testing.assert_allclose(state, expected, rtol=1e-10)
    np.testing.assert_allclose(basis.T @ basis, np.eye(2), atol=1e-14)
    doubling = AffineLoop([[[2.0]]])
    state, _, _, _, done = doubling._tangent_run([1.0], np.eye(1), 2000, None, False)
    assert done == 1023 and state[0] == 2.0 ** 1023
