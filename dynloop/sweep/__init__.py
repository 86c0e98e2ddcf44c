"""Phase diagrams: grids, the compiled parallel kernel, chunk storage and resume, executors."""

from .engine import sweep
from .orbit import orbit_diagram
from .phase import OrbitDiagram, PhaseDiagram

__all__ = ["sweep", "orbit_diagram", "PhaseDiagram", "OrbitDiagram"]
