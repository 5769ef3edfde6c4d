r"""Density-aware acquisition and cold start for sparse, mostly missing data (seed 001).

Density-aware acquisition
-------------------------
Seed 001 scores an unlabelled item :math:`x` by its predictive entropy times a density ratio,

.. math:: s(x) = H\big(p(y \mid x)\big)\;\frac{\hat p_{\text{pool}}(x)}{\hat p_{\text{lab}}(x)},

where both densities are Gaussian kernel density estimates (KDE) with the same bandwidth :math:`h`, one
fitted on the pool and one on the labelled set, so that items from regions the labelled set covers
poorly are preferred. Written literally (as in the seed) the pool density costs :math:`O(n^2 d)` and
the ratio overflows. Here:

* the pool density is a KDE on a uniform **reference subsample** of ``n_reference`` pool items
  (leave-one-out for the items in the subsample, so that no item counts its own kernel), the labelled
  density a KDE on the labelled items; both are evaluated at every pool item with chunked matrix
  products and a log-sum-exp: :math:`O(n (m + n_L) d)` time for :math:`m` reference and
  :math:`n_L` labelled items, i.e. linear in the pool size :math:`n` at a fixed :math:`m`;
* the score is ranked in log space, :math:`\log H + \beta \log(\hat p_{\text{pool}}/\hat p_{\text{lab}})`,
  which orders items exactly as the product does (:math:`\beta = 1`) without overflow.

Tree-based KDE (scikit-learn's ``KernelDensity`` with a kd- or ball tree) gives the same numbers but is
no faster than brute force in 50 dimensions (trees cannot prune there); :func:`kde_log_density`
reproduces ``KernelDensity(kernel="gaussian").score_samples`` to rounding error (tested).

Geometry and missing values
---------------------------
Densities and clusters need a metric space without holes: :func:`geometry` mean-imputes every column
and standardises it (scikit-learn ``SimpleImputer`` + ``StandardScaler``), so a missing value sits at
the column mean (0). Classifiers get the raw matrix with NaN: :func:`make_classifier` builds either the
same imputation pipeline followed by a logistic regression, or a ``HistGradientBoostingClassifier``,
which handles NaN natively.

Cold start
----------
:func:`cold_start` chooses the first labels before any model exists: ``"random"``, ``"kmeans"`` (item
diversity: k-means with as many clusters as initial labels on the imputed, standardised items, then the
item nearest each centroid) or ``"seed"`` — a faithful re-implementation of seed 001's
``cold_start_sampling``, which spectrally clusters the *feature* correlation matrix and then returns,
for each feature cluster, a random *feature index* that it uses as an *item* index. Every item it
returns is therefore one of the first ``n_features`` rows of the pool (tested).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ppal_lab.learning import active
from ppal_lab.compendium.errors import ParameterError, as_generator, check_choice, check_int, check_positive, check_range

__all__ = [
    "COLD_STARTS",
    "MODELS",
    "STRATEGIES",
    "AcquisitionRun",
    "MagnetSplit",
    "check_acquisition_parameters",
    "classification_scores",
    "cold_start",
    "compare_strategies",
    "curves_frame",
    "density_query",
    "density_scores",
    "entropy",
    "geometry",
    "independent_label_ceiling",
    "initial_set_quality",
    "kde_log_density",
    "log_density_ratio",
    "minimal_example_scores",
    "nearest_sq_distance",
    "pool_log_density",
    "ratio_diagnostics",
    "magnet_split",
    "make_classifier",
    "run_acquisition",
    "runs_frame",
    "seed_cold_start",
    "seed_minimal_example",
    "summary_table",
]

#: Acquisition strategies of :func:`run_acquisition`.
STRATEGIES: tuple[str, ...] = ("random", "entropy", "density")
#: Cold-start rules of :func:`cold_start`.
COLD_STARTS: tuple[str, ...] = ("random", "kmeans", "seed")
#: Classifiers of :func:`make_classifier`.
MODELS: tuple[str, ...] = ("logreg", "hgb")

_CHUNK_ROWS = 2048


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _matrix(name: str, X: Any, allow_nan: bool = False) -> np.ndarray:
    try:
        A = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(name, type(X).__name__, "a 2-d numeric array") from None
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise ParameterError(name, f"array of shape {A.shape}", "a non-empty 2-d array")
    finite = np.isfinite(A) | (np.isnan(A) if allow_nan else False)
    if not finite.all():
        raise ParameterError(name, "an array with " + ("infinite" if allow_nan else "NaN or infinite")
                             + " values", "finite values" + (" or NaN" if allow_nan else ""))
    return A


def _index_array(name: str, idx: Any, n: int) -> np.ndarray:
    a = np.asarray(idx)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
        raise ParameterError(name, f"array of dtype {a.dtype} and shape {a.shape}",
                             "a non-empty 1-d array of integer row indices")
    if a.min() < 0 or a.max() >= n:
        raise ParameterError(name, f"indices in [{a.min()}, {a.max()}]", f"indices in [0, {n - 1}]")
    if np.unique(a).size != a.size:
        raise ParameterError(name, "an array with repeated indices", "unique indices")
    return a.astype(np.intp)


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
    A = _matrix("X_fit", X_fit, allow_nan=True)
    mean = np.zeros(A.shape[1])
    seen = ~np.isnan(A).all(axis=0)
    mean[seen] = np.nanmean(A[:, seen], axis=0)
    filled = np.where(np.isnan(A), mean, A)
    std = filled.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    out = [(filled - mean) / std]
    for k, X in enumerate(others):
        B = _matrix(f"others[{k}]", X, allow_nan=True)
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
# kernel density and the density ratio
# ----------------------------------------------------------------------------------------------
def _row_logsumexp(A: np.ndarray) -> np.ndarray:
    """``log(sum(exp(A), axis=1))`` computed in place (A is overwritten); rows need a finite max."""
    top = A.max(axis=1)
    A -= top[:, None]
    np.exp(A, out=A)
    return np.log(A.sum(axis=1)) + top


def kde_log_density(X_eval: Any, X_ref: Any, bandwidth: float,
                    exclude: np.ndarray | None = None) -> np.ndarray:
    r"""Log of a Gaussian KDE fitted on ``X_ref``, evaluated at every row of ``X_eval``.

    .. math:: \log \hat p(x) = \log \sum_j e^{-\lVert x - r_j\rVert^2 / (2h^2)} - \log n_{\text{ref}}
              - \tfrac d2 \log(2\pi h^2),

    the normalisation of scikit-learn's ``KernelDensity(kernel="gaussian", bandwidth=h)``. Rows are
    processed in chunks with one matrix product each (memory ``O(chunk * n_ref)``); the row term
    :math:`-\lVert x\rVert^2/(2h^2)` is taken out of the log-sum-exp.

    Parameters
    ----------
    X_eval : array_like of shape (n, d)
        Where to evaluate (finite values).
    X_ref : array_like of shape (m, d)
        The KDE's sample.
    bandwidth : float
        :math:`h > 0`.
    exclude : numpy.ndarray of shape (n,), optional
        For each evaluation row, the index of one reference row to leave out (``-1``: none), e.g. the
        row itself when ``X_eval`` contains the reference sample. Such rows are normalised by
        :math:`n_{\text{ref}} - 1`.

    Returns
    -------
    numpy.ndarray of shape (n,)
    """
    E = _matrix("X_eval", X_eval)
    R = _matrix("X_ref", X_ref)
    if E.shape[1] != R.shape[1]:
        raise ParameterError("X_ref", f"{R.shape[1]} columns", f"{E.shape[1]} columns like X_eval")
    h = check_positive("bandwidth", bandwidth)
    if exclude is not None:
        exclude = np.asarray(exclude)
        if exclude.shape != (E.shape[0],) or not np.issubdtype(exclude.dtype, np.integer) \
                or exclude.min() < -1 or exclude.max() >= R.shape[0]:
            raise ParameterError("exclude", f"array of shape {exclude.shape}",
                                 f"shape ({E.shape[0]},) of ints in [-1, {R.shape[0] - 1}]")
        if R.shape[0] < 2 and (exclude >= 0).any():
            raise ParameterError("X_ref", f"{R.shape[0]} row", ">= 2 rows when rows are left out")
    m, d = R.shape
    # -|x - r|^2 / (2h^2) = s|x|^2 + (s|r|^2 - 2s x.r) with s = -1/(2h^2): the first term is constant
    # along a row, so it leaves the log-sum-exp; the rest is one matrix product plus a row vector.
    s = -0.5 / (h * h)
    Rt = np.ascontiguousarray((-2.0 * s) * R.T)
    r_term = s * np.einsum("ij,ij->i", R, R)
    out = s * np.einsum("ij,ij->i", E, E)
    for start in range(0, E.shape[0], _CHUNK_ROWS):
        A = E[start:start + _CHUNK_ROWS] @ Rt
        A += r_term
        if exclude is not None:
            ex = exclude[start:start + _CHUNK_ROWS]
            rows = np.flatnonzero(ex >= 0)
            A[rows, ex[rows]] = -np.inf
        out[start:start + A.shape[0]] += _row_logsumexp(A)
    count = np.full(E.shape[0], float(m))
    if exclude is not None:
        count[exclude >= 0] -= 1.0
    return out - np.log(count) - 0.5 * d * math.log(2.0 * math.pi * h * h)


def pool_log_density(Z_pool: Any, bandwidth: float = 0.5, n_reference: int = 1000,
                     rng: np.random.Generator | int = 0, leave_one_out: bool = True) -> np.ndarray:
    r"""Log of the pool KDE at every pool item, fitted on a uniform reference subsample.

    Parameters
    ----------
    Z_pool : array_like of shape (n, d)
        The pool in a finite metric space (see :func:`geometry`).
    bandwidth : float
        Kernel bandwidth :math:`h > 0` (the seed uses 0.5).
    n_reference : int
        Size :math:`m` of the uniform subsample the KDE is fitted on; the whole pool when
        ``n_reference >= n`` (the seed's :math:`O(n^2)` computation).
    rng : numpy.random.Generator or int
        Draws the subsample.
    leave_one_out : bool
        Leave each reference item's own kernel out of its density (otherwise the items that happen to
        be in the subsample get an inflated density). ``False`` reproduces the seed's
        ``KernelDensity().fit(pool).score_samples(pool)`` when the subsample is the whole pool.

    Returns
    -------
    numpy.ndarray of shape (n,)
    """
    Z = _matrix("Z_pool", Z_pool)
    h = check_positive("bandwidth", bandwidth)
    m = check_int("n_reference", n_reference, 2)
    gen = as_generator(rng)
    if not isinstance(leave_one_out, bool):
        raise ParameterError("leave_one_out", leave_one_out, "True or False")
    n = Z.shape[0]
    ref = np.arange(n) if m >= n else np.sort(gen.choice(n, size=m, replace=False))
    exclude = None
    if leave_one_out and ref.size >= 2:
        exclude = np.full(n, -1, dtype=np.intp)
        exclude[ref] = np.arange(ref.size)
    return kde_log_density(Z, Z[ref], h, exclude=exclude)


def log_density_ratio(Z_pool: Any, labelled: Any, bandwidth: float = 0.5, n_reference: int = 1000,
                      rng: np.random.Generator | int = 0, leave_one_out: bool = True,
                      log_pool: np.ndarray | None = None) -> np.ndarray:
    r""":math:`\log \hat p_{\text{pool}}(x) - \log \hat p_{\text{lab}}(x)` at every pool item.

    The pool term is :func:`pool_log_density` (pass ``log_pool`` to reuse it: it does not depend on
    the labelled set), the labelled term a KDE with the same bandwidth on the rows ``labelled``.
    Cost :math:`O(n(m + n_L)d)`.

    Returns
    -------
    numpy.ndarray of shape (n,)
        The log density ratio (finite).
    """
    Z = _matrix("Z_pool", Z_pool)
    lab = _index_array("labelled", labelled, Z.shape[0])
    h = check_positive("bandwidth", bandwidth)
    if log_pool is None:
        log_pool = pool_log_density(Z, h, n_reference, rng, leave_one_out)
    else:
        log_pool = np.asarray(log_pool, dtype=float)
        if log_pool.shape != (Z.shape[0],):
            raise ParameterError("log_pool", f"array of shape {log_pool.shape}", f"shape ({Z.shape[0]},)")
    return log_pool - kde_log_density(Z, Z[lab], h)


def entropy(proba: np.ndarray) -> np.ndarray:
    """Predictive entropy (nats) of each row of a probability matrix (``0 log 0 = 0``)."""
    return active.uncertainty_scores(proba, "entropy")


def density_scores(proba: np.ndarray, log_ratio: np.ndarray, weight: float = 1.0) -> np.ndarray:
    r"""Log of the density-aware score, :math:`\log H + \beta \log(\hat p_{\text{pool}}/\hat p_{\text{lab}})`.

    Ranking by it is ranking by :math:`H \cdot \text{ratio}^\beta` (the seed's rule at
    :math:`\beta = 1`); items with zero entropy get :math:`-\infty`.
    """
    beta = float(check_range("weight", weight, 0.0, math.inf, high_open=True))
    H = entropy(proba)
    lr = np.asarray(log_ratio, dtype=float)
    if lr.shape != H.shape:
        raise ParameterError("log_ratio", f"array of shape {lr.shape}", f"shape {H.shape} like proba rows")
    with np.errstate(divide="ignore"):
        return np.log(H) + beta * lr


def density_query(model: Any, X_pool: Any, Z_pool: np.ndarray, labelled: np.ndarray, batch_size: int,
                  bandwidth: float = 0.5, n_reference: int = 1000, rng: np.random.Generator | int = 0,
                  weight: float = 1.0, log_pool: np.ndarray | None = None) -> np.ndarray:
    """The ``batch_size`` unlabelled items with the largest density-aware score (seed 001's rule).

    ``X_pool`` is what the model sees (NaN allowed), ``Z_pool`` the same items in the geometry of
    :func:`geometry`; ``labelled`` the row indices already labelled; ``log_pool`` an optional cached
    :func:`pool_log_density`. Ties go to the lowest index.
    """
    Z = _matrix("Z_pool", Z_pool)
    lab = _index_array("labelled", labelled, Z.shape[0])
    n_cand = Z.shape[0] - lab.size
    batch_size = check_int("batch_size", batch_size, 1, max(n_cand, 1))
    if n_cand < 1:
        raise ParameterError("labelled", f"{lab.size} of {Z.shape[0]} items", "fewer than all items")
    log_ratio = log_density_ratio(Z, lab, bandwidth, n_reference, rng, log_pool=log_pool)
    cand = np.setdiff1d(np.arange(Z.shape[0]), lab)
    Xc = X_pool.iloc[cand] if hasattr(X_pool, "iloc") else np.asarray(X_pool)[cand]
    score = density_scores(model.predict_proba(Xc), log_ratio[cand], weight)
    finite_min = np.min(score[np.isfinite(score)]) if np.isfinite(score).any() else 0.0
    score = np.where(np.isfinite(score), score, finite_min - 1.0)  # zero-entropy items last
    return cand[active.top_k(score, batch_size)]


# ----------------------------------------------------------------------------------------------
# cold start
# ----------------------------------------------------------------------------------------------
def seed_cold_start(Z: Any, n_initial: int, rng: np.random.Generator | int = 0) -> np.ndarray:
    """Seed 001's ``cold_start_sampling``, re-implemented faithfully.

    1. ``corr = corrcoef(Z.T)`` — the ``d x d`` correlation matrix of the *features*;
    2. ``SpectralClustering(n_clusters=n_initial)`` on its rows — clusters of *features*;
    3. for every cluster, a random member — a *feature* index in ``[0, d)`` — is returned and used as
       an *item* index.

    So the "diverse" initial set is a random choice among the first ``d`` rows of the pool, one per
    feature cluster; the items' own values play no role beyond the correlations. Requires
    ``n_initial <= d`` (the seed's code fails otherwise). The seed seeds nothing; here the clustering
    and the draws use ``rng``.
    """
    A = _matrix("Z", Z)
    d = A.shape[1]
    k = check_int("n_initial", n_initial, 2, d)
    gen = as_generator(rng)
    from sklearn.cluster import SpectralClustering

    corr = np.corrcoef(A.T)
    if not np.all(np.isfinite(corr)):
        raise ParameterError("Z", "columns with zero variance", "columns with positive variance")
    with warnings.catch_warnings():  # sklearn notes that rows are taken as samples: as in the seed
        warnings.simplefilter("ignore", UserWarning)
        labels = SpectralClustering(n_clusters=k,
                                    random_state=int(gen.integers(2**31))).fit_predict(corr)
    picks = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        picks.append(int(gen.choice(members)))
    return np.asarray(picks, dtype=np.intp)


def cold_start(Z: Any, n_initial: int, method: str = "kmeans", rng: np.random.Generator | int = 0,
               max_fit_rows: int = 20_000) -> np.ndarray:
    """Initial items to label before any model exists.

    * ``"random"`` — uniform without replacement;
    * ``"kmeans"`` — k-means (k = ``n_initial``, k-means++ seeding) on the imputed, standardised items
      (on a uniform subsample of ``max_fit_rows`` items when the pool is larger), then for each
      centroid the nearest not-yet-chosen item of the whole pool (a medoid-like representative);
    * ``"seed"`` — :func:`seed_cold_start`.

    Returns distinct row indices. They may all share one class; :func:`run_acquisition` then swaps in
    one item of the other class (see there).
    """
    A = _matrix("Z", Z)
    check_choice("method", method, COLD_STARTS)
    n = A.shape[0]
    k = check_int("n_initial", n_initial, 1, n)
    gen = as_generator(rng)
    max_fit_rows = check_int("max_fit_rows", max_fit_rows, k)
    if method == "random":
        return np.sort(gen.choice(n, size=k, replace=False)).astype(np.intp)
    if method == "seed":
        return seed_cold_start(A, k, gen)
    from sklearn.cluster import KMeans

    fit_rows = A if n <= max_fit_rows else A[gen.choice(n, size=max_fit_rows, replace=False)]
    km = KMeans(n_clusters=k, n_init=3, random_state=int(gen.integers(2**31))).fit(fit_rows)
    C = km.cluster_centers_
    picks: list[int] = []
    taken = np.zeros(n, dtype=bool)
    a2 = np.einsum("ij,ij->i", A, A)
    for c in C:
        dist = a2 - 2.0 * (A @ c)  # + |c|^2, constant per centroid
        dist[taken] = np.inf
        j = int(np.argmin(dist))
        picks.append(j)
        taken[j] = True
    return np.asarray(picks, dtype=np.intp)


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


def _fix_single_class(init: np.ndarray, y: np.ndarray, gen: np.random.Generator) -> np.ndarray:
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
    ``"entropy"`` through :func:`ppal_lab.learning.active.query`, ``"density"`` through
    :func:`density_query`) until ``n_labels`` labels are used.

    The pool density of ``"density"`` is computed once per run (it does not depend on the labels).
    Every random draw comes from ``default_rng(seed)``.
    """
    if not callable(estimator_factory):
        raise ParameterError("estimator_factory", estimator_factory, "a callable returning a classifier")
    check_choice("strategy", strategy, STRATEGIES)
    check_choice("cold", cold, COLD_STARTS)
    Z = _matrix("Z_pool", Z_pool)
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
    init = _fix_single_class(cold_start(Z, n_initial, cold, gen), y, gen)
    log_pool = pool_log_density(Z, bandwidth, n_reference, gen) if strategy == "density" else None
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
        if strategy == "density":
            new = density_query(model, X_pool, Z, idx, b, bandwidth, n_reference, gen, weight,
                                log_pool=log_pool)
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


def compare_strategies(splits: list[MagnetSplit], strategies: tuple[str, ...], colds: tuple[str, ...],
                       n_labels: int, n_initial: int, batch_size: int, seeds: list[int],
                       model: str = "logreg", bandwidth: float = 0.5, n_reference: int = 1000,
                       weight: float = 1.0, progress: bool = False) -> list[AcquisitionRun]:
    """:func:`run_acquisition` for every (split, seed) pair, strategy and cold start.

    ``splits[i]`` is run with seed ``seeds[i]`` (one data set per seed); every strategy sees the same
    cold-start labels at a given seed and cold start. Small fits run on one thread.
    """
    from threadpoolctl import threadpool_limits

    if len(splits) != len(seeds) or not splits:
        raise ParameterError("seeds", seeds, f"one seed per split ({len(splits)} splits)")
    for s in strategies:
        check_choice("strategies", s, STRATEGIES)
    for c in colds:
        check_choice("colds", c, COLD_STARTS)
    check_choice("model", model, MODELS)
    check_acquisition_parameters(splits[0].Z_pool.shape[0], n_labels, n_initial, batch_size)
    jobs = [(sp, seed, s, c) for sp, seed in zip(splits, seeds) for c in colds for s in strategies]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="acquisition runs", leave=False)
    runs = []
    with threadpool_limits(1):
        for sp, seed, s, c in jobs:
            runs.append(run_acquisition(lambda: make_classifier(model, seed), sp.X_pool, sp.y_pool,
                                        sp.X_test, sp.y_test, sp.Z_pool, s, c, n_labels, n_initial,
                                        batch_size, seed, bandwidth, n_reference, weight))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return runs


def runs_frame(runs: list[AcquisitionRun]):
    """Final scores of runs as a ``pandas.DataFrame`` (one row per run)."""
    import pandas as pd

    return pd.DataFrame([{"strategy": r.strategy, "cold_start": r.cold_start, "seed": r.seed,
                          "labels": int(r.n_labels[-1]), **r.final()} for r in runs])


def curves_frame(runs: list[AcquisitionRun]):
    """Learning curves of runs in long format (columns strategy, cold_start, seed, labels, metric,
    value)."""
    import pandas as pd

    rows = []
    for r in runs:
        for metric in ("accuracy", "balanced_accuracy", "f1"):
            for n, v in zip(r.n_labels, getattr(r, metric)):
                rows.append({"strategy": r.strategy, "cold_start": r.cold_start, "seed": r.seed,
                             "labels": int(n), "metric": metric, "value": float(v)})
    return pd.DataFrame(rows)


def summary_table(frame, by: list[str], metrics: list[str], digits: int = 3):
    """Mean and 95% Student-t CI over the rows of each group, as ``"mean [lo, hi]"`` strings."""
    import pandas as pd

    from ppal_lab.compendium.results import mean_ci

    rows = []
    for key, g in frame.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for m in metrics:
            mean, ci, n = mean_ci(g[m])
            row[m] = f"{mean:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")
        row["n"] = n
        rows.append(row)
    return pd.DataFrame(rows)


