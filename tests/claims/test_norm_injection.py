"""Claim 1, the norm × injection atlas: its verdict logic on synthetic outcomes, and one tiny real run."""

import json

import numpy as np
import pytest

from dynloop import Regime
from dynloop import claims
from dynloop.claims import norm_injection as atlas
from dynloop.claims._report import decide

CODES = {"cyclic": Regime.CYCLIC.code, "degenerate": Regime.VANISHING.code, "none": Regime.DRIFTING.code}
COSINES = {"cyclic": (1.0, 0.5), "degenerate": (1.0, 1.0), "none": (0.5, 0.5)}  # (successive, min cos)


def _synthetic(outcome_of_cell):
    """Measures of a 1 × 1 × 6 cells × 2 × 3 atlas where each cell has the outcome the function gives."""
    grid = {
        "layers": (4,),
        "seeds": (0,),
        "weight_gain": np.array([0.1, 1.0]),
        "residual_scale": np.array([0.5, 1.0, 1.5]),
        "loops": 100,
    }
    shape = (1, 1, len(atlas.CELLS), 2, 3)
    measures = {
        "grid": grid,
        "regimes": np.empty(shape, np.int8),
        "convergence_rate": np.full(shape, 0.5),
        "successive_cos": np.empty(shape),
        "min_cos": np.empty(shape),
        "successive_distance": np.zeros(shape),
        "common_regimes": np.empty(shape[:3], np.int8),
        "common_successive_cos": np.empty(shape[:3]),
        "common_min_cos": np.empty(shape[:3]),
    }
    for c, cell in enumerate(atlas.CELLS):
        outcome = outcome_of_cell(cell)
        measures["regimes"][:, :, c] = measures["common_regimes"][:, :, c] = CODES[outcome]
        successive, min_cos = COSINES[outcome]
        measures["successive_cos"][:, :, c] = measures["common_successive_cos"][:, :, c] = successive
        measures["min_cos"][:, :, c] = measures["common_min_cos"][:, :, c] = min_cos
    return measures


def test_outcome_classes_follow_the_stated_criteria():
    assert atlas.converged_outcome(Regime.CYCLIC.code) == "cyclic"
    assert atlas.converged_outcome(Regime.VANISHING.code) == "degenerate"
    for regime in ("drifting", "periodic", "quasiperiodic", "chaotic", "divergent"):
        assert atlas.converged_outcome(Regime(regime).code) == "none", regime
    assert atlas.converged_outcome(Regime.UNDETERMINED.code) == "undetermined"  # agrees with no verdict
    assert not atlas.agrees(np.array(["undetermined"], dtype=object), ("sandwich", "none")).any()
    assert atlas.cosine_outcome(1.0 - 1e-5, 0.2) == "cyclic"
    assert atlas.cosine_outcome(1.0 - 1e-5, 0.995) == "degenerate"
    assert atlas.cosine_outcome(1.0 - 1e-3, 0.995) == "none"  # not converged by cosine
    assert atlas.cosine_outcome(float("nan"), 1.0) == "none"  # a blow-up


def test_the_claim_holds_where_every_cell_has_the_papers_outcome():
    result = atlas.evaluate(_synthetic(lambda cell: atlas.PAPER[cell][1][0]))
    assert result.verdict == "holds" and result.share == 1.0
    assert result.table.count("\n") == 2 + len(atlas.CELLS) - 1  # header, rule, a row per cell and k
    assert "100 %" in result.table


def test_the_claim_fails_where_no_cell_has_the_papers_outcome():
    opposite = {"cyclic": "none", "degenerate": "cyclic", "none": "cyclic"}
    result = atlas.evaluate(_synthetic(lambda cell: opposite[atlas.PAPER[cell][1][0]]))
    assert result.verdict == "does not hold" and result.share == 0.0
    assert "in no cell" in result.where


def test_half_the_cells_holding_is_holds_in_part():
    result = atlas.evaluate(
        _synthetic(
            lambda cell: (
                atlas.PAPER[cell][1][0]
                if cell[1] == "concat"
                else ("cyclic" if atlas.PAPER[cell][1][0] == "none" else "none")
            )
        )
    )
    assert result.verdict == "holds in part" and result.share == 0.5
    assert "with injection" in result.where and "without injection" not in result.where


