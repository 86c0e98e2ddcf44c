"""The stages of a looped block as sympy expressions, with their Jacobians in closed form.

Every stage is a map of a column vector (one token's row of the state, ``T = 1``; the linear and
MLP mixers act row by row, so tokens do not interact). The Jacobians are built by the chain rule
from the closed forms of docs/background.md (Norm placements) and of each mixer, not by differentiating the
stage expression: the tests compare both, and both with the compiled kernels.
"""

__all__ = ["Scheme", "norm", "norm_jacobian", "activation", "Stage", "block_stages", "STRUCTURES"]

import dataclasses
import fractions

import numpy as np
import sympy

from .._errors import check_choice, check_int, invalid
from ..systems import _block_kernels as _kernels

STRUCTURES = ("scalar", "diagonal", "commuting", "2x2", "general")
_SMOOTH = ("tanh", "gelu", "silu")
_MIXERS = ("linear",) + _SMOOTH


def _real(name):
    return sympy.Symbol(name, real=True)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """A looped block described by its scheme only: what :func:`dynloop.symbolic.derive` needs.

    Parameters
    ----------
    norm : str
        Norm placement, as ``BlockSpec.norm`` (``"none"``, ``"pre"``, ``"post"``, ``"sandwich"``,
        ``"peri"``, ``"pre_outer"``, ``"peri_outer"``, ``"sphere"``).
    norm_kind : {"rms", "layer", "l2"}
    injection : {"none", "additive", "concat", "diagonal", "convex"}
    mixer : str
        ``"linear"`` (branch ``W x``) or a smooth activation ``"tanh"``, ``"gelu"``, ``"silu"``
        (branch ``V φ(U x)``, the MLP mixer).
    layers : int
        Block size ``k``.
    width : int
        State width ``d`` for ``structure="general"`` (other structures fix it: 1 or 2).
    residual_scale, injection_scale, norm_eps : number or sympy expression
        Default: the real symbols ``alpha`` and ``beta``, and ``ε = 0`` (exact scale invariance).

    Examples
    --------
    >>> from dynloop.symbolic import Scheme
    >>> Scheme(norm="post", layers=2)
    Scheme(norm='post', norm_kind='rms', injection='none', mixer='linear', layers=2, width=2, residual_scale=alpha, injection_scale=beta, norm_eps=0)
    >>> Scheme.from_spec(__import__("dynloop").BlockSpec(mixer="mlp", activation="tanh")).mixer
    'tanh'
    """

    norm: str = "none"
    norm_kind: str = "rms"
    injection: str = "none"
    mixer: str = "linear"
    layers: int = 1
    width: int = 2
    residual_scale: object = _real("alpha")
    injection_scale: object = _real("beta")
    norm_eps: object = sympy.Integer(0)

    def __post_init__(self):
        check_choice("norm", self.norm, _kernels.NORMS)
        check_choice("norm_kind", self.norm_kind, _kernels.NORM_KINDS)
        check_choice("injection", self.injection, _kernels.INJECTIONS)
        if self.mixer not in _MIXERS:
            raise invalid("mixer", self.mixer, "symbolic derivations take 'linear' or a smooth activation: "
                          + ", ".join(repr(m) for m in _SMOOTH))
        check_int("layers", self.layers, minimum=1)
        check_int("width", self.width, minimum=1)
        for name in ("residual_scale", "injection_scale", "norm_eps"):
            object.__setattr__(self, name, _exact(getattr(self, name), name))

    @classmethod
    def from_spec(cls, spec):
        """The scheme of a :class:`~dynloop.BlockSpec` (its numeric fields may be sympy symbols)."""
        if spec.mixer in ("attention", "transformer"):
            raise invalid("mixer", spec.mixer, "symbolic derivations take mixer='linear' or 'mlp' with a smooth "
                          "activation (attention couples tokens; use the numeric tools)")
        mixer = "linear" if spec.mixer == "linear" else spec.activation
        if mixer == "relu":
            raise invalid("activation", "relu", "expected a smooth activation: " + ", ".join(_SMOOTH))
        return cls(norm=spec.norm, norm_kind=spec.norm_kind, injection=spec.injection, mixer=mixer,
                   layers=spec.layers, width=spec.width, residual_scale=spec.residual_scale,
                   injection_scale=spec.injection_scale, norm_eps=spec.norm_eps)


