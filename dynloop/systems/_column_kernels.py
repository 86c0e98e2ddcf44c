"""Values-only block stages for many grid points at once, one token row per column.

A sweep iterates thousands of points of the same block that differ only in their residual
scale, injection strength and norm ε. The token rows of a group of points are the *columns* of
one state ``X`` of shape ``(d, c)``, token-major: with ``B`` points, column ``t·B + p`` is token
``t`` of point ``p``. The innermost loop of every row-wise operation (norm, activation, residual
update, and each multiply-accumulate of a matrix product) then runs along contiguous memory
across points, the loop the compiler turns into vector instructions whatever ``d`` is. Every
projection (attention's Q, K, V and O, the MLP's two layers, the injection matrix) is one product
``W @ X`` over the whole group, every output summed in input order
(:func:`~dynloop.systems._products.weight_product`, transposed when the group is small).
Attention, the only operation that mixes tokens, runs per head on ``T × T`` tiles of every point
at once: each of its loops also runs across the points, which the token-major order makes
contiguous (:func:`_attention_head`).

A column's result never depends on the other columns: not on how many there are (a sweep's group
size, which shrinks as points leave it) nor on where it sits among them, nor on the CPU. Every loop
here treats each column with the same operations in the same order, whatever vector width the
compiler chooses. tests/systems/test_column_kernels.py checks it bit for bit.

These functions compute exactly what :func:`~dynloop.systems._block_kernels.stage_apply`
computes without tangents (MODEL.md), up to rounding (fused multiply-adds, summation order):
tests/systems/test_column_kernels.py checks every scheme against it. Buffers are preallocated by
:func:`column_buffers` and results are written in place.
"""

import math

import numpy as np
from numba import njit

from ._block_kernels import (BRANCH_ATTENTION, BRANCH_LINEAR, BRANCH_MLP, INJECT_DIAGONAL, INJECT_IDENTITY,
                             INJECT_MATRIX, activate)
from ._fastmath import exp, fma
from ._lanes import lanes_count, lanes_load, lanes_muladd, lanes_store, lanes_times, lanes_zeros
from ._products import weight_product

_JIT = dict(cache=True, error_model="numpy")

@njit(**_JIT)
def column_buffers(d, hidden, columns, dtype_like, tokens=0):
    """Work arrays for :func:`column_stage` on ``columns`` columns.

    Three (d, c), two (hidden, c), the norms' statistics (2, c, or more for attention's padded
    points); with ``tokens > 0`` (attention)
    four more (d, c) for Q, K, V and the heads' output, the score tiles (T², B') and, when the
    ``B = c / T`` points are not a whole number of vectors, Q, K, V and the heads' output again
    with each token's points padded to ``B'``, a whole number of vectors (:func:`_padded_points`).
    """
    kind = dtype_like.dtype
    wide = columns if tokens > 0 else 0
    points = columns // tokens if tokens > 0 else 0
    padded = _padded_points(points, dtype_like)
    spread = tokens * padded if padded > points else 0
    return (np.empty((d, columns), dtype=kind), np.empty((d, columns), dtype=kind),
            np.empty((d, columns), dtype=kind), np.empty((hidden, columns), dtype=kind),
            np.empty((hidden, columns), dtype=kind), np.empty((2, max(columns, padded)), dtype=kind),
            np.empty((d, wide), dtype=kind), np.empty((d, wide), dtype=kind),
            np.empty((d, wide), dtype=kind), np.empty((d, wide), dtype=kind),
            np.empty((tokens * tokens, padded), dtype=kind),
            np.zeros((d, spread), dtype=kind), np.zeros((d, spread), dtype=kind),
            np.zeros((d, spread), dtype=kind), np.zeros((d, spread), dtype=kind))


@njit(**_JIT)
def _padded_points(points, dtype_like):
    """Points per token in attention's loops: ``points`` rounded up to whole vectors of floats.

    Attention sums each score and each output in a register, a vector of points at a time, so a
    group whose point count is not a multiple of the vector length runs attention on copies padded
    with zero points. float32, d = 64, T = 32, µs per point and loop: 84 for 16 points, 96 for 15
    (padded), 115 for 8; with the loops across points that this replaced, 104-111, 156 and 151.
    """
    lanes = lanes_count(dtype_like, 1)
    return (points + lanes - 1) // lanes * lanes


