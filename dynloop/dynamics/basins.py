"""Basins of attraction by iteration: which start states reach which attractor.

:func:`state_grid` lays start states on a grid (map coordinates, or a plane or cube of offsets
through a block's state); :func:`basins` iterates every start with the compiled sweep engine
(batched, parallel and resumable like :func:`dynloop.sweep`) and then identifies the attractor
each start reached:

- a start that converged onto a ``p``-periodic orbit (fixed points and cyclic fixed points are
  ``p = 1``) is matched to a known orbit of the same period when its last state lies within the
  stage tolerance of one of that orbit's points (so the same orbit found at any phase is one
  attractor); the first start that matches none has its orbit refined by Newton's method
  (:func:`dynloop.find_cycle`), with multipliers, and becomes a new attractor;
- a bounded start without a period (chaotic or quasi-periodic) is matched by occupancy: its last
  state falls in a box (or a neighbour of a box) that a long run on a known such attractor visits,
  in at most three coordinates (a map's own, or a block's state projected on three fixed
  orthonormal directions);
- a drifting start is matched by the direction of its drift;
- divergent starts are labelled -1 and undetermined ones -2, unless an undetermined start's last
  state lies on an attractor found from another start (it took longer than the budget to settle,
  or its exponent was too uncertain to name the regime).

Starts are examined in grid order, so two runs give the same labels. The basin entropy and the
boundary basin entropy are those of Daza et al. (2016): the grid is cut into boxes of ``box``
cells per side and each box contributes the Gibbs entropy of the outcomes among its cells.

References
----------
A. Daza, A. Wagemakers, B. Georgeot, D. Guéry-Odelin, M. A. F. Sanjuán, "Basin entropy: a new tool
to analyze uncertainty in dynamical systems", Scientific Reports 6, 31416 (2016).
"""

__all__ = ["state_grid", "basins", "BasinMap", "Attractor", "StateGrid"]

import hashlib
import math
import numbers
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .._errors import check_int, invalid
from ..systems.base import check_system
from .regimes import Regime

_FORMAT = "dynloop.BasinMap"
_VERSION = 1
DIVERGENT = -1
UNDETERMINED = -2
_CONVERGED = (Regime.VANISHING, Regime.CYCLIC, Regime.FIXED_POINT, Regime.PERIODIC)
_WANDERING = (Regime.CHAOTIC, Regime.QUASIPERIODIC)
_DEFAULT_BOX = 5
_OCCUPANCY_BOXES = 48      # boxes along the widest side of a wandering attractor's projected cloud
_OCCUPANCY_LOOPS = {"map": 4000, "block": 600}
_CLOUD_POINTS = 1000       # states of a run on a wandering attractor kept as its points
_DRIFT_COS = 0.99          # two drifting starts with directions this close drift along the same line
_CHUNK = 1024


# ----------------------------------------------------------------------------- start states
class StateGrid(np.ndarray):
    """Start states on a grid (an ``ndarray`` of shape ``grid_shape + state_shape``) that remembers its axes.

    :func:`state_grid` returns one; :func:`basins` reads ``axes`` (names and values, for labels
    and figures), and, for a plane through a block's state, ``center`` and ``directions`` (to
    place the attractors found in the plane), or, for a map, ``coordinates`` (the state coordinate
    each axis sets). Any array of the right shape serves as starts too.
    """

    def __array_finalize__(self, obj):
        self.axes = getattr(obj, "axes", None)
        self.center = getattr(obj, "center", None)
        self.directions = getattr(obj, "directions", None)
        self.coordinates = getattr(obj, "coordinates", None)


def _variable_names(system):
    symbols = getattr(system, "state_symbols", None)
    return [str(s) for s in symbols] if symbols else []


def _check_axis(field, values):
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iuf":
        raise invalid(field, values, "expected a non-empty 1-D sequence of numbers")
    array = array.astype(float)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise invalid(f"{field}[{bad[0]}]", array[bad[0]].item(), "every value of an axis must be finite")
    return array


