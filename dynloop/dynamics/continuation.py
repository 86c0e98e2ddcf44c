"""Continuation of fixed points and cycles in a parameter, with fold, flip and Neimark–Sacker points.

A ``p``-cycle of the loop map ``f(·; λ)`` is a zero of ``F(x, λ) = f^p(x; λ) − x``. Pseudo-arclength
continuation follows the curve of zeros in ``(x, λ)``: from a point ``u_k`` with unit tangent
``t_k`` it predicts ``u_k + h t_k`` and corrects by Newton's method on ``F = 0`` together with
``t_k · (u − u_k) = h``, so the branch is followed through folds, where it turns back in ``λ``.
``F_x = J − I`` uses the analytic loop Jacobians (``J`` the product of the ``p`` loop Jacobians
along the orbit); ``F_λ`` is a central difference in ``λ`` with step ``h_λ = ε^{1/3} max(1, |λ|)``
(about 6e-6), whose error is of order ``h_λ² |∂³f/∂λ³| / 6 + ε |f| / h_λ`` (an estimate, not a
measurement; the corrector converges to the same branch whatever small error ``F_λ`` has, it only
slows Newton's method).

Along the branch, three test functions of the multipliers ``μ_i`` (eigenvalues of ``J``) change
sign where a bifurcation lies:

- fold, ``det(J − I)`` (a real multiplier crosses +1);
- flip, ``det(J + I)`` (a real multiplier crosses −1);
- Neimark–Sacker, the bialternate product ``Π_{i<j} (μ_i μ_j − 1)`` (a complex pair crosses the
  unit circle; a real pair ``μ, 1/μ`` also zeroes it, a neutral saddle, which is not reported).

Each is taken as ``sign · exp(mean log |factor|)`` so that it stays of order one in any dimension.
Between two branch points where one changes sign, the zero is found by Brent's method on the
arclength, each trial point corrected onto the branch, until the parameter is known to ``tol``.
The trials follow the crossing multiplier ``μ`` alone (shifted inverse iteration), with the test
``μ − 1``, ``μ + 1`` or ``|μ|² − 1``: a simple zero, where the whole-spectrum functions, nearly flat
beside their zero, would make Brent's method bisect.

References
----------
Y. A. Kuznetsov, "Elements of Applied Bifurcation Theory", 3rd ed., Springer (2004), ch. 10.
"""

__all__ = ["continuation", "Branch", "Bifurcation", "bifurcation_diagram"]

import math
import numbers
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .._errors import check_int, check_real, invalid
from ..systems.base import check_system
from .orbits import _orbit, _orbit_jacobian, find_cycle

KINDS = ("fold", "flip", "neimark_sacker")
_NAMES = {"fold": "fold", "flip": "flip (period doubling)", "neimark_sacker": "Neimark–Sacker"}
# BlockSpec fields that the weights do not depend on
_WEIGHTLESS = ("residual_scale", "injection_scale", "skip_scale", "norm_eps", "init_scale")
_NEWTON_STEPS = 12
_EPS = np.finfo(float).eps
_FORMAT = "dynloop.Branch"
_VERSION = 1


@dataclass
class Bifurcation:
    """A bifurcation point of a :class:`Branch`.

    Attributes
    ----------
    kind : {"fold", "flip", "neimark_sacker"}
    parameter : float
        The parameter value, located to the continuation's ``tol``.
    state : ndarray
        The cycle's point (the state entering the loop) there.
    multipliers : ndarray
        The multipliers there, largest modulus first.
    index : int
        The branch point after which it lies (between ``index`` and ``index + 1``).
    rotation : float or None
        For a Neimark–Sacker point, the rotation number ``arg(μ) / 2π`` of the critical pair
        (in (0, 1/2)); else None.
    """

    kind: str
    parameter: float
    state: np.ndarray
    multipliers: np.ndarray
    index: int = 0
    rotation: float | None = None

    def describe(self):
        """One line: the kind, where, and the critical multiplier."""
        words = _NAMES[self.kind]
        text = f"{words} at {self.parameter:.10g}"
        if self.rotation is not None:
            text += f", rotation number {self.rotation:.6g}"
        return text


