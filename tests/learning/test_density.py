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


def _seed_score_sklearn(proba, Z, lab, h):
    """Seed 001's ``_calculate_density_aware_scores`` with scikit-learn, in log space."""
    log_pool = KernelDensity(bandwidth=h).fit(Z).score_samples(Z)
    log_lab = KernelDensity(bandwidth=h).fit(Z[lab]).score_samples(Z)
    return np.log(-np.sum(proba * np.log(proba + 1e-10), axis=1)) + log_pool - log_lab


def test_seed_literal_rule_equals_sklearn_at_d50_h05_across_chunks():
    """The seed's rule as written, at its d = 50 and h = 0.5, on a pool larger than one row chunk."""
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((dn._CHUNK_ROWS + 300, 50))
    lab = rng.choice(Z.shape[0], 40, replace=False)
    proba = rng.dirichlet([1, 1], Z.shape[0])
    ours = dn.seed_literal_scores(proba, dn.seed_literal_log_ratio(Z, lab, 0.5))
    np.testing.assert_allclose(ours, _seed_score_sklearn(proba, Z, lab, 0.5), rtol=0, atol=1e-7)


def test_literal_rule_ranks_by_distance_at_h05_and_the_variant_disagrees():
    """At d = 50, h = 0.5 the seed's score ranks as the distance to the nearest labelled item; the scalable
    variant (leave-one-out, 300 reference items) ranks otherwise, and both agree once the kernel is wide."""
    rng = np.random.default_rng(6)
    Z = rng.standard_normal((1500, 50)) * rng.binomial(1, 0.4, (1500, 50))
    lab = rng.choice(1500, 60, replace=False)
    unl = np.setdiff1d(np.arange(1500), lab)
    proba = rng.dirichlet([2, 2], unl.size)
    dist = dn.nearest_sq_distance(Z[unl], Z[lab])
    agree = {}
    for h in (0.5, 20.0):
        literal = dn.seed_literal_scores(proba, dn.seed_literal_log_ratio(Z, lab, h)[unl])
        variant = dn.density_scores(proba, dn.log_density_ratio(Z, lab, h, n_reference=300, rng=0)[unl])
        agree[h] = dn.rank_agreement(literal, variant, 20)
        if h == 0.5:
            assert dn.rank_agreement(literal, dist, 20)["spearman"] > 0.99
    assert agree[0.5]["spearman"] < 0.9 and agree[0.5]["top_k_shared"] < 1.0
    assert agree[20.0]["spearman"] > 0.99


def test_rank_agreement_on_known_orders():
    assert dn.rank_agreement([1, 2, 3, 4], [4, 3, 2, 1], 1) == {"spearman": -1.0, "top_k_shared": 0.0}
    assert dn.rank_agreement([1, 2, 3, 4], [10, 20, 30, 40], 2) == {"spearman": 1.0, "top_k_shared": 1.0}
    assert dn.rank_agreement([1, 2, -np.inf, 4], [1, 2, 0, 4], 3)["top_k_shared"] == 1.0
    with pytest.raises(Exception, match="b"):
        dn.rank_agreement([1, 2, 3], [1, 2], 1)