def test_decide_thresholds():
    assert [decide(s) for s in (1.0, 0.95, 0.94, 0.06, 0.05, 0.0)] == [
        "holds",
        "holds",
        "holds in part",
        "holds in part",
        "does not hold",
        "does not hold",
    ]
    assert decide(0.999, exact=True) == "holds in part"
    with pytest.raises(ValueError, match="share"):
        decide(1.5)


def test_horizon_measures_match_plain_numpy_on_a_simulated_run():
    import dynloop

    spec = atlas.block(2, 0).replace(
        width=8, tokens=3, heads=2, hidden=16, residual_scale=0.7, weight_gain=0.5
    )
    successive, min_cos, distance, update = atlas.horizon_measures(spec, horizon=20)
    run = dynloop.simulate(spec, 20)
    last, before = (
        run.stage_states[-1, 2:4].reshape(2, -1),
        run.stage_states[-2, 2:4].reshape(2, -1),
    )  # layers

    def cos(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    assert successive == pytest.approx(min(cos(last[0], before[0]), cos(last[1], before[1])), rel=1e-12)
    assert min_cos == pytest.approx(cos(last[0], last[1]), rel=1e-12)
    assert distance == pytest.approx(
        max(np.linalg.norm(last - before, axis=1) / np.linalg.norm(last, axis=1)), rel=1e-12
    )
    inputs = run.stage_states[-1, 1:3].reshape(2, -1)  # after the injection, after layer 0
    assert update == pytest.approx(
        max(np.linalg.norm(last - inputs, axis=1) / np.linalg.norm(last, axis=1)), rel=1e-12
    )


@pytest.fixture
def tiny_atlas(monkeypatch):
    monkeypatch.setattr(atlas, "WIDTH", 8)
    monkeypatch.setattr(atlas, "TOKENS", 3)
    monkeypatch.setattr(atlas, "HEADS", 2)
    monkeypatch.setattr(atlas, "HIDDEN", 16)
    monkeypatch.setattr(atlas, "HORIZON", 16)
    monkeypatch.setattr(
        atlas,
        "grids",
        lambda quick: {
            "layers": (2,),
            "seeds": (0,),
            "weight_gain": np.array([0.2, 1.0]),
            "residual_scale": np.array([0.3, 1.2]),
            "loops": 120,
        },
    )


def test_a_tiny_atlas_writes_its_report_and_resumes_from_its_stores(tiny_atlas, tmp_path):
    report = claims.run(tmp_path, quick=True, only="norm_injection", progress=False)
    result = report["norm_injection"]
    assert result.verdict in claims.VERDICTS and 0.0 <= result.share <= 1.0
    page = (tmp_path / "claims.md").read_text()
    assert page.startswith("# What the toy blocks say about the paper's claims")
    for heading in ("**Claim.**", "**Setup.**", "**Criteria.**", f"**Verdict: {result.verdict}**"):
        assert heading in page
    assert len(result.figures) == 4  # regimes, convergence rate, degeneracy, criteria for k = 2
    for figure in result.figures:
        assert (tmp_path / figure).stat().st_size > 10_000 and f"]({figure})" in page
    document = json.loads((tmp_path / "claims.json").read_text())
    assert document["results"][0]["verdict"] == result.verdict
    stores = sorted(p.name for p in (tmp_path / "stores" / "quick" / "norm_injection").iterdir())
    assert stores == ["converged-k2-seed0", "converged-k2-seed0-common", "cosine-k2-seed0",
                      "cosine-k2-seed0-common"]
    # a second run reads every chunk back and reaches the same verdict with the same numbers
    again = claims.run(tmp_path, quick=True, only="norm_injection", progress=False)["norm_injection"]
    assert again.table == result.table and again.verdict == result.verdict


def test_unknown_claim_names_are_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="only.*norm_injection"):
        claims.run(tmp_path, only="nope", progress=False)


def test_cli_claims_refuses_an_unknown_name_in_one_line(tmp_path, capsys):
    from dynloop.cli import main

    assert main(["claims", "-o", str(tmp_path / "out"), "--only", "nope"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dynloop claims: error:") and "norm_injection" in error and error.count("\n") == 1
