"""``dynloop.analyze``: every metric of a loop recording in one object."""

__all__ = ["analyze", "LoopAnalysis"]

import json
from pathlib import Path

import numpy as np

from .._errors import check_choice, check_real, invalid
from .._json import jsonable
from ..dynamics._measures import stage_degeneracy
from ..dynamics.recording import LoopRecording
from ..dynamics.simulate import Trajectory, simulate
from . import metrics
from .stages import detect_stages, profile_correlations, relative_depth
from .tokens import TOKEN_CLASSES, classify_tokens, token_cosines, token_sensitivity

#: what ``LoopAnalysis.plot`` draws
PLOT_KINDS = ("distances", "metrics", "similarity", "pca", "profiles", "attention")
#: the stage metrics of a profile, in order (the first three need attention)
PROFILE_METRICS = ("colsum_concentration", "sink_rate", "mixing", "residual_entropy")


def _as_recording(value, field):
    if isinstance(value, LoopRecording):
        return value
    if isinstance(value, Trajectory):
        return value.recording()
    raise invalid(
        field,
        type(value).__name__,
        "expected a dynloop.LoopRecording or a dynloop.Trajectory (dynloop.load_recording reads a file)",
    )


def _cosines(a, b):
    """Cosine between matching states of ``a`` and ``b`` (each state ``T × d``); 1 for zeros."""
    return metrics.cosines(a, b, (-2, -1))


def _min_cos_to_first(items):
    """``min_{j != 1} cos(item_1, item_j)`` (1.0 for a single item)."""
    if len(items) < 2:
        return 1.0
    return float(np.min(_cosines(items[:1], items[1:])))


def _stage_metrics(rec, sink_threshold):
    """A recording's stage metrics by name, its profiles' names and its profiles (metrics, loops, layers)."""
    values = {"residual_entropy": metrics.residual_entropy(rec.layer_states)}
    profiles = dict(values)
    if rec.attention is not None:
        values["colsum_concentration"] = metrics.colsum_concentration(rec.attention)
        values["sink_score"] = metrics.sink_scores(rec.attention, int(rec.meta.get("sink_position", 0)))
        values["sink_rate"] = np.mean(values["sink_score"] >= sink_threshold, axis=-1)
        values["mixing"] = metrics.mixing(rec.attention)
        profiles.update(colsum_concentration=values["colsum_concentration"].mean(axis=-1),
                        sink_rate=values["sink_rate"], mixing=values["mixing"].mean(axis=-1))
    names = tuple(name for name in PROFILE_METRICS if name in profiles)
    return values, names, np.stack([profiles[name] for name in names])


