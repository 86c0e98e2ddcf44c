"""Compiled bookkeeping shared by every iteration kernel: which loops to keep, per-loop summaries.

Every system's kernel allocates its buffers with :func:`new_records`, computes the ``S + 1`` stage
states of loop ``t`` into the buffer ``cur`` of shape ``(S + 1, n)`` (row 0 is the state entering
the loop) and then calls :func:`close_loop`. Keeping this in one place means a map, an affine loop
and a looped block report their trajectories identically.
"""

__all__ = ["RECORD_ALL", "RECORD_LAST", "RECORD_NONE", "record_capacity", "summarize_loop",
           "record_slot", "new_records", "close_loop", "record_order"]

import math

import numpy as np
from numba import njit

RECORD_ALL = 0
RECORD_LAST = 1
RECORD_NONE = 2


def record_capacity(mode, loops, stride, n_last):
    """Number of loop records a kernel must allocate for a run of ``loops`` loops."""
    if mode == RECORD_ALL:
        return (loops + stride - 1) // stride
    if mode == RECORD_LAST:
        return min(n_last, (loops + stride - 1) // stride)
    return 0


@njit(cache=True)
def summarize_loop(t, cur, prev, norms, steps, cosines):
    """Fill row ``t`` of the summaries from the stage states ``cur`` and those of the previous loop.

    ``norms[t, j] = |h_{t,j}|``, ``steps[t, j] = |h_{t,j} - h_{t-1,j}|`` and
    ``cosines[t, j] = cos(h_{t,j}, h_{t-1,j})`` (NaN at ``t = 0``), all accumulated in float64.
    Returns the first stage index whose state is not finite (or whose squared norm overflows),
    or -1 when every stage is finite.
    """
    n_stages1, n = cur.shape
    bad_stage = -1
    for j in range(n_stages1):
        ss = 0.0
        dd = 0.0
        dot = 0.0
        pp = 0.0
        for i in range(n):
            c = np.float64(cur[j, i])
            ss += c * c
            if t > 0:
                p = np.float64(prev[j, i])
                dd += (c - p) * (c - p)
                dot += c * p
                pp += p * p
        norms[t, j] = math.sqrt(ss)
        if not math.isfinite(ss) and bad_stage < 0:
            bad_stage = j
        if t > 0:
            steps[t, j] = math.sqrt(dd)
            denom = math.sqrt(ss) * math.sqrt(pp)
            cosines[t, j] = dot / denom if denom > 0.0 else np.nan
        else:
            steps[t, j] = np.nan
            cosines[t, j] = np.nan
    return bad_stage


@njit(cache=True)
def record_slot(t, stride, mode, capacity, count):
    """Slot in the record arrays for loop ``t`` given ``count`` records so far, or -1 to skip."""
    if mode == RECORD_NONE or capacity == 0 or t % stride != 0:
        return -1
    if mode == RECORD_ALL:
        return count
    return count % capacity


@njit(cache=True)
def new_records(loops, n_stages, n, capacity, mode, like):
    """Buffers of one run: ``cur``, ``prev`` (S + 1, n), the record slots and the summaries.

    Returns ``(cur, prev, states, recorded_loops, norms, steps, cosines)``; ``states`` has shape
    ``(capacity, S + 1, n)`` (none when ``mode`` is ``RECORD_NONE``) and the dtype of ``like``.
    """
    cur = np.empty((n_stages + 1, n), dtype=like.dtype)
    prev = np.empty_like(cur)
    states = np.zeros((capacity if mode != RECORD_NONE else 0, n_stages + 1, n), dtype=like.dtype)
    recorded_loops = np.full(capacity, -1, dtype=np.int64)
    norms = np.empty((loops, n_stages + 1))
    steps = np.empty((loops, n_stages + 1))
    cosines = np.empty((loops, n_stages + 1))
    return cur, prev, states, recorded_loops, norms, steps, cosines


@njit(cache=True)
def close_loop(t, cur, prev, states, recorded_loops, norms, steps, cosines, stride, mode, count):
    """Summarise loop ``t``, record it if its turn has come, and make it the previous loop.

    Returns ``(bad_stage, slot, count)``: the first non-finite stage (-1 if none; nothing is
    recorded then), the record slot used (-1 if none) and the updated number of records.
    """
    bad_stage = summarize_loop(t, cur, prev, norms, steps, cosines)
    slot = -1
    if bad_stage < 0:
        slot = record_slot(t, stride, mode, recorded_loops.shape[0], count)
        if slot >= 0:
            states[slot] = cur
            recorded_loops[slot] = t
            count += 1
        prev[:] = cur
    return bad_stage, slot, count


def record_order(capacity, count, mode):
    """Indices that put the filled record slots in loop order (undoing the ring of ``RECORD_LAST``)."""
    if mode == RECORD_LAST and count > capacity:
        return np.roll(np.arange(capacity), -(count % capacity))
    return np.arange(min(count, capacity))
