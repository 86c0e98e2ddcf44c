"""The results of a sweep: :class:`PhaseDiagram` (a regime per grid point) and :class:`OrbitDiagram`.

Both are plain containers of numpy arrays plus a JSON-able ``meta`` dictionary; they summarise
themselves in words, draw themselves (:mod:`dynloop.plotting`) and round-trip exactly through one
``.npz`` file each (no pickles: the arrays are stored as they are, the rest as a JSON header).
"""

__all__ = ["PhaseDiagram", "OrbitDiagram", "near_changes"]

import json
import math
from dataclasses import dataclass, field

import numpy as np

from .._errors import did_you_mean, invalid
from .._json import jsonable
from ..dynamics.regimes import Regime
from ..plotting import _ByRegime

_PHASE_FORMAT = "dynloop.PhaseDiagram"
_ORBIT_FORMAT = "dynloop.OrbitDiagram"
_FILE_VERSION = 1


def _axis_kind(values):
    return "categorical" if values.dtype.kind in "US" else "numeric"


def _format_value(value):
    return str(value) if isinstance(value, str) else f"{float(value):.4g}"


def _spacing(values):
    """'evenly spaced', 'log-spaced' or 'unevenly spaced' for a numeric axis of 3+ values."""
    if values.size < 3:
        return ""
    v = np.sort(values.astype(float))
    steps = np.diff(v)
    if np.allclose(steps, steps[0], rtol=1e-6, atol=1e-12 * max(1.0, abs(v).max())):
        return "evenly spaced"
    if v[0] > 0 and np.allclose(np.diff(np.log(v)), math.log(v[1] / v[0]), rtol=1e-6):
        return "log-spaced"
    return "unevenly spaced"


def _describe_axis(values):
    if _axis_kind(values) == "categorical":
        shown = list(values) if values.size <= 8 else list(values[:3]) + ["…"] + list(values[-2:])
        return ", ".join(shown) + f" (categorical, {values.size} value{'s' * (values.size != 1)})"
    if values.size == 1:
        return f"{_format_value(values[0])} (1 value)"
    spacing = _spacing(values)
    return (f"{_format_value(values.min())} … {_format_value(values.max())}, {values.size} values"
            + (f", {spacing}" if spacing else ""))


def _write_npz(path, header, arrays):
    with open(path, "wb") as handle:
        np.savez_compressed(handle, header=np.array(json.dumps(header, default=jsonable)), **arrays)


def _read_npz(path, expected):
    with np.load(path, allow_pickle=False) as data:
        if "header" not in data.files:
            raise ValueError(f"{str(path)!r} is not a {expected} file (no header)")
        header = json.loads(str(data["header"]))
        if header.get("format") != expected:
            raise ValueError(f"{str(path)!r} holds {header.get('format')!r}, not a {expected}")
        if header.get("version", 0) > _FILE_VERSION:
            raise ValueError(f"{str(path)!r} was written by a newer dynloop "
                             f"(file version {header['version']})")
        arrays = {name: data[name] for name in data.files if name != "header"}
    return header, arrays


def near_changes(values, band=1, axes=None):
    """Cells within ``band`` cells of a place where ``values`` differs between neighbours.

    Parameters
    ----------
    values : ndarray
        A value per grid cell (regime codes, a diagnostic, signs); NaN next to NaN is no change.
    band : int
        1 (or less): the cells on either side of a change; each further unit adds the cells one
        more step away along an axis (so the band is ``band - 1`` steps wide, counted along the axes,
        around those cells).
    axes : sequence of int, optional
        The axes along which neighbours are compared and the band grows (default: every axis).

    Returns
    -------
    ndarray of bool
        The shape of ``values``.

    Examples
    --------
    >>> import numpy as np
    >>> from dynloop.sweep.phase import near_changes
    >>> near_changes(np.array([0, 0, 0, 1, 1, 1, 1])).astype(int)
    array([0, 0, 1, 1, 0, 0, 0])
    >>> near_changes(np.array([0, 0, 0, 1, 1, 1, 1]), band=2).astype(int)
    array([0, 1, 1, 1, 1, 0, 0])
    """
    values = np.asarray(values)
    axes = range(values.ndim) if axes is None else list(axes)

    def shifted(k, upper):
        return tuple(slice(1, None) if j == k and upper else slice(0, -1) if j == k else slice(None)
                     for j in range(values.ndim))

    out = np.zeros(values.shape, dtype=bool)
    for k in axes:
        if values.shape[k] < 2:
            continue
        a, b = values[shifted(k, True)], values[shifted(k, False)]
        differ = a != b
        if values.dtype.kind in "fc":
            differ &= ~(np.isnan(a) & np.isnan(b))
        out[shifted(k, True)] |= differ
        out[shifted(k, False)] |= differ
    for _ in range(max(band - 1, 0)):
        grown = out.copy()
        for k in axes:
            grown[shifted(k, True)] |= out[shifted(k, False)]
            grown[shifted(k, False)] |= out[shifted(k, True)]
        out = grown
    return out


