"""Elementary functions written in plain arithmetic, so that numba can vectorise loops over them.

numba compiles ``math.tanh`` and ``math.exp`` to calls into the C library, one element at a time;
a loop that calls them cannot use the CPU's vector units, and in a sweep the activation of every
hidden unit of every point of every loop is such a call. These versions are branch-free
arithmetic (Cephes' rational approximations with an exact power-of-two scaling), so a loop over
an array of them compiles to vector instructions. :func:`tanh`, :func:`exp` and :func:`normal_cdf`
(the exact GELU's Φ) are evaluated in float64 whatever the input precision and agree with the C
library (SciPy's ``ndtr`` for Φ) to a few units in the last place;
:func:`tanh_native` and :func:`normal_cdf_native` work in the precision of their argument, with
the rational approximations XLA and Eigen use for float32 (tanh within 6 float32 ulp, Φ within
2e-7), twice as many lanes per vector (tests/systems/test_fastmath.py).
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

_JIT = dict(cache=True, error_model="numpy")

# Cephes exp.c: e^r = 1 + 2 r P(r²) / (Q(r²) − r P(r²)) for |r| ≤ ln(2)/2
_EP0, _EP1, _EP2 = 1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1
_EQ0, _EQ1, _EQ2, _EQ3 = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
                          2.00000000000000000009e0)
_LN2_HI, _LN2_LO = 6.93145751953125e-1, 1.42860682030941723212e-6
_LOG2E = 1.4426950408889634
_EXP_MAX = 709.8  # e^x overflows to +inf above log(DBL_MAX) = 709.78...
_EXP_MIN = -745.2  # and underflows to 0 below log(smallest subnormal / 2) = -745.13...


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _bits_of_float(typingctx, value):
    """The IEEE-754 bit pattern of the float64 ``value``, as an int64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a·b + c`` as one fused multiply-add where the CPU has one (``llvm.fmuladd``), else two operations.

    Fused or not is fixed per machine, so results stay reproducible; numba's own code never fuses
    (that would take a fastmath flag), so polynomials written with this take half the instructions.
    """
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        kind = context.get_value_type(signature.return_type)
        function = builder.module.declare_intrinsic("llvm.fmuladd", [kind], ir.FunctionType(kind, [kind] * 3))
        return builder.call(function, args)
    return a(a, a, a), codegen


@intrinsic
def select(typingctx, condition, a, b):
    """``a if condition else b`` as one select instruction, never a branch.

    A Python conditional expression compiles to branches; LLVM then sinks the work that only one
    arm uses into that arm, and a loop with branches that heavy does not vectorise.
    """
    if not (isinstance(condition, types.Boolean) and isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])
    return a(condition, a, a), codegen


# 1.5·2⁵² + exponent bias: for |k| < 2⁵¹, k + _SHIFTER lies in [2⁵², 2⁵³), where floats are the integers
# (so adding it rounds k to the nearest one), and its low 11 bits hold k + 1023 (mod 2048)
_SHIFTER = 6755399441055744.0 + 1023.0
_SIGN = np.int64(-(2 ** 63))  # the sign bit of a float64


@njit(**_JIT)
def _power_of_two(shifted):
    """``2ⁿ`` from ``shifted = n + _SHIFTER`` (integer ``n``, −1022 ≤ n ≤ 1023), by building its bits.

    ``shifted`` holds ``n + 1023`` in its low 11 mantissa bits; shifting them into the exponent
    field (and everything above out of the word) gives ``2ⁿ``. Only bit casts and an integer
    shift: this vectorises where a float-to-int64 conversion would not (AVX2 has none).
    """
    return _float_from_bits(_bits_of_float(shifted) << 52)


@njit(**_JIT)
def _reduce(w):
    """Cephes' reduction ``w = n ln 2 + r`` (|r| ≤ ln(2)/2) and rational ``e^r = (q + 2p)/q``.

    Returns ``(n + _SHIFTER, n, p, q)``. ``n``, the integer nearest ``w log₂ e``, is rounded by the
    addition of ``_SHIFTER`` itself (the sum has no fraction bits), which also leaves it in the low
    bits for :func:`_power_of_two`.
    """
    shifted = fma(_LOG2E, w, _SHIFTER)
    n = shifted - _SHIFTER
    r = fma(-n, _LN2_LO, fma(-n, _LN2_HI, w))
    rr = r * r
    p = r * fma(fma(_EP0, rr, _EP1), rr, _EP2)
    return shifted, n, p, fma(fma(fma(_EQ0, rr, _EQ1), rr, _EQ2), rr, _EQ3) - p


@njit(**_JIT)
def _times_power_of_two(value, n):
    """``value · 2ⁿ`` for an integer ``n`` of :func:`_reduce` (|n| <= 1076), as ``value · 2^m · 2^(n−m)``.

    Two exact powers of two, applied one after the other, so that neither leaves the exponent range
    and a subnormal result is rounded once.
    """
    half = np.floor(0.5 * n)
    return value * _power_of_two(half + _SHIFTER) * _power_of_two(n - half + _SHIFTER)


@njit(**_JIT)
def _exp_reduced(w):
    """``e^w`` for ``_EXP_MIN <= w <= _EXP_MAX``: ``w = n ln 2 + r``, ``e^w = e^r 2ⁿ``."""
    _, n, p, q = _reduce(w)
    return _times_power_of_two(1.0 + 2.0 * p / q, n)


@njit(**_JIT)
def exp(x):
    """``e^x`` in float64 (NaN stays NaN)."""
    x = np.float64(x)
    value = _exp_reduced(min(max(x, _EXP_MIN), _EXP_MAX))
    value = math.inf if x > _EXP_MAX else value
    value = 0.0 if x < _EXP_MIN else value
    return math.nan if x != x else value  # not "x": written back in place, that would be a masked store


@njit(**_JIT)
def tanh(x):
    """``tanh x`` in float64 (saturates to ±1 exactly beyond |x| = 22, NaN stays NaN).

    One formula for every ``x``, so that each element costs one exponential reduction and one
    division: with ``w = 2|x| = n ln 2 + r`` and Cephes' ``e^r = (q + 2p)/q``,
    ``q (e^w − 1) = (2ⁿ − 1) q + 2ⁿ·2p`` is accurate to a few ulp even for small ``x`` (there
    ``n = 0`` and it is exactly ``2p``), and ``tanh |x| = q (e^w − 1) / (q (e^w − 1) + 2q)``.
    NaN needs no test of its own: ``min(NaN, 22)`` is NaN (the first argument, as in Python), and
    so is everything computed from it. The sign of ``x`` is put on the positive ``tanh |x|``
    with one bitwise or.
    """
    x = np.float64(x)
    shifted, _, p, q = _reduce(2.0 * min(abs(x), 22.0))
    power = _power_of_two(shifted)
    numerator = fma(power - 1.0, q, power * (2.0 * p))
    magnitude = numerator / (numerator + 2.0 * q)
    return _float_from_bits(_bits_of_float(magnitude) | (_bits_of_float(x) & _SIGN))


# Cephes ndtr.c (also SciPy's ndtr): erf x = x T(x²)/U(x²) for |x| < 1, erfc x = e^(−x²) P(x)/Q(x) for
# 1 <= x < 8 and e^(−x²) R(x)/S(x) beyond (U, Q and S monic: leading coefficient 1, left out)
_ERF_T = (9.60497373987051638749E0, 9.00260197203842689217E1, 2.23200534594684319226E3,
          7.00332514112805075473E3, 5.55923013010394962768E4)
_ERF_U = (3.35617141647503099647E1, 5.21357949780152679795E2, 4.59432382970980127987E3,
          2.26290000613890934246E4, 4.92673942608635921086E4)
_ERFC_P = (2.46196981473530512524E-10, 5.64189564831068821977E-1, 7.46321056442269912687E0,
           4.86371970985681366614E1, 1.96520832956077098242E2, 5.26445194995477358631E2,
           9.34528527171957607540E2, 1.02755188689515710272E3, 5.57535335369399327526E2)
_ERFC_Q = (1.32281951154744992508E1, 8.67072140885989742329E1, 3.54937778887819891062E2,
           9.75708501743205489753E2, 1.82390916687909736289E3, 2.24633760818710981792E3,
           1.65666309194161350182E3, 5.57535340817727675546E2)
_ERFC_R = (5.64189583547755073984E-1, 1.27536670759978104416E0, 5.01905042251180477414E0,
           6.16021097993053585195E0, 7.40974269950448939160E0, 2.97886665372100240670E0)
_ERFC_S = (2.26052863220117276590E0, 9.39603524938001434673E0, 1.20489539808096656605E1,
           1.70814450747565897222E1, 9.60896809063285878198E0, 3.36907645100081516050E0)
_SQRT_HALF = 0.70710678118654752440
_SQRT2 = 1.41421356237309504880
_ERFC_MAX = 27.3  # erfc x underflows to 0 beyond (e^(−x²) below the smallest subnormal)


@njit(**_JIT)
def _poly4(x, c):
    """``c₀x⁴ + c₁x³ + ... + c₄`` by fused steps (written out: a loop over the tuple would not inline)."""
    return fma(fma(fma(fma(c[0], x, c[1]), x, c[2]), x, c[3]), x, c[4])


@njit(**_JIT)
def _poly5(x, c):
    return fma(_poly4(x, c), x, c[5])


@njit(**_JIT)
def _poly8(x, c):
    return fma(fma(fma(fma(_poly4(x, c), x, c[5]), x, c[6]), x, c[7]), x, c[8])


@njit(**_JIT)
def _monic5(x, c):
    """``x⁵ + c₀x⁴ + ... + c₄``."""
    return fma(fma(fma(fma(fma(1.0, x, c[0]), x, c[1]), x, c[2]), x, c[3]), x, c[4])


@njit(**_JIT)
def _monic6(x, c):
    return fma(_monic5(x, c), x, c[5])


@njit(**_JIT)
def _monic8(x, c):
    return fma(fma(fma(_monic5(x, c), x, c[5]), x, c[6]), x, c[7])


@njit(**_JIT)
def _erf_small(x):
    """Numerator and denominator of Cephes' ``erf x = x T(x²) / U(x²)`` for ``|x| < 1``."""
    square = x * x
    return x * _poly4(square, _ERF_T), _monic5(square, _ERF_U)


