"""Basins by iteration and by cell mapping: known answers, each checked here by plain numpy iteration."""

import numpy as np
import pytest
import scipy.optimize

import dynloop
from dynloop import Regime


# ----------------------------------------------------------------------------- the maps and their oracles
def _bistable_step(x, p):
    return np.array([3.0 * np.tanh(x[0]), 0.2 * x[1]])


BISTABLE = dynloop.Map(_bistable_step, 2, name="bistable")
ROOT = scipy.optimize.brentq(lambda r: 3.0 * np.tanh(r) - r, 1.0, 4.0)


def _newton_step(x, p):
    """Newton's method for z**3 = 1, z = x + i y."""
    x2, y2 = x[0] * x[0], x[1] * x[1]
    re3, im3 = x[0] * (x2 - 3.0 * y2) - 1.0, x[1] * (3.0 * x2 - y2)       # z**3 - 1
    re2, im2 = 3.0 * (x2 - y2), 6.0 * x[0] * x[1]                         # 3 z**2
    size = re2 * re2 + im2 * im2
    return np.array([x[0] - (re3 * re2 + im3 * im2) / size, x[1] - (im3 * re2 - re3 * im2) / size])


NEWTON = dynloop.Map(_newton_step, 2, name="newton z^3 = 1")
ROOTS = np.array([[1.0, 0.0], [-0.5, np.sqrt(3) / 2], [-0.5, -np.sqrt(3) / 2]])


def _mixed_step(x, p):
    """A stable fixed point at -2 for x < 0, the logistic map's stable 2-cycle (r = 3.2) on (0, 1)."""
    if x[0] < 0.0:
        return np.array([0.5 * x[0] - 1.0])
    return np.array([3.2 * x[0] * (1.0 - x[0])])


MIXED = dynloop.Map(_mixed_step, 1, name="fixed point and 2-cycle")
CYCLE = np.sort([(4.2 + np.sqrt(4.2 ** 2 - 4 * 3.2 * 4.2 / 3.2)) / (2 * 3.2),
                 (4.2 - np.sqrt(4.2 ** 2 - 4 * 3.2 * 4.2 / 3.2)) / (2 * 3.2)])
SQUARE = dynloop.Map(lambda x, p: x * x, 1, name="square")


def _iterate_numpy(step, starts, loops):
    """Plain numpy iteration of every start (rows), loop after loop: the oracle."""
    x = np.array(starts, dtype=float)
    with np.errstate(all="ignore"):
        for _ in range(loops):
            x = np.array([step(row, None) for row in x])
    return x


def _outcome_of(final, orbits):
    """Index of the orbit (list of point arrays) a final state sits on, or -1 when not finite."""
    if not np.all(np.isfinite(final)):
        return -1
    distances = [min(np.linalg.norm(final - point) for point in orbit) for orbit in orbits]
    assert min(distances) < 1e-6, final
    return int(np.argmin(distances))


# ----------------------------------------------------------------------------- known answers
def test_two_symmetric_fixed_points_with_the_boundary_at_zero():
    starts = dynloop.state_grid(BISTABLE, {0: np.linspace(-3.5, 3.5, 20), 1: np.linspace(-1, 1, 5)})
    result = dynloop.basins(BISTABLE, starts, progress=False)
    assert len(result.attractors) == 2
    points = sorted(float(a.points[0, 0]) for a in result.attractors)
    assert points == pytest.approx([-ROOT, ROOT], abs=1e-12)
    for attractor in result.attractors:
        assert attractor.regime is Regime.FIXED_POINT and attractor.refined and attractor.stable
        expected = sorted([3 / np.cosh(ROOT) ** 2, 0.2], reverse=True)
        assert np.abs(attractor.multipliers) == pytest.approx(expected)
    # the oracle: iterate in numpy, read off the side each start ends on
    finals = _iterate_numpy(_bistable_step, starts.reshape(-1, 2), 200)
    orbits = [[a.points[0]] for a in result.attractors]
    expected = np.array([_outcome_of(f, orbits) for f in finals]).reshape(result.shape)
    np.testing.assert_array_equal(result.labels, expected)
    left = result.labels[starts[..., 0] < 0]
    right = result.labels[starts[..., 0] > 0]
    assert len(set(left.tolist())) == 1 and len(set(right.tolist())) == 1 and left[0] != right[0]
    assert result.fractions == {0: 0.5, 1: 0.5}


