"""dynloop: looped transformer blocks as dynamical systems.

The public names, nothing else; see the README for a tour.
"""

from ._cache import configure_numba_cache

configure_numba_cache()  # before any kernel is compiled or loaded  # noqa: E402

from . import maps  # noqa: E402
from .dynamics import (Classification, Cycle, LyapunovSpectrum, Regime, Trajectory, classify, find_cycle,
                       lyapunov_spectrum, simulate)
from .systems.affine import AffineLoop
from .systems.block import BlockSpec
from .systems.maps import Map
from .sweep import OrbitDiagram, PhaseDiagram, orbit_diagram, sweep

__version__ = "0.1.0"

__all__ = ["BlockSpec", "AffineLoop", "Map", "maps", "simulate", "Trajectory", "classify", "Classification",
           "Regime", "find_cycle", "Cycle", "lyapunov_spectrum", "LyapunovSpectrum", "sweep", "PhaseDiagram",
           "orbit_diagram", "OrbitDiagram", "__version__"]