def state_grid(system, axes, *, center=None, directions=None, seed=0):
    """Start states on a grid: the result has shape ``grid_shape + state_shape``.

    Parameters
    ----------
    system : Map, BlockSpec or AffineLoop
    axes : mapping
        For a map: state coordinate (its index, or the variable's name for a map with named
        variables) to the values it takes; the other coordinates keep ``center``'s values. For a
        block or an affine loop: up to three names of your choice to offsets along orthonormal
        directions through ``center``.
    center : array_like, optional
        The state the grid passes through (default: the system's start state).
    directions : array_like, optional
        Blocks and affine loops: one direction per axis, shape ``(len(axes), *state_shape)``,
        used as given. By default seeded random directions, orthonormalised and each scaled to the
        norm of ``center`` (the state's RMS per entry; unit RMS when ``center`` is zero), so an
        offset of 1 moves the state by its own size.
    seed : int
        Seeds the random directions.

    Returns
    -------
    StateGrid
        An ``ndarray`` with ``axes`` (and ``center``, ``directions`` for blocks) attached.

    Examples
    --------
    >>> import dynloop
    >>> starts = dynloop.state_grid(dynloop.maps.henon(), {"x": [-1, 0, 1], "y": [0.0, 0.5]})
    >>> starts.shape
    (3, 2, 2)
    >>> starts[2, 1].tolist()
    [1.0, 0.5]
    >>> dynloop.state_grid(dynloop.BlockSpec(width=4, tokens=2), {"a": [-1, 1], "b": [0, 1, 2]}).shape
    (2, 3, 2, 4)
    """
    check_system(system)
    if not isinstance(axes, dict) or not axes:
        raise invalid("axes", axes, "expected a non-empty mapping from an axis name to a 1-D array of values")
    seed = check_int("seed", seed, minimum=0)
    shape = tuple(system.state_shape)
    center = system.check_state(system.start_state(system.resolve_params(None)) if center is None else center,
                                "center")
    if not np.all(np.isfinite(center)):
        raise invalid("center", "…", "every entry must be finite")
    values = {}
    for name, axis in axes.items():
        values[name] = _check_axis(f"axes[{name!r}]", axis)
    grid_shape = tuple(v.size for v in values.values())
    if system.kind == "map":
        if directions is not None:
            raise invalid("directions", "…", "a map's axes are its coordinates: give no directions")
        names = _variable_names(system)
        coordinates = []
        for name in values:
            if isinstance(name, (numbers.Integral, np.integer)) and not isinstance(name, bool) \
                    and 0 <= name < system.dim:
                coordinates.append(int(name))
            elif isinstance(name, str) and name in names:
                coordinates.append(names.index(name))
            else:
                allowed = f"a coordinate index 0 … {system.dim - 1}"
                if names:
                    allowed += " or a variable name: " + ", ".join(names)
                raise invalid("axes", name, f"not a coordinate of {system.name}: expected {allowed}")
        if len(set(coordinates)) != len(coordinates):
            raise invalid("axes", list(values), "each coordinate may appear once")
        grid = np.empty(grid_shape + shape)
        grid[...] = center
        mesh = np.meshgrid(*values.values(), indexing="ij")
        for coordinate, offsets in zip(coordinates, mesh):
            grid[..., coordinate] = offsets
        out = grid.view(StateGrid)
        out.axes, out.center, out.directions, out.coordinates = values, center, None, coordinates
        return out
    if len(values) > 3:
        raise invalid("axes", list(values), "expected at most 3 axes (offsets along 3 directions)")
    n = center.size
    if directions is None:
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.standard_normal((n, len(values))))
        size = float(np.linalg.norm(center)) or math.sqrt(n)
        flat = (q.T * size)
    else:
        flat = np.asarray(directions, dtype=float)
        if flat.shape != (len(values),) + shape:
            raise invalid("directions", f"array of shape {flat.shape}",
                          f"expected shape {(len(values),) + shape}: one direction per axis")
        flat = flat.reshape(len(values), n)
        if not np.all(np.isfinite(flat)) or np.any(np.linalg.norm(flat, axis=1) == 0):
            raise invalid("directions", "…", "every direction must be finite and non-zero")
    mesh = np.meshgrid(*values.values(), indexing="ij")
    offsets = np.stack([m.ravel() for m in mesh], axis=1)            # (points, axes)
    grid = (center.ravel()[None, :] + offsets @ flat).reshape(grid_shape + shape)
    out = grid.view(StateGrid)
    out.axes, out.center, out.directions = values, center, flat.reshape((len(values),) + shape)
    return out