class _Family:
    """The system at any value of the continued parameter: a map's parameter or a BlockSpec field."""

    def __init__(self, system, parameter, params):
        self.system, self.parameter = system, parameter
        if system.kind == "map":
            if parameter not in system.param_names:
                raise invalid("parameter", parameter, f"not a parameter of {system.name}; its parameters: "
                              + ", ".join(system.param_names))
            self.base = system.resolve_params(params)
        elif system.kind == "block":
            import dataclasses

            numeric = [f.name for f in dataclasses.fields(system)
                       if isinstance(getattr(system, f.name), numbers.Real)
                       and not isinstance(getattr(system, f.name), (bool, numbers.Integral))]
            if parameter not in numeric:
                raise invalid("parameter", parameter, "not a float field of BlockSpec; allowed: "
                              + ", ".join(numeric))
            if params:
                raise invalid("params", params, "a block has no parameters besides its fields")
            self.base = None
        else:
            raise invalid("system", type(system).__name__,
                          "continuation takes a dynloop.Map or a dynloop.BlockSpec")
        self._cache = {}
        # the state's weight in the branch coordinates (w x, λ), w = 1/sqrt(n): a step counts the state's
        # RMS change like the parameter's
        self.weight = 1.0 / math.sqrt(system.state_size)
        self.failure = ""  # why the last correction failed

    def at(self, value):
        """``(system, params)`` at parameter value ``value``."""
        value = float(value)
        if self.system.kind == "map":
            return self.system, dict(self.base, **{self.parameter: value})
        if value not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            changes = {self.parameter: value}
            if self.parameter in _WEIGHTLESS:  # the same weights and input: taken, not drawn again
                arrays = self.system.materialize()
                changes.update(weights=arrays["weights"], inputs=arrays["inputs"])
            self._cache[value] = self.system.replace(**changes)
        return self._cache[value], None


def _evaluate(family, v, period, shape, jacobians=True):
    """``F`` at the branch coordinates ``v = (w x, λ)``, and with ``jacobians`` the orbit Jacobian ``J``
    and ``F_λ`` (central difference)."""
    x, lam = (v[:-1] / family.weight).reshape(shape), v[-1]
    system, params = family.at(lam)
    points = _orbit(system, x, period, params)
    residual = points[-1].ravel() - x.ravel()
    if not jacobians:
        return residual, None, None
    jacobian = _orbit_jacobian(system, points, params)
    h = _EPS ** (1 / 3) * max(1.0, abs(lam))
    plus = _orbit(*_args(family, x, lam + h, period))[-1].ravel()
    minus = _orbit(*_args(family, x, lam - h, period))[-1].ravel()
    return residual, jacobian, (plus - minus) / (2 * h)


def _args(family, x, lam, period):
    system, params = family.at(lam)
    return system, x, period, params


def _system_matrix(jacobian, f_lam, row, weight):
    """``[[(J − I) / w, F_λ], [row]]``: the Jacobian of ``F`` in the branch coordinates, and a last row."""
    n = jacobian.shape[0]
    matrix = np.empty((n + 1, n + 1))
    matrix[:n, :n] = (jacobian - np.eye(n)) / weight
    matrix[:n, n] = f_lam
    matrix[n] = row
    return matrix


def _tangent(jacobian, f_lam, previous, weight):
    """Unit null vector of ``[(J − I) / w | F_λ]`` oriented along ``previous``."""
    n = jacobian.shape[0]
    matrix = _system_matrix(jacobian, f_lam, previous, weight)
    rhs = np.zeros(n + 1)
    rhs[n] = 1.0
    tangent = np.linalg.solve(matrix, rhs)
    tangent /= np.linalg.norm(tangent)
    return tangent if tangent @ previous >= 0 else -tangent


def _correct(family, predicted, anchor, tangent, arclength, period, shape, tol, chord=None):
    """Newton's method on ``F = 0``, ``tangent · (u − anchor) = arclength`` from ``predicted``.

    With ``chord = (J, F_λ)`` (the Jacobians at the anchor) the matrix is kept from iteration to
    iteration (the chord method: one loop Jacobian per branch point rather than one per
    iteration), and full Newton takes over if that does not converge. Returns
    ``(u, J, F_λ, iterations)``, the Jacobians taken at the converged point, or None.
    """
    family.failure = "did not converge"
    for fixed in ((True, False) if chord is not None else (False,)):
        u = predicted.copy()
        matrix = None
        for iteration in range(1, _NEWTON_STEPS + 1):
            with np.errstate(all="ignore"):
                if fixed:
                    residual = _evaluate(family, u, period, shape, jacobians=False)[0]
                    jacobian, f_lam = chord
                else:
                    residual, jacobian, f_lam = _evaluate(family, u, period, shape)
            if not (np.all(np.isfinite(residual)) and np.all(np.isfinite(jacobian))):
                break
            if matrix is None or not fixed:
                matrix = _system_matrix(jacobian, f_lam, tangent, family.weight)
            rhs = -np.concatenate([residual, [tangent @ (u - anchor) - arclength]])
            try:
                delta = np.linalg.solve(matrix, rhs)
            except np.linalg.LinAlgError:
                family.failure = "met a singular Jacobian [F_x | F_λ; tangent]"
                break
            u = u + delta
            with np.errstate(all="ignore"):  # a branch running off to infinity: not finite, not converged
                scale = max(1.0, float(np.linalg.norm(u)))
                done = (np.linalg.norm(delta) <= tol * scale
                        and np.linalg.norm(residual) <= math.sqrt(tol) * scale)
            if not np.isfinite(scale):
                break
            if done:
                residual, jacobian, f_lam = _evaluate(family, u, period, shape)
                return u, jacobian, f_lam, iteration
    return None


