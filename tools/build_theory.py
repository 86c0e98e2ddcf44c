"""Generate the ``theory/`` folder: one Markdown document per norm family, the known answers, an index.

Run from the repository's root::

    python tools/build_theory.py theory          # --no-figures: Markdown only; --jobs N: N processes

The output folder is a required argument: nothing is written into the source tree unless it is
named. Every document is produced by :func:`dynloop.symbolic.derive` on the model it describes and
checked against a small numeric sweep of the same model (:func:`dynloop.sweep`,
``Derivation.check``); the agreement numbers quoted in the text are computed, not typed in. The
output is deterministic (fixed weights and grids, generous sympy time limits, no timestamps,
numbers rounded), so ``tests/symbolic/test_theory.py`` regenerates the Markdown and fails when the committed
``theory/`` is stale.

This is a tool of the repository, not part of the library: ``dynloop`` never imports it (it is
not in the installed package, and ``dynloop theory`` only prints derivations), because what it
writes (the repository's ``theory/`` and its links to MODEL.md and docs/) exists only in a source
checkout. The tests import it from ``tools/``.

Layout of one document: the model (equations of MODEL.md), the assumptions, what the derivations
mean for architecture choices, then one section per injection scheme with the derivation
(``Derivation.markdown()``), the comparison with the sweep and a figure (``theory/figures/``) that
overlays the derived boundaries (``Derivation.overlay``) on the numeric phase diagram.
"""

__all__ = ["build", "FAMILIES", "section_model", "source_digest", "BUDGET"]

import dataclasses
import hashlib
import sys
from pathlib import Path

import numpy as np
import sympy

from dynloop import components, maps, sweep
from dynloop._errors import invalid
from dynloop.dynamics.regimes import Regime
from dynloop.symbolic import Budget, Scheme, derive
from dynloop.symbolic.jury import boundary_equations, jury
from dynloop.symbolic.render import COLOURS
from dynloop.systems.block import BlockSpec

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python tools/build_theory.py"
#: Six times ``derive``'s default limits: past a limit ``derive`` leaves an expression unsimplified,
#: so with the default limits a busy machine could produce different (equivalent) Markdown.
BUDGET = Budget(solve=120, simplify=24, total=240)

ALPHA, BETA = sympy.symbols("alpha beta", real=True)
INJECTIONS = tuple(components.INJECTIONS)
#: DeepNorm's skip scale (2k)^(1/4) for the k = 2 layers of the section model: the post-norm family's
#: skip_scale section.
DEEPNORM_SKIP = sympy.sqrt(2)
#: The scalar model every section derives and sweeps: weights of the two layers, input, injection weights.
LAYER_WEIGHTS = (0.5, -1.5)
INJECTION_WEIGHTS = {
    "none": {},
    "additive": {},
    "concat": {"inject_h": [[0.5]], "inject_e": [[1.0]]},
    "diagonal": {"inject_dt": [0.0], "inject_a_log": [0.0], "inject_b": [[1.0]]},
    "convex": {"inject_alpha": [0.5], "inject_beta": [0.5]},
    "gate": {},
    "additive_norm": {},
    "additive_each_layer": {},
}
ALPHAS = np.linspace(-1.0, 2.0, 24)
BETAS = np.linspace(-1.0, 1.0, 24)
ALPHAS_1D = np.linspace(-1.0, 2.0, 48)
LOOPS = 1000
BAND = 2


# ----------------------------------------------------------------------------- what is documented
@dataclasses.dataclass(frozen=True)
class Family:
    """One document: a norm family, its placements and the injections derived for each."""

    slug: str
    title: str
    placements: tuple          # ((norm, injections), ...) or (norm, injections, skip_scale)
    update: str                # the sub-layer update, Markdown
    meaning: str               # what it means for architecture choices, Markdown


