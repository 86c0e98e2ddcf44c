"""``dynloop theory``: derivations printed from key=value schemes, clear errors, --build."""

import subprocess
import sys

import pytest

from dynloop.cli import main, theory_request


def test_theory_prints_a_block_derivation(capsys):
    assert main(["theory", "norm=none", "injection=additive", "layers=2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("### Block: norm=none/rms, injection=additive, mixer=linear, k=2")
    assert "stable iff" in printed and "flip boundary" in printed


def test_theory_latex_structure_and_params(capsys):
    assert main(["theory", "norm=none", "--structure", "diagonal", "--format", "latex"]) == 0
    printed = capsys.readouterr().out
    assert "\\paragraph{" in printed and "\\left|" in printed and "lambda" in printed
    assert main(["theory", "norm=none", "injection=additive", "--param", "w0=-1", "--param", "e=1"]) == 0
    printed = capsys.readouterr().out
    assert "fixed: " in printed and "w_{0}" not in printed.split("Stages:")[1]


def test_theory_map_with_period(capsys):
    assert main(["theory", "map=logistic", "period=2"]) == 0
    printed = capsys.readouterr().out
    assert "Map: logistic, period 2" in printed and "2-cycle" in printed


@pytest.mark.parametrize("words, message", [
    (["nrom=pre"], "scheme field 'nrom'='pre'"),
    (["norm=pree"], "norm='pree'"),
    (["injection=sideways"], "injection='sideways'"),
    (["mixer=relu"], "mixer='relu'"),
    (["layers=two"], "layers='two'"),
    (["pre"], "scheme word='pre'"),
    (["norm=pre", "norm=post"], "given twice"),
    (["map=lorenz"], "map='lorenz'"),
    (["map=logistic", "norm=pre"], "a map takes only"),
    ([], "SCHEME"),
])
def test_theory_errors_name_field_value_and_allowed(capsys, words, message):
    assert main(["theory", *words]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("dynloop theory: error:")


def test_theory_bad_structure_and_param(capsys):
    assert main(["theory", "norm=none", "--structure", "banded"]) == 2
    assert "structure='banded'" in capsys.readouterr().err
    assert main(["theory", "norm=none", "--param", "w0"]) == 2
    assert "--param='w0'" in capsys.readouterr().err


def test_theory_request_defaults():
    scheme, period = theory_request(["norm=pre"])
    assert (scheme.norm, scheme.injection, scheme.mixer, scheme.layers, period) == ("pre", "none", "linear", 1, 1)


def test_theory_help_documents_the_scheme_syntax():
    result = subprocess.run([sys.executable, "-m", "dynloop.cli", "theory", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "key=value" in result.stdout and "--build" in result.stdout and "--format" in result.stdout


def theory_help(capsys):
    with pytest.raises(SystemExit):
        main(["theory", "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere


def listed(help_text, key):
    import re

    match = re.search(rf"\b{key}= \(([^)]*)\)", help_text)
    assert match, f"theory --help lists no values for {key}="
    return [value.strip() for value in match.group(1).split(",")]


def test_theory_help_speaks_blockspecs_vocabulary(capsys):
    from dynloop import components

    text = theory_help(capsys)
    assert set(listed(text, "mixer")) <= set(components.MIXERS)
    assert set(listed(text, "activation")) <= set(components.ACTIVATIONS)
    assert listed(text, "norm") == list(components.NORMS)
    assert listed(text, "injection") == list(components.INJECTIONS)
    assert listed(text, "norm_kind") == list(components.NORM_KINDS)


def test_every_value_theory_help_lists_is_accepted(capsys):
    text = theory_help(capsys)
    for key in ("norm", "norm_kind", "injection", "mixer", "activation"):
        for value in listed(text, key):
            words = [f"{key}={value}"] + (["mixer=mlp"] if key == "activation" else [])
            theory_request(words)  # raises if refused


@pytest.mark.parametrize("words, mixer", [
    (["mixer=mlp", "activation=tanh"], "tanh"),
    (["mixer=mlp", "activation=silu"], "silu"),
    (["mixer=mlp"], "gelu"),      # BlockSpec's default activation
    (["mixer=tanh"], "tanh"),     # the older word still works
    (["mixer=linear"], "linear"),
])
def test_theory_mixer_and_activation_as_in_blockspec(words, mixer):
    import dynloop
    from dynloop.symbolic import Scheme

    scheme, _ = theory_request(words)
    assert scheme.mixer == mixer
    if "mixer=mlp" in words:
        given = [w.split("=")[1] for w in words if w.startswith("activation=")]
        activation = given[0] if given else dynloop.BlockSpec().activation
        assert scheme.mixer == Scheme.from_spec(dynloop.BlockSpec(mixer="mlp", activation=activation)).mixer


@pytest.mark.parametrize("words, message", [
    (["mixer=transformer"], "attention couples tokens"),
    (["mixer=mlp", "activation=relu"], "activation='relu'"),
    (["mixer=linear", "activation=tanh"], "only with mixer=mlp"),
    (["mixer=mpl"], "did you mean 'mlp'?"),
    (["activaton=tanh"], "did you mean 'activation'?"),
])
def test_theory_vocabulary_errors(capsys, words, message):
    assert main(["theory", *words]) == 2
    assert message in capsys.readouterr().err
