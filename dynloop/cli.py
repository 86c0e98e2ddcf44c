"""The ``dynloop`` command.

Commands::

    dynloop simulate CONFIG.toml [--loops N] [--out RUN.npz] [--figure RUN.png]
    dynloop classify CONFIG.toml [--figure FIG.png] [--out RESULT.json]
    dynloop sweep    CONFIG.toml -o OUTDIR [--loops N] [--field NAME] [--fresh] [--no-progress]
    dynloop orbit    CONFIG.toml [--loops N] [--out ORBIT.npz] [--figure ORBIT.png]
    dynloop basins   CONFIG.toml -o OUTDIR [--loops N] [--fresh] [--no-progress]
    dynloop continue CONFIG.toml -o OUTDIR [--depth N]
    dynloop plot     FILE.npz [--field NAME] [-o FIG.png]
    dynloop analyze  FILE.npz|CONFIG.toml -o OUTDIR [--loops N] [--reference FILE.npz]
    dynloop theory   key=value ... [--structure S] [--format md|latex] [--param NAME=VALUE]
    dynloop claims   -o OUTDIR [--quick] [--only NAME ...]
    dynloop --version

A configuration file is TOML with one system table and one table per command::

    [block]                 # any BlockSpec field; or, instead, a [map] table:
    width = 16              # [map]
    layers = 4              # name = "logistic"
    norm = "sandwich"       # params = { r = 3.5 }
                            # x0 = [0.2]
    [simulate]
    loops = 200             # also: record = "all" | "none" | ["last", N], stride, dtype

    [classify]              # all optional: keyword arguments of dynloop.classify
    max_period = 16         # also: transient, window, lyapunov, tol (a number or a table)

    [sweep]                 # dynloop sweep CONFIG.toml -o OUTDIR
    loops = 200             # also: transient, chunk, lyapunov, early_exit, dtype, tol
    [sweep.axes]            # in order; a list of values or {start, stop, num}
    residual_scale = { start = 0.0, stop = 3.0, num = 64 }
    norm = ["pre", "peri"]

    [orbit]                 # dynloop orbit CONFIG.toml: an orbit (bifurcation) diagram
    parameter = "r"         # a map parameter or a numeric BlockSpec field
    values = { start = 2.5, stop = 4.0, num = 600 }   # or a list
    loops = 1000            # also: keep, coordinate (an index or "pca"), regimes

    [basins]                # dynloop basins CONFIG.toml -o OUTDIR: which start reaches which attractor
    loops = 1000            # also: tol, seed (of a block's directions), center (default: the start state)
    [basins.axes]           # a map's coordinates (name or index); a block's: up to 3 direction names
    x = { start = -2.0, stop = 2.0, num = 256 }

    [continue]              # dynloop continue CONFIG.toml -o OUTDIR: a branch and its bifurcations
    parameter = "r"         # a map parameter or a float BlockSpec field
    start = 2.5             # also: stop (required), x0, period, step, max_points, tol, depth (flips
    stop = 3.6              # to switch at, following the period-doubled branches)

    [analyze]               # dynloop analyze CONFIG.toml -o OUTDIR: simulate with attention, analyse
    loops = 128             # also: tol, sink_threshold, token_tau, token_rho

Every output path is checked before anything is computed. A mistake in the input ends with one
line, ``dynloop COMMAND: error: ...``, and exit status 2 (``--traceback`` or ``DYNLOOP_DEBUG=1``
show the Python traceback as well); Ctrl-C ends with one line and exit status 130, and an
interrupted sweep keeps its finished chunks for the next run of the same command.
"""

__all__ = ["main", "build_parser", "load_config", "load_system", "sweep_settings", "theory_request"]

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

from ._errors import caused_by_interrupt, check_choice, check_int, check_real, did_you_mean, invalid
from ._toml import load_toml
from .components import ACTIVATIONS, MIXERS

_TABLES = ("block", "map", "simulate", "classify", "sweep", "orbit", "analyze", "basins", "continue")
_MAP_KEYS = ("name", "params", "x0")
_SIMULATE_KEYS = ("loops", "record", "stride", "dtype")
_CLASSIFY_KEYS = ("transient", "window", "max_period", "lyapunov", "tol")
_SWEEP_KEYS = ("axes", "loops", "transient", "chunk", "lyapunov", "early_exit", "dtype", "tol")
_ORBIT_KEYS = ("parameter", "values", "loops", "keep", "coordinate", "regimes")
_BASINS_KEYS = ("axes", "loops", "tol", "seed", "center")
_CONTINUE_KEYS = ("parameter", "start", "stop", "x0", "period", "step", "max_points", "tol", "depth")
_ANALYZE_KEYS = ("loops", "tol", "sink_threshold", "token_tau", "token_rho")
_DTYPE_NAMES = {"float64": np.float64, "float32": np.float32}
#: The compiled sweep kernel of each kind of system (``dynloop.sweep._kernels``), whose cache files
#: tell whether a sweep will compile first.
SWEEP_KERNELS = {"block": "sweep_block_columns", "map": "sweep_map"}
#: Loops that ``simulate`` classifies after the run, to say which regime the run reached.
REGIME_WINDOW = 64


class _Interrupted(Exception):
    """Ctrl-C, with what the interrupted command leaves behind."""


