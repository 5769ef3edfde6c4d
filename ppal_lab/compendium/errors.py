"""Errors that name the parameter, the value and what was allowed.

Every public entry point of ``ppal_lab`` validates its arguments *before* doing any work and raises
:class:`ParameterError` (a ``ValueError``) with a one-line message such as::

    epsilon = -1.0 is out of range: must be > 0
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable

import numpy as np


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


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An integer (Python or NumPy; ``bool`` is rejected) within ``[low, high]``; returns an ``int``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        bounds = "" if low is None and high is None else " " + _interval(low, high, False, False)
        raise ParameterError(name, value, "an integer" + bounds)
    check_range(name, int(value), low, high)
    return int(value)


def check_real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
               low_open: bool = False, high_open: bool = False) -> float:
    """A real number (``bool`` is rejected, NaN too) within the bounds; returns a ``float``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ParameterError(name, value, "a real number")
    return float(check_range(name, float(value), low, high, low_open=low_open, high_open=high_open))


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    return check_real(name, value, 0, math.inf, low_open=True, high_open=True)


def check_open_unit(name: str, value: Any) -> float:
    """A number in the open interval (0, 1), e.g. a probability that must not be 0 or 1."""
    return check_real(name, value, 0, 1, low_open=True, high_open=True)


def as_generator(rng: Any) -> np.random.Generator:
    """A NumPy ``Generator`` as given, or a new one seeded by an int seed >= 0."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, Integral) and not isinstance(rng, bool) and int(rng) >= 0:
        return np.random.default_rng(int(rng))
    raise ParameterError("rng", rng, "a numpy.random.Generator or an int seed >= 0")


def check_matrix(name: str, X: Any, *, allow_nan: bool = False, n_cols: int | None = None,
                 dtype=np.float64) -> np.ndarray:
    """A non-empty 2-d numeric array (a DataFrame is accepted) with finite values, or NaN where
    ``allow_nan`` (missing features); ``n_cols`` fixes the width. Returns it as ``dtype``."""
    try:
        A = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X, dtype=dtype)
    except (TypeError, ValueError):
        raise ParameterError(name, type(X).__name__, "a 2-d numeric array") from None
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0 or (n_cols is not None and A.shape[1] != n_cols):
        width = f" with {n_cols} columns" if n_cols is not None else ""
        raise ParameterError(name, f"array of shape {A.shape}", f"a non-empty 2-d array{width}")
    ok = np.isfinite(A) | np.isnan(A) if allow_nan else np.isfinite(A)
    if not ok.all():
        raise ParameterError(name, "an array with " + ("infinite" if allow_nan else "NaN or infinite")
                             + " values", "finite values" + (" or NaN" if allow_nan else ""))
    return A


def check_labels(name: str, y: Any, n: int, n_classes: int | None = None) -> np.ndarray:
    """``n`` integer class codes ``0..C-1`` (integral floats are accepted), as ``int64``."""
    a = np.asarray(y)
    if a.shape != (n,):
        raise ParameterError(name, f"array of shape {a.shape}", f"shape ({n},)")
    integral = a.dtype.kind in "iub" or (a.dtype.kind == "f" and np.all(np.isfinite(a))
                                         and np.all(a == np.round(a)))
    if not integral or (a.size and a.min() < 0):
        raise ParameterError(name, f"array of dtype {a.dtype}", "integer class codes 0..C-1")
    if n_classes is not None and a.size and a.max() >= n_classes:
        raise ParameterError(name, int(a.max()), f"class codes in [0, {n_classes - 1}]")
    return a.astype(np.int64)
