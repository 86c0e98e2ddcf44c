"""Where numba keeps dynloop's compiled kernels: one directory per version of the sources.

numba invalidates a cached kernel only when the kernel's own source file changes, not when a
function it calls from another module does (the decision rules in ``dynamics/regimes.py`` are
compiled into the sweep kernels, for example). Keying the cache directory by a digest of every
source file of the package that uses numba makes any change to compiled code start from a clean
cache; files without numba (plots, stores, the CLI, symbolic theory) cannot change a kernel, so
editing them keeps the cache.

Compiling every kernel takes about a minute, once per version of the sources. The ``dynloop``
command says so on stderr before it starts compiling (:func:`announce_compiling`), since the
kernels it needs are not in the cache yet (:func:`kernels_cached`).
"""

__all__ = ["configure_numba_cache", "kernels_cached", "announce_compiling", "interrupts_end_the_command",
           "COMPILING_MESSAGE"]

import contextlib
import hashlib
import os
import sys
from pathlib import Path

#: What the ``dynloop`` command prints on stderr before compiling kernels that are not cached.
COMPILING_MESSAGE = "dynloop: compiling kernels (first run only, about a minute)"
_ROOT = Path(os.path.abspath(__file__)).parent  # as numba names source files
_announced = False


def configure_numba_cache():
    """Point numba's cache at ``<base>/numba-<digest of dynloop's sources>`` and return that path.

    ``<base>`` is ``$NUMBA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/dynloop`` (default
    ``~/.cache/dynloop``). Must run before any kernel module is imported. When the process is the
    ``dynloop`` command and the cache holds no kernel of these sources yet, it says on stderr that
    kernels are being compiled (importing dynloop compiles the catalogue maps' kernels).
    """
    import numba

    digest = hashlib.sha256()
    for path in sorted(_ROOT.rglob("*.py")):
        source = path.read_bytes()
        if b"numba" in source:
            digest.update(path.relative_to(_ROOT).as_posix().encode())
            digest.update(source)
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "dynloop")
    directory = os.path.join(base, "numba-" + digest.hexdigest()[:16])
    numba.config.CACHE_DIR = directory
    if _invoked_as_command():
        announce_compiling(directory=directory)
    return directory


@contextlib.contextmanager
def interrupts_end_the_command():
    """In the ``dynloop`` command, Ctrl-C within the block ends the process at once with status 130
    and one line on stderr; elsewhere nothing changes.

    Importing dynloop on a cold cache compiles kernels for many seconds, before the command's own
    handling of Ctrl-C is in place. A ``KeyboardInterrupt`` raised there can land in one of
    llvmlite's ctypes callbacks, which swallows it and leaves numba's compiler broken (a
    ``RuntimeError`` follows), so the signal ends the process from its handler instead: nothing
    has been computed yet, and numba writes its cache files whole or not at all.
    """
    import signal
    import threading

    if (not _invoked_as_command() or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def stop(signum, frame):
        print("dynloop: interrupted", file=sys.stderr, flush=True)
        os._exit(130)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _invoked_as_command():
    """Whether this process is the ``dynloop`` command (the console script or ``python -m dynloop.cli``)."""
    argv = getattr(sys, "argv", None)
    if argv and Path(argv[0]).stem == "dynloop":
        return True
    argv = list(getattr(sys, "orig_argv", ()))
    return any(flag == "-m" and module in ("dynloop", "dynloop.cli") for flag, module in zip(argv, argv[1:]))


def _cache_subdirectory(source):
    """The directory, below numba's cache directory, where numba keeps the kernels of ``source``."""
    try:
        from numba.core.caching import UserProvidedCacheLocator

        return UserProvidedCacheLocator.get_suitable_cache_subpath(str(source))
    except (ImportError, AttributeError):  # the same layout, where numba keeps the class private
        parent = os.path.dirname(os.path.abspath(source))
        return os.path.basename(parent) + "_" + hashlib.sha1(parent.encode()).hexdigest()


def kernels_cached(*modules, directory=None):
    """Whether numba's cache already holds compiled kernels of these sources of dynloop.

    Parameters
    ----------
    *modules : str
        dynloop modules whose kernels are needed, e.g. ``"dynloop.sweep._kernels"``, or kernels
        of a module, named by its dotted path (``"dynloop.sweep._kernels.sweep_map"``); each must
        have at least one index
        file (``*.nbi``) in the cache. Without any: whether the cache holds an index file of any
        of dynloop's modules.
    directory : str or Path, optional
        The cache directory (default ``numba.config.CACHE_DIR``, as :func:`configure_numba_cache`
        set it).

    Returns
    -------
    bool

    Examples
    --------
    >>> import tempfile
    >>> from dynloop._cache import kernels_cached
    >>> with tempfile.TemporaryDirectory() as empty:
    ...     kernels_cached("dynloop.sweep._kernels", directory=empty)
    False
    """
    if directory is None:
        import numba

        directory = numba.config.CACHE_DIR
    if not directory or not os.path.isdir(directory):
        return False
    wanted = []  # (source file, index file name prefix)
    for name in modules:
        parts = name.split(".")[1:]
        source = _ROOT.joinpath(*parts).with_suffix(".py")
        if source.is_file():
            wanted.append((source, source.stem + "."))
        else:  # a kernel of a module
            source = _ROOT.joinpath(*parts[:-1]).with_suffix(".py")
            # numba's index: <module>.<kernel>-<line>...
            wanted.append((source, f"{source.stem}.{parts[-1]}-"))
    if not modules:
        wanted = [(path, path.stem + ".") for path in _ROOT.rglob("*.py") if b"numba" in path.read_bytes()]

    def cached(source, prefix):
        folder = os.path.join(directory, _cache_subdirectory(source))
        try:
            return any(name.startswith(prefix) and name.endswith(".nbi") for name in os.listdir(folder))
        except OSError:
            return False

    found = [cached(source, prefix) for source, prefix in wanted]
    return all(found) if modules else any(found)


def announce_compiling(*modules, directory=None, stream=None):
    """Print :data:`COMPILING_MESSAGE` on ``stream`` (stderr) unless the kernels are cached.

    At most once per process; ``modules`` and ``directory`` as for :func:`kernels_cached`.
    Returns whether the message was printed.
    """
    global _announced
    if _announced or kernels_cached(*modules, directory=directory):
        return False
    _announced = True
    stream = sys.stderr if stream is None else stream
    print(COMPILING_MESSAGE, file=stream, flush=True)
    return True