# ----------------------------------------------------------------------------- configuration
def _check_keys(table, options, allowed):
    """Refuse keys of ``options`` (the table ``table``) that are not in ``allowed``,
    suggesting a close one."""
    if not isinstance(options, dict):
        raise invalid(table, options, "expected a table, e.g. [" + table + "]")
    for key in options:
        if key not in allowed:
            raise invalid(f"{table}.{key}", options[key], "allowed keys are " + ", ".join(allowed)
                          + did_you_mean(key, allowed))
    return dict(options)


def load_config(path):
    """Read a configuration file and check its tables' names.

    Parameters
    ----------
    path : str or Path
        A TOML file (or TOML text).

    Returns
    -------
    dict
        The document.

    Examples
    --------
    >>> from dynloop.cli import load_config
    >>> load_config("[map]\\nname = 'logistic'\\n[simulate]\\nloops = 10\\n")["simulate"]
    {'loops': 10}
    >>> load_config("[map]\\nname = 'logistic'\\n[simualte]\\nloops = 10\\n")
    Traceback (most recent call last):
    ...
    ValueError: table [simualte] is not allowed: a configuration holds [block] or [map], and [simulate],
    [classify], [sweep], [orbit], [analyze], [basins] or [continue]; did you mean 'simulate'?
    """
    document = load_toml(path)
    for key in document:
        if key not in _TABLES:
            raise ValueError(f"table [{key}] is not allowed: a configuration holds [block] or [map], and "
                             "[simulate], [classify], [sweep], [orbit], [analyze], [basins] or [continue]"
                             + did_you_mean(key, _TABLES))
    return document


def load_system(document):
    """The system a configuration describes: ``[block]`` (a BlockSpec) or ``[map]`` (a catalogue map).

    Returns
    -------
    system, x0, params
        ``x0`` is ``None`` unless the ``[map]`` table sets it; ``params`` is ``None`` (the map is
        built with the table's parameters).

    Examples
    --------
    >>> from dynloop.cli import load_system
    >>> load_system({"map": {"name": "logistic", "params": {"r": 3.2}}})[0].params
    {'r': 3.2}
    >>> load_system({"map": {"name": "logistic", "params": {"rr": 3.2}}})
    Traceback (most recent call last):
    ...
    ValueError: map.params.rr=3.2 is not allowed: logistic has the parameter r; did you mean 'r'?
    """
    from . import maps
    from .systems.block import BlockSpec
    from .systems.maps import catalogue_names

    if ("block" in document) == ("map" in document):
        raise invalid("configuration", sorted(document),
                      "expected exactly one of the tables [block] or [map]")
    if "block" in document:
        return BlockSpec.from_dict(document["block"]), None, None
    table = _check_keys("map", document["map"], _MAP_KEYS)
    name = check_choice("map.name", table.get("name"), catalogue_names())
    factory = getattr(maps, name)
    names = list(factory().param_names)
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise invalid("map.params", params, "expected a table of parameter values, e.g. params = { "
                      + (f"{names[0]} = 1.0" if names else "") + " }")
    for key, value in params.items():
        if key not in names:
            plural = "s" * (len(names) != 1)
            allowed = (f"{name} has the parameter{plural} " + ", ".join(names)) if names else \
                f"{name} has no parameters"
            raise invalid(f"map.params.{key}", value, allowed + did_you_mean(key, names))
        check_real(f"map.params.{key}", value)
    x0 = table.get("x0")
    if x0 is not None:
        try:
            x0 = np.asarray(x0, dtype=float)
        except (TypeError, ValueError):
            raise invalid("map.x0", x0, "expected a list of numbers, e.g. x0 = [0.1]") from None
    return factory(**params), x0, None


def _dtype(name, field):
    return _DTYPE_NAMES[check_choice(field, name, tuple(_DTYPE_NAMES))]


def _axis_values(field, spec):
    """Parameter values from TOML: a list of values, or a table {start, stop, num} (evenly spaced)."""
    if isinstance(spec, list) and spec:
        return np.asarray(spec)
    if isinstance(spec, dict) and set(spec) == {"start", "stop", "num"}:
        start, stop = check_real(f"{field}.start", spec["start"]), check_real(f"{field}.stop", spec["stop"])
        return np.linspace(start, stop, check_int(f"{field}.num", spec["num"], minimum=1))
    raise invalid(field, spec, "expected a non-empty list of values or a table {start, stop, num}")


def sweep_settings(document):
    """The ``[sweep]`` table of a configuration as keyword arguments of :func:`dynloop.sweep`.

    Examples
    --------
    >>> from dynloop.cli import sweep_settings
    >>> settings = sweep_settings({"sweep": {"loops": 400,
    ...                                      "axes": {"r": {"start": 2.5, "stop": 4, "num": 4}}}})
    >>> settings["loops"], settings["axes"]["r"].tolist()
    (400, [2.5, 3.0, 3.5, 4.0])
    """
    options = _check_keys("sweep", document.get("sweep", {}), _SWEEP_KEYS)
    axes = options.pop("axes", None)
    if not isinstance(axes, dict) or not axes:
        raise invalid("sweep.axes", axes,
                      "expected a table of axes, e.g. residual_scale = {start = 0, stop = 3, num = 64}")
    options["axes"] = {name: _axis_values(f"sweep.axes.{name}", values) for name, values in axes.items()}
    if "dtype" in options:
        options["dtype"] = _dtype(options["dtype"], "sweep.dtype")
    return options


def _settings(document, table, allowed):
    return _check_keys(table, document.get(table, {}), allowed)


# ----------------------------------------------------------------------------- output paths
def _figure_suffixes():
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple("." + suffix for suffix in FigureCanvasBase.get_supported_filetypes())


