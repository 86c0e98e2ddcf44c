"""The catalogue of classic maps, each a :class:`~dynloop.Map` with an analytic Jacobian.

Every function returns a map whose parameters are named like its keyword arguments, so
``simulate(logistic(), 100, params={"r": 3.2})`` and ``simulate(logistic(r=3.2), 100)`` agree.
The step and Jacobian functions are compiled once, on disk, and shared by every map built here;
each map also carries its sympy form (``map.exprs``), built on first access.

No map here reduces its state modulo anything: the circle and standard maps are lifted to the
real line and the plane (reduce ``mod 1`` or ``mod 2π`` yourself when you want the torus).
"""

__all__ = ["logistic", "henon", "lozi", "tent", "circle", "standard", "delayed_logistic", "linear"]

# Imported under private names: ``dir(dynloop.maps)`` shows the maps of ``__all__`` and nothing else.
import functools as _functools
import math as _math

import numpy as _np
from numba import njit as _njit

from ._errors import check_real as _check_real
from ._errors import invalid as _invalid
from .systems import _map_kernels
from .systems.base import register_catalogue as _register_catalogue
from .systems.maps import Map as _Map


def _step(function):
    return _njit(_map_kernels.STEP_SIGNATURE, cache=True, **_map_kernels.JIT_OPTIONS)(function)


def _jacobian(function):
    return _njit(_map_kernels.JACOBIAN_SIGNATURE, cache=True, **_map_kernels.JIT_OPTIONS)(function)


def _catalogue_map(*args, **kwargs):
    """A :class:`~dynloop.Map` of compiled catalogue functions (trusted: no guard around them)."""
    return _Map(*args, _trusted=True, **kwargs)


def _symbols(names):
    """Real sympy symbols, from a space-separated string or a list of names (taken verbatim)."""
    import sympy

    return [sympy.Symbol(name, real=True) for name in (names.split() if isinstance(names, str) else names)]


# --------------------------------------------------------------------------- logistic
@_step
def _logistic_step(x, p):
    return _np.array([p[0] * x[0] * (1.0 - x[0])])


@_jacobian
def _logistic_jacobian(x, p):
    return _np.array([[p[0] * (1.0 - 2.0 * x[0])]])


def _logistic_symbolic():
    x, r = _symbols("x r")
    return [r * x * (1 - x)], [x], [r]


def logistic(r=4.0):
    """The logistic map ``x' = r x (1 − x)``.

    Parameters
    ----------
    r : float
        Growth rate (default 4.0, the fully chaotic map on [0, 1]).

    Returns
    -------
    Map
        Parameter ``r``; start state ``x0 = 0.1``.

    Notes
    -----
    Fixed points ``x = 0`` (multiplier ``r``) and ``x* = (r − 1)/r`` (multiplier ``2 − r``,
    stable for ``1 < r < 3``). Period doubling at ``r = 3`` and ``r = 1 + sqrt(6)``; the
    Lyapunov exponent is ``ln 2`` at ``r = 4``.

    Examples
    --------
    >>> import dynloop
    >>> m = dynloop.maps.logistic(r=2.5)
    >>> round(float(dynloop.simulate(m, 200).final_state[0]), 12)  # (r - 1) / r
    0.6
    >>> round(float(m.jacobian([0.6])[0, 0]), 12)  # multiplier 2 - r
    -0.5
    """
    return _catalogue_map(_logistic_step, 1, params={"r": _check_real("r", r)}, jacobian=_logistic_jacobian,
                          name="logistic", x0=[0.1], _symbolic=_logistic_symbolic)


# --------------------------------------------------------------------------- Hénon
@_step
def _henon_step(x, p):
    return _np.array([1.0 - p[0] * x[0] * x[0] + x[1], p[1] * x[0]])


@_jacobian
def _henon_jacobian(x, p):
    return _np.array([[-2.0 * p[0] * x[0], 1.0], [p[1], 0.0]])


def _henon_symbolic():
    x, y, a, b = _symbols("x y a b")
    return [1 - a * x**2 + y, b * x], [x, y], [a, b]


def henon(a=1.4, b=0.3):
    """The Hénon map ``(x, y)' = (1 − a x² + y, b x)``.

    Parameters
    ----------
    a, b : float
        Default 1.4 and 0.3, the classic strange attractor.

    Returns
    -------
    Map
        Parameters ``a``, ``b``; start state ``(x, y) = (0, 0)``.

    Notes
    -----
    Fixed points ``x = (−(1 − b) ± sqrt((1 − b)² + 4a)) / (2a)``, ``y = b x`` (both saddles at
    the defaults). ``det J = −b`` everywhere, so the Lyapunov exponents sum to ``ln b``.

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> m = dynloop.maps.henon()
    >>> x = (-(1 - 0.3) + np.sqrt((1 - 0.3) ** 2 + 4 * 1.4)) / (2 * 1.4)
    >>> bool(np.allclose(m([x, 0.3 * x]), [x, 0.3 * x]))
    True
    >>> round(float(np.linalg.det(m.jacobian([0.2, -0.1]))), 12)
    -0.3
    """
    return _catalogue_map(_henon_step, 2, params={"a": _check_real("a", a), "b": _check_real("b", b)},
                          jacobian=_henon_jacobian, name="henon", x0=[0.0, 0.0], _symbolic=_henon_symbolic)


