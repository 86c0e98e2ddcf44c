"""Figures that have nothing to draw say so in the figure."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from dynloop import Regime
from dynloop.sweep.phase import PhaseDiagram

NOTE = ("no finite values of convergence_rate: it is defined only for points that converged "
        "(vanishing, cyclic, fixed point, periodic)")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def drifting_everywhere(*shape):
    """A diagram where every point drifts, so convergence_rate is NaN everywhere (as the tour's)."""
    axes = {name: np.linspace(0.0, 1.0, n) for name, n in zip(("alpha", "beta"), shape)}
    codes = np.full(shape, Regime.DRIFTING.code, dtype=np.int8)
    return PhaseDiagram(axes=axes, regimes=codes, diagnostics={"convergence_rate": np.full(shape, np.nan)},
                        meta={"system_name": "all drifting"})


def texts(fig):
    return [" ".join(t.get_text().split()) for ax in fig.axes for t in ax.texts]


@pytest.mark.parametrize("shape", [(5, 4), (7,)], ids=["2-d", "1-d"])
def test_an_all_nan_field_says_why_in_the_figure(tmp_path, shape):
    fig = drifting_everywhere(*shape).plot(tmp_path / "rate.png", field="convergence_rate")
    assert NOTE in texts(fig)
    assert (tmp_path / "rate.png").stat().st_size > 0


def test_each_empty_facet_says_so_and_only_those():
    norms = np.array(["pre", "post"])
    codes = np.stack([np.full((3, 4), Regime.DRIFTING.code),
                      np.full((3, 4), Regime.CYCLIC.code)]).astype(np.int8)
    rate = np.where(codes == Regime.CYCLIC.code, 0.5, np.nan)
    diagram = PhaseDiagram(axes={"norm": norms, "alpha": np.linspace(0, 1, 3), "beta": np.linspace(0, 1, 4)},
                           regimes=codes, diagnostics={"convergence_rate": rate}, meta={"system_name": "two"})
    fig = diagram.plot(field="convergence_rate")
    notes = [[" ".join(t.get_text().split()) for t in ax.texts] for ax in fig.axes if ax.get_title()]
    assert notes == [[NOTE], []]


def test_a_field_with_values_has_no_note():
    diagram = drifting_everywhere(5, 4)
    diagram.diagnostics["convergence_rate"][0, 0] = 0.5
    assert not any(t.startswith("no finite values") for t in texts(diagram.plot(field="convergence_rate")))


@pytest.mark.parametrize("r, reference", [(2.5, "the stage points"), (4.0, "the window's last loop")])
def test_classification_figure_names_what_its_distances_are_to(r, reference):
    # a chaotic (or drifting, divergent) orbit has no stage points: the distances are to the last
    # loop of the window, fall to 0 at its end whatever the regime, and the titles must say so
    import dynloop

    fig = dynloop.classify(dynloop.maps.logistic(r=r)).plot()
    assert [ax.get_title() for ax in fig.axes[:2]] == [f"distance to {reference}", f"cosine to {reference}"]
