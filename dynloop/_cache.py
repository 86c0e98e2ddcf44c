"""Where numba keeps dynloop's compiled kernels: one directory per version of the sources.

numba invalidates a cached kernel only when the kernel's own source file changes, not when a
function it calls from another module does (the decision rules in ``dynamics/regimes.py`` are
compiled into the sweep kernels, for example). Keying the cache directory by a digest of every
source file of the package that uses numba makes any change to compiled code start from a clean
cache; files without numba (plots, stores, the CLI, symbolic theory) cannot change a kernel, so
editing them keeps the cache.
"""

__all__ = ["configure_numba_cache"]

import hashlib
import os
from pathlib import Path


def configure_numba_cache():
    """Point numba's cache at ``<base>/numba-<digest of dynloop's sources>`` and return that path.

    ``<base>`` is ``$NUMBA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/dynloop`` (default
    ``~/.cache/dynloop``). Must run before any kernel module is imported.
    """
    import numba

    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        source = path.read_bytes()
        if b"numba" in source:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(source)
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "dynloop")
    directory = os.path.join(base, "numba-" + digest.hexdigest()[:16])
    numba.config.CACHE_DIR = directory
    return directory
