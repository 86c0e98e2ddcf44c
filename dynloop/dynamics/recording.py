"""Loop recordings: per-stage states and attention of a looped model, from dynloop or from PyTorch.

A :class:`LoopRecording` is what :func:`dynloop.analyze` reads. It is built from a toy block's
:class:`~dynloop.Trajectory` (``traj.recording()``), or from arrays dumped from a real looped
model (``docs/recordings.md`` has the file layout and a PyTorch snippet), and it is written to and
read from ``.npz`` (and ``.safetensors`` with the ``[io]`` extra).
"""

__all__ = ["LoopRecording", "load_recording"]

import json
from pathlib import Path

import numpy as np

from .._errors import invalid
from .._json import jsonable

#: meta entries that are arrays, with the shape each must have (letters as in LoopRecording)
META_ARRAYS = {
    "attn_q": "(layers, d, d)",
    "attn_k": "(layers, d, d)",
    "attention_inputs": "(loops, layers, T, d)",
}
_FORMAT = "dynloop-recording-1"


def _array(name, value, rank, expected):
    """``value`` as a float array of rank ``rank`` with finite entries, or a ValueError naming it."""
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists and the like
        raise ValueError(f"{name} cannot be read as an array ({error}); expected shape {expected}") from None
    if array.dtype.kind not in "fiu" or array.ndim != rank:
        raise ValueError(
            f"{name} has shape {array.shape} and dtype {array.dtype}; expected a real array of "
            f"shape {expected}"
        )
    if array.dtype.kind != "f" or array.dtype.itemsize < 4:
        array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(
            f"{name} has a non-finite entry ({array[where]}) at index {where}; a recording "
            f"must be finite (a run that diverged cannot be analysed past its last finite loop)"
        )
    return array


def _check_shape(name, array, expected_shape, expected):
    """Raise a ValueError when ``array.shape`` differs from ``expected_shape`` (``None`` matches anything)."""
    if len(array.shape) != len(expected_shape) or any(
        want is not None and got != want for got, want in zip(array.shape, expected_shape)
    ):
        raise ValueError(
            f"{name} has shape {array.shape}; expected {expected} = "
            f"{tuple('?' if w is None else w for w in expected_shape)}"
        )


