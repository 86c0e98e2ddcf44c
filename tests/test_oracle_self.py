"""Tests of the numpy oracle itself (tests/oracle.py), independent of dynloop's kernels.

Each test checks the oracle against a defining property, an analytic formula of docs/background.md
or a closed form, never against the oracle's own building blocks alone.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.linalg import block_diag
from scipy.special import softmax

import oracle as O

from dynloop import components


def _rng(*seed):
    return np.random.default_rng(list(seed) if seed else 0)


def _block(mixer="linear", norm="none", injection="none", **kw):
    base = dict(
        width=4,
        tokens=3,
        layers=2,
        heads=2,
        hidden=5,
        mixer=mixer,
        activation="tanh",
        norm=norm,
        norm_kind="rms",
        norm_eps=0.0,
        injection=injection,
        residual_scale=0.7,
        injection_scale=0.9,
        causal=False,
    )
    base.update(kw)
    return base


def _zero_mixer(arrays):
    for name in ("linear", "attn_q", "attn_k", "attn_v", "attn_o", "mlp_in", "mlp_out"):
        if name in arrays["weights"]:
            arrays["weights"][name] = np.zeros_like(arrays["weights"][name])
    return arrays


def _row_norms(x):
    return np.sqrt(np.sum(x * x, axis=-1))


# ============================================================================================
# fd_jacobian
# ============================================================================================


def test_fd_jacobian_linear_1d():
    rng = _rng(1)
    A = rng.standard_normal((5, 5))
    x = rng.standard_normal(5)
    np.testing.assert_allclose(O.fd_jacobian(lambda v: A @ v, x), A, atol=1e-8)


def test_fd_jacobian_row_major_flattening():
    rng = _rng(2)
    T, d = 3, 4
    M = rng.standard_normal((d, d))
    P = rng.standard_normal((T, T))
    X = rng.standard_normal((T, d))
    # vec(X M^T) = kron(I_T, M) vec(X)   and   vec(P X) = kron(P, I_d) vec(X)   (row-major vec)
    np.testing.assert_allclose(O.fd_jacobian(lambda Y: Y @ M.T, X), np.kron(np.eye(T), M), atol=1e-8)
    np.testing.assert_allclose(O.fd_jacobian(lambda Y: P @ Y, X), np.kron(P, np.eye(d)), atol=1e-8)
    assert O.fd_jacobian(lambda Y: Y @ M.T, X).shape == (T * d, T * d)


def test_fd_jacobian_nonlinear_elementwise():
    x = np.linspace(-2, 2, 7).reshape(7)
    np.testing.assert_allclose(O.fd_jacobian(np.sin, x), np.diag(np.cos(x)), atol=1e-8)


# ============================================================================================
# norms: defining properties and analytic Jacobians (docs/background.md, Norm placements)
# ============================================================================================


def J_rms(x, g, eps):
    d = x.size
    r = math.sqrt(x @ x / d + eps)
    return np.diag(g) @ (np.eye(d) - np.outer(x, x) / (d * r * r)) / r


def J_layer(x, g, eps):
    d = x.size
    c = x - x.mean()
    s = math.sqrt(c @ c / d + eps)
    return np.diag(g) @ (np.eye(d) - np.ones((d, d)) / d - np.outer(c, c) / (d * s * s)) / s


def J_l2(x, g, eps):
    d = x.size
    q = x @ x + eps
    return np.diag(g) @ (np.eye(d) - np.outer(x, x) / q) / math.sqrt(q)


J_NORM = {"rms": J_rms, "layer": J_layer, "l2": J_l2}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("d", [2, 3, 8])
def test_rms_norm_property(seed, d):
    rng = _rng(seed, d)
    x = 10 * rng.standard_normal((4, d))
    g = 1 + 0.1 * rng.standard_normal(d)
    y = O.norm(x, g, "rms", 0.0)
    np.testing.assert_allclose(np.sqrt(np.mean((y / g) ** 2, axis=-1)), 1.0, rtol=1e-12)
    # direction preserved
    np.testing.assert_allclose((y / g) * np.sqrt(np.mean(x**2, axis=-1, keepdims=True)), x, rtol=1e-12)
    # bound of docs/background.md, Norm placements: |y| <= max|g| sqrt(d)
    assert np.all(_row_norms(y) <= np.max(np.abs(g)) * math.sqrt(d) * (1 + 1e-12))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("d", [2, 3, 8])
def test_layer_norm_property(seed, d):
    rng = _rng(seed, d, 1)
    x = 3 + 10 * rng.standard_normal((4, d))
    y = O.norm(x, np.ones(d), "layer", 0.0)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-12)
    # no bias: gains multiply, nothing is added
    g = 1 + 0.1 * rng.standard_normal(d)
    np.testing.assert_allclose(O.norm(x, g, "layer", 0.0), g * y, rtol=1e-12)
    # shift invariance
    np.testing.assert_allclose(O.norm(x + 5.0, g, "layer", 0.0), g * y, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("d", [2, 3, 8])
def test_l2_norm_property(seed, d):
    rng = _rng(seed, d, 2)
    x = 10 * rng.standard_normal((4, d))
    y = O.norm(x, np.ones(d), "l2", 0.0)
    np.testing.assert_allclose(_row_norms(y), 1.0, rtol=1e-12)
    np.testing.assert_allclose(y * _row_norms(x)[:, None], x, rtol=1e-12)


def test_norm_eps_by_hand():
    x = np.array([3.0, 4.0])
    g = np.array([2.0, 0.5])
    eps = 0.5
    np.testing.assert_allclose(O.norm(x, g, "rms", eps), g * x / math.sqrt(12.5 + 0.5), rtol=1e-14)
    np.testing.assert_allclose(O.norm(x, g, "l2", eps), g * x / math.sqrt(25.0 + 0.5), rtol=1e-14)
    # mean 3.5, centred [-0.5, 0.5], variance 0.25
    np.testing.assert_allclose(O.norm(x, g, "layer", eps), g * np.array([-0.5, 0.5]) / math.sqrt(0.75),
                               rtol=1e-14)


@pytest.mark.parametrize("kind", O.NORM_KINDS)
def test_norm_acts_on_rows(kind):
    rng = _rng(3)
    x = rng.standard_normal((5, 4))
    g = 1 + 0.1 * rng.standard_normal(4)
    rows = np.stack([O.norm(r, g, kind, 1e-3) for r in x])
    np.testing.assert_allclose(O.norm(x, g, kind, 1e-3), rows, rtol=1e-14)


@pytest.mark.parametrize("kind", O.NORM_KINDS)
@pytest.mark.parametrize("eps", [0.0, 1e-3, 0.3])
@pytest.mark.parametrize("seed", range(4))
def test_norm_jacobian_analytic_vs_fd(kind, eps, seed):
    rng = _rng(seed, 7)
    d = 5
    x = rng.standard_normal(d) * 2
    g = 1 + 0.1 * rng.standard_normal(d)
    fd = O.fd_jacobian(lambda v: O.norm(v, g, kind, eps), x)
    np.testing.assert_allclose(fd, J_NORM[kind](x, g, eps), atol=1e-7, rtol=1e-6)


def test_norm_jacobian_background_forms_eps0():
    rng = _rng(8)
    d = 6
    x = rng.standard_normal(d)
    g = np.ones(d)
    # L2 with eps = 0: (I - x̂x̂ᵀ)/|x|
    xh = x / np.linalg.norm(x)
    fd = O.fd_jacobian(lambda v: O.norm(v, g, "l2", 0.0), x)
    np.testing.assert_allclose(fd, (np.eye(d) - np.outer(xh, xh)) / np.linalg.norm(x), atol=1e-8)
    # RMS with eps = 0 kills the radial direction
    fd = O.fd_jacobian(lambda v: O.norm(v, g, "rms", 0.0), x)
    np.testing.assert_allclose(fd @ x, 0.0, atol=1e-7)


# ============================================================================================
# activations
# ============================================================================================


def test_activations_known_values():
    x = np.array([-1.0, 0.0, 1.0, 2.0])
    np.testing.assert_allclose(O.activate("tanh", x), np.tanh(x))
    np.testing.assert_array_equal(O.activate("relu", x), [0.0, 0.0, 1.0, 2.0])
    Phi = np.array([0.15865525393145707, 0.5, 0.8413447460685429, 0.9772498680518208])
    np.testing.assert_allclose(O.activate("gelu", x), x * Phi, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(O.activate("silu", x), x / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(O.activate("silu", np.array([1.0])), [0.7310585786300049], rtol=1e-14)
    with pytest.raises(ValueError):
        O.activate("swish", x)


def test_softplus():
    np.testing.assert_allclose(O.softplus(0.0), math.log(2.0), rtol=1e-15)
    np.testing.assert_allclose(O.softplus(np.array([1000.0, -1000.0])), [1000.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(O.softplus(1.3), math.log1p(math.exp(1.3)), rtol=1e-14)


# ============================================================================================
# attention
# ============================================================================================


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_attention_rows_stochastic(causal, seed):
    rng = _rng(seed, 11)
    T, d, H = 5, 6, 3
    x = 3 * rng.standard_normal((T, d))
    wq, wk = rng.standard_normal((2, d, d))
    A = O.attention_matrices(x, wq, wk, H, causal)
    assert A.shape == (H, T, T)
    assert np.all(A >= 0)
    np.testing.assert_allclose(A.sum(axis=-1), 1.0, rtol=1e-13)
    if causal:
        iu = np.triu_indices(T, 1)
        assert np.all(A[:, iu[0], iu[1]] == 0.0)
        assert np.all(A[:, 0, 0] == 1.0)
    else:
        assert np.all(A > 0)


def test_attention_single_token():
    rng = _rng(12)
    for causal in (False, True):
        A = O.attention_matrices(rng.standard_normal((1, 4)), *rng.standard_normal((2, 4, 4)), 2, causal)
        np.testing.assert_array_equal(A, np.ones((2, 1, 1)))


def test_attention_zero_scores_uniform():
    rng = _rng(13)
    T, d = 4, 4
    x = rng.standard_normal((T, d))
    z = np.zeros((d, d))
    np.testing.assert_allclose(O.attention_matrices(x, z, z, 2, False), np.full((2, T, T), 1 / T))
    expected = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    np.testing.assert_allclose(O.attention_matrices(x, z, z, 2, True), np.stack([expected] * 2))


def test_attention_by_hand():
    # T = 2, d = 1, one head: S = q_i k_j, q = 2x, k = 3x, scale 1/sqrt(1)
    x = np.array([[1.0], [-0.5]])
    A = O.attention_matrices(x, np.array([[2.0]]), np.array([[3.0]]), 1, False)[0]
    S = np.outer(2 * x[:, 0], 3 * x[:, 0])
    E = np.exp(S)
    np.testing.assert_allclose(A, E / E.sum(axis=1, keepdims=True), rtol=1e-14)
    # scaling by 1/sqrt(dh): d = 4, one head, identity q/k -> S = x xᵀ / 2
    x = _rng(14).standard_normal((3, 4))
    A = O.attention_matrices(x, np.eye(4), np.eye(4), 1, False)[0]
    np.testing.assert_allclose(A, softmax(x @ x.T / 2.0, axis=1), rtol=1e-13)


def test_attention_large_scores_stable():
    x = np.array([[100.0, 0.0], [0.0, 100.0]])
    A = O.attention_matrices(x, 10 * np.eye(2), 10 * np.eye(2), 1, False)
    assert np.all(np.isfinite(A))
    np.testing.assert_allclose(A[0], np.eye(2), atol=1e-300)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("H", [1, 2, 3])
def test_attention_branch_is_sum_over_heads(causal, H):
    """F(X) = sum_h A_h (X Wv_hᵀ) Wo[:, h]ᵀ with head-h row blocks of Wq, Wk, Wv (independent form)."""
    rng = _rng(15, H)
    T, d = 4, 6
    dh = d // H
    x = rng.standard_normal((T, d))
    wq, wk, wv, wo = rng.standard_normal((4, d, d))
    expected = np.zeros((T, d))
    for h in range(H):
        rows = slice(h * dh, (h + 1) * dh)
        S = (x @ wq[rows].T) @ (x @ wk[rows].T).T / math.sqrt(dh)
        if causal:
            S = np.where(np.tril(np.ones((T, T), bool)), S, -np.inf)
        A = softmax(S, axis=1)
        expected += A @ (x @ wv[rows].T) @ wo[:, rows].T
    np.testing.assert_allclose(O.attention_branch(x, wq, wk, wv, wo, H, causal), expected,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mixer", ["attention", "transformer"])
@pytest.mark.parametrize("norm", O.NORMS)
def test_oracle_attention_input(mixer, norm):
    rng = _rng(16, O.NORMS.index(norm))
    f = _block(mixer, norm, "none", layers=2, norm_kind="rms", norm_eps=1e-5, causal=True)
    arr = O.random_arrays(f, rng)
    w = arr["weights"]
    x = rng.standard_normal((f["tokens"], f["width"]))
    for layer in range(2):
        inp = x
        if norm in ("pre", "pre_outer", "sandwich", "peri", "peri_outer"):
            inp = x * w["norm_in"][layer, 0] / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-5)
        expected = O.attention_matrices(inp, w["attn_q"][layer], w["attn_k"][layer], f["heads"], True)
        np.testing.assert_allclose(O.oracle_attention(f, arr, x, layer), expected, rtol=1e-13)


def test_oracle_attention_matches_stage():
    """With norm none, stage output - x = a * sum_h A_h V_h Wo_hᵀ, A_h from oracle_attention."""
    rng = _rng(17)
    f = _block("attention", "none", "none", layers=2, causal=True)
    arr = O.random_arrays(f, rng)
    w = arr["weights"]
    st = O.oracle_stages(f, arr, arr["start_state"])
    dh = f["width"] // f["heads"]
    for layer in range(2):
        x = st[layer]
        A = O.oracle_attention(f, arr, x, layer)
        upd = np.zeros_like(x)
        for h in range(f["heads"]):
            rows = slice(h * dh, (h + 1) * dh)
            upd += A[h] @ (x @ w["attn_v"][layer][rows].T) @ w["attn_o"][layer][:, rows].T
        np.testing.assert_allclose(st[layer + 1], x + f["residual_scale"] * upd, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mixer", ["linear", "mlp"])
def test_oracle_attention_rejects_attentionless(mixer):
    f = _block(mixer)
    with pytest.raises(ValueError):
        O.oracle_attention(f, O.random_arrays(f, _rng(18)), np.zeros((3, 4)), 0)


# ============================================================================================
# structure of a loop, for every (mixer, norm, injection)
# ============================================================================================


@pytest.mark.parametrize("field, name", [(field, name) for field, registry in components.REGISTRIES.items()
                                         for name in registry])
def test_oracle_knows_every_component(field, name):
    """Every registry entry has oracle lines: a component added without them fails here."""
    rng = _rng(18, list(components.REGISTRIES).index(field), list(components.REGISTRIES[field]).index(name))
    fields = O.random_fields(rng, **{field: name}, tokens=2)
    arrays = O.random_arrays(fields, rng)
    assert np.all(np.isfinite(O.oracle_stages(fields, arrays, arrays["start_state"])))


def _combo_id(c):
    return "-".join(c)


@pytest.mark.parametrize("combo", O.ALL_COMBINATIONS, ids=_combo_id)
def test_stage_structure(combo):
    mixer, norm, injection = combo
    rng = _rng(19, O.ALL_COMBINATIONS.index(combo))
    f = O.random_fields(rng, mixer=mixer, norm=norm, injection=injection)
    arr = O.random_arrays(f, rng)
    k = f["layers"]
    has_stage = injection not in ("none", "additive_each_layer")  # MODEL.md, State and stages
    S = has_stage + k + (norm in ("pre_outer", "peri_outer"))
    names = O.stage_names(f)
    assert len(names) == S == O.n_stages(f)
    assert names[has_stage:][:k] == [f"layer{i}" for i in range(k)]
    x = arr["start_state"]
    st = O.oracle_stages(f, arr, x)
    assert st.shape == (S + 1, f["tokens"], f["width"])
    assert np.all(np.isfinite(st))
    np.testing.assert_array_equal(st[0], x)
    funcs = O.oracle_stage_functions(f, arr)
    assert len(funcs) == S
    for j, fn in enumerate(funcs):
        np.testing.assert_array_equal(fn(st[j]), st[j + 1])
    run = O.oracle_run(f, arr, x, 3)
    assert run.shape == (3, S + 1, f["tokens"], f["width"])
    np.testing.assert_array_equal(run[0], st)
    for t in range(2):
        np.testing.assert_array_equal(run[t + 1, 0], run[t, -1])
        np.testing.assert_array_equal(run[t + 1], O.oracle_stages(f, arr, run[t + 1, 0]))
    np.testing.assert_array_equal(x, arr["start_state"])  # input not mutated


@pytest.mark.parametrize("combo", O.ALL_COMBINATIONS, ids=_combo_id)
def test_token_permutation_equivariance(combo):
    """Non-causal: every operation is per token or permutation-equivariant attention."""
    mixer, norm, injection = combo
    rng = _rng(20, O.ALL_COMBINATIONS.index(combo))
    f = O.random_fields(rng, mixer=mixer, norm=norm, injection=injection, tokens=4, causal=False)
    arr = O.random_arrays(f, rng, state_init="normal")
    perm = np.array([2, 0, 3, 1])
    arr_p = dict(arr, inputs=arr["inputs"][perm])
    st = O.oracle_stages(f, arr, arr["start_state"])
    st_p = O.oracle_stages(f, arr_p, arr["start_state"][perm])
    np.testing.assert_allclose(st_p, st[:, perm], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("combo", O.ALL_COMBINATIONS, ids=_combo_id)
def test_causal_prefix(combo):
    """Causal: the first m tokens evolve as if the sequence stopped at m."""
    mixer, norm, injection = combo
    rng = _rng(21, O.ALL_COMBINATIONS.index(combo))
    f = O.random_fields(rng, mixer=mixer, norm=norm, injection=injection, tokens=4, causal=True)
    arr = O.random_arrays(f, rng, state_init="normal")
    run = O.oracle_run(f, arr, arr["start_state"], 2)
    for m in (1, 2, 3):
        fm = dict(f, tokens=m)
        arr_m = dict(arr, inputs=arr["inputs"][:m])
        run_m = O.oracle_run(fm, arr_m, arr["start_state"][:m], 2)
        np.testing.assert_allclose(run_m, run[:, :, :m], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("injection", O.INJECTIONS)
@pytest.mark.parametrize("mixer", O.MIXERS)
def test_token_coupling_pattern(mixer, injection):
    """Loop Jacobian token blocks: per-token mixers are block-diagonal; causal is block lower-triangular."""
    rng = _rng(22, O.MIXERS.index(mixer), O.INJECTIONS.index(injection))
    T, d = 3, 4
    f = _block(mixer, "pre", injection, tokens=T, width=d, causal=True, norm_eps=1e-4)
    arr = O.random_arrays(f, rng, state_init="normal")
    J = O.fd_jacobian(lambda X: O.oracle_stages(f, arr, X)[-1], arr["start_state"])
    blocks = J.reshape(T, d, T, d)
    for i in range(T):
        for j in range(T):
            nrm = np.abs(blocks[i, :, j, :]).max()
            if j > i or (i != j and mixer in ("linear", "mlp")):
                assert nrm < 1e-8
            elif i != j:
                assert nrm > 1e-6  # attention couples earlier tokens
            else:
                assert nrm > 1e-3


@pytest.mark.parametrize("seed", range(6))
def test_loop_jacobian_is_product_of_stage_jacobians(seed):
    rng = _rng(23, seed)
    combo = O.ALL_COMBINATIONS[rng.integers(len(O.ALL_COMBINATIONS))]
    f = O.random_fields(rng, mixer=combo[0], norm=combo[1], injection=combo[2],
                        activation=("tanh", "gelu", "silu")[seed % 3], norm_eps=1e-3)
    arr = O.random_arrays(f, rng)
    x = arr["start_state"]
    st = O.oracle_stages(f, arr, x)
    prod = np.eye(x.size)
    for j, fn in enumerate(O.oracle_stage_functions(f, arr)):
        prod = O.fd_jacobian(fn, st[j]) @ prod
    J = O.fd_jacobian(lambda X: O.oracle_stages(f, arr, X)[-1], x)
    np.testing.assert_allclose(J, prod, rtol=1e-5, atol=1e-5)


def test_attribute_style_fields():
    f = _block("transformer", "sandwich", "diagonal")
    arr = O.random_arrays(f, _rng(24))
    a = O.oracle_stages(f, arr, arr["start_state"])
    b = O.oracle_stages(SimpleNamespace(**f), arr, arr["start_state"])
    np.testing.assert_array_equal(a, b)


# ============================================================================================
# norm placements (docs/background.md, Norm placements)
# ============================================================================================


def _analytic_layer_jacobian(scheme, kind, x, W, a, gi, go, eps):
    """Per-token Jacobian of one linear-mixer sub-layer (the table in docs/background.md, Norm placements)."""
    d = x.size
    identity = np.eye(d)
    JN = J_NORM[kind]

    def N(v, g):
        return O.norm(v, g, kind, eps)

    if scheme == "none":
        return identity + a * W
    if scheme in ("pre", "pre_outer"):
        return identity + a * W @ JN(x, gi, eps)
    if scheme == "post":
        return JN(x + a * W @ x, go, eps) @ (identity + a * W)
    if scheme == "sandwich":
        return JN(x + a * W @ N(x, gi), go, eps) @ (identity + a * W @ JN(x, gi, eps))
    if scheme in ("peri", "peri_outer"):
        return identity + a * JN(W @ N(x, gi), go, eps) @ W @ JN(x, gi, eps)
    if scheme == "sphere":
        one = np.ones(d)
        u = N(x, one) + a * (N(W @ x, one) - N(x, one))
        return JN(u, one, eps) @ ((1 - a) * JN(x, one, eps) + a * JN(W @ x, one, eps) @ W)
    raise AssertionError(scheme)


@pytest.mark.parametrize("kind", O.NORM_KINDS)
@pytest.mark.parametrize("scheme", O.NORMS)
def test_placement_jacobians_match_background(scheme, kind):
    rng = _rng(25, O.NORMS.index(scheme), O.NORM_KINDS.index(kind))
    T, d, eps, a = 3, 4, 1e-3, 0.8
    f = _block("linear", scheme, "none", tokens=T, width=d, layers=1, norm_kind=kind,
               norm_eps=eps, residual_scale=a)
    arr = O.random_arrays(f, rng)
    w = arr["weights"]
    W = w["linear"][0]
    gi = w["norm_in"][0, 0] if "norm_in" in w else None
    go = w["norm_out"][0, 0] if "norm_out" in w else None
    x = arr["start_state"]
    funcs = O.oracle_stage_functions(f, arr)
    J_layer_fd = O.fd_jacobian(funcs[0], x)
    J_layer_an = block_diag(*[_analytic_layer_jacobian(scheme, kind, x[t], W, a, gi, go, eps)
                              for t in range(T)])
    np.testing.assert_allclose(J_layer_fd, J_layer_an, rtol=1e-6, atol=1e-7)
    if scheme in ("pre_outer", "peri_outer"):
        y = funcs[0](x)
        J_outer_an = block_diag(*[J_NORM[kind](y[t], w["norm_outer"], eps) for t in range(T)])
        np.testing.assert_allclose(O.fd_jacobian(funcs[1], y), J_outer_an, rtol=1e-6, atol=1e-7)
        J_loop = O.fd_jacobian(lambda X: O.oracle_stages(f, arr, X)[-1], x)
        np.testing.assert_allclose(J_loop, J_outer_an @ J_layer_an, rtol=1e-5, atol=1e-6)


def _normalised(y, g, kind):
    """Defining property of N(.; g) with eps = 0 applied to the rows of y."""
    z = y / g
    if kind == "rms":
        return np.allclose(np.sqrt(np.mean(z**2, axis=-1)), 1.0, rtol=1e-10)
    if kind == "layer":
        return np.allclose(z.mean(axis=-1), 0, atol=1e-10) and np.allclose(z.var(axis=-1), 1.0, rtol=1e-10)
    return np.allclose(_row_norms(z), 1.0, rtol=1e-10)


@pytest.mark.parametrize("kind", O.NORM_KINDS)
@pytest.mark.parametrize("injection", O.INJECTIONS)
@pytest.mark.parametrize("mixer", O.MIXERS)
@pytest.mark.parametrize("scheme", ["post", "sandwich", "sphere", "pre_outer", "peri_outer"])
def test_normalising_schemes_stay_bounded(scheme, mixer, injection, kind):
    """Schemes ending in N keep every token at the gain's scale, even with large weights."""
    rng = _rng(26, O.NORMS.index(scheme), O.MIXERS.index(mixer), O.INJECTIONS.index(injection),
               O.NORM_KINDS.index(kind))
    d = 4
    f = _block(mixer, scheme, injection, width=d, norm_kind=kind, norm_eps=0.0, residual_scale=1.3,
               injection_scale=2.0, activation="tanh")
    arr = O.random_arrays(f, rng, gain=4.0, state_init="normal", init_scale=50.0)
    w = arr["weights"]
    run = O.oracle_run(f, arr, arr["start_state"], 20)
    assert np.all(np.isfinite(run))
    first_layer = 1 + (injection not in ("none", "additive_each_layer"))  # run[:, 0] enters the loop
    S = n = run.shape[1] - 1
    if scheme in ("post", "sandwich", "sphere"):
        checks = [(first_layer + layer, layer) for layer in range(f["layers"])]
    else:
        checks = [(S, None)]
    for j, layer in checks:
        if scheme == "sphere":
            g = np.ones(d)
        elif layer is None:
            g = w["norm_outer"]
        else:
            g = w["norm_out"][layer, -1]
        states = run[:, j]
        bound = np.max(np.abs(g)) * (1.0 if kind == "l2" else math.sqrt(d))
        assert np.all(_row_norms(states) <= bound * (1 + 1e-10))
        assert _normalised(states, g, kind)
    assert n == O.n_stages(f)


