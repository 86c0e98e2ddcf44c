"""PhaseDiagram and OrbitDiagram: numbers, look-ups, figures and files, on hand-made layouts."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm, to_rgba

from dynloop import Regime
from dynloop.plotting import REGIME_COLOURS
from dynloop.sweep.phase import OrbitDiagram, PhaseDiagram

CYCLIC, DRIFTING, PERIODIC, CHAOTIC, DIVERGENT = (Regime.CYCLIC.code, Regime.DRIFTING.code,
                                                  Regime.PERIODIC.code, Regime.CHAOTIC.code,
                                                  Regime.DIVERGENT.code)
ALPHA = np.array([0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0])  # uneven spacing
BETA = np.linspace(0.0, 1.0, 6)
META = {"system_name": "toy block", "stage_names": ["inject", "layer1", "layer2"],
        "versions": {"dynloop": "0.1.0", "numpy": np.__version__, "numba": "0"}, "seed": 0,
        "tolerances": {"period": 1e-9, "stage": 1e-6}, "loops": 400, "transient": 200, "seconds": 1.5,
        "lyapunov": False, "dtype": "float64"}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def half_half():
    """alpha × beta: the left half of alpha cyclic, the right half drifting; rate spans 4 decades."""
    codes = np.where(np.arange(ALPHA.size)[:, None] < 5, CYCLIC, DRIFTING) * np.ones((1, BETA.size), int)
    rate = np.full(codes.shape, np.nan)
    rate[codes == CYCLIC] = np.logspace(-4, -0.05, 30)
    diagnostics = {"period": np.where(codes == CYCLIC, 1.0, 0.0), "convergence_rate": rate,
                   "lyapunov": np.full(codes.shape, np.nan),
                   "final_norm": np.where(codes == CYCLIC, 2.0, 50.0 + ALPHA[:, None] + BETA)}
    return PhaseDiagram(axes={"alpha": ALPHA, "beta": BETA}, regimes=codes.astype(np.int8),
                        diagnostics=diagnostics, meta=dict(META))


def three_axes():
    """norm (categorical, first) × alpha × beta; 'post' is periodic with a chaotic corner."""
    norms = np.array(["pre", "sandwich", "post"])
    base = half_half().regimes
    codes = np.stack([base, base[::-1], np.full(base.shape, PERIODIC)])
    codes[2, -2:, -2:] = CHAOTIC
    lyapunov = np.where(codes == CHAOTIC, 0.4, np.where(codes == PERIODIC, -0.3, np.nan))
    return PhaseDiagram(axes={"norm": norms, "alpha": ALPHA, "beta": BETA}, regimes=codes.astype(np.int8),
                        diagnostics={"lyapunov": lyapunov, "period": np.where(codes == PERIODIC, 2.0, 0.0)},
                        meta=dict(META, system_name="faceted"))


def legend_texts(fig):
    assert len(fig.legends) == 1, "one shared legend"
    return [t.get_text() for t in fig.legends[0].get_texts()]


def legend_colour(fig, name):
    legend = fig.legends[0]
    handles = legend.legend_handles if hasattr(legend, "legend_handles") else legend.legendHandles
    for text, handle in zip(legend.get_texts(), handles):
        if text.get_text() == name:
            return tuple(handle.get_facecolor())
    raise AssertionError(f"{name} not in the legend")


def cell_colour(mesh, value):
    """The RGBA a mesh draws for cells holding ``value``."""
    data = np.ma.asarray(mesh.get_array()).ravel()
    colours = mesh.to_rgba(data)
    hits = np.nonzero(data == value)[0]
    assert hits.size, f"no cell with value {value}"
    return tuple(colours[hits[0]])


# ------------------------------------------------------------------------------------------ construction
def test_construction_validates_shapes_and_codes():
    with pytest.raises(ValueError, match="expected shape"):
        PhaseDiagram({"a": np.arange(3.0)}, np.zeros(4, np.int8), {})
    with pytest.raises(ValueError, match="codes are 0"):
        PhaseDiagram({"a": np.arange(3.0)}, np.array([0, 1, 9], np.int8), {})
    with pytest.raises(ValueError, match="diagnostics"):
        PhaseDiagram({"a": np.arange(3.0)}, np.zeros(3, np.int8), {"period": np.zeros(2)})
    diagram = PhaseDiagram({"a": [1, 2, 3], "n": ["x", "y"]}, np.zeros((3, 2), np.int16), {})
    assert diagram.regimes.dtype == np.int8 and diagram.axis_kinds == {"a": "numeric", "n": "categorical"}
    assert diagram.shape == (3, 2) and diagram.size == 6 and "6 points" in repr(diagram)


# ------------------------------------------------------------------------------------------- numbers
def test_fractions_counts_and_summary():
    diagram = half_half()
    fractions = diagram.fractions()
    assert list(fractions) == [regime.value for regime in Regime]
    assert fractions["cyclic"] == 0.5 and fractions[Regime.DRIFTING] == 0.5 and fractions["chaotic"] == 0.0
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert diagram.counts()["cyclic"] == 30
    text = diagram.summary()
    assert "10 × 6 = 60 points" in text
    assert "cyclic     50.0 %  (30 points)" in text and "drifting   50.0 %  (30 points)" in text
    assert "chaotic" not in text  # only regimes present
    assert "alpha" in text and "0 … 4, 10 values, unevenly spaced" in text and "evenly spaced" in text
    assert "took 1.5 s" in text and "400 loops per point (transient 200)" in text


def test_summary_says_how_many_chunks_came_from_the_store():
    # a fully resumed sweep takes milliseconds: the summary says why, and a fresh one says nothing of a store
    resumed = half_half()
    resumed.meta.update(seconds=0.004, chunks=4, chunks_loaded=4)
    assert "took 0.004 s (4 of 4 chunks loaded from the store)" in resumed.summary()
    resumed.meta.update(chunks_loaded=1)
    assert "took 0.004 s (1 of 4 chunks loaded from the store)" in resumed.summary()
    fresh = half_half()
    fresh.meta.update(chunks=4, chunks_loaded=0)
    assert "took 1.5 s" in fresh.summary() and "loaded" not in fresh.summary()


def test_summary_breaks_down_by_categorical_axis():
    text = three_axes().summary()
    assert "by norm:" in text
    assert "post      periodic 93 %, chaotic 7 %" in text
    assert "pre       cyclic 50 %, drifting 50 %" in text


# ------------------------------------------------------------------------------------------- look-ups
def test_regime_at_nearest_cell_and_errors():
    diagram = three_axes()
    assert diagram.regime_at(norm="pre", alpha=0.79, beta=0.5) is Regime.CYCLIC        # nearest alpha 0.8
    assert diagram.regime_at(norm="pre", alpha=0.95, beta=0.5) is Regime.DRIFTING      # nearest alpha 1.0
    assert diagram.regime_at(norm="sandwich", alpha=0.0, beta=0.0) is Regime.DRIFTING
    assert diagram.regime_at(norm="post", alpha=10.0, beta=1.0) is Regime.CHAOTIC
    with pytest.raises(ValueError, match="'pre', 'sandwich', 'post'"):
        diagram.regime_at(norm="peri", alpha=0.0, beta=0.0)
    with pytest.raises(ValueError, match="give a value for the axis 'beta'"):
        diagram.regime_at(norm="pre", alpha=0.0)
    with pytest.raises(ValueError, match="its axes are norm, alpha, beta"):
        diagram.regime_at(gamma=1.0)


def test_select_fixes_axes():
    diagram = three_axes()
    post = diagram.select(norm="post")
    assert list(post.axes) == ["alpha", "beta"] and post.meta["selected"] == {"norm": "post"}
    np.testing.assert_array_equal(post.regimes, diagram.regimes[2])
    np.testing.assert_array_equal(post.diagnostics["lyapunov"], diagram.diagnostics["lyapunov"][2])
    line = post.select(beta=0.38)  # nearest 0.4
    np.testing.assert_array_equal(line.regimes, diagram.regimes[2, :, 2])
    assert line.meta["selected"] == {"norm": "post", "beta": 0.4}


def test_boundaries_exact_on_hand_made_layout():
    diagram = half_half()
    expected = np.zeros(diagram.shape, bool)
    expected[4:6, :] = True  # both sides of the alpha boundary, every beta
    np.testing.assert_array_equal(diagram.boundaries(), expected)
    # an L-shaped island: its cells and their 4-neighbours outside it
    codes = np.full((5, 5), CYCLIC)
    codes[1:3, 1] = DIVERGENT
    codes[2, 2] = DIVERGENT
    island = PhaseDiagram({"x": np.arange(5.0), "y": np.arange(5.0)}, codes.astype(np.int8), {})
    expected = np.array([[0, 1, 0, 0, 0],
                         [1, 1, 1, 0, 0],
                         [1, 1, 1, 1, 0],
                         [0, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(island.boundaries(), expected)
    points = island.boundary_points()
    np.testing.assert_array_equal(points, np.argwhere(expected).astype(float))
    # a diagnostic: NaN next to NaN is no boundary, NaN next to a number is
    rate = half_half().boundaries("convergence_rate")
    assert rate[6:].sum() == 0 and rate[5].all()


def test_boundaries_along_chosen_axes_and_boundary_points_errors():
    diagram = three_axes()
    every = diagram.boundaries()
    inside = diagram.boundaries(along=("alpha", "beta"))
    assert inside.shape == diagram.shape and not np.array_equal(every, inside)
    for k in range(3):
        np.testing.assert_array_equal(inside[k], diagram.select(norm=diagram.axes["norm"][k]).boundaries())
    # pre and sandwich are mirror images: every cell differs across norm
    assert every[0].all() and every[1].all()
    with pytest.raises(ValueError, match="exactly two numeric axes"):
        diagram.boundary_points()
    with pytest.raises(ValueError, match="along"):
        diagram.boundaries(along=["gamma"])
    post = diagram.select(norm="post").boundary_points()  # the chaotic corner; (4.0, 1.0) is inside it
    expected = {(ALPHA[i], BETA[j]) for i, j in [(8, 4), (8, 5), (9, 4), (7, 4), (7, 5), (8, 3), (9, 3)]}
    assert post.shape == (7, 2) and set(map(tuple, post)) == expected


# ------------------------------------------------------------------------------------------- figures
def test_regime_map_png_legend_and_extents(tmp_path):
    diagram = half_half()
    path = tmp_path / "phase.png"
    fig = diagram.plot(path)
    assert path.stat().st_size > 5000
    assert legend_texts(fig) == ["cyclic", "drifting"]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "alpha" and ax.get_ylabel() == "beta"
    mesh = ax.collections[0]
    corners = mesh.get_coordinates()                     # (ny + 1, nx + 1, 2): cell edges
    edges = np.concatenate([[-0.05], (ALPHA[1:] + ALPHA[:-1]) / 2, [4.5]])
    np.testing.assert_allclose(corners[0, :, 0], edges)  # uneven spacing drawn to scale
    np.testing.assert_allclose(corners[:, 0, 1], np.linspace(-0.1, 1.1, 7))
    assert ax.get_xlim() == pytest.approx((-0.05, 4.5))
    assert cell_colour(mesh, DRIFTING) == to_rgba(REGIME_COLOURS["drifting"])


def test_regime_colour_is_fixed_across_figures():
    colours = [to_rgba(REGIME_COLOURS[regime]) for regime in Regime]
    assert len(set(colours)) == len(Regime)  # one distinct colour per regime
    first, second = half_half().plot(), three_axes().plot()
    one_d = half_half().select(beta=0.0).plot()
    for name in ("cyclic", "drifting"):
        assert legend_colour(first, name) == legend_colour(second, name) == legend_colour(one_d, name) \
            == to_rgba(REGIME_COLOURS[name])
    # the cells themselves: drifting looks the same in a 2-region map and a 4-region facet grid
    assert (cell_colour(first.axes[0].collections[0], DRIFTING)
            == cell_colour(second.axes[0].collections[0], DRIFTING))
    assert cell_colour(second.axes[2].collections[0], CHAOTIC) == to_rgba(REGIME_COLOURS[Regime.CHAOTIC])


def test_facets_panels_titles_and_shared_legend(tmp_path):
    diagram = three_axes()
    fig = diagram.plot(tmp_path / "facets.png")
    panels = [ax for ax in fig.axes if ax.collections]
    assert [ax.get_title() for ax in panels] == ["norm=pre", "norm=sandwich", "norm=post"]
    assert legend_texts(fig) == ["cyclic", "periodic", "chaotic", "drifting"]
    assert all(ax.get_xlabel() == "alpha" for ax in panels)
    assert panels[0].get_ylabel() == "beta"
    np.testing.assert_array_equal(np.ma.asarray(panels[2].collections[0].get_array()).reshape(6, 10),
                                  diagram.regimes[2].T)
    # two facet axes: a rows × columns grid, titles naming both
    codes = np.zeros((2, 3, 4, 5), np.int8)
    grid = PhaseDiagram({"layers": [1, 2], "norm": ["pre", "post", "peri"], "x": np.arange(4.0),
                         "y": np.arange(5.0)}, codes, {})
    panels = [ax for ax in grid.plot().axes if ax.collections]  # layers is numeric: panels are layers × x
    assert len(panels) == 15 and panels[0].get_title() == "norm=pre, y=0"
    assert panels[-1].get_xlabel() == "layers" and panels[0].get_ylabel() == "x"
    grid = PhaseDiagram({"x": np.arange(4.0), "y": np.arange(5.0), "layers": [1, 2],
                         "norm": ["pre", "post", "peri"]},
                        codes.transpose(2, 3, 0, 1), {})
    titles = [ax.get_title() for ax in grid.plot().axes if ax.collections]
    assert titles == [f"layers={k}, norm={n}" for k in (1, 2) for n in ("pre", "post", "peri")]


def test_too_many_facets_and_bad_field_raise():
    big = PhaseDiagram({"x": np.arange(3.0), "y": np.arange(3.0), "seed": np.arange(5),
                        "norm": ["a", "b", "c", "d"]},
                       np.zeros((3, 3, 5, 4), np.int8), {})
    with pytest.raises(ValueError,
                       match=r"too many facets: the axes seed \(5 values\), norm \(4 values\).*20 panels"):
        big.plot()
    big.select(norm="a").plot()  # 5 facets fit
    with pytest.raises(ValueError, match="'regime', 'period', 'convergence_rate', 'lyapunov', 'final_norm'"):
        half_half().plot(field="entropy")
    with pytest.raises(ValueError, match="no positive values|needs positive"):
        half_half().plot(field="lyapunov", log=True)  # all NaN
    with pytest.raises(ValueError, match="3 panels"):
        _, ax = plt.subplots()
        three_axes().plot(ax=ax)


def test_diagnostic_heatmap_colorbar_log_and_blank_nans(tmp_path):
    diagram = half_half()
    path = tmp_path / "rate.png"
    fig = diagram.plot(path, field="convergence_rate")
    assert path.stat().st_size > 5000
    mesh = fig.axes[0].collections[0]
    assert mesh.colorbar is not None and isinstance(mesh.norm, LogNorm)  # 4 decades: log automatically
    assert mesh.colorbar.ax.get_yscale() == "log"
    assert "convergence_rate" in mesh.colorbar.ax.get_ylabel()
    data = mesh.get_array()
    assert np.ma.count_masked(data) == 30 and data.count() == 30  # NaN cells blank, not coloured
    assert mesh.to_rgba(np.ma.masked_all(1))[0][3] == 0.0
    assert not fig.legends  # a colour bar, no regime legend
    linear = diagram.plot(field="convergence_rate", log=False).axes[0].collections[0]
    assert not isinstance(linear.norm, LogNorm)
    final = diagram.plot(field="final_norm").axes[0].collections[0]  # 2 … 57: under two decades
    assert not isinstance(final.norm, LogNorm)
    assert isinstance(diagram.plot(field="final_norm", log=True).axes[0].collections[0].norm, LogNorm)
    signed = three_axes().plot(field="lyapunov").axes[0].collections[0]
    assert signed.norm.vmin == -signed.norm.vmax == -0.4  # signed field: centred at zero


def test_one_dimensional_strip_with_diagnostic_line(tmp_path):
    r = np.linspace(2.5, 4.0, 31)
    codes = np.where(r < 3.0, Regime.FIXED_POINT.code, np.where(r < 3.57, PERIODIC, CHAOTIC)).astype(np.int8)
    lyapunov = np.where(codes == CHAOTIC, 0.3, -0.5)
    diagram = PhaseDiagram({"r": r}, codes, {"lyapunov": lyapunov, "period": np.zeros(31)},
                           {"system_name": "map"})
    path = tmp_path / "strip.png"
    fig = diagram.plot(path)
    assert path.stat().st_size > 5000
    main, strip = fig.axes
    assert main.get_ylabel() == "lyapunov" and strip.get_xlabel() == "r"
    np.testing.assert_array_equal(main.lines[0].get_ydata(), lyapunov)
    np.testing.assert_array_equal(np.ma.asarray(strip.collections[0].get_array()).ravel(), codes)
    assert legend_texts(fig) == ["fixed_point", "periodic", "chaotic"]
    assert len(diagram.plot(line=False).axes) == 1
    period = diagram.plot(field="period")
    assert period.axes[0].get_ylabel() == "period"
    categorical = PhaseDiagram({"norm": ["pre", "post"]}, np.array([CYCLIC, DRIFTING], np.int8), {}).plot()
    assert [t.get_text() for t in categorical.axes[0].get_xticklabels()] == ["pre", "post"]
    with pytest.raises(ValueError, match="line="):
        diagram.plot(line="entropy")


def test_plot_into_given_axes():
    fig, ax = plt.subplots()
    assert half_half().plot(ax=ax) is fig
    assert ax.collections and ax.get_legend() is not None
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cyclic", "drifting"]


# ------------------------------------------------------------------------------------------- files
def assert_same(a, b):
    assert list(a.axes) == list(b.axes)
    for name in a.axes:
        assert a.axes[name].dtype == b.axes[name].dtype
        np.testing.assert_array_equal(a.axes[name], b.axes[name])
    assert b.regimes.dtype == np.int8
    np.testing.assert_array_equal(a.regimes, b.regimes)
    assert list(a.diagnostics) == list(b.diagnostics)
    for name in a.diagnostics:
        assert b.diagnostics[name].dtype == np.float64
        np.testing.assert_array_equal(a.diagnostics[name], b.diagnostics[name])  # NaN == NaN here
    assert a.meta == b.meta


def test_save_load_exact_round_trip(tmp_path):
    for diagram in (half_half(), three_axes()):
        path = tmp_path / "diagram.phase"  # exactly this path: no suffix added
        diagram.meta["note"] = [1.0 / 3.0, None, {"nested": True}]
        diagram.save(path)
        assert path.exists() and not (tmp_path / "diagram.phase.npz").exists()
        back = PhaseDiagram.load(path)
        assert_same(diagram, back)
        assert back.axes["alpha"].tolist() == ALPHA.tolist()
        missing = np.isnan(diagram.diagnostics["lyapunov"]).sum()
        assert np.isnan(back.diagnostics["lyapunov"]).sum() == missing > 0
    assert PhaseDiagram.load(path).axes["norm"].tolist() == ["pre", "sandwich", "post"]
    with np.load(path, allow_pickle=False) as plain:  # an ordinary .npz, no pickles
        assert plain["axis_0"].dtype.kind == "U"
    integer = PhaseDiagram({"layers": np.array([1, 2, 4]), "eps": np.array([1e-6])},
                           np.zeros((3, 1), np.int8), {})
    integer.save(tmp_path / "int.npz")
    assert_same(integer, PhaseDiagram.load(tmp_path / "int.npz"))


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="not a dynloop.PhaseDiagram"):
        PhaseDiagram.load(tmp_path / "other.npz")
    OrbitDiagram("r", [1.0], np.zeros((1, 2, 1, 1)), ("x",)).save(tmp_path / "orbit.npz")
    with pytest.raises(ValueError, match="holds 'dynloop.OrbitDiagram'"):
        PhaseDiagram.load(tmp_path / "orbit.npz")


def test_to_xarray():
    xr = pytest.importorskip("xarray")
    diagram = three_axes()
    dataset = diagram.to_xarray()
    assert isinstance(dataset, xr.Dataset)
    assert dataset["regime"].dims == ("norm", "alpha", "beta")
    assert dataset["regime"].dtype == np.int8
    assert dataset["regime"].sel(norm="post", alpha=4.0, beta=1.0).item() == CHAOTIC
    assert dataset.coords["norm"].values.tolist() == ["pre", "sandwich", "post"]
    np.testing.assert_array_equal(dataset["lyapunov"].values, diagram.diagnostics["lyapunov"])
    assert dataset["regime"].attrs["flag_meanings"].split()[CHAOTIC] == "chaotic"
    assert dataset.attrs["loops"] == 400 and dataset.attrs["system_name"] == "faceted"
    import json

    assert json.loads(dataset.attrs["tolerances"]) == META["tolerances"]
    assert json.loads(dataset.attrs["lyapunov"]) is False


def test_to_xarray_without_xarray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray now raises ImportError
    with pytest.raises(ImportError, match="pip install xarray"):
        half_half().to_xarray()


# --------------------------------------------------------------------------------------- orbit diagrams
def logistic_points(r, keep=64, loops=3000, stages=1):
    """The last ``keep`` iterates of the logistic map per r; extra stages are simple transforms."""
    x = np.full(r.size, 0.3)
    kept = []
    for loop in range(loops):
        x = r * x * (1 - x)
        if loop >= loops - keep:
            kept.append(x.copy())
    points = np.array(kept).T                      # (V, N)
    layers = [points, 1.0 - points, points ** 2][:stages]
    return np.stack(layers, axis=2)[..., None]     # (V, N, S, 1)


def test_orbit_diagram_counts_plot_and_summary(tmp_path):
    r = np.array([2.8, 3.2, 3.5, 3.83, 3.9])
    codes = np.array([Regime.FIXED_POINT.code, PERIODIC, PERIODIC, PERIODIC, CHAOTIC], np.int8)
    diagram = OrbitDiagram("r", r, logistic_points(r), ("x",), codes,
                           {"system_name": "logistic", "coordinate": "x"})
    counts = diagram.distinct_points()
    assert counts[:4].tolist() == [1, 2, 4, 3] and counts[4] > 16
    text = diagram.summary()
    assert "r 2.8 … 3.9, 5 values" in text and "64 loops kept per value" in text
    assert "fixed_point 20 %" in text and "periodic 60 %" in text and "more than 16 (1)" in text
    path = tmp_path / "orbit.png"
    fig = diagram.plot(path)
    assert path.stat().st_size > 5000
    ax = fig.axes[0]
    assert ax.get_xlabel() == "r" and ax.get_ylabel() == "x"
    assert ax.lines[0].get_xdata().size == 5 * 64
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), diagram.points[:, :, 0, 0].ravel())
    assert legend_texts(fig) == ["fixed_point", "periodic", "chaotic"]
    assert legend_colour(fig, "periodic") == to_rgba(REGIME_COLOURS["periodic"])
    bands = [p for p in ax.patches]
    assert len(bands) == 3  # fixed point | periodic (three values, one band) | chaotic
    assert tuple(bands[2].get_facecolor()[:3]) == to_rgba(REGIME_COLOURS["chaotic"])[:3]


def test_orbit_diagram_panels_per_stage_and_round_trip(tmp_path):
    r = np.linspace(2.8, 4.0, 40)
    diagram = OrbitDiagram("residual_scale", r, logistic_points(r, keep=20, stages=3),
                           ("inject", "layer1", "layer2"), None, {"system_name": "block", "loops": 3000})
    fig = diagram.plot()
    assert [ax.get_title() for ax in fig.axes] == ["inject", "layer1", "layer2"]
    assert not fig.legends  # no regimes, no legend
    assert [ax.get_title() for ax in diagram.plot(stages="layers").axes] == ["layer1", "layer2"]
    assert [ax.get_title() for ax in diagram.plot(stages=["layer2"]).axes] == ["layer2"]
    with pytest.raises(ValueError, match="'inject', 'layer1', 'layer2'"):
        diagram.plot(stages=["layer9"])
    path = tmp_path / "orbit.npz"
    diagram.save(path)
    back = OrbitDiagram.load(path)
    assert back.axis == "residual_scale" and back.stage_names == diagram.stage_names
    assert back.regimes is None and back.meta == diagram.meta
    np.testing.assert_array_equal(back.values, diagram.values)
    np.testing.assert_array_equal(back.points, diagram.points)
    # with regimes and NaNs (a diverged run keeps fewer loops)
    points = diagram.points.copy()
    points[-1, :5] = np.nan
    codes = np.full(r.size, PERIODIC, np.int8)
    codes[-1] = DIVERGENT
    OrbitDiagram("r", r, points, diagram.stage_names, codes, {}).save(path)
    back = OrbitDiagram.load(path)
    np.testing.assert_array_equal(back.points, points)
    np.testing.assert_array_equal(back.regimes, codes)
    assert back.regimes.dtype == np.int8
    with pytest.raises(ValueError, match="stage_names"):
        OrbitDiagram("r", r, points, ("x",), None, {})


# ------------------------------------------------------------------------------ files saved before
DATA = Path(__file__).resolve().parents[1] / "data"
# What dynloop at main 97e1333 (regime codes = enum positions) labelled the points of the files in
# tests/data (recorded by name when they were made; tests/data/README.md says how).
LOGISTIC_AT_97E1333 = (["fixed_point"] * 13 + ["undetermined"] + ["periodic"] * 14 + ["chaotic"] * 7
                       + ["periodic"] + ["chaotic"] * 4)
AFFINE_AT_97E1333 = ["fixed_point", "drifting", "divergent", "periodic"]


@pytest.mark.parametrize("name, axis, values, expected", [
    ("logistic_phase_main_97e1333.npz", "r", np.linspace(2.5, 4.0, 40), LOGISTIC_AT_97E1333),
    ("affine_phase_main_97e1333.npz", "a", np.array([0.5, 1.0, 1.5, -1.0]), AFFINE_AT_97E1333)])
def test_a_phase_diagram_saved_before_explicit_codes_loads_with_the_same_regimes(
        name, axis, values, expected):
    diagram = PhaseDiagram.load(DATA / name)
    np.testing.assert_array_equal(diagram.axes[axis], values)
    assert [Regime.from_code(code).value for code in diagram.regimes] == expected
    assert [diagram.regime_at(**{axis: v}).value for v in values] == expected
    assert {k: v for k, v in diagram.counts().items() if v} == {r: expected.count(r) for r in set(expected)}


def _affine_step(x, p):
    return np.array([p[0] * x[0] + 1.0])


def test_the_same_sweeps_today_give_the_files_saved_before_bit_for_bit():
    # codes keep their numbers: labels and every diagnostic as dynloop at 97e1333 saved them
    import dynloop
    from dynloop.sweep.engine import sweep

    line = dynloop.Map(_affine_step, 1, params={"a": 0.5}, name="affine line")
    for name, now in [
            ("logistic_phase_main_97e1333.npz",
             sweep(dynloop.maps.logistic(), {"r": np.linspace(2.5, 4.0, 40)}, loops=2000, lyapunov=True,
                   progress=False)),
            ("affine_phase_main_97e1333.npz",
             sweep(line, {"a": np.array([0.5, 1.0, 1.5, -1.0])}, loops=200, progress=False))]:
        saved = PhaseDiagram.load(DATA / name)
        np.testing.assert_array_equal(now.regimes, saved.regimes)
        assert now.diagnostics.keys() == saved.diagnostics.keys()
        for field in saved.diagnostics:
            np.testing.assert_array_equal(now.diagnostics[field], saved.diagnostics[field],
                                          err_msg=f"{name} {field}")
