"""Cycles found by Newton's method (dynloop.find_cycle) against closed forms."""

import numpy as np

import dynloop


def test_henon_fixed_points_are_saddles():
    a, b = 1.4, 0.3
    for sign in (1, -1):
        x = (-(1 - b) + sign * np.sqrt((1 - b) ** 2 + 4 * a)) / (2 * a)
        cycle = dynloop.find_cycle(dynloop.maps.henon(), 1, [x + 0.01, b * x - 0.01])
        np.testing.assert_allclose(cycle.loop_points[0], [x, b * x], rtol=1e-12)
        moduli = np.abs(cycle.multipliers)
        assert moduli[0] > 1 > moduli[1] and not cycle.stable
