"""A loop of affine stages ``h ↦ A_j h + b_j``: the exactly solvable model of a looped block.

An :class:`AffineLoop` is what :meth:`BlockSpec.linearize <dynloop.BlockSpec.linearize>` returns,
and a system in its own right: its fixed point, the per-stage points of its cycle and its
spectral radius are known in closed form, which makes it the reference case for every algorithm.
"""

__all__ = ["AffineLoop"]

import numpy as np
from numba import njit

from .._errors import invalid
from ._recording import close_loop, new_records, record_capacity
from .base import RunOutput, System

# (I - M) is treated as singular beyond this condition number: the solution would have no
# correct digits left to speak of.
_SINGULAR_CONDITION = 1e12


@njit(cache=True, error_model="numpy")
def run_affine(matrices, offsets, x0, loops, mode, stride, capacity):
    """Iterate the loop of stages ``h ↦ matrices[j] @ h + offsets[j]`` (outputs as in ``RunOutput``).

    The arithmetic is done in the precision of the arrays (one compilation per precision).
    """
    n_stages, n, _ = matrices.shape
    cur, prev, states, recorded_loops, norms, steps, cosines = new_records(
        loops, n_stages, n, capacity, mode, x0)
    x = x0.copy()
    count = 0
    loops_run, diverged_at, diverged_stage = loops, -1, -1
    for t in range(loops):
        cur[0] = x
        for j in range(n_stages):
            for i in range(n):
                total = offsets[j, i]
                for m in range(n):
                    total += matrices[j, i, m] * cur[j, m]
                cur[j + 1, i] = total
        bad_stage, slot, count = close_loop(t, cur, prev, states, recorded_loops, norms, steps, cosines,
                                            stride, mode, count)
        if bad_stage >= 0:
            loops_run, diverged_at, diverged_stage = t, t, bad_stage
            break
        x = cur[n_stages].copy()
    return states, recorded_loops, count, norms, steps, cosines, loops_run, diverged_at, diverged_stage, x


@njit(cache=True, error_model="numpy")
def tangent_run_affine(matrices, offsets, x0, basis, loops, log_det_per_loop):
    """Iterate the state and the columns of ``basis`` (``n × m``), QR after every loop (base.py, item 7).

    Returns ``(state, basis, log_r, log_det, loops_done)``; the run stops before the first loop
    that gives a non-finite value. ``log_det`` is ``loops_done`` times ``log_det_per_loop``.
    """
    x = x0.copy()
    tangents = basis.copy()
    m = basis.shape[1]
    log_r = np.zeros(m)
    done = 0
    for t in range(loops):
        new_state = x.copy()
        new_tangents = tangents.copy()
        for j in range(matrices.shape[0]):
            new_state = matrices[j] @ new_state + offsets[j]
            new_tangents = matrices[j] @ new_tangents
        if not (np.all(np.isfinite(new_state)) and np.all(np.isfinite(new_tangents))):
            break
        q, r = np.linalg.qr(new_tangents)
        for i in range(m):
            log_r[i] += np.log(np.abs(r[i, i]))
        x = new_state
        tangents = np.ascontiguousarray(q)
        done = t + 1
    return x, tangents, log_r, done * log_det_per_loop, done


def _real_array(field, value, ndim, allowed):
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise invalid(field, value, allowed) from None
    if array.ndim != ndim:
        raise ValueError(f"{field} has shape {array.shape}, which is not allowed: {allowed}")
    if not np.all(np.isfinite(array)):
        raise invalid(field, array.tolist(), "every entry must be finite")
    return array