def _output(option, value, suffixes=None, directory=False):
    """Check, before anything is computed, that ``value`` can be written; return it as a Path.

    A file must end in one of ``suffixes`` and not be a directory; a directory must not be a
    file. The nearest existing ancestor must be a writable directory (missing ones are created
    when the output is written).
    """
    if value is None:
        return None
    path = Path(value)
    if suffixes and path.suffix.lower() not in suffixes:
        raise invalid(option, value, "expected a file name ending in " + ", ".join(suffixes))
    if directory and path.exists() and not path.is_dir():
        raise invalid(option, value, "it exists and is not a directory")
    if not directory and path.is_dir():
        raise invalid(option, value, "it is a directory; expected a file name")
    for ancestor in (path, *path.parents) if directory else path.parents:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise invalid(option, value, f"{str(ancestor)!r} is a file, not a directory")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise invalid(option, value, f"cannot write in {str(ancestor)!r} (permission denied)")
            break
    return path


def _written(path):
    """Create the directories above ``path`` just before it is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _figure_output(option, value):
    return _output(option, value, _figure_suffixes()) if value is not None else None


def _announce_compiling(system, *, sweeps=False):
    """Say on stderr that kernels are being compiled, if those this command needs are not cached.

    Every command iterates the system and classifies with the decision rules; ``sweeps``: the
    sweep kernels of the system's kind as well.
    """
    from ._cache import announce_compiling

    kind = "block" if system.kind == "block" else "map"
    modules = [f"dynloop.systems._{kind}_kernels", "dynloop.dynamics.regimes"]
    if sweeps:
        modules.append("dynloop.sweep._kernels." + SWEEP_KERNELS[kind])
    announce_compiling(*modules)


# ----------------------------------------------------------------------------- commands
def _simulate(args):
    from .dynamics.simulate import simulate

    document = load_config(args.config)
    system, x0, params = load_system(document)
    options = _settings(document, "simulate", _SIMULATE_KEYS)
    if args.loops is not None:
        options["loops"] = args.loops
    loops = check_int("loops", options.pop("loops", 100), minimum=1)
    dtype = _dtype(options.pop("dtype", "float64"), "simulate.dtype")
    if isinstance(options.get("record"), list):
        options["record"] = tuple(options["record"])
    out = _output("--out", args.out, (".npz",))
    figure = _figure_output("--figure", args.figure)
    _announce_compiling(system)
    trajectory = simulate(system, loops, x0=x0, params=params, dtype=dtype, **options)
    _report(trajectory, out, figure, "trajectory", regime_reached(system, trajectory, params=params))
    return 0


def regime_reached(system, trajectory, params=None, window=REGIME_WINDOW):
    """One line: the regime a run ended in, by :func:`dynloop.classify` on ``window`` more loops.

    The classification starts from the run's final state and runs one window, without an
    adaptive transient, so it judges the end of the run, with the same decision rules as
    :func:`dynloop.classify` and :func:`dynloop.sweep`.

    Examples
    --------
    >>> import dynloop
    >>> from dynloop.cli import regime_reached
    >>> system = dynloop.maps.logistic(r=3.2)
    >>> regime_reached(system, dynloop.simulate(system, 200))
    'regime at the end of the run: periodic, period 2 (dynloop.classify on 64 more loops from the final
    state)'
    """
    from .dynamics.classify import classify

    if trajectory.diverged:
        return ("regime at the end of the run: divergent (a non-finite value at loop "
                f"{trajectory.diverged_at})")
    result = classify(system, x0=trajectory.final_state, params=params, transient=0, window=window,
                      max_period=(window - 4) // 4)
    period = f", period {result.period}" if result.period is not None and result.period > 1 else ""
    return (f"regime at the end of the run: {result.regime.value}{period} (dynloop.classify on "
            f"{result.evidence['loops']} more loops from the final state)")


def _classify(args):
    from .dynamics.classify import classify

    document = load_config(args.config)
    system, x0, params = load_system(document)
    options = _settings(document, "classify", _CLASSIFY_KEYS)
    figure = _figure_output("--figure", args.figure)
    out = _output("--out", args.out, (".json",))
    _announce_compiling(system)
    _report(classify(system, x0=x0, params=params, **options), out, figure, "classification")
    return 0


def _report(result, out, figure, noun, *lines):
    """Print a result's summary (and ``lines`` after it), then save it to ``out`` and draw it to
    ``figure`` where they are given."""
    print(result.summary())
    for line in lines:
        print(line)
    if out is not None:
        result.save(_written(out))
        print(f"{noun} written to {out}")
    if figure is not None:
        result.plot(_written(figure))
        print(f"figure written to {figure}")


def _analyze(args):
    from .analysis import analyze
    from .dynamics.recording import load_recording
    from .dynamics.simulate import simulate

    source = Path(args.file)
    outdir = _output("-o/--out", args.out, directory=True)
    options = {}
    if source.suffix.lower() == ".toml":
        document = load_config(source)
        system, x0, params = load_system(document)
        options = _settings(document, "analyze", _ANALYZE_KEYS)
        loops = options.pop("loops", 128)
        loops = check_int("loops", args.loops if args.loops is not None else loops, minimum=2)
        mixer = system.components.get("mixer")
        attention = mixer is not None and "attention" in mixer.branches
        _announce_compiling(system)
        trajectory = simulate(system, loops, x0=x0, params=params, record_attention=attention)
        recording = trajectory.recording()
    elif source.suffix.lower() in (".npz", ".safetensors"):
        if args.loops is not None:
            raise invalid("--loops", args.loops, "only a CONFIG.toml is simulated; a recording has its loops")
        recording = load_recording(source)
    else:
        raise invalid("FILE", str(source), "expected a recording (.npz or .safetensors) or a CONFIG.toml")
    reference = load_recording(args.reference) if args.reference is not None else None
    if args.tol is not None:
        options["tol"] = args.tol
    result = analyze(recording, reference=reference, **options)
    print(result.summary())
    page = result.report(outdir)
    recording.save(outdir / "recording.npz")
    result.save(outdir / "analysis.npz")
    print(f"report written to {page} (figures beside it); recording and arrays in {outdir}")
    return 0


def _claims(args):
    from . import claims

    outdir = _output("-o/--out", args.out, directory=True)
    only = None
    if args.only:
        only = [name for group in args.only for name in group.split(",") if name]
        for name in only:
            check_choice("--only", name, list(claims.CLAIMS))
    report = claims.run(outdir, quick=args.quick, only=only, progress=not args.no_progress)
    print(report.summary())
    print(f"report written to {outdir / 'claims.md'} (figures beside it); finished work kept in "
          f"{outdir / 'stores'}, so the same command continues an interrupted run")
    return 0


def _count_chunks(directory):
    """Finished chunk files in a sweep's store directory (0 if there is none)."""
    from .sweep.store import _CHUNK

    try:
        return sum(1 for entry in os.scandir(directory) if _CHUNK.fullmatch(entry.name))
    except OSError:
        return 0