@njit(inline="always", **_JIT)  # inlined by numba: LLVM finds it too large to inline, and a call
def normal_cdf(z):                # in a loop keeps the loop from vectorising
    """``Φ(z) = (1 + erf(z / √2)) / 2``, the standard normal distribution function, in float64.

    Branch-free, so that a loop over it vectorises: every one of Cephes' rational forms is computed
    and one is kept by selects, and one division serves them all. Below ``z = −√2`` it is
    ``erfc(|x|) / 2`` directly (no cancellation in ``1 + erf``), with ``e^(−x²)`` taken as
    ``e^(−h) (1 − l)`` for ``x² = z²/2 = h + l`` split exactly by a fused multiply-add (``x = z/√2``
    and ``x²`` rounded would cost up to ``z²`` ulp).
    NaN stays NaN.
    """
    z = np.float64(z)
    x = z * _SQRT_HALF
    a = min(abs(x), _ERFC_MAX)
    # |x| < 1: erf x = x T / U
    small_numerator, small_denominator = _erf_small(x)
    # |x| >= 1: erfc |x| = e^(−a²) P / Q (or R / S beyond 8)
    c = min(abs(z), _SQRT2 * _ERFC_MAX)  # a² = z²/2 from z itself: z/√2 rounded would cost z² ulp
    high = 0.5 * (c * c)
    low = 0.5 * fma(c, c, -(c * c))
    # e^(−h) = 2ⁿ (q + 2p) / q (Cephes' reduction, as in exp), its division joined with the form's
    _, n, p, q = _reduce(max(-high, _EXP_MIN))
    decay = _times_power_of_two(q + 2.0 * p, n) * (1.0 - low)
    # the forms are chosen by selects, not branches (see select)
    near = a < 8.0
    numerator = select(near, _poly8(a, _ERFC_P), _poly5(a, _ERFC_R))
    denominator = select(near, _monic8(a, _ERFC_Q), _monic6(a, _ERFC_S))
    inside = abs(x) < 1.0
    numerator = select(inside, small_numerator, decay * numerator)
    ratio = numerator / select(inside, small_denominator, q * denominator)
    tail = 0.5 * ratio  # erfc(|x|) / 2: Φ(−|z|)
    value = select(inside, 0.5 + 0.5 * ratio, select(x > 0.0, 1.0 - tail, tail))
    return math.nan if x != x else value


