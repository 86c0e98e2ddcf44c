"""The sweep's column kernels compute what stage_apply computes, for every scheme and mixer."""

import functools
import itertools

import numpy as np
import pytest
from numba import njit

import dynloop
from dynloop import components
from dynloop.systems import _column_kernels as C
from dynloop.systems._block_kernels import stage_apply
from dynloop.systems._fastmath import fma
from dynloop.systems._products import column_product, weight_product

POINTS = [(0.3, 0.0, 1e-6, 1.0), (1.1, 0.7, 1e-3, 0.6), (2.4, 1.9, 0.5, 1.7)]  # (a, β, ε, skip scale)


def _sizes(spec):
    """The hidden width and the token count that the column buffers of ``spec`` need."""
    branches = spec.components["mixer"].branches
    return (spec.hidden if "mlp" in branches else 0), (spec.tokens if "attention" in branches else 0)


def _columns_against_points(spec, dtype, rtol):
    """Apply every stage to 3 points × T tokens as columns, and to each point alone through stage_apply.

    The columns are token-major, as in a sweep: column ``t·3 + i`` is token ``t`` of point ``i``.
    """
    unit = spec.replace(injection_scale=1.0)._compiled(dtype)[1].inject_constant
    cfg, arrays = spec._compiled(dtype)
    n_tokens, d = spec.state_shape
    rng = np.random.default_rng(7)
    states = [rng.standard_normal((n_tokens, d)).astype(dtype) * scale for scale in (0.5, 2.0, 9.0)]
    points = [(a, b, e, s if spec.components["norm"].has_residual else 1.0) for a, b, e, s in POINTS]
    alpha = np.tile([p[0] for p in points], n_tokens).astype(dtype)
    eps = np.tile([p[2] for p in points], n_tokens).astype(dtype)
    skip = np.tile([p[3] for p in points], n_tokens).astype(dtype)
    constant = np.stack([p[1] * unit.T for p in POINTS], axis=2).reshape(d, -1).astype(dtype)
    columns = np.ascontiguousarray(np.stack([s.T for s in states], axis=2).reshape(d, -1))
    hidden, tokens = _sizes(spec)
    work = C.column_buffers(d, hidden, columns.shape[1], columns, tokens)
    no_tangent = np.empty((0, n_tokens, d), dtype=dtype)
    for stage in range(spec.n_stages):
        C.column_stage(cfg, arrays, stage, columns, n_tokens, alpha, skip, constant, eps, work)
        for i, (a, b, e, s) in enumerate(points):
            point = spec.replace(residual_scale=a, injection_scale=b, norm_eps=e, skip_scale=s)
            states[i] = stage_apply(*point._compiled(dtype), stage, states[i], no_tangent)[0]
            ours = columns[:, i::len(points)].T
            where = f"{spec.norm}/{spec.injection} stage {spec.stage_names[stage]}"
            np.testing.assert_allclose(ours, states[i], rtol=rtol, atol=rtol * np.abs(states[i]).max(),
                                       err_msg=where)


@pytest.mark.parametrize("norm,injection", list(itertools.product(components.NORMS, components.INJECTIONS)))
def test_every_placement_and_injection(norm, injection):
    spec = dynloop.BlockSpec(width=4, tokens=2, layers=2, mixer="mlp", hidden=6, norm=norm,
                             injection=injection, seed=2)
    _columns_against_points(spec, np.float64, 1e-13)


@pytest.mark.parametrize("kind", components.NORM_KINDS)
@pytest.mark.parametrize("activation", components.ACTIVATIONS)
def test_norm_kinds_activations_and_the_linear_mixer(kind, activation):
    spec = dynloop.BlockSpec(width=5, tokens=1, layers=2, mixer="mlp", hidden=3, norm="sandwich",
                             norm_kind=kind, activation=activation, injection="additive", seed=4)
    _columns_against_points(spec, np.float64, 1e-13)
    _columns_against_points(spec.replace(mixer="linear"), np.float64, 1e-13)


@pytest.mark.parametrize("norm,injection",
                         list(zip(components.NORMS, itertools.cycle(components.INJECTIONS))))