def _valid_codes(codes):
    """Whether every entry of ``codes`` is a declared regime code (``Regime.code``, not an enum position)."""
    codes = np.asarray(codes)
    return bool(np.isin(codes, Regime.codes()).all()) if codes.size else True


def _check_codes(codes):
    """Refuse an array of regime codes holding a value that is no regime's code."""
    if not _valid_codes(codes):
        bad = sorted({int(c) for c in np.unique(codes)} - set(Regime.codes()))
        allowed = "codes are " + ", ".join(map(str, Regime.codes())) + " (Regime.from_code)"
        raise invalid("regimes", f"<codes including {bad}>", allowed)


def _count_codes(codes):
    """Points per regime code: an array indexed by ``Regime.code``."""
    return np.bincount(np.asarray(codes).ravel().astype(np.intp), minlength=max(Regime.codes()) + 1)


@dataclass(eq=False)
class PhaseDiagram:
    """The regime of a system at every point of a parameter grid, with per-point diagnostics.

    Attributes
    ----------
    axes : dict
        Ordered mapping from an axis name (a BlockSpec field or map parameter) to a 1-D array of
        its values: numeric (float or int) or categorical (strings). The grid is their product.
    regimes : ndarray of int8
        Shape ``tuple(len(v) for v in axes.values())``: a :class:`~dynloop.Regime` code per point
        (``Regime.from_code``).
    diagnostics : dict
        Name to float64 array of the grid's shape: ``period`` (0 = none), ``convergence_rate``,
        ``lyapunov`` (NaN where not computed), ``final_norm``, ``distinct_stage_points`` (NaN unless
        a converged block), ``min_cos``, ``max_step_relative``, ``transient_loops``, ``loops_run``.
    meta : dict
        JSON-able description of the run: ``system``, ``system_name``, ``stage_names``,
        ``versions``, ``seed``, ``tolerances``, ``loops``, ``seconds``, ``lyapunov``, ``dtype``,
        ``chunks`` and ``chunks_loaded`` (how many of them a resumed sweep read from its store), ...

    Examples
    --------
    >>> import numpy as np
    >>> from dynloop.sweep.phase import PhaseDiagram
    >>> from dynloop import Regime
    >>> C, D = Regime.CYCLIC.code, Regime.DRIFTING.code
    >>> codes = np.array([[C, C, D], [C, D, D]], dtype=np.int8)     # cyclic | drifting
    >>> diagram = PhaseDiagram(axes={"beta": np.array([0.0, 1.0]), "alpha": np.array([0.5, 1.0, 2.0])},
    ...                        regimes=codes, diagnostics={"period": np.where(codes == C, 1.0, 0.0)},
    ...                        meta={"system_name": "toy"})
    >>> diagram.shape
    (2, 3)
    >>> diagram.fractions()["cyclic"]
    0.5
    >>> diagram.regime_at(beta=0.9, alpha=1.1).value
    'drifting'
    """

    axes: dict
    regimes: np.ndarray
    diagnostics: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.axes, dict) or not self.axes:
            raise invalid("axes", self.axes, "expected a non-empty mapping from axis name to a 1-D array")
        axes = {}
        for name, values in self.axes.items():
            array = np.asarray(values)
            if array.dtype.kind in "OSU":
                array = array.astype(str)
            elif array.dtype.kind not in "iuf":
                raise invalid(f"axes[{name!r}]", values, "expected numbers or strings")
            if array.ndim != 1 or array.size == 0:
                raise invalid(f"axes[{name!r}]", values, "expected a non-empty 1-D array")
            axes[str(name)] = array
        self.axes = axes
        shape = self.shape
        regimes = np.asarray(self.regimes)
        if regimes.shape != shape:
            raise invalid("regimes", f"<array of shape {regimes.shape}>",
                          f"expected shape {shape}, one code per point of the axes {list(axes)}")
        _check_codes(regimes)
        self.regimes = regimes.astype(np.int8, copy=False)
        diagnostics = {}
        for name, values in dict(self.diagnostics or {}).items():
            if name == "regime" or name in axes:
                raise invalid("diagnostics", name, "a diagnostic may not be named 'regime' or like an axis")
            array = np.asarray(values, dtype=np.float64)
            if array.shape != shape:
                raise invalid(f"diagnostics[{name!r}]", f"<array of shape {array.shape}>",
                              f"expected shape {shape}")
            diagnostics[str(name)] = array
        self.diagnostics = diagnostics
        self.meta = dict(self.meta or {})

    # ----------------------------------------------------------------------------------- structure
    @property
    def shape(self):
        """Grid shape, one entry per axis."""
        return tuple(len(v) for v in self.axes.values())

    @property
    def ndim(self):
        """Number of axes."""
        return len(self.axes)

    @property
    def size(self):
        """Number of grid points."""
        return int(np.prod(self.shape))

    @property
    def axis_kinds(self):
        """Axis name to ``"numeric"`` or ``"categorical"``."""
        return {name: _axis_kind(values) for name, values in self.axes.items()}

    @property
    def fields(self):
        """The names :meth:`plot` and :meth:`boundaries` accept: ``"regime"`` and every diagnostic."""
        return ("regime",) + tuple(self.diagnostics)

    def field(self, name="regime"):
        """The array of a field: the regime codes or a diagnostic.

        Raises
        ------
        ValueError
            For an unknown name (the message lists the allowed ones).
        """
        if name == "regime":
            return self.regimes
        if name not in self.diagnostics:
            raise invalid("field", name, "expected one of " + ", ".join(repr(f) for f in self.fields))
        return self.diagnostics[name]

    def __repr__(self):
        axes = " × ".join(f"{name}[{len(v)}]" for name, v in self.axes.items())
        return f"<PhaseDiagram of {self.meta.get('system_name', '?')!s}: {axes}, {self.size} points>"

    # ------------------------------------------------------------------------------------- numbers
    def counts(self):
        """Number of grid points per regime: a dict from every regime value (in ``Regime`` order) to a count.

        The keys are the regime values (``"cyclic"``, ...); ``Regime`` members work as keys too.
        """
        counted = _count_codes(self.regimes)
        return _ByRegime((regime.value, int(counted[regime.code])) for regime in Regime)

    def fractions(self):
        """Fraction of the grid points in each regime (every regime, zeros included; they sum to 1).

        The keys are the regime values (``"cyclic"``, ...); ``Regime`` members work as keys too.

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop.sweep.phase import PhaseDiagram
        >>> from dynloop import Regime
        >>> F, P, X = Regime.FIXED_POINT.code, Regime.PERIODIC.code, Regime.CHAOTIC.code
        >>> d = PhaseDiagram({"r": np.arange(4.0)}, np.array([F, F, P, X], dtype=np.int8), {})
        >>> {k: v for k, v in d.fractions().items() if v}
        {'fixed_point': 0.5, 'periodic': 0.25, 'chaotic': 0.25}
        """
        total = self.size
        return _ByRegime((name, count / total) for name, count in self.counts().items())

    def summary(self):
        """The grid, the share of every regime present, and the run, in words.

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop.sweep.phase import PhaseDiagram
        >>> from dynloop import Regime
        >>> F, P, X = Regime.FIXED_POINT.code, Regime.PERIODIC.code, Regime.CHAOTIC.code
        >>> d = PhaseDiagram({"r": np.linspace(2.5, 4.0, 4)}, np.array([F, P, P, X], dtype=np.int8), {},
        ...                  meta={"system_name": "logistic", "loops": 400, "seconds": 0.25})
        >>> print(d.summary())
        Phase diagram of logistic: 4 points
        axes:
          r  2.5 … 4, 4 values, evenly spaced
        regimes:
          periodic     50.0 %  (2 points)
          fixed_point  25.0 %  (1 point)
          chaotic      25.0 %  (1 point)
        run: 400 loops per point; took 0.25 s
        """
        name = self.meta.get("system_name", "a system")
        size = f"{self.size:,}"
        if self.ndim > 1:
            size = f"{' × '.join(str(n) for n in self.shape)} = {size}"
        lines = [f"Phase diagram of {name}: {size} point{'s' * (self.size != 1)}", "axes:"]
        width = max(len(n) for n in self.axes)
        for axis, values in self.axes.items():
            lines.append(f"  {axis:<{width}}  {_describe_axis(values)}")
        lines.append("regimes:")
        counts = self.counts()
        # most frequent first; ties in Regime order (the counts are in Regime order, sorted is stable)
        present = sorted(((c, n) for n, c in counts.items() if c), key=lambda item: -item[0])
        width = max(len(n) for _, n in present)
        for count, regime in present:
            lines.append(f"  {regime:<{width}}  {100.0 * count / self.size:5.1f} %  "
                         f"({count:,} point{'s' * (count != 1)})")
        if len(present) == 1:
            lines[-1] += " — the whole grid"
        # per value of each categorical axis, when there is more than one axis
        if self.ndim > 1:
            for k, (axis, values) in enumerate(self.axes.items()):
                if _axis_kind(values) != "categorical":
                    continue
                lines.append(f"by {axis}:")
                vwidth = max(len(v) for v in values)
                for i, value in enumerate(values):
                    codes = np.take(self.regimes, i, axis=k).ravel()
                    counted = _count_codes(codes)
                    order = sorted((r for r in Regime if counted[r.code]), key=lambda r: -counted[r.code])
                    shares = ", ".join(f"{r.value} {100.0 * counted[r.code] / codes.size:.0f} %"
                                       for r in order)
                    lines.append(f"  {value:<{vwidth}}  {shares}")
        run = []
        if "loops" in self.meta:
            transient = self.meta.get("transient")
            run.append(f"{self.meta['loops']} loops per point"
                       + (f" (transient {transient})" if transient is not None else ""))
        if "loops_run" in self.diagnostics and np.isfinite(self.diagnostics["loops_run"]).any():
            run.append(f"{np.nanmean(self.diagnostics['loops_run']):.0f} loops run on average")
        if self.meta.get("lyapunov") is not None:
            run.append("Lyapunov exponents " + ("on" if self.meta["lyapunov"] else "off"))
        if self.meta.get("dtype"):
            run.append(str(self.meta["dtype"]))
        seconds = self.meta.get("seconds")
        took = f"took {seconds:.3g} s" if isinstance(seconds, (int, float)) else ""
        if self.meta.get("chunks_loaded"):
            loaded, chunks = self.meta["chunks_loaded"], self.meta.get("chunks")
            counted = f"{loaded} of {chunks} chunk{'s' * (chunks != 1)}" if chunks else \
                f"{loaded} chunk{'s' * (loaded != 1)}"
            took += (" (" if took else "") + counted + " loaded from the store" + (")" if took else "")
        if run or took:
            lines.append("run: " + ", ".join(run) + ("; " if run and took else "") + took)
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    # ---------------------------------------------------------------------------------- look-ups
    def index_of(self, **coords):
        """The grid index of the cell nearest to ``coords`` (one keyword per axis).

        Numeric axes take the nearest value; categorical axes need one of their values. An axis
        with a single value may be left out.

        Examples
        --------
        >>> import numpy as np, dynloop
        >>> from dynloop.sweep.phase import PhaseDiagram
        >>> d = PhaseDiagram({"norm": np.array(["pre", "post"]), "alpha": np.linspace(0, 1, 5)},
        ...                  np.full((2, 5), dynloop.Regime.CYCLIC.code, dtype=np.int8), {})
        >>> d.index_of(norm="post", alpha=0.3)
        (1, 1)
        """
        self._check_axis_names(coords)
        index = []
        for name, values in self.axes.items():
            if name not in coords:
                if values.size == 1:
                    index.append(0)
                    continue
                raise ValueError(f"give a value for the axis {name!r} (its values: {_describe_axis(values)})")
            value = coords[name]
            if _axis_kind(values) == "categorical":
                hits = np.nonzero(values == str(value))[0]
                if hits.size == 0:
                    raise invalid(name, value, "expected one of " + ", ".join(repr(str(v)) for v in values))
                index.append(int(hits[0]))
            else:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise invalid(name, value, "expected a number") from None
                if not math.isfinite(number):
                    raise invalid(name, value, "expected a finite number")
                index.append(int(np.argmin(np.abs(values.astype(float) - number))))
        return tuple(index)

    def _check_axis_names(self, coords):
        """A ``ValueError`` naming the first of ``coords`` that is not an axis of the diagram."""
        unknown = [name for name in coords if name not in self.axes]
        if unknown:
            raise invalid(unknown[0], coords[unknown[0]], "not an axis of this diagram; its axes are "
                          + ", ".join(self.axes) + did_you_mean(unknown[0], list(self.axes)))

    def regime_at(self, **coords):
        """The :class:`~dynloop.Regime` of the grid cell nearest to ``coords`` (one keyword per axis)."""
        return Regime.from_code(self.regimes[self.index_of(**coords)])

    def select(self, **coords):
        """The diagram with some axes fixed at (the nearest of) the given values, those axes removed.

        Use it to draw one facet, or to cut a diagram with too many facets down to size.

        Examples
        --------
        >>> import numpy as np, dynloop
        >>> from dynloop.sweep.phase import PhaseDiagram
        >>> d = PhaseDiagram({"norm": np.array(["pre", "post"]), "alpha": np.linspace(0, 1, 5)},
        ...                  np.full((2, 5), dynloop.Regime.CYCLIC.code, dtype=np.int8), {})
        >>> d.select(norm="post").shape
        (5,)
        """
        if not coords:
            return self
        self._check_axis_names(coords)
        if len(coords) == self.ndim:
            raise ValueError("select() must leave at least one axis free; use regime_at() for a single point")
        full = {name: coords.get(name, values[0]) for name, values in self.axes.items()}
        position = self.index_of(**full)
        index = tuple(position[k] if name in coords else slice(None) for k, name in enumerate(self.axes))
        chosen = {name: self.axes[name][position[k]].item()
                  for k, name in enumerate(self.axes) if name in coords}
        meta = dict(self.meta)
        meta["selected"] = {**meta.get("selected", {}), **chosen}
        return PhaseDiagram(axes={n: v for n, v in self.axes.items() if n not in coords},
                            regimes=self.regimes[index].copy(),
                            diagnostics={n: v[index].copy() for n, v in self.diagnostics.items()}, meta=meta)

    def boundaries(self, field="regime", along=None):
        """Cells whose value differs from at least one neighbour's, along any of the given axes.

        Parameters
        ----------
        field : str
            ``"regime"`` or a diagnostic (meant for discrete ones such as ``period``; NaN equals NaN).
        along : sequence of str, optional
            Axes along which neighbours are compared (default: every axis). Pass the numeric axes
            only to get the boundaries inside each facet of a faceted diagram.

        Returns
        -------
        ndarray of bool
            The grid's shape; ``True`` on both sides of every boundary.

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop.sweep.phase import PhaseDiagram
        >>> from dynloop import Regime
        >>> F, P = Regime.FIXED_POINT.code, Regime.PERIODIC.code
        >>> d = PhaseDiagram({"r": np.arange(5.0)}, np.array([F, F, P, P, P], dtype=np.int8), {})
        >>> d.boundaries().astype(int)
        array([0, 1, 1, 0, 0])
        """
        data = self.field(field)
        names = list(self.axes) if along is None else ([along] if isinstance(along, str) else list(along))
        for name in names:
            if name not in self.axes:
                raise invalid("along", name, "expected axis names among " + ", ".join(self.axes))
        return near_changes(data, axes=[list(self.axes).index(name) for name in names])

    def boundary_points(self, field="regime"):
        """Axis values of the boundary cells of a numeric 2-D diagram: an ``(N, 2)`` array.

        Columns follow the axes' order; rows follow the grid (C order). Fix the other axes with
        :meth:`select` first for larger diagrams.

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop.sweep.phase import PhaseDiagram
        >>> from dynloop import Regime
        >>> C, D = Regime.CYCLIC.code, Regime.DRIFTING.code
        >>> d = PhaseDiagram({"a": np.array([0.0, 1.0]), "b": np.array([10.0, 20.0, 30.0])},
        ...                  np.array([[C, C, D], [C, C, D]], dtype=np.int8), {})
        >>> d.boundary_points()
        array([[ 0., 20.],
               [ 0., 30.],
               [ 1., 20.],
               [ 1., 30.]])
        """
        if self.ndim != 2 or any(kind != "numeric" for kind in self.axis_kinds.values()):
            raise ValueError(f"boundary_points() needs a diagram with exactly two numeric axes; this one has "
                             f"{', '.join(f'{n} ({k})' for n, k in self.axis_kinds.items())}: fix the others "
                             f"with select(...) first")
        cells = np.argwhere(self.boundaries(field))
        first, second = self.axes.values()
        return np.column_stack([first[cells[:, 0]].astype(float), second[cells[:, 1]].astype(float)])

    # ------------------------------------------------------------------------------------- figures
    def plot(self, path=None, field="regime", *, ax=None, log=None, line=None, **kwargs):
        """Draw the diagram: regimes in fixed colours, or one diagnostic as a heatmap.

        Parameters
        ----------
        path : str or Path, optional
            Write the figure there (format from the suffix).
        field : str
            ``"regime"`` (one fixed colour per regime, see ``dynloop.plotting.REGIME_COLOURS``) or a
            diagnostic name (colour bar; NaN cells blank).
        ax : matplotlib Axes, optional
            Draw into this axes (diagrams with a single panel only).
        log : bool, optional
            Logarithmic colour scale (or y scale, in 1-D); by default when a field is positive and
            spans more than two decades.
        line : str or False, optional
            1-D diagrams: the diagnostic drawn above the regime strip (default: ``lyapunov`` if
            computed, else ``convergence_rate``); ``False`` for none.
        **kwargs
            Passed to ``pcolormesh`` (2-D panels) or ``plot`` (1-D line).

        Returns
        -------
        matplotlib.figure.Figure

        Notes
        -----
        The first two numeric axes span each panel (first on x); with fewer than two numeric axes a
        categorical one fills in. Every other axis makes facets: one panel per combination of
        their values (at most 16), titled like ``norm=pre``.

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop.sweep.phase import PhaseDiagram
        >>> from dynloop import Regime
        >>> codes = np.where(np.add.outer(np.arange(6), np.arange(8)) < 7, Regime.CYCLIC.code,
        ...                  Regime.DRIFTING.code).astype(np.int8)
        >>> diagram = PhaseDiagram({"beta": np.linspace(0, 1, 6), "alpha": np.linspace(0, 2, 8)}, codes, {})
        >>> fig = diagram.plot()
        >>> [t.get_text() for t in fig.legends[0].get_texts()]
        ['cyclic', 'drifting']
        """
        from ..plotting import plot_phase_diagram

        return plot_phase_diagram(self, path=path, field=field, ax=ax, log=log, line=line, **kwargs)

    # --------------------------------------------------------------------------------------- files
    def save(self, path):
        """Write the diagram to one compressed ``.npz`` file (arrays, and a JSON header with the meta).

        Exactly the path given is written (no suffix is added); :meth:`load` reads it back.

        Examples
        --------
        >>> import numpy as np, os, tempfile
        >>> from dynloop.sweep.phase import PhaseDiagram
        >>> from dynloop import Regime
        >>> C, D = Regime.CYCLIC.code, Regime.DRIFTING.code
        >>> d = PhaseDiagram({"norm": np.array(["pre", "post"]), "alpha": np.array([0.5, 1.0])},
        ...                  np.array([[C, D], [C, C]], dtype=np.int8), {"lyapunov": np.full((2, 2), np.nan)},
        ...                  meta={"system_name": "toy"})
        >>> path = os.path.join(tempfile.mkdtemp(), "phase.npz")
        >>> d.save(path)
        >>> back = PhaseDiagram.load(path)
        >>> back.axes["norm"].tolist(), back.regime_at(norm="pre", alpha=1.0).value
        (['pre', 'post'], 'drifting')
        """
        header = {"format": _PHASE_FORMAT, "version": _FILE_VERSION,
                  "axes": [{"name": name, "kind": _axis_kind(values)} for name, values in self.axes.items()],
                  "diagnostics": list(self.diagnostics), "meta": self.meta}
        arrays = {"regimes": self.regimes}
        arrays.update({f"axis_{i}": values for i, values in enumerate(self.axes.values())})
        arrays.update({f"diagnostic_{i}": values for i, values in enumerate(self.diagnostics.values())})
        _write_npz(path, header, arrays)

    @classmethod
    def load(cls, path):
        """Read a diagram written by :meth:`save`."""
        header, arrays = _read_npz(path, _PHASE_FORMAT)
        axes = {entry["name"]: arrays[f"axis_{i}"] for i, entry in enumerate(header["axes"])}
        diagnostics = {name: arrays[f"diagnostic_{i}"] for i, name in enumerate(header["diagnostics"])}
        return cls(axes=axes, regimes=arrays["regimes"], diagnostics=diagnostics, meta=header["meta"])

    def to_xarray(self):
        """The diagram as an ``xarray.Dataset`` (xarray is optional: ``pip install xarray``).

        Coordinates are the axes; data variables ``regime`` (int8 codes, with CF ``flag_values`` and
        ``flag_meanings``) and every diagnostic; attributes the meta (JSON strings where not a
        plain str, int or float).

        Examples
        --------
        >>> import numpy as np, dynloop
        >>> from dynloop.sweep.phase import PhaseDiagram
        >>> d = PhaseDiagram({"r": np.array([3.0, 3.5])},
        ...                  np.full(2, dynloop.Regime.PERIODIC.code, dtype=np.int8),
        ...                  {"period": np.array([2.0, 4.0])}, meta={"loops": 400})
        >>> try:
        ...     ds = d.to_xarray()
        ... except ImportError:
        ...     pass
        ... else:
        ...     assert ds["period"].sel(r=3.5).item() == 4.0 and ds.attrs["loops"] == 400
        """
        try:
            import xarray as xr
        except ImportError as error:
            raise ImportError("PhaseDiagram.to_xarray() needs xarray, an optional dependency: "
                              "pip install xarray") from error
        dims = tuple(self.axes)
        data_vars = {"regime": (dims, self.regimes, {
            "long_name": "regime code (dynloop.Regime.from_code)",
            "flag_values": np.array(Regime.codes(), dtype=np.int8),
            "flag_meanings": " ".join(Regime.from_code(code).value for code in Regime.codes())})}
        data_vars.update({name: (dims, values) for name, values in self.diagnostics.items()})
        attrs = {}
        for key, value in self.meta.items():
            if isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(value, bool):
                attrs[key] = value
            else:
                attrs[key] = json.dumps(value, default=jsonable)
        return xr.Dataset(data_vars, coords={name: values for name, values in self.axes.items()}, attrs=attrs)


