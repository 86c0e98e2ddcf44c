"""dynloop.simulate and its Trajectory: recording modes, blow-ups, bad arguments, files and figures."""

import numpy as np
import pytest

import dynloop
from dynloop import BlockSpec, maps


def test_record_modes_and_stride():
    spec = BlockSpec(width=4, tokens=2, layers=2, seed=1, residual_scale=0.5)
    full = dynloop.simulate(spec, 20)
    assert full.stage_states.shape == (20, 4, 2, 4)
    assert np.array_equal(full.recorded_loops, np.arange(20))
    np.testing.assert_array_equal(full.loop_states[:-1], full.stage_states[1:, 0])
    last = dynloop.simulate(spec, 20, record=("last", 3))
    assert np.array_equal(last.recorded_loops, [17, 18, 19])
    assert np.array_equal(last.stage_states, full.stage_states[17:])
    strided = dynloop.simulate(spec, 20, stride=6, record=("last", 2))
    assert np.array_equal(strided.recorded_loops, [12, 18])
    none = dynloop.simulate(spec, 20, record="none")
    assert none.stage_states is None and none.loop_states is None
    assert np.array_equal(none.final_state, full.final_state)
    np.testing.assert_array_equal(none.stage_norms, full.stage_norms)
    norms = np.linalg.norm(full.stage_states.reshape(20, 4, -1), axis=-1)
    np.testing.assert_allclose(full.stage_norms, norms, rtol=1e-13)
    steps = np.linalg.norm((full.stage_states[1:] - full.stage_states[:-1]).reshape(19, 4, -1), axis=-1)
    np.testing.assert_allclose(full.stage_steps[1:], steps, rtol=1e-10)
    assert np.all(np.isnan(full.stage_steps[0]))


@pytest.mark.parametrize("record", ["all", "none", ("last", 2)])
def test_blow_up_is_reported_not_raised(record):
    spec = BlockSpec(width=4, tokens=1, layers=2, mixer="linear", norm="none", injection="none",
                     weight_gain=40.0, seed=2)
    trajectory = dynloop.simulate(spec, 5000, record=record)
    assert trajectory.diverged
    assert 0 < trajectory.diverged_at < 5000
    assert trajectory.loops_run == trajectory.diverged_at
    assert np.all(np.isfinite(trajectory.final_state))
    assert trajectory.stage_norms.shape[0] == trajectory.loops_run + 1
    assert "Diverged" in trajectory.summary()


def test_zero_state_with_zero_eps_is_divergent_not_an_error():
    spec = BlockSpec(width=4, tokens=1, norm="pre", norm_eps=0.0, injection="none", state_init="zeros")
    trajectory = dynloop.simulate(spec, 10)
    assert trajectory.diverged_at == 0


def test_invalid_simulate_arguments():
    spec = BlockSpec(width=4, tokens=1)
    for kwargs, field in [({"record": "some"}, "record"), ({"stride": 0}, "stride"),
                          ({"dtype": np.int32}, "dtype"), ({"x0": np.zeros(3)}, "x0"),
                          ({"record_attention": True}, "record_attention"), ({"params": {"r": 1}}, "params")]:
        with pytest.raises(ValueError, match=field):
            dynloop.simulate(spec, 3, **kwargs)
    with pytest.raises(ValueError, match="loops"):
        dynloop.simulate(spec, -1)


def test_trajectory_save_load_plot(tmp_path):
    spec = BlockSpec(width=4, tokens=3, layers=2, mixer="attention", heads=2)
    trajectory = dynloop.simulate(spec, 8, record_attention=True)
    path = tmp_path / "run.npz"
    trajectory.save(path)
    again = dynloop.Trajectory.load(path)
    assert again.stage_names == trajectory.stage_names and again.loops_run == 8
    assert np.array_equal(again.stage_states, trajectory.stage_states)
    assert np.array_equal(again.attention, trajectory.attention)
    figure = trajectory.plot(tmp_path / "run.png")
    assert (tmp_path / "run.png").stat().st_size > 5000
    assert [line.get_label() for line in figure.axes[1].get_lines()] == ["inject", "layer0", "layer1"]


def test_map_record_modes_and_stride():
    m = maps.logistic(r=3.7)
    full = dynloop.simulate(m, 100)
    np.testing.assert_array_equal(full.recorded_loops, np.arange(100))
    last = dynloop.simulate(m, 100, record=("last", 7))
    np.testing.assert_array_equal(last.recorded_loops, np.arange(93, 100))
    np.testing.assert_array_equal(last.stage_states, full.stage_states[93:])
    one = dynloop.simulate(m, 100, record="last")
    np.testing.assert_array_equal(one.stage_states, full.stage_states[99:])
    strided = dynloop.simulate(m, 100, stride=15)
    np.testing.assert_array_equal(strided.recorded_loops, np.arange(0, 100, 15))
    np.testing.assert_array_equal(strided.stage_states, full.stage_states[::15])
    ring = dynloop.simulate(m, 100, record=("last", 3), stride=15)
    np.testing.assert_array_equal(ring.recorded_loops, [60, 75, 90])
    none = dynloop.simulate(m, 100, record="none")
    assert none.stage_states is None and len(none.recorded_loops) == 0
    for traj in (last, strided, none):
        np.testing.assert_array_equal(traj.final_state, full.final_state)
        np.testing.assert_array_equal(traj.stage_norms, full.stage_norms)
    # the summaries are those of the states
    np.testing.assert_allclose(full.stage_norms[:, 1], np.abs(full.stage_states[:, 1, 0]))
    np.testing.assert_allclose(full.stage_steps[1:, 1], np.abs(np.diff(full.stage_states[:, 1, 0])))
    assert np.isnan(full.stage_steps[0]).all()
    assert dynloop.simulate(m, 0).loops_run == 0