def _signed_size(factors):
    """``sign(Π factors) · exp(mean log |factor|)`` of real or complex-conjugate factors (real product)."""
    if factors.size == 0:
        return 1.0
    magnitude = np.abs(factors)
    if np.any(magnitude == 0):
        return 0.0
    phase = np.prod(factors / magnitude)
    return float(np.sign(phase.real) * np.exp(np.mean(np.log(magnitude))))


def _factors(multipliers, kind_index):
    """The factors of the fold (``μ − 1``), flip (``μ + 1``) or Neimark–Sacker (``μ_i μ_j − 1``) test."""
    if kind_index < 2:
        return multipliers + (1.0 if kind_index else -1.0)
    i, j = np.triu_indices(multipliers.size, k=1)
    return multipliers[i] * multipliers[j] - 1.0


def _tests(multipliers):
    """The fold, flip and Neimark–Sacker test functions of the multipliers."""
    return np.array([_signed_size(_factors(multipliers, k)) for k in range(3)])


def _sorted(multipliers):
    return multipliers[np.argsort(-np.abs(multipliers), kind="stable")]


def _multipliers(jacobian):
    return _sorted(np.linalg.eigvals(jacobian))


@dataclass
class Branch:
    """A branch of fixed points (or ``period``-cycles) followed in a parameter: from :func:`continuation`.

    Attributes
    ----------
    parameter_name : str
    parameter : ndarray, shape (n,)
    states : ndarray, shape (n, *state_shape)
        The cycle's point entering the loop at every branch point.
    multipliers : ndarray, shape (n, dim)
        Largest modulus first.
    stable : ndarray of bool, shape (n,)
    bifurcations : list of Bifurcation
        In the order the branch meets them.
    period : int
    stage_points : ndarray or None
        For a block: the per-stage points of the cycle, shape ``(n, period * S, *state_shape)``.
    degeneracy : ndarray or None
        For a block at period 1: the smallest cosine between two layers' points along the branch.
    meta : dict
    """

    parameter_name: str
    parameter: np.ndarray
    states: np.ndarray
    multipliers: np.ndarray
    stable: np.ndarray
    bifurcations: list
    period: int = 1
    stage_points: np.ndarray | None = None
    degeneracy: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    _family: object = field(default=None, repr=False)
    _loops: np.ndarray | None = field(default=None, repr=False)  # loop_points, once computed

    def __len__(self):
        return self.parameter.size

    def loop_points(self):
        """The states entering every loop of each branch point's cycle: ``(n, period, *state_shape)``."""
        if self.period == 1:
            return self.states[:, None]
        if self._loops is None:
            family = self._require_system("loop_points")
            rows = []
            for x, value in zip(self.states, self.parameter):
                system, params = family.at(value)
                rows.append(np.array(_orbit(system, x, self.period, params)[:-1]))
            self._loops = np.array(rows)
        return self._loops

    def summary(self):
        """A description in words: the range followed, stability, and every bifurcation."""
        name = self.meta.get("system_name", "a system")
        what = "fixed points" if self.period == 1 else f"period-{self.period} cycles"
        lines = [f"Branch of {what} of {name} in {self.parameter_name}: {len(self)} points, "
                 f"{self.parameter_name} from {self.parameter[0]:.6g} to {self.parameter[-1]:.6g} "
                 f"(range {self.parameter.min():.6g} … {self.parameter.max():.6g})",
                 f"stable at {int(self.stable.sum())} of {len(self)} points; "
                 f"stopped: {self.meta.get('stopped')}"]
        if self.bifurcations:
            lines.append("bifurcations:")
            lines.extend(f"  {b.describe()}" for b in self.bifurcations)
        else:
            lines.append("no bifurcation on the branch")
        for value in self.meta.get("branch_points", ()):
            lines.append(f"branch point at {self.parameter_name} = {value:.10g}: a multiplier is +1 but the "
                         "branch does not turn back ([F_x | F_λ] is singular off a fold; another branch "
                         "of cycles crosses this one there)")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def _repr_html_(self):
        from html import escape

        return "<pre>" + escape(self.summary()) + "</pre>"

    def plot(self, path=None, *, coordinate=None, ax=None):
        """The state's norm (or ``coordinate``) against the parameter: stable solid, unstable dashed,
        bifurcations marked.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from ..plotting import plot_branches

        return plot_branches([self], path, coordinate=coordinate, ax=ax)

    def save(self, path):
        """Write the branch to one compressed ``.npz`` file (arrays and a JSON header); :meth:`load` reads it.

        Examples
        --------
        >>> import os, tempfile, dynloop
        >>> logistic = dynloop.maps.logistic()
        >>> branch = dynloop.continuation(logistic, "r", start=2.5, stop=3.3, x0=[0.6])
        >>> path = os.path.join(tempfile.mkdtemp(), "branch.npz")
        >>> branch.save(path)
        >>> loaded = dynloop.Branch.load(path, logistic)
        >>> [(b.kind, round(b.parameter, 10)) for b in loaded.bifurcations]
        [('flip', 3.0)]
        >>> loaded.switch(loaded.bifurcations[0]).period
        2
        """
        from ..sweep.phase import _write_npz

        header = {"format": _FORMAT, "version": _VERSION, "parameter_name": self.parameter_name,
                  "period": self.period, "meta": self.meta,
                  "bifurcations": [{"kind": b.kind, "parameter": b.parameter, "index": b.index,
                                    "rotation": b.rotation} for b in self.bifurcations]}
        arrays = {"parameter": self.parameter, "states": self.states, "multipliers": self.multipliers,
                  "stable": self.stable}
        for name in ("stage_points", "degeneracy"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        if self.period > 1:  # so that a branch loaded without its system can still be drawn
            arrays["loop_points"] = self.loop_points()
        for i, b in enumerate(self.bifurcations):
            arrays[f"bifurcation_state_{i}"] = b.state
            arrays[f"bifurcation_multipliers_{i}"] = b.multipliers
        _write_npz(path, header, arrays)

    @classmethod
    def load(cls, path, system=None, *, params=None):
        """Read a branch written by :meth:`save`.

        Parameters
        ----------
        path : str or Path
        system : Map or BlockSpec, optional
            The system the branch was computed for. Without it the branch holds its arrays and
            bifurcations; with it, :meth:`switch` and :meth:`loop_points` work as on the original.
        params : dict, optional
            A map's other parameters (default: the ones the branch was computed with).

        Returns
        -------
        Branch
        """
        from ..sweep.phase import _read_npz

        header, arrays = _read_npz(path, _FORMAT)
        meta = header["meta"]
        bifurcations = [Bifurcation(kind=entry["kind"], parameter=entry["parameter"],
                                    state=arrays[f"bifurcation_state_{i}"],
                                    multipliers=arrays[f"bifurcation_multipliers_{i}"], index=entry["index"],
                                    rotation=entry["rotation"])
                        for i, entry in enumerate(header["bifurcations"])]
        family = None
        if system is not None:
            check_system(system)
            if system.name != meta.get("system_name"):
                raise invalid("system", system.name, f"the branch in {str(path)!r} was computed for "
                              f"{meta.get('system_name')!r}")
            if tuple(system.state_shape) != arrays["states"].shape[1:]:
                raise invalid("system", f"state shape {tuple(system.state_shape)}",
                              f"the branch's states have shape {arrays['states'].shape[1:]}")
            given = meta.get("params") if params is None else params
            family = _Family(system, header["parameter_name"], given)
        return cls(parameter_name=header["parameter_name"], parameter=arrays["parameter"],
                   states=arrays["states"], multipliers=arrays["multipliers"], stable=arrays["stable"],
                   bifurcations=bifurcations, period=header["period"],
                   stage_points=arrays.get("stage_points"), degeneracy=arrays.get("degeneracy"), meta=meta,
                   _family=family,
                   _loops=arrays.get("loop_points"))

    def _require_system(self, what):
        if self._family is None:
            raise ValueError(f"{what} needs the system: this branch was loaded without one; "
                             "use dynloop.Branch.load(path, system)")
        return self._family

    def switch(self, bifurcation, *, stop=None, step=None, max_points=10000, tol=None):
        """The branch of period-doubled cycles that a flip point of this branch starts.

        Parameters
        ----------
        bifurcation : Bifurcation
            A flip point of this branch.
        stop : float, optional
            Where to follow the new branch to (default: this branch's far end of its range).

        Returns
        -------
        Branch
        """
        if bifurcation.kind != "flip":
            raise invalid("bifurcation", bifurcation.kind, "branch switching starts at a flip point")
        family, shape = self._require_system("switch"), self.states.shape[1:]
        system, params = family.at(bifurcation.parameter)
        points = _orbit(system, bifurcation.state, self.period, params)
        jacobian = _orbit_jacobian(system, points, params)
        values, vectors = np.linalg.eig(jacobian)
        direction = np.real(vectors[:, np.argmin(np.abs(values + 1.0))])
        direction /= np.linalg.norm(direction)
        tol = self.meta["tol"] if tol is None else tol
        lo, hi = self.meta["range"]
        # the doubled branch leaves the flip point along the critical eigenvector: start there with
        # that tangent, to whichever side the new cycles exist
        tangent = np.concatenate([direction, [0.0]])
        anchor = np.concatenate([family.weight * bifurcation.state.ravel(), [bifurcation.parameter]])
        size = self.meta["step"]
        scale = max(1.0, float(np.linalg.norm(anchor)))
        for h in (size, size / 4, size / 16):
            corrected = _correct(family, anchor + h * tangent, anchor, tangent, h, 2 * self.period, shape,
                                 tol)
            if corrected is not None and np.linalg.norm(corrected[0][:-1] - anchor[:-1]) > 1e-3 * h * scale:
                break
        else:
            raise RuntimeError(f"no period-{2 * self.period} branch found next to the flip at "
                               f"{bifurcation.parameter:.10g}")
        u, jacobian, f_lam, _ = corrected
        stop = (hi if u[-1] >= bifurcation.parameter else lo) if stop is None else check_real("stop", stop)
        return _follow(family, u, 2 * self.period, shape, (min(lo, hi, stop), max(lo, hi, stop)), stop,
                       size if step is None else step, max_points, tol, {**self.meta, "switched_from": {
                           "kind": "flip", "parameter": bifurcation.parameter}})


def continuation(system, parameter, *, start, stop, x0=None, period=1, params=None, step=None,
                 max_points=10000, tol=1e-10):
    """Follow a fixed point (or a ``period``-cycle) of the loop map as ``parameter`` goes from ``start`` on.

    Parameters
    ----------
    system : Map or BlockSpec
    parameter : str
        A map parameter's name, or a float field of ``BlockSpec`` (``residual_scale``,
        ``injection_scale``, ``weight_gain``, ``skip_scale``, ``norm_eps``, ``init_scale``).
    start, stop : float
        The parameter range; the branch starts at ``start`` and goes towards ``stop``, through
        folds, until the parameter leaves the range or ``max_points`` are taken.
    x0 : array_like, optional
        A state on (or near) the cycle at ``start``; by default the refined attractor that
        :func:`dynloop.classify` finds at ``start``.
    period : int
        Continue fixed points of the ``period``-th iterate of the loop map.
    params : dict, optional
        A map's other parameters.
    step : float, optional
        First arclength step (default ``|stop − start| / 200``); it grows after easy corrections,
        up to 10 times this, and halves after failed ones.
    max_points : int
    tol : float
        Newton's tolerance, and the accuracy of every bifurcation's parameter.

    Returns
    -------
    Branch

    Examples
    --------
    >>> import dynloop
    >>> branch = dynloop.continuation(dynloop.maps.logistic(), "r", start=2.5, stop=3.3, x0=[0.6])
    >>> [(b.kind, round(b.parameter, 10)) for b in branch.bifurcations]
    [('flip', 3.0)]
    """
    check_system(system)
    family = _Family(system, parameter, params)
    start, stop = check_real("start", start), check_real("stop", stop)
    if start == stop:
        raise invalid("stop", stop, "expected a value other than start")
    period = check_int("period", period, minimum=1)
    max_points = check_int("max_points", max_points, minimum=2)
    tol = check_real("tol", tol)
    if not 0 < tol < 1e-3:
        raise invalid("tol", tol, "expected a tolerance in (0, 1e-3)")
    step = abs(stop - start) / 200 if step is None else check_real("step", step)
    if step <= 0:
        raise invalid("step", step, "expected a positive arclength step")
    at_start, start_params = family.at(start)
    if x0 is None:
        from .classify import classify

        result = classify(at_start, params=start_params, lyapunov=False)
        if result.period is None or result.stage_fixed_points is None:
            raise ValueError(f"classify finds no converged cycle at {parameter} = {start:g} "
                             f"({result.regime.value}): give x0, a state near the cycle to continue")
        period = result.period if period == 1 else period
        guess = result.stage_fixed_points[system.n_stages - 1]
    else:
        guess = at_start.check_state(x0, "x0")
        if not np.all(np.isfinite(guess)):
            raise invalid("x0", np.asarray(x0).tolist(), "every entry must be finite")
    cycle = find_cycle(at_start, period, guess, params=start_params, tol=min(tol, 1e-12))
    if not cycle.converged:
        raise ValueError(f"Newton's method found no period-{period} cycle near x0 at {parameter} = {start:g}")
    shape = tuple(at_start.state_shape)
    u = np.concatenate([family.weight * cycle.loop_points[0].ravel(), [start]])
    meta = {"system_name": system.name, "parameter": parameter, "range": (min(start, stop), max(start, stop)),
            "step": step, "tol": tol, "kind": system.kind}
    if family.base is not None:
        meta["params"] = {name: float(value) for name, value in family.base.items()}
    return _follow(family, u, period, shape, meta["range"], stop, step, max_points, tol, meta)


def _one_blas_thread():
    """BLAS held to one thread: the multipliers' thread and this one then use a core each."""
    from ..sweep.engine import _blas_controller

    return _blas_controller().limit(limits=1, user_api="blas")