@njit(**_JIT)
def _copy_points(source, target, n_tokens, n_points):
    """Each token's first ``n_points`` columns of ``source`` to the start of its block in ``target``.

    The two arrays hold ``n_tokens`` blocks each, of their own widths (compact ``B`` and padded
    ``B'``): this spreads compact columns into padded ones, or gathers them back.
    """
    source_width = source.shape[1] // n_tokens
    target_width = target.shape[1] // n_tokens
    for a in range(source.shape[0]):
        for t in range(n_tokens):
            for p in range(n_points):
                target[a, t * target_width + p] = source[a, t * source_width + p]


@njit(**_JIT)
def column_norm(x, gain, cfg, eps, out, stats):
    """``out = N(x; g)`` column by column (the norm kind of ``cfg``, ε per column); ``out`` may be ``x``."""
    d, c = x.shape
    q = float(d) if cfg.mean_square else 1.0
    mean = stats[0]
    inverse = stats[1]
    inverse[:] = 0.0
    if cfg.centred:
        mean[:] = 0.0
        for a in range(d):
            for p in range(c):
                mean[p] += x[a, p]
        for p in range(c):
            mean[p] /= d
        for a in range(d):
            for p in range(c):
                centred = x[a, p] - mean[p]
                inverse[p] = fma(centred, centred, inverse[p])
    else:
        for a in range(d):
            for p in range(c):
                inverse[p] = fma(x[a, p], x[a, p], inverse[p])
    for p in range(c):
        inverse[p] = 1.0 / math.sqrt(inverse[p] / q + eps[p])
    if cfg.centred:
        for a in range(d):
            g = gain[a]
            for p in range(c):
                out[a, p] = g * ((x[a, p] - mean[p]) * inverse[p])
    else:
        for a in range(d):
            g = gain[a]
            for p in range(c):
                out[a, p] = g * (x[a, p] * inverse[p])


@njit(**_JIT)
def _attention_head(q, k, v, out, tiles, largest, total, n_tokens, c0, dh, scale, causal):
    """Head ``c0 : c0 + dh`` of every point's attention (token ``t`` of the ``B`` points: columns ``t·B`` on).

    As ``_apply_attention``, point by point: the scores ``q_i · k_j`` summed over the head's rows
    in order, scaled; a softmax over the keys each query sees (all, or ``j <= i`` when ``causal``)
    after subtracting the query's largest score; the output ``Σ_j A_ij v_j`` summed over ``j`` in
    order. ``tiles[i·T + j]`` holds every point's score of the pair ``(i, j)``, then its weight
    ``A_ij``; ``largest`` and ``total`` (B,) hold a query's maximum and sum. ``B`` is a whole
    number of vectors (:func:`_padded_points`): each score and each output is summed in a register,
    a vector of points at a time.
    """
    n_points = tiles.shape[1]
    lanes = lanes_zeros(q, 1)
    width = lanes_count(q, 1)
    for i in range(n_tokens):
        last = i + 1 if causal else n_tokens
        for p in range(0, n_points, width):
            queries = i * n_points + p
            j = 0
            while j + 4 <= last:  # four keys at a time, each query row loaded once for them
                first = lanes_load(lanes, q, c0, queries)
                s0 = lanes_times(first, lanes_load(lanes, k, c0, j * n_points + p))
                s1 = lanes_times(first, lanes_load(lanes, k, c0, (j + 1) * n_points + p))
                s2 = lanes_times(first, lanes_load(lanes, k, c0, (j + 2) * n_points + p))
                s3 = lanes_times(first, lanes_load(lanes, k, c0, (j + 3) * n_points + p))
                for a in range(c0 + 1, c0 + dh):
                    row = lanes_load(lanes, q, a, queries)
                    s0 = lanes_muladd(row, lanes_load(lanes, k, a, j * n_points + p), s0)
                    s1 = lanes_muladd(row, lanes_load(lanes, k, a, (j + 1) * n_points + p), s1)
                    s2 = lanes_muladd(row, lanes_load(lanes, k, a, (j + 2) * n_points + p), s2)
                    s3 = lanes_muladd(row, lanes_load(lanes, k, a, (j + 3) * n_points + p), s3)
                lanes_store(s0, tiles, i * n_tokens + j, p)
                lanes_store(s1, tiles, i * n_tokens + j + 1, p)
                lanes_store(s2, tiles, i * n_tokens + j + 2, p)
                lanes_store(s3, tiles, i * n_tokens + j + 3, p)
                j += 4
            for j in range(j, last):
                keys = j * n_points + p
                score = lanes_times(lanes_load(lanes, q, c0, queries), lanes_load(lanes, k, c0, keys))
                for a in range(c0 + 1, c0 + dh):
                    row = lanes_load(lanes, q, a, queries)
                    score = lanes_muladd(row, lanes_load(lanes, k, a, keys), score)
                lanes_store(score, tiles, i * n_tokens + j, p)
        largest[:] = -np.inf
        for j in range(last):
            row = tiles[i * n_tokens + j]
            for p in range(n_points):
                row[p] *= scale
                largest[p] = max(largest[p], row[p])
        total[:] = 0.0
        for j in range(last):
            row = tiles[i * n_tokens + j]
            for p in range(n_points):
                row[p] = exp(row[p] - largest[p])
                total[p] += row[p]
        for j in range(last):
            row = tiles[i * n_tokens + j]
            for p in range(n_points):
                row[p] /= total[p]
    for i in range(n_tokens):
        last = i + 1 if causal else n_tokens
        for p in range(0, n_points, width):
            a = c0
            while a + 4 <= c0 + dh:  # four of the head's rows at a time, each weight loaded once for them
                weight = lanes_load(lanes, tiles, i * n_tokens, p)
                r0 = lanes_times(weight, lanes_load(lanes, v, a, p))
                r1 = lanes_times(weight, lanes_load(lanes, v, a + 1, p))
                r2 = lanes_times(weight, lanes_load(lanes, v, a + 2, p))
                r3 = lanes_times(weight, lanes_load(lanes, v, a + 3, p))
                for j in range(1, last):
                    weight = lanes_load(lanes, tiles, i * n_tokens + j, p)
                    r0 = lanes_muladd(weight, lanes_load(lanes, v, a, j * n_points + p), r0)
                    r1 = lanes_muladd(weight, lanes_load(lanes, v, a + 1, j * n_points + p), r1)
                    r2 = lanes_muladd(weight, lanes_load(lanes, v, a + 2, j * n_points + p), r2)
                    r3 = lanes_muladd(weight, lanes_load(lanes, v, a + 3, j * n_points + p), r3)
                lanes_store(r0, out, a, i * n_points + p)
                lanes_store(r1, out, a + 1, i * n_points + p)
                lanes_store(r2, out, a + 2, i * n_points + p)
                lanes_store(r3, out, a + 3, i * n_points + p)
                a += 4
            for a in range(a, c0 + dh):
                result = lanes_times(lanes_load(lanes, tiles, i * n_tokens, p), lanes_load(lanes, v, a, p))
                for j in range(1, last):
                    result = lanes_muladd(lanes_load(lanes, tiles, i * n_tokens + j, p),
                                          lanes_load(lanes, v, a, j * n_points + p), result)
                lanes_store(result, out, a, i * n_points + p)


