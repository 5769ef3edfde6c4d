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

Choices made here, stated once
------------------------------
**Labels.** The network trains on *labelled drives only* (supervised; the unlabelled 98% are used
for nothing but the encoder's statistics and, optionally, as an active-learning pool). Each quarter
contributes ``n_labels`` drives drawn uniformly from the drives the generator marked as labelled.

**Missing values.** :class:`MissingnessEncoder`: numeric columns are (for non-negative, right-skewed
columns) ``log1p``-transformed, standardised with the *first quarter's* observed mean and standard
deviation, clipped to ``[-8, 8]``, and a missing value is imputed by that mean (0 after
standardisation). Categorical columns are one-hot encoded over a fixed code book (a missing code is
all zeros). Every column also gets a 0/1 missingness indicator, so the network can tell an imputed 0
from an observed average value (under MCAR the indicators carry no label information; under MAR and
MNAR they can). The encoder is fitted once, before the first quarter, and then frozen so that a weight
always means the same input.

**EWC.** After training on quarter :math:`t` we store the weights :math:`\theta^*_t` and the
diagonal Fisher information on that quarter's labelled drives, and while training on any later quarter
we minimise

.. math:: L(\theta) = \frac{1}{|B|}\sum_{(x, y)\in B} -\log p_\theta(y\mid x)
          + \frac{\lambda}{2} \sum_{t' < t} \sum_i F_{t',i}\,(\theta_i - \theta^*_{t',i})^2 .

* ``fisher="true"`` (default): :math:`F_i = \frac1N\sum_n \sum_c p_\theta(c\mid x_n)
  \big(\partial_{\theta_i} \log p_\theta(c\mid x_n)\big)^2`, the Fisher information of the model's own
  predictive distribution, with the expectation over :math:`c` computed exactly (two classes), as in
  Kirkpatrick et al. (2017); ``fisher="empirical"`` uses the observed label :math:`y_n` instead of the
  expectation (the "empirical Fisher", a different and often worse curvature proxy).
* ``consolidation="per_task"`` (default): one penalty per past quarter, each with its own anchor and
  Fisher, as in the original paper; ``"online"`` keeps a single penalty with anchor
  :math:`\theta^*_{t}` and running Fisher :math:`F \leftarrow \gamma F + F_t` ("online EWC",
  Schwarz et al. 2018).
* Both the loss and the Fisher are *means* over drives, so :math:`\lambda = 1` is the value at which
  each past quarter's quadratic approximation weighs as much as a quarter of fresh data with the same
  number of labels (the Laplace approximation of joint training). Larger values are common in practice.

**Metrics** (Lopez-Paz and Ranzato, 2017; Chaudhry et al., 2018), from the accuracy matrix
``R[i, j]`` = accuracy on quarter *j*'s test drives after training through quarter *i*:
average accuracy ``mean_j R[T-1, j]``; backward transfer ``mean_{j<T-1} (R[T-1, j] - R[j, j])``
(negative = forgetting); forgetting ``mean_{j<T-1} (max_{j<=l<T-1} R[l, j] - R[T-1, j])``; and
plasticity ``mean_j R[j, j]`` (accuracy on the quarter just learned).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import skew
from torch import nn

from ppal_lab.learning.active import STRATEGIES, query
from ppal_lab.data import SupplyChainData, make_magnet_grades
from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_range, check_real

__all__ = [
    "METHODS", "SCORES", "FISHER_KINDS", "CONSOLIDATIONS", "MissingnessEncoder", "QuarterTasks",
    "make_quarter_tasks", "make_mlp", "fisher_diagonal", "ewc_penalty", "EWC", "train_quarter",
    "TorchClassifier", "ContinualRun", "run_sequence", "cl_metrics", "lambda_grid", "check_settings",
    "run_experiment", "summarise", "mean_matrix", "per_quarter", "paired_difference", "ci_sign",
    "metric_table", "ci_table", "forgetting_verdict", "mitigation_verdict",
]

METHODS = ("finetune", "ewc", "joint")
#: Scores kept for every (train quarter, eval quarter) pair.
SCORES = ("accuracy", "balanced_accuracy", "roc_auc")
FISHER_KINDS = ("true", "empirical")
CONSOLIDATIONS = ("per_task", "online")
_CLIP = 8.0


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------
def _hidden(value: Any) -> tuple[int, ...]:
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise ParameterError("hidden", value, "a non-empty tuple of layer widths >= 1")
    return tuple(check_int("hidden", v, 1, 4096) for v in value)


def _matrix(name: str, X: Any, n_cols: int | None = None) -> np.ndarray:
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or (n_cols is not None and arr.shape[1] != n_cols):
        want = "a 2-d array with at least one row" + (f" and {n_cols} columns" if n_cols else "")
        raise ParameterError(name, f"array of shape {arr.shape}", want)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(name, "an array with NaN or inf", "finite values (encode first)")
    return arr


def _labels(name: str, y: Any, n: int, n_classes: int | None = None) -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n,) or arr.dtype.kind not in "iub" or (arr.size and arr.min() < 0):
        raise ParameterError(name, f"array of shape {arr.shape}, dtype {arr.dtype}",
                             f"{n} non-negative integer labels")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise ParameterError(name, int(arr.max()), f"class labels in [0, {n_classes - 1}]")
    return arr.astype(np.int64)


def _module(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ParameterError("model", type(model).__name__, "a torch.nn.Module")
    return model


def _seed_of(*parts: int) -> int:
    """A 63-bit seed derived from integers (seed, quarter, ...), independent across parts."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


# --------------------------------------------------------------------------------------------------
# Missing values: imputation + missingness indicators
# --------------------------------------------------------------------------------------------------
class MissingnessEncoder:
    """Mean imputation, standardisation, one-hot codes and a missingness indicator per column.

    Parameters
    ----------
    categorical : sequence of str
        Columns holding nominal codes (one-hot encoded).
    levels : dict, optional
        Code book: column -> the codes to one-hot encode. Columns not in it use the codes observed in
        the block passed to :meth:`fit`. Codes outside the book (and missing codes) encode as zeros.

    Notes
    -----
    A numeric column is ``log1p``-transformed when its observed values in the fitted block are all
    non-negative and their skewness exceeds 1 (counts, capacities, hours).
    """

    def __init__(self, categorical: Sequence[str] = (), levels: dict[str, Iterable[float]] | None = None):
        if isinstance(categorical, str) or not all(isinstance(c, str) for c in categorical):
            raise ParameterError("categorical", categorical, "a sequence of column names")
        if levels is not None and not isinstance(levels, dict):
            raise ParameterError("levels", type(levels).__name__, "a dict column -> codes, or None")
        self.categorical = tuple(categorical)
        self.levels = {k: tuple(float(v) for v in vals) for k, vals in (levels or {}).items()}
        self.columns_: tuple[str, ...] | None = None

    def fit(self, X: pd.DataFrame) -> MissingnessEncoder:
        """Learn the statistics of ``X`` (a DataFrame with NaN for missing values)."""
        if not isinstance(X, pd.DataFrame) or len(X) == 0:
            raise ParameterError("X", type(X).__name__, "a non-empty pandas.DataFrame")
        unknown = [c for c in self.categorical if c not in X.columns]
        if unknown:
            raise ParameterError("categorical", unknown, "columns of X")
        self.columns_ = tuple(X.columns)
        self.numeric_ = tuple(c for c in X.columns if c not in self.categorical)
        self.log_, self.mean_, self.scale_ = {}, {}, {}
        for c in self.numeric_:
            v = X[c].to_numpy(dtype=np.float64)
            v = v[np.isfinite(v)]
            use_log = bool(v.size > 2 and v.min() >= 0 and np.std(v) > 0 and skew(v) > 1.0)
            t = np.log1p(v) if use_log else v
            self.log_[c] = use_log
            self.mean_[c] = float(t.mean()) if t.size else 0.0
            sd = float(t.std()) if t.size else 0.0
            self.scale_[c] = sd if sd > 0 else 1.0
        self.codes_ = {}
        for c in self.categorical:
            if c in self.levels:
                self.codes_[c] = np.asarray(self.levels[c], dtype=np.float64)
            else:
                v = X[c].to_numpy(dtype=np.float64)
                self.codes_[c] = np.unique(v[np.isfinite(v)])
        self.feature_names_ = (
            [f"{c}" for c in self.numeric_]
            + [f"{c}={code:g}" for c in self.categorical for code in self.codes_[c]]
            + [f"{c}__missing" for c in self.columns_])
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode ``X`` (same columns as in :meth:`fit`) as a finite ``float32`` matrix."""
        if self.columns_ is None:
            raise ParameterError("encoder", "unfitted", "fitted (call fit first)")
        if not isinstance(X, pd.DataFrame) or tuple(X.columns) != self.columns_:
            raise ParameterError("X", type(X).__name__, "a DataFrame with the fitted columns")
        blocks = []
        num = X[list(self.numeric_)].to_numpy(dtype=np.float64, copy=True)
        for j, c in enumerate(self.numeric_):
            col = num[:, j]
            if self.log_[c]:
                col = np.log1p(np.maximum(col, 0.0))
            z = (col - self.mean_[c]) / self.scale_[c]
            num[:, j] = np.clip(np.where(np.isfinite(z), z, 0.0), -_CLIP, _CLIP)
        blocks.append(num)
        for c in self.categorical:
            v = X[c].to_numpy(dtype=np.float64)
            blocks.append((v[:, None] == self.codes_[c][None, :]).astype(np.float64))
        blocks.append(X.isna().to_numpy(dtype=np.float64))
        return np.hstack(blocks).astype(np.float32)

    def fit_transform(self, X: pd.DataFrame) -> np.ndarray:
        return self.fit(X).transform(X)


# --------------------------------------------------------------------------------------------------
# Quarterly tasks
# --------------------------------------------------------------------------------------------------
@dataclass
class QuarterTasks:
    """The magnet data cut into quarters and encoded.

    For quarter ``q``: ``X_pool[q]`` / ``y_pool[q]`` are the quarter's drives outside its test set
    (true labels kept as an oracle for active learning), ``labelled[q]`` the positions in that pool of
    the ``n_labels`` drives whose label is observed (drawn from the generator's labelled drives), and
    ``X_test[q]`` / ``y_test[q]`` ``n_test`` unlabelled drives with their true labels, for evaluation.
    """

    X_pool: list[np.ndarray]
    y_pool: list[np.ndarray]
    labelled: list[np.ndarray]
    X_test: list[np.ndarray]
    y_test: list[np.ndarray]
    feature_names: tuple[str, ...]
    n_labels: int
    seed: int

    @property
    def n_quarters(self) -> int:
        return len(self.X_pool)

    @property
    def n_inputs(self) -> int:
        return self.X_pool[0].shape[1]

    def train_set(self, q: int, positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Encoded features and labels of quarter ``q``'s labelled drives (or of ``positions``)."""
        q = check_int("q", q, 0, self.n_quarters - 1)
        idx = self.labelled[q] if positions is None else np.asarray(positions)
        return self.X_pool[q][idx], self.y_pool[q][idx]


def make_quarter_tasks(data: SupplyChainData, n_labels: int, n_test: int = 2000,
                       seed: int = 0) -> QuarterTasks:
    """Split ``data`` (magnet grades, ``meta["quarter"]``) into encoded quarterly tasks.

    The encoder is fitted on the first quarter's pool features (no labels); categorical code books are
    the codes observed anywhere in ``data.X`` (an OEM registry lists every manufacturer code in
    advance, so entrants get their own inputs). Test drives are drawn from each quarter's *unlabelled*
    drives, so they never overlap a training label.

    Parameters
    ----------
    data : SupplyChainData
        With ``meta["quarter"]`` (e.g. from :func:`~ppal_lab.data.make_magnet_grades`).
    n_labels : int
        Labelled drives per quarter used for training, ``1 <= n_labels <=`` the fewest labelled drives
        of any quarter.
    n_test : int
        Test drives per quarter, ``1 <= n_test <=`` the fewest unlabelled drives of any quarter.
    seed : int
        Seed of the draws of labelled and test drives.
    """
    if not isinstance(data, SupplyChainData) or "quarter" not in data.meta:
        raise ParameterError("data", type(data).__name__, "a SupplyChainData with meta['quarter']")
    quarter = data.meta["quarter"].to_numpy()
    quarters = np.unique(quarter)
    if quarters.size < 2:
        raise ParameterError("data", f"{quarters.size} quarter", "at least two quarters")
    lab = np.asarray(data.labelled)
    most_labels = int(min((lab & (quarter == q)).sum() for q in quarters))
    most_test = int(min((~lab & (quarter == q)).sum() for q in quarters))
    n_labels = check_int("n_labels", n_labels, 1, most_labels)
    n_test = check_int("n_test", n_test, 1, most_test)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(_seed_of(seed, 7))

    X_all = data.X
    levels = {c: np.unique(v[np.isfinite(v)]) for c in data.categorical
              for v in [X_all[c].to_numpy(dtype=np.float64)]}
    y = np.asarray(data.y)
    pools, tests = [], []
    for q in quarters:
        rows = np.flatnonzero(quarter == q)
        test = np.sort(rng.choice(rows[~lab[rows]], size=n_test, replace=False))
        pools.append(np.setdiff1d(rows, test))
        tests.append(test)
    encoder = MissingnessEncoder(data.categorical, levels).fit(X_all.iloc[pools[0]])
    X_pool, y_pool, labelled, X_test, y_test = [], [], [], [], []
    for pool, test in zip(pools, tests):
        X_pool.append(encoder.transform(X_all.iloc[pool]))
        y_pool.append(y[pool].astype(np.int64))
        pos = np.flatnonzero(lab[pool])
        labelled.append(np.sort(rng.choice(pos, size=n_labels, replace=False)))
        X_test.append(encoder.transform(X_all.iloc[test]))
        y_test.append(y[test].astype(np.int64))
    return QuarterTasks(X_pool, y_pool, labelled, X_test, y_test, tuple(encoder.feature_names_),
                        n_labels, seed)


# --------------------------------------------------------------------------------------------------
# Model, Fisher information, EWC penalty, training
# --------------------------------------------------------------------------------------------------
def make_mlp(n_inputs: int, hidden: Sequence[int] | int = (32, 32), n_classes: int = 2,
             seed: int = 0) -> nn.Sequential:
    """A ReLU MLP ``n_inputs -> hidden... -> n_classes`` (logits), initialised from ``seed`` only
    (torch's global random state is left untouched)."""
    n_inputs = check_int("n_inputs", n_inputs, 1)
    hidden = _hidden(hidden)
    n_classes = check_int("n_classes", n_classes, 2)
    seed = check_int("seed", seed, 0)
    widths = (n_inputs, *hidden)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_classes))
        return nn.Sequential(*layers)


def fisher_diagonal(model: nn.Module, X: Any, y: Any = None, kind: str = "true",
                    batch_size: int = 512) -> dict[str, torch.Tensor]:
    r"""Diagonal Fisher information of a classifier's log-likelihood, averaged over the rows of ``X``.

    ``kind="true"``: :math:`F_i = \frac1N\sum_n\sum_c p(c\mid x_n)\,(\partial_i\log p(c\mid x_n))^2`
    (expectation over the model's own predictions, computed exactly over the classes; ``y`` unused).
    ``kind="empirical"``: :math:`F_i = \frac1N\sum_n(\partial_i\log p(y_n\mid x_n))^2`.
    Per-drive gradients come from ``torch.func`` (``vmap`` of ``jacrev``), not a Python loop.

    Returns
    -------
    dict
        Parameter name -> tensor of its shape (detached, non-negative).
    """
    model = _module(model)
    check_choice("kind", kind, FISHER_KINDS)
    Xa = _matrix("X", X)
    batch_size = check_int("batch_size", batch_size, 1)
    if kind == "empirical":
        if y is None:
            raise ParameterError("y", None, "labels of X (needed by the empirical Fisher)")
        ya = _labels("y", y, Xa.shape[0])
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def log_probs(p, x):
        return torch.log_softmax(functional_call(model, p, (x.unsqueeze(0),)), dim=-1).squeeze(0)

    per_sample = vmap(jacrev(log_probs), in_dims=(None, 0))
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    with torch.no_grad():
        for start in range(0, Xa.shape[0], batch_size):
            xb = torch.from_numpy(Xa[start:start + batch_size])
            jac = per_sample(params, xb)                                  # name -> (B, C, *shape)
            if kind == "true":
                w = torch.softmax(functional_call(model, params, (xb,)), dim=-1)   # (B, C)
            else:
                w = F.one_hot(torch.from_numpy(ya[start:start + batch_size]),
                              num_classes=next(iter(jac.values())).shape[1]).to(xb.dtype)
            for k, g in jac.items():
                wk = w.reshape(w.shape + (1,) * (g.dim() - 2))
                total[k] += (wk * g.pow(2)).sum(dim=(0, 1))
    return {k: v / Xa.shape[0] for k, v in total.items()}


def ewc_penalty(model: nn.Module, fishers: Sequence[dict[str, torch.Tensor]],
                anchors: Sequence[dict[str, torch.Tensor]], ewc_lambda: float) -> torch.Tensor:
    r""":math:`\frac{\lambda}{2}\sum_t\sum_i F_{t,i}(\theta_i-\theta^*_{t,i})^2` over the model's
    named parameters (a differentiable scalar; 0 without past tasks)."""
    model = _module(model)
    ewc_lambda = check_real("ewc_lambda", ewc_lambda, 0.0)
    if len(fishers) != len(anchors):
        raise ParameterError("anchors", f"{len(anchors)} anchors", f"one per Fisher ({len(fishers)})")
    params = dict(model.named_parameters())
    total = torch.zeros(())
    for fisher, anchor in zip(fishers, anchors):
        if set(fisher) != set(params) or set(anchor) != set(params):
            raise ParameterError("fishers", sorted(fisher), "one tensor per model parameter")
        for name, p in params.items():
            total = total + (fisher[name] * (p - anchor[name]).pow(2)).sum()
    return 0.5 * ewc_lambda * total


class EWC:
    """Elastic weight consolidation state: the anchors and Fisher diagonals of past quarters.

    Call :meth:`consolidate` after training on a quarter, and add :meth:`penalty` to the loss while
    training on the next ones (see the module docstring for the formula and the choices).

    Parameters
    ----------
    ewc_lambda : float
        Penalty strength :math:`\\lambda \\ge 0` (0 = plain fine-tuning).
    fisher : {"true", "empirical"}
        Which Fisher diagonal (see :func:`fisher_diagonal`).
    consolidation : {"per_task", "online"}
        One penalty per past quarter (Kirkpatrick et al. 2017), or one running penalty (online EWC).
    gamma : float
        Decay of the running Fisher in online mode, in [0, 1].
    """

    def __init__(self, ewc_lambda: float, fisher: str = "true", consolidation: str = "per_task",
                 gamma: float = 1.0):
        self.ewc_lambda = check_real("ewc_lambda", ewc_lambda, 0.0)
        self.fisher = check_choice("fisher", fisher, FISHER_KINDS)
        self.consolidation = check_choice("consolidation", consolidation, CONSOLIDATIONS)
        self.gamma = check_real("gamma", gamma, 0.0, 1.0)
        self.fishers: list[dict[str, torch.Tensor]] = []
        self.anchors: list[dict[str, torch.Tensor]] = []

    def consolidate(self, model: nn.Module, X: Any, y: Any = None) -> None:
        """Store the current weights and their Fisher diagonal on ``(X, y)``."""
        fisher = fisher_diagonal(model, X, y, kind=self.fisher)
        anchor = {k: v.detach().clone() for k, v in _module(model).named_parameters()}
        if self.consolidation == "online" and self.fishers:
            fisher = {k: self.gamma * self.fishers[0][k] + v for k, v in fisher.items()}
            self.fishers, self.anchors = [fisher], [anchor]
        else:
            self.fishers.append(fisher)
            self.anchors.append(anchor)
        # flat copies in parameter order: the penalty is evaluated at every training step
        self._flat = [(torch.cat([f[k].reshape(-1) for k in anchor]),
                       torch.cat([a[k].reshape(-1) for k in anchor]))
                      for f, a in zip(self.fishers, self.anchors)]

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """The EWC penalty at the model's current weights (equal to :func:`ewc_penalty`)."""
        flat = getattr(self, "_flat", [])
        if not flat:
            return torch.zeros(())
        theta = torch.cat([p.reshape(-1) for p in model.parameters()])
        total = sum((f * (theta - a).pow(2)).sum() for f, a in flat)
        return 0.5 * self.ewc_lambda * total


def train_quarter(model: nn.Module, X: Any, y: Any, *, epochs: int = 30, batch_size: int = 32,
                  lr: float = 1e-3, seed: int = 0,
                  penalty: Callable[[nn.Module], torch.Tensor] | None = None) -> list[float]:
    """Train ``model`` in place with Adam (fresh optimiser state) on mean cross-entropy, plus
    ``penalty(model)`` when given. Minibatch order comes from ``seed`` only. Returns the mean
    training loss of each epoch."""
    model = _module(model)
    Xa = _matrix("X", X)
    ya = _labels("y", y, Xa.shape[0])
    epochs = check_int("epochs", epochs, 1, 100_000)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_real("lr", lr, 0.0, 10.0, low_open=True)
    seed = check_int("seed", seed, 0)
    if penalty is not None and not callable(penalty):
        raise ParameterError("penalty", penalty, "None or a callable model -> scalar tensor")
    Xt, yt = torch.from_numpy(Xa), torch.from_numpy(ya)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    model.train()
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(Xt.shape[0], generator=gen)
        total = 0.0
        for start in range(0, Xt.shape[0], batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            if penalty is not None:
                loss = loss + penalty(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / Xt.shape[0])
    return losses


class TorchClassifier:
    """A scikit-learn-like view of a torch classifier (``predict_proba`` / ``predict``), so that
    :func:`ppal_lab.learning.active.query` can pick drives with it."""

    def __init__(self, model: nn.Module):
        self.model = _module(model)

    def predict_proba(self, X: Any) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            return torch.softmax(self.model(torch.from_numpy(_matrix("X", X))), dim=-1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


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


@dataclass
class ContinualRun:
    """Result of :func:`run_sequence`: ``accuracy[i, j]`` (and ``balanced_accuracy[i, j]``, ROC AUC
    ``roc_auc[i, j]``) on quarter ``j``'s test drives after training through quarter ``i``."""

    method: str
    ewc_lambda: float
    seed: int
    accuracy: np.ndarray
    balanced_accuracy: np.ndarray
    roc_auc: np.ndarray
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
                             "roc_auc": self.roc_auc.ravel()})


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
    epochs = check_int("epochs", epochs, 1, 100_000)
    hidden = _hidden(hidden)
    lr = check_real("lr", lr, 0.0, 10.0, low_open=True)
    batch_size = check_int("batch_size", batch_size, 1)
    check_choice("fisher", fisher, FISHER_KINDS)
    check_choice("consolidation", consolidation, CONSOLIDATIONS)
    check_choice("strategy", strategy, STRATEGIES)
    seed = check_int("seed", seed, 0)

    T = tasks.n_quarters
    n_classes = int(max(max(y.max() for y in tasks.y_pool), max(y.max() for y in tasks.y_test))) + 1
    n_classes = max(n_classes, 2)
    init_seed = _seed_of(seed, 1)
    model = make_mlp(tasks.n_inputs, hidden, n_classes, init_seed)
    ewc = EWC(ewc_lambda, fisher, consolidation) if method == "ewc" else None
    acc, bacc, auc = np.zeros((T, T)), np.zeros((T, T)), np.zeros((T, T))
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
        if method == "joint":
            model = make_mlp(tasks.n_inputs, hidden, n_classes, init_seed)
            Xq, yq = np.vstack(seen_X), np.concatenate(seen_y)
        n_train[q] = len(yq)
        train_quarter(model, Xq, yq, epochs=epochs, batch_size=batch_size, lr=lr,
                      seed=_seed_of(seed, 2, q), penalty=None if ewc is None else ewc.penalty)
        if ewc is not None and q < T - 1:
            ewc.consolidate(model, Xq, yq)
        clf = TorchClassifier(model)
        for j in range(T):
            proba = clf.predict_proba(tasks.X_test[j])
            pred = proba.argmax(axis=1)
            acc[q, j] = float(np.mean(pred == tasks.y_test[j]))
            bacc[q, j] = _balanced_accuracy(tasks.y_test[j], pred)
            auc[q, j] = _roc_auc(tasks.y_test[j], proba)
    return ContinualRun(method, ewc_lambda, seed, acc, bacc, auc, n_train, queried)


def cl_metrics(R: Any) -> dict[str, float]:
    """Continual-learning metrics of an accuracy matrix ``R`` (T x T, T >= 2; see module docstring):
    ``average_accuracy``, ``backward_transfer``, ``forgetting``, ``plasticity``, ``past_accuracy``
    (mean accuracy on quarters 0..T-2 after the last quarter) and ``current_accuracy`` (``R[-1, -1]``).
    """
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 2 or not np.all(np.isfinite(R)):
        raise ParameterError("R", f"array of shape {R.shape}", "a finite square matrix, at least 2x2")
    T = R.shape[0]
    past = np.arange(T - 1)
    best = np.array([R[j:T - 1, j].max() for j in past])
    return {
        "average_accuracy": float(R[-1].mean()),
        "backward_transfer": float(np.mean(R[-1, past] - R[past, past])),
        "forgetting": float(np.mean(best - R[-1, past])),
        "plasticity": float(np.mean(np.diag(R))),
        "past_accuracy": float(np.mean(R[-1, past])),
        "current_accuracy": float(R[-1, -1]),
    }


# --------------------------------------------------------------------------------------------------
# Experiments over seeds and lambdas
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
    """Cross-parameter checks of :func:`run_experiment`, done by arithmetic before any data exist:
    ``n_labels`` cannot exceed the labelled drives of a quarter, nor ``n_test`` its unlabelled ones."""
    n_per_month = check_int("n_per_month", n_per_month, 1)
    n_months = check_int("n_months", n_months, 6)
    label_rate = check_real("label_rate", label_rate, 0.0, 1.0, low_open=True)
    per_month = max(1, round(label_rate * n_per_month))
    labelled = 3 * per_month
    check_int("n_labels", n_labels, 1, labelled)
    check_int("n_test", n_test, 1, 3 * (n_per_month - per_month))


def run_experiment(seeds: Iterable[int], *, ewc_lambdas: Sequence[float], n_labels: int = 600,
                   n_test: int = 2000, missing_rate: float = 0.8, n_per_month: int = 10_000,
                   label_rate: float = 0.02, methods: Sequence[str] = METHODS, epochs: int = 30,
                   hidden: Sequence[int] | int = (32, 32), lr: float = 1e-3, batch_size: int = 32,
                   fisher: str = "true", consolidation: str = "per_task", strategy: str = "random",
                   progress: bool = False) -> pd.DataFrame:
    """Every method (EWC at each of ``ewc_lambdas``) on a fresh magnet data set per seed.

    Seed ``s`` drives the data (``make_magnet_grades(seed=s)``), the labelled and test draws, the
    initial weights and the minibatch order. Returns the long table of :meth:`ContinualRun.as_frame`
    for all runs (``train_quarter``/``eval_quarter`` from 0).
    """
    seeds = [check_int("seed", s, 0) for s in seeds]
    if not seeds:
        raise ParameterError("seeds", seeds, "at least one seed")
    lambdas = [check_real("ewc_lambdas", v, 0.0) for v in ewc_lambdas]
    methods = [check_choice("methods", m, METHODS) for m in methods]
    if "ewc" in methods and not lambdas:
        raise ParameterError("ewc_lambdas", list(ewc_lambdas), "at least one lambda >= 0 for 'ewc'")
    check_range("missing_rate", missing_rate, 0.0, 1.0, high_open=True)
    check_settings(n_per_month, n_labels, n_test, label_rate)
    settings = dict(epochs=epochs, hidden=hidden, lr=lr, batch_size=batch_size, fisher=fisher,
                    consolidation=consolidation, strategy=strategy)
    # validate the training settings once, before generating any data
    check_int("epochs", epochs, 1, 100_000), _hidden(hidden), check_real("lr", lr, 0.0, 10.0, low_open=True)
    check_int("batch_size", batch_size, 1), check_choice("fisher", fisher, FISHER_KINDS)
    check_choice("consolidation", consolidation, CONSOLIDATIONS), check_choice("strategy", strategy, STRATEGIES)
    if not isinstance(progress, bool):
        raise ParameterError("progress", progress, "True or False")

    configs = [(m, 0.0) for m in methods if m != "ewc"]
    configs += [("ewc", lam) for lam in lambdas] if "ewc" in methods else []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds) * len(configs), desc="continual runs", leave=False)
    frames = []
    for s in seeds:
        data = make_magnet_grades(n_per_month=n_per_month, missing_rate=missing_rate,
                                  label_rate=label_rate, seed=s)
        tasks = make_quarter_tasks(data, n_labels, n_test, seed=s)
        for method, lam in configs:
            frames.append(run_sequence(tasks, method, ewc_lambda=lam, seed=s, **settings).as_frame())
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return pd.concat(frames, ignore_index=True)


