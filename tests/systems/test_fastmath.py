"""The vectorisable tanh, exp and Φ of the block kernels agree with the C library (SciPy: Φ) to a few ulp."""

import numpy as np
import pytest
from numba import njit

import mpmath
from scipy.special import ndtr

from dynloop.systems._fastmath import exp, normal_cdf, normal_cdf_native, tanh, tanh_native


@njit
def _each(function, x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = function(x[i])
    return out


def _tanh_all(x):
    return _each(tanh, x)


def _exp_all(x):
    return _each(exp, x)


def _ulps(ours, reference):
    return np.abs(ours - reference) / np.spacing(np.abs(reference))


def test_tanh_within_three_ulp_everywhere():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-30, 30, 200_001), 3 * rng.standard_normal(100_000),
                        np.logspace(-300, 1.5, 10_000), -np.logspace(-300, 1.5, 10_000),
                        [0.625, -0.625, np.nextafter(0.625, 0), 22.0, 23.0, 5e-324]])
    ours, reference = _tanh_all(x), np.tanh(x)
    assert _ulps(ours, reference).max() <= 3
    assert np.all(np.abs(ours) <= 1.0)


def test_tanh_special_values():
    ours = _tanh_all(np.array([np.nan, np.inf, -np.inf, 0.0, 1e300, -1e300]))
    assert np.isnan(ours[0])
    np.testing.assert_array_equal(ours[1:], [1.0, -1.0, 0.0, 1.0, -1.0])


def test_exp_within_two_ulp_and_limits():
    x = np.concatenate([np.linspace(-708, 709.7, 300_001), np.random.default_rng(1).standard_normal(10_000)])
    ours, reference = _exp_all(x), np.exp(x)
    assert _ulps(ours, reference).max() <= 2
    subnormal = np.linspace(-745.1, -708.5, 1001)
    np.testing.assert_allclose(_exp_all(subnormal), np.exp(subnormal), rtol=0, atol=2 * 5e-324)
    edges = _exp_all(np.array([np.nan, np.inf, -np.inf, 0.0, 710.0, -746.0]))
    assert np.isnan(edges[0])
    np.testing.assert_array_equal(edges[1:], [np.inf, 0.0, 1.0, np.inf, 0.0])


def test_normal_cdf_against_scipy_and_mpmath():
    rng = np.random.default_rng(2)
    z = np.concatenate([np.linspace(-38, 38, 200_001), 3 * rng.standard_normal(100_000),
                        [0.0, -0.0, 5e-324, np.sqrt(2), -np.sqrt(2), 8 * np.sqrt(2), -8 * np.sqrt(2)]])
    ours = _each(normal_cdf, z)
    # SciPy's ndtr is Cephes with x² rounded in e^(−x²): up to x² ulp in the lower tail, 1e-300
    # absolute where both underflow (Cephes returns 0 from z = −37.5 on)
    np.testing.assert_allclose(ours, ndtr(z), rtol=4e-13, atol=1e-300)
    middle = np.abs(z) < 1.5
    assert _ulps(ours[middle], ndtr(z[middle])).max() <= 16
    assert np.all((ours >= 0.0) & (ours <= 1.0))
    # against 40 digits: the lower tail to 4e-14 relative, as good as Cephes' rational forms allow
    sample = np.concatenate([rng.uniform(-37, -11, 100), rng.uniform(-11, -1.4, 300),
                             rng.uniform(-1.5, 6, 300)])
    mpmath.mp.dps = 40
    exact = np.array([float(mpmath.ncdf(mpmath.mpf(float(v)))) for v in sample])
    np.testing.assert_allclose(_each(normal_cdf, sample), exact, rtol=4e-14, atol=0)


@njit
def _normal_cdf_native(z):
    return normal_cdf_native(z)


def test_normal_cdf_native_float32_within_2e7_and_float64_is_normal_cdf():
    z = np.concatenate([np.linspace(-12, 12, 200_001), [0.0, 5.65, 5.66, 1e30, -1e30]]).astype(np.float32)
    ours = _each(_normal_cdf_native, z)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ndtr(z.astype(np.float64)), rtol=0, atol=2e-7)
    assert np.isnan(_each(_normal_cdf_native, np.array([np.nan], dtype=np.float32))[0])
    wide = np.linspace(-9, 9, 1001)
    np.testing.assert_array_equal(_each(_normal_cdf_native, wide), _each(normal_cdf, wide))


