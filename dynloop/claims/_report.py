"""What one claim's check found (:class:`ClaimResult`) and the whole atlas (:class:`ClaimsReport`)."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import check_choice
from .._json import jsonable

VERDICTS = ("holds", "holds in part", "does not hold")
#: A claim holds where it holds on at least this share of what was tested, and does not hold
#: where it holds on at most ``1 - HOLDS_SHARE`` of it; in between it holds in part.
HOLDS_SHARE = 0.95


def decide(share, *, exact=False):
    """The verdict for a claim that holds on ``share`` (0 to 1) of the settings tested.

    ``exact`` claims (a bound that must never be violated) hold only at ``share == 1``.

    Examples
    --------
    >>> decide(0.97), decide(0.5), decide(0.01), decide(0.99, exact=True)
    ('holds', 'holds in part', 'does not hold', 'holds in part')
    """
    if not 0.0 <= share <= 1.0 or math.isnan(share):
        raise ValueError(f"share: got {share!r}, expected a fraction between 0 and 1")
    if share >= (1.0 if exact else HOLDS_SHARE):
        return "holds"
    if share <= (0.0 if exact else 1.0 - HOLDS_SHARE):
        return "does not hold"
    return "holds in part"


@dataclass
class ClaimResult:
    """One claim, how it was tested, and the verdict with its numbers.

    Attributes
    ----------
    name : str
        Short name (``dynloop claims --only NAME``).
    title, claim : str
        A heading, and the claim as the paper states it.
    setup : str
        The exact blocks, grids, horizons and seeds.
    criteria : list of str
        Each criterion with its tolerance.
    verdict : str
        ``"holds"``, ``"holds in part"`` or ``"does not hold"``.
    where : str
        Where it holds (and where not), in words, with numbers.
    share : float
        The fraction of the tested settings where it holds.
    table : str
        A Markdown table of the numbers behind the verdict ('' for none).
    figures : list of str
        Figure files, relative to the report's directory.
    numbers : dict
        The headline numbers, JSON-able.
    seconds : float
        How long the check took (loaded chunks cost nothing).

    Examples
    --------
    >>> r = ClaimResult("demo", "A demo", "x holds", "none", ["x > 0"], "holds", "everywhere", 1.0)
    >>> print(r.summary())
    demo: holds (100 % of the settings tested) - everywhere
    """

    name: str
    title: str
    claim: str
    setup: str
    criteria: list
    verdict: str
    where: str
    share: float
    table: str = ""
    figures: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self):
        check_choice("verdict", self.verdict, VERDICTS)

    def summary(self):
        """One line: name, verdict, share and where."""
        return f"{self.name}: {self.verdict} ({100 * self.share:.0f} % of the settings tested) - {self.where}"

    def markdown(self, level=2):
        """The claim's section of ``claims.md``."""
        hashes = "#" * level
        lines = [
            f"{hashes} {self.title}",
            "",
            f"**Claim.** {self.claim}",
            "",
            f"**Setup.** {self.setup}",
            "",
            "**Criteria.**",
            "",
        ]
        lines += [f"- {criterion}" for criterion in self.criteria]
        lines += [
            "",
            f"**Verdict: {self.verdict}** ({100 * self.share:.1f} % of the settings tested). {self.where}",
            "",
        ]
        if self.table:
            lines += [self.table, ""]
        for figure in self.figures:
            lines += [f"![{Path(figure).stem}]({figure})", ""]
        lines += [f"*{self.seconds:.1f} s.*", ""]
        return "\n".join(lines)

    def _repr_markdown_(self):
        return self.markdown(level=3)

    def to_dict(self):
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class ClaimsReport:
    """The claims checked by :func:`dynloop.claims.run`, each a :class:`ClaimResult`.

    Examples
    --------
    >>> r = ClaimResult("demo", "A demo", "x holds", "none", ["x > 0"], "holds", "everywhere", 1.0)
    >>> report = ClaimsReport([r], outdir="out", quick=True)
    >>> report["demo"].verdict
    'holds'
    >>> print(report.summary().splitlines()[0])
    1 claim checked (quick grids) in 0.0 s: 1 holds, 0 hold in part, 0 do not hold
    """

    results: list
    outdir: str = "."
    quick: bool = False

    def __getitem__(self, name):
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no claim named {name!r} in this report; it has {[r.name for r in self.results]}")

    def __len__(self):
        return len(self.results)

    def counts(self):
        """How many claims got each verdict."""
        return {verdict: sum(r.verdict == verdict for r in self.results) for verdict in VERDICTS}

    def summary(self):
        """A line per claim under a count of the verdicts."""
        counts = self.counts()
        seconds = sum(r.seconds for r in self.results)
        plural = "claim" if len(self) == 1 else "claims"
        head = (
            f"{len(self)} {plural} checked ({'quick' if self.quick else 'full'} grids) in {seconds:.1f} s: "
            f"{counts['holds']} holds, {counts['holds in part']} hold in part, "
            f"{counts['does not hold']} do not hold"
        )
        return "\n".join([head] + ["  " + r.summary() for r in self.results])

    def __str__(self):
        return self.summary()

    def markdown(self):
        """The whole of ``claims.md``."""
        lines = [
            "# What the toy blocks say about the paper's claims",
            "",
            "Written by `dynloop claims`" + (" --quick" if self.quick else "") + ". Every claim is tested "
            "on toy blocks; the verdict is `holds` where it holds on at least "
            f"{100 * HOLDS_SHARE:.0f} % of the settings tested, `does not hold` where on at most "
            f"{100 * (1 - HOLDS_SHARE):.0f} %, and `holds in part` in between, with where.",
            "",
            "| claim | verdict | share | where |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| [{r.title}](#{_anchor(r.title)}) | {r.verdict} | {100 * r.share:.0f} % | {r.where} |"
            for r in self.results
        ]
        lines.append("")
        lines += [r.markdown() for r in self.results]
        return "\n".join(lines)

    def _repr_markdown_(self):
        return self.markdown()

    def save(self, path=None):
        """Write ``claims.md`` and ``claims.json`` (``path``: the Markdown file; default in ``outdir``)."""
        path = Path(path) if path is not None else Path(self.outdir) / "claims.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown())
        document = {
            "format": "dynloop.claims",
            "quick": self.quick,
            "results": [r.to_dict() for r in self.results],
        }
        path.with_suffix(".json").write_text(json.dumps(document, indent=1, default=jsonable))
        return path

    def plot(self, path=None):
        """Bars of the share of settings where each claim holds, coloured by verdict."""
        import matplotlib.pyplot as plt

        colours = {"holds": "#2a9d8f", "holds in part": "#e9c46a", "does not hold": "#e76f51"}
        fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.45 * max(len(self), 1)), layout="constrained")
        names = [r.name for r in self.results][::-1]
        shares = [100 * r.share for r in self.results][::-1]
        ax.barh(names, shares, color=[colours[r.verdict] for r in self.results][::-1])
        ax.set_xlim(0, 100)
        ax.set_xlabel("settings where the claim holds (%)")
        ax.set_title("The paper's claims on toy blocks" + (" (quick grids)" if self.quick else ""))
        from matplotlib.patches import Patch

        ax.legend(
            handles=[Patch(color=c, label=v) for v, c in colours.items()],
            loc="lower right",
            fontsize="small",
            title="verdict",
        )
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
        return fig


def _anchor(title):
    """GitHub's anchor for a Markdown heading."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")
