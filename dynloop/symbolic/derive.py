"""``derive``: fixed points, loop Jacobians, Jury conditions and bifurcation boundaries, symbolically.

One engine serves blocks and maps: a list of :class:`~dynloop.symbolic.stages.Stage` (sympy maps
with closed-form Jacobians) is composed into the loop map; its fixed points (or p-cycles) are
solved for where sympy can, each giving a :class:`Branch` with its loop Jacobian (product of the
stage Jacobians in stage order, ``J_S ⋯ J_1``), characteristic polynomial, Jury conditions and
boundaries. Where sympy cannot close the algebra the branch is numeric: the fixed point is found
by iteration and Newton at each parameter point and stability is ``ρ(J) < 1`` there.
"""

__all__ = ["derive", "Derivation", "Branch", "Boundary"]

import contextlib
import dataclasses
import signal
import threading
import time

import numpy as np
import sympy

from .._errors import check_choice, check_int, invalid
from ..dynamics.regimes import Regime
from ..systems.block import POINT_FIELDS
from .jury import boundary_equations, jury
from .stages import STRUCTURES, Scheme, Stage, block_stages, rational

Z = sympy.Symbol("z")
_SOLVE_SECONDS = 20
_SIMPLIFY_SECONDS = 4
_BUDGET_SECONDS = 40  # a whole derivation: past it, expressions are left unsimplified and solving stops
_deadline = [float("inf")]


def _remaining():
    return _deadline[0] - time.monotonic()
_V, _C, _F, _P, _D, _DR, _U = (Regime.VANISHING.code, Regime.CYCLIC.code, Regime.FIXED_POINT.code,
                               Regime.PERIODIC.code, Regime.DIVERGENT.code, Regime.DRIFTING.code,
                               Regime.UNDETERMINED.code)
#: Block fields that are axes of a sweep, by the symbol names a Scheme gives them.


class _Timeout(Exception):
    pass


_active = []  # absolute end times of the nested time limits, innermost last


def _alarm(signum, frame):
    raise _Timeout()


