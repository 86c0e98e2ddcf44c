"""dynloop.analyze on blocks whose answers are known, recordings in files, and what bad input says."""

import numpy as np
import pytest

import dynloop
from dynloop import BlockSpec, LoopRecording


@pytest.fixture(scope="module")
def cyclic():
    """A contracting transformer block with concat injection: a cyclic fixed point, distinct layer points."""
    spec = BlockSpec(
        width=8,
        tokens=4,
        layers=3,
        mixer="transformer",
        heads=2,
        norm="pre",
        injection="concat",
        residual_scale=0.3,
        weight_gain=0.5,
        seed=3,
    )
    return spec, dynloop.simulate(spec, 120, record_attention=True)


def contracting_linear(**fields):
    """A linear block without norms, X <- X/2 + 0.2 X W_l^T per layer: it contracts."""
    return BlockSpec(mixer="linear", norm="none", residual_scale=0.2, skip_scale=0.5, weight_gain=0.5,
                     **fields)


def test_a_linear_block_reaches_the_fixed_point_solved_by_hand():
    # X <- s X + a X W_l^T per layer after X <- X + e: the loop is affine, its fixed point solved in numpy
    spec = contracting_linear(width=3, tokens=2, layers=2, injection="additive", seed=5)
    w = spec.materialize()["weights"]["linear"]
    e = spec.stage_maps(np.zeros((2, 3)))[1]  # the injection stage from zero: X + beta e
    layer = [0.5 * np.eye(3) + 0.2 * w[i].T for i in range(2)]  # rows: X -> X (s I + a W^T)
    loop = layer[0] @ layer[1]
    # X* = (X* + e) L0 L1  =>  X* (I - L) = e L
    fixed = np.linalg.solve((np.eye(3) - loop).T, (e @ loop).T).T
    result = dynloop.analyze(dynloop.simulate(spec, 400))
    assert result.converged
    np.testing.assert_allclose(result.fixed_points[-1], fixed, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.fixed_points[2], (fixed + e) @ layer[0], rtol=1e-9, atol=1e-12)
    assert result.degeneracy["distinct"] == 2 and result.degeneracy["basis"] == "fixed points"
    assert result.fixed_point_drift_method == "simulated"


def test_a_cyclic_block(cyclic):
    spec, trajectory = cyclic
    result = dynloop.analyze(trajectory)
    assert result.converged and np.max(result.fixed_point_drift) < 1e-10
    assert result.successive_difference.shape == (119, 5) and result.distance_to_fixed_point.shape == (120, 5)
    assert result.degeneracy["distinct"] == 3 and result.degeneracy["min_cos"] < 0.999
    # every layer closest to itself on other loops, but for a few entries of the first loops
    assert result.diagonal_band_score["state"] > 0.99 and result.diagonal_band_score["attention"] > 0.99
    assert result.attention_change.shape == (119, 3, 2)
    assert np.all((result.attention_stable_at >= 1) & (result.attention_stable_at < 119))
    assert result.colsum_concentration.shape == (120, 3, 2) and result.sink_rate.shape == (120, 3)
    assert result.stage_profiles.shape == (4, 120, 3)
    assert np.all(result.profile_repeat[60:] > 0.999)
    assert result.stages.follows == "layer"
    assert result.token_counts() == {"fixed_point": 4, "orbit": 0, "slider": 0, "unknown": 0}
    assert result.bound_check["violations"].sum() == 0
    assert result.depth_norms.shape == (360,)
    # the classifier agrees: the block is cyclic
    assert dynloop.classify(spec).regime.value == "cyclic"


def test_a_vanishing_block_has_one_shared_point():
    # no injection, contracting linear layers (X <- X/2 + 0.2 X W^T): every stage point is the origin
    spec = contracting_linear(width=4, tokens=2, layers=3, injection="none", seed=1)
    assert dynloop.classify(spec).regime.value == "vanishing"
    result = dynloop.analyze(dynloop.simulate(spec, 400))
    assert result.degeneracy["distinct"] == 1