def ratio_diagnostics(split: MagnetSplit, labelled: np.ndarray, bandwidth: float = 0.5,
                      n_reference: int = 1000, seed: int = 0, model: str = "logreg"):
    """How the density ratio behaves on one pool with a given labelled set.

    Returns ``(summary, frame)``: the span of the log ratio (natural log), the share of pool items
    whose ratio overflows ``float64`` when exponentiated as in the seed's code, the Spearman rank
    correlations of the log score with the log ratio, with the entropy, and of the log ratio with the
    distance to the nearest labelled item; and a per-item frame (log ratio, entropy, distance) of the
    unlabelled items.
    """
    import pandas as pd
    from scipy.stats import spearmanr

    lab = _index_array("labelled", labelled, split.Z_pool.shape[0])
    clf = make_classifier(model, seed).fit(split.X_pool[lab], split.y_pool[lab])
    lr = log_density_ratio(split.Z_pool, lab, bandwidth, n_reference, seed)
    unl = np.setdiff1d(np.arange(split.Z_pool.shape[0]), lab)
    H = entropy(clf.predict_proba(split.X_pool[unl]))
    score = density_scores(clf.predict_proba(split.X_pool[unl]), lr[unl])
    Zl = split.Z_pool[lab]
    dist = np.sqrt(np.maximum(nearest_sq_distance(split.Z_pool[unl], Zl), 0.0))
    finite = np.isfinite(score)
    summary = {
        "log_ratio_min": float(lr[unl].min()), "log_ratio_max": float(lr[unl].max()),
        "overflow_share": float(np.mean(lr[unl] > np.log(np.finfo(float).max))),
        "rho_score_ratio": float(spearmanr(score[finite], lr[unl][finite]).statistic),
        "rho_score_entropy": float(spearmanr(score[finite], H[finite]).statistic),
        "rho_ratio_distance": float(spearmanr(lr[unl], dist).statistic),
    }
    frame = pd.DataFrame({"log_ratio": lr[unl], "entropy": H, "distance": dist})
    return summary, frame