@dataclass(eq=False)
class OrbitDiagram:
    """The classic bifurcation diagram: attractor points per stage against one parameter.

    Attributes
    ----------
    axis : str
        The parameter varied.
    values : ndarray, shape (V,)
        Its values.
    points : ndarray, shape (V, N, S, m)
        For each value, the last ``N`` loops' outputs of each of the ``S`` stages, reduced to ``m``
        coordinates (``m = 1``: a map's ``x``, or a projection of a block's state). NaN where a run
        diverged before.
    stage_names : tuple of str
        ``S`` names.
    regimes : ndarray of int8, shape (V,), or None
        Regime codes per value, when classified.
    meta : dict
        JSON-able: ``system_name``, ``loops``, ``keep``, ``coordinate`` (what a point's coordinate is).

    Examples
    --------
    >>> import numpy as np
    >>> from dynloop.sweep.phase import OrbitDiagram
    >>> r = np.array([2.8, 3.2, 3.4, 3.5])
    >>> x, kept = np.full(4, 0.3), []
    >>> for loop in range(2000):
    ...     x = r * x * (1 - x)
    ...     if loop >= 1950:
    ...         kept.append(x)
    >>> points = np.array(kept).T[:, :, None, None]          # (V, N, S, m) = (4, 50, 1, 1)
    >>> diagram = OrbitDiagram("r", r, points, ("x",), None, {"system_name": "logistic"})
    >>> diagram.distinct_points().tolist()
    [1, 2, 2, 4]
    """

    axis: str
    values: np.ndarray
    points: np.ndarray
    stage_names: tuple
    regimes: np.ndarray = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.axis = str(self.axis)
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise invalid("values", self.values, "expected a non-empty 1-D array of parameter values")
        self.values = values
        points = np.asarray(self.points, dtype=np.float64)
        if points.ndim == 3:  # (V, N, S): one coordinate
            points = points[..., None]
        if points.ndim != 4 or points.shape[0] != values.size:
            raise invalid("points", f"<array of shape {points.shape}>",
                          f"expected shape (V, N, S, m) with V = {values.size} values")
        self.points = points
        self.stage_names = tuple(str(s) for s in self.stage_names)
        if len(self.stage_names) != points.shape[2]:
            raise invalid("stage_names", self.stage_names,
                          f"expected {points.shape[2]} names, one per stage of points")
        if self.regimes is not None:
            regimes = np.asarray(self.regimes)
            if regimes.shape != values.shape:
                raise invalid("regimes", f"<array of shape {regimes.shape}>",
                              f"expected shape {values.shape}")
            _check_codes(regimes)
            self.regimes = regimes.astype(np.int8, copy=False)
        self.meta = dict(self.meta or {})

    def __repr__(self):
        v, n, s, m = self.points.shape
        return (f"<OrbitDiagram of {self.meta.get('system_name', '?')!s}: {self.axis}[{v}], {n} points × {s} "
                f"stage{'s' * (s != 1)} × {m} coordinate{'s' * (m != 1)}>")

    def _stage_index(self, stage):
        if isinstance(stage, str):
            if stage not in self.stage_names:
                raise invalid("stage", stage,
                              "expected one of " + ", ".join(repr(s) for s in self.stage_names))
            return self.stage_names.index(stage)
        index = int(stage)
        if not -len(self.stage_names) <= index < len(self.stage_names):
            raise invalid("stage", stage, f"expected an index below {len(self.stage_names)}")
        return index % len(self.stage_names)

    def distinct_points(self, stage=-1, tol=1e-6):
        """Distinct attractor points per parameter value in one stage (period-like counts).

        Points closer than ``tol`` times the diagram's scale (largest finite absolute coordinate,
        at least 1e-300) count once; non-finite points are not counted.

        Parameters
        ----------
        stage : int or str
            Stage index or name (default: the last stage, the loop's output).
        tol : float
            Relative tolerance.

        Returns
        -------
        ndarray of int, shape (V,)
        """
        s = self._stage_index(stage)
        finite = self.points[np.isfinite(self.points)]
        atol = tol * max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-300)
        counts = np.zeros(self.values.size, dtype=int)
        for v in range(self.values.size):
            cloud = self.points[v, :, s, :]
            cloud = cloud[np.all(np.isfinite(cloud), axis=1)]
            if cloud.shape[0] == 0:
                continue
            if cloud.shape[1] == 1:
                ordered = np.sort(cloud[:, 0])
                counts[v] = 1 + int(np.count_nonzero(np.diff(ordered) > atol))
            else:
                counts[v] = np.unique(np.round(cloud / atol), axis=0).shape[0]
        return counts

    def summary(self):
        """The parameter range, the points kept, the regimes and the attractor sizes, in words.

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop.sweep.phase import OrbitDiagram
        >>> points = np.zeros((3, 10, 1, 1)); points[2, ::2] = 1.0
        >>> orbit = OrbitDiagram("r", [1.0, 2.0, 3.0], points, ("x",), [2, 2, 3], {"system_name": "toy"})
        >>> print(orbit.summary())
        Orbit diagram of toy: r 1 … 3, 3 values, evenly spaced; 10 loops kept per value, 1 stage (x)
        regimes: fixed_point 67 %, periodic 33 %
        distinct points per value (stage x): 1 (2 values), 2 (1)
        """
        v, n, s, _ = self.points.shape
        stages = ", ".join(self.stage_names) if s <= 6 else ", ".join(self.stage_names[:3]) + ", …"
        coordinate = self.meta.get("coordinate")
        lines = [f"Orbit diagram of {self.meta.get('system_name', 'a system')}: {self.axis} "
                 f"{_describe_axis(self.values)}; {n} loops kept per value, "
                 f"{s} stage{'s' * (s != 1)} ({stages})"
                 + (f", coordinate {coordinate}" if coordinate else "")]
        if self.regimes is not None:
            counted = _count_codes(self.regimes)
            order = sorted((r for r in Regime if counted[r.code]), key=lambda r: (-counted[r.code], r.code))
            shares = ", ".join(f"{r.value} {100.0 * counted[r.code] / v:.0f} %" for r in order)
            lines.append("regimes: " + shares)
        counts = self.distinct_points()
        groups = []
        for size in sorted(set(counts.tolist())):
            if size > 16:
                break
            many = int(np.count_nonzero(counts == size))
            groups.append(f"{size} ({many} value{'s' * (many != 1)})" if not groups else f"{size} ({many})")
        beyond = int(np.count_nonzero(counts > 16))
        if beyond:
            groups.append(f"more than 16 ({beyond})")
        lines.append(f"distinct points per value (stage {self.stage_names[-1]}): " + ", ".join(groups))
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def plot(self, path=None, stages="all", *, coordinate=0, ax=None, **kwargs):
        """The classic dots plot: parameter on x, attractor points on y; one panel per stage.

        Parameters
        ----------
        path : str or Path, optional
            Write the figure there.
        stages : "all", "layers", or sequence of str or int
            Stages to draw, one panel each (``"layers"``: the stages named ``layer…``).
        coordinate : int
            Which of the ``m`` coordinates to draw.
        ax : matplotlib Axes or sequence of Axes, optional
            One per panel.
        **kwargs
            Passed to ``Axes.plot`` (e.g. ``ms``, ``alpha``, ``color``).

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop.sweep.phase import OrbitDiagram
        >>> r = np.linspace(2.8, 4.0, 60)
        >>> x = np.random.default_rng(0).uniform(0.2, 0.8, (60, 40))   # 40 orbits per value
        >>> for _ in range(300):
        ...     x = r[:, None] * x * (1 - x)
        >>> fig = OrbitDiagram("r", r, x[:, :, None, None], ("x",), None, {}).plot()
        """
        from ..plotting import plot_orbit_diagram

        return plot_orbit_diagram(self, path=path, stages=stages, coordinate=coordinate, ax=ax, **kwargs)

    def save(self, path):
        """Write the diagram to one compressed ``.npz`` file; :meth:`load` reads it back.

        Examples
        --------
        >>> import numpy as np, os, tempfile
        >>> from dynloop.sweep.phase import OrbitDiagram
        >>> d = OrbitDiagram("r", [3.0, 3.5], np.ones((2, 4, 1, 1)), ("x",), [3, 3], {"keep": 4})
        >>> path = os.path.join(tempfile.mkdtemp(), "orbit.npz")
        >>> d.save(path)
        >>> OrbitDiagram.load(path).meta
        {'keep': 4}
        """
        header = {"format": _ORBIT_FORMAT, "version": _FILE_VERSION, "axis": self.axis,
                  "stage_names": list(self.stage_names), "meta": self.meta}
        arrays = {"values": self.values, "points": self.points}
        if self.regimes is not None:
            arrays["regimes"] = self.regimes
        _write_npz(path, header, arrays)

    @classmethod
    def load(cls, path):
        """Read a diagram written by :meth:`save`."""
        header, arrays = _read_npz(path, _ORBIT_FORMAT)
        return cls(axis=header["axis"], values=arrays["values"], points=arrays["points"],
                   stage_names=tuple(header["stage_names"]), regimes=arrays.get("regimes"),
                   meta=header["meta"])
