"""Tests of ppal_lab.learning.acquisition: KDE and density ratio against brute force, density-aware queries,
cold starts (including the seed's), the acquisition loop and its parameter checks."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KernelDensity

from ppal_lab.learning import acquisition as aq
from ppal_lab.compendium.errors import ParameterError


@pytest.fixture(scope="module")
def small_pool():
    rng = np.random.default_rng(3)
    Z = np.vstack([rng.normal(0, 1, (150, 4)), rng.normal(4, 0.5, (90, 4))])
    return Z


def test_kde_log_density_equals_sklearn_kernel_density(small_pool):
    ref = small_pool[::3]
    ours = aq.kde_log_density(small_pool, ref, 0.8)
    theirs = KernelDensity(kernel="gaussian", bandwidth=0.8).fit(ref).score_samples(small_pool)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


@pytest.mark.parametrize("bandwidth", [0.5, 1.5])
def test_density_ratio_equals_brute_force_kde_on_a_small_pool(small_pool, bandwidth):
    """The seed's computation: KDE of the whole pool (self included) over KDE of the labelled set."""
    lab = np.arange(0, small_pool.shape[0], 11)
    ours = aq.log_density_ratio(small_pool, lab, bandwidth, n_reference=10**6, leave_one_out=False)
    pool = KernelDensity(bandwidth=bandwidth).fit(small_pool).score_samples(small_pool)
    labd = KernelDensity(bandwidth=bandwidth).fit(small_pool[lab]).score_samples(small_pool)
    np.testing.assert_allclose(ours, pool - labd, rtol=0, atol=1e-9)


def test_leave_one_out_pool_density_equals_a_brute_force_loop(small_pool):
    Z = small_pool[:60]
    h = 0.9
    ours = aq.pool_log_density(Z, h, n_reference=10**6, leave_one_out=True)
    brute = np.array([KernelDensity(bandwidth=h).fit(np.delete(Z, i, axis=0)).score_samples(Z[i:i + 1])[0]
                      for i in range(Z.shape[0])])
    np.testing.assert_allclose(ours, brute, rtol=0, atol=1e-9)


def test_subsampled_pool_density_tracks_the_full_one():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((4000, 3))
    full = aq.pool_log_density(Z, 0.5, n_reference=10**6)
    sub = aq.pool_log_density(Z, 0.5, n_reference=1000, rng=1)
    assert np.corrcoef(full, sub)[0, 1] > 0.97
    assert abs(np.median(full - sub)) < 0.1


def test_ratio_is_large_where_the_labelled_set_is_absent(small_pool):
    lab = np.arange(0, 150, 10)          # labels only in the first blob
    lr = aq.log_density_ratio(small_pool, lab, 1.0, n_reference=10**6)
    assert lr[150:].min() > lr[:150].max()


def test_density_query_picks_the_uncovered_cluster(small_pool):
    y = (small_pool[:, 0] > 2).astype(int)
    lab = np.r_[np.arange(0, 150, 10), 150]   # one item of the second blob so both classes exist
    clf = LogisticRegression().fit(small_pool[lab], y[lab])
    picks = aq.density_query(clf, small_pool, small_pool, lab, 5, bandwidth=1.0, n_reference=10**6)
    assert set(picks) <= set(range(151, 240)) and len(set(picks)) == 5


def test_density_scores_rank_like_the_product_without_overflow():
    proba = np.array([[0.5, 0.5], [0.9, 0.1], [0.99, 0.01], [1.0, 0.0]])
    log_ratio = np.array([0.0, 2.0, 900.0, 5.0])   # exp(900) overflows float64
    s = aq.density_scores(proba, log_ratio)
    assert np.isfinite(s[:3]).all() and s[3] == -np.inf
    assert np.argmax(s) == 2
    product = aq.entropy(proba[:2]) * np.exp(log_ratio[:2])
    assert np.argsort(s[:2]).tolist() == np.argsort(product).tolist()


