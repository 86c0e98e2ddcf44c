"""Each analysis metric on a case computed by hand, and the attention bound on random blocks."""

import numpy as np
import pytest

import dynloop
from dynloop.analysis import metrics
from dynloop.analysis.stages import detect_stages, profile_correlations
from dynloop.analysis.tokens import TOKEN_CLASSES, classify_tokens, token_cosines, token_sensitivity


def causal_uniform(tokens):
    a = np.tril(np.ones((tokens, tokens)))
    return a / a.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("tokens", [2, 5, 16])
def test_uniform_attention_has_no_concentration_and_full_mixing(tokens):
    uniform = np.full((tokens, tokens), 1.0 / tokens)
    assert metrics.colsum_concentration(uniform) == pytest.approx(0.0, abs=1e-14)
    assert metrics.mixing(uniform) == pytest.approx(np.log(tokens), rel=1e-14)
    assert metrics.sink_scores(uniform, 0) == pytest.approx(1.0 / tokens)


@pytest.mark.parametrize("column", [0, 3])
def test_a_one_hot_column_is_fully_concentrated_and_a_sink(column):
    one_hot = np.zeros((6, 6))
    one_hot[:, column] = 1.0
    assert metrics.colsum_concentration(one_hot) == pytest.approx(1.0, abs=1e-14)
    assert metrics.sink_scores(one_hot, column) == 1.0
    assert metrics.mixing(one_hot) == 0.0


def test_causal_uniform_attention_by_hand():
    tokens = 4
    a = causal_uniform(tokens)
    # row i attends uniformly to i + 1 tokens: entropy log(i + 1)
    assert metrics.mixing(a) == pytest.approx((np.log(1) + np.log(2) + np.log(3) + np.log(4)) / 4)
    # column sums: c_j = (1/T) sum_{i >= j} 1/(i + 1)
    c = np.array([sum(1 / (i + 1) for i in range(j, tokens)) for j in range(tokens)]) / tokens
    expected = 1 + sum(x * np.log(x) for x in c) / np.log(tokens)
    assert metrics.colsum_concentration(a) == pytest.approx(expected, rel=1e-13)
    assert metrics.sink_scores(a, 0) == pytest.approx(c[0])


def test_metrics_broadcast_over_loops_layers_heads():
    rng = np.random.default_rng(0)
    a = rng.random((3, 2, 4, 5, 5))
    a /= a.sum(axis=-1, keepdims=True)
    assert metrics.colsum_concentration(a).shape == (3, 2, 4)
    assert metrics.mixing(a)[1, 0, 2] == pytest.approx(metrics.mixing(a[1, 0, 2]))


def test_residual_entropy_of_a_known_gram_spectrum():
    # X = diag(2, 1, 1) padded to d = 4: Gram eigenvalues (4, 1, 1), p = (2/3, 1/6, 1/6)
    x = np.zeros((3, 4))
    x[0, 0], x[1, 1], x[2, 2] = 2.0, 1.0, 1.0
    rotation = np.linalg.qr(np.random.default_rng(1).standard_normal((4, 4)))[0]
    expected = -(2 / 3 * np.log(2 / 3) + 2 * (1 / 6) * np.log(1 / 6))
    assert metrics.residual_entropy(x) == pytest.approx(expected, rel=1e-12)
    assert metrics.residual_entropy(x @ rotation) == pytest.approx(expected, rel=1e-10)  # rotation-invariant
    assert metrics.residual_entropy(np.outer([1.0, 2.0, 3.0], [1.0, -1.0])) == pytest.approx(0.0, abs=1e-12)
    assert metrics.residual_entropy(np.zeros((3, 4))) == 0.0


def test_similarity_and_diagonal_bands():
    layers = np.eye(3)
    cyclic = np.tile(layers, (5, 1))  # 5 loops, 3 distinct layer states
    assert metrics.diagonal_band(metrics.relative_similarity(cyclic), 5, 3) == 1.0
    same = np.ones((15, 3))  # all layers alike: ties go to the first layer
    assert metrics.diagonal_band(metrics.relative_similarity(same), 5, 3) == pytest.approx(1 / 3)
    assert np.isnan(metrics.diagonal_band(metrics.relative_similarity(layers), 1, 3))
    a = np.array([[3.0, 4.0], [0.0, 0.0], [3.0, 4.0]])
    s = metrics.relative_similarity(a)
    assert s[0, 2] == 1.0 and s[0, 1] == 0.0  # distance 5 over norms 5 + 0