@pytest.mark.parametrize("mixer", O.MIXERS)
@pytest.mark.parametrize("scheme", ["pre", "pre_outer", "peri", "peri_outer"])
def test_zero_weights_give_identity_layers(scheme, mixer):
    """Pre-/peri-norm with zero mixer weights: F = 0, every layer stage is the identity."""
    rng = _rng(27, O.NORMS.index(scheme), O.MIXERS.index(mixer))
    f = _block(mixer, scheme, "additive", norm_eps=1e-5)
    arr = _zero_mixer(O.random_arrays(f, rng))
    st = O.oracle_stages(f, arr, arr["start_state"])
    for layer in range(f["layers"]):
        np.testing.assert_array_equal(st[2 + layer], st[1 + layer])


@pytest.mark.parametrize("mixer", O.MIXERS)
@pytest.mark.parametrize("scheme", ["none", "pre", "peri", "pre_outer", "peri_outer"])
def test_zero_residual_scale_gives_identity_layers(scheme, mixer):
    rng = _rng(28, O.NORMS.index(scheme), O.MIXERS.index(mixer))
    f = _block(mixer, scheme, "none", residual_scale=0.0, norm_eps=1e-5, layers=3)
    arr = O.random_arrays(f, rng, state_init="normal")
    st = O.oracle_stages(f, arr, arr["start_state"])
    for j in range(1, 4):
        np.testing.assert_array_equal(st[j], st[0])
    if scheme in ("pre_outer", "peri_outer"):
        np.testing.assert_allclose(st[4], O.norm(st[0], arr["weights"]["norm_outer"], "rms", 1e-5))


