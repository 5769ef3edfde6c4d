"""Inverse-simulation verification of predictions about remanufacturing components (seed 000).

What lives here, one idea per module:

* :mod:`~ppal_lab.verify.bench` — the forward process model (:func:`forward`, the data generator's own
  bench model) and the inverse models :class:`GridInverse` and :class:`MLPInverse`;
* :mod:`~ppal_lab.verify.claims` — :class:`ClaimBatch`, honest claims and the anomaly kinds injected
  into them (:func:`inject_anomalies`);
* :mod:`~ppal_lab.verify.verifier` — the seed's three steps (:class:`Verifier`), the decision model,
  the ROC threshold and ROC curves;
* :mod:`~ppal_lab.verify.attacks` — what revealed similarity scores leak (trilateration);
* :mod:`~ppal_lab.verify.query_audit` — a detector of query patterns that probe one item's readings
  (the trilateration probe above), with its detection and false-alarm rates;
* :mod:`~ppal_lab.verify.gate` — the verified-label gate for the federated protocol's loop, the
  bookkeeping of a gated cycle, and the joint parameter check of a verification study.

Masked FedAvg lives in :mod:`ppal_lab.federated.aggregation` (re-exported here as
:func:`secure_fedavg`); chapter 9's studies (seeds, detection, the gated collaborative cycle) live in
:mod:`ppal_lab.chapters.ch09_inverse_simulation`.

Who may import it: ``chapters``. It imports ``data``, ``learning``, ``federated``, ``secure`` and, from
the machinery, only ``ppal_lab.compendium.errors``.
"""
from __future__ import annotations

from ppal_lab.federated.aggregation import secure_fedavg
from ppal_lab.verify.attacks import probe_claims, reconstruct_readings
from ppal_lab.verify.bench import (BENCH_SD, INVERSE_METHODS, GridInverse, MLPInverse, fit_inverse, forward,
                                   make_inverse)
from ppal_lab.verify.claims import (ANOMALY_KINDS, GRADED_KINDS, HEALTH_STEP, ClaimBatch, honest_batch,
                                    inject_anomalies)
from ppal_lab.verify.gate import GATES, CycleResult, VerifiedLabelGate, cycle_result, validate_setup
from ppal_lab.verify.verifier import (SEED_THRESHOLD, TAU_HEALTH, DecisionModel, DetectionResult, Verifier,
                                      detection_by_severity, fit_verifier, roc_by_kind, threshold_at_fpr)

__all__ = [
    "ANOMALY_KINDS",
    "BENCH_SD",
    "ClaimBatch",
    "CycleResult",
    "DecisionModel",
    "DetectionResult",
    "GATES",
    "GRADED_KINDS",
    "GridInverse",
    "HEALTH_STEP",
    "INVERSE_METHODS",
    "MLPInverse",
    "SEED_THRESHOLD",
    "TAU_HEALTH",
    "VerifiedLabelGate",
    "Verifier",
    "cycle_result",
    "detection_by_severity",
    "fit_inverse",
    "fit_verifier",
    "forward",
    "honest_batch",
    "inject_anomalies",
    "make_inverse",
    "probe_claims",
    "reconstruct_readings",
    "roc_by_kind",
    "secure_fedavg",
    "threshold_at_fpr",
    "validate_setup",
]