def test_newtons_method_on_three_roots_has_three_symmetric_basins():
    axis = np.linspace(-1.5, 1.5, 90)  # even: the pole at 0 is not on the grid
    starts = dynloop.state_grid(NEWTON, {0: axis, 1: axis})
    result = dynloop.basins(NEWTON, starts, progress=False)
    assert len(result.attractors) == 3
    found = np.array([a.points[0] for a in result.attractors])
    order = [int(np.argmin(np.linalg.norm(ROOTS - point, axis=1))) for point in found]
    assert sorted(order) == [0, 1, 2]
    assert np.allclose(found, ROOTS[order], atol=1e-12)
    finals = _iterate_numpy(_newton_step, starts.reshape(-1, 2), 100)
    orbits = [[a.points[0]] for a in result.attractors]
    expected = np.array([_outcome_of(f, orbits) for f in finals]).reshape(result.shape)
    np.testing.assert_array_equal(result.labels, expected)
    # the basins have the roots' symmetry: mirror in the real axis swaps the two complex roots
    mirrored = result.labels[:, ::-1]
    swap = {order.index(0): order.index(0), order.index(1): order.index(2), order.index(2): order.index(1)}
    np.testing.assert_array_equal(np.vectorize(swap.get)(result.labels), mirrored)
    # equal shares on a square grid, within 2 % (the square is not 3-fold symmetric)
    shares = np.array([result.fractions[i] for i in range(3)])
    assert shares.sum() == pytest.approx(1.0)
    assert np.abs(shares - 1 / 3).max() < 0.02, shares
    assert result.boundary_basin_entropy > np.log(2)  # Newton's basin boundaries are fractal


def test_a_fixed_point_and_a_two_cycle_coexist():
    xs = np.linspace(-1.95, 1.95, 40)
    starts = dynloop.state_grid(MIXED, {0: xs})
    result = dynloop.basins(MIXED, starts, progress=False)
    kinds = sorted((a.period, a.regime.value) for a in result.attractors)
    assert kinds == [(1, "fixed_point"), (2, "periodic")]
    cycle = next(a for a in result.attractors if a.period == 2)
    assert np.sort(cycle.points[:, 0]) == pytest.approx(CYCLE, abs=1e-12)
    fixed = next(a for a in result.attractors if a.period == 1)
    assert fixed.points[0, 0] == pytest.approx(-2.0, abs=1e-12)
    finals = _iterate_numpy(_mixed_step, starts.reshape(-1, 1), 400)
    orbits = [list(a.points) for a in result.attractors]
    expected = np.array([_outcome_of(f, orbits) for f in finals])
    np.testing.assert_array_equal(result.labels, expected)
    inside = (xs > 0) & (xs < 1)
    assert set(result.labels[inside].tolist()) == {result.attractors.index(cycle)}
    assert set(result.labels[~inside].tolist()) == {result.attractors.index(fixed)}


def test_escape_to_infinity_is_divergent():
    xs = np.linspace(-3, 3, 31)[np.abs(np.linspace(-3, 3, 31)) != 1.0]
    result = dynloop.basins(SQUARE, dynloop.state_grid(SQUARE, {0: xs}), progress=False)
    finals = _iterate_numpy(lambda x, p: x * x, xs[:, None], 60)
    expected = np.where(np.isfinite(finals[:, 0]), 0, -1)
    np.testing.assert_array_equal(result.labels, expected)
    assert result.attractors[0].points[0, 0] == 0.0
    assert result.fractions[-1] == pytest.approx(np.mean(np.abs(xs) > 1))


def test_two_runs_give_identical_labels_and_chunks_resume(tmp_path):
    starts = dynloop.state_grid(NEWTON, {0: np.linspace(-1.2, 1.2, 40), 1: np.linspace(-1.2, 1.2, 40)})
    first = dynloop.basins(NEWTON, starts, progress=False, store=tmp_path / "store")
    again = dynloop.basins(NEWTON, starts, progress=False, store=tmp_path / "store")
    assert again.meta["chunks_loaded"] == again.meta["chunks"] == 2
    np.testing.assert_array_equal(first.labels, again.labels)
    fresh = dynloop.basins(NEWTON, starts, progress=False)
    np.testing.assert_array_equal(first.labels, fresh.labels)


