"""Which tokens reach a fixed point, which circle and which slide: the token classifier."""

__all__ = ["TOKEN_CLASSES", "token_cosines", "classify_tokens", "token_sensitivity"]

import numpy as np

from .metrics import cosines, settled_from

#: the token classes, in the order of every count array
TOKEN_CLASSES = ("fixed_point", "orbit", "slider", "unknown")


def token_cosines(outputs):
    """``cos(x_{t,i}, x_{last,i})`` for every loop ``t`` and token ``i``.

    Parameters
    ----------
    outputs : ndarray, shape (loops, T, d)
        The last layer's output in every loop.

    Returns
    -------
    ndarray, shape (T, loops)
        One sequence per token, ending at 1 (a zero state counts as aligned).

    Examples
    --------
    >>> import numpy as np
    >>> token_cosines(np.array([[[1.0, 0.0]], [[1.0, 1.0]]])).round(6).tolist()
    [[0.707107, 1.0]]
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    return cosines(outputs, outputs[-1:], -1).T


def classify_tokens(cosines, tau=0.05, rho=0.9):
    """The class of each token from its cosines to its final state, loop after loop.

    With ``u_t = 1 − c_t`` (0 at the final loop) over ``n`` loops:

    - ``"fixed_point"``: ``u`` falls below ``tau`` and stays there from a loop no later than
      ``rho · (n − 1)`` (it settled, and stayed settled for the last ``1 − rho`` of the run);
    - ``"orbit"``: not settled, and over the second half the token comes within ``tau`` of its
      final direction and leaves it again, or ``u`` turns (rises after falling or falls after
      rising) at ``1 − rho`` or more of its steps: the state keeps circling;
    - ``"slider"``: not settled and not circling, and ``u`` falls at ``rho`` or more of the
      second half's steps: the token keeps moving steadily, one way;
    - ``"unknown"``: anything else (too short to tell, a single late jump).

    Parameters
    ----------
    cosines : ndarray, shape (T, loops)
    tau : float
        How close to 1 a cosine must be to count as the final direction.
    rho : float
        In (0, 1): the fraction of the run after which a fixed point must have settled, and of the
        steps that must agree for a slider.

    Returns
    -------
    ndarray of str, shape (T,)

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(60)
    >>> settle = 1 - np.exp(-t / 3.0); settle[-1] = 1.0
    >>> slide = np.linspace(0.2, 1.0, 60)
    >>> circle = np.where(t % 3 == 2, 1.0, 0.5)
    >>> classify_tokens(np.array([settle, circle, slide])).tolist()
    ['fixed_point', 'orbit', 'slider']
    """
    cosines = np.atleast_2d(np.asarray(cosines, dtype=np.float64))
    classes = np.full(cosines.shape[0], "unknown", dtype=object)
    n = cosines.shape[1]
    if n < 4:
        return classes.astype(str)
    u = 1.0 - cosines
    settled = settled_from(u > tau) <= rho * (n - 1)  # u stays below tau from there
    half = u[:, n // 2 :]
    steps = np.diff(half, axis=1)
    scale = max(tau * 1e-3, 1e-12)
    moving = np.abs(steps) > scale
    falls = np.mean(steps < -scale, axis=1)
    signs = np.sign(np.where(moving, steps, 0.0))
    turns = np.zeros(cosines.shape[0])
    for i in range(cosines.shape[0]):
        nonzero = signs[i][signs[i] != 0]
        turns[i] = np.mean(nonzero[1:] != nonzero[:-1]) if nonzero.size > 1 else 0.0
    # back near the final direction, then away again: a return (arriving and staying is not one)
    near = half <= tau
    away_later = np.flip(np.logical_or.accumulate(np.flip(~near, axis=1), axis=1), axis=1)
    returns = np.any(near[:, :-1] & away_later[:, 1:], axis=1)
    circling = ~settled & (returns | (turns >= 1.0 - rho))
    classes[settled] = "fixed_point"
    classes[circling] = "orbit"
    classes[~settled & ~circling & (falls >= rho)] = "slider"
    return classes.astype(str)


def token_sensitivity(cosines, tau=0.05, rho=0.9):
    """How the class counts change over a small grid around ``tau`` and ``rho``.

    Parameters
    ----------
    cosines : ndarray, shape (T, loops)
    tau, rho : float
        The centre of the grid: ``tau × (1/2, 1, 2)`` and ``rho + (−0.05, 0, +0.05)`` (kept in
        (0, 1)).

    Returns
    -------
    dict
        ``"tau"`` (3,), ``"rho"`` (3,), ``"classes"`` (:data:`TOKEN_CLASSES`) and ``"counts"``
        (3, 3, 4): tokens of each class for each (tau, rho).

    Examples
    --------
    >>> import numpy as np
    >>> table = token_sensitivity(np.ones((5, 20)))
    >>> table["counts"][1, 1].tolist()   # all fixed points at the centre
    [5, 0, 0, 0]
    """
    taus = np.array([tau / 2, tau, 2 * tau])
    rhos = np.clip(np.array([rho - 0.05, rho, rho + 0.05]), 0.01, 0.99)
    counts = np.zeros((3, 3, len(TOKEN_CLASSES)), dtype=np.int64)
    for a, t in enumerate(taus):
        for b, r in enumerate(rhos):
            classes = classify_tokens(cosines, t, r)
            counts[a, b] = [int(np.sum(classes == name)) for name in TOKEN_CLASSES]
    return {"tau": taus, "rho": rhos, "classes": TOKEN_CLASSES, "counts": counts}
