"""Compiled kernels of the looped block (the definition is MODEL.md beside this file).

One set of kernels serves every block: the scheme (mixer, activation, norm placement and kind,
injection) arrives as integer codes in a :class:`BlockConfig`, the numbers as arrays in a
:class:`BlockArrays`, so numba compiles once per precision, not once per scheme or value.

Every component propagates a value and a batch of ``m`` tangents together (forward-mode
differentiation by hand): ``m = 0`` is plain evaluation, ``m = n`` with the identity gives the
stage Jacobian, a few columns give the tangent dynamics that Lyapunov exponents need.
Tangents are arrays of shape ``(m, T, d)``; linear maps act on all of them in one product, every
output summed in input order (``_products``: the same bits on every CPU). A point's token rows are
few (T, or T·(1 + m) with tangents), so the products take the rows as the product's rows and run
along the weights' output index: ``X Wᵀ`` reads ``Wᵀ``, which the arrays carry ready (the fields
ending in ``_t``), in contiguous memory.
"""

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from ._recording import close_loop, new_records
from ._fastmath import exp, flush_tiny, gelu_values, normal_cdf, tanh, tanh_native
from ._products import column_product

# The operations the kernels implement. Components (dynloop.components) name the ones they lower to;
# BlockSpec turns the names into these codes, and a code outside them raises.
BRANCHES = ("linear", "mlp", "attention")
BRANCH_LINEAR, BRANCH_MLP, BRANCH_ATTENTION = range(3)
ACTIVATION_OPS = ("tanh", "relu", "gelu", "silu")
# How the injection stage acts on the state: u = (identity | X W_hᵀ | D ⊙ X), plus the injected term βc
# (or times it, cfg.inject_multiply).
INJECT_OPERATORS = ("identity", "matrix", "diagonal")
INJECT_IDENTITY, INJECT_MATRIX, INJECT_DIAGONAL = range(3)

BlockConfig = namedtuple("BlockConfig", [
    "activation", "norm_in", "norm_branch_out", "norm_after_residual", "sphere", "centred", "mean_square",
    "inject_operator", "inject_multiply", "inject_norm", "inject_each_layer", "has_inject", "has_outer",
    "layers", "sublayers", "heads", "causal", "residual_scale", "skip_scale", "norm_eps"])
BlockConfig.__doc__ = ("Flags, operation codes and scalars of one block (all numba-typable): what its "
                       "components lower to (BlockSpec._kernel_inputs).")

BlockArrays = namedtuple("BlockArrays", [
    "branches", "linear", "attn_q", "attn_k", "attn_v", "attn_o", "mlp_in", "mlp_out",
    "norm_in", "norm_out", "norm_outer", "unit_gain", "inject_matrix", "inject_diagonal",
    "inject_constant", "inject_gain",
    "linear_t", "attn_q_t", "attn_k_t", "attn_v_t", "attn_o_t", "mlp_in_t", "mlp_out_t", "inject_matrix_t"])
BlockArrays.__doc__ = ("Every array a block kernel reads (``branches``: the branch code of each sub-layer); "
                       "unused ones are empty with the right rank. The fields ending in ``_t`` hold the "
                       "same weights transposed (each matrix's last two axes swapped, C-contiguous): "
                       "the per-point kernels' products read those, the column kernels the others.")


_JIT = dict(cache=True, error_model="numpy")


@njit(**_JIT)
def with_point(cfg, arrays, residual_scale, skip_scale, norm_eps, inject_constant):
    """``cfg`` and ``arrays`` with one grid point's residual and skip scales, norm ε and injected term."""
    point_cfg = BlockConfig(cfg.activation, cfg.norm_in, cfg.norm_branch_out, cfg.norm_after_residual,
                            cfg.sphere, cfg.centred, cfg.mean_square, cfg.inject_operator,
                            cfg.inject_multiply, cfg.inject_norm, cfg.inject_each_layer, cfg.has_inject,
                            cfg.has_outer, cfg.layers, cfg.sublayers, cfg.heads, cfg.causal, residual_scale,
                            skip_scale, norm_eps)
    point_arrays = BlockArrays(arrays.branches, arrays.linear, arrays.attn_q, arrays.attn_k, arrays.attn_v,
                               arrays.attn_o, arrays.mlp_in, arrays.mlp_out, arrays.norm_in, arrays.norm_out,
                               arrays.norm_outer, arrays.unit_gain, arrays.inject_matrix,
                               arrays.inject_diagonal, inject_constant, arrays.inject_gain, arrays.linear_t,
                               arrays.attn_q_t, arrays.attn_k_t, arrays.attn_v_t, arrays.attn_o_t,
                               arrays.mlp_in_t, arrays.mlp_out_t, arrays.inject_matrix_t)
    return point_cfg, point_arrays


