"""The registries of block components (dynloop.components) are the one list of names.

Every place that shows the names to a user (BlockSpec's errors, the CLI, MODEL.md) shows exactly
the registry's, every component lowers to operations the kernels have, and the kernels refuse a
code they do not know instead of running something else.
"""

import re
from pathlib import Path

import numpy as np
import pytest

import dynloop
from dynloop import components
from dynloop.cli import main
from dynloop.systems import _block_kernels as kernels

MODEL = Path(dynloop.__file__).parent / "systems" / "MODEL.md"
# the MODEL.md section whose table lists each field's values
SECTIONS = {"norm": "## Norm placement", "norm_kind": "## Norms", "injection": "## Injection stage",
            "mixer": "## Mixers", "activation": "## Activations"}


def model_table_names(heading):
    text = MODEL.read_text()
    start = text.index(heading + " ") if heading + " " in text else text.index(heading + "\n")
    section = text[start:text.find("\n## ", start + 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `\"")]
    return [name for row in rows for name in re.findall(r'`"([a-z0-9_]+)"`', row.split("|")[1])]


@pytest.mark.parametrize("field", components.REGISTRIES)
def test_model_md_tables_name_exactly_the_registry(field):
    assert sorted(model_table_names(SECTIONS[field])) == sorted(components.REGISTRIES[field])


@pytest.mark.parametrize("field", components.REGISTRIES)
def test_blockspec_errors_list_exactly_the_registry(field):
    with pytest.raises(ValueError) as error:
        dynloop.BlockSpec(**{field: "no_such_component"})
    listed = re.search(r"expected one of (.*)", str(error.value)).group(1)
    names = re.findall(r"'([a-z0-9_]+)'", re.split(r"[;(] ?did you mean", listed)[0])
    assert names == list(components.REGISTRIES[field])


def test_cli_schemes_lists_every_component_with_its_description(capsys):
    assert main(["schemes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for field, registry in components.REGISTRIES.items():
        start = lines.index(f"{field}:")
        shown = []
        for line in lines[start + 1:]:
            if not line.startswith("  "):
                break
            shown.append(line.split(maxsplit=1))
        assert shown == [[name, component.description] for name, component in registry.items()]


def test_every_component_lowers_to_an_operation_the_kernels_have():
    for mixer in components.MIXERS.values():
        assert set(mixer.branches) <= set(kernels.BRANCHES), mixer.name
    for injection in components.INJECTIONS.values():
        assert injection.operator in kernels.INJECT_OPERATORS, injection.name
    assert list(components.ACTIVATIONS) == list(kernels.ACTIVATION_OPS)


def test_placements_are_rows_of_flags():
    """A placement combining existing flags is one line, and works everywhere at once."""
    sandwich = components.NORMS["sandwich"]
    flags = (sandwich.branch_in, sandwich.branch_out, sandwich.after_residual, sandwich.outer)
    assert flags == (True, False, True, False)
    with pytest.raises(ValueError, match="norm_out"):
        components.NormPlacement("both", "x", branch_out=True, after_residual=True)


@pytest.mark.parametrize("field, bad", [("activation", 99), ("inject_operator", 99)])
def test_kernels_refuse_an_unknown_code(field, bad):
    spec = dynloop.BlockSpec(width=4, tokens=2, layers=1, mixer="mlp", injection="additive", seed=0)
    config, arrays = spec._compiled(np.float64)
    config = config._replace(**{field: bad})
    no_tangent = np.empty((0, 2, 4))
    stage = 0 if field == "inject_operator" else 1
    with pytest.raises(ValueError, match="unknown"):
        kernels.stage_apply(config, arrays, stage, spec.start_state().copy(), no_tangent)


def test_kernels_refuse_an_unknown_branch():
    spec = dynloop.BlockSpec(width=4, tokens=2, layers=1, mixer="linear", injection="none", seed=0)
    config, arrays = spec._compiled(np.float64)
    arrays = arrays._replace(branches=np.array([7], dtype=np.int64))
    with pytest.raises(ValueError, match="unknown branch"):
        kernels.stage_apply(config, arrays, 0, spec.start_state().copy(), np.empty((0, 2, 4)))
