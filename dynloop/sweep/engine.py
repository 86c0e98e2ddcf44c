"""The sweep engine: grid → chunks → compiled parallel classification → PhaseDiagram."""

__all__ = ["sweep", "POINT_FIELDS"]

import contextlib
import dataclasses
import functools
import itertools
import numbers
import signal
import sys
import threading
import time
from collections import OrderedDict

import numpy as np

from .._cache import announce_compiling
from .._errors import caused_by_interrupt, check_int, did_you_mean, invalid
from ..dynamics.regimes import Regime
from ..dynamics.simulate import _DTYPES
from ..systems.block import POINT_FIELDS  # the fields that vary per point inside one compiled call
from .phase import _valid_codes

# the block kernel's groups of points: a state of _GROUP_BYTES, within _GROUP_COLUMNS token rows
_GROUP_BYTES = 65536
_GROUP_COLUMNS = (256, 512)
_WINDOW_BATCH = 32  # points whose windows are put in loop order together
# attention's loops run across a group's points: at least this many, so that they fill vectors (T = 32,
# d = 64: 16 rather than 8 points took 2.90 rather than 3.24 s, float64, 256 points, 50 loops)
_ATTENTION_POINTS = 16
_CALL_SECONDS = 0.25  # an in-process sweep runs more chunks per compiled call while calls are shorter
_DEFAULT_WINDOW = 260  # loops examined per point by default, as classify's default window
_MIN_WINDOW = 8  # the shortest window: 4 * max_period + 4 loops for max_period 1, as classify requires


def _system_kind(system):
    from ..systems.base import check_system

    check_system(system)
    if system.kind in ("block", "map"):
        return system.kind
    raise invalid("system", type(system).__name__,
                  "sweeps take a dynloop.BlockSpec or a dynloop.Map (an AffineLoop has no parameters "
                  "to sweep)")


def _check_axes(system, axes, kind):
    """The axes as 1-D arrays, every value checked before any point is computed.

    A numeric field or parameter takes finite numbers only; a block's facet values (and the ends
    of a per-point axis) are checked by the BlockSpec itself, so that a bad value is named here
    and not half-way through a sweep.
    """
    if not isinstance(axes, dict) or not axes:
        raise invalid("axes", axes,
                      "expected a non-empty mapping from a field or parameter name to a 1-D array")
    checked = OrderedDict()
    if kind == "block":
        fields = [f.name for f in dataclasses.fields(system) if f.name not in ("weights", "inputs")]
    else:
        fields = list(system.param_names)
    for name, values in axes.items():
        if name not in fields:
            raise invalid("axes", name, "not a sweepable " + ("BlockSpec field" if kind == "block" else
                                                            f"parameter of {system.name}") + "; allowed: "
                          + ", ".join(fields) + did_you_mean(name, fields))
        field = f"axes[{name!r}]"
        array = np.asarray(values)
        if array.ndim != 1 or array.size == 0:
            raise invalid(field, values, "expected a non-empty 1-D sequence of values")
        reference = system.params[name] if kind == "map" else getattr(system, name)
        numeric = isinstance(reference, numbers.Real) and not isinstance(reference, bool)
        if numeric and array.dtype.kind not in "iuf":
            index, value = next((i, v) for i, v in enumerate(np.asarray(values, dtype=object).tolist())
                                if isinstance(v, bool) or not isinstance(v, numbers.Real))
            raise invalid(f"{field}[{index}]", value, "expected a number for "
                          + (f"{system.name}'s parameter {name!r}" if kind == "map"
                             else f"the BlockSpec field {name!r}"))
        if array.dtype.kind in "OSU":
            array = array.astype(str)
        elif array.dtype.kind not in "iuf":
            raise invalid(field, values, "expected numbers or strings")
        if array.dtype.kind == "f":
            _check_finite(field, array)
        if kind == "block":
            # facet values one by one; a per-point axis (any value in a range) at its ends
            samples = ([array.min(), array.max()] if name in POINT_FIELDS and array.dtype.kind in "iuf"
                       else array)
            for value in samples:
                try:
                    system.replace(**{name: value.item()})
                except ValueError as error:
                    raise ValueError(f"{field}: {error}") from None
        checked[name] = array
    return checked


def _check_finite(field, array):
    """Raise a ``ValueError`` naming the first NaN or infinity of a float array, and where it is."""
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise invalid(f"{field}[{bad[0]}]", array[bad[0]].item(),
                      "every value of an axis must be a finite number")


