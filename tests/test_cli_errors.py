"""``dynloop``: a user's mistake ends with one clear line and exit status 2, never a traceback,
and output paths are checked before anything is computed."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dynloop
import cli_configs
from cli_configs import write
from dynloop.cli import main
from dynloop.sweep.store import ChunkStore

ROOT = Path(__file__).resolve().parents[1]
LOGISTIC = str(ROOT / "examples/configs/logistic.toml")


def tiny_sweep(norm):
    """``tiny_block(norm)`` with a sweep of 4 × 3 points in chunks of 8."""
    return cli_configs.tiny_sweep(norm, loops=64, chunk=8, alphas=4)


def one_error_line(capsys, command):
    """The command's stderr: exactly one line, 'dynloop COMMAND: error: ...'."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dynloop {command}: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0], captured.out


def test_unknown_map_parameter_names_the_field_the_allowed_names_and_suggests(tmp_path, capsys):
    config = write(tmp_path, "[map]\nname = 'logistic'\nparams = {rr = 3.2}\n")
    assert main(["simulate", config]) == 2
    line, _ = one_error_line(capsys, "simulate")
    assert "map.params.rr=3.2" in line and "parameter r" in line and "did you mean 'r'?" in line
    config = write(tmp_path, "[map]\nname = 'henon'\nparams = {a = 'big'}\n")
    assert main(["simulate", config]) == 2
    assert "map.params.a='big'" in one_error_line(capsys, "simulate")[0]
    config = write(tmp_path, "[map]\nname = 'henon'\nparams = 1.4\n")
    assert main(["simulate", config]) == 2
    assert "map.params=1.4" in one_error_line(capsys, "simulate")[0]


