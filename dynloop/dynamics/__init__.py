"""What is computed on a System: iteration (and, later, regimes, orbits, Lyapunov spectra)."""

from .simulate import Trajectory, simulate

__all__ = ["simulate", "Trajectory"]