def _describe(system, kind):
    from ..systems.maps import catalogue_names

    if kind == "block":
        return {"block": system.to_dict()}
    return {"map": {"name": system.name, "params": dict(system.params),
                    "catalogue": system.name in catalogue_names()}}


@dataclasses.dataclass
class _Task:
    """One chunk: where its points sit in the grid and what to compute for them."""

    index: int
    flat: np.ndarray          # flat grid indices of the chunk's points
    facet: dict               # facet field values (blocks)
    point_names: list         # the axes that vary per point, in the columns of ``values``
    values: np.ndarray        # (points, len(point_names))
    starts: np.ndarray = None  # (points, *state_shape): each point's own start state, or None (shared)


def _plan(axes, point_names, chunk):
    """Split the grid, in C order, into chunks that never straddle two facets."""
    shape = tuple(len(v) for v in axes.values())
    names = list(axes)
    facet_names = [n for n in names if n not in point_names]
    indices = np.indices(shape).reshape(len(shape), -1).T        # (points, axes)
    facet_key = (indices[:, [names.index(n) for n in facet_names]] if facet_names
                 else np.zeros((len(indices), 0), int))
    changes = np.flatnonzero(np.any(facet_key[1:] != facet_key[:-1], axis=1)) + 1
    runs = np.concatenate([[0], changes, [len(indices)]])
    tasks = []
    for run_start, run_stop in zip(runs[:-1], runs[1:]):
        for start in range(run_start, run_stop, chunk):
            stop = min(start + chunk, run_stop)
            rows = indices[start:stop]
            facet = {n: axes[n][rows[0, names.index(n)]].item() for n in facet_names}
            values = np.column_stack([axes[n][rows[:, names.index(n)]].astype(float) for n in point_names]) \
                if point_names else np.zeros((stop - start, 0))
            tasks.append(_Task(len(tasks), np.arange(start, stop), facet, list(point_names), values))
    return tasks


@functools.lru_cache(maxsize=8)
def _facet_system(system, facet, dtype):
    """The spec of one facet and its :class:`~dynloop.systems.base.SweepKernel`, built once per facet.

    Chunks of the same facet reuse them, so weights are drawn and cast once, not once per chunk.
    """
    spec = system.replace(**dict(facet)) if facet else system
    return spec, spec.sweep_kernel(dtype)


def _run_task(system, kind, task, settings):
    """Classify the points of one chunk (runs wherever the executor sends it)."""
    return _run_tasks(system, kind, [task], settings)[0]


