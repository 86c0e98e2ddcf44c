"""Uniform error messages: every bad input names the field, the value and what is allowed."""

__all__ = ["caused_by_interrupt", "invalid", "did_you_mean", "check_choice", "check_int", "check_real"]

import difflib
import numbers

import numpy as np


def did_you_mean(value, choices):
    """``"; did you mean 'x'?"`` when ``value`` is a close misspelling of one of ``choices``, else ``""``.

    Examples
    --------
    >>> from dynloop._errors import did_you_mean
    >>> did_you_mean("mpl", ["linear", "mlp", "attention"])
    "; did you mean 'mlp'?"
    >>> did_you_mean("rnn", ["linear", "mlp", "attention"])
    ''
    """
    if not isinstance(value, str):
        return ""
    names = [str(choice) for choice in choices]
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6) or \
        difflib.get_close_matches(value.lower(), [name.lower() for name in names], n=1, cutoff=0.6)
    if not close:
        return ""
    match = next(name for name in names if name == close[0] or name.lower() == close[0])
    return f"; did you mean {match!r}?"


def invalid(field, value, allowed):
    """Return a ``ValueError`` naming ``field``, the ``value`` given and what is ``allowed``.

    Examples
    --------
    >>> from dynloop._errors import did_you_mean, invalid
    >>> names = ["pre", "sandwich"]
    >>> print(invalid("norm", "sandwhich", "expected pre or sandwich" + did_you_mean("sandwhich", names)))
    norm='sandwhich' is not allowed: expected pre or sandwich; did you mean 'sandwich'?
    """
    return ValueError(f"{field}={value!r} is not allowed: {allowed}")


def check_choice(field, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise a ``ValueError`` that lists them.

    Examples
    --------
    >>> from dynloop._errors import check_choice
    >>> check_choice("mixer", "mpl", ("linear", "mlp"))
    Traceback (most recent call last):
    ...
    ValueError: mixer='mpl' is not allowed: expected one of 'linear', 'mlp'; did you mean 'mlp'?
    """
    if not isinstance(value, str) or value not in choices:
        raise invalid(field, value, "expected one of " + ", ".join(repr(c) for c in choices)
                      + did_you_mean(value, choices))
    return value


def check_int(field, value, minimum=None):
    """Return ``value`` as ``int`` if it is an integer ``>= minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise invalid(field, value, "expected an integer" + (f" >= {minimum}" if minimum is not None else ""))
    if minimum is not None and value < minimum:
        raise invalid(field, value, f"expected an integer >= {minimum}")
    return int(value)


def check_real(field, value, minimum=None):
    """Return ``value`` as ``float`` if it is a finite real ``>= minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise invalid(field, value, "expected a finite real number" + bound)
    value = float(value)
    if not np.isfinite(value):
        raise invalid(field, value, "expected a finite real number")
    if minimum is not None and value < minimum:
        raise invalid(field, value, f"expected a real number >= {minimum}")
    return value


def caused_by_interrupt(error):
    """Whether ``error`` is, or was raised while handling, a ``KeyboardInterrupt``.

    Ctrl-C inside compiled code surfaces as another exception (numba wraps it in a
    ``SystemError``) whose cause or context is the ``KeyboardInterrupt``.

    Examples
    --------
    >>> try:
    ...     try:
    ...         raise KeyboardInterrupt
    ...     except KeyboardInterrupt as interrupt:
    ...         raise SystemError("returned a result with an exception set") from interrupt
    ... except SystemError as error:
    ...     caused_by_interrupt(error)
    True
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