_NO_NORM = """\
- **The loop is affine.** Without norms a linear block is `x ↦ M x + c` with
  `M = Ā Π_ℓ (1 + α w_ℓ)` (per eigenvalue of commuting weights; `Ā` is the injection's linear part:
  1 for none/additive, `W_h` for concat, `D = exp(−Δ e^{a_log})` for diagonal, `α₂` for convex). The
  fixed point exists and is unique iff `M ≠ 1`; it attracts iff `|M| < 1`. It is lost through a
  **fold** (`M = 1`, the fixed point runs off to infinity) or a **flip** (`M = −1`, sign-alternating
  growth); outside the region the loop is **divergent** (exponential growth), there is no bounded
  alternative.
- **Vanishing versus cyclic.** Layer ℓ moves its input by `α w_ℓ x_ℓ`, so the stage points coincide
  iff the fixed point is `x* = 0`: without injection (or with `β e = 0`) a converged block
  *vanishes*; with any injection a converged block keeps a **cyclic fixed point** (every layer has its
  own point). The block's contribution only survives because the input is re-injected.
- **Architecture.** Residual layers `x + α w x` need `α w ∈ (−2, 0)` per eigenvalue, i.e. weights
  whose eigenvalues point *against* the residual stream, scaled down by α. Stacking k layers
  multiplies the factors, so a large k with a fixed α leaves the region quickly (the k = 2 region
  below is narrower than either layer's own). Parcae's diagonal injection multiplies by `D ∈ (0, 1)`
  for every `dt`, `a_log` (ρ(Ā) < 1 by construction), which shrinks `M` but does not by itself make
  the loop contract when the layers expand; concat and convex injections help exactly when
  `|W_h| < 1`, `|α₂| < 1`."""

_PRE = """\
- **Drift, not a fixed point, without an outer norm.** Each branch sees only `N(x)`, the direction
  of the state (in one dimension at ε = 0 its sign), so far from the origin every layer adds the same
  vector each loop: the residual stream grows linearly with the derived **drift velocity** (per
  loop, for each sign of the state; the drift is consistent where the velocity points the same way
  as the state). Cosine-based convergence then looks perfect while distances grow \
(docs/background.md, Norm placements).
- **Which multiplier is pinned.** The norm's Jacobian kills the radial direction (`J_N x = 0`), so a
  pre-norm layer's Jacobian `I + α J_F J_N` has multiplier **exactly 1** along the state: nothing in
  the layers contracts the length of the residual stream. Only the injection can: with no or
  additive injection (`Ā = 1`) there is no attracting fixed point away from cancellations, and the
  sweeps below show drift; concat, diagonal (Parcae) and convex injections multiply the stream by
  `Ā` with `|Ā| < 1` here, which turns the drift into a fixed point (a cyclic one: the layers still
  move the state).
- **An outer norm** (`pre_outer`, the looped transformers of Yang et al.) renormalises after every
  loop: the state stays on the sphere, the radial multiplier becomes **0** instead of 1, and there is
  no drift. In one dimension the state is `±1` and the block either settles on a sign or flips.
- **Architecture.** Looped pre-norm blocks without an outer norm need a contracting injection
  (Parcae, FPRM) or they drift; retrofitted models with a concat adapter are safe when the
  adapter's state part `W_h` contracts."""

_POST = """\
- **Bounded by construction.** The step ends in `N`, so the state stays on the sphere (`|x| = √d`
  for RMSNorm; `±1` in one dimension). Divergence and drift are impossible; the question is only
  *which* point or cycle on the sphere attracts.
- **Which multiplier is pinned.** Scale invariance `N(c x) = N(x)` (c > 0) pins the multiplier of the
  radial direction at **0**: `J_N x = 0` (docs/background.md, Norm placements). In one dimension \
that is the only multiplier,
  so every fixed point that exists is super-stable (loop Jacobian 0).
- **Post-norm without injection is the normalised power method.** With linear layers commuting with
  eigen-directions, one loop multiplies direction i by `μ_i = Π_ℓ (1 + α λ_{ℓ,i})` and renormalises:
  the state aligns with the direction of the largest `|μ_i|`. A positive dominant `μ` gives a fixed
  point; a negative one flips the sign every loop (**period 2**); a complex dominant pair rotates the
  state (quasi-periodic or periodic), the regime a real-eigenvalue derivation cannot represent. The
  power-method derivation is in \
[known answers](known_answers.md#post-norm-without-injection-the-normalised-power-method).
- **Vanishing versus cyclic.** A layer with `1 + α w_ℓ > 0` maps the normalised state to itself
  (it *vanishes* there); a layer with `1 + α w_ℓ < 0` flips it, so the stage points differ.
- **Architecture.** Post-norm trades explosion for sign/rotation dynamics: to converge, the
  dominant loop eigenvalue must be positive and real; injection adds a constant that breaks the
  sign symmetry and usually selects one fixed point."""

