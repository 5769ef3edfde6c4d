"""Notebook parameters: declared once, with type, default, meaning and allowed range.

Each notebook has a :class:`NotebookSpec` in :mod:`ppal_lab.compendium.specs`. Its papermill ``parameters`` cell
holds the same defaults (a test checks they agree), and its next cell calls :func:`validate_notebook`, so
a bad value stops the notebook before any work; ``ppal-lab run`` validates the same way before it starts
a kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ppal_lab.compendium.errors import ParameterError, check_choice, check_range


class UnknownParameterError(ParameterError):
    """A parameter name that the notebook does not declare."""

    def __init__(self, notebook: str, name: str, known):
        self.name, self.value = name, None
        ValueError.__init__(self, f"unknown parameter {name!r} for {notebook}: "
                                  f"known parameters are {', '.join(known)}")


@dataclass(frozen=True)
class Param:
    """One notebook parameter.

    ``kind`` is ``int``, ``float``, ``str``, ``bool`` or ``list`` (a list of strings, written on the
    command line as comma-separated items). Bounds apply to numbers, ``choices`` to strings and to list
    items.
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None

    def allowed(self) -> str:
        """The allowed values, in words (for ``ppal-lab list`` and error messages)."""
        if self.choices is not None:
            prefix = "items of " if self.kind is list else ""
            return prefix + "{" + ", ".join(map(str, self.choices)) + "}"
        if self.kind is bool:
            return "true/false"
        if self.low is None and self.high is None:
            return "any " + self.kind.__name__
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{self.kind.__name__} in {left}{lo}, {hi}{right}"

    def parse(self, text: str) -> Any:
        """Convert command-line text to this parameter's type (then :meth:`check` it)."""
        try:
            if self.kind is bool:
                low = text.strip().lower()
                if low not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError
                value = low in {"true", "1", "yes"}
            elif self.kind is list:
                value = [item.strip() for item in text.split(",") if item.strip()]
            elif self.kind is int:
                value = int(text)
            else:
                value = self.kind(text)
        except ValueError:
            raise ParameterError(self.name, text, self.allowed()) from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        """Validate a value of this parameter; return it (ints are accepted for floats)."""
        kind = self.kind
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is list and isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ParameterError(self.name, value, self.allowed())
        if kind in (int, float) and (self.low is not None or self.high is not None):
            check_range(self.name, value, self.low, self.high,
                        low_open=self.low_open, high_open=self.high_open)
        if self.choices is not None:
            if kind is list:
                if not value:
                    raise ParameterError(self.name, value, "a non-empty " + self.allowed())
                for item in value:
                    check_choice(self.name, item, self.choices)
            else:
                check_choice(self.name, value, self.choices)
        return value


@dataclass(frozen=True)
class Constraint:
    """A condition a notebook needs that one parameter's range cannot say: it involves several
    parameters, or one parameter and a limit that depends on another (a data set's pool size).

    Declared in the spec, so ``ppal-lab run``/``sweep`` refuse a bad combination before a kernel starts
    and the notebook's :func:`validate_notebook` refuses the same one. ``ok`` gets the full, validated
    parameter dict; ``allowed`` (text, or a function of that dict) says what ``names[0]`` — the
    parameter the error names, the others being the ones it depends on — must be.
    """

    names: tuple[str, ...]
    ok: Callable[[Mapping[str, Any]], bool]
    allowed: str | Callable[[Mapping[str, Any]], str]

    def check(self, values: Mapping[str, Any]) -> None:
        """Raise :class:`ParameterError` naming ``names[0]``, its value and the allowed range."""
        if not self.ok(values):
            allowed = self.allowed(values) if callable(self.allowed) else self.allowed
            raise ParameterError(self.names[0], values[self.names[0]], allowed)


@dataclass(frozen=True)
class Tolerance:
    """How far a metric of a run at the defaults may lie from the committed record and still count
    as the same result (compared by :mod:`ppal_lab.compendium.reproduce`): the largest of ``abs``, ``rel`` times
    the committed value and ``ci_fraction`` times the committed 95% CI half-width. ``compare=False``
    for figures that are not results (wall times)."""

    ci_fraction: float = 0.25
    rel: float = 1e-6
    abs: float = 1e-9
    compare: bool = True

    def allowed(self, committed: Mapping[str, Any]) -> float:
        ci = committed.get("ci95")
        half = (ci[1] - ci[0]) / 2 if ci else 0.0
        return max(self.abs, self.rel * abs(committed["value"]), self.ci_fraction * half)


EXACT = Tolerance(ci_fraction=0.0, rel=0.0, abs=0.0)
TIMING = Tolerance(compare=False)


@dataclass(frozen=True)
class NotebookSpec:
    """A notebook: its file stem, title, parameters, headline metrics and time budget.

    ``constraints`` are the :class:`Constraint` s between parameters, checked by :meth:`validate` after
    each parameter's own range.

    ``tolerances`` maps metric-name patterns (``fnmatch``; the first match wins) to the
    :class:`Tolerance` a run on another machine is held to; unmatched metrics get ``Tolerance()``.
    """

    name: str
    title: str
    params: tuple[Param, ...]
    headline: tuple[str, ...] = ()
    budget_s: float = 180.0
    constraints: tuple[Constraint, ...] = ()
    tolerances: tuple[tuple[str, Tolerance], ...] = ()
    claims: tuple = ()  # ppal_lab.compendium.verdicts.Claim, declared before any run
    reads: tuple[str, ...] = ()  # benchmark records (in data/results/) the notebook reads: part of its inputs
    _index: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        self._index.update({p.name: p for p in self.params})
        for c in self.constraints:  # a misspelt name fails at import, not in a user's run
            for name in c.names:
                self.param(name)

    @property
    def filename(self) -> str:
        return self.name + ".ipynb"

    def param(self, name: str) -> Param:
        if name not in self._index:
            raise UnknownParameterError(self.name, name, list(self._index))
        return self._index[name]

    def tolerance(self, metric: str) -> Tolerance:
        from fnmatch import fnmatchcase

        return next((t for pattern, t in self.tolerances if fnmatchcase(metric, pattern)), Tolerance())

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check every given value (unknown names are errors), then the constraints between them;
        return the defaults updated by them."""
        full = self.defaults()
        for name, value in values.items():
            full[name] = self.param(name).check(value)
        for c in self.constraints:
            c.check(full)
        return full

    def parse(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        """Parse ``(name, text)`` pairs from the command line into validated values (overrides only)."""
        return {name: self.param(name).parse(text) for name, text in pairs}
