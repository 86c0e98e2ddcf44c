"""Theory against numerics: a :class:`~dynloop.symbolic.Derivation`'s predicted regimes against a sweep.

:func:`check` (``Derivation.check``) predicts the regime of every cell of a phase diagram with the
derivation's one predictor and compares cell by cell; cells near a predicted boundary (where
finite loop budgets blur the regimes) are counted apart. "Near" is the neighbour-change band of
:func:`dynloop.sweep.phase.near_changes`, the same test ``PhaseDiagram.boundaries`` uses.
"""

__all__ = ["CheckResult", "check"]

import dataclasses

import numpy as np
import sympy

from .._errors import invalid
from ..dynamics.regimes import Regime
from ..sweep.phase import near_changes


@dataclasses.dataclass
class CheckResult:
    """Theory against simulation on one grid.

    Attributes
    ----------
    predicted, simulated : ndarray of int
        Regime codes per cell.
    near_boundary : ndarray of bool
        Cells within ``band`` cells of a predicted boundary.
    band : int
    """

    predicted: np.ndarray
    simulated: np.ndarray
    near_boundary: np.ndarray
    band: int

    @property
    def covered(self):
        """Cells where the theory makes a prediction (not ``undetermined``)."""
        return self.predicted != Regime.UNDETERMINED.code

    @property
    def agreement(self):
        """Fraction of covered cells where theory and simulation agree."""
        mask = self.covered
        return float(np.mean(self.predicted[mask] == self.simulated[mask])) if mask.any() else float("nan")

    @property
    def agreement_outside_band(self):
        """The same, leaving out the cells next to a predicted boundary."""
        mask = self.covered & ~self.near_boundary
        return float(np.mean(self.predicted[mask] == self.simulated[mask])) if mask.any() else float("nan")

    @property
    def coverage(self):
        return float(np.mean(self.covered))

    def disagreements(self):
        """Indices of covered cells outside the band where theory and simulation differ."""
        return np.argwhere(self.covered & ~self.near_boundary & (self.predicted != self.simulated))

    def summary(self):
        """The numbers, in words.

        Examples
        --------
        >>> import numpy as np
        >>> from dynloop import Regime
        >>> from dynloop.symbolic.compare import CheckResult
        >>> V, D = Regime.VANISHING.code, Regime.DIVERGENT.code
        >>> near = np.array([False, True, True, False])
        >>> r = CheckResult(np.array([V, V, D, D]), np.array([V, D, D, D]), near, 1)
        >>> print(r.summary())
        theory vs simulation on 4 cells: theory predicts 100.0 % of them
          agreement 75.0 % (all predicted cells), 100.0 % outside a 1-cell band around the predicted
          boundaries (2 cells)
        """
        outside = int(np.count_nonzero(self.covered & ~self.near_boundary))
        return (f"theory vs simulation on {self.predicted.size} cells: theory predicts "
                f"{100 * self.coverage:.1f} % of them\n  agreement {100 * self.agreement:.1f} % "
                f"(all predicted cells), {100 * self.agreement_outside_band:.1f} % outside a "
                f"{self.band}-cell band around the predicted boundaries ({outside} cells)")


def check(d, phase_diagram, band=2, **values):
    """``Derivation.check``: predict every cell of ``phase_diagram`` and compare; see that method.

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> from dynloop.symbolic import derive
    >>> from dynloop.symbolic.compare import check
    >>> diagram = dynloop.sweep(dynloop.maps.logistic(), {"r": np.linspace(0.5, 2.9, 9)}, loops=2000,
    ...                         progress=False)
    >>> check(derive(dynloop.maps.logistic()), diagram).agreement_outside_band
    1.0
    """
    axes = phase_diagram.axes
    if len(axes) > 2:
        raise invalid("phase_diagram", phase_diagram, "expected a diagram with one or two numeric axes")
    names = d._axis_names(*list(axes)[:2]) if len(axes) == 2 else d._axis_names(list(axes)[0], None)[:1]
    grids = np.meshgrid(*[np.asarray(v, dtype=float) for v in axes.values()], indexing="ij")
    arguments = d._values({**values, **dict(zip(names, grids))})
    predicted = d._predict(arguments)
    return CheckResult(predicted, np.asarray(phase_diagram.regimes, dtype=np.int64),
                       _near_boundary(d, predicted, arguments, band), band)


def _near_boundary(d, predicted, arguments, band):
    """Cells within ``band`` cells of a change of the predicted regime or of a boundary equation's sign."""
    near = near_changes(predicted, band)
    for boundary in d.boundaries:
        f = sympy.lambdify(d.parameters, boundary.equation, "numpy")
        with np.errstate(all="ignore"):
            sign = np.sign(np.real(np.broadcast_to(
                f(*[np.asarray(arguments[s.name], dtype=float) for s in d.parameters]), predicted.shape)))
        # where the equation is undefined (a branch that does not exist: sqrt of a negative number) the
        # sign is NaN, one more value: near_changes counts NaN next to NaN as no change
        near |= near_changes(sign, band)
    return near