@njit(**_JIT)
def _central(z):
    """Whether :func:`normal_cdf` takes its ``|x| < 1`` form at ``z`` (the very same test)."""
    return abs(np.float64(z) * _SQRT_HALF) < 1.0


@njit(**_JIT)
def _normal_cdf_central(z):
    """:func:`normal_cdf` where :func:`_central` holds, bit for bit: its first form alone."""
    numerator, denominator = _erf_small(np.float64(z) * _SQRT_HALF)
    return 0.5 + 0.5 * (numerator / denominator)


_GELU_BLOCK = 32  # elements per decision in gelu_values


@njit(**_JIT)
def _gelu_exact(z, out):
    """``out = z·Φ(z)`` by :func:`normal_cdf` (a function of its own: inlined in gelu_values, 20 % slower)."""
    for k in range(z.size):
        out[k] = z[k] * normal_cdf(z[k])


def gelu_values(z, out):
    """``out = z·Φ(z)`` over the 1-D arrays ``z`` and ``out``: the exact GELU, vectorised.

    float32 takes :func:`normal_cdf_native`'s float32 form. float64 goes in blocks of 32: each
    block first takes :func:`normal_cdf`'s ``|x| < 1`` form alone (a fifth of the cost of all its
    forms), counting the elements where that is the form :func:`normal_cdf` uses (``|z| < √2``,
    where pre-activations mostly are); a block where it is not so for every element is computed
    again with :func:`normal_cdf` itself, and after such a block the next 1, 3, 7, ... (at most 64)
    blocks go to :func:`normal_cdf` at once, so that wide pre-activations pay little for the try.
    Each element gets the same bits whichever way it goes (tests/systems/test_fastmath.py).
    """
    raise NotImplementedError("gelu_values is only callable from compiled code")