# --------------------------------------------------------------------------- linear algebra
@njit(**_JIT)
def _apply_linear(x, dx, w_t):
    """Value and tangents of ``X ↦ X Wᵀ``: x (T, i), dx (m, T, i), ``w_t = Wᵀ`` (i, o), C-contiguous.

    Each output is summed in input order (:func:`~dynloop.systems._products.column_product` with
    the rows as its rows): the same bits as the column kernels' ``W X``.
    """
    m, n_rows, n_in = dx.shape
    n_out = w_t.shape[1]
    y = np.empty((n_rows, n_out), dtype=x.dtype)
    column_product(np.ascontiguousarray(x), w_t, y)
    dy = np.empty((m, n_rows, n_out), dtype=x.dtype)
    if m > 0:
        column_product(np.ascontiguousarray(dx).reshape(m * n_rows, n_in), w_t, dy.reshape(m * n_rows, n_out))
    return y, dy


# --------------------------------------------------------------------------- norms
@njit(**_JIT)
def _apply_norm(x, dx, gain, cfg):
    """Value and tangents of the row norm ``N(x; g)`` of kind ``cfg`` (MODEL.md, Norms).

    With ``c`` the row (centred when ``cfg.centred``) and ``r = sqrt(|c|²/q + ε)`` (``q = d`` when
    ``cfg.mean_square``, else 1): ``y = g ⊙ c / r`` and ``dy = g ⊙ (dc/r − c (c·dc)/(q r³))``.
    """
    n_rows, d = x.shape
    m = dx.shape[0]
    eps = cfg.norm_eps
    q = float(d) if cfg.mean_square else 1.0
    y = np.empty_like(x)
    dy = np.empty_like(dx)
    dc = np.empty(d, dtype=x.dtype)
    for i in range(n_rows):
        mean = 0.0
        if cfg.centred:
            for a in range(d):
                mean += x[i, a]
            mean /= d
        sq = 0.0
        for a in range(d):
            sq += (x[i, a] - mean) * (x[i, a] - mean)
        r = math.sqrt(sq / q + eps)
        inv = 1.0 / r
        for a in range(d):
            y[i, a] = gain[a] * ((x[i, a] - mean) * inv)
        for s in range(m):
            dmean = 0.0
            if cfg.centred:
                for a in range(d):
                    dmean += dx[s, i, a]
                dmean /= d
            dot = 0.0
            for a in range(d):
                dc[a] = dx[s, i, a] - dmean
                dot += (x[i, a] - mean) * dc[a]
            coef = dot * inv * inv * inv / q
            for a in range(d):
                dy[s, i, a] = gain[a] * (dc[a] * inv - (x[i, a] - mean) * coef)
    return y, dy


# --------------------------------------------------------------------------- activations
@njit(cache=True, error_model="numpy", inline="always")
def _tanh_with_slope(z):
    value = tanh(z)
    return value, 1.0 - value * value


@njit(cache=True, error_model="numpy", inline="always")
def _gelu_with_slope(z):
    cdf = normal_cdf(z)
    pdf = exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z * cdf, cdf + z * pdf


@njit(**_JIT)
def _activation(z, code):
    """Value and derivative of the activation ``code`` (``ACTIVATION_OPS``) at the scalar ``z``."""
    if code == 0:  # tanh
        return _tanh_with_slope(z)
    if code == 1:  # relu
        return (z, 1.0) if z > 0.0 else (0.0 * z, 0.0)
    if code == 2:  # gelu, exact
        return _gelu_with_slope(z)
    if code == 3:  # silu
        sigmoid = 1.0 / (1.0 + exp(-z))
        return z * sigmoid, sigmoid * (1.0 + z * (1.0 - sigmoid))
    raise ValueError("unknown activation code")