def test_a_user_mistake_prints_no_traceback_in_a_real_process(tmp_path):
    config = write(tmp_path, "[map]\nname = 'logistic'\nparams = {rr = 3.2}\n")
    result = subprocess.run([sys.executable, "-m", "dynloop.cli", "simulate", config], capture_output=True,
                            text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "did you mean 'r'?" in result.stderr


@pytest.mark.parametrize("text, message", [
    ("[map]\nname = 'logistc'\n", "did you mean 'logistic'?"),
    ("[map]\nname = 'logistic'\nparam = {r = 3.0}\n",
     "map.param={'r': 3.0} is not allowed: allowed keys are name, params, x0; did you mean 'params'?"),
    ("[map]\nname = 'logistic'\n[simualte]\nloops = 3\n", "table [simualte] is not allowed"),
    ("[map]\nname = 'logistic'\n[simulate]\nlops = 3\n",
     "simulate.lops=3 is not allowed: allowed keys are loops, record, stride, dtype; did you mean 'loops'?"),
    ("[block]\nwidht = 8\n", "widht=8 is not allowed: not a BlockSpec field"),
    ("[block]\nmixer = 'mpl'\n", "did you mean 'mlp'?"),
    ("[block]\nnorm = 'sandwhich'\n", "did you mean 'sandwich'?"),
    ("[map]\nname = 'logistic'\n[simulate]\ndtype = 'float46'\n", "did you mean 'float64'?"),
])
def test_did_you_mean_on_mistyped_config_names(tmp_path, capsys, text, message):
    assert main(["simulate", write(tmp_path, text)]) == 2
    line, _ = one_error_line(capsys, "simulate")
    assert message in line
    if "[simualte]" in text:
        assert "did you mean 'simulate'?" in line
    if "widht" in text:
        assert "did you mean 'width'?" in line


def test_did_you_mean_in_the_python_api():
    with pytest.raises(ValueError, match=r"mixer='mpl' is not allowed: .*; did you mean 'mlp'\?"):
        dynloop.BlockSpec(mixer="mpl")
    with pytest.raises(ValueError, match=r"did you mean 'width'\?"):
        dynloop.BlockSpec.from_dict({"widht": 8})
    with pytest.raises(ValueError, match=r"did you mean 'residual_scale'\?"):
        dynloop.BlockSpec().replace(residual_scal=0.5)
    with pytest.raises(ValueError, match=r"henon has no parameter 'aa'.*; did you mean 'a'\?"):
        dynloop.maps.henon().resolve_params({"aa": 1.0})
    with pytest.raises(ValueError,
                       match=r"axes='residual_scal' is not allowed: .*; did you mean 'residual_scale'\?"):
        dynloop.sweep(dynloop.BlockSpec(), {"residual_scal": [0.5]}, progress=False)
    with pytest.raises(ValueError) as nothing_close:
        dynloop.BlockSpec(mixer="rnn")
    assert "did you mean" not in str(nothing_close.value)


def test_sweep_axis_typo_in_a_config_is_suggested_before_computing(tmp_path, capsys):
    config = write(tmp_path, tiny_sweep("pre").replace("injection_scale = [", "injection_scal = ["))
    assert main(["sweep", config, "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "did you mean 'injection_scale'?" in one_error_line(capsys, "sweep")[0]


def test_sweep_out_pointing_at_a_file_is_refused_before_computing(tmp_path, capsys):
    config = write(tmp_path, tiny_sweep("pre"))
    target = tmp_path / "results.txt"
    target.write_text("mine")
    assert main(["sweep", config, "-o", str(target), "--no-progress"]) == 2
    line, out = one_error_line(capsys, "sweep")
    assert f"-o={str(target)!r}" in line and "not a directory" in line and out == ""
    assert target.read_text() == "mine"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "chunks").write_text("a file where the store goes")
    assert main(["sweep", config, "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "chunks" in one_error_line(capsys, "sweep")[0]


def test_figure_under_a_file_is_refused_before_the_simulation(tmp_path, capsys):
    blocker = tmp_path / "plain"
    blocker.write_text("a file")
    assert main(["simulate", LOGISTIC, "--figure", str(blocker / "fig.png")]) == 2
    line, out = one_error_line(capsys, "simulate")
    assert "is a file, not a directory" in line and out == ""  # nothing was computed or printed
    assert main(["simulate", LOGISTIC, "--out", str(blocker / "run.npz")]) == 2
    assert one_error_line(capsys, "simulate")[1] == ""
    assert main(["simulate", LOGISTIC, "--figure", str(tmp_path / "fig.unknown")]) == 2
    assert "--figure=" in one_error_line(capsys, "simulate")[0]


def test_out_with_a_wrong_suffix_is_refused_and_a_good_one_is_printed_as_written(tmp_path, capsys):
    assert main(["simulate", LOGISTIC, "--out", str(tmp_path / "foo.txt")]) == 2
    line, out = one_error_line(capsys, "simulate")
    assert "ending in .npz" in line and out == ""
    assert list(tmp_path.iterdir()) == []
    out_path = tmp_path / "new" / "dir" / "run.npz"  # missing directories are created
    assert main(["simulate", LOGISTIC, "--out", str(out_path)]) == 0
    assert f"trajectory written to {out_path}\n" in capsys.readouterr().out and out_path.is_file()


def test_plot_says_what_it_accepts(tmp_path, capsys):
    assert main(["plot", LOGISTIC]) == 2
    line, _ = one_error_line(capsys, "plot")
    assert "pickled" not in line and "phase diagram" in line and "dynloop sweep CONFIG.toml -o OUTDIR" in line
    run = tmp_path / "run.npz"
    dynloop.simulate(dynloop.maps.logistic(r=2.5), 10).save(run)
    assert main(["plot", str(run)]) == 2
    assert "holds neither" in one_error_line(capsys, "plot")[0]


def test_a_different_sweep_in_outdir_names_fresh_and_every_differing_field(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["sweep", write(tmp_path, tiny_sweep("pre")), "-o", out, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["sweep", write(tmp_path, tiny_sweep("post")), "-o", out, "--no-progress"]) == 2
    line, _ = one_error_line(capsys, "sweep")
    assert "--fresh" in line and "resume=False" not in line
    assert 'block.norm: stored "pre", given "post"' in line and "2 finished chunk" in line
    assert main(["sweep", str(tmp_path / "config.toml"), "-o", out, "--no-progress", "--fresh"]) == 0


def test_the_store_names_nested_differences_with_both_values(tmp_path):
    block = dynloop.BlockSpec(width=8, norm="pre").to_dict()
    manifest = {"system": {"block": block}, "axes": {"r": np.linspace(0, 3, 64)}, "loops": 200}
    ChunkStore(tmp_path, manifest, 2)
    other = dict(manifest, system={"block": dict(block, norm="post", width=16)},
                 axes={"r": np.linspace(0, 3, 65)})
    with pytest.raises(ValueError) as refused:
        ChunkStore(tmp_path, other, 2)
    message = str(refused.value)
    assert "'system' (block.width: stored 8, given 16; block.norm: stored \"pre\", given \"post\")" in message
    assert "'axes' (r: stored a list of 64 values, 0 … 3, given a list of 65 values, 0 … 3)" in message
    assert "resume=False" in message


def test_traceback_on_request(tmp_path, capsys, monkeypatch):
    config = write(tmp_path, "[map]\nname = 'logistic'\nparams = {rr = 3.2}\n")
    assert main(["--traceback", "simulate", config]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("dynloop simulate: error:")
    monkeypatch.setenv("DYNLOOP_DEBUG", "1")
    assert main(["simulate", config]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"dynloop {dynloop.__version__}\n"


def test_a_closed_pipe_ends_quietly(tmp_path):
    """``dynloop classify CONFIG | head`` must not end in an error: the reader went away, nothing is wrong."""
    config = tmp_path / "logistic.toml"
    config.write_text('[map]\nname = "logistic"\nparams = { r = 3.2 }\n')
    process = subprocess.Popen([sys.executable, "-m", "dynloop.cli", "classify", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before anything is written
    stderr = process.communicate(timeout=300)[1].decode()
    assert process.returncode == 141, stderr
    assert "error" not in stderr and "Traceback" not in stderr