def _exact(value, field):
    """Numbers become exact sympy numbers (floats by their shortest decimal form)."""
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise invalid(field, value, "expected a real number or a sympy expression")
    return rational(float(value))


def rational(value):
    """The exact rational of a float: a simple fraction when one is the same float (1/3, 7/10), else its
    shortest decimal form (exact to the last bit, and fast, unlike ``nsimplify``'s search)."""
    value = float(value)
    if value.is_integer():
        return sympy.Integer(int(value))
    simple = fractions.Fraction(value).limit_denominator(1000)
    if float(simple) == value:
        return sympy.Rational(simple.numerator, simple.denominator)
    return sympy.Rational(repr(value))


# ------------------------------------------------------------ norms (docs/background.md, Norm placements)
def _gain(gain, d):
    return sympy.ones(d, 1) if gain is None else sympy.Matrix(gain)


def norm(x, kind, eps, gain=None):
    """``N(x; g)`` of a column vector: RMSNorm, LayerNorm (no bias) or L2 (MODEL.md).

    Examples
    --------
    >>> import sympy
    >>> from dynloop.symbolic.stages import norm
    >>> x = sympy.Matrix(sympy.symbols("x1 x2", real=True))
    >>> norm(x, "l2", 0).T
    Matrix([[x1/sqrt(x1**2 + x2**2), x2/sqrt(x1**2 + x2**2)]])
    """
    d = x.shape[0]
    g = _gain(gain, d)
    if kind == "layer":
        x = x - sympy.ones(d, 1) * (sum(x) / d)
    square = sum(v**2 for v in x)
    scale = sympy.sqrt(square / d + eps) if kind in ("rms", "layer") else sympy.sqrt(square + eps)
    return sympy.Matrix([g[i] * x[i] / scale for i in range(d)])


def norm_jacobian(x, kind, eps, gain=None):
    """The closed-form Jacobian of :func:`norm` at ``x`` (docs/background.md, Norm placements).

    RMSNorm ``diag(g)(1/r)(I − x xᵀ/(d r²))``, ``r = sqrt(|x|²/d + ε)``; LayerNorm
    ``diag(g)(1/s)(I − 11ᵀ/d − (x−μ)(x−μ)ᵀ/(d s²))``; L2 ``diag(g)(1/ρ)(I − x xᵀ/ρ²)``,
    ``ρ = sqrt(|x|² + ε)`` (``(I − x̂x̂ᵀ)/|x|`` at ``ε = 0``).

    Examples
    --------
    >>> import sympy
    >>> from dynloop.symbolic.stages import norm, norm_jacobian
    >>> x = sympy.Matrix(sympy.symbols("x1 x2 x3", real=True))
    >>> eps = sympy.Symbol("epsilon", positive=True)
    >>> sympy.simplify(norm_jacobian(x, "layer", eps) - norm(x, "layer", eps).jacobian(x))
    Matrix([
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0]])
    """
    d = x.shape[0]
    g = sympy.diag(*_gain(gain, d))
    eye = sympy.eye(d)
    if kind == "layer":
        c = x - sympy.ones(d, 1) * (sum(x) / d)
        s = sympy.sqrt(sum(v**2 for v in c) / d + eps)
        return g * (eye - sympy.ones(d, d) / d - c * c.T / (d * s**2)) / s
    if kind == "rms":
        r = sympy.sqrt(sum(v**2 for v in x) / d + eps)
        return g * (eye - x * x.T / (d * r**2)) / r
    rho = sympy.sqrt(sum(v**2 for v in x) + eps)
    return g * (eye - x * x.T / rho**2) / rho