@njit(**_JIT)
def _column_attention(cfg, arrays, layer, x, out, work, n_tokens):
    """``out = F(x)``: multi-head self-attention of every point's tokens (token-major columns)."""
    d, c = x.shape
    q, k, v, heads_out, tiles, stats = work[6], work[7], work[8], work[9], work[10], work[5]
    n_points = c // n_tokens if n_tokens > 0 else 0
    if n_tokens == 0 or tiles.shape[0] != n_tokens * n_tokens or n_points * n_tokens != c \
            or tiles.shape[1] != _padded_points(n_points, x):
        raise ValueError("attention columns need buffers made for the points' token count")
    weight_product(arrays.attn_q[layer], arrays.attn_q_t[layer], x, q)
    weight_product(arrays.attn_k[layer], arrays.attn_k_t[layer], x, k)
    weight_product(arrays.attn_v[layer], arrays.attn_v_t[layer], x, v)
    padded = tiles.shape[1]
    heads_in = heads_out
    if padded > n_points:  # the heads run on copies padded with zero points (the pads stay zero)
        heads_in = work[14]
        for compact, spread in ((q, work[11]), (k, work[12]), (v, work[13])):
            _copy_points(compact, spread, n_tokens, n_points)
        q, k, v = work[11], work[12], work[13]
    dh = d // cfg.heads
    scale = 1.0 / math.sqrt(dh)
    largest, total = stats[0, :padded], stats[1, :padded]
    for h in range(cfg.heads):
        _attention_head(q, k, v, heads_in, tiles, largest, total, n_tokens, h * dh, dh, scale, cfg.causal)
    if padded > n_points:
        _copy_points(heads_in, heads_out, n_tokens, n_points)
    weight_product(arrays.attn_o[layer], arrays.attn_o_t[layer], heads_out, out)


