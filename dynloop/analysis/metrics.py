"""The metrics of a loop recording, each a plain numpy function with a hand-computable case.

Notation: a row-stochastic attention matrix ``A`` (T × T; a causal one is zero above the
diagonal), ``ĉ_j = Σ_i A_ij / T`` its normalised column sums, a state ``X`` (T × d). Logarithms are
natural. ``docs/background.md`` (Metrics on real checkpoints) says where each comes from.
"""

__all__ = [
    "colsum_concentration",
    "sink_scores",
    "mixing",
    "residual_entropy",
    "frobenius_change",
    "cosines",
    "pairwise_squared_distances",
    "relative_similarity",
    "diagonal_band",
    "settled_from",
    "attention_bound",
    "geometric_remaining",
]

import numpy as np


def _p_log_p(p):
    """``p log p`` element by element, with ``0 log 0 = 0``."""
    positive = p > 0
    return np.where(positive, p * np.log(np.where(positive, p, 1.0)), 0.0)


def colsum_concentration(attention):
    """ColSum concentration ``1 + (1/log T) Σ_j ĉ_j log ĉ_j`` of each matrix, in [0, 1].

    Parameters
    ----------
    attention : ndarray, shape (..., T, T)

    Returns
    -------
    ndarray, shape (...)
        0 when every token receives the same total attention, 1 when one token receives it all
        (0 for T = 1, where there is nothing to concentrate).

    Examples
    --------
    >>> import numpy as np
    >>> float(colsum_concentration(np.full((4, 4), 0.25)))
    0.0
    >>> float(colsum_concentration(np.eye(4)[[0, 0, 0, 0]]))  # every row attends to token 0
    1.0
    """
    attention = np.asarray(attention, dtype=np.float64)
    tokens = attention.shape[-1]
    if tokens < 2:
        return np.zeros(attention.shape[:-2])
    c = attention.sum(axis=-2) / tokens
    return np.clip(1.0 + _p_log_p(c).sum(axis=-1) / np.log(tokens), 0.0, 1.0)


def sink_scores(attention, position=0):
    """Sink score of token ``position``: ``(1/T) Σ_t A_{t, position}``, the mean attention it receives.

    Parameters
    ----------
    attention : ndarray, shape (..., T, T)
    position : int

    Returns
    -------
    ndarray, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> float(sink_scores(np.eye(3)[[0, 0, 0]]))
    1.0
    >>> float(sink_scores(np.full((4, 4), 0.25)))
    0.25
    """
    attention = np.asarray(attention, dtype=np.float64)
    return attention[..., :, position].mean(axis=-1)


def mixing(attention):
    """Mixing score: the mean over rows of the row entropy ``-Σ_j A_ij log A_ij``.

    Parameters
    ----------
    attention : ndarray, shape (..., T, T)

    Returns
    -------
    ndarray, shape (...)
        ``log T`` for uniform attention, 0 when every row attends to one token.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(mixing(np.full((4, 4), 0.25))), 12) == round(float(np.log(4)), 12)
    True
    >>> float(mixing(np.eye(4)))
    0.0
    """
    attention = np.asarray(attention, dtype=np.float64)
    return 0.0 - _p_log_p(attention).sum(axis=-1).mean(axis=-1)  # 0.0 - : no negative zero


def residual_entropy(states):
    """Entropy of the normalised eigenvalue spectrum of the token Gram matrix ``X Xᵀ`` (T × T).

    With ``λ_i ≥ 0`` the eigenvalues of ``X Xᵀ`` (the squared singular values of ``X``) and
    ``p_i = λ_i / Σ λ``: ``H = -Σ p_i log p_i``, between 0 (the tokens' states span one direction)
    and ``log min(T, d)`` (they are orthogonal with equal norms). This is the eigenvalue variant;
    the singular-value variant would normalise ``sqrt(λ_i)`` instead. A zero state gives 0.

    Parameters
    ----------
    states : ndarray, shape (..., T, d)

    Returns
    -------
    ndarray, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> x = np.diag([1.0, 1.0, 1.0, 1.0])              # Gram spectrum (1, 1, 1, 1)
    >>> round(float(residual_entropy(x)), 12) == round(float(np.log(4)), 12)
    True
    >>> float(residual_entropy(np.ones((3, 5))))       # rank one
    0.0
    """
    states = np.asarray(states, dtype=np.float64)
    gram = states @ np.swapaxes(states, -1, -2)
    eigenvalues = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    total = eigenvalues.sum(axis=-1, keepdims=True)
    p = np.divide(eigenvalues, total, out=np.zeros_like(eigenvalues), where=total > 0)
    # eigenvalues below the rounding of the largest are zero
    p = np.where(p > 1e-12, p, 0.0)
    return np.clip(-_p_log_p(p).sum(axis=-1), 0.0, None)


