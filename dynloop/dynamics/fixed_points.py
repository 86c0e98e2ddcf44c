"""Fixed points of the loop map: iterate until the state settles, then refine with Newton."""

__all__ = ["find_fixed_point", "FixedPoint"]

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from .simulate import simulate


@dataclass
class FixedPoint:
    """A fixed point of the loop map and how it was found.

    Attributes
    ----------
    state : ndarray
        The point (state shape of the system).
    residual : float
        ``|loop(state) - state|`` after Newton's refinement.
    loops : int
        Loops iterated before the refinement.
    newton_converged : bool
        Whether ``scipy.optimize.root`` reported success.
    """

    state: np.ndarray
    residual: float
    loops: int
    newton_converged: bool


def find_fixed_point(system, x0=None, *, params=None, max_loops=20000, tol=1e-10):
    """Iterate the loop map until successive states agree to ``tol`` (relative), refine by Newton.

    Parameters
    ----------
    system : System
        A block, affine loop or map.
    x0 : array_like, optional
        Start state (the system's own by default).
    params : dict, optional
        Map parameter overrides.
    max_loops : int
        Iteration budget.
    tol : float
        Relative tolerance on the successive difference, ``|h_t - h_{t-1}| <= tol * max(1, |h_t|)``.

    Returns
    -------
    FixedPoint

    Raises
    ------
    ValueError
        When the iteration does not settle within ``max_loops`` loops or diverges.

    Examples
    --------
    >>> import dynloop
    >>> point = dynloop.dynamics.fixed_points.find_fixed_point(dynloop.maps.logistic(r=2.5))
    >>> round(float(point.state[0]), 12)
    0.6
    """
    resolved = system.resolve_params(params)
    chunk = 1000
    state = system.start_state(resolved) if x0 is None else np.asarray(x0, dtype=np.float64)
    done = 0
    while done < max_loops:
        run = simulate(system, min(chunk, max_loops - done), x0=state, params=params, record="none")
        if run.diverged:
            raise ValueError(f"no fixed point of {system.name}: the iteration diverged at loop "
                             f"{done + run.diverged_at}; pass a start state or at= explicitly")
        done += run.loops_run
        state = run.final_state
        last_step = run.stage_steps[-1, -1]
        if last_step <= tol * max(1.0, run.stage_norms[-1, -1]):
            break
    else:
        raise ValueError(f"no fixed point of {system.name}: after {max_loops} loops the state still "
                         f"moves by {last_step:.3g} per loop; pass a state explicitly")
    shape = state.shape

    def residual(x):
        return system.loop(x.reshape(shape), params).ravel() - x

    def jacobian(x):
        return system.jacobian(x.reshape(shape), params) - np.eye(x.size)

    solution = scipy.optimize.root(residual, state.ravel(), jac=jacobian, method="hybr")
    refined = solution.x if solution.success else state.ravel()
    return FixedPoint(state=refined.reshape(shape), residual=float(np.linalg.norm(residual(refined))),
                      loops=done, newton_converged=bool(solution.success))
