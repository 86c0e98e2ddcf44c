"""The one abstraction every algorithm in dynloop is written against.

A :class:`System` is a map iterated loop after loop, each loop made of ``S`` stages: a looped block
has one stage per layer (plus an injection and an outer-norm stage where the scheme has them), an
affine loop one per affine map, a plain map exactly one.

For developers
--------------
A new kind of system subclasses :class:`System` and provides:

1. ``name`` (str), ``kind`` (str), ``stage_names`` (tuple of ``S`` str) and ``state_shape``
   (tuple of int);
2. ``start_state(params=None)``: the default initial state, an array of ``state_shape``;
3. ``_run(x0, loops, params, mode, stride, n_last, dtype, record_attention)``: iterate in compiled
   code and return a :class:`RunOutput` (``dynloop.systems._recording`` has the shared
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

Everything else (``loop``, ``jacobian``) is derived here once. What the other layers ask a
system (``kind``, ``components``, ``check_state``, ``sweep_kernel``, ``sweep_name``,
``attention_context``) has a public
name here, so that none of them tests a system's class or reaches into its private members; a
system that sweeps can vary overrides :meth:`System.sweep_kernel`.

This layer imports nothing from the layers above it (``dynamics``, ``sweep``, ``symbolic``,
``plotting``, ``cli``). Two facts that belong to modules above it are registered here by them
when they are imported (``import dynloop`` imports both): the names of the catalogue maps
(:mod:`dynloop.maps`) and the search for an attracting fixed point (:func:`dynloop.classify`),
which ``BlockSpec.linearize()`` uses by default.
"""

__all__ = ["System", "RunOutput", "SweepKernel", "check_system", "catalogue_names", "register_catalogue",
           "attracting_fixed_point", "register_fixed_point_finder"]

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


@dataclass(frozen=True)
class SweepKernel:
    """What the compiled sweep kernels take from a system, as :meth:`System.sweep_kernel` gives it.

    Attributes
    ----------
    arguments : tuple
        The system's leading arguments of its kind's sweep kernel (``dynloop.sweep._kernels``):
        ``(config, arrays, unit_input)`` for a block (``unit_input``: the injected input at
        ``injection_scale = 1``), ``(step_function, jacobian_function)`` for a map.
    point_fields : tuple of str
        The fields (block) or parameters (map) that may vary from point to point inside one
        kernel call, in the order of the columns of the kernel's per-point values.
    point_values : ndarray
        Their values in this system, shape ``(len(point_fields),)``: the row that every point of
        a sweep starts from before its axes are filled in.

    Examples
    --------
    >>> import dynloop
    >>> kernel = dynloop.maps.logistic(r=3.2).sweep_kernel()
    >>> kernel.point_fields, kernel.point_values
    (('r',), array([3.2]))
    """

    arguments: tuple
    point_fields: tuple
    point_values: np.ndarray


