"""Rendering a :class:`~dynloop.symbolic.Derivation`: Markdown, LaTeX, and boundaries drawn on phase diagrams.

The text reports are one list of lines (:func:`_sections`: headings, ``- `` items and prose, with
mathematics between dollars) written out as Markdown or as a LaTeX fragment; :func:`overlay`
draws the boundary equations as zero contours on a matplotlib panel. ``Derivation.markdown``,
``Derivation.latex`` and ``Derivation.overlay`` call these.
"""

__all__ = ["markdown", "latex", "overlay"]

import numpy as np
import sympy

from ..dynamics.regimes import Regime

#: Colour of each kind of boundary line.
COLOURS = {"fold": "black", "flip": "crimson", "neimark_sacker": "royalblue"}


def _sections(d):
    """The report as lines: headings, ``- `` items, prose, with mathematics between dollars."""
    def tex(e):
        return f"${sympy.latex(e)}$"
    lines = [d.title, ""]
    lines += [f"- {note}" for note in d.notes]
    lines += ["", "Stages:"]
    for stage in d.stages:
        # written as text, not sympy.Eq: an equation between a symbol and a matrix is False
        expr = stage.expr.T if len(stage.x) > 1 else stage.expr[0]
        lines.append(f"- {stage.name}: $f = {sympy.latex(expr)}$")
    period = f" (period {d.period})" if d.period > 1 else ""
    lines += ["", f"Loop map{period}: {tex(d.loop_map.T if len(d.state) > 1 else d.loop_map[0])}"]
    for i, b in enumerate(d.branches):
        head = f"Branch {b.label}" + (" (principal)" if i == d.principal else "")
        lines += ["", head + ":"]
        if b.numeric:
            lines.append("- not solved in closed form: stability is the spectral condition rho(J(x*)) < 1, "
                         "evaluated numerically at each parameter point")
            continue
        point = b.point.T if len(b.point) > 1 else b.point[0]
        lines.append(f"- point: {tex(point)}")
        if b.period == 1 and d.kind == "block" and len(b.stage_points) > 2:
            lines.append("- stage points: "
                         + ", ".join(tex(p.T if len(p) > 1 else p[0]) for p in b.stage_points[1:]))
        lines.append(f"- loop Jacobian: {tex(b.jacobian if b.jacobian.shape[0] > 1 else b.jacobian[0])}")
        lines.append(f"- characteristic polynomial: {tex(b.charpoly)}")
        if b.existence:
            lines.append("- exists where: " + ", ".join(tex(c) for c in b.existence))
        lines.append("- stable iff: " + ", ".join(tex(c) for c in b.stability))
        for boundary in b.boundaries:
            lines.append(f"- {boundary.kind} boundary: {tex(sympy.Eq(boundary.equation, 0))}")
    if d.kind == "block" and d.branch is not None and not d.branch.numeric:
        vanishing = d.vanishing
        lines += ["", "Vanishing (all stage points equal) iff: "
                  + (", ".join(tex(e) for e in vanishing) if vanishing else "always") + "; cyclic otherwise."]
    if d.drift is not None:
        lines += ["", "Drift far from the origin (per loop):"]
        for s, v in d.drift["velocity"].items():
            lines.append(f"- sign {s:+d}: velocity {tex(v)}, consistent iff {tex(d.drift['condition'][s])}")
    lines += ["", f"Otherwise: {Regime.from_code(d.otherwise).value}."]
    return lines


def markdown(d):
    """``Derivation.markdown``: the report with its title as a level-3 heading.

    Examples
    --------
    >>> from dynloop.symbolic import derive, Scheme
    >>> from dynloop.symbolic.render import markdown
    >>> markdown(derive(Scheme(injection="none"), structure="diagonal")).splitlines()[-1]
    'Otherwise: divergent.'
    """
    lines = _sections(d)
    lines[0] = "### " + lines[0]
    return "\n".join(lines)


def _latex_text(line):
    """A report line for LaTeX: prose escaped, mathematics (between dollars) kept as it is."""
    parts = line.split("$")
    for i in range(0, len(parts), 2):  # the even parts are prose
        prose = parts[i].replace("\\", r"\textbackslash{}")
        for char in "_&%#{}":
            prose = prose.replace(char, "\\" + char)
        parts[i] = prose.replace(r"\textbackslash\{\}", r"\textbackslash{}")
    return "$".join(parts)


def latex(d):
    """``Derivation.latex``: a paragraph per heading or prose line, an itemised list per run of items.

    Examples
    --------
    >>> from dynloop.symbolic import derive, Scheme
    >>> from dynloop.symbolic.render import latex
    >>> print("\\n".join(latex(derive(Scheme(injection="none"), structure="diagonal")).splitlines()[:2]))
    \\paragraph{Block: norm=none/rms, injection=none, mixer=linear, k=1, structure=diagonal}
    \\begin{itemize}
    """
    out = []
    in_list = False
    for line in _sections(d):
        is_item = line.startswith("- ")
        if in_list and not is_item:
            out.append(r"\end{itemize}")
            in_list = False
        if is_item:
            if not in_list:
                out.append(r"\begin{itemize}")
                in_list = True
            out.append(r"\item " + _latex_text(line[2:]))
        elif line:
            out.append(r"\paragraph{" + _latex_text(line) + "}")
    if in_list:
        out.append(r"\end{itemize}")
    return "\n".join(out)


def overlay(d, ax, x=None, y=None, resolution=400, **values):
    """``Derivation.overlay``: every boundary as a zero contour (2-D) or vertical lines (1-D) on ``ax``.

    Returns the matplotlib artists drawn; see ``Derivation.overlay`` for the parameters.
    """
    x = x or ax.get_xlabel()
    y = y if y is not None else (ax.get_ylabel() or None)
    names = d._axis_names(x, y)
    xs = np.linspace(*ax.get_xlim(), resolution)
    drawn = []
    for boundary in d.boundaries:
        f = _lambdify_axes(d, boundary.equation, names, values)
        if names[1] is None:
            with np.errstate(all="ignore"):
                v = np.real(f(xs, None))
            v = np.broadcast_to(v, xs.shape)
            for i in np.nonzero(np.sign(v[1:]) * np.sign(v[:-1]) < 0)[0]:
                drawn.append(ax.axvline(0.5 * (xs[i] + xs[i + 1]), color=COLOURS[boundary.kind], lw=1.2,
                                        ls="--"))
            continue
        ys = np.linspace(*ax.get_ylim(), resolution)
        gx, gy = np.meshgrid(xs, ys)
        with np.errstate(all="ignore"):
            v = np.broadcast_to(np.real(f(gx, gy)).astype(float), gx.shape)
        if np.nanmin(v) < 0 < np.nanmax(v):
            drawn.append(ax.contour(gx, gy, v, levels=[0.0], colors=COLOURS[boundary.kind], linewidths=1.2))
    return drawn


def _lambdify_axes(d, expr, names, values):
    """``expr`` as a numpy function of the axis parameters ``names``, the others fixed at ``values``."""
    fixed = d._values({**values, **{n: 0.0 for n in names if n is not None}})
    subs = {s: v for s in d.parameters for n, v in fixed.items() if s.name == n and n not in names}
    expr = expr.subs(subs)
    axes = [next(s for s in d.parameters if s.name == n) if n else sympy.Dummy() for n in names]
    return sympy.lambdify(axes, expr, "numpy")
