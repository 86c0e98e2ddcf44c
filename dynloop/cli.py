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


_THEORY_FIELDS = ("norm", "norm_kind", "injection", "mixer", "layers", "width", "map", "period")
_THEORY_DEFAULTS = {"norm": "none", "norm_kind": "rms", "injection": "none", "mixer": "linear", "layers": "1"}


def theory_request(tokens):
    """A ``dynloop theory`` SCHEME (``key=value`` words) as the arguments of :func:`dynloop.symbolic.derive`.

    Keys: ``norm``, ``norm_kind``, ``injection``, ``mixer`` (``linear`` or a smooth activation),
    ``layers``, ``width`` (a block), or ``map`` (a catalogue map); ``period`` for either.

    Returns
    -------
    system, period
        A :class:`~dynloop.symbolic.Scheme` or a :class:`~dynloop.Map`, and the period.

    Examples
    --------
    >>> from dynloop.cli import theory_request
    >>> theory_request(["norm=pre", "injection=additive", "layers=2"])[0].layers
    2
    >>> theory_request(["nrom=pre"])
    Traceback (most recent call last):
    ...
    ValueError: scheme field 'nrom'='pre' is not allowed: expected one of norm, norm_kind, injection, mixer, layers, width, map, period
    """
    from . import maps
    from .symbolic import Scheme

    fields = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key or not value:
            raise invalid("scheme word", token, "expected key=value, e.g. norm=pre injection=additive layers=2")
        if key not in _THEORY_FIELDS:
            raise invalid(f"scheme field {key!r}", value, "expected one of " + ", ".join(_THEORY_FIELDS))
        if key in fields:
            raise invalid(f"scheme field {key!r}", value, f"given twice (first {fields[key]!r})")
        fields[key] = value
    period = _theory_int("period", fields.pop("period", "1"))
    if "map" in fields:
        name = fields.pop("map")
        if fields:
            raise invalid(f"scheme field {sorted(fields)[0]!r}", fields[sorted(fields)[0]],
                          "a map takes only map= and period=")
        catalogue = [n for n in maps.__all__ if n != "linear"]
        if name not in catalogue:
            raise invalid("map", name, "expected one of " + ", ".join(catalogue))
        return getattr(maps, name)(), period
    values = {**_THEORY_DEFAULTS, **fields}
    for key in ("layers", "width"):
        if key in values:
            values[key] = _theory_int(key, values[key])
    return Scheme(**values), period


def _theory_int(key, value):
    try:
        return int(value)
    except ValueError:
        raise invalid(key, value, "expected an integer") from None


def _theory(args):
    if args.build is not None:
        from .symbolic.build_theory import build

        written = build(args.build or None, figures=not args.no_figures, verbose=True, jobs=args.jobs)
        print(f"wrote {len(written)} theory documents")
        return 0
    if not args.scheme:
        raise invalid("SCHEME", "", "give key=value words (e.g. norm=pre injection=additive layers=2) or --build")
    from .symbolic import derive

    system, period = theory_request(args.scheme)
    params = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise invalid("--param", item, "expected NAME=VALUE, e.g. --param w0=0.5")
        try:
            params[key] = float(value)
        except ValueError:
            raise invalid(f"--param {key}", value, "expected a number") from None
    derivation = derive(system, structure=args.structure, params=params or None, period=period)
    print(derivation.latex() if args.format == "latex" else derivation.markdown())
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
    theory = commands.add_parser(
        "theory", help="derive the stability conditions of a scheme symbolically, or rebuild theory/",
        description="Print the symbolic derivation (fixed points, loop Jacobian, Jury conditions, fold/flip/"
                    "Neimark-Sacker boundaries) of a block scheme or a catalogue map. A SCHEME is key=value "
                    "words: norm= (none, pre, post, sandwich, peri, pre_outer, peri_outer, sphere), norm_kind= "
                    "(rms, layer, l2), injection= (none, additive, concat, diagonal, convex), mixer= (linear, tanh, "
                    "gelu, silu), layers=, width=; or map= (a catalogue map); period= for cycles. Unset fields: "
                    "norm=none injection=none mixer=linear layers=1. Example: dynloop theory norm=pre "
                    "injection=additive layers=2. With --build, regenerate the theory/ documents instead.")
    theory.add_argument("scheme", nargs="*", metavar="SCHEME", help="key=value words, e.g. norm=post layers=2")
    theory.add_argument("--structure", default="scalar",
                        help="scalar (default), diagonal, commuting, 2x2 or general")
    theory.add_argument("--format", choices=("md", "latex"), default="md", help="Markdown (default) or LaTeX")
    theory.add_argument("--param", action="append", metavar="NAME=VALUE",
                        help="fix a symbol before solving (repeatable), e.g. --param w0=0.5")
    theory.add_argument("--build", nargs="?", const="", default=None, metavar="OUTDIR",
                        help="regenerate the theory/ documents and figures (default OUTDIR: the repository's theory/)")
    theory.add_argument("--no-figures", action="store_true", help="with --build: Markdown only")
    theory.add_argument("--jobs", type=int, default=1, help="with --build: worker processes (default 1)")
    theory.set_defaults(handler=_theory)
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
