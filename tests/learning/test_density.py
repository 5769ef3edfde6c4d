"""Tests of ppal_lab.learning.density: KDE and the density ratio against brute force and scikit-learn,
density-aware scores and queries."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KernelDensity

from ppal_lab.learning import density as dn


def test_kde_log_density_equals_sklearn_kernel_density(small_pool):
    ref = small_pool[::3]
    ours = dn.kde_log_density(small_pool, ref, 0.8)
    theirs = KernelDensity(kernel="gaussian", bandwidth=0.8).fit(ref).score_samples(small_pool)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


@pytest.mark.parametrize("bandwidth", [0.5, 1.5])
def test_density_ratio_equals_brute_force_kde_on_a_small_pool(small_pool, bandwidth):
    """The seed's computation: KDE of the whole pool (self included) over KDE of the labelled set."""
    lab = np.arange(0, small_pool.shape[0], 11)
    ours = dn.log_density_ratio(small_pool, lab, bandwidth, n_reference=10**6, leave_one_out=False)
    pool = KernelDensity(bandwidth=bandwidth).fit(small_pool).score_samples(small_pool)
    labd = KernelDensity(bandwidth=bandwidth).fit(small_pool[lab]).score_samples(small_pool)
    np.testing.assert_allclose(ours, pool - labd, rtol=0, atol=1e-9)


def test_leave_one_out_pool_density_equals_a_brute_force_loop(small_pool):
    Z = small_pool[:60]
    h = 0.9
    ours = dn.pool_log_density(Z, h, n_reference=10**6, leave_one_out=True)
    brute = np.array([KernelDensity(bandwidth=h).fit(np.delete(Z, i, axis=0)).score_samples(Z[i:i + 1])[0]
                      for i in range(Z.shape[0])])
    np.testing.assert_allclose(ours, brute, rtol=0, atol=1e-9)


def test_subsampled_pool_density_tracks_the_full_one():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((4000, 3))
    full = dn.pool_log_density(Z, 0.5, n_reference=10**6)
    sub = dn.pool_log_density(Z, 0.5, n_reference=1000, rng=1)
    assert np.corrcoef(full, sub)[0, 1] > 0.97
    assert abs(np.median(full - sub)) < 0.1


def test_ratio_is_large_where_the_labelled_set_is_absent(small_pool):
    lab = np.arange(0, 150, 10)          # labels only in the first blob
    lr = dn.log_density_ratio(small_pool, lab, 1.0, n_reference=10**6)
    assert lr[150:].min() > lr[:150].max()


def test_density_query_picks_the_uncovered_cluster(small_pool):
    y = (small_pool[:, 0] > 2).astype(int)
    lab = np.r_[np.arange(0, 150, 10), 150]   # one item of the second blob so both classes exist
    clf = LogisticRegression().fit(small_pool[lab], y[lab])
    picks = dn.density_query(clf, small_pool, small_pool, lab, 5, bandwidth=1.0, n_reference=10**6)
    assert set(picks) <= set(range(151, 240)) and len(set(picks)) == 5


def test_density_scores_rank_like_the_product_without_overflow():
    proba = np.array([[0.5, 0.5], [0.9, 0.1], [0.99, 0.01], [1.0, 0.0]])
    log_ratio = np.array([0.0, 2.0, 900.0, 5.0])   # exp(900) overflows float64
    s = dn.density_scores(proba, log_ratio)
    assert np.isfinite(s[:3]).all() and s[3] == -np.inf
    assert np.argmax(s) == 2
    product = dn.entropy(proba[:2]) * np.exp(log_ratio[:2])
    assert np.argsort(s[:2]).tolist() == np.argsort(product).tolist()
