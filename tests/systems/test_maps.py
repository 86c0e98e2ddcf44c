"""Maps: the catalogue against plain-numpy oracles and textbook answers, user maps from Python
functions and sympy, the one shared iteration kernel, recording, divergence and float32."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy

import dynloop
from dynloop import maps
from dynloop.systems import _map_kernels

# --------------------------------------------------------------------------- oracles
# Plain Python transcriptions of the equations in each catalogue docstring.


def oracle_logistic(x, r):
    return np.array([r * x[0] * (1 - x[0])])


def oracle_henon(x, a, b):
    return np.array([1 - a * x[0] ** 2 + x[1], b * x[0]])


def oracle_tent(x, mu):
    return np.array([mu * min(x[0], 1 - x[0])])


def oracle_circle(x, omega, k):
    return np.array([x[0] + omega - k / (2 * np.pi) * np.sin(2 * np.pi * x[0])])


def oracle_standard(x, k):
    p_new = x[1] + k * np.sin(x[0])
    return np.array([x[0] + p_new, p_new])


def oracle_delayed_logistic(x, r):
    return np.array([r * x[0] * (1 - x[1]), x[0]])


def oracle_linear(x, M, c):
    return np.asarray(M) @ x + np.asarray(c)


def oracle_lozi(x, a, b):
    return np.array([1 - a * abs(x[0]) + x[1], b * x[0]])


M2 = [[0.6, -0.3], [0.2, 0.5]]
C2 = [1.0, -2.0]

# (factory, keyword params, oracle, parameters for the oracle, chaotic?)
CASES = {
    "logistic": (maps.logistic, {"r": 2.8}, oracle_logistic, {"r": 2.8}, False),
    "logistic_chaotic": (maps.logistic, {}, oracle_logistic, {"r": 4.0}, True),
    "henon": (maps.henon, {}, oracle_henon, {"a": 1.4, "b": 0.3}, True),
    "henon_stable": (maps.henon, {"a": 0.2, "b": 0.3}, oracle_henon, {"a": 0.2, "b": 0.3}, False),
    "tent": (maps.tent, {"mu": 1.5}, oracle_tent, {"mu": 1.5}, True),
    "circle": (maps.circle, {}, oracle_circle, {"omega": 0.1, "k": 1.0}, False),
    "circle_quasi": (maps.circle, {"omega": 0.61803, "k": 0.5}, oracle_circle,
                     {"omega": 0.61803, "k": 0.5}, False),
    "standard": (maps.standard, {}, oracle_standard, {"k": 0.971635}, True),
    "delayed_logistic": (maps.delayed_logistic, {}, oracle_delayed_logistic, {"r": 2.1}, False),
    "linear": (lambda: maps.linear(M2, C2), {}, oracle_linear, {"M": M2, "c": C2}, False),
    "lozi": (maps.lozi, {}, oracle_lozi, {"a": 1.7, "b": 0.5}, True),
    "lozi_stable": (maps.lozi, {"a": 0.5, "b": 0.3}, oracle_lozi, {"a": 0.5, "b": 0.3}, False),
}


def oracle_run(oracle, x0, loops, **params):
    states = [np.array(x0, dtype=float)]
    for _ in range(loops):
        states.append(oracle(states[-1], **params))
    return np.array(states)


# --------------------------------------------------------------------------- oracle agreement
@pytest.mark.parametrize("case", sorted(CASES))
def test_catalogue_matches_numpy_oracle(case):
    factory, kwargs, oracle, oracle_params, chaotic = CASES[case]
    m = factory(**kwargs)
    loops = 300
    traj = dynloop.simulate(m, loops)
    assert traj.stage_states.shape == (loops, 2, m.dim)
    assert not traj.diverged
    states = traj.stage_states
    # consecutive records chain exactly: the state entering loop t + 1 leaves loop t
    np.testing.assert_array_equal(states[1:, 0], states[:-1, 1])
    # every recorded step is the oracle's step (a one-step comparison survives chaos)
    for entering, leaving in zip(states[:, 0], states[:, 1]):
        np.testing.assert_allclose(leaving, oracle(entering, **oracle_params), rtol=1e-12, atol=1e-14)
    if not chaotic:  # and the whole orbit matches where errors do not grow
        expected = oracle_run(oracle, m.start_state(), loops, **oracle_params)
        np.testing.assert_allclose(states[:, 0], expected[:-1], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(traj.final_state, expected[-1], rtol=1e-12, atol=1e-13)


def test_param_overrides_reach_the_kernel():
    m = maps.henon()
    traj = dynloop.simulate(m, 50, params={"a": 0.3})
    expected = oracle_run(oracle_henon, m.start_state(), 50, a=0.3, b=0.3)
    np.testing.assert_allclose(traj.final_state, expected[-1], rtol=1e-12)
    assert traj.params == {"a": 0.3, "b": 0.3}
    lin = maps.linear(M2, C2)
    override = {"M[0,1]": 0.0, "c[1]": 0.5}
    expected = oracle_run(oracle_linear, lin.start_state(), 40, M=[[0.6, 0.0], [0.2, 0.5]], c=[1.0, 0.5])
    np.testing.assert_allclose(dynloop.simulate(lin, 40, params=override).final_state, expected[-1],
                               rtol=1e-12)


# --------------------------------------------------------------------------- textbook answers
@pytest.mark.parametrize("r", [1.5, 2.5, 2.9])
def test_logistic_fixed_point_and_multiplier(r):
    m = maps.logistic(r=r)
    fixed = (r - 1) / r
    np.testing.assert_allclose(m([fixed]), [fixed], rtol=1e-14)
    np.testing.assert_allclose(m.jacobian([fixed]), [[2 - r]], rtol=1e-12)
    traj = dynloop.simulate(m, 3000, record="none")
    assert abs(traj.final_state[0] - fixed) < 1e-9


def test_logistic_two_cycle():
    r = 3.2
    m = maps.logistic(r=r)
    root = math.sqrt((r - 3) * (r + 1))
    cycle = [(r + 1 + root) / (2 * r), (r + 1 - root) / (2 * r)]
    np.testing.assert_allclose(m([cycle[0]]), [cycle[1]], rtol=1e-13)
    np.testing.assert_allclose(m([cycle[1]]), [cycle[0]], rtol=1e-13)
    multiplier = m.jacobian([cycle[1]]) @ m.jacobian([cycle[0]])
    np.testing.assert_allclose(multiplier, [[4 + 2 * r - r * r]], rtol=1e-12)
    last = dynloop.simulate(m, 2000, record=("last", 2)).loop_states[:, 0]
    np.testing.assert_allclose(sorted(last), sorted(cycle), rtol=1e-10)


def test_henon_fixed_points_are_saddles():
    a, b = 1.4, 0.3
    m = maps.henon()
    for sign in (1, -1):
        x = (-(1 - b) + sign * math.sqrt((1 - b) ** 2 + 4 * a)) / (2 * a)
        point = [x, b * x]
        np.testing.assert_allclose(m(point), point, rtol=1e-13)
        moduli = sorted(np.abs(np.linalg.eigvals(m.jacobian(point))))
        assert moduli[0] < 1 < moduli[1]
    rng = np.random.default_rng(0)
    for x in rng.uniform(-1.5, 1.5, size=(5, 2)):
        assert np.linalg.det(m.jacobian(x)) == pytest.approx(-b, rel=1e-12)


def test_tent_fixed_point_and_float_collapse():
    m = maps.tent(mu=1.7)
    fixed = 1.7 / 2.7
    np.testing.assert_allclose(m([fixed]), [fixed], rtol=1e-14)
    np.testing.assert_allclose(m.jacobian([fixed]), [[-1.7]])
    # the documented artefact: slope 2 shifts out one bit per step
    traj = dynloop.simulate(maps.tent(), 80)
    assert traj.final_state[0] == 0.0 and np.all(traj.stage_states[:40, 0, 0] > 0)


def test_circle_fixed_point_and_rotation():
    omega, k = 0.1, 1.0
    m = maps.circle()
    fixed = math.asin(2 * math.pi * omega / k) / (2 * math.pi)
    np.testing.assert_allclose(m([fixed]), [fixed], rtol=1e-13)
    np.testing.assert_allclose(m.jacobian([fixed]), [[1 - k * math.cos(2 * math.pi * fixed)]], rtol=1e-12)
    assert abs(dynloop.simulate(m, 500).final_state[0] - fixed) < 1e-10
    # the map is lifted: with k = 0 every step adds omega (no reduction mod 1)
    traj = dynloop.simulate(maps.circle(omega=0.7, k=0.0), 10)
    np.testing.assert_allclose(traj.final_state, [7.0], rtol=1e-13)


def test_standard_fixed_points_and_area_preservation():
    k = 0.971635
    m = maps.standard()
    np.testing.assert_allclose(m([0.0, 0.0]), [0.0, 0.0], atol=0)
    np.testing.assert_allclose(m([math.pi, 0.0]), [math.pi, 0.0], atol=1e-15)
    assert np.trace(m.jacobian([0.0, 0.0])) == pytest.approx(2 + k)
    assert np.trace(m.jacobian([math.pi, 0.0])) == pytest.approx(2 - k)
    for x in np.random.default_rng(1).uniform(-4, 4, size=(5, 2)):
        assert np.linalg.det(m.jacobian(x)) == pytest.approx(1.0, rel=1e-12)
    # lifted, not wrapped: with k = 0, theta grows by p every step
    np.testing.assert_allclose(dynloop.simulate(maps.standard(k=0.0), 100).final_state, [50.5, 0.5])


@pytest.mark.parametrize("r, stable", [(1.8, True), (2.1, False)])
def test_delayed_logistic_fixed_point_and_jury(r, stable):
    m = maps.delayed_logistic(r=r)
    fixed = [(r - 1) / r] * 2
    np.testing.assert_allclose(m(fixed), fixed, rtol=1e-13)
    jacobian = m.jacobian(fixed)
    trace, det = np.trace(jacobian), np.linalg.det(jacobian)
    assert trace == pytest.approx(1.0) and det == pytest.approx(r - 1)
    assert (abs(trace) < 1 + det and det < 1) == stable
    distance = np.linalg.norm(dynloop.simulate(m, 3000, record="none").final_state - fixed)
    assert (distance < 1e-8) == stable


def test_linear_fixed_point_and_rate():
    m = maps.linear(M2, C2)
    fixed = np.linalg.solve(np.eye(2) - np.array(M2), C2)
    np.testing.assert_allclose(dynloop.simulate(m, 400).final_state, fixed, rtol=1e-12)
    np.testing.assert_array_equal(m.jacobian(fixed), M2)
    real_modes = [[0.7, 0.2], [0.1, 0.4]]  # eigenvalues 0.756 and 0.344
    m = maps.linear(real_modes, C2)
    fixed = np.linalg.solve(np.eye(2) - np.array(real_modes), C2)
    distances = np.linalg.norm(dynloop.simulate(m, 60).loop_states - fixed, axis=1)
    rho = max(abs(np.linalg.eigvals(real_modes)))
    assert distances[59] / distances[49] == pytest.approx(rho ** 10, rel=1e-3)


def test_lozi_fixed_point_and_exponents():
    a, b = 1.7, 0.5
    m = maps.lozi()
    assert m.params == {"a": a, "b": b} and m.jacobian_kind == "analytic"
    fixed = [1 / (1 + a - b), b / (1 + a - b)]  # the fixed point with x > 0
    np.testing.assert_allclose(m(fixed), fixed, rtol=1e-14)
    for x in np.random.default_rng(2).uniform(-1.5, 1.5, size=(5, 2)):
        assert np.linalg.det(m.jacobian(x)) == pytest.approx(-b, rel=1e-12)
    assert np.linalg.det(m.jacobian([0.0, 0.3])) == pytest.approx(-b, rel=1e-12)  # at the kink too
    # the largest exponent from plain numpy: one tangent vector, renormalised every step
    x, v, total, steps = np.array([0.0, 0.0]), np.array([1.0, 0.0]), 0.0, 20000
    for _ in range(500):
        x = oracle_lozi(x, a, b)
    for _ in range(steps):
        v = np.array([[-a * np.sign(x[0]), 1.0], [b, 0.0]]) @ v
        x = oracle_lozi(x, a, b)
        size = np.linalg.norm(v)
        total += math.log(size)
        v /= size
    largest = total / steps
    assert 0.4 < largest < 0.55  # chaotic at the classic values (about 0.47)
    spectrum = dynloop.lyapunov_spectrum(m, steps=20000, transient=500)
    assert not spectrum.diverged
    assert spectrum.exponents.sum() == pytest.approx(math.log(b), abs=1e-9)  # det J = -b everywhere
    assert spectrum.exponents[0] == pytest.approx(largest, abs=0.03)


def test_catalogue_namespace_holds_only_the_maps():
    # (pytest's assertion rewriting adds '@py_builtins' when this module is collected explicitly)
    public = sorted(name for name in dir(maps) if name.isidentifier() and not name.startswith("_"))
    assert public == sorted(maps.__all__)
    assert "lozi" in maps.__all__
    for name in ("np", "math", "functools", "njit", "Map", "check_real", "invalid"):
        assert not hasattr(maps, name), name
    for name in maps.__all__:
        factory = getattr(maps, name)
        system = factory(np.eye(2)) if name == "linear" else factory()
        assert isinstance(system, dynloop.Map)
        assert factory.__doc__ and ">>>" in factory.__doc__


# --------------------------------------------------------------------------- Jacobians
def central_differences(function, x, h=1e-6):
    x = np.asarray(x, dtype=float)
    columns = []
    for j in range(x.size):
        step = np.zeros_like(x)
        step[j] = h * max(1.0, abs(x[j]))
        columns.append((function(x + step) - function(x - step)) / (2 * step[j]))
    return np.array(columns).T


@pytest.mark.parametrize("case", sorted(CASES))
def test_analytic_jacobians_match_finite_differences(case):
    factory, kwargs, *_ = CASES[case]
    m = factory(**kwargs)
    assert m.jacobian_kind == "analytic"
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    for _ in range(10):
        x = rng.uniform(0.05, 0.95, m.dim) if m.name in ("logistic", "tent") else rng.uniform(-2, 2, m.dim)
        if m.name == "tent" and abs(x[0] - 0.5) < 1e-3:
            continue
        analytic = m.jacobian(x)
        numeric = central_differences(m, x)
        scale = max(1.0, np.max(np.abs(analytic)))
        assert np.max(np.abs(analytic - numeric)) <= 1e-6 * scale
        # and the library's own compiled finite differences agree too
        compiled = _map_kernels.finite_difference_jacobian(m.step_function, x, m._param_vector(None))
        assert np.max(np.abs(analytic - compiled)) <= 1e-6 * scale


@pytest.mark.parametrize("case", sorted(CASES))
def test_catalogue_sympy_form_matches_compiled_map(case):
    factory, kwargs, *_ = CASES[case]
    m = factory(**kwargs)
    resolved = m.resolve_params()
    twin = dynloop.Map.from_sympy(m.exprs, m.state_symbols,
                                  {s: resolved[s.name] for s in m.param_symbols})
    assert [s.name for s in m.param_symbols] == list(m.param_names)
    rng = np.random.default_rng(7)
    for x in rng.uniform(0.05, 0.45, size=(5, m.dim)):
        np.testing.assert_allclose(twin(x), m(x), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(twin.jacobian(x), m.jacobian(x), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- user maps
def user_step(x, p):
    return np.array([x[1], p[0] * np.sin(x[0]) - p[1] * x[1] * x[1]])


def user_jacobian(x, p):
    return np.array([[0.0, 1.0], [p[0] * np.cos(x[0]), -2.0 * p[1] * x[1]]])


def test_from_function_with_and_without_jacobian():
    params = {"g": 1.3, "d": 0.4}
    exact = dynloop.Map.from_function(user_step, 2, params=params, jacobian=user_jacobian, name="pendulum")
    approx = dynloop.Map.from_function(user_step, 2, params=params)
    assert exact.jacobian_kind == "analytic" and approx.jacobian_kind == "finite-difference"
    assert "finite-difference" in repr(approx) and "analytic" in repr(exact)
    assert approx.name == "user_step" and exact.name == "pendulum"
    np.testing.assert_array_equal(approx.start_state(), [0.1, 0.1])
    rng = np.random.default_rng(3)
    for x in rng.uniform(-2, 2, size=(5, 2)):
        expected = user_jacobian(x, np.array([1.3, 0.4]))
        np.testing.assert_allclose(exact.jacobian(x), expected, rtol=1e-14)
        np.testing.assert_allclose(approx.jacobian(x), expected, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(approx.jacobian(x, {"g": 2.0}), user_jacobian(x, np.array([2.0, 0.4])),
                                   rtol=1e-7, atol=1e-8)
    # the lazily compiled first-class finite-difference Jacobian equals the direct one
    x = np.array([0.3, -0.7])
    np.testing.assert_array_equal(approx.jacobian_function(x, np.array([1.3, 0.4])), approx.jacobian(x))
    traj = dynloop.simulate(exact, 30, x0=[0.2, 0.1], params={"d": 0.1})
    expected = oracle_run(lambda x: user_step(x, np.array([1.3, 0.1])), [0.2, 0.1], 30)
    np.testing.assert_allclose(traj.final_state, expected[-1], rtol=1e-12)


def test_from_function_without_params_and_x0():
    m = dynloop.Map.from_function(lambda x, p: 0.5 * x + 1.0, 3, x0=2.0)
    np.testing.assert_array_equal(m.start_state(), [2.0, 2.0, 2.0])
    assert m.resolve_params() == {} and m.param_names == ()
    np.testing.assert_allclose(dynloop.simulate(m, 200).final_state, [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match=r"params\['a'\].*no parameter 'a'.*none"):
        m.resolve_params({"a": 1.0})
    with pytest.raises(ValueError, match=r"x0 has shape \(2,\)"):
        dynloop.Map.from_function(lambda x, p: x, 3, x0=[1.0, 2.0])
    with pytest.raises(ValueError, match="x0"):
        dynloop.simulate(m, 3, x0=[1.0])


def test_resolve_params_errors_name_the_field_and_the_allowed_names():
    m = maps.henon()
    with pytest.raises(ValueError, match=r"params\['c'\]=1\.0 is not allowed: henon has no parameter 'c'; "
                                         r"its parameters are: 'a', 'b'"):
        m.resolve_params({"c": 1.0})
    with pytest.raises(ValueError, match=r"params\['a'\]=nan"):
        dynloop.simulate(m, 5, params={"a": float("nan")})
    with pytest.raises(ValueError, match="params"):
        m.resolve_params([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^r='x' is not allowed"):
        maps.logistic(r="x")
    with pytest.raises(ValueError, match="square"):
        maps.linear([[1.0, 2.0]])
    with pytest.raises(ValueError, match="c="):
        maps.linear(np.eye(2), c=[1.0])


RATES = {"r": 3.0}


def step_with_dict(x, p):
    return np.array([RATES["r"] * x[0]])


def step_with_undefined_global(x, p):
    return np.array([x[0] * undefined_growth_rate])  # noqa: F821


def step_returning_scalar(x, p):
    return x[0] * 2.0


def test_uncompilable_functions_give_clear_errors():
    with pytest.raises(ValueError, match=r"step='step_with_dict'.*RATES.*dict"):
        dynloop.Map.from_function(step_with_dict, 1)
    with pytest.raises(ValueError, match=r"step='step_with_undefined_global'.*undefined_growth_rate"):
        dynloop.Map.from_function(step_with_undefined_global, 1)
    with pytest.raises(ValueError, match=r"step='step_returning_scalar'.*must return a float64 array"):
        dynloop.Map.from_function(step_returning_scalar, 1)
    with pytest.raises(ValueError, match=r"jacobian='step_with_dict'"):
        dynloop.Map.from_function(lambda x, p: x, 1, jacobian=step_with_dict)
    with pytest.raises(ValueError, match=r"returns an array of shape \(2,\).*expected shape \(1,\)"):
        dynloop.Map.from_function(lambda x, p: np.array([x[0], x[0]]), 1)
    with pytest.raises(ValueError, match=r"jacobian.*shape \(1, 2\).*expected shape \(2, 2\)"):
        dynloop.Map.from_function(lambda x, p: x.copy(), 2, jacobian=lambda x, p: np.ones((1, 2)))


def step_reading_p3(x, p):
    return np.array([p[3] * x[0]])


def step_reading_x1(x, p):
    return np.array([p[0] * x[1]])


def step_reading_p2_above_half(x, p):
    if x[0] > 0.5:
        return np.array([p[2] * x[0]])
    return np.array([p[0] * x[0]])


def test_indices_out_of_range_are_named():
    # numba does not check bounds: unchecked, p[3] of a one-parameter map silently read garbage
    with pytest.raises(ValueError) as info:
        dynloop.Map.from_function(step_reading_p3, 1, params={"r": 2.0})
    message = str(info.value)
    assert message.startswith("step='step_reading_p3' reads an index out of range at x=[0.1], "
                              "params={'r': 2.0}: index 3 is out of bounds for axis 0 with size 1")
    assert "`return np.array([p[3] * x[0]])`" in message
    assert "The map has 1 parameter, so p holds p[0] ('r') only" in message
    with pytest.raises(ValueError, match=r"step='step_reading_x1' reads an index out of range.*"
                                         r"index 1 is out of bounds.*"
                                         r"`return np\.array\(\[p\[0\] \* x\[1\]\]\)`.*"
                                         r"dim=1, so x holds x\[0\] only"):
        dynloop.Map.from_function(step_reading_x1, 1, params={"r": 2.0})
    # only some states read out of range: the error comes from the iteration, naming the state
    m = dynloop.Map.from_function(step_reading_p2_above_half, 1, params={"r": 2.0, "s": 1.0}, x0=0.1)
    with pytest.raises(ValueError, match=r"step='step_reading_p2_above_half' reads an index out of range "
                                         r"at x=\[0\.8\], params=\{'r': 2\.0, 's': 1\.0\}: index 2 .*"
                                         r"2 parameters, so p holds p\[0\]\.\.p\[1\] \('r', 's'\)"):
        dynloop.simulate(m, 10)
    # a parameter without default: checked when the map is used
    m = dynloop.Map.from_function(step_reading_p3, 1, params={"r": None})
    with pytest.raises(ValueError, match=r"step_reading_p3.*params=\{'r': 3\.0\}: index 3"):
        dynloop.simulate(m, 5, params={"r": 3.0})
    # and in the Jacobian, the tangent dynamics and the finite differences around the step
    with pytest.raises(ValueError, match=r"jacobian='<lambda>' reads an index out of range.*index 5"):
        dynloop.Map.from_function(lambda x, p: x.copy(), 1, jacobian=lambda x, p: np.array([[x[5]]]))
    with pytest.raises(ValueError, match=r"x=\[0\.8.*index 2"):  # x or x + h (finite differences)
        dynloop.lyapunov_spectrum(dynloop.Map.from_function(step_reading_p2_above_half, 1,
                                                            params={"r": 2.0, "s": 1.0}), steps=10,
                                  transient=0)


def step_two_values_above_half(x, p):
    if x[0] > 0.5:
        return np.array([x[0], x[0]])
    return np.array([2.0 * x[0]])


def jacobian_wrong_above_half(x, p):
    if x[0] > 0.5:
        return np.zeros((1, 2))
    return np.array([[2.0]])


def test_wrong_shapes_for_some_states_name_the_function_shape_and_state():
    m = dynloop.Map.from_function(step_two_values_above_half, 1, x0=0.1)
    with pytest.raises(ValueError) as info:
        dynloop.simulate(m, 10)  # 0.1, 0.2, 0.4, 0.8: two values
    assert str(info.value) == ("step='step_two_values_above_half' returns an array of shape (2,) at x=[0.8], "
                               "which is not allowed: expected shape (1,) (dim=1)")
    with pytest.raises(ValueError, match=r"returns an array of shape \(2,\) at x=\[0\.8\]"):
        m([0.8])
    with pytest.raises(ValueError,
                       match=r"step='step_two_values_above_half' returns an array of shape \(2,\)"):
        m.jacobian([0.8])  # finite differences call the step at 0.8 +- h
    with pytest.raises(ValueError, match=r"step='step_two_values_above_half' returns .* at x=\[0\.8"):
        dynloop.lyapunov_spectrum(m, steps=10, transient=0)
    m = dynloop.Map.from_function(lambda x, p: 2.0 * x, 1, jacobian=jacobian_wrong_above_half, x0=0.1)
    with pytest.raises(ValueError, match=r"^jacobian='jacobian_wrong_above_half' returns an array of shape "
                                         r"\(1, 2\) at x=\[0\.8\], which is not allowed: "
                                         r"expected shape \(1, 1\)"):
        dynloop.lyapunov_spectrum(m, steps=10, transient=0)


def test_doubling_map_from_function_and_from_sympy_mod():
    def doubling(x, p):
        return np.array([(2.0 * x[0]) % 1.0])

    x = sympy.Symbol("x")
    made = [dynloop.Map.from_function(doubling, 1, x0=0.1234567),
            dynloop.Map.from_sympy(sympy.Mod(2 * x, 1), x, x0=0.1234567)]
    expected = oracle_run(lambda s: np.array([(2.0 * s[0]) % 1.0]), [0.1234567], 30)
    for m in made:
        np.testing.assert_array_equal(dynloop.simulate(m, 30).final_state, expected[-1])
        for point in (0.1, 0.3, 0.7, 0.9):
            assert m.jacobian([point])[0, 0] == pytest.approx(2.0, rel=1e-8)
    assert made[1].jacobian_kind == "analytic"
    np.testing.assert_array_equal(made[1]([0.75]), [0.5])
    np.testing.assert_array_equal(made[1]([-0.25]), [0.5])  # Python's (and sympy's) sign convention


def test_from_sympy_jacobian_is_sympys_derivative():
    x, y, a, b, c = sympy.symbols("x y a b c")
    exprs = [sympy.sin(a * x) * sympy.exp(-y) + x / (1 + y**2), b * x * y + sympy.sqrt(1 + x**2) - c * y**3]
    m = dynloop.Map.from_sympy(exprs, [x, y], [a, b, c], params={"a": 1.1, b: -0.4, "c": 0.25})
    assert m.params == {"a": 1.1, "b": -0.4, "c": 0.25}
    assert m.jacobian_kind == "analytic"
    assert m.exprs == tuple(exprs) and m.state_symbols == (x, y) and m.param_symbols == (a, b, c)
    values = {a: 1.1, b: -0.4, c: 0.25}
    step = sympy.lambdify([x, y], [e.subs(values) for e in exprs], "math")
    jacobian = sympy.lambdify([x, y], sympy.Matrix(exprs).jacobian([x, y]).subs(values).tolist(), "math")
    for point in np.random.default_rng(5).uniform(-1.5, 1.5, size=(8, 2)):
        np.testing.assert_allclose(m(point), step(*point), rtol=1e-13)
        np.testing.assert_allclose(m.jacobian(point), np.array(jacobian(*point), dtype=float), rtol=1e-12,
                                   atol=1e-14)


def test_from_sympy_single_expression_and_required_params():
    x, r = sympy.symbols("x r")
    m = dynloop.Map.from_sympy(r * x * (1 - x), x, [r], x0=0.2)
    assert m.dim == 1 and m.params == {"r": None}
    with pytest.raises(ValueError, match=r"no default for 'r'"):
        dynloop.simulate(m, 10)
    traj = dynloop.simulate(m, 10, params={"r": 2.9})
    expected = oracle_run(oracle_logistic, [0.2], 10, r=2.9)
    np.testing.assert_allclose(traj.final_state, expected[-1], rtol=1e-13)
    np.testing.assert_allclose(m.jacobian([0.3], {r: 2.9}), [[2.9 * 0.4]])


def test_from_sympy_errors():
    x, y, r, z = sympy.symbols("x y r z")
    with pytest.raises(ValueError, match=r"\['z'\].*neither state nor parameter"):
        dynloop.Map.from_sympy([r * x + z], [x], [r])
    with pytest.raises(ValueError, match="one expression per state variable"):
        dynloop.Map.from_sympy([x, y], [x], [])
    with pytest.raises(ValueError, match="not a parameter symbol"):
        dynloop.Map.from_sympy([r * x], [x], [r], params={"q": 1.0})
    with pytest.raises(ValueError, match="Symbols"):
        dynloop.Map.from_sympy([x], ["x"])


def test_from_sympy_lozi_is_real_and_piecewise():
    # complex symbols by default: d|x|/dx used to bring in re() and im(), which cannot be printed
    x, y, a, b = sympy.symbols("x y a b")
    m = dynloop.Map.from_sympy([1 - a * sympy.Abs(x) + y, b * x], [x, y], {a: 1.7, b: 0.5})
    for point in ([0.3, 0.2], [-0.4, 0.1]):
        np.testing.assert_allclose(m(point), oracle_lozi(np.array(point), 1.7, 0.5), rtol=1e-15)
        np.testing.assert_allclose(m.jacobian(point), [[-1.7 * np.sign(point[0]), 1.0], [0.5, 0.0]])
    np.testing.assert_allclose(m.jacobian(maps.lozi().start_state()), maps.lozi().jacobian([0.0, 0.0]))


PIECEWISE = {  # name: (expression of x, y, a; numpy oracle)
    "Abs": (lambda x, y, a: a * sympy.Abs(x - y), lambda x, y, a: a * abs(x - y)),
    "sign": (lambda x, y, a: sympy.sign(x) * y ** 2 + a * x, lambda x, y, a: np.sign(x) * y ** 2 + a * x),
    "Piecewise": (lambda x, y, a: sympy.Piecewise((x ** 2, x < y), (a * x, sympy.And(x >= y, y > 0)),
                                                  (-x, True)),
                  lambda x, y, a: x ** 2 if x < y else (a * x if y > 0 else -x)),
    "Min": (lambda x, y, a: a * sympy.Min(x, 1 - x, y), lambda x, y, a: a * min(x, 1 - x, y)),
    "Max": (lambda x, y, a: sympy.Max(x * y, a) - sympy.Max(y, 0), lambda x, y, a: max(x * y, a) - max(y, 0)),
    "Mod": (lambda x, y, a: sympy.Mod(a * x + y, 1) + sympy.Mod(x, a),
            lambda x, y, a: (a * x + y) % 1 + x % a),
    "floor": (lambda x, y, a: x * sympy.floor(2 * y) + sympy.floor(a),
              lambda x, y, a: x * math.floor(2 * y) + 1),
    "ceiling": (lambda x, y, a: x * sympy.ceiling(a * y), lambda x, y, a: x * math.ceil(a * y)),
    "frac": (lambda x, y, a: sympy.frac(3 * x) * y, lambda x, y, a: (3 * x) % 1 * y),
    "Heaviside": (lambda x, y, a: sympy.Heaviside(x) * y + x, lambda x, y, a: (x > 0) * y + x),
}


@pytest.mark.parametrize("name", sorted(PIECEWISE))
def test_from_sympy_piecewise_smooth_functions(name):
    build, oracle = PIECEWISE[name]
    x, y, a = sympy.symbols("x y a")
    m = dynloop.Map.from_sympy([build(x, y, a), x * y], [x, y], {a: 1.3})
    assert m.jacobian_kind == "analytic"
    step = lambda s: np.array([oracle(s[0], s[1], 1.3), s[0] * s[1]])  # noqa: E731
    rng = np.random.default_rng(sorted(PIECEWISE).index(name))
    checked = 0
    for point in rng.uniform(-1.5, 1.5, size=(40, 2)):
        np.testing.assert_allclose(m(point), step(point), rtol=1e-13, atol=1e-15)
        numeric = central_differences(step, point)
        if np.max(np.abs(central_differences(step, point, h=2e-6) - numeric)) > 1e-5:
            continue  # a kink within the difference step
        np.testing.assert_allclose(m.jacobian(point), numeric, rtol=1e-6, atol=1e-6)
        checked += 1
    assert checked >= 30


def test_from_sympy_names_unsupported_functions():
    x, y = sympy.symbols("x y")
    with pytest.raises(ValueError, match=r"^exprs=\['besselj\(0, x\)'\] is not allowed: .*besselj"):
        dynloop.Map.from_sympy([sympy.besselj(0, x)], [x])
    with pytest.raises(ValueError, match=r"undefined function 'f'"):
        dynloop.Map.from_sympy([sympy.Function("f")(x)], [x])
    with pytest.raises(ValueError, match=r"Jacobian.*polygamma"):
        dynloop.Map.from_sympy([sympy.gamma(x)], [x])  # the derivative of gamma is gamma * polygamma


# --------------------------------------------------------------------------- recording


def test_divergence_is_reported_not_raised():
    doubling = maps.linear([[2.0]])  # from x0 = 1, loop t leaves 2**(t + 1)
    traj = dynloop.simulate(doubling, 2000, record=("last", 2))
    # the squared norm (2**512)**2 overflows in loop 511: reported as divergence (_recording.py)
    assert (traj.diverged_at, traj.diverged_stage, traj.loops_run) == (511, 1, 511)
    assert traj.final_state[0] == 2.0 ** 511
    np.testing.assert_array_equal(traj.recorded_loops, [509, 510])
    assert traj.stage_norms.shape == (512, 2) and np.isinf(traj.stage_norms[-1, 1])
    escape = dynloop.simulate(maps.logistic(r=5.0), 100, x0=[0.5])
    assert escape.diverged and escape.diverged_stage == 1 and np.isfinite(escape.final_state).all()
    reciprocal = dynloop.Map.from_function(lambda x, p: 1.0 / x - 1.0 / x, 1)  # 1/0: inf - inf = nan
    traj = dynloop.simulate(reciprocal, 5)
    assert (traj.diverged_at, traj.loops_run) == (1, 1)


def test_float32_states_are_rounded_every_step():
    m = maps.logistic(r=3.9)
    traj = dynloop.simulate(m, 200, dtype=np.float32)
    assert traj.stage_states.dtype == np.float32 and traj.final_state.dtype == np.float32
    x = np.float32(0.1)
    for t in range(200):
        x_new = np.float32(3.9 * float(x) * (1.0 - float(x)))  # float64 step, rounded to float32
        assert traj.stage_states[t, 1, 0] == x_new
        x = x_new
    doubling = dynloop.simulate(maps.linear([[2.0]]), 400, dtype=np.float32)
    assert doubling.diverged_at == 127  # 2**128 exceeds the float32 range


# --------------------------------------------------------------------------- contract and kernel
def test_system_contract():
    m = maps.delayed_logistic()
    assert m.stage_names == ("step",) and m.state_shape == (2,) and m.n_stages == 1
    x = np.array([0.3, 0.6])
    stages = m.stage_maps(x)
    assert stages.shape == (2, 2)
    np.testing.assert_array_equal(stages[0], x)
    np.testing.assert_array_equal(stages[1], m(x))
    np.testing.assert_array_equal(m.loop(x), m(x))
    assert m.stage_jacobians(x).shape == (1, 2, 2)
    np.testing.assert_array_equal(m.jacobian(x), m.stage_jacobians(x)[0])
    np.testing.assert_array_equal(x, [0.3, 0.6])  # inputs are not modified
    point = dynloop.classify(maps.delayed_logistic(r=1.5)).stage_fixed_points[0]
    np.testing.assert_allclose(point, [1 / 3, 1 / 3], rtol=1e-12)


def test_one_compiled_kernel_serves_every_map():
    systems = [factory(**kwargs) for factory, kwargs, *_ in CASES.values()]
    systems.append(dynloop.Map.from_function(user_step, 2, params={"g": 1.0, "d": 0.1}))
    for system in systems:
        dynloop.simulate(system, 5)
        dynloop.simulate(system, 5, dtype=np.float32)
    assert len(_map_kernels.run_map.signatures) == 1


def test_kernel_is_loaded_from_the_disk_cache_in_a_new_process():
    script = ("import numpy as np, dynloop\n"
              "from dynloop.systems import _map_kernels\n"
              "m = dynloop.Map.from_function(lambda x, p: 0.5 * x, 1)\n"
              "dynloop.simulate(m, 3)\n"
              "print(sum(_map_kernels.run_map.stats.cache_hits.values()))\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    hits = 0
    for _ in range(2):  # the first process may have to write the cache
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                                cwd=root, check=True)
        hits = int(result.stdout.split()[-1])
        if hits:
            break
    assert hits >= 1


# --------------------------------------------------------------------------- tangent dynamics
def test_tangent_run_gives_textbook_exponents():
    linear = maps.linear(np.diag([1.1, 0.8]))
    state, basis, log_r, log_det, done = linear._tangent_run(linear.start_state(), np.eye(2), 200, None, True)
    assert done == 200
    np.testing.assert_allclose(log_r / done, np.log([1.1, 0.8]), rtol=1e-12)
    np.testing.assert_allclose(state, [1.1 ** 200, 0.8 ** 200], rtol=1e-12)
    np.testing.assert_allclose(basis.T @ basis, np.eye(2), atol=1e-14)

    henon = maps.henon()
    x0 = dynloop.simulate(henon, 100).final_state  # on the attractor
    _, _, log_r, log_det, done = henon._tangent_run(x0, np.eye(2), 5000, None, True)
    assert log_r.sum() / done == pytest.approx(math.log(0.3), abs=1e-10)  # det J = -b
    assert log_det / done == pytest.approx(math.log(0.3), abs=1e-12)
    assert log_r[0] / done == pytest.approx(0.419, abs=0.01)
    # a finite-difference map follows the same tangent dynamics
    approx = dynloop.Map.from_function(henon.step_function, 2, params={"a": 1.4, "b": 0.3})
    assert approx.jacobian_kind == "finite-difference"
    _, _, approx_log_r, _, _ = approx._tangent_run(x0, np.eye(2)[:, :1], 200, None, False)
    _, _, exact_log_r, _, _ = henon._tangent_run(x0, np.eye(2)[:, :1], 200, None, False)
    np.testing.assert_allclose(approx_log_r, exact_log_r, rtol=1e-6)


def test_tangent_run_stops_before_a_non_finite_step():
    doubling = maps.linear([[2.0]])
    state, _, log_r, _, done = doubling._tangent_run([1.0], np.eye(1), 2000, None, False)
    assert done == 1023 and state[0] == 2.0 ** 1023
    assert log_r[0] == pytest.approx(1023 * math.log(2.0))