@contextlib.contextmanager
def _time_limit(seconds):
    """Raise ``_Timeout`` after ``seconds`` (nestable; main thread only, elsewhere no limit is set)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    seconds = min(seconds, _remaining())
    if seconds <= 0.0:
        raise _Timeout()
    previous = signal.signal(signal.SIGALRM, _alarm) if not _active else None
    end = time.monotonic() + seconds
    _active.append(end)
    signal.setitimer(signal.ITIMER_REAL, max(min(_active) - time.monotonic(), 1e-3))
    try:
        yield
    finally:
        _active.pop()
        if _active:
            signal.setitimer(signal.ITIMER_REAL, max(min(_active) - time.monotonic(), 1e-3))
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _tidy(expr, seconds=_SIMPLIFY_SECONDS):
    """``sympy.simplify`` within a time limit (the expression unchanged if it takes longer)."""
    seconds = min(seconds, _remaining())
    if seconds <= 0.05:
        return expr
    try:
        with _time_limit(seconds):
            return sympy.simplify(expr)
    except _Timeout:
        return expr


def _boundary_equation(expr):
    """A cleaner expression with the same zero set: numerator, factors that can vanish, radicands."""
    expr = sympy.factor(sympy.numer(sympy.together(_tidy(expr))))
    factors = expr.args if isinstance(expr, sympy.Mul) else (expr,)
    kept = []
    for f in factors:
        if f.is_number:
            continue
        if isinstance(f, sympy.Pow) and f.exp.is_Rational and f.exp > 0:
            f = f.base
        if f.is_positive or f.is_negative:
            continue  # never zero
        kept.append(f)
    return sympy.Mul(*kept) if kept else sympy.Integer(0 if expr == 0 else 1)


@dataclasses.dataclass(frozen=True)
class Boundary:
    """A curve (surface) in parameter space where a branch loses stability.

    Attributes
    ----------
    kind : {"fold", "flip", "neimark_sacker"}
        A multiplier at +1, at −1, or a complex pair on the unit circle.
    equation : sympy expression
        Vanishes on the boundary.
    branch : str
        Which fixed point or cycle it belongs to.
    """

    kind: str
    equation: sympy.Expr
    branch: str = ""

    def __repr__(self):
        return f"Boundary({self.kind}: {self.equation} = 0{', ' + self.branch if self.branch else ''})"


@dataclasses.dataclass
class Branch:
    """A fixed point (``period == 1``) or p-cycle of the loop map, with its stability.

    Attributes
    ----------
    period : int
    label : str
    point : sympy Matrix or None
        The state entering the loop (``None``: found numerically at each parameter point).
    stage_points : list of sympy Matrix
        The state after every stage over one period (the per-layer points), entry first.
    jacobian : sympy Matrix or None
        The loop Jacobian at the point over one period, ``J_S ⋯ J_1`` (per loop, loops in order).
    charpoly : sympy expression in ``z`` or None
    existence : list of sympy relations
        Where the point is real (radicands positive) or exists at all.
    stability : list of sympy relations
        Jury's conditions on ``charpoly``.
    boundaries : list of Boundary
    """

    period: int
    label: str
    point: object = None
    stage_points: list = dataclasses.field(default_factory=list)
    jacobian: object = None
    charpoly: object = None
    existence: list = dataclasses.field(default_factory=list)
    stability: list = dataclasses.field(default_factory=list)
    boundaries: list = dataclasses.field(default_factory=list)

    @property
    def conditions(self):
        """Existence and stability relations (their conjunction: the branch exists and attracts)."""
        return [c for c in self.existence + self.stability if c is not sympy.true]

    @property
    def numeric(self):
        return self.point is None


def _radicands(expr):
    """Arguments of the square roots (and other even roots) inside ``expr``."""
    found = []
    for sub in sympy.preorder_traversal(expr):
        if isinstance(sub, sympy.Pow) and sub.exp.is_Rational and sub.exp.q % 2 == 0 and not sub.base.is_number:
            found.append(sub.base)
    return found


def _latex_text(line):
    """A report line for LaTeX: prose escaped, mathematics (between dollars) kept as it is."""
    parts = line.split("$")
    for i in range(0, len(parts), 2):  # the even parts are prose
        prose = parts[i].replace("\\", r"\textbackslash{}")
        for char in "_&%#{}":
            prose = prose.replace(char, "\\" + char)
        parts[i] = prose.replace(r"\textbackslash\{\}", r"\textbackslash{}")
    return "$".join(parts)


class Derivation:
    """Everything ``derive`` found, as sympy objects, with numeric predictions and reports.

    Attributes
    ----------
    title : str
    kind : {"block", "map"}
    structure : str
    state : sympy Matrix
        The state symbols.
    parameters : list of sympy Symbol
        Every free symbol of the loop map that is not a state symbol (sorted by name).
    stages : list of Stage
        The stage maps and their closed-form Jacobians.
    loop_map : sympy Matrix
        The composition of the stages.
    equations : list of sympy Eq
        The fixed-point (or p-cycle) equations ``F^p(x) = x``.
    branches : list of Branch
        Every fixed point / cycle derived; ``branch`` is the principal one.
    closed : bool
        ``False`` when sympy could not solve for the fixed point (see ``notes``): stability is
        then the numeric spectral condition ``ρ(J(x*)) < 1`` at each parameter point.
    notes : list of str
        Assumptions and explanations (what was fixed, what could not be derived and why).
    drift : dict or None
        Pre-norm without an outer norm (scalar structure): ``{"velocity": {s: v_s},
        "condition": {s: relation}}`` — far from the origin, the state of sign ``s`` grows by ``v_s``
        per loop, consistently when ``s v_s > 0``.
    fields : dict
        Sweep axis name (``residual_scale``, ...) to the symbol standing for it.

    Examples
    --------
    >>> import sympy
    >>> from dynloop.symbolic import derive, Scheme
    >>> d = derive(Scheme(norm="none", injection="none"), structure="diagonal")
    >>> d.conditions
    [Abs(alpha*lambda0 + 1) < 1]
    >>> d.boundaries
    [Boundary(fold: alpha*lambda0 = 0, fixed point), Boundary(flip: alpha*lambda0 + 2 = 0, fixed point)]
    >>> d.is_stable(alpha=0.5, lambda0=-1.0), d.is_stable(alpha=3.0, lambda0=-1.0)
    (True, False)
    """

    def __init__(self, *, title, kind, structure, state, stages, period, branches, closed, notes, otherwise,
                 drift=None, fields=None, start=None, fixed=None, start_vector=None):
        self.title = title
        self.kind = kind
        self.structure = structure
        self.state = state
        self.stages = stages
        self.period = period
        self.branches = branches
        self.closed = closed
        self.notes = list(notes)
        self.otherwise = otherwise
        self.drift = drift
        self.fields = dict(fields or {})
        self.start = start
        self.start_vector = start_vector
        self.fixed = dict(fixed or {})
        # the parameters are read off the stages: the composed loop map of wide normed blocks is a
        # huge expression tree, built only when asked for (``loop_map``, ``equations``)
        self.parameters = sorted(_stage_symbols(stages, state), key=lambda s: s.name)
        self.principal = self._choose_principal()

    @property
    def loop_map(self):
        """The composition of the stages (one loop), a sympy Matrix (built on first use)."""
        if "_loop_map" not in self.__dict__:
            self._loop_map = _compose(self.stages, self.state)
        return self._loop_map

    @property
    def equations(self):
        """The fixed-point (or p-cycle) equations ``F^p(x) = x`` (built on first use, unevaluated)."""
        if "_equations" not in self.__dict__:
            composed = self.loop_map if self.period == 1 else _compose(self.stages, self.state, self.period)
            self._equations = [sympy.Eq(lhs, rhs, evaluate=False) for lhs, rhs in zip(composed, self.state)]
        return self._equations

    # ------------------------------------------------------------------------- views
    @property
    def branch(self):
        """The principal branch (the one stable on most random parameter samples, of the period asked)."""
        return self.branches[self.principal] if self.branches else None

    @property
    def fixed_point(self):
        return None if self.branch is None else self.branch.point

    @property
    def stage_points(self):
        return None if self.branch is None else self.branch.stage_points

    @property
    def jacobian(self):
        return None if self.branch is None else self.branch.jacobian

    @property
    def charpoly(self):
        return None if self.branch is None else self.branch.charpoly

    @property
    def conditions(self):
        """The sympy relations whose conjunction is the stability region of the principal branch."""
        if self.branch is None:
            return []
        if self.branch.numeric:
            n = len(self.state)
            return [sympy.Lt(sympy.Function("rho", real=True)(sympy.MatrixSymbol("J", n, n)), 1)]
        return self.branch.conditions

    @property
    def boundaries(self):
        """Every branch's boundaries (principal branch first)."""
        order = [self.principal] + [i for i in range(len(self.branches)) if i != self.principal]
        return [b for i in order for b in self.branches[i].boundaries] if self.branches else []

    @property
    def vanishing(self):
        """Equations under which the principal fixed point is vanishing (all stage points equal)."""
        if self.branch is None or self.branch.numeric or self.kind == "map":
            return []
        first = self.branch.stage_points[0]
        eqs = []
        for p in self.branch.stage_points[1:]:
            for a, b in zip(p, first):
                diff = _tidy(a - b)
                if diff != 0:
                    eqs.append(sympy.Eq(diff, 0))
        return eqs

    # ------------------------------------------------------------------------- numbers
    def _values(self, values):
        names = {s.name: s for s in self.parameters}
        unknown = [k for k in values if k not in names and k not in self.fields]
        if unknown:
            raise invalid(unknown[0], values[unknown[0]], "not a parameter of this derivation; its parameters are: "
                          + ", ".join(names))
        out = {}
        for key, value in values.items():
            symbol = self.fields.get(key, names.get(key))
            if isinstance(symbol, sympy.Symbol):
                out[symbol.name] = value
        missing = [n for n in names if n not in out]
        if missing:
            raise invalid(missing[0], None, f"give a value for every parameter: {', '.join(names)}")
        return out

    def _functions(self):
        if "_compiled" not in self.__dict__:
            self._compiled = [_BranchFunctions(b, self) for b in self.branches]
        return self._compiled

    def _predict(self, values):
        """Predicted regime codes (array) at parameter arrays given by name."""
        arrays = np.broadcast_arrays(*[np.asarray(values[s.name], dtype=np.float64) for s in self.parameters]) \
            if self.parameters else []
        shape = arrays[0].shape if arrays else ()
        args = [a.ravel() for a in arrays]
        size = int(np.prod(shape)) if shape else 1
        code = np.full(size, -1, dtype=np.int64)
        with np.errstate(all="ignore"):
            for functions in self._functions():
                found = functions.codes(args, size)
                code = np.where((code < 0) & (found >= 0), found, code)
            if self.drift is not None:
                drifting = self._drift_holds(args, size)
                code = np.where((code < 0) & drifting, _DR, code)
        code = np.where(code < 0, self.otherwise, code)
        return code.reshape(shape)

    def _drift_holds(self, args, size):
        holds = np.zeros(size, dtype=bool)
        for condition in self.drift["condition"].values():
            f = sympy.lambdify(self.parameters, condition, "numpy")
            holds |= np.broadcast_to(np.asarray(f(*args), dtype=bool), (size,))
        return holds

    def is_stable(self, **values):
        """Whether a derived fixed point (or cycle) exists and attracts at a parameter point.

        Parameters
        ----------
        **values : float
            One value per parameter, by symbol name (sweep field names such as
            ``residual_scale`` are accepted for the symbols standing for them).

        Returns
        -------
        bool
        """
        args = [np.atleast_1d(np.float64(v)) for v in self._values(values).values()]
        named = dict(zip(self._values(values), args))
        ordered = [named[s.name] for s in self.parameters]
        with np.errstate(all="ignore"):
            return bool(any(f.codes(ordered, 1)[0] >= 0 for f in self._functions()))

    def regime(self, **values):
        """The predicted :class:`~dynloop.Regime` code at a parameter point (an int).

        A stable fixed point gives ``vanishing``/``cyclic`` (blocks, by whether the stage points
        coincide) or ``fixed_point`` (maps); a stable p-cycle ``periodic``; a consistent drift
        ``drifting``; otherwise the scheme's fallback (``divergent`` for unnormalised affine loops,
        ``undetermined`` where the theory predicts nothing).
        """
        return int(self._predict(self._values(values)))

    def predicate(self):
        """A vectorised numeric function of the parameters returning predicted regime codes.

        Returns
        -------
        callable
            ``f(**arrays) -> ndarray of int``; the keyword arguments are the parameters (or sweep
            field names), broadcast together.

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop.symbolic import derive, Scheme
        >>> f = derive(Scheme(injection="none"), structure="diagonal", params={"lambda0": -1}).predicate()
        >>> f(alpha=np.array([0.5, 1.0, 2.5]))   # vanishing, vanishing (multiplier 0), divergent
        array([0, 0, 7])
        """
        def predicate(**values):
            return self._predict(self._values(values))
        return predicate

    # ------------------------------------------------------------------------- reports
    def _sections(self):
        """The report as lines: headings, ``- `` items, prose, with mathematics between dollars."""
        def tex(e):
            return f"${sympy.latex(e)}$"
        lines = [self.title, ""]
        lines += [f"- {note}" for note in self.notes]
        lines += ["", "Stages:"]
        for stage in self.stages:
            # written as text, not sympy.Eq: an equation between a symbol and a matrix is False
            expr = stage.expr.T if len(stage.x) > 1 else stage.expr[0]
            lines.append(f"- {stage.name}: $f = {sympy.latex(expr)}$")
        period = f" (period {self.period})" if self.period > 1 else ""
        lines += ["", f"Loop map{period}: {tex(self.loop_map.T if len(self.state) > 1 else self.loop_map[0])}"]
        for i, b in enumerate(self.branches):
            head = f"Branch {b.label}" + (" (principal)" if i == self.principal else "")
            lines += ["", head + ":"]
            if b.numeric:
                lines.append("- not solved in closed form: stability is the spectral condition rho(J(x*)) < 1, "
                             "evaluated numerically at each parameter point")
                continue
            point = b.point.T if len(b.point) > 1 else b.point[0]
            lines.append(f"- point: {tex(point)}")
            if b.period == 1 and self.kind == "block" and len(b.stage_points) > 2:
                lines.append("- stage points: " + ", ".join(tex(p.T if len(p) > 1 else p[0]) for p in b.stage_points[1:]))
            lines.append(f"- loop Jacobian: {tex(b.jacobian if b.jacobian.shape[0] > 1 else b.jacobian[0])}")
            lines.append(f"- characteristic polynomial: {tex(b.charpoly)}")
            if b.existence:
                lines.append("- exists where: " + ", ".join(tex(c) for c in b.existence))
            lines.append("- stable iff: " + ", ".join(tex(c) for c in b.stability))
            for boundary in b.boundaries:
                lines.append(f"- {boundary.kind} boundary: {tex(sympy.Eq(boundary.equation, 0))}")
        if self.kind == "block" and self.branch is not None and not self.branch.numeric:
            vanishing = self.vanishing
            lines += ["", "Vanishing (all stage points equal) iff: "
                      + (", ".join(tex(e) for e in vanishing) if vanishing else "always") + "; cyclic otherwise."]
        if self.drift is not None:
            lines += ["", "Drift far from the origin (per loop):"]
            for s, v in self.drift["velocity"].items():
                lines.append(f"- sign {s:+d}: velocity {tex(v)}, consistent iff {tex(self.drift['condition'][s])}")
        lines += ["", f"Otherwise: {Regime.from_code(self.otherwise).value}."]
        return lines

    def markdown(self):
        """The derivation as self-contained Markdown (LaTeX between dollars).

        Examples
        --------
        >>> from dynloop.symbolic import derive, Scheme
        >>> print(derive(Scheme(injection="none"), structure="diagonal").markdown().splitlines()[0])
        ### Block: norm=none/rms, injection=none, mixer=linear, k=1, structure=diagonal
        """
        lines = self._sections()
        lines[0] = "### " + lines[0]
        return "\n".join(lines)

    def latex(self):
        """The derivation as a LaTeX fragment (an itemised list per section).

        Examples
        --------
        >>> from dynloop.symbolic import derive, Scheme
        >>> "\\\\left|" in derive(Scheme(injection="none"), structure="diagonal").latex()
        True
        """
        out = []
        in_list = False
        for line in self._sections():
            is_item = line.startswith("- ")
            if in_list and not is_item:
                out.append(r"\end{itemize}")
                in_list = False
            if is_item:
                if not in_list:
                    out.append(r"\begin{itemize}")
                    in_list = True
                out.append(r"\item " + _latex_text(line[2:]))
            elif line:
                out.append(r"\paragraph{" + _latex_text(line) + "}")
        if in_list:
            out.append(r"\end{itemize}")
        return "\n".join(out)

    def __repr__(self):
        return f"<Derivation {self.title}: {len(self.branches)} branch(es), closed={self.closed}>"

    # ------------------------------------------------------------------------- against numerics
    def overlay(self, ax, x=None, y=None, resolution=400, **values):
        """Draw the boundary curves on a phase-diagram axis (zero contours of each equation).

        Parameters
        ----------
        ax : matplotlib Axes
            A panel drawn by ``PhaseDiagram.plot``; its axis labels name the parameters unless
            ``x`` / ``y`` are given, its limits give the ranges.
        x, y : str, optional
            Parameter (or sweep field) names of the horizontal and vertical axes; a 1-D diagram
            has no ``y`` and gets vertical lines.
        resolution : int
            Points per axis of the evaluation grid.
        **values : float
            Values of the other parameters.

        Returns
        -------
        list
            The matplotlib artists drawn.
        """
        colours = {"fold": "black", "flip": "crimson", "neimark_sacker": "royalblue"}
        x = x or ax.get_xlabel()
        y = y if y is not None else (ax.get_ylabel() or None)
        names = self._axis_names(x, y)
        xs = np.linspace(*ax.get_xlim(), resolution)
        drawn = []
        for boundary in self.boundaries:
            f = self._lambdify_axes(boundary.equation, names, values)
            if names[1] is None:
                with np.errstate(all="ignore"):
                    v = np.real(f(xs, None))
                v = np.broadcast_to(v, xs.shape)
                for i in np.nonzero(np.sign(v[1:]) * np.sign(v[:-1]) < 0)[0]:
                    drawn.append(ax.axvline(0.5 * (xs[i] + xs[i + 1]), color=colours[boundary.kind], lw=1.2, ls="--"))
                continue
            ys = np.linspace(*ax.get_ylim(), resolution)
            gx, gy = np.meshgrid(xs, ys)
            with np.errstate(all="ignore"):
                v = np.broadcast_to(np.real(f(gx, gy)).astype(float), gx.shape)
            if np.nanmin(v) < 0 < np.nanmax(v):
                drawn.append(ax.contour(gx, gy, v, levels=[0.0], colors=colours[boundary.kind], linewidths=1.2))
        return drawn

    def _axis_names(self, x, y):
        names = []
        for name in (x, y):
            if name is None:
                names.append(None)
                continue
            symbol = self.fields.get(name) or next((s for s in self.parameters if s.name == name), None)
            if symbol is None:
                raise invalid("axis", name, "not a parameter of this derivation; its parameters are: "
                              + ", ".join(s.name for s in self.parameters))
            names.append(symbol.name)
        return names

    def _lambdify_axes(self, expr, names, values):
        fixed = self._values({**values, **{n: 0.0 for n in names if n is not None}})
        subs = {s: v for s in self.parameters for n, v in fixed.items() if s.name == n and n not in names}
        expr = expr.subs(subs)
        axes = [next(s for s in self.parameters if s.name == n) if n else sympy.Dummy() for n in names]
        return sympy.lambdify(axes, expr, "numpy")

    def check(self, phase_diagram, band=2, **values):
        """Agreement between the predicted regimes and a numeric sweep, cell by cell.

        Parameters
        ----------
        phase_diagram : PhaseDiagram
            A sweep whose numeric axes are parameters of this derivation (or sweep fields standing
            for them); categorical axes are not allowed.
        band : int
            Cells within this many cells of a predicted boundary (a change of the predicted regime
            or a sign change of a boundary equation) are left out of ``outside_band``.
        **values : float
            Values of the parameters that are not axes.

        Returns
        -------
        CheckResult
        """
        axes = phase_diagram.axes
        names = self._axis_names(*list(axes)[:2]) if len(axes) == 2 else self._axis_names(list(axes)[0], None)[:1]
        if len(axes) > 2:
            raise invalid("phase_diagram", phase_diagram, "expected a diagram with one or two numeric axes")
        grids = np.meshgrid(*[np.asarray(v, dtype=float) for v in axes.values()], indexing="ij")
        arguments = self._values({**values, **dict(zip(names, grids))})
        return self._compare(self._predict(arguments), arguments, phase_diagram, band)

    def _compare(self, predicted, arguments, phase_diagram, band):
        """``check`` once the regimes are predicted on the grid (``arguments``: every parameter's values)."""
        near = _near_changes(predicted, band)
        for boundary in self.boundaries:
            f = sympy.lambdify(self.parameters, boundary.equation, "numpy")
            with np.errstate(all="ignore"):
                sign = np.sign(np.real(np.broadcast_to(
                    f(*[np.asarray(arguments[s.name], dtype=float) for s in self.parameters]), predicted.shape)))
            # where the equation is undefined (a branch that does not exist: sqrt of a negative number)
            # it is one more value, not a change between every pair of cells (nan != nan)
            sign = np.where(np.isnan(sign), 2.0, sign)
            near |= _near_changes(sign, band)
        return CheckResult(predicted, np.asarray(phase_diagram.regimes, dtype=np.int64), near, band)

    def _choose_principal(self):
        if len(self.branches) < 2:
            return 0
        candidates = [i for i, b in enumerate(self.branches) if b.period == self.period] or list(range(len(self.branches)))
        # a point that moves with the parameters is the interesting one (the logistic's (r-1)/r, not 0)
        moving = [i for i in candidates if not self.branches[i].numeric and self.branches[i].point.free_symbols]
        candidates = moving or candidates
        if not self.parameters:
            return candidates[0]
        rng = np.random.default_rng(0)
        samples = [rng.uniform(-2.0, 2.0, 400) for _ in self.parameters]
        functions = self._functions()
        best, score = candidates[0], -1
        with np.errstate(all="ignore"):
            for i in candidates:
                if self.branches[i].numeric:
                    continue
                hits = int(np.count_nonzero(functions[i].codes(samples, 400) >= 0))
                if hits > score:
                    best, score = i, hits
        return best