class LoopRecording:
    """The per-stage states (and attention) of a looped model over consecutive loops.

    Parameters
    ----------
    stage_states : array_like, shape (loops, stages, T, d)
        ``stage_states[t, 0]`` is the state entering loop ``t``, ``stage_states[t, j]`` the state
        after stage ``j`` of that loop (as ``dynloop/systems/MODEL.md`` numbers a block's stages:
        an injection stage if any, one per layer, an outer norm if any). For a real model dumped
        layer by layer, ``stages = layers + 1``: the state entering the loop and after each layer.
    attention : array_like, shape (loops, layers, heads, T, T), optional
        Each layer's attention matrices in every loop; each row sums to 1 (a causal model's rows
        are zero above the diagonal).
    stage_names : sequence of str, optional
        Names of stages ``1 ... stages - 1`` (the entering state has none). The stages whose names
        start with ``"layer"`` are the layers, in order; by default every stage is a layer,
        ``"layer0" ...``.
    prelude, coda : array_like, shape (layers, T, d), optional
        Per-layer states of the non-looped parts of a (prelude, block × loops, coda) model.
    meta : dict, optional
        Anything JSON can hold (model name, prompt, ``"sink_position"``), and these arrays:
        ``"attn_q"`` and ``"attn_k"`` (layers, d, d), the query and key weights with
        ``Q = X Wqᵀ``, with ``"heads"``, for the attention bound of :func:`dynloop.analyze`;
        ``"attention_inputs"`` (loops, layers, T, d), the states each layer's attention read (after
        its input norm) when they differ from the layer's input stage state.

    Attributes
    ----------
    system : System or None
        The block the recording was simulated from (set by :meth:`dynloop.Trajectory.recording`;
        not saved): :func:`dynloop.analyze` simulates it further to check the fixed points.

    Raises
    ------
    ValueError
        Naming the array and the shape it needs: wrong rank, loops, layers, T or d that do not
        match, attention rows that are not probability vectors, a non-finite entry.

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> states = np.ones((4, 3, 2, 5))             # 4 loops, entering state + 2 layers, T = 2, d = 5
    >>> attention = np.full((4, 2, 1, 2, 2), 0.5)  # 2 layers, 1 head, uniform
    >>> rec = dynloop.LoopRecording(states, attention=attention)
    >>> rec.loops, rec.layers, rec.heads, rec.stage_names
    (4, 2, 1, ('layer0', 'layer1'))
    """

    def __init__(self, stage_states, *, attention=None, stage_names=None, prelude=None, coda=None, meta=None):
        states = _array("stage_states", stage_states, 4, "(loops, stages, T, d)")
        loops, stages, tokens, width = states.shape
        if loops < 1 or stages < 2 or tokens < 1 or width < 1:
            raise ValueError(
                f"stage_states has shape {states.shape}; expected (loops, stages, T, d) with at "
                "least 1 loop, 2 stages (the entering state and one layer), 1 token and width 1"
            )
        self.stage_states = states
        if stage_names is None:
            stage_names = tuple(f"layer{j}" for j in range(stages - 1))
        stage_names = tuple(stage_names)
        if len(stage_names) != stages - 1 or not all(isinstance(name, str) for name in stage_names):
            raise invalid(
                "stage_names",
                stage_names,
                f"expected {stages - 1} names (one per stage after the "
                f"entering state; stage_states has {stages} stages)",
            )
        self.stage_names = stage_names
        layer_stages = [j for j, name in enumerate(stage_names, start=1) if name.startswith("layer")]
        if not layer_stages:
            layer_stages = list(range(1, stages))
        if layer_stages != list(range(layer_stages[0], layer_stages[-1] + 1)):
            raise invalid(
                "stage_names", stage_names, "expected the stages named 'layer...' to be consecutive"
            )
        self.layer_stages = range(layer_stages[0], layer_stages[-1] + 1)
        self.attention = None
        if attention is not None:
            attention = _array("attention", attention, 5, "(loops, layers, heads, T, T)")
            _check_shape(
                "attention",
                attention,
                (loops, len(self.layer_stages), None, tokens, tokens),
                "(loops, layers, heads, T, T) with loops, T from stage_states and layers the "
                "stages named 'layer...'",
            )
            tolerance = 1e-6 if attention.dtype == np.float64 else 1e-3
            if attention.min() < -tolerance:
                where = tuple(int(i) for i in np.unravel_index(np.argmin(attention), attention.shape))
                raise ValueError(
                    f"attention has a negative entry {attention[where]:.3g} at {where}; each row "
                    "must be a probability vector (row-stochastic)"
                )
            sums = attention.sum(axis=-1)
            worst = np.unravel_index(np.argmax(np.abs(sums - 1.0)), sums.shape)
            if abs(sums[worst] - 1.0) > tolerance * tokens:
                raise ValueError(
                    f"attention row {tuple(int(i) for i in worst)} (loop, layer, head, token) sums "
                    f"to {sums[worst]:.6g}; each row must sum to 1 (row-stochastic)"
                )
            self.attention = attention
        for name, value in (("prelude", prelude), ("coda", coda)):
            if value is not None:
                value = _array(name, value, 3, "(layers, T, d)")
                _check_shape(name, value, (None, tokens, width), "(layers, T, d) with T, d from stage_states")
            setattr(self, name, value)
        self.meta = self._check_meta({} if meta is None else meta)
        self.system = None

    def _check_meta(self, meta):
        if not isinstance(meta, dict) or not all(isinstance(key, str) for key in meta):
            raise invalid("meta", meta, "expected a dict with str keys")
        meta = dict(meta)
        layers, (loops, _, tokens, width) = self.layers, self.stage_states.shape
        shapes = {
            "attn_q": (layers, width, width),
            "attn_k": (layers, width, width),
            "attention_inputs": (loops, layers, tokens, width),
        }
        for key, shape in shapes.items():
            if key in meta:
                meta[key] = _array(f"meta[{key!r}]", meta[key], len(shape), META_ARRAYS[key])
                _check_shape(f"meta[{key!r}]", meta[key], shape, META_ARRAYS[key])
        if ("attn_q" in meta) != ("attn_k" in meta):
            raise invalid("meta", sorted(meta), "expected both 'attn_q' and 'attn_k', or neither")
        if "attn_q" in meta:
            heads = meta.get("heads", None if self.attention is None else self.attention.shape[2])
            if not isinstance(heads, (int, np.integer)) or heads < 1 or width % heads:
                raise invalid(
                    "meta['heads']", heads, f"expected a whole number of heads dividing d = {width}"
                )
            if self.attention is not None and heads != self.heads:
                raise invalid("meta['heads']", heads, f"expected the attention's {self.heads} heads")
            meta["heads"] = int(heads)
        if "sink_position" in meta:
            position = meta["sink_position"]
            if not isinstance(position, (int, np.integer)) or not 0 <= position < tokens:
                raise invalid(
                    "meta['sink_position']", position, f"expected a token index in 0 ... {tokens - 1}"
                )
        for key, value in meta.items():
            if key not in shapes:
                try:
                    json.dumps(value, default=jsonable)
                except TypeError:
                    raise invalid(f"meta[{key!r}]", value, "expected a value JSON can hold") from None
        return meta

    # ------------------------------------------------------------------ sizes
    @property
    def loops(self):
        """Number of recorded loops."""
        return self.stage_states.shape[0]

    @property
    def n_stages(self):
        """Stages per loop after the entering state, ``S`` (``stage_states`` has ``S + 1``)."""
        return self.stage_states.shape[1] - 1

    @property
    def layers(self):
        """Number of layer stages (those named ``"layer..."``)."""
        return len(self.layer_stages)

    @property
    def tokens(self):
        """Tokens ``T`` per state."""
        return self.stage_states.shape[2]

    @property
    def width(self):
        """Width ``d`` of each token's state."""
        return self.stage_states.shape[3]

    @property
    def heads(self):
        """Attention heads per layer (None without attention or weights)."""
        if self.attention is not None:
            return self.attention.shape[2]
        return self.meta.get("heads")

    @property
    def layer_states(self):
        """Each layer's output state in every loop, shape (loops, layers, T, d)."""
        return self.stage_states[:, self.layer_stages.start : self.layer_stages.stop]

    @property
    def layer_inputs(self):
        """Each layer's input state in every loop, shape (loops, layers, T, d)."""
        return self.stage_states[:, self.layer_stages.start - 1 : self.layer_stages.stop - 1]

    # ------------------------------------------------------------------ files
    def _arrays(self):
        arrays = {"stage_states": self.stage_states}
        for name in ("attention", "prelude", "coda"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        for key in META_ARRAYS:
            if key in self.meta:
                arrays[f"meta.{key}"] = self.meta[key]
        header = {
            "format": _FORMAT,
            "stage_names": list(self.stage_names),
            "meta": {k: v for k, v in self.meta.items() if k not in META_ARRAYS},
        }
        return arrays, json.dumps(header, default=jsonable)

    def save(self, path):
        """Write the recording to ``path``: ``.npz`` (compressed), or ``.safetensors`` (``[io]`` extra).

        The layout is in ``docs/recordings.md``; :func:`dynloop.load_recording` reads both.

        Examples
        --------
        >>> import dynloop, numpy as np, tempfile, os
        >>> rec = dynloop.LoopRecording(np.zeros((3, 2, 1, 4)), meta={"model": "toy"})
        >>> path = os.path.join(tempfile.mkdtemp(), "rec.npz")
        >>> rec.save(path)
        >>> dynloop.load_recording(path).meta
        {'model': 'toy'}
        """
        path = Path(path)
        arrays, header = self._arrays()
        if path.suffix == ".safetensors":
            save_file = _safetensors("save")
            save_file(
                {name: np.ascontiguousarray(a) for name, a in arrays.items()},
                str(path),
                metadata={"dynloop": header},
            )
        elif path.suffix == ".npz":
            np.savez_compressed(path, _header=np.array(header), **arrays)
        else:
            raise invalid("path", str(path), "expected a file name ending in .npz or .safetensors")

    # ------------------------------------------------------------------ display
    def summary(self):
        """The recording in a few lines: sizes, stages, what it holds.

        Examples
        --------
        >>> import dynloop, numpy as np
        >>> print(dynloop.LoopRecording(np.zeros((3, 2, 1, 4))).summary())
        LoopRecording: 3 loops of 1 stage (layer0), 1 layer; T = 1 tokens, d = 4.
        Holds: stage states.
        """
        holds = ["stage states"]
        if self.attention is not None:
            holds.append(f"attention ({self.heads} heads)")
        holds += [name for name in ("prelude", "coda") if getattr(self, name) is not None]
        if "attn_q" in self.meta:
            holds.append("query and key weights")
        if "attention_inputs" in self.meta:
            holds.append("attention inputs")
        extra = {k: v for k, v in self.meta.items() if k not in META_ARRAYS and k != "heads"}
        lines = [
            f"LoopRecording: {self.loops} loops of {self.n_stages} stage{'s' * (self.n_stages != 1)} "
            f"({', '.join(self.stage_names)}), {self.layers} layer{'s' * (self.layers != 1)}; "
            f"T = {self.tokens} tokens, d = {self.width}.",
            "Holds: " + ", ".join(holds) + ".",
        ]
        if extra:
            lines.append("Meta: " + json.dumps(extra, default=jsonable)[:300])
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"LoopRecording(loops={self.loops}, stages={self.n_stages + 1}, T={self.tokens}, d={self.width}, "
            f"attention={'yes' if self.attention is not None else 'no'})"
        )

    def _repr_html_(self):
        from html import escape

        return "<pre>" + escape(self.summary()) + "</pre>"