@pytest.mark.parametrize("kind", O.NORM_KINDS)
@pytest.mark.parametrize("mixer", O.MIXERS)
@pytest.mark.parametrize("scheme", ["post", "sandwich", "sphere"])
def test_zero_residual_scale_normalising_schemes(scheme, mixer, kind):
    """a = 0: post and sandwich reduce to N(X; go), sphere to N(N(X; 1); 1)."""
    rng = _rng(29, O.NORMS.index(scheme), O.MIXERS.index(mixer), O.NORM_KINDS.index(kind))
    eps = 1e-3
    f = _block(mixer, scheme, "none", residual_scale=0.0, norm_kind=kind, norm_eps=eps, layers=1)
    arr = O.random_arrays(f, rng, state_init="normal", init_scale=3.0)
    x = arr["start_state"]
    y = O.oracle_stages(f, arr, x)[1]
    expected = x
    for s in range(2 if mixer == "transformer" else 1):  # one reduction per sub-layer
        if scheme == "sphere":
            one = np.ones(f["width"])
            expected = O.norm(O.norm(expected, one, kind, eps), one, kind, eps)
        else:
            expected = O.norm(expected, arr["weights"]["norm_out"][0, s], kind, eps)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", O.NORM_KINDS)
@pytest.mark.parametrize("mixer", ["linear", "mlp", "attention"])
def test_sphere_full_step(mixer, kind):
    """a = 1: the sphere update is N(N(F(X); 1); 1) = N(F(X); 1) with eps = 0."""
    rng = _rng(30, O.MIXERS.index(mixer), O.NORM_KINDS.index(kind))
    f = _block(mixer, "sphere", "none", residual_scale=1.0, norm_kind=kind, norm_eps=0.0, layers=1)
    arr = O.random_arrays(f, rng, state_init="normal")
    x = arr["start_state"]
    w = arr["weights"]
    if mixer == "linear":
        F = x @ w["linear"][0].T
    elif mixer == "mlp":
        F = np.tanh(x @ w["mlp_in"][0].T) @ w["mlp_out"][0].T
    else:
        F = O.attention_branch(x, w["attn_q"][0], w["attn_k"][0], w["attn_v"][0], w["attn_o"][0], 2, False)
    np.testing.assert_allclose(O.oracle_stages(f, arr, x)[1], O.norm(F, np.ones(4), kind, 0.0), rtol=1e-10)


