"""``derive``: fixed points, loop Jacobians, Jury conditions and bifurcation boundaries, symbolically.

One engine serves blocks and maps: a list of :class:`~dynloop.symbolic.stages.Stage` (sympy maps
with closed-form Jacobians) is composed into the loop map; its fixed points (or p-cycles) are
solved for where sympy can, each giving a :class:`Branch` with its loop Jacobian (product of the
stage Jacobians in stage order, ``J_S ⋯ J_1``), characteristic polynomial, Jury conditions and
boundaries. Where sympy cannot close the algebra the branch is numeric: the fixed point is found
by iteration at each parameter point and stability is ``ρ(J) < 1`` there.

This module is the front end (a block, a scheme or a map to its stages, then a
:class:`Derivation`); the work is split by responsibility: :mod:`.solve` (solving within a time
:class:`Budget`), :mod:`.derivation` (the :class:`Derivation` and its regime predictor),
:mod:`.render` (Markdown, LaTeX, overlays) and :mod:`.compare` (checks against sweeps).
"""

__all__ = ["derive", "Derivation", "Branch", "Boundary"]

import dataclasses

import numpy as np
import sympy

from .._errors import check_choice, check_int, invalid
from ..dynamics.regimes import Regime
from ..systems.block import POINT_FIELDS
from .compare import CheckResult  # noqa: F401  (importable from here, as before the split)
from .derivation import Derivation
from .solve import (Z, Boundary, Branch, Budget, _branches_in_budget, _Clock, _drift,  # noqa: F401  (Z: as before)
                    _power_branches, _stage_symbols)
from .stages import STRUCTURES, Scheme, Stage, block_stages, rational


# ----------------------------------------------------------------------------- front-ends
def _substitute(stages, values):
    return [Stage(s.name, s.x, s.expr.xreplace(values), s.jacobian.xreplace(values)) for s in stages]


