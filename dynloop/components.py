"""The parts a looped block is built from, each declared once: norm placements, norm kinds,
injections, mixers and activations.

Every part of dynloop reads these registries rather than testing names: :class:`~dynloop.BlockSpec`
validates its fields against them and draws the arrays they declare, the compiled kernels receive
the flags and operations they lower to, the sweep asks a mixer whether its tokens evolve
independently, :mod:`dynloop.symbolic` builds their sympy forms, and the CLI help and error
messages list their names and descriptions. Adding a scheme is adding an entry here (and, when it
needs an operation the kernels lack, that operation); ``docs/architecture.md`` shows the route.

Each registry is an ordered, read-only mapping from name to component:

>>> from dynloop.components import INJECTIONS, NORMS
>>> list(NORMS)[:4]
['none', 'pre', 'post', 'sandwich']
>>> NORMS["sandwich"].branch_in, NORMS["sandwich"].after_residual
(True, True)
>>> INJECTIONS["concat"].description
'X W_hᵀ + β e W_eᵀ (a learned adapter of [X, e])'
"""

__all__ = ["Array", "Registry", "NormPlacement", "NormKind", "Injection", "Mixer", "Activation",
           "NORMS", "NORM_KINDS", "INJECTIONS", "MIXERS", "ACTIVATIONS", "REGISTRIES"]

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from ._errors import check_choice


class Registry(Mapping):
    """An ordered, read-only mapping from name to component, with the checks every consumer needs.

    Examples
    --------
    >>> from dynloop.components import MIXERS
    >>> MIXERS.check("mixer", "mlp").sublayers
    1
    >>> MIXERS.check("mixer", "mpl")
    Traceback (most recent call last):
    ...
    ValueError: mixer='mpl' is not allowed: expected one of 'linear', 'mlp', 'attention', 'transformer';
    did you mean 'mlp'?
    """

    def __init__(self, kind, components):
        self.kind = kind
        self._items = {component.name: component for component in components}
        if len(self._items) != len(components):
            raise ValueError(f"{kind}: two components share a name")

    def __getitem__(self, name):
        return self._items[name]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return f"Registry({self.kind!r}: {', '.join(self._items)})"

    def check(self, field, value):
        """The component called ``value``, or a ``ValueError`` naming ``field``, the value and the choices."""
        check_choice(field, value, tuple(self._items))
        return self._items[value]

    def names(self):
        """The names, in order (a tuple)."""
        return tuple(self._items)

    def table(self):
        """``name — description`` lines, one per component (for help texts and MODEL.md)."""
        return "\n".join(f"{name}: {component.description}" for name, component in self._items.items())


