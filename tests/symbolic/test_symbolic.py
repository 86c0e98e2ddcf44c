"""dynloop.symbolic: Jury conditions, derivations against known closed forms, Jacobians against sympy and
the compiled kernels, and predicted regimes against numeric sweeps of the same models."""

import time

import numpy as np
import pytest
import sympy

import dynloop
from dynloop import Regime
from dynloop.sweep.phase import near_changes
from dynloop.symbolic import Budget, Scheme, derive, jury
from dynloop.symbolic.compare import CheckResult
from dynloop.symbolic.jury import boundary_equations

z = sympy.Symbol("z")
alpha, beta = sympy.symbols("alpha beta", real=True)


# derivations shared by several tests (each derive call is seconds of sympy), built once per module
@pytest.fixture(scope="module")
def logistic2():
    return derive(dynloop.maps.logistic(), period=2)


@pytest.fixture(scope="module")
def henon2():
    return derive(dynloop.maps.henon(), period=2)


@pytest.fixture(scope="module")
def power():
    """Post-norm power method with layer eigenvalues 1 and -3: mu_1 = 1 + alpha, mu_2 = 1 - 3 alpha."""
    return derive(Scheme(norm="post", injection="none"), structure="diagonal",
                  params={"lambda0_1": 1, "lambda0_2": -3})


def _roots_inside(coefficients):
    return bool(np.max(np.abs(np.roots(coefficients))) < 1)


# ----------------------------------------------------------------------------- Jury
def test_jury_degree_one_and_two_are_the_textbook_forms():
    c0, c1 = sympy.symbols("c0 c1", real=True)
    assert jury(z + c0, z) == [sympy.Abs(c0) < 1]
    assert jury(z**2 + c1 * z + c0, z) == [1 + c1 + c0 > 0, 1 - c1 + c0 > 0, sympy.Abs(c0) < 1]