def test_an_executor_gives_the_same_labels():
    import numba
    from concurrent.futures import ThreadPoolExecutor

    starts = dynloop.state_grid(NEWTON, {0: np.linspace(-1.2, 1.2, 40), 1: np.linspace(-1.2, 1.2, 40)})
    alone = dynloop.basins(NEWTON, starts, progress=False)
    if numba.threading_layer() == "workqueue":
        pytest.skip("numba's workqueue threading layer cannot launch parallel kernels from two threads")
    with ThreadPoolExecutor(2) as pool:
        threaded = dynloop.basins(NEWTON, starts, progress=False, executor=pool)
    assert threaded.meta["chunks"] == 2
    np.testing.assert_array_equal(threaded.labels, alone.labels)
    for a, b in zip(threaded.attractors, alone.attractors):
        np.testing.assert_array_equal(a.points, b.points)


def test_a_chaotic_attractor_is_one_attractor_from_every_start():
    logistic = dynloop.maps.logistic(r=3.9)
    xs = np.linspace(0.05, 0.95, 30)
    result = dynloop.basins(logistic, dynloop.state_grid(logistic, {"x": xs}), progress=False)
    assert len(result.attractors) == 1 and result.attractors[0].regime is Regime.CHAOTIC
    assert (result.labels == 0).all()


def test_basin_entropy_of_a_hand_made_grid():
    labels = np.zeros((10, 10), dtype=int)
    labels[:, 5:] = 1  # a straight boundary between the two 5-cell boxes: no box holds both
    result = dynloop.BasinMap(labels, [], np.zeros_like(labels, dtype=np.int8), {"a": np.arange(10.0),
                                                                                  "b": np.arange(10.0)})
    assert result.entropies(5) == (0.0, 0.0, 0.0)
    labels[:, 4:] = 1  # now the boxes of columns 0-4 hold one column of 1s: p = (0.8, 0.2)
    s_b, s_bb, fraction = result.entropies(5)
    box = -(0.8 * np.log(0.8) + 0.2 * np.log(0.2))
    assert fraction == 0.5 and s_bb == pytest.approx(box) and s_b == pytest.approx(0.5 * box)


