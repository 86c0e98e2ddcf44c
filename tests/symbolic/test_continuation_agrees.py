"""Continuation against the symbolic theory: wherever dynloop.symbolic.derive gives a stability boundary of a
scheme of theory/ and the branch of fixed points reaches it at a finite state, continuation finds the same
bifurcation, of the same kind, at the same residual scale, to 1e-8.

The schemes are theory/'s section models (tools/build_theory.py: two linear layers w = 1/2, -3/2 of
width 1, input e = 1, eps = 0). Only the schemes without a norm have closed-form boundaries there (with a
norm, a width-1 stage is piecewise constant and the derivation falls back to the numeric spectral
condition, which has no boundary equation). Their loop is affine, x -> M(alpha) x + c: a flip (M = -1)
keeps the fixed point c / 2 finite, so every flip is checked; a fold (M = 1) sends c / (1 - M) to infinity
unless c = 0, so folds are checked where the scheme injects nothing (c = 0, the branch x = 0 passes
through them, so continuation reports them as branch points: multiplier +1 without a turn) and
elsewhere the branch is continued up to them from both sides.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import sympy

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import build_theory  # noqa: E402

from dynloop import components  # noqa: E402
from dynloop.dynamics.continuation import continuation  # noqa: E402
from dynloop.symbolic import derive  # noqa: E402

RANGE = (-3.0, 2.0)
BETA = 1.0
SCHEMES = [injection for injection in components.INJECTIONS]


def _roots(equation, alpha, beta):
    """Real roots in RANGE of a boundary equation in alpha (beta substituted)."""
    polynomial = sympy.Poly(sympy.expand(equation.subs(beta, BETA)), alpha)
    roots = [complex(r) for r in polynomial.nroots(n=30)] if polynomial.degree() > 0 else []
    return sorted(r.real for r in roots if abs(r.imag) < 1e-12 and RANGE[0] < r.real < RANGE[1])


def _pieces(folds_at_infinity):
    """Sub-ranges of RANGE that avoid the folds where the fixed point runs off to infinity."""
    edges = [RANGE[0]] + sorted(folds_at_infinity) + [RANGE[1]]
    return [(lo + (0.2 if i else 0.0), hi - (0.2 if i < len(edges) - 2 else 0.0))
            for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]


@pytest.mark.parametrize("injection", SCHEMES)
def test_continuation_finds_every_boundary_that_derive_gives(injection):
    derivation = derive(build_theory.section_model("none", injection), budget=build_theory.BUDGET)
    boundaries = [b for b in derivation.boundaries if b.branch == "fixed point"]
    if not boundaries:
        pytest.skip(f"derive gives no boundary for no norm + {injection}")
    alpha, beta = build_theory.ALPHA, build_theory.BETA
    expected = {kind: [] for kind in ("fold", "flip", "neimark_sacker")}
    for boundary in boundaries:
        expected[boundary.kind] += _roots(boundary.equation, alpha, beta)
    spec = build_theory.section_model("none", injection, RANGE[0], BETA)
    injects = components.INJECTIONS[injection].injects or injection == "additive_each_layer"
    offset = spec.replace(residual_scale=0.5).loop(np.zeros((1, 1)))  # c, the loop's image of 0
    folds_at_infinity = expected["fold"] if (injects and np.any(offset != 0)) else []
    found = []
    for lo, hi in _pieces(folds_at_infinity):
        branch = continuation(spec.replace(residual_scale=lo), "residual_scale", start=lo, stop=hi,
                              x0=[[0.0]], step=0.02)
        found += [(b.kind, b.parameter) for b in branch.bifurcations]
        found += [("fold", value) for value in branch.meta["branch_points"]]  # derive's "fold": multiplier +1
        if not folds_at_infinity:  # c = 0: x = 0 passes straight through every multiplier-+1 point
            assert "fold" not in [b.kind for b in branch.bifurcations]
    checked = 0
    for kind, values in expected.items():
        for value in values:
            if kind == "fold" and value in folds_at_infinity:
                continue
            matches = [p for k, p in found if k == kind and abs(p - value) < 1e-8]
            assert matches, f"{kind} at alpha = {value:.12g} (derive) not found by continuation: {found}"
            checked += 1
    # and continuation reports nothing that derive does not
    for kind, parameter in found:
        assert any(abs(parameter - v) < 1e-8 for v in expected[kind]), (kind, parameter, expected)
    assert checked >= 1