# --------------------------------------------------------------------------- arrays
@dataclasses.dataclass(frozen=True)
class Array:
    """An array a component uses: its name, shape and how it is drawn when the user gives none.

    Parameters
    ----------
    name : str
        Key in ``BlockSpec.weights`` and ``BlockSpec.materialize()["weights"]``.
    shape : tuple of str
        Dimensions by letter: ``k`` layers, ``S`` sub-layers per layer, ``d`` width, ``h`` MLP
        hidden width (``"2d"`` is twice the width).
    draw : {"weight", "normal", "uniform", "ones", "complement"}
        ``weight``: normal with standard deviation ``weight_gain / sqrt(fan_in)``, layer by layer
        for per-layer arrays; ``normal``: ``scale`` times standard normal; ``uniform``: U(0, 1);
        ``ones``; ``complement``: one minus the array ``of``.
    stream : int, optional
        The random stream: the draw is ``numpy.random.default_rng([seed, stream(, layer)])``, so
        one array's draw never depends on another's. Fixed per array: seeds keep their blocks.
    fan_in : str, optional
        For ``weight`` draws: ``"d"``, ``"h"`` or ``"2d"``.
    scale : float
        For ``normal`` draws.
    of : str, optional
        For ``complement``: the array this one complements (declared before it).
    symbol : str, optional
        The name of its symbols in :mod:`dynloop.symbolic` (``symbol`` itself for a scalar,
        ``symbol_i`` / ``symbol_ij`` entries; a per-layer array's symbols carry the layer, ``w0_12``).
    eigen_symbol : str, optional
        Its symbol for the ``"diagonal"`` and ``"commuting"`` structures, when it is not ``symbol``
        (the linear mixer's weights are then its eigenvalues, ``lambda0_1``).
    """

    name: str
    shape: tuple
    draw: str
    stream: int | None = None
    fan_in: str | None = None
    scale: float = 1.0
    of: str | None = None
    symbol: str | None = None
    eigen_symbol: str | None = None

    def concrete_shape(self, sizes):
        """The shape for ``sizes`` = ``{"k": layers, "S": sublayers, "d": width, "h": hidden}``."""
        return tuple(2 * sizes["d"] if axis == "2d" else sizes[axis] for axis in self.shape)

    def draw_array(self, seed, sizes, weight_gain, drawn):
        """The default value of this array (``drawn`` holds the arrays drawn before it)."""
        shape = self.concrete_shape(sizes)
        if self.draw == "ones":
            return np.ones(shape)
        if self.draw == "complement":
            return 1.0 - drawn[self.of]
        if self.draw == "uniform":
            return np.random.default_rng([seed, self.stream]).uniform(0.0, 1.0, shape)
        if self.draw == "normal":
            return self.scale * draw_normal(seed, self.stream, shape)
        fan_in = 2 * sizes["d"] if self.fan_in == "2d" else sizes[self.fan_in]
        scale = weight_gain / np.sqrt(fan_in)
        if self.shape[0] == "k":  # per layer: layer i's weights do not depend on how many layers there are
            layers = [draw_normal(seed, self.stream, shape[1:], layer) for layer in range(shape[0])]
            return scale * np.stack(layers)
        return scale * draw_normal(seed, self.stream, shape)


def draw_normal(seed, stream, shape, layer=None):
    """Standard normal entries from the stream ``[seed, stream(, layer)]``."""
    key = [seed, stream] + ([] if layer is None else [layer])
    return np.random.default_rng(key).standard_normal(shape)


#: Random streams that are not a component's arrays: the input ``e`` and a normal start state.
STREAM_INPUTS, STREAM_START = 0, 1


# --------------------------------------------------------------------------- norm placements
@dataclasses.dataclass(frozen=True)
class NormPlacement:
    """Where the norms of a sub-layer sit: a row of flags, from which every consumer builds it.

    A sub-layer with branch ``F``, residual scale ``a`` and skip scale ``s`` is
    ``Y = s X + a F'`` with ``F' = F(N(X; norm_in))`` if ``branch_in`` else ``F(X)``, then
    ``N(F'; norm_out)`` if ``branch_out``; the result is ``N(Y; norm_out)`` if
    ``after_residual``. ``outer`` adds the stage ``N(X; norm_outer)`` after every loop.
    ``sphere`` is the hypersphere update ``N(N(X) + a (N(F(X)) − N(X)))`` with unit gains
    (it has no residual path, so no skip scale).
    """

    name: str
    description: str
    branch_in: bool = False
    branch_out: bool = False
    after_residual: bool = False
    outer: bool = False
    sphere: bool = False

    def __post_init__(self):
        if self.branch_out and self.after_residual:
            raise ValueError(f"norm placement {self.name!r}: branch_out and after_residual share the gains "
                             "norm_out; a placement takes one of them")
        if self.sphere and (self.branch_in or self.branch_out or self.after_residual):
            raise ValueError(f"norm placement {self.name!r}: sphere places its own norms")

    @property
    def has_residual(self):
        """Whether the sub-layer has a residual path ``X`` for ``skip_scale`` to scale."""
        return not self.sphere

    def arrays(self):
        """The gain arrays this placement uses."""
        out = []
        if self.branch_in:
            out.append(Array("norm_in", ("k", "S", "d"), "ones"))
        if self.branch_out or self.after_residual:
            out.append(Array("norm_out", ("k", "S", "d"), "ones"))
        if self.outer:
            out.append(Array("norm_outer", ("d",), "ones"))
        return tuple(out)


