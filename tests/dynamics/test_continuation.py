"""Continuation: textbook bifurcation values derived here by hand, sweeps that change label across the
bifurcations the branch finds, and a transformer block's loss of stability checked with classify."""

import math

import numpy as np
import pytest

import dynloop
from dynloop import Regime
from dynloop.dynamics.continuation import bifurcation_diagram, continuation


def _kinds(branch):
    return [(b.kind, b.parameter) for b in branch.bifurcations]


# ----------------------------------------------------------------------------- textbook values
def test_logistic_flips_at_three_and_the_doubled_cycle_at_one_plus_root_six():
    # x* = 1 - 1/r has multiplier 2 - r: -1 at r = 3. The 2-cycle's multiplier is
    # f'(x1) f'(x2) = 4 + 2r - r**2: -1 at r = 1 + sqrt(6).
    branch = continuation(dynloop.maps.logistic(), "r", start=2.5, stop=3.3, x0=[0.6])
    assert [k for k, _ in _kinds(branch)] == ["flip"]
    flip = branch.bifurcations[0]
    assert flip.parameter == pytest.approx(3.0, abs=1e-8)
    assert flip.state[0] == pytest.approx(2 / 3, abs=1e-8)
    assert np.min(np.abs(flip.multipliers + 1)) < 1e-7
    # stable before, unstable after
    assert branch.stable[branch.parameter < 2.99].all() and not branch.stable[branch.parameter > 3.01].any()
    np.testing.assert_allclose(branch.states[:, 0], 1 - 1 / branch.parameter, atol=1e-10)
    assert branch.parameter[0] == 2.5 and branch.parameter[-1] == pytest.approx(3.3, abs=1e-12)
    doubled = branch.switch(flip, stop=3.5)
    assert doubled.period == 2 and [k for k, _ in _kinds(doubled)] == ["flip"]
    assert doubled.bifurcations[0].parameter == pytest.approx(1 + math.sqrt(6), abs=1e-8)
    # the doubled branch's points are the textbook 2-cycle: roots of r^2 x^2 - r(r+1) x + (r+1) = 0
    r = doubled.parameter
    x = doubled.states[:, 0]
    np.testing.assert_allclose(r ** 2 * x ** 2 - r * (r + 1) * x + (r + 1), 0, atol=1e-9)


def test_henon_fixed_point_flips_at_three_quarters_of_one_minus_b_squared():
    # fixed point x = y/b with a x^2 + (1 - b) x - 1 = 0; J = [[-2 a x, 1], [b, 0]] has a multiplier -1
    # when 1 - 2 a x - b = 0, so x = (1 - b)/(2a), and then a = 3 (1 - b)^2 / 4
    b = 0.3
    branch = continuation(dynloop.maps.henon(b=b), "a", start=0.1, stop=0.6)
    assert [k for k, _ in _kinds(branch)] == ["flip"]
    assert branch.bifurcations[0].parameter == pytest.approx(3 * (1 - b) ** 2 / 4, abs=1e-8)
    x = branch.states[:, 0]
    a = branch.parameter
    np.testing.assert_allclose(a * x ** 2 + (1 - b) * x - 1, 0, atol=1e-9)


def test_a_quadratic_map_folds_at_one_quarter_and_the_branch_turns_back():
    # x' = x^2 + c: fixed points x^2 - x + c = 0 merge at c = 1/4, x = 1/2 (multiplier 2x = 1)
    quadratic = dynloop.Map(lambda x, p: np.array([x[0] ** 2 + p[0]]), 1, params={"c": -0.5},
                            jacobian=lambda x, p: np.array([[2 * x[0]]]), name="quadratic")
    branch = continuation(quadratic, "c", start=-0.5, stop=0.5, x0=[(1 - math.sqrt(3)) / 2])
    assert [k for k, _ in _kinds(branch)] == ["fold"]
    fold = branch.bifurcations[0]
    assert fold.parameter == pytest.approx(0.25, abs=1e-8) and fold.state[0] == pytest.approx(0.5, abs=1e-4)
    assert branch.parameter.max() < 0.25 + 1e-9  # it turned back at the fold
    assert branch.states[-1, 0] > 0.5 and branch.parameter[-1] == pytest.approx(-0.5)  # the other fixed point
    np.testing.assert_array_equal(branch.stable, branch.states[:, 0] < 0.5)


def test_delayed_logistic_neimark_sacker_at_two_with_rotation_one_sixth():
    # x* = y* = 1 - 1/r, J = [[1, 1 - r], [1, 0]]: mu^2 - mu + (r - 1) = 0, |mu|^2 = r - 1 = 1 at r = 2,
    # where mu = (1 +- i sqrt(3))/2 = exp(+- i pi/3): rotation number 1/6
    branch = continuation(dynloop.maps.delayed_logistic(), "r", start=1.5, stop=2.3, x0=[1 / 3, 1 / 3])
    assert [k for k, _ in _kinds(branch)] == ["neimark_sacker"]
    ns = branch.bifurcations[0]
    assert ns.parameter == pytest.approx(2.0, abs=1e-8) and ns.rotation == pytest.approx(1 / 6, abs=1e-8)
    np.testing.assert_allclose(np.abs(ns.multipliers), 1.0, atol=1e-7)


