"""Crash-safe storage of finished sweep chunks: one ``.npz`` file per chunk plus a manifest.

A sweep is cut into chunks of grid points. Each finished chunk is written atomically (temporary
file in the same directory, ``fsync``, ``os.replace``), so a sweep killed at any moment, even by
``SIGKILL`` or a power cut, leaves every chunk file either complete under its final name or absent,
and a restart with the same manifest loses no finished work.

Layout of a store directory::

    manifest.json                  what the sweep is: the caller's manifest, its sha256
                                   fingerprint, the number of chunks and the format version
    chunk-000000.npz ...           finished chunks, ``chunk-{index:06d}.npz``
    .chunk-000007.npz.tmp-HOST-PID-TOKEN
                                   a chunk being written (or left by a killed writer; removed
                                   when a store is next opened, once its writer is gone)

Nothing else in the directory is ever touched.
"""

__all__ = ["ChunkStore", "ResumeRefused"]

import errno
import hashlib
import io
import json
import os
import platform
import re
import secrets
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._errors import check_int
from .._json import jsonable

FORMAT = "dynloop.sweep.ChunkStore"
VERSION = 1
MANIFEST = "manifest.json"
_CHUNK = re.compile(r"chunk-(\d{6,})\.npz")
_TEMP = re.compile(r"\.(?:chunk-\d{6,}\.npz|manifest\.json)\.tmp-"
                   r"(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{16}")
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", platform.node() or "localhost")[:64] or "localhost"
#: A temporary file whose writer cannot be checked (another host, or no way to test a pid) is
#: treated as abandoned once it has not been modified for this many seconds.
STALE_SECONDS = 3600.0
# Fixed zip member metadata, so that equal arrays give byte-identical chunk files.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_COMMENT = b"dynloop chunk sha256:"


class _Corrupt(Exception):
    """A chunk file that exists but does not hold a complete, well-formed chunk."""


def _canonical(manifest):
    """The canonical JSON text of ``manifest``: sorted keys, no whitespace, ASCII."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=jsonable)


def _fingerprint(canonical):
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


_NOTHING = object()  # a key present on one side of a comparison only


def _shown(value, width=60):
    """A manifest value in a message: its JSON when short, else what kind of value it is."""
    if value is _NOTHING:
        return "nothing"
    text = json.dumps(value, sort_keys=True)
    if len(text) <= width:
        return text
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        span = f", {min(numbers):g} … {max(numbers):g}" if len(numbers) == len(value) else ""
        return f"a list of {len(value)} values{span}"
    if isinstance(value, dict):
        return "a table with keys " + ", ".join(sorted(value))
    return text[: width - 3] + "..."


def _differences(stored, given, path=""):
    """``(path, stored, given)`` for every field where two manifest values differ, recursively.

    Tables are compared key by key (in the order of ``given``, then keys only ``stored`` has), lists
    of equal length item by item; anything else that differs is one difference.
    """
    if isinstance(stored, dict) and isinstance(given, dict):
        for key in list(given) + [key for key in stored if key not in given]:
            where = f"{path}.{key}" if path else str(key)
            yield from _differences(stored.get(key, _NOTHING), given.get(key, _NOTHING), where)
    elif isinstance(stored, list) and isinstance(given, list) and len(stored) == len(given):
        for index, (old, new) in enumerate(zip(stored, given)):
            yield from _differences(old, new, f"{path}[{index}]")
    elif stored is _NOTHING or given is _NOTHING or _canonical(stored) != _canonical(given):
        yield path, stored, given


def _describe_differences(stored, given, shown=4):
    """``"(stored X, given Y)"`` for a top-level value, or its differing fields, e.g.
    ``"(block.norm: stored "pre", given "post")"``."""
    found = list(_differences(stored, given))
    if len(found) == 1 and not found[0][0]:
        return f"(stored {_shown(stored)}, given {_shown(given)})"
    parts = [f"{path or 'value'}: stored {_shown(old)}, given {_shown(new)}"
             for path, old, new in found[:shown]]
    more = f"; and {len(found) - shown} more" if len(found) > shown else ""
    return "(" + "; ".join(parts) + more + ")"


class ResumeRefused(ValueError):
    """A store that cannot be resumed: it holds another sweep, or chunk files without a manifest.

    Attributes
    ----------
    directory : Path
        The store's directory.
    reason : str
        Why, e.g. ``"holds a different sweep: its manifest differs in 'loops' (stored 200, given 400)"``.
    chunks : int
        Chunk files the directory holds (what starting over would discard).
    """

    def __init__(self, directory, reason, chunks):
        self.directory, self.reason, self.chunks = Path(directory), reason, chunks
        super().__init__(f"chunk store {directory} {reason}. To keep its {chunks} finished chunk(s), "
                         "give this sweep another directory; to discard them and start over here, "
                         "pass resume=False")


def _pid_alive(pid):
    """Whether process ``pid`` on this host may still be running (``True`` when it cannot be told)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) is not a harmless probe on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _fsync_directory(directory):
    """Make renames and removals in ``directory`` durable, where the platform supports it."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _encode(arrays):
    """The bytes of a chunk file holding ``arrays``: an uncompressed ``.npz`` ending in a checksum.

    The zip metadata is fixed, so equal arrays give identical bytes. The file's last 64 bytes (the
    end of the zip comment) are the hex sha256 of every byte before them, so any truncation or
    damage, anywhere in the file, is detected.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.comment = _COMMENT + b"0" * 64
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    data = buffer.getbuffer()
    data[-64:] = hashlib.sha256(data[:-64]).hexdigest().encode("ascii")
    return data