class AffineLoop(System):
    """A loop of ``k`` affine stages ``h ↦ A_j h + b_j`` on ``R^n``, iterated loop after loop.

    Parameters
    ----------
    matrices : sequence of k array_like, each (n, n)
        The stage matrices ``A_0 … A_{k-1}``, applied in this order (``k ≥ 1``).
    offsets : sequence of k array_like, each (n,), optional
        The stage offsets ``b_0 … b_{k-1}`` (default zeros).
    x0 : array_like, shape (n,), optional
        Default start state (default ones: zeros would be the fixed point of a linear loop).
    name : str, optional
        Default ``"affine(k=…, n=…)"``.

    Attributes
    ----------
    matrices : ndarray, shape (k, n, n)
    offsets : ndarray, shape (k, n)

    Notes
    -----
    One loop is ``h ↦ M h + c`` with ``M = A_{k-1} ⋯ A_1 A_0`` (:meth:`loop_matrix`) and ``c``
    (:meth:`loop_offset`). When ``1`` is not an eigenvalue of ``M`` the loop has the single fixed
    point ``x* = (I − M)⁻¹ c`` (:meth:`fixed_point`), which attracts iff ``ρ(M) < 1``
    (:meth:`spectral_radius`); the stages then carry it around the closed cycle of
    :meth:`stage_fixed_points` (docs/background.md, Regimes). Stage Jacobians are the matrices themselves.
    ``simulate(..., dtype=numpy.float32)`` computes in float32 throughout.

    Examples
    --------
    >>> import dynloop, numpy as np
    >>> loop = dynloop.AffineLoop([[[0.0, 0.5], [0.5, 0.0]], [[0.5, 0.0], [0.0, 0.2]]],
    ...                           [[1.0, 0.0], [0.0, 1.0]])
    >>> loop.stage_names
    ('stage0', 'stage1')
    >>> loop.fixed_point()
    array([0.76923077, 1.07692308])
    >>> bool(np.allclose(dynloop.simulate(loop, 100).final_state, loop.fixed_point()))
    True
    """

    kind = "affine"

    def __init__(self, matrices, offsets=None, *, x0=None, name=None):
        try:
            matrices = list(matrices)
        except TypeError:
            raise invalid("matrices", matrices, "expected a sequence of k square matrices") from None
        if not matrices:
            raise invalid("matrices", matrices, "expected at least one (k >= 1) square matrix")
        checked = [_real_array(f"matrices[{j}]", a, 2, "expected a square matrix")
                   for j, a in enumerate(matrices)]
        n = checked[0].shape[0]
        for j, a in enumerate(checked):
            if a.shape != (n, n) or n == 0:
                raise ValueError(f"matrices[{j}] has shape {a.shape}, which is not allowed: every stage "
                                 f"matrix must be square with the size of matrices[0], ({n}, {n}), n >= 1")
        k = len(checked)
        if offsets is None:
            offsets = np.zeros((k, n))
        else:
            try:
                offsets = list(offsets)
            except TypeError:
                raise invalid("offsets", offsets, f"expected a sequence of {k} vectors") from None
            if len(offsets) != k:
                raise invalid("offsets", f"{len(offsets)} vectors",
                              f"expected one offset per matrix: {k} vectors of length {n}")
            offsets = [_real_array(f"offsets[{j}]", b, 1, f"expected a vector of length {n}")
                       for j, b in enumerate(offsets)]
            for j, b in enumerate(offsets):
                if b.shape != (n,):
                    raise ValueError(f"offsets[{j}] has shape {b.shape}, which is not allowed: "
                                     f"expected a vector of length {n}")
        self.matrices = np.array(checked)
        self.offsets = np.array(offsets, dtype=np.float64).reshape(k, n)
        for array in (self.matrices, self.offsets):
            array.flags.writeable = False
        self.stage_names = tuple(f"stage{j}" for j in range(k))
        self.name = str(name) if name is not None else f"affine(k={k}, n={n})"
        x0 = np.ones(n) if x0 is None else x0
        self._x0 = self.check_state(x0, "x0")
        if not np.all(np.isfinite(self._x0)):
            raise invalid("x0", self._x0.tolist(), "every entry must be finite")
        self._x0.flags.writeable = False
        self._kernel_arrays = {}

    @property
    def state_shape(self):
        return (self.matrices.shape[1],)

    def __repr__(self):
        return f"AffineLoop(k={self.n_stages}, n={self.state_size}, name={self.name!r})"

    # ------------------------------------------------------------------ exact facts
    def loop_matrix(self):
        """The matrix of one loop, ``M = A_{k-1} ⋯ A_1 A_0`` (stage 0 acts first).

        Examples
        --------
        >>> import dynloop
        >>> loop = dynloop.AffineLoop([[[1.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])
        >>> loop.loop_matrix()  # A1 @ A0
        array([[0., 1.],
               [1., 1.]])
        """
        product = self.matrices[0].copy()
        for matrix in self.matrices[1:]:
            product = matrix @ product
        return product

    def loop_offset(self):
        """The offset ``c`` of one loop, ``loop(h) = M h + c`` (the loop applied to ``h = 0``).

        Examples
        --------
        >>> import dynloop
        >>> dynloop.AffineLoop([[[2.0]], [[3.0]]], [[1.0], [1.0]]).loop_offset()  # 3 (2·0 + 1) + 1
        array([4.])
        """
        offset = np.zeros(self.state_size)
        for matrix, b in zip(self.matrices, self.offsets):
            offset = matrix @ offset + b
        return offset

    def fixed_point(self):
        """The fixed point of the loop, the solution of ``(I − M) x = c``.

        Returns
        -------
        ndarray, shape (n,)

        Raises
        ------
        ValueError
            When ``I − M`` is singular (``M`` has the eigenvalue 1, up to a condition number of
            1e12): then the loop has no fixed point or a whole affine space of them.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.AffineLoop([[[0.5]]], [[1.0]]).fixed_point()
        array([2.])
        """
        n = self.state_size
        system = np.eye(n) - self.loop_matrix()
        condition = np.linalg.cond(system)
        if not np.isfinite(condition) or condition > _SINGULAR_CONDITION:
            closest = min(np.linalg.eigvals(self.loop_matrix()), key=lambda value: abs(value - 1.0))
            raise ValueError(f"no unique fixed point of {self.name}: I - M is singular (condition number "
                             f"{condition:.3g}; M has the eigenvalue {complex(closest):.6g}, "
                             "which is not allowed to be 1)")
        return np.linalg.solve(system, self.loop_offset())

    def stage_fixed_points(self):
        """The points the stages visit from the fixed point: ``x*`` and its images along one loop.

        Row ``j`` is the state after stage ``j - 1`` (row 0 is ``x*``, row ``k`` is ``x*`` again);
        row ``j`` is the fixed point of the loop rotated to start at stage ``j``. Distinct rows
        form the closed ``k``-point cycle of a cyclic fixed point; equal rows mean the stages act
        as the identity there (vanishing).

        Returns
        -------
        ndarray, shape (k + 1, n)

        Examples
        --------
        >>> import dynloop
        >>> dynloop.AffineLoop([[[0.5]], [[0.5]]], [[1.0], [0.0]]).stage_fixed_points()
        array([[0.66666667],
               [1.33333333],
               [0.66666667]])
        """
        return self.stage_maps(self.fixed_point())

    def spectral_radius(self):
        """``ρ(M)``, the largest modulus of an eigenvalue of the loop matrix (``< 1``: attracting).

        Examples
        --------
        >>> import dynloop
        >>> dynloop.AffineLoop([[[0.0, 2.0], [0.0, 0.0]], [[0.5, 0.0], [0.0, 0.5]]]).spectral_radius()
        0.0
        """
        return float(np.max(np.abs(np.linalg.eigvals(self.loop_matrix()))))

    # ------------------------------------------------------------------ System contract
    def start_state(self, params=None):
        """The default start state (``x0`` given at construction, else ones).

        Examples
        --------
        >>> import dynloop
        >>> dynloop.AffineLoop([[[0.5, 0.0], [0.0, 0.5]]]).start_state()
        array([1., 1.])
        """
        return self._x0.copy()

    def _run(self, x0, loops, params, mode, stride, n_last, dtype, record_attention):
        if dtype not in self._kernel_arrays:
            self._kernel_arrays[dtype] = (np.ascontiguousarray(self.matrices, dtype=dtype),
                                          np.ascontiguousarray(self.offsets, dtype=dtype))
        matrices, offsets = self._kernel_arrays[dtype]
        capacity = record_capacity(mode, loops, stride, n_last)
        return RunOutput(*run_affine(matrices, offsets, np.ascontiguousarray(x0, dtype=dtype), loops, mode,
                                     stride, capacity))

    def _tangent_run(self, x, basis, loops, params, with_log_det):
        # contract item 7 of base.py; ln|det J| of a loop is the same at every state
        self.resolve_params(params)
        basis = np.array(basis, dtype=np.float64, order="C", copy=True)
        log_det = float(sum(np.linalg.slogdet(a)[1] for a in self.matrices)) if with_log_det else 0.0
        return tangent_run_affine(self.matrices, self.offsets, self.check_state(x, "x"), basis, int(loops),
                                  log_det)

    def stage_maps(self, x, params=None):
        """The ``k + 1`` stage states of one loop started at ``x``, shape ``(k + 1, n)``.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.AffineLoop([[[2.0]], [[3.0]]], [[1.0], [0.0]]).stage_maps([1.0])
        array([[1.],
               [3.],
               [9.]])
        """
        self.resolve_params(params)
        states = [self.check_state(x, "x")]
        for matrix, b in zip(self.matrices, self.offsets):
            states.append(matrix @ states[-1] + b)
        return np.stack(states)

    def stage_jacobians(self, x=None, params=None):
        """The stage Jacobians, which are the stage matrices (the same at every ``x``), ``(k, n, n)``.

        Examples
        --------
        >>> import dynloop
        >>> dynloop.AffineLoop([[[2.0]], [[3.0]]]).stage_jacobians().shape
        (2, 1, 1)
        """
        self.resolve_params(params)
        if x is not None:
            self.check_state(x, "x")
        return self.matrices.copy()