def test_a_bifurcation_diagram_follows_the_period_doubling_cascade(tmp_path):
    branches, figure = bifurcation_diagram(dynloop.maps.logistic(), "r", 2.8, 3.56, x0=[0.6], depth=2,
                                           values=60, path=tmp_path / "cascade.png")
    assert [b.period for b in branches] == [1, 2, 4]
    flips = [b.bifurcations[0].parameter for b in branches]
    assert flips[0] == pytest.approx(3.0, abs=1e-8) and flips[1] == pytest.approx(1 + math.sqrt(6), abs=1e-8)
    # the period-4 cycle's flip, found independently: plain numpy for f^4 and its derivative, and
    # scipy's root finder on f^4(x) = x, (f^4)'(x) = -1 in (x, r)
    import scipy.optimize

    def equations(unknowns):
        x, r = unknowns
        derivative = 1.0
        for _ in range(4):
            derivative *= r * (1 - 2 * x)
            x = r * x * (1 - x)
        return [x - unknowns[0], derivative + 1]

    solution = scipy.optimize.root(equations, [0.8, 3.544], tol=1e-14)
    assert solution.success and max(map(abs, equations(solution.x))) < 1e-12
    assert flips[2] == pytest.approx(solution.x[1], abs=1e-8)
    assert (tmp_path / "cascade.png").stat().st_size > 20_000 and figure.axes[0].get_xlabel() == "r"


# ----------------------------------------------------------------------------- against sweeps
def test_a_sweeps_label_changes_where_the_branch_bifurcates():
    branch = continuation(dynloop.maps.henon(b=0.3), "a", start=0.1, stop=0.6)
    flip = branch.bifurcations[0].parameter
    grid = np.linspace(0.2, 0.55, 36)
    diagram = dynloop.sweep(dynloop.maps.henon(b=0.3), {"a": grid}, loops=2000, progress=False)
    codes = [Regime.from_code(c).value for c in diagram.regimes]
    below, above = grid[grid < flip].max(), grid[grid > flip].min()
    # the label changes first between the two grid points that bracket the flip (just past it the
    # 2-cycle converges too slowly to be called within the loops: undetermined), and is periodic
    # further on
    changes = [(grid[i], grid[i + 1]) for i in range(len(grid) - 1) if codes[i] != codes[i + 1]]
    assert changes[0] == (below, above) and codes[list(grid).index(below)] == "fixed_point"
    assert set(codes[-10:]) == {"periodic"}


# ----------------------------------------------------------------------------- blocks
def test_a_transformer_blocks_cyclic_fixed_point_loses_stability_by_a_flip():
    spec = dynloop.BlockSpec(width=8, tokens=3, layers=2, heads=2, mixer="transformer", hidden=16,
                             norm="pre", injection="concat", residual_scale=0.3, seed=0)
    branch = continuation(spec, "residual_scale", start=0.3, stop=0.5)
    first = branch.bifurcations[0]
    assert first.kind == "flip" and branch.stable[0]
    assert branch.stage_points.shape == (len(branch), spec.n_stages, 3, 8)
    assert branch.degeneracy.shape == (len(branch),) and (branch.degeneracy < 1).all()
    before = dynloop.classify(spec.replace(residual_scale=first.parameter - 2e-3), lyapunov=False)
    after = dynloop.classify(spec.replace(residual_scale=first.parameter + 2e-3), lyapunov=False)
    assert before.regime is Regime.CYCLIC and (after.regime, after.period) == (Regime.PERIODIC, 2)
    # at a branch point before the flip, the fixed point classify refines is the branch's point
    index = first.index - 1
    at = dynloop.classify(spec.replace(residual_scale=float(branch.parameter[index])), lyapunov=False)
    assert at.regime is Regime.CYCLIC
    np.testing.assert_allclose(at.stage_fixed_points[-1], branch.states[index], atol=1e-8)
    np.testing.assert_allclose(at.stage_fixed_points, branch.stage_points[index], atol=1e-8)


