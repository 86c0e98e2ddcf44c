"""The :class:`Derivation`: what ``derive`` found, and the one prediction of regimes from it.

A derivation holds the stages, the branches (fixed points and cycles with their conditions and
boundaries) and the notes. Its predictor (``_predict``) gives a regime code per parameter point:
the first branch that exists and attracts there decides (``vanishing``/``cyclic`` for a block by
the spread of its stage points, ``fixed_point`` for a map, ``periodic`` for a cycle), then a
consistent drift, then the scheme's fallback. A numeric branch (no closed form) is evaluated by
iterating the loop map on every point at once. ``regime``, ``predicate``, ``is_stable`` and
``check`` all read this one predictor; the reports are drawn by :mod:`.render`, the comparison with
sweeps is :mod:`.compare`.
"""

__all__ = ["Derivation"]

import math

import numpy as np
import sympy

from .._errors import invalid
from ..dynamics.regimes import Regime
from . import compare, render
from .solve import Budget, _Clock, _compose, _loop_jacobian, _stage_symbols

_V, _C, _F, _P, _DR = (Regime.VANISHING.code, Regime.CYCLIC.code, Regime.FIXED_POINT.code,
                       Regime.PERIODIC.code, Regime.DRIFTING.code)


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
    budget : Budget
        The time limits it was derived with (later simplifications, in the reports, use them too).

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
                 drift=None, fields=None, start=None, fixed=None, start_vector=None, budget=None):
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
        self.budget = Budget() if budget is None else budget
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
        clock = _Clock(self.budget, deadline=math.inf)  # after the derivation: each simplification limited
        eqs = []
        for p in self.branch.stage_points[1:]:
            for a, b in zip(p, first):
                diff = clock.tidy(a - b)
                if diff != 0:
                    eqs.append(sympy.Eq(diff, 0))
        return eqs

    # ------------------------------------------------------------------------- numbers
    def _values(self, values):
        names = {s.name: s for s in self.parameters}
        unknown = [k for k in values if k not in names and k not in self.fields]
        if unknown:
            raise invalid(unknown[0], values[unknown[0]],
                          "not a parameter of this derivation; its parameters are: " + ", ".join(names))
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
        arrays = np.broadcast_arrays(*[np.asarray(values[s.name], dtype=np.float64)
                                       for s in self.parameters]) if self.parameters else []
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
        >>> from dynloop import Regime
        >>> from dynloop.symbolic import derive, Scheme
        >>> f = derive(Scheme(injection="none"), structure="diagonal", params={"lambda0": -1}).predicate()
        >>> [Regime.from_code(int(c)).value for c in f(alpha=np.array([0.5, 1.0, 2.5]))]  # 1.0: multiplier 0
        ['vanishing', 'vanishing', 'divergent']
        """
        def predicate(**values):
            return self._predict(self._values(values))
        return predicate

    # ------------------------------------------------------------------------- reports
    def markdown(self):
        """The derivation as self-contained Markdown (LaTeX between dollars).

        Examples
        --------
        >>> from dynloop.symbolic import derive, Scheme
        >>> print(derive(Scheme(injection="none"), structure="diagonal").markdown().splitlines()[0])
        ### Block: norm=none/rms, injection=none, mixer=linear, k=1, structure=diagonal
        """
        return render.markdown(self)

    def latex(self):
        """The derivation as a LaTeX fragment (an itemised list per section).

        Examples
        --------
        >>> from dynloop.symbolic import derive, Scheme
        >>> "\\\\left|" in derive(Scheme(injection="none"), structure="diagonal").latex()
        True
        """
        return render.latex(self)

    def __repr__(self):
        return f"<Derivation {self.title}: {len(self.branches)} branch(es), closed={self.closed}>"

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
        return render.overlay(self, ax, x, y, resolution, **values)

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
        return compare.check(self, phase_diagram, band, **values)


    def _choose_principal(self):
        if len(self.branches) < 2:
            return 0
        candidates = ([i for i, b in enumerate(self.branches) if b.period == self.period]
                      or list(range(len(self.branches))))
        # a point that moves with the parameters is the interesting one (the logistic's (r-1)/r, not 0)
        moving = [i for i in candidates
                  if not self.branches[i].numeric and self.branches[i].point.free_symbols]
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
                                                                       derivation.period).tolist(), "numpy")
            self.stage_maps = [sympy.lambdify([list(stage.x), params], list(stage.expr), "numpy")
                               for stage in derivation.stages]
            return
        holds = sympy.And(*branch.conditions) if branch.conditions else sympy.true
        self.holds = sympy.lambdify(params, holds, "numpy")
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
        spreads = [np.broadcast_to(np.real(np.asarray(s, dtype=complex)), (size,))
                   for s in self.spread(*args)]
        spread = np.max(spreads, axis=0) if spreads else np.zeros(size)
        radius = np.broadcast_to(np.real(np.asarray(self.size(*args), dtype=complex)), (size,))
        return np.where(holds, self._code_of_fixed(spread, radius), -1)

    def _numeric_codes(self, args, size):
        """A numeric branch at every point at once: iterate the loop map from the start state (up to 2000
        loops; a point stops once its step is below 1e-12 of its norm, or when it leaves the finite
        numbers or 1e12), then stable where the spectral radius of the loop Jacobian there is below 1."""
        n = len(self.d.state)
        start = (np.full(n, 0.1) if self.d.start_vector is None
                 else np.asarray(self.d.start_vector, dtype=float))

        def column(values):
            return np.array([np.broadcast_to(np.asarray(v, dtype=float), (size,)) for v in values])

        x = np.repeat(start[:, None], size, axis=1)
        running = np.ones(size, dtype=bool)
        converged = np.zeros(size, dtype=bool)
        for _ in range(2000):
            if not running.any():
                break
            nx = column(self.loop(list(x), args))
            step_norm = np.linalg.norm(nx, axis=0)
            bad = ~np.all(np.isfinite(nx), axis=0) | (step_norm > 1e12)
            running &= ~bad
            done = running & (np.linalg.norm(nx - x, axis=0) <= 1e-12 * np.maximum(1.0, step_norm))
            x = np.where(running, nx, x)
            converged |= done
            running &= ~done
        code = np.full(size, -1, dtype=np.int64)
        if not converged.any():
            return code
        jac = np.array([[np.broadcast_to(np.asarray(v, dtype=float), (size,)) for v in row]
                        for row in self.jac(list(x), args)])  # (n, n, size)
        finite = np.all(np.isfinite(jac), axis=(0, 1))
        radius = np.full(size, np.inf)
        ok = converged & finite
        if ok.any():
            radius[ok] = np.max(np.abs(np.linalg.eigvals(np.moveaxis(jac[:, :, ok], -1, 0))), axis=1)
        stable = ok & (radius < 1.0)
        if self.d.kind == "map" or self.d.period > 1:
            return np.where(stable, _P if self.d.period > 1 else _F, code)
        points, current = [], x
        for f in self.stage_maps:
            current = column(f(list(current), args))
            points.append(current)
        spread = np.max([np.linalg.norm(p - x, axis=0) for p in points], axis=0)
        return np.where(stable, self._code_of_fixed(spread, np.linalg.norm(x, axis=0)), code)