@pytest.mark.parametrize("degree", [3, 4, 5])
def test_jury_agrees_with_the_roots_at_random_polynomials(degree):
    cs = sympy.symbols(f"c0:{degree}", real=True)
    conditions = jury(z**degree + sum(c * z**k for k, c in enumerate(cs)), z)
    assert len(conditions) == degree + 1
    rng = np.random.default_rng(degree)
    agree = 0
    holds = sympy.lambdify(cs, sympy.And(*conditions), "numpy")
    for _ in range(300):
        roots = rng.uniform(0.2, 1.25, degree) * np.exp(1j * rng.uniform(0, np.pi, degree))
        roots = np.concatenate([roots[: degree // 2], np.conj(roots[: degree // 2])])
        roots = np.concatenate([roots, rng.uniform(-1.2, 1.2, degree - roots.size)])
        coefficients = np.real(np.poly(roots))
        agree += bool(holds(*coefficients[::-1][:-1])) == _roots_inside(coefficients)
    assert agree == 300


def test_two_dimensional_jury_triangle_and_boundaries():
    tau, delta = sympy.symbols("tau delta", real=True)
    assert jury(z**2 - tau * z + delta, z) == [delta - tau + 1 > 0, delta + tau + 1 > 0, sympy.Abs(delta) < 1]
    assert boundary_equations(z**2 - tau * z + delta, z) == {
        "fold": 1 - tau + delta, "flip": 1 + tau + delta, "neimark_sacker": 1 - delta}
    # the cubic's Neimark-Sacker condition 1 - c1 + c0 c2 - c0^2 = 0
    c0, c1, c2 = sympy.symbols("c0 c1 c2", real=True)
    ns = boundary_equations(z**3 + c2 * z**2 + c1 * z + c0, z)["neimark_sacker"]
    assert sympy.expand(ns - (1 - c1 + c0 * c2 - c0**2)) == 0


def test_jury_rejects_bad_input():
    with pytest.raises(ValueError, match="poly"):
        jury(sympy.Integer(3), z)
    with pytest.raises(ValueError, match="var"):
        jury(z**2, "z")


# ----------------------------------------------------------------------------- known closed forms
def test_residual_block_per_eigenvalue():
    d = derive(Scheme(norm="none", injection="none"), structure="diagonal")
    lam = sympy.Symbol("lambda0", real=True)
    assert d.conditions == [sympy.Abs(1 + alpha * lam) < 1]
    assert d.branch.point == sympy.Matrix([0])
    assert {b.kind for b in d.boundaries} == {"fold", "flip"}
    assert d.vanishing == []  # the fixed point 0 is vanishing


def test_affine_loop_converges_iff_product_inside_unit_circle():
    d = derive(Scheme(norm="none", injection="concat", layers=2))
    w0, w1, h = sympy.symbols("w0 w1 h", real=True)
    product = h * (1 + alpha * w0) * (1 + alpha * w1)
    assert d.branch.jacobian == sympy.Matrix([sympy.expand(product)]) or \
        sympy.simplify(d.branch.jacobian[0] - product) == 0
    assert len(d.conditions) == 1 and sympy.simplify(d.conditions[0].lhs - sympy.Abs(product)) == 0
    # 2x2: the loop Jacobian is the product of the stage Jacobians in stage order (W1 after W0). Without
    # injection (the Jacobian does not depend on it) the fixed point is 0: ~5 s of sympy instead of ~14 s
    d2 = derive(Scheme(norm="none", injection="none", layers=2), structure="2x2")
    assert d2.branch.point == sympy.zeros(2, 1)
    W0 = sympy.Matrix(2, 2, lambda i, j: sympy.Symbol(f"w0_{i + 1}{j + 1}", real=True))
    W1 = sympy.Matrix(2, 2, lambda i, j: sympy.Symbol(f"w1_{i + 1}{j + 1}", real=True))
    M = (sympy.eye(2) + alpha * W1) * (sympy.eye(2) + alpha * W0)
    assert (d2.branch.jacobian - M).applyfunc(sympy.expand) == sympy.zeros(2, 2)
    assert sympy.expand(d2.charpoly - M.charpoly(z).as_expr()) == 0
    assert len(d2.conditions) == 3


def test_parcae_diagonal_injection_is_a_contraction():
    d = derive(Scheme(norm="none", injection="diagonal"))
    dt, a_log = sympy.symbols("dt a_log", real=True)
    decay = d.stages[0].jacobian[0]
    delta = sympy.log(1 + sympy.exp(dt))
    assert sympy.simplify(decay - sympy.exp(-delta * sympy.exp(a_log))) == 0
    exponent = delta * sympy.exp(a_log)
    assert exponent.is_positive  # so 0 < exp(-exponent) < 1 for every real dt, a_log: rho(A) < 1
    assert sympy.ask(sympy.Q.positive(exponent)) is not False


def test_logistic_fixed_point_and_two_cycle(logistic2):
    r = sympy.Symbol("r", real=True)
    d1 = derive(dynloop.maps.logistic())
    assert d1.branch.point[0] == (r - 1) / r
    assert sympy.simplify(d1.jacobian[0] - (2 - r)) == 0
    assert sympy.reduce_inequalities(d1.conditions, r).as_set() == sympy.Interval.open(1, 3)
    d2 = logistic2
    assert d2.branch.period == 2
    assert sympy.simplify(d2.jacobian[0] - (4 + 2 * r - r**2)) == 0
    points = {sympy.simplify(p[0]) for p in d2.branch.stage_points}
    expected = {(r + 1 + s * sympy.sqrt((r - 3) * (r + 1))) / (2 * r) for s in (1, -1)}
    assert all(any(sympy.simplify(sympy.expand(p - q)) == 0 for q in expected) for p in points)
    region = sympy.reduce_inequalities(d2.conditions + [r > 0], r)
    assert sympy.simplify(region.as_set() - sympy.Interval.open(3, 1 + sympy.sqrt(6))) == sympy.EmptySet


def test_henon_fixed_point_and_two_cycle_ranges(henon2):
    a, b = sympy.symbols("a b", real=True)
    d1 = derive(dynloop.maps.henon())
    x_plus = (-(1 - b) + sympy.sqrt((1 - b) ** 2 + 4 * a)) / (2 * a)
    assert sympy.simplify(d1.branch.point[0] - x_plus) == 0
    assert sympy.simplify(d1.jacobian.det() + b) == 0
    kinds = {bd.kind: bd.equation for bd in d1.branch.boundaries}
    for bv in (sympy.Rational(-1, 3), 0, sympy.Rational(3, 10)):  # flip at a = 3(1 - b)^2 / 4
        assert sympy.simplify(kinds["flip"].subs({b: bv, a: 3 * (1 - bv) ** 2 / 4})) == 0
    assert sympy.simplify(kinds["fold"] - ((1 - b) ** 2 + 4 * a)) == 0
    d2 = henon2
    kinds2 = {bd.kind: bd.equation for bd in d2.branch.boundaries}
    assert sympy.solve(kinds2["fold"], a) == [3 * (1 - b) ** 2 / 4] or \
        sympy.simplify(sympy.solve(kinds2["fold"], a)[0] - 3 * (1 - b) ** 2 / 4) == 0
    assert sympy.simplify(sympy.solve(kinds2["flip"], a)[0] - ((1 - b) ** 2 + (1 + b) ** 2 / 4)) == 0
    assert d2.is_stable(a=1.0, b=0.0) and not d2.is_stable(a=1.3, b=0.0)


def test_post_norm_radial_multiplier_is_pinned_at_zero(power):
    d = derive(Scheme(norm="post", injection="none"))
    assert d.closed and d.branches
    assert all(b.jacobian == sympy.Matrix([0]) for b in d.branches)
    assert len(power.branches) == 4   # a fixed point and a sign-flip 2-cycle along each eigen-direction
    for branch in power.branches:
        assert sympy.Poly(branch.charpoly, z).eval(0) == 0   # one multiplier is 0: the radial direction


def test_power_method_which_eigenvalue_wins(power):
    d = power
    # mu_1 = 1 + alpha, mu_2 = 1 - 3 alpha: the eigen-direction with the larger |mu| wins
    assert d.regime(alpha=0.1) == Regime.VANISHING.code      # mu_1 = 1.1 > |mu_2| = 0.7
    assert d.regime(alpha=0.3) == Regime.VANISHING.code      # mu_1 = 1.3 > |mu_2| = 0.1
    assert d.regime(alpha=-0.5) == Regime.VANISHING.code     # mu_2 = 2.5 dominant and positive
    assert d.regime(alpha=1.5) == Regime.PERIODIC.code       # mu_2 = -3.5 dominant and negative: sign flips
    assert d.regime(alpha=1.0) == Regime.UNDETERMINED.code   # |mu_1| = |mu_2| = 2: a tie, on the boundary
    # exactly: along direction 1 the transverse multiplier is mu_2 / mu_1 (squared over the sign-flip
    # 2-cycle), the radial one 0; the branch exists where mu_1 > 0 (fixed point) or mu_1 < 0 (2-cycle)
    mu1, mu2 = 1 + alpha, 1 - 3 * alpha
    branches = {b.label: b for b in d.branches}
    fixed = branches["fixed point along eigen-direction 1"]
    flip = branches["2-cycle (sign flip) along eigen-direction 1"]
    assert sympy.simplify(fixed.jacobian - sympy.diag(0, mu2 / mu1)) == sympy.zeros(2, 2)
    assert sympy.simplify(flip.jacobian - sympy.diag(0, (mu2 / mu1) ** 2)) == sympy.zeros(2, 2)
    assert fixed.existence == [alpha > -1] and flip.existence == [alpha < -1]
    kinds = {b.kind for b in d.boundaries}
    assert {"fold", "flip"} <= kinds or len(d.boundaries) >= 2


def test_pre_norm_drifts_with_the_derived_velocity():
    d = derive(Scheme(norm="pre", injection="additive", layers=2))
    w0, w1, e = sympy.symbols("w0 w1 e", real=True)
    assert sympy.simplify(d.drift["velocity"][1] - (beta * e + alpha * (w0 + w1))) == 0
    assert sympy.simplify(d.drift["velocity"][-1] - (beta * e - alpha * (w0 + w1))) == 0
    assert d.regime(alpha=1.0, beta=0.5, w0=0.3, w1=0.2, e=1.0) == Regime.DRIFTING.code


def test_reports_and_errors():
    d = derive(Scheme(norm="none", injection="additive", layers=2))
    text = d.markdown()
    assert text.startswith("### Block") and "stable iff" in text and "Vanishing" in text
    assert "\\item" in d.latex()
    with pytest.raises(ValueError, match="structure"):
        derive(Scheme(), structure="banded")
    with pytest.raises(ValueError, match="mixer"):
        Scheme(mixer="relu")
    with pytest.raises(ValueError, match="params"):
        derive(Scheme(), params={"nope": 1})
    with pytest.raises(ValueError, match="mixer"):
        derive(dynloop.BlockSpec(mixer="attention"))


@pytest.mark.parametrize("scheme", [Scheme(norm="sandwich", injection="concat", mixer="tanh", layers=2),
                                    Scheme(norm="sphere", injection="none", layers=2)],
                         ids=["sandwich", "sphere"])
def test_unclosed_derivations_fall_back_quickly(scheme):
    # sympy cannot solve these fixed-point equations: giving up takes up to the time limits, so a small
    # budget shows the same fallback fast
    start = time.monotonic()
    d = derive(scheme, budget=Budget(solve=2, total=4))
    assert time.monotonic() - start < 10
    assert not d.closed and d.branch.numeric
    assert any("numeric" in note for note in d.notes)
    assert d.budget == Budget(solve=2, total=4)
    assert any("within 2 s" in note or "within 4 s" in note for note in d.notes)  # the limits of this budget
    assert d.conditions[0].lhs.func.__name__ == "rho"   # the spectral condition rho(J) < 1


def test_budget_is_checked():
    assert Budget() == Budget(solve=20, simplify=4, total=40)
    with pytest.raises(ValueError, match=r"budget\.total=-1 .*positive"):
        Budget(total=-1)
    with pytest.raises(ValueError, match=r"budget\.simplify=True"):
        Budget(simplify=True)
    with pytest.raises(ValueError, match="budget=5 .*Budget"):
        derive(Scheme(), budget=5)


def test_one_predictor_for_numeric_branches_grids_and_points():
    # a numeric branch is predicted on a whole grid at once (check, predicate) and at one point (regime)
    # by the same rule
    d = derive(Scheme(norm="none", injection="additive", mixer="tanh"),
               params={"u0": 0.5, "v0": -1.0, "e": 1.0})
    assert any(b.numeric for b in d.branches)
    alphas, betas = np.linspace(0.2, 3.0, 5), np.array([-1.0, 0.5, 1.0])
    grid = d.predicate()(alpha=alphas[:, None], beta=betas[None, :])
    assert grid.shape == (5, 3)
    assert [[d.regime(alpha=a, beta=b) for b in betas] for a in alphas] == grid.tolist()
    assert d.regime(alpha=3.0, beta=1.0) == Regime.CYCLIC.code


def test_near_changes_band_and_undefined_signs():
    codes = np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]])
    assert near_changes(codes, 1).astype(int).tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]
    assert near_changes(codes, 2).astype(int).tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1]]
    signs = np.array([np.nan, np.nan, 1.0, 1.0, -1.0])   # NaN next to NaN is no change
    assert near_changes(signs, 1).astype(int).tolist() == [0, 1, 1, 1, 1]


