"""A map ``x ↦ f(x; p)`` iterated step after step: a :class:`System` with a single stage.

A :class:`Map` is built from a Python function (:meth:`Map.from_function`) or from sympy
expressions (:meth:`Map.from_sympy`); the catalogue of classic maps is :mod:`dynloop.maps`.
Every map is compiled with numba to a first-class function of one fixed signature, so the single
iteration kernel of ``_map_kernels.py`` serves all of them and is compiled once, on disk. A user's
functions are compiled with bounds checks inside a guard that checks the shape of what they return
and reports any failure with the state it happened at (:class:`MapFunctionError`).
"""

__all__ = ["catalogue_names", "Map", "MapFunctionError"]

import math
import re
import traceback
from collections.abc import Mapping

import numpy as np
from numba import njit
from numba.core.registry import CPUDispatcher

from .._errors import check_int, check_real, did_you_mean, invalid
from ._recording import record_capacity
from ._map_kernels import (FD_STEP, JACOBIAN_SIGNATURE, JIT_OPTIONS, STEP_SIGNATURE,
                           finite_difference_jacobian, run_map, tangent_run_map)
from .base import RunOutput, SweepKernel, System, catalogue_names  # noqa: F401 (catalogue_names: public here)

_DEFAULT_X0 = 0.1


def _numba_failure(error):
    """The meaningful part of a numba compilation error: the message and the offending line."""
    lines = [line.rstrip() for line in str(error).splitlines()]
    message = []
    for line in lines:
        text = line.strip()
        if text.startswith("Failed in nopython mode pipeline") or (not text and not message):
            continue
        if not text or text.startswith(("File ", "During:")):
            break
        message.append(text)
    detail = " ".join(message) or type(error).__name__
    if detail.endswith("signature:"):  # "No implementation of function ... found for signature:"
        detail += " " + next((line.strip()[4:] for line in lines if line.strip().startswith(">>> ")), "?")
    detail = re.sub(r" for '\$[^']*', defined at \S+", "", detail)  # numba's internal variable names
    location = re.search(r'File "[^"]*", line (\d+):', str(error))
    caret = next((i for i, line in enumerate(lines) if line.strip() and set(line.strip()) == {"^"}), None)
    if location and caret:
        detail += f" (line {location.group(1)}: `{lines[caret - 1].strip()}`)"
    elif location:
        detail += f" (line {location.group(1)})"
    return detail


def _compile(function, field, dim, names, *, trusted=False):
    """``function`` (``field``: ``"step"`` or ``"jacobian"``) compiled by numba; a ``ValueError`` naming
    it if it cannot be.

    Unless ``trusted`` (the catalogue's functions and code printed from sympy), it is compiled with
    bounds checks and returned inside :func:`_guard`'s wrapper, so that an index out of range or an
    array of the wrong shape is reported with the state it happened at, whichever kernel called it.
    ``names`` are the parameter names, in the order of ``p``.
    """
    jacobian = field == "jacobian"
    signature = JACOBIAN_SIGNATURE if jacobian else STEP_SIGNATURE
    if isinstance(function, CPUDispatcher):
        overload = function.overloads.get(signature.args)
        if trusted and overload is not None and overload.signature.return_type == signature.return_type:
            return function  # already compiled for this signature (the catalogue's functions)
        function = function.py_func
    if not callable(function):
        raise invalid(field, function, "expected a Python function")
    name = getattr(function, "__name__", repr(function))
    try:
        compiled = njit(signature, boundscheck=not trusted, **JIT_OPTIONS)(function)
    except Exception as error:  # numba raises TypingError, UnsupportedBytecodeError, ...
        detail = _numba_failure(error)
        hint = ""
        if "No conversion from" in detail:
            hint = (f"; {field} must return a C-ordered float64 array of shape ({dim}, {dim})" if jacobian
                    else f"; {field} must return a float64 array of shape ({dim},)")
        raise ValueError(f"{field}={name!r} is not allowed: numba cannot compile it in nopython mode: "
                         f"{detail}{hint}") from None
    return compiled if trusted else _guard(function, compiled, field, dim, tuple(names), jacobian)