@njit(**_JIT)
def activate(z, out, code):
    """``out = φ(z)`` element by element, values only: one loop per activation, so that it vectorises."""
    flat_z = z.ravel()
    flat_out = out.ravel()
    if code == 0:
        # two halves per iteration: the CPU overlaps the long dependency chains of two elements'
        # tanh (in float64, 1.64 against 1.43 ns per element on 2048 elements); views, not offsets,
        # so that the loop vectorises
        half = flat_z.size // 2
        first_in, second_in = flat_z[:half], flat_z[half:2 * half]
        first_out, second_out = flat_out[:half], flat_out[half:2 * half]
        for k in range(half):
            first_out[k] = tanh_native(first_in[k])
            second_out[k] = tanh_native(second_in[k])
        if flat_z.size % 2 == 1:
            flat_out[-1] = tanh_native(flat_z[-1])
    elif code == 2:  # gelu: vectorised loops of its own (float32 in float32)
        gelu_values(flat_z, flat_out)
    elif code == 1:  # relu, as _activation computes it (a select: the loop vectorises)
        for k in range(flat_z.size):
            value = flat_z[k]
            flat_out[k] = value if value > 0.0 else 0.0 * value
    elif code == 3:  # silu, as _activation computes it
        for k in range(flat_z.size):
            flat_out[k] = flat_z[k] * (1.0 / (1.0 + exp(-flat_z[k])))
    else:
        for k in range(flat_z.size):
            flat_out[k] = _activation(flat_z[k], code)[0]


@njit(**_JIT)
def _activate_with_slopes(z, out, slopes, code):
    """``out = φ(z)`` and ``slopes = φ'(z)`` element by element (:func:`_activation`'s values, bit for bit).

    tanh and the exact GELU in loops of their own, so that they vectorise (8 tangents of a d = 64,
    T = 8 MLP: the GELU's 2,048 values and slopes took 30 µs one call at a time).
    """
    flat_z, flat_out, flat_slopes = z.ravel(), out.ravel(), slopes.ravel()
    if code == 0:
        for k in range(flat_z.size):
            flat_out[k], flat_slopes[k] = _tanh_with_slope(flat_z[k])
    elif code == 2:
        for k in range(flat_z.size):
            flat_out[k], flat_slopes[k] = _gelu_with_slope(flat_z[k])
    else:
        for k in range(flat_z.size):
            flat_out[k], flat_slopes[k] = _activation(flat_z[k], code)


@njit(**_JIT)
def _apply_mlp(x, dx, w_in, w_out, code):
    """Value and tangents of ``φ(X W1ᵀ) W2ᵀ`` (weights transposed, as in :func:`_apply_linear`)."""
    z, dz = _apply_linear(x, dx, w_in)
    a = np.empty_like(z)
    if dz.shape[0] == 0:
        activate(z, a, code)
        return _apply_linear(a, dz, w_out)
    slopes = np.empty_like(z)
    _activate_with_slopes(z, a, slopes, code)
    for s in range(dz.shape[0]):
        dz[s] *= slopes
    return _apply_linear(a, dz, w_out)


