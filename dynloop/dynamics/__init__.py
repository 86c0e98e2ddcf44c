"""What is computed on a System: iteration, regimes, orbits and multipliers, Lyapunov spectra, basins,
continuation."""

from .basins import Attractor, BasinMap, basins, state_grid
from .cellmap import CellMap, cell_map
from .continuation import Bifurcation, Branch, bifurcation_diagram, continuation

from .classify import Classification, classify
from .lyapunov import LyapunovSpectrum, lyapunov_spectrum
from .orbits import Cycle, find_cycle
from .recording import LoopRecording, load_recording
from .regimes import Regime
from .simulate import Trajectory, simulate

__all__ = ["simulate", "Trajectory", "classify", "Classification", "Regime", "find_cycle", "Cycle",
           "lyapunov_spectrum", "LyapunovSpectrum", "LoopRecording", "load_recording", "state_grid", "basins",
           "BasinMap", "Attractor", "cell_map", "CellMap", "continuation", "Branch", "Bifurcation",
           "bifurcation_diagram"]