def activation(name):
    """``(φ, φ')`` of a smooth activation as functions of a sympy expression (MODEL.md).

    Examples
    --------
    >>> import sympy
    >>> from dynloop.symbolic.stages import activation
    >>> phi, dphi = activation("tanh")
    >>> dphi(sympy.Integer(0))
    1
    """
    if name == "tanh":
        return sympy.tanh, lambda u: 1 - sympy.tanh(u) ** 2
    if name == "gelu":
        cdf = lambda u: (1 + sympy.erf(u / sympy.sqrt(2))) / 2  # noqa: E731
        pdf = lambda u: sympy.exp(-u**2 / 2) / sympy.sqrt(2 * sympy.pi)  # noqa: E731
        return (lambda u: u * cdf(u)), (lambda u: cdf(u) + u * pdf(u))
    if name == "silu":
        sigma = lambda u: 1 / (1 + sympy.exp(-u))  # noqa: E731
        return (lambda u: u * sigma(u)), (lambda u: sigma(u) * (1 + u * (1 - sigma(u))))
    raise invalid("activation", name, "expected one of " + ", ".join(repr(a) for a in _SMOOTH))


# --------------------------------------------------------------------------- stages
@dataclasses.dataclass
class Stage:
    """One stage: ``output = f(x)`` with its closed-form Jacobian, both in the input symbols ``x``.

    Attributes
    ----------
    name : str
        ``"inject"``, ``"layer0"``, …, ``"outer"`` (``BlockSpec.stage_names``), or ``"step"``.
    x : sympy Matrix (n × 1)
        Input symbols.
    expr : sympy Matrix (n × 1)
        The stage map.
    jacobian : sympy Matrix (n × n)
        ``∂ expr / ∂ x`` (chain rule of closed forms; for maps, sympy's differentiation).
    """

    name: str
    x: sympy.Matrix
    expr: sympy.Matrix
    jacobian: sympy.Matrix

    def at(self, point):
        """(value, Jacobian) at a point (a sequence of sympy expressions)."""
        mapping = dict(zip(self.x, point))
        return self.expr.xreplace(mapping), self.jacobian.xreplace(mapping)


def _matrix(prefix, d, structure, given=None):
    """A d × d weight matrix: a symbol (scalar/diagonal structures) or a matrix of symbols."""
    if given is not None:
        return sympy.Matrix(given).applyfunc(lambda v: _exact(float(v), prefix))
    if d == 1:
        return sympy.Matrix([[_real(prefix)]])
    if structure in ("diagonal", "commuting"):
        return sympy.diag(*[_real(f"{prefix}_{i + 1}") for i in range(d)])
    return sympy.Matrix(d, d, lambda i, j: _real(f"{prefix}_{i + 1}{j + 1}"))


def _vector(prefix, d, given=None):
    if given is not None:
        return sympy.Matrix([_exact(float(v), prefix) for v in np.ravel(given)])
    if d == 1:
        return sympy.Matrix([_real(prefix)])
    return sympy.Matrix([_real(f"{prefix}_{i + 1}") for i in range(d)])