def _stored_run(chunks, fresh, what, compute):
    """``compute()``, which stores its chunks in ``chunks``; a refused resume or Ctrl-C says what is kept."""
    from .sweep.store import ResumeRefused

    try:
        return compute()
    except ResumeRefused as refused:
        raise ValueError(f"{chunks} {refused.reason}. To keep its {refused.chunks} finished chunk(s), "
                         f"give this {what} another -o OUTDIR; to discard them and start over, "
                         "add --fresh") from None
    except BaseException as error:  # noqa: B036 - Ctrl-C may surface as another exception caused by it
        if not caused_by_interrupt(error):
            raise
        kept = _count_chunks(chunks)
        raise _Interrupted(f"{kept} finished chunk{'s' * (kept != 1)} kept in {chunks}; run the same command "
                           + ("without --fresh " if fresh else "") + "again to resume") from error


def _print_result(result, chunks, written):
    """A stored run's summary, what it loaded from ``chunks`` and where it was ``written``."""
    print(result.summary())
    if result.meta.get("chunks_loaded"):
        print(f"resumed: {result.meta['chunks_loaded']} of {result.meta['chunks']} chunks were loaded "
              f"from {chunks} (computed by an earlier run)")
    print(written)


def _basins(args):
    from .dynamics.basins import basins, state_grid

    document = load_config(args.config)
    system, x0, params = load_system(document)
    options = _check_keys("basins", document.get("basins", {}), _BASINS_KEYS)
    axes = options.pop("axes", None)
    if not isinstance(axes, dict) or not axes:
        raise invalid("basins.axes", axes, "expected a table of axes, e.g. x = {start = -2, stop = 2, "
                      "num = 256} (a map's coordinates by name or index; for a block up to 3 names of "
                      "directions)")
    axes = {int(name) if name.isdigit() else name: _axis_values(f"basins.axes.{name}", values)
            for name, values in axes.items()}
    if args.loops is not None:
        options["loops"] = args.loops
    out = _output("-o", args.out, directory=True)
    chunks = _output("-o", out / "chunks", directory=True)
    result = _output("-o", out / "basins.npz", (".npz",))
    figure = _output("-o", out / "basins.png", (".png",))
    starts = state_grid(system, axes, center=options.pop("center", x0), seed=options.pop("seed", 0))
    _announce_compiling(system, sweeps=True)
    if args.fresh and chunks.is_dir():  # the store's own files only
        from .sweep.store import _CHUNK, MANIFEST

        for entry in chunks.iterdir():
            if _CHUNK.fullmatch(entry.name) or entry.name == MANIFEST:
                entry.unlink()
    found = _stored_run(chunks, args.fresh, "basin map", lambda: basins(
        system, starts, params=params, store=chunks, progress=not args.no_progress, **options))
    found.save(_written(result))
    found.plot(figure)
    _print_result(found, chunks, f"basins written to {result} and {figure}")
    return 0


def _required_table(document, table, allowed, required, example):
    """The options of a table the command needs, with its required keys (``example`` shows them)."""
    if table not in document:
        raise invalid(f"[{table}]", None, f"dynloop {table} needs a [{table}] table, e.g. {example}")
    options = _settings(document, table, allowed)
    for key in required:
        if key not in options:
            raise invalid(f"{table}.{key}", None, "required: " + ", ".join(required) + f" (e.g. {example})")
    return options