def _near_changes(field, band):
    """Cells within ``band`` cells (Chebyshev) of a place where ``field`` changes between neighbours."""
    change = np.zeros(field.shape, dtype=bool)
    for k in range(field.ndim):
        n = field.shape[k]
        if n < 2:
            continue
        hi = [slice(None)] * field.ndim
        lo = [slice(None)] * field.ndim
        hi[k], lo[k] = slice(1, None), slice(0, n - 1)
        differ = field[tuple(hi)] != field[tuple(lo)]
        change[tuple(hi)] |= differ
        change[tuple(lo)] |= differ
    out = change.copy()
    for _ in range(max(band - 1, 0)):
        grown = out.copy()
        for k in range(field.ndim):
            grown[tuple(slice(1, None) if j == k else slice(None) for j in range(field.ndim))] |= \
                out[tuple(slice(0, -1) if j == k else slice(None) for j in range(field.ndim))]
            grown[tuple(slice(0, -1) if j == k else slice(None) for j in range(field.ndim))] |= \
                out[tuple(slice(1, None) if j == k else slice(None) for j in range(field.ndim))]
        out = grown
    return out


@dataclasses.dataclass
class CheckResult:
    """Theory against simulation on one grid.

    Attributes
    ----------
    predicted, simulated : ndarray of int
        Regime codes per cell.
    near_boundary : ndarray of bool
        Cells within ``band`` cells of a predicted boundary.
    band : int
    """

    predicted: np.ndarray
    simulated: np.ndarray
    near_boundary: np.ndarray
    band: int

    @property
    def covered(self):
        """Cells where the theory makes a prediction (not ``undetermined``)."""
        return self.predicted != _U

    @property
    def agreement(self):
        """Fraction of covered cells where theory and simulation agree."""
        mask = self.covered
        return float(np.mean(self.predicted[mask] == self.simulated[mask])) if mask.any() else float("nan")

    @property
    def agreement_outside_band(self):
        """The same, leaving out the cells next to a predicted boundary."""
        mask = self.covered & ~self.near_boundary
        return float(np.mean(self.predicted[mask] == self.simulated[mask])) if mask.any() else float("nan")

    @property
    def coverage(self):
        return float(np.mean(self.covered))

    def disagreements(self):
        """Indices of covered cells outside the band where theory and simulation differ."""
        return np.argwhere(self.covered & ~self.near_boundary & (self.predicted != self.simulated))

    def summary(self):
        """The numbers, in words.

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop.symbolic.derive import CheckResult
        >>> r = CheckResult(np.array([0, 0, 7, 7]), np.array([0, 7, 7, 7]), np.array([False, True, True, False]), 1)
        >>> print(r.summary())
        theory vs simulation on 4 cells: theory predicts 100.0 % of them
          agreement 75.0 % (all predicted cells), 100.0 % outside a 1-cell band around the predicted boundaries (2 cells)
        """
        outside = int(np.count_nonzero(self.covered & ~self.near_boundary))
        return (f"theory vs simulation on {self.predicted.size} cells: theory predicts {100 * self.coverage:.1f} % "
                f"of them\n  agreement {100 * self.agreement:.1f} % (all predicted cells), "
                f"{100 * self.agreement_outside_band:.1f} % outside a {self.band}-cell band around the predicted "
                f"boundaries ({outside} cells)")