def test_transcendental_fixed_point_falls_back_to_the_numeric_condition():
    d = derive(Scheme(norm="none", injection="additive", mixer="tanh"))
    assert not d.closed and any("transcendental" in n or "closed form" in n for n in d.notes)
    # the numeric fallback still predicts. x -> y = x + beta e -> y + alpha v0 tanh(u0 y): a fixed point
    # needs alpha v0 tanh(u0 y) = -beta e, i.e. tanh(0.5 y) = 1/3 at alpha = 3 (multiplier
    # 1 - 1.5 (1 - 1/9) = -1/3): a stable cyclic point (the stage points x and x + 1 differ)
    assert d.regime(alpha=3.0, beta=1.0, u0=0.5, v0=-1.0, e=1.0) == Regime.CYCLIC.code
    # at alpha = 0.3 no fixed point exists (|alpha v0 tanh| < 0.3 < beta e): nothing stable is predicted
    assert d.regime(alpha=0.3, beta=1.0, u0=0.5, v0=-1.0, e=1.0) == Regime.UNDETERMINED.code


# ----------------------------------------------------------------------------- Jacobians
def _numeric_stages(derivation):
    """Per stage: the map, its closed-form Jacobian and sympy's differentiation of the map, compiled."""
    stages = []
    for stage in derivation.stages:
        x = list(stage.x)
        f = sympy.lambdify([x], list(stage.expr), "numpy", cse=True)
        j = sympy.lambdify([x], stage.jacobian, "numpy", cse=True)
        auto = sympy.lambdify([x], stage.expr.jacobian(stage.x), "numpy", cse=True)
        stages.append((f, j, auto))
    return stages


