"""The import graph of dynloop: layers point one way and no module imports another in a cycle.

Every module is parsed with ``ast``; an edge is any ``import`` or ``from ... import`` of a dynloop
module, at module level or inside a function, relative or absolute. ``from package import name``
is an edge to ``package.name`` when that is a module, else to ``package`` (its ``__init__``). The
implicit import of a module's parent packages is not an edge (every module would otherwise sit in
a cycle with its package).
"""

import ast
from pathlib import Path

import networkx as nx
import pytest

import dynloop

ROOT = Path(dynloop.__file__).parent


def _module_name(path):
    parts = ("dynloop",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph():
    modules = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                           for alias in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == "dynloop":
                    assert target in modules, f"{name} imports {target}, which is not a dynloop module"
                    graph.add_edge(name, target, line=node.lineno)
    return graph


GRAPH = _import_graph()


def _in(module, *packages):
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_graph_sees_imports_inside_functions():
    # sweep() imports the compiled kernels only when it runs
    assert GRAPH.has_edge("dynloop.sweep.engine", "dynloop.sweep._kernels")


def test_no_import_cycles():
    cycles = list(nx.simple_cycles(GRAPH))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles)


UPPER_LAYERS = ["dynloop.dynamics", "dynloop.sweep", "dynloop.symbolic", "dynloop.analysis",
                "dynloop.plotting", "dynloop.cli"]


@pytest.mark.parametrize("upper", UPPER_LAYERS)
def test_systems_import_no_upper_layer(upper):
    wrong = [(a, b, line) for a, b, line in GRAPH.edges(data="line")
             if _in(a, "dynloop.systems") and _in(b, upper)]
    assert not wrong, "the model layer imports " + ", ".join(f"{b} ({a}:{line})" for a, b, line in wrong)


@pytest.mark.parametrize("lower", ["dynloop.dynamics", "dynloop.sweep", "dynloop.symbolic"])
def test_analysis_sits_above_dynamics_sweep_and_symbolic(lower):
    wrong = [(a, b, line) for a, b, line in GRAPH.edges(data="line")
             if _in(a, lower) and _in(b, "dynloop.analysis")]
    assert not wrong, f"{lower} imports " + ", ".join(f"{b} ({a}:{line})" for a, b, line in wrong)


def test_plotting_runs_nothing():
    forbidden = ("dynloop.dynamics.simulate", "dynloop.dynamics.classify", "dynloop.dynamics.lyapunov",
                 "dynloop.dynamics.orbits", "dynloop.sweep.engine", "dynloop.sweep.orbit",
                 "dynloop.sweep._kernels")
    wrong = [b for b in GRAPH.successors("dynloop.plotting") if _in(b, *forbidden)]
    assert not wrong, f"plotting imports {wrong}"