class _BranchFunctions:
    """Vectorised numeric evaluation of one branch: which cells it holds at, with which regime code."""

    def __init__(self, branch, derivation):
        self.branch = branch
        self.d = derivation
        params = derivation.parameters
        if branch.numeric:
            state = list(derivation.state)
            self.loop = sympy.lambdify([state, params], list(_compose(derivation.stages, derivation.state,
                                                                       derivation.period)), "numpy")
            self.jac = sympy.lambdify([state, params], _loop_jacobian(derivation.stages, derivation.state,
                                                                       derivation.period), "numpy")
            return
        self.holds = sympy.lambdify(params, sympy.And(*branch.conditions) if branch.conditions else sympy.true,
                                    "numpy")
        points = branch.stage_points
        self.spread = None
        if derivation.kind == "block" and branch.period == 1:
            diffs = [sympy.sqrt(sum((a - b) ** 2 for a, b in zip(p, points[0]))) for p in points[1:]]
            self.spread = sympy.lambdify(params, diffs, "numpy")
            self.size = sympy.lambdify(params, sympy.sqrt(sum(v**2 for v in points[0])), "numpy")

    def _code_of_fixed(self, spread, size):
        if self.d.kind == "map":
            return np.full(np.shape(spread), _F)
        scale = np.maximum(size, self.d.start if self.d.start is not None else 1.0)
        return np.where(spread <= 1e-6 * scale, _V, _C)

    def codes(self, args, size):
        """Regime code per point where the branch exists and is stable, −1 elsewhere."""
        if self.branch.numeric:
            return self._numeric_codes(args, size)
        holds = np.broadcast_to(np.asarray(self.holds(*args), dtype=bool), (size,))
        if self.branch.period > 1:
            return np.where(holds, _P, -1)
        if self.spread is None:
            return np.where(holds, _F, -1)
        spreads = [np.broadcast_to(np.real(np.asarray(s, dtype=complex)), (size,)) for s in self.spread(*args)]
        spread = np.max(spreads, axis=0) if spreads else np.zeros(size)
        radius = np.broadcast_to(np.real(np.asarray(self.size(*args), dtype=complex)), (size,))
        return np.where(holds, self._code_of_fixed(spread, radius), -1)

    def _numeric_codes(self, args, size):
        out = np.full(size, -1, dtype=np.int64)
        columns = [np.broadcast_to(a, (size,)) for a in args]
        n = len(self.d.state)
        start = np.full(n, 0.1) if self.d.start_vector is None else self.d.start_vector
        for i in range(size):
            p = [c[i] for c in columns]
            x = np.array(start, dtype=float)
            for _ in range(2000):
                nx = np.asarray(self.loop(x, p), dtype=float).ravel()
                if not np.all(np.isfinite(nx)) or np.linalg.norm(nx) > 1e12:
                    break
                done = np.linalg.norm(nx - x) <= 1e-12 * max(1.0, np.linalg.norm(nx))
                x = nx
                if done:
                    jac = np.asarray(self.jac(x, p), dtype=float).reshape(n, n)
                    if np.max(np.abs(np.linalg.eigvals(jac))) < 1.0:
                        out[i] = _P if self.d.period > 1 else self._fixed_code_numeric(x, p)
                    break
        return out

    def _fixed_code_numeric(self, x, p):
        if self.d.kind == "map":
            return _F
        points = [x]
        for stage in self.d.stages:
            f = sympy.lambdify([list(stage.x), self.d.parameters], list(stage.expr), "numpy")
            points.append(np.asarray(f(points[-1], p), dtype=float).ravel())
        spread = max(np.linalg.norm(q - x) for q in points[1:])
        scale = max(np.linalg.norm(x), self.d.start if self.d.start is not None else 1.0)
        return _V if spread <= 1e-6 * scale else _C