def test_seed_cold_start_returns_feature_indices_as_item_indices():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((5000, 30)) @ rng.standard_normal((30, 30))
    picks = aq.seed_cold_start(Z, 8, rng=0)
    assert picks.size == 8 and picks.max() < Z.shape[1]
    with pytest.raises(ParameterError, match="n_initial"):
        aq.seed_cold_start(Z, 31)


def test_kmeans_cold_start_takes_one_item_per_cluster():
    Z, labels = make_blobs(n_samples=3000, centers=6, cluster_std=0.3, n_features=5, random_state=1)
    picks = aq.cold_start(Z, 6, "kmeans", rng=0)
    assert np.unique(picks).size == 6
    assert sorted(labels[picks].tolist()) == list(range(6))
    rand = aq.cold_start(Z, 6, "random", rng=0)
    assert np.unique(rand).size == 6


def test_run_acquisition_uses_exactly_the_budget_and_starts_alike():
    X, y = make_blobs(n_samples=700, centers=[[0, 0], [2, 2]], cluster_std=1.2, random_state=2)
    Xp, yp, Xt, yt = X[:500], y[:500], X[500:], y[500:]
    Zp, = aq.geometry(Xp)
    factory = lambda: LogisticRegression()  # noqa: E731
    runs = {s: aq.run_acquisition(factory, Xp, yp, Xt, yt, Zp, s, "kmeans", 40, 10, 7, seed=4)
            for s in aq.STRATEGIES}
    for r in runs.values():
        assert r.n_labels.tolist() == [10, 17, 24, 31, 38, 40]
        assert np.unique(r.queried).size == 40
        assert 0.5 < r.accuracy[-1] <= 1.0
    assert len({tuple(r.queried[:10]) for r in runs.values()}) == 1   # same cold start


def test_geometry_imputes_means_and_handles_empty_columns():
    X = np.array([[1.0, np.nan, np.nan], [3.0, 2.0, np.nan], [np.nan, 4.0, np.nan]])
    Z, Zo = aq.geometry(X, np.array([[np.nan, np.nan, 5.0]]))
    assert np.isfinite(Z).all() and np.isfinite(Zo).all()
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    assert Zo[0, 0] == 0 and Zo[0, 1] == 0


def test_minimal_example_labels_carry_no_signal():
    X, y, labelled = aq.seed_minimal_example(42)
    assert X.shape == (1000, 50) and abs((X == 0).mean() - 0.8) < 0.01
    assert 0.25 < y.mean() < 0.35 and 0 < labelled.sum() < 60
    assert aq.independent_label_ceiling(0.3) == {"accuracy": 0.7, "balanced_accuracy": 0.5}
    res = aq.minimal_example_scores(0, "entropy")
    assert res["accuracy"] < 0.76 and abs(res["balanced_accuracy"] - 0.5) < 0.06


@pytest.mark.parametrize("kwargs, name", [
    ({"n_labels": 0}, "n_labels"), ({"n_labels": -5}, "n_labels"), ({"n_labels": 1001}, "n_labels"),
    ({"n_initial": 1}, "n_initial"), ({"n_initial": 300, "n_labels": 200}, "n_initial"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_acquisition_parameters_raise_before_any_work(kwargs, name):
    args = {"n_pool": 1000, "n_labels": 200, "n_initial": 20, "batch_size": 20, **kwargs}
    with pytest.raises(ParameterError, match=name):
        aq.check_acquisition_parameters(**args)


def test_bad_inputs_name_the_parameter(small_pool):
    with pytest.raises(ParameterError, match="bandwidth"):
        aq.log_density_ratio(small_pool, [0, 1], bandwidth=0)
    with pytest.raises(ParameterError, match="labelled"):
        aq.log_density_ratio(small_pool, [0, 0])
    with pytest.raises(ParameterError, match="method"):
        aq.cold_start(small_pool, 3, "spectral")
    with pytest.raises(ParameterError, match="missing_rate"):
        aq.magnet_split(0, 200, 100, missing_rate=1.0)
    with pytest.raises(ParameterError, match="Z_pool"):
        aq.pool_log_density(np.array([[np.nan, 1.0]]))
