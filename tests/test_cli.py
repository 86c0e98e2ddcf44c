"""The ``dynloop`` command, run as users run it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dynloop
from cli_configs import TINY_SWEEP
from dynloop.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_explains_itself():
    result = subprocess.run([sys.executable, "-m", "dynloop.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "simulate" in result.stdout
    result = subprocess.run([sys.executable, "-m", "dynloop.cli", "simulate", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "--loops" in result.stdout and "[block]" in result.stdout


def test_simulate_block_config_prints_and_saves(tmp_path, capsys):
    out = tmp_path / "run.npz"
    figure = tmp_path / "run.png"
    status = main(["simulate", str(ROOT / "examples/configs/huginn_like.toml"), "--loops", "20",
                   "--out", str(out), "--figure", str(figure)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "20 loops of 5 stages" in printed and "layer3" in printed
    trajectory = dynloop.Trajectory.load(out)
    spec = dynloop.BlockSpec.from_toml(ROOT / "examples/configs/huginn_like.toml")
    assert np.array_equal(trajectory.final_state, dynloop.simulate(spec, 20).final_state)
    assert figure.stat().st_size > 5000


def test_simulate_map_config(capsys):
    assert main(["simulate", str(ROOT / "examples/configs/logistic.toml")]) == 0
    printed = capsys.readouterr().out
    assert "200 loops of 1 stage" in printed


@pytest.mark.parametrize("text, message", [
    ("[block]\nwidth = 'wide'\n", "width='wide'"),
    ("[block]\nmixer = 'rnn'\n", "mixer='rnn'"),
    ("[block]\n[simulate]\nloopz = 3\n", "simulate.loopz"),
    ("[simulate]\nloops = 3\n", "[block] or [map]"),
    ("[map]\nname = 'lorenz'\n", "map.name='lorenz'"),
    ("[block]\n[simulate]\ndtype = 'float16'\n", "simulate.dtype"),
])
def test_bad_config_fails_with_a_clear_message(tmp_path, capsys, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    assert main(["simulate", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_missing_config_file(capsys):
    assert main(["simulate", "does-not-exist.toml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_example_writes_its_figure(tmp_path):
    figure = tmp_path / "distances.png"
    result = subprocess.run([sys.executable, str(ROOT / "examples/per_layer_distances.py"), str(figure)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cyclic fixed point" in result.stdout and figure.stat().st_size > 10000


@pytest.mark.slow  # classifies 16 paper-sized blocks: ~45 s, run with -m slow
def test_classify_example_prints_its_table_and_figures(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples/classify_schemes.py"), str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.split()[:1] and line.split()[0] in (
        "none", "pre", "post", "sandwich", "peri", "pre_outer", "peri_outer", "sphere")]
    assert len(rows) == 16
    assert {"cyclic", "drifting", "divergent"} <= {row.split()[2] for row in rows}
    assert (tmp_path / "classify_cyclic.png").stat().st_size > 10000




def test_sweep_writes_diagram_and_figure_and_resumes(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(TINY_SWEEP)
    out = tmp_path / "out"
    assert main(["sweep", str(config), "-o", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "phase diagram written" in printed
    diagram = dynloop.PhaseDiagram.load(out / "phase.npz")
    assert diagram.regimes.shape == (8, 3)
    assert (out / "phase.png").stat().st_size > 5000
    direct = dynloop.sweep(dynloop.BlockSpec.from_toml(config), {
        "residual_scale": np.linspace(0, 3, 8), "injection_scale": np.array([0.0, 1.0, 2.0])},
        loops=120, chunk=16, progress=False)
    assert np.array_equal(diagram.regimes, direct.regimes)
    (out / "chunks" / "chunk-000000.npz").unlink()
    assert main(["sweep", str(config), "-o", str(out), "--no-progress"]) == 0   # resumes
    assert np.array_equal(dynloop.PhaseDiagram.load(out / "phase.npz").regimes, direct.regimes)
    assert main(["plot", str(out / "phase.npz"), "--field", "final_norm"]) == 0
    assert (out / "phase-final_norm.png").stat().st_size > 5000


def test_sweep_config_errors(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[block]\n[sweep]\nloops = 100\n")
    assert main(["sweep", str(config), "-o", str(tmp_path / "o")]) == 2
    assert "sweep.axes" in capsys.readouterr().err
    config.write_text("[block]\n[sweep.axes]\nresidual_scale = {start = 0}\n")
    assert main(["sweep", str(config), "-o", str(tmp_path / "o")]) == 2
    assert "sweep.axes.residual_scale" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing.npz")]) == 2