class MapFunctionError(ValueError):
    """A map's step or Jacobian function failed, or returned an array of the wrong shape, at some state.

    Raised from compiled code (the iteration, the tangent dynamics, finite differences around the
    step) through the guard that :meth:`Map.from_function` compiles around a user's functions: the
    message names the function, the state and parameter values it was called with, and what went
    wrong (the shape expected, or the error and line that plain Python gives at that state).

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> def step(x, p):  # p[1] is out of range for the map below, which has one parameter
    ...     return np.array([p[1] * x[0]])
    >>> try:
    ...     dynloop.Map.from_function(step, 1, params={"r": 2.0})
    ... except ValueError as error:
    ...     print(error)
    step='step' reads an index out of range at x=[0.1], params={'r': 2.0}: index 1 is out of bounds
    for axis 0 with size 1 (line 2: `return np.array([p[1] * x[0]])`). The map has 1 parameter, so p
    holds p[0] ('r') only; its state has dim=1, so x holds x[0] only
    """

    def __reduce__(self):  # a map's own subclass cannot be pickled; its message can
        return MapFunctionError, (str(self),)


def _format_values(values):
    """``[v0, v1, ...]`` with every value as repr shows it (the first and last three of a long vector)."""
    shown = [repr(float(v)) for v in values]
    if len(shown) > 8:
        shown = shown[:3] + [f"... ({len(shown)} values) ..."] + shown[-3:]
    return "[" + ", ".join(shown) + "]"


def _index_ranges(dim, names):
    """What ``x`` and ``p`` hold, for an index-out-of-range message."""
    if not names:
        held = "The map has no parameters, so p is empty"
    elif len(names) == 1:
        held = f"The map has 1 parameter, so p holds p[0] ({names[0]!r}) only"
    else:
        held = (f"The map has {len(names)} parameters, so p holds p[0]..p[{len(names) - 1}] "
                f"({', '.join(repr(n) for n in names)})")
    states = "x[0] only" if dim == 1 else f"x[0]..x[{dim - 1}]"
    return f"{held}; its state has dim={dim}, so x holds {states}"


def _guard(function, compiled, field, dim, names, jacobian):
    """A compiled wrapper of ``compiled`` that raises :class:`MapFunctionError` with
    the state it was called at.

    The wrapper checks the shape of what ``compiled`` returns (``(dim,)``, or ``(dim, dim)`` for a
    ``jacobian``) and catches any exception it raises (numba's bounds checks among them); the error
    is then described by running the Python ``function`` at the same state (numba's own exception
    carries no index and no state).
    """
    name = getattr(function, "__name__", repr(function))
    expected = (dim, dim) if jacobian else (dim,)

    class _Error(MapFunctionError):
        def __init__(self, x, p, rows, columns):
            where = f"x={_format_values(x)}"
            if names:
                where += ", params={" + ", ".join(f"{n!r}: {float(v)!r}" for n, v in zip(names, p)) + "}"
            if rows >= 0:
                got = (rows, columns) if jacobian else (rows,)
                message = (f"{field}={name!r} returns an array of shape {got} at {where}, which is not "
                           f"allowed: expected shape {expected} (dim={dim})")
            else:
                message = _describe_failure(function, field, name, x, p, where, dim, names)
            super().__init__(message)

    _Error.__name__ = _Error.__qualname__ = "MapFunctionError"  # as tracebacks show it
    if jacobian:
        @njit(JACOBIAN_SIGNATURE, **JIT_OPTIONS)
        def guarded(x, p):
            failed = False
            out = np.empty((0, 0))
            try:
                out = compiled(x, p)
            except Exception:  # numba cannot raise inside an except block
                failed = True
            if failed:
                raise _Error(x.copy(), p.copy(), -1, -1)
            if out.shape[0] != dim or out.shape[1] != dim:
                raise _Error(x.copy(), p.copy(), out.shape[0], out.shape[1])
            return out
    else:
        @njit(STEP_SIGNATURE, **JIT_OPTIONS)
        def guarded(x, p):
            failed = False
            out = np.empty(0)
            try:
                out = compiled(x, p)
            except Exception:
                failed = True
            if failed:
                raise _Error(x.copy(), p.copy(), -1, -1)
            if out.shape[0] != dim:
                raise _Error(x.copy(), p.copy(), out.shape[0], -1)
            return out
    return guarded


