"""What public entry points say when they are given the wrong thing, or a map that breaks their methods."""

import importlib

import numpy as np
import pytest

import dynloop

simulate_module = importlib.import_module("dynloop.dynamics.simulate")  # the module, not the function

ENTRY_POINTS = {
    "simulate": lambda system: dynloop.simulate(system, 3),
    "classify": lambda system: dynloop.classify(system),
    "find_cycle": lambda system: dynloop.find_cycle(system, 1, [0.1]),
    "lyapunov_spectrum": lambda system: dynloop.lyapunov_spectrum(system, steps=10),
    "sweep": lambda system: dynloop.sweep(system, {"r": [3.0]}, progress=False),
    "orbit_diagram": lambda system: dynloop.orbit_diagram(system, "r", [3.0]),
}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_every_entry_point_says_what_system_it_accepts(name):
    with pytest.raises(TypeError, match=r"system='logistic' is not allowed: expected a dynloop system "
                                        r".*use dynloop\.maps\.logistic\(\)"):
        ENTRY_POINTS[name]("logistic")
    with pytest.raises(TypeError, match=r"system=<dict object> is not allowed"):
        ENTRY_POINTS[name]({"name": "logistic"})


def _doubling(x, p):
    out = np.empty(1)
    out[0] = (2.0 * x[0]) % 1.0
    return out


def test_doubling_map_collapse_is_reported_honestly():
    # in binary floating point 2x mod 1 reaches exactly 0 after about 55 steps (plain Python says so)
    x = 0.1234567
    for step in range(60):
        x = (2.0 * x) % 1.0
    assert x == 0.0
    system = dynloop.Map.from_function(_doubling, 1, name="doubling")
    assert system.jacobian_kind == "finite-difference"
    result = dynloop.classify(system, x0=[0.1234567])
    text = result.summary()  # raised TypeError when spectral_radius was set and period was None
    assert "doubling: undetermined" in text
    assert result.regime is dynloop.Regime.UNDETERMINED  # not "chaotic" from a Jacobian across the jump
    assert result.evidence["jacobian_reliable"] is False
    assert result.evidence["lyapunov_error"] == np.inf
    assert "not differentiable on this orbit" in text and "± inf" in text


def test_a_smooth_map_keeps_its_precise_exponents():
    result = dynloop.classify(dynloop.Map.from_function(lambda x, p: 3.2 * x * (1 - x), 1, x0=[0.3]))
    assert result.regime is dynloop.Regime.PERIODIC and "jacobian_reliable" not in result.evidence
    assert result.lyapunov[0] == pytest.approx(np.log(0.16) / 2, abs=1e-6)


def test_record_all_that_cannot_fit_in_memory_is_refused_before_allocating():
    spec = dynloop.BlockSpec(width=32, tokens=8, layers=4, heads=4, mixer="transformer", norm="sandwich",
                             injection="concat")
    with pytest.raises(ValueError, match=r"record='all' is not allowed: keeping 10,000,000 loops of stage "
                                         r"states would take 122\.9 GB .*record=\('last', N\).*stride=K"):
        dynloop.simulate(spec, 10**7, record="all")


def test_memory_check_reads_the_memory_available(monkeypatch):
    system = dynloop.maps.logistic()
    monkeypatch.setattr(simulate_module, "_available_memory", lambda: 60_000)
    with pytest.raises(ValueError,
                       match=r"record='all' is not allowed: keeping 1,000 loops .* 16.0 KB .*48\.0 KB"):
        dynloop.simulate(system, 1000, record="all")
    monkeypatch.setattr(simulate_module, "_available_memory", lambda: 10_000)
    with pytest.raises(ValueError, match=r"loops=1000 is not allowed: the per-loop summaries .* 48\.0 KB"):
        dynloop.simulate(system, 1000, record="none")
    assert dynloop.simulate(system, 100, record=("last", 2)).stage_states.shape == (2, 2, 1)


def _two_values_above_half(x, p):
    if x[0] > 0.5:
        return np.array([p[0] * x[0] * (1 - x[0]), 0.0])
    return np.array([p[0] * x[0] * (1 - x[0])])


def test_a_sweep_names_the_user_function_that_fails_inside_its_parallel_kernel():
    system = dynloop.Map.from_function(_two_values_above_half, 1, params={"r": 2.0}, x0=[0.1])
    # r = 1.5 stays below 1/2 (fixed point 1/3); r = 2.5 crosses it (fixed point 0.6)
    assert dynloop.sweep(system, {"r": [1.5, 1.6]}, loops=50, progress=False).regimes.tolist() == [
        dynloop.Regime.FIXED_POINT.code] * 2
    for _ in range(3):  # the parallel kernel did not pass the error on reliably
        with pytest.raises(ValueError, match=r"step='_two_values_above_half' returns an array of shape "
                                             r"\(2,\) at x=\[0\.6.*params=\{'r': 2\.5\}.*"
                                             r"expected shape \(1,\)"):
            dynloop.sweep(system, {"r": [1.5, 2.5, 3.0]}, loops=50, progress=False)
