"""Lyapunov exponents (dynloop.lyapunov_spectrum) against values known in closed form."""

import warnings

import numpy as np
import pytest

import dynloop
from dynloop import Regime


@pytest.mark.parametrize("r, value", [(2.5, -np.log(2)), (3.2, np.log(0.16) / 2)])
def test_logistic_lyapunov_known_values(r, value):
    spectrum = dynloop.lyapunov_spectrum(dynloop.maps.logistic(r=r), steps=20_000)
    assert abs(spectrum.largest - value) < 1e-3


def test_henon_chaos_and_exponent_sum():
    henon = dynloop.maps.henon()
    result = dynloop.classify(henon)
    assert result.regime is Regime.CHAOTIC
    spectrum = dynloop.lyapunov_spectrum(henon, steps=20_000)
    assert abs(spectrum.exponents.sum() - np.log(0.3)) < 1e-8
    assert spectrum.sum_check < 1e-8
    assert abs(spectrum.largest - 0.419) < 0.01


def test_linear_map_exponents_and_divergence():
    system = dynloop.maps.linear(np.diag([1.1, 0.8]))
    spectrum = dynloop.lyapunov_spectrum(system, x0=[1.0, 1.0], steps=5000, transient=0)
    # a random start basis costs O(1/steps) in finite time
    np.testing.assert_allclose(spectrum.exponents, [np.log(1.1), np.log(0.8)], atol=1e-3)
    assert spectrum.sum_check < 1e-12
    assert dynloop.classify(system, x0=[1.0, 1.0]).regime is Regime.DIVERGENT


def test_zero_multiplier_gives_minus_infinity_without_a_warning():
    # diag(0.5, 0): the exponents are log 0.5 and -inf; both halves of the run give -inf for the
    # second, so they agree (error 1/steps, not NaN from -inf - -inf, and no RuntimeWarning)
    system = dynloop.maps.linear(np.diag([0.5, 0.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spectrum = dynloop.lyapunov_spectrum(system, x0=[1.0, 1.0], steps=1000, transient=0)
    assert spectrum.exponents[0] == pytest.approx(np.log(0.5), abs=1e-2)
    assert spectrum.exponents[1] == -np.inf and spectrum.sum_check == 0.0
    assert np.isfinite(spectrum.error[0]) and spectrum.error[1] == 1.0 / 1000  # the 1/steps floor
