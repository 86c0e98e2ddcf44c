"""theory/ never goes stale: regenerating its Markdown gives exactly the committed files.

The generator is a tool of the repository (tools/build_theory.py), not part of the library: it is
imported from tools/ here (on sys.path, so that its worker processes can import it too).
"""

import doctest
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THEORY = ROOT / "theory"
sys.path.insert(0, str(ROOT / "tools"))
import build_theory  # noqa: E402

from dynloop import components  # noqa: E402

HINT = "theory/ is stale: run python tools/build_theory.py theory (then commit theory/)"


def test_theory_was_generated_from_the_current_symbolic_sources():
    index = (THEORY / "README.md").read_text(encoding="utf-8")
    assert f"Source digest: `{build_theory.source_digest()}`." in index, \
        f"{HINT}: dynloop/symbolic or tools/build_theory.py changed since theory/ was generated"


def test_the_digest_reads_every_symbolic_source_the_registry_and_the_tool():
    # a module added to dynloop/symbolic is digested too: changing it without regenerating fails the
    # test above
    expected = set((ROOT / "dynloop" / "symbolic").glob("*.py")) | {ROOT / "tools" / "build_theory.py",
                                                                    ROOT / "dynloop" / "components.py"}
    assert set(build_theory.digested_files()) == expected
    assert {"solve.py", "derivation.py", "render.py", "compare.py"} <= {p.name for p in expected}


def test_the_tool_is_not_part_of_the_library_and_needs_an_output_folder():
    code = ("import sys, dynloop, dynloop.symbolic, dynloop.cli; "
            "print(any('build_theory' in m for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_theory.py")], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "OUTDIR" in result.stderr


def test_the_tools_examples_run():
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    failures, tried = doctest.testmod(build_theory, optionflags=flags)
    assert tried >= 4 and failures == 0


# Regenerating every document runs ~35 derivations and their sweeps (minutes): the exhaustive
# byte-for-byte checks run with ``pytest -m slow``.
@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("theory")
    return build_theory.build(out, figures=False, jobs=2)


@pytest.mark.slow
def test_theory_markdown_is_up_to_date(regenerated):
    committed = sorted(p.name for p in THEORY.glob("*.md"))
    assert committed == sorted(regenerated), f"{HINT}: files differ ({committed} vs {sorted(regenerated)})"
    for name, text in regenerated.items():
        on_disk = (THEORY / name).read_text(encoding="utf-8")
        if on_disk != text:
            pairs = zip(on_disk.splitlines() + [""], text.splitlines() + [""])
            first = next(i for i, (a, b) in enumerate(pairs) if a != b)
            pytest.fail(f"{HINT}: theory/{name} differs from the regenerated text at line {first + 1}")


def test_every_linked_figure_is_committed():
    for path in THEORY.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        for link in [part.split(")")[0] for part in text.split("](figures/")[1:]]:
            assert (THEORY / "figures" / link).is_file(), (f"{HINT}: theory/figures/{link} "
                                                           f"(in {path.name}) is missing")


def test_documents_cover_every_injection_and_quote_agreement():
    committed = {p.name: p.read_text(encoding="utf-8") for p in THEORY.glob("*.md")}
    for family in build_theory.FAMILIES:
        text = committed[f"{family.slug}.md"]
        for norm, injections, *skip in family.placements:
            for injection in injections:
                heading = f'### `norm="{norm}"`{build_theory._skip_text(*skip[:1])}, injection `{injection}`'
                assert heading in text
        assert text.count("**Against the numerics**") == sum(len(i) for _, i, *_ in family.placements)
    # every registry injection has its section in every family, and the skip scale has DeepNorm's
    no_norm = committed["no_norm.md"]
    assert all(f'### `norm="none"`, injection `{i}`' in no_norm for i in components.INJECTIONS)
    assert '### `norm="post"`, `skip_scale=sqrt(2)`, injection `additive`' in committed["post_norm.md"]
    assert "Jury triangle" in committed["known_answers.md"]
    assert "logistic" in committed["known_answers.md"] and "Hénon" in committed["known_answers.md"]


def test_symbolic_is_reachable_from_the_package_without_importing_it_first():
    code = ("import sys, dynloop; assert 'dynloop.symbolic' not in sys.modules; "
            "print(dynloop.symbolic.jury.__name__, 'sympy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = result.stdout.split()
    assert out == ["jury", "True"]
