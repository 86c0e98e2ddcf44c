"""The sweep chunk store: atomic, crash-safe, resumable, shareable between writer processes."""

import hashlib
import json
import multiprocessing
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dynloop.sweep import store as store_module
from dynloop.sweep.store import ChunkStore

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = {"system": {"kind": "map", "name": "logistic"}, "axes": {"r": [2.5, 3.0, 3.5]}, "loops": 200,
            "tolerances": {"fixed": 1e-9}, "dtype": "float64", "chunk": 1024}
POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL and POSIX process ids")


def chunk_arrays(index, points=64):
    """The deterministic content of chunk ``index`` (also imported by the writer subprocesses)."""
    rng = np.random.default_rng(index)
    return {"codes": rng.integers(-128, 128, points, dtype=np.int8),
            "diagnostics": rng.standard_normal((points, 8)),
            "f32": rng.standard_normal(points).astype(np.float32),
            "label": np.array([f"chunk {index}", "é∞"])}


def assert_same(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert actual[name].dtype == value.dtype, name
        assert actual[name].shape == value.shape, name
        np.testing.assert_array_equal(actual[name], value, err_msg=name)


def chunk_files(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith("chunk-"))


def temp_files(directory):
    return sorted(p.name for p in Path(directory).iterdir() if ".tmp-" in p.name)


# A writer in a fresh interpreter: opens the store (resuming it) and writes the missing chunks.
WRITER = r"""
import sys
sys.path.insert(0, {tests!r})
from test_store import MANIFEST, chunk_arrays
from dynloop.sweep.store import ChunkStore

directory, n_chunks, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = ChunkStore(directory, MANIFEST, n_chunks)
print("ready", flush=True)
for index in store.missing():
    store.write(index, chunk_arrays(index, points))
print("finished", flush=True)
""".format(tests=str(ROOT / "tests" / "sweep"))


def fork_writer(directory, n_chunks, points, indices=None, reopen=False):
    """Start a writer process (forked: a fresh interpreter takes a second to import dynloop)."""
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    process = context.Process(target=_write_chunks,
                              args=(directory, n_chunks, points, indices, reopen, ready))
    process.start()
    return process, ready


def _write_chunks(directory, n_chunks, points, indices, reopen, ready):
    store = ChunkStore(directory, MANIFEST, n_chunks)
    ready.set()
    for index in store.missing() if indices is None else indices:
        if reopen:  # every open removes abandoned temporary files: never those of a live writer
            store = ChunkStore(directory, MANIFEST, n_chunks)
        store.write(index, chunk_arrays(index, points))


# ---------------------------------------------------------------- round trip and bookkeeping


def test_round_trip_keeps_dtypes_shapes_and_values_exactly(tmp_path):
    arrays = {"int8": np.array([-128, 0, 127], dtype=np.int8),
              "float64": np.array([0.1, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1.7976931348623157e308]),
              "float32": np.array([[1.5, np.nan], [np.float32(1e-45), -3.25]], dtype=np.float32),
              "str": np.array(["", "fixed_point", "chaos ∞"]),
              "bytes": np.array([b"ab", b"\x00c"]),
              "bool": np.array([True, False]),
              "big_endian": np.arange(4, dtype=">f8"),
              "complex": np.array([1 + 2j, np.nan * 1j]),
              "scalar": np.array(3, dtype=np.uint16),
              "empty": np.zeros((0, 3), dtype=np.int64),
              "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
              "strided": np.arange(20)[::3],
              "from_list": [1, 2, 3]}
    store = ChunkStore(tmp_path / "s", MANIFEST, 3)
    assert store.done() == set() and store.missing() == [0, 1, 2] and not store.complete
    path = store.write(1, arrays)
    assert path == tmp_path / "s" / "chunk-000001.npz" == store.path(1)
    expected = {name: np.asarray(value) for name, value in arrays.items()}
    for reader in (store, ChunkStore(str(tmp_path / "s"), MANIFEST, 3)):  # this object, and a fresh one
        assert reader.done() == {1} and reader.missing() == [0, 2] and not reader.complete
        back = reader.read(1)
        assert_same(back, expected)
        assert back["fortran"].flags.f_contiguous and back["big_endian"].dtype.byteorder == ">"
        np.testing.assert_array_equal(np.isnan(back["float64"]), np.isnan(expected["float64"]))
        assert np.signbit(back["float64"][1])
    with np.load(path, allow_pickle=False) as plain:  # an ordinary .npz
        assert_same(dict(plain), expected)
    store.write(0, {"x": np.ones(1)})
    store.write(2, {})
    assert store.complete and store.missing() == [] and store.done() == {0, 1, 2}
    assert store.read(2) == {}


def test_rewriting_a_chunk_replaces_it(tmp_path):
    store = ChunkStore(tmp_path, MANIFEST, 1)
    store.write(0, {"x": np.zeros(3)})
    store.write(0, {"y": np.ones(2, dtype=np.int8)})
    assert_same(store.read(0), {"y": np.ones(2, dtype=np.int8)})
    assert chunk_files(tmp_path) == ["chunk-000000.npz"] and temp_files(tmp_path) == []


def test_equal_arrays_give_byte_identical_files(tmp_path):
    first = ChunkStore(tmp_path / "a", MANIFEST, 2).write(1, chunk_arrays(1))
    second = ChunkStore(tmp_path / "b", {"other": True}, 5).write(1, chunk_arrays(1))
    assert first.read_bytes() == second.read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(array=hnp.arrays(st.one_of(hnp.scalar_dtypes(), hnp.unicode_string_dtypes(), hnp.byte_string_dtypes()),
                        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
def test_any_numpy_array_round_trips(tmp_path, array):
    store = ChunkStore(tmp_path / "prop", {"property": "round trip"}, 1)
    store.write(0, {"a": array})
    back = store.read(0)["a"]
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()


def test_manifest_file_and_fingerprint(tmp_path):
    manifest = {"b": np.float64(0.5), "a": np.array([1, 2]), "c": (1, "x"), "d": None}
    store = ChunkStore(tmp_path, manifest, 7)
    plain = {"a": [1, 2], "b": 0.5, "c": [1, "x"], "d": None}
    expected = hashlib.sha256(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert store.fingerprint == expected and store.manifest == plain and store.n_chunks == 7
    stored = json.loads((tmp_path / "manifest.json").read_text())
    assert stored["fingerprint"] == expected and stored["n_chunks"] == 7 and stored["manifest"] == plain
    assert isinstance(stored["version"], int) and stored["format"] == "dynloop.sweep.ChunkStore"
    assert temp_files(tmp_path) == []
    # key order and tuples-vs-lists do not matter: the same sweep
    assert ChunkStore(tmp_path, {"d": None, "c": [1, "x"], "a": [1, 2], "b": 0.5}, 7).fingerprint == expected
    assert "n_chunks=7" in repr(store)


def test_bad_arguments_are_refused_with_the_path(tmp_path):
    store = ChunkStore(tmp_path, MANIFEST, 2)
    for index in (-1, 2, 1.5, True, "0", None):
        with pytest.raises(ValueError, match=r"index=.*0\.\.1.*" + re.escape(str(tmp_path))):
            store.write(index, {"x": np.zeros(1)})
        with pytest.raises(ValueError, match="index="):
            store.read(index)
    for arrays, error, message in (({"x": np.array([object()])}, ValueError, "dtype object"),
                                   ({"": np.zeros(1)}, ValueError, "array name"),
                                   ({"a/b": np.zeros(1)}, ValueError, "array name"),
                                   ({1: np.zeros(1)}, TypeError, "array name"),
                                   ([np.zeros(1)], TypeError, "expected a dict")):
        with pytest.raises(error, match=message):
            store.write(0, arrays)
    assert chunk_files(tmp_path) == [] and temp_files(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="not been written") as info:
        store.read(1)
    assert info.value.filename == str(tmp_path / "chunk-000001.npz")
    with pytest.raises(ValueError, match="n_chunks"):
        ChunkStore(tmp_path / "x", MANIFEST, -1)
    with pytest.raises(TypeError, match="expected a dict"):
        ChunkStore(tmp_path / "x", [("a", 1)], 1)
    with pytest.raises(TypeError, match="directory="):
        ChunkStore(None, MANIFEST, 1)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        ChunkStore(tmp_path / "x", {"system": object()}, 1)
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(NotADirectoryError) as info:
        ChunkStore(tmp_path / "file", MANIFEST, 1)
    assert info.value.filename == str(tmp_path / "file")
    empty = ChunkStore(tmp_path / "empty", MANIFEST, 0)
    assert empty.complete and empty.missing() == [] and empty.done() == set()


def test_parent_directories_are_created_and_other_files_left_alone(tmp_path):
    directory = tmp_path / "deep" / "er" / "store"
    store = ChunkStore(str(directory), MANIFEST, 2)
    assert store.directory == directory and (directory / "manifest.json").is_file()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    (existing / "chunk-1.npz").write_bytes(b"not one of ours: wrong name")
    ChunkStore(existing, MANIFEST, 2).write(0, {"x": np.zeros(1)})
    assert (existing / "notes.txt").read_text() == "mine" and (existing / "chunk-1.npz").exists()


# ---------------------------------------------------------------- resume


def test_resume_with_the_same_manifest_keeps_chunks(tmp_path):
    store = ChunkStore(tmp_path, MANIFEST, 4)
    for index in (0, 3):
        store.write(index, chunk_arrays(index))
    again = ChunkStore(tmp_path, json.loads(json.dumps(MANIFEST)), 4, resume=True)
    assert again.done() == {0, 3} and again.missing() == [1, 2]
    assert_same(again.read(3), chunk_arrays(3))


def test_a_different_manifest_is_refused_naming_the_keys(tmp_path):
    store = ChunkStore(tmp_path, MANIFEST, 4)
    store.write(1, chunk_arrays(1))
    other = dict(MANIFEST, axes={"r": [2.5, 3.0, 3.6]})
    with pytest.raises(ValueError) as info:
        ChunkStore(tmp_path, other, 4)
    message = str(info.value)
    assert str(tmp_path) in message and "different sweep" in message and "'axes'" in message
    assert "'system'" not in message and "another directory" in message and "resume=False" in message
    assert "1 finished chunk" in message
    both = dict(other, system={"kind": "block"}, extra=1)
    del both["loops"]
    message = str(pytest.raises(ValueError, ChunkStore, tmp_path, both, 4).value)
    assert "'system'" in message and "'axes'" in message and "'extra'" in message and "1 more" in message
    assert message.index("'system'") < message.index("'axes'")  # in the order of the given manifest
    message = str(pytest.raises(ValueError, ChunkStore, tmp_path, MANIFEST, 5).value)
    assert "'n_chunks'" in message and "stored 4, given 5" in message
    assert ChunkStore(tmp_path, MANIFEST, 4).done() == {1}  # refusals changed nothing


def test_resume_false_starts_over_removing_only_store_files(tmp_path):
    store = ChunkStore(tmp_path, MANIFEST, 3)
    for index in range(3):
        store.write(index, chunk_arrays(index))
    keep = {"notes.txt": b"mine", "chunk-1.npz": b"x", "chunk-000001.npz.bak": b"y", "data.npz": b"z",
            ".chunk-000001.npz.tmp-someone": b"w", "manifest.json.old": b"v"}
    for name, data in keep.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "chunk-000000.npz").write_bytes(b"in a subdirectory")
    other = dict(MANIFEST, loops=400)
    fresh = ChunkStore(tmp_path, other, 5, resume=False)
    assert fresh.done() == set() and fresh.missing() == list(range(5))
    assert chunk_files(tmp_path) == ["chunk-000001.npz.bak", "chunk-1.npz"]
    assert not any((tmp_path / f"chunk-{i:06d}.npz").exists() for i in range(3))
    for name, data in keep.items():
        assert (tmp_path / name).read_bytes() == data
    assert (tmp_path / "sub" / "chunk-000000.npz").exists()
    assert json.loads((tmp_path / "manifest.json").read_text())["manifest"]["loops"] == 400
    # resume=False with the same manifest also starts over
    fresh.write(0, chunk_arrays(0))
    assert ChunkStore(tmp_path, other, 5, resume=False).done() == set()


def test_chunks_without_a_manifest_are_not_trusted(tmp_path):
    ChunkStore(tmp_path, MANIFEST, 2).write(0, chunk_arrays(0))
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="no manifest.json.*resume=False"):
        ChunkStore(tmp_path, MANIFEST, 2)
    store = ChunkStore(tmp_path, MANIFEST, 2, resume=False)
    assert store.done() == set() and chunk_files(tmp_path) == [] and (tmp_path / "notes.txt").exists()


def test_a_foreign_manifest_json_is_never_overwritten(tmp_path):
    for content in (b'{"my": "own manifest"}', b"{truncated", b"[1, 2]"):
        (tmp_path / "manifest.json").write_bytes(content)
        for resume in (True, False):
            with pytest.raises(ValueError, match="not a dynloop chunk-store manifest"):
                ChunkStore(tmp_path, MANIFEST, 2, resume=resume)
            assert (tmp_path / "manifest.json").read_bytes() == content


def test_a_newer_format_version_is_refused(tmp_path):
    ChunkStore(tmp_path, MANIFEST, 2)
    document = json.loads((tmp_path / "manifest.json").read_text())
    document["version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="newer chunk-store format"):
        ChunkStore(tmp_path, MANIFEST, 2)
    assert ChunkStore(tmp_path, MANIFEST, 2, resume=False).done() == set()


def test_a_store_reset_under_a_writer_stops_it(tmp_path):
    writer = ChunkStore(tmp_path, MANIFEST, 3)
    writer.write(0, chunk_arrays(0))
    ChunkStore(tmp_path, MANIFEST, 3, resume=False)  # same sweep: the writer may go on
    writer.write(1, chunk_arrays(1))
    ChunkStore(tmp_path, dict(MANIFEST, loops=1), 3, resume=False)  # another sweep now lives here
    with pytest.raises(RuntimeError, match="no longer holds this sweep"):
        writer.write(2, chunk_arrays(2))
    with pytest.raises(RuntimeError, match="no longer holds this sweep"):
        writer.done()
    assert chunk_files(tmp_path) == [] and temp_files(tmp_path) == []


# ---------------------------------------------------------------- damaged files


def test_truncated_or_damaged_chunks_are_not_done_and_are_removed(tmp_path):
    store = ChunkStore(tmp_path, MANIFEST, 2)
    good = store.write(0, chunk_arrays(0, points=16)).read_bytes()
    rng = random.Random(1)
    damaged = [good[:n] for n in (0, 1, 30, len(good) // 2, len(good) - 65, len(good) - 1)]
    damaged += [good + b"\x00", b"garbage" * 50]
    positions = list(range(120)) + list(range(len(good) - 200, len(good))) + rng.sample(range(len(good)), 60)
    for position in positions:
        flipped = bytearray(good)
        flipped[position] ^= 1 << rng.randrange(8)
        damaged.append(bytes(flipped))
    for data in damaged:
        store.path(1).write_bytes(data)
        with pytest.raises(ValueError, match="chunk-000001.npz is truncated or damaged"):
            store.read(1)
        assert store.done() == {0} and not store.path(1).exists() and store.missing() == [1]
    # a file that is a valid .npz but was not written by the store is not taken either
    np.savez(store.path(1), **chunk_arrays(1))
    assert ChunkStore(tmp_path, MANIFEST, 2).done() == {0} and not store.path(1).exists()
    # damage after a chunk was checked is noticed too (the check is redone when the file changes)
    store.write(1, chunk_arrays(1))
    assert store.done() == {0, 1}
    with open(store.path(1), "r+b") as handle:
        handle.truncate(100)
    assert store.done() == {0}
    assert_same(store.read(0), chunk_arrays(0, points=16))


# ---------------------------------------------------------------- temporary files


@POSIX_ONLY
def test_abandoned_temporary_files_are_cleaned_on_open_but_not_live_ones(tmp_path):
    host = store_module._HOST
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead = int(finished.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"dead": f".chunk-000001.npz.tmp-{host}-{dead}-0123456789abcdef",
                 "dead_manifest": f".manifest.json.tmp-{host}-{dead}-fedcba9876543210",
                 "live": f".chunk-000002.npz.tmp-{host}-{live.pid}-0123456789abcdef",
                 "mine": f".chunk-000003.npz.tmp-{host}-{os.getpid()}-0123456789abcdef",
                 "remote_old": ".chunk-000001.npz.tmp-otherhost-12-0123456789abcdef",
                 "remote_new": ".chunk-000002.npz.tmp-otherhost-12-0123456789abcdef",
                 "not_ours": f".chunk-000001.npz.tmp-{host}-{dead}-notatoken",
                 "plain": f"chunk-000001.npz.tmp-{host}-{dead}-0123456789abcdef"}
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        old = time.time() - 2 * store_module.STALE_SECONDS
        os.utime(tmp_path / names["remote_old"], (old, old))
        store = ChunkStore(tmp_path, MANIFEST, 4)
        left = set(temp_files(tmp_path)) | {p.name for p in tmp_path.iterdir() if p.name.startswith("chunk")}
        assert left == {names[k] for k in ("live", "mine", "remote_new", "not_ours", "plain")}
        assert store.done() == set()
    finally:
        live.kill()
        live.wait()
    ChunkStore(tmp_path, MANIFEST, 4)  # now the formerly live writer is gone too
    assert names["live"] not in temp_files(tmp_path)


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    store = ChunkStore(tmp_path, MANIFEST, 2)

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store_module.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        store.write(0, chunk_arrays(0))
    monkeypatch.undo()
    assert temp_files(tmp_path) == [] and chunk_files(tmp_path) == [] and store.done() == set()


# ---------------------------------------------------------------- crashes and concurrency


@POSIX_ONLY
def test_sigkill_at_random_moments_loses_nothing_and_shows_no_partial_chunk(tmp_path):
    n_chunks, points = 20, 32768  # each chunk about 2.5 MB
    expected = {index: chunk_arrays(index, points) for index in range(n_chunks)}
    directory = tmp_path / "killed"
    started = time.perf_counter()  # how long one write takes here: kills are timed to land inside writes
    ChunkStore(tmp_path / "calibration", MANIFEST, 1).write(0, expected[0])
    write_time = max(time.perf_counter() - started, 0.002)
    rng = random.Random(20240607)
    kills, progress = 0, []
    for round_ in range(8):
        writer, ready = fork_writer(directory, n_chunks, points)
        assert ready.wait(30)
        # wait until a write has begun (a new file appears), then kill at once (odd rounds: the file is
        # being filled) or at a random moment within about one write's length (even rounds)
        listing, deadline = set(os.listdir(directory)), time.monotonic() + 10
        while set(os.listdir(directory)) == listing and writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.0001)
        time.sleep(rng.uniform(0, 0.0005 if round_ % 2 else 1.5 * write_time))
        writer.kill()  # SIGKILL
        writer.join()
        kills += writer.exitcode == -signal.SIGKILL
        # every file under a final name is complete, independently of the store's own checks ...
        finals = chunk_files(directory)
        for name in finals:
            with np.load(directory / name, allow_pickle=False) as plain:
                assert_same(dict(plain), expected[int(name[6:12])])
        # ... the store reports exactly those as done, they read back exactly, and a reopen cleans up
        store = ChunkStore(directory, MANIFEST, n_chunks)
        assert temp_files(directory) == []
        done = store.done()
        assert sorted(f"chunk-{i:06d}.npz" for i in done) == finals
        for index in done:
            assert_same(store.read(index), expected[index])
        progress.append(len(done))
    assert kills >= 6, "the writer finished before it could be killed"
    assert progress == sorted(progress)  # nothing finished was ever lost
    # resuming in a fresh interpreter and running to completion gives exactly what an uninterrupted run gives
    writer = subprocess.run([sys.executable, "-c", WRITER, str(directory), str(n_chunks), str(points)],
                            check=False, capture_output=True, text=True, cwd=ROOT, timeout=120)
    out, err = writer.stdout, writer.stderr
    assert writer.returncode == 0 and out.split() == ["ready", "finished"], err
    clean = ChunkStore(tmp_path / "clean", MANIFEST, n_chunks)
    for index in range(n_chunks):
        clean.write(index, expected[index])
    assert sorted(os.listdir(directory)) == sorted(os.listdir(clean.directory))
    for name in os.listdir(clean.directory):
        assert (directory / name).read_bytes() == (clean.directory / name).read_bytes(), name
    store = ChunkStore(directory, MANIFEST, n_chunks)
    assert store.complete
    for index in range(n_chunks):
        assert_same(store.read(index), expected[index])


@POSIX_ONLY
def test_two_writer_processes_share_a_store(tmp_path):
    n_chunks, points = 24, 20000
    writers = [fork_writer(tmp_path, n_chunks, points, indices=range(first, n_chunks, 2), reopen=True)[0]
               for first in (0, 1)]
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    store = ChunkStore(tmp_path, MANIFEST, n_chunks)
    assert store.complete and temp_files(tmp_path) == []
    for index in range(n_chunks):
        assert_same(store.read(index), chunk_arrays(index, points))


def test_threads_and_pickled_copies_write_into_one_store(tmp_path):
    store = ChunkStore(tmp_path, MANIFEST, 12)
    copy = pickle.loads(pickle.dumps(store))  # as sent to a Dask or multiprocessing worker
    errors = []

    def work(target, indices):
        try:
            for index in indices:
                target.write(index, chunk_arrays(index, 2000))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(target, range(first, 12, 3)))
               for target, first in ((store, 0), (copy, 1), (store, 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and store.complete and copy.complete and temp_files(tmp_path) == []
    for index in range(12):
        assert_same(copy.read(index), chunk_arrays(index, 2000))


def test_chunk_files_are_zip_archives_with_a_checksum(tmp_path):
    path = ChunkStore(tmp_path, MANIFEST, 1).write(0, {"x": np.arange(3)})
    data = path.read_bytes()
    assert data[-64:] == hashlib.sha256(data[:-64]).hexdigest().encode()
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["x.npy"] and archive.testzip() is None
        info = archive.getinfo("x.npy")
        assert info.compress_type == zipfile.ZIP_STORED and info.date_time == (1980, 1, 1, 0, 0, 0)


def test_a_store_written_before_explicit_codes_resumes_with_the_same_regimes(tmp_path):
    # written by dynloop at main 97e1333 (regime codes = enum positions; tests/data/README.md);
    # its chunks hold those codes, which keep their meaning: resuming reads them, computes nothing
    import shutil

    import dynloop
    from dynloop import Regime
    from dynloop.sweep.engine import sweep

    store = tmp_path / "store"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "store_main_97e1333", store)
    before = {p.name: p.read_bytes() for p in store.iterdir()}
    diagram = sweep(dynloop.maps.logistic(), {"r": np.array([2.5, 3.2, 3.5, 4.0])}, loops=2000, lyapunov=True,
                    chunk=2, store=store, progress=False)
    assert diagram.meta["chunks_loaded"] == diagram.meta["chunks"] == 2
    labels = [Regime.from_code(code).value for code in diagram.regimes]
    assert labels == ["fixed_point", "periodic", "periodic", "chaotic"]
    assert {p.name: p.read_bytes() for p in store.iterdir()} == before
