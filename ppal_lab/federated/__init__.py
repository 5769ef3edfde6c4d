"""Federated, differentially private active learning over a horizontal partition: one protocol.

What lives here, one idea per module:

* :mod:`~ppal_lab.federated.orchestrator` — :func:`run_federated_al` (the protocol, its unit of
  privacy, who learns what and the per-site accounting are documented there) and
  :class:`FederatedResult`;
* :mod:`~ppal_lab.federated.centralized` — the centralized non-private reference :func:`run_centralized`;
* :mod:`~ppal_lab.federated.protocol` — the round loop (:class:`FederatedProtocol`: training,
  evaluation, query, allocation, an optional label gate), the in-process engine
  (:class:`LocalSites`), :func:`allocate_batch`, :func:`federated_round`, the initial split and the
  seed streams;
* :mod:`~ppal_lab.federated.flower_app` — the same protocol as a Flower app (orchestrator ServerApp,
  site ClientApp; simulation and deployment engines). Imported on demand: it loads Flower;
* :mod:`~ppal_lab.federated.participant` — one site (:class:`Participant`) and the normalised scores
  it releases;
* :mod:`~ppal_lab.federated.training` — the global model, :class:`TrainingPlan` and local (DP-)SGD;
* :mod:`~ppal_lab.federated.accounting` — the per-site budget and the up-front noise multiplier;
* :mod:`~ppal_lab.federated.aggregation` — :func:`fedavg` and masked :func:`secure_fedavg`.

Who may import it: the ``verify`` room and ``chapters``. It imports ``learning``, ``privacy`` and,
from the machinery, only ``ppal_lab.compendium.errors``.
"""
from __future__ import annotations

from ppal_lab.federated.accounting import ACCOUNTING_ALPHAS
from ppal_lab.federated.aggregation import check_average_inputs, fedavg, secure_fedavg
from ppal_lab.federated.centralized import run_centralized
from ppal_lab.federated.orchestrator import FederatedResult, run_federated_al
from ppal_lab.federated.participant import Participant, normalized_scores
from ppal_lab.federated.protocol import (FederatedProtocol, History, LocalSites, allocate_batch,
                                         federated_round, initial_split, seed_streams)
from ppal_lab.federated.training import MODELS, TrainingPlan, make_model

__all__ = [
    "ACCOUNTING_ALPHAS",
    "FederatedProtocol",
    "FederatedResult",
    "History",
    "LocalSites",
    "MODELS",
    "Participant",
    "TrainingPlan",
    "allocate_batch",
    "check_average_inputs",
    "fedavg",
    "federated_round",
    "initial_split",
    "make_model",
    "normalized_scores",
    "run_centralized",
    "run_federated_al",
    "secure_fedavg",
    "seed_streams",
]
