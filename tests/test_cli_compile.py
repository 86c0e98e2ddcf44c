"""A cold first run says that it compiles kernels, on stderr, before it goes quiet for a minute."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dynloop import _cache
from dynloop.cli import main

ROOT = Path(__file__).resolve().parents[1]


def index_file(directory, module, kernel="kernel"):
    """Put a numba index file for ``module.kernel`` where numba would keep it in the cache ``directory``."""
    source = Path(_cache.__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
    folder = Path(directory) / _cache._cache_subdirectory(source)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{source.stem}.{kernel}-12.py311.nbi").write_bytes(b"")


def test_kernels_cached_looks_for_index_files_of_these_sources(tmp_path):
    assert not _cache.kernels_cached(directory=tmp_path)
    assert not _cache.kernels_cached(directory=tmp_path / "missing")
    index_file(tmp_path, "dynloop.sweep._kernels")
    assert _cache.kernels_cached(directory=tmp_path)
    assert _cache.kernels_cached("dynloop.sweep._kernels", directory=tmp_path)
    assert not _cache.kernels_cached("dynloop.sweep._kernels", "dynloop.dynamics.regimes", directory=tmp_path)
    assert not _cache.kernels_cached("dynloop.sweep._kernels.sweep_map", directory=tmp_path)
    index_file(tmp_path, "dynloop.sweep._kernels", kernel="sweep_block_columns")
    assert _cache.kernels_cached("dynloop.sweep._kernels.sweep_block_columns", directory=tmp_path)
    # another kernel
    assert not _cache.kernels_cached("dynloop.sweep._kernels.sweep_block", directory=tmp_path)
    assert not _cache.kernels_cached("dynloop.sweep._kernels.sweep_map", directory=tmp_path)
    (tmp_path / "elsewhere_0123").mkdir()
    (tmp_path / "elsewhere_0123" / "regimes.decide-1.py311.nbi").write_bytes(b"")  # another checkout's
    assert not _cache.kernels_cached("dynloop.dynamics.regimes", directory=tmp_path)


def test_the_current_cache_is_found(capsys):
    import dynloop  # noqa: F401 - importing loads (or compiles) the catalogue maps' kernels

    assert _cache.kernels_cached("dynloop.maps")


def test_announce_compiling_prints_once_per_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_cache, "_announced", False)
    assert _cache.announce_compiling("dynloop.sweep._kernels", directory=tmp_path)
    assert not _cache.announce_compiling("dynloop.sweep._kernels", directory=tmp_path)
    assert capsys.readouterr().err == _cache.COMPILING_MESSAGE + "\n"
    monkeypatch.setattr(_cache, "_announced", False)
    index_file(tmp_path, "dynloop.sweep._kernels")
    assert not _cache.announce_compiling("dynloop.sweep._kernels", directory=tmp_path)
    assert capsys.readouterr().err == ""


def test_commands_announce_before_running_kernels_that_are_not_cached(tmp_path, monkeypatch, capsys):
    asked = []
    monkeypatch.setattr(_cache, "_announced", False)
    monkeypatch.setattr(_cache, "kernels_cached",
                        lambda *modules, directory=None: asked.append(modules) or False)
    assert main(["simulate", str(ROOT / "examples/configs/logistic.toml"), "--loops", "10"]) == 0
    captured = capsys.readouterr()
    assert captured.err == _cache.COMPILING_MESSAGE + "\n" and "regime at the end" in captured.out
    assert asked == [("dynloop.systems._map_kernels", "dynloop.dynamics.regimes")]
    monkeypatch.setattr(_cache, "_announced", False)
    asked.clear()
    config = tmp_path / "orbit.toml"
    config.write_text("[map]\nname = 'logistic'\n[orbit]\nparameter = 'r'\nvalues = [3.2]\n"
                      "loops = 50\nkeep = 2\n")
    assert main(["orbit", str(config)]) == 0
    assert capsys.readouterr().err == _cache.COMPILING_MESSAGE + "\n"
    assert asked == [("dynloop.systems._map_kernels", "dynloop.dynamics.regimes",
                      "dynloop.sweep._kernels.sweep_map")]
    monkeypatch.setattr(_cache, "_announced", False)
    assert main(["simulate", str(ROOT / "examples/configs/logistic.toml"),
                 "--out", str(tmp_path / "x.txt")]) == 2
    assert _cache.COMPILING_MESSAGE not in capsys.readouterr().err  # a mistake is reported before compiling


def test_the_sweep_kernels_the_command_looks_for_exist_and_are_cached_after_a_sweep(tmp_path, capsys):
    # a renamed kernel would make every block sweep announce compiling (it did: "sweep_block")
    import numpy as np

    import dynloop
    from dynloop.cli import SWEEP_KERNELS
    from dynloop.sweep import _kernels

    assert all(hasattr(_kernels, name) for name in SWEEP_KERNELS.values())
    spec = dynloop.BlockSpec(width=4, tokens=2, layers=1, mixer="mlp")
    dynloop.sweep(spec, {"residual_scale": np.linspace(0.1, 0.5, 2)}, loops=20, progress=False)
    dynloop.sweep(dynloop.maps.logistic(), {"r": [2.5, 3.2]}, loops=20, progress=False)
    for name in SWEEP_KERNELS.values():
        assert _cache.kernels_cached("dynloop.sweep._kernels." + name)


SCRIPT = Path(sys.executable).parent / "dynloop"  # the console script, where pip installed it


@pytest.mark.skipif(os.name != "posix", reason="kills the child")
@pytest.mark.parametrize("command", [[sys.executable, "-m", "dynloop.cli"], [str(SCRIPT)]],
                         ids=["module", "script"])
def test_a_cold_command_says_so_on_stderr_before_compiling(tmp_path, command):
    """The first thing a cold ``dynloop`` prints, on a pipe: importing dynloop compiles kernels already."""
    if not Path(command[0]).exists():
        pytest.skip("no dynloop console script next to this Python")
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cold"))
    process = subprocess.Popen(command + ["--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=environment)
    first = []
    reader = threading.Thread(target=lambda: first.append(process.stderr.readline()), daemon=True)
    reader.start()
    reader.join(timeout=60)
    process.kill()
    process.communicate()
    assert first == [_cache.COMPILING_MESSAGE + "\n"]


def test_a_cold_simulate_says_so_once_and_runs(tmp_path):
    """A whole cold run of a tiny map (about 12 s on a 2-core machine: the map kernels compile)."""
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cold"))
    command = [sys.executable, "-m", "dynloop.cli", "simulate", str(ROOT / "examples/configs/logistic.toml"),
               "--loops", "1"]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0 and result.stderr == _cache.COMPILING_MESSAGE + "\n"
    assert "regime at the end of the run: periodic, period 2" in result.stdout
    again = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert again.returncode == 0 and again.stderr == ""  # warm now: nothing to say