def _follow(family, u, period, shape, bounds, stop, step, max_points, tol, meta):
    """Pseudo-arclength continuation from the branch point ``u`` towards ``stop``."""
    with _one_blas_thread():
        return _follow_here(family, u, period, shape, bounds, stop, step, max_points, tol, meta)


def _follow_here(family, u, period, shape, bounds, stop, step, max_points, tol, meta):
    n = u.size - 1
    residual, jacobian, f_lam = _evaluate(family, u, period, shape)
    direction = np.zeros(n + 1)
    direction[-1] = 1.0 if stop > u[-1] else -1.0
    tangent = _tangent(jacobian, f_lam, direction, family.weight)
    if tangent[-1] * direction[-1] < 0:
        tangent = -tangent
    # the multipliers of each branch point are computed on a second thread while the branch goes on
    # (LAPACK's eigenvalues of a 512-square Jacobian cost about twice the Jacobian itself)
    pool = ThreadPoolExecutor(1)
    points, tangents, spectra = [u], [tangent], [pool.submit(_multipliers, jacobian)]
    chord = (jacobian, f_lam)
    h, largest = step, 10 * step
    stopped = f"max_points ({max_points}) reached"
    lo, hi = bounds
    while len(points) < max_points:
        corrected = _correct(family, points[-1] + h * tangents[-1], points[-1], tangents[-1], h, period,
                             shape, tol, chord=chord)
        if corrected is None:
            h /= 2
            if h < 1e-12 * max(1.0, abs(points[-1][-1])):
                stopped = (f"Newton's corrector {family.failure} even at the smallest step, after "
                           f"{meta['parameter']} = {points[-1][-1]:.10g}")
                break
            continue
        u, jacobian, f_lam, iterations = corrected
        points.append(u)
        spectra.append(pool.submit(_multipliers, jacobian))
        try:
            tangents.append(_tangent(jacobian, f_lam, tangents[-1], family.weight))
        except np.linalg.LinAlgError:
            points.pop()
            spectra.pop()
            stopped = (f"the tangent is not defined at {meta['parameter']} = {u[-1]:.10g}: [F_x | F_λ] is "
                       "singular there and the branch is not at a fold (two branches cross)")
            break
        chord = (jacobian, f_lam)
        if iterations <= 4:
            h = min(1.3 * h, largest)
        if len(points) > 3 and np.linalg.norm(u - points[0]) < 0.5 * h and tangents[-1] @ tangents[0] > 0:
            stopped = "the branch closed on itself (a loop of cycles)"
            break
        if not lo - 1e-12 <= u[-1] <= hi + 1e-12:
            stopped = "the parameter left the range"
            jacobian = _end_at_bound(family, points, tangents, lo if u[-1] < lo else hi, period, shape, tol)
            if jacobian is not None:
                spectra[-1] = pool.submit(_multipliers, jacobian)
            break
    branch_points = np.array(points)
    multipliers = np.array([spectrum.result() for spectrum in spectra])
    pool.shutdown()
    tests = np.array([_tests(m) for m in multipliers])
    bifurcations, crossings = [], []
    for k in range(len(points) - 1):
        for kind_index, kind in enumerate(KINDS):
            if tests[k, kind_index] * tests[k + 1, kind_index] < 0 or tests[k + 1, kind_index] == 0:
                found = _locate(family, points[k], tangents[k], points[k + 1], kind_index, period, shape, tol,
                                multipliers[k:k + 2])
                if found is None:
                    continue
                found.index = k
                # det(J − I) vanishes at a fold, where the branch turns back in the parameter, and at a
                # branch point, where another branch crosses and [F_x | F_λ] is singular: the branch goes
                # on through it, and the tangent's parameter component keeps its sign
                if kind == "fold" and tangents[k][-1] * tangents[k + 1][-1] > 0:
                    crossings.append(found)
                else:
                    bifurcations.append(found)
    def in_range(found):
        return [b for b in found if lo - tol <= b.parameter <= hi + tol]

    bifurcations = in_range(bifurcations)
    inside = (branch_points[:, -1] >= lo - 1e-12) & (branch_points[:, -1] <= hi + 1e-12)
    keep = np.flatnonzero(inside)
    meta = dict(meta, stopped=stopped, steps=len(points),
                branch_points=[b.parameter for b in in_range(crossings)])
    return _branch(family, branch_points[keep], multipliers[keep], period, shape, bifurcations, meta)


