"""The looped transformer block: a frozen, validated description that compiles to numba kernels.

The exact equations are in ``MODEL.md`` beside this file (and in :class:`BlockSpec`'s Notes).
"""

__all__ = ["BlockSpec", "POINT_FIELDS"]

import dataclasses
import functools
from pathlib import Path

import numba
import numpy as np

from .._errors import check_choice, check_int, check_real, did_you_mean, invalid
from ..components import (ACTIVATIONS, INJECTIONS, MIXERS, NORM_KINDS, NORMS, STREAM_INPUTS, STREAM_START,
                          draw_normal)
from ._recording import record_capacity
from . import _block_kernels as kernels
from .base import RunOutput, SweepKernel, System, attracting_fixed_point

_REAL_FIELDS = ("norm_eps", "residual_scale", "skip_scale", "injection_scale", "weight_gain", "init_scale")
_NON_NEGATIVE = ("norm_eps", "weight_gain", "init_scale")
_STATE_INITS = ("input", "zeros", "normal")
_OMITTED_AT_DEFAULT = ("skip_scale",)


def _is_symbolic(value):
    return type(value).__module__.split(".")[0] == "sympy"


#: The BlockSpec fields that a compiled sweep varies from grid point to grid point inside one kernel
#: call (the kernels take them per point); a sweep over any other field has one call per value.
POINT_FIELDS = ("residual_scale", "injection_scale", "norm_eps", "skip_scale")


class _FieldsChecked(type):
    """Metaclass: ``BlockSpec(widht=8)`` names the unknown field and the close one, as ``replace`` does."""

    def __call__(cls, *args, **fields):
        return super().__call__(*args, **_known_fields(fields))


def _known_fields(fields):
    """``fields`` if every name is a BlockSpec field, else a ``ValueError`` naming it
    ("did you mean ...?")."""
    names = [f.name for f in dataclasses.fields(BlockSpec)]
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise invalid(unknown[0], fields[unknown[0]], "not a BlockSpec field; fields are " + ", ".join(names)
                      + did_you_mean(unknown[0], names))
    return fields