_SANDWICH = """\
- **Huginn's placement.** `N(x + α F(N(x)))`: a norm on the branch input *and* on the residual stream.
  Like post-norm the state is bounded (the step ends in `N`) and the radial multiplier is pinned at
  **0** by scale invariance; like pre-norm the branch sees only the direction of the state.
- **One dimension.** At ε = 0 the stage is `sign(x + α w sign(x))`: each layer either keeps the
  sign (`1 + α w > 0`, the layer vanishes there) or flips it. The sympy solver cannot close the
  fixed-point equations of these piecewise maps with injection, so the derivation falls back to the
  numeric spectral condition (stated in its notes); the sweeps agree with it away from the
  boundaries.
- **Architecture.** Sandwich norms make looping safe against explosion and drift at any residual
  scale; with the concat adapter (Huginn) the fixed point is cyclic: every layer keeps its own
  point, the behaviour observed in the real model (README figure)."""

_PERI = """\
- **Ouro's placement.** `x + α N(F(N(x)))`: the branch output is normalised, so every layer adds a
  vector of fixed length `|α|·√d` to the residual stream (`±α` in one dimension). Without an outer
  norm this drifts like pre-norm, unless the additions cancel; the drift velocity is derived below.
- **Which multiplier is pinned.** The layer Jacobian `I + α J_N J_F J_N` has multiplier **1** along
  the state (both norms kill the radial direction): as for pre-norm only the injection can contract
  the length of the stream.
- **The outer norm** (`peri_outer`, Ouro renormalises after every loop) pins the radial multiplier
  at **0** and bounds the state.
- **Architecture.** Peri-norm bounds each update but not the stream; pair it with an outer norm
  (as Ouro does) or a contracting injection."""

_SPHERE = """\
- **nGPT's hypersphere.** `N(N(x) + α (N(F(x)) − N(x)))`: the state and the branch output are both on
  the sphere and the step interpolates between them with weight α, then renormalises. The radial
  multiplier is pinned at **0**; nothing can drift or diverge.
- **One dimension.** Both points are `±1`: for `α < 1/2` the interpolation keeps the sign of the
  state (a fixed point; the layer vanishes when `w > 0`), for `α > 1/2` it follows the branch's sign,
  and a negative weight then flips the state every layer. The derived condition below states it.
- **Architecture.** α is an interpolation weight, not a residual scale: the regime is decided by
  which side of `α = 1/2` (in general, of the eigen-directions' balance) the block sits, not by
  the weights' size."""

FAMILIES = (
    Family("no_norm", "No normalization", (("none", INJECTIONS),), "`X + α F(X)`", _NO_NORM),
    Family("pre_norm", "Pre-norm (with and without an outer norm)",
           (("pre", INJECTIONS), ("pre_outer", ("none", "additive"))),
           "`X + α F(N(X))`; `pre_outer` adds `N(X)` after the whole loop", _PRE),
    Family("post_norm", "Post-norm",
           (("post", INJECTIONS), ("post", ("none", "additive"), DEEPNORM_SKIP)),
           "`N(X + α F(X))` (`N(s X + α F(X))` in the `skip_scale` sections: "
           "DeepNorm's `s = (2k)^{1/4} = √2`)",
           _POST),
    Family("sandwich", "Sandwich norm (Huginn)", (("sandwich", INJECTIONS),), "`N(X + α F(N(X)))`",
           _SANDWICH),
    Family("peri_norm", "Peri-norm (Ouro, with and without the outer norm)",
           (("peri", INJECTIONS), ("peri_outer", ("none", "additive"))),
           "`X + α N(F(N(X)))`; `peri_outer` adds `N(X)` after the whole loop", _PERI),
    Family("sphere", "Hypersphere (nGPT)", (("sphere", INJECTIONS),),
           "`N(N(X) + α (N(F(X)) − N(X)))` (unit gains)", _SPHERE),
)

_INJECTION_TEXT = {
    "none": "no injection stage; the start state is the input `e`",
    "additive": "`u = X + β e`",
    "concat": "`u = W_h X + β W_e e` (the concat adapter; here `W_h = 1/2`, `W_e = 1`)",
    "diagonal": "`u = D X + β Δ (B e)`, `Δ = softplus(dt)`, `D = exp(−Δ e^{a_log})` (Parcae; here `dt = 0`, "
                "`a_log = 0`, so `Δ = ln 2`, `D = 1/2`, `B = 1`)",
    "convex": "`u = α₂ X + β β₂ e` (FPRM; here `α₂ = β₂ = 1/2`)",
    "gate": "`u = X ⊙ β e` (Huginn's multiplicative option; here `e = 1`, so `u = β X`). With `|β| < 1` "
            "the gate can drive the state to 0, where a norm with `ε = 0` is 0/0: the sweep reports such "
            "cells `divergent` (not finite), while the derivation, which divides the zero out, may not",
    "additive_norm": "`u = N(X + β e)` (the LT_i variant of fully looped transformers; gain 1)",
    "additive_each_layer": "no injection stage; every layer adds `β e` to its input first "
                           "(looped transformers' add-inputs option, FLT_res)",
}


