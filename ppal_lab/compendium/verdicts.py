"""The verdict engine: every claim is decided by a rule declared before the run, from the record alone.

A :class:`Claim` is declared in its chapter's spec (``NotebookSpec.claims``): the metric it reads, the
seed's figure and direction, the kind of rule and its margin. :func:`decide` turns the metric's estimate
and 95% confidence interval into one of :data:`VERDICTS`; nothing else can set a verdict. The rules
(explained for readers in ``book/verdict_rules.md``):

effect
    The seed claims an effect of size ``target`` in a ``direction`` (no effect is ``null``). The claim is
    the region ``target ± margin``; the margin is :data:`RELATIVE_MARGIN` of the claimed effect's distance
    from no effect unless a claim declares another with its ``margin_reason``. *reproduced*: the interval lies inside that region. *inconclusive*:
    the interval overlaps the region and shows no effect in the claimed direction. *partly*: the interval
    excludes no effect in the claimed direction but does not lie inside the region (the effect is there;
    its size is not the seed's, or not yet pinned down). *not reproduced*: the interval excludes the region
    and shows no effect in the claimed direction. A record also carries the seeds needed to tell the claim from no
    effect at 80% power, from the observed spread.
goal
    The seed claims a figure at least (``direction=+1``) or at most (``-1``) ``target``. Judged on the
    interval's bound on the claim's side (a one-sided 97.5% bound), never on the point estimate:
    *reproduced* when that bound meets the target, *not reproduced* when the other bound misses it,
    else *inconclusive*. An effect or a goal measured without an interval (one repeat) is *inconclusive*.
equivalence
    The seed claims two computations agree. ``metric`` is their measured distance, ``null_metric`` the
    same distance under a perturbation the arithmetic cannot avoid (a null the chapter measures).
    *reproduced* when the distance's upper bound is within ``margin`` times the null's upper bound,
    *not reproduced* when its lower bound exceeds that, else *inconclusive*.
qualitative
    ``metric`` is 1 when the stated property holds in the run and 0 when it does not.
not measurable
    Declared with its ``reason`` (e.g. no comparable system is timed), or reached when a test bed's
    ``headroom`` metric falls below the ``headroom_min`` the claim declares: a bed that cannot
    discriminate decides nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ppal_lab.compendium.errors import ParameterError, check_choice

VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive", "not measurable")
KINDS = ("effect", "goal", "equivalence", "qualitative", "not measurable")
POWER_Z = 1.959963984540054 + 0.8416212335729143  # two-sided 5% test, 80% power
RELATIVE_MARGIN = 0.25  # an effect within a quarter of the claimed size (from no effect) is the same effect


@dataclass(frozen=True)
class Claim:
    """One seed claim and the rule that decides it (see the module docstring)."""

    id: str
    seed_doc: str
    statement: str
    seed_value: str
    kind: str
    metric: str = ""
    target: float = 0.0
    direction: int = 1
    margin: float | None = None
    null: float = 0.0
    null_metric: str = ""
    headroom: str = ""
    headroom_min: float = 0.0
    reason: str = ""
    margin_reason: str = ""
    first_rule: "Claim | None" = field(default=None, compare=False)

    def __post_init__(self):
        check_choice("kind", self.kind, KINDS)
        if self.direction not in (1, -1):
            raise ParameterError("direction", self.direction, "+1 (larger) or -1 (smaller)")
        if self.kind != "not measurable" and not self.metric:
            raise ParameterError("metric", self.metric, f"the metric a {self.kind} claim reads")
        if self.kind == "not measurable" and not self.reason:
            raise ParameterError("reason", self.reason, "why the claim cannot be measured here")
        if self.kind == "equivalence" and not self.null_metric:
            raise ParameterError("null_metric", self.null_metric, "the measured null of an equivalence claim")
        if self.margin is None:  # the declared convention; equivalence: as close as the null
            default = RELATIVE_MARGIN * abs(self.target - self.null) if self.kind == "effect" else 1.0
            object.__setattr__(self, "margin", default if self.kind in ("effect", "equivalence") else 0.0)
        elif self.kind == "effect" and not self.margin_reason and not math.isclose(
                self.margin, RELATIVE_MARGIN * abs(self.target - self.null)):
            raise ParameterError("margin", self.margin, f"{RELATIVE_MARGIN:g} of the claimed effect, or a "
                                 "margin_reason for another")
        if self.margin < 0:
            raise ParameterError("margin", self.margin, ">= 0")
        if self.kind == "effect" and (self.target - self.null) * self.direction <= 0:
            raise ParameterError("target", self.target, "on the claimed direction's side of no effect")

    def rule(self) -> str:
        """The rule in words, for the ledger."""
        more = "at least" if self.direction > 0 else "at most"
        if self.kind == "effect":
            return (f"effect on {self.metric}: claim region {self.target:g} ± {self.margin:g} "
                    f"(no effect {self.null:g}), 95% CI")
        if self.kind == "goal":
            return f"goal: {self.metric} {more} {self.target:g}, judged on the 95% CI's bound"
        if self.kind == "equivalence":
            return (f"equivalence: {self.metric} within {self.margin:g}× the measured null "
                    f"{self.null_metric}, upper 95% bounds")
        if self.kind == "qualitative":
            return f"qualitative: {self.metric} = 1 when the property holds"
        return f"not measurable: {self.reason}"


@dataclass(frozen=True)
class Decision:
    verdict: str
    interval: tuple[float, float] | None
    n: int | None
    seeds_needed: int | None = None


def _interval(m: Mapping[str, Any]) -> tuple[float, float]:
    ci = m.get("ci95")
    return (float(ci[0]), float(ci[1])) if ci else (float(m["value"]), float(m["value"]))


def seeds_needed(m: Mapping[str, Any], distance: float) -> int | None:
    """Repeats needed to tell an effect of ``distance`` from none at 80% power (two-sided 5%), from the
    per-seed spread implied by the metric's t interval; ``None`` without an interval."""
    ci, n = m.get("ci95"), int(m["n"])
    if not ci or n < 2 or distance == 0:
        return None
    from scipy import stats

    sd = (ci[1] - ci[0]) / 2 / stats.t.ppf(0.975, n - 1) * math.sqrt(n)
    return max(2, math.ceil((POWER_Z * sd / abs(distance)) ** 2)) if sd > 0 else 2


