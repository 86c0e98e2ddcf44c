"""Solving: fixed points and p-cycles of composed stages, their Jacobians, Jury conditions and boundaries.

Everything sympy is asked to do here runs within the time limits of a :class:`Budget`: a solve
that takes longer gives up (the branch becomes numeric, with a note), a simplification that takes
longer leaves its expression as it is. A derivation carries its budget down as a :class:`_Clock`
(the budget, the derivation's deadline and the nested alarms); nothing here keeps limits in module
globals.
"""

__all__ = ["Budget", "Branch", "Boundary"]

import contextlib
import dataclasses
import math
import numbers
import signal
import threading
import time

import numpy as np
import sympy

from .._errors import invalid
from .jury import boundary_equations, jury

Z = sympy.Symbol("z")


# ----------------------------------------------------------------------------- time limits
@dataclasses.dataclass(frozen=True)
class Budget:
    """Time limits of one derivation, in seconds.

    Attributes
    ----------
    solve : positive number
        One call of sympy's solvers (the fixed-point equations of one period, a drift limit).
    simplify : positive number
        One ``sympy.simplify``; past it the expression is kept unsimplified (equivalent, longer).
    total : positive number
        The whole derivation; past it expressions are left unsimplified and solving stops (the
        branches become numeric: stability is then ``ρ(J(x*)) < 1`` evaluated at each point).

    Examples
    --------
    >>> from dynloop.symbolic import Budget
    >>> Budget()
    Budget(solve=20, simplify=4, total=40)
    >>> Budget(solve=0)
    Traceback (most recent call last):
    ...
    ValueError: budget.solve=0 is not allowed: expected a positive, finite number of seconds
    """

    solve: float = 20
    simplify: float = 4
    total: float = 40

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < math.inf):
                raise invalid(f"budget.{field.name}", value, "expected a positive, finite number of seconds")


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


