r"""Density-aware acquisition (seed 001): kernel densities, the density ratio, its scores and queries.

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

:func:`density_query` ranks the unlabelled items by this score; :func:`nearest_sq_distance` is the
chunked nearest-neighbour distance the sparsity chapter relates the ratio to.

**Two rules.** The *scalable variant* above (leave-one-out, ``n_reference`` reference items) is not the
seed's rule. :func:`seed_literal_log_ratio` and :func:`seed_literal_scores` compute the seed's code as
written — ``KernelDensity(bandwidth=h).fit(pool).score_samples(pool)`` (every item's own kernel included,
the whole pool as the sample) minus the labelled KDE, and its entropy ``-sum p log(p + 1e-10)`` — in log
space and in row chunks, so that :math:`10^4` items need about 160 MB (the seed's ``np.exp`` of the
ratio overflows; the log ranks alike wherever it does not). :func:`rank_agreement` compares the two rules'
rankings (Spearman and the share of top picks in common).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ppal_lab.compendium.errors import (ParameterError, as_generator, check_int, check_matrix, check_positive,
                                        check_range)
from ppal_lab.learning import active

__all__ = ["check_indices", "density_query", "density_scores", "entropy", "kde_log_density", "log_density_ratio",
           "nearest_sq_distance", "pool_log_density", "rank_agreement", "seed_entropy", "seed_literal_log_ratio",
           "seed_literal_scores"]

_CHUNK_ROWS = 2048


def check_indices(name: str, idx: Any, n: int) -> np.ndarray:
    """A non-empty 1-d array of unique integer row indices in ``[0, n)``, as ``intp``."""
    a = np.asarray(idx)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
        raise ParameterError(name, f"array of dtype {a.dtype} and shape {a.shape}",
                             "a non-empty 1-d array of integer row indices")
    if a.min() < 0 or a.max() >= n:
        raise ParameterError(name, f"indices in [{a.min()}, {a.max()}]", f"indices in [0, {n - 1}]")
    if np.unique(a).size != a.size:
        raise ParameterError(name, "an array with repeated indices", "unique indices")
    return a.astype(np.intp)


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
    E = check_matrix("X_eval", X_eval)
    R = check_matrix("X_ref", X_ref)
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
    Z = check_matrix("Z_pool", Z_pool)
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
    Z = check_matrix("Z_pool", Z_pool)
    lab = check_indices("labelled", labelled, Z.shape[0])
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
                  weight: float = 1.0, log_pool: np.ndarray | None = None, literal: bool = False) -> np.ndarray:
    """The ``batch_size`` unlabelled items with the largest density-aware score.

    ``X_pool`` is what the model sees (NaN allowed), ``Z_pool`` the same items in the geometry of
    :func:`geometry`; ``labelled`` the row indices already labelled; ``log_pool`` an optional cached
    :func:`pool_log_density`. ``literal=False``: the scalable variant (:func:`density_scores`);
    ``literal=True``: the seed's score as written (:func:`seed_literal_scores`; ``log_pool`` should then
    be the whole pool's KDE with own kernels, as :func:`seed_literal_log_ratio` uses, and ``weight`` 1).
    Ties go to the lowest index.
    """
    if not isinstance(literal, bool):
        raise ParameterError("literal", literal, "True or False")
    Z = check_matrix("Z_pool", Z_pool)
    lab = check_indices("labelled", labelled, Z.shape[0])
    n_cand = Z.shape[0] - lab.size
    batch_size = check_int("batch_size", batch_size, 1, max(n_cand, 1))
    if n_cand < 1:
        raise ParameterError("labelled", f"{lab.size} of {Z.shape[0]} items", "fewer than all items")
    log_ratio = log_density_ratio(Z, lab, bandwidth, n_reference, rng, log_pool=log_pool)
    cand = np.setdiff1d(np.arange(Z.shape[0]), lab)
    Xc = X_pool.iloc[cand] if hasattr(X_pool, "iloc") else np.asarray(X_pool)[cand]
    proba = model.predict_proba(Xc)
    score = seed_literal_scores(proba, log_ratio[cand]) if literal else density_scores(proba, log_ratio[cand], weight)
    finite_min = np.min(score[np.isfinite(score)]) if np.isfinite(score).any() else 0.0
    score = np.where(np.isfinite(score), score, finite_min - 1.0)  # zero-entropy items last
    return cand[active.top_k(score, batch_size)]


def nearest_sq_distance(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance from each row of ``A`` to its nearest row of ``B`` (chunked)."""
    A = check_matrix("A", A)
    B = check_matrix("B", B)
    b2 = np.einsum("ij,ij->i", B, B)
    out = np.empty(A.shape[0])
    for start in range(0, A.shape[0], _CHUNK_ROWS):
        C = A[start:start + _CHUNK_ROWS]
        d2 = np.einsum("ij,ij->i", C, C)[:, None] + b2[None, :] - 2.0 * (C @ B.T)
        out[start:start + C.shape[0]] = d2.min(axis=1)
    return out


def seed_literal_log_ratio(Z_pool: Any, labelled: Any, bandwidth: float = 0.5) -> np.ndarray:
    """The seed's density ratio as written, in log space, at every pool item: a KDE fitted on the whole
    pool and scored on it (own kernel included) minus a KDE fitted on the labelled rows. Chunked
    (:func:`kde_log_density`): time :math:`O(n^2 d)`, memory :math:`O(2048 n)`."""
    Z = check_matrix("Z_pool", Z_pool)
    return log_density_ratio(Z, labelled, bandwidth, n_reference=Z.shape[0], leave_one_out=False)


def seed_entropy(proba: np.ndarray) -> np.ndarray:
    """The seed's uncertainty, ``-sum(p * log(p + 1e-10))`` per row (nats)."""
    P = np.asarray(proba, dtype=float)
    if P.ndim != 2:
        raise ParameterError("proba", f"array of shape {P.shape}", "a 2-d probability matrix")
    return -np.sum(P * np.log(P + 1e-10), axis=1)


def seed_literal_scores(proba: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
    """Log of the seed's score ``uncertainty * exp(log_pool - log_labelled)`` (ranks as the seed's product
    wherever that does not overflow); ``log_ratio`` from :func:`seed_literal_log_ratio`."""
    H = seed_entropy(proba)
    lr = np.asarray(log_ratio, dtype=float)
    if lr.shape != H.shape:
        raise ParameterError("log_ratio", f"array of shape {lr.shape}", f"shape {H.shape} like proba rows")
    with np.errstate(divide="ignore"):  # the seed's 1e-10 can make H a hair below 0: ranked last, as -inf
        return np.log(np.maximum(H, 0.0)) + lr


def rank_agreement(a: Any, b: Any, k: int) -> dict[str, float]:
    """How alike two scores rank the same items: Spearman's rho (ties averaged, ``-inf`` ranks lowest)
    and the share of the top ``k`` of ``a`` that are also in the top ``k`` of ``b`` (ties to the lowest
    index, as :func:`density_query`)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ParameterError("b", f"array of shape {y.shape}", f"shape {x.shape} like a (>= 2 items)")
    k = check_int("k", k, 1, x.size)
    top = lambda v: set(active.top_k(np.where(np.isfinite(v), v, -np.finfo(float).max), k).tolist())  # noqa: E731
    return {"spearman": float(spearmanr(x, y).statistic), "top_k_shared": len(top(x) & top(y)) / k}