def _param_values(params, symbols):
    """``params`` (names or symbols to numbers or expressions) as a substitution for ``symbols``."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise invalid("params", params, "expected a dict from parameter name to a value")
    by_name = {s.name: s for s in symbols}
    out = {}
    for key, value in params.items():
        name = key if isinstance(key, str) else getattr(key, "name", key)
        if name not in by_name:
            raise invalid(f"params[{name!r}]", value, "not a symbol of this derivation; its symbols are: "
                          + ", ".join(sorted(by_name)))
        if isinstance(value, sympy.Basic):
            out[by_name[name]] = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise invalid(f"params[{name!r}]", value,
                              "expected a real number or a sympy expression") from None
            out[by_name[name]] = rational(number)
    return out


def derive(spec_or_scheme, *, structure="scalar", params=None, period=1, budget=None):
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
    budget : Budget, optional
        Time limits for sympy (default ``Budget()``): past them an expression stays unsimplified
        or a branch falls back to the numeric spectral condition, with a note. The same call can
        give a longer (equivalent) expression on a busy machine; raise the limits where the text
        must not depend on the load.

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
    if budget is None:
        budget = Budget()
    elif not isinstance(budget, Budget):
        raise invalid("budget", budget, "expected a dynloop.symbolic.Budget (or None for the default limits)")
    return _derive(spec_or_scheme, structure, params, period, _Clock(budget))


def _derive(spec_or_scheme, structure, params, period, clock):
    from ..systems.base import System

    kind = spec_or_scheme.kind if isinstance(spec_or_scheme, System) else None
    if kind == "map":
        return _derive_map(spec_or_scheme, params, period, clock)
    weights = inputs = start = None
    if kind == "block":
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
    return _derive_block(scheme, structure, params, period, weights, inputs, start, clock)


def _derive_map(system, params, period, clock):
    if system.exprs is None:
        raise invalid("spec_or_scheme", system.name, "a Map from a Python function has no symbolic form: "
                      "build it with Map.from_sympy")
    state = sympy.Matrix(system.state_symbols)
    exprs = sympy.Matrix(system.exprs)
    stages = [Stage("step", state, exprs, exprs.jacobian(state))]
    values = _param_values(params, system.param_symbols)
    stages = _substitute(stages, values)
    notes = [f"map {system.name}: x' = f(x), {len(state)}-dimensional; the Jacobian is sympy's "
             "differentiation"]
    if values:
        notes.append("fixed: " + ", ".join(f"{k} = {v}" for k, v in values.items()))
    params_left = sorted(_stage_symbols(stages, state), key=lambda s: s.name)
    branches, closed = _branches_in_budget(stages, state, period, notes, params_left, clock)
    title = f"Map: {system.name}" + (f", period {period}" if period > 1 else "")
    x0 = system.start_state()
    return Derivation(title=title, kind="map", structure="map", state=state, stages=stages, period=period,
                      branches=branches, closed=closed, notes=notes, otherwise=Regime.UNDETERMINED.code,
                      start=float(np.linalg.norm(x0)), fixed=values, start_vector=x0, budget=clock.budget)


def _width(scheme, structure):
    if structure == "2x2":
        return 2
    if structure == "general":
        return scheme.width
    return 1


def _is_power_method(scheme, structure):
    return (structure in ("diagonal", "commuting") and scheme.norm in ("post", "sandwich")
            and scheme.injection == "none" and scheme.mixer == "linear" and scheme.norm_kind in ("rms", "l2"))


def _derive_block(scheme, structure, params, period, weights, inputs, start, clock):
    notes = ["one token (T = 1): the linear and MLP mixers act on each token's row separately; "
             "norm gains g = 1"]
    power = _is_power_method(scheme, structure)
    d = 2 if power else _width(scheme, structure)
    if power:
        scheme = dataclasses.replace(scheme, norm_eps=sympy.Integer(0))
        notes.append("normalised power method: linear layers commuting with two eigen-directions, "
                     "eigenvalues lambda{l}_1, lambda{l}_2 of layer l; eps -> 0 (exact scale invariance); "
                     "the loop multiplies eigen-direction i by mu_i = prod_l (1 + alpha lambda{l}_i) and "
                     "renormalises")
    elif structure in ("diagonal", "commuting") and scheme.norm != "none":
        notes.append("norms couple the eigen-directions, so the per-eigenvalue reduction holds only without "
                     "norms: derived in one dimension with w = lambda instead (the scalar structure)")
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
    affine = scheme.norm == "none" and scheme.mixer == "linear"
    otherwise = Regime.DIVERGENT.code if affine else Regime.UNDETERMINED.code
    drift = None
    if power:
        branches, closed = _power_branches(stages, state, scheme, period, values, clock), True
        notes.append("a complex dominant pair (not representable by real eigenvalues) rotates the state: "
                     "quasi-periodic or periodic, not derived here")
    elif structure == "general":
        branches, closed = [Branch(period, "fixed point (numeric)")], False
        notes.append(f"general structure (d = {d}): the stage maps and Jacobians are symbolic, the fixed "
                     "point is not solved; stability is the spectral condition rho(J_S ... J_1 (x*)) < 1, "
                     "evaluated numerically with x* found by iteration")
    else:
        branches, closed = _branches_in_budget(stages, state, period, notes, params_left, clock)
        if d == 1 and scheme.norm in ("pre", "peri") and scheme.injection in ("none", "additive"):
            drift = _drift(stages, notes, clock)
    title = (f"Block: norm={scheme.norm}/{scheme.norm_kind}, injection={scheme.injection}, "
             f"mixer={scheme.mixer}, k={scheme.layers}, structure={structure}"
             + (f", period {period}" if period > 1 else ""))
    scale = float(np.linalg.norm(start_vector)) if start_vector is not None else None
    return Derivation(title=title, kind="block", structure=structure, state=state, stages=stages,
                      period=period, branches=branches, closed=closed, notes=notes, otherwise=otherwise,
                      drift=drift, fields=fields, start=scale, fixed=values, start_vector=start_vector,
                      budget=clock.budget)


