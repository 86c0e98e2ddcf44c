"""Symbolic stability theory of looped blocks and maps (sympy).

``derive`` turns a block scheme (or a map) into sympy objects: stage maps and their Jacobians,
fixed points and per-stage points, the loop Jacobian, its characteristic polynomial, Jury's
stability conditions and the fold / flip / Neimark–Sacker boundaries; the resulting
:class:`Derivation` predicts regimes numerically (``predicate``), draws its boundaries on a phase
diagram (``overlay``) and checks itself against a sweep (``check``).

Examples
--------
>>> import dynloop.symbolic as symbolic
>>> d = symbolic.derive(symbolic.Scheme(norm="none", injection="none"), structure="diagonal")
>>> d.conditions
[Abs(alpha*lambda0 + 1) < 1]
"""

from .derive import Boundary, Branch, Derivation, derive
from .jury import jury
from .stages import Scheme

__all__ = ["derive", "jury", "Derivation", "Scheme", "Branch", "Boundary"]
