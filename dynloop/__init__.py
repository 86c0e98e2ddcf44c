"""dynloop: looped transformer blocks as dynamical systems.

The public names, nothing else; see the README for a tour.
"""

from .dynamics import Trajectory, simulate
from .systems.block import BlockSpec
from . import maps
from .systems.maps import Map
from .systems.affine import AffineLoop

__version__ = "0.1.0"

__all__ = ["BlockSpec", "simulate", "Trajectory", "Map", "AffineLoop", "maps", "__version__"]
