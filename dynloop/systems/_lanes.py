"""Short vectors of floats that numba keeps in registers: the building block of the product tiles.

numba vectorises the innermost loop of a kernel only, so a matrix product written with loops keeps
its partial sums in memory: every step along the inputs loads and stores them again. A product
tile keeps them in registers instead, as BLAS does: a few rows by a few vectors of columns, each
partial sum a register for the whole pass along the inputs. numba has no vector type, so
:class:`Lanes` is one (an LLVM ``<n x float>`` value), with what a tile needs: :func:`lanes_zeros`
fixes its width, :func:`lanes_load` and :func:`lanes_splat` make vectors from an array's row or
from one float, :func:`lanes_times` and :func:`lanes_muladd` multiply them and add products as
fused multiply-adds (``llvm.fmuladd``, like :func:`~._fastmath.fma`), and :func:`lanes_store`
writes a vector out. Each lane is an independent chain of scalar operations, so a lane's result is
the same whatever the vector's length and however the CPU splits it
(tests/systems/test_column_kernels.py checks the products and attention bit for bit).

A vector spans a number of the CPU's native vector registers (``VECTOR_BYTES``: 64 with AVX-512,
32 with AVX, 16 otherwise); numba's on-disk cache is keyed by the CPU, so code compiled for one
width never runs on a CPU of another.
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic, models, register_model


def _vector_bytes():
    """The CPU numba compiles for: its features as numba's code generator takes them."""
    features = config.CPU_FEATURES
    if features is None:
        features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features:
        return 64
    return 32 if "+avx" in features else 16


#: the width of the CPU's vector registers that numba compiles for, in bytes
VECTOR_BYTES = _vector_bytes()


class Lanes(types.Type):
    """``count`` floats of ``dtype`` held as one LLVM vector value (registers, never memory)."""

    def __init__(self, dtype, count):
        self.dtype, self.count = dtype, count
        super().__init__(name=f"Lanes({dtype}, {count})")


@register_model(Lanes)
class _LanesModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.count))


def _count(dtype, vectors):
    """Floats of ``dtype`` in ``vectors`` (an integer literal type) native vectors."""
    return vectors.literal_value * VECTOR_BYTES * 8 // dtype.bitwidth


def _contiguous_2d(array):
    return isinstance(array, types.Array) and array.ndim == 2 and array.layout == "C" and \
        isinstance(array.dtype, types.Float)


def _address(context, builder, array_type, array, row, column, vector):
    """Pointer to ``array[row, column]`` as a pointer to ``vector`` (a C-contiguous 2-D array)."""
    view = context.make_array(array_type)(context, builder, array)
    n_columns = cgutils.unpack_tuple(builder, view.shape, 2)[1]
    pointer = builder.gep(view.data, [builder.add(builder.mul(row, n_columns), column)], inbounds=True)
    return builder.bitcast(pointer, ir.PointerType(vector))


def _load(context, builder, array_type, array, row, column, vector):
    value = builder.load(_address(context, builder, array_type, array, row, column, vector))
    value.align = array_type.dtype.bitwidth // 8  # element-aligned only
    return value


def _broadcast(builder, scalar, vector):
    one = builder.insert_element(ir.Constant(vector, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vector.count), [0] * vector.count)
    return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined), zeros)


@intrinsic(prefer_literal=True)
def lanes_zeros(typingctx, x, vectors):
    """Zeros as wide as ``vectors`` (a literal) native vectors of x's floats: a tile's shape."""
    if not (isinstance(x, types.Array) and isinstance(x.dtype, types.Float)
            and isinstance(vectors, types.IntegerLiteral)):
        return None
    lanes = Lanes(x.dtype, _count(x.dtype, vectors))

    def codegen(context, builder, signature, args):
        return ir.Constant(context.get_value_type(lanes), None)
    return lanes(x, vectors), codegen


@intrinsic
def lanes_splat(typingctx, like, w):
    """``w`` in every lane of a vector as wide as ``like``."""
    if not (isinstance(like, Lanes) and w == like.dtype):
        return None

    def codegen(context, builder, signature, args):
        return _broadcast(builder, args[1], context.get_value_type(like))
    return like(like, w), codegen


@intrinsic
def lanes_store(typingctx, acc, out, row, column):
    """``out[row, column : column + n] = acc`` (``out`` a C-contiguous 2-D array of acc's floats)."""
    if not (isinstance(acc, Lanes) and _contiguous_2d(out) and out.dtype == acc.dtype):
        return None

    def codegen(context, builder, signature, args):
        vector = context.get_value_type(acc)
        store = builder.store(args[0], _address(context, builder, out, args[1], args[2], args[3], vector))
        store.align = acc.dtype.bitwidth // 8
        return context.get_dummy_value()
    return types.none(acc, out, row, column), codegen


@intrinsic(prefer_literal=True)
def lanes_count(typingctx, x, vectors):
    """How many of x's floats ``vectors`` native vectors hold (a compile-time constant)."""
    if not (isinstance(x, types.Array) and isinstance(vectors, types.IntegerLiteral)):
        return None
    count = _count(x.dtype, vectors)

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, count)
    return types.intp(x, vectors), codegen


@intrinsic
def lanes_load(typingctx, like, x, row, column):
    """``x[row, column : column + n]`` as a vector of as many lanes as ``like`` has (C-contiguous x)."""
    if not (isinstance(like, Lanes) and _contiguous_2d(x) and x.dtype == like.dtype):
        return None

    def codegen(context, builder, signature, args):
        return _load(context, builder, x, args[1], args[2], args[3], context.get_value_type(like))
    return like(like, x, row, column), codegen


@intrinsic
def lanes_times(typingctx, a, b):
    """``a · b`` lane by lane."""
    if not (isinstance(a, Lanes) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fmul(args[0], args[1])
    return a(a, b), codegen


@intrinsic
def lanes_muladd(typingctx, a, b, c):
    """``a · b + c`` lane by lane, fused multiply-adds where the CPU has them (as ``llvm.fmuladd``)."""
    if not (isinstance(a, Lanes) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        vector = context.get_value_type(a)
        suffix = "f32" if a.dtype == types.float32 else "f64"
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                                  f"llvm.fmuladd.v{a.count}{suffix}")
        return builder.call(function, list(args))
    return a(a, b, c), codegen