@pytest.mark.parametrize("scheme", ["none", "pre", "post", "sandwich", "peri", "sphere"])
def test_transformer_is_attention_then_mlp(scheme):
    """A transformer layer = the attention sub-layer (index 0) followed by the MLP sub-layer (index 1)."""
    rng = _rng(31, O.NORMS.index(scheme))
    f = _block("transformer", scheme, "none", norm_eps=1e-4, activation="gelu", causal=True)
    arr = O.random_arrays(f, rng)
    w = arr["weights"]

    def sub(mixer, s):
        ws = {k: v for k, v in w.items()}
        for name in ("norm_in", "norm_out"):
            if name in w:
                ws[name] = w[name][:, s : s + 1]
        return dict(f, mixer=mixer), {"weights": ws, "inputs": arr["inputs"]}

    fa, arr_a = sub("attention", 0)
    fm, arr_m = sub("mlp", 1)
    x = arr["start_state"]
    st = O.oracle_stages(f, arr, x)
    for layer in range(f["layers"]):
        mid = O.oracle_stage_functions(fa, arr_a)[layer](st[layer])
        np.testing.assert_allclose(st[layer + 1], O.oracle_stage_functions(fm, arr_m)[layer](mid), rtol=1e-12)


def test_post_norm_linear_is_power_method():
    """Post-norm, linear layer, no injection: each token aligns with the dominant eigenvector."""
    rng = _rng(32)
    d = 4
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    for lams, flips in (([2.0, 1.0, 0.5, 0.1], False), ([-5.0, 1.0, 0.5, 0.1], True)):
        W = Q @ np.diag(lams) @ Q.T  # loop matrix per token: I + W, eigenvalues 1 + lam
        f = _block("linear", "post", "none", width=d, layers=1, residual_scale=1.0)
        arr = O.random_arrays(f, rng, state_init="normal")
        arr["weights"]["linear"][0] = W
        arr["weights"]["norm_out"][:] = 1.0
        run = O.oracle_run(f, arr, arr["start_state"], 200)
        last = run[-1, -1]
        cos = last @ Q[:, 0] / _row_norms(last)
        np.testing.assert_allclose(np.abs(cos), 1.0, atol=1e-10)
        prev = run[-1, 0]
        np.testing.assert_allclose(last, -prev if flips else prev, atol=1e-8)


