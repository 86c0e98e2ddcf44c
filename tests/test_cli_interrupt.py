"""Ctrl-C: one line on stderr, exit status 130, finished sweep chunks kept, and the next run resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dynloop
from dynloop.cli import main

# a sweep of a few seconds: many small chunks, so that some are finished well before the end
INTERRUPTIBLE = """
[map]
name = "logistic"

[sweep]
loops = 2000
chunk = 250
lyapunov = true

[sweep.axes]
r = { start = 2.5, stop = 4.0, num = 20000 }
"""


def chunk_files(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("chunk-")) \
        if os.path.isdir(directory) else []


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_during_a_sweep_keeps_chunks_exits_130_and_the_next_run_resumes(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(INTERRUPTIBLE)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dynloop.cli", "sweep", str(config), "-o", str(out), "--no-progress"]
    # a child of a shell started in the background would ignore SIGINT: restore its default
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not chunk_files(out / "chunks") and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the sweep ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    kept = chunk_files(out / "chunks")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "SystemError" not in stderr
    assert stderr.strip() == (f"dynloop sweep: interrupted: {len(kept)} finished "
                              f"chunk{'s' * (len(kept) != 1)} kept in {out / 'chunks'}; "
                              "run the same command again to resume")
    assert 1 <= len(kept) < 80 and stdout == ""
    stamps = {name: os.stat(out / "chunks" / name).st_mtime_ns for name in kept}

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {len(kept)} of 80 chunks were loaded" in resumed.stdout
    assert all(os.stat(out / "chunks" / name).st_mtime_ns == stamps[name] for name in kept)  # not recomputed
    assert dynloop.PhaseDiagram.load(out / "phase.npz").shape == (20000,)


def test_an_interrupt_surfacing_as_another_exception_still_ends_in_one_line(tmp_path, capsys, monkeypatch):
    """Ctrl-C inside compiled code can reach Python as an exception whose cause is the KeyboardInterrupt."""
    sweep_package = sys.modules["dynloop.sweep"]  # the package; ``dynloop.sweep`` is the function

    def interrupted_sweep(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise SystemError("a compiled function returned a result with an exception set") from interrupt

    monkeypatch.setattr(sweep_package, "sweep", interrupted_sweep)
    config = tmp_path / "sweep.toml"
    config.write_text(INTERRUPTIBLE)
    assert main(["sweep", str(config), "-o", str(tmp_path / "out"), "--fresh"]) == 130
    chunks = tmp_path / "out" / "chunks"
    assert capsys.readouterr().err == (f"dynloop sweep: interrupted: 0 finished chunks kept in {chunks}; "
                                       "run the same command without --fresh again to resume\n")


def test_ctrl_c_in_any_command_exits_130(capsys, monkeypatch):
    simulate_module = sys.modules["dynloop.dynamics.simulate"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate_module, "simulate", interrupted)
    config = Path(__file__).resolve().parents[1] / "examples/configs/logistic.toml"
    assert main(["simulate", str(config)]) == 130
    assert capsys.readouterr().err == "dynloop simulate: interrupted\n"


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_while_a_cold_import_compiles_exits_130_without_a_traceback(tmp_path):
    # with an empty numba cache, importing dynloop compiles kernels for many seconds before main() runs
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    process = subprocess.Popen([sys.executable, "-m", "dynloop.cli", "--version"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = process.stderr.readline()  # printed before compiling starts
    assert first == "dynloop: compiling kernels (first run only, about a minute)\n"
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    stdout, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest
    assert rest == "dynloop: interrupted\n" and stdout == ""