# ----------------------------------------------------------------------------- the engine
def _compose(stages, state, period=1):
    value = sympy.Matrix(state)
    for _ in range(period):
        for stage in stages:
            value = stage.expr.xreplace(dict(zip(stage.x, value)))
    return value


def _loop_jacobian(stages, state, period=1):
    value = sympy.Matrix(state)
    jac = sympy.eye(len(state))
    for _ in range(period):
        for stage in stages:
            value, j = stage.at(value)
            jac = j * jac
    return jac


def _is_algebraic(expr, state):
    """True when ``expr`` involves the state only through rational operations and roots."""
    for sub in sympy.preorder_traversal(expr):
        if isinstance(sub, sympy.Function) and not isinstance(sub, sympy.Abs) and sub.free_symbols & set(state):
            return False
        if isinstance(sub, sympy.Pow) and sub.free_symbols & set(state) and not sub.exp.is_Rational:
            return False
    return True


def _solve(equations, state):
    """Closed-form solutions of ``equations = 0``: a list of (point, existence relations), or None."""
    seconds = min(_SOLVE_SECONDS, _remaining())
    if seconds <= 0.05:
        return None
    try:
        with _time_limit(seconds):
            jac = sympy.Matrix(equations).jacobian(state)
            if not (jac.free_symbols & set(state)):  # affine: one linear solve
                rhs = -sympy.Matrix(equations).xreplace({s: 0 for s in state})
                det = _tidy(jac.det())
                if det == 0:
                    return None
                return [(tuple(_tidy(v) for v in jac.LUsolve(rhs)), [])]
            has_abs = any(e.has(sympy.Abs, sympy.sign) for e in equations)
            if all(_is_algebraic(e, state) for e in equations) and not has_abs:
                solutions = sympy.solve(list(equations), list(state), dict=True)
                return [(tuple(_tidy(s.get(v, v)) for v in state), []) for s in solutions
                        if all(v in s for v in state)]
            if len(state) == 1:
                return _solve_by_sign(equations[0], state[0])
            return None
    except (_Timeout, NotImplementedError, sympy.PolynomialError, ValueError, TypeError):
        return None