def test_a_drifting_stream_reports_the_degeneracy_of_its_directions():
    loops, directions = 40, np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # entering state, two layers
    states = np.array([[(t + 1.0 + 0.1 * j) * directions[j][None] for j in range(3)] for t in range(loops)])
    result = dynloop.analyze(LoopRecording(states))
    assert not result.converged and result.fixed_point_drift_method == "extrapolated"
    assert result.degeneracy["basis"] == "drift directions"
    assert result.degeneracy["min_cos"] == pytest.approx(1 / np.sqrt(2))  # layer 0 (1,1) against (0,1)
    assert result.degeneracy["increment_min_cos"] == pytest.approx(1 / np.sqrt(2))
    assert result.token_counts()["fixed_point"] == 1  # the direction never changes


def test_analysis_of_a_saved_and_reloaded_recording_is_identical(cyclic, tmp_path):
    rec = cyclic[1].recording()
    rec.save(tmp_path / "rec.npz")
    again = dynloop.load_recording(tmp_path / "rec.npz")
    assert again.stage_names == rec.stage_names and again.meta.keys() == rec.meta.keys()
    a, b = dynloop.analyze(rec), dynloop.analyze(again)
    assert a.fixed_point_drift_method == "simulated" and b.fixed_point_drift_method == "extrapolated"
    for name, value in vars(a).items():
        if isinstance(value, np.ndarray) and name != "fixed_point_drift":
            np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)
    for key in ("bound", "observed", "violations", "tightness"):
        np.testing.assert_array_equal(a.bound_check[key], b.bound_check[key])
    assert a.stages.communities == b.stages.communities and a.degeneracy["min_cos"] == b.degeneracy["min_cos"]


def test_safetensors_round_trip(cyclic, tmp_path):
    pytest.importorskip("safetensors")
    rec = cyclic[1].recording()
    rec.save(tmp_path / "rec.safetensors")
    again = dynloop.load_recording(tmp_path / "rec.safetensors")
    np.testing.assert_array_equal(again.attention, rec.attention)
    np.testing.assert_array_equal(again.meta["attn_q"], rec.meta["attn_q"])


def test_a_trajectory_file_and_a_bare_dump_load_as_recordings(cyclic, tmp_path):
    cyclic[1].save(tmp_path / "traj.npz")
    rec = dynloop.load_recording(tmp_path / "traj.npz")
    assert rec.stage_names == ("inject", "layer0", "layer1", "layer2") and rec.layers == 3
    np.savez(
        tmp_path / "dump.npz",
        stage_states=np.ones((6, 4, 3, 2)),
        prelude=np.ones((2, 3, 2)),
        coda=np.ones((1, 3, 2)),
    )
    dump = dynloop.load_recording(tmp_path / "dump.npz")
    assert dump.layers == 3 and dynloop.analyze(dump).depth_norms.shape == (2 + 18 + 1,)


def test_reference_profiles_correlate(cyclic):
    rec = cyclic[1].recording()
    result = dynloop.analyze(rec, reference=rec)
    assert result.profile_correlation.shape == (120, 4)
    assert np.all(result.profile_correlation[-1] > 0.999)
    no_attention = LoopRecording(rec.stage_states[:1], stage_names=rec.stage_names)
    partial = dynloop.analyze(rec, reference=no_attention).profile_correlation
    assert np.all(np.isnan(partial[:, :3])) and np.all(np.isfinite(partial[:, 3]))


def test_float32_recordings_get_a_float32_tolerance(cyclic):
    spec = cyclic[0]
    result = dynloop.analyze(dynloop.simulate(spec, 100, dtype=np.float32, record_attention=True))
    assert result.tol == 1e-4 and result.converged