def section_model(norm, injection, residual_scale=ALPHA, injection_scale=BETA, skip_scale=1.0):
    """The scalar model of one section: a ``BlockSpec`` with fixed weights and symbolic scales.

    Two linear layers (``w0 = 1/2``, ``w1 = −3/2``), one token of width 1, input ``e = 1``, exact
    scale invariance (``norm_eps = 0``), the injection weights of :data:`INJECTION_WEIGHTS`.

    Parameters
    ----------
    norm, injection : str
        ``BlockSpec.norm`` and ``BlockSpec.injection``.
    residual_scale, injection_scale : sympy symbol or float
        Symbols for :func:`dynloop.symbolic.derive`, numbers for :func:`dynloop.sweep`.
    skip_scale : sympy expression or float
        ``BlockSpec.skip_scale`` (exact for ``derive``, a float for ``sweep``).

    Returns
    -------
    BlockSpec

    Examples
    --------
    >>> derive(section_model("none", "additive")).conditions
    [Abs(3*alpha**2/4 + alpha - 1) < 1]
    """
    if injection not in INJECTION_WEIGHTS:
        raise invalid("injection", injection, "expected one of " + ", ".join(repr(i) for i in INJECTIONS))
    weights = {"linear": [[[w]] for w in LAYER_WEIGHTS], **INJECTION_WEIGHTS[injection]}
    return BlockSpec(width=1, tokens=1, layers=len(LAYER_WEIGHTS), mixer="linear", norm=norm, norm_kind="rms",
                     norm_eps=0.0, injection=injection, residual_scale=residual_scale,
                     injection_scale=injection_scale, skip_scale=skip_scale, weights=weights, inputs=[[1.0]],
                     state_init="input")


def _axes(injection):
    if not components.INJECTIONS[injection].injects:
        return {"residual_scale": ALPHAS_1D}
    return {"residual_scale": ALPHAS, "injection_scale": BETAS}


# ----------------------------------------------------------------------------- theory against numerics
def _percent(x):
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f} %"


def _check_text(result):
    outside = int(np.count_nonzero(result.covered & ~result.near_boundary))
    return (f"theory predicts a regime on {_percent(result.coverage)} of the {result.predicted.size} cells; "
            f"agreement {_percent(result.agreement)} on all predicted cells, "
            f"**{_percent(result.agreement_outside_band)}** outside a {result.band}-cell band around the "
            f"predicted boundaries ({outside} cells)")


def _regime_counts(codes):
    values, counts = np.unique(np.asarray(codes), return_counts=True)
    return ", ".join(f"{Regime.from_code(int(v)).value} {c}" for v, c in zip(values, counts))


# ----------------------------------------------------------------------------- figures
def _new_figure(panels):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ncols = min(3, panels)
    nrows = -(-panels // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(3.3 * ncols + 1.4, 2.7 * nrows + 0.3), squeeze=False,
                             layout="constrained")
    for spare in grid.ravel()[panels:]:
        spare.remove()
    return fig, list(grid.ravel()[:panels])


def _draw_panel(ax, diagram, derivation, title):
    diagram.plot(ax=ax)
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    if diagram.ndim == 1:
        label = ax.get_ylabel()
        ax.set_ylabel("")
        derivation.overlay(ax, x="residual_scale")
        ax.set_ylabel(label)
    else:
        derivation.overlay(ax, x="residual_scale", y="injection_scale")
    ax.set_title(title, fontsize="small")


def _finish_figure(fig, codes, path, title):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from dynloop.plotting import REGIME_COLOURS

    present = {int(c) for c in codes}
    handles = [Patch(facecolor=REGIME_COLOURS[r.value], edgecolor="0.35", linewidth=0.5, label=r.value)
               for r in Regime if r.code in present]
    handles += [Line2D([], [], color=c, ls=ls, label=f"{k} boundary")
                for k, c, ls in (("fold", COLOURS["fold"], "-"), ("flip", COLOURS["flip"], "-"))]
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize="small")
    fig.suptitle(title, fontsize="medium")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72, metadata={"Software": None})
    plt.close(fig)


# ----------------------------------------------------------------------------- documents
def _demote(markdown, levels=1):
    return "\n".join(("#" * levels + line) if line.startswith("#") else line
                     for line in markdown.splitlines())


def _skip_text(skip=1):
    return "" if skip == 1 else f", `skip_scale={sympy.sstr(skip)}`"