def decide(claim: Claim, metrics: Mapping[str, Mapping[str, Any]]) -> Decision:
    """The verdict of ``claim`` on a record's ``metrics``."""
    if claim.kind == "not measurable":
        return Decision("not measurable", None, None)
    if claim.headroom:  # checked first: a bed without headroom may leave the claim's metric undefined
        if claim.headroom not in metrics:
            raise ParameterError("metric", claim.headroom, f"a metric of the record (claim {claim.id})")
        if metrics[claim.headroom]["value"] < claim.headroom_min:
            return Decision("not measurable", None, None)
    for name in (claim.metric, claim.null_metric):
        if name not in metrics and name:
            raise ParameterError("metric", name, f"a metric of the record (claim {claim.id})")
    m = metrics[claim.metric]
    lo, hi = _interval(m)
    n = int(m["n"])
    if claim.kind in ("effect", "goal") and not m.get("ci95"):
        return Decision("inconclusive", (lo, hi), n)  # one repeat has no interval: it cannot decide
    if claim.kind == "effect":
        return Decision(_effect(claim, lo, hi), (lo, hi), n, seeds_needed(m, claim.target - claim.null))
    if claim.kind == "goal":
        near, far = (lo, hi) if claim.direction > 0 else (-hi, -lo)
        goal = claim.target * claim.direction
        verdict = "reproduced" if near >= goal else "not reproduced" if far < goal else "inconclusive"
        return Decision(verdict, (lo, hi), n)
    if claim.kind == "equivalence":
        bound = claim.margin * _interval(metrics[claim.null_metric])[1]
        verdict = "reproduced" if hi <= bound else "not reproduced" if lo > bound else "inconclusive"
        return Decision(verdict, (lo, hi), n)
    return Decision("reproduced" if m["value"] == 1 else "not reproduced", (lo, hi), n)


def _effect(claim: Claim, lo: float, hi: float) -> str:
    region = (claim.target - claim.margin, claim.target + claim.margin)
    if region[0] <= lo and hi <= region[1]:
        return "reproduced"
    if (lo > claim.null) if claim.direction > 0 else (hi < claim.null):
        return "partly"  # an effect in the claimed direction, but not (yet) of the claimed size
    if hi < region[0] or lo > region[1]:
        return "not reproduced"
    return "inconclusive"


def decide_all(claims, metrics: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each claim's verdict and its evidence as record fields; a claim whose rule changed after results
    keeps the first rule's verdict beside the new one (``first_verdict``, ``first_rule``)."""
    out = []
    for claim in claims:
        d = decide(claim, metrics)
        entry = {"id": claim.id, "seed_doc": claim.seed_doc, "statement": claim.statement,
                 "seed_value": claim.seed_value, "verdict": d.verdict, "rule": claim.rule()}
        if d.interval is not None:
            entry["interval"], entry["n"] = list(d.interval), d.n
        if d.seeds_needed is not None:
            entry["seeds_needed"] = d.seeds_needed
        if claim.first_rule is not None:
            entry["first_rule"] = claim.first_rule.rule()
            first = claim.first_rule  # its estimator may be undefined on a rerun (e.g. no repeat reached a target)
            entry["first_verdict"] = (decide(first, metrics).verdict if first.metric in metrics
                                      else "not measurable")
        out.append(entry)
    return out
