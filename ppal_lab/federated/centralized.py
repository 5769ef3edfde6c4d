"""The centralized, non-private reference of the federated runs: one party holds the whole pool and
trains the same model with the same rounds, steps and seed streams, without participants, FedAvg or
allocation. A one-participant non-private federated run equals it (tested), which checks that machinery;
chapter 2 divides federated accuracy by its accuracy ("fraction of centralized accuracy").
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ppal_lab.compendium.errors import ParameterError, check_matrix
from ppal_lab.federated.orchestrator import FederatedResult, _validate
from ppal_lab.federated.protocol import seed_streams
from ppal_lab.federated.training import TrainingPlan, _local_sgd, make_model
from ppal_lab.learning.active import LearningCurve, top_k, uncertainty_scores

__all__ = ["run_centralized"]


def run_centralized(X: Any, y: Any, X_test: Any, y_test: Any, label_budget: int, batch_size: int,
                    strategy: str, model: str = "logreg", local_epochs: int = 2, seed: int = 0, *,
                    sample_rate: float = 0.5, lr: float = 2.0, hidden: int = 32,
                    initial_labels: int = 20, pool: Any = None,
                    scaling: tuple[np.ndarray, np.ndarray] | None = None,
                    progress: bool = False) -> FederatedResult:
    """Centralized, non-private reference: one party holds the whole pool, same model and training.

    This is the like-for-like baseline for "fraction of centralized accuracy at the same label
    budget": the same model class, the same warm-started rounds of ``ceil(local_epochs /
    sample_rate)`` Poisson-sampled SGD steps, exact top-``batch_size`` uncertainty queries over the
    pooled items, and the same seed streams as a one-participant federated run. It is written
    without participants, FedAvg or allocation, so that a non-private one-participant federated run
    equalling it (tested) checks that machinery.

    Parameters
    ----------
    pool : array_like of int, optional
        Rows of ``X`` forming the pool (default: all; pass the union of a partition to compare with a
        federated run on it). Other parameters as in :func:`run_federated_al`.

    Returns
    -------
    FederatedResult
        With one participant, ``epsilon=None`` and ``epsilon_spent = [inf]``.
    """
    n = check_matrix("X", X).shape[0]
    if pool is None:
        rows = np.arange(n)
    else:
        rows = np.asarray(pool)
        if rows.ndim != 1 or rows.dtype.kind not in "iu":
            raise ParameterError("pool", f"array of dtype {rows.dtype}, shape {rows.shape}",
                                 "a 1-d integer index array")
        rows = np.sort(rows)
    v = _validate(X, y, X_test, y_test, [rows], label_budget, batch_size, strategy, None, 1e-5, 0.2,
                  model, local_epochs, sample_rate, lr, 1.0, hidden, initial_labels, None, seed,
                  progress, scaling)
    return _run_centralized(v)


def _run_centralized(v: dict) -> FederatedResult:
    """Plain pool-based AL with the federated run's model, training steps and seed streams, but no
    participants, no FedAvg and no allocation: the reference the federated machinery must reduce to
    with one site."""
    t_start = time.perf_counter()
    rows = v["parts"][0]
    strategy, b, budget_labels = v["strategy"], v["batch_size"], v["label_budget"]
    plan = TrainingPlan(v["sample_rate"], math.ceil(v["local_epochs"] / v["sample_rate"]), v["lr"],
                        v["max_grad_norm"], None)
    _, model_seed, (rng,), ((sampling_seed, _),) = seed_streams(v["seed"], 1)
    X = torch.as_tensor(((v["X"][rows] - v["center"]) / v["scale"]).astype(np.float32))
    y = torch.as_tensor(v["y"][rows])
    Xt = torch.as_tensor(((v["X_test"] - v["center"]) / v["scale"]).astype(np.float32))
    labelled = np.zeros(rows.size, dtype=bool)
    order = [int(i) for i in rng.choice(rows.size, size=v["initial_labels"], replace=False)]
    labelled[order] = True
    n_labels, accuracy, round_time = [], [], []
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = make_model(v["model"], X.shape[1], v["n_classes"], v["hidden"], model_seed)
        optimizer = torch.optim.SGD(net.parameters(), lr=v["lr"])
        loss_fn = nn.CrossEntropyLoss(reduction="sum")
        sampling = torch.Generator().manual_seed(sampling_seed)
        bar = None
        if v["progress"]:
            from tqdm.auto import tqdm

            bar = tqdm(total=math.ceil((budget_labels - len(order)) / b) + 1,
                       desc=f"centralized AL {strategy}", leave=False)
        while True:
            t0 = time.perf_counter()
            _local_sgd(net, optimizer, loss_fn, X, y, np.asarray(order), plan, sampling)
            with torch.no_grad():
                accuracy.append(float(np.mean(net(Xt).argmax(dim=1).numpy() == v["y_test"])))
            n_labels.append(len(order))
            if len(order) < budget_labels:
                want = min(b, budget_labels - len(order))
                cand = np.flatnonzero(~labelled)
                if strategy == "random":
                    new = rng.choice(cand, size=want, replace=False)
                else:
                    with torch.no_grad():
                        proba = torch.softmax(net(X[cand]), dim=1).double().numpy()
                    new = cand[top_k(uncertainty_scores(proba, strategy), want)]
                labelled[new] = True
                order.extend(int(i) for i in new)
            round_time.append(time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
            if n_labels[-1] >= budget_labels:
                break
        if bar is not None:
            bar.close()
    finally:
        torch.set_num_threads(prev_threads)
    queried = rows[np.asarray(order)]
    return FederatedResult(
        curve=LearningCurve(np.asarray(n_labels), np.asarray(accuracy), strategy, v["seed"],
                            queried),
        epsilon_spent=np.array([math.inf]), labels_per_participant=np.array([len(order)]),
        dpsgd_steps=np.array([0]), round_time_s=round_time, epsilon=None, delta=v["delta"],
        query_share=v["query_share"], noise_multiplier=None, plan=plan, labelled=[queried],
        ledgers=[{}], log=[], stopped_early=False, wall_time_s=time.perf_counter() - t_start)