@njit(**_JIT)
def _column_mixer(cfg, arrays, layer, sub, x, out, work, n_tokens):
    """``out = F(x)``: the branch of sub-layer ``sub`` of ``layer`` (linear map, MLP or attention)."""
    branch = arrays.branches[sub]
    if branch == BRANCH_LINEAR:
        weight_product(arrays.linear[layer], arrays.linear_t[layer], x, out)
    elif branch == BRANCH_MLP:
        z, activated = work[3], work[4]
        weight_product(arrays.mlp_in[layer], arrays.mlp_in_t[layer], x, z)
        activate(z, activated, cfg.activation)
        weight_product(arrays.mlp_out[layer], arrays.mlp_out_t[layer], activated, out)
    elif branch == BRANCH_ATTENTION:
        _column_attention(cfg, arrays, layer, x, out, work, n_tokens)
    else:
        raise ValueError("unknown branch code")


@njit(**_JIT)
def _column_sublayer(cfg, arrays, layer, sub, x, alpha, skip, eps, work, n_tokens):
    """Sub-layer ``sub`` with its norm placement, in place on ``x`` (residual and skip scales per column)."""
    d, c = x.shape
    branch, f, stats = work[0], work[1], work[5]
    if cfg.sphere:
        unit = arrays.unit_gain
        _column_mixer(cfg, arrays, layer, sub, x, f, work, n_tokens)
        column_norm(x, unit, cfg, eps, branch, stats)
        column_norm(f, unit, cfg, eps, f, stats)
        for a in range(d):
            for p in range(c):
                x[a, p] = branch[a, p] + alpha[p] * (f[a, p] - branch[a, p])
        column_norm(x, unit, cfg, eps, x, stats)
        return
    if cfg.norm_in:
        column_norm(x, arrays.norm_in[layer, sub], cfg, eps, branch, stats)
        _column_mixer(cfg, arrays, layer, sub, branch, f, work, n_tokens)
    else:
        _column_mixer(cfg, arrays, layer, sub, x, f, work, n_tokens)
    if cfg.norm_branch_out:
        column_norm(f, arrays.norm_out[layer, sub], cfg, eps, f, stats)
    for a in range(d):
        for p in range(c):
            x[a, p] = fma(alpha[p], f[a, p], skip[p] * x[a, p])
    if cfg.norm_after_residual:
        column_norm(x, arrays.norm_out[layer, sub], cfg, eps, x, stats)


@njit(**_JIT)
def column_stage(cfg, arrays, stage, x, n_tokens, alpha, skip, constant, eps, work):
    """Apply stage ``stage`` to the columns ``x`` (d, c) in place, values only.

    The columns are the ``n_tokens`` tokens of ``B = c / n_tokens`` points, token-major (column
    ``t·B + p`` is token ``t`` of point ``p``). ``alpha`` (c,) is each column's residual scale,
    ``skip`` (c,) its skip scale, ``constant`` (d, c) its injected term and ``eps`` (c,) its norm ε;
    ``work`` comes from :func:`column_buffers` for ``c`` columns of points of ``n_tokens`` tokens
    (row-wise mixers also take buffers for more columns, and ignore the token count). Stages run
    as in ``stage_apply``: injection (if any), the layers, the outer norm.
    """
    d, c = x.shape
    if cfg.has_inject:
        if stage == 0:
            if cfg.inject_operator == INJECT_MATRIX:
                injected = work[2]
                weight_product(arrays.inject_matrix, arrays.inject_matrix_t, x, injected)
                x[:, :] = injected
            elif cfg.inject_operator == INJECT_DIAGONAL:
                for a in range(d):
                    diagonal = arrays.inject_diagonal[a]
                    for p in range(c):
                        x[a, p] *= diagonal
            elif cfg.inject_operator != INJECT_IDENTITY:
                raise ValueError("unknown injection operator code")
            if cfg.inject_multiply:
                for a in range(d):
                    for p in range(c):
                        x[a, p] *= constant[a, p]
            else:
                for a in range(d):
                    for p in range(c):
                        x[a, p] += constant[a, p]
                if cfg.inject_norm:
                    column_norm(x, arrays.inject_gain, cfg, eps, x, work[5])
            return
        stage -= 1
    if stage == cfg.layers:
        column_norm(x, arrays.norm_outer, cfg, eps, x, work[5])
        return
    if cfg.inject_each_layer:
        for a in range(d):
            for p in range(c):
                x[a, p] += constant[a, p]
    for sub in range(cfg.sublayers):
        _column_sublayer(cfg, arrays, stage, sub, x, alpha, skip, eps, work, n_tokens)