def test_save_load_summary_and_plot(tmp_path):
    starts = dynloop.state_grid(BISTABLE, {0: np.linspace(-2, 2, 12), 1: np.linspace(-1, 1, 6)})
    result = dynloop.basins(BISTABLE, starts, progress=False)
    path = tmp_path / "b.npz"
    result.save(path)
    back = dynloop.BasinMap.load(path)
    np.testing.assert_array_equal(back.labels, result.labels)
    assert [a.regime for a in back.attractors] == [a.regime for a in result.attractors]
    np.testing.assert_array_equal(back.attractors[0].multipliers, result.attractors[0].multipliers)
    text = result.summary()
    assert "2 attractors" in text and "50.00 %" in text and "boxes of 5 cells" in text
    assert "<pre>" in result._repr_html_()
    fig = result.plot(tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 10_000
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(text.startswith(f"A0: fixed point at ({-ROOT:.4g}") for text in legend), legend


# ----------------------------------------------------------------------------- blocks
def test_a_plane_through_a_post_norm_linear_block_splits_on_a_hyperplane():
    # post-norm linear layers without injection are the normalised power method on P = M2 M1: from
    # a start x0 the loop converges to sign(w . x0) v, v and w P's dominant right and left
    # eigenvectors (the dominant eigenvalue is real, positive and simple): two attractors, +-v,
    # and a basin boundary on the hyperplane w . x0 = 0. Each layer's point differs (M1 v is not
    # along v): a cyclic fixed point.
    d = 4
    m1 = np.diag([2.0, 1.0, 0.6, 0.3])
    basis = np.eye(d) + 0.3 * np.random.default_rng(1).standard_normal((d, d))
    m2 = basis @ np.diag([1.0, 0.8, 0.5, 0.4]) @ np.linalg.inv(basis)
    spec = dynloop.BlockSpec(width=d, tokens=1, layers=2, mixer="linear", norm="post", injection="none",
                             norm_eps=0.0, residual_scale=1.0,
                             weights={"linear": np.array([m1, m2]) - np.eye(d)})
    values, right = np.linalg.eig(m2 @ m1)
    dominant = int(np.argmax(np.abs(values)))
    assert values[dominant].imag == 0 and values[dominant].real > 2 * np.sort(np.abs(values))[-2]
    v = right[:, dominant].real
    w = np.linalg.inv(right)[dominant].real  # the left eigenvector, w . v = 1
    starts = dynloop.state_grid(spec, {"a": np.linspace(-2, 2, 8), "b": np.linspace(-2, 2, 7)})
    directions = starts.directions.reshape(2, -1)
    size = np.linalg.norm(spec.start_state())
    np.testing.assert_allclose(directions @ directions.T, size ** 2 * np.eye(2), atol=1e-9 * size ** 2)
    result = dynloop.basins(spec, starts, progress=False)
    assert len(result.attractors) == 2
    for attractor in result.attractors:
        assert attractor.regime is Regime.CYCLIC and attractor.refined and attractor.stable
        point = attractor.points[0, 0]
        assert abs(point @ v) / np.linalg.norm(point) / np.linalg.norm(v) == pytest.approx(1.0, abs=1e-10)
        assert attractor.stage_points.shape == (2, 1, d)
        assert np.linalg.norm(attractor.stage_points[0] - attractor.stage_points[1]) > 0.1
    np.testing.assert_allclose(result.attractors[0].points, -result.attractors[1].points, atol=1e-10)
    # the side of the hyperplane decides, as the power method says
    sides = np.sign(starts.reshape(-1, d) @ w).reshape(result.shape)
    assert (np.abs(starts.reshape(-1, d) @ w) > 1e-6).all()
    for label, attractor in enumerate(result.attractors):
        side = np.sign(attractor.points[0, 0] @ v)
        np.testing.assert_array_equal(result.labels == label, sides == side)
    assert 0 < result.fractions[0] < 1


# ----------------------------------------------------------------------------- cell mapping
def test_cell_map_agrees_with_iteration_on_the_bistable_map():
    # Simple cell mapping is exact only where the map contracts or expands strongly on the scale of a
    # cell: x has 80 cells with 0 on an edge (3 tanh triples the distance to 0, so the cells beside it
    # move away), y has 31 with 0 in the middle one (0.2 y moves every other cell towards it)
    bounds, cells = [(-4, 4), (-1.55, 1.55)], (80, 31)
    cm = dynloop.cell_map(BISTABLE, bounds, cells)
    assert len(cm.attractors) == 2 and [len(g) for g in cm.periodic_groups] == [1, 1]
    result = dynloop.basins(BISTABLE, dynloop.state_grid(BISTABLE, {0: cm.centers()[::31, 0],
                                                                   1: cm.centers()[:31, 1]}), progress=False)
    # each cell-map attractor holds the fixed point iteration found
    for attractor in result.attractors:
        holder = cm.cell_of(attractor.points[0])[0]
        assert any(holder in group for group in cm.attractors)
    # the basins agree away from the boundary (the cells of the column x = 0 touch it)
    match = {}
    for label in np.unique(result.labels):
        cell_label = int(np.bincount(cm.labels[result.labels == label]).argmax())
        match[int(label)] = cell_label
    mapped = np.vectorize(match.get)(result.labels)
    away = np.abs(cm.centers()[:, 0].reshape(cells)) > 0.2
    np.testing.assert_array_equal(mapped[away], cm.labels[away])
    assert (cm.transient_depth >= 0).all() and cm.transient_depth.max() > 0
    assert "2 attracting cell groups" in cm.summary()


def test_cell_map_of_newton_holds_the_three_roots():
    # 91 cells a side: no root lies on a cell edge (a superattracting root on an edge splits its cell
    # group in two by rounding)
    cm = dynloop.cell_map(NEWTON, [(-1.5, 1.5), (-1.5, 1.5)], 91, samples=3)
    assert len(cm.attractors) == 3 and [len(g) for g in cm.periodic_groups] == [1, 1, 1]
    holders = [cm.cell_of(root)[0] for root in ROOTS]
    groups = [next(i for i, group in enumerate(cm.attractors) if h in group) for h in holders]
    assert sorted(groups) == [0, 1, 2]
    result = dynloop.basins(NEWTON, dynloop.state_grid(NEWTON, {0: cm.centers()[::91, 0],
                                                               1: cm.centers()[:91, 1]}), progress=False)
    by_root = {i: groups[int(np.argmin(np.linalg.norm(ROOTS - a.points[0], axis=1)))]
               for i, a in enumerate(result.attractors)}
    mapped = np.vectorize(lambda v: by_root.get(v, -9))(result.labels)
    # away from basin boundaries (all 8 neighbours share the iteration's label), and where the cell
    # map stays in its box (images beyond it, from near the pole at 0, go to the sink), the two agree
    padded = np.pad(result.labels, 1, mode="edge")
    interior = np.ones(result.shape, dtype=bool)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            interior &= padded[1 + dx:92 + dx, 1 + dy:92 + dy] == result.labels
    compared = interior & (cm.labels >= 0)
    assert compared.mean() > 0.5
    assert (mapped[compared] == cm.labels[compared]).mean() > 0.99


def test_cell_map_of_a_stable_fixed_point_and_the_sink():
    # logistic map at r = 2.2: the fixed point 6/11 (multiplier -0.2) at a cell's centre, the
    # repeller 0 (multiplier 2.2) on a cell edge; below 0 the orbit escapes to -infinity: the sink
    h = (6 / 11) / 100.5
    cm = dynloop.cell_map(dynloop.maps.logistic(r=2.2), [(-92 * h, 278 * h)], 370)
    assert [len(g) for g in cm.periodic_groups] == [1]
    assert cm.centers(cm.periodic_groups[0])[0, 0] == pytest.approx(6 / 11)
    x = cm.centers()[:, 0]
    finals = _iterate_numpy(lambda z, p: 2.2 * z * (1 - z), x[:, None], 60)[:, 0]
    escapes = ~np.isfinite(finals) | (np.abs(finals) > 2)
    np.testing.assert_array_equal(cm.labels == -1, escapes)  # the sink is exactly where numpy escapes
    assert cm.transient_depth[cm.periodic_groups[0][0]] == 0


def test_cell_map_finds_the_two_cycle_and_spurious_groups_only_beside_a_weak_repeller():
    # logistic map at r = 3.2: the stable 2-cycle (multiplier 0.16) is one period-2 cell group; the
    # unstable fixed point 1 - 1/r (multiplier -1.2) expands too weakly to push a cell's centre
    # out of its neighbourhood, so cell mapping keeps small spurious groups beside it (a known
    # limit of simple cell mapping, docs/basins.md)
    cm = dynloop.cell_map(dynloop.maps.logistic(r=3.2), [(-0.5, 1.5)], 400)
    groups = [sorted(g) for g in cm.periodic_groups]
    # the cycle's group: its cells within a cell of the cycle's points (the cycle's first point sits
    # 0.4 cells from an edge, and one step of the map doubles the centres' offset)
    near = [np.abs(np.sort(cm.centers(g)[:, 0]) - CYCLE).max() <= 1.5 * cm.widths[0] if len(g) == 2 else False
            for g in groups]
    assert sum(near) == 1
    main = near.index(True)
    repeller = 1 - 1 / 3.2
    for index, group in enumerate(groups):
        if index != main:
            assert np.abs(cm.centers(group)[:, 0] - repeller).max() <= 3 * cm.widths[0]
    assert cm.fractions[main] > 0.4 and cm.fractions[-1] == pytest.approx(0.5)


@pytest.mark.parametrize("call, message", [
    (lambda: dynloop.cell_map(BISTABLE, [(1, 1), (0, 1)], 10), r"bounds\[0\]"),
    (lambda: dynloop.cell_map(BISTABLE, [(0, 1)], 10), r"bounds=.*2 pairs"),
    (lambda: dynloop.cell_map(BISTABLE, [(0, 1), (0, 1)], 0), r"cells\[0\]=0"),
    (lambda: dynloop.cell_map(dynloop.Map(lambda x, p: x, 4), [(0, 1)] * 4, 3), r"system=.*dimension 4"),
    (lambda: dynloop.cell_map(BISTABLE, [(0, 1), (0, 1)], 4, samples=0), r"samples=0"),
    (lambda: dynloop.basins(BISTABLE, np.zeros((4, 3)), progress=False), r"starts=.*shape \(4, 3\)"),
    (lambda: dynloop.basins(BISTABLE, [[np.nan, 0.0]], progress=False), r"starts\[0, 0\]=nan"),
    (lambda: dynloop.state_grid(BISTABLE, {"z": [0, 1]}), r"axes='z'.*coordinate index 0 … 1"),
    (lambda: dynloop.state_grid(BISTABLE, {0: []}), r"axes\[0\]"),
    (lambda: dynloop.state_grid(dynloop.BlockSpec(width=4, tokens=2),
                                {"a": [0], "b": [0], "c": [0], "d": [0]}), r"at most 3 axes"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