def softmax_attention(x, w_q, w_k, heads, causal):
    """Attention matrices (heads, T, T) of MODEL.md, in plain numpy."""
    tokens, d = x.shape
    dh = d // heads
    q, k = x @ w_q.T, x @ w_k.T
    out = np.empty((heads, tokens, tokens))
    for h in range(heads):
        s = q[:, h * dh : (h + 1) * dh] @ k[:, h * dh : (h + 1) * dh].T / np.sqrt(dh)
        if causal:
            s = np.where(np.tril(np.ones((tokens, tokens))) > 0, s, -np.inf)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        out[h] = s / s.sum(axis=1, keepdims=True)
    return out


@pytest.mark.parametrize("causal", [True, False])
def test_the_attention_bound_holds_for_random_inputs_and_weights(causal):
    rng = np.random.default_rng(2)
    worst = 0.0
    for _ in range(300):
        tokens, heads = rng.integers(1, 6), rng.choice([1, 2, 4])
        d = heads * rng.integers(1, 4)
        w_q, w_k = rng.standard_normal((2, d, d)) * rng.uniform(0.1, 3.0)
        x = rng.standard_normal((tokens, d))
        x2 = x + rng.standard_normal((tokens, d)) * 10.0 ** rng.uniform(-6, 0)
        observed = np.linalg.norm(
            softmax_attention(x2, w_q, w_k, heads, causal) - softmax_attention(x, w_q, w_k, heads, causal),
            axis=(-2, -1),
        )
        bound, _ = metrics.attention_bound(np.stack([x, x2])[:, None], w_q[None], w_k[None], heads)
        assert np.all(observed <= bound[0, 0] * (1 + 1e-9) + 1e-15)
        worst = max(worst, float(np.max(observed / bound[0, 0])))
    assert 0.05 < worst <= 1.0  # the bound is not vacuous: some cases come within 20x of it


def test_geometric_remaining_of_decaying_and_constant_steps():
    halving = 0.5 ** np.arange(1, 31)
    assert metrics.geometric_remaining(halving) == pytest.approx(halving[-1] * (1 - 0.5**30), rel=1e-9)
    assert metrics.geometric_remaining(np.full(10, 2.0)) == pytest.approx(20.0)
    assert metrics.geometric_remaining(np.zeros(10)) == 0.0


# --------------------------------------------------------------------------------- stages
def test_stages_that_repeat_by_layer_and_by_loop():
    by_layer = np.tile(np.array([0.0, 0.1, 5.0, 5.2]), (2, 8, 1))  # 2 metrics, 8 loops, 4 layers
    detection = detect_stages(by_layer)
    assert detection.follows == "layer" and 2 <= len(detection.communities) <= 4
    for community in detection.communities:  # the two distinct stages (layers 0-1, layers 2-3) never mix
        layers = {layer for _, layer in community}
        assert layers <= {0, 1} or layers <= {2, 3}
    by_loop = np.repeat(np.arange(8.0)[None, :, None], 4, axis=2).repeat(2, axis=0)  # the loop index
    assert detect_stages(by_loop).follows == "loop"
    rng = np.random.default_rng(3)
    assert detect_stages(rng.standard_normal((2, 8, 4))).follows == "mixed"
    assert detection.graph.number_of_nodes() == 32
    assert set(detection.graph.nodes[(0, 2)]) == {"loop", "layer", "features"}


def test_profile_correlations_by_hand():
    profiles = np.array([[[0.0, 1.0, 2.0], [0.0, 2.0, 4.0], [1.0, 1.0, 1.0]]])
    table = profile_correlations(profiles, np.array([[0.0, 1.0, 2.0]]))
    assert table[:, 0].tolist() == [1.0, 1.0, 0.0]
    assert profile_correlations(profiles[:, 2:], np.array([[1.0, 1.0, 1.0]]))[0, 0] == 1.0


