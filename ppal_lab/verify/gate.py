"""The verified-label gate: a label gate for :class:`ppal_lab.federated.FederatedProtocol` that lets a
site's new (claim, label) pairs into the training sets only if they pass the inverse-simulation verifier.

The seed's collaborative cycle (local training, aggregation, uncertainty queries, labels from each site's
inspector, verification, an update with verified labels only) is the federated protocol's own loop with
this gate between labelling and training: a rejected item leaves the site's training set but stays
inspected, so it is not queried again and its label cost is spent. Gates: ``"none"``, ``"label"`` (drop
each unverified label) and ``"batch"`` (the seed's rule: keep a round's labels only if *all* of them
verify). The initial random labels pass the per-label rule in both gated modes. The gate acts on labels
before training and is orthogonal to DP.

:func:`validate_setup` checks the parameters of a verification study (detection stream, secure batch
and gated cycle) together, before any work.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real
from ppal_lab.learning.active import STRATEGIES
from ppal_lab.verify.bench import INVERSE_METHODS
from ppal_lab.verify.claims import ClaimBatch, _kinds
from ppal_lab.verify.verifier import Verifier

__all__ = ["GATES", "CycleResult", "VerifiedLabelGate", "cycle_result", "validate_setup"]

GATES: tuple[str, ...] = ("none", "label", "batch")


class VerifiedLabelGate:
    """``gate(round_index, new) -> keep`` for :class:`~ppal_lab.federated.FederatedProtocol`.

    Parameters
    ----------
    gate : {"none", "label", "batch"}
        No gate, drop each unverified label, or the seed's all-or-nothing rule per round.
    verifier : Verifier
        The fitted verifier; it checks claims at ``threshold``.
    threshold : float
        Verification threshold on ``min(similarity, consistency)``, in [0, 1].
    claims : ClaimBatch
        One claim per pool item; its labels are the inspectors' answers.
    parts : sequence of numpy.ndarray
        Pool items of each site (a site's local position ``i`` is pool item ``parts[p][i]``).

    Attributes
    ----------
    decisions : list of (int, numpy.ndarray, numpy.ndarray)
        Every decision ``(site, local positions, keep)``, in order (the simulation's bookkeeping).
    """

    def __init__(self, gate: str, verifier: Verifier, threshold: float, claims: ClaimBatch,
                 parts: Sequence[np.ndarray]) -> None:
        self.gate = check_choice("gate", gate, GATES)
        if not isinstance(claims, ClaimBatch):
            raise ParameterError("claims", type(claims).__name__, "a ClaimBatch")
        self.verifier, self.threshold = verifier, check_real("threshold", threshold, 0.0, 1.0)
        self.claims, self.parts = claims, list(parts)
        self.decisions: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._verdicts: np.ndarray | None = None

    def verified(self, p: int, positions: np.ndarray) -> np.ndarray:
        """Whether each new label of site ``p`` verifies (all True without a gate)."""
        if self.gate == "none" or positions.size == 0:
            return np.ones(positions.size, dtype=bool)
        if self._verdicts is None:  # an item's verdict depends on its claim only: verify the pool once
            self._verdicts = self.verifier.verify(self.claims, self.threshold)["verified"].to_numpy()
        return self._verdicts[self.parts[p][positions]]

    def __call__(self, round_index: int, new: list[np.ndarray]) -> list[np.ndarray]:
        new = [np.asarray(pos, dtype=np.int64) for pos in new]
        ok = [self.verified(p, pos) for p, pos in enumerate(new)]
        if self.gate == "batch" and round_index >= 0 and not all(o.all() for o in ok):
            ok = [np.zeros_like(o) for o in ok]
        self.decisions.extend((p, pos, o) for p, (pos, o) in enumerate(zip(new, ok)))
        return ok


@dataclass
class CycleResult:
    """One run of the collaborative cycle.

    Attributes
    ----------
    labels_bought : numpy.ndarray
        Inspections paid after each training round (initial labels included).
    labels_used : numpy.ndarray
        Labels in the training sets after each round (accepted by the gate).
    accuracy : numpy.ndarray
        Test accuracy of the global model after each round.
    bought, accepted, wrong_used : numpy.ndarray of int
        Per site: labels bought, labels accepted, accepted labels that are wrong.
    corrupted_rejected : float
        Share of the wrong labels bought (all sites) that the gate rejected (NaN if none was wrong).
    correct_rejected : float
        Share of the correct labels bought that the gate rejected.
    wall_time_s : float
    """

    labels_bought: np.ndarray
    labels_used: np.ndarray
    accuracy: np.ndarray
    bought: np.ndarray
    accepted: np.ndarray
    wrong_used: np.ndarray
    corrupted_rejected: float
    correct_rejected: float
    wall_time_s: float

    @property
    def final_accuracy(self) -> float:
        return float(self.accuracy[-1])


def cycle_result(label_gate: VerifiedLabelGate, wrong: np.ndarray, parts: Sequence[np.ndarray], sites: Sequence[Any],
                 history: Any, t_start: float) -> CycleResult:
    """Count wrong labels bought, rejected and used from the gate's decisions (simulation truth: ``wrong``
    marks the pool items whose label is wrong, ``parts`` the pool items of each site; ``sites`` are the
    protocol's participants and ``history`` its run's history)."""
    wrong_bought = rejected_wrong = rejected_right = 0
    for p, pos, keep in label_gate.decisions:
        w = wrong[parts[p][pos]]
        wrong_bought += int(w.sum())
        rejected_wrong += int(w[~keep].sum())
        rejected_right += int((~w[~keep]).sum())
    bought = np.array([s.n_inspected for s in sites])
    n_wrong_bought, n_right_bought = wrong_bought, int(bought.sum()) - wrong_bought
    wrong_used = np.array([int(wrong[parts[p][s.labelled_positions]].sum())
                           for p, s in enumerate(sites)])
    return CycleResult(
        labels_bought=np.array(history.n_labels), labels_used=np.array(history.n_used),
        accuracy=np.array(history.accuracy), bought=bought,
        accepted=np.array([s.n_labelled for s in sites]), wrong_used=wrong_used,
        corrupted_rejected=rejected_wrong / n_wrong_bought if n_wrong_bought else float("nan"),
        correct_rejected=rejected_right / n_right_bought if n_right_bought else float("nan"),
        wall_time_s=time.perf_counter() - t_start)


def validate_setup(n_items: int, anomaly_rate: float, anomaly_kinds: Sequence[str], fpr_target: float,
                   threshold: float, inverse: str, *, n_sites: int = 4, label_budget: int = 400,
                   batch_size: int = 5, strategy: str = "least_confident", corrupt_rate: float = 1.0,
                   initial_labels: int = 20, test_fraction: float = 0.25, n_secure: int = 256,
                   min_per_kind: int = 5, verifier_labels: int = 400) -> None:
    """Check chapter 9's parameters together, before any work (each alone is checked by its spec).

    Raises :class:`~ppal_lab.compendium.errors.ParameterError` when the anomaly rate leaves fewer than
    ``min_per_kind`` anomalies of some kind, the label budget does not fit the cycle's pool, the
    verifier's trusted labels exceed the consortium's label budget, or the secure batch (``n_secure``
    items plus 5 probes) does not fit the test stream.
    """
    n_items = check_int("n_items", n_items, 100, 1_000_000)
    check_int("n_secure", n_secure, 1, n_items)
    kinds = _kinds(anomaly_kinds)
    anomaly_rate = check_real("anomaly_rate", anomaly_rate, 0.0, 1.0, high_open=True)
    check_real("fpr_target", fpr_target, 0.0, 1.0, low_open=True, high_open=True)
    check_real("threshold", threshold, 0.0, 1.0, low_open=True, high_open=True)
    check_choice("inverse", inverse, INVERSE_METHODS)
    per_kind = int(round(anomaly_rate * n_items)) // len(kinds)
    if per_kind < min_per_kind:
        need = min_per_kind * len(kinds) / n_items
        raise ParameterError("anomaly_rate", anomaly_rate,
                             f">= {need:.3g} so that each of the {len(kinds)} anomaly kinds gets at least "
                             f"{min_per_kind} of the n_items = {n_items} test items")
    n_sites = check_int("n_sites", n_sites, 2, 100)
    check_choice("strategy", strategy, STRATEGIES)
    check_real("corrupt_rate", corrupt_rate, 0.0, 1.0)
    pool = n_items - int(round(test_fraction * n_items))
    initial_labels = check_int("initial_labels", initial_labels, n_sites, pool - 1)
    label_budget = check_int("label_budget", label_budget, initial_labels + 1, pool)
    check_int("batch_size", batch_size, 1, label_budget)
    check_int("verifier_labels", verifier_labels, 20, label_budget)  # no more than the consortium pays for