def _end_at_bound(family, points, tangents, bound, period, shape, tol):
    """Replace the last point, just past ``bound``, by the branch's point at ``parameter = bound``; return
    its Jacobian (None when that point is not found and the last point stays)."""
    before, after = points[-2], points[-1]
    share = (bound - before[-1]) / (after[-1] - before[-1])
    predicted = before + share * (after - before)
    along = np.zeros(before.size)
    along[-1] = 1.0  # the constraint u[-1] = bound
    corrected = _correct(family, predicted, np.zeros(before.size), along, bound, period, shape, tol)
    if corrected is not None:
        u, jacobian, f_lam, _ = corrected
        points[-1] = u
        tangents[-1] = _tangent(jacobian, f_lam, tangents[-2], family.weight)
        return jacobian
    return None


class _Critical:
    """The multiplier that crosses at a bifurcation, followed from trial to trial by shifted inverse
    iteration (one LU of ``J − σ I`` per trial, ``σ`` its last value), and its test function:
    ``μ − 1`` (fold), ``μ + 1`` (flip) or ``|μ|² − 1`` (Neimark–Sacker), each with a simple zero."""

    def __init__(self, kind_index, before, after):
        """``before``, ``after``: the multipliers at the two branch points. The multiplier followed is
        the one nearest the boundary among those whose nearest multiplier at ``after`` lies across it."""
        self.kind_index = kind_index
        if kind_index == 2:
            def side(mu):
                return np.abs(mu) - 1.0
            ours, theirs = before[before.imag > 1e-9], after[after.imag > 1e-9]
        else:
            target = -1.0 if kind_index else 1.0

            def side(mu):
                return mu.real - target
            ours, theirs = before[np.abs(before.imag) <= 1e-9], after[np.abs(after.imag) <= 1e-9]
        if ours.size == 0 or theirs.size == 0:
            raise ValueError("no multiplier of this kind")
        partner = theirs[np.argmin(np.abs(ours[:, None] - theirs[None, :]), axis=1)]
        crossing = ours[side(ours) * side(partner) <= 0]
        if crossing.size == 0:
            raise ValueError("no multiplier crosses")
        mu = crossing[np.argmin(np.abs(side(crossing)))]
        self.mu = complex(mu) if kind_index == 2 else float(mu.real)
        self.vector = None

    def test(self, jacobian):
        import warnings

        import scipy.linalg

        n = jacobian.shape[0]
        # shifted just off the last value, which may be an eigenvalue exactly (a map's 1 × 1 Jacobian)
        shifted = jacobian - (self.mu + 1e-9 * max(1.0, abs(self.mu))) * np.eye(n)
        with warnings.catch_warnings():
            warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
            try:
                factors = scipy.linalg.lu_factor(shifted, check_finite=False)
            except scipy.linalg.LinAlgWarning:
                raise ValueError("J − σ I is singular") from None
        v = self.vector
        if v is None:
            v = np.random.default_rng(0).standard_normal(n).astype(shifted.dtype)
            v /= np.linalg.norm(v)
        for _ in range(20):
            w = scipy.linalg.lu_solve(factors, v, check_finite=False)
            w /= np.linalg.norm(w)
            image = jacobian @ w
            mu = np.vdot(w, image)  # the Rayleigh quotient
            moved = np.linalg.norm(image - mu * w)
            v = w
            if moved <= 1e-13 * max(1.0, abs(mu)):
                break
        if not moved <= 1e-8 * max(1.0, abs(mu)):  # not converged (or not finite): not followed
            raise ValueError("inverse iteration did not converge")
        self.mu, self.vector = (complex(mu), v) if self.kind_index == 2 else (float(mu.real), v)
        if self.kind_index == 2:
            return abs(self.mu) ** 2 - 1.0
        return self.mu + (1.0 if self.kind_index else -1.0)