NORMS = Registry("norm", [
    NormPlacement("none", "X + a F(X)"),
    NormPlacement("pre", "X + a F(N(X)) (pre-norm)", branch_in=True),
    NormPlacement("post", "N(X + a F(X)) (post-norm)", after_residual=True),
    NormPlacement("sandwich", "N(X + a F(N(X))) (Huginn's sandwich)", branch_in=True, after_residual=True),
    NormPlacement("peri", "X + a N(F(N(X))) (peri-norm)", branch_in=True, branch_out=True),
    NormPlacement("pre_outer", "pre-norm, and N(X) after every loop", branch_in=True, outer=True),
    NormPlacement("peri_outer", "peri-norm, and N(X) after every loop (Ouro)", branch_in=True,
                  branch_out=True, outer=True),
    NormPlacement("sphere", "N(N(X) + a (N(F(X)) − N(X))), unit gains (nGPT's hypersphere)", sphere=True),
])


# --------------------------------------------------------------------------- norm kinds
@dataclasses.dataclass(frozen=True)
class NormKind:
    """A row norm ``N(x; g) = g ⊙ c / sqrt(q(c) + ε)``.

    ``c`` is ``x`` minus its mean when ``centred``, else ``x``; ``q(c)`` is the mean of ``c²``
    when ``mean_square``, else its sum.
    """

    name: str
    description: str
    centred: bool
    mean_square: bool


NORM_KINDS = Registry("norm_kind", [
    NormKind("rms", "RMSNorm: g ⊙ x / sqrt(mean(x²) + ε)", centred=False, mean_square=True),
    NormKind("layer", "LayerNorm without bias: g ⊙ (x − mean x) / sqrt(mean((x − mean x)²) + ε)",
             centred=True, mean_square=True),
    NormKind("l2", "L2 normalisation: g ⊙ x / sqrt(sum(x²) + ε)", centred=False, mean_square=False),
])


# --------------------------------------------------------------------------- injections
@dataclasses.dataclass(frozen=True)
class Injection:
    """How the input ``e`` enters the loop.

    In a stage of its own before the first layer (``each_layer=False``), the injection is
    ``u = L(X) + βc`` (``combine="add"``) or ``u = L(X) ⊙ βc`` (``"multiply"``), followed by
    ``N(u; inject_norm)`` when ``then_norm``. ``L`` is the identity, ``X W_hᵀ`` (``"matrix"``)
    or ``D ⊙ X`` (``"diagonal"``). With ``each_layer=True`` there is no injection stage:
    every layer stage starts with ``X ← X + βc``.

    ``numeric(weights, e, beta)`` returns ``(matrix, diagonal, term)`` in numpy (``term`` is
    ``βc``, T × d; ``matrix``/``diagonal`` may be None), ``symbolic(array, e, beta)`` the same in
    sympy for one token (``array(name)`` gives the sympy array of a weight).
    """

    name: str
    description: str
    numeric: Callable | None = None
    symbolic: Callable | None = None
    arrays: tuple = ()
    operator: str = "identity"
    combine: str = "add"
    then_norm: bool = False
    each_layer: bool = False

    def __post_init__(self):
        if self.combine not in ("add", "multiply"):
            raise ValueError(f"injection {self.name!r}: combine is 'add' or 'multiply', not {self.combine!r}")
        if self.each_layer and (self.operator != "identity" or self.combine != "add" or self.then_norm):
            raise ValueError(f"injection {self.name!r}: an injection into every layer adds βc, nothing else")

    @property
    def has_stage(self):
        """Whether the injection is a stage of its own (``"inject"``) before the first layer."""
        return self.numeric is not None and not self.each_layer

    @property
    def injects(self):
        """Whether the input enters at all."""
        return self.numeric is not None


