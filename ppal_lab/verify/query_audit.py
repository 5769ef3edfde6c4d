r"""Query auditing: spotting query patterns that probe one site's private data.

Seed 000 lists "query auditing: monitoring query patterns for suspicious behavior" among its defences
without saying what to look for. Chapter 9 shows one pattern worth looking for: a curious verifier that
submits :math:`k + 1 = 5` legitimate-looking claims about *one* item (its health shifted by small steps,
once with the defect flipped; :func:`ppal_lab.verify.attacks.probe_claims`) recovers the item's
:math:`k = 4` private bench readings from the revealed similarity scores by trilateration
(:func:`ppal_lab.verify.attacks.reconstruct_readings`). Each claim alone is unremarkable; the pattern is
*many distinct claims about the same item in a short time*.

**The detector.** For each incoming query, the auditor counts the *distinct* claims about the same item
among the last ``window`` queries, by the same requester (``by="requester"``) or by anyone
(``by="item"``), this query included (:func:`probe_statistic`). It refuses to answer when the count
reaches ``threshold``. Trilateration of :math:`k` readings needs :math:`k + 1` affinely independent
claims; with ``threshold = k + 1`` the :math:`(k+1)`-th probe is refused *before* it is answered, and
:math:`k` scores leave a line of solutions. Exact resubmissions (a retry) do not count: they reveal
nothing new.

**The price.** Honest requesters also revise claims (a re-inspection, a corrected health estimate):
chains of revisions of one item look like probes. :func:`simulate_log` draws honest query logs (with a
``revise_rate``: the chance that a requester's next query revises its previous item) and probing logs
(the same background plus ``n_probes`` probes), and :func:`detection_rates` measures, per threshold,
the share of probing logs in which a probe is refused (detection) and of honest logs in which some
query is refused (false alarm) — the detector's ROC.

**Evasion, and what DP already does.** Splitting the probes among ``n_sybils`` colluding requesters
defeats ``by="requester"``; counting ``by="item"`` catches it at the cost of more false alarms on
popular items. Spreading the probes over more than ``window`` queries defeats any window. A per-item
differential-privacy budget on the *released scores* does not depend on who asks or when: with a
budget :math:`\varepsilon` per item and :math:`\varepsilon_q` per released score, at most
:math:`\lfloor \varepsilon / \varepsilon_q\rfloor` scores about an item are ever released, and each is
noisy; auditing is a heuristic on top, not a guarantee.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ppal_lab.compendium.errors import (ParameterError, as_generator, check_choice, check_int, check_real)

__all__ = [
    "AUDIT_BY",
    "QueryLog",
    "detection_rates",
    "probe_pattern",
    "probe_statistic",
    "refused",
    "simulate_log",
]

#: How the detector groups queries: per (requester, item) or per item across requesters.
AUDIT_BY: tuple[str, ...] = ("requester", "item")


@dataclass(frozen=True)
class QueryLog:
    """A log of verification queries in arrival order.

    Attributes
    ----------
    requester, item : numpy.ndarray of int, shape (n,)
        Who asked, and about which item.
    claim : numpy.ndarray of shape (n, c)
        The claim's parameters (here health and defect).
    probe : numpy.ndarray of bool, shape (n,)
        Simulation truth: which queries are probes (the auditor never reads it).
    """

    requester: np.ndarray
    item: np.ndarray
    claim: np.ndarray
    probe: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.item)
        if self.claim.ndim != 2 or any(len(a) != n for a in (self.requester, self.claim, self.probe)):
            raise ParameterError("log", "arrays of different lengths", "requester, item, claim (n, c) "
                                 "and probe of one length n")

    def __len__(self) -> int:
        return len(self.item)


def probe_statistic(log: QueryLog, window: int, by: str = "requester") -> np.ndarray:
    """For each query, the number of distinct claims about its item among the last ``window``
    queries of the log (itself included), counted per requester (``by="requester"``) or across all
    requesters (``by="item"``). Uses only what the auditor sees (requester, item, claim)."""
    window = check_int("window", window, 1)
    by = check_choice("by", by, AUDIT_BY)
    recent: dict[tuple, list[tuple[int, tuple]]] = {}
    out = np.empty(len(log), dtype=np.int64)
    for t in range(len(log)):
        key = (int(log.requester[t]), int(log.item[t])) if by == "requester" else (int(log.item[t]),)
        # claims compared after rounding: a resubmitted claim is the same point, not a new probe
        entry = (t, tuple(np.round(log.claim[t], 9).tolist()))
        kept = [e for e in recent.get(key, []) if t - e[0] < window] + [entry]
        recent[key] = kept
        out[t] = len({c for _, c in kept})
    return out


def refused(log: QueryLog, threshold: int, window: int, by: str = "requester") -> np.ndarray:
    """Which queries the auditor refuses: those whose :func:`probe_statistic` reaches ``threshold``
    (checked before the query is answered)."""
    threshold = check_int("threshold", threshold, 2)
    return probe_statistic(log, window, by) >= threshold


def probe_pattern(health: float, defect: float, n_probes: int = 5) -> np.ndarray:
    """The claims of chapter 9's probe (:func:`ppal_lab.verify.attacks.probe_claims`) about an item
    with claimed ``health`` and ``defect``: health shifted by ``linspace(-0.12, 0.12, n_probes - 1)``
    and once unshifted with the defect flipped. Shape ``(n_probes, 2)``."""
    n_probes = check_int("n_probes", n_probes, 2, 50)
    h = np.clip(health + np.r_[np.linspace(-0.12, 0.12, n_probes - 1), 0.0], 0.0, 1.0)
    d = np.full(n_probes, float(defect))
    d[-1] = 1.0 - d[-1]
    return np.column_stack([h, d])


def simulate_log(n_queries: int, n_items: int, n_requesters: int, rng: Any, *, revise_rate: float = 0.1,
                 popularity: float = 1.0, n_probes: int = 0, n_sybils: int = 1, spread: int | None = None
                 ) -> QueryLog:
    r"""A query log of ``n_queries`` honest queries, plus ``n_probes`` probes if ``n_probes > 0``.

    Honest requester (uniform among ``n_requesters``): with probability ``revise_rate`` it revises its
    previous claim (same item, health moved by :math:`\mathcal N(0, 0.05^2)`), otherwise it claims a new
    item drawn with probability :math:`\propto \text{rank}^{-\text{popularity}}` (health uniform, defect
    with probability 0.3). Probes: :func:`probe_pattern` about one honest item, sent round-robin by
    ``n_sybils`` requesters that send nothing else, at random positions within ``spread`` consecutive
    queries (default: ``n_probes``, a burst)."""
    n_queries = check_int("n_queries", n_queries, 1)
    n_items = check_int("n_items", n_items, 1)
    n_requesters = check_int("n_requesters", n_requesters, 1)
    rng = as_generator(rng)
    revise_rate = check_real("revise_rate", revise_rate, 0.0, 1.0, high_open=True)
    popularity = check_real("popularity", popularity, 0.0, 10.0)
    n_probes = check_int("n_probes", n_probes, 0, 50)
    n_sybils = check_int("n_sybils", n_sybils, 1, max(1, n_probes))
    spread = n_probes if spread is None else check_int("spread", spread, max(1, n_probes))

    p_item = 1.0 / np.arange(1, n_items + 1) ** popularity
    p_item /= p_item.sum()
    req = rng.integers(0, n_requesters, size=n_queries)
    item = np.empty(n_queries, dtype=np.int64)
    claim = np.empty((n_queries, 2))
    last: dict[int, int] = {}
    for t in range(n_queries):
        r = int(req[t])
        if r in last and rng.random() < revise_rate:
            prev = last[r]
            item[t] = item[prev]
            claim[t] = [np.clip(claim[prev, 0] + rng.normal(0.0, 0.05), 0.0, 1.0), claim[prev, 1]]
        else:
            item[t] = rng.choice(n_items, p=p_item)
            claim[t] = [rng.random(), float(rng.random() < 0.3)]
        last[r] = t
    probe = np.zeros(n_queries, dtype=bool)
    if n_probes == 0:
        return QueryLog(req, item, claim, probe)

    target = int(rng.integers(n_queries))
    pattern = probe_pattern(claim[target, 0], claim[target, 1], n_probes)
    start = int(rng.integers(0, max(0, n_queries - spread) + 1))
    offsets = np.sort(rng.choice(spread, size=n_probes, replace=False))
    at = np.minimum(start + offsets, n_queries)                            # insertion points, in order
    sybils = n_requesters + np.arange(n_probes) % n_sybils                # new requester ids
    req2, item2, claim2, probe2 = (np.insert(req, at, sybils), np.insert(item, at, item[target]),
                                   np.insert(claim, at, pattern, axis=0), np.insert(probe, at, True))
    return QueryLog(req2, item2, claim2, probe2)


def detection_rates(thresholds: Any, window: int, by: str = "requester", *, n_logs: int = 100,
                    seed: int = 0, n_queries: int = 300, n_items: int = 500, n_requesters: int = 20,
                    revise_rate: float = 0.1, popularity: float = 1.0, n_probes: int = 5, n_sybils: int = 1,
                    spread: int | None = None) -> dict[str, np.ndarray]:
    """Detection and false-alarm rates of :func:`refused` over ``n_logs`` honest and ``n_logs``
    probing logs (:func:`simulate_log`), for each threshold.

    Returns ``{"threshold", "detection", "false_alarm", "refused_honest"}``: the share of probing logs
    with a refused probe, of honest logs with a refused query, and of honest queries refused."""
    th = np.asarray(thresholds)
    if th.ndim != 1 or th.size == 0 or th.dtype.kind not in "iu" or th.min() < 2:
        raise ParameterError("thresholds", np.asarray(thresholds).tolist(), "a 1-d list of integers >= 2")
    n_logs = check_int("n_logs", n_logs, 1)
    seed = check_int("seed", seed, 0)
    honest_rng, probe_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    kw = dict(revise_rate=revise_rate, popularity=popularity)
    detected = np.zeros(th.size)
    alarm = np.zeros(th.size)
    refused_q = np.zeros(th.size)
    for _ in range(n_logs):
        honest = simulate_log(n_queries, n_items, n_requesters, honest_rng, **kw)
        s = probe_statistic(honest, window, by)
        alarm += (s.max() >= th)
        refused_q += (s[:, None] >= th).mean(0)
        probing = simulate_log(n_queries, n_items, n_requesters, probe_rng, n_probes=n_probes,
                               n_sybils=n_sybils, spread=spread, **kw)
        sp = probe_statistic(probing, window, by)[probing.probe]
        detected += (sp.max() >= th)
    return {"threshold": th, "detection": detected / n_logs, "false_alarm": alarm / n_logs,
            "refused_honest": refused_q / n_logs}