def _locate(family, anchor, tangent, end, kind_index, period, shape, tol, multipliers=None):
    """The zero of one test function between two branch points, by Brent's method on the arclength
    (``multipliers``: those at ``anchor`` and ``end``, to follow the crossing one)."""
    import scipy.optimize

    span = float(tangent @ (end - anchor))
    chord = _evaluate(family, anchor, period, shape)[1:]  # every trial point is corrected with these

    def on_branch(s):
        return _correct(family, anchor + s * tangent, anchor, tangent, s, period, shape, tol * 1e-2,
                        chord=chord)

    def test(s):
        corrected = on_branch(s)
        if corrected is None:
            raise _NoPoint
        jacobian = corrected[1]
        if critical is not None:
            return critical.test(jacobian)
        # the test function's sign times its smallest factor: zero where it is, and of slope one there
        factors = _factors(np.linalg.eigvals(jacobian), kind_index)
        smallest = np.min(np.abs(factors))
        if smallest == 0:
            return 0.0
        return float(np.sign(np.prod(factors / np.abs(factors)).real) * smallest)

    # the test functions of the whole spectrum change sign at the zero but are nearly flat beside it
    # (an n-th root of the product of n factors): Brent's method would bisect. Its trials follow the
    # crossing multiplier alone instead (a smooth, simple zero), and fall back on the whole spectrum
    # where that multiplier does not change sign between the two points
    try:
        critical = _Critical(kind_index, *multipliers) if multipliers is not None else None
    except ValueError:
        critical = None
    xtol = max(tol / 2, 1e-15)  # in the arclength: the parameter moves no more than that (|dλ/ds| <= 1)
    while True:
        try:
            s = scipy.optimize.brentq(test, 0.0, span, xtol=xtol, rtol=4 * _EPS, maxiter=200)
            break
        except (ValueError, _NoPoint):
            if critical is None:
                return None
            critical = None  # once more, with the whole spectrum
    u, jacobian, _, _ = on_branch(s)
    multipliers = _sorted(np.linalg.eigvals(jacobian))
    kind = KINDS[kind_index]
    rotation = None
    if kind == "neimark_sacker":
        pairs = multipliers[np.abs(multipliers.imag) > 1e-9]
        if pairs.size == 0 or np.min(np.abs(np.abs(pairs) - 1.0)) > 1e-6:
            return None  # a neutral saddle (real pair mu, 1/mu): no bifurcation
        critical = pairs[np.argmin(np.abs(np.abs(pairs) - 1.0))]
        rotation = abs(math.atan2(critical.imag, critical.real)) / (2 * math.pi)
    return Bifurcation(kind=kind, parameter=float(u[-1]), state=(u[:-1] / family.weight).reshape(shape),
                       multipliers=multipliers, rotation=rotation)