class LoopAnalysis:
    """The metrics of one loop recording: convergence, similarity, attention, stages, tokens.

    Built by :func:`dynloop.analyze`. Loops ``t = 0 ... L−1`` are the recorded loops; "stages" are
    the recording's ``S + 1`` stage states (the entering state, then each stage); "layers" its
    layer stages; heads and ``T`` as in the attention.

    Attributes
    ----------
    recording : LoopRecording
        What was analysed.
    tol : float
        The tolerance used: relative for states, absolute (Frobenius) for attention matrices.
    successive_difference, successive_cosine : ndarray, shape (loops − 1, stages)
        ``‖X_{t,j} − X_{t−1,j}‖_F`` and ``cos(X_{t,j}, X_{t−1,j})``; row ``t − 1`` is loop ``t``.
    fixed_points : ndarray, shape (stages, T, d)
        The per-stage states of the last loop, standing in for the per-stage fixed points.
    fixed_point_drift : ndarray, shape (stages,)
        How far a doubled horizon moves each of them, over the largest fixed-point norm:
        simulated when the recording comes from a block (``fixed_point_drift_method ==
        "simulated"``), else extrapolated from the decay of the last successive differences
        (``"extrapolated"``). Below ``tol`` everywhere: ``converged`` is True.
    converged : bool
    distance_to_fixed_point, cosine_to_fixed_point : ndarray, shape (loops, stages)
        ``‖X_{t,j} − X*_j‖_F`` and ``cos(X_{t,j}, X*_j)``.
    degeneracy : dict
        ``min_cos``: ``min_{j≠1} cos(X*_1, X*_j)`` over the layer points (near 1: one shared
        point); ``max_step`` and ``max_step_relative``: the largest distance between consecutive
        stage points (around the loop), absolute and over the state scale; ``distinct``: how many
        layer points differ by more than ``tol``; ``basis``: ``"fixed points"``, or ``"drift
        directions"`` when the recording has not converged, where ``min_cos`` is over the
        directions of the last loop's layer states and ``increment_min_cos`` over those of their
        last increments ``X_{L−1,j} − X_{L−2,j}``.
    state_similarity, attention_similarity : ndarray, shape (loops·layers, loops·layers)
        ``1 − ‖a − b‖_F / (‖a‖_F + ‖b‖_F)`` between every two (loop, layer) entries, in loop-major
        order (entry ``t·layers + l``): layer states, and attention matrices with all heads
        (``None`` without attention).
    diagonal_band_score : dict
        ``{"state": float, "attention": float}``: the fraction of (loop, layer) entries whose most
        similar entry in another loop is the same layer (1 for the diagonal bands of a cyclic
        fixed point); NaN where not computable.
    attention_change : ndarray, shape (loops − 1, layers, heads)
        ``‖A_{t,l,h} − A_{t−1,l,h}‖_F``.
    attention_stable_at : ndarray of int, shape (layers, heads)
        The first loop ``t`` from which every later change stays below ``tol``
        (``attention_change[s] < tol`` for all ``s ≥ t``, row ``s`` comparing loops ``s`` and
        ``s + 1``); −1 when the last change is still above it.
    bound_check : dict or None
        The attention bound (Prop. 4.2, :func:`dynloop.analysis.metrics.attention_bound`):
        ``"bound"`` and ``"observed"`` (loops − 1, layers, heads), ``"kappa"`` (layers, heads),
        ``"violations"`` (layers,) (observed above the bound beyond rounding), ``"tightness"``
        (layers,) (the largest observed / bound), ``"inputs"`` (where the attention inputs came
        from). None without query and key weights.
    colsum_concentration, sink_score, mixing : ndarray, shape (loops, layers, heads)
        Per head (None without attention).
    sink_rate : ndarray, shape (loops, layers)
        The fraction of heads whose sink score is at least ``sink_threshold``.
    residual_entropy : ndarray, shape (loops, layers)
        The eigenvalue entropy of each layer output's token Gram matrix.
    profile_metrics : tuple of str
        The metrics of ``stage_profiles``, in order.
    relative_depth : ndarray, shape (layers,)
        ``(l + 1/2) / layers``.
    stage_profiles : ndarray, shape (metrics, loops, layers)
        Each metric (head-averaged) against relative depth, for every loop.
    profile_repeat : ndarray, shape (loops, metrics)
        Correlation of each loop's profile with the last loop's: 1 on every row when the loops
        repeat the same stages.
    profile_correlation : ndarray, shape (loops, metrics), or None
        Correlation of each loop's profile with the reference's (interpolated to the same relative
        depths; NaN for a metric the reference lacks). None without ``reference``.
    reference_metrics : tuple of str, reference_profiles : ndarray, shape (metrics, loops, layers)
        The reference's stage profiles (None without ``reference``).
    stages : StageDetection
        Communities of (loop, layer) positions and what they follow.
    token_cosines : ndarray, shape (T, loops)
        ``cos`` between each token's last-layer output in every loop and in the last loop.
    token_classes : ndarray of str, shape (T,)
        fixed_point, orbit, slider or unknown (:func:`dynloop.analysis.tokens.classify_tokens`).
    token_sensitivity : dict
        Class counts over a grid of ``tau`` and ``rho`` around the ones used.
    depth_norms : ndarray, shape (depth,)
        ``‖X‖_F`` along the realised depth: prelude layers, every loop's layers, coda layers.

    Examples
    --------
    >>> import dynloop
    >>> spec = dynloop.BlockSpec(width=8, tokens=3, layers=2, mixer="mlp", residual_scale=0.3)
    >>> result = dynloop.analyze(dynloop.simulate(spec, 60))
    >>> result.distance_to_fixed_point.shape, result.degeneracy["distinct"]
    ((60, 4), 2)
    """

    def __init__(
        self, recording, *, reference=None, tol=None, sink_threshold=0.3, token_tau=0.05, token_rho=0.9
    ):
        self.recording = recording
        self.reference = reference
        self.tol = tol
        self.sink_threshold = sink_threshold
        self.token_tau, self.token_rho = token_tau, token_rho
        self._convergence()
        self._similarity()
        self._attention()
        self._stage_metrics()
        self._tokens()

    # ------------------------------------------------------------------ convergence
    def _convergence(self):
        rec = self.recording
        states = rec.stage_states.astype(np.float64)
        self.successive_difference = metrics.frobenius_change(states)
        self.successive_cosine = _cosines(states[1:], states[:-1])
        self.fixed_points = states[-1]
        scale = max(float(np.max(np.linalg.norm(self.fixed_points, axis=(-2, -1)))), 1e-300)
        self.scale = scale
        self.distance_to_fixed_point = np.linalg.norm(states - self.fixed_points, axis=(-2, -1))
        self.cosine_to_fixed_point = _cosines(states, self.fixed_points[None])
        system = rec.system
        if system is not None:
            done = int(rec.meta.get("recorded_loops", [rec.loops - 1])[-1]) + 1
            later = simulate(system, done, x0=states[-1, -1], record=("last", 1))
            if later.diverged:
                self.fixed_point_drift = np.full(states.shape[1], np.inf)
            else:
                self.fixed_point_drift = (
                    np.linalg.norm(later.stage_states[-1] - self.fixed_points, axis=(-2, -1)) / scale
                )
            self.fixed_point_drift_method = "simulated"
        elif rec.loops >= 3:
            self.fixed_point_drift = metrics.geometric_remaining(self.successive_difference) / scale
            self.fixed_point_drift_method = "extrapolated"
        else:
            self.fixed_point_drift = np.full(states.shape[1], np.inf)
            self.fixed_point_drift_method = "too few loops to tell"
        self.converged = bool(np.all(self.fixed_point_drift <= self.tol))
        first = rec.layer_stages.start - 1  # stage_degeneracy counts stages after the entering state
        flat = self.fixed_points.reshape(self.fixed_points.shape[0], -1)
        distinct, min_cos, max_step = stage_degeneracy(flat, first, rec.layers, self.tol * scale)
        self.degeneracy = {
            "min_cos": float(min_cos),
            "max_step": float(max_step),
            "max_step_relative": float(max_step / scale),
            "distinct": int(distinct),
            "basis": "fixed points",
        }
        if not self.converged and rec.loops >= 2:
            layer_states = rec.layer_states.astype(np.float64)
            increments = layer_states[-1] - layer_states[-2]
            self.degeneracy.update(
                basis="drift directions",
                min_cos=_min_cos_to_first(layer_states[-1]),
                increment_min_cos=_min_cos_to_first(increments),
            )

    # ------------------------------------------------------------------ similarity
    def _similarity(self):
        rec = self.recording
        items = rec.layer_states.reshape(rec.loops * rec.layers, -1)
        self.state_similarity = metrics.relative_similarity(items)
        self.diagonal_band_score = {
            "state": metrics.diagonal_band(self.state_similarity, rec.loops, rec.layers),
            "attention": float("nan"),
        }
        self.attention_similarity = None
        if rec.attention is not None:
            items = rec.attention.reshape(rec.loops * rec.layers, -1)
            self.attention_similarity = metrics.relative_similarity(items)
            self.diagonal_band_score["attention"] = metrics.diagonal_band(
                self.attention_similarity, rec.loops, rec.layers
            )

    # ------------------------------------------------------------------ attention
    def _attention(self):
        rec = self.recording
        self.attention_change = self.attention_stable_at = self.bound_check = None
        if rec.attention is None:
            return
        change = metrics.frobenius_change(rec.attention)
        self.attention_change = change
        stable_at = metrics.settled_from(change >= self.tol, axis=0)  # every later change below tol
        self.attention_stable_at = np.where(stable_at == change.shape[0], -1, stable_at)
        if "attn_q" not in rec.meta or rec.loops < 2:
            return
        if "attention_inputs" in rec.meta:
            inputs, source = rec.meta["attention_inputs"], "recorded attention inputs (meta)"
        else:
            inputs, source = (
                rec.layer_inputs,
                "layer input states (exact only without a norm before attention)",
            )
        bound, kappa = metrics.attention_bound(inputs, rec.meta["attn_q"], rec.meta["attn_k"], rec.heads)
        rounding = 1e-9 * bound + 1e-12 * np.sqrt(rec.tokens)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(bound > 0, change / bound, np.where(change > rounding, np.inf, 0.0))
        self.bound_check = {
            "bound": bound,
            "observed": change,
            "kappa": kappa,
            "violations": np.sum(change > bound + rounding, axis=(0, 2)),
            "tightness": ratio.max(axis=(0, 2)),
            "inputs": source,
        }

    # ------------------------------------------------------------------ stage metrics and profiles
    def _stage_metrics(self):
        rec = self.recording
        values, self.profile_metrics, self.stage_profiles = _stage_metrics(rec, self.sink_threshold)
        for name in ("residual_entropy", "colsum_concentration", "sink_score", "sink_rate", "mixing"):
            setattr(self, name, values.get(name))
        self.relative_depth = relative_depth(rec.layers)
        self.profile_repeat = profile_correlations(self.stage_profiles, self.stage_profiles[:, -1])
        self.profile_correlation = self.reference_profiles = self.reference_metrics = None
        if self.reference is not None:
            _, names, profiles = _stage_metrics(self.reference, self.sink_threshold)
            self.reference_metrics, self.reference_profiles = names, profiles
            theirs_depth = relative_depth(self.reference.layers)
            self.profile_correlation = np.full((rec.loops, len(self.profile_metrics)), np.nan)
            for m, name in enumerate(self.profile_metrics):
                if name in self.reference_metrics:
                    mean = self.reference_profiles[self.reference_metrics.index(name)].mean(axis=0)
                    target = np.interp(self.relative_depth, theirs_depth, mean)
                    self.profile_correlation[:, m] = profile_correlations(
                        self.stage_profiles[m : m + 1], target[None]
                    )[:, 0]
        self.stages = detect_stages(self.stage_profiles)

    # ------------------------------------------------------------------ tokens and depth
    def _tokens(self):
        rec = self.recording
        self.token_cosines = token_cosines(rec.layer_states[:, -1])
        self.token_classes = classify_tokens(self.token_cosines, self.token_tau, self.token_rho)
        self.token_sensitivity = token_sensitivity(self.token_cosines, self.token_tau, self.token_rho)
        parts = [np.linalg.norm(rec.layer_states.reshape(-1, rec.tokens, rec.width), axis=(-2, -1))]
        if rec.prelude is not None:
            parts.insert(0, np.linalg.norm(rec.prelude, axis=(-2, -1)))
        if rec.coda is not None:
            parts.append(np.linalg.norm(rec.coda, axis=(-2, -1)))
        self.depth_norms = np.concatenate(parts)
        self.depth_parts = {
            "prelude": 0 if rec.prelude is None else rec.prelude.shape[0],
            "loops": rec.loops * rec.layers,
            "coda": 0 if rec.coda is None else rec.coda.shape[0],
        }

    # ------------------------------------------------------------------ presentation
    def token_counts(self):
        """``{class: count}`` of the token classes.

        Examples
        --------
        >>> import dynloop
        >>> spec = dynloop.BlockSpec(width=8, tokens=3, layers=2, mixer="mlp", residual_scale=0.3)
        >>> dynloop.analyze(dynloop.simulate(spec, 40)).token_counts()["fixed_point"]
        3
        """
        return {name: int(np.sum(self.token_classes == name)) for name in TOKEN_CLASSES}

    def summary(self):
        """What the recording does, in a page of text: convergence, degeneracy, attention, stages, tokens.

        Examples
        --------
        >>> import dynloop
        >>> spec = dynloop.BlockSpec(width=8, tokens=4, layers=3, mixer="transformer", heads=2,
        ...                          residual_scale=0.3)
        >>> print(dynloop.analyze(dynloop.simulate(spec, 60, record_attention=True)).summary())
        ... # doctest: +ELLIPSIS
        Loop analysis of ...: 60 loops, 3 layers, T = 4, d = 8, 2 heads.
        ...
        """
        rec = self.recording
        name = rec.meta.get("system_name", rec.meta.get("model", "a recording"))
        heads = f", {rec.heads} heads" if rec.attention is not None else ""
        lines = [
            f"Loop analysis of {name}: {rec.loops} loops, {rec.layers} layers, T = {rec.tokens}, "
            f"d = {rec.width}{heads}."
        ]
        drift = float(np.max(self.fixed_point_drift))
        last = self.successive_difference[-1].max() / self.scale if rec.loops > 1 else float("nan")
        lines.append(
            f"Convergence: {'converged' if self.converged else 'NOT converged'} to tolerance {self.tol:g} "
            f"(largest fixed-point drift over a doubled horizon {drift:.3g}, "
            f"{self.fixed_point_drift_method}; last successive difference {last:.3g} of the state scale)."
        )
        d = self.degeneracy
        lines.append(
            f"Degeneracy ({d['basis']}): min cos(X*_1, X*_j) = {d['min_cos']:.6f}, largest stage step "
            f"{d['max_step_relative']:.3g} of the scale, {d['distinct']} distinct layer points"
            + (f", increments' min cos {d['increment_min_cos']:.6f}" if "increment_min_cos" in d else "")
            + (
                ": the layers share one point (vanishing contribution)"
                if d["distinct"] == 1
                else ": a cyclic fixed point"
                if self.converged
                else ""
            )
            + "."
        )
        band = self.diagonal_band_score
        lines.append(
            f"Diagonal bands: states {band['state']:.2f}"
            + (f", attention {band['attention']:.2f}" if rec.attention is not None else "")
            + " (1: every layer is closest to itself on other loops)."
        )
        if self.attention_change is not None:
            stable = self.attention_stable_at
            settled = stable >= 0
            lines.append(
                f"Attention: {int(settled.sum())} of {stable.size} heads stable (change < {self.tol:g}) "
                + (f"from loop {int(stable[settled].max())} on" if settled.any() else "by the end")
                + f"; last change {self.attention_change[-1].max():.3g}."
            )
            if self.bound_check is not None:
                b = self.bound_check
                lines.append(
                    f"Attention bound (Prop. 4.2): {int(b['violations'].sum())} violations; tightness "
                    f"(observed / bound) up to {np.max(b['tightness']):.3g}; inputs: {b['inputs']}."
                )
        lines.append(
            "Stage profiles: repeat across loops (correlation with the last loop, median over the "
            "second half): "
            + ", ".join(
                f"{name} {np.median(self.profile_repeat[rec.loops // 2 :, m]):.3f}"
                for m, name in enumerate(self.profile_metrics)
            )
            + "."
        )
        if self.profile_correlation is not None:
            lines.append(
                "Against the reference (median over loops): "
                + ", ".join(
                    f"{name} {np.nanmedian(self.profile_correlation[:, m]):.3f}"
                    if np.any(np.isfinite(self.profile_correlation[:, m]))
                    else f"{name} n/a"
                    for m, name in enumerate(self.profile_metrics)
                )
                + "."
            )
        lines.append("Stages: " + self.stages.summary() + ".")
        counts = self.token_counts()
        lines.append(
            "Tokens: "
            + ", ".join(f"{count} {name}" for name, count in counts.items())
            + f" (tau = {self.token_tau:g}, rho = {self.token_rho:g})."
        )
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def __repr__(self):
        rec = self.recording
        return (
            f"LoopAnalysis(loops={rec.loops}, layers={rec.layers}, converged={self.converged}, "
            f"stages_follow={self.stages.follows!r})"
        )

    def _repr_html_(self):
        from html import escape

        return "<pre>" + escape(self.summary()) + "</pre>"

    def plot(self, kind="distances", path=None):
        """Draw one figure of the analysis.

        Parameters
        ----------
        kind : {"distances", "metrics", "similarity", "pca", "profiles", "attention"}
            ``"distances"``: each stage's distance to its fixed point against loops;
            ``"metrics"``: the stage metrics by loop and by layer; ``"similarity"``: the state and
            attention similarity matrices; ``"pca"``: one token's path through every layer and
            loop in its two main directions (a closed k-gon at a cyclic fixed point);
            ``"profiles"``: each metric against relative depth, loop by loop, with the reference;
            ``"attention"``: each head's change against the bound, log-log.
        path : str or Path, optional
            Also write the figure there.

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import dynloop
        >>> spec = dynloop.BlockSpec(width=8, tokens=3, layers=3, mixer="mlp", residual_scale=0.3)
        >>> fig = dynloop.analyze(dynloop.simulate(spec, 30)).plot("pca")
        """
        check_choice("kind", kind, PLOT_KINDS)
        from .. import plotting

        return plotting.plot_analysis(self, kind, path)

    def report(self, outdir):
        """Write every figure (PNG) and a Markdown page ``report.md`` that shows them to ``outdir``.

        Returns
        -------
        Path
            The Markdown page.

        Examples
        --------
        >>> import dynloop, tempfile
        >>> spec = dynloop.BlockSpec(width=8, tokens=3, layers=2, mixer="mlp", residual_scale=0.3)
        >>> page = dynloop.analyze(dynloop.simulate(spec, 20)).report(tempfile.mkdtemp())
        >>> page.name
        'report.md'
        """
        import matplotlib.pyplot as plt

        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        sections = {
            "distances": "Distance of each stage to its fixed point",
            "metrics": "Stage metrics by loop and by layer",
            "similarity": "Similarity of (loop, layer) entries",
            "pca": "One token's path through every layer and loop",
            "profiles": "Stage profiles against relative depth",
            "attention": "Attention change against the bound",
        }
        lines = ["# Loop analysis", "", "```", self.summary(), "```", ""]
        for kind, title in sections.items():
            fig = self.plot(kind, outdir / f"{kind}.png")
            plt.close(fig)
            lines += [f"## {title}", "", f"![{title}]({kind}.png)", ""]
        page = outdir / "report.md"
        page.write_text("\n".join(lines))
        return page

    def save(self, path):
        """Write every array attribute and the summary to a compressed ``.npz`` file.

        Examples
        --------
        >>> import dynloop, numpy as np, tempfile, os
        >>> spec = dynloop.BlockSpec(width=4, tokens=2, layers=2, mixer="mlp")
        >>> path = os.path.join(tempfile.mkdtemp(), "analysis.npz")
        >>> dynloop.analyze(dynloop.simulate(spec, 10)).save(path)
        >>> float(np.load(path)["fixed_point_drift"].shape[0])
        4.0
        """
        arrays = {
            name: value
            for name, value in vars(self).items()
            if isinstance(value, np.ndarray) and value.dtype != object
        }
        if self.bound_check is not None:
            arrays.update(
                {f"bound_check.{k}": v for k, v in self.bound_check.items() if isinstance(v, np.ndarray)}
            )
        header = {
            "summary": self.summary(),
            "degeneracy": self.degeneracy,
            "diagonal_band_score": self.diagonal_band_score,
            "stages_follow": self.stages.follows,
            "profile_metrics": list(self.profile_metrics),
            "tol": self.tol,
        }
        np.savez_compressed(path, _header=np.array(json.dumps(header, default=jsonable)), **arrays)