def _solve_by_sign(equation, x):
    """A scalar equation with |x| or sign(x) (scale-invariant norms at eps = 0), solved on each half-line."""
    t = sympy.Symbol("t", positive=True)
    found = []
    for sign in (1, -1):
        reduced = equation.xreplace({x: sign * t})
        reduced = _tidy(reduced.replace(sympy.Abs, lambda arg: sympy.Abs(sympy.factor(arg))))
        if not _is_algebraic(reduced, [t]):
            return None
        for root in sympy.solve(reduced, t):
            root = _tidy(root)
            existence = [] if root.is_positive else [_tidy(root > 0)]
            if sympy.false in existence:
                continue
            found.append(((_tidy(sign * root),), existence))
    return found


def _sample_values(symbols, rng):
    return {s: sympy.Float(rng.uniform(0.3, 1.7), 20) for s in symbols}


def _close(a, b):
    return all(abs(complex(sympy.N(u - v, 15))) <= 1e-8 * (1 + abs(complex(sympy.N(u, 15)))) for u, v in zip(a, b))


def _filter_cycles(solutions, stages, state, period, params):
    """Drop points of a lower period and keep one point per cycle (checked at random parameters)."""
    if period == 1 or not solutions:
        return solutions
    rng = np.random.default_rng(1)
    values = _sample_values(params, rng)
    numeric = []
    for s, _ in solutions:
        try:
            numeric.append(tuple(sympy.N(v.xreplace(values), 20) for v in s))
        except (TypeError, ValueError):
            numeric.append(None)
    kept, orbits = [], []
    for solution, point in zip(solutions, numeric):
        if point is None:
            kept.append(solution)
            continue
        images = [point]
        for q in range(1, period):
            images.append(tuple(sympy.N(v.xreplace(values), 20) for v in _compose(stages, images[-1], 1)))
        lower = any(_close(images[q], point) for q in range(1, period) if period % q == 0)
        seen = any(_close(point, other) for orbit in orbits for other in orbit)
        if lower or seen:
            continue
        kept.append(solution)
        orbits.append(images)
    return kept


def _charpoly(jac):
    """``det(z I − J)``; non-polynomial atoms (``Abs``, functions) stand in as symbols meanwhile.

    sympy's fast characteristic polynomial sorts its factors by comparing expressions, which fails
    with ``Abs(…)`` in the entries (a relation cannot be used as a bool): replacing such atoms by
    plain symbols first keeps it polynomial, and they are put back afterwards.
    """
    atoms = set()
    for entry in jac:
        atoms |= {a for a in sympy.preorder_traversal(entry)
                  if isinstance(a, (sympy.Abs, sympy.sign, sympy.Function)) and a.free_symbols}
    stand_in = {a: sympy.Dummy(f"u{i}") for i, a in enumerate(sorted(atoms, key=sympy.default_sort_key))}
    back = {v: k for k, v in stand_in.items()}
    try:
        poly = jac.xreplace(stand_in).charpoly(Z).as_expr()
    except TypeError:
        poly = (Z * sympy.eye(jac.shape[0]) - jac.xreplace(stand_in)).det(method="berkowitz")
    return sympy.expand(poly).xreplace(back)


def _branch(point, stages, state, period, kind, label, existence=(), refine=None):
    """Stage points, loop Jacobian, charpoly, Jury conditions and boundaries at a point.

    ``refine`` (optional) is a substitution valid wherever the branch exists (``Abs(mu) -> mu`` where
    ``mu > 0``), applied to the stage points and the Jacobian before the conditions are derived.
    """
    current = sympy.Matrix(point)
    stage_points = [current]
    jac = sympy.eye(len(state))
    for _ in range(period):
        for stage in stages:
            current, j = stage.at(current)
            current = current.applyfunc(_tidy)
            stage_points.append(current)
            jac = j * jac
    jac = jac.applyfunc(_tidy)
    if refine:  # after simplification too: sqrt(mu**2) becomes Abs(mu) only then
        stage_points = [p.xreplace(refine).applyfunc(_tidy).xreplace(refine) for p in stage_points]
        jac = jac.xreplace(refine).applyfunc(_tidy).xreplace(refine)
    poly = sympy.Poly(_charpoly(jac), Z)
    charpoly = sum(_tidy(c) * Z**k for (k,), c in poly.terms())
    existence = list(existence)
    for expr in list(point):
        for radicand in _radicands(expr):
            relation = _tidy(radicand) > 0
            if relation is not sympy.true and relation not in existence:
                existence.append(relation)
    stability = [_tidy(c) for c in jury(charpoly, Z)]
    boundaries = []
    for kind_name, eq in boundary_equations(charpoly, Z).items():
        eq = _boundary_equation(eq)
        if not eq.is_number:
            boundaries.append(Boundary(kind_name, eq, label))
    return Branch(period, label, sympy.Matrix(point), stage_points, jac, charpoly, existence, stability, boundaries)


def _branches_in_budget(stages, state, period, kind, notes, params):
    """:func:`_branches` within what is left of the derivation's time budget, else one numeric branch."""
    try:
        with _time_limit(_remaining()):
            return _branches(stages, state, period, kind, notes, params)
    except _Timeout:
        notes.append(f"the closed-form derivation did not finish within {_BUDGET_SECONDS} s: stability falls back "
                     "to the numeric spectral condition rho(J(x*)) < 1, with x* found by iteration")
        return [Branch(period, ("fixed point" if period == 1 else f"{period}-cycle") + " (numeric)")], False


def _label(period, i, total):
    base = "fixed point" if period == 1 else f"{period}-cycle"
    return base if total == 1 else f"{base} {i + 1}"