def _section(norm, injection, log, skip=1):
    derivation = derive(section_model(norm, injection, skip_scale=skip), budget=BUDGET)
    numeric_spec = section_model(norm, injection, 0.0, 0.0, float(skip))
    diagram = sweep(numeric_spec, _axes(injection), loops=LOOPS, progress=False)
    result = derivation.check(diagram, band=BAND)
    log(f"  {norm}{_skip_text(skip)}/{injection}: closed={derivation.closed}, "
        f"{result.summary().splitlines()[-1].strip()}")
    condition = "closed form" if derivation.closed else "numeric spectral condition"
    cells = " × ".join(str(len(v)) for v in diagram.axes.values())
    lines = [f"### `norm=\"{norm}\"`{_skip_text(skip)}, injection `{injection}`", "",
             f"Injection: {_INJECTION_TEXT[injection]}.", "",
             _demote(derivation.markdown()), "",
             f"**Against the numerics** ({condition}; sweep of the same model, {cells} cells over "
             + ", ".join(f"`{k}` ∈ [{v[0]:g}, {v[-1]:g}]" for k, v in diagram.axes.items())
             + f", {LOOPS} loops): {_check_text(result)}.", "",
             f"Simulated: {_regime_counts(diagram.regimes)}. "
             f"Predicted: {_regime_counts(result.predicted)}.", ""]
    title = f"{norm}{' s=' + sympy.sstr(skip) if skip != 1 else ''} / {injection}"
    return lines, (diagram, derivation, title)


def _family_document(family, outdir, figures, log):
    lines = [f"# {family.title}", "", _GENERATED, "",
             "## The model", "",
             f"One sub-layer is {family.update} (MODEL.md, norm placement table), with the RMSNorm",
             "`N(x) = x / sqrt(mean(x²) + ε)` (gain 1). One loop is the injection stage (if any), then the",
             "k layers in order, then the outer norm (`*_outer` only). The loop Jacobian is the product of",
             "the stage Jacobians in stage order, `J_S ⋯ J_1`, each at its own stage input; the fixed point",
             "is stable iff every root of its characteristic polynomial lies inside the unit circle (Jury).",
             "", "## Assumptions", "", _ASSUMPTIONS, "",
             "## What it means for architecture choices", "", family.meaning, ""]
    for norm, injections, *skip in family.placements:
        skip = skip[0] if skip else 1
        panels = []
        lines += [f"## `norm=\"{norm}\"`{_skip_text(skip)}", ""]
        for injection in injections:
            section, panel = _section(norm, injection, log, skip)
            lines += section
            panels.append(panel)
        name = f"figures/{norm}{'_skip' if skip != 1 else ''}.png"
        lines += [f"![{norm}: derived boundaries on the numeric phase diagrams]({name})", "",
                  f"*Numeric phase diagrams of the `{norm}` sections above (colours: the sweep's regimes), "
                  "with the derived fold (black) and flip (red) boundaries drawn where a closed form "
                  "exists.*", ""]
        if figures:
            fig, axes = _new_figure(len(panels))
            codes = set()
            for ax, (diagram, derivation, title) in zip(axes, panels):
                _draw_panel(ax, diagram, derivation, title)
                codes |= set(np.unique(diagram.regimes).tolist())
            _finish_figure(fig, codes, outdir / name, f"norm={norm}: sweep (colours) and derived boundaries")
    return "\n".join(lines).rstrip() + "\n"


_GENERATED = (f"*Generated by `{COMMAND}` from `dynloop.symbolic.derive` and checked against "
              "`dynloop.sweep`; do not edit by hand (`tests/symbolic/test_theory.py` fails when this file "
              "is stale).*")

_ASSUMPTIONS = """\
- One token (`T = 1`): the linear mixer acts on each token's row separately, so nothing is lost.
- Width `d = 1` (the scalar structure): a weight matrix is its eigenvalue. Without norms this is
  exact per eigenvalue for commuting weights (`structure="diagonal"`); norms couple the
  eigen-directions, so with norms the one-dimensional model is a model, not a reduction.
- Two linear layers, `w0 = 1/2`, `w1 = −3/2` (k = 2), input `e = 1`, start state `e`.
- `ε = 0` and gains 1: exact scale invariance, so in one dimension `N(x) = sign(x)`.
- Symbols: `alpha` is the residual scale α (`residual_scale`), `beta` the injection strength β
  (`injection_scale`). The sweeps vary exactly these two over a 24 × 24 grid (48 cells of α without
  injection), with the same weights, and classify every cell after at most 1000 loops.
- Agreement is counted on the cells where the theory predicts a regime, and again leaving out the
  cells within two cells of a predicted boundary (where finite loop budgets blur the regimes).
- "Otherwise" in a derivation is what the theory predicts where no derived branch is stable:
  `divergent` for unnormalised linear loops, `undetermined` where it makes no prediction."""


