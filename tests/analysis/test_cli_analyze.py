"""``dynloop analyze``: a recording file or a config, a report folder, and one line for a mistake."""

import numpy as np

import dynloop
from cli_configs import write
from dynloop.cli import main

BLOCK = """[block]
width = 8
tokens = 4
layers = 2
heads = 2
mixer = "transformer"
norm = "pre"
injection = "concat"
residual_scale = 0.3
weight_gain = 0.5
seed = 3
"""


def one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynloop analyze: error: "), captured.err
    return lines[0]


def test_analyze_a_config_simulates_with_attention_and_writes_the_report(tmp_path, capsys):
    config = write(tmp_path, BLOCK + "[analyze]\nloops = 60\n")
    assert main(["analyze", config, "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Loop analysis of block(mixer=transformer") and "60 loops" in printed
    for name in ("report.md", "distances.png", "attention.png", "analysis.npz", "recording.npz"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    again = dynloop.load_recording(tmp_path / "out" / "recording.npz")
    assert again.attention.shape == (60, 2, 2, 4, 4) and "attn_q" in again.meta


def test_analyze_a_recording_file_with_a_reference(tmp_path, capsys):
    rng = np.random.default_rng(0)
    states = np.cumsum(rng.standard_normal((12, 4, 3, 5)) * 0.5 ** np.arange(12)[:, None, None, None], axis=0)
    np.savez(tmp_path / "dump.npz", stage_states=states)
    np.savez(tmp_path / "reference.npz", stage_states=states[:1])
    assert (
        main(
            [
                "analyze",
                str(tmp_path / "dump.npz"),
                "-o",
                str(tmp_path / "out"),
                "--reference",
                str(tmp_path / "reference.npz"),
                "--tol",
                "1e-3",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Against the reference" in printed and "tolerance 0.001" in printed
    assert (tmp_path / "out" / "profiles.png").exists()


def test_analyze_mistakes_end_in_one_line(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "out")]) == 2
    assert "no recording at" in one_error_line(capsys)
    np.savez(tmp_path / "bad.npz", stage_states=np.ones((3, 2, 4)))
    assert main(["analyze", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "out")]) == 2
    assert "stage_states has shape (3, 2, 4)" in one_error_line(capsys)
    (tmp_path / "notes.txt").write_text("x")
    assert main(["analyze", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "out")]) == 2
    assert "expected a recording (.npz or .safetensors) or a CONFIG.toml" in one_error_line(capsys)
    assert main(["analyze", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "notes.txt")]) == 2
    assert "is not a directory" in one_error_line(capsys)
    config = write(tmp_path, BLOCK + "[analyze]\nloop = 60\n")
    assert main(["analyze", config, "-o", str(tmp_path / "out")]) == 2
    assert "did you mean 'loops'" in one_error_line(capsys)
