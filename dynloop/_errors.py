"""Uniform error messages: every bad input names the field, the value and what is allowed."""

__all__ = ["invalid", "check_choice", "check_int", "check_real"]

import numbers

import numpy as np


def invalid(field, value, allowed):
    """Return a ``ValueError`` naming ``field``, the ``value`` given and what is ``allowed``."""
    return ValueError(f"{field}={value!r} is not allowed: {allowed}")


def check_choice(field, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise a ``ValueError`` that lists them."""
    if not isinstance(value, str) or value not in choices:
        raise invalid(field, value, "expected one of " + ", ".join(repr(c) for c in choices))
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
        raise invalid(field, value, "expected a finite real number" + (f" >= {minimum}" if minimum is not None else ""))
    value = float(value)
    if not np.isfinite(value):
        raise invalid(field, value, "expected a finite real number")
    if minimum is not None and value < minimum:
        raise invalid(field, value, f"expected a real number >= {minimum}")
    return value
