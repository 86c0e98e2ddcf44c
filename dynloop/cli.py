"""The ``dynloop`` command.

A configuration file is TOML with one system table and one table per sub-command::

    [block]                 # any BlockSpec field; or, instead, a [map] table:
    width = 16              # [map]
    layers = 4              # name = "logistic"
    norm = "sandwich"       # params = { r = 3.5 }
                            # x0 = [0.2]
    [simulate]
    loops = 200             # also: record = "all" | "none" | ["last", N], stride, dtype
"""

__all__ = ["main", "load_system"]

import argparse
import sys

import numpy as np

from ._errors import invalid
from ._toml import load_toml

_SIMULATE_KEYS = ("loops", "record", "stride", "dtype")


def load_system(document):
    """The system a configuration describes: ``[block]`` (a BlockSpec) or ``[map]`` (a catalogue map).

    Returns
    -------
    system, x0, params
        ``x0`` and ``params`` are ``None`` unless the ``[map]`` table sets them.
    """
    from . import maps
    from .systems.block import BlockSpec

    if ("block" in document) == ("map" in document):
        raise invalid("configuration", sorted(document), "expected exactly one of the tables [block] or [map]")
    if "block" in document:
        return BlockSpec.from_dict(document["block"]), None, None
    table = dict(document["map"])
    name = table.pop("name", None)
    catalogue = [n for n in maps.__all__ if n != "linear"]
    if name not in catalogue:
        raise invalid("map.name", name, "expected one of " + ", ".join(catalogue))
    params = table.pop("params", None)
    x0 = table.pop("x0", None)
    if table:
        raise invalid(f"map.{sorted(table)[0]}", table[sorted(table)[0]], "map tables take name, params and x0")
    system = getattr(maps, name)(**(params or {}))
    return system, None if x0 is None else np.asarray(x0, dtype=float), None


def _simulate(args):
    from .dynamics.simulate import simulate

    document = load_toml(args.config)
    system, x0, params = load_system(document)
    options = dict(document.get("simulate", {}))
    unknown = sorted(set(options) - set(_SIMULATE_KEYS))
    if unknown:
        raise invalid(f"simulate.{unknown[0]}", options[unknown[0]], "allowed keys are " + ", ".join(_SIMULATE_KEYS))
    if args.loops is not None:
        options["loops"] = args.loops
    loops = options.pop("loops", 100)
    dtype = {"float64": np.float64, "float32": np.float32}.get(options.pop("dtype", "float64"))
    if dtype is None:
        raise invalid("simulate.dtype", document["simulate"]["dtype"], "expected 'float64' or 'float32'")
    if isinstance(options.get("record"), list):
        options["record"] = tuple(options["record"])
    trajectory = simulate(system, loops, x0=x0, params=params, dtype=dtype, **options)
    print(trajectory.summary())
    if args.out:
        trajectory.save(args.out)
        print(f"trajectory written to {args.out}")
    if args.figure:
        trajectory.plot(args.figure)
        print(f"figure written to {args.figure}")
    return 0


def build_parser():
    """The argument parser of the ``dynloop`` command (one sub-parser per sub-command)."""
    parser = argparse.ArgumentParser(
        prog="dynloop",
        description="Looped transformer blocks as dynamical systems: simulate blocks and maps "
                    "described in a TOML file.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    simulate = commands.add_parser(
        "simulate", help="iterate the system of a TOML config and print a summary",
        description="Iterate the [block] or [map] of CONFIG for a number of loops, print per-stage "
                    "norms and successive differences, and optionally save the trajectory (.npz) "
                    "and a figure.")
    simulate.add_argument("config", metavar="CONFIG.toml", help="TOML file with a [block] or [map] table "
                          "and an optional [simulate] table (loops, record, stride, dtype)")
    simulate.add_argument("--loops", type=int, help="number of loops (overrides [simulate] loops; default 100)")
    simulate.add_argument("--out", metavar="FILE.npz", help="save the trajectory there")
    simulate.add_argument("--figure", metavar="FILE.png", help="save the trajectory figure there")
    simulate.set_defaults(handler=_simulate)
    return parser


def main(argv=None):
    """Run the ``dynloop`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"dynloop {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