@pytest.mark.parametrize("call, message", [
    (lambda: continuation(dynloop.maps.logistic(), "q", start=2.5, stop=3.0),
     r"parameter='q'.*parameters: r"),
    (lambda: continuation(dynloop.maps.logistic(), "r", start=2.5, stop=2.5), r"stop=2.5"),
    (lambda: continuation(dynloop.BlockSpec(), "norm", start=0, stop=1), r"parameter='norm'.*float field"),
    (lambda: continuation(dynloop.maps.logistic(), "r", start=2.5, stop=3.0, tol=0.5), r"tol=0.5"),
    (lambda: continuation(dynloop.maps.logistic(r=3.9), "r", start=3.9, stop=4.0), r"no converged cycle"),
    (lambda: continuation(dynloop.maps.logistic(), "r", start=2.5, stop=3.0, x0=[np.nan]), r"x0=\[nan\]"),
    (lambda: continuation(dynloop.maps.logistic(), "r", start=2.5, stop=3.0, period=0), r"period=0"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_branch_says_why_it_stopped():
    branch = continuation(dynloop.maps.henon(b=0.3), "a", start=0.1, stop=0.6)
    assert branch.meta["stopped"] == "the parameter left the range"
    short = continuation(dynloop.maps.logistic(), "r", start=2.5, stop=3.3, x0=[0.6], max_points=5)
    assert short.meta["stopped"] == "max_points (5) reached" and len(short) == 5
    assert "stopped: max_points (5) reached" in short.summary()


@pytest.mark.parametrize("name, f", [
    ("transcritical", lambda x, p: np.array([(1.0 + p[0]) * x[0] - x[0] ** 2])),
    ("pitchfork", lambda x, p: np.array([(1.0 + p[0]) * x[0] - x[0] ** 3])),
])
def test_a_branch_point_is_not_called_a_fold(name, f):
    # x = 0 is a fixed point for every a; at a = 0 its multiplier 1 + a passes +1 while the branch goes
    # straight on: another branch (x = a, or x = ±√a) crosses it there and [F_x | F_a] = [a, 0] is singular
    system = dynloop.Map(f, 1, params={"a": -0.5}, name=name)
    branch = continuation(system, "a", start=-0.5, stop=0.5, x0=[0.0])
    assert branch.bifurcations == [] and np.all(branch.states == 0.0)
    assert branch.meta["branch_points"] == [pytest.approx(0.0, abs=1e-10)]
    assert "branch point at a = " in branch.summary() and "singular off a fold" in branch.summary()
    # a real fold is still one
    fold = continuation(dynloop.Map(lambda x, p: np.array([x[0] ** 2 + p[0]]), 1, params={"c": 0.0}), "c",
                        start=0.0, stop=0.3, x0=[0.0])
    assert [b.kind for b in fold.bifurcations] == ["fold"] and fold.meta["branch_points"] == []


def test_a_saved_branch_loads_with_its_bifurcations_and_switches_with_its_system(tmp_path):
    logistic = dynloop.maps.logistic()
    branch = continuation(logistic, "r", start=2.8, stop=3.56, x0=[0.6])
    doubled = branch.switch(branch.bifurcations[0])
    branch.save(tmp_path / "one.npz")
    doubled.save(tmp_path / "two.npz")
    for original, name in ((branch, "one.npz"), (doubled, "two.npz")):
        bare = dynloop.Branch.load(tmp_path / name)
        for attribute in ("parameter", "states", "multipliers", "stable"):
            np.testing.assert_array_equal(getattr(bare, attribute), getattr(original, attribute))
        assert [(b.kind, b.parameter, b.rotation, b.index) for b in bare.bifurcations] == \
            [(b.kind, b.parameter, b.rotation, b.index) for b in original.bifurcations]
        assert bare.period == original.period and bare.summary() == original.summary()
        np.testing.assert_array_equal(bare.loop_points(), original.loop_points())
        bare.plot(tmp_path / f"{name}.png")
    bare = dynloop.Branch.load(tmp_path / "two.npz")
    with pytest.raises(ValueError, match=r"switch needs the system.*Branch.load\(path, system\)"):
        bare.switch(bare.bifurcations[0])
    again = dynloop.Branch.load(tmp_path / "two.npz", logistic).switch(bare.bifurcations[0])
    fresh = doubled.switch(doubled.bifurcations[0])
    assert again.period == 4 and again.bifurcations[0].parameter == fresh.bifurcations[0].parameter
    with pytest.raises(ValueError, match=r"system='henon'.*computed for 'logistic'"):
        dynloop.Branch.load(tmp_path / "one.npz", dynloop.maps.henon())
    np.savez(tmp_path / "other.npz", header=np.array('{"format": "dynloop.BasinMap"}'))
    with pytest.raises(ValueError, match=r"holds 'dynloop.BasinMap', not a dynloop.Branch"):
        dynloop.Branch.load(tmp_path / "other.npz")


def test_a_saved_block_branch_keeps_its_stage_points(tmp_path):
    spec = dynloop.BlockSpec(width=8, tokens=3, layers=2, heads=2, mixer="transformer", hidden=16,
                             norm="pre", injection="concat", residual_scale=0.3, seed=0)
    branch = continuation(spec, "residual_scale", start=0.3, stop=0.35, step=0.01)
    branch.save(tmp_path / "block.npz")
    loaded = dynloop.Branch.load(tmp_path / "block.npz", spec)
    np.testing.assert_array_equal(loaded.stage_points, branch.stage_points)
    np.testing.assert_array_equal(loaded.degeneracy, branch.degeneracy)
    assert loaded.meta["kind"] == "block" and loaded.meta["range"] == [0.3, 0.35]