# --------------------------------------------------------------------------- attention
@njit(**_JIT)
def _apply_attention(x, dx, w_q, w_k, w_v, w_o, heads, causal):
    """Value, tangents and attention matrices (heads, T, T) of multi-head self-attention.

    The weights come transposed (``w_q = W_Qᵀ`` and so on, as in :func:`_apply_linear`).
    """
    n_tokens, d = x.shape
    m = dx.shape[0]
    dh = d // heads
    scale = 1.0 / math.sqrt(dh)
    q, dq = _apply_linear(x, dx, w_q)
    k, dk = _apply_linear(x, dx, w_k)
    v, dv = _apply_linear(x, dx, w_v)
    out = np.zeros_like(x)
    dout = np.zeros_like(dx)
    attention = np.zeros((heads, n_tokens, n_tokens), dtype=x.dtype)
    ds = np.empty(n_tokens, dtype=x.dtype)
    for h in range(heads):
        c0 = h * dh
        for i in range(n_tokens):
            last = i + 1 if causal else n_tokens
            row_max = -np.inf
            for j in range(last):
                score = 0.0
                for a in range(c0, c0 + dh):
                    score += q[i, a] * k[j, a]
                attention[h, i, j] = score * scale
                row_max = max(row_max, attention[h, i, j])
            total = 0.0
            for j in range(last):
                attention[h, i, j] = exp(attention[h, i, j] - row_max)
                total += attention[h, i, j]
            for j in range(last):
                attention[h, i, j] /= total
                for a in range(c0, c0 + dh):
                    out[i, a] += attention[h, i, j] * v[j, a]
    for s in range(m):  # tangent by tangent: each one's arrays are contiguous
        for h in range(heads):
            c0 = h * dh
            for i in range(n_tokens):
                last = i + 1 if causal else n_tokens
                # dA_ij = A_ij (dS_ij − Σ_l A_il dS_il), dS = (dQ Kᵀ + Q dKᵀ) / sqrt(dh)
                mean_ds = 0.0
                for j in range(last):
                    score = 0.0
                    for a in range(c0, c0 + dh):
                        score += dq[s, i, a] * k[j, a] + q[i, a] * dk[s, j, a]
                    ds[j] = score * scale
                    mean_ds += attention[h, i, j] * ds[j]
                for j in range(last):
                    da = attention[h, i, j] * (ds[j] - mean_ds)
                    for a in range(c0, c0 + dh):
                        dout[s, i, a] += da * v[j, a] + attention[h, i, j] * dv[s, j, a]
    y, dy = _apply_linear(out, dout, w_o)
    return y, dy, attention


@njit(**_JIT)
def _apply_mixer(cfg, arrays, layer, sub, x, dx):
    """Value, tangents and attention (empty if none) of the branch ``F`` of one sub-layer."""
    no_attention = np.zeros((0, 0, 0), dtype=x.dtype)
    branch = arrays.branches[sub]
    if branch == BRANCH_LINEAR:
        y, dy = _apply_linear(x, dx, arrays.linear_t[layer])
        return y, dy, no_attention
    if branch == BRANCH_MLP:
        y, dy = _apply_mlp(x, dx, arrays.mlp_in_t[layer], arrays.mlp_out_t[layer], cfg.activation)
        return y, dy, no_attention
    if branch == BRANCH_ATTENTION:
        return _apply_attention(x, dx, arrays.attn_q_t[layer], arrays.attn_k_t[layer], arrays.attn_v_t[layer],
                                arrays.attn_o_t[layer], cfg.heads, cfg.causal)
    raise ValueError("unknown branch code")


# --------------------------------------------------------------------------- placements
@njit(**_JIT)
def _apply_sublayer(cfg, arrays, layer, sub, x, dx, a):
    """One sub-layer with its norm placement's flags (MODEL.md, Norm placement), residual scale ``a``.

    The residual path is ``s X`` (``s = cfg.skip_scale``; ``1.0 * X`` is ``X`` to the bit).
    """
    if cfg.sphere:
        unit = arrays.unit_gain
        nx, dnx = _apply_norm(x, dx, unit, cfg)
        f, df, attention = _apply_mixer(cfg, arrays, layer, sub, x, dx)
        nf, dnf = _apply_norm(f, df, unit, cfg)
        y, dy = _apply_norm(nx + a * (nf - nx), dnx + a * (dnf - dnx), unit, cfg)
        return y, dy, attention
    branch_in, dbranch_in = x, dx
    if cfg.norm_in:
        branch_in, dbranch_in = _apply_norm(x, dx, arrays.norm_in[layer, sub], cfg)
    f, df, attention = _apply_mixer(cfg, arrays, layer, sub, branch_in, dbranch_in)
    if cfg.norm_branch_out:
        f, df = _apply_norm(f, df, arrays.norm_out[layer, sub], cfg)
    s = cfg.skip_scale
    y = s * x + a * f
    dy = s * dx + a * df
    if cfg.norm_after_residual:
        y, dy = _apply_norm(y, dy, arrays.norm_out[layer, sub], cfg)
    return y, dy, attention