def _branches(stages, state, period, kind, notes, params):
    """Every closed-form branch of period 1 .. period, or a numeric branch with a note."""
    branches, closed = [], True
    for p in range(1, period + 1):
        if period % p:
            continue
        equations = list(_compose(stages, state, p) - sympy.Matrix(state))
        solutions = _solve(equations, state)
        if solutions is None:
            closed = False
            zero = tuple(sympy.Integer(0) for _ in state)
            if all(_tidy(e.xreplace(dict(zip(state, zero)))) == 0 for e in equations):
                branches.append(_branch(zero, stages, state, p, kind, _label(p, 0, 1) + " at the origin"))
                notes.append(f"the {'fixed points' if p == 1 else f'{p}-cycles'} other than the origin solve "
                             "transcendental equations (no closed form): their stability is the numeric "
                             "spectral condition rho(J) < 1 at each parameter point")
            else:
                notes.append(f"sympy cannot solve the {'fixed-point' if p == 1 else f'{p}-cycle'} equations in "
                             f"closed form (within {_SOLVE_SECONDS} s): stability falls back to the numeric "
                             "spectral condition rho(J(x*)) < 1, with x* found by iteration at each parameter point")
            branches.append(Branch(p, _label(p, 0, 1) + " (numeric)"))
            continue
        solutions = _filter_cycles(solutions, stages, state, p, params)
        for i, (s, existence) in enumerate(solutions):
            branches.append(_branch(s, stages, state, p, kind, _label(p, i, len(solutions)), existence))
    return branches, closed


# ----------------------------------------------------------------------------- front-ends
def _substitute(stages, values):
    return [Stage(s.name, s.x, s.expr.xreplace(values), s.jacobian.xreplace(values)) for s in stages]