# ============================================================================================
# closed forms
# ============================================================================================


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_linear_block_closed_form(k):
    rng = _rng(33, k)
    f = _block("linear", "none", "none", layers=k, residual_scale=0.6)
    arr = O.random_arrays(f, rng)
    x = arr["start_state"]
    M = np.eye(f["width"])
    for layer in range(k):
        M = M @ (np.eye(f["width"]) + 0.6 * arr["weights"]["linear"][layer].T)
    np.testing.assert_allclose(O.oracle_stages(f, arr, x)[-1], x @ M, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(O.oracle_run(f, arr, x, 5)[-1, -1], x @ np.linalg.matrix_power(M, 5),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mixer", O.MIXERS)
def test_concat_injection_closed_form(mixer):
    rng = _rng(34, O.MIXERS.index(mixer))
    beta = 0.8
    f = _block(mixer, "none", "concat", injection_scale=beta)
    arr = _zero_mixer(O.random_arrays(f, rng, state_init="normal"))
    w, e, x = arr["weights"], arr["inputs"], arr["start_state"]
    st = O.oracle_stages(f, arr, x)
    np.testing.assert_allclose(st[1], x @ w["inject_h"].T + beta * e @ w["inject_e"].T, rtol=1e-13)
    np.testing.assert_array_equal(st[-1], st[1])
    # convergence to X* = beta e W_eᵀ (I - W_hᵀ)^-1 when rho(W_h) < 1
    w["inject_h"] *= 0.5 / max(abs(np.linalg.eigvals(w["inject_h"])))
    fixed = beta * e @ w["inject_e"].T @ np.linalg.inv(np.eye(f["width"]) - w["inject_h"].T)
    np.testing.assert_allclose(O.oracle_run(f, arr, x, 80)[-1, -1], fixed, rtol=1e-9, atol=1e-12)


def test_concat_injection_with_zero_residual_scale():
    rng = _rng(35)
    f = _block("transformer", "pre", "concat", residual_scale=0.0, norm_eps=1e-5)
    arr = O.random_arrays(f, rng, state_init="normal")
    w, e, x = arr["weights"], arr["inputs"], arr["start_state"]
    np.testing.assert_allclose(O.oracle_stages(f, arr, x)[-1],
                               x @ w["inject_h"].T + f["injection_scale"] * e @ w["inject_e"].T, rtol=1e-13)


@pytest.mark.parametrize("seed", range(5))
def test_diagonal_injection(seed):
    rng = _rng(36, seed)
    beta = 1.1
    f = _block("mlp", "none", "diagonal", injection_scale=beta)
    arr = _zero_mixer(O.random_arrays(f, rng, state_init="normal"))
    w, e, x = arr["weights"], arr["inputs"], arr["start_state"]
    dt, alog, B = w["inject_dt"], w["inject_a_log"], w["inject_b"]
    delta = np.log1p(np.exp(dt))
    D = np.exp(-delta * np.exp(alog))
    assert np.all((D > 0) & (D < 1))
    inj = O.oracle_stage_functions(f, arr)[0]
    np.testing.assert_allclose(inj(x), D * x + beta * delta * (e @ B.T), rtol=1e-13)
    # Ā = diag(D) per token, in (0, 1)
    J = O.fd_jacobian(inj, x)
    np.testing.assert_allclose(J, np.diag(np.tile(D, f["tokens"])), atol=1e-9)
    assert np.all((np.diag(J) > 0) & (np.diag(J) < 1))
    # fixed point h* = (I - Ā)^-1 B̄ e
    fixed = beta * delta * (e @ B.T) / (1 - D)
    loops = int(np.ceil(40 / -np.log(D.max())))
    np.testing.assert_allclose(O.oracle_run(f, arr, x, loops)[-1, -1], fixed, rtol=1e-8, atol=1e-10)


def test_additive_injection_drifts_linearly():
    rng = _rng(37)
    beta = 0.7
    f = _block("attention", "pre", "additive", injection_scale=beta, norm_eps=1e-5)
    arr = _zero_mixer(O.random_arrays(f, rng))
    x, e = arr["start_state"], arr["inputs"]
    run = O.oracle_run(f, arr, x, 6)
    for t in range(6):
        np.testing.assert_allclose(run[t, -1], x + (t + 1) * beta * e, rtol=1e-12)


def test_convex_injection():
    rng = _rng(38)
    beta = 0.9
    f = _block("linear", "none", "convex", injection_scale=beta)
    arr = _zero_mixer(O.random_arrays(f, rng, state_init="normal"))
    w, x, e = arr["weights"], arr["start_state"], arr["inputs"]
    al, b = w["inject_alpha"], w["inject_beta"]
    np.testing.assert_allclose(O.oracle_stages(f, arr, x)[1], al * x + beta * b * e, rtol=1e-13)
    al[:] = np.clip(al, 0.05, 0.9)
    np.testing.assert_allclose(O.oracle_run(f, arr, x, 400)[-1, -1], beta * b * e / (1 - al), rtol=1e-9)


def test_mlp_branch_by_hand():
    f = _block("mlp", "none", "none", width=2, hidden=3, tokens=1, layers=1, heads=1,
               residual_scale=0.5, activation="relu")
    W1 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    W2 = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    arr = {"weights": {"mlp_in": W1[None], "mlp_out": W2[None]}, "inputs": np.zeros((1, 2))}
    x = np.array([[2.0, -3.0]])
    h = np.maximum(x @ W1.T, 0)  # [2, 0, 0]
    np.testing.assert_allclose(O.oracle_stages(f, arr, x)[1], x + 0.5 * h @ W2.T)
    np.testing.assert_allclose(O.oracle_stages(f, arr, x)[1], [[3.0, -3.0]])


# ============================================================================================
# random draws
# ============================================================================================


@pytest.mark.parametrize("combo", O.ALL_COMBINATIONS, ids=_combo_id)
def test_random_arrays_layout(combo):
    mixer, norm, injection = combo
    rng = _rng(39, O.ALL_COMBINATIONS.index(combo))
    f = O.random_fields(rng, mixer=mixer, norm=norm, injection=injection)
    assert f["width"] % f["heads"] == 0 and f["width"] >= 2
    k, d, hid = f["layers"], f["width"], f["hidden"]
    S = 2 if mixer == "transformer" else 1
    expected = {}
    if mixer == "linear":
        expected["linear"] = (k, d, d)
    if mixer in ("attention", "transformer"):
        expected.update(attn_q=(k, d, d), attn_k=(k, d, d), attn_v=(k, d, d), attn_o=(k, d, d))
    if mixer in ("mlp", "transformer"):
        expected.update(mlp_in=(k, hid, d), mlp_out=(k, d, hid))
    if norm in ("pre", "sandwich", "peri", "pre_outer", "peri_outer"):
        expected["norm_in"] = (k, S, d)
    if norm in ("post", "sandwich", "peri", "peri_outer"):
        expected["norm_out"] = (k, S, d)
    if norm in ("pre_outer", "peri_outer"):
        expected["norm_outer"] = (d,)
    if injection == "concat":
        expected.update(inject_h=(d, d), inject_e=(d, d))
    if injection == "diagonal":
        expected.update(inject_dt=(d,), inject_a_log=(d,), inject_b=(d, d))
    if injection == "convex":
        expected.update(inject_alpha=(d,), inject_beta=(d,))
    if injection == "additive_norm":
        expected["inject_norm"] = (d,)
    arr = O.random_arrays(f, rng)
    assert {k_: v.shape for k_, v in arr["weights"].items()} == expected
    assert arr["inputs"].shape == (f["tokens"], d)
    np.testing.assert_array_equal(arr["start_state"], arr["inputs"])
    if injection == "convex":
        a = arr["weights"]["inject_alpha"]
        assert np.all((a >= 0) & (a <= 1))
        np.testing.assert_array_equal(arr["weights"]["inject_beta"], 1 - a)


def test_random_arrays_state_init_and_scales():
    rng = _rng(40)
    f = _block("mlp", "peri_outer", "none", width=64, hidden=64, layers=8)
    arr = O.random_arrays(f, rng, gain=2.0, state_init="zeros")
    np.testing.assert_array_equal(arr["start_state"], 0.0)
    w = arr["weights"]
    assert abs(w["mlp_in"].std() - 2.0 / 8.0) < 0.02
    assert abs(w["mlp_out"].std() - 2.0 / 8.0) < 0.02
    assert abs(w["norm_in"].mean() - 1.0) < 0.01 and 0.05 < w["norm_in"].std() < 0.15
    arr = O.random_arrays(f, rng, state_init="normal", init_scale=0.62)
    assert abs(arr["start_state"].std() - 0.62) < 0.1
    with pytest.raises(ValueError):
        O.random_arrays(f, rng, state_init="bogus")