@pytest.mark.parametrize("mixer", ["attention", "transformer"])
def test_attention_mixers_every_placement(mixer, norm, injection):
    spec = dynloop.BlockSpec(width=6, tokens=3, layers=2, heads=2, mixer=mixer, hidden=5, norm=norm,
                             injection=injection, activation="gelu", seed=3)
    _columns_against_points(spec, np.float64, 1e-12)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 3e-5)])
@pytest.mark.parametrize("causal,heads,tokens", [(True, 4, 5), (False, 1, 4), (True, 2, 1)])
def test_attention_tiles_causal_or_not_any_heads_and_tokens(dtype, rtol, causal, heads, tokens):
    spec = dynloop.BlockSpec(width=20, tokens=tokens, layers=1, heads=heads, mixer="transformer", hidden=24,
                             norm="sandwich", injection="concat", causal=causal, weight_gain=1.5, seed=9)
    _columns_against_points(spec, dtype, rtol)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("width", [3, 16, 33])
def test_products_of_every_size(dtype, rtol, width):
    # fewer than 8 output rows (a padded copy), whole tiles of 8 rows, tiles and an overlapping last one
    spec = dynloop.BlockSpec(width=width, tokens=3, layers=1, mixer="mlp", hidden=width + 3, norm="pre",
                             injection="concat", seed=1)
    _columns_against_points(spec, dtype, rtol)


def test_float32_columns_stay_float32():
    spec = dynloop.BlockSpec(width=6, tokens=2, layers=2, mixer="mlp", hidden=6, norm="peri",
                             injection="additive", seed=3)
    _columns_against_points(spec, np.float32, 2e-5)


@njit
def _sums_in_input_order(w, x):
    """The oracle of the product loops: each output one element at a time, ``w₀x₀ + w₁x₁ + ...`` in order."""
    out = np.empty((w.shape[0], x.shape[1]), dtype=x.dtype)
    for o in range(w.shape[0]):
        for p in range(x.shape[1]):
            total = w[o, 0] * x[0, p]
            for i in range(1, w.shape[1]):
                total = fma(w[o, i], x[i, p], total)
            out[o, p] = total
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_product_tiles_sum_every_output_in_input_order(dtype):
    # the tiles (8 rows by one or two vectors of columns, the last ones overlapping, zero-padded copies
    # below 8 rows or one vector) only regroup the work: every output is the same sequence of
    # multiply-adds as a plain loop, whatever the CPU and its vector width. Rows: padded, one tile, one
    # and an overlapping one, two; columns: padded (below 4 floats of 16 bytes), one vector at most
    # (8 floats), wide tiles, wide tiles and narrow ones, a narrow one overlapping
    rng = np.random.default_rng(1)
    rows, inputs = (1, 3, 7, 8, 9, 12, 16, 17), (1, 2, 5, 33, 130)
    columns = (1, 3, 5, 8, 15, 16, 17, 37, 64, 100)
    sizes = itertools.product(rows, inputs, columns)
    for n_out, n_in, c in sizes:
        w, x = rng.standard_normal((n_out, n_in)).astype(dtype), rng.standard_normal((n_in, c)).astype(dtype)
        out = np.full((n_out, c), np.nan, dtype=dtype)
        column_product(w, x, out)
        expected = _sums_in_input_order(w, x)
        np.testing.assert_array_equal(out, expected, err_msg=f"{n_out}x{n_in}, {c} columns")
        # with the transposed weights: transposed below 32 columns, along the columns above
        out[:] = np.nan
        weight_product(w, np.ascontiguousarray(w.T), x, out)
        np.testing.assert_array_equal(out, expected, err_msg=f"weight_product {n_out}x{n_in}, {c} columns")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_product_of_arrays_in_any_layout(dtype):
    # the tiles need C-contiguous arrays: other layouts go through contiguous copies, and the result
    # lands in the caller's array (a strided view, a view that is contiguous, Fortran order)
    rng = np.random.default_rng(2)
    w, x = rng.standard_normal((12, 9)).astype(dtype), rng.standard_normal((9, 40)).astype(dtype)
    expected = _sums_in_input_order(w, x)
    wide = np.full((12, 80), np.nan, dtype=dtype)
    column_product(w, x, wide[:, ::2])
    np.testing.assert_array_equal(wide[:, ::2], expected)
    taller = np.full((14, 40), np.nan, dtype=dtype)
    column_product(w, x, taller[1:13])
    np.testing.assert_array_equal(taller[1:13], expected)
    fortran = np.asfortranarray(np.full((12, 40), np.nan, dtype=dtype))
    column_product(np.asfortranarray(w), np.asfortranarray(x), fortran)
    np.testing.assert_array_equal(fortran, expected)
    one_row = np.asfortranarray(np.full((1, 40), np.nan, dtype=dtype))  # both C- and F-contiguous
    column_product(w[:1], x, one_row)
    np.testing.assert_array_equal(one_row, expected[:1])


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_product_against_numpy(dtype, rtol):
    # fewer than 8 output rows (padded), one tile, a tile and an overlapping one; any number of inputs
    rng = np.random.default_rng(0)
    for n_out, n_in in itertools.product((1, 2, 5, 8, 13), (1, 3, 4, 5, 8, 17, 40)):
        w, x = rng.standard_normal((n_out, n_in)).astype(dtype), rng.standard_normal((n_in, 33)).astype(dtype)
        out = np.full((n_out, 33), np.nan, dtype=dtype)
        column_product(w, x, out)
        exact = w.astype(np.float64) @ x.astype(np.float64)
        np.testing.assert_allclose(out, exact, rtol=rtol, atol=rtol * np.abs(exact).max(),
                                   err_msg=f"{n_out}x{n_in}")