def _safetensors(action):
    try:
        from safetensors.numpy import load_file, save_file
    except ImportError:
        raise ImportError(
            f"to {action} .safetensors files install the optional package: "
            "pip install 'dynloop[io]' (or pip install safetensors)"
        ) from None
    return save_file if action == "save" else load_file


def load_recording(path):
    """Read a recording written by :meth:`LoopRecording.save`, by PyTorch code, or a saved trajectory.

    Parameters
    ----------
    path : str or Path
        An ``.npz`` file (``numpy.savez``: arrays named as in ``docs/recordings.md``; a
        :meth:`dynloop.Trajectory.save` file also works) or a ``.safetensors`` file (needs the
        optional ``safetensors`` package: ``pip install 'dynloop[io]'``).

    Returns
    -------
    LoopRecording

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file; a file without ``stage_states``; arrays of the wrong shape (named).

    Examples
    --------
    >>> import dynloop, numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "dump.npz")
    >>> np.savez(path, stage_states=np.zeros((5, 4, 2, 8)))   # as a PyTorch dump would
    >>> dynloop.load_recording(path).layers
    3
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recording at {str(path)!r}")
    if path.suffix == ".safetensors":
        load_file = _safetensors("read")
        arrays = load_file(str(path))
        with open(path, "rb") as handle:  # the header: 8 bytes of length, then JSON with __metadata__
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size)).get("__metadata__", {}).get("dynloop")
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as error:
            raise ValueError(f"{str(path)!r} is not a readable .npz file ({error})") from None
        header = arrays.pop("_header", None)
        header = None if header is None else str(header)
    else:
        raise invalid("path", str(path), "expected a file name ending in .npz or .safetensors")
    header = json.loads(header) if header else {}
    if "stage_states" not in arrays:
        raise ValueError(
            f"{str(path)!r} has no array named 'stage_states' (it has {sorted(arrays)}); a "
            "recording needs stage_states of shape (loops, stages, T, d)"
        )
    meta = dict(header.get("meta") or {})
    if "system_name" in header:  # a Trajectory.save file
        meta.setdefault("system_name", header["system_name"])
    for key in META_ARRAYS:
        if f"meta.{key}" in arrays:
            meta[key] = arrays[f"meta.{key}"]
    known = {"stage_states", "attention", "prelude", "coda"} | {f"meta.{key}" for key in META_ARRAYS}
    trajectory_arrays = {"recorded_loops", "stage_norms", "stage_steps", "stage_cosines", "x0", "final_state"}
    unknown = set(arrays) - known - trajectory_arrays
    if unknown:
        raise ValueError(
            f"{str(path)!r} has arrays dynloop does not know: {sorted(unknown)}; expected "
            f"{sorted(known)} (docs/recordings.md)"
        )
    return LoopRecording(
        arrays["stage_states"],
        attention=arrays.get("attention"),
        stage_names=header.get("stage_names"),
        prelude=arrays.get("prelude"),
        coda=arrays.get("coda"),
        meta=meta,
    )
