r"""Cold start: the first labels, chosen before any model exists.

:func:`cold_start` chooses the first labels before any model exists: ``"random"``, ``"kmeans"`` (item
diversity: k-means with as many clusters as initial labels on the imputed, standardised items, then the
item nearest each centroid) or ``"seed"`` — a faithful re-implementation of seed 001's
``cold_start_sampling``, which spectrally clusters the *feature* correlation matrix and then returns,
for each feature cluster, a random *feature index* that it uses as an *item* index. Every item it
returns is therefore one of the first ``n_features`` rows of the pool (tested).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ppal_lab.compendium.errors import ParameterError, as_generator, check_choice, check_int, check_matrix

__all__ = ["COLD_STARTS", "cold_start", "seed_cold_start"]

#: Cold-start rules of :func:`cold_start`.
COLD_STARTS: tuple[str, ...] = ("random", "kmeans", "seed")


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
    A = check_matrix("Z", Z)
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
    A = check_matrix("Z", Z)
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