def block_stages(scheme, structure, d, weights=None, inputs=None):
    """The stages of one loop of a block, in ``BlockSpec.stage_names`` order.

    Parameters
    ----------
    scheme : Scheme
    structure : str
        How the weights enter (names in :data:`STRUCTURES`); ``"diagonal"`` uses diagonal weight
        matrices whose entries are the eigenvalues ``lambda{ℓ}_{i}`` of layer ℓ.
    d : int
        State width.
    weights : dict, optional
        Numeric arrays (``BlockSpec`` layout) that replace the symbols of the same name.
    inputs : array_like, optional
        Numeric input ``e`` (one token).

    Returns
    -------
    stages : list of Stage
    x : sympy Matrix
        The state symbols.
    """
    weights = weights or {}
    x = sympy.Matrix([_real("x")]) if d == 1 else sympy.Matrix([_real(f"x_{i + 1}") for i in range(d)])
    a, beta, eps = scheme.residual_scale, scheme.injection_scale, scheme.norm_eps
    kind = scheme.norm_kind
    e = _vector("e", d, None if inputs is None else np.ravel(inputs)[:d])
    eye = sympy.eye(d)
    stages = []

    def given(name, layer=None):
        if name not in weights:
            return None
        value = np.asarray(weights[name], dtype=float)
        return value[layer] if layer is not None else value

    if scheme.injection != "none":
        if scheme.injection == "additive":
            lin, const = eye, beta * e
        elif scheme.injection == "concat":
            lin = _matrix("h", d, structure, given("inject_h"))
            const = beta * _matrix("u", d, structure, given("inject_e")) * e
        elif scheme.injection == "diagonal":
            dt = _vector("dt", d, given("inject_dt"))
            alog = _vector("a_log", d, given("inject_a_log"))
            delta = dt.applyfunc(lambda v: sympy.log(1 + sympy.exp(v)))
            lin = sympy.diag(*[sympy.exp(-delta[i] * sympy.exp(alog[i])) for i in range(d)])
            b = _matrix("b", d, structure, given("inject_b"))
            const = beta * sympy.matrix_multiply_elementwise(delta, b * e)
        else:  # convex
            c_alpha = _vector("c_alpha", d, given("inject_alpha"))
            c_beta = _vector("c_beta", d, given("inject_beta"))
            lin = sympy.diag(*c_alpha)
            const = beta * sympy.matrix_multiply_elementwise(c_beta, e)
        stages.append(Stage("inject", x, lin * x + const, lin))

    for layer in range(scheme.layers):
        if scheme.mixer == "linear":
            w = _matrix(f"lambda{layer}" if structure in ("diagonal", "commuting") else f"w{layer}", d, structure,
                        None if given("linear") is None else given("linear", layer))

            def branch(y, w=w):
                return w * y, w
        else:
            phi, dphi = activation(scheme.mixer)
            u = _matrix(f"u{layer}", d, structure, None if given("mlp_in") is None else given("mlp_in", layer))
            v = _matrix(f"v{layer}", d, structure, None if given("mlp_out") is None else given("mlp_out", layer))

            def branch(y, u=u, v=v, phi=phi, dphi=dphi):
                pre = u * y
                return v * pre.applyfunc(phi), v * sympy.diag(*pre.applyfunc(dphi)) * u
        value, jac = _sublayer(scheme.norm, kind, eps, a, x, branch)
        stages.append(Stage(f"layer{layer}", x, value, jac))

    if scheme.norm.endswith("_outer"):
        stages.append(Stage("outer", x, norm(x, kind, eps), norm_jacobian(x, kind, eps)))
    return stages, x


def _sublayer(placement, kind, eps, a, x, branch):
    """Value and Jacobian of one sub-layer ``X + aF(X)`` etc. (MODEL.md, norm placement table)."""
    d = x.shape[0]
    eye = sympy.eye(d)
    if placement == "none":
        f, jf = branch(x)
        return x + a * f, eye + a * jf
    if placement in ("pre", "pre_outer"):
        n, jn = norm(x, kind, eps), norm_jacobian(x, kind, eps)
        f, jf = branch(n)
        return x + a * f, eye + a * jf * jn
    if placement == "post":
        f, jf = branch(x)
        y = x + a * f
        return norm(y, kind, eps), norm_jacobian(y, kind, eps) * (eye + a * jf)
    if placement == "sandwich":
        n, jn = norm(x, kind, eps), norm_jacobian(x, kind, eps)
        f, jf = branch(n)
        y = x + a * f
        return norm(y, kind, eps), norm_jacobian(y, kind, eps) * (eye + a * jf * jn)
    if placement in ("peri", "peri_outer"):
        n, jn = norm(x, kind, eps), norm_jacobian(x, kind, eps)
        f, jf = branch(n)
        return x + a * norm(f, kind, eps), eye + a * norm_jacobian(f, kind, eps) * jf * jn
    # sphere: N(N(x; 1) + a (N(F(x); 1) − N(x; 1)); 1)
    n, jn = norm(x, kind, eps), norm_jacobian(x, kind, eps)
    f, jf = branch(x)
    nf, jnf = norm(f, kind, eps), norm_jacobian(f, kind, eps) * jf
    y = n + a * (nf - n)
    return norm(y, kind, eps), norm_jacobian(y, kind, eps) * (jn + a * (jnf - jn))