# --------------------------------------------------------------------------- Lozi
@_step
def _lozi_step(x, p):
    return _np.array([1.0 - p[0] * abs(x[0]) + x[1], p[1] * x[0]])


@_jacobian
def _lozi_jacobian(x, p):
    slope = -p[0] if x[0] > 0.0 else (p[0] if x[0] < 0.0 else 0.0)  # -a sign(x), sign(0) = 0
    return _np.array([[slope, 1.0], [p[1], 0.0]])


def _lozi_symbolic():
    import sympy

    x, y, a, b = _symbols("x y a b")
    return [1 - a * sympy.Abs(x) + y, b * x], [x, y], [a, b]


def lozi(a=1.7, b=0.5):
    """The Lozi map ``(x, y)' = (1 − a|x| + y, b x)``, a piecewise-linear Hénon map.

    Parameters
    ----------
    a, b : float
        Default 1.7 and 0.5, the classic chaotic attractor.

    Returns
    -------
    Map
        Parameters ``a``, ``b``; start state ``(x, y) = (0, 0)``.

    Notes
    -----
    ``J = [[−a sign(x), 1], [b, 0]]``; at the kink ``x = 0`` the Jacobian takes ``sign(0) = 0``
    (the mean of the two one-sided derivatives, as the sympy form ``Abs`` gives). ``det J = −b``
    everywhere, so the Lyapunov exponents sum to ``ln b``; at the defaults the largest is about
    0.47. The fixed point with ``x > 0`` is ``x* = 1/(1 + a − b)``, ``y* = b x*``.

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> m = dynloop.maps.lozi()
    >>> x = 1 / (1 + 1.7 - 0.5)
    >>> bool(np.allclose(m([x, 0.5 * x]), [x, 0.5 * x]))
    True
    >>> m.jacobian([-0.2, 0.1])
    array([[1.7, 1. ],
           [0.5, 0. ]])
    >>> spectrum = dynloop.lyapunov_spectrum(m, steps=20000)
    >>> bool(abs(spectrum.exponents.sum() - np.log(0.5)) < 1e-8), bool(spectrum.largest > 0.4)
    (True, True)
    """
    return _catalogue_map(_lozi_step, 2, params={"a": _check_real("a", a), "b": _check_real("b", b)},
                          jacobian=_lozi_jacobian, name="lozi", x0=[0.0, 0.0], _symbolic=_lozi_symbolic)


# --------------------------------------------------------------------------- tent
@_step
def _tent_step(x, p):
    return _np.array([p[0] * min(x[0], 1.0 - x[0])])


@_jacobian
def _tent_jacobian(x, p):
    return _np.array([[p[0] if x[0] <= 0.5 else -p[0]]])


def _tent_symbolic():
    import sympy

    x, mu = _symbols("x mu")
    return [mu * sympy.Min(x, 1 - x)], [x], [mu]


def tent(mu=2.0):
    """The tent map ``x' = mu · min(x, 1 − x)``.

    Parameters
    ----------
    mu : float
        Slope (default 2.0).

    Returns
    -------
    Map
        Parameter ``mu``; start state ``x0 = 0.1``.

    Notes
    -----
    Fixed points ``x = 0`` and, for ``mu > 1``, ``x* = mu / (1 + mu)`` with multiplier ``−mu``.
    The Jacobian at the kink ``x = 1/2`` is taken as the left derivative, ``mu``.
    With ``mu = 2`` every binary floating-point orbit collapses to exactly 0 within about 55
    steps (each step shifts out one bit): an artefact of the arithmetic, not a fixed point of the
    real map.

    Examples
    --------
    >>> import dynloop
    >>> m = dynloop.maps.tent(mu=1.5)
    >>> float(m([0.6])[0]), float(m.jacobian([0.6])[0, 0])
    (0.6000000000000001, -1.5)
    >>> dynloop.simulate(dynloop.maps.tent(), 80).final_state  # the floating-point collapse
    array([0.])
    """
    return _catalogue_map(_tent_step, 1, params={"mu": _check_real("mu", mu)}, jacobian=_tent_jacobian,
                          name="tent", x0=[0.1], _symbolic=_tent_symbolic)