# ----------------------------------------------------------------------------- known answers
def _known_answers(outdir, figures, log):
    z, tau, delta = sympy.Symbol("z"), *sympy.symbols("tau delta", real=True)
    lines = ["# Known answers", "", _GENERATED, "",
             "The closed forms dynloop's derivations must reproduce exactly (symbolic equality; the tests in",
             "`tests/symbolic/test_symbolic.py` assert each), derived here by the same `derive` calls.", ""]

    lines += ["## The 2-D Jury triangle", "",
              "A real 2 × 2 loop Jacobian with trace τ and determinant δ has characteristic polynomial",
              "`z² − τ z + δ`. `jury(z**2 - tau*z + delta, z)` gives the stability triangle",
              "", "$$" + r" \quad ".join(sympy.latex(c) for c in jury(z**2 - tau * z + delta, z)) + "$$", "",
              "and `boundary_equations` its three edges: "
              + ", ".join(f"{k} ${sympy.latex(sympy.Eq(v, 0))}$"
                          for k, v in boundary_equations(z**2 - tau * z + delta, z).items()) + ".", ""]

    affine = derive(Scheme(norm="none", injection="concat", layers=2), budget=BUDGET)
    lines += ["## Affine loop: converges iff ρ(Π_j A_j) < 1", "",
              "A linear block without norms is an affine loop; its loop Jacobian is the product of the stage",
              "Jacobians in stage order, and it converges iff that product's spectral radius is below 1. "
              "With",
              "the concat adapter (`h` its state weight, `u` its input weight) and two scalar layers:", "",
              _demote(affine.markdown()), ""]

    residual = derive(Scheme(norm="none", injection="none"), structure="diagonal", budget=BUDGET)
    lines += ["## Residual block: |1 + α a| < 1 per eigenvalue", "",
              "The block `x + α A x` converges iff `|1 + α a| < 1` for every eigenvalue `a` of `A`",
              "(`structure=\"diagonal\"`, one eigenvalue `lambda0`):", "",
              _demote(residual.markdown()), ""]

    try:
        power_text = _demote(derive(Scheme(norm="post", injection="none"), structure="diagonal",
                                    params={"lambda0_1": 1, "lambda0_2": -3}, budget=BUDGET).markdown())
    except TypeError as error:  # sympy's charpoly cannot order an Abs in the power-method branch
        power_text = ("*Not derived: `derive(Scheme(norm=\"post\"), structure=\"diagonal\")` currently "
                      f"raises `TypeError: {error}` inside sympy's characteristic polynomial. The expected "
                      "result: the fixed point along direction 1 exists iff μ₁ > 0 and attracts iff "
                      "|μ₂| < |μ₁|; the sign-flip 2-cycle along direction 1 iff μ₁ < 0 and |μ₂| < |μ₁| "
                      "(and likewise for direction 2); the radial multiplier is 0. The sweep of "
                      "`norm=\"post\"` without injection in [post_norm](post_norm.md) checks the "
                      "one-dimensional case.*")
    lines += ["## Post-norm without injection: the normalised power method", "",
              "Two eigen-directions with eigenvalues `lambda0_1 = 1`, `lambda0_2 = −3`: direction i grows by",
              "`μ_i = 1 + α λ_i` per loop and the norm rescales, so the direction of the larger `|μ_i|` "
              "wins;",
              "a fixed point if its `μ` is positive, a sign-flip 2-cycle if negative (a complex pair, not",
              "representable by real eigenvalues, rotates).", "",
              power_text, ""]

    parcae = derive(Scheme(norm="none", injection="diagonal"), budget=BUDGET)
    decay = parcae.stages[0].jacobian[0]
    dt, a_log = sympy.Symbol("dt", real=True), sympy.Symbol("a_log", real=True)
    exponent = sympy.log(1 + sympy.exp(dt)) * sympy.exp(a_log)
    lines += ["## Parcae's diagonal injection always contracts", "",
              f"The injection stage's Jacobian is ${sympy.latex(decay)}$: the exponent "
              f"${sympy.latex(exponent)}$ is positive for every real `dt`, `a_log` "
              f"(sympy: `is_positive` = {exponent.is_positive}), so `0 < Ā < 1` and ρ(Ā) < 1 by "
              "construction.",
              "The whole loop still needs the layers not to undo it (see [no_norm](no_norm.md)).", ""]

    logistic1 = derive(maps.logistic(), budget=BUDGET)
    logistic2 = derive(maps.logistic(), period=2, budget=BUDGET)
    henon1 = derive(maps.henon(), budget=BUDGET)
    henon2 = derive(maps.henon(), period=2, budget=BUDGET)
    lines += ["## Logistic map: fixed point and 2-cycle", "",
              "Known: the fixed point `(r − 1)/r` is stable for `1 < r < 3`; the 2-cycle exists for `r > 3`",
              "and is stable for `3 < r < 1 + √6`, its multiplier is `4 + 2r − r²`.", "",
              _demote(logistic1.markdown()), "", _demote(logistic2.markdown()), ""]
    lines += ["## Hénon map: fixed point and 2-cycle as functions of (a, b)", "",
              "Known: the fixed point exists for `a > −(1 − b)²/4` (fold) and loses stability by a flip at",
              "`a = 3(1 − b)²/4`, where the 2-cycle is born; the 2-cycle flips at "
              "`a = (1 − b)² + (1 + b)²/4`.", "",
              _demote(henon1.markdown()), "", _demote(henon2.markdown()), ""]

    r_axis = {"r": np.linspace(0.5, 3.4, 48)}
    ab_axes = {"a": np.linspace(-0.1, 1.2, 24), "b": np.linspace(-0.4, 0.4, 24)}
    logistic_diagram = sweep(maps.logistic(), r_axis, loops=4000, progress=False)
    henon_diagram = sweep(maps.henon(), ab_axes, loops=4000, progress=False)
    checks = [("logistic, fixed point and 2-cycle", logistic2, logistic_diagram),
              ("Hénon, fixed point and 2-cycle", henon2, henon_diagram)]
    lines += ["## Against the numerics", ""]
    for title, derivation, diagram in checks:
        result = derivation.check(diagram, band=BAND)
        log(f"  {title}: {result.summary().splitlines()[-1].strip()}")
        lines += [f"- {title} ({' × '.join(str(len(v)) for v in diagram.axes.values())} cells, "
                  + ", ".join(f"`{k}` ∈ [{v[0]:g}, {v[-1]:g}]" for k, v in diagram.axes.items())
                  + f", 4000 loops): {_check_text(result)}."]
    lines += ["", "![known answers against sweeps](figures/known_answers.png)", "",
              "*The logistic map over r and the Hénon map over (a, b): the sweep's regimes, with the derived "
              "fold (black), flip (red) and Neimark–Sacker (blue) boundaries.*", ""]
    if figures:
        fig, axes = _new_figure(2)
        codes = set()
        for ax, (title, derivation, diagram) in zip(axes, checks):
            diagram.plot(ax=ax)
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            if diagram.ndim == 1:
                ax.set_ylabel("")
                derivation.overlay(ax, x="r")
            else:
                derivation.overlay(ax, x="a", y="b")
            ax.set_title(title, fontsize="small")
            codes |= set(np.unique(diagram.regimes).tolist())
        _finish_figure(fig, codes, outdir / "figures/known_answers.png",
                       "Known answers: sweeps and derived boundaries")
    return "\n".join(lines).rstrip() + "\n"


