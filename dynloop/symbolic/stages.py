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

from .._errors import check_int, invalid
from ..components import ACTIVATIONS, INJECTIONS, MIXERS, NORM_KINDS, NORMS

STRUCTURES = ("scalar", "diagonal", "commuting", "2x2", "general")
_SMOOTH = tuple(name for name, activation in ACTIVATIONS.items() if activation.smooth)
# the branches with a closed form: a row-wise mixer without an activation by its name, or the MLP by its
# activation
_PLAIN = tuple(name for name, mixer in MIXERS.items() if mixer.symbolic and "mlp" not in mixer.branches)
_MIXERS = _PLAIN + _SMOOTH


def _real(name):
    return sympy.Symbol(name, real=True)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """A looped block described by its scheme only: what :func:`dynloop.symbolic.derive` needs.

    Parameters
    ----------
    norm : str
        Norm placement, as ``BlockSpec.norm`` (a name in ``dynloop.components.NORMS``).
    norm_kind : str
        A name in ``dynloop.components.NORM_KINDS``.
    injection : str
        A name in ``dynloop.components.INJECTIONS``.
    mixer : str
        ``"linear"`` (branch ``W x``) or a smooth activation ``"tanh"``, ``"gelu"``, ``"silu"``
        (branch ``V φ(U x)``, the MLP mixer).
    layers : int
        Block size ``k``.
    width : int
        State width ``d`` for ``structure="general"`` (other structures fix it: 1 or 2).
    residual_scale, injection_scale, norm_eps : number or sympy expression
        Default: the real symbols ``alpha`` and ``beta``, and ``ε = 0`` (exact scale invariance).
    skip_scale : number or sympy expression
        Multiplier ``s`` of every residual path (``BlockSpec.skip_scale``); default 1.

    Examples
    --------
    >>> from dynloop.symbolic import Scheme
    >>> Scheme(norm="post", layers=2)
    Scheme(norm='post', norm_kind='rms', injection='none', mixer='linear', layers=2, width=2,
           residual_scale=alpha, injection_scale=beta, norm_eps=0, skip_scale=1)
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
    skip_scale: object = sympy.Integer(1)

    def __post_init__(self):
        NORMS.check("norm", self.norm)
        NORM_KINDS.check("norm_kind", self.norm_kind)
        INJECTIONS.check("injection", self.injection)
        if self.mixer not in _MIXERS:
            raise invalid("mixer", self.mixer,
                          "symbolic derivations take " + ", ".join(repr(m) for m in _PLAIN)
                          + " or a smooth activation: " + ", ".join(repr(m) for m in _SMOOTH))
        check_int("layers", self.layers, minimum=1)
        check_int("width", self.width, minimum=1)
        for name in ("residual_scale", "injection_scale", "norm_eps", "skip_scale"):
            object.__setattr__(self, name, _exact(getattr(self, name), name))

    @classmethod
    def from_spec(cls, spec):
        """The scheme of a :class:`~dynloop.BlockSpec` (its numeric fields may be sympy symbols)."""
        if MIXERS[spec.mixer].symbolic is None:
            raise invalid("mixer", spec.mixer, "symbolic derivations take a row-wise mixer: " + ", ".join(
                repr(name) for name, mixer in MIXERS.items() if mixer.symbolic)
                + " (attention couples tokens; use the numeric tools)")
        mixer = spec.mixer if spec.mixer in _PLAIN else spec.activation
        if mixer not in _MIXERS:
            raise invalid("activation", spec.activation,
                          "expected a smooth activation: " + ", ".join(_SMOOTH))
        return cls(norm=spec.norm, norm_kind=spec.norm_kind, injection=spec.injection, mixer=mixer,
                   layers=spec.layers, width=spec.width, residual_scale=spec.residual_scale,
                   injection_scale=spec.injection_scale, norm_eps=spec.norm_eps, skip_scale=spec.skip_scale)


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
    kind = NORM_KINDS[kind]
    if kind.centred:
        x = x - sympy.ones(d, 1) * (sum(x) / d)
    square = sum(v**2 for v in x)
    scale = sympy.sqrt(square / d + eps) if kind.mean_square else sympy.sqrt(square + eps)
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
    kind = NORM_KINDS[kind]
    if kind.centred:
        x = x - sympy.ones(d, 1) * (sum(x) / d)
        eye = eye - sympy.ones(d, d) / d
    if kind.mean_square:
        r = sympy.sqrt(sum(v**2 for v in x) / d + eps)
        return g * (eye - x * x.T / (d * r**2)) / r
    r = sympy.sqrt(sum(v**2 for v in x) + eps)
    return g * (eye - x * x.T / r**2) / r


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
    if name not in _SMOOTH:
        raise invalid("activation", name, "expected one of " + ", ".join(repr(a) for a in _SMOOTH))
    return ACTIVATIONS[name].sympy()


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
    placement, injection = NORMS[scheme.norm], INJECTIONS[scheme.injection]
    declared = {array.name: array for part in (*MIXERS.values(), injection) for array in part.arrays}

    def array(name, layer=None):
        """The sympy form of a weight: its given numbers, else its symbols (``Array.symbol``)."""
        spec = declared[name]
        value = None
        if name in weights:
            value = np.asarray(weights[name], dtype=float)
            value = value[layer] if layer is not None else value
        if spec.shape[-1:] == ("d",) and len(spec.shape) == 1:
            return _vector(spec.symbol, d, value)
        eigen = spec.eigen_symbol and structure in ("diagonal", "commuting")
        symbol = spec.eigen_symbol if eigen else spec.symbol
        return _matrix(symbol if layer is None else f"{symbol}{layer}", d, structure, value)

    stages = []
    if injection.injects:
        matrix, diagonal, term = injection.symbolic(array, e, beta)
    if injection.has_stage:
        lin = (matrix if matrix is not None
               else sympy.diag(*diagonal) if diagonal is not None else sympy.eye(d))
        if injection.combine == "multiply":
            gated = sympy.matrix_multiply_elementwise(lin * x, term)
            stages.append(Stage("inject", x, gated, sympy.diag(*term) * lin))
        elif injection.then_norm:  # unit gains, as every norm here
            u = lin * x + term
            stages.append(Stage("inject", x, norm(u, kind, eps), norm_jacobian(u, kind, eps) * lin))
        else:
            stages.append(Stage("inject", x, lin * x + term, lin))

    mixer_name = scheme.mixer if scheme.mixer in MIXERS else "mlp"
    activation_ = ACTIVATIONS[scheme.mixer] if scheme.mixer in ACTIVATIONS else None
    for layer in range(scheme.layers):
        branch = MIXERS[mixer_name].symbolic(array, layer, activation_)
        entering = x + term if injection.each_layer else x  # the input added inside the layer's stage
        value, jac = _sublayer(placement, kind, eps, a, entering, branch, scheme.skip_scale)
        stages.append(Stage(f"layer{layer}", x, value, jac))

    if placement.outer:
        stages.append(Stage("outer", x, norm(x, kind, eps), norm_jacobian(x, kind, eps)))
    return stages, x


def _sublayer(placement, kind, eps, a, x, branch, skip=1):
    """Value and Jacobian of one sub-layer, built from the placement's flags (``dynloop.components``).

    The residual path is ``skip · x`` (written ``x`` when ``skip`` is 1, so that the expressions
    are those of the plain residual).
    """
    d = x.shape[0]
    eye = sympy.eye(d)
    residual, residual_jacobian = (x, eye) if skip == 1 else (skip * x, skip * eye)
    if placement.sphere:  # N(N(x; 1) + a (N(F(x); 1) − N(x; 1)); 1)
        n, jn = norm(x, kind, eps), norm_jacobian(x, kind, eps)
        f, jf = branch(x)
        nf, jnf = norm(f, kind, eps), norm_jacobian(f, kind, eps) * jf
        y = n + a * (nf - n)
        return norm(y, kind, eps), norm_jacobian(y, kind, eps) * (jn + a * (jnf - jn))
    if placement.branch_in:
        f, jf = branch(norm(x, kind, eps))
    else:
        f, jf = branch(x)
    # the branch's Jacobian, in the order a ∂N(f) ∂F ∂N(x)
    chain = a
    if placement.branch_out:
        chain = chain * norm_jacobian(f, kind, eps)
        f = norm(f, kind, eps)
    chain = chain * jf
    if placement.branch_in:
        chain = chain * norm_jacobian(x, kind, eps)
    y, jy = residual + a * f, residual_jacobian + chain
    if placement.after_residual:
        return norm(y, kind, eps), norm_jacobian(y, kind, eps) * jy
    return y, jy
