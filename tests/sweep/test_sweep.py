"""The sweep engine: the same decisions as classify, facets, files that survive SIGKILL, Dask."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pytest

import dynloop
from dynloop import Regime
from dynloop.sweep import sweep

ROOT = Path(__file__).resolve().parents[2]

BLOCK = dynloop.BlockSpec(width=4, tokens=2, layers=2, mixer="mlp", hidden=6, activation="tanh", norm="pre",
                          injection="concat", weight_gain=0.8, seed=3)


def assert_same_results(a, b):
    """The two diagrams' labels and every diagnostic, bit for bit (NaN where NaN)."""
    assert np.array_equal(a.regimes, b.regimes)
    assert a.diagnostics.keys() == b.diagnostics.keys()
    for name in a.diagnostics:
        np.testing.assert_array_equal(a.diagnostics[name], b.diagnostics[name])


def labels(diagram):
    return np.vectorize(lambda code: Regime.from_code(code).value)(diagram.regimes)


def test_logistic_sweep_matches_classify_point_by_point():
    values = np.linspace(2.6, 3.6, 21)
    diagram = sweep(dynloop.maps.logistic(), {"r": values}, loops=400, progress=False)
    assert diagram.regimes.shape == (21,)
    for r, code, period in zip(values, diagram.regimes, diagram.diagnostics["period"]):
        expected = dynloop.classify(dynloop.maps.logistic(r=r), transient=200, window=200, max_period=49,
                                    lyapunov=False)
        assert Regime.from_code(code) is expected.regime, r
        assert (period or None) == expected.period or (period == 0 and expected.period is None)


def test_logistic_chaos_needs_the_lyapunov_exponent():
    values = np.array([3.2, 3.9, 4.0])
    without = sweep(dynloop.maps.logistic(), {"r": values}, loops=2000, progress=False)
    with_exponent = sweep(dynloop.maps.logistic(), {"r": values}, loops=2000, lyapunov=True, progress=False)
    assert list(labels(without)) == ["periodic", "undetermined", "undetermined"]
    assert list(labels(with_exponent)) == ["periodic", "chaotic", "chaotic"]
    assert abs(with_exponent.diagnostics["lyapunov"][2] - np.log(2)) < 0.05


def test_the_kernels_read_point_values_in_point_fields_order():
    from dynloop.sweep import _kernels
    from dynloop.systems.block import POINT_FIELDS

    columns = {name: getattr(_kernels, "P_" + name.upper()) for name in POINT_FIELDS}
    assert list(columns.values()) == list(range(len(POINT_FIELDS))), columns


def _classify_each_point(spec, axes, diagram):
    """Assert that every point of a (residual scale × injection strength) diagram has classify's regime.

    Returns ``[((i, j), classification), ...]`` for further checks.
    """
    results = []
    for i, alpha in enumerate(axes["residual_scale"]):
        for j, beta in enumerate(axes["injection_scale"]):
            expected = dynloop.classify(spec.replace(residual_scale=alpha, injection_scale=beta),
                                        transient=120, window=120, max_period=29, lyapunov=False)
            assert Regime.from_code(diagram.regimes[i, j]) is expected.regime, (
                alpha, beta, expected.summary())
            results.append(((i, j), expected))
    return results


def test_block_sweep_matches_classify_at_every_point():
    axes = {"residual_scale": np.linspace(0.0, 2.0, 4), "injection_scale": np.linspace(0.0, 1.5, 3)}
    diagram = sweep(BLOCK, axes, loops=240, progress=False, chunk=5)
    for (i, j), expected in _classify_each_point(BLOCK, axes, diagram):
        if expected.regime in (Regime.CYCLIC, Regime.VANISHING):
            assert diagram.diagnostics["distinct_stage_points"][i, j] == expected.distinct_stage_points


