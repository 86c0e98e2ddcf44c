"""Jury's stability test, symbolically: when are all roots of a real polynomial inside the unit circle?

The same table also gives the three kinds of boundary a fixed point crosses when it loses stability
(a root at +1, at −1, or a complex pair on the unit circle), see :func:`boundary_equations`.
"""

__all__ = ["jury", "boundary_equations"]

import sympy

from .._errors import invalid


def _coefficients(poly, var):
    """Coefficients ``a_0 .. a_n`` of ``poly`` in ``var`` (lowest first), made monic."""
    if not isinstance(var, sympy.Symbol):
        raise invalid("var", var, "expected a sympy Symbol")
    try:
        p = sympy.Poly(sympy.sympify(poly), var)
    except sympy.PolynomialError as error:
        raise invalid("poly", poly, f"expected a polynomial in {var} ({error})") from None
    n = p.degree()
    if n < 1:
        raise invalid("poly", poly, f"expected a polynomial of degree >= 1 in {var}")
    lead = p.LC()
    if lead.is_zero:
        raise invalid("poly", poly, "the leading coefficient is zero")
    return [sympy.cancel(c / lead) for c in reversed(p.all_coeffs())], n


def jury(poly, var):
    """Jury's conditions for every root of a real polynomial to lie strictly inside the unit circle.

    Parameters
    ----------
    poly : sympy expression
        A polynomial in ``var`` with real (possibly symbolic) coefficients; it is divided by its
        leading coefficient first, so the conditions are those of the monic polynomial
        ``z^n + c_{n-1} z^{n-1} + … + c_0``.
    var : sympy Symbol
        The variable of the polynomial.

    Returns
    -------
    list of sympy relations
        Their conjunction holds exactly when all roots lie in ``|z| < 1`` (Schur stability).
        Degree 1: ``[|c0| < 1]``. Degree 2: the stability triangle ``[1 + c1 + c0 > 0,
        1 − c1 + c0 > 0, |c0| < 1]``. Degree ``n >= 3``: ``P(1) > 0``, ``(−1)^n P(−1) > 0``,
        ``|c0| < 1`` and one condition ``|t_0| > |t_last|`` for each further row of Jury's table
        (``n + 1`` conditions in all).

    Examples
    --------
    >>> import sympy
    >>> from dynloop.symbolic import jury
    >>> z, c0, c1 = sympy.symbols("z c0 c1", real=True)
    >>> jury(z**2 + c1 * z + c0, z)
    [c0 + c1 + 1 > 0, c0 - c1 + 1 > 0, Abs(c0) < 1]
    >>> jury(z - sympy.Rational(1, 2), z)
    [True]
    """
    c, n = _coefficients(poly, var)
    if n == 1:
        return [_relation(sympy.Abs(c[0]) < 1)]
    p = sympy.Poly(sum(ci * var**i for i, ci in enumerate(c)), var)
    conditions = [p.eval(1) > 0, sympy.expand((-1) ** n * p.eval(-1)) > 0, sympy.Abs(c[0]) < 1]
    row = c  # a_0 .. a_n, a_n = 1
    while len(row) > 3:
        m = len(row) - 1
        # next row: b_k = a_0 a_k − a_m a_{m−k}, k = 0 .. m−1 (Jury's table, the reversed-row determinants)
        row = [sympy.expand(row[0] * row[k] - row[m] * row[m - k]) for k in range(m)]
        conditions.append(sympy.Abs(row[0]) > sympy.Abs(row[-1]))
    return [_relation(condition) for condition in conditions]


def _relation(condition):
    """Expand polynomial sides of a relation (``True``/``False`` pass through)."""
    if isinstance(condition, sympy.logic.boolalg.BooleanAtom):
        return condition
    return condition.func(sympy.expand(condition.lhs), sympy.expand(condition.rhs))


def boundary_equations(poly, var):
    """The expressions that vanish where a root of ``poly`` reaches the unit circle, by kind.

    Parameters
    ----------
    poly : sympy expression
        A real polynomial in ``var`` (made monic first).
    var : sympy Symbol

    Returns
    -------
    dict
        ``{"fold": P(1), "flip": (−1)^n P(−1), "neimark_sacker": det(X − Y)}`` where ``X − Y`` is
        the ``(n−1) × (n−1)`` Schur–Cohn inner matrix; its determinant vanishes exactly when two
        roots have product 1 (a complex pair on the unit circle, or a real reciprocal pair, which is
        not a bifurcation). Degree 1 has no Neimark–Sacker entry. For ``z² − τ z + δ`` it is
        ``1 − δ``.

    Examples
    --------
    >>> import sympy
    >>> from dynloop.symbolic.jury import boundary_equations
    >>> z, tau, delta = sympy.symbols("z tau delta", real=True)
    >>> boundary_equations(z**2 - tau * z + delta, z)
    {'fold': delta - tau + 1, 'flip': delta + tau + 1, 'neimark_sacker': 1 - delta}
    """
    c, n = _coefficients(poly, var)
    p = sympy.Poly(sum(ci * var**i for i, ci in enumerate(c)), var)
    out = {"fold": sympy.expand(p.eval(1)), "flip": sympy.expand((-1) ** n * p.eval(-1))}
    if n >= 2:
        size = n - 1
        x = sympy.Matrix(size, size, lambda i, j: c[n - (j - i)] if j >= i else 0)
        y = sympy.Matrix(size, size, lambda i, j: c[i + j - n + 2] if i + j >= n - 2 else 0)
        out["neimark_sacker"] = sympy.expand((x - y).det())
    return out