# --------------------------------------------------------------------------- circle
@_step
def _circle_step(x, p):
    return _np.array([x[0] + p[0] - p[1] / (2.0 * _math.pi) * _math.sin(2.0 * _math.pi * x[0])])


@_jacobian
def _circle_jacobian(x, p):
    return _np.array([[1.0 - p[1] * _math.cos(2.0 * _math.pi * x[0])]])


def _circle_symbolic():
    import sympy

    theta, omega, k = _symbols("theta omega k")
    return [theta + omega - k / (2 * sympy.pi) * sympy.sin(2 * sympy.pi * theta)], [theta], [omega, k]


def circle(omega=0.1, k=1.0):
    """The sine circle map, lifted: ``θ' = θ + Ω − K/(2π) · sin(2πθ)`` (no ``mod 1``).

    Parameters
    ----------
    omega : float
        Bare rotation ``Ω`` (default 0.1).
    k : float
        Nonlinearity ``K`` (default 1.0, the critical map: invertible for ``K ≤ 1``).

    Returns
    -------
    Map
        Parameters ``omega``, ``k``; start state ``θ0 = 0``.

    Notes
    -----
    The state is the lift to the real line, so ``(θ_t − θ_0)/t`` tends to the rotation number
    and a periodic orbit of the circle with rotation ``p/q`` is a drift of ``p`` every ``q``
    steps. Fixed points exist when ``|Ω| ≤ K/(2π)``: ``sin(2πθ*) = 2πΩ/K``, multiplier
    ``1 − K cos(2πθ*)``. At the defaults the orbit locks to the stable one,
    ``θ* = asin(0.2π)/(2π) ≈ 0.10811``.

    Examples
    --------
    >>> import dynloop, math
    >>> theta = dynloop.simulate(dynloop.maps.circle(), 200).final_state[0]
    >>> round(float(theta), 10) == round(math.asin(0.2 * math.pi) / (2 * math.pi), 10)
    True
    """
    return _catalogue_map(_circle_step, 1,
                          params={"omega": _check_real("omega", omega), "k": _check_real("k", k)},
                          jacobian=_circle_jacobian, name="circle", x0=[0.0], _symbolic=_circle_symbolic)


# --------------------------------------------------------------------------- standard
@_step
def _standard_step(x, p):
    momentum = x[1] + p[0] * _math.sin(x[0])
    return _np.array([x[0] + momentum, momentum])


@_jacobian
def _standard_jacobian(x, p):
    kick = p[0] * _math.cos(x[0])
    return _np.array([[1.0 + kick, 1.0], [kick, 1.0]])


def _standard_symbolic():
    import sympy

    theta, momentum, k = _symbols("theta p k")
    kicked = momentum + k * sympy.sin(theta)
    return [theta + kicked, kicked], [theta, momentum], [k]


def standard(k=0.971635):
    """The Chirikov standard map on the plane: ``p' = p + K sin θ``, ``θ' = θ + p'``.

    The state is ``(θ, p)``; neither coordinate is reduced ``mod 2π`` (this is the lift of the
    torus map, so orbits on rotational tori drift in ``θ``).

    Parameters
    ----------
    k : float
        Kick strength ``K`` (default 0.971635, Greene's critical value where the last KAM
        torus breaks).

    Returns
    -------
    Map
        Parameter ``k``; start state ``(θ, p) = (0.5, 0.5)``.

    Notes
    -----
    ``J = [[1 + K cos θ, 1], [K cos θ, 1]]`` with ``det J = 1`` (area preserving). Fixed points
    ``(0, 0)`` (a saddle, trace ``2 + K``) and ``(π, 0)`` (elliptic for ``0 < K < 4``, trace
    ``2 − K``).

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> m = dynloop.maps.standard()
    >>> bool(np.allclose(m([np.pi, 0.0]), [np.pi, 0.0]))
    True
    >>> round(float(np.linalg.det(m.jacobian([0.3, 1.2]))), 12)
    1.0
    """
    return _catalogue_map(_standard_step, 2, params={"k": _check_real("k", k)}, jacobian=_standard_jacobian,
                          name="standard", x0=[0.5, 0.5], _symbolic=_standard_symbolic)


# --------------------------------------------------------------------------- delayed logistic
@_step
def _delayed_logistic_step(x, p):
    return _np.array([p[0] * x[0] * (1.0 - x[1]), x[0]])


@_jacobian
def _delayed_logistic_jacobian(x, p):
    return _np.array([[p[0] * (1.0 - x[1]), -p[0] * x[0]], [1.0, 0.0]])


def _delayed_logistic_symbolic():
    x, y, r = _symbols("x y r")
    return [r * x * (1 - y), x], [x, y], [r]