def test_vanishing_line_and_final_norms():
    diagram = sweep(BLOCK.replace(injection="none"), {"residual_scale": [0.0, 0.5]}, loops=100,
                    progress=False)
    assert labels(diagram)[0] == "vanishing"
    final = dynloop.simulate(BLOCK.replace(injection="none", residual_scale=0.5),
                             int(diagram.diagnostics["loops_run"][1]))
    assert diagram.diagnostics["final_norm"][1] == pytest.approx(np.linalg.norm(final.final_state), rel=1e-12)


def test_categorical_axis_gives_facets_equal_to_separate_sweeps():
    axes = {"norm": ["pre", "post"], "residual_scale": np.linspace(0.2, 1.2, 3)}
    diagram = sweep(BLOCK, axes, loops=120, progress=False)
    assert diagram.regimes.shape == (2, 3)
    # the diagram's name (summary, figure title) does not claim BLOCK's one norm for both facets
    assert BLOCK.norm in BLOCK.name
    assert diagram.meta["system_name"] == BLOCK.name.replace(f"norm={BLOCK.norm}/", "norm=*/")
    assert "norm=*/" in diagram.summary()
    for k, norm in enumerate(["pre", "post"]):
        alone = sweep(BLOCK.replace(norm=norm), {"residual_scale": axes["residual_scale"]}, loops=120,
                      progress=False)
        assert np.array_equal(diagram.regimes[k], alone.regimes)
        np.testing.assert_array_equal(diagram.diagnostics["final_norm"][k], alone.diagnostics["final_norm"])


def test_integer_axis_and_early_exit_do_not_change_labels():
    axes = {"layers": [1, 3], "residual_scale": [0.3, 0.9]}
    eager = sweep(BLOCK, axes, loops=200, progress=False)
    patient = sweep(BLOCK, axes, loops=200, progress=False, early_exit=False)
    assert np.array_equal(eager.regimes, patient.regimes)
    assert np.all(eager.diagnostics["loops_run"] <= patient.diagnostics["loops_run"])


def test_store_resume_and_mismatch(tmp_path):
    axes = {"residual_scale": np.linspace(0.0, 2.0, 6), "injection_scale": np.linspace(0.0, 1.0, 4)}
    reference = sweep(BLOCK, axes, loops=120, progress=False)
    store = tmp_path / "store"
    first = sweep(BLOCK, axes, loops=120, progress=False, store=store, chunk=5)
    assert np.array_equal(first.regimes, reference.regimes)
    chunks = sorted(store.glob("chunk-*.npz"))
    assert len(chunks) == 5
    for path in chunks[1:3]:
        path.unlink()
    again = sweep(BLOCK, axes, loops=120, progress=False, store=store, chunk=5)
    assert np.array_equal(again.regimes, reference.regimes)
    np.testing.assert_array_equal(again.diagnostics["final_norm"], reference.diagnostics["final_norm"])
    with pytest.raises(ValueError, match="axes|loops"):
        sweep(BLOCK, axes, loops=140, progress=False, store=store, chunk=5)


KILL_SCRIPT = """
import sys, numpy as np, dynloop
from dynloop.sweep import sweep
spec = dynloop.BlockSpec(width=4, tokens=2, layers=2, mixer="mlp", hidden=6, activation="tanh", norm="pre",
                         injection="concat", weight_gain=0.8, seed=3)
sweep(spec, {"residual_scale": np.linspace(0, 2, 40), "injection_scale": np.linspace(0, 1, 10)}, loops=3000,
      early_exit=False, store=sys.argv[1], chunk=4, progress=False)
"""


