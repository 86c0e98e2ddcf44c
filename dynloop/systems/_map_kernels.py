"""Compiled kernels of :class:`~dynloop.systems.maps.Map`: one iteration kernel for every map.

A map's step and Jacobian are numba *first-class functions* with the fixed signatures
:data:`STEP_SIGNATURE` and :data:`JACOBIAN_SIGNATURE`. The kernels below take them as arguments
typed ``numba.types.FunctionType(signature)`` and are compiled once, with explicit signatures and
``cache=True``: the compiled code is stored on disk and shared by every map, catalogue or user
function alike (a dispatcher-typed argument would force one compilation per map and no caching).
"""

__all__ = ["STEP_SIGNATURE", "JACOBIAN_SIGNATURE", "StepFunction", "JacobianFunction", "JIT_OPTIONS",
           "run_map", "tangent_run_map", "finite_difference_jacobian", "map_images"]

import math

import numpy as np
from numba import njit, types

from ._recording import close_loop, new_records

#: ``step(x, p) -> x'``: state and parameter vector in, new state out (all float64, contiguous).
STEP_SIGNATURE = types.float64[::1](types.float64[::1], types.float64[::1])
#: ``jacobian(x, p) -> J`` with ``J[i, j] = d x'_i / d x_j`` (a C-ordered ``dim × dim`` array).
JACOBIAN_SIGNATURE = types.float64[:, ::1](types.float64[::1], types.float64[::1])
StepFunction = types.FunctionType(STEP_SIGNATURE)
JacobianFunction = types.FunctionType(JACOBIAN_SIGNATURE)

#: Options for every step and Jacobian function: a division by zero gives inf or nan (reported
#: by the iteration as divergence) instead of raising ``ZeroDivisionError``.
JIT_OPTIONS = {"error_model": "numpy"}

_F64_1D = types.float64[::1]
_F64_2D = types.float64[:, ::1]
_RUN_SIGNATURE = types.Tuple((
    types.float64[:, :, ::1],  # states (capacity, 2, dim)
    types.int64[::1],          # recorded_loops
    types.int64,               # count
    _F64_2D, _F64_2D, _F64_2D,  # norms, steps, cosines (loops, 2)
    types.int64, types.int64, types.int64,  # loops_run, diverged_at, diverged_stage
    _F64_1D,                   # final_state
))(StepFunction, _F64_1D, _F64_1D, types.int64, types.int64, types.int64, types.int64, types.boolean)


@njit(_RUN_SIGNATURE, cache=True, error_model="numpy")
def run_map(step, x0, p, loops, mode, stride, capacity, round_to_float32):
    """Iterate ``x ← step(x, p)`` for ``loops`` steps; outputs as in ``RunOutput`` (base.py).

    With ``round_to_float32`` every new state is rounded to float32 (the arithmetic inside one
    step stays float64), so the states are those of a float32 iteration up to that rounding.
    """
    dim = x0.shape[0]
    cur, prev, states, recorded_loops, norms, steps, cosines = new_records(loops, 1, dim, capacity, mode, x0)
    x = x0.copy()
    count = 0
    loops_run, diverged_at, diverged_stage = loops, -1, -1
    for t in range(loops):
        cur[0] = x
        new = step(x, p)
        if round_to_float32:
            for i in range(dim):
                cur[1, i] = np.float64(np.float32(new[i]))
        else:
            cur[1] = new
        bad_stage, slot, count = close_loop(t, cur, prev, states, recorded_loops, norms, steps, cosines,
                                            stride, mode, count)
        if bad_stage >= 0:
            loops_run, diverged_at, diverged_stage = t, t, bad_stage
            break
        x = cur[1].copy()
    return states, recorded_loops, count, norms, steps, cosines, loops_run, diverged_at, diverged_stage, x


#: Relative step of the finite differences: the cube root of the float64 epsilon, so that truncation
#: and rounding errors are both about eps**(2/3).
FD_STEP = 6.0554544523933395e-06


@njit(types.float64[:, ::1](StepFunction, _F64_1D, _F64_1D), cache=True, error_model="numpy")
def finite_difference_jacobian(step, x, p):
    """Central-difference Jacobian of ``step`` at ``x``.

    Column ``j`` is ``(step(x + h e_j) - step(x - h e_j)) / (2 h)`` with
    ``h = eps**(1/3) * max(1, |x_j|)`` (``eps`` the float64 epsilon): truncation and rounding
    errors are then both about ``eps**(2/3) ≈ 4e-11`` relative to the scale of the map.
    """
    dim = x.shape[0]
    jacobian = np.empty((dim, dim))
    shifted = x.copy()
    for j in range(dim):
        h = FD_STEP * max(1.0, abs(x[j]))
        shifted[j] = x[j] + h
        forward = step(shifted, p)
        width = shifted[j]
        shifted[j] = x[j] - h
        backward = step(shifted, p)
        width -= shifted[j]  # the step actually taken, 2h up to rounding of x +- h
        shifted[j] = x[j]
        for i in range(dim):
            jacobian[i, j] = (forward[i] - backward[i]) / width
    return jacobian


_TANGENT_SIGNATURE = types.Tuple((_F64_1D, _F64_2D, _F64_1D, types.float64, types.int64))(
    StepFunction, JacobianFunction, _F64_1D, _F64_2D, types.int64, _F64_1D, types.boolean)


@njit(_TANGENT_SIGNATURE, cache=True, error_model="numpy")
def tangent_run_map(step, jacobian, x0, basis, loops, p, with_log_det):
    """Iterate the state and the ``m`` columns of ``basis`` (``dim × m``) under ``J(x)``, QR after every step.

    Returns ``(state, basis, log_r, log_det, loops_done)``: ``log_r`` sums ``ln|R_ii|`` of the
    re-orthonormalisations, ``log_det`` sums ``ln|det J|`` (when ``with_log_det``). The run stops
    before the first step that gives a non-finite state or tangent; ``state`` and ``basis`` are then
    those after ``loops_done`` steps.
    """
    x = x0.copy()
    tangents = basis.copy()
    m = basis.shape[1]
    log_r = np.zeros(m)
    log_det = 0.0
    done = 0
    for t in range(loops):
        jac = jacobian(x, p)
        new_state = step(x, p)
        new_tangents = jac @ tangents
        if not (np.all(np.isfinite(new_state)) and np.all(np.isfinite(new_tangents))):
            break
        if with_log_det:
            log_det += np.linalg.slogdet(jac)[1]
        q, r = np.linalg.qr(new_tangents)
        for i in range(m):
            log_r[i] += math.log(abs(r[i, i]))
        x = new_state
        tangents = np.ascontiguousarray(q)
        done = t + 1
    return x, tangents, log_r, log_det, done


@njit(_F64_2D(StepFunction, _F64_2D, _F64_1D), cache=True, error_model="numpy")
def map_images(step, points, p):
    """``step(points[i], p)`` for every row of ``points`` (serial: a map's own error surfaces whole)."""
    out = np.empty_like(points)
    for i in range(points.shape[0]):
        out[i] = step(points[i].copy(), p)
    return out