def digested_files():
    """The files :func:`source_digest` reads: ``dynloop/symbolic/*.py``, the component registry whose
    sympy forms the stages are built from (``dynloop/components.py``), and this tool.

    Examples
    --------
    >>> [p.name for p in digested_files()][-1], "derive.py" in [p.name for p in digested_files()]
    ('build_theory.py', True)
    """
    return (sorted((ROOT / "dynloop" / "symbolic").glob("*.py")) + [ROOT / "dynloop" / "components.py"]
            + [Path(__file__).resolve()])


def source_digest():
    """Digest of the sources the documents are derived and written by (:func:`digested_files`).

    The index records it, so a fast test can tell that the symbolic code (or this tool) changed
    since theory/ was generated without regenerating it (the full byte-for-byte check is a slow test).

    Examples
    --------
    >>> len(source_digest())
    16
    """
    digest = hashlib.sha256()
    for path in digested_files():
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
    return digest.hexdigest()[:16]


def _index(documents):
    lines = ["# theory/", "", _GENERATED, "", f"Source digest: `{source_digest()}`.", "",
             "When does a looped block converge, to a vanishing or a cyclic fixed point, and when does it",
             "drift, flip or diverge instead? Each document below derives it symbolically with",
             "`dynloop.symbolic.derive` for one normalization family, with one section per injection scheme",
             f"({', '.join(INJECTIONS)}), and checks the result against a numeric phase",
             "diagram of the same model (`dynloop.sweep`), quoting the agreement.", "",
             "| document | placements | agreement outside the boundary band, per injection |",
             "|---|---|---|"]
    for family, summary in documents:
        lines.append(f"| [{family.title}]({family.slug}.md) | "
                     + ", ".join(dict.fromkeys(f"`{n}`" for n, *_ in family.placements)) + f" | {summary} |")
    lines += ["| [Known answers](known_answers.md) | — | affine loop, residual block, power method, Parcae, "
              "logistic, Hénon, 2-D Jury triangle |", "",
              "The model is defined exactly in [`dynloop/systems/MODEL.md`](../dynloop/systems/MODEL.md);",
              "the norms', injections' and regimes' background is in "
              "[`docs/background.md`](../docs/background.md).",
              "Regenerate everything from the repository's root with", "", "```bash",
              f"{COMMAND} theory      # --no-figures: Markdown only; --jobs N: N processes",
              "```", "",
              "and print one derivation with `dynloop theory norm=pre injection=additive layers=2` "
              "(see `dynloop",
              "theory --help`).", ""]
    return "\n".join(lines)