def _additive(weights_or_array, e, beta):
    """The injected term ``βe`` alone (no operator): the same in numpy and in sympy."""
    return None, None, beta * e


def _concat(w, e, beta):
    from .systems._products import rows_times_transpose  # e W_eᵀ with the same bits on every CPU

    return w["inject_h"], None, beta * rows_times_transpose(e, w["inject_e"])


def _concat_symbolic(array, e, beta):
    return array("inject_h"), None, beta * array("inject_e") * e


def _diagonal(w, e, beta):
    delta = np.logaddexp(0.0, w["inject_dt"])
    from .systems._products import rows_times_transpose  # e W_bᵀ with the same bits on every CPU

    term = beta * delta * rows_times_transpose(e, w["inject_b"])
    return None, np.exp(-delta * np.exp(w["inject_a_log"])), term


def _diagonal_symbolic(array, e, beta):
    import sympy

    delta = array("inject_dt").applyfunc(lambda v: sympy.log(1 + sympy.exp(v)))
    decay = [sympy.exp(-delta[i] * sympy.exp(array("inject_a_log")[i])) for i in range(delta.shape[0])]
    return None, sympy.Matrix(decay), beta * sympy.matrix_multiply_elementwise(delta, array("inject_b") * e)


def _convex(w, e, beta):
    return None, w["inject_alpha"], beta * (w["inject_beta"] * e)


def _convex_symbolic(array, e, beta):
    import sympy

    return None, array("inject_alpha"), beta * sympy.matrix_multiply_elementwise(array("inject_beta"), e)


INJECTIONS = Registry("injection", [
    Injection("none", "no injection: the loop sees e only through the start state"),
    Injection("additive", "X + β e", _additive, _additive),
    Injection("concat", "X W_hᵀ + β e W_eᵀ (a learned adapter of [X, e])", _concat, _concat_symbolic,
              arrays=(Array("inject_h", ("d", "d"), "weight", stream=9, fan_in="2d", symbol="h"),
                      Array("inject_e", ("d", "d"), "weight", stream=10, fan_in="2d", symbol="u")),
              operator="matrix"),
    Injection("diagonal", "D ⊙ X + β Δ ⊙ (e Bᵀ), Δ = softplus(dt), D = exp(−Δ ⊙ exp(a_log)) (Mamba-style)",
              _diagonal, _diagonal_symbolic,
              arrays=(Array("inject_dt", ("d",), "normal", stream=11, symbol="dt"),
                      Array("inject_a_log", ("d",), "normal", stream=12, scale=0.5, symbol="a_log"),
                      Array("inject_b", ("d", "d"), "weight", stream=13, fan_in="d", symbol="b")),
              operator="diagonal"),
    Injection("convex", "α ⊙ X + β (b ⊙ e), α ~ U(0, 1), b = 1 − α", _convex, _convex_symbolic,
              arrays=(Array("inject_alpha", ("d",), "uniform", stream=14, symbol="c_alpha"),
                      Array("inject_beta", ("d",), "complement", of="inject_alpha", symbol="c_beta")),
              operator="diagonal"),
    Injection("gate", "X ⊙ (β e) (Huginn's multiplicative injection)", _additive, _additive,
              combine="multiply"),
    Injection("additive_norm", "N(X + β e; inject_norm) (the LT_i variant of fully looped transformers)",
              _additive, _additive, arrays=(Array("inject_norm", ("d",), "ones"),), then_norm=True),
    Injection("additive_each_layer", "X + β e before every layer, inside its stage (looped transformers' "
              "add-inputs option, FLT_res)", _additive, _additive, each_layer=True),
])


