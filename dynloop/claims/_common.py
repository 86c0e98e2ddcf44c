"""What the claims share: resumable per-item results, and figure saving."""

from pathlib import Path

import numpy as np

from ..sweep.store import ChunkStore


def stored(context, name, manifest, count, compute):
    """``[compute(i) for i in range(count)]``, each a dict of arrays kept as one chunk of a store.

    The store lives at ``context.store(name)``; an interrupted run finds the finished items there
    and computes only the rest (a store made for another ``manifest`` is refused, not mixed in).
    """
    store = ChunkStore(context.store(name), manifest, count)
    missing = set(store.missing())
    results = []
    for index in range(count):
        if index in missing:
            arrays = {key: np.asarray(value) for key, value in compute(index).items()}
            store.write(index, arrays)
            context.tick()
        else:
            arrays = store.read(index)
        results.append(arrays)
    return results


def stored_settings(context, name, items, one, system, key="settings", **extra):
    """:func:`stored` over a claim's settings: ``one(i)`` for every tuple ``items[i]``.

    The manifest names the claim (``name``'s first part), the settings under ``key``, the block
    ``system`` they vary, and ``extra`` (horizons, block sizes).
    """
    manifest = {"claim": name.split("/")[0], key: [list(item) for item in items], "system": system.to_dict(),
                **extra}
    return stored(context, name, manifest, len(items), one)


def save_figure(fig, outdir, name, stem):
    """Save ``fig`` as ``OUTDIR/NAME/STEM.png``, close it, and return the path relative to ``outdir``."""
    import matplotlib.pyplot as plt

    folder = Path(outdir) / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path.relative_to(outdir))


def attention_settings(quick):
    """(norm, injection, weight_gain, residual_scale, seed) of the blocks claims 5 to 7 analyse (k = 4).

    Converging and non-converging cells, at small and unit weight gains.
    """
    cells = (("pre", "concat"), ("sandwich", "concat"), ("sandwich", "none"), ("peri_outer", "none"))
    gains = (0.3, 1.0) if quick else (0.16, 0.5, 1.0, 2.0)
    scales = (0.5,) if quick else (0.5, 1.0)
    seeds = (0,) if quick else (0, 1, 2)
    return [(n, i, g, a, s) for n, i in cells for g in gains for a in scales for s in seeds]


def label_colours(labels):
    """One colour per distinct label, in order of first appearance (lines of one cell share it)."""
    import matplotlib.pyplot as plt

    distinct = list(dict.fromkeys(labels))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(distinct) > len(cycle):
        cycle = [plt.get_cmap("tab20")(i) for i in range(20)]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(distinct)}


def unique_legend(ax, **kwargs):
    """A legend with each label once."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    return ax.legend(unique.values(), unique.keys(), **kwargs)