@dataclasses.dataclass(frozen=True, eq=False)
class BlockSpec(System, metaclass=_FieldsChecked):
    """A recurrent block of ``layers`` transformer-style layers, applied loop after loop.

    Parameters
    ----------
    width : int
        State width ``d`` (columns of the state).
    tokens : int
        Sequence length ``T`` (rows of the state).
    layers : int
        Block size ``k``: layers applied per loop.
    heads : int
        Attention heads; must divide ``width``.
    hidden : int, optional
        MLP hidden width (default ``4 * width``).
    mixer : str
        The branch of each layer, a name in ``dynloop.components.MIXERS``: the linear map
        ``X Wᵀ``, the MLP ``φ(X W1ᵀ) W2ᵀ``, multi-head softmax self-attention, or the transformer
        layer (attention, then MLP). ``dynloop schemes`` lists every choice of every scheme field.
    activation : str
        MLP activation ``φ``, a name in ``dynloop.components.ACTIVATIONS``.
    norm : str
        Norm placement, a name in ``dynloop.components.NORMS`` (docs/background.md, Norm
        placements): ``"sandwich"`` is Huginn's, ``"peri_outer"`` Ouro's, ``"sphere"`` nGPT-style;
        ``*_outer`` adds a norm after every loop.
    norm_kind : str
        RMSNorm, LayerNorm (no bias) or L2 normalisation: a name in ``dynloop.components.NORM_KINDS``.
    norm_eps : float
        The ``ε`` under the square root of every norm.
    injection : str
        How the input ``e`` enters, a name in ``dynloop.components.INJECTIONS`` (docs/background.md,
        Injection schemes).
    residual_scale : float
        Branch multiplier ``a`` (ReZero-style α; the ``α`` of the sphere update).
    skip_scale : float
        Multiplier ``s`` of the residual path of every sub-layer: ``s X + a F(…)`` inside the
        placement's norms. ``norm="post"`` with ``s = (2k)^(1/4)`` is DeepNorm. The sphere
        placement has no residual path and takes only 1.
    injection_scale : float
        Multiplier ``β`` of the injected input.
    weight_gain : float
        Multiplies the ``1/sqrt(fan_in)`` standard deviation of every random weight matrix.
    state_init : {"input", "zeros", "normal"}
        Start state: the input ``e``, zeros, or ``init_scale`` times standard normal entries.
    init_scale : float
        Standard deviation of a ``"normal"`` start state.
    seed : int
        Fixes every random array (weights, input, start state).
    causal : bool
        Causal attention mask (each token attends to itself and earlier tokens).
    weights : dict of array_like, optional
        Explicit arrays that replace the random draw, by name (layout in Notes); arrays not given
        are drawn. :meth:`materialize` returns the full dict.
    inputs : array_like, optional
        Explicit input ``e`` of shape ``(tokens, width)``.

    Notes
    -----
    The state ``X`` is ``T × d``. One loop is a sequence of stages: the injection (if it has a
    stage), one stage per layer, then the outer norm (placements with ``outer``). What each
    component computes and which arrays it uses, with their shapes and random draws, is declared
    in :mod:`dynloop.components` (``dynloop schemes`` prints it); ``dynloop/systems/MODEL.md``
    writes every equation out. :meth:`weight_shapes` lists the arrays of a given block.

    Examples
    --------
    >>> import dynloop
    >>> spec = dynloop.BlockSpec(width=8, tokens=3, layers=2, mixer="transformer", heads=2,
    ...                          norm="sandwich", injection="concat", seed=0)
    >>> spec.stage_names
    ('inject', 'layer0', 'layer1')
    >>> spec.replace(layers=3).stage_names
    ('inject', 'layer0', 'layer1', 'layer2')
    """

    width: int = 16
    tokens: int = 4
    layers: int = 2
    heads: int = 1
    hidden: int | None = None
    mixer: str = "mlp"
    activation: str = "gelu"
    norm: str = "pre"
    norm_kind: str = "rms"
    norm_eps: float = 1e-6
    injection: str = "concat"
    residual_scale: float = 1.0
    skip_scale: float = 1.0
    injection_scale: float = 1.0
    weight_gain: float = 1.0
    state_init: str = "input"
    init_scale: float = 1.0
    seed: int = 0
    causal: bool = True
    weights: dict | None = None
    inputs: np.ndarray | None = None

    kind = "block"

    # ------------------------------------------------------------------ validation
    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        set_("width", check_int("width", self.width, minimum=1))
        set_("tokens", check_int("tokens", self.tokens, minimum=1))
        set_("layers", check_int("layers", self.layers, minimum=1))
        set_("heads", check_int("heads", self.heads, minimum=1))
        if self.width % self.heads:
            raise invalid("heads", self.heads, f"heads must divide width={self.width}")
        if self.hidden is not None:
            set_("hidden", check_int("hidden", self.hidden, minimum=1))
        MIXERS.check("mixer", self.mixer)
        ACTIVATIONS.check("activation", self.activation)
        NORMS.check("norm", self.norm)
        NORM_KINDS.check("norm_kind", self.norm_kind)
        INJECTIONS.check("injection", self.injection)
        check_choice("state_init", self.state_init, _STATE_INITS)
        for name in _REAL_FIELDS:
            value = getattr(self, name)
            if not _is_symbolic(value):
                set_(name, check_real(name, value, 0.0 if name in _NON_NEGATIVE else None))
        if NORMS[self.norm].sphere and not _is_symbolic(self.skip_scale) and self.skip_scale != 1.0:
            raise invalid("skip_scale", self.skip_scale, f"norm={self.norm!r} has no residual path to scale; "
                                                         "it takes skip_scale=1 only")
        set_("seed", check_int("seed", self.seed, minimum=0))
        if not isinstance(self.causal, (bool, np.bool_)):
            raise invalid("causal", self.causal, "expected True or False")
        set_("causal", bool(self.causal))
        if self.weights is not None:
            set_("weights", self._check_weights(self.weights))
        if self.inputs is not None:
            set_("inputs", self._check_array("inputs", self.inputs, (self.tokens, self.width)))

    @staticmethod
    def _check_array(field, value, shape):
        try:
            array = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise invalid(field, type(value).__name__, f"expected a real array of shape {shape}") from None
        if array.shape != shape:
            raise ValueError(f"{field} has shape {array.shape}, which is not allowed: expected {shape}")
        if not np.all(np.isfinite(array)):
            raise invalid(field, "an array with non-finite entries", "every entry must be finite")
        array.flags.writeable = False
        return array

    def _check_weights(self, weights):
        if not isinstance(weights, dict):
            raise invalid("weights", type(weights).__name__, "expected a dict of arrays by name")
        shapes = self.weight_shapes()
        checked = {}
        for name, value in weights.items():
            if name not in shapes:
                used = ", ".join(shapes)
                raise invalid(f"weights[{name!r}]", "given",
                              f"this block (mixer={self.mixer!r}, norm={self.norm!r}, "
                              f"injection={self.injection!r}) uses only: {used}")
            checked[name] = self._check_array(f"weights[{name!r}]", value, shapes[name])
        return checked

    # ------------------------------------------------------------------ derived facts
    @property
    def hidden_size(self):
        """MLP hidden width actually used (``hidden``, or ``4 * width``)."""
        return 4 * self.width if self.hidden is None else self.hidden

    @property
    def sublayers(self):
        """Sub-layers per layer: 2 for the transformer mixer, else 1."""
        return MIXERS[self.mixer].sublayers

    @property
    def components(self):
        """The registry entries of this block's scheme (``dynloop.components``), by field name.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.BlockSpec(norm="sandwich").components["norm"].after_residual
        True
        """
        return {"mixer": MIXERS[self.mixer], "activation": ACTIVATIONS[self.activation],
                "norm": NORMS[self.norm], "norm_kind": NORM_KINDS[self.norm_kind],
                "injection": INJECTIONS[self.injection]}

    @property
    def is_symbolic(self):
        """True when a numeric field holds a sympy expression (a spec for ``dynloop.symbolic``)."""
        return any(_is_symbolic(getattr(self, name)) for name in _REAL_FIELDS)

    @property
    def name(self):
        return self.sweep_name()

    def sweep_name(self, varying=()):
        """The short name; fields in ``varying`` (axes of a sweep: their value differs per point) read ``*``.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.BlockSpec().sweep_name(["norm"])
        'block(mixer=mlp, norm=*/rms, injection=concat, k=2, T=4, d=16)'
        """
        def value(field):
            return "*" if field in varying else getattr(self, field)
        return (f"block(mixer={value('mixer')}, norm={value('norm')}/{value('norm_kind')}, "
                f"injection={value('injection')}, k={value('layers')}, T={value('tokens')}, "
                f"d={value('width')})")

    @property
    def stage_names(self):
        names = ["inject"] if INJECTIONS[self.injection].has_stage else []
        names += [f"layer{i}" for i in range(self.layers)]
        if NORMS[self.norm].outer:
            names.append("outer")
        return tuple(names)

    @property
    def state_shape(self):
        return (self.tokens, self.width)

    def weight_shapes(self):
        """The arrays this block uses, by name, with their shapes (see the class Notes).

        Examples
        --------
        >>> import dynloop
        >>> dynloop.BlockSpec(width=4, layers=2, mixer="linear", norm="none",
        ...                   injection="additive").weight_shapes()
        {'linear': (2, 4, 4)}
        """
        sizes = self._sizes()
        return {array.name: array.concrete_shape(sizes) for array in self._arrays()}

    def _arrays(self):
        """The arrays this block's components declare (``dynloop.components.Array``), in drawing order."""
        return MIXERS[self.mixer].arrays + NORMS[self.norm].arrays() + INJECTIONS[self.injection].arrays

    def _sizes(self):
        return {"k": self.layers, "S": self.sublayers, "d": self.width, "h": self.hidden_size}

    # ------------------------------------------------------------------ concrete arrays
    def _require_numeric(self, action):
        for name in _REAL_FIELDS:
            if _is_symbolic(getattr(self, name)):
                raise invalid(name, getattr(self, name),
                              f"{action} needs numbers; symbolic fields are for dynloop.symbolic")

    def materialize(self):
        """Every concrete array the block uses, in the layout ``weights=`` and ``inputs=`` accept.

        Returns
        -------
        dict
            ``{"weights": {name: array}, "inputs": e, "start_state": X0}``. Building
            ``BlockSpec(..., weights=m["weights"], inputs=m["inputs"])`` with the same fields
            reproduces the block bit for bit.

        Examples
        --------
        >>> import dynloop, numpy as np
        >>> spec = dynloop.BlockSpec(width=4, tokens=2, mixer="mlp", hidden=6, seed=3)
        >>> arrays = spec.materialize()
        >>> sorted(arrays["weights"])
        ['inject_e', 'inject_h', 'mlp_in', 'mlp_out', 'norm_in']
        >>> twin = spec.replace(seed=99, weights=arrays["weights"], inputs=arrays["inputs"])
        >>> a = dynloop.simulate(spec, 5).final_state
        >>> bool(np.array_equal(a, dynloop.simulate(twin, 5).final_state))
        True
        """
        return self._materialized

    @functools.cached_property
    def _materialized(self):
        self._require_numeric("materialize()")
        given = self.weights or {}
        sizes = self._sizes()
        weights = {}
        for array in self._arrays():
            if array.name in given:
                weights[array.name] = given[array.name]
                continue
            value = np.asarray(array.draw_array(self.seed, sizes, self.weight_gain, weights),
                               dtype=np.float64)
            value.flags.writeable = False
            weights[array.name] = value
        inputs = (self.inputs if self.inputs is not None
                  else draw_normal(self.seed, STREAM_INPUTS, self.state_shape))
        if self.state_init == "input":
            start = inputs.copy()
        elif self.state_init == "zeros":
            start = np.zeros(self.state_shape)
        else:
            start = self.init_scale * draw_normal(self.seed, STREAM_START, self.state_shape)
        inputs = np.asarray(inputs)
        for array in (inputs, start):
            array.flags.writeable = False
        return {"weights": weights, "inputs": inputs, "start_state": start}

    def _compiled(self, dtype):
        """Kernel configuration and arrays at ``dtype`` (cached on the spec per precision)."""
        cache = self.__dict__.setdefault("_kernel_cache", {})
        if dtype not in cache:
            cache[dtype] = self._kernel_inputs(dtype)
        return cache[dtype]

    def _kernel_inputs(self, dtype):
        """What the components lower to: the kernels' flags and codes, and their arrays at ``dtype``."""
        arrays = self.materialize()
        w, e = arrays["weights"], arrays["inputs"]
        d, k, s = self.width, self.layers, self.sublayers
        parts = self.components
        mixer, norm, kind, injection = parts["mixer"], parts["norm"], parts["norm_kind"], parts["injection"]
        matrix, diagonal, term = (injection.numeric(w, e, self.injection_scale) if injection.injects
                                  else (None, None, None))

        def array(value, empty_shape):  # always a fresh writable C array: one numba type for every scheme
            return np.array(np.zeros(empty_shape) if value is None else value, dtype=dtype, order="C",
                            copy=True)

        empty3 = (0, 0, 0)
        products = {name: array(w.get(name), empty3)
                    for name in ("linear", "attn_q", "attn_k", "attn_v", "attn_o", "mlp_in", "mlp_out")}
        products["inject_matrix"] = array(matrix, (0, 0))
        transposed = {f"{name}_t": np.ascontiguousarray(np.swapaxes(value, -1, -2))
                      for name, value in products.items()}  # for the per-point kernels' row products
        block_arrays = kernels.BlockArrays(
            branches=np.array([kernels.BRANCHES.index(branch) for branch in mixer.branches], dtype=np.int64),
            norm_in=array(w.get("norm_in"), (k, s, 0)), norm_out=array(w.get("norm_out"), (k, s, 0)),
            norm_outer=array(w.get("norm_outer"), (0,)), unit_gain=np.ones(d, dtype=dtype),
            inject_diagonal=array(diagonal, (0,)), inject_constant=array(term, self.state_shape),
            inject_gain=array(w.get("inject_norm"), (0,)), **products, **transposed)
        config = kernels.BlockConfig(
            activation=kernels.ACTIVATION_OPS.index(self.activation), norm_in=norm.branch_in,
            norm_branch_out=norm.branch_out, norm_after_residual=norm.after_residual, sphere=norm.sphere,
            centred=kind.centred, mean_square=kind.mean_square,
            inject_operator=kernels.INJECT_OPERATORS.index(injection.operator),
            inject_multiply=injection.combine == "multiply", inject_norm=injection.then_norm,
            inject_each_layer=injection.each_layer, has_inject=injection.has_stage,
            has_outer=norm.outer, layers=k, sublayers=s, heads=self.heads, causal=self.causal,
            residual_scale=dtype(self.residual_scale), skip_scale=dtype(self.skip_scale),
            norm_eps=float(self.norm_eps))
        return config, block_arrays

    def sweep_kernel(self, dtype=np.float64):
        """The compiled kernels' inputs at ``dtype``, and the fields a sweep varies per point.

        ``arguments`` is ``(config, arrays, unit_input)``: the kernel configuration and arrays
        (as :meth:`simulate <dynloop.simulate>` uses them), and the injected input at
        ``injection_scale = 1``, which the sweep scales per point. The point fields are
        ``POINT_FIELDS``.

        Examples
        --------
        >>> import dynloop
        >>> kernel = dynloop.BlockSpec(residual_scale=0.5).sweep_kernel()
        >>> kernel.point_fields
        ('residual_scale', 'injection_scale', 'norm_eps', 'skip_scale')
        >>> kernel.point_values
        array([5.e-01, 1.e+00, 1.e-06, 1.e+00])
        """
        config, arrays = self._compiled(dtype)
        unit = self.replace(injection_scale=1.0)._compiled(dtype)[1].inject_constant
        values = np.array([getattr(self, name) for name in POINT_FIELDS])
        values.flags.writeable = False  # a sweep copies it: one row per point
        return SweepKernel(arguments=(config, arrays, unit), point_fields=POINT_FIELDS, point_values=values)

    # ------------------------------------------------------------------ System contract
    def start_state(self, params=None):
        """The start state given by ``state_init`` (a ``tokens × width`` array)."""
        return self.materialize()["start_state"]

    def _run(self, x0, loops, params, mode, stride, n_last, dtype, record_attention):
        self._require_numeric("simulate()")
        config, arrays = self._compiled(dtype)
        capacity = record_capacity(mode, loops, stride, n_last)
        output = RunOutput(*kernels.run_block(config, arrays, x0, loops, self.n_stages, mode, stride,
                                              capacity, record_attention))
        output.attention = output.attention if record_attention else None
        return output

    def _tangent_run(self, x, basis, loops, params, with_log_det):
        config, arrays = self._compiled(np.float64)
        # writable C-ordered copies always: numba compiles the kernel (about a minute) once per array
        # layout and read-only flag
        x = np.array(self.check_state(x, "x"), dtype=np.float64, order="C", copy=True)
        basis = np.array(basis, dtype=np.float64, order="C", copy=True)
        return kernels.tangent_run(config, arrays, x, basis, loops, self.n_stages, with_log_det,
                                   numba.get_num_threads())

    def stage_maps(self, x, params=None):
        """The ``S + 1`` stage states of one loop started at ``x`` (array ``(S+1, T, d)``).

        Examples
        --------
        >>> import dynloop
        >>> spec = dynloop.BlockSpec(width=4, tokens=2, layers=2, injection="additive")
        >>> spec.stage_maps(spec.start_state()).shape
        (4, 2, 4)
        """
        self._require_numeric("stage_maps()")
        config, arrays = self._compiled(np.float64)
        x = self.check_state(x, "x")
        stages = [x]
        no_tangent = np.empty((0,) + self.state_shape)
        for stage in range(self.n_stages):
            stages.append(kernels.stage_apply(config, arrays, stage, stages[-1], no_tangent)[0])
        return np.stack(stages)

    def attention_context(self, stage_states):
        """The block's query and key weights and what each layer's attention read, or None.

        Parameters
        ----------
        stage_states : ndarray, shape (R, S + 1, T, d)
            Recorded stage states of this block (:attr:`dynloop.Trajectory.stage_states`).

        Returns
        -------
        dict or None
            ``{"attn_q", "attn_k"}`` (layers, d, d) with ``Q = X Wqᵀ``, ``"heads"``, and
            ``"attention_inputs"`` (R, layers, T, d): for every recorded loop and layer, the state
            entering the layer after its per-layer injection and input norm (MODEL.md), which is
            what the attention's scores are computed from. None when the mixer has no attention.

        Examples
        --------
        >>> import dynloop
        >>> spec = dynloop.BlockSpec(width=4, tokens=3, layers=2, mixer="attention", norm="pre")
        >>> traj = dynloop.simulate(spec, 5)
        >>> spec.attention_context(traj.stage_states)["attention_inputs"].shape
        (5, 2, 3, 4)
        """
        if "attention" not in self.components["mixer"].branches:
            return None
        config, arrays = self._compiled(np.float64)
        stage_states = np.asarray(stage_states, dtype=np.float64)
        first = self.layer_stages.start  # layer l's stage reads stage_states[:, first + l]
        inputs = np.empty((stage_states.shape[0], self.layers) + self.state_shape)
        for r in range(stage_states.shape[0]):
            for layer in range(self.layers):
                x = np.ascontiguousarray(stage_states[r, first + layer])
                inputs[r, layer] = kernels.attention_input(config, arrays, layer, x)
        weights = self.materialize()["weights"]
        return {"attn_q": np.array(weights["attn_q"]), "attn_k": np.array(weights["attn_k"]),
                "heads": self.heads, "attention_inputs": inputs}

    def stage_jacobians(self, x, params=None):
        """Analytic Jacobians of the ``S`` stages along the loop started at ``x``.

        Returns
        -------
        ndarray, shape (S, n, n)
            ``n = tokens * width``; states are flattened row-major.

        Examples
        --------
        >>> import dynloop, numpy as np
        >>> spec = dynloop.BlockSpec(width=3, tokens=2, layers=1, mixer="linear", norm="none",
        ...                          injection="none", residual_scale=0.0)
        >>> bool(np.allclose(spec.stage_jacobians(spec.start_state())[0], np.eye(6)))
        True
        """
        self._require_numeric("stage_jacobians()")
        config, arrays = self._compiled(np.float64)
        x = self.check_state(x, "x")
        jacobians = []
        for stage in range(self.n_stages):
            jacobian, x = kernels.stage_jacobian(config, arrays, stage, x)
            jacobians.append(jacobian)
        return np.stack(jacobians)

    def jacobian(self, x, params=None):
        """Analytic Jacobian of one loop at ``x`` (``n × n``, ``n = tokens * width``).

        The identity is pushed through every stage as ``n`` tangents in one pass, which is the
        product ``J_S ⋯ J_1`` of the stage Jacobians without forming them.

        Examples
        --------
        >>> import dynloop, numpy as np
        >>> spec = dynloop.BlockSpec(width=4, tokens=2, layers=3, norm="sandwich")
        >>> x = spec.start_state()
        >>> product = np.linalg.multi_dot(spec.stage_jacobians(x)[::-1])
        >>> bool(np.allclose(spec.jacobian(x), product, rtol=1e-12, atol=1e-14))
        True
        """
        self._require_numeric("jacobian()")
        config, arrays = self._compiled(np.float64)
        x = self.check_state(x, "x")
        n = x.size
        tangents = np.eye(n).reshape((n,) + self.state_shape)
        for stage in range(self.n_stages):
            x, tangents, _ = kernels.stage_apply(config, arrays, stage, x, tangents)
        return tangents.reshape(n, n).T.copy()

    def linearize(self, at=None):
        """The affine loop given by the stage Jacobians of this block at a state.

        Parameters
        ----------
        at : array_like, optional
            The state entering the loop where to linearise. By default the block's fixed point as
            :func:`dynloop.classify` finds it (iteration refined by Newton's method); a
            ``ValueError`` names the regime when the block does not converge to one (pass ``at=``).

        Returns
        -------
        AffineLoop
            Stage ``j`` is ``h ↦ J_j h + (f_j(x_j) − J_j x_j)``: exact at the stage points.

        Examples
        --------
        >>> import dynloop, numpy as np
        >>> spec = dynloop.BlockSpec(width=4, tokens=1, layers=2, mixer="linear", norm="none",
        ...                          injection="concat", residual_scale=0.3, seed=1)
        >>> affine = spec.linearize()
        >>> bool(np.allclose(affine.fixed_point(), affine.loop(affine.fixed_point())))
        True
        """
        from .affine import AffineLoop

        if at is None:
            at, regime = attracting_fixed_point(self)
            if at is None:
                raise invalid("at", None, f"this block has no attracting fixed point to linearise at "
                                          f"(classify says {regime}); pass a state as at=")
        at = self.check_state(at, "at")
        stages = self.stage_maps(at)
        jacobians = self.stage_jacobians(at)
        offsets = [stages[j + 1].ravel() - jacobians[j] @ stages[j].ravel() for j in range(self.n_stages)]
        return AffineLoop(list(jacobians), offsets)

    # ------------------------------------------------------------------ copies and files
    def replace(self, **changes):
        """A copy with some fields changed (validated again).

        Examples
        --------
        >>> import dynloop
        >>> dynloop.BlockSpec().replace(norm="post").norm
        'post'
        """
        return dataclasses.replace(self, **_known_fields(changes))

    def to_dict(self):
        """The fields as plain Python values (arrays as nested lists), without unset optionals.

        Fields added since files were first written (``skip_scale``) are left out at their default,
        so that the text of a spec, and the manifest of a sweep store, is what it was before them.
        """
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name in _OMITTED_AT_DEFAULT and value == f.default):
                continue
            if _is_symbolic(value):
                raise invalid(f.name, value, "a symbolic spec cannot be written to TOML")
            if f.name == "weights":
                value = {name: array.tolist() for name, array in value.items()}
            elif isinstance(value, np.ndarray):
                value = value.tolist()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, fields):
        """Build a spec from a dict of fields (as :meth:`to_dict` writes them)."""
        if not isinstance(fields, dict):
            raise invalid("block", type(fields).__name__, "expected a table of BlockSpec fields")
        return cls(**fields)

    def to_toml(self, path=None):
        """Write the spec as a ``[block]`` TOML table; return the text.

        Examples
        --------
        >>> import dynloop
        >>> spec = dynloop.BlockSpec(width=8, norm="peri_outer", injection="none")
        >>> dynloop.BlockSpec.from_toml(spec.to_toml()) == spec
        True
        """
        import tomli_w

        text = tomli_w.dumps({"block": self.to_dict()})
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_toml(cls, source):
        """Read a spec from a TOML file path, or TOML text, with a ``[block]`` table.

        A file without a ``[block]`` table is read as the fields themselves.
        """
        from .._toml import load_toml

        document = load_toml(source)
        return cls.from_dict(document.get("block", document))

    def __eq__(self, other):
        if not isinstance(other, BlockSpec):
            return NotImplemented
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, dict) or isinstance(b, dict):
                if (a is None) != (b is None) or (a is not None and (a.keys() != b.keys() or not all(
                        np.array_equal(a[n], b[n]) for n in a))):
                    return False
            elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if a is None or b is None or not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = object.__hash__

    def __getstate__(self):
        # pickled specs (e.g. shipped to Dask workers) carry their fields, not their caches
        return {name: value for name, value in self.__dict__.items()
                if name not in ("_materialized", "_kernel_cache")}
