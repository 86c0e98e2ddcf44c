"""The ``dynloop`` command.

A configuration file is TOML with one system table and one table per sub-command::

    [block]                 # any BlockSpec field; or, instead, a [map] table:
    width = 16              # [map]
    layers = 4              # name = "logistic"
    norm = "sandwich"       # params = { r = 3.5 }
                            # x0 = [0.2]
    [simulate]
    loops = 200             # also: record = "all" | "none" | ["last", N], stride, dtype

    [sweep]                 # dynloop sweep CONFIG.toml -o OUTDIR
    loops = 200             # also: transient, chunk, lyapunov, early_exit, dtype, tol
    [sweep.axes]            # in order; a list of values or {start, stop, num}
    residual_scale = { start = 0.0, stop = 3.0, num = 64 }
    norm = ["pre", "peri"]
"""

__all__ = ["main", "load_system"]

import argparse
import sys

import numpy as np

from ._errors import invalid
from ._toml import load_toml

_SIMULATE_KEYS = ("loops", "record", "stride", "dtype")
_SWEEP_KEYS = ("axes", "loops", "transient", "chunk", "lyapunov", "early_exit", "dtype", "tol")
_DTYPE_NAMES = {"float64": np.float64, "float32": np.float32}


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
    dtype = _dtype(options.pop("dtype", "float64"), "simulate.dtype")
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


def _dtype(name, field):
    if name not in _DTYPE_NAMES:
        raise invalid(field, name, "expected 'float64' or 'float32'")
    return _DTYPE_NAMES[name]


def _axis_values(name, spec):
    """An axis from TOML: a list of values, or a table {start, stop, num} (evenly spaced)."""
    if isinstance(spec, list):
        return np.asarray(spec)
    if isinstance(spec, dict) and set(spec) == {"start", "stop", "num"}:
        return np.linspace(spec["start"], spec["stop"], int(spec["num"]))
    raise invalid(f"sweep.axes.{name}", spec, "expected a list of values or a table {start, stop, num}")


def sweep_settings(document):
    """The ``[sweep]`` table of a configuration as keyword arguments of :func:`dynloop.sweep`."""
    options = dict(document.get("sweep", {}))
    unknown = sorted(set(options) - set(_SWEEP_KEYS))
    if unknown:
        raise invalid(f"sweep.{unknown[0]}", options[unknown[0]], "allowed keys are " + ", ".join(_SWEEP_KEYS))
    axes = options.pop("axes", None)
    if not isinstance(axes, dict) or not axes:
        raise invalid("sweep.axes", axes, "expected a table of axes, e.g. residual_scale = {start = 0, stop = 3, num = 64}")
    options["axes"] = {name: _axis_values(name, values) for name, values in axes.items()}
    if "dtype" in options:
        options["dtype"] = _dtype(options["dtype"], "sweep.dtype")
    return options


def _sweep(args):
    from pathlib import Path

    from .sweep import sweep

    document = load_toml(args.config)
    system, x0, _ = load_system(document)
    options = sweep_settings(document)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    axes = options.pop("axes")
    diagram = sweep(system, axes, x0=x0, store=out / "chunks", resume=not args.fresh,
                    progress=not args.no_progress, **options)
    diagram.save(out / "phase.npz")
    diagram.plot(out / "phase.png")
    print(diagram.summary())
    print(f"phase diagram written to {out / 'phase.npz'} and {out / 'phase.png'}")
    return 0


def _plot(args):
    from pathlib import Path

    from .sweep import PhaseDiagram

    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"phase diagram file {str(path)!r} does not exist")
    diagram = PhaseDiagram.load(path)
    figure_path = Path(args.out) if args.out else path.with_name(
        path.stem + ("" if args.field == "regime" else f"-{args.field}") + ".png")
    diagram.plot(figure_path, field=args.field)
    print(f"figure written to {figure_path}")
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
    sweep = commands.add_parser(
        "sweep", help="classify the system of a TOML config over a parameter grid (a phase diagram)",
        description="Sweep the [block] or [map] of CONFIG over the axes of its [sweep] table, classify "
                    "every grid point, and write OUTDIR/phase.npz and OUTDIR/phase.png. Finished chunks "
                    "are kept in OUTDIR/chunks: running the same command again resumes an interrupted sweep.")
    sweep.add_argument("config", metavar="CONFIG.toml", help="TOML file with a [block] or [map] table and a "
                       "[sweep] table with [sweep.axes]")
    sweep.add_argument("-o", "--out", metavar="OUTDIR", required=True, help="output directory")
    sweep.add_argument("--fresh", action="store_true", help="discard finished chunks in OUTDIR and start over")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=_sweep)
    plot = commands.add_parser("plot", help="draw a phase diagram file",
                               description="Draw a phase diagram written by 'dynloop sweep' (or PhaseDiagram.save).")
    plot.add_argument("file", metavar="FILE.npz", help="phase diagram file")
    plot.add_argument("--field", default="regime", help="'regime' (default) or a diagnostic, e.g. convergence_rate")
    plot.add_argument("-o", "--out", metavar="FIGURE.png", help="figure path (default: next to FILE)")
    plot.set_defaults(handler=_plot)
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