class _Clock:
    """A :class:`Budget` as one derivation spends it: the deadline of the whole and the nested limits.

    ``deadline`` (a ``time.monotonic()`` value) defaults to ``budget.total`` seconds from now; pass
    ``math.inf`` for work after the derivation (simplifications limited one by one only).
    """

    def __init__(self, budget, deadline=None):
        self.budget = budget
        self.deadline = time.monotonic() + budget.total if deadline is None else deadline
        self._active = []  # absolute end times of the nested time limits, innermost last

    def remaining(self):
        return self.deadline - time.monotonic()

    @contextlib.contextmanager
    def limit(self, seconds):
        """Raise ``_Timeout`` after ``seconds`` or at the deadline (nestable; main thread only, elsewhere
        no limit is set)."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            yield
            return
        seconds = min(seconds, self.remaining())
        if seconds <= 0.0:
            raise _Timeout()
        previous = signal.signal(signal.SIGALRM, _alarm) if not self._active else None
        end = time.monotonic() + seconds
        self._active.append(end)
        signal.setitimer(signal.ITIMER_REAL, max(min(self._active) - time.monotonic(), 1e-3))
        try:
            yield
        finally:
            self._active.pop()
            if self._active:
                signal.setitimer(signal.ITIMER_REAL, max(min(self._active) - time.monotonic(), 1e-3))
            else:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    def tidy(self, expr):
        """``sympy.simplify`` within the simplification limit (the expression unchanged past it)."""
        seconds = min(self.budget.simplify, self.remaining())
        if seconds <= 0.05:
            return expr
        try:
            with self.limit(seconds):
                return sympy.simplify(expr)
        except _Timeout:
            return expr


# ----------------------------------------------------------------------------- branches
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


# ----------------------------------------------------------------------------- algebra
def _stage_symbols(stages, state):
    symbols = set()
    for s in stages:
        symbols |= s.expr.free_symbols
    return symbols - set(state)


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


def _radicands(expr):
    """Arguments of the square roots (and other even roots) inside ``expr``."""
    found = []
    for sub in sympy.preorder_traversal(expr):
        if (isinstance(sub, sympy.Pow) and sub.exp.is_Rational and sub.exp.q % 2 == 0
                and not sub.base.is_number):
            found.append(sub.base)
    return found


def _boundary_equation(expr, clock):
    """A cleaner expression with the same zero set: numerator, factors that can vanish, radicands."""
    expr = sympy.factor(sympy.numer(sympy.together(clock.tidy(expr))))
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


def _is_algebraic(expr, state):
    """True when ``expr`` involves the state only through rational operations and roots."""
    for sub in sympy.preorder_traversal(expr):
        if (isinstance(sub, sympy.Function) and not isinstance(sub, sympy.Abs)
                and sub.free_symbols & set(state)):
            return False
        if isinstance(sub, sympy.Pow) and sub.free_symbols & set(state) and not sub.exp.is_Rational:
            return False
    return True


def _solve(equations, state, clock):
    """Closed-form solutions of ``equations = 0``: a list of (point, existence relations), or None."""
    seconds = min(clock.budget.solve, clock.remaining())
    if seconds <= 0.05:
        return None
    try:
        with clock.limit(seconds):
            jac = sympy.Matrix(equations).jacobian(state)
            if not (jac.free_symbols & set(state)):  # affine: one linear solve
                rhs = -sympy.Matrix(equations).xreplace({s: 0 for s in state})
                det = clock.tidy(jac.det())
                if det == 0:
                    return None
                return [(tuple(clock.tidy(v) for v in jac.LUsolve(rhs)), [])]
            has_abs = any(e.has(sympy.Abs, sympy.sign) for e in equations)
            if all(_is_algebraic(e, state) for e in equations) and not has_abs:
                solutions = sympy.solve(list(equations), list(state), dict=True)
                return [(tuple(clock.tidy(s.get(v, v)) for v in state), []) for s in solutions
                        if all(v in s for v in state)]
            if len(state) == 1:
                return _solve_by_sign(equations[0], state[0], clock)
            return None
    except (_Timeout, NotImplementedError, sympy.PolynomialError, ValueError, TypeError):
        return None


def _solve_by_sign(equation, x, clock):
    """A scalar equation with |x| or sign(x) (scale-invariant norms at eps = 0), solved on each half-line."""
    t = sympy.Symbol("t", positive=True)
    found = []
    for sign in (1, -1):
        reduced = equation.xreplace({x: sign * t})
        reduced = clock.tidy(reduced.replace(sympy.Abs, lambda arg: sympy.Abs(sympy.factor(arg))))
        if not _is_algebraic(reduced, [t]):
            return None
        for root in sympy.solve(reduced, t):
            root = clock.tidy(root)
            existence = [] if root.is_positive else [clock.tidy(root > 0)]
            if sympy.false in existence:
                continue
            found.append(((clock.tidy(sign * root),), existence))
    return found


def _sample_values(symbols, rng):
    return {s: sympy.Float(rng.uniform(0.3, 1.7), 20) for s in symbols}


def _close(a, b):
    return all(abs(complex(sympy.N(u - v, 15))) <= 1e-8 * (1 + abs(complex(sympy.N(u, 15))))
               for u, v in zip(a, b))


def _filter_cycles(solutions, stages, period, params):
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


def _branch(point, stages, state, period, label, clock, existence=(), refine=None):
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
            current = current.applyfunc(clock.tidy)
            stage_points.append(current)
            jac = j * jac
    jac = jac.applyfunc(clock.tidy)
    if refine:  # after simplification too: sqrt(mu**2) becomes Abs(mu) only then
        stage_points = [p.xreplace(refine).applyfunc(clock.tidy).xreplace(refine) for p in stage_points]
        jac = jac.xreplace(refine).applyfunc(clock.tidy).xreplace(refine)
    poly = sympy.Poly(_charpoly(jac), Z)
    charpoly = sum(clock.tidy(c) * Z**k for (k,), c in poly.terms())
    existence = list(existence)
    for expr in list(point):
        for radicand in _radicands(expr):
            relation = clock.tidy(radicand) > 0
            if relation is not sympy.true and relation not in existence:
                existence.append(relation)
    stability = [clock.tidy(c) for c in jury(charpoly, Z)]
    boundaries = []
    for kind_name, eq in boundary_equations(charpoly, Z).items():
        eq = _boundary_equation(eq, clock)
        if not eq.is_number:
            boundaries.append(Boundary(kind_name, eq, label))
    return Branch(period, label, sympy.Matrix(point), stage_points, jac, charpoly, existence, stability,
                  boundaries)


def _label(period, i, total):
    base = "fixed point" if period == 1 else f"{period}-cycle"
    return base if total == 1 else f"{base} {i + 1}"


def _branches_in_budget(stages, state, period, notes, params, clock):
    """:func:`_branches` within what is left of the derivation's time budget, else one numeric branch."""
    try:
        with clock.limit(clock.remaining()):
            return _branches(stages, state, period, notes, params, clock)
    except _Timeout:
        notes.append(f"the closed-form derivation did not finish within {clock.budget.total} s: stability "
                     "falls back to the numeric spectral condition rho(J(x*)) < 1, with x* found by "
                     "iteration")
        return [Branch(period, ("fixed point" if period == 1 else f"{period}-cycle") + " (numeric)")], False