def _run_tasks(system, kind, tasks, settings):
    """Classify the points of chunks of one facet in one compiled call: one
    ``(codes, diagnostics, finals)`` per chunk (``finals``: each point's last loop state, flat, or no
    columns when the settings do not ask for them).

    One call for several chunks keeps both cores busy to the end of the call; a call per chunk
    waits at every chunk's end for the slower core. The kernel runs its points on every core
    itself, so the BLAS library it calls (for the tangents of Lyapunov exponents)
    is held to one thread meanwhile: BLAS threads on top of the kernel's threads would
    oversubscribe the cores (at width 128 that halved the speed).
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        codes, diagnostics, finals = _run_kernel(system, kind, tasks, settings)
    bounds = np.cumsum([0] + [len(task.flat) for task in tasks])
    return [(codes[lo:hi], diagnostics[lo:hi], finals[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """The thread pools of the process's libraries, found once (finding them takes milliseconds).

    The compiled kernels call the BLAS that SciPy ships (through ``scipy.linalg.cython_blas``),
    not NumPy's: it is loaded first so that the controller sees it.
    """
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_WORK = threading.local()


def _work_memory(name, shape, dtype):
    """A work array of this shape, kept for the next chunk of this thread (no fresh pages each time).

    An in-process sweep releases it when it ends; an executor's threads keep theirs for their next
    chunk.
    """
    cached = getattr(_WORK, name, None)
    if cached is None or cached.shape != shape or cached.dtype != dtype:
        cached = np.empty(shape, dtype=dtype)
        setattr(_WORK, name, cached)
    return cached


def _group_columns(width, dtype):
    """Token rows iterated together by the block kernel: a 64 KiB state, within 256 to 512 rows.

    Every pass over a group's columns (a norm, each step of a product, the activation) has a
    set-up cost of its own, whatever the group's size: a wider group shares it among more points.
    Past a 64 KiB state it was slower (float64, d = 32), probably because the group's seven work
    arrays then outgrow a core's L2 cache. At most 512, so that a default chunk (1024 points) is
    still two groups, one per core; at least 256, so that every pass is long. The timings
    behind these numbers are in benchmarks/README.md ("What makes it fast").
    """
    low, high = _GROUP_COLUMNS
    return int(min(high, max(low, _GROUP_BYTES // (width * np.dtype(dtype).itemsize))))


def _run_kernel(system, kind, tasks, settings):
    from numba import get_num_threads

    from . import _kernels as kernels  # compiled on first use, not when dynloop is imported

    loops, window, max_period, tolerances, early_exit, lyapunov, dtype, x0, keep_finals = settings
    task = tasks[0]  # all of one facet, with the same axes per point
    point_values = np.concatenate([t.values for t in tasks])
    n_points = len(point_values)
    own_starts = task.starts is not None  # every chunk of a call has its own starts, or none has
    if kind == "block":
        spec, kernel = _facet_system(system, tuple(task.facet.items()), dtype)
        if own_starts:
            start = np.ascontiguousarray(np.concatenate([t.starts for t in tasks]), dtype=dtype)
        else:
            start = spec.check_state(spec.start_state() if x0 is None else x0, "x0", dtype)[None]
        finals = np.empty((n_points, spec.state_size if keep_finals else 0))
        values = np.tile(kernel.point_values, (n_points, 1))
        for column, name in enumerate(task.point_names):
            values[:, kernel.point_fields.index(name)] = point_values[:, column]
        layers = spec.layer_stages
        arguments = (*kernel.arguments, values, start, loops, window, max_period, tolerances, early_exit,
                     lyapunov, spec.n_stages, layers.start, len(layers))
        # groups of points iterated together, a point's token rows as columns. Groups
        # never straddle two chunks, so that a chunk's results do not depend on its neighbours in a call
        points_per_group = max(1, _group_columns(spec.width, dtype) // spec.tokens)
        if "attention" in spec.components["mixer"].branches:
            points_per_group = max(points_per_group, _ATTENTION_POINTS)
        offsets = np.cumsum([0] + [len(t.flat) for t in tasks])
        starts = np.concatenate([np.arange(lo, hi, points_per_group)
                                 for lo, hi in zip(offsets[:-1], offsets[1:])] + [[n_points]])
        largest = int(np.diff(starts).max())
        lanes = min(get_num_threads(), len(starts) - 1)
        rings = _work_memory("rings", (lanes, window, spec.tokens * spec.width, largest), dtype)
        windows = _work_memory("windows", (lanes, _WINDOW_BATCH, window, spec.tokens * spec.width),
                               np.float64)
        codes, diagnostics = kernels.sweep_block_columns(*arguments, starts, rings, windows, finals)
        return codes, diagnostics, finals
    kernel = system.sweep_kernel()
    names = list(kernel.point_fields)
    values = np.tile(kernel.point_values, (n_points, 1))
    for column, name in enumerate(task.point_names):
        values[:, names.index(name)] = point_values[:, column]
    if own_starts:
        start = np.ascontiguousarray(np.concatenate([t.starts for t in tasks]), dtype=np.float64)
    else:
        start = system.check_state(system.start_state() if x0 is None else x0, "x0")[None]
    finals = np.empty((n_points, system.state_size if keep_finals else 0))
    try:
        codes, diagnostics = kernels.sweep_map(*kernel.arguments, np.ascontiguousarray(values), start,
                                               loops, window, max_period, tolerances, early_exit, lyapunov,
                                               finals)
    except Exception as error:
        if caused_by_interrupt(error):
            raise
        _raise_map_failure(system, names, values, start, loops, error)
    if not _valid_codes(codes):
        _raise_map_failure(system, names, values, start, loops, None)
    return codes, diagnostics, finals


def _raise_map_failure(system, names, values, starts, loops, error):
    """A user's map function failed inside the parallel kernel, where its error cannot travel whole.

    Iterate the chunk's points one by one in serial compiled code, where the map's guard raises its
    :class:`~dynloop.systems.maps.MapFunctionError` (naming the function, the state, the parameters
    of the grid point and what went wrong), and raise that.
    """
    from ..dynamics.simulate import simulate

    for i, row in enumerate(values):
        try:
            simulate(system, loops, x0=starts[i if len(starts) > 1 else 0],
                     params=dict(zip(names, row.tolist())), record="none")
        except ValueError as failure:  # its message names the state and the parameters (the grid point)
            raise failure from None
    raise RuntimeError(f"the compiled sweep of {system.name} failed ({error!r}), but no point fails when "
                       "iterated on its own") from error


def _window(loops, transient):
    """``(loops, transient, window, max_period)`` of a sweep's settings, each checked."""
    loops = check_int("loops", loops)
    if loops < _MIN_WINDOW:
        raise invalid("loops", loops, f"expected at least {_MIN_WINDOW}: a regime is read from a window of "
                      f"at least {_MIN_WINDOW} loops")
    if transient is None:
        window = min(max(loops // 2, _MIN_WINDOW), _DEFAULT_WINDOW)
        transient = loops - window
    else:
        transient = check_int("transient", transient, minimum=0)
        if loops - transient < _MIN_WINDOW:
            raise invalid("transient", transient, f"leave a window of at least {_MIN_WINDOW} loops: at most "
                          f"{loops - _MIN_WINDOW} with loops={loops}")
    window = loops - transient
    return loops, transient, window, max(1, (window - 4) // 4)


def _check_dtype(dtype, kind):
    if np.dtype(dtype) not in _DTYPES:
        raise invalid("dtype", dtype, "expected numpy.float64 or numpy.float32")
    dtype = _DTYPES[np.dtype(dtype)]
    if kind == "map" and dtype is not np.float64:
        raise invalid("dtype", dtype, "map sweeps run in float64")
    return dtype


def run_chunks(system, kind, tasks, settings, accept, *, store=None, resume=True, executor=None,
               progress=True, label="sweep"):
    """Compute every chunk of ``tasks`` (or read it from ``store``) and hand it to ``accept``.

    ``accept(task, arrays)`` receives a dict with ``"codes"`` and ``"diagnostics"``, and
    ``"finals"`` when the settings ask for final states, for every chunk: the stored ones first,
    then the computed ones as they finish, each written to ``store`` (a
    :class:`~dynloop.sweep.store.ChunkStore`) before it is accepted. Returns how many chunks were
    read from the store; ``label`` names the progress bar. The sweep and :func:`dynloop.basins` share it.
    """
    done = store.done() if store is not None and resume else set()
    pending = [task for task in tasks if task.index not in done]
    if pending and progress:
        announce_compiling(*(f"dynloop.sweep._kernels.{name}"
                             for name in _kernel_names(system, kind, pending)))

    def finished(task, result):
        codes, diagnostics, finals = result
        arrays = {"codes": codes, "diagnostics": diagnostics}
        if finals.shape[1] > 0:
            arrays["finals"] = finals
        if store is not None:
            store.write(task.index, arrays)
        accept(task, arrays)

    for task in tasks:
        if task.index in done:
            accept(task, store.read(task.index))
    bar = _progress_bar(len(tasks), len(tasks) - len(pending), progress, label)
    try:
        if executor is None:
            _run_in_process(system, kind, pending, settings, finished, bar)
        else:
            _run_on_executor(executor, system, kind, pending, settings, finished, bar)
    finally:
        bar.close()
    return len(done)


def sweep(system, axes, *, loops=200, transient=None, tol=None, x0=None, chunk=None, store=None, resume=True,
          executor=None, progress=True, early_exit=True, lyapunov=False, dtype=np.float64):
    """Classify a system at every point of a parameter grid: a phase diagram.

    Parameters
    ----------
    system : BlockSpec or Map
        The system at the grid's reference point; axes override its fields (or map parameters).
    axes : mapping
        Ordered mapping from a field or map-parameter name to a 1-D array of values. The numeric
        fields of ``dynloop.systems.block.POINT_FIELDS`` (``residual_scale``, ``injection_scale``,
        ``norm_eps``, ``skip_scale``) and every map parameter vary per point inside one compiled
        call; any other BlockSpec field (``norm``, ``injection``,
        ``mixer``, ``layers``, ``width``, ``weight_gain``, ``seed``, ...) is a facet: one compiled
        call per value.
    loops : int
        Loops per point (at most; a point stops early once its regime is settled); at least 8.
    transient : int, optional
        Loops before the examined window (default: the window is the last ``loops // 2`` loops,
        at least 8 and at most 260, as in :func:`dynloop.classify`); periods up to
        ``(window - 4) // 4`` are detected, so the window is at least 8 loops.
    tol : float, dict or Tolerances, optional
        Decision tolerances, as for :func:`dynloop.classify`.
    x0 : array_like, optional
        Start state for every point (default: the system's own).
    chunk : int, optional
        Points per chunk (default 1024): the unit of storage, resumption and distribution.
    store : str or Path, optional
        Directory where every finished chunk is written atomically, with a manifest.
    resume : bool
        Skip chunks already in ``store`` (the store must hold the same sweep).
    executor : concurrent.futures.Executor, optional
        Run chunks there (e.g. ``dask.distributed.Client(...).get_executor()``); default: in process.
        A thread pool needs numba's ``omp`` or ``tbb`` threading layer: ``workqueue`` cannot run
        parallel kernels from two threads at once. A ``ProcessPoolExecutor`` that forks (Linux's
        default) is replaced for this sweep by one of as many workers started with ``spawn`` once
        parallel kernels have run in this process (a child forked from a process using GNU
        OpenMP aborts); spawned workers import the main module, so a script needs the usual
        ``if __name__ == "__main__":`` guard. Ctrl-C during an in-process sweep stops it after
        the compiled call under way (its chunks are stored) with ``KeyboardInterrupt``.
    progress : bool
        A tqdm progress bar when tqdm is installed and stderr is a terminal, and the line
        "compiling kernels (first run only, about a minute)" on stderr when numba's cache does not
        hold the kernels yet.
    early_exit : bool
        Stop iterating a point once its regime is settled.
    lyapunov : bool
        Estimate the largest Lyapunov exponent at points without a period (needed to tell chaos
        from quasi-periodicity; otherwise those points are undetermined).
    dtype : {numpy.float64, numpy.float32}

    Returns
    -------
    PhaseDiagram

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> diagram = dynloop.sweep(dynloop.maps.logistic(), {"r": [2.5, 2.8, 3.2, 3.5]}, loops=400,
    ...                         progress=False)
    >>> [dynloop.Regime.from_code(c).value for c in diagram.regimes]
    ['fixed_point', 'fixed_point', 'periodic', 'periodic']
    """
    from .phase import PhaseDiagram
    from .store import ChunkStore

    started = time.perf_counter()
    kind = _system_kind(system)
    axes = _check_axes(system, axes, kind)
    loops, transient, window, max_period = _window(loops, transient)
    chunk = 1024 if chunk is None else check_int("chunk", chunk, minimum=1)
    dtype = _check_dtype(dtype, kind)
    from ..dynamics.classify import _tolerances

    tolerances = _tolerances(tol)
    point_names = [n for n in axes if (n in POINT_FIELDS and axes[n].dtype.kind in "iuf") or kind == "map"]
    tasks = _plan(axes, point_names, chunk)
    x0 = None if x0 is None else np.asarray(x0, dtype=float)
    settings = (loops, window, max_period, tolerances.as_array(), bool(early_exit), bool(lyapunov), dtype, x0,
                False)
    shape = tuple(len(v) for v in axes.values())
    manifest = {"system": _describe(system, kind), "axes": {n: v.tolist() for n, v in axes.items()},
                "loops": loops, "transient": transient, "tolerances": dataclasses.asdict(tolerances),
                "x0": None if x0 is None else x0.tolist(), "chunk": chunk, "early_exit": bool(early_exit),
                "lyapunov": bool(lyapunov), "dtype": np.dtype(dtype).name}
    chunk_store = None if store is None else ChunkStore(store, manifest, len(tasks), resume=resume)
    from . import _kernels as kernels  # the map kernel is compiled (or loaded) when this module is imported

    regimes = np.full(int(np.prod(shape)), Regime.UNDETERMINED.code, dtype=np.int8)
    diagnostics = np.full((regimes.size, len(kernels.DIAGNOSTICS)), np.nan)

    def accept(task, arrays):
        regimes[task.flat] = arrays["codes"]
        diagnostics[task.flat] = arrays["diagnostics"]

    loaded = run_chunks(system, kind, tasks, settings, accept, store=chunk_store, resume=resume,
                        executor=executor, progress=progress)
    import numba

    from .._version import __version__

    # a block's name shows its swept fields as "*": a facet's norm is not the spec's
    name = system.sweep_name(axes)
    meta = {"system": manifest["system"], "system_name": name, "stage_names": list(system.stage_names),
            "versions": {"dynloop": __version__, "numpy": np.__version__, "numba": numba.__version__},
            "seed": getattr(system, "seed", None), "tolerances": manifest["tolerances"], "loops": loops,
            "transient": transient, "max_period": max_period, "seconds": time.perf_counter() - started,
            "lyapunov": bool(lyapunov), "dtype": np.dtype(dtype).name, "early_exit": bool(early_exit),
            "chunks": len(tasks), "chunks_loaded": loaded}
    return PhaseDiagram(axes=dict(axes), regimes=regimes.reshape(shape),
                        diagnostics={name: diagnostics[:, i].reshape(shape)
                                     for i, name in enumerate(kernels.DIAGNOSTICS)}, meta=meta)


def _run_in_process(system, kind, pending, settings, accept, bar):
    """Run the chunks here, a few per compiled call; Ctrl-C stops the sweep between calls."""
    try:
        with _interrupts_between_calls() as check_interrupt:
            # chunks of one facet run together, in calls that double in size while one takes under
            # _CALL_SECONDS: few calls for a fast sweep, and never much work in flight for a slow one
            size = 1
            while pending:
                batch = list(itertools.takewhile(lambda task: task.facet == pending[0].facet, pending[:size]))
                pending = pending[len(batch):]
                started_call = time.perf_counter()
                for task, result in zip(batch, _run_tasks(system, kind, batch, settings)):
                    accept(task, result)
                bar.update(len(batch))
                check_interrupt()  # after the finished call's chunks are stored
                if time.perf_counter() - started_call < _CALL_SECONDS:
                    size *= 2
    finally:
        _WORK.__dict__.clear()  # the work memory served every chunk of this sweep; give it back


@contextlib.contextmanager
def _interrupts_between_calls():
    """Within the block, Ctrl-C is noted and raised as ``KeyboardInterrupt`` by the check it yields.

    A compiled parallel kernel calls back into the interpreter while it runs (numba unpickles
    objects that way), and Python runs a pending signal handler there: a ``KeyboardInterrupt``
    raised inside the kernel surfaced as a ``SystemError`` and lost the call's work. Noting the
    signal instead lets the call finish (an in-process call takes about ``_CALL_SECONDS``), its
    chunks be stored, and the sweep stop with a plain ``KeyboardInterrupt`` at the next check.
    A second Ctrl-C before that check raises at once (kernels compiling on a first run take a
    minute). Only the main thread can handle signals, and a handler of the caller's own is kept:
    elsewhere the check does nothing.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: None
        return
    noted = []

    def note(signum, frame):
        if noted:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        noted.append(signum)

    def check():
        if noted:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield check
        check()  # a Ctrl-C after the last check
    except SystemError as error:
        # the second Ctrl-C landed while a kernel ran: the user wants to stop, not a SystemError
        if not caused_by_interrupt(error):
            raise
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_on_executor(executor, system, kind, pending, settings, accept, bar):
    """Submit every chunk to the executor and take the results as they come."""
    from concurrent.futures import as_completed

    with _fork_safe(executor) as executor:
        futures = {executor.submit(_run_task, system, kind, task, settings): task for task in pending}
        try:
            for future in as_completed(futures):
                accept(futures[future], future.result())
                bar.update(1)
        finally:
            for future in futures:  # after an error or Ctrl-C: nothing more starts
                future.cancel()


@contextlib.contextmanager
def _fork_safe(executor):
    """The executor, or in place of a process pool that would fork this process, a spawning one.

    numba's parallel kernels run on GNU OpenMP threads (its ``omp`` threading layer), and once
    they have run in a process, a child forked from it aborts at its first parallel kernel
    ("fork() called from a process already using GNU OpenMP"). A ``ProcessPoolExecutor`` forks
    its workers by default on Linux. When this process has started such threads, the chunks go to
    a pool of as many workers started with ``spawn`` (same initializer), shut down afterwards;
    results are the same bit for bit, since the kernels do not depend on the process they run in.
    """
    from concurrent.futures import ProcessPoolExecutor

    if not isinstance(executor, ProcessPoolExecutor) or executor._mp_context.get_start_method() != "fork":
        yield executor
        return
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process: forked workers start their own threads
        layer = None
    if layer != "omp":
        yield executor
        return
    import multiprocessing

    with ProcessPoolExecutor(executor._max_workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=executor._initializer, initargs=executor._initargs) as spawning:
        yield spawning


def _kernel_names(system, kind, tasks):
    """The names of the compiled sweep kernels that these chunks call (see ``_run_kernel``)."""
    if kind == "map":
        return {"sweep_map"}
    return {"sweep_block_columns"}


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress_bar(total, initial, wanted, label):
    if not wanted or not sys.stderr.isatty():
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, initial=initial, unit="chunk", desc=label)