def _continue(args):
    import json

    from .dynamics.continuation import bifurcation_diagram

    document = load_config(args.config)
    system, x0, params = load_system(document)
    options = _required_table(document, "continue", _CONTINUE_KEYS, ("parameter", "start", "stop"),
                              "parameter = \"r\", start = 2.5, stop = 3.6")
    if args.depth is not None:
        options["depth"] = args.depth
    out = _output("-o", args.out, directory=True)
    figure = _output("-o", out / "continuation.png", (".png",))
    listing = _output("-o", out / "bifurcations.json", (".json",))
    parameter, start, stop = options.pop("parameter"), options.pop("start"), options.pop("stop")
    if "x0" not in options and x0 is not None:
        options["x0"] = x0
    _announce_compiling(system)
    branches, _ = bifurcation_diagram(system, parameter, start, stop, params=params,
                                      path=_written(figure), **options)
    for i, branch in enumerate(branches):
        print(branch.summary())
        branch.save(_written(out / f"branch_{i}_period_{branch.period}.npz"))
    found = [{"period": b.period, "bifurcations": [
        {"kind": x.kind, "parameter": x.parameter, "rotation": x.rotation,
         "multiplier_moduli": np.abs(x.multipliers[:8]).tolist()} for x in b.bifurcations]} for b in branches]
    _written(listing).write_text(json.dumps({"parameter": parameter, "branches": found}, indent=2))
    print(f"continuation written to {figure} and {listing}; every branch to {out}/branch_*.npz "
          "(dynloop.Branch.load)")
    return 0


def _sweep(args):
    from .sweep import sweep
    from .sweep._kernels import DIAGNOSTICS

    document = load_config(args.config)
    system, x0, _ = load_system(document)
    options = sweep_settings(document)
    if args.loops is not None:
        options["loops"] = args.loops
    field = check_choice("--field", args.field, ("regime",) + tuple(DIAGNOSTICS))
    out = _output("-o", args.out, directory=True)
    chunks = _output("-o", out / "chunks", directory=True)
    result = _output("-o", out / "phase.npz", (".npz",))
    figure = _output("-o", out / ("phase.png" if field == "regime" else f"phase-{field}.png"), (".png",))
    axes = options.pop("axes")
    _announce_compiling(system, sweeps=True)
    diagram = _stored_run(chunks, args.fresh, "sweep", lambda: sweep(
        system, axes, x0=x0, store=chunks, resume=not args.fresh, progress=not args.no_progress, **options))
    diagram.save(_written(result))
    diagram.plot(figure, field=field)
    _print_result(diagram, chunks, f"phase diagram written to {result} and {figure}")
    return 0


def _orbit(args):
    from .sweep import orbit_diagram

    document = load_config(args.config)
    system, x0, _ = load_system(document)
    options = _required_table(document, "orbit", _ORBIT_KEYS, ("parameter", "values"),
                              "parameter = \"r\" and values = { start = 2.5, stop = 4.0, num = 600 }")
    parameter = options.pop("parameter")
    values = _axis_values("orbit.values", options.pop("values"))
    if args.loops is not None:
        options["loops"] = args.loops
    out = _output("--out", args.out, (".npz",))
    figure = _figure_output("--figure", args.figure)
    _announce_compiling(system, sweeps=True)
    _report(orbit_diagram(system, parameter, values, x0=x0, **options), out, figure, "orbit diagram")
    return 0


_PLOT_ACCEPTS = ("plot draws a phase diagram (OUTDIR/phase.npz, written by 'dynloop sweep CONFIG.toml "
                 "-o OUTDIR') or an orbit diagram (written by 'dynloop orbit CONFIG.toml --out FILE.npz')")


def _plot(args):
    import zipfile

    from .sweep import OrbitDiagram, PhaseDiagram

    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"file {str(path)!r} does not exist")
    if path.suffix.lower() != ".npz" or not zipfile.is_zipfile(path):
        hint = "; to sweep a configuration, run 'dynloop sweep CONFIG.toml -o OUTDIR'" \
            if path.suffix.lower() == ".toml" else ""
        raise invalid("FILE", str(path), _PLOT_ACCEPTS + hint)
    figure = _figure_output("-o", args.out)
    try:
        diagram = PhaseDiagram.load(path)
    except ValueError:
        try:
            diagram = OrbitDiagram.load(path)
        except ValueError:
            raise invalid("FILE", str(path), _PLOT_ACCEPTS + "; this .npz file holds neither") from None
    if isinstance(diagram, PhaseDiagram):
        field = check_choice("--field", args.field, diagram.fields)
    elif args.field != "regime":
        raise invalid("--field", args.field, "an orbit diagram has no fields to choose from")
    else:
        field = "regime"
    if figure is None:
        figure = path.with_name(path.stem + ("" if field == "regime" else f"-{field}") + ".png")
    if isinstance(diagram, PhaseDiagram):
        diagram.plot(_written(figure), field=field)
    else:
        diagram.plot(_written(figure))
    print(f"figure written to {figure}")
    return 0


# ----------------------------------------------------------------------------- theory
_THEORY_FIELDS = ("norm", "norm_kind", "injection", "mixer", "activation", "layers", "width", "map", "period")
_THEORY_DEFAULTS = {"norm": "none", "norm_kind": "rms", "injection": "none", "mixer": "linear", "layers": "1"}
# the mixers with a closed form (attention couples tokens: no closed-form derivation)
_THEORY_MIXERS = tuple(name for name, mixer in MIXERS.items() if mixer.symbolic)


def _smooth_activations():
    """BlockSpec's activations that symbolic derivations take (relu is not differentiable at 0)."""
    return tuple(name for name, activation in ACTIVATIONS.items() if activation.smooth)


def _default_activation():
    from .systems.block import BlockSpec

    return next(f.default for f in dataclasses.fields(BlockSpec) if f.name == "activation")