@overload(gelu_values, jit_options=_JIT)
def _gelu_values(z, out):
    if isinstance(z, types.Array) and z.dtype == types.float32:
        def single(z, out):
            for k in range(z.size):
                out[k] = z[k] * _normal_cdf32(z[k])
        return single

    def double(z, out):
        start, skip = 0, 0  # after a block that needed every form, the next ``skip`` blocks go straight there
        while start < z.size:
            stop = min(start + _GELU_BLOCK, z.size)
            block_in, block_out = z[start:stop], out[start:stop]
            central = 0
            for k in range(block_in.size):
                block_out[k] = block_in[k] * _normal_cdf_central(block_in[k])
                central += _central(block_in[k])
            if central < block_in.size:
                skip = min(2 * skip + 1, 64)
                stop = min(start + (1 + skip) * _GELU_BLOCK, z.size)
                _gelu_exact(z[start:stop], out[start:stop])
            else:
                skip = 0
            start = stop
    return double


# Eigen's generic_fast_tanh_float (also XLA's): tanh x = x P(x²)/Q(x²) on |x| <= 7.905, x below 4e-4
_F32 = np.float32
_SA1, _SA3, _SA5, _SA7, _SA9, _SA11, _SA13 = (
    _F32(4.89352455891786e-03), _F32(6.37261928875436e-04), _F32(1.48572235717979e-05),
    _F32(5.12229709037114e-08), _F32(-8.60467152213735e-11), _F32(2.00018790482477e-13),
    _F32(-2.76076847742355e-16))