def frobenius_change(series):
    """``‖Y_t − Y_{t−1}‖_F`` along the first axis, over the last two axes.

    Parameters
    ----------
    series : ndarray, shape (loops, ..., a, b)

    Returns
    -------
    ndarray, shape (loops − 1, ...)

    Examples
    --------
    >>> import numpy as np
    >>> frobenius_change(np.array([[[0.0, 0.0]], [[3.0, 4.0]]])).tolist()
    [5.0]
    """
    series = np.asarray(series, dtype=np.float64)
    return np.sqrt(np.sum(np.diff(series, axis=0) ** 2, axis=(-2, -1)))


def cosines(a, b, axis):
    """``cos(a, b)`` between matching items of ``a`` and ``b``, over ``axis``; 1 where either is zero.

    Examples
    --------
    >>> import numpy as np
    >>> cosines(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 0.0]]), -1).round(6).tolist()
    [0.707107, 1.0]
    """
    dots = np.sum(a * b, axis=axis)
    norms = np.linalg.norm(a, axis=axis) * np.linalg.norm(b, axis=axis)
    return np.clip(np.divide(dots, norms, out=np.ones_like(dots), where=norms > 0), -1.0, 1.0)


def pairwise_squared_distances(flat):
    """``‖a − b‖²`` between every two rows of ``flat`` (n, m), through the Gram matrix (n² memory).

    Examples
    --------
    >>> import numpy as np
    >>> pairwise_squared_distances(np.array([[0.0, 0.0], [3.0, 4.0]])).tolist()
    [[0.0, 25.0], [25.0, 0.0]]
    """
    squares = np.sum(flat * flat, axis=1)
    return np.clip(squares[:, None] + squares[None, :] - 2.0 * flat @ flat.T, 0.0, None)


def settled_from(above, axis=-1):
    """The first index along ``axis`` from which ``above`` is False to the end (its length if the last is).

    Examples
    --------
    >>> import numpy as np
    >>> above = np.array([[True, False, True, False], [False] * 4, [False, False, False, True]])
    >>> settled_from(above).tolist()
    [3, 0, 4]
    """
    above = np.moveaxis(np.asarray(above, dtype=bool), axis, -1)
    n = above.shape[-1]
    last = n - 1 - np.argmax(above[..., ::-1], axis=-1)
    return np.where(above.any(axis=-1), last + 1, 0)


