"""Plain-numpy reference implementation ("oracle") of the looped block of ``dynloop/systems/MODEL.md``.

Written from MODEL.md alone, for clarity rather than speed: every formula below is a direct
transcription of a table row of MODEL.md, evaluated in float64 with ordinary numpy. The test-suite
compares dynloop's compiled kernels against these functions.

Conventions
-----------
* A state ``X`` is a ``T x d`` array; per-token operations act on rows.
* ``fields`` is a mapping (or any object with attributes) carrying the BlockSpec fields ``width,
  tokens, layers, heads, hidden, mixer, activation, norm, norm_kind, norm_eps, injection,
  residual_scale, injection_scale, causal`` and optionally ``skip_scale`` (default 1).
* ``arrays`` is a ``BlockSpec.materialize()``-style dict
  ``{"weights": {name: array}, "inputs": e, "start_state": X0}``.
* One loop = stages in the order: ``"inject"`` (if the injection has a stage), ``"layer0"`` ...
  ``"layer{k-1}"``, ``"outer"`` (if ``norm`` is ``"pre_outer"`` or ``"peri_outer"``).

Public API
----------
``oracle_stages``, ``oracle_stage_functions``, ``oracle_run``, ``oracle_attention``,
``fd_jacobian``, ``random_fields``, ``random_arrays``, ``ALL_COMBINATIONS``; plus the building
blocks ``norm``, ``activate``, ``softplus``, ``attention_matrices``, ``attention_branch``,
``mlp_branch``, ``linear_branch``, ``sublayer_update``, ``layer_update``, ``injection_update``,
``outer_update``, ``stage_names``, ``n_stages``, ``n_sublayers``, ``used_array_shapes``.
"""

from collections.abc import Mapping
import itertools
import math

import numpy as np
from scipy.special import erf

from dynloop import components

# The names come from dynloop's registries (the tests cover every component there is); the formulas
# below do not: each is written out by name from MODEL.md, and a name without one raises.
MIXERS = tuple(components.MIXERS)
NORMS = tuple(components.NORMS)
INJECTIONS = tuple(components.INJECTIONS)
NORM_KINDS = tuple(components.NORM_KINDS)
ACTIVATIONS = tuple(components.ACTIVATIONS)

#: every (mixer, norm, injection) triple
ALL_COMBINATIONS = list(itertools.product(MIXERS, NORMS, INJECTIONS))

# norm placements that apply the input norm ``N(X; norm_in)`` before the branch
_INPUT_NORMED = ("pre", "pre_outer", "sandwich", "peri", "peri_outer")
# norm placements that use ``norm_out``
_OUTPUT_NORMED = ("post", "sandwich", "peri", "peri_outer")
_OUTER = ("pre_outer", "peri_outer")


# --------------------------------------------------------------------------------------------
# field access
# --------------------------------------------------------------------------------------------


def _f(fields, name):
    """Read one field from a dict-like or attribute-style ``fields``."""
    if isinstance(fields, Mapping):
        return fields[name]
    return getattr(fields, name)


def n_sublayers(fields):
    """Sub-layers per layer: 2 for the transformer mixer, else 1."""
    return 2 if _f(fields, "mixer") == "transformer" else 1


def stage_names(fields):
    """Names of the stages of one loop, in order."""
    names = []
    if _has_injection_stage(fields):
        names.append("inject")
    names += [f"layer{i}" for i in range(int(_f(fields, "layers")))]
    if _f(fields, "norm") in _OUTER:
        names.append("outer")
    return names


def n_stages(fields):
    return len(stage_names(fields))


# --------------------------------------------------------------------------------------------
# elementary functions
# --------------------------------------------------------------------------------------------


def norm(x, g, kind, eps):
    """Row-wise norm ``N(x; g)`` of MODEL.md (``x`` is 1-D or T x d; ``g`` length d)."""
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if kind == "rms":
        denom = np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
        return g * x / denom
    if kind == "layer":
        centred = x - np.mean(x, axis=-1, keepdims=True)
        denom = np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + eps)
        return g * centred / denom
    if kind == "l2":
        denom = np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + eps)
        return g * x / denom
    raise ValueError(f"unknown norm_kind {kind!r}")