# width 2 keeps sympy's own differentiation of the normed stages small (width 3 costs ~10x per case);
# the 1/d terms of every norm still enter, and one width-3 LayerNorm case checks the general centring
_JACOBIAN_CASES = [(norm, kind, 2)
                   for norm in ("none", "pre", "post", "sandwich", "peri", "pre_outer", "peri_outer",
                                "sphere")
                   for kind in ("rms", "layer", "l2")]
_JACOBIAN_CASES.append(("pre_outer", "layer", 3))


@pytest.mark.parametrize("norm,kind,width", _JACOBIAN_CASES)
def test_jacobians_match_sympy_and_the_kernels(norm, kind, width):
    injection = ["additive", "concat", "diagonal", "convex", "none"][(len(norm) + len(kind)) % 5]
    mixer = "mlp" if norm in ("pre", "sandwich", "peri_outer") else "linear"
    spec = dynloop.BlockSpec(width=width, tokens=1, layers=2, hidden=width, mixer=mixer, activation="tanh",
                             norm=norm, norm_kind=kind, norm_eps=1e-3, injection=injection,
                             residual_scale=0.7, injection_scale=0.4, seed=3)
    arrays = spec.materialize()
    spec = spec.replace(weights=arrays["weights"], inputs=arrays["inputs"])
    start = time.monotonic()
    d = derive(spec, structure="general")
    assert time.monotonic() - start < 60
    assert not d.parameters  # every weight was substituted
    assert [s.name for s in d.stages] == list(spec.stage_names)
    compiled = _numeric_stages(d)
    rng = np.random.default_rng(0)
    for _ in range(2):  # two random points, each pushed through the stages
        x = rng.standard_normal(width)
        kernel = spec.stage_jacobians(x[None, :])
        for s, (f, j, auto) in enumerate(compiled):
            closed_form = np.asarray(j(x), dtype=float)
            automatic = np.asarray(auto(x), dtype=float)
            assert np.allclose(closed_form, automatic, rtol=1e-10, atol=1e-10), d.stages[s].name
            assert np.allclose(closed_form, kernel[s], rtol=1e-10, atol=1e-10), d.stages[s].name
            x = np.asarray(f(x), dtype=float).ravel()