def _describe_failure(function, field, name, x, p, where, dim, names):
    """Why ``function`` failed in compiled code at ``x``, ``p``: run it in Python there and
    say what it raises."""
    try:
        function(np.array(x, dtype=np.float64), np.array(p, dtype=np.float64))
    except Exception as error:
        code = getattr(function, "__code__", None)
        frames = [frame for frame in traceback.extract_tb(error.__traceback__)
                  if code is not None and frame.filename == code.co_filename]
        line = f" (line {frames[-1].lineno}: `{frames[-1].line}`)" if frames and frames[-1].line else ""
        if isinstance(error, IndexError):
            return (f"{field}={name!r} reads an index out of range at {where}: {error}{line}. "
                    + _index_ranges(dim, names))
        return f"{field}={name!r} fails at {where}: {type(error).__name__}: {error}{line}"
    return (f"{field}={name!r} fails in compiled code at {where}, but runs without error in plain Python "
            "there: one of numba's checks failed (an index out of range, for example). "
            + _index_ranges(dim, names))


def _symbol_name(key):
    """Parameter names are strings; sympy symbols stand for their names."""
    return key if isinstance(key, str) else getattr(key, "name", key)


class Map(System):
    """A map ``x' = f(x; p)`` on ``R^dim``, compiled with numba (one stage, named ``"step"``).

    Build one with :meth:`from_function` (same arguments as this constructor), with
    :meth:`from_sympy`, or take one from the catalogue :mod:`dynloop.maps`.

    Parameters
    ----------
    step : callable
        ``step(x, p) -> ndarray``: ``x`` is the state (float64, shape ``(dim,)``), ``p`` the
        parameter values (float64, shape ``(len(params),)``, in the order of ``params``). It must
        return a new float64 array of shape ``(dim,)`` and be compilable by numba in nopython mode;
        it is compiled with the signature ``float64[::1](float64[::1], float64[::1])``. Division by
        zero gives ``inf`` or ``nan`` (numpy's error model), which the iteration reports as
        divergence.
    dim : int
        Dimension of the state.
    params : dict, optional
        Parameter names and default values, in the order ``p`` holds them (default: none).
    jacobian : callable, optional
        ``jacobian(x, p) -> ndarray`` of shape ``(dim, dim)``, ``J[i, j] = ∂x'_i/∂x_j``. Without
        it a compiled central finite-difference Jacobian is used (``jacobian_kind`` says which).
    name : str, optional
        Shown in summaries (default: the function's name).
    x0 : float or array_like, optional
        Default start state (default ``0.1`` in every coordinate).

    Attributes
    ----------
    dim : int
    params : dict
        Default parameter values by name (``None`` for a parameter without default, which must
        then be given at use).
    jacobian_kind : {"analytic", "finite-difference"}
    step_function, jacobian_function : numba first-class functions
        The compiled step and Jacobian (finite differences compiled around ``step`` if no
        Jacobian was given), for kernels written against ``_map_kernels``.
    exprs, state_symbols, param_symbols : tuple of sympy objects, or None
        The symbolic form of the map (maps from :meth:`from_sympy` and the catalogue).

    Notes
    -----
    ``simulate(..., dtype=numpy.float32)`` keeps float32 states: every new state is rounded to
    float32 after the step, while the arithmetic inside one step is float64 (the step functions
    are compiled for float64 only). Orbits therefore follow float32 resolution and overflow at the
    float32 range, but may differ in the last bit from an all-float32 evaluation.

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> def step(x, p):
    ...     return np.array([p[0] * x[0] * (1.0 - x[0])])
    >>> m = dynloop.Map(step, 1, params={"r": 2.5}, name="my logistic")
    >>> m
    Map(name='my logistic', dim=1, params={'r': 2.5}, jacobian='finite-difference')
    >>> round(float(dynloop.simulate(m, 100).final_state[0]), 12)
    0.6
    """

    stage_names = ("step",)
    kind = "map"

    def __init__(self, step, dim, params=None, jacobian=None, name=None, x0=None, *, _symbolic=None,
                 _trusted=False):
        # _trusted: step and jacobian are the catalogue's or printed from sympy, and need no guard
        self.dim = check_int("dim", dim, minimum=1)
        self._defaults = self._check_defaults(params)
        self._step = _compile(step, "step", self.dim, self._defaults, trusted=_trusted)
        self._jacobian = (None if jacobian is None
                          else _compile(jacobian, "jacobian", self.dim, self._defaults, trusted=_trusted))
        self.name = str(name) if name is not None else getattr(step, "__name__", "map")
        if x0 is None:
            x0 = _DEFAULT_X0
        self._x0 = self.check_state(np.full(self.dim, x0) if np.ndim(x0) == 0 else x0, "x0")
        if not np.all(np.isfinite(self._x0)):
            raise invalid("x0", self._x0.tolist(), "every entry must be finite")
        self._x0.flags.writeable = False
        self._symbolic = _symbolic
        if all(value is not None for value in self._defaults.values()):
            self._check_outputs()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_function(cls, step, dim, params=None, jacobian=None, name=None, x0=None):
        """A map from a Python function ``step(x, p)``, compiled with numba.

        Parameters
        ----------
        step, dim, params, jacobian, name, x0
            As for :class:`Map` (this is its constructor).

        Returns
        -------
        Map

        Raises
        ------
        ValueError
            When numba cannot compile ``step`` or ``jacobian`` (the message names the function,
            numba's reason and the line).
        MapFunctionError
            A ``ValueError``, when ``step`` or ``jacobian`` returns an array of the wrong shape or
            reads an index out of range (``p[3]`` of a map with one parameter), here or at any
            state later on: the message names the function, the state and parameter values, the
            shape expected or the index and line.

        Notes
        -----
        numba freezes the global variables a function reads at compilation: pass anything you
        want to vary as a parameter. Both functions are compiled with bounds checks and inside a
        wrapper that checks the shape of what they return, and called once at ``x0`` with the
        default parameters (when every parameter has one), so that most mistakes show at once.

        Examples
        --------
        >>> import numpy as np, dynloop
        >>> def henon(x, p):
        ...     return np.array([1.0 - p[0] * x[0] ** 2 + x[1], p[1] * x[0]])
        >>> def henon_jacobian(x, p):
        ...     return np.array([[-2.0 * p[0] * x[0], 1.0], [p[1], 0.0]])
        >>> m = dynloop.Map.from_function(henon, 2, params={"a": 1.4, "b": 0.3},
        ...                               jacobian=henon_jacobian, x0=[0.0, 0.0])
        >>> m.jacobian_kind
        'analytic'
        >>> m([0.0, 0.0])
        array([1., 0.])
        >>> round(float(np.linalg.det(m.jacobian([0.3, 0.1]))), 12)  # -b
        -0.3
        """
        return cls(step, dim, params=params, jacobian=jacobian, name=name, x0=x0)

    @classmethod
    def from_sympy(cls, exprs, state_symbols, param_symbols=(), *, params=None, name=None, x0=None):
        """A map from sympy expressions, with its exact Jacobian (sympy differentiation).

        The step and the Jacobian are printed as Python source (sympy's ``PythonCodePrinter``,
        ``math`` module, common subexpressions eliminated) and compiled with numba. State
        variables and parameters are taken as real, whatever the assumptions of the symbols given.

        Besides the elementary functions of Python's ``math`` module the expressions may use the
        piecewise-smooth ``Abs``, ``sign``, ``Piecewise``, ``Min``, ``Max``, ``Mod``, ``floor``,
        ``ceiling``, ``frac`` and ``Heaviside``. Their Jacobian is the derivative away from kinks and
        jumps (``d|x|/dx = sign(x)``, ``d Mod(x, 1)/dx = 1``, ``d floor(x)/dx = 0``); at a kink it is
        whatever sympy's form gives there (``sign(0) = 0``, ``Heaviside(0) = 1/2``).

        Parameters
        ----------
        exprs : sequence of sympy expressions (or a sympy Matrix, or one expression)
            The new state, ``x'_i = exprs[i]``.
        state_symbols : sequence of sympy Symbols (or one Symbol)
            The state variables ``x_0 .. x_{dim-1}``, in order.
        param_symbols : dict {Symbol: float} or sequence of Symbols, optional
            The parameters, in the order of ``p``. A dict also gives their default values; with
            a sequence the defaults come from ``params``, and a parameter without default must
            be given whenever the map is used (``simulate(..., params={"r": 3.2})``).
        params : dict, optional
            Default values by parameter name (or symbol); they override those of a dict
            ``param_symbols``.
        name : str, optional
            Default ``"sympy_map"``.
        x0 : float or array_like, optional
            Default start state (``0.1`` in every coordinate).

        Returns
        -------
        Map
            With ``jacobian_kind == "analytic"`` and ``exprs``, ``state_symbols`` and
            ``param_symbols`` kept.

        Raises
        ------
        ValueError
            For a function that cannot be compiled (a special function such as ``besselj``, an
            undefined ``Function("f")``), in the expressions or in their derivative; the message
            names it.

        Examples
        --------
        >>> import sympy, dynloop
        >>> x, y, a, b = sympy.symbols("x y a b")
        >>> m = dynloop.Map.from_sympy([1 - a * x**2 + y, b * x], [x, y], {a: 1.4, b: 0.3})
        >>> m.jacobian([0.5, 0.0])
        array([[-1.4,  1. ],
               [ 0.3,  0. ]])
        >>> lozi = dynloop.Map.from_sympy([1 - a * sympy.Abs(x) + y, b * x], [x, y], {a: 1.7, b: 0.5})
        >>> lozi.jacobian([-0.5, 0.0])  # d|x|/dx = sign(x)
        array([[1.7, 1. ],
               [0.5, 0. ]])
        >>> doubling = dynloop.Map.from_sympy(sympy.Mod(2 * x, 1), x)
        >>> doubling([0.75]), doubling.jacobian([0.75])
        (array([0.5]), array([[2.]]))
        >>> r = sympy.Symbol("r")
        >>> logistic = dynloop.Map.from_sympy(r * x * (1 - x), x, [r])
        >>> logistic.params
        {'r': None}
        >>> round(float(dynloop.simulate(logistic, 100, params={"r": 2.5}).final_state[0]), 12)
        0.6
        """
        import sympy

        def as_list(value, field):
            if isinstance(value, sympy.MatrixBase):
                return list(value)
            if isinstance(value, (sympy.Basic, str, int, float)):
                return [value]
            try:
                return list(value)
            except TypeError:
                raise invalid(field, value, "expected a sequence") from None

        exprs = tuple(sympy.sympify(e) for e in as_list(exprs, "exprs"))
        state_symbols = tuple(as_list(state_symbols, "state_symbols"))
        defaults = dict(param_symbols) if isinstance(param_symbols, Mapping) else {}
        param_symbols = tuple(param_symbols.keys() if isinstance(param_symbols, Mapping)
                              else as_list(param_symbols, "param_symbols"))
        for field, symbols in (("state_symbols", state_symbols), ("param_symbols", param_symbols)):
            for symbol in symbols:
                if not isinstance(symbol, sympy.Symbol):
                    raise invalid(field, symbols, f"expected sympy Symbols, got {symbol!r}")
        if len(set(state_symbols + param_symbols)) != len(state_symbols + param_symbols):
            raise invalid("param_symbols", param_symbols, "state and parameter symbols must all be distinct")
        if len(exprs) != len(state_symbols) or not exprs:
            raise ValueError(f"exprs has {len(exprs)} expressions and state_symbols {len(state_symbols)} "
                             "symbols, which is not allowed: expected one expression per state variable")
        unknown = set().union(*(e.free_symbols for e in exprs)) - set(state_symbols) - set(param_symbols)
        if unknown:
            raise invalid("exprs", list(exprs), "they use the symbols "
                          f"{sorted(map(str, unknown))}, which are neither state nor parameter symbols")
        names = [s.name for s in param_symbols]
        values = {s.name: defaults.get(s) for s in param_symbols}
        for key, value in (params or {}).items():
            if _symbol_name(key) not in values:
                raise invalid(f"params[{_symbol_name(key)!r}]", value,
                              "not a parameter symbol; parameters are " + (", ".join(names) or "none"))
            values[_symbol_name(key)] = value
        dim = len(exprs)
        step, jacobian = _sympy_functions(exprs, state_symbols, param_symbols)
        return cls(step, dim, params=values, jacobian=jacobian, name=name or "sympy_map", x0=x0,
                   _symbolic=(exprs, state_symbols, param_symbols), _trusted=True)

    @staticmethod
    def _check_defaults(params):
        if params is None:
            return {}
        if not isinstance(params, Mapping):
            raise invalid("params", params, "expected a dict of parameter names and default values")
        defaults = {}
        for key, value in params.items():
            name = _symbol_name(key)
            if not isinstance(name, str) or not name:
                raise invalid("params", params, f"parameter names must be non-empty strings, got {key!r}")
            defaults[name] = None if value is None else check_real(f"params[{name!r}]", value)
        return defaults

    def _check_outputs(self):
        """Call step (and jacobian) once at the default state: wrong shapes and indices fail here, clearly.

        (The guard :func:`_guard` compiles around them raises the error; at any other state the
        iteration raises it.)
        """
        p = self._param_vector(None)
        self._step(self._x0.copy(), p)
        if self._jacobian is not None:
            self._jacobian(self._x0.copy(), p)

    # ------------------------------------------------------------------ description
    @property
    def state_shape(self):
        return (self.dim,)

    @property
    def params(self):
        """Default parameter values by name, in the order of ``p`` (a copy)."""
        return dict(self._defaults)

    @property
    def param_names(self):
        """Parameter names in the order of the parameter vector ``p``."""
        return tuple(self._defaults)

    @property
    def jacobian_kind(self):
        """``"analytic"`` when a Jacobian was given (or derived by sympy), else ``"finite-difference"``."""
        return "finite-difference" if self._jacobian is None else "analytic"

    def jacobian_kink(self, points, params=None):
        """A point of ``points`` where the finite-difference Jacobian cannot be trusted, or None.

        With an analytic Jacobian, None. Otherwise the first point (and coordinate) at which the
        one-sided differences of the step, with the step size of the central differences,
        disagree: the map is not differentiable there (a kink or a jump, such as ``2x mod 1`` at
        0), so neither are multipliers or Lyapunov exponents taken from its Jacobian.

        Returns
        -------
        None or (point, coordinate, forward, backward)

        Examples
        --------
        >>> import numpy as np, dynloop
        >>> doubling = dynloop.Map.from_function(lambda x, p: np.array([(2.0 * x[0]) % 1.0]), 1)
        >>> doubling.jacobian_kink([np.array([0.3])]) is None
        True
        >>> point, coordinate, forward, backward = doubling.jacobian_kink([np.array([0.0])])
        >>> float(forward[0])
        2.0
        """
        if self.jacobian_kind != "finite-difference":
            return None
        for point in points:
            x = np.asarray(point, dtype=np.float64).ravel()
            value = self.loop(x, params)
            for j in range(x.size):
                h = FD_STEP * max(1.0, abs(x[j]))
                shifted = x.copy()
                shifted[j] = x[j] + h
                forward = (self.loop(shifted, params) - value) / h
                shifted[j] = x[j] - h
                backward = (value - self.loop(shifted, params)) / h
                scale = max(1.0, np.max(np.abs(forward)), np.max(np.abs(backward)))
                if np.max(np.abs(forward - backward)) > 1e-2 * scale:
                    return x, j, forward, backward
        return None

    @property
    def step_function(self):
        """The compiled step, a numba function of signature ``float64[::1](float64[::1], float64[::1])``."""
        return self._step

    @property
    def jacobian_function(self):
        """The compiled Jacobian, signature ``float64[:, ::1](float64[::1], float64[::1])``.

        For a map without analytic Jacobian this is the central finite-difference Jacobian of the
        step, compiled on first use.

        Examples
        --------
        >>> import numpy as np, dynloop
        >>> m = dynloop.Map.from_function(lambda x, p: p[0] * x * x, 1, params={"a": 3.0})
        >>> J = m.jacobian_function(np.array([0.5]), np.array([3.0]))  # 2 a x
        >>> bool(abs(J[0, 0] - 3.0) < 1e-9)
        True
        """
        if self._jacobian is not None:
            return self._jacobian
        if "_finite_difference" not in self.__dict__:
            self._finite_difference = _finite_difference_function(self._step)
        return self._finite_difference

    def _symbolic_form(self):
        if callable(self._symbolic):  # the catalogue builds its sympy form only when asked
            self._symbolic = tuple(tuple(part) for part in self._symbolic())
        return self._symbolic

    @property
    def exprs(self):
        """The sympy expressions of the new state, or ``None`` for a map from a Python function.

        Examples
        --------
        >>> import dynloop
        >>> m = dynloop.maps.henon()
        >>> m.exprs, m.state_symbols, m.param_symbols
        ((-a*x**2 + y + 1, b*x), (x, y), (a, b))
        """
        return None if self._symbolic is None else self._symbolic_form()[0]

    @property
    def state_symbols(self):
        """The sympy symbols of the state, or ``None``."""
        return None if self._symbolic is None else self._symbolic_form()[1]

    @property
    def param_symbols(self):
        """The sympy symbols of the parameters (in the order of ``p``), or ``None``."""
        return None if self._symbolic is None else self._symbolic_form()[2]

    def __repr__(self):
        return (f"Map(name={self.name!r}, dim={self.dim}, params={self.params!r}, "
                f"jacobian={self.jacobian_kind!r})")

    # ------------------------------------------------------------------ System contract
    def resolve_params(self, params=None):
        """The parameter values with ``params`` overrides applied, in the order of ``p``.

        Parameters
        ----------
        params : dict, optional
            Values by parameter name (sympy symbols are accepted for their names).

        Returns
        -------
        dict
            Every parameter name with its float value (empty for a map without parameters).

        Raises
        ------
        ValueError
            For an unknown name (the message lists the allowed names), a value that is not a
            finite real, or a parameter without default that was not given.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.henon().resolve_params({"a": 1.2})
        {'a': 1.2, 'b': 0.3}
        """
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise invalid("params", params, "expected a dict of parameter values by name")
        resolved = dict(self._defaults)
        for key, value in params.items():
            name = _symbol_name(key)
            if name not in resolved:
                allowed = ", ".join(repr(n) for n in resolved) if resolved else "none"
                raise invalid(f"params[{name!r}]", value,
                              f"{self.name} has no parameter {name!r}; its parameters are: {allowed}"
                              + did_you_mean(name, resolved))
            resolved[name] = check_real(f"params[{name!r}]", value)
        missing = [name for name, value in resolved.items() if value is None]
        if missing:
            raise invalid(f"params[{missing[0]!r}]", None,
                          f"{self.name} has no default for {missing[0]!r}: "
                          f"pass params={{{missing[0]!r}: value}}")
        return resolved

    def _param_vector(self, params):
        return np.array(list(self.resolve_params(params).values()), dtype=np.float64).reshape(-1)

    def start_state(self, params=None):
        """The default start state (the ``x0`` given at construction), a fresh array of shape ``(dim,)``.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.logistic().start_state()
        array([0.1])
        """
        return self._x0.copy()

    def sweep_kernel(self, dtype=np.float64):
        """The compiled step and Jacobian, and the parameters, all of which a sweep varies per point.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.logistic(r=3.2).sweep_kernel().point_values
        array([3.2])
        """
        return SweepKernel(arguments=(self._step, self.jacobian_function),
                           point_fields=tuple(self.param_names), point_values=self._param_vector(None))

    def _run(self, x0, loops, params, mode, stride, n_last, dtype, record_attention):
        capacity = record_capacity(mode, loops, stride, n_last)
        output = RunOutput(*run_map(self._step, np.ascontiguousarray(x0, dtype=np.float64),
                                    self._param_vector(params), loops, mode, stride, capacity,
                                    np.dtype(dtype) == np.float32))
        output.states = output.states.astype(dtype, copy=False)
        output.final_state = output.final_state.astype(dtype, copy=False)
        return output

    def _tangent_run(self, x, basis, loops, params, with_log_det):
        # contract item 7 of base.py; the Jacobian is the analytic one or compiled finite differences
        basis = np.array(basis, dtype=np.float64, order="C", copy=True)
        return tangent_run_map(self._step, self.jacobian_function, self.check_state(x, "x"), basis,
                               int(loops), self._param_vector(params), bool(with_log_det))

    def stage_maps(self, x, params=None):
        """The state ``x`` and its image: an array of shape ``(2, dim)``.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.logistic(r=2.0).stage_maps([0.25])
        array([[0.25 ],
               [0.375]])
        """
        x = self.check_state(x, "x")
        return np.stack([x, self._step(x.copy(), self._param_vector(params))])

    def stage_jacobians(self, x, params=None):
        """The Jacobian of the step at ``x``, shape ``(1, dim, dim)`` (analytic or finite differences).

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.logistic(r=3.0).stage_jacobians([0.25])
        array([[[1.5]]])
        """
        x = self.check_state(x, "x")
        p = self._param_vector(params)
        if self._jacobian is None:
            return finite_difference_jacobian(self._step, x, p)[None]
        return np.array(self._jacobian(x, p))[None]

    def __call__(self, x, params=None):
        """Apply one step to ``x`` (same as :meth:`loop`).

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.henon()([0.0, 0.0])
        array([1., 0.])
        """
        return self.stage_maps(x, params)[1]


