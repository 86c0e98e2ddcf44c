"""The one abstraction every algorithm in dynloop is written against.

A :class:`System` is a map iterated loop after loop, each loop made of ``S`` stages: a looped block
has one stage per layer (plus an injection and an outer-norm stage where the scheme has them), an
affine loop one per affine map, a plain map exactly one.

For developers
--------------
A new kind of system subclasses :class:`System` and provides:

1. ``name`` (str), ``stage_names`` (tuple of ``S`` str) and ``state_shape`` (tuple of int);
2. ``start_state(params=None)``: the default initial state, an array of ``state_shape``;
3. ``_run(x0, loops, params, mode, stride, n_last, dtype, record_attention)``: iterate in compiled
   code and return a :class:`RunOutput` (``dynloop.dynamics._recording`` has the shared
   bookkeeping; ``simulate`` turns the output into a :class:`~dynloop.Trajectory`);
4. ``stage_maps(x, params=None)``: the ``S + 1`` stage states of one loop started at ``x``;
5. ``stage_jacobians(x, params=None)``: the ``S`` stage Jacobians along that loop, each
   ``n × n`` with ``n = prod(state_shape)``, analytic where the system can give them;
6. ``resolve_params(params)``: the system's parameters with overrides applied (maps); systems
   without parameters return ``None``;
7. ``_tangent_run(x, basis, loops, params, with_log_det)``: iterate the state together with the
   ``m`` columns of ``basis`` (``n × m``) under the loop's tangent map, re-orthonormalising them
   by QR after every loop, in compiled code; return ``(state, basis, log_r, log_det, loops_done)``
   where ``log_r`` sums ``ln|R_ii|`` and ``log_det`` sums ``ln|det J|`` of the (square) stage
   Jacobians when ``with_log_det`` (Lyapunov spectra are written once on top of this).

Everything else (``loop``, ``jacobian``) is derived here once.
"""

__all__ = ["System", "RunOutput", "check_system"]

from dataclasses import dataclass

import numpy as np


@dataclass
class RunOutput:
    """Raw arrays a compiled run returns (record slots not yet in loop order).

    The fields are in the order in which every iteration kernel returns them, so
    ``RunOutput(*kernel(...))`` builds one.
    """

    states: np.ndarray            # (capacity, S + 1, *state_shape)
    recorded_loops: np.ndarray    # (capacity,) loop index of each slot
    count: int                    # records written (may exceed capacity for a ring)
    norms: np.ndarray             # (loops, S + 1)
    steps: np.ndarray             # (loops, S + 1)
    cosines: np.ndarray           # (loops, S + 1)
    loops_run: int                # completed loops
    diverged_at: int              # loop index of the first non-finite stage, or -1
    diverged_stage: int           # its stage index, or -1
    final_state: np.ndarray       # state after the last completed loop
    attention: np.ndarray | None = None  # (capacity, layers, heads, T, T) when recorded


class System:
    """A map iterated in loops of ``S`` stages (see the module docstring for the contract)."""

    name = "system"

    @property
    def n_stages(self):
        """Number of stages per loop, ``S``."""
        return len(self.stage_names)

    @property
    def state_size(self):
        """Number of state variables, ``n = prod(state_shape)``."""
        return int(np.prod(self.state_shape))

    def resolve_params(self, params=None):
        """Parameters with ``params`` overrides applied; ``None`` for systems without any."""
        if params:
            raise ValueError(f"params={params!r} is not allowed: {self.name} has no parameters")
        return None

    def loop(self, x, params=None):
        """Apply one whole loop to the state ``x`` and return the new state."""
        return self.stage_maps(x, params)[-1]

    def jacobian(self, x, params=None):
        """Jacobian of one loop at ``x``: the stage Jacobians multiplied in stage order.

        Returns an ``n × n`` array, ``J_S ⋯ J_2 J_1``, each stage Jacobian taken at its own input
        along the loop that starts at ``x`` (states are flattened row-major).
        """
        jacobians = self.stage_jacobians(x, params)
        loop_jacobian = jacobians[0]
        for stage_jacobian in jacobians[1:]:
            loop_jacobian = stage_jacobian @ loop_jacobian
        return loop_jacobian

    def jacobian_kink(self, points, params=None):
        """Where the loop map's Jacobian cannot be trusted among ``points``, or None.

        Systems whose Jacobians are analytic return None; a map with a finite-difference Jacobian
        (:class:`~dynloop.Map`) names a point where the map is not differentiable.
        """
        return None

    def _check_state(self, x, field="x0", dtype=np.float64):
        """A fresh, writable, C-ordered copy of the state ``x`` at ``dtype`` (one kernel type)."""
        x = np.array(x, dtype=dtype, order="C", copy=True)
        if x.shape != tuple(self.state_shape):
            if x.size == self.state_size and x.ndim == 1:
                x = x.reshape(self.state_shape)
            else:
                raise ValueError(f"{field} has shape {x.shape}, which is not allowed: "
                                 f"{self.name} needs a state of shape {tuple(self.state_shape)}")
        return x


def check_system(system, field="system"):
    """Return ``system`` if it is a dynloop system, else raise a ``TypeError`` that says what is accepted.

    Every public entry point that iterates a system (``simulate``, ``classify``, ``find_cycle``,
    ``lyapunov_spectrum``, ``sweep``, ``orbit_diagram``) calls this first.

    Examples
    --------
    >>> import dynloop
    >>> from dynloop.systems.base import check_system
    >>> check_system("logistic")
    Traceback (most recent call last):
    ...
    TypeError: system='logistic' is not allowed: expected a dynloop system (dynloop.BlockSpec, dynloop.AffineLoop or dynloop.Map); for the catalogue map of that name use dynloop.maps.logistic()
    """
    if isinstance(system, System):
        return system
    allowed = "expected a dynloop system (dynloop.BlockSpec, dynloop.AffineLoop or dynloop.Map)"
    if isinstance(system, str):
        from .maps import catalogue_names

        if system in catalogue_names():
            allowed += f"; for the catalogue map of that name use dynloop.maps.{system}()"
        shown = repr(system)
    else:
        shown = f"<{type(system).__name__} object>"
    raise TypeError(f"{field}={shown} is not allowed: {allowed}")