# ----------------------------------------------------------------------------- against the sweeps
def _agree(result, minimum=0.99, cells=40):
    """At least ``minimum`` agreement outside the band, measured on at least ``cells`` cells."""
    print(result.summary())
    outside = int(np.count_nonzero(result.covered & ~result.near_boundary))
    assert outside >= cells, (f"only {outside} predicted cells outside the band: "
                              "the grid is too coarse to judge")
    assert result.agreement_outside_band >= minimum, result.disagreements()[:10]


def test_affine_block_agrees_with_sweep():
    spec = dynloop.BlockSpec(width=1, tokens=1, layers=2, mixer="linear", norm="none", injection="additive",
                             residual_scale=alpha, injection_scale=beta,
                             weights={"linear": [[[0.5]], [[-1.5]]]}, inputs=[[1.0]])
    d = derive(spec)
    axes = {"residual_scale": np.linspace(-1.0, 2.0, 31), "injection_scale": np.linspace(-1.0, 1.0, 11)}
    diagram = dynloop.sweep(spec.replace(residual_scale=0.0, injection_scale=0.0), axes, loops=3000,
                            progress=False)
    result = d.check(diagram)
    _agree(result)
    assert result.coverage == 1.0
    assert set(np.unique(result.predicted)) >= {Regime.CYCLIC.code, Regime.VANISHING.code,
                                                 Regime.DIVERGENT.code}