def activate(name, x):
    """Elementwise activation ``phi``."""
    x = np.asarray(x, dtype=np.float64)
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "gelu":
        return x * (1.0 + erf(x / math.sqrt(2.0))) / 2.0
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    raise ValueError(f"unknown activation {name!r}")


def softplus(x):
    """``log(1 + exp(x))``, evaluated without overflow."""
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def _softmax_rows(s):
    s = s - np.max(s, axis=-1, keepdims=True)
    p = np.exp(s)
    return p / np.sum(p, axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------------
# branches F
# --------------------------------------------------------------------------------------------


def linear_branch(x, w):
    """``F(X) = X W^T``."""
    return x @ w.T


def mlp_branch(x, w1, w2, activation):
    """``F(X) = phi(X W1^T) W2^T``."""
    return activate(activation, x @ w1.T) @ w2.T


def attention_matrices(x, wq, wk, heads, causal):
    """Attention matrices ``A_h`` (heads x T x T) of the attention branch on input ``x``."""
    x = np.asarray(x, dtype=np.float64)
    T, d = x.shape
    if d % heads != 0:
        raise ValueError(f"width {d} is not divisible by heads {heads}")
    dh = d // heads
    q = x @ wq.T
    k = x @ wk.T
    out = np.empty((heads, T, T))
    for h in range(heads):
        cols = slice(h * dh, (h + 1) * dh)
        s = q[:, cols] @ k[:, cols].T / math.sqrt(dh)
        if causal:
            s[np.triu_indices(T, k=1)] = -np.inf  # token i sees tokens j <= i
        out[h] = _softmax_rows(s)
    return out


def attention_branch(x, wq, wk, wv, wo, heads, causal):
    """Multi-head self-attention ``F(X) = O Wo^T``."""
    x = np.asarray(x, dtype=np.float64)
    T, d = x.shape
    dh = d // heads
    a = attention_matrices(x, wq, wk, heads, causal)
    v = x @ wv.T
    o = np.zeros((T, d))
    for h in range(heads):
        cols = slice(h * dh, (h + 1) * dh)
        o[:, cols] = a[h] @ v[:, cols]
    return o @ wo.T


def branch(fields, weights, layer, sub):
    """The branch ``F`` of sub-layer ``sub`` of layer ``layer``, as a callable of a T x d array."""
    mixer = _f(fields, "mixer")
    heads = int(_f(fields, "heads"))
    causal = bool(_f(fields, "causal"))
    activation = _f(fields, "activation")

    def attn(x):
        return attention_branch(
            x,
            weights["attn_q"][layer],
            weights["attn_k"][layer],
            weights["attn_v"][layer],
            weights["attn_o"][layer],
            heads,
            causal,
        )

    def mlp(x):
        return mlp_branch(x, weights["mlp_in"][layer], weights["mlp_out"][layer], activation)

    def lin(x):
        return linear_branch(x, weights["linear"][layer])

    if mixer == "linear":
        return lin
    if mixer == "mlp":
        return mlp
    if mixer == "attention":
        return attn
    if mixer == "transformer":
        return attn if sub == 0 else mlp
    raise ValueError(f"unknown mixer {mixer!r}")


# --------------------------------------------------------------------------------------------
# sub-layers, layers, injection, outer norm
# --------------------------------------------------------------------------------------------


def sublayer_update(fields, weights, layer, sub, x):
    """One sub-layer update (MODEL.md "Norm placement" table)."""
    x = np.asarray(x, dtype=np.float64)
    scheme = _f(fields, "norm")
    kind = _f(fields, "norm_kind")
    eps = float(_f(fields, "norm_eps"))
    a = _f(fields, "residual_scale")
    s = _skip_scale(fields)
    F = branch(fields, weights, layer, sub)

    def N(y, g):
        return norm(y, g, kind, eps)

    if scheme == "none":
        return s * x + a * F(x)
    if scheme in ("pre", "pre_outer"):
        gi = weights["norm_in"][layer, sub]
        return s * x + a * F(N(x, gi))
    if scheme == "post":
        go = weights["norm_out"][layer, sub]
        return N(s * x + a * F(x), go)
    if scheme == "sandwich":
        gi = weights["norm_in"][layer, sub]
        go = weights["norm_out"][layer, sub]
        return N(s * x + a * F(N(x, gi)), go)
    if scheme in ("peri", "peri_outer"):
        gi = weights["norm_in"][layer, sub]
        go = weights["norm_out"][layer, sub]
        return s * x + a * N(F(N(x, gi)), go)
    if scheme == "sphere":
        ones = np.ones(x.shape[-1])
        nx = N(x, ones)
        return N(nx + a * (N(F(x), ones) - nx), ones)
    raise ValueError(f"unknown norm {scheme!r}")


def _skip_scale(fields):
    """``skip_scale`` (MODEL.md: the residual path is ``s X``); 1 when the fields do not set it."""
    if isinstance(fields, Mapping):
        return fields.get("skip_scale", 1.0)
    return getattr(fields, "skip_scale", 1.0)


def _has_injection_stage(fields):
    """MODEL.md: every injection but "none" and "additive_each_layer" is a stage of its own."""
    return _f(fields, "injection") not in ("none", "additive_each_layer")


def layer_input(fields, arrays, x):
    """The state a layer's sub-layers see: ``X + β e`` with "additive_each_layer", else ``X``."""
    x = np.asarray(x, dtype=np.float64)
    if _f(fields, "injection") == "additive_each_layer":
        return x + _f(fields, "injection_scale") * np.asarray(arrays["inputs"], dtype=np.float64)
    return x


def layer_update(fields, weights, layer, x):
    """One layer: its sub-layers applied in order (attention then MLP for the transformer)."""
    y = np.asarray(x, dtype=np.float64)
    for sub in range(n_sublayers(fields)):
        y = sublayer_update(fields, weights, layer, sub, y)
    return y


def injection_update(fields, arrays, x):
    """The injection stage ``u`` (MODEL.md "Injection stage" table)."""
    x = np.asarray(x, dtype=np.float64)
    kind = _f(fields, "injection")
    beta = _f(fields, "injection_scale")
    e = np.asarray(arrays["inputs"], dtype=np.float64)
    w = arrays["weights"]
    if kind == "additive":
        return x + beta * e
    if kind == "concat":
        return x @ w["inject_h"].T + beta * (e @ w["inject_e"].T)
    if kind == "diagonal":
        delta = softplus(w["inject_dt"])
        decay = np.exp(-delta * np.exp(w["inject_a_log"]))
        return decay * x + beta * delta * (e @ w["inject_b"].T)
    if kind == "convex":
        return w["inject_alpha"] * x + beta * (w["inject_beta"] * e)
    if kind == "gate":
        return x * (beta * e)
    if kind == "additive_norm":
        return norm(x + beta * e, w["inject_norm"], _f(fields, "norm_kind"), float(_f(fields, "norm_eps")))
    raise ValueError(f"injection {kind!r} has no stage")


def outer_update(fields, weights, x):
    """The outer-norm stage ``N(X; norm_outer)``."""
    return norm(x, weights["norm_outer"], _f(fields, "norm_kind"), float(_f(fields, "norm_eps")))


def diagonal_decay(weights):
    """``D = exp(-softplus(dt) * exp(a_log))`` of the diagonal injection."""
    return np.exp(-softplus(weights["inject_dt"]) * np.exp(weights["inject_a_log"]))


# --------------------------------------------------------------------------------------------
# the public oracle API
# --------------------------------------------------------------------------------------------


def oracle_stage_functions(fields, arrays):
    """List of the S stage maps of one loop, each mapping a T x d state to a T x d state."""
    weights = arrays["weights"]
    funcs = []
    if _has_injection_stage(fields):
        funcs.append(lambda x: injection_update(fields, arrays, x))
    for layer in range(int(_f(fields, "layers"))):
        funcs.append(lambda x, layer=layer: layer_update(fields, weights, layer,
                                                         layer_input(fields, arrays, x)))
    if _f(fields, "norm") in _OUTER:
        funcs.append(lambda x: outer_update(fields, weights, x))
    return funcs


def oracle_stages(fields, arrays, x):
    """One loop from state ``x``: array (S+1, T, d), row 0 = x, row j = state after stage j."""
    x = np.array(x, dtype=np.float64)
    states = [x]
    for stage in oracle_stage_functions(fields, arrays):
        states.append(np.asarray(stage(states[-1]), dtype=np.float64))
    return np.stack(states)


def oracle_run(fields, arrays, x0, loops):
    """``loops`` loops from ``x0``: array (loops, S+1, T, d); row [t, 0] is the state entering loop t."""
    x = np.array(x0, dtype=np.float64)
    out = []
    for _ in range(int(loops)):
        st = oracle_stages(fields, arrays, x)
        out.append(st)
        x = st[-1]
    if not out:
        return np.zeros((0, n_stages(fields) + 1) + x.shape)
    return np.stack(out)


def oracle_attention(fields, arrays, x, layer):
    """Attention matrices (heads, T, T) of layer ``layer``'s attention sub-layer (sub-layer 0).

    ``x`` is the state entering the layer; the sub-layer's own input norm (``norm_in[layer, 0]``
    for pre / pre_outer / sandwich / peri / peri_outer) is applied here. For ``none``, ``post`` and
    ``sphere`` the branch sees ``x`` itself.
    """
    if _f(fields, "mixer") not in ("attention", "transformer"):
        raise ValueError("the block has no attention sub-layer")
    weights = arrays["weights"]
    x = layer_input(fields, arrays, x)
    if _f(fields, "norm") in _INPUT_NORMED:
        x = norm(x, weights["norm_in"][layer, 0], _f(fields, "norm_kind"), float(_f(fields, "norm_eps")))
    return attention_matrices(x, weights["attn_q"][layer], weights["attn_k"][layer], int(_f(fields, "heads")),
                              bool(_f(fields, "causal")))


def fd_jacobian(f, x, h=1e-6):
    """Central finite-difference Jacobian ``d vec(f(x)) / d vec(x)`` with row-major flattening.

    ``x`` may have any shape (T x d, or 1-D); the result is (f(x).size, x.size).
    """
    x = np.array(x, dtype=np.float64)
    n = x.size
    m = np.asarray(f(x.copy())).size
    jac = np.empty((m, n))
    flat = x.ravel()
    for j in range(n):
        xp = flat.copy()
        xm = flat.copy()
        xp[j] += h
        xm[j] -= h
        fp = np.asarray(f(xp.reshape(x.shape)), dtype=np.float64).ravel()
        fm = np.asarray(f(xm.reshape(x.shape)), dtype=np.float64).ravel()
        jac[:, j] = (fp - fm) / (2.0 * h)
    return jac


# --------------------------------------------------------------------------------------------
# random blocks, independent of dynloop
# --------------------------------------------------------------------------------------------


def random_fields(rng, mixer=None, norm=None, injection=None, **overrides):
    """A small random set of BlockSpec fields (dict). Any field can be fixed by keyword."""
    heads = int(rng.integers(1, 3))
    dh = int(rng.integers(1, 4))
    fields = {
        "width": heads * dh if heads * dh >= 2 else 2 * heads,
        "tokens": int(rng.integers(1, 5)),
        "layers": int(rng.integers(1, 4)),
        "heads": heads,
        "hidden": int(rng.integers(2, 7)),
        "mixer": mixer if mixer is not None else MIXERS[rng.integers(len(MIXERS))],
        "activation": ACTIVATIONS[rng.integers(len(ACTIVATIONS))],
        "norm": norm if norm is not None else NORMS[rng.integers(len(NORMS))],
        "norm_kind": NORM_KINDS[rng.integers(len(NORM_KINDS))],
        "norm_eps": float((1e-6, 1e-4, 1e-3)[rng.integers(3)]),
        "injection": injection if injection is not None else INJECTIONS[rng.integers(len(INJECTIONS))],
        "residual_scale": float(rng.uniform(0.2, 1.5)),
        "injection_scale": float(rng.uniform(0.5, 1.5)),
        "causal": bool(rng.integers(2)),
    }
    # the skip scale s of every residual path (the sphere placement has none: s = 1)
    fields["skip_scale"] = 1.0 if fields["norm"] == "sphere" else float(rng.uniform(0.5, 1.5))
    fields.update(overrides)
    if fields["width"] % fields["heads"] != 0:
        raise ValueError("width must be divisible by heads")
    return fields


def used_array_shapes(fields):
    """``{weight name: shape}`` of the weights the block uses (MODEL.md "Arrays" table)."""
    k = int(_f(fields, "layers"))
    d = int(_f(fields, "width"))
    hid = int(_f(fields, "hidden"))
    mixer = _f(fields, "mixer")
    scheme = _f(fields, "norm")
    inj = _f(fields, "injection")
    S = n_sublayers(fields)
    shapes = {}
    if mixer == "linear":
        shapes["linear"] = (k, d, d)
    if mixer in ("attention", "transformer"):
        for name in ("attn_q", "attn_k", "attn_v", "attn_o"):
            shapes[name] = (k, d, d)
    if mixer in ("mlp", "transformer"):
        shapes["mlp_in"] = (k, hid, d)
        shapes["mlp_out"] = (k, d, hid)
    if scheme in _INPUT_NORMED:
        shapes["norm_in"] = (k, S, d)
    if scheme in _OUTPUT_NORMED:
        shapes["norm_out"] = (k, S, d)
    if scheme in _OUTER:
        shapes["norm_outer"] = (d,)
    if inj == "concat":
        shapes["inject_h"] = (d, d)
        shapes["inject_e"] = (d, d)
    if inj == "diagonal":
        shapes["inject_dt"] = (d,)
        shapes["inject_a_log"] = (d,)
        shapes["inject_b"] = (d, d)
    if inj == "convex":
        shapes["inject_alpha"] = (d,)
        shapes["inject_beta"] = (d,)
    if inj == "additive_norm":
        shapes["inject_norm"] = (d,)
    return shapes


def random_arrays(fields, rng, gain=1.0, state_init="input", init_scale=1.0):
    """A materialize()-style dict of random arrays in the MODEL.md layout.

    Matrices are N(0, (gain/sqrt(fan_in))^2); norm gains are ``1 + 0.1 N(0, 1)``; dt ~ N(0, 1),
    a_log ~ N(0, 0.5^2); alpha ~ U(0, 1), beta = 1 - alpha; inputs N(0, 1); the start state is the
    inputs (``"input"``), zeros (``"zeros"``) or ``init_scale * N(0, 1)`` (``"normal"``).
    """
    d = int(_f(fields, "width"))
    T = int(_f(fields, "tokens"))
    weights = {}
    for name, shape in used_array_shapes(fields).items():
        if name in ("norm_in", "norm_out", "norm_outer", "inject_norm"):
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name == "inject_dt":
            w = rng.standard_normal(shape)
        elif name == "inject_a_log":
            w = 0.5 * rng.standard_normal(shape)
        elif name == "inject_alpha":
            w = rng.uniform(0.0, 1.0, shape)
        elif name == "inject_beta":
            continue  # set from alpha below
        elif name in ("inject_h", "inject_e"):
            w = rng.standard_normal(shape) * gain / math.sqrt(2 * d)
        else:  # weight matrices: fan-in is the last axis
            w = rng.standard_normal(shape) * gain / math.sqrt(shape[-1])
        weights[name] = w
    if "inject_alpha" in weights:
        weights["inject_beta"] = 1.0 - weights["inject_alpha"]
    e = rng.standard_normal((T, d))
    if state_init == "input":
        x0 = e.copy()
    elif state_init == "zeros":
        x0 = np.zeros((T, d))
    elif state_init == "normal":
        x0 = init_scale * rng.standard_normal((T, d))
    else:
        raise ValueError(f"unknown state_init {state_init!r}")
    return {"weights": weights, "inputs": e, "start_state": x0}
