"""Symbolic stability theory of looped blocks and maps (sympy).

``derive`` turns a block scheme (or a map) into sympy objects: stage maps and their Jacobians,
fixed points and per-stage points, the loop Jacobian, its characteristic polynomial, Jury's
stability conditions and the fold / flip / Neimark–Sacker boundaries; the resulting
:class:`Derivation` predicts regimes numerically (``predicate``), draws its boundaries on a phase
diagram (``overlay``) and checks itself against a sweep (``check``). sympy works within the time
limits of a :class:`Budget`.

Modules: ``stages`` (each stage of a scheme and its Jacobian), ``jury`` (Jury's conditions),
``solve`` (fixed points and cycles within the budget), ``derivation`` (the :class:`Derivation` and
its regime predictor), ``render`` (Markdown, LaTeX, overlays), ``compare`` (checks against sweeps)
and ``derive`` (the front end).

Examples
--------
>>> import dynloop.symbolic as symbolic
>>> d = symbolic.derive(symbolic.Scheme(norm="none", injection="none"), structure="diagonal")
>>> d.conditions
[Abs(alpha*lambda0 + 1) < 1]
"""

from .derive import Boundary, Branch, Budget, Derivation, derive
from .jury import jury
from .stages import Scheme

__all__ = ["derive", "jury", "Derivation", "Scheme", "Branch", "Boundary", "Budget"]
