"""Matrix products whose every output is summed in input order, the same on every CPU.

``W @ X`` through BLAS rounds according to the library's kernels, which it picks per CPU
(OpenBLAS 0.3.31 ran its Haswell kernels on an AMD Zen 5 and its SkylakeX kernels on Intel
AVX-512, and the two sum in different orders: sweeps of d ≥ 32 differed in their last bits),
and within one call according to a column's place among the call's columns. Here each output is
the chain ``w₀x₀``, then ``+ wᵢxᵢ`` for i = 1, 2, ... as fused multiply-adds, whatever the vector
width, the number of columns or the CPU. tests/systems/test_column_kernels.py checks it bit for
bit against a one-element-at-a-time oracle.
"""

import numpy as np
from numba import njit

from ._fastmath import fma

_JIT = dict(cache=True, error_model="numpy")

#: The product loops take columns in whole blocks of this many (a multiple of every vector length
#: and unroll factor: the compiler then needs no scalar tail), and the rest in a loop of their own.
_COLUMN_BLOCK = 16

#: Below this many columns :func:`weight_product` multiplies transposed (measured crossover on a
#: Zen 5 core, d = 64 to 512: 8 columns 121-139 ps per multiply-add along the columns against 21-53
#: transposed, 16 columns 58-72 against 22-51, 32 columns 39-46 against 23-41, 64 columns and more
#: mostly faster along the columns).
_FEW_COLUMNS = 32


@njit(**_JIT)
def column_product(w, x, out):
    """``out = W x`` for W (o, i) and columns x (i, c), every output summed in input order.

    The loops take four output rows and four inputs per pass over the columns, so that each pass
    loads four input columns and four partial sums for sixteen multiply-adds, and keeps the sixteen
    weights in registers (AVX-512 has 32; with AVX2's 16 the compiler reloads some, about as fast
    as OpenBLAS there). Measured on one core of an AMD EPYC (Zen 5, AVX-512), ps per multiply-add
    at 512 columns, d = 64 to 512: float64 23-28 against OpenBLAS 0.3.31's 38-43 (which runs its
    AVX2 kernels on that CPU), float32 13-18 against 21-27. Fewer than four rows go through a
    copy padded with zero rows.
    """
    n_out, n_in = w.shape
    if n_out < 4:
        padded = np.zeros((4, n_in), dtype=w.dtype)
        padded[:n_out] = w
        rows = np.empty((4, x.shape[1]), dtype=out.dtype)
        _four_rows(padded, x, rows, 0)
        out[:] = rows[:n_out]
        return
    for o in range(0, n_out - 3, 4):
        _four_rows(w, x, out, o)
    if n_out % 4:  # the last rows, with rows before them computed again (the same values)
        _four_rows(w, x, out, n_out - 4)


@njit(**_JIT)
def _four_rows(w, x, out, o):
    """Rows ``o`` to ``o + 3`` of ``out = W x``, each output's multiply-adds in input order.

    Every pass over the columns runs in two loops: whole blocks of ``_COLUMN_BLOCK``, then the
    rest. A single loop ends in a scalar tail, and the tail keeps the weights live as scalars
    beside their vector copies: too many for the registers, so the hot loop reloaded them from
    the stack at every step.
    """
    n_in = w.shape[1]
    c = x.shape[1]
    whole = c - c % _COLUMN_BLOCK
    y0, y1, y2, y3 = out[o], out[o + 1], out[o + 2], out[o + 3]
    i = 0
    while i + 4 <= n_in:
        a0, a1, a2, a3 = w[o, i], w[o, i + 1], w[o, i + 2], w[o, i + 3]
        b0, b1, b2, b3 = w[o + 1, i], w[o + 1, i + 1], w[o + 1, i + 2], w[o + 1, i + 3]
        c0, c1, c2, c3 = w[o + 2, i], w[o + 2, i + 1], w[o + 2, i + 2], w[o + 2, i + 3]
        d0, d1, d2, d3 = w[o + 3, i], w[o + 3, i + 1], w[o + 3, i + 2], w[o + 3, i + 3]
        r0, r1, r2, r3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        begin = i == 0
        for lo, hi in ((0, whole), (whole, c)):
            for p in range(lo, hi):
                v0, v1, v2, v3 = r0[p], r1[p], r2[p], r3[p]
                s0 = a0 * v0 if begin else fma(a0, v0, y0[p])
                s1 = b0 * v0 if begin else fma(b0, v0, y1[p])
                s2 = c0 * v0 if begin else fma(c0, v0, y2[p])
                s3 = d0 * v0 if begin else fma(d0, v0, y3[p])
                y0[p] = fma(a3, v3, fma(a2, v2, fma(a1, v1, s0)))
                y1[p] = fma(b3, v3, fma(b2, v2, fma(b1, v1, s1)))
                y2[p] = fma(c3, v3, fma(c2, v2, fma(c1, v1, s2)))
                y3[p] = fma(d3, v3, fma(d2, v2, fma(d1, v1, s3)))
        i += 4
    while i < n_in:
        a0, b0, c0, d0 = w[o, i], w[o + 1, i], w[o + 2, i], w[o + 3, i]
        r0 = x[i]
        begin = i == 0
        for lo, hi in ((0, whole), (whole, c)):
            for p in range(lo, hi):
                v0 = r0[p]
                y0[p] = a0 * v0 if begin else fma(a0, v0, y0[p])
                y1[p] = b0 * v0 if begin else fma(b0, v0, y1[p])
                y2[p] = c0 * v0 if begin else fma(c0, v0, y2[p])
                y3[p] = d0 * v0 if begin else fma(d0, v0, y3[p])
        i += 1


@njit(**_JIT)
def weight_product(w, w_t, x, out):
    """``out = W x`` as :func:`column_product`, with ``w_t = Wᵀ`` (C-contiguous) for few columns.

    Below ``_FEW_COLUMNS`` columns the loop along the columns is too short to vectorise well, so
    the product runs transposed, ``outᵀ = xᵀ Wᵀ``, its inner loop along the weights' rows: the
    same chains of multiply-adds in input order, the same bits.
    """
    c = x.shape[1]
    if c >= _FEW_COLUMNS:
        column_product(w, x, out)
        return
    out_t = np.empty((c, w.shape[0]), dtype=out.dtype)
    column_product(np.ascontiguousarray(x.T), w_t, out_t)
    out[:, :] = out_t.T


@njit(**_JIT)
def rows_times_transpose(x, w):
    """``x @ w.T`` for rows x (r, i) and w (o, i), summed in input order (:func:`column_product`).

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.arange(6.0).reshape(2, 3), np.ones((4, 3))
    >>> rows_times_transpose(x, w)[:, 0]
    array([ 3., 12.])
    """
    out = np.empty((w.shape[0], x.shape[0]), dtype=x.dtype)
    if x.shape[0] > 0:
        column_product(np.ascontiguousarray(w), np.ascontiguousarray(x.T), out)
    return np.ascontiguousarray(out.T)