@njit(**_JIT)
def stage_apply(cfg, arrays, stage, x, dx):
    """Value, tangents and attention of stage ``stage`` at state ``x`` with tangents ``dx``.

    Stages run: injection (if any), the layers, the outer norm (if any). The attention returned
    is that of the layer's attention sub-layer, or an empty array.
    """
    no_attention = np.zeros((0, 0, 0), dtype=x.dtype)
    if cfg.has_inject:
        if stage == 0:
            if cfg.inject_operator == INJECT_MATRIX:
                y, dy = _apply_linear(x, dx, arrays.inject_matrix_t)
            elif cfg.inject_operator == INJECT_DIAGONAL:
                y = x * arrays.inject_diagonal
                dy = dx * arrays.inject_diagonal
            elif cfg.inject_operator == INJECT_IDENTITY:
                y = x.copy()
                dy = dx.copy()
            else:
                raise ValueError("unknown injection operator code")
            if cfg.inject_multiply:  # the gate: u = L(X) ⊙ βc
                return y * arrays.inject_constant, dy * arrays.inject_constant, no_attention
            if cfg.inject_norm:  # u = N(L(X) + βc; inject_norm)
                y, dy = _apply_norm(y + arrays.inject_constant, dy, arrays.inject_gain, cfg)
                return y, dy, no_attention
            return y + arrays.inject_constant, dy, no_attention
        stage -= 1
    if stage == cfg.layers:  # the outer norm
        y, dy = _apply_norm(x, dx, arrays.norm_outer, cfg)
        return y, dy, no_attention
    attention = no_attention
    if cfg.inject_each_layer:  # X ← X + βc before every layer, inside its stage
        x = x + arrays.inject_constant
    for sub in range(cfg.sublayers):
        x, dx, sub_attention = _apply_sublayer(cfg, arrays, stage, sub, x, dx, cfg.residual_scale)
        if sub_attention.shape[0] > 0:
            attention = sub_attention
    return x, dx, attention


@njit(**_JIT)
def attention_input(cfg, arrays, layer, x):
    """What layer ``layer``'s attention reads when the layer's stage starts at ``x`` (MODEL.md).

    The state after the per-layer injection (if any) and the branch's input norm (if the
    placement has one; ``"sphere"`` gives the mixer the state itself).
    """
    if cfg.inject_each_layer:
        x = x + arrays.inject_constant
    if cfg.norm_in and not cfg.sphere:
        no_tangent = np.zeros((0, x.shape[0], x.shape[1]), dtype=x.dtype)
        x, _ = _apply_norm(x, no_tangent, arrays.norm_in[layer, 0], cfg)
    return x


# --------------------------------------------------------------------------- iteration
@njit(**_JIT)
def run_block(cfg, arrays, x0, loops, n_stages, mode, stride, capacity, record_attention):
    """Iterate ``loops`` loops from ``x0``; see ``dynloop.systems.base.RunOutput`` for the outputs."""
    n_tokens, d = x0.shape
    cur, prev, states, recorded_loops, norms, steps, cosines = new_records(
        loops, n_stages, n_tokens * d, capacity, mode, x0)
    n_heads = cfg.heads if record_attention else 0
    attention = np.zeros((capacity if record_attention else 0, cfg.layers, n_heads, n_tokens, n_tokens),
                         dtype=x0.dtype)
    loop_attention = np.zeros((cfg.layers, n_heads, n_tokens, n_tokens), dtype=x0.dtype)
    no_tangent = np.empty((0, n_tokens, d), dtype=x0.dtype)
    first_layer_stage = 1 if cfg.has_inject else 0
    x = x0.copy()
    count = 0
    loops_run, diverged_at, diverged_stage = loops, -1, -1
    for t in range(loops):
        cur[0] = x.reshape(n_tokens * d)
        for stage in range(n_stages):
            y, _, stage_attention = stage_apply(cfg, arrays, stage, cur[stage].reshape(n_tokens, d),
                                                no_tangent)
            cur[stage + 1] = y.reshape(n_tokens * d)
            if record_attention and stage_attention.shape[0] > 0:
                loop_attention[stage - first_layer_stage] = stage_attention
        flush_tiny(cur[n_stages])
        bad_stage, slot, count = close_loop(t, cur, prev, states, recorded_loops, norms, steps, cosines,
                                            stride, mode, count)
        if bad_stage >= 0:
            loops_run, diverged_at, diverged_stage = t, t, bad_stage
            break
        if slot >= 0 and record_attention:
            attention[slot] = loop_attention
        x = cur[n_stages].reshape(n_tokens, d).copy()
    states = states.reshape(states.shape[0], n_stages + 1, n_tokens, d)
    return (states, recorded_loops, count, norms, steps, cosines, loops_run, diverged_at, diverged_stage, x,
            attention)


