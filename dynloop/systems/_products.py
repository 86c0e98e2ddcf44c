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

from ._lanes import (VECTOR_BYTES, lanes_count, lanes_load, lanes_muladd, lanes_splat, lanes_store,
                     lanes_times, lanes_zeros)

_JIT = dict(cache=True, error_model="numpy")

#: A tile is this many output rows by ``_WIDE`` native vectors of columns, its partial sums in
#: registers: 8 by 2 with AVX-512 (32 vector registers), 6 by 2 with AVX2 (16 registers: 12 sums,
#: two input vectors and a broadcast weight). Measured on one core, ps per multiply-add at d = 64
#: to 512 and 384-528 columns: an AMD EPYC Zen 5 with AVX-512, 8 by 2, float64 15-17, float32 8-9;
#: an AMD EPYC Zen 4 running AVX2 only, float64 48-52 at d <= 128 for 6 by 2, against 65-79 for
#: 8 rows by one vector (the earlier AVX2 tile), 51-59 for 4 by 2, 217-252 for 4 by 3 (LLVM splits a
#: three-vector value badly) and 51-59 for the machine's BLAS; 8 by 2 spilled sums to the stack.
_TILE_ROWS = 8 if VECTOR_BYTES >= 64 else 6
_WIDE = 2 if VECTOR_BYTES >= 32 else 1
_NARROW = 1

#: Below this many columns :func:`weight_product` multiplies transposed (Zen 5, d = 32 to 512: 4 columns
#: 51-191 ps per multiply-add along the columns against 20-164 transposed, 8 columns 20-98 against
#: 8-59, 16 columns 10-37 against 8-37, 32 and more about the same).
_FEW_COLUMNS = 32


@njit(**_JIT)
def column_product(w, x, out):
    """``out = W x`` for W (o, i) and columns x (i, c), every output summed in input order.

    The product runs in tiles of ``_TILE_ROWS`` output rows (8 with AVX-512, 6 with AVX2) by two
    native vectors of columns (16 floats in float64 with AVX-512, 8 with AVX2), then tiles one
    vector wide, each keeping its
    partial sums in registers for the whole pass along the inputs. The last rows and columns are
    tiles that overlap the ones before them (computing some outputs twice, with the same values);
    fewer rows than a tile or one vector of columns go through zero-padded copies, and arrays that are
    not C-contiguous through contiguous ones.
    """
    n_out, n_in = w.shape
    c = x.shape[1]
    if n_in == 0:
        out[:, :] = 0.0
        return
    rows, columns = max(n_out, _TILE_ROWS), max(c, lanes_count(x, _NARROW))
    if rows > n_out:
        weights = np.zeros((rows, n_in), dtype=w.dtype)
        weights[:n_out] = w
    else:
        weights = np.ascontiguousarray(w)
    if columns > c:
        inputs = np.zeros((n_in, columns), dtype=x.dtype)
        inputs[:, :c] = x
    else:
        inputs = np.ascontiguousarray(x)
    if rows == n_out and columns == c:
        result = np.ascontiguousarray(out)  # out itself when it is C-contiguous
    else:
        result = np.empty((rows, columns), dtype=out.dtype)
    _tiles(weights, inputs, result)
    if result.ctypes.data != out.ctypes.data:
        out[:, :] = result[:n_out, :c]


@njit(**_JIT)
def _tiles(w, x, out):
    """``out = W x`` in tiles (C-contiguous arrays, at least a tile of rows and one vector of columns).

    The last tile of rows, and of columns, starts early enough to end at the last one.
    """
    n_out = w.shape[0]
    c = x.shape[1]
    wide, narrow = lanes_count(x, _WIDE), lanes_count(x, _NARROW)
    whole = c - c % wide
    for p in range(0, whole, wide):
        for o in range(0, n_out, _TILE_ROWS):
            _tile(w, x, out, min(o, n_out - _TILE_ROWS), p, lanes_zeros(x, _WIDE))
    for p in range(whole, c, narrow):
        for o in range(0, n_out, _TILE_ROWS):
            _tile(w, x, out, min(o, n_out - _TILE_ROWS), min(p, c - narrow), lanes_zeros(x, _NARROW))


@njit(**_JIT)
def _tile(w, x, out, o, p, shape):
    """Rows ``o : o + _TILE_ROWS`` by as many columns from ``p`` as ``shape`` has lanes, in input order.

    Written for 8 rows; with 6 the last two are constant-false branches that the compiler removes.
    """
    first = lanes_load(shape, x, 0, p)
    a0 = lanes_times(lanes_splat(shape, w[o, 0]), first)
    a1 = lanes_times(lanes_splat(shape, w[o + 1, 0]), first)
    a2 = lanes_times(lanes_splat(shape, w[o + 2, 0]), first)
    a3 = lanes_times(lanes_splat(shape, w[o + 3, 0]), first)
    a4 = lanes_times(lanes_splat(shape, w[o + 4, 0]), first)
    a5 = lanes_times(lanes_splat(shape, w[o + 5, 0]), first)
    a6 = a7 = shape
    if _TILE_ROWS == 8:
        a6 = lanes_times(lanes_splat(shape, w[o + 6, 0]), first)
        a7 = lanes_times(lanes_splat(shape, w[o + 7, 0]), first)
    for i in range(1, w.shape[1]):
        inputs = lanes_load(shape, x, i, p)
        a0 = lanes_muladd(lanes_splat(shape, w[o, i]), inputs, a0)
        a1 = lanes_muladd(lanes_splat(shape, w[o + 1, i]), inputs, a1)
        a2 = lanes_muladd(lanes_splat(shape, w[o + 2, i]), inputs, a2)
        a3 = lanes_muladd(lanes_splat(shape, w[o + 3, i]), inputs, a3)
        a4 = lanes_muladd(lanes_splat(shape, w[o + 4, i]), inputs, a4)
        a5 = lanes_muladd(lanes_splat(shape, w[o + 5, i]), inputs, a5)
        if _TILE_ROWS == 8:
            a6 = lanes_muladd(lanes_splat(shape, w[o + 6, i]), inputs, a6)
            a7 = lanes_muladd(lanes_splat(shape, w[o + 7, i]), inputs, a7)
    lanes_store(a0, out, o, p)
    lanes_store(a1, out, o + 1, p)
    lanes_store(a2, out, o + 2, p)
    lanes_store(a3, out, o + 3, p)
    lanes_store(a4, out, o + 4, p)
    lanes_store(a5, out, o + 5, p)
    if _TILE_ROWS == 8:
        lanes_store(a6, out, o + 6, p)
        lanes_store(a7, out, o + 7, p)


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