def _branches(stages, state, period, notes, params, clock):
    """Every closed-form branch of period 1 .. period, or a numeric branch with a note."""
    branches, closed = [], True
    for p in range(1, period + 1):
        if period % p:
            continue
        equations = list(_compose(stages, state, p) - sympy.Matrix(state))
        solutions = _solve(equations, state, clock)
        if solutions is None:
            closed = False
            zero = tuple(sympy.Integer(0) for _ in state)
            if all(clock.tidy(e.xreplace(dict(zip(state, zero)))) == 0 for e in equations):
                branches.append(_branch(zero, stages, state, p, _label(p, 0, 1) + " at the origin", clock))
                notes.append(f"the {'fixed points' if p == 1 else f'{p}-cycles'} other than the origin solve "
                             "transcendental equations (no closed form): their stability is the numeric "
                             "spectral condition rho(J) < 1 at each parameter point")
            else:
                equations_of = "fixed-point" if p == 1 else f"{p}-cycle"
                notes.append(f"sympy cannot solve the {equations_of} equations in closed form (within "
                             f"{clock.budget.solve} s): stability falls back to the numeric spectral "
                             "condition rho(J(x*)) < 1, with x* found by iteration at each parameter point")
            branches.append(Branch(p, _label(p, 0, 1) + " (numeric)"))
            continue
        solutions = _filter_cycles(solutions, stages, p, params)
        for i, (s, existence) in enumerate(solutions):
            branches.append(_branch(s, stages, state, p, _label(p, i, len(solutions)), clock, existence))
    return branches, closed


# ----------------------------------------------------------------------------- special forms of blocks
def _power_branches(stages, state, scheme, period, values, clock):
    """Fixed points (mu_i > 0) and sign-flip 2-cycles (mu_i < 0) along each eigen-direction.

    The 2-cycles are included for ``period=1`` too: a negative dominant eigenvalue is the power
    method's one way to lose its fixed point, so the regime prediction needs them.
    """
    a = scheme.residual_scale
    c = sympy.sqrt(len(state)) if scheme.norm_kind == "rms" else sympy.Integer(1)
    branches = []
    for i in range(len(state)):
        mu = _mu(scheme.layers, i, a).xreplace(values)
        point = tuple(c if j == i else sympy.Integer(0) for j in range(len(state)))
        for p, sign, name in ((1, 1, "fixed point"), (2, -1, "2-cycle (sign flip)")):
            if period % p and period != 1:  # the sign flip of a negative dominant mu is always derived
                continue
            # where the branch exists sign * mu > 0, so |mu| = sign * mu (one layer: mu is the only Abs)
            refine = {sympy.Abs(mu): sign * mu} if scheme.layers == 1 else None
            branches.append(_branch(point, stages, state, p, f"{name} along eigen-direction {i + 1}", clock,
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


def _drift(stages, notes, clock):
    """Per-loop increment far from the origin, for each sign of the (scalar) state."""
    big = sympy.Symbol("L", positive=True)
    velocity, condition = {}, {}
    try:
        with clock.limit(clock.budget.solve):
            for s in (1, -1):
                total = sympy.Integer(0)
                for stage in stages:
                    increment = (stage.expr[0] - stage.x[0]).xreplace({stage.x[0]: s * big})
                    total += sympy.limit(increment, big, sympy.oo)
                velocity[s] = clock.tidy(total)
                condition[s] = clock.tidy(s * velocity[s] > 0)
    except (_Timeout, NotImplementedError):
        notes.append("the drift velocity could not be derived (limit too hard for sympy)")
        return None
    notes.append("pre-norm without an outer norm: far from the origin each branch sees only the sign of the "
                 "state, so the state drifts by a constant velocity per loop where that is consistent")
    return {"velocity": velocity, "condition": condition}
