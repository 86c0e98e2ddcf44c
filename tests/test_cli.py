"""The ``dynloop`` command, run as users run it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dynloop
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


def test_classify_example_prints_its_table_and_figures(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples/classify_schemes.py"), str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.split()[:1] and line.split()[0] in (
        "none", "pre", "post", "sandwich", "peri", "pre_outer", "peri_outer", "sphere")]
    assert len(rows) == 16
    assert {"cyclic", "drifting", "divergent"} <= {row.split()[2] for row in rows}
    assert (tmp_path / "classify_cyclic.png").stat().st_size > 10000
