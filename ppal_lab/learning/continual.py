r"""Continual learning under drift: a small network trained quarter by quarter, with and without EWC.

The magnet-grade data of :func:`ppal_lab.data.make_magnet_grades` arrive in quarters
(``meta["quarter"]``) whose inputs *and* label relation drift. A model that is updated every quarter
may lose what it knew about earlier quarters ("catastrophic forgetting"). This module measures that
for three ways of updating a small multilayer perceptron (MLP):

* ``"finetune"`` — start from last quarter's weights and train on this quarter's labels only;
* ``"ewc"`` — the same plus the elastic weight consolidation (EWC) penalty of Kirkpatrick et al.
  (2017), which pulls each weight back toward its value after every earlier quarter, in proportion to
  how much that weight mattered there (its diagonal Fisher information);
* ``"joint"`` — the reference: a fresh network trained on the labels of every quarter seen so far.

The pieces live beside this module: :mod:`ppal_lab.learning.quarter_tasks` (the encoder for missing
values and the quarterly tasks) and :mod:`ppal_lab.learning.ewc` (the network, the Fisher information,
the EWC penalty and training); this module runs one quarter-by-quarter sequence and scores it.

**Metrics** (Lopez-Paz and Ranzato, 2017; Chaudhry et al., 2018), from the accuracy matrix
``R[i, j]`` = accuracy on quarter *j*'s test drives after training through quarter *i*:
average accuracy ``mean_j R[T-1, j]``; backward transfer ``mean_{j<T-1} (R[T-1, j] - R[j, j])``
(negative = forgetting for accuracy and ROC AUC; for log-loss, where lower is better, positive =
forgetting); and plasticity ``mean_j R[j, j]`` (the score on the quarter just learned). The
"forgetting" of Chaudhry et al. (``max_l R[l, j] - R[T-1, j]``) is not kept: a maximum of noisy
scores is positive even when nothing is forgotten, while backward transfer is unbiased.

Scores are kept on each quarter's test drives and, when the tasks have them, on its validation drives
(``val_*``), on which the chapter chooses EWC's penalty weight; test drives never choose anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real
from ppal_lab.learning.active import STRATEGIES, query
from ppal_lab.learning.ewc import (CONSOLIDATIONS, EWC, FISHER_KINDS, TorchClassifier, check_hidden, make_mlp,
                                   train_quarter)
from ppal_lab.learning.quarter_tasks import QuarterTasks, seed_of

__all__ = [
    "ContinualRun",
    "METHODS",
    "SCORES",
    "check_settings",
    "check_training",
    "cl_metrics",
    "lambda_grid",
    "run_sequence",
]

METHODS = ("finetune", "ewc", "joint")
#: Scores kept for every (train quarter, eval quarter) pair.
SCORES = ("accuracy", "balanced_accuracy", "roc_auc", "log_loss")


# --------------------------------------------------------------------------------------------------
# One quarter-by-quarter run
# --------------------------------------------------------------------------------------------------
def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    recalls = [np.mean(pred[y == c] == c) for c in np.unique(y)]
    return float(np.mean(recalls))


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary ROC AUC of the class-1 probability (one-vs-rest macro average for more classes);
    NaN when the test drives hold a single class."""
    from sklearn.metrics import roc_auc_score

    if np.unique(y).size < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=np.arange(proba.shape[1])))


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (nats)."""
    from sklearn.metrics import log_loss

    return float(log_loss(y, proba, labels=np.arange(proba.shape[1])))


@dataclass
class ContinualRun:
    """Result of :func:`run_sequence`: ``accuracy[i, j]`` (and ``balanced_accuracy[i, j]``, ROC AUC
    ``roc_auc[i, j]``, log-loss ``log_loss[i, j]``) on quarter ``j``'s test drives after training through
    quarter ``i``; ``val_roc_auc`` / ``val_log_loss`` the same on its validation drives (NaN without
    them); ``epochs_run[i]`` the epochs quarter ``i`` was trained for (with validation drives: the
    epoch of the best held-out fit, see :func:`run_sequence`)."""

    method: str
    ewc_lambda: float
    seed: int
    accuracy: np.ndarray
    balanced_accuracy: np.ndarray
    roc_auc: np.ndarray
    log_loss: np.ndarray
    val_roc_auc: np.ndarray
    val_log_loss: np.ndarray
    epochs_run: np.ndarray
    n_train: np.ndarray = field(repr=False)
    queried: list[np.ndarray] = field(repr=False, default_factory=list)

    @property
    def label(self) -> str:
        return f"EWC λ={self.ewc_lambda:g}" if self.method == "ewc" else self.method

    def metrics(self) -> dict[str, float]:
        return cl_metrics(self.accuracy)

    def as_frame(self) -> pd.DataFrame:
        """Long form: one row per (train quarter, eval quarter)."""
        T = self.accuracy.shape[0]
        i, j = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
        return pd.DataFrame({"seed": self.seed, "method": self.method, "ewc_lambda": self.ewc_lambda,
                             "label": self.label, "train_quarter": i.ravel(), "eval_quarter": j.ravel(),
                             "accuracy": self.accuracy.ravel(),
                             "balanced_accuracy": self.balanced_accuracy.ravel(),
                             "roc_auc": self.roc_auc.ravel(), "log_loss": self.log_loss.ravel(),
                             "val_roc_auc": self.val_roc_auc.ravel(), "val_log_loss": self.val_log_loss.ravel(),
                             "epochs_run": self.epochs_run[i.ravel()]})


def check_training(epochs: int, hidden: Sequence[int] | int, lr: float, batch_size: int, fisher: str,
                   consolidation: str, strategy: str) -> tuple[int, tuple[int, ...], float, int]:
    """Validate the training settings of :func:`run_sequence` (before any data exist); returns
    ``(epochs, hidden, lr, batch_size)`` normalised."""
    epochs = check_int("epochs", epochs, 1, 100_000)
    hidden = check_hidden(hidden)
    lr = check_real("lr", lr, 0.0, 10.0, low_open=True)
    batch_size = check_int("batch_size", batch_size, 1)
    check_choice("fisher", fisher, FISHER_KINDS)
    check_choice("consolidation", consolidation, CONSOLIDATIONS)
    check_choice("strategy", strategy, STRATEGIES)
    return epochs, hidden, lr, batch_size


def run_sequence(tasks: QuarterTasks, method: str, *, ewc_lambda: float = 0.0, epochs: int = 30,
                 hidden: Sequence[int] | int = (32, 32), lr: float = 1e-3, batch_size: int = 32,
                 fisher: str = "true", consolidation: str = "per_task", strategy: str = "random",
                 seed: int = 0) -> ContinualRun:
    """Train one network quarter by quarter and score it on every quarter's test drives.

    ``method="finetune"`` continues from last quarter's weights; ``"ewc"`` adds the EWC penalty
    (``ewc_lambda``, ``fisher``, ``consolidation``; the Fisher of a quarter is taken on its labelled
    drives right after training on it); ``"joint"`` trains a fresh network (same initial weights) on
    all labels seen so far. The same ``seed`` gives the same initial weights and minibatch order for
    every method, so methods are compared pairwise.

    When ``tasks`` has validation drives, each quarter is trained to convergence of its held-out fit:
    ``epochs`` is then a maximum, training stops once the cross-entropy on the quarter's validation
    drives (for ``"joint"``: on those of every quarter so far) has not improved for three epochs, and
    the best epoch's weights are kept (:func:`ppal_lab.learning.ewc.train_quarter`).

    ``strategy="random"`` trains on ``tasks.labelled[q]``; an uncertainty strategy
    (``"least_confident"``, ``"margin"``, ``"entropy"``) labels the first quarter the same way and,
    in every later quarter, asks the oracle for the ``n_labels`` drives of that quarter's pool on which
    the current network is most uncertain (:func:`ppal_lab.learning.active.query`).
    """
    if not isinstance(tasks, QuarterTasks):
        raise ParameterError("tasks", type(tasks).__name__, "a QuarterTasks")
    check_choice("method", method, METHODS)
    ewc_lambda = check_real("ewc_lambda", ewc_lambda, 0.0)
    if method != "ewc" and ewc_lambda != 0.0:
        raise ParameterError("ewc_lambda", ewc_lambda, f"0 for method {method!r}")
    epochs, hidden, lr, batch_size = check_training(epochs, hidden, lr, batch_size, fisher, consolidation,
                                                    strategy)
    seed = check_int("seed", seed, 0)

    T = tasks.n_quarters
    n_classes = int(max(max(y.max() for y in tasks.y_pool), max(y.max() for y in tasks.y_test))) + 1
    n_classes = max(n_classes, 2)
    init_seed = seed_of(seed, 1)
    model = make_mlp(tasks.n_inputs, hidden, n_classes, init_seed)
    ewc = EWC(ewc_lambda, fisher, consolidation) if method == "ewc" else None
    acc, bacc, auc, ll = (np.zeros((T, T)) for _ in range(4))
    val_auc, val_ll, epochs_run = np.full((T, T), np.nan), np.full((T, T), np.nan), np.zeros(T, dtype=int)
    seen_val = []
    n_train, queried, seen_X, seen_y = np.zeros(T, dtype=int), [], [], []
    for q in range(T):
        if strategy == "random" or q == 0:
            pos = tasks.labelled[q]
        else:
            pos = query(TorchClassifier(model), tasks.X_pool[q], strategy, tasks.n_labels)
        queried.append(np.asarray(pos))
        Xq, yq = tasks.train_set(q, pos)
        seen_X.append(Xq)
        seen_y.append(yq)
        seen_val.append((tasks.X_val[q], tasks.y_val[q]))
        val = seen_val[-1]
        if method == "joint":
            model = make_mlp(tasks.n_inputs, hidden, n_classes, init_seed)
            Xq, yq = np.vstack(seen_X), np.concatenate(seen_y)
            val = (np.vstack([v[0] for v in seen_val]), np.concatenate([v[1] for v in seen_val]))
        n_train[q] = len(yq)
        losses = train_quarter(model, Xq, yq, epochs=epochs, batch_size=batch_size, lr=lr,
                               seed=seed_of(seed, 2, q), penalty=None if ewc is None else ewc.penalty,
                               val=val if len(val[1]) else None)
        epochs_run[q] = getattr(model, "best_epoch_", len(losses)) if len(val[1]) else len(losses)
        if ewc is not None and q < T - 1:
            ewc.consolidate(model, Xq, yq)
        clf = TorchClassifier(model)
        for j in range(T):
            proba = clf.predict_proba(tasks.X_test[j])
            pred = proba.argmax(axis=1)
            acc[q, j] = float(np.mean(pred == tasks.y_test[j]))
            bacc[q, j] = _balanced_accuracy(tasks.y_test[j], pred)
            auc[q, j] = _roc_auc(tasks.y_test[j], proba)
            ll[q, j] = _log_loss(tasks.y_test[j], proba)
            if len(tasks.y_val[j]):
                proba = clf.predict_proba(tasks.X_val[j])
                val_auc[q, j], val_ll[q, j] = _roc_auc(tasks.y_val[j], proba), _log_loss(tasks.y_val[j], proba)
    return ContinualRun(method, ewc_lambda, seed, acc, bacc, auc, ll, val_auc, val_ll, epochs_run, n_train, queried)


def cl_metrics(R: Any) -> dict[str, float]:
    """Continual-learning metrics of a score matrix ``R`` (T x T, T >= 2; see module docstring):
    ``average_accuracy`` (the mean score of the final model), ``backward_transfer``, ``plasticity``,
    ``past_accuracy`` (mean score on quarters 0..T-2 after the last quarter) and ``current_accuracy``
    (``R[-1, -1]``). The names say "accuracy" for any score (ROC AUC, log-loss)."""
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 2 or not np.all(np.isfinite(R)):
        raise ParameterError("R", f"array of shape {R.shape}", "a finite square matrix, at least 2x2")
    T = R.shape[0]
    past = np.arange(T - 1)
    return {
        "average_accuracy": float(R[-1].mean()),
        "backward_transfer": float(np.mean(R[-1, past] - R[past, past])),
        "plasticity": float(np.mean(np.diag(R))),
        "past_accuracy": float(np.mean(R[-1, past])),
        "current_accuracy": float(R[-1, -1]),
    }


# --------------------------------------------------------------------------------------------------
# Settings checked before any data exist
# --------------------------------------------------------------------------------------------------
def lambda_grid(lambda_min: float, lambda_max: float, n: int) -> list[float]:
    """``n`` geometrically spaced penalty strengths from ``lambda_min`` to ``lambda_max`` (> 0)."""
    lo = check_real("lambda_min", lambda_min, 0.0, low_open=True)
    hi = check_real("lambda_max", lambda_max, lo)
    n = check_int("n_lambdas", n, 1, 100)
    if n == 1:
        return [lo]
    return [float(f"{v:.6g}") for v in np.geomspace(lo, hi, n)]


def check_settings(n_per_month: int, n_labels: int, n_test: int, label_rate: float = 0.02,
                   n_months: int = 12) -> None:
    """Cross-parameter checks of the chapter's experiment driver, done by arithmetic before any data exist:
    ``n_labels`` cannot exceed the labelled drives of a quarter, nor ``n_test`` its unlabelled ones."""
    n_per_month = check_int("n_per_month", n_per_month, 1)
    n_months = check_int("n_months", n_months, 6)
    label_rate = check_real("label_rate", label_rate, 0.0, 1.0, low_open=True)
    per_month = max(1, round(label_rate * n_per_month))
    labelled = 3 * per_month
    check_int("n_labels", n_labels, 1, labelled)
    check_int("n_test", n_test, 1, 3 * (n_per_month - per_month))
