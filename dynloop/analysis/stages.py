"""Stages of inference: metric profiles against depth, how loops repeat them, and their communities."""

__all__ = ["StageDetection", "profile_correlations", "detect_stages", "relative_depth"]

from dataclasses import dataclass

import networkx as nx
import numpy as np

from .metrics import pairwise_squared_distances


def relative_depth(layers):
    """Relative depth ``(l + 1/2) / layers`` of each layer inside a loop, in (0, 1).

    Examples
    --------
    >>> relative_depth(4).tolist()
    [0.125, 0.375, 0.625, 0.875]
    """
    return (np.arange(layers) + 0.5) / layers


def _correlation(a, b):
    """Pearson correlation of two profiles; two flat profiles correlate 1 if equal, else 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300)
    da, db = a - a.mean(), b - b.mean()
    flat_a, flat_b = np.max(np.abs(da)) <= 1e-9 * scale, np.max(np.abs(db)) <= 1e-9 * scale
    if flat_a or flat_b:
        return 1.0 if flat_a and flat_b and np.allclose(a, b, rtol=1e-6, atol=1e-9 * scale) else 0.0
    return float(np.clip(np.dot(da, db) / np.sqrt(np.dot(da, da) * np.dot(db, db)), -1.0, 1.0))


def profile_correlations(profiles, target):
    """Correlation of each loop's profile with a target profile, metric by metric.

    Parameters
    ----------
    profiles : ndarray, shape (metrics, loops, layers)
    target : ndarray, shape (metrics, layers)

    Returns
    -------
    ndarray, shape (loops, metrics)

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]])     # 1 metric, 2 loops, 3 layers
    >>> profile_correlations(p, p[:, -1]).tolist()
    [[-1.0], [1.0]]
    """
    metrics, loops, _ = profiles.shape
    return np.array([[_correlation(profiles[m, t], target[m]) for m in range(metrics)] for t in range(loops)])


@dataclass
class StageDetection:
    """Communities of (loop, layer) positions with alike stage metrics, and what they follow.

    Attributes
    ----------
    graph : networkx.Graph
        Nodes ``(loop, layer)`` with attributes ``loop``, ``layer`` and ``features`` (the stage
        metrics, standardised); each node joined to its nearest neighbours in feature space, edge
        weight ``exp(−dist² / (2 σ²))`` with ``σ`` the median distance between two nodes.
    communities : list of frozenset
        Louvain communities of the graph (``networkx``, fixed seed: the same every run).
    follows : {"layer", "loop", "mixed"}
        ``"layer"`` when the stages repeat by layer position on every loop (each layer's nodes,
        over the loops, lie in one community: ``layer_purity`` ≥ 0.9); ``"loop"`` when they follow
        the loop index instead (``loop_purity`` ≥ 0.9); ``"mixed"`` otherwise. A block whose layers
        all look alike repeats them trivially: ``"layer"``.
    layer_purity, loop_purity : float
        Over the second half of the loops, the fraction of nodes in their layer's (loop's) most
        common community.

    Examples
    --------
    >>> import numpy as np
    >>> profiles = np.tile(np.array([0.0, 0.0, 5.0, 5.0]), (1, 6, 1))  # 6 loops, 2 + 2 alike layers
    >>> detect_stages(profiles).follows
    'layer'
    """

    graph: nx.Graph
    communities: list
    follows: str
    layer_purity: float
    loop_purity: float

    def summary(self):
        """One line: how many communities, what they follow, the purities."""
        return (
            f"{len(self.communities)} stage communities over {self.graph.number_of_nodes()} (loop, layer) "
            f"positions; they follow the {self.follows} (layer purity {self.layer_purity:.2f}, "
            f"loop purity {self.loop_purity:.2f})"
        )


def _purity(labels, groups):
    """Fraction of items in their group's most common label."""
    total = 0
    for group in np.unique(groups):
        _, counts = np.unique(labels[groups == group], return_counts=True)
        total += counts.max()
    return total / len(labels)


def detect_stages(profiles, neighbours=8):
    """Find the stages: communities of (loop, layer) positions by their metric profiles.

    Parameters
    ----------
    profiles : ndarray, shape (metrics, loops, layers)
        Head-averaged stage metrics.
    neighbours : int
        Each node is joined to at least this many nearest others (and to as many as there are
        loops, so that a layer can reach itself on every other loop).

    Returns
    -------
    StageDetection
        Its purities, and so ``follows``, are measured on the second half of the loops, after the
        transient in which a block's stages are still forming.
    """
    metrics, loops, layers = profiles.shape
    features = profiles.reshape(metrics, -1).T.astype(np.float64)  # node t·layers + l
    spread = features.std(axis=0)
    features = (features - features.mean(axis=0)) / np.where(
        spread > 1e-12 * (1 + np.abs(features).max()), spread, 1.0
    )
    n = features.shape[0]
    nodes = [(node // layers, node % layers) for node in range(n)]
    graph = nx.Graph()
    for node, (t, layer) in enumerate(nodes):
        graph.add_node((t, layer), loop=t, layer=layer, features=features[node])
    k = min(max(neighbours, loops), n - 1)
    if k > 0:
        squared = pairwise_squared_distances(features)
        np.fill_diagonal(squared, np.inf)
        nearest = np.argsort(squared, axis=1, kind="stable")[:, :k]
        rows = np.repeat(np.arange(n), k)
        chosen = squared[rows, nearest.ravel()]
        # the scale: the median distance over all pairs (the neighbours' may be rounding-sized)
        pairs = squared[np.triu_indices(n, 1)]
        positive = pairs[pairs > 0]
        sigma2 = float(np.median(positive)) if positive.size else 1.0
        weights = np.exp(-chosen / (2 * sigma2))
        graph.add_weighted_edges_from(
            (nodes[a], nodes[b], float(w)) for a, b, w in zip(rows, nearest.ravel(), weights)
        )
    if graph.number_of_edges():
        communities = [frozenset(c) for c in nx.community.louvain_communities(graph, weight="weight", seed=0)]
    else:
        communities = [frozenset(graph.nodes)]
    communities.sort(key=lambda c: min(c))
    label = {node: i for i, community in enumerate(communities) for node in community}
    settled = [node for node in nodes if node[0] >= loops // 2]
    labels = np.array([label[node] for node in settled])
    layer_purity = _purity(labels, np.array([layer for _, layer in settled]))
    loop_purity = _purity(labels, np.array([t for t, _ in settled]))
    follows = "layer" if layer_purity >= 0.9 else "loop" if loop_purity >= 0.9 else "mixed"
    return StageDetection(
        graph=graph,
        communities=communities,
        follows=follows,
        layer_purity=float(layer_purity),
        loop_purity=float(loop_purity),
    )