# ----------------------------------------------------------------------------- results
@dataclass
class Attractor:
    """One attractor that starts of a :class:`BasinMap` reach.

    Attributes
    ----------
    regime : Regime
        Its regime (for a wandering attractor, that of the first start that reached it).
    period : int or None
        Loops per repeat of a periodic orbit (1 for fixed points and cyclic fixed points).
    points : ndarray, shape (p, *state_shape)
        The states entering each loop of the orbit, refined by Newton's method where it converged
        (an orbit's first point is the one its first start reached); for a wandering attractor,
        up to 1000 states of a run on it from its first start's last state; for a drift, its unit
        direction.
    stage_points : ndarray or None
        For a block, the state after every stage of every loop of the orbit (the per-layer points).
    multipliers : ndarray or None
        Eigenvalues of the orbit's Jacobian, largest modulus first (periodic orbits only).
    start : int
        Flat grid index of the first start that reached it.
    refined : bool
        Whether Newton's method converged on the orbit.
    """

    regime: Regime
    period: int | None
    points: np.ndarray
    stage_points: np.ndarray | None = None
    multipliers: np.ndarray | None = None
    start: int = 0
    refined: bool = False
    # matching data, not part of the description: occupied boxes of a wandering attractor
    _occupancy: dict | None = field(default=None, repr=False)

    @property
    def stable(self):
        """Whether every multiplier lies inside the unit circle (None without multipliers)."""
        if self.multipliers is None or self.multipliers.size == 0:
            return None
        return bool(np.abs(self.multipliers[0]) < 1.0)

    def describe(self):
        """One line: the regime, the period and where the orbit is."""
        words = self.regime.value.replace("_", " ")
        if self.period and self.period > 1:
            words += f", period {self.period}"
        if self.regime in _CONVERGED:
            flat = self.points.reshape(self.points.shape[0], -1)
            if flat.shape[1] <= 3:
                shown = ("(" + ", ".join(f"{v:.4g}" for v in row) + ")" for row in flat[:4])
                words += " at " + ", ".join(shown)
                if flat.shape[0] > 4:
                    words += ", …"
            else:
                words += f", |x| = {np.linalg.norm(flat, axis=1).mean():.4g}"
            if self.multipliers is not None and self.multipliers.size:
                words += f", |μ|max = {abs(self.multipliers[0]):.3g}"
        return words