class _NoPoint(Exception):
    pass


def _branch(family, points, multipliers, period, shape, bifurcations, meta):
    states = (points[:, :-1] / family.weight).reshape((len(points),) + shape)
    stable = np.abs(multipliers[:, 0]) < 1.0
    stage_points = degeneracy = None
    system = family.system
    if system.kind == "block":
        stage_points = np.array([np.concatenate([family.at(lam)[0].stage_maps(p)[1:] for p in
                                                 _orbit(family.at(lam)[0], x, period, None)[:-1]])
                                 for x, lam in zip(states, points[:, -1])])
        if period == 1:
            layers = system.layer_stages
            flat = stage_points[:, [s - 1 for s in layers]].reshape(len(points), len(layers), -1)
            unit = flat / np.maximum(np.linalg.norm(flat, axis=2, keepdims=True), 1e-300)
            cosines = np.einsum("nik,njk->nij", unit, unit)
            degeneracy = cosines.min(axis=(1, 2))
    return Branch(parameter_name=meta["parameter"], parameter=points[:, -1].copy(), states=states,
                  multipliers=multipliers, stable=stable, bifurcations=bifurcations, period=period,
                  stage_points=stage_points, degeneracy=degeneracy, meta=meta, _family=family)


def bifurcation_diagram(system, parameter, start, stop, *, x0=None, period=1, params=None, depth=2,
                        loops=1000, keep=64, values=400, path=None, step=None, tol=1e-10, max_points=10000):
    """Continue the attractor from ``start``, switch at every flip up to ``depth`` times, and draw every
    branch over the orbit diagram of the same range.

    Parameters
    ----------
    system : Map or BlockSpec
    parameter : str
    start, stop : float
    x0 : array_like, optional
        A state near the cycle at ``start`` (default: the attractor ``classify`` finds there).
    period : int
        The period of the first branch's cycle (as in :func:`continuation`).
    params : dict, optional
    depth : int
        How many period doublings to follow (flip points met on switched branches included).
    loops, keep, values : int
        The orbit diagram's loops per value, points kept per value, and number of values.
    path : str or Path, optional
        Write the figure there.
    step, tol, max_points
        As in :func:`continuation`, for every branch.

    Returns
    -------
    branches : list of Branch
    figure : matplotlib.figure.Figure

    Examples
    --------
    >>> import dynloop
    >>> branches, figure = dynloop.bifurcation_diagram(dynloop.maps.logistic(), "r", 2.8, 3.5, x0=[0.6],
    ...                                                values=50)
    >>> [b.period for b in branches]
    [1, 2, 4]
    """
    from ..plotting import plot_branches
    from ..sweep.orbit import orbit_diagram

    depth = check_int("depth", depth, minimum=0)
    first = continuation(system, parameter, start=start, stop=stop, x0=x0, period=period, params=params,
                         step=step, tol=tol, max_points=max_points)
    branches, pending = [first], [(first, 0)]
    while pending:
        branch, level = pending.pop(0)
        if level >= depth:
            continue
        for bifurcation in branch.bifurcations:
            if bifurcation.kind == "flip":
                doubled = branch.switch(bifurcation, max_points=max_points)
                branches.append(doubled)
                pending.append((doubled, level + 1))
    grid = np.linspace(start, stop, check_int("values", values, minimum=2))
    diagram = orbit_diagram(system, parameter, grid, loops=loops, keep=keep, regimes=False) \
        if system.kind == "map" and not params else None
    figure = plot_branches(branches, path, diagram=diagram)
    return branches, figure