def test_residual_block_eigenvalues_agree_with_sweep():
    d = derive(Scheme(norm="none", injection="none"), structure="diagonal")
    predict = d.predicate()
    alphas = np.linspace(-0.5, 1.0, 61)
    per_eigenvalue = [predict(alpha=alphas, lambda0=lam) for lam in (-1.0, -3.0)]
    predicted = np.where(np.all([p == Regime.VANISHING.code for p in per_eigenvalue], axis=0),
                         Regime.VANISHING.code, Regime.DIVERGENT.code)
    spec = dynloop.BlockSpec(width=2, tokens=1, layers=1, mixer="linear", norm="none", injection="none",
                             weights={"linear": [[[-1.0, 1.0], [0.0, -3.0]]]}, seed=1)
    diagram = dynloop.sweep(spec, {"residual_scale": alphas}, loops=3000, progress=False)
    _agree(CheckResult(predicted, diagram.regimes.astype(np.int64), near_changes(predicted, 2), 2))


def test_power_method_agrees_with_sweep(power):
    d = power
    spec = dynloop.BlockSpec(width=2, tokens=1, layers=1, mixer="linear", norm="post", injection="none",
                             weights={"linear": [[[1.0, 0.0], [0.0, -3.0]]]}, seed=2)
    diagram = dynloop.sweep(spec, {"residual_scale": np.linspace(-1.5, 2.0, 71)}, loops=3000, progress=False)
    result = d.check(diagram)
    _agree(result)
    assert {Regime.VANISHING.code, Regime.PERIODIC.code} <= set(np.unique(result.predicted))


def test_logistic_agrees_with_sweep(logistic2):
    d = logistic2
    diagram = dynloop.sweep(dynloop.maps.logistic(), {"r": np.linspace(0.5, 3.4, 59)}, loops=4000,
                            progress=False)
    result = d.check(diagram)
    _agree(result)
    # the theory declines to predict exactly at the bifurcation points r = 1 (multiplier +1) and r = 3 (-1)
    r = np.linspace(0.5, 3.4, 59)
    assert np.allclose(np.sort(r[~result.covered]), [1.0, 3.0])


def test_henon_agrees_with_sweep(henon2):
    d = henon2
    diagram = dynloop.sweep(dynloop.maps.henon(),
                            {"a": np.linspace(-0.1, 1.0, 23), "b": np.linspace(-0.4, 0.4, 9)},
                            loops=4000, progress=False)
    result = d.check(diagram)
    _agree(result)
    assert result.coverage > 0.8


def test_pre_norm_drift_agrees_with_sweep():
    spec = dynloop.BlockSpec(width=1, tokens=1, layers=1, mixer="linear", norm="pre", injection="additive",
                             residual_scale=alpha, injection_scale=beta, weights={"linear": [[[0.5]]]},
                             inputs=[[1.0]])
    d = derive(spec)
    # 1-D sweeps are cheap: a 41 x 21 grid leaves ~300 cells outside the band (a 21 x 11 grid leaves 36)
    axes = {"residual_scale": np.linspace(-2.0, 2.0, 41), "injection_scale": np.linspace(-1.0, 1.0, 21)}
    diagram = dynloop.sweep(spec.replace(residual_scale=0.0, injection_scale=0.0), axes, loops=1000,
                            progress=False)
    result = d.check(diagram)
    _agree(result)
    assert Regime.DRIFTING.code in np.unique(result.predicted[~result.near_boundary])


def test_overlay_draws_boundaries(henon2):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = henon2
    fig, ax = plt.subplots()
    ax.set_xlim(-0.1, 1.2)
    ax.set_ylim(-0.4, 0.4)
    ax.set_xlabel("a")
    ax.set_ylabel("b")
    assert len(d.overlay(ax)) >= 3
    plt.close(fig)