def analyze(
    recording_or_trajectory, *, reference=None, tol=None, sink_threshold=0.3, token_tau=0.05, token_rho=0.9
):
    """Every metric of a looped model's recording: convergence, attention, stages, tokens.

    Parameters
    ----------
    recording_or_trajectory : LoopRecording or Trajectory
        A recording (:func:`dynloop.load_recording` reads a file) or a toy block's trajectory
        (``simulate(..., record_attention=True)`` for the attention metrics).
    reference : LoopRecording or Trajectory, optional
        Another recording, such as an untied feedforward stack, whose stage profiles each loop is
        correlated with.
    tol : float, optional
        Convergence tolerance: relative to the state scale for states, absolute (Frobenius) for
        attention matrices. Default 1e-6 for float64 recordings, 1e-4 for float32 ones.
    sink_threshold : float
        A head is a sink head when its sink score is at least this.
    token_tau, token_rho : float
        The token classifier's thresholds (:func:`dynloop.analysis.tokens.classify_tokens`).

    Returns
    -------
    LoopAnalysis

    Examples
    --------
    >>> import dynloop
    >>> spec = dynloop.BlockSpec(width=8, tokens=4, layers=3, mixer="transformer", heads=2, norm="pre",
    ...                          injection="concat", residual_scale=0.3, weight_gain=0.5, seed=3)
    >>> result = dynloop.analyze(dynloop.simulate(spec, 120, record_attention=True))
    >>> result.converged, result.attention_change.shape, result.stages.follows
    (True, (119, 3, 2), 'layer')
    """
    rec = _as_recording(recording_or_trajectory, "recording_or_trajectory")
    ref = None if reference is None else _as_recording(reference, "reference")
    if tol is None:  # a float32 run's states stay float32 in its recording and its files
        tol = 1e-6 if rec.stage_states.dtype == np.float64 else 1e-4
    tol = check_real("tol", tol, minimum=0.0)
    if not tol > 0:
        raise invalid("tol", tol, "expected a positive tolerance")
    sink_threshold = check_real("sink_threshold", sink_threshold, minimum=0.0)
    if sink_threshold > 1:
        raise invalid("sink_threshold", sink_threshold, "expected a sink score in [0, 1]")
    token_tau = check_real("token_tau", token_tau, minimum=0.0)
    token_rho = check_real("token_rho", token_rho, minimum=0.0)
    if not 0 < token_rho < 1:
        raise invalid("token_rho", token_rho, "expected a fraction in (0, 1)")
    return LoopAnalysis(
        rec, reference=ref, tol=tol, sink_threshold=sink_threshold, token_tau=token_tau, token_rho=token_rho
    )
