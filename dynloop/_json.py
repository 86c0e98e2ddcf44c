"""The one ``json.dumps`` fallback of dynloop's files (phase diagrams, sweep manifests, metadata)."""

__all__ = ["jsonable"]

from pathlib import Path

import numpy as np


def jsonable(value):
    """JSON form of a value ``json`` cannot write itself: numpy arrays and scalars, paths, sets.

    Examples
    --------
    >>> import json, numpy as np
    >>> json.dumps({"r": np.float64(3.5), "axis": np.arange(3), "tags": {"b", "a"}}, default=jsonable)
    '{"r": 3.5, "axis": [0, 1, 2], "tags": ["a", "b"]}'
    """
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serialisable")