def test_sigkill_loses_no_finished_chunk(tmp_path):
    store = tmp_path / "store"
    axes = {"residual_scale": np.linspace(0, 2, 40), "injection_scale": np.linspace(0, 1, 10)}
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(store)])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(store.glob("chunk-*.npz"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list(store.glob("chunk-*.npz")))
    assert 3 <= finished < 100, "the sweep should have been killed part-way"
    resumed = sweep(BLOCK, axes, loops=3000, early_exit=False, store=store, chunk=4, progress=False)
    uninterrupted = sweep(BLOCK, axes, loops=3000, early_exit=False, chunk=4, progress=False)
    assert np.array_equal(resumed.regimes, uninterrupted.regimes)
    np.testing.assert_array_equal(resumed.diagnostics["final_norm"], uninterrupted.diagnostics["final_norm"])


INTERRUPT_SCRIPT = KILL_SCRIPT.replace(
    "sweep(spec,", "import signal, os; signal.signal(signal.SIGINT, signal.default_int_handler)\nsweep(spec,")


def test_ctrl_c_stops_cleanly_keeping_finished_chunks(tmp_path):
    # a KeyboardInterrupt raised inside a running parallel kernel surfaced as a numba SystemError and
    # lost the call's chunks; now the call finishes, its chunks are stored and the sweep raises
    # KeyboardInterrupt. (The script restores Python's SIGINT handler: a child started in the
    # background of a shell may inherit SIGINT ignored.)
    store = tmp_path / "store"
    axes = {"residual_scale": np.linspace(0, 2, 40), "injection_scale": np.linspace(0, 1, 10)}
    process = subprocess.Popen([sys.executable, "-c", INTERRUPT_SCRIPT, str(store)], stderr=subprocess.PIPE,
                               text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(store.glob("chunk-*.npz")):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGINT, stderr  # the uncaught KeyboardInterrupt
    assert stderr.rstrip().endswith("KeyboardInterrupt") and "SystemError" not in stderr, stderr
    finished = len(list(store.glob("chunk-*.npz")))
    assert 1 <= finished < 100, "the sweep should have been interrupted part-way"
    assert not [p.name for p in store.iterdir() if ".tmp-" in p.name]
    resumed = sweep(BLOCK, axes, loops=3000, early_exit=False, store=store, chunk=4, progress=False)
    assert resumed.meta["chunks_loaded"] == finished
    uninterrupted = sweep(BLOCK, axes, loops=3000, early_exit=False, chunk=4, progress=False)
    assert_same_results(resumed, uninterrupted)


@pytest.fixture
def default_sigint():
    """SIGINT raising KeyboardInterrupt, as in a terminal (a background job without job control
    inherits SIGINT ignored, and the sweep then leaves the signal alone)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_is_raised_between_compiled_calls_and_the_handler_restored(default_sigint):
    from dynloop.sweep import engine

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with engine._interrupts_between_calls() as check:
            os.kill(os.getpid(), signal.SIGINT)  # as if during a compiled call: noted, not raised
            time.sleep(0.01)
            interrupted_here = False
            try:
                check()
            except KeyboardInterrupt:
                interrupted_here = True
                raise
    assert interrupted_here and signal.getsignal(signal.SIGINT) is before
    with pytest.raises(KeyboardInterrupt):  # one after the last check is not lost
        with engine._interrupts_between_calls():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once (e.g. while kernels compile)
        with engine._interrupts_between_calls():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            pytest.fail("the second Ctrl-C should have raised")
    assert signal.getsignal(signal.SIGINT) is before
    # a second Ctrl-C that lands in a kernel's call back into Python comes out of numba as a
    # SystemError caused by the KeyboardInterrupt: the user gets the KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        with engine._interrupts_between_calls():
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as interrupt:
                raise SystemError("CPUDispatcher(...) returned a result with an exception set") from interrupt
    with pytest.raises(SystemError, match="unrelated"):  # any other SystemError is left alone
        with engine._interrupts_between_calls():
            raise SystemError("unrelated")
    assert signal.getsignal(signal.SIGINT) is before


def test_a_resumed_sweep_says_how_many_chunks_it_loaded(tmp_path):
    axes = {"r": np.linspace(2.5, 4.0, 10)}
    first = sweep(dynloop.maps.logistic(), axes, loops=100, chunk=3, store=tmp_path, progress=False)
    assert first.meta["chunks"] == 4 and first.meta["chunks_loaded"] == 0 and "loaded" not in first.summary()
    (tmp_path / "chunk-000002.npz").unlink()
    again = sweep(dynloop.maps.logistic(), axes, loops=100, chunk=3, store=tmp_path, progress=False)
    assert again.meta["chunks_loaded"] == 3 and "(3 of 4 chunks loaded from the store)" in again.summary()
    assert_same_results(first, again)


def test_a_cold_cache_is_announced_on_stderr(monkeypatch, capsys, tmp_path):
    # a first run compiled for a minute behind a frozen bar (or silently when piped, as here)
    from dynloop import _cache

    sweep(dynloop.maps.logistic(), {"r": [3.2]}, loops=50, progress=False)  # the kernel is now cached here
    sweep(BLOCK, {"residual_scale": [0.5]}, loops=50, progress=False)
    kernels = ("dynloop.sweep._kernels.sweep_map", "dynloop.sweep._kernels.sweep_block_columns")
    assert _cache.kernels_cached(*kernels)
    with monkeypatch.context() as patch:
        patch.setattr(numba.config, "CACHE_DIR", str(tmp_path))  # an empty cache
        assert not _cache.kernels_cached(kernels[0]) and not _cache.kernels_cached(kernels[1])
    monkeypatch.setattr(_cache, "_announced", False)
    capsys.readouterr()
    sweep(dynloop.maps.logistic(), {"r": [3.2]}, loops=50)
    assert "compiling" not in capsys.readouterr().err
    monkeypatch.setattr(_cache, "kernels_cached", lambda *modules, directory=None: False)
    sweep(dynloop.maps.logistic(), {"r": [3.2]}, loops=50)
    assert capsys.readouterr().err == "dynloop: compiling kernels (first run only, about a minute)\n"
    monkeypatch.setattr(_cache, "_announced", False)
    sweep(dynloop.maps.logistic(), {"r": [3.2]}, loops=50, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_fork_process_pool_after_an_in_process_sweep_gives_the_same_results():
    # once parallel kernels have run here on GNU OpenMP threads, a forked worker aborted at its first
    # kernel ("fork() called from a process already using GNU OpenMP"): BrokenProcessPool
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    axes = {"residual_scale": np.linspace(0.0, 2.0, 5), "injection_scale": np.linspace(0.0, 1.0, 4)}
    local = sweep(BLOCK, axes, loops=120, progress=False, chunk=6)
    # ProcessPoolExecutor(2) on Linux before Python 3.14 (forkserver since)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        remote = sweep(BLOCK, axes, loops=120, progress=False, chunk=6, executor=pool)
    assert_same_results(remote, local)


def test_dask_local_cluster_gives_the_same_labels():
    distributed = pytest.importorskip("distributed")
    axes = {"residual_scale": np.linspace(0.0, 2.0, 5), "injection_scale": np.linspace(0.0, 1.0, 4)}
    local = sweep(BLOCK, axes, loops=120, progress=False, chunk=6)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = sweep(BLOCK, axes, loops=120, progress=False, chunk=6, executor=client.get_executor())
    assert np.array_equal(remote.regimes, local.regimes)
    np.testing.assert_array_equal(remote.diagnostics["final_norm"], local.diagnostics["final_norm"])


@pytest.mark.slow  # compiles every sweep kernel again in float32 (minutes on a cold cache)
def test_float32_sweep():
    axes = {"residual_scale": np.linspace(0.0, 1.0, 3)}
    single = sweep(BLOCK, axes, loops=100, progress=False, dtype=np.float32)
    double = sweep(BLOCK, axes, loops=100, progress=False)
    np.testing.assert_allclose(single.diagnostics["final_norm"], double.diagnostics["final_norm"], rtol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    ({"axes": {"depth": [1, 2]}}, "depth"),
    ({"axes": {"residual_scale": [[1, 2]]}}, "1-D"),
    ({"axes": {}}, "axes"),
    ({"axes": {"residual_scale": [1.0]}, "transient": 200, "loops": 200}, "transient"),
    ({"axes": {"residual_scale": [1.0]}, "dtype": np.int64}, "dtype"),
    ({"axes": {"norm": ["pre", "postnorm"]}}, "norm"),
])
def test_bad_sweeps_are_named(kwargs, message):
    axes = kwargs.pop("axes")
    with pytest.raises(ValueError, match=message):
        sweep(BLOCK, axes, progress=False, **kwargs)


@pytest.mark.parametrize("axes, message", [
    ({"residual_scale": [0.5, np.nan]}, r"axes\['residual_scale'\]\[1\]=nan .*finite"),
    ({"injection_scale": [np.inf, 1.0]}, r"axes\['injection_scale'\]\[0\]=inf .*finite"),
    ({"weight_gain": [1.0, -np.inf]}, r"axes\['weight_gain'\]\[1\]=-inf .*finite"),
    ({"residual_scale": ["a", "b"]}, r"axes\['residual_scale'\]\[0\]='a' .*number"),
    ({"residual_scale": [0.5, "x"]}, r"axes\['residual_scale'\]\[1\]='x' .*number"),
    ({"residual_scale": [True, False]}, r"axes\['residual_scale'\]\[0\]=True .*number"),
    ({"norm_eps": [1e-6, -1.0]}, r"axes\['norm_eps'\]: norm_eps=-1.0 .*>= 0"),
    ({"norm": [1, 2]}, r"axes\['norm'\]: norm=1 .*'pre'"),
    ({"injection_scale": []}, r"axes\['injection_scale'\]=\[\] .*non-empty"),
])
def test_bad_axis_values_are_refused_before_anything_runs(tmp_path, axes, message):
    # a NaN point was labelled divergent, and a bad facet value was found only when its chunk ran
    store = tmp_path / "store"
    with pytest.raises(ValueError, match=message):
        sweep(BLOCK, dict(axes, residual_scale=axes.get("residual_scale", [0.5])), progress=False,
              store=store)
    assert not store.exists()


@pytest.mark.parametrize("values, message", [
    ([2.5, np.nan, 3.5], r"axes\['r'\]\[1\]=nan .*finite"),
    ([np.inf], r"axes\['r'\]\[0\]=inf"),
    (["3.2"], r"axes\['r'\]\[0\]='3.2' .*number for logistic's parameter 'r'"),
    ([], r"axes\['r'\]=\[\]")])
def test_bad_map_axis_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        sweep(dynloop.maps.logistic(), {"r": values}, progress=False)


def test_orbit_diagram_refuses_non_finite_values():
    with pytest.raises(ValueError, match=r"values\[1\]=nan .*finite"):
        dynloop.orbit_diagram(dynloop.maps.logistic(), "r", [3.0, np.nan], loops=50, keep=10)
    with pytest.raises(ValueError, match=r"values=.*numbers"):
        dynloop.orbit_diagram(dynloop.maps.logistic(), "r", ["x"], loops=50, keep=10)


@pytest.mark.parametrize("loops", [8, 9, 10, 12, 15, 16, 17, 24, 33, 520, 600])
def test_every_accepted_loops_works_with_the_default_transient(loops):
    # loops=16 failed with "transient=8 is not allowed", a parameter never passed: the default
    # window is loops // 2, at least the shortest window (8 loops: max_period 1) and at most 260
    values = np.array([2.5, 2.9, 3.2, 3.5])
    window = min(max(loops // 2, 8), 260)
    diagram = sweep(dynloop.maps.logistic(), {"r": values}, loops=loops, progress=False)
    assert diagram.meta["transient"] == loops - window and diagram.meta["max_period"] == (window - 4) // 4
    for r, code in zip(values, diagram.regimes):
        expected = dynloop.classify(dynloop.maps.logistic(r=r), transient=loops - window, window=window,
                                    max_period=(window - 4) // 4, lyapunov=False)
        assert Regime.from_code(code) is expected.regime, (loops, r)
    if loops in (8, 16):
        assert sweep(BLOCK, {"residual_scale": [0.2, 0.9]}, loops=loops, progress=False).regimes.shape == (2,)


def test_too_few_loops_or_too_long_a_transient_are_named():
    with pytest.raises(ValueError, match=r"loops=7 is not allowed: expected at least 8"):
        sweep(dynloop.maps.logistic(), {"r": [3.0]}, loops=7, progress=False)
    with pytest.raises(ValueError,
                       match=r"transient=13 is not allowed: .*at least 8 loops: at most 12 with loops=20"):
        sweep(dynloop.maps.logistic(), {"r": [3.0]}, loops=20, transient=13, progress=False)
    shortest = sweep(dynloop.maps.logistic(), {"r": [3.0]}, loops=20, transient=12, progress=False)
    assert shortest.meta["max_period"] == 1


def test_affine_loops_cannot_be_swept():
    with pytest.raises(ValueError, match="AffineLoop"):
        sweep(dynloop.AffineLoop([np.eye(2)], [np.zeros(2)]), {"x": [1.0]}, progress=False)


def test_early_exit_compaction_keeps_labels_on_a_mixed_grid():
    # a grid where some points settle at the first window and others run to the end: the row
    # kernel drops settled points from its groups, and no label may change because of it
    spec = BLOCK.replace(norm="sandwich", injection="additive")
    axes = {"residual_scale": np.linspace(0.0, 3.0, 12), "injection_scale": np.linspace(0.0, 2.0, 6)}
    eager = sweep(spec, axes, loops=240, progress=False, chunk=40)
    patient = sweep(spec, axes, loops=240, progress=False, chunk=40, early_exit=False)
    assert np.array_equal(eager.regimes, patient.regimes)
    assert np.any(eager.diagnostics["loops_run"] < 240)        # some points left their group early
    assert np.any(eager.diagnostics["loops_run"] == 240)       # and others kept iterating


def test_points_that_stay_after_others_left_keep_their_results(monkeypatch):
    # in groups of 12 points, 1 to 6 of which settle at the first window: the group is compacted to
    # the 6 to 11 points still running, and those report what they report without early exit, bit
    # for bit (attention pads them to whole vectors where most of one would be empty)
    from dynloop.sweep import engine

    spec = BLOCK.replace(norm="sandwich", injection="additive", mixer="transformer", heads=2)
    axes = {"residual_scale": np.linspace(0.3, 3.0, 6), "injection_scale": np.linspace(0.0, 0.66, 12)}
    monkeypatch.setattr(engine, "_GROUP_COLUMNS", (12 * spec.tokens,) * 2)
    eager = sweep(spec, axes, loops=240, progress=False)
    patient = sweep(spec, axes, loops=240, progress=False, early_exit=False)
    loops_run = eager.diagnostics["loops_run"].ravel()
    left = (loops_run < 240).reshape(-1, 12).sum(axis=1)
    assert np.any((left >= 1) & (left <= 6))
    assert np.array_equal(eager.regimes, patient.regimes)
    stayed = loops_run == 240
    for name in eager.diagnostics:
        np.testing.assert_array_equal(eager.diagnostics[name].ravel()[stayed],
                                      patient.diagnostics[name].ravel()[stayed], err_msg=name)


def test_attention_points_that_left_but_kept_their_columns_report_what_they_report_alone(monkeypatch):
    # attention runs a group on whole vectors of points, so a group that loses a point or two keeps
    # their columns (it would be padded back to as many vectors). Those points' windows stay in
    # the ring as they left them: every point reports, bit for bit, what it reports alone
    from dynloop.sweep import engine

    spec = BLOCK.replace(norm="sandwich", injection="additive", mixer="transformer", heads=2)
    axes = {"residual_scale": np.linspace(0.3, 0.36, 4), "injection_scale": np.linspace(0.0, 0.38, 16)}
    grouped = sweep(spec, axes, loops=240, progress=False)
    # groups of 16 points (one per residual scale), 1 to 3 of which leave at loop 120: 13 to 15 left
    # are padded back to 16 with vectors of 4 or 8 float64 points, so the columns stay
    left = (grouped.diagnostics["loops_run"] < 240).sum(axis=1)
    assert engine._ATTENTION_POINTS == 16 and np.all(left <= 3) and np.any(left >= 1), left
    monkeypatch.setattr(engine, "_ATTENTION_POINTS", 1)
    monkeypatch.setattr(engine, "_GROUP_COLUMNS", (spec.tokens,) * 2)
    alone = sweep(spec, axes, loops=240, progress=False)
    assert_same_results(grouped, alone)  # final_norm among them: the last state each point's window held


def test_a_point_that_diverges_before_the_last_window_keeps_its_loop_and_state(monkeypatch):
    # without early exit the group kernel records only the loops of the last window; a point that
    # blows up before them must still report the loop it diverged at and its non-finite last state,
    # not what reused work memory held (here: finite values, as a previous sweep leaves them)
    from dynloop.sweep import engine

    def stale_memory(name, shape, dtype):
        return np.full(shape, 7.0, dtype=dtype)

    monkeypatch.setattr(engine, "_work_memory", stale_memory)
    spec = BLOCK.replace(mixer="linear", norm="none", injection="none")
    axes = {"residual_scale": [0.0, 0.05, 60.0]}
    patient = sweep(spec, axes, loops=200, early_exit=False, progress=False)
    eager = sweep(spec, axes, loops=200, progress=False)
    run = dynloop.simulate(spec.replace(residual_scale=60.0), 200)
    assert run.diverged and run.loops_run < 100
    assert labels(patient)[2] == labels(eager)[2] == "divergent"
    assert patient.diagnostics["loops_run"][2] == eager.diagnostics["loops_run"][2] == run.loops_run + 1
    assert np.isinf(patient.diagnostics["final_norm"][2]) and np.isinf(eager.diagnostics["final_norm"][2])
    assert np.array_equal(patient.regimes, eager.regimes)


SWEEP_DETERMINISM = """
import hashlib, numpy as np, dynloop
spec = dynloop.BlockSpec(width=16, tokens=2, layers=2, mixer="mlp", hidden=16, norm="pre",
                         injection="additive", seed=5)
d = dynloop.sweep(spec, {"residual_scale": np.linspace(0, 2, 9), "injection_scale": np.linspace(0, 1, 7)},
                  loops=120, progress=False, chunk=16)
digest = hashlib.sha256(d.regimes.tobytes())
for name in sorted(d.diagnostics):
    digest.update(np.ascontiguousarray(d.diagnostics[name]).tobytes())
print(digest.hexdigest())
"""


def test_sweep_bitwise_identical_across_thread_counts():
    digests = set()
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
                   OPENBLAS_NUM_THREADS=threads)
        result = subprocess.run([sys.executable, "-c", SWEEP_DETERMINISM], env=env, capture_output=True,
                                text=True, check=True)
        digests.add(result.stdout.strip())
    assert len(digests) == 1


@pytest.mark.slow  # compiles the per-point kernel of attention mixers (minutes on a cold cache)
def test_attention_blocks_sweep_point_by_point_like_classify():
    spec = dynloop.BlockSpec(width=4, tokens=3, layers=1, heads=2, mixer="transformer", norm="sandwich",
                             injection="concat", seed=1)
    axes = {"residual_scale": np.array([0.2, 0.8]), "injection_scale": np.array([0.5, 1.0])}
    diagram = sweep(spec, axes, loops=240, progress=False)
    _classify_each_point(spec, axes, diagram)


def test_thread_executor_and_reused_work_memory_give_identical_results():
    # chunks run concurrently in two threads of one process, each with its own work memory, and
    # every thread reuses its ring from chunk to chunk: nothing may leak between them
    from concurrent.futures import ThreadPoolExecutor

    from dynloop.sweep import engine

    spec = BLOCK.replace(norm="sandwich", injection="additive")
    axes = {"residual_scale": np.linspace(0.0, 3.0, 10), "injection_scale": np.linspace(0.0, 2.0, 6)}
    alone = sweep(spec, axes, loops=200, progress=False, chunk=7)
    assert not engine._WORK.__dict__  # released when the in-process sweep ended
    if numba.threading_layer() == "workqueue":
        pytest.skip("numba's workqueue threading layer cannot launch parallel kernels from two threads "
                    "at once")
    with ThreadPoolExecutor(2) as pool:
        threaded = sweep(spec, axes, loops=200, progress=False, chunk=7, executor=pool)
    assert_same_results(alone, threaded)


def test_chunks_run_together_give_what_chunks_run_one_by_one(monkeypatch):
    # an in-process sweep hands several chunks to one compiled call; what a point gets must not depend
    # on which chunks share its call (width 20: float64 products go to BLAS, not the kernel's loops).
    # Calls grow only while they are fast; without a time limit they grow whatever this machine's speed
    from dynloop.sweep import engine

    calls = []
    run_kernel = engine._run_kernel

    def counting(system, kind, tasks, settings):
        calls.append(len(tasks))
        return run_kernel(system, kind, tasks, settings)

    monkeypatch.setattr(engine, "_run_kernel", counting)
    cases = [(BLOCK.replace(width=20, hidden=20, tokens=1, injection="additive"),
              {"residual_scale": np.linspace(0.0, 3.0, 9), "injection_scale": np.linspace(0.0, 2.0, 5)}),
             (BLOCK, {"norm": ["pre", "sandwich"], "residual_scale": np.linspace(0.0, 2.0, 11)}),
             (dynloop.maps.logistic(), {"r": np.linspace(2.6, 3.9, 23)})]
    for system, axes in cases:
        plan = engine._plan({n: np.asarray(v) for n, v in axes.items()}, [n for n in axes if n != "norm"], 3)
        n_chunks = len(plan)
        results = {}
        for seconds in (math.inf, 0.0):  # 0: one call per chunk
            monkeypatch.setattr(engine, "_CALL_SECONDS", seconds)
            calls.clear()
            results[seconds] = sweep(system, axes, loops=150, progress=False, chunk=3)
            assert sum(calls) == n_chunks and (max(calls) > 1) == (seconds > 0), calls
        assert_same_results(*results.values())


def test_group_size_does_not_change_results(monkeypatch):
    # the row-wise kernel iterates points in groups sized for speed; a point's labels and
    # diagnostics must not depend on the group it is in (groups of 1, 3 and 7 points against the
    # default, with early exit compacting groups, and with BLAS-width products)
    from dynloop.sweep import _kernels, engine

    groups = []
    kernel = _kernels.sweep_block_columns

    def counting(*arguments):
        groups.append(len(arguments[-4]) - 1)  # starts: one more than the groups
        return kernel(*arguments)

    assert engine._group_columns(8, np.float64) == 512 and engine._group_columns(8, np.float32) == 512
    assert engine._group_columns(32, np.float64) == 256 and engine._group_columns(32, np.float32) == 512
    assert engine._group_columns(128, np.float32) == 256
    axes = {"residual_scale": np.linspace(0.0, 3.0, 7), "injection_scale": np.linspace(0.0, 2.0, 5)}
    n_points = 7 * 5  # one chunk; with early exit about half of them leave their group at loop 75
    for system in (BLOCK.replace(tokens=1, injection="additive"),
                   BLOCK.replace(width=20, hidden=20, tokens=2, injection="additive")):
        for early_exit in (True, False):
            default = sweep(system, axes, loops=150, progress=False, early_exit=early_exit)
            for points in (1, 3, 7):
                monkeypatch.setattr(engine, "_GROUP_COLUMNS", (points * system.tokens,) * 2)
                monkeypatch.setattr(_kernels, "sweep_block_columns", counting)
                groups.clear()
                grouped = sweep(system, axes, loops=150, progress=False, early_exit=early_exit)
                monkeypatch.undo()
                assert sum(groups) == math.ceil(n_points / points)
                assert_same_results(grouped, default)