def _build_one(task):
    """One document (runs in a worker process when ``jobs > 1``): its text and its log lines."""
    slug, outdir, figures = task
    messages = [f"{slug}:"]
    if slug == "known_answers":
        return _known_answers(outdir, figures, messages.append), messages
    family = next(f for f in FAMILIES if f.slug == slug)
    return _family_document(family, outdir, figures, messages.append), messages


def build(outdir, *, figures=True, verbose=False, jobs=1):
    """Generate the theory documents (and figures) into ``outdir``.

    Parameters
    ----------
    outdir : str or Path
        Output folder (the repository's ``theory/`` to update it); figures go to ``outdir/figures``.
    figures : bool
        Render the PNG figures. The Markdown is the same either way (the sweeps behind the quoted
        agreement numbers always run), so a staleness check can skip them.
    verbose : bool
        Print one line per section with its agreement.
    jobs : int
        Worker processes (one document each); the output does not depend on it.

    Returns
    -------
    dict
        File name (relative to ``outdir``) to the Markdown text written.

    Examples
    --------
    >>> [f.slug for f in FAMILIES]
    ['no_norm', 'pre_norm', 'post_norm', 'sandwich', 'peri_norm', 'sphere']
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    log = print if verbose else (lambda *a, **k: None)
    written = {}
    tasks = [(family.slug, outdir, figures) for family in FAMILIES] + [("known_answers", outdir, figures)]
    if jobs > 1:
        import concurrent.futures
        import multiprocessing

        # spawn, not fork: a process that has run parallel kernels has threads a fork would copy
        # half-way (the slow staleness test, after other tests, broke its pool that way)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            texts = list(pool.map(_build_one, tasks))
    else:
        texts = [_build_one(task) for task in tasks]
    for (slug, *_), (text, messages) in zip(tasks, texts):
        for message in messages:
            log(message)
        written[f"{slug}.md"] = text
    summaries = [(family, _family_summary(written[f"{family.slug}.md"])) for family in FAMILIES]
    written["README.md"] = _index(summaries)
    for name, text in written.items():
        (outdir / name).write_text(text, encoding="utf-8")
    return written


def _family_summary(text):
    """``injection: xx.x %`` per section, read back from the generated document."""
    parts, heading = [], None
    for line in text.splitlines():
        if line.startswith("### `norm="):
            heading = line.split("`")[1].split('"')[1] + "/" + line.split("injection `")[1].rstrip("`")
        elif line.startswith("**Against the numerics**") and heading:
            value = line.split("**")[3]
            parts.append(f"{heading} {value}")
    return ", ".join(parts)


def main(argv=None):
    """``python tools/build_theory.py OUTDIR [--no-figures] [--jobs N]``; returns the exit status."""
    import argparse

    parser = argparse.ArgumentParser(prog=COMMAND, description="Generate the theory/ documents and figures "
                                     "into OUTDIR (the repository's theory/ to update it).")
    parser.add_argument("outdir", metavar="OUTDIR", help="output folder, e.g. theory (required: nothing is "
                        "written into the source tree unless named)")
    parser.add_argument("--no-figures", action="store_true", help="write the Markdown only")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    args = parser.parse_args(argv)
    written = build(args.outdir, figures=not args.no_figures, verbose=True, jobs=args.jobs)
    print(f"wrote {len(written)} documents to {args.outdir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
