"""The claims atlas: where each of the seed study's claims holds on toy blocks.

Each claim is one module here with a ``run(context) -> ClaimResult``; :func:`run` runs them in
order, each resuming from its stores under ``OUTDIR/stores``, and writes ``OUTDIR/claims.md``
with the figures beside it.
"""

import time
from pathlib import Path

from .._errors import check_choice
from . import (
    attention_bound,
    block_size,
    diagonal_bands,
    dichotomy,
    norm_injection,
    realised_depth,
    rotation,
    stage_metrics,
    vanishing_action,
)
from ._report import HOLDS_SHARE, VERDICTS, ClaimResult, ClaimsReport, decide

#: name -> module, in the order of the report
CLAIMS = {
    module.NAME: module
    for module in (
        norm_injection,
        rotation,
        realised_depth,
        vanishing_action,
        attention_bound,
        stage_metrics,
        diagonal_bands,
        block_size,
        dichotomy,
    )
}

__all__ = ["run", "ClaimsReport", "ClaimResult", "CLAIMS", "VERDICTS", "HOLDS_SHARE", "decide"]


class Context:
    """What a claim's ``run`` gets: where to write, how big the grids are, where its stores live."""

    def __init__(self, outdir, quick=False, progress=None):
        self.outdir = Path(outdir)
        self.quick = bool(quick)
        self._progress = progress

    def store(self, name):
        """The directory of one resumable store of a claim (``OUTDIR/stores/<quick|full>/NAME``)."""
        return self.outdir / "stores" / ("quick" if self.quick else "full") / name

    def tick(self):
        """A unit of work is done (advances the progress bar, if any)."""
        if self._progress is not None:
            self._progress.update(1)


def _progress_bar(name):
    """A tqdm counter of a claim's finished pieces on stderr, or None without tqdm (the progress extra)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(desc=f"  {name}", unit=" pieces", leave=False)


def run(outdir, quick=False, only=None, *, progress=True):
    """Test the seed study's claims on toy blocks and write ``OUTDIR/claims.md`` with figures.

    Parameters
    ----------
    outdir : str or Path
        Output directory: ``claims.md``, ``claims.json``, a figure folder per claim, and ``stores/``
        with every finished piece of work, so that an interrupted run continues where it stopped.
    quick : bool
        Coarser grids and one seed (the full atlas takes much longer).
    only : str or list of str, optional
        Claim names to run (``dynloop.claims.CLAIMS``); default all.
    progress : bool
        Show what is running on stderr.

    Returns
    -------
    ClaimsReport

    Examples
    --------
    >>> import dynloop.claims
    >>> list(dynloop.claims.CLAIMS)[0]
    'norm_injection'
    >>> report = dynloop.claims.run("out/claims", quick=True, only="norm_injection")  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    """
    names = list(CLAIMS) if only is None else ([only] if isinstance(only, str) else list(only))
    for name in names:
        check_choice("only", name, list(CLAIMS))
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        start = time.perf_counter()
        if progress:
            import sys

            print(f"claim {name}: running{' (quick grids)' if quick else ''}...", file=sys.stderr, flush=True)
        bar = _progress_bar(name) if progress else None
        try:
            result = CLAIMS[name].run(Context(outdir, quick, bar))
        finally:
            if bar is not None:
                bar.close()
        result.seconds = time.perf_counter() - start
        results.append(result)
        if progress:
            print(f"claim {result.summary()} [{result.seconds:.0f} s]", file=sys.stderr, flush=True)
    report = ClaimsReport(results, outdir=str(outdir), quick=quick)
    report.save()
    return report