BAD = [
    (dict(stage_states=np.ones((4, 3, 2))), "stage_states has shape (4, 3, 2)"),
    (dict(stage_states=np.ones((4, 1, 2, 2))), "at least 1 loop, 2 stages"),
    (dict(attention=np.full((5, 2, 1, 2, 2), 0.5)), "attention has shape (5, 2, 1, 2, 2); expected"),
    (dict(attention=np.full((4, 3, 1, 2, 2), 0.5)), "layers the stages named"),
    (dict(attention=np.full((4, 2, 1, 2, 3), 0.5)), "attention has shape (4, 2, 1, 2, 3)"),
    (dict(attention=np.full((4, 2, 1, 2, 2), 0.6)), "sums to 1.2"),
    (
        dict(attention=np.array([1.5, -0.5])[None, None, None, None].repeat(2, 3).repeat(2, 1).repeat(4, 0)),
        "negative entry",
    ),
    (dict(prelude=np.ones((2, 3, 5))), "prelude has shape (2, 3, 5); expected (layers, T, d)"),
    (dict(stage_names=("a",)), "stage_names=('a',) is not allowed: expected 2 names"),
    (
        dict(meta={"attn_q": np.ones((2, 4, 5)), "attn_k": np.ones((2, 5, 5)), "heads": 1}),
        "meta['attn_q'] has shape (2, 4, 5); expected (layers, d, d)",
    ),
    (dict(meta={"attn_q": np.ones((2, 5, 5))}), "expected both 'attn_q' and 'attn_k'"),
    (
        dict(meta={"attn_q": np.ones((2, 5, 5)), "attn_k": np.ones((2, 5, 5)), "heads": 2}),
        "meta['heads']=2 is not allowed: expected a whole number of heads dividing d = 5",
    ),
    (dict(meta={"sink_position": 7}), "meta['sink_position']=7"),
]


@pytest.mark.parametrize("changes, message", BAD, ids=[m[:24] for _, m in BAD])
def test_malformed_recordings_name_the_array_and_its_shape(changes, message):
    arguments = dict(stage_states=np.ones((4, 3, 2, 5)))
    arguments.update(changes)
    states = arguments.pop("stage_states")
    with pytest.raises(ValueError) as error:
        LoopRecording(states, **arguments)
    assert message in str(error.value)


def test_non_finite_states_are_named_with_their_index():
    states = np.ones((4, 3, 2, 5))
    states[2, 1, 0, 3] = np.nan
    with pytest.raises(
        ValueError, match=r"stage_states has a non-finite entry \(nan\) at index \(2, 1, 0, 3\)"
    ):
        LoopRecording(states)


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no recording"):
        dynloop.load_recording(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", states=np.ones((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="no array named 'stage_states'"):
        dynloop.load_recording(tmp_path / "other.npz")
    (tmp_path / "rec.txt").write_text("x")
    with pytest.raises(ValueError, match="path=.* expected a file name ending in .npz or .safetensors"):
        dynloop.load_recording(tmp_path / "rec.txt")
    with pytest.raises(ValueError, match="recording_or_trajectory='ndarray'"):
        dynloop.analyze(np.ones((3, 3, 2, 2)))
    with pytest.raises(ValueError, match="token_rho=1.5"):
        dynloop.analyze(LoopRecording(np.ones((3, 2, 1, 1))), token_rho=1.5)


def test_a_diverged_run_keeps_its_finite_loops():
    spec = BlockSpec(
        width=4, tokens=2, layers=2, mixer="linear", norm="none", injection="none", weight_gain=40.0, seed=2
    )
    trajectory = dynloop.simulate(spec, 300)
    assert trajectory.diverged
    rec = trajectory.recording()
    assert 0 < rec.loops <= trajectory.loops_run and np.all(np.isfinite(rec.stage_states))
    with pytest.raises(ValueError, match="record='none'"):
        dynloop.simulate(spec, 3, record="none").recording()


@pytest.fixture(scope="module")
def analysed_with_reference(cyclic):
    return dynloop.analyze(cyclic[1], reference=cyclic[1])


@pytest.mark.parametrize("kind", ["distances", "metrics", "similarity", "pca", "profiles", "attention"])
def test_every_figure_draws(analysed_with_reference, kind, tmp_path):
    result = analysed_with_reference
    fig = result.plot(kind, tmp_path / f"{kind}.png")
    assert (tmp_path / f"{kind}.png").stat().st_size > 5000 and len(fig.axes) >= 1
    with pytest.raises(ValueError, match="kind='pcaa'.*did you mean 'pca'"):
        result.plot("pcaa")


def test_report_writes_every_figure_and_a_page(cyclic, tmp_path):
    page = dynloop.analyze(cyclic[1]).report(tmp_path / "out")
    text = page.read_text()
    for kind in ("distances", "metrics", "similarity", "pca", "profiles", "attention"):
        assert f"({kind}.png)" in text and (tmp_path / "out" / f"{kind}.png").exists()
    assert "Loop analysis of" in text and "converged" in text
