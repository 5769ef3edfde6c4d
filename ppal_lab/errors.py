"""Errors that name the parameter, the value and what was allowed.

Every public entry point of ``ppal_lab`` validates its arguments *before* doing any work and raises
:class:`ParameterError` (a ``ValueError``) with a one-line message such as::

    epsilon = -1.0 is out of range: must be > 0
"""
from __future__ import annotations

import math
from typing import Any, Iterable


class ParameterError(ValueError):
    """A parameter has a value outside its allowed range, type or choices."""

    def __init__(self, name: str, value: Any, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"{name} = {value!r} is invalid: must be {allowed}")


def _interval(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}"


def check_range(name: str, value: Any, low=None, high=None, *, low_open: bool = False,
                high_open: bool = False) -> Any:
    """Raise :class:`ParameterError` unless ``low (<|<=) value (<|<=) high``; return ``value``.

    ``None`` bounds are unbounded. NaN is always rejected.
    """
    allowed = _interval(low, high, low_open, high_open)
    try:
        bad = isinstance(value, bool) or math.isnan(value)
    except TypeError:
        raise ParameterError(name, value, f"a number {allowed}") from None
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        raise ParameterError(name, value, allowed)
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Raise :class:`ParameterError` unless ``value`` is one of ``choices``; return ``value``."""
    choices = list(choices)
    if value not in choices:
        raise ParameterError(name, value, "one of " + ", ".join(map(repr, choices)))
    return value