def _finite_difference_function(step):
    """A compiled first-class Jacobian function that differentiates ``step`` numerically."""
    @njit(JACOBIAN_SIGNATURE, **JIT_OPTIONS)
    def finite_difference(x, p):
        return finite_difference_jacobian(step, x, p)
    return finite_difference


#: What :meth:`Map.from_sympy` can compile beyond the elementary functions of Python's ``math``.
_PIECEWISE_FUNCTIONS = "Abs, sign, Piecewise, Min, Max, Mod, floor, ceiling, frac and Heaviside"


def _sympy_functions(exprs, state_symbols, param_symbols):
    """Python step and Jacobian functions printed from sympy expressions (not yet compiled).

    The state and parameter symbols are replaced by real ones, so that ``d|x|/dx`` is ``sign(x)``
    (not an expression in ``re`` and ``im``). Piecewise-smooth functions are differentiated away
    from their kinks and jumps: ``floor``, ``ceiling``, ``sign`` and ``Heaviside`` have derivative 0
    (the ``DiracDelta`` of a jump is dropped), ``Mod(u, m)`` is differentiated as
    ``u - m floor(u/m)`` and ``frac(u)`` as ``Mod(u, 1)``. A ``Piecewise`` without a ``True`` condition is NaN
    where no condition holds. Anything sympy cannot print as Python code raises a ``ValueError``
    naming it.
    """
    import sympy
    from sympy.core.function import AppliedUndef
    from sympy.printing.pycode import PythonCodePrinter

    dim = len(exprs)
    given = [str(e) for e in exprs]
    real = {s: sympy.Symbol(f"_x{i}", real=True) for i, s in enumerate(state_symbols)}
    real.update({s: sympy.Symbol(f"_p{i}", real=True) for i, s in enumerate(param_symbols)})
    exprs = [e.xreplace(real).replace(
        lambda e: isinstance(e, sympy.Piecewise) and e.args[-1].cond is not sympy.true,
        lambda e: sympy.Piecewise(*e.args, (sympy.nan, True))).replace(
        sympy.frac, lambda u: sympy.Mod(u, 1))  # sympy prints frac(u) * y as u % 1 * y, unbracketed
        for e in exprs]
    smooth = [e.replace(sympy.Mod, lambda u, m: u - m * sympy.floor(u / m)) for e in exprs]
    jumps = (sympy.floor, sympy.ceiling, sympy.sign, sympy.Heaviside)
    jacobian = [d.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
                 .replace(lambda e: isinstance(e, sympy.Derivative) and isinstance(e.expr, jumps),
                          lambda e: sympy.S.Zero)
                 .replace(lambda e: isinstance(e, sympy.Subs), lambda e: e.doit())
                for d in sympy.Matrix(smooth).jacobian([real[s] for s in state_symbols])]

    def source(function_name, outputs, targets, shape, what):
        printer = PythonCodePrinter({"strict": False, "human": False})
        unsupported = set()

        def code(value):
            _, missing, text = printer.doprint(value)
            unsupported.update(missing)
            return text

        assignments, reduced = sympy.cse(outputs, symbols=sympy.numbered_symbols("_c"))
        lines = [f"def {function_name}(x, p):"]
        lines += [f"    _x{i} = x[{i}]" for i in range(dim)]
        lines += [f"    _p{i} = p[{i}]" for i in range(len(param_symbols))]
        lines += [f"    {symbol} = {code(value)}" for symbol, value in assignments]
        lines.append(f"    out = np.empty({shape})")
        lines += [f"    out[{target}] = {code(value)}" for target, value in zip(targets, reduced)]
        lines.append("    return out")
        if unsupported:
            names = sorted({f"the undefined function {type(e).__name__!r}" if isinstance(e, AppliedUndef)
                            else f"a derivative sympy cannot evaluate, {e}" if isinstance(e, sympy.Derivative)
                            else type(e).__name__ for e in unsupported})
            raise invalid("exprs", given, f"{what} {', '.join(names)}, which cannot be compiled; maps from "
                          "sympy may use the elementary functions of Python's math module and "
                          f"{_PIECEWISE_FUNCTIONS}")
        return "\n".join(lines)

    step_source = source("sympy_step", exprs, range(dim), f"{dim}", "the expressions use")
    jacobian_source = source("sympy_jacobian", jacobian,
                             [f"{i}, {j}" for i in range(dim) for j in range(dim)],
                             f"({dim}, {dim})", "their Jacobian (sympy's derivative) uses")
    namespace = {"math": math, "np": np}
    exec(compile(step_source + "\n\n" + jacobian_source, "<dynloop.Map.from_sympy>", "exec"), namespace)
    return namespace["sympy_step"], namespace["sympy_jacobian"]