def relative_similarity(items):
    """``1 − ‖a − b‖ / (‖a‖ + ‖b‖)`` between every pair of items (Frobenius over each item).

    1 for identical items, 0 for opposite ones (``b = −a``), and a monotone function of the
    distance between items of equal norm; two zero items are identical (1).

    Parameters
    ----------
    items : ndarray, shape (n, ...)

    Returns
    -------
    ndarray, shape (n, n)

    Examples
    --------
    >>> import numpy as np
    >>> relative_similarity(np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])).tolist()
    [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    flat = np.asarray(items, dtype=np.float64).reshape(len(items), -1)
    norms = np.linalg.norm(flat, axis=1)
    distance = np.sqrt(pairwise_squared_distances(flat))
    total = norms[:, None] + norms[None, :]
    similarity = 1.0 - np.divide(distance, total, out=np.zeros_like(distance), where=total > 0)
    np.fill_diagonal(similarity, 1.0)
    return np.clip(similarity, 0.0, 1.0)


def diagonal_band(similarity, loops, layers):
    """Fraction of (loop, layer) entries whose most similar entry in another loop is the same layer.

    Parameters
    ----------
    similarity : ndarray, shape (loops·layers, loops·layers)
        Entries in loop-major order: entry ``t·layers + l`` is layer ``l`` of loop ``t``.
    loops, layers : int

    Returns
    -------
    float
        1 when every layer is closest to itself on other loops (the diagonal bands of a cyclic
        fixed point); about ``1/layers`` when the layers are interchangeable; NaN for one loop.

    Examples
    --------
    >>> import numpy as np
    >>> states = np.tile(np.eye(3), (4, 1))   # 4 loops of 3 distinct layer states
    >>> diagonal_band(relative_similarity(states), 4, 3)
    1.0
    """
    if loops < 2:
        return float("nan")
    loop_of = np.repeat(np.arange(loops), layers)
    layer_of = np.tile(np.arange(layers), loops)
    other = np.where(loop_of[:, None] != loop_of[None, :], similarity, -np.inf)
    nearest = np.argmax(other, axis=1)
    return float(np.mean(layer_of[nearest] == layer_of))


def attention_bound(inputs, attn_q, attn_k, heads):
    """The bound on each head's attention change between consecutive loops (Prop. 4.2).

    For one layer and head with ``M = Wq_hᵀ Wk_h`` (``d × d``; ``Wq_h`` the head's rows of the
    query weights, ``Q = X Wqᵀ``), scores ``S = X M Xᵀ / sqrt(d_h)``. Between the attention's
    inputs ``X`` and ``X' = X + Δ`` of two loops, ``S' − S = (Δ M X'ᵀ + X M Δᵀ) / sqrt(d_h)`` exactly,
    so ``‖S' − S‖_F ≤ 2 B κ ‖Δ‖_F / sqrt(d_h)`` with ``κ = ‖M‖_F`` and ``B = max(‖X‖_F, ‖X'‖_F)``.
    The row softmax is ``1/2``-Lipschitz in the Euclidean norm (its Jacobian ``diag(a) − a aᵀ`` has
    spectral norm at most 1/2), causal masks included, so

    ``‖A' − A‖_F ≤ L_sm · 2 B κ / sqrt(d_h) · ‖Δ‖_F`` with ``L_sm = 1/2``.

    Parameters
    ----------
    inputs : ndarray, shape (loops, layers, T, d)
        What each layer's attention read in every loop.
    attn_q, attn_k : ndarray, shape (layers, d, d)
    heads : int

    Returns
    -------
    bound : ndarray, shape (loops − 1, layers, heads)
    kappa : ndarray, shape (layers, heads)

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])   # 2 loops, 1 layer, T = 1, d = 2
    >>> bound, kappa = attention_bound(x, np.eye(2)[None], np.eye(2)[None], 1)
    >>> float(kappa[0, 0]) == float(np.sqrt(2)), round(float(bound[0, 0, 0]), 6)   # 1/2 · 2 · 1 · √2/√2 · √2
    (True, 1.414214)
    """
    inputs = np.asarray(inputs, dtype=np.float64)
    layers, d = attn_q.shape[0], attn_q.shape[-1]
    dh = d // heads
    kappa = np.empty((layers, heads))
    for layer in range(layers):
        for h in range(heads):
            rows = slice(h * dh, (h + 1) * dh)
            kappa[layer, h] = np.linalg.norm(attn_q[layer, rows].T @ attn_k[layer, rows])
    norms = np.linalg.norm(inputs, axis=(-2, -1))  # (loops, layers)
    big = np.maximum(norms[1:], norms[:-1])
    change = frobenius_change(inputs)  # (loops − 1, layers)
    bound = 0.5 * 2.0 * big[..., None] * kappa[None] / np.sqrt(dh) * change[..., None]
    return bound, kappa


def geometric_remaining(steps):
    """How far a sequence with these last successive steps would still move if its horizon doubled.

    The steps' decay rate ``ρ`` is fitted (least squares on ``log`` step) over the last half of
    ``steps``; continuing ``n = len(steps)`` more loops at that rate moves the sequence by at most
    ``s_last · Σ_{i=1}^{n} ρ^i``. A rate of 1 or more (no decay) gives ``n · s_last`` or more.

    Parameters
    ----------
    steps : ndarray, shape (n, ...)
        Successive differences, oldest first.

    Returns
    -------
    ndarray, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> steps = 0.5 ** np.arange(1, 21)           # halving steps
    >>> bool(geometric_remaining(steps) < 2 * steps[-1])
    True
    """
    steps = np.asarray(steps, dtype=np.float64)
    n = steps.shape[0]
    last = steps[-1]
    tail = steps[n // 2 :]
    if tail.shape[0] < 2:
        return n * last
    t = np.arange(tail.shape[0], dtype=np.float64)
    logs = np.log(np.maximum(tail, 1e-300))
    slope = np.sum((t - t.mean())[:, None] * (logs - logs.mean(axis=0)).reshape(len(t), -1), axis=0) / np.sum(
        (t - t.mean()) ** 2
    )
    rate = np.exp(slope).reshape(last.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        series = np.where(np.abs(rate - 1.0) < 1e-12, n, rate * (1.0 - rate**n) / (1.0 - rate))
    return np.where(last > 0, last * series, 0.0)