@dataclass
class BasinMap:
    """Which attractor each start state of a grid reaches: the result of :func:`basins`.

    Attributes
    ----------
    labels : ndarray of int, grid-shaped
        The index of the attractor in :attr:`attractors` each start reaches; -1 for divergent,
        -2 for undetermined.
    attractors : list of Attractor
    regimes : ndarray of int8, grid-shaped
        The regime code each start was classified with (:attr:`dynloop.Regime.code`).
    axes : dict
        Axis name to values (from a :class:`StateGrid`; grid indices for a plain array).
    meta : dict
        System name, loops, tolerances, box size, run time.

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> bistable = dynloop.Map(lambda x, p: np.array([2.0 * np.tanh(x[0])]), 1, name="bistable")
    >>> result = dynloop.basins(bistable, dynloop.state_grid(bistable, {0: [-1.5, -0.5, 0.5, 1.5]}),
    ...                         progress=False)
    >>> result.labels.tolist()
    [0, 0, 1, 1]
    >>> [round(float(a.points[0, 0]), 4) for a in result.attractors]
    [-1.915, 1.915]
    """

    labels: np.ndarray
    attractors: list
    regimes: np.ndarray
    axes: dict
    meta: dict = field(default_factory=dict)
    center: np.ndarray | None = None
    directions: np.ndarray | None = None

    @property
    def shape(self):
        """The grid's shape."""
        return self.labels.shape

    @property
    def box(self):
        """Cells per side of the boxes of the basin entropies."""
        return int(self.meta.get("box", _DEFAULT_BOX))

    @property
    def fractions(self):
        """Share of the starts per outcome: attractor index (and -1 divergent, -2 undetermined) to fraction.

        Only outcomes that occur are listed.
        """
        values, counts = np.unique(self.labels, return_counts=True)
        order = np.argsort(np.where(values < 0, len(self.attractors) - values, values))
        return {int(values[i]): float(counts[i] / self.labels.size) for i in order}

    def entropies(self, box=None):
        """``(basin_entropy, boundary_basin_entropy, boundary_fraction)`` with boxes of ``box`` cells a side.

        The grid is cut into boxes of ``box`` cells along every axis (cells beyond the last whole
        box are left out; an axis shorter than ``box`` is one box). In box ``i`` the outcomes'
        shares ``p_ij`` give ``S_i = -Σ_j p_ij ln p_ij``; the basin entropy is the mean of ``S_i``
        over all boxes, the boundary basin entropy its mean over the boxes with more than one
        outcome, and the boundary fraction the share of such boxes (so ``S_b = fraction · S_bb``).
        Divergent and undetermined starts count as outcomes of their own.
        """
        box = _DEFAULT_BOX if box is None else check_int("box", box, minimum=1)
        labels = self.labels
        sides = [min(box, n) for n in labels.shape]
        counts = [n // s for n, s in zip(labels.shape, sides)]
        trimmed = labels[tuple(slice(0, c * s) for c, s in zip(counts, sides))]
        shape = []
        for c, s in zip(counts, sides):
            shape += [c, s]
        blocks = trimmed.reshape(shape)
        ndim = labels.ndim
        blocks = blocks.transpose([2 * i for i in range(ndim)] + [2 * i + 1 for i in range(ndim)])
        blocks = blocks.reshape(int(np.prod(counts)), -1)
        entropies = np.zeros(blocks.shape[0])
        for value in np.unique(labels):
            share = (blocks == value).mean(axis=1)
            present = share > 0
            entropies[present] -= share[present] * np.log(share[present])
        boundary = entropies > 0
        s_bb = float(entropies[boundary].mean()) if boundary.any() else 0.0
        return float(entropies.mean()), s_bb, float(boundary.mean())

    @property
    def basin_entropy(self):
        """Daza et al.'s basin entropy ``S_b``, boxes of :attr:`box` cells a side (see :meth:`entropies`)."""
        return self.entropies(self.box)[0]

    @property
    def boundary_basin_entropy(self):
        """Daza et al.'s boundary basin entropy ``S_bb`` with boxes of :attr:`box` cells a side."""
        return self.entropies(self.box)[1]

    @property
    def boundary_fraction(self):
        """Share of the boxes (of :attr:`box` cells a side) that hold more than one outcome."""
        return self.entropies(self.box)[2]

    def outcome_names(self):
        """A short description of every outcome that occurs, by label."""
        names = {}
        for label in self.fractions:
            if label == DIVERGENT:
                names[label] = "divergent"
            elif label == UNDETERMINED:
                names[label] = "undetermined"
            else:
                names[label] = f"A{label}: " + self.attractors[label].describe()
        return names

    def summary(self):
        """A description in words: the grid, every attractor with its basin's share, the entropies."""
        axes = ", ".join(f"{name} {values.min():.4g} … {values.max():.4g} ({values.size})"
                         for name, values in self.axes.items())
        s_b, s_bb, fraction = self.entropies(self.box)
        lines = [f"Basins of {self.meta.get('system_name', 'a system')} on a "
                 f"{' × '.join(map(str, self.shape))} grid of start states ({axes})",
                 f"{len(self.attractors)} attractor{'s' * (len(self.attractors) != 1)} found "
                 f"(loops per start at most {self.meta.get('loops')}, "
                 f"{self.meta.get('seconds', 0.0):.2f} s):"]
        names = self.outcome_names()
        for label, share in self.fractions.items():
            lines.append(f"  {100 * share:6.2f} %  {names[label]}")
        lines.append(f"Basin entropy S_b = {s_b:.4f}, boundary basin entropy S_bb = {s_bb:.4f}, boundary "
                     f"boxes {100 * fraction:.1f} % (boxes of {self.box} cells a side"
                     + ("; S_bb > ln 2 = 0.693 is a sufficient sign of a fractal boundary)"
                        if s_bb > math.log(2) else ")"))
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def __repr__(self):
        return (f"BasinMap(shape={self.shape}, attractors={len(self.attractors)}, "
                f"fractions={ {k: round(v, 4) for k, v in self.fractions.items()} })")

    def _repr_html_(self):
        from html import escape

        return "<pre>" + escape(self.summary()) + "</pre>"

    def plot(self, path=None, *, ax=None):
        """Draw the basins: one colour per attractor, a legend that says what each attractor is.

        A 1-D grid is drawn as a strip, a 2-D grid as an image over its two axes, a 3-D grid as
        its middle slice along the last axis. Attractor points that lie in the drawn plane (a
        map's coordinates, or a block's orbit projected on the plane's directions) are marked.

        Parameters
        ----------
        path : str or Path, optional
            Also write the figure there.
        ax : matplotlib Axes, optional
            Draw into it (no legend outside).

        Returns
        -------
        matplotlib.figure.Figure
        """
        from ..plotting import plot_basins

        return plot_basins(self, path, ax=ax)

    def save(self, path):
        """Write the map to one compressed ``.npz`` file (arrays and a JSON header); :meth:`load` reads it.

        Examples
        --------
        >>> import numpy as np, os, tempfile, dynloop
        >>> bistable = dynloop.Map(lambda x, p: np.array([2.0 * np.tanh(x[0])]), 1, name="bistable")
        >>> result = dynloop.basins(bistable, dynloop.state_grid(bistable, {0: [-1.0, 1.0]}), progress=False)
        >>> path = os.path.join(tempfile.mkdtemp(), "basins.npz")
        >>> result.save(path)
        >>> dynloop.BasinMap.load(path).labels.tolist()
        [0, 1]
        """
        from ..sweep.phase import _write_npz

        header = {"format": _FORMAT, "version": _VERSION, "meta": self.meta, "axes": list(self.axes),
                  "attractors": [{"regime": a.regime.value, "period": a.period, "start": a.start,
                                  "refined": a.refined} for a in self.attractors]}
        arrays = {"labels": self.labels, "regimes": self.regimes}
        arrays.update({f"axis_{i}": np.asarray(v) for i, v in enumerate(self.axes.values())})
        for i, a in enumerate(self.attractors):
            arrays[f"points_{i}"] = a.points
            if a.stage_points is not None:
                arrays[f"stage_points_{i}"] = a.stage_points
            if a.multipliers is not None:
                arrays[f"multipliers_{i}"] = a.multipliers
        if self.center is not None:
            arrays["center"] = self.center
        if self.directions is not None:
            arrays["directions"] = self.directions
        _write_npz(path, header, arrays)

    @classmethod
    def load(cls, path):
        """Read a map written by :meth:`save`."""
        from ..sweep.phase import _read_npz

        header, arrays = _read_npz(path, _FORMAT)
        attractors = [Attractor(regime=Regime(entry["regime"]), period=entry["period"],
                                points=arrays[f"points_{i}"], stage_points=arrays.get(f"stage_points_{i}"),
                                multipliers=arrays.get(f"multipliers_{i}"), start=entry["start"],
                                refined=entry["refined"])
                      for i, entry in enumerate(header["attractors"])]
        axes = {name: arrays[f"axis_{i}"] for i, name in enumerate(header["axes"])}
        return cls(labels=arrays["labels"], attractors=attractors, regimes=arrays["regimes"], axes=axes,
                   meta=header["meta"], center=arrays.get("center"), directions=arrays.get("directions"))


# ----------------------------------------------------------------------------- the computation
def _check_starts(system, starts):
    state_shape = tuple(system.state_shape)
    array = np.asarray(starts)
    if array.dtype.kind not in "iuf":
        raise invalid("starts", f"array of dtype {array.dtype}", "expected an array of numbers")
    k = len(state_shape)
    if array.ndim <= k or tuple(array.shape[-k:]) != state_shape:
        raise invalid("starts", f"array of shape {array.shape}",
                      f"expected shape grid_shape + {state_shape} (the state shape of {system.name}), "
                      "e.g. from dynloop.state_grid")
    array = np.asarray(array, dtype=float)
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        raise invalid(f"starts[{', '.join(map(str, bad[0]))}]", array[tuple(bad[0])].item(),
                      "every start state must be finite")
    return array


def _grid_axes(starts, grid_shape):
    axes = getattr(starts, "axes", None)
    if axes is not None and tuple(len(v) for v in axes.values()) == grid_shape:
        return {str(name): np.asarray(values, dtype=float) for name, values in axes.items()}
    return {f"axis {i}": np.arange(n, dtype=float) for i, n in enumerate(grid_shape)}


def basins(system, starts, *, params=None, loops=None, tol=None, progress=True, executor=None, store=None):
    """Iterate every start state of a grid and say which attractor it reaches.

    Parameters
    ----------
    system : Map or BlockSpec
    starts : array_like, shape ``grid_shape + state_shape``
        Start states, e.g. from :func:`state_grid`.
    params : dict, optional
        Map parameter overrides, by name.
    loops : int, optional
        Loops per start at most (a start stops once its regime is settled); default 1000. Its
        last ``min(loops // 2, 260)`` loops are examined, as in :func:`dynloop.sweep`.
    tol : float, dict or Tolerances, optional
        Decision tolerances, as for :func:`dynloop.classify`; two states are one orbit point when
        closer than the stage tolerance times their scale.
    progress : bool
        A progress bar (tqdm) on a terminal.
    executor : concurrent.futures.Executor, optional
        Run chunks of starts there, as :func:`dynloop.sweep` does.
    store : str or Path, optional
        Directory where every finished chunk of starts is written; an interrupted run continues
        from it.

    Returns
    -------
    BasinMap

    Notes
    -----
    Chaos and quasi-periodicity are told apart by the largest Lyapunov exponent, which the
    iteration estimates for starts without a period. Labels do not depend on the executor, the
    chunking or the thread count.

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> square = dynloop.Map(lambda x, p: x * x, 1, name="square")
    >>> starts = dynloop.state_grid(square, {0: [-2.0, -0.5, 0.5, 2.0]})
    >>> result = dynloop.basins(square, starts, progress=False)
    >>> result.labels.tolist(), result.attractors[0].regime.value
    ([-1, 0, 0, -1], 'fixed_point')
    """
    from ..sweep.engine import _Task, _describe, _window, run_chunks
    from ..sweep.store import ChunkStore
    from .classify import _tolerances

    started = time.perf_counter()
    check_system(system)
    if system.kind not in ("map", "block"):
        raise invalid("system", type(system).__name__,
                      "basins take a dynloop.Map or a dynloop.BlockSpec (an affine loop has at most one "
                      "attractor: use dynloop.classify)")
    kind = system.kind
    resolved = system.resolve_params(params)
    values_row = (np.array(list(resolved.values()), dtype=float) if kind == "map" else np.zeros(0))
    names = list(resolved) if kind == "map" else []
    array = _check_starts(system, starts)
    state_shape = tuple(system.state_shape)
    grid_shape = array.shape[:array.ndim - len(state_shape)]
    flat_starts = np.ascontiguousarray(array.reshape(-1, *state_shape))
    n_points = flat_starts.shape[0]
    loops, transient, window, max_period = _window(1000 if loops is None else loops, None)
    tolerances = _tolerances(tol)
    settings = (loops, window, max_period, tolerances.as_array(), True, True, np.float64, None, True)
    tasks = [_Task(i, np.arange(lo, min(lo + _CHUNK, n_points)), {}, names,
                   np.tile(values_row, (min(lo + _CHUNK, n_points) - lo, 1)),
                   flat_starts[lo:lo + _CHUNK])
             for i, lo in enumerate(range(0, n_points, _CHUNK))]
    chunk_store = None
    if store is not None:
        manifest = {"kind": "basins", "system": _describe(system, kind), "params": resolved or {},
                    "starts": {"shape": list(array.shape),
                               "sha256": hashlib.sha256(flat_starts.tobytes()).hexdigest()},
                    "loops": loops, "tolerances": asdict(tolerances), "chunk": _CHUNK}
        chunk_store = ChunkStore(store, manifest, len(tasks))
    codes = np.empty(n_points, dtype=np.int8)
    finals = np.empty((n_points, system.state_size))
    period = np.zeros(n_points, dtype=np.int64)

    def accept(task, arrays):
        codes[task.flat] = arrays["codes"]
        finals[task.flat] = arrays["finals"]
        found = arrays["diagnostics"][:, 0]  # "period"
        period[task.flat] = np.where(np.isfinite(found), found, 0).astype(np.int64)

    loaded = run_chunks(system, kind, tasks, settings, accept, store=chunk_store, executor=executor,
                        progress=progress, label="basins")
    with np.errstate(over="ignore", invalid="ignore"):  # divergent starts' last states are huge or not finite
        scales = np.maximum(np.linalg.norm(finals, axis=1),
                            np.linalg.norm(flat_starts.reshape(n_points, -1), axis=1))
        scales = np.maximum(scales, 1e-300)
        labels, attractors = _identify(system, params, codes, period, finals, scales, tolerances)
    meta = {"system_name": system.name, "kind": kind, "params": resolved or {}, "loops": loops,
            "window": window,
            "tolerances": asdict(tolerances), "box": _DEFAULT_BOX, "seconds": time.perf_counter() - started,
            "chunks": len(tasks), "chunks_loaded": loaded}
    coordinates = getattr(starts, "coordinates", None)
    if kind == "map" and coordinates is not None and len(coordinates) == len(grid_shape):
        meta["coordinates"] = list(coordinates)
    return BasinMap(labels=labels.reshape(grid_shape), attractors=attractors,
                    regimes=codes.reshape(grid_shape),
                    axes=_grid_axes(starts, grid_shape), meta=meta, center=getattr(starts, "center", None),
                    directions=getattr(starts, "directions", None))


def _identify(system, params, codes, period, finals, scales, tolerances):
    """Labels of every start and the attractors, examined in grid order (see the module docstring)."""
    labels = np.full(codes.shape[0], UNDETERMINED, dtype=np.int64)
    labels[codes == Regime.DIVERGENT.code] = DIVERGENT
    attractors = []
    converged = np.isin(codes, [r.code for r in _CONVERGED]) & (period > 0)
    for p in np.unique(period[converged]):
        members = np.flatnonzero(converged & (period == p))
        _match_orbits(system, params, int(p), members, codes, finals, scales, tolerances, labels, attractors)
    wandering = np.flatnonzero(np.isin(codes, [r.code for r in _WANDERING]))
    if wandering.size:
        _match_wandering(system, params, wandering, codes, finals, labels, attractors)
    drifting = np.flatnonzero(codes == Regime.DRIFTING.code)
    if drifting.size:
        _match_drift(system, drifting, finals, labels, attractors)
    _place_undetermined(system, codes, finals, scales, tolerances, labels, attractors)
    return labels, attractors


def _place_undetermined(system, codes, finals, scales, tolerances, labels, attractors):
    """Undetermined starts whose last state lies on a known attractor reach it (they only took longer
    than the budget to show it, or their exponent was uncertain); the others stay -2."""
    pending = np.flatnonzero((codes == Regime.UNDETERMINED.code) & np.all(np.isfinite(finals), axis=1))
    if not pending.size:
        return
    projection = _projection(finals.shape[1])
    for index, attractor in enumerate(attractors):
        if attractor.regime in _CONVERGED:
            on = _orbit_distances(finals[pending], scales[pending],
                                  attractor.points.reshape(attractor.period, -1)) <= tolerances.stage
        elif attractor._occupancy is not None:
            on = _inside(attractor._occupancy, finals[pending] @ projection.T)
        else:
            continue
        labels[pending[on]] = index
        pending = pending[~on]


def _orbit_distances(states, scales, orbit):
    """Distance of every state to the nearest point of ``orbit`` (rows, flat), relative to its scale."""
    best = np.full(states.shape[0], np.inf)
    for point in orbit:
        best = np.minimum(best, np.linalg.norm(states - point, axis=1))
    return best / scales


def _match_orbits(system, params, p, members, codes, finals, scales, tolerances, labels, attractors):
    from .orbits import find_cycle

    shape = tuple(system.state_shape)
    pending = members
    while pending.size:
        first = int(pending[0])
        cycle = find_cycle(system, p, finals[first].reshape(shape), params=params)
        orbit = cycle.loop_points.reshape(p, -1)
        at_orbit = cycle.converged and _orbit_distances(finals[first][None], scales[first][None], orbit)[0] \
            <= max(100 * tolerances.stage, 1e-6)
        if not at_orbit:  # Newton went elsewhere: the orbit the iteration reached, as it is
            orbit = _iterate(system, params, finals[first], p)
        # the same orbit found again at another phase, or from a start that matched no point of it
        same = next((i for i, a in enumerate(attractors) if a.period == p and a.regime in _CONVERGED
                     and _orbit_distances(orbit[:1], scales[first][None], a.points.reshape(p, -1))[0]
                     <= tolerances.stage), None)
        if same is None:
            same = len(attractors)
            attractors.append(Attractor(
                regime=Regime.from_code(int(codes[first])), period=p, points=orbit.reshape((p,) + shape),
                stage_points=cycle.stage_points if (at_orbit and system.kind == "block") else None,
                multipliers=cycle.multipliers if at_orbit else None, start=first, refined=bool(at_orbit)))
        known = attractors[same].points.reshape(p, -1)
        close = _orbit_distances(finals[pending], scales[pending], known) <= tolerances.stage
        close[0] = True
        labels[pending[close]] = same
        pending = pending[~close]


def _iterate(system, params, state, steps):
    """``steps`` loop states from ``state`` on (the first is ``state``), flat rows."""
    from .simulate import simulate

    shape = tuple(system.state_shape)
    run = simulate(system, max(steps - 1, 0), x0=state.reshape(shape), params=params, record="all")
    return run.loop_states.reshape(run.loop_states.shape[0], -1)[:steps].copy()


def _projection(n):
    """Coordinates in which wandering attractors are compared: the state itself up to 3 numbers, else
    three fixed orthonormal directions (seeded, the same for every call)."""
    if n <= 3:
        return np.eye(n)
    q, _ = np.linalg.qr(np.random.default_rng(20161).standard_normal((n, 3)))
    return q.T


def _match_wandering(system, params, members, codes, finals, labels, attractors):
    n = finals.shape[1]
    projection = _projection(n)
    projected = finals[members] @ projection.T
    pending = np.arange(members.size)
    loops = _OCCUPANCY_LOOPS["map" if system.kind == "map" else "block"]
    while pending.size:
        first = int(members[pending[0]])
        run = _iterate(system, params, finals[first], loops)
        cloud = run @ projection.T
        if not np.all(np.isfinite(cloud)):
            cloud = cloud[np.all(np.isfinite(cloud), axis=1)]
        low, high = cloud.min(axis=0), cloud.max(axis=0)
        size = max(float((high - low).max()), 1e-12) / _OCCUPANCY_BOXES
        boxes = np.unique(np.floor((cloud - low) / size).astype(np.int64), axis=0)
        offsets = np.stack(np.meshgrid(*[[-1, 0, 1]] * cloud.shape[1], indexing="ij"), -1).reshape(-1, 1,
                                                                                                 cloud.shape[1])
        occupied = np.unique(_box_keys((boxes[None] + offsets).reshape(-1, cloud.shape[1])))
        occupancy = {"low": low, "size": size, "keys": occupied}
        same = next((i for i, a in enumerate(attractors) if a._occupancy is not None
                     and _inside(a._occupancy, cloud).mean() > 0.5), None)
        if same is None:
            same = len(attractors)
            states = run[::max(1, loops // _CLOUD_POINTS)]
            attractors.append(Attractor(regime=Regime.from_code(int(codes[first])), period=None,
                                        points=states.reshape((-1,) + tuple(system.state_shape)),
                                        start=first, _occupancy=occupancy))
        inside = _inside(attractors[same]._occupancy, projected[pending])
        inside[0] = True
        labels[members[pending[inside]]] = same
        pending = pending[~inside]


def _box_keys(boxes):
    """One integer per box of up to 3 integer coordinates (each within ±2^20 of the cloud's corner)."""
    shifted = np.clip(boxes, -(1 << 20), (1 << 20) - 1) + (1 << 20)
    keys = np.zeros(len(boxes), dtype=np.int64)
    for column in range(boxes.shape[1]):
        keys = (keys << 21) | shifted[:, column]
    return keys


def _inside(occupancy, points):
    """Whether each projected point (rows) falls in a marked box of a wandering attractor."""
    with np.errstate(invalid="ignore", over="ignore"):
        boxes = np.floor((points - occupancy["low"]) / occupancy["size"])
    finite = np.all(np.isfinite(boxes), axis=1)
    inside = np.zeros(len(points), dtype=bool)
    inside[finite] = np.isin(_box_keys(boxes[finite].astype(np.int64)), occupancy["keys"])
    return inside


def _match_drift(system, members, finals, labels, attractors):
    directions = finals[members] / np.maximum(np.linalg.norm(finals[members], axis=1), 1e-300)[:, None]
    pending = np.arange(members.size)
    while pending.size:
        first = pending[0]
        close = directions[pending] @ directions[first] >= _DRIFT_COS
        close[0] = True
        labels[members[pending[close]]] = len(attractors)
        attractors.append(Attractor(regime=Regime.DRIFTING, period=None,
                                    points=directions[first].reshape((1,) + tuple(system.state_shape)).copy(),
                                    start=int(members[first])))
        pending = pending[~close]