def nearest_sq_distance(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance from each row of ``A`` to its nearest row of ``B`` (chunked)."""
    A = _matrix("A", A)
    B = _matrix("B", B)
    b2 = np.einsum("ij,ij->i", B, B)
    out = np.empty(A.shape[0])
    for start in range(0, A.shape[0], _CHUNK_ROWS):
        C = A[start:start + _CHUNK_ROWS]
        d2 = np.einsum("ij,ij->i", C, C)[:, None] + b2[None, :] - 2.0 * (C @ B.T)
        out[start:start + C.shape[0]] = d2.min(axis=1)
    return out


def initial_set_quality(split: MagnetSplit, method: str, n_initial: int, seed: int,
                        model: str = "logreg") -> dict[str, float]:
    """One cold start on one pool: high-grade items among the picks, the largest pick index, the mean
    distance from a pool item to its nearest pick (coverage; lower is better) and test scores of a
    model fitted on the picks alone (after the same single-class fix as :func:`run_acquisition`)."""
    gen = np.random.default_rng(check_int("seed", seed, 0))
    picks = _fix_single_class(cold_start(split.Z_pool, n_initial, method, gen), split.y_pool, gen)
    clf = make_classifier(model, seed).fit(split.X_pool[picks], split.y_pool[picks])
    cover = float(np.sqrt(np.maximum(nearest_sq_distance(split.Z_pool, split.Z_pool[picks]), 0)).mean())
    return {"cold_start": method, "seed": seed, "high_grade_picked": int(split.y_pool[picks].sum()),
            "max_index": int(picks.max()), "coverage_distance": cover,
            **classification_scores(split.y_test, clf.predict(split.X_test))}


def minimal_example_scores(seed: int, strategy: str = "density", n_initial: int = 20,
                           n_labels: int = 70, batch_size: int = 10, model: str = "logreg",
                           bandwidth: float = 0.5) -> dict[str, float]:
    """Active learning on the seed's minimal example: a pool of 1000 items drawn by
    :func:`seed_minimal_example` (labels independent of the features), ``n_initial`` random labels
    plus ``(n_labels - n_initial) / batch_size`` rounds (the seed: 5 rounds of 10), scored on 1000
    fresh items of the same law."""
    check_choice("strategy", strategy, STRATEGIES)
    X, y, _ = seed_minimal_example(seed, n_samples=2000)
    Z, Zt = geometry(X[:1000], X[1000:])
    run = run_acquisition(lambda: make_classifier(model, seed), X[:1000], y[:1000], X[1000:],
                          y[1000:], Z, strategy, "random", n_labels, n_initial, batch_size, seed,
                          bandwidth)
    return {"strategy": strategy, "seed": seed, **run.final()}
