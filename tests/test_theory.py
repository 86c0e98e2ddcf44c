"""theory/ never goes stale: regenerating its Markdown gives exactly the committed files."""

from pathlib import Path

import pytest

from dynloop.symbolic import build_theory

THEORY = Path(__file__).resolve().parents[1] / "theory"
HINT = "theory/ is stale: run python -m dynloop.symbolic.build_theory (then commit theory/)"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("theory")
    return build_theory.build(out, figures=False, jobs=2)


def test_theory_markdown_is_up_to_date(regenerated):
    committed = sorted(p.name for p in THEORY.glob("*.md"))
    assert committed == sorted(regenerated), f"{HINT}: files differ ({committed} vs {sorted(regenerated)})"
    for name, text in regenerated.items():
        on_disk = (THEORY / name).read_text(encoding="utf-8")
        if on_disk != text:
            first = next(i for i, (a, b) in enumerate(zip(on_disk.splitlines() + [""], text.splitlines() + [""]))
                         if a != b)
            pytest.fail(f"{HINT}: theory/{name} differs from the regenerated text at line {first + 1}")


def test_every_linked_figure_is_committed(regenerated):
    for name, text in regenerated.items():
        for link in [part.split(")")[0] for part in text.split("](figures/")[1:]]:
            assert (THEORY / "figures" / link).is_file(), f"{HINT}: theory/figures/{link} is missing"


def test_documents_cover_every_injection_and_quote_agreement(regenerated):
    for family in build_theory.FAMILIES:
        text = regenerated[f"{family.slug}.md"]
        for norm, injections in family.placements:
            for injection in injections:
                assert f'### `norm="{norm}"`, injection `{injection}`' in text
        assert text.count("**Against the numerics**") == sum(len(i) for _, i in family.placements)
    assert "Jury triangle" in regenerated["known_answers.md"]
    assert "logistic" in regenerated["known_answers.md"] and "Hénon" in regenerated["known_answers.md"]