_SB0, _SB2, _SB4, _SB6 = (_F32(4.89352518554385e-03), _F32(2.26843463243900e-03), _F32(1.18534705686654e-04),
                          _F32(1.19825839466702e-06))
_S_CLAMP, _S_TINY, _NAN32 = _F32(7.90531110763549805), _F32(0.0004), _F32(np.nan)


@njit(**_JIT)
def _tanh32(x):
    c = min(max(x, -_S_CLAMP), _S_CLAMP)
    s = c * c
    p = fma(fma(fma(fma(fma(fma(_SA13, s, _SA11), s, _SA9), s, _SA7), s, _SA5), s, _SA3), s, _SA1) * c
    q = fma(fma(fma(_SB6, s, _SB4), s, _SB2), s, _SB0)
    value = p / q
    value = c if abs(x) < _S_TINY else value  # c, not x: see the NaN case below
    return _NAN32 if x != x else value  # not "x": written back in place, that would be a masked store


def tanh_native(x):
    """``tanh x`` in the precision of ``x``: :func:`tanh` for float64, a float32 rational otherwise."""
    raise NotImplementedError("tanh_native is only callable from compiled code")


@overload(tanh_native, jit_options=_JIT)
def _tanh_native(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: _tanh32(x)
    return lambda x: tanh(x)


# Eigen's generic_fast_erf_float (also XLA's float32 erf): erf x = x α(x²)/β(x²) on |x| <= 4, ±1 beyond
_EA = tuple(_F32(c) for c in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                              -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                              -1.60960333262415e-02))
_EB = tuple(_F32(c) for c in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                              -7.37332916720468e-03, -1.42647390514189e-02))
_E_CLAMP, _HALF32, _SQRT_HALF32 = _F32(4.0), _F32(0.5), _F32(_SQRT_HALF)


@njit(**_JIT)
def _normal_cdf32(z):
    x = min(max(z * _SQRT_HALF32, -_E_CLAMP), _E_CLAMP)
    s = x * x
    alpha = fma(fma(fma(fma(fma(fma(_EA[0], s, _EA[1]), s, _EA[2]), s, _EA[3]), s, _EA[4]), s, _EA[5]), s,
                _EA[6])
    beta = fma(fma(fma(fma(_EB[0], s, _EB[1]), s, _EB[2]), s, _EB[3]), s, _EB[4])
    value = fma(_HALF32, x * alpha / beta, _HALF32)
    return _NAN32 if z != z else value


def normal_cdf_native(z):
    """``Φ(z)`` in the precision of ``z``: :func:`normal_cdf` for float64, a float32 rational otherwise.

    The float32 form is the erf of Eigen and XLA (JAX's float32 erf), within 2e-7 of Φ everywhere:
    absolute, not relative, far in the lower tail (as ``(1 + erf) / 2`` in float32 must be).
    """
    raise NotImplementedError("normal_cdf_native is only callable from compiled code")


@overload(normal_cdf_native, jit_options=_JIT, inline="always")
def _normal_cdf_native(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        return lambda z: _normal_cdf32(z)
    return lambda z: normal_cdf(z)


# --------------------------------------------------------------------------- flushing tiny states
#: State entries smaller than these are set to zero after every loop of a block (MODEL.md, State
#: and stages): squares and products of smaller numbers would be subnormal, which some CPUs
#: (Intel's, by microcode) compute a hundred times slower than normal numbers.
FLUSH_BELOW_32, FLUSH_BELOW_64 = 2.0 ** -50, 2.0 ** -400


def flush_tiny(x):
    """Set the entries of the contiguous array ``x`` below the flush limit of its precision to zero."""
    raise NotImplementedError("flush_tiny is only callable from compiled code")


@overload(flush_tiny, jit_options=_JIT)
def _flush_tiny(x):
    single = x.dtype == types.float32
    limit = np.float32(FLUSH_BELOW_32) if single else FLUSH_BELOW_64
    zero = np.float32(0.0) if single else 0.0

    def impl(x):
        flat = x.reshape(x.size)
        for i in range(flat.size):
            flat[i] = zero if abs(flat[i]) < limit else flat[i]
    return impl
