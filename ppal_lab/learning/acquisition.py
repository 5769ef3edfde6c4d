r"""Pool-based active learning from a cold start on sparse, mostly missing data (seed 001).

:func:`run_acquisition` labels items round by round with random sampling, entropy sampling
(:mod:`ppal_lab.learning.active`) or seed 001's density-aware score (:mod:`ppal_lab.learning.density`),
starting from the first labels of :mod:`ppal_lab.learning.cold_start`. The module also holds the seed's
"minimal example" (:func:`seed_minimal_example`) and the magnet-data split the sparsity chapter uses
(:func:`magnet_split`).

Geometry and missing values
---------------------------
Densities and clusters need a metric space without holes: :func:`geometry` mean-imputes every column
and standardises it (scikit-learn ``SimpleImputer`` + ``StandardScaler``), so a missing value sits at
the column mean (0). Classifiers get the raw matrix with NaN: :func:`make_classifier` builds either the
same imputation pipeline followed by a logistic regression, or a ``HistGradientBoostingClassifier``,
which handles NaN natively.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_matrix, check_positive, check_range
from ppal_lab.learning import active
from ppal_lab.learning.cold_start import COLD_STARTS, cold_start, seed_cold_start
from ppal_lab.learning.density import density_query, pool_log_density

# COLD_STARTS, cold_start and seed_cold_start are re-exported: chapters and tests read them here.
__all__ = [
    "AcquisitionRun",
    "COLD_STARTS",
    "MODELS",
    "MagnetSplit",
    "STRATEGIES",
    "check_acquisition_parameters",
    "classification_scores",
    "cold_start",
    "fix_single_class",
    "geometry",
    "independent_label_ceiling",
    "DIGITS_POOL_SIZE",
    "DIGITS_POSITIVE",
    "digits_split",
    "magnet_split",
    "make_classifier",
    "run_acquisition",
    "seed_cold_start",
    "seed_minimal_example",
]

#: Acquisition strategies of :func:`run_acquisition`: ``"density"`` is the scalable variant of the seed's
#: density-aware score (leave-one-out, a reference subsample), ``"density_literal"`` the seed's rule as written.
STRATEGIES: tuple[str, ...] = ("random", "entropy", "density", "density_literal")
#: Classifiers of :func:`make_classifier`.
MODELS: tuple[str, ...] = ("logreg", "hgb")


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def check_acquisition_parameters(n_pool: int, n_labels: int, n_initial: int, batch_size: int) -> None:
    """Raise :class:`ParameterError` unless ``1 <= n_labels <= n_pool``,
    ``2 <= n_initial <= n_labels`` and ``batch_size >= 1`` (called before any work)."""
    n_pool = check_int("n_pool", n_pool, 2)
    n_labels = check_int("n_labels", n_labels, 1, n_pool)
    if n_labels < 2:
        raise ParameterError("n_labels", n_labels, f"in [2, {n_pool}] (a classifier needs two labels)")
    check_int("n_initial", n_initial, 2, n_labels)
    check_int("batch_size", batch_size, 1)


# ----------------------------------------------------------------------------------------------
# geometry and classifiers
# ----------------------------------------------------------------------------------------------
def geometry(X_fit: Any, *others: Any) -> tuple[np.ndarray, ...]:
    """Mean-impute and standardise: fit on ``X_fit`` (NaN = missing), transform it and ``others``.

    Returns float64 arrays without NaN; a missing value becomes 0 (the column mean). Columns that are
    entirely missing or constant in ``X_fit`` become 0 everywhere.
    """
    A = check_matrix("X_fit", X_fit, allow_nan=True)
    mean = np.zeros(A.shape[1])
    seen = ~np.isnan(A).all(axis=0)
    mean[seen] = np.nanmean(A[:, seen], axis=0)
    filled = np.where(np.isnan(A), mean, A)
    std = filled.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    out = [(filled - mean) / std]
    for k, X in enumerate(others):
        B = check_matrix(f"others[{k}]", X, allow_nan=True)
        if B.shape[1] != A.shape[1]:
            raise ParameterError(f"others[{k}]", f"{B.shape[1]} columns", f"{A.shape[1]} columns")
        out.append((np.where(np.isnan(B), mean, B) - mean) / std)
    return tuple(out)


def make_classifier(model: str = "logreg", seed: int = 0):
    """A fresh classifier that accepts NaN in its input.

    ``"logreg"``: ``SimpleImputer(mean) -> StandardScaler -> LogisticRegression(C=0.1)`` (an imputation
    pipeline; ``C`` was set once, from random-label fits on a separate seed, never from acquisition
    results). ``"hgb"``: ``HistGradientBoostingClassifier(max_iter=50)``, NaN-native (learns a side for
    missing values at every split).
    """
    check_choice("model", model, MODELS)
    seed = check_int("seed", seed, 0)
    if model == "logreg":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(SimpleImputer(keep_empty_features=True), StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=50, early_stopping=False, random_state=seed)


# ----------------------------------------------------------------------------------------------
# the active-learning loop
# ----------------------------------------------------------------------------------------------
@dataclass
class AcquisitionRun:
    """Scores after each labelling round of one run (test set), and what was labelled in which order."""

    strategy: str
    cold_start: str
    seed: int
    n_labels: np.ndarray
    accuracy: np.ndarray
    balanced_accuracy: np.ndarray
    f1: np.ndarray
    queried: np.ndarray = field(repr=False)

    def final(self) -> dict[str, float]:
        """Scores at the full label budget."""
        return {"accuracy": float(self.accuracy[-1]),
                "balanced_accuracy": float(self.balanced_accuracy[-1]), "f1": float(self.f1[-1])}


def classification_scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Accuracy, balanced accuracy and F1 (of class 1 for two classes, macro-F1 beyond)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    if yt.shape != yp.shape or yt.ndim != 1 or yt.size == 0:
        raise ParameterError("y_pred", f"array of shape {yp.shape}", f"shape {yt.shape} like y_true")
    binary = np.unique(np.concatenate([yt, yp])).size <= 2
    return {"accuracy": float(accuracy_score(yt, yp)),
            "balanced_accuracy": float(balanced_accuracy_score(yt, yp)),
            "f1": float(f1_score(yt, yp, average="binary" if binary else "macro", zero_division=0.0))}


def fix_single_class(init: np.ndarray, y: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """If the initial items share one class, swap the last one for a random item of another class."""
    if np.unique(y[init]).size >= 2:
        return init
    others = np.flatnonzero(y != y[init[0]])
    if others.size == 0:
        raise ParameterError("y", "a single class", "at least two classes")
    init = init.copy()
    init[-1] = int(gen.choice(others))
    return init


def run_acquisition(estimator_factory: Callable[[], Any], X_pool: Any, y_pool: Any, X_test: Any,
                    y_test: Any, Z_pool: np.ndarray, strategy: str, cold: str, n_labels: int,
                    n_initial: int, batch_size: int, seed: int, bandwidth: float = 0.5,
                    n_reference: int = 1000, weight: float = 1.0) -> AcquisitionRun:
    """Pool-based active learning from a cold start with an oracle that reveals ``y_pool``.

    Start with ``n_initial`` items from :func:`cold_start` (method ``cold``; if they hold a single
    class, the last is swapped for a random item of another class — a peek at the labels that every
    strategy gets alike), then repeat: fit ``estimator_factory()`` on the labelled items, score the
    test set (accuracy, balanced accuracy, F1 of class 1 — macro-F1 beyond two classes), and label
    ``batch_size`` more items chosen by ``strategy`` among the unlabelled ones (``"random"`` and
    ``"entropy"`` through :func:`ppal_lab.learning.active.query`, ``"density"`` (the scalable variant)
    and ``"density_literal"`` (the seed's rule as written: whole-pool KDE with own kernels, the seed's
    entropy) through :func:`density_query`) until ``n_labels`` labels are used.

    The pool density is computed once per run (it does not depend on the labels).
    Every random draw comes from ``default_rng(seed)``.
    """
    if not callable(estimator_factory):
        raise ParameterError("estimator_factory", estimator_factory, "a callable returning a classifier")
    check_choice("strategy", strategy, STRATEGIES)
    check_choice("cold", cold, COLD_STARTS)
    Z = check_matrix("Z_pool", Z_pool)
    n = Z.shape[0]
    y = np.asarray(y_pool)
    if y.shape != (n,):
        raise ParameterError("y_pool", f"array of shape {y.shape}", f"shape ({n},) like Z_pool")
    if len(X_pool) != n:
        raise ParameterError("X_pool", f"{len(X_pool)} rows", f"{n} rows like Z_pool")
    yt = np.asarray(y_test)
    if len(X_test) != yt.shape[0] or yt.ndim != 1:
        raise ParameterError("y_test", f"array of shape {yt.shape}", "one label per row of X_test")
    check_acquisition_parameters(n, n_labels, n_initial, batch_size)
    seed = check_int("seed", seed, 0)
    check_positive("bandwidth", bandwidth)
    check_int("n_reference", n_reference, 2)
    check_range("weight", weight, 0.0, math.inf, high_open=True)

    gen = np.random.default_rng(seed)
    take = (lambda A, i: A.iloc[i]) if hasattr(X_pool, "iloc") else (lambda A, i: np.asarray(A)[i])
    init = fix_single_class(cold_start(Z, n_initial, cold, gen), y, gen)
    log_pool = None
    if strategy == "density":
        log_pool = pool_log_density(Z, bandwidth, n_reference, gen)
    elif strategy == "density_literal":  # the whole pool as the KDE's sample: no draw from gen
        log_pool = pool_log_density(Z, bandwidth, n, gen, leave_one_out=False)
    order = list(init)
    labelled = np.zeros(n, dtype=bool)
    labelled[init] = True
    counts, acc, bal, f1 = [], [], [], []
    while True:
        idx = np.asarray(order)
        model = estimator_factory()
        model.fit(take(X_pool, idx), y[idx])
        sc = classification_scores(yt, model.predict(X_test))
        counts.append(idx.size)
        acc.append(sc["accuracy"])
        bal.append(sc["balanced_accuracy"])
        f1.append(sc["f1"])
        if idx.size >= n_labels:
            break
        b = min(batch_size, n_labels - idx.size)
        if strategy in ("density", "density_literal"):
            new = density_query(model, X_pool, Z, idx, b, bandwidth, n_reference, gen, weight,
                                log_pool=log_pool, literal=strategy == "density_literal")
        else:
            new = active.query(model, X_pool, strategy, b, rng=gen if strategy == "random" else None,
                               candidates=np.flatnonzero(~labelled))
        labelled[new] = True
        order.extend(int(i) for i in new)
    return AcquisitionRun(strategy, cold, seed, np.asarray(counts), np.asarray(acc), np.asarray(bal),
                          np.asarray(f1), np.asarray(order))


# ----------------------------------------------------------------------------------------------
# the seed's "minimal example"
# ----------------------------------------------------------------------------------------------
def seed_minimal_example(seed: int = 42, n_samples: int = 1000, n_features: int = 50,
                         keep_rate: float = 0.2, positive_rate: float = 0.3,
                         label_rate: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data of seed 001's ``minimal_ppal.py``, re-implemented (our own generator, same law).

    ``X`` is standard normal with each value kept with probability ``keep_rate`` and set to 0
    otherwise (so 80% "missing" values are zeros, not NaN); ``y ~ Bernoulli(positive_rate)`` is drawn
    **independently of X**; ``labelled`` marks each item with probability ``label_rate``.

    Returns ``(X, y, labelled)``.
    """
    seed = check_int("seed", seed, 0)
    n = check_int("n_samples", n_samples, 2)
    d = check_int("n_features", n_features, 1)
    check_range("keep_rate", keep_rate, 0.0, 1.0)
    check_range("positive_rate", positive_rate, 0.0, 1.0)
    check_range("label_rate", label_rate, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.binomial(1, keep_rate, (n, d))
    y = rng.binomial(1, positive_rate, n)
    labelled = rng.binomial(1, label_rate, n) > 0
    return X, y, labelled


def independent_label_ceiling(positive_rate: float) -> dict[str, float]:
    r"""Best achievable expected scores when labels are independent of the features.

    Any classifier's prediction is then independent of the label, so its expected accuracy is
    :math:`\Pr[\hat y = 1]\,p + \Pr[\hat y = 0](1 - p) \le \max(p, 1 - p)`, reached by always
    predicting the majority class, and its expected balanced accuracy is exactly 0.5.
    """
    p = float(check_range("positive_rate", positive_rate, 0.0, 1.0))
    return {"accuracy": max(p, 1.0 - p), "balanced_accuracy": 0.5}


# ----------------------------------------------------------------------------------------------
# experiments on the magnet data (used by the sparsity chapter)
# ----------------------------------------------------------------------------------------------
@dataclass
class MagnetSplit:
    """One month of hard drives split into an unlabelled pool and a test set, with both geometries.

    ``bayes_accuracy`` is the accuracy on the test set of the rule that knows every drive's true
    probability of a high grade (complete features, no missing values): no classifier can expect more.
    ``majority_accuracy`` is that of always predicting the majority class of the pool.
    """

    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    Z_pool: np.ndarray
    Z_test: np.ndarray
    bayes_accuracy: float
    majority_accuracy: float
    feature_names: tuple[str, ...]
    p_test: np.ndarray = field(repr=False, default=None)


def magnet_split(seed: int, n_pool: int = 10_000, n_test: int = 5000,
                 missing_rate: float = 0.8) -> MagnetSplit:
    """Draw one month of ``n_pool + n_test`` drives (:func:`ppal_lab.data.make_magnet_grades`, no
    drift, MCAR missingness) and split it at random; the geometry is fitted on the pool."""
    from ppal_lab.data import make_magnet_grades

    seed = check_int("seed", seed, 0)
    n_pool = check_int("n_pool", n_pool, 2)
    n_test = check_int("n_test", n_test, 1)
    check_range("missing_rate", missing_rate, 0.0, 1.0, high_open=True)
    d = make_magnet_grades(n_per_month=n_pool + n_test, n_months=1, missing_rate=missing_rate,
                           drift=False, seed=seed)
    X, y = d.to_numpy()
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    pool, test = perm[:n_pool], perm[n_pool:]
    Zp, Zt = geometry(X[pool], X[test])
    p = d.latent["grade_probability"].to_numpy()[test]
    bayes = float(np.mean((p > 0.5) == (y[test] == 1)))
    majority = int(np.mean(y[pool]) > 0.5)
    return MagnetSplit(X[pool], y[pool], X[test], y[test], Zp, Zt, bayes,
                       float(np.mean(y[test] == majority)), tuple(d.feature_names), p)


#: Digits that make the positive class of :func:`digits_split` (about 30% of the set: the class balance
#: of the seed's own synthetic data).
DIGITS_POSITIVE = (0, 1, 2)
#: Pool size of :func:`digits_split` at its default test fraction (1,797 images less 599); the chapter's spec
#: bounds the label budget by it.
DIGITS_POOL_SIZE = 1198


def digits_split(seed: int, missing_rate: float = 0.0, test_fraction: float = 1 / 3) -> MagnetSplit:
    """A bed with headroom: scikit-learn's bundled handwritten digits (1,797 images, 64 pixels; no download)
    as a binary task, "digit in :data:`DIGITS_POSITIVE`" (about 30% positive), with values removed
    completely at random at ``missing_rate`` (NaN), split at random into a pool and a test set; the
    geometry is fitted on the pool. There is no oracle: ``bayes_accuracy`` is NaN and ``p_test`` None."""
    from sklearn.datasets import load_digits

    seed = check_int("seed", seed, 0)
    check_range("missing_rate", missing_rate, 0.0, 1.0, high_open=True)
    check_range("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    X, digit = load_digits(return_X_y=True)
    y = np.isin(digit, DIGITS_POSITIVE).astype(int)
    gen = np.random.default_rng(seed)
    X = np.where(gen.random(X.shape) < missing_rate, np.nan, X.astype(float))
    perm = gen.permutation(X.shape[0])
    n_test = int(round(test_fraction * X.shape[0]))
    pool, test = perm[n_test:], perm[:n_test]
    Zp, Zt = geometry(X[pool], X[test])
    majority = int(np.mean(y[pool]) > 0.5)
    return MagnetSplit(X[pool], y[pool], X[test], y[test], Zp, Zt, float("nan"),
                       float(np.mean(y[test] == majority)), tuple(f"pixel_{i}" for i in range(X.shape[1])))