class System:
    """A map iterated in loops of ``S`` stages (see the module docstring for the contract)."""

    name = "system"
    #: What the system is, for the layers that treat kinds differently: ``"block"``, ``"map"`` or
    #: ``"affine"`` (a subclass sets it).
    kind = "system"

    @property
    def components(self):
        """The registry entries of the system's scheme (``dynloop.components``), by field; empty here.

        A :class:`~dynloop.BlockSpec` has one entry per scheme field (``"mixer"``, ``"norm"``, ...).

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.logistic().components
        {}
        """
        return {}

    def sweep_kernel(self, dtype=np.float64):
        """What the compiled sweep needs to iterate this system at any point of its family.

        Systems that a sweep can vary (blocks and maps) override this; the others have no
        parameters to sweep.

        Returns
        -------
        SweepKernel

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.henon().sweep_kernel().point_fields
        ('a', 'b')
        """
        raise TypeError(f"{self.name} has no parameters to sweep: "
                        "sweeps take a dynloop.BlockSpec or a dynloop.Map")

    def sweep_name(self, varying=()):
        """The system's name in a sweep over ``varying`` (fields or parameters): its ``name`` here.

        A block shows the swept fields of its name as ``*``.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.logistic().sweep_name(["r"])
        'logistic'
        """
        return self.name

    @property
    def layer_stages(self):
        """The stages that are the block's layers: from the first to the last stage named ``layer...``.

        A system without such names has every stage as a layer.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.BlockSpec(layers=3).layer_stages
        range(1, 4)
        >>> dynloop.maps.logistic().layer_stages
        range(0, 1)
        """
        layers = [i for i, name in enumerate(self.stage_names) if name.startswith("layer")]
        return range(layers[0], layers[-1] + 1) if layers else range(self.n_stages)

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

    def attention_context(self, stage_states):
        """What an analysis needs to bound the attention's change, or None for a system without attention.

        Parameters
        ----------
        stage_states : ndarray, shape (R, S + 1, *state_shape)
            Recorded stage states, as in :attr:`dynloop.Trajectory.stage_states`.

        Returns
        -------
        dict or None
            A block with attention gives ``{"attn_q": (layers, d, d), "attn_k": (layers, d, d),
            "heads": int, "attention_inputs": (R, layers, T, d)}``: its query and key weights
            (``Q = X Wqᵀ``) and, for every recorded loop and layer, the state its attention read
            (after the layer's input norm). Other systems return None.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.maps.logistic().attention_context(None) is None
        True
        """
        return None

    def check_state(self, x, field="x0", dtype=np.float64):
        """A fresh, writable, C-ordered copy of the state ``x`` at ``dtype`` (one kernel type).

        A flat state of the right size is reshaped; any other shape raises a ``ValueError`` naming
        ``field``.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.BlockSpec(width=2, tokens=2).check_state([1, 2, 3, 4]).shape
        (2, 2)
        """
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
    TypeError: system='logistic' is not allowed: expected a dynloop system (dynloop.BlockSpec,
    dynloop.AffineLoop or dynloop.Map); for the catalogue map of that name use dynloop.maps.logistic()
    """
    if isinstance(system, System):
        return system
    allowed = "expected a dynloop system (dynloop.BlockSpec, dynloop.AffineLoop or dynloop.Map)"
    if isinstance(system, str):
        if system in catalogue_names():
            allowed += f"; for the catalogue map of that name use dynloop.maps.{system}()"
        shown = repr(system)
    else:
        shown = f"<{type(system).__name__} object>"
    raise TypeError(f"{field}={shown} is not allowed: {allowed}")


_CATALOGUE = []  # the names of dynloop.maps, which registers them when it is imported


def register_catalogue(names):
    """Record the names of the catalogue maps; :mod:`dynloop.maps` calls this once when imported.

    The catalogue sits above this layer (it builds :class:`~dynloop.Map` objects), so it tells
    this layer its names instead of being imported here.
    """
    _CATALOGUE[:] = list(names)


def catalogue_names():
    """Names of the catalogue maps (:mod:`dynloop.maps`) that need no arguments: all but ``linear``.

    Examples
    --------
    >>> from dynloop.systems.maps import catalogue_names
    >>> "logistic" in catalogue_names(), "linear" in catalogue_names()
    (True, False)
    """
    return [name for name in _CATALOGUE if name != "linear"]


_FIXED_POINT_FINDER = []  # the one finder, registered by dynloop.dynamics.classify


def register_fixed_point_finder(finder):
    """Install how :func:`attracting_fixed_point` finds a fixed point (``dynloop.dynamics.classify`` does).

    Parameters
    ----------
    finder : callable
        ``finder(system)`` returns ``(state, regime)``: the state entering the loop at the
        system's attracting fixed point, or ``None`` when the system has none, and the name of
        the regime it is in.
    """
    _FIXED_POINT_FINDER[:] = [finder]


def attracting_fixed_point(system):
    """The state entering the loop at the system's attracting fixed point, and the regime's name.

    Finding it is classification, the work of :func:`dynloop.classify` (iteration, then Newton's
    method), which lives in a layer above this one and registers itself here.

    Returns
    -------
    state : ndarray or None
        ``None`` when the system does not converge to a fixed point.
    regime : str

    Examples
    --------
    >>> import dynloop
    >>> from dynloop.systems.base import attracting_fixed_point
    >>> state, regime = attracting_fixed_point(dynloop.maps.logistic(r=2.5))
    >>> round(float(state[0]), 12), regime
    (0.6, 'fixed_point')
    """
    if not _FIXED_POINT_FINDER:
        raise RuntimeError("no fixed-point finder is registered: import dynloop "
                           "(dynloop.dynamics registers it)")
    return _FIXED_POINT_FINDER[0](system)
