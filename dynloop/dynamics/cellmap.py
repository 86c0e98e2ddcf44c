"""Hsu's simple cell mapping: a map of dimension at most 3 as a directed graph over the cells of a box.

The box ``bounds`` is cut into ``cells`` cells per coordinate. Each cell maps to the one cell that
holds the image of its centre (or, with ``samples > 1``, the image cell most of its sample points
reach); images outside the box, or not finite, go to one sink cell. Every cell then has exactly
one out-edge, and the graph's attracting components (strongly connected components that no edge
leaves, found with networkx as the nodes of the condensation without out-edges) are the periodic
groups of cells: the cell-map attractors. A cell's basin is the attracting component its path
reaches (networkx's ancestors in the condensation), and its transient depth the number of steps
it takes to get there.

References
----------
C. S. Hsu, "Cell-to-Cell Mapping: A Method of Global Analysis for Nonlinear Systems",
Springer (1987).
"""

__all__ = ["cell_map", "CellMap"]

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from .._errors import check_int, invalid
from ..systems.base import check_system

SINK = -1


@dataclass
class CellMap:
    """A simple cell map of a map on a box: the result of :func:`cell_map`.

    Attributes
    ----------
    graph : networkx.DiGraph
        One node per cell (its flat C-order index) and the sink (node ``n_cells``), an edge from
        every cell to its image cell.
    attractors : list of ndarray
        The attracting components other than the sink: each the flat indices of its cells, sorted.
    periodic_groups : list of list of int
        The same components as cycles of cells in mapping order, starting at their smallest cell
        (the period of a group is its length).
    labels : ndarray of int, shape ``cells``
        Which attractor's basin each cell is in (its index in :attr:`attractors`), or -1 for the sink.
    transient_depth : ndarray of int, shape ``cells``
        Steps from each cell to the attractor (or the sink) it ends in; 0 on an attractor.
    bounds : ndarray, shape (dim, 2)
    cells : tuple of int
    samples : int
    meta : dict

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> bistable = dynloop.Map(lambda x, p: np.array([3.0 * np.tanh(x[0])]), 1, name="bistable")
    >>> cm = dynloop.cell_map(bistable, [(-4, 4)], 80)
    >>> len(cm.attractors), cm.labels[:40].tolist() == [0] * 40, cm.labels[40:].tolist() == [1] * 40
    (2, True, True)
    """

    graph: object
    attractors: list
    periodic_groups: list
    labels: np.ndarray
    transient_depth: np.ndarray
    bounds: np.ndarray
    cells: tuple
    samples: int = 1
    meta: dict = field(default_factory=dict)

    @property
    def dim(self):
        """Dimension of the map."""
        return len(self.cells)

    @property
    def widths(self):
        """Cell width along every coordinate."""
        return (self.bounds[:, 1] - self.bounds[:, 0]) / np.asarray(self.cells)

    def centers(self, cells=None):
        """The centres of the cells with these flat indices (all cells by default), shape (n, dim)."""
        cells = np.arange(int(np.prod(self.cells))) if cells is None else np.asarray(cells)
        index = np.stack(np.unravel_index(cells, self.cells), axis=1)
        return self.bounds[:, 0] + (index + 0.5) * self.widths

    def cell_of(self, points):
        """Flat index of the cell holding each point (rows), or -1 outside the box."""
        return _cell_index(np.atleast_2d(np.asarray(points, dtype=float)), self.bounds, self.cells)

    @property
    def fractions(self):
        """Share of the cells in each basin: attractor index (and -1 for the sink) to fraction."""
        values, counts = np.unique(self.labels, return_counts=True)
        order = np.argsort(np.where(values < 0, len(self.attractors) - values, values))
        return {int(values[i]): float(counts[i] / self.labels.size) for i in order}

    def summary(self):
        """A description in words: the box, every attractor with its basin's share and depth."""
        box = ", ".join(f"[{lo:.4g}, {hi:.4g}]" for lo, hi in self.bounds)
        lines = [f"Simple cell map of {self.meta.get('system_name', 'a map')} on {box}, "
                 f"{' × '.join(map(str, self.cells))} cells ({self.samples} sample point"
                 f"{'s' * (self.samples != 1)} per cell)",
                 f"{len(self.attractors)} attracting cell group{'s' * (len(self.attractors) != 1)} "
                 "besides the sink:"]
        for label, share in self.fractions.items():
            if label == SINK:
                lines.append(f"  {100 * share:6.2f} %  sink (leaves the box)")
                continue
            group = self.periodic_groups[label]
            centre = self.centers(group).mean(axis=0)
            depth = self.transient_depth[self.labels == label].max()
            lines.append(f"  {100 * share:6.2f} %  C{label}: {len(group)} cell{'s' * (len(group) != 1)} "
                         f"(period {len(group)}) around ({', '.join(f'{v:.4g}' for v in centre)}), "
                         f"deepest transient {depth} steps")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def __repr__(self):
        return f"CellMap(cells={self.cells}, attractors={len(self.attractors)})"

    def _repr_html_(self):
        from html import escape

        return "<pre>" + escape(self.summary()) + "</pre>"

    def plot(self, path=None, *, ax=None):
        """Draw the basins of the cell map (1-D or 2-D; a 3-D map's middle slice) and its attracting cells.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from ..plotting import plot_cell_map

        return plot_cell_map(self, path, ax=ax)


def _cell_index(points, bounds, cells):
    low, high = bounds[:, 0], bounds[:, 1]
    widths = (high - low) / np.asarray(cells)
    inside = np.all(np.isfinite(points), axis=1) & np.all((points >= low) & (points < high), axis=1)
    index = np.full(points.shape[0], SINK, dtype=np.int64)
    if inside.any():
        cell = np.floor((points[inside] - low) / widths).astype(np.int64)
        cell = np.minimum(cell, np.asarray(cells) - 1)  # rounding at the upper edge
        index[inside] = np.ravel_multi_index(tuple(cell.T), cells)
    return index


def _check_bounds(bounds, dim):
    try:
        array = np.asarray(bounds, dtype=float).reshape(-1, 2) if np.size(bounds) == 2 * dim else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (dim, 2):
        raise invalid("bounds", bounds, f"expected {dim} pair{'s' * (dim != 1)} (lo, hi), one per coordinate")
    for i, (lo, hi) in enumerate(array):
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise invalid(f"bounds[{i}]", (float(lo), float(hi)), "expected finite lo < hi")
    return array


def _check_cells(cells, dim):
    if isinstance(cells, (numbers.Integral, np.integer)) and not isinstance(cells, bool):
        cells = [cells] * dim
    try:
        cells = list(cells)
    except TypeError:
        raise invalid("cells", cells, "expected a positive integer or one per coordinate") from None
    if len(cells) != dim:
        raise invalid("cells", cells, f"expected {dim} cell count{'s' * (dim != 1)}, one per coordinate")
    return tuple(check_int(f"cells[{i}]", c, minimum=1) for i, c in enumerate(cells))


def cell_map(system, bounds, cells, *, params=None, samples=1):
    """Hsu's simple cell mapping of a map of dimension at most 3 on a box.

    Parameters
    ----------
    system : Map
        Of dimension 1, 2 or 3.
    bounds : sequence of (lo, hi)
        The box, one pair per coordinate (a single pair for a 1-D map).
    cells : int or sequence of int
        Cells per coordinate.
    params : dict, optional
        Map parameter overrides, by name.
    samples : int
        Points per cell whose images vote for the cell's image (1: the centre alone; more: the
        centre and seeded uniform points of the cell, the most frequent image cell winning, the
        smallest index on a tie).

    Returns
    -------
    CellMap

    Notes
    -----
    A cell stands for its centre, so the cell map is faithful where the map contracts or expands
    strongly on the scale of a cell. Beside a weakly unstable fixed point (a multiplier of modulus
    below about 2) the centres of nearby cells do not leave its neighbourhood, and small spurious
    attracting groups appear there; a superattracting point on a cell edge can split its group in
    two by rounding. Finer cells shrink both, :func:`dynloop.basins` has neither.

    Every graph algorithm is networkx's: ``condensation`` (strongly connected components and the
    acyclic graph between them), ``ancestors`` (basins) and ``multi_source_dijkstra_path_length``
    on the reversed graph (transient depths).

    Examples
    --------
    >>> import numpy as np, dynloop
    >>> h = (6 / 11) / 100.5  # the fixed point 6/11 at a cell's centre, the repeller 0 on an edge
    >>> cm = dynloop.cell_map(dynloop.maps.logistic(r=2.2), [(-92 * h, 278 * h)], 370)
    >>> [len(group) for group in cm.periodic_groups], round(float(cm.centers(cm.periodic_groups[0])[0, 0]), 6)
    ([1], 0.545455)
    >>> round(cm.fractions[-1], 3)  # below 0 the orbit escapes: the sink
    0.503
    """
    import networkx as nx

    from ..systems._map_kernels import map_images

    check_system(system)
    if system.kind != "map":
        raise invalid("system", type(system).__name__, "cell mapping takes a dynloop.Map of dimension 1 to 3")
    if system.dim > 3:
        raise invalid("system", system.name, f"cell mapping takes maps of dimension 1 to 3; this one has "
                      f"dimension {system.dim} (use dynloop.basins)")
    dim = system.dim
    bounds = _check_bounds(bounds, dim)
    cells = _check_cells(cells, dim)
    samples = check_int("samples", samples, minimum=1)
    p = np.array(list(system.resolve_params(params).values()), dtype=float).reshape(-1)
    n_cells = int(np.prod(cells))
    widths = (bounds[:, 1] - bounds[:, 0]) / np.asarray(cells)
    index = np.stack(np.unravel_index(np.arange(n_cells), cells), axis=1)
    corners = bounds[:, 0] + index * widths
    offsets = np.full((1, dim), 0.5)
    if samples > 1:
        offsets = np.concatenate([offsets, np.random.default_rng(0).uniform(size=(samples - 1, dim))])
    votes = np.empty((n_cells, samples), dtype=np.int64)
    for s, offset in enumerate(offsets):
        images = map_images(system.step_function, np.ascontiguousarray(corners + offset * widths), p)
        votes[:, s] = _cell_index(images, bounds, cells)
    # the most frequent image cell of each cell's samples, the smallest on a tie
    counts = (votes[:, :, None] == votes[:, None, :]).sum(axis=2)
    best = np.lexsort((votes, -counts))[:, 0]
    image = votes[np.arange(n_cells), best]
    sink = n_cells
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n_cells + 1))
    graph.add_edges_from(zip(range(n_cells), np.where(image == SINK, sink, image).tolist()))
    graph.add_edge(sink, sink)
    condensed = nx.condensation(graph)
    members = condensed.graph["mapping"]  # node -> component
    sink_component = members[sink]
    attracting = sorted((c for c in condensed.nodes if condensed.out_degree(c) == 0 and c != sink_component),
                        key=lambda c: min(condensed.nodes[c]["members"]))
    labels = np.full(n_cells, SINK, dtype=np.int64)
    attractors, groups = [], []
    for label, component in enumerate(attracting):
        cells_in = sorted(condensed.nodes[component]["members"])
        attractors.append(np.array(cells_in, dtype=np.int64))
        cycle, cell = [cells_in[0]], image[cells_in[0]]
        while cell != cells_in[0]:
            cycle.append(int(cell))
            cell = image[cell]
        groups.append(cycle)
        basin = nx.ancestors(condensed, component) | {component}
        for c in basin:
            labels[[m for m in condensed.nodes[c]["members"] if m != sink]] = label
    ends = [int(c) for group in attractors for c in group] + [sink]
    depth = nx.multi_source_dijkstra_path_length(graph.reverse(copy=False), ends)
    transient = np.array([depth[c] for c in range(n_cells)], dtype=np.int64)
    return CellMap(graph=graph, attractors=attractors, periodic_groups=groups, labels=labels.reshape(cells),
                   transient_depth=transient.reshape(cells), bounds=bounds, cells=cells, samples=samples,
                   meta={"system_name": system.name, "params": system.resolve_params(params)})