# --------------------------------------------------------------------------- mixers
@dataclasses.dataclass(frozen=True)
class Mixer:
    """The branch ``F`` of a layer: one kernel branch per sub-layer.

    ``branches`` names the kernel branch of each sub-layer (``"linear"``, ``"mlp"``,
    ``"attention"``). ``row_wise`` mixers act on every token row on its own, so the sweep may
    iterate many points' rows together and :mod:`dynloop.symbolic` may take one token.
    ``symbolic(array, layer, activation)`` returns the branch of ``layer`` as a function
    ``y ↦ (F(y), ∂F/∂y)`` of one token's column vector (None: no closed form).
    """

    name: str
    description: str
    branches: tuple
    arrays: tuple
    symbolic: Callable | None = None

    @property
    def sublayers(self):
        return len(self.branches)

    @property
    def row_wise(self):
        return "attention" not in self.branches


def _linear_symbolic(array, layer, activation):
    w = array("linear", layer)
    return lambda y: (w * y, w)


def _mlp_symbolic(array, layer, activation):
    import sympy

    u, v = array("mlp_in", layer), array("mlp_out", layer)
    phi, dphi = activation.sympy()

    def branch(y):
        pre = u * y
        return v * pre.applyfunc(phi), v * sympy.diag(*pre.applyfunc(dphi)) * u
    return branch


_ATTENTION_ARRAYS = tuple(Array(name, ("k", "d", "d"), "weight", stream=stream, fan_in="d")
                          for stream, name in enumerate(("attn_q", "attn_k", "attn_v", "attn_o"), start=3))
_MLP_ARRAYS = (Array("mlp_in", ("k", "h", "d"), "weight", stream=7, fan_in="d", symbol="u"),
               Array("mlp_out", ("k", "d", "h"), "weight", stream=8, fan_in="h", symbol="v"))

MIXERS = Registry("mixer", [
    Mixer("linear", "X Wᵀ", ("linear",),
          (Array("linear", ("k", "d", "d"), "weight", stream=2, fan_in="d", symbol="w",
                 eigen_symbol="lambda"),),
          _linear_symbolic),
    Mixer("mlp", "φ(X W1ᵀ) W2ᵀ", ("mlp",), _MLP_ARRAYS, _mlp_symbolic),
    Mixer("attention", "multi-head softmax self-attention", ("attention",), _ATTENTION_ARRAYS),
    Mixer("transformer", "an attention sub-layer, then an MLP sub-layer", ("attention", "mlp"),
          _ATTENTION_ARRAYS + _MLP_ARRAYS),
])


# --------------------------------------------------------------------------- activations
@dataclasses.dataclass(frozen=True)
class Activation:
    """The MLP's element-wise ``φ``; ``sympy()`` gives ``(φ, φ')`` for smooth ones (None otherwise)."""

    name: str
    description: str
    sympy: Callable | None = None

    @property
    def smooth(self):
        return self.sympy is not None


def _tanh_sympy():
    import sympy

    return sympy.tanh, lambda u: 1 - sympy.tanh(u) ** 2


def _gelu_sympy():
    import sympy

    def cdf(u):
        return (1 + sympy.erf(u / sympy.sqrt(2))) / 2

    def pdf(u):
        return sympy.exp(-u**2 / 2) / sympy.sqrt(2 * sympy.pi)
    return (lambda u: u * cdf(u)), (lambda u: cdf(u) + u * pdf(u))


def _silu_sympy():
    import sympy

    def sigma(u):
        return 1 / (1 + sympy.exp(-u))
    return (lambda u: u * sigma(u)), (lambda u: sigma(u) * (1 + u * (1 - sigma(u))))


ACTIVATIONS = Registry("activation", [
    Activation("tanh", "tanh(x)", _tanh_sympy),
    Activation("relu", "max(x, 0) (derivative 0 at 0)"),
    Activation("gelu", "x Φ(x), exact", _gelu_sympy),
    Activation("silu", "x σ(x)", _silu_sympy),
])

#: Every registry, by the BlockSpec field it validates.
REGISTRIES = {"norm": NORMS, "norm_kind": NORM_KINDS, "injection": INJECTIONS, "mixer": MIXERS,
              "activation": ACTIVATIONS}