def test_normal_cdf_special_values():
    ours = _each(normal_cdf, np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0]))
    assert np.isnan(ours[0])
    np.testing.assert_array_equal(ours[1:], [1.0, 0.0, 1.0, 0.0, 0.5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_inputs_are_evaluated_in_float64(dtype):
    x = np.linspace(-5, 5, 101).astype(dtype)
    np.testing.assert_allclose(_tanh_all(x), np.tanh(x.astype(np.float64)).astype(dtype),
                               rtol=2 * np.finfo(dtype).eps)


@njit
def _tanh_native(x):
    return tanh_native(x)  # an overload, not a compiled function: wrapped so that _each can take it


def _tanh_native_all(x):
    return _each(_tanh_native, x)


def test_tanh_native_float32_within_six_ulp_and_float64_is_tanh():
    x = np.concatenate([np.linspace(-20, 20, 400_001), [0.0, 3e-4, -3e-4, 7.9, 8.0, 1e30]]).astype(np.float32)
    ours = _tanh_native_all(x)
    assert ours.dtype == np.float32
    exact = np.tanh(x.astype(np.float64))
    ulps = np.abs(ours.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(np.float32))
    assert ulps.max() <= 6
    assert np.isnan(_tanh_native_all(np.array([np.nan], dtype=np.float32))[0])
    wide = np.linspace(-5, 5, 1001)
    np.testing.assert_array_equal(_tanh_native_all(wide), _tanh_all(wide))


@pytest.mark.parametrize("dtype,ulps", [(np.float64, 3), (np.float32, 6)])
def test_activation_loop_keeps_nan_signed_zero_and_odd_lengths(dtype, ulps):
    # the block kernels' tanh loop runs in vector instructions, two halves at a time: NaN, -0 and
    # the last element of an odd length must come out as the scalar function gives them
    from dynloop.systems._block_kernels import activate

    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 64, 2049):
        z = (3 * rng.standard_normal(size)).astype(dtype)
        z[rng.choice(size, size=min(size, 3), replace=False)] = [np.nan, -0.0, np.inf][:min(size, 3)]
        out = np.full_like(z, 7.0)
        activate(z, out, 0)
        reference = np.tanh(z.astype(np.float64)).astype(dtype)
        assert np.array_equal(np.isnan(out), np.isnan(z)), size
        assert np.array_equal(np.signbit(out), np.signbit(reference)), size
        finite = ~np.isnan(z) & (reference != 0)
        spacing = np.spacing(np.abs(reference[finite]))
        assert np.all(np.abs(out[finite] - reference[finite]) <= ulps * spacing), size


@pytest.mark.parametrize("code", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activation_with_slopes_loop_is_the_scalar_function_bit_for_bit(code, dtype):
    # the tangent kernels take values and slopes in one loop per activation (vectorised for tanh and
    # GELU): each element must be exactly what the scalar _activation gives, NaN, ±0 and ±inf included
    from dynloop.systems._block_kernels import _activate_with_slopes, _activation

    rng = np.random.default_rng(4)
    z = (4 * rng.standard_normal((7, 37))).astype(dtype)
    z.flat[:6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, 40.0]
    values, slopes = np.full_like(z, 7.0), np.full_like(z, 7.0)
    _activate_with_slopes(z, values, slopes, code)
    scalar = np.array([_activation(v, code) for v in z.ravel()], dtype=dtype).reshape(*z.shape, 2)
    assert values.tobytes() == scalar[..., 0].tobytes()
    assert slopes.tobytes() == scalar[..., 1].tobytes()


def _gelu_by_element(z):
    with np.errstate(invalid="ignore"):  # -inf · Φ(-inf) = -inf · 0
        return z * _each(normal_cdf, z)


@pytest.mark.parametrize("layout", ["central", "one outlier per block", "wide", "wide then central",
                                    "central then wide", "specials"])
def test_gelu_values_takes_shortcuts_without_changing_a_bit(layout):
    # gelu_values computes blocks whose every |z| < √2 with Φ's first form alone, and after a
    # block that needs every form it skips the try for 1, 3, 7, ... blocks: each element must still
    # be z·normal_cdf(z) bit for bit, whichever path its block took (sizes not multiples of 32 too)
    from dynloop.systems._block_kernels import activate

    rng = np.random.default_rng(5)
    for size in (1, 31, 32, 33, 1000, 4099):
        z = 0.3 * rng.standard_normal(size)
        if layout == "one outlier per block":
            z[::32] = 1.4142135623730951 * np.sign(rng.standard_normal(z[::32].size) + 0.5)  # √2: the edge
            z[17::32] = -1.41421356237309
        elif layout == "wide":
            z = 3 * rng.standard_normal(size)
        elif layout == "wide then central":
            z[: size // 2] *= 10
        elif layout == "central then wide":
            z[size // 2:] *= 10
        elif layout == "specials":
            z[rng.choice(size, size=min(size, 6), replace=False)] = [np.nan, np.inf, -np.inf, -0.0, 1e-300,
                                                                    -40.0][:min(size, 6)]
        out = np.full_like(z, 7.0)
        activate(z, out, 2)
        assert out.view(np.int64).tolist() == _gelu_by_element(z).view(np.int64).tolist(), size