def summarise(frame: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Per seed and configuration: the :func:`cl_metrics` of its accuracy matrix (``value`` column).
    One row per (seed, method, ewc_lambda, label)."""
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError("frame", type(frame).__name__, "a DataFrame from run_experiment")
    check_choice("value", value, SCORES)
    rows = []
    for (s, m, lam, label), g in frame.groupby(["seed", "method", "ewc_lambda", "label"], sort=False):
        R = g.pivot(index="train_quarter", columns="eval_quarter", values=value).to_numpy()
        rows.append({"seed": s, "method": m, "ewc_lambda": lam, "label": label, **cl_metrics(R)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Summaries for tables and plots
# --------------------------------------------------------------------------------------------------
def mean_matrix(frame: pd.DataFrame, label: str, value: str = "accuracy") -> pd.DataFrame:
    """Mean over seeds of one configuration's matrix (rows: train quarter, columns: eval quarter)."""
    check_choice("value", value, SCORES)
    check_choice("label", label, list(dict.fromkeys(frame["label"])))
    g = frame[frame["label"] == label]
    return g.pivot_table(index="train_quarter", columns="eval_quarter", values=value, aggfunc="mean")


def per_quarter(frame: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Per seed, configuration and training quarter ``q``: the mean score on the *past* quarters
    (``j < q``; NaN for the first) and on the *current* quarter ``q``."""
    check_choice("value", value, SCORES)
    past = (frame[frame["eval_quarter"] < frame["train_quarter"]]
            .groupby(["seed", "label", "train_quarter"], sort=False)[value].mean().rename("past"))
    current = (frame[frame["eval_quarter"] == frame["train_quarter"]]
               .set_index(["seed", "label", "train_quarter"])[value].rename("current"))
    return pd.concat([current, past], axis=1).reset_index()


def paired_difference(summary: pd.DataFrame, metric: str, label_a: str, label_b: str) -> np.ndarray:
    """``metric`` of configuration ``label_a`` minus that of ``label_b``, seed by seed (same seeds:
    same data, same initial weights), from :func:`summarise`."""
    labels = list(dict.fromkeys(summary["label"]))
    check_choice("label_a", label_a, labels)
    check_choice("label_b", label_b, labels)
    check_choice("metric", metric, [c for c in summary.columns if c not in ("seed", "method",
                                                                            "ewc_lambda", "label")])
    a = summary[summary["label"] == label_a].set_index("seed")[metric]
    b = summary[summary["label"] == label_b].set_index("seed")[metric]
    return (a - b.reindex(a.index)).to_numpy(dtype=float)


def ci_sign(values: Iterable[float], confidence: float = 0.95) -> int:
    """+1 if the Student-t interval of the mean of ``values`` lies above 0, -1 if below, else 0."""
    from ppal_lab.compendium.results import mean_ci

    _, ci, _ = mean_ci(values, confidence)
    if ci is None:
        return 0
    return 1 if ci[0] > 0 else (-1 if ci[1] < 0 else 0)


def metric_table(summary: pd.DataFrame, metrics: Sequence[str] = ("average_accuracy", "backward_transfer",
                 "forgetting", "plasticity"), digits: int = 3) -> pd.DataFrame:
    """``mean [low, high]`` (95% Student-t CI over seeds) of each metric per configuration."""
    from ppal_lab.compendium.results import mean_ci

    rows = {}
    for label, g in summary.groupby("label", sort=False):
        cells = {}
        for m in metrics:
            mean, ci, _ = mean_ci(g[m])
            cells[m] = (f"{mean:.{digits}f}" if ci is None
                        else f"{mean:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]")
        rows[label] = cells
    return pd.DataFrame(rows).T


def ci_table(frame: pd.DataFrame, by: str | Sequence[str], value: str,
             confidence: float = 0.95) -> pd.DataFrame:
    """Mean, Student-t interval (``low``, ``high``) and count of ``value`` per group of ``by``
    (rows with NaN ``value`` are dropped; a group of one has ``low == high == mean``)."""
    from ppal_lab.compendium.results import mean_ci

    keys = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, g in frame.dropna(subset=[value]).groupby(keys, sort=False):
        mean, ci, n = mean_ci(g[value], confidence)
        lo, hi = ci if ci is not None else (mean, mean)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     "mean": mean, "low": lo, "high": hi, "n": n})
    return pd.DataFrame(rows)


def forgetting_verdict(bwt: dict[str, Iterable[float]],
                       contrast_bwt: dict[str, Iterable[float]] | None = None) -> str:
    """Verdict on "a model updated quarter by quarter forgets earlier quarters", from fine-tuning's
    backward transfer per seed for each score (e.g. accuracy, ROC AUC):

    * ``"reproduced"`` — significantly negative (95% CI below 0) for every score;
    * ``"partly"`` — for some score, or only in the contrast setting;
    * ``"not reproduced"`` — for none.
    """
    if not bwt:
        raise ParameterError("bwt", bwt, "a non-empty dict score -> values per seed")
    signs = [ci_sign(v) for v in bwt.values()]
    if all(s < 0 for s in signs):
        return "reproduced"
    if any(s < 0 for s in signs) or any(ci_sign(v) < 0 for v in (contrast_bwt or {}).values()):
        return "partly"
    return "not reproduced"


def mitigation_verdict(bwt_gain: dict[str, Iterable[float]],
                       average_gain: dict[str, Iterable[float]]) -> str:
    """Verdict on "EWC counters forgetting", from paired per-seed differences EWC minus fine-tuning
    of backward transfer (``bwt_gain``) and of average accuracy (``average_gain``), per score; the
    rule mirrors :func:`forgetting_verdict`:

    * ``"reproduced"`` — backward transfer significantly better (95% CI above 0) for every score, and
      average accuracy significantly worse for none;
    * ``"partly"`` — backward transfer significantly better for some score (or for every score but at
      a significant cost in average accuracy), or no better backward transfer while average accuracy
      improves significantly;
    * ``"not reproduced"`` — otherwise.
    """
    if not bwt_gain or not average_gain:
        raise ParameterError("bwt_gain", bwt_gain, "non-empty dicts score -> values per seed")
    better = [ci_sign(v) > 0 for v in bwt_gain.values()]
    avg = [ci_sign(v) for v in average_gain.values()]
    if all(better) and not any(s < 0 for s in avg):
        return "reproduced"
    if any(better) or any(s > 0 for s in avg):
        return "partly"
    return "not reproduced"
