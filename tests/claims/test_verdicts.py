"""Every claim's verdict logic on synthetic measurements: a case where it must hold, one where it fails."""

import numpy as np
import pytest

from dynloop import Regime
from dynloop.claims import (
    CLAIMS,
    attention_bound,
    block_size,
    diagonal_bands,
    dichotomy,
    realised_depth,
    rotation,
    stage_metrics,
    vanishing_action,
)
from dynloop.claims._report import ClaimResult, ClaimsReport

C, V, D = Regime.CYCLIC.code, Regime.VANISHING.code, Regime.DRIFTING.code


def test_claims_are_registered_in_the_papers_order():
    assert list(CLAIMS) == [
        "norm_injection",
        "rotation",
        "realised_depth",
        "vanishing_action",
        "attention_bound",
        "stage_metrics",
        "diagonal_bands",
        "block_size",
        "dichotomy",
    ]
    for module in CLAIMS.values():
        assert module.TITLE.split(".")[0].isdigit() and callable(module.run)


def test_rotation_holds_at_the_floor_and_fails_off_it():
    items = rotation.settings(quick=True)[:3]
    floor = [{"regime": C, "residuals": np.array([1e-16, 3e-15, 2e-15, 1e-15, 5e-16])} for _ in items]
    assert rotation.evaluate(items, floor).verdict == "holds"
    off = [dict(r, residuals=r["residuals"] + 1e-6) for r in floor]
    result = rotation.evaluate(items, off)
    assert result.verdict == "does not hold" and result.share == 0.0
    unconverged = [{"regime": D, "residuals": np.full(5, np.nan)} for _ in items]
    assert "nothing was tested" in rotation.evaluate(items, unconverged).where


def test_realised_depth_counts_partial_degeneracy():
    assert realised_depth.classify_pattern(np.full(16, 0.3)) == "distinct"
    assert realised_depth.classify_pattern(np.full(16, 1e-9)) == "degenerate"
    assert realised_depth.classify_pattern(np.r_[np.full(15, 0.3), 1e-9]) == "partial"
    items = realised_depth.settings(quick=True)[:2]
    good = [{"regime": C, "distances": np.full(16, 0.3)}, {"regime": V, "distances": np.zeros(16)}]
    assert realised_depth.evaluate(items, good).verdict == "holds"
    bad = [{"regime": C, "distances": np.r_[np.full(8, 0.3), np.zeros(8)]}] * 2
    assert realised_depth.evaluate(items, bad).verdict == "does not hold"


def test_vanishing_action_needs_both_directions():
    agree = np.array([[0, 4, 1e-9, 1e-6], [0, 4, 0.2, 0.5], [2, 12, 0.0, 0.0]])
    assert vanishing_action.evaluate(agree).verdict == "holds"
    disagree = np.array(
        [[0, 4, 1e-9, 0.5], [0, 4, 0.2, 1e-6]]
    )  # degenerate yet acting; vanishing yet not degenerate
    result = vanishing_action.evaluate(disagree)
    assert result.verdict == "does not hold"
    assert result.numbers["degenerate_but_acting"] == 1 and result.numbers["vanishing_not_degenerate"] == 1


def test_attention_bound_is_exact():
    items = [("pre", "concat", 0.3, 0.5, 0)] * 2
    record = {
        "bound": np.ones((3, 4, 4)),
        "observed": np.full((3, 4, 4), 0.5),
        "violations": np.zeros(4, int),
        "tightness": np.full(4, 0.5),
        "input_change": np.ones((3, 4)),
    }
    assert attention_bound.evaluate(items, [record, record]).verdict == "holds"
    broken = dict(record, violations=np.array([0, 1, 0, 0]))
    assert (
        attention_bound.evaluate(items, [record, broken]).verdict == "holds in part"
    )  # exact: one run fails
    assert attention_bound.evaluate(items, [broken, broken]).verdict == "does not hold"


def test_stage_metrics_flat_after_convergence_and_drifting_without():
    items = [("pre", "concat", 0.3, 0.5, 0)] * 2
    flat = {"regime": C, "settled": 4, "changes": np.r_[np.full(4, 0.1), np.zeros(28)][None].repeat(3, 0)}
    drifting = {"regime": D, "settled": 32, "changes": np.linspace(1.0, 0.0, 256)[None].repeat(3, 0)}
    assert stage_metrics.evaluate(items, [flat, drifting]).verdict == "holds"
    moving = dict(flat, changes=np.full((3, 32), 0.1))  # converged, yet the metrics keep changing
    frozen = dict(drifting, changes=np.zeros((3, 256)))  # no fixed point, yet nothing changes
    assert stage_metrics.evaluate(items, [moving, frozen]).verdict == "does not hold"


def test_diagonal_bands_at_cyclic_points():
    items = [("pre", "concat", 0.3, 0.5, 0)] * 2
    banded = [
        {"regime": C, "score": 1.0, "similarity": np.eye(4)},
        {"regime": D, "score": 0.2, "similarity": np.eye(4)},
    ]
    assert diagonal_bands.evaluate(items, banded).verdict == "holds"
    blurred = [{"regime": C, "score": 0.25, "similarity": np.eye(4)}] * 2
    assert diagonal_bands.evaluate(items, blurred).verdict == "does not hold"


def test_block_size_decides_when_outcomes_change_with_k():
    items, ks = block_size.families(quick=True)[:2], (1, 2, 4)
    changing = [{"rows": np.array([[V, 0.5, 10, 1.0], [C, 0.5, 10, 0.2], [C, 0.5, 10, 0.2]])}] * 2
    assert block_size.evaluate(items, ks, changing).verdict == "holds"
    constant = [{"rows": np.array([[C, 0.5, 10, 0.2]] * 3)}] * 2
    result = block_size.evaluate(items, ks, constant)
    assert result.verdict == "does not hold" and "C C C" in result.table


def test_dichotomy_share_counts_periodic_quasiperiodic_and_chaotic():
    grid = {
        "layers": (4,),
        "seeds": (0,),
        "weight_gain": np.array([0.1, 1.0]),
        "residual_scale": np.array([1.0]),
    }
    codes = np.full((1, 1, 6, 2, 1), C, dtype=np.int8)
    assert dichotomy.evaluate(grid, codes).verdict == "holds"
    codes[..., 0] = Regime.PERIODIC.code
    codes[..., 1, 0] = Regime.QUASIPERIODIC.code
    result = dichotomy.evaluate(grid, codes)
    assert result.verdict == "does not hold" and result.share == 0.0
    assert "| 0 % | 0 % | 50 % | 50 % |" in result.table  # vanishing, cyclic, periodic, quasi-periodic


def test_report_markdown_json_and_plot(tmp_path):
    results = [
        ClaimResult("a", "1. A", "x", "setup", ["c"], "holds", "everywhere", 1.0, table="| t |\n|---|"),
        ClaimResult("b", "2. B", "y", "setup", ["c"], "does not hold", "nowhere", 0.0),
    ]
    report = ClaimsReport(results, outdir=str(tmp_path), quick=True)
    page = report.save().read_text()
    assert "| [1. A](#1-a) | holds | 100 % | everywhere |" in page and "## 2. B" in page
    assert (tmp_path / "claims.json").exists()
    report.plot(tmp_path / "summary.png")
    assert (tmp_path / "summary.png").stat().st_size > 5_000
    assert report.counts() == {"holds": 1, "holds in part": 0, "does not hold": 1}
    with pytest.raises(KeyError, match="no claim named"):
        report["c"]
    with pytest.raises(ValueError, match="verdict"):
        ClaimResult("c", "3. C", "z", "s", [], "maybe", "", 0.5)