def delayed_logistic(r=2.1):
    """The delayed logistic map ``(x, y)' = (r x (1 − y), x)``.

    Parameters
    ----------
    r : float
        Growth rate (default 2.1, just past the Neimark–Sacker bifurcation: an invariant circle).

    Returns
    -------
    Map
        Parameter ``r``; start state ``(x, y) = (0.1, 0.1)``.

    Notes
    -----
    Fixed point ``x* = y* = (r − 1)/r`` with ``J = [[1, 1 − r], [1, 0]]``: trace 1, determinant
    ``r − 1``, stable for ``1 < r < 2``; at ``r = 2`` a Neimark–Sacker bifurcation (``det J = 1``).

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> m = dynloop.maps.delayed_logistic(r=1.8)
    >>> bool(np.allclose(dynloop.simulate(m, 2000).final_state, [0.8 / 1.8, 0.8 / 1.8]))
    True
    """
    return _catalogue_map(_delayed_logistic_step, 2, params={"r": _check_real("r", r)},
                          jacobian=_delayed_logistic_jacobian, name="delayed_logistic", x0=[0.1, 0.1],
                          _symbolic=_delayed_logistic_symbolic)


# --------------------------------------------------------------------------- linear
@_step
def _linear_step(x, p):
    n = x.shape[0]
    out = _np.empty(n)
    for i in range(n):
        total = p[n * n + i]
        for j in range(n):
            total += p[i * n + j] * x[j]
        out[i] = total
    return out


@_jacobian
def _linear_jacobian(x, p):
    n = x.shape[0]
    return p[:n * n].copy().reshape((n, n))


def _linear_names(n):
    return [f"M[{i},{j}]" for i in range(n) for j in range(n)] + [f"c[{i}]" for i in range(n)]


def _linear_symbolic(n):
    import sympy

    names = _linear_names(n)
    params = _symbols(names)
    state = _symbols([f"x{i}" for i in range(n)])
    matrix = sympy.Matrix(n, n, params[:n * n])
    exprs = matrix * sympy.Matrix(state) + sympy.Matrix(params[n * n:])
    return list(exprs), state, params


def _real_array(field, value, allowed):
    try:
        array = _np.array(value, dtype=_np.float64)
    except (TypeError, ValueError):
        raise _invalid(field, value, allowed) from None
    if not _np.all(_np.isfinite(array)):
        raise _invalid(field, array.tolist(), "every entry must be finite")
    return array


def linear(M, c=None):
    """The affine map ``x' = M x + c``.

    Parameters
    ----------
    M : array_like, shape (n, n)
        The matrix (finite entries).
    c : array_like, shape (n,), optional
        The offset (default zeros).

    Returns
    -------
    Map
        Its parameters are the entries of ``M`` and ``c``, named ``"M[i,j]"`` and ``"c[i]"`` (row
        major, ``M`` first: the parameter vector is ``[M.ravel(), c]``), so one entry can be
        overridden with ``params={"M[0,1]": 0.5}``. Start state: ones.

    Notes
    -----
    With ``ρ(M) < 1`` the single fixed point ``(I − M)⁻¹ c`` attracts at rate ``ρ(M)``; the
    Lyapunov exponents are ``ln |eigenvalues of M|``. (A loop of several affine stages is
    :class:`~dynloop.AffineLoop`.)

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> m = dynloop.maps.linear([[0.5, 0.2], [0.0, 0.3]], c=[1.0, 1.0])
    >>> m.param_names
    ('M[0,0]', 'M[0,1]', 'M[1,0]', 'M[1,1]', 'c[0]', 'c[1]')
    >>> fixed = np.linalg.solve(np.eye(2) - [[0.5, 0.2], [0.0, 0.3]], [1.0, 1.0])
    >>> bool(np.allclose(dynloop.simulate(m, 200).final_state, fixed))
    True
    """
    M = _real_array("M", M, "expected a non-empty square matrix of real numbers")
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.size == 0:
        raise _invalid("M", M.tolist(), "expected a non-empty square matrix of real numbers")
    n = M.shape[0]
    c = _np.zeros(n) if c is None else _real_array("c", c, f"expected a vector of {n} real numbers")
    if c.shape != (n,):
        raise _invalid("c", c.tolist(), f"expected a vector of {n} real numbers (the size of M)")
    params = dict(zip(_linear_names(n), _np.concatenate([M.ravel(), c]).tolist()))
    return _catalogue_map(_linear_step, n, params=params, jacobian=_linear_jacobian, name=f"linear(n={n})",
                          x0=_np.ones(n), _symbolic=_functools.partial(_linear_symbolic, n))


_register_catalogue(__all__)  # the model layer names the catalogue without importing it
