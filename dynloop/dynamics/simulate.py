"""Iterate any :class:`~dynloop.systems.base.System` and keep what the user asked for."""

__all__ = ["simulate", "Trajectory"]

import json
import os
from dataclasses import dataclass, field

import numpy as np

from .._errors import check_int, invalid
from .recording import LoopRecording
from ..systems._recording import RECORD_ALL, RECORD_LAST, RECORD_NONE, record_capacity, record_order

_DTYPES = {np.dtype(np.float64): np.float64, np.dtype(np.float32): np.float32}


@dataclass
class Trajectory:
    """States and per-loop summaries of one run of a system.

    Attributes
    ----------
    system_name : str
        What was iterated.
    stage_names : tuple of str
        Names of the ``S`` stages of one loop (``("step",)`` for a map).
    recorded_loops : ndarray of int, shape (R,)
        Loop index ``t`` of each recorded row.
    stage_states : ndarray, shape (R, S + 1, *state_shape), or None
        ``stage_states[r, 0]`` is the state entering loop ``recorded_loops[r]``, ``[r, j]`` the
        state after stage ``j``; ``None`` when ``record="none"``.
    stage_norms, stage_steps, stage_cosines : ndarray, shape (loops_run [+ 1], S + 1)
        For every loop ``t`` and stage ``j``: ``|h_{t,j}|``, the successive difference
        ``|h_{t,j} - h_{t-1,j}|`` and ``cos(h_{t,j}, h_{t-1,j})`` (Frobenius over the whole state;
        NaN at ``t = 0``). Kept for every loop whatever ``record`` is; a diverged run has one
        more row, the loop in which the non-finite value appeared.
    x0, final_state : ndarray
        The start state and the state after the last completed loop.
    loops_run : int
        Completed loops (fewer than asked when the run diverged).
    diverged_at, diverged_stage : int or None
        Loop and stage where a non-finite value (or an overflowing norm) first appeared.
    attention : ndarray, shape (R, layers, heads, T, T), or None
        Attention matrices per recorded loop when ``record_attention=True``.
    params : dict or None
        Map parameters used.
    system : System or None
        What was iterated (not saved by :meth:`save`; :meth:`recording` uses it for the attention
        bound).

    Examples
    --------
    >>> import dynloop
    >>> traj = dynloop.simulate(dynloop.maps.logistic(r=2.5), 50)
    >>> round(float(traj.final_state[0]), 6)
    0.6
    """

    system_name: str
    stage_names: tuple
    recorded_loops: np.ndarray
    stage_states: np.ndarray | None
    stage_norms: np.ndarray
    stage_steps: np.ndarray
    stage_cosines: np.ndarray
    x0: np.ndarray
    final_state: np.ndarray
    loops_run: int
    diverged_at: int | None = None
    diverged_stage: int | None = None
    attention: np.ndarray | None = None
    params: dict | None = None
    meta: dict = field(default_factory=dict)
    system: object = field(default=None, repr=False, compare=False)

    @property
    def loop_states(self):
        """States after each recorded loop, shape ``(R, *state_shape)`` (``None`` if not recorded)."""
        return None if self.stage_states is None else self.stage_states[:, -1]

    @property
    def diverged(self):
        """True when the run stopped on a non-finite value."""
        return self.diverged_at is not None

    def summary(self):
        """Describe the run in words: length, divergence, final norms and successive differences.

        Returns
        -------
        str
            The text (also what ``print(trajectory)`` would want to show).

        Examples
        --------
        >>> import dynloop
        >>> print(dynloop.simulate(dynloop.maps.logistic(r=2.5), 20).summary())  # doctest: +ELLIPSIS
        Trajectory of logistic: 20 loops of 1 stage...
        """
        n_stages = len(self.stage_names)
        lines = [f"Trajectory of {self.system_name}: {self.loops_run} loops of {n_stages} "
                 f"stage{'s' if n_stages != 1 else ''} ({', '.join(self.stage_names)}), "
                 f"{len(self.recorded_loops)} recorded."]
        if self.diverged:
            lines.append(f"Diverged: a non-finite value appeared at loop {self.diverged_at}, "
                         f"stage {self.diverged_stage} "
                         f"({(('entry',) + tuple(self.stage_names))[self.diverged_stage]}).")
        if self.loops_run > 0:
            t = self.loops_run - 1
            lines.append(f"{'stage':>10} {'|h|':>12} {'|h_t - h_t-1|':>14} {'cos(h_t, h_t-1)':>16}")
            for j, name in enumerate(self.stage_names, start=1):
                lines.append(f"{name:>10} {self.stage_norms[t, j]:12.5g} "
                             f"{self.stage_steps[t, j]:14.5g} {self.stage_cosines[t, j]:16.10f}")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def plot(self, path=None, *, ax=None):
        """Draw per-stage successive differences and state norms against loops.

        Parameters
        ----------
        path : str or Path, optional
            Write the figure there (format from the suffix).
        ax : pair of matplotlib Axes, optional
            Draw into these two axes instead of a new figure.

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import dynloop
        >>> fig = dynloop.simulate(dynloop.maps.logistic(r=3.2), 100).plot()
        """
        from ..plotting import plot_trajectory

        return plot_trajectory(self, path=path, ax=ax)

    def recording(self):
        """This run as a :class:`~dynloop.LoopRecording`, the input of :func:`dynloop.analyze`.

        Needs the stage states (``record="all"`` or ``("last", N)``) of a block (states ``T × d``);
        the attention comes along when the run recorded it (``record_attention=True``), and so do
        the block's query and key weights and what each layer's attention read, for the attention
        bound. A run that diverged keeps its finite loops.

        Returns
        -------
        LoopRecording

        Examples
        --------
        >>> import dynloop
        >>> spec = dynloop.BlockSpec(width=8, tokens=4, layers=3, mixer="transformer", heads=2)
        >>> rec = dynloop.simulate(spec, 20, record_attention=True).recording()
        >>> rec.loops, rec.layers, rec.attention.shape
        (20, 3, (20, 3, 2, 4, 4))
        """
        if self.stage_states is None:
            raise invalid("record", self.meta.get("record"), "a recording needs stage states: simulate with "
                                                             "record='all' or ('last', N)")
        if self.stage_states.ndim != 4:
            raise ValueError(f"{self.system_name} has states of shape {self.stage_states.shape[2:]}; a "
                             "recording needs a block's (tokens, width) states")
        finite = np.all(np.isfinite(self.stage_states.reshape(self.stage_states.shape[0], -1)), axis=1)
        if self.attention is not None:
            finite &= np.all(np.isfinite(self.attention.reshape(self.attention.shape[0], -1)), axis=1)
        keep = np.flatnonzero(np.cumprod(finite))  # up to the first non-finite loop
        if keep.size == 0:
            raise ValueError(f"{self.system_name} diverged before a finite loop was recorded: "
                             "nothing to analyse")
        states = self.stage_states[keep]
        meta = {"system_name": self.system_name, "recorded_loops": self.recorded_loops[keep].tolist(),
                "dtype": self.meta.get("dtype", "float64")}
        context = None if self.system is None else self.system.attention_context(states)
        if context is not None:
            meta.update(context)
        rec = LoopRecording(states, attention=None if self.attention is None else self.attention[keep],
                            stage_names=self.stage_names, meta=meta)
        rec.system = self.system
        return rec

    def save(self, path):
        """Write the trajectory to a compressed ``.npz`` file; :meth:`load` reads it back.

        Examples
        --------
        >>> import dynloop, tempfile, os
        >>> traj = dynloop.simulate(dynloop.maps.logistic(r=2.5), 10)
        >>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
        >>> traj.save(path)
        >>> dynloop.Trajectory.load(path).loops_run
        10
        """
        arrays = {name: getattr(self, name) for name in
                  ("recorded_loops", "stage_norms", "stage_steps", "stage_cosines", "x0", "final_state")}
        for name in ("stage_states", "attention"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        header = {"system_name": self.system_name, "stage_names": list(self.stage_names),
                  "loops_run": self.loops_run, "diverged_at": self.diverged_at,
                  "diverged_stage": self.diverged_stage, "params": self.params, "meta": self.meta}
        np.savez_compressed(path, _header=np.array(json.dumps(header)), **arrays)

    @classmethod
    def load(cls, path):
        """Read a trajectory written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["_header"]))
            arrays = {name: data[name] for name in data.files if name != "_header"}
        return cls(system_name=header["system_name"], stage_names=tuple(header["stage_names"]),
                   loops_run=header["loops_run"], diverged_at=header["diverged_at"],
                   diverged_stage=header["diverged_stage"], params=header["params"],
                   meta=header["meta"], stage_states=arrays.pop("stage_states", None),
                   attention=arrays.pop("attention", None), **arrays)


def _parse_record(record):
    if isinstance(record, str):
        if record == "all":
            return RECORD_ALL, 0
        if record == "none":
            return RECORD_NONE, 0
        if record == "last":
            return RECORD_LAST, 1
    elif isinstance(record, (tuple, list)) and len(record) == 2 and record[0] == "last":
        return RECORD_LAST, check_int("record[1]", record[1], minimum=1)
    raise invalid("record", record, "expected 'all', 'none', 'last' or ('last', N) with N >= 1")


def _available_memory():
    """Bytes of memory available to a new allocation (``MemAvailable`` on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _format_bytes(size):
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000


def _check_memory(system, loops, record, stride, capacity, dtype, attention_entries):
    """Refuse a run whose records would not fit in the memory available, before allocating them.

    The stage states take ``capacity × (S + 1) × n`` numbers, the attention matrices
    ``capacity × attention_entries``, the per-loop summaries ``3 × loops × (S + 1)`` float64.
    """
    rows = len(system.stage_names) + 1
    itemsize = np.dtype(dtype).itemsize
    states = capacity * rows * (int(np.prod(system.state_shape)) + attention_entries) * itemsize
    summaries = 3 * loops * rows * 8
    available = _available_memory()
    if available is None or states + summaries <= available:
        return
    if summaries <= available:
        raise invalid("record", record, f"keeping {capacity:,} loops of stage states would take "
                      f"{_format_bytes(states)} (and {_format_bytes(summaries)} of per-loop summaries), "
                      f"more than the {_format_bytes(available)} of memory available; keep the last N loops "
                      f"with record=('last', N), or every K-th loop with stride=K (now {stride})")
    raise invalid("loops", loops, f"the per-loop summaries (norms, steps, cosines of every stage) alone "
                  f"would take {_format_bytes(summaries)}, more than the {_format_bytes(available)} of "
                  "memory available; run fewer loops at a time, continuing from the last final_state")


def simulate(system, loops, *, x0=None, params=None, record="all", stride=1, dtype=np.float64,
             record_attention=False):
    """Iterate a system for ``loops`` loops in compiled code and return its :class:`Trajectory`.

    Parameters
    ----------
    system : BlockSpec, AffineLoop or Map
        What to iterate.
    loops : int
        Number of loops (steps, for a map).
    x0 : array_like, optional
        Start state (shape ``(tokens, width)`` for a block, ``(dim,)`` for a map or affine loop).
        Defaults to the system's own start state (``state_init`` for a block).
    params : dict, optional
        Map parameter overrides, by name.
    record : {"all", "last", "none"} or ("last", N)
        Which loops keep their stage states: all, the final ``N`` (``"last"`` is ``("last", 1)``)
        or none. Per-loop summaries (norms, successive differences, cosines) are always kept.
    stride : int
        Keep every ``stride``-th loop (loops ``0, stride, 2 stride, ...``).
    dtype : {numpy.float64, numpy.float32}
        Precision of the states and of the arithmetic.
    record_attention : bool
        Also keep the attention matrices (attention and transformer mixers only).

    Returns
    -------
    Trajectory

    Notes
    -----
    Non-finite values never raise: the run stops and ``trajectory.diverged_at`` says where.

    Examples
    --------
    >>> import dynloop
    >>> spec = dynloop.BlockSpec(width=8, tokens=2, layers=3, mixer="mlp", norm="pre",
    ...                          injection="concat", seed=1)
    >>> traj = dynloop.simulate(spec, 64, record=("last", 4))
    >>> traj.stage_states.shape  # 4 loops, entry + injection + 3 layers, 2 tokens x 8
    (4, 5, 2, 8)
    """
    from ..systems.base import check_system

    check_system(system)
    loops = check_int("loops", loops, minimum=0)
    stride = check_int("stride", stride, minimum=1)
    mode, n_last = _parse_record(record)
    if np.dtype(dtype) not in _DTYPES:
        raise invalid("dtype", dtype, "expected numpy.float64 or numpy.float32")
    dtype = _DTYPES[np.dtype(dtype)]
    mixer = system.components.get("mixer")
    if record_attention and not (mixer is not None and "attention" in mixer.branches):
        raise invalid("record_attention", record_attention,
                      "attention can only be recorded for a BlockSpec with mixer 'attention' or "
                      "'transformer'")
    attention = system.layers * system.heads * system.tokens ** 2 if record_attention else 0
    _check_memory(system, loops, record, stride, record_capacity(mode, loops, stride, n_last), dtype,
                  attention)
    resolved = system.resolve_params(params)
    start = system.start_state(resolved) if x0 is None else x0
    start = system.check_state(start, "x0", dtype)
    out = system._run(start, loops, resolved, mode, stride, n_last, dtype, bool(record_attention))
    order = record_order(out.recorded_loops.shape[0], out.count, mode)
    diverged = out.diverged_at >= 0
    summary_rows = out.loops_run + (1 if diverged else 0)  # keep the row that shows the blow-up
    return Trajectory(
        system_name=system.name,
        stage_names=tuple(system.stage_names),
        recorded_loops=out.recorded_loops[order],
        stage_states=None if mode == RECORD_NONE else out.states[order],
        stage_norms=out.norms[:summary_rows],
        stage_steps=out.steps[:summary_rows],
        stage_cosines=out.cosines[:summary_rows],
        x0=start,
        final_state=out.final_state,
        loops_run=out.loops_run,
        diverged_at=int(out.diverged_at) if diverged else None,
        diverged_stage=int(out.diverged_stage) if diverged else None,
        attention=None if out.attention is None else out.attention[order],
        params=None if resolved is None else dict(resolved),
        meta={"dtype": np.dtype(dtype).name,
              "record": list(record) if not isinstance(record, str) else record,
              "stride": stride, "loops": loops},
        system=system,
    )