@njit(**_JIT)
def stage_jacobian(cfg, arrays, stage, x):
    """Analytic Jacobian (n × n, row-major flattening) of one stage at ``x``, and the stage output."""
    n_tokens, d = x.shape
    n = n_tokens * d
    basis = np.eye(n, dtype=x.dtype).reshape(n, n_tokens, d)
    y, dy, _ = stage_apply(cfg, arrays, stage, x, basis)
    return dy.reshape(n, n).T.copy(), y


@njit(**_JIT)
def _loop_with_tangents(cfg, arrays, x, tangents, n_stages):
    """One loop of the state ``x`` (T, d) and its tangents (m, T, d)."""
    for stage in range(n_stages):
        x, tangents, _ = stage_apply(cfg, arrays, stage, x, tangents)
    return x, tangents


@njit(cache=True, error_model="numpy", parallel=True)
def tangent_run(cfg, arrays, x0, basis, loops, n_stages, with_log_det, parts):
    """Iterate the state and ``m`` tangent columns, re-orthonormalising (QR) after every loop.

    Parameters
    ----------
    basis : ndarray, shape (n, m)
        Orthonormal start columns.
    with_log_det : bool
        Also accumulate ``ln|det J_stage|`` of every stage (square stage Jacobians, computed
        explicitly: an independent check of the sum of the exponents).
    parts : int
        The tangents run in this many parts at once (``numba.prange``), each part with its own
        copy of the state's loop: a tangent's bits depend neither on its part nor on how many
        tangents share it (every operation on a tangent row is the same whatever the other rows).

    Returns
    -------
    state, basis, log_r (m,), log_det, loops_done
        ``log_r`` sums ``ln|R_ii|`` over the loops done; the run stops early at a non-finite value
        and returns the last finite state.
    """
    n_tokens, d = x0.shape
    n = n_tokens * d
    m = basis.shape[1]
    parts = max(1, min(parts, m))
    x = x0.copy()
    tangents = basis.T.copy().reshape(m, n_tokens, d)
    states = np.empty((parts, n_tokens, d), dtype=x0.dtype)
    log_r = np.zeros(m)
    log_det = 0.0
    done = 0
    for t in range(loops):
        if with_log_det:
            stage_x = x
            for stage in range(n_stages):
                jacobian, stage_x = stage_jacobian(cfg, arrays, stage, stage_x)
                log_det += np.linalg.slogdet(jacobian.astype(np.float64))[1]
        for part in prange(parts):
            first, last = part * m // parts, (part + 1) * m // parts
            state, moved = _loop_with_tangents(cfg, arrays, x, tangents[first:last].copy(), n_stages)
            states[part] = state
            tangents[first:last] = moved
        columns = tangents.reshape(m, n).T.copy()
        if not np.all(np.isfinite(columns)) or not np.all(np.isfinite(states[0])):
            break  # report the last finite state, as the map and affine kernels do
        x = states[0].copy()
        flush_tiny(x)
        q, r = np.linalg.qr(columns)
        for i in range(m):
            log_r[i] += math.log(abs(r[i, i]))
        tangents = q.T.copy().reshape(m, n_tokens, d)
        done = t + 1
    return x, tangents.reshape(m, n).T.copy(), log_r, log_det, done