def theory_request(tokens):
    """A ``dynloop theory`` SCHEME (``key=value`` words) as the arguments of :func:`dynloop.symbolic.derive`.

    The words are BlockSpec's: ``norm``, ``norm_kind``, ``injection``, ``mixer`` (``linear`` or
    ``mlp``), ``activation`` (with ``mixer=mlp``: a smooth one, ``tanh``, ``gelu`` or ``silu``;
    BlockSpec's default otherwise), ``layers``, ``width`` (a block), or ``map`` (a catalogue map);
    ``period`` for either. The older ``mixer=tanh`` (an activation as the mixer) still means
    ``mixer=mlp activation=tanh``.

    Returns
    -------
    system, period
        A :class:`~dynloop.symbolic.Scheme` or a :class:`~dynloop.Map`, and the period.

    Examples
    --------
    >>> from dynloop.cli import theory_request
    >>> theory_request(["norm=pre", "injection=additive", "layers=2"])[0].layers
    2
    >>> theory_request(["mixer=mlp", "activation=tanh"])[0].mixer  # the Scheme's name for this branch
    'tanh'
    >>> theory_request(["nrom=pre"])
    Traceback (most recent call last):
    ...
    ValueError: scheme field 'nrom'='pre' is not allowed: expected one of norm, norm_kind, injection, mixer,
    activation, layers, width, map, period; did you mean 'norm'?
    """
    from . import maps
    from .systems.maps import catalogue_names
    from .symbolic import Scheme

    fields = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key or not value:
            raise invalid("scheme word", token,
                          "expected key=value, e.g. norm=pre injection=additive layers=2")
        if key not in _THEORY_FIELDS:
            raise invalid(f"scheme field {key!r}", value, "expected one of " + ", ".join(_THEORY_FIELDS)
                          + did_you_mean(key, _THEORY_FIELDS))
        if key in fields:
            raise invalid(f"scheme field {key!r}", value, f"given twice (first {fields[key]!r})")
        fields[key] = value
    period = _theory_int("period", fields.pop("period", "1"))
    if "map" in fields:
        name = fields.pop("map")
        if fields:
            raise invalid(f"scheme field {sorted(fields)[0]!r}", fields[sorted(fields)[0]],
                          "a map takes only map= and period=")
        return getattr(maps, check_choice("map", name, catalogue_names()))(), period
    values = {**_THEORY_DEFAULTS, **fields}
    smooth = _smooth_activations()
    mixer, activation = values.pop("mixer"), values.pop("activation", None)
    if mixer in smooth and activation is None:  # the older words: an activation named as the mixer
        mixer, activation = "mlp", mixer
    if mixer in MIXERS and mixer not in _THEORY_MIXERS:
        raise invalid("mixer", mixer, "symbolic derivations take mixer=" + " or mixer=".join(_THEORY_MIXERS)
                      + " (attention couples tokens; use the numeric tools)")
    check_choice("mixer", mixer, _THEORY_MIXERS)
    if "mlp" not in MIXERS[mixer].branches:
        if activation is not None:
            raise invalid("activation", activation, "only with mixer=mlp (the linear mixer has none)")
    else:
        activation = check_choice("activation", activation or _default_activation(), smooth)
    for key in ("layers", "width"):
        if key in values:
            values[key] = _theory_int(key, values[key])
    return Scheme(mixer=activation if "mlp" in MIXERS[mixer].branches else mixer, **values), period


def _theory_int(key, value):
    try:
        return int(value)
    except ValueError:
        raise invalid(key, value, "expected an integer") from None


def _theory(args):
    if not args.scheme:
        raise invalid("SCHEME", "", "give key=value words (e.g. norm=pre injection=additive layers=2)")
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


# ----------------------------------------------------------------------------- schemes
def _schemes(args):
    from .components import REGISTRIES

    for field, registry in REGISTRIES.items():
        print(f"{field}:")
        width = max(len(name) for name in registry)
        for name, component in registry.items():
            print(f"  {name:<{width}}  {component.description}")
    return 0


# ----------------------------------------------------------------------------- parser and main
def _theory_help():
    from .components import INJECTIONS, NORM_KINDS, NORMS

    def words(values):
        return "(" + ", ".join(values) + ")"

    return ("Print the symbolic derivation (fixed points, loop Jacobian, Jury conditions, fold/flip/"
            "Neimark-Sacker boundaries) of a block scheme or a catalogue map. A SCHEME is key=value words, "
            f"in BlockSpec's vocabulary: norm= {words(NORMS)}, norm_kind= {words(NORM_KINDS)}, injection= "
            f"{words(INJECTIONS)}, mixer= {words(_THEORY_MIXERS)}, "
            f"activation= {words(_smooth_activations())} "
            f"with mixer=mlp (default {_default_activation()}), layers=, width=; or map= (a catalogue map); "
            "period= for cycles. Unset fields: norm=none injection=none mixer=linear layers=1. Example: "
            "dynloop theory norm=pre injection=additive mixer=mlp activation=tanh layers=2. (The "
            "repository's theory/ documents are regenerated by a tool of the source checkout, python "
            "tools/build_theory.py theory.)")


