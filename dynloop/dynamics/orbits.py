"""Periodic orbits of the loop map by Newton's method, with their multipliers."""

__all__ = ["find_cycle", "Cycle"]

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ..systems.base import check_system
from .._errors import check_int


@dataclass
class Cycle:
    """A ``p``-periodic orbit of the loop map (``p = 1``: a fixed point) and its stability.

    Attributes
    ----------
    period : int
        Loops per repeat.
    loop_points : ndarray, shape (p, *state_shape)
        The states entering each loop of the orbit, in orbit order.
    stage_points : ndarray, shape (p * S, *state_shape)
        The state after every stage of every loop of the orbit, in orbit order (for a block at a
        fixed point: one point per stage, the per-layer fixed points ``Y_j``).
    multipliers : ndarray
        Eigenvalues of ``J(x_{p-1}) ⋯ J(x_0)`` (loop Jacobians in orbit order), largest modulus
        first.
    residual : float
        ``|L^p(x_0) - x_0|`` at the refined point.
    converged : bool
        Whether Newton's method converged.

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> cycle = dynloop.find_cycle(dynloop.maps.logistic(r=3.2), 2, [0.5])
    >>> bool(np.isclose(cycle.multipliers[0], 4 + 2 * 3.2 - 3.2 ** 2))
    True
    """

    period: int
    loop_points: np.ndarray
    stage_points: np.ndarray
    multipliers: np.ndarray
    residual: float
    converged: bool

    @property
    def spectral_radius(self):
        """Largest modulus of the multipliers."""
        return float(np.abs(self.multipliers[0])) if self.multipliers.size else 0.0

    @property
    def stable(self):
        """True when every multiplier lies inside the unit circle."""
        return self.spectral_radius < 1.0


def _orbit(system, x, period, params):
    points = [x]
    for _ in range(period):
        points.append(system.loop(points[-1], params))
    return points


def _orbit_jacobian(system, points, params):
    jacobian = np.eye(system.state_size)
    for point in points[:-1]:
        jacobian = system.jacobian(point, params) @ jacobian
    return jacobian


def find_cycle(system, period, guess, *, params=None, tol=1e-12, maxfev=200):
    """Refine a ``period``-cycle of the loop map from ``guess`` by Newton's method.

    Parameters
    ----------
    system : BlockSpec, AffineLoop or Map
    period : int
        Loops per repeat (1 for a fixed point).
    guess : array_like
        A state near the orbit (any point of it).
    params : dict, optional
        Map parameter overrides.
    tol : float
        Tolerance of ``scipy.optimize.root`` (method ``"hybr"``, analytic Jacobian).
    maxfev : int
        Budget of function evaluations.

    Returns
    -------
    Cycle
        The orbit, whether stable or not, with its multipliers.

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> a, b = 1.4, 0.3
    >>> cycle = dynloop.find_cycle(dynloop.maps.henon(a=a, b=b), 1, [0.6, 0.2])
    >>> x = (-(1 - b) + np.sqrt((1 - b) ** 2 + 4 * a)) / (2 * a)
    >>> bool(np.allclose(cycle.loop_points[0], [x, b * x]))
    True
    """
    check_system(system)
    period = check_int("period", period, minimum=1)
    guess = system.check_state(guess, "guess")
    shape = guess.shape

    def residual(flat):
        return _orbit(system, flat.reshape(shape), period, params)[-1].ravel() - flat

    def jacobian(flat):
        return (_orbit_jacobian(system, _orbit(system, flat.reshape(shape), period, params), params)
                - np.eye(flat.size))

    flat = guess.ravel()
    points = _orbit(system, guess, period, params)
    orbit_jacobian = _orbit_jacobian(system, points, params)
    scale = max(np.linalg.norm(flat), 1e-300)
    converged = False
    if np.linalg.norm(points[-1].ravel() - flat) <= 1e-9 * scale:
        # the guess is already on the orbit to iteration accuracy: one Newton step with the
        # Jacobian we need for the multipliers anyway, and no second Jacobian
        with np.errstate(all="ignore"):
            try:
                step = np.linalg.solve(orbit_jacobian - np.eye(flat.size), flat - points[-1].ravel())
            except np.linalg.LinAlgError:
                step = np.full(flat.size, np.nan)
        if np.all(np.isfinite(step)) and np.linalg.norm(step) <= 1e-8 * scale:
            point = (flat + step).reshape(shape)
            converged = True
    if not converged:
        with np.errstate(all="ignore"):
            solution = scipy.optimize.root(residual, flat, jac=jacobian, method="hybr", tol=tol,
                                           options={"maxfev": maxfev})
        point = solution.x.reshape(shape)
        points = _orbit(system, point, period, params)
        orbit_jacobian = _orbit_jacobian(system, points, params)
        # hybr may report no progress at a point it cannot improve because it is already exact
        exact = np.linalg.norm(points[-1] - point) <= 1e-12 * max(1.0, float(np.linalg.norm(point)))
        converged = bool(solution.success or exact)
    else:
        points = _orbit(system, point, period, params)
    stage_points = np.concatenate([system.stage_maps(p, params)[1:] for p in points[:-1]])
    multipliers = np.linalg.eigvals(orbit_jacobian)
    multipliers = multipliers[np.argsort(-np.abs(multipliers), kind="stable")]
    return Cycle(period=period, loop_points=np.stack(points[:-1]), stage_points=stage_points,
                 multipliers=multipliers, residual=float(np.linalg.norm(points[-1] - point)),
                 converged=converged)
