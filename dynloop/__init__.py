"""dynloop: looped transformer blocks as dynamical systems.

The public names, nothing else; see the README for a tour.
"""

from ._cache import configure_numba_cache, interrupts_end_the_command

configure_numba_cache()  # before any kernel is compiled or loaded  # noqa: E402

with interrupts_end_the_command():  # a cold first import compiles kernels: Ctrl-C there is no error
    from . import maps  # noqa: E402
    from .dynamics import (Attractor, BasinMap, Bifurcation, Branch, CellMap, Classification, Cycle,
                           LoopRecording, LyapunovSpectrum, Regime, Trajectory, basins, bifurcation_diagram,
                           cell_map, classify, continuation, find_cycle, load_recording, lyapunov_spectrum,
                           simulate, state_grid)
    from .systems.affine import AffineLoop
    from .systems.block import BlockSpec
    from .systems.maps import Map
    from .sweep import OrbitDiagram, PhaseDiagram, orbit_diagram, sweep
    from .analysis import LoopAnalysis, analyze

from ._version import __version__  # noqa: E402


def __getattr__(name):
    """``dynloop.symbolic`` is imported on first use: sympy is slow to import and most uses skip it."""
    if name == "symbolic":
        import importlib

        return importlib.import_module(".symbolic", __name__)
    raise AttributeError(f"module 'dynloop' has no attribute {name!r}")


__all__ = ["BlockSpec", "AffineLoop", "Map", "maps", "simulate", "Trajectory", "classify", "Classification",
           "Regime", "find_cycle", "Cycle", "lyapunov_spectrum", "LyapunovSpectrum", "sweep", "PhaseDiagram",
           "orbit_diagram", "OrbitDiagram", "LoopRecording", "load_recording", "analyze", "LoopAnalysis",
           "state_grid", "basins", "BasinMap", "Attractor", "cell_map", "CellMap", "continuation", "Branch",
           "Bifurcation", "bifurcation_diagram", "__version__"]