def _stored_arguments(parser, config_help, table, loops):
    """The arguments of a command whose chunks are stored in OUTDIR/chunks (sweep, basins)."""
    parser.add_argument("config", metavar="CONFIG.toml",
                        help=config_help + f" and a [{table}] table with [{table}.axes]")
    parser.add_argument("-o", "--out", metavar="OUTDIR", required=True, help="output directory")
    parser.add_argument("--loops", type=int, help=f"{loops} (overrides [{table}] loops)")
    parser.add_argument("--fresh", action="store_true",
                        help="discard finished chunks in OUTDIR and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser():
    """The argument parser of the ``dynloop`` command (one sub-parser per sub-command)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="dynloop",
        description="Looped transformer blocks as dynamical systems: simulate, classify, sweep and draw "
                    "blocks and maps described in a TOML file, or derive their stability symbolically.",
        epilog="A mistake in the input ends with one line, 'dynloop COMMAND: error: ...', and exit status 2; "
               "Ctrl-C with exit status 130.")
    parser.add_argument("--version", action="version", version=f"dynloop {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, also show the Python traceback (or set DYNLOOP_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    config_help = "TOML file with a [block] or [map] table"

    simulate = commands.add_parser(
        "simulate", help="iterate the system of a TOML config, print a summary and the regime reached",
        description="Iterate the [block] or [map] of CONFIG for a number of loops, print per-stage "
                    "norms and successive differences, then the regime the run reached (dynloop.classify on "
                    f"{REGIME_WINDOW} more loops from the final state), and optionally save the trajectory "
                    "(.npz) and a figure.")
    simulate.add_argument("config", metavar="CONFIG.toml", help=config_help +
                          " and an optional [simulate] table (loops, record, stride, dtype)")
    simulate.add_argument("--loops", type=int,
                          help="number of loops (overrides [simulate] loops; default 100)")
    simulate.add_argument("--out", metavar="FILE.npz", help="save the trajectory there (a .npz file)")
    simulate.add_argument("--figure", metavar="FILE.png",
                          help="save the trajectory figure there (.png, .pdf, .svg, ...)")
    simulate.set_defaults(handler=_simulate)

    classify = commands.add_parser(
        "classify", help="say which regime the system of a TOML config ends up in, with the evidence",
        description="Classify the [block] or [map] of CONFIG with dynloop.classify and print the regime and "
                    "its evidence (Classification.summary()). An optional [classify] table takes transient, "
                    "window, max_period, lyapunov and tol.")
    classify.add_argument("config", metavar="CONFIG.toml",
                          help=config_help + " and an optional [classify] table")
    classify.add_argument("--figure", metavar="FILE.png", help="save the classification figure there")
    classify.add_argument("--out", metavar="FILE.json",
                          help="save the classification (regime and evidence) as JSON")
    classify.set_defaults(handler=_classify)

    sweep = commands.add_parser(
        "sweep", help="classify the system of a TOML config over a parameter grid (a phase diagram)",
        description="Sweep the [block] or [map] of CONFIG over the axes of its [sweep] table, classify "
                    "every grid point, and write OUTDIR/phase.npz and OUTDIR/phase.png. Finished chunks "
                    "are kept in OUTDIR/chunks: running the same command again resumes an interrupted sweep.")
    _stored_arguments(sweep, config_help, "sweep", "loops per point")
    sweep.add_argument("--field", default="regime",
                       help="what the figure shows: 'regime' (default, written to OUTDIR/phase.png) or a "
                            "diagnostic, e.g. convergence_rate (OUTDIR/phase-FIELD.png)")
    sweep.set_defaults(handler=_sweep)

    orbit = commands.add_parser(
        "orbit", help="draw the orbit (bifurcation) diagram of a TOML config",
        description="For every value of the [orbit] table's parameter, iterate the [block] or [map] of "
                    "CONFIG and keep the attractor's last points (dynloop.orbit_diagram); print a summary "
                    "and save the diagram and its figure. [orbit]: parameter = NAME, values = a list or "
                    "{start, stop, num}; optional loops, keep, coordinate, regimes.")
    orbit.add_argument("config", metavar="CONFIG.toml", help=config_help + " and an [orbit] table")
    orbit.add_argument("--loops", type=int, help="loops per value (overrides [orbit] loops; default 1000)")
    orbit.add_argument("-o", "--out", metavar="FILE.npz",
                       help="save the orbit diagram there (dynloop plot draws it)")
    orbit.add_argument("--figure", metavar="FILE.png", help="save the figure there")
    orbit.set_defaults(handler=_orbit)

    basins_parser = commands.add_parser(
        "basins", help="basins of attraction of the system of a TOML config over a grid of start states",
        description="Iterate the [block] or [map] of CONFIG from every start state of the [basins] table's "
                    "grid (dynloop.state_grid: a map's coordinates, or offsets along up to 3 directions "
                    "through a block's state), identify the attractor each reaches (dynloop.basins), and "
                    "write OUTDIR/basins.npz and OUTDIR/basins.png, one colour per attractor. Finished "
                    "chunks are kept in OUTDIR/chunks: running the same command again resumes.")
    _stored_arguments(basins_parser, config_help, "basins", "loops per start at most")
    basins_parser.set_defaults(handler=_basins)

    continue_parser = commands.add_parser(
        "continue", help="continue the attractor of a TOML config in a parameter: fold, flip, Neimark-Sacker",
        description="Follow the fixed point (or cycle) that classify finds at [continue] start as the "
                    "parameter goes to stop (dynloop.continuation, pseudo-arclength), locate every fold, "
                    "flip and Neimark-Sacker point, switch at flips up to depth times, and write "
                    "OUTDIR/continuation.png (over the orbit diagram, for a map), "
                    "OUTDIR/bifurcations.json and every branch as OUTDIR/branch_I_period_P.npz "
                    "(dynloop.Branch.load). With x0 and period, another cycle than the attractor.")
    continue_parser.add_argument("config", metavar="CONFIG.toml",
                                 help=config_help + " and a [continue] table")
    continue_parser.add_argument("-o", "--out", metavar="OUTDIR", required=True, help="output directory")
    continue_parser.add_argument("--depth", type=int,
                                 help="period doublings to follow (overrides [continue] depth)")
    continue_parser.set_defaults(handler=_continue)

    schemes = commands.add_parser(
        "schemes",
        help="list the block components: norm placements, norm kinds, injections, mixers, activations",
        description="List every value the [block] table's scheme fields take, with what it computes "
                    "(dynloop.components; the exact equations are in dynloop/systems/MODEL.md).")
    schemes.set_defaults(handler=_schemes)

    plot = commands.add_parser("plot", help="draw a phase or orbit diagram file",
                               description="Draw a phase diagram written by 'dynloop sweep' "
                                           "(OUTDIR/phase.npz) or an orbit diagram written by "
                                           "'dynloop orbit --out'.")
    plot.add_argument("file", metavar="FILE.npz", help="phase or orbit diagram file")
    plot.add_argument("--field", default="regime",
                      help="phase diagrams: 'regime' (default) or a diagnostic, e.g. convergence_rate")
    plot.add_argument("-o", "--out", metavar="FIGURE.png", help="figure path (default: next to FILE)")
    plot.set_defaults(handler=_plot)

    analyze = commands.add_parser(
        "analyze", help="metrics of a loop recording (attention stabilisation, stages, tokens) and a report",
        description="Analyse a recording of a looped model (FILE.npz or .safetensors: per-stage states and "
                    "attention, dumped from PyTorch as in docs/recordings.md, or saved by dynloop), or "
                    "simulate the [block] of CONFIG.toml with attention first ([analyze] loops, default "
                    "128). Prints LoopAnalysis.summary() and writes OUTDIR/report.md with every figure, "
                    "OUTDIR/analysis.npz and OUTDIR/recording.npz.")
    analyze.add_argument("file", metavar="FILE", help="a recording (.npz, .safetensors) or a CONFIG.toml")
    analyze.add_argument("-o", "--out", metavar="OUTDIR", required=True, help="output directory")
    analyze.add_argument("--loops", type=int, help="loops to simulate (CONFIG.toml only)")
    analyze.add_argument("--reference", metavar="FILE.npz",
                         help="a reference recording (e.g. a feedforward model) for the stage profiles")
    analyze.add_argument("--tol", type=float, help="convergence tolerance (default 1e-6; 1e-4 for float32)")
    analyze.set_defaults(handler=_analyze)

    claims = commands.add_parser(
        "claims", help="test the seed study's claims on toy blocks: claims.md with figures",
        description="Test the seed study's claims on toy blocks and write OUTDIR/claims.md with figures, one "
                    "section per claim with its setup, criteria and verdict. Finished work is stored under "
                    "OUTDIR/stores: run the same command again to continue an interrupted atlas.")
    claims.add_argument("-o", "--out", metavar="OUTDIR", required=True, help="output directory")
    claims.add_argument("--quick", action="store_true", help="coarser grids and one seed")
    claims.add_argument("--only", metavar="NAME", action="append",
                        help="run only this claim (repeat, or separate names by commas)")
    claims.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    claims.set_defaults(handler=_claims)
    theory = commands.add_parser(
        "theory", help="derive the stability conditions of a scheme symbolically",
        description=_theory_help())
    theory.add_argument("scheme", nargs="*", metavar="SCHEME",
                        help="key=value words, e.g. norm=post layers=2")
    theory.add_argument("--structure", default="scalar",
                        help="scalar (default), diagonal, commuting, 2x2 or general")
    theory.add_argument("--format", choices=("md", "latex"), default="md", help="Markdown (default) or LaTeX")
    theory.add_argument("--param", action="append", metavar="NAME=VALUE",
                        help="fix a symbol before solving (repeatable), e.g. --param w0=0.5")
    theory.set_defaults(handler=_theory)
    return parser


#: What a user's mistake raises; anything else is a bug in dynloop and keeps its traceback.
_USER_ERRORS = (ValueError, TypeError, KeyError, OSError, RuntimeError, MemoryError)


def _message(error):
    if isinstance(error, KeyError):
        return f"missing key {error.args[0]!r}" if error.args else "missing key"
    return str(error) or type(error).__name__


def main(argv=None):
    """Run the ``dynloop`` command; returns the exit status.

    0 on success, 1 without a command, 2 for a mistake in the input (one line on stderr, no
    traceback unless ``--traceback`` or ``DYNLOOP_DEBUG=1``), 130 when interrupted (Ctrl-C),
    141 when the reader of its output closed the pipe (``dynloop classify ... | head``).

    Examples
    --------
    >>> from dynloop.cli import main
    >>> main(["plot", "no-such-file.npz"])  # prints "dynloop plot: error: ..." on stderr
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    debug = args.traceback or os.environ.get("DYNLOOP_DEBUG", "").strip() not in ("", "0")
    prog = f"dynloop {args.command}"
    try:
        return args.handler(args)
    except _Interrupted as interrupted:
        print(f"{prog}: interrupted: {interrupted}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (``dynloop classify ... | head``): stop quietly, as
        # Unix tools do, with stdout pointed at /dev/null so that Python's exit flush cannot fail
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the broken pipe
    except BaseException as error:  # noqa: B036 - Ctrl-C and user mistakes end in one line, bugs do not
        if caused_by_interrupt(error):
            if debug:
                import traceback

                traceback.print_exc()
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        if not isinstance(error, _USER_ERRORS):
            raise
        if debug:
            import traceback

            traceback.print_exc()
        print(f"{prog}: error: {_message(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