# --------------------------------------------------------------------------------- tokens
def synthetic_sequences(loops=80):
    t = np.arange(loops)
    fixed = 1 - 0.9 * np.exp(-t / 4.0)
    fixed[-1] = 1.0
    orbit = np.where(t % 4 == (loops - 1) % 4, 1.0, 0.3)  # period 4
    slider = np.linspace(0.0, 1.0, loops)  # moving steadily
    jump = np.full(loops, 0.4)
    jump[-1] = 1.0  # one late jump
    quasi = 0.5 + 0.5 * np.cos(0.7 * (t - t[-1]))  # comes near, never stays
    return np.array([fixed, orbit, slider, jump, quasi])


def test_token_classes_of_synthetic_sequences():
    classes = classify_tokens(synthetic_sequences())
    assert classes.tolist() == ["fixed_point", "orbit", "slider", "unknown", "orbit"]
    assert classify_tokens(np.ones((2, 3))).tolist() == ["unknown", "unknown"]  # too short to tell


def test_token_classes_from_states_and_their_sensitivity():
    loops, tokens = 50, 3
    states = np.zeros((loops, tokens, 2))
    angle = np.linspace(0.0, 6.0, loops)
    states[:, 0] = [1.0, 0.0]  # fixed from the start
    states[:, 1] = np.column_stack([np.cos(angle), np.sin(angle)])  # slides along a circle
    states[:, 2] = np.column_stack([np.cos(2.1 * np.arange(loops)), np.sin(2.1 * np.arange(loops))])
    cosines = token_cosines(states)
    assert cosines[:, -1].tolist() == [1.0, 1.0, 1.0]
    assert classify_tokens(cosines).tolist() == ["fixed_point", "slider", "orbit"]
    table = token_sensitivity(cosines)
    assert table["counts"].shape == (3, 3, len(TOKEN_CLASSES))
    assert np.all(table["counts"].sum(axis=-1) == tokens)
    assert table["counts"][1, 1].tolist() == [1, 1, 1, 0]


# --------------------------------------------------------------------------------- the bound on blocks
BOUND_BLOCKS = [
    dict(norm="pre"),
    dict(norm="sandwich", injection="concat"),
    dict(norm="none", causal=False),
    dict(norm="peri", norm_kind="layer"),
    dict(norm="sphere", norm_kind="l2"),
    dict(norm="pre", injection="additive_each_layer"),
]


@pytest.mark.parametrize("fields", BOUND_BLOCKS, ids=[f["norm"] for f in BOUND_BLOCKS])
def test_the_bound_holds_on_random_blocks_and_a_wrong_one_is_caught(fields):
    spec = dynloop.BlockSpec(width=8, tokens=5, layers=3, mixer="transformer", heads=2, seed=4, **fields)
    rec = dynloop.simulate(spec, 40, record_attention=True).recording()
    # the inputs the block reports reproduce its recorded attention (an independent numpy softmax)
    inputs = rec.meta["attention_inputs"]
    for t in (0, 7, 39):
        for layer in range(3):
            again = softmax_attention(
                inputs[t, layer], rec.meta["attn_q"][layer], rec.meta["attn_k"][layer], 2, spec.causal
            )
            np.testing.assert_allclose(again, rec.attention[t, layer], rtol=1e-12, atol=1e-14)
    check = dynloop.analyze(rec).bound_check
    assert check["violations"].tolist() == [0, 0, 0]
    assert np.all(check["tightness"] <= 1.0) and np.all(check["tightness"] > 0)
    # a bound ten times below the largest ratio seen (query weights scaled down) must be flagged
    factor = float(np.max(check["tightness"])) / 10
    wrong = dynloop.LoopRecording(
        rec.stage_states,
        attention=rec.attention,
        stage_names=rec.stage_names,
        meta=dict(rec.meta, attn_q=rec.meta["attn_q"] * factor),
    )
    assert dynloop.analyze(wrong).bound_check["violations"].sum() > 0