def _each_column_alone_and_in_groups(apply, pool, per_column, n_out):
    """``apply(x, *per_column)`` on each pool column alone, then on 1 to 40 columns at shifting offsets.

    ``per_column`` are arrays whose last axis runs over the pool's columns (taken along with them).
    Every column's result must be bitwise the one it has alone: in a sweep the number of columns is
    the group size (and shrinks as points leave), and a point's position in its group is arbitrary.
    Returns the first (N, offset) that differs, or None.
    """
    size = pool.shape[1]
    alone = np.empty((n_out, size), dtype=pool.dtype)
    for p in range(size):
        alone[:, p:p + 1] = apply(np.ascontiguousarray(pool[:, p:p + 1]),
                                  *[np.ascontiguousarray(a[..., p:p + 1]) for a in per_column])
    for n in range(1, 41):
        for offset in (0, 7 * n % size):
            take = (offset + np.arange(n)) % size
            together = apply(np.ascontiguousarray(pool[:, take]),
                             *[np.ascontiguousarray(a[..., take]) for a in per_column])
            if np.ascontiguousarray(together).tobytes() != np.ascontiguousarray(alone[:, take]).tobytes():
                return n, offset
    return None


def _product(w):
    def apply(x):
        out = np.full((w.shape[0], x.shape[1]), np.nan, dtype=x.dtype)
        column_product(w, x, out)
        return out
    return apply


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [5, 8, 16, 20, 33, 64])
def test_a_columns_result_does_not_depend_on_the_other_columns(dtype, d):
    # Issue 14, section 5: a sweep's results must be bit-identical whatever its group size (the number
    # of columns, which also shrinks as points leave) and a point's place in its group, on every CPU.
    # OpenBLAS rounded a column of W @ X according to how many columns the call had and where the column
    # sat among them (its edge micro-kernels, AVX-512 small-matrix kernels and one-column path each sum
    # in an order of their own): with one call per group, every product through it failed here on
    # AVX-512. Every loop (products, norms, activations, residual updates) must treat every column alike
    rng = np.random.default_rng(d)
    pool = (rng.standard_normal((d, 41)) * rng.uniform(0.1, 10.0, 41)).astype(dtype)
    for n_out in (1, 2, 3, d, d + 3):
        w = rng.standard_normal((n_out, d)).astype(dtype)
        assert _each_column_alone_and_in_groups(_product(w), pool, [], n_out) is None, f"product {n_out}x{d}"
    block = functools.partial(dynloop.BlockSpec, width=d, tokens=1, layers=1)
    for spec in (block(mixer="mlp", hidden=d + 3, activation="tanh", norm="peri", norm_kind="layer",
                       injection="concat", seed=5),
                 block(mixer="mlp", hidden=2 * d, activation="gelu", norm="sphere", norm_kind="rms",
                       injection="additive", seed=6),
                 block(mixer="mlp", hidden=d, activation="silu", norm="post", norm_kind="rms",
                       injection="convex", seed=7),
                 block(mixer="linear", norm="sandwich", norm_kind="l2", injection="diagonal", seed=8)):
        cfg, arrays = spec._compiled(dtype)
        hidden = _sizes(spec)[0]
        alpha = rng.uniform(0.0, 3.0, 41).astype(dtype)
        skip = rng.uniform(0.5, 2.0, 41) if spec.components["norm"].has_residual else np.ones(41)
        skip = skip.astype(dtype)
        eps = rng.uniform(1e-6, 0.5, 41).astype(dtype)
        constant = rng.standard_normal((d, 41)).astype(dtype)
        for stage in range(spec.n_stages):
            def apply(x, alpha, skip, constant, eps):
                x = x.copy()
                C.column_stage(cfg, arrays, stage, x, 1, alpha, skip, constant, eps,
                               C.column_buffers(d, hidden, x.shape[1], x))
                return x
            found = _each_column_alone_and_in_groups(apply, pool, [alpha, skip, constant, eps], d)
            assert found is None, (f"{spec.mixer}/{spec.norm}/{spec.injection} "
                                   f"stage {spec.stage_names[stage]}: {found}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [8, 24])
def test_a_points_attention_does_not_depend_on_the_other_points(dtype, d):
    # attention mixes a point's own token columns only: each point's result, alone or among 1 to 13
    # others at any place in the group, is bitwise the same (as for the row-wise stages above), also
    # where the heads run on copies padded to whole vectors of points (with AVX-512 every count here
    # but 8 in float64 and every one in float32; with AVX2 all but 4, 8, 12 in float64 and 8 in
    # float32). The pool holds the points' tokens side by side; a group takes them token-major, as a
    # sweep does
    n_tokens, pool_size = 3, 14
    spec = dynloop.BlockSpec(width=d, tokens=n_tokens, layers=1, heads=2, mixer="transformer", hidden=d + 4,
                             activation="gelu", norm="pre", norm_kind="rms", injection="concat", seed=11)
    cfg, arrays = spec._compiled(dtype)
    rng = np.random.default_rng(d)
    pool = (rng.standard_normal((d, pool_size * n_tokens)) * 3).astype(dtype)
    alpha = np.repeat(rng.uniform(0.0, 3.0, pool_size), n_tokens).astype(dtype)
    ones = np.ones(pool_size * n_tokens, dtype=dtype)
    eps = np.repeat(rng.uniform(1e-6, 0.5, pool_size), n_tokens).astype(dtype)
    constant = rng.standard_normal((d, pool_size * n_tokens)).astype(dtype)

    def token_major(points):
        return (points[None, :] * n_tokens + np.arange(n_tokens)[:, None]).ravel()

    def run(points):
        take = token_major(points)
        x = np.ascontiguousarray(pool[:, take])
        work = C.column_buffers(d, spec.hidden, x.shape[1], x, n_tokens)
        for stage in range(spec.n_stages):
            C.column_stage(cfg, arrays, stage, x, n_tokens, alpha[take], ones[take],
                           np.ascontiguousarray(constant[:, take]), eps[take], work)
        return x

    alone = np.concatenate([run(np.array([p])) for p in range(pool_size)], axis=1)
    for n in range(1, pool_size):
        for offset in (0, 5 * n % pool_size):
            points = (offset + np.arange(n)) % pool_size
            take = token_major(points)
            assert run(points).tobytes() == np.ascontiguousarray(alone[:, take]).tobytes(), (n, offset)