def _param_values(params, symbols, field="params"):
    """``params`` (names or symbols to numbers or expressions) as a substitution for ``symbols``."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise invalid(field, params, "expected a dict from parameter name to a value")
    by_name = {s.name: s for s in symbols}
    out = {}
    for key, value in params.items():
        name = key if isinstance(key, str) else getattr(key, "name", key)
        if name not in by_name:
            raise invalid(f"{field}[{name!r}]", value, "not a symbol of this derivation; its symbols are: "
                          + ", ".join(sorted(by_name)))
        if isinstance(value, sympy.Basic):
            out[by_name[name]] = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise invalid(f"{field}[{name!r}]", value, "expected a real number or a sympy expression") from None
            out[by_name[name]] = rational(number)
    return out


def _stage_symbols(stages, state):
    symbols = set()
    for s in stages:
        symbols |= s.expr.free_symbols
    return symbols - set(state)


def derive(spec_or_scheme, *, structure="scalar", params=None, period=1):
    """Derive the fixed points, their stability and bifurcation boundaries of a block or a map.

    Parameters
    ----------
    spec_or_scheme : BlockSpec, Scheme, dict or Map
        A :class:`~dynloop.BlockSpec` (numeric fields may be sympy symbols; explicit ``weights`` and
        ``inputs`` of the structure's width replace their symbols), a :class:`Scheme` (or a dict of
        its fields), or a :class:`~dynloop.Map` built with ``Map.from_sympy`` (or from the
        catalogue).
    structure : {"scalar", "diagonal", "commuting", "2x2", "general"}
        How the weights enter (blocks): ``"scalar"`` d = 1 with a symbol per weight (``w0``,
        ``u0``/``v0``, ``e``, ``h``, ``u``, ``dt``, ``a_log``, ``b``, ``c_alpha``, ``c_beta``);
        ``"diagonal"``/``"commuting"`` one common eigenvector, a symbol ``lambda{ℓ}`` per layer's
        eigenvalue (with a post or sandwich norm and no injection: the normalised power method on
        two eigen-directions ``lambda{ℓ}_1``, ``lambda{ℓ}_2``); ``"2x2"`` d = 2 with fully symbolic
        matrices; ``"general"`` d = ``width`` with symbolic matrices, stability stated as
        ``ρ(J(x*)) < 1`` and evaluated numerically. Ignored for maps.
    params : dict, optional
        Values (numbers or sympy expressions) substituted for symbols, by name, before solving.
    period : int
        Derive the cycles of every period dividing ``period`` (maps and blocks alike).

    Returns
    -------
    Derivation

    Examples
    --------
    >>> import sympy, dynloop
    >>> from dynloop.symbolic import derive
    >>> d = derive(dynloop.maps.logistic())
    >>> d.branch.point[0], d.conditions
    ((r - 1)/r, [Abs(r - 2) < 1])
    >>> a, b = sympy.symbols("alpha beta", real=True)
    >>> spec = dynloop.BlockSpec(width=1, tokens=1, layers=2, mixer="linear", norm="none",
    ...                          injection="additive", residual_scale=a, injection_scale=b)
    >>> derive(spec).conditions
    [Abs(alpha**2*w0*w1 + alpha*w0 + alpha*w1 + 1) < 1]
    """
    check_choice("structure", structure, STRUCTURES)
    period = check_int("period", period, minimum=1)
    _deadline[0] = time.monotonic() + _BUDGET_SECONDS
    try:
        return _derive(spec_or_scheme, structure, params, period)
    finally:
        _deadline[0] = float("inf")


def _derive(spec_or_scheme, structure, params, period):
    from ..systems.block import BlockSpec
    from ..systems.maps import Map

    if isinstance(spec_or_scheme, Map):
        return _derive_map(spec_or_scheme, params, period)
    weights = inputs = start = None
    if isinstance(spec_or_scheme, BlockSpec):
        scheme = Scheme.from_spec(spec_or_scheme)
        weights, inputs = spec_or_scheme.weights, spec_or_scheme.inputs
        start = {"input": "inputs", "zeros": "zeros"}.get(spec_or_scheme.state_init)
    elif isinstance(spec_or_scheme, Scheme):
        scheme = spec_or_scheme
    elif isinstance(spec_or_scheme, dict):
        try:
            scheme = Scheme(**spec_or_scheme)
        except TypeError as error:
            raise invalid("spec_or_scheme", spec_or_scheme, f"expected Scheme fields ({error})") from None
    else:
        raise invalid("spec_or_scheme", type(spec_or_scheme).__name__,
                      "expected a BlockSpec, a Scheme, a dict of Scheme fields, or a Map")
    return _derive_block(scheme, structure, params, period, weights, inputs, start)


def _derive_map(system, params, period):
    if system.exprs is None:
        raise invalid("spec_or_scheme", system.name, "a Map from a Python function has no symbolic form: build it "
                      "with Map.from_sympy")
    state = sympy.Matrix(system.state_symbols)
    exprs = sympy.Matrix(system.exprs)
    stages = [Stage("step", state, exprs, exprs.jacobian(state))]
    values = _param_values(params, system.param_symbols)
    stages = _substitute(stages, values)
    notes = [f"map {system.name}: x' = f(x), {len(state)}-dimensional; the Jacobian is sympy's differentiation"]
    if values:
        notes.append("fixed: " + ", ".join(f"{k} = {v}" for k, v in values.items()))
    params_left = sorted(_stage_symbols(stages, state), key=lambda s: s.name)
    branches, closed = _branches_in_budget(stages, state, period, "map", notes, params_left)
    title = f"Map: {system.name}" + (f", period {period}" if period > 1 else "")
    x0 = system.start_state()
    return Derivation(title=title, kind="map", structure="map", state=state, stages=stages, period=period,
                      branches=branches, closed=closed, notes=notes, otherwise=_U, start=float(np.linalg.norm(x0)),
                      fixed=values, start_vector=x0)


def _width(scheme, structure):
    if structure == "2x2":
        return 2
    if structure == "general":
        return scheme.width
    return 1


def _is_power_method(scheme, structure):
    return (structure in ("diagonal", "commuting") and scheme.norm in ("post", "sandwich")
            and scheme.injection == "none" and scheme.mixer == "linear" and scheme.norm_kind in ("rms", "l2"))


def _derive_block(scheme, structure, params, period, weights, inputs, start):
    notes = ["one token (T = 1): the linear and MLP mixers act on each token's row separately; norm gains g = 1"]
    power = _is_power_method(scheme, structure)
    d = 2 if power else _width(scheme, structure)
    if power:
        scheme = dataclasses.replace(scheme, norm_eps=sympy.Integer(0))
        notes.append("normalised power method: linear layers commuting with two eigen-directions, eigenvalues "
                     "lambda{l}_1, lambda{l}_2 of layer l; eps -> 0 (exact scale invariance); the loop multiplies "
                     "eigen-direction i by mu_i = prod_l (1 + alpha lambda{l}_i) and renormalises")
    elif structure in ("diagonal", "commuting") and scheme.norm != "none":
        notes.append("norms couple the eigen-directions, so the per-eigenvalue reduction holds only without norms: "
                     "derived in one dimension with w = lambda instead (the scalar structure)")
    if weights is not None and any(np.shape(v)[-1] != d for v in weights.values() if np.ndim(v)):
        notes.append(f"the BlockSpec's explicit weights are not {d}-wide: they are kept as symbols")
        weights = None
    if inputs is not None and np.shape(inputs)[-1] != d:
        inputs = None
    stages, state = block_stages(scheme, "diagonal" if power else structure, d, weights, inputs)
    values = _param_values(params, _stage_symbols(stages, state))
    stages = _substitute(stages, values)
    if values:
        notes.append("fixed: " + ", ".join(f"{k} = {v}" for k, v in values.items()))
    fields = {name: getattr(scheme, name) for name in POINT_FIELDS
              if isinstance(getattr(scheme, name), sympy.Symbol)}
    start_vector = None
    if start == "inputs" and inputs is not None:
        start_vector = np.ravel(np.asarray(inputs, dtype=float))[:d]
    elif start == "zeros":
        start_vector = np.zeros(d)
    params_left = sorted(_stage_symbols(stages, state), key=lambda s: s.name)
    otherwise = _D if (scheme.norm == "none" and scheme.mixer == "linear") else _U
    drift = None
    if power:
        branches, closed = _power_branches(stages, state, scheme, period, values), True
        notes.append("a complex dominant pair (not representable by real eigenvalues) rotates the state: "
                     "quasi-periodic or periodic, not derived here")
    elif structure == "general":
        branches, closed = [Branch(period, "fixed point (numeric)")], False
        notes.append(f"general structure (d = {d}): the stage maps and Jacobians are symbolic, the fixed point is "
                     "not solved; stability is the spectral condition rho(J_S ... J_1 (x*)) < 1, evaluated "
                     "numerically with x* found by iteration")
    else:
        branches, closed = _branches_in_budget(stages, state, period, "block", notes, params_left)
        if d == 1 and scheme.norm in ("pre", "peri") and scheme.injection in ("none", "additive"):
            drift = _drift(stages, state, notes)
    title = (f"Block: norm={scheme.norm}/{scheme.norm_kind}, injection={scheme.injection}, mixer={scheme.mixer}, "
             f"k={scheme.layers}, structure={structure}" + (f", period {period}" if period > 1 else ""))
    scale = float(np.linalg.norm(start_vector)) if start_vector is not None else None
    return Derivation(title=title, kind="block", structure=structure, state=state, stages=stages, period=period,
                      branches=branches, closed=closed, notes=notes, otherwise=otherwise, drift=drift,
                      fields=fields, start=scale, fixed=values, start_vector=start_vector)


def _power_branches(stages, state, scheme, period, values=None):
    """Fixed points (mu_i > 0) and sign-flip 2-cycles (mu_i < 0) along each eigen-direction.

    The 2-cycles are included for ``period=1`` too: a negative dominant eigenvalue is the power
    method's one way to lose its fixed point, so the regime prediction needs them.
    """
    a = scheme.residual_scale
    c = sympy.sqrt(len(state)) if scheme.norm_kind == "rms" else sympy.Integer(1)
    branches = []
    for i in range(len(state)):
        mu = _mu(scheme.layers, i, a).xreplace(values or {})
        point = tuple(c if j == i else sympy.Integer(0) for j in range(len(state)))
        for p, sign, name in ((1, 1, "fixed point"), (2, -1, "2-cycle (sign flip)")):
            if period % p and period != 1:  # the sign flip of a negative dominant mu is always derived
                continue
            # where the branch exists sign * mu > 0, so |mu| = sign * mu (one layer: mu is the only Abs)
            refine = {sympy.Abs(mu): sign * mu} if scheme.layers == 1 else None
            branches.append(_branch(point, stages, state, p, "block", f"{name} along eigen-direction {i + 1}",
                                    [sympy.simplify(sign * mu > 0)], refine))
    return branches


def _mu(layers, i, a):
    """Growth factor of eigen-direction i over one loop: the product of the layers' ``1 + a lambda{l}_i``.

    Built from the symbols themselves (not read off the stages, whose symbols ``params`` may have
    replaced by numbers); the caller substitutes the same values.
    """
    mu = sympy.Integer(1)
    for layer in range(layers):
        mu *= 1 + a * sympy.Symbol(f"lambda{layer}_{i + 1}", real=True)
    return mu


def _drift(stages, state, notes):
    """Per-loop increment far from the origin, for each sign of the (scalar) state."""
    big = sympy.Symbol("L", positive=True)
    velocity, condition = {}, {}
    try:
        with _time_limit(_SOLVE_SECONDS):
            for s in (1, -1):
                total = sympy.Integer(0)
                for stage in stages:
                    increment = (stage.expr[0] - stage.x[0]).xreplace({stage.x[0]: s * big})
                    total += sympy.limit(increment, big, sympy.oo)
                velocity[s] = _tidy(total)
                condition[s] = _tidy(s * velocity[s] > 0)
    except (_Timeout, NotImplementedError):
        notes.append("the drift velocity could not be derived (limit too hard for sympy)")
        return None
    notes.append("pre-norm without an outer norm: far from the origin each branch sees only the sign of the "
                 "state, so the state drifts by a constant velocity per loop where that is consistent")
    return {"velocity": velocity, "condition": condition}
