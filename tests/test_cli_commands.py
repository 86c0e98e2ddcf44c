"""``dynloop classify``, ``dynloop orbit``, ``sweep --loops/--field``, the regime ``simulate`` reached,
and what a resumed sweep says."""

import json
from pathlib import Path

import numpy as np
import pytest

import dynloop
from cli_configs import TINY_SWEEP, tiny_block, write
from dynloop.cli import main

ROOT = Path(__file__).resolve().parents[1]

def plain_iteration(r, x, loops):
    for _ in range(loops):
        x = r * x * (1.0 - x)
    return x


@pytest.mark.parametrize("r, regime", [(2.5, "fixed_point"), (3.2, "periodic, period 2"),
                                       (3.5, "periodic, period 4")])
def test_simulate_prints_the_regime_the_run_reached(tmp_path, capsys, r, regime):
    config = write(tmp_path, f"[map]\nname = 'logistic'\nparams = {{r = {r}}}\nx0 = [0.1]\n")
    assert main(["simulate", config, "--loops", "400"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (f"regime at the end of the run: {regime} (dynloop.classify on 64 more loops "
                         "from the final state)")
    # the orbit plain iteration reaches has that period, and no shorter one
    period = 1 if regime == "fixed_point" else int(regime.split()[-1])
    points = [plain_iteration(r, 0.1, 400 + k) for k in range(period + 1)]
    assert abs(points[period] - points[0]) < 1e-9
    assert all(abs(points[k] - points[0]) > 1e-3 for k in range(1, period))


def test_simulate_regime_of_a_block_and_of_a_divergent_run(tmp_path, capsys):
    assert main(["simulate", write(tmp_path, tiny_block()), "--loops", "50"]) == 0
    assert "regime at the end of the run: " in capsys.readouterr().out
    config = write(tmp_path, "[map]\nname = 'logistic'\nparams = {r = 4.5}\nx0 = [0.5]\n")
    assert main(["simulate", config, "--loops", "400"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("regime at the end of the run: divergent (a non-finite value at loop")


def test_classify_prints_the_summary_and_writes_figure_and_json(tmp_path, capsys):
    config = write(tmp_path, "[map]\nname = 'logistic'\nparams = {r = 3.2}\nx0 = [0.1]\n"
                             "[classify]\nmax_period = 8\n")
    figure, out = tmp_path / "fig" / "classify.png", tmp_path / "classify.json"
    assert main(["classify", config, "--figure", str(figure), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = dynloop.classify(dynloop.maps.logistic(r=3.2), x0=[0.1], max_period=8).summary()
    assert printed.startswith(expected) and "logistic: periodic (period 2)" in printed
    assert figure.stat().st_size > 5000 and json.loads(out.read_text())["period"] == 2


def test_classify_settings_and_their_errors(tmp_path, capsys):
    config = write(tmp_path, tiny_block()
                   + "[classify]\nmax_period = 4\nlyapunov = false\ntol = { period = 1e-6 }\n")
    assert main(["classify", config]) == 0
    assert "window of 256 loops" in capsys.readouterr().out
    config = write(tmp_path, tiny_block() + "[classify]\nmax_priod = 4\n")
    assert main(["classify", config]) == 2
    err = capsys.readouterr().err
    assert "classify.max_priod=4" in err and "did you mean 'max_period'?" in err


def test_orbit_of_the_example_config_writes_its_figure_and_plot_redraws_it(tmp_path, capsys):
    config = str(ROOT / "examples/configs/logistic_orbit.toml")
    figure, out = tmp_path / "out.png", tmp_path / "orbit.npz"
    assert main(["orbit", config, "--figure", str(figure), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Orbit diagram of logistic: r 2.5 … 4, 600 values")
    assert figure.stat().st_size > 20000
    diagram = dynloop.OrbitDiagram.load(out)
    assert diagram.points.shape == (600, 100, 1, 1)
    # r = 3.2: the two points of the 2-cycle, as plain iteration finds them
    index = int(np.argmin(np.abs(diagram.values - 3.2)))
    r = diagram.values[index]
    expected = sorted({round(plain_iteration(r, 0.1, 2000 + k), 6) for k in range(2)})
    assert sorted({round(float(v), 6) for v in diagram.points[index, :, 0, 0]}) == expected
    assert main(["plot", str(out), "-o", str(tmp_path / "again.png")]) == 0
    assert (tmp_path / "again.png").stat().st_size > 20000
    # the same file still drives a sweep
    assert main(["sweep", config, "-o", str(tmp_path / "sweep"), "--no-progress", "--loops", "400"]) == 0
    assert dynloop.PhaseDiagram.load(tmp_path / "sweep" / "phase.npz").shape == (600,)


def test_orbit_table_forms_loops_override_and_errors(tmp_path, capsys):
    config = write(tmp_path, "[map]\nname = 'logistic'\n[orbit]\nparameter = 'r'\nvalues = [2.5, 3.2]\n"
                             "keep = 4\nregimes = false\n")
    out = tmp_path / "orbit.npz"
    assert main(["orbit", config, "--loops", "300", "--out", str(out)]) == 0
    diagram = dynloop.OrbitDiagram.load(out)
    assert diagram.meta["loops"] == 300 and diagram.points.shape == (2, 4, 1, 1)
    assert main(["orbit", write(tmp_path, "[map]\nname = 'logistic'\n")]) == 2
    assert "[orbit]" in capsys.readouterr().err
    assert main(["orbit", write(tmp_path, "[map]\nname = 'logistic'\n[orbit]\nparameter = 'r'\n")]) == 2
    assert "orbit.values" in capsys.readouterr().err
    mistyped = write(tmp_path, "[map]\nname = 'logistic'\n[orbit]\nparameter = 'r'\nvalues = [3.0]\n"
                               "kep = 3\n")
    assert main(["orbit", mistyped]) == 2
    assert "did you mean 'keep'?" in capsys.readouterr().err


def test_sweep_loops_and_field_overrides(tmp_path, capsys):
    config = write(tmp_path, TINY_SWEEP)
    out = tmp_path / "out"
    assert main(["sweep", config, "-o", str(out), "--no-progress", "--loops", "64",
                 "--field", "final_norm"]) == 0
    printed = capsys.readouterr().out
    diagram = dynloop.PhaseDiagram.load(out / "phase.npz")
    assert diagram.meta["loops"] == 64 and "64 loops per point" in printed
    assert (out / "phase-final_norm.png").stat().st_size > 5000 and not (out / "phase.png").exists()
    assert str(out / "phase-final_norm.png") in printed
    assert main(["sweep", config, "-o", str(tmp_path / "other"), "--field", "final_nrom"]) == 2
    err = capsys.readouterr().err
    assert "--field='final_nrom'" in err and "did you mean 'final_norm'?" in err
    assert not (tmp_path / "other").exists()  # refused before anything was computed or created


def test_a_resumed_sweep_says_how_many_chunks_it_loaded(tmp_path, capsys):
    config = write(tmp_path, TINY_SWEEP)
    out = tmp_path / "out"
    assert main(["sweep", config, "-o", str(out), "--no-progress"]) == 0
    assert "resumed:" not in capsys.readouterr().out
    assert main(["sweep", config, "-o", str(out), "--no-progress"]) == 0
    assert f"resumed: 2 of 2 chunks were loaded from {out / 'chunks'}" in capsys.readouterr().out
    (out / "chunks" / "chunk-000001.npz").unlink()
    assert main(["sweep", config, "-o", str(out), "--no-progress"]) == 0
    assert "resumed: 1 of 2 chunks" in capsys.readouterr().out


def test_basins_writes_the_map_and_its_figure_and_resumes(tmp_path, capsys):
    config = write(tmp_path, "[map]\nname = 'logistic'\nparams = {r = 3.2}\n[basins]\nloops = 400\n"
                             "[basins.axes]\nx = {start = -0.2, stop = 1.2, num = 1500}\n")
    out = tmp_path / "out"
    assert main(["basins", config, "-o", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    result = dynloop.BasinMap.load(out / "basins.npz")
    # the logistic map at r = 3.2: the 2-cycle from (0, 1), escape to -infinity outside [0, 1]
    x = result.axes["x"]
    cycle = next(i for i, a in enumerate(result.attractors) if a.period == 2)
    assert (result.labels[(x > 0) & (x < 1)] == cycle).all()
    assert (result.labels[(x < 0) | (x > 1)] == -1).all()
    assert "A0: periodic, period 2" in printed and (out / "basins.png").stat().st_size > 5000
    assert main(["basins", config, "-o", str(out), "--no-progress"]) == 0
    assert f"resumed: 2 of 2 chunks were loaded from {out / 'chunks'}" in capsys.readouterr().out
    assert main(["basins", config, "-o", str(out), "--no-progress", "--fresh"]) == 0
    assert "resumed:" not in capsys.readouterr().out


def test_basins_refuses_a_config_without_axes_in_one_line(tmp_path, capsys):
    config = write(tmp_path, "[map]\nname = 'henon'\n[basins]\nloops = 100\n")
    assert main(["basins", config, "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dynloop basins: error: basins.axes=None") and error.count("\n") == 1
    config = write(tmp_path, "[map]\nname = 'henon'\n[basins]\n[basins.axes]\nz = [0, 1]\n")
    assert main(["basins", config, "-o", str(tmp_path / "out")]) == 2
    assert "axes='z'" in capsys.readouterr().err


def test_continue_writes_the_branches_and_their_bifurcations(tmp_path, capsys):
    import math

    config = write(tmp_path, "[map]\nname = 'logistic'\nx0 = [0.6]\n[continue]\nparameter = 'r'\n"
                             "start = 2.8\nstop = 3.5\ndepth = 1\n")
    out = tmp_path / "out"
    assert main(["continue", config, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    listing = json.loads((out / "bifurcations.json").read_text())
    assert [b["period"] for b in listing["branches"]] == [1, 2]
    flips = [b["bifurcations"][0]["parameter"] for b in listing["branches"]]
    assert flips == pytest.approx([3.0, 1 + math.sqrt(6)], abs=1e-8)
    assert "flip (period doubling) at 3.449489743" in printed
    assert (out / "continuation.png").stat().st_size > 20_000
    saved = dynloop.Branch.load(out / "branch_1_period_2.npz")
    assert saved.period == 2 and saved.bifurcations[0].parameter == flips[1]
    # a cycle of another period: the 2-cycle from r = 3.2, continued to its flip
    config = write(tmp_path, "[map]\nname = 'logistic'\nx0 = [0.5]\n[continue]\nparameter = 'r'\n"
                             "start = 3.2\nstop = 3.5\nperiod = 2\ndepth = 0\n", "two.toml")
    assert main(["continue", config, "-o", str(tmp_path / "two")]) == 0
    listing = json.loads((tmp_path / "two" / "bifurcations.json").read_text())
    assert [b["period"] for b in listing["branches"]] == [2]
    assert listing["branches"][0]["bifurcations"][0]["parameter"] == pytest.approx(1 + math.sqrt(6), abs=1e-8)
    missing = write(tmp_path, "[map]\nname = 'logistic'\n[continue]\nparameter = 'r'\nstart = 2.8\n",
                    "bad.toml")
    assert main(["continue", missing, "-o", str(tmp_path / "bad")]) == 2
    assert "continue.stop" in capsys.readouterr().err