def _load(path):
    """All arrays of the chunk file ``path``; raise ``_Corrupt`` if it is truncated or damaged."""
    data = Path(path).read_bytes()  # an OSError here is trouble reading the file, and names it
    if (len(data) < 64 + len(_COMMENT)
            or data[-64:] != hashlib.sha256(memoryview(data)[:-64]).hexdigest().encode()):
        raise _Corrupt("checksum mismatch (truncated or damaged file)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if archive.comment[: len(_COMMENT)] != _COMMENT:
                raise _Corrupt("not a chunk file")
            arrays = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise _Corrupt(f"unexpected member {info.filename!r}")
                with archive.open(info) as member:  # checks the member's CRC once read to the end
                    array = np.lib.format.read_array(member, allow_pickle=False)
                    if member.read(1):
                        raise _Corrupt(f"trailing data after the array in member {info.filename!r}")
                arrays[info.filename[:-4]] = array
            return arrays
    except _Corrupt:
        raise
    except Exception as error:  # zipfile and numpy raise many kinds on malformed input
        raise _Corrupt(f"{type(error).__name__}: {error}") from error


class ChunkStore:
    """A directory of finished sweep chunks plus a manifest.

    Opening a store writes ``manifest.json`` (atomically) unless the directory already holds one,
    and removes temporary files abandoned by killed writers. Every :meth:`write` is atomic and
    durable: a chunk file is visible under its final name only once it is complete and on disk.
    Several processes (or threads) may write different chunks into one store at the same time.

    Parameters
    ----------
    directory : str or Path
        The store's directory; it and its parents are created as needed. It may hold unrelated
        files: the store only ever touches ``manifest.json``, ``chunk-*.npz`` and its own
        temporary files.
    manifest : dict
        JSON-able description of the sweep (system, axes with their values, loops, tolerances,
        dtype, chunk size, ...). numpy scalars and arrays are accepted and stored as numbers and
        lists. Its fingerprint, the sha256 of its canonical JSON (sorted keys), identifies the
        sweep.
    n_chunks : int
        Number of chunks in the sweep; chunk indices are ``0 .. n_chunks - 1``.
    resume : bool
        If the directory already holds a manifest: with ``True`` it must describe the same sweep
        (same fingerprint and ``n_chunks``), and its finished chunks are kept; with ``False`` the
        old manifest and chunk files are removed and the store starts empty.

    Raises
    ------
    ResumeRefused
        A ``ValueError``: ``resume`` is true and the directory holds a different sweep (the message
        names the top-level manifest keys that differ and, within each, every differing field with
        both values), or chunk files but no manifest.
    ValueError
        If the directory's ``manifest.json`` is not a chunk-store manifest, or ``n_chunks`` is not
        an integer >= 0.
    TypeError
        If ``manifest`` is not a dict of JSON-able values, or ``directory`` not a str or Path.

    Notes
    -----
    Opening with ``resume=False`` must not happen while other processes write into the same
    directory. A writer whose store has been reset (or replaced by a different sweep) under it
    refuses to write, so chunks of two sweeps are never mixed.

    Chunk files are ordinary ``.npz`` archives (uncompressed, readable with :func:`numpy.load`)
    with fixed zip metadata, so equal arrays give byte-identical files. The zip comment ends in
    the sha256 of the rest of the file, so truncation or damage anywhere is detected.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from dynloop.sweep.store import ChunkStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = ChunkStore(tmp.name, {"axes": {"r": [2.5, 3.0, 3.5]}, "loops": 200}, n_chunks=2)
    >>> store.missing()
    [0, 1]
    >>> store.write(0, {"codes": np.array([1, 1], dtype=np.int8)}).name
    'chunk-000000.npz'
    >>> store.done(), store.complete
    ({0}, False)

    Opening the same sweep again keeps its chunks; a different sweep is refused:

    >>> ChunkStore(tmp.name, {"axes": {"r": [2.5, 3.0, 3.5]}, "loops": 200}, n_chunks=2).done()
    {0}
    >>> ChunkStore(tmp.name, {"axes": {"r": [2.5, 3.0, 3.5]}, "loops": 400}, n_chunks=2)
    Traceback (most recent call last):
    ...
    dynloop.sweep.store.ResumeRefused: chunk store ... holds a different sweep: its manifest differs in
    'loops' (stored 200, given 400). ...
    >>> ChunkStore(tmp.name, {"axes": {"r": [2.5, 3.0, 3.5]}, "loops": 400}, n_chunks=2, resume=False).done()
    set()
    >>> tmp.cleanup()
    """

    def __init__(self, directory, manifest: dict, n_chunks: int, *, resume: bool = True):
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory={directory!r} is not allowed: expected a str or Path")
        self._directory = Path(directory)
        if not isinstance(manifest, Mapping):
            raise TypeError(f"manifest={manifest!r} is not allowed: expected a dict (JSON-able)")
        try:
            self._manifest = json.loads(json.dumps(dict(manifest), default=jsonable))  # given key order
            self._fingerprint = _fingerprint(_canonical(self._manifest))
        except (TypeError, ValueError) as error:
            raise TypeError(f"the manifest for chunk store {self._directory} is not JSON-serialisable: "
                             f"{error}") from None
        self._n_chunks = check_int("n_chunks", n_chunks, minimum=0)
        self._document = {"format": FORMAT, "version": VERSION, "fingerprint": self._fingerprint,
                          "n_chunks": self._n_chunks, "manifest": self._manifest}
        self._document_bytes = (json.dumps(self._document, sort_keys=True, indent=1) + "\n").encode("ascii")
        self._verified = {}  # index -> stat signature of a chunk file already checked

        if self._directory.exists() and not self._directory.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "chunk store path exists and is not a directory",
                                     str(self._directory))
        self._directory.mkdir(parents=True, exist_ok=True)
        self._remove_abandoned_temporaries()
        self._open(bool(resume))

    # ------------------------------------------------------------------ properties

    @property
    def directory(self) -> Path:
        """The store's directory."""
        return self._directory

    @property
    def manifest(self) -> dict:
        """The sweep's manifest, as stored (JSON types: lists, not tuples or arrays)."""
        return json.loads(json.dumps(self._manifest))

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the manifest's canonical JSON: the sweep's identity."""
        return self._fingerprint

    @property
    def n_chunks(self) -> int:
        """Number of chunks in the sweep."""
        return self._n_chunks

    @property
    def complete(self) -> bool:
        """Whether every chunk has been written (and reads back).

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from dynloop.sweep.store import ChunkStore
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     store = ChunkStore(tmp, {"sweep": "demo"}, n_chunks=1)
        ...     before = store.complete
        ...     _ = store.write(0, {"x": np.zeros(3)})
        ...     before, store.complete
        (False, True)
        """
        return len(self.done()) == self._n_chunks

    def __repr__(self):
        return (f"ChunkStore({str(self._directory)!r}, n_chunks={self._n_chunks}, "
                f"fingerprint={self._fingerprint[:12]!r})")

    # ------------------------------------------------------------------ public API

    def path(self, index: int) -> Path:
        """The final path of chunk ``index`` (whether or not it has been written).

        Examples
        --------
        >>> import tempfile
        >>> from dynloop.sweep.store import ChunkStore
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     ChunkStore(tmp, {"sweep": "demo"}, n_chunks=12).path(7).name
        'chunk-000007.npz'
        """
        return self._directory / f"chunk-{self._check_index(index):06d}.npz"

    def done(self) -> set:
        """Indices of the chunks already written and readable.

        Every chunk file is checked (its sha256 checksum, then every array) the first time this
        store object sees it; a truncated or damaged file counts as not done and is removed, so
        the chunk is computed again.

        Returns
        -------
        set of int

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from dynloop.sweep.store import ChunkStore
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     store = ChunkStore(tmp, {"sweep": "demo"}, n_chunks=3)
        ...     for index in (0, 2):
        ...         _ = store.write(index, {"x": np.arange(4.0)})
        ...     _ = store.path(2).write_bytes(b"PK\\x03\\x04 truncated")  # damaged on disk
        ...     sorted(store.done()), store.path(2).exists()
        ([0], False)
        """
        self._check_manifest("list finished chunks")
        found = set()
        with os.scandir(self._directory) as entries:
            entries = list(entries)
        for entry in entries:
            match = _CHUNK.fullmatch(entry.name)
            if match is None:
                continue
            index = int(match.group(1))
            if index >= self._n_chunks or entry.name != f"chunk-{index:06d}.npz":
                continue
            try:
                signature = self._signature(entry.path)
            except FileNotFoundError:
                continue
            if self._verified.get(index) == signature:
                found.add(index)
                continue
            try:
                _load(entry.path)
            except _Corrupt:
                self._verified.pop(index, None)
                try:
                    unchanged = self._signature(entry.path) == signature
                except FileNotFoundError:
                    unchanged = False
                if unchanged:  # not replaced by a good copy meanwhile
                    _unlink(entry.path)
                continue
            self._verified[index] = signature
            found.add(index)
        return found

    def missing(self) -> list:
        """Sorted indices of the chunks not yet written.

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from dynloop.sweep.store import ChunkStore
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     store = ChunkStore(tmp, {"sweep": "demo"}, n_chunks=4)
        ...     _ = store.write(1, {"x": np.ones(2)})
        ...     store.missing()
        [0, 2, 3]
        """
        done = self.done()
        return [index for index in range(self._n_chunks) if index not in done]

    def write(self, index: int, arrays: dict) -> Path:
        """Write chunk ``index`` atomically and durably.

        The arrays go to a temporary file in the store's directory (a name unique to this host,
        process and call), which is flushed, ``fsync``-ed and then renamed with :func:`os.replace`
        to ``chunk-{index:06d}.npz``; the directory is ``fsync``-ed where supported. A crash at any
        point leaves either the complete chunk or no chunk under the final name. Writing a chunk
        that exists replaces it.

        Parameters
        ----------
        index : int
            Chunk index, ``0 <= index < n_chunks``.
        arrays : dict of str to array_like
            The chunk's arrays; names are non-empty strings without ``/``, ``\\`` or NUL. Dtypes
            (including strings and byte order) and shapes are kept exactly; object arrays are
            refused.

        Returns
        -------
        Path
            The chunk file.

        Raises
        ------
        ValueError
            If ``index`` is out of range, an array name is empty or holds ``/``, ``\\`` or NUL, or
            an array has an object dtype.
        TypeError
            If ``arrays`` is not a dict or an array name not a str.
        RuntimeError
            If the directory no longer holds this sweep (its manifest was removed or replaced, e.g.
            by another process opening it with ``resume=False``).

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from dynloop.sweep.store import ChunkStore
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     store = ChunkStore(tmp, {"sweep": "demo"}, n_chunks=2)
        ...     store.write(1, {"codes": np.array([0, 3], dtype=np.int8)}).name
        'chunk-000001.npz'
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     ChunkStore(tmp, {"sweep": "demo"}, n_chunks=2).write(2, {"x": np.zeros(1)})
        Traceback (most recent call last):
        ...
        ValueError: index=2 is not allowed: expected a chunk index in 0..1 (chunk store ...)
        """
        final = self.path(index)
        index = int(index)
        arrays = self._check_arrays(index, arrays)
        data = _encode(arrays)
        temporary = self._temporary(final.name)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._check_manifest(f"write chunk {index}")
            try:
                os.replace(temporary, final)
            except FileNotFoundError:
                raise FileNotFoundError(
                    errno.ENOENT, f"the temporary file of chunk {index} vanished before it could be renamed "
                    f"to {final} (removed by another process?)", str(temporary)) from None
        except BaseException:
            _unlink(temporary)
            raise
        _fsync_directory(self._directory)
        try:
            self._verified[index] = self._signature(final)
        except FileNotFoundError:
            pass
        return final

    def read(self, index: int) -> dict:
        """The arrays of chunk ``index``, exactly as written.

        Parameters
        ----------
        index : int
            Chunk index, ``0 <= index < n_chunks``.

        Returns
        -------
        dict of str to numpy.ndarray

        Raises
        ------
        FileNotFoundError
            If the chunk has not been written.
        ValueError
            If ``index`` is out of range, or the chunk file is truncated or damaged (the message
            names it; :meth:`done` removes such files so the chunk is computed again).

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from dynloop.sweep.store import ChunkStore
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     store = ChunkStore(tmp, {"sweep": "demo"}, n_chunks=1)
        ...     _ = store.write(0, {"codes": np.array([2, 0], dtype=np.int8), "names": np.array(["a", "bc"])})
        ...     chunk = store.read(0)
        >>> chunk["codes"], chunk["names"]
        (array([2, 0], dtype=int8), array(['a', 'bc'], dtype='<U2'))
        """
        path = self.path(index)
        self._check_manifest(f"read chunk {index}")
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, f"chunk {int(index)} has not been written to this store",
                                    str(path))
        try:
            return _load(path)
        except _Corrupt as error:
            raise ValueError(f"chunk file {path} is truncated or damaged ({error}); "
                             "ChunkStore.done() removes it so that the chunk is computed again") from None

    # ------------------------------------------------------------------ internals

    def _check_index(self, index):
        try:
            index = check_int("index", index, minimum=0)
        except ValueError:
            index = None
        if index is None or index >= self._n_chunks:
            allowed = f"0..{self._n_chunks - 1}" if self._n_chunks else "none (the sweep has no chunks)"
            raise ValueError(f"index={index!r} is not allowed: expected a chunk index in {allowed} "
                             f"(chunk store {self._directory})")
        return index

    def _check_arrays(self, index, arrays):
        if not isinstance(arrays, Mapping):
            raise TypeError(f"arrays={type(arrays).__name__} is not allowed: expected a dict of str to "
                            f"arrays (chunk {index} of {self._directory})")
        checked = {}
        for name, value in arrays.items():
            if not isinstance(name, str):
                raise TypeError(f"array name {name!r} is not allowed: expected a str "
                                f"(chunk {index} of {self._directory})")
            if not name or any(c in name for c in "/\\\x00"):
                raise ValueError(f"array name {name!r} is not allowed: expected a non-empty str without "
                                 f"'/', '\\' or NUL (chunk {index} of {self._directory})")
            array = np.asarray(value)
            if array.dtype.hasobject:
                raise ValueError(f"array {name!r} has dtype {array.dtype}, which cannot be stored without "
                                 f"pickle (chunk {index} of {self._directory})")
            checked[name] = array
        return checked

    def _temporary(self, final_name):
        return self._directory / f".{final_name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(8)}"

    @staticmethod
    def _signature(path):
        info = os.stat(path)
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)

    def _remove_abandoned_temporaries(self):
        """Remove temporary files of this store's pattern whose writer is gone."""
        now = time.time()
        with os.scandir(self._directory) as entries:
            entries = list(entries)
        for entry in entries:
            match = _TEMP.fullmatch(entry.name)
            if match is None:
                continue
            pid = int(match.group("pid"))
            if match.group("host") == _HOST and pid != os.getpid() and not _pid_alive(pid):
                abandoned = True
            else:
                try:
                    abandoned = now - entry.stat().st_mtime > STALE_SECONDS
                except FileNotFoundError:
                    continue
            if abandoned:
                _unlink(entry.path)

    def _read_document(self, path):
        """The stored manifest document, or ``None`` if there is none; ``ValueError`` if it is not ours."""
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            document = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            document = None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"{path} is not a dynloop chunk-store manifest (unreadable or of another "
                             "format); it is left alone: remove it by hand or use another directory")
        return document

    def _compare(self, document, path):
        """``None`` if ``document`` describes this sweep, else the reason it does not."""
        version = document.get("version")
        if not isinstance(version, int) or version > VERSION:
            return (f"{path} was written by a newer chunk-store format (version {version!r}; this dynloop "
                    f"reads version {VERSION})")
        stored = document.get("manifest")
        if not isinstance(stored, dict):
            return f"{path} holds no manifest"
        if _fingerprint(_canonical(stored)) != self._fingerprint:
            changed = [key for key in self._manifest
                       if key not in stored or _canonical(stored[key]) != _canonical(self._manifest[key])]
            keys = changed + [key for key in stored if key not in self._manifest]
            details = [f"{key!r} "
                       + _describe_differences(stored.get(key, _NOTHING), self._manifest.get(key, _NOTHING))
                       for key in keys[:3]]
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            return f"its manifest differs in {', '.join(details)}{more}"
        if document.get("n_chunks") != self._n_chunks:
            stored_chunks = document.get("n_chunks")
            return f"its manifest differs in 'n_chunks' (stored {stored_chunks!r}, given {self._n_chunks})"
        return None

    def _chunk_files(self):
        with os.scandir(self._directory) as entries:
            return [entry.path for entry in entries if _CHUNK.fullmatch(entry.name)]

    def _open(self, resume):
        path = self._directory / MANIFEST
        for _ in range(10):  # retried only if another process creates the manifest at the same moment
            document = self._read_document(path)
            if document is not None:
                reason = self._compare(document, path)
                if resume and reason is None:
                    return
                if resume:
                    raise ResumeRefused(self._directory, f"holds a different sweep: {reason}",
                                        len(self._chunk_files()))
                self._reset(path)  # resume=False: start over, whatever sweep was here
                continue
            orphans = self._chunk_files()
            if orphans:
                if resume:
                    raise ResumeRefused(self._directory, f"holds {len(orphans)} chunk file(s) but no "
                                        f"{MANIFEST}, so which sweep they belong to is unknown", len(orphans))
                for orphan in orphans:
                    _unlink(orphan)
                _fsync_directory(self._directory)
            if self._publish_manifest(path):
                return
            resume = True  # another process created the manifest meanwhile: it must be this sweep
        raise RuntimeError(f"could not create {path}: other processes keep replacing it")

    def _reset(self, path):
        """Remove the manifest first, then the chunks: an interrupted reset never leaves old chunks usable."""
        _unlink(path)
        _fsync_directory(self._directory)
        for chunk in self._chunk_files():
            _unlink(chunk)
        _fsync_directory(self._directory)
        self._verified.clear()

    def _publish_manifest(self, path):
        """Create ``manifest.json`` atomically; ``False`` if another process created one first."""
        temporary = self._temporary(MANIFEST)
        try:
            with open(temporary, "xb") as handle:
                handle.write(self._document_bytes)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)  # atomic create-if-absent
            except FileExistsError:
                return False
            except OSError:  # no hard links on this file system
                os.replace(temporary, path)
        finally:
            _unlink(temporary)
        _fsync_directory(self._directory)
        return True

    def _check_manifest(self, action):
        """Refuse to go on if the directory's manifest no longer describes this sweep."""
        path = self._directory / MANIFEST
        try:
            if path.read_bytes() == self._document_bytes:
                return
            document = self._read_document(path)
        except (OSError, ValueError):
            document = None
        if document is None or self._compare(document, path) is not None:
            raise RuntimeError(f"cannot {action}: {self._directory} no longer holds this sweep (its "
                               f"{MANIFEST} was removed or replaced, e.g. by another process opening it "
                               "with resume=False)")
