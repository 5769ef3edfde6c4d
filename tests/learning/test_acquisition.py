"""Tests of ppal_lab.learning.acquisition: the acquisition loop, the geometry and the parameter checks
(density and cold start: test_density.py, test_cold_start.py)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression

from ppal_lab.learning import acquisition as aq, cold_start as cs, density as dn
from ppal_lab.compendium.errors import ParameterError


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
        dn.log_density_ratio(small_pool, [0, 1], bandwidth=0)
    with pytest.raises(ParameterError, match="labelled"):
        dn.log_density_ratio(small_pool, [0, 0])
    with pytest.raises(ParameterError, match="method"):
        cs.cold_start(small_pool, 3, "spectral")
    with pytest.raises(ParameterError, match="missing_rate"):
        aq.magnet_split(0, 200, 100, missing_rate=1.0)
    with pytest.raises(ParameterError, match="Z_pool"):
        dn.pool_log_density(np.array([[np.nan, 1.0]]))


def test_fix_single_class_swaps_the_last_pick_for_another_class():
    y = np.array([0, 0, 0, 1, 1])
    init = np.array([0, 1, 2])
    out = aq.fix_single_class(init, y, np.random.default_rng(0))
    assert out[:2].tolist() == [0, 1] and y[out[-1]] == 1 and init.tolist() == [0, 1, 2]
    mixed = np.array([0, 3])
    assert aq.fix_single_class(mixed, y, np.random.default_rng(0)) is mixed
    with pytest.raises(ParameterError, match="y"):
        aq.fix_single_class(init, np.zeros(5, dtype=int), np.random.default_rng(0))


def test_density_literal_queries_the_seeds_top_scores():
    """One round of ``density_literal`` labels the top of seed 001's score as written (scikit-learn KDEs)."""
    from sklearn.neighbors import KernelDensity

    X, y = make_blobs(n_samples=600, centers=[[0, 0, 0], [2, 2, 2]], cluster_std=1.5, random_state=3)
    Zp, = aq.geometry(X[:400])
    run = aq.run_acquisition(lambda: LogisticRegression(), X[:400], y[:400], X[400:], y[400:], Zp, "density_literal",
                             "kmeans", 15, 10, 5, seed=2)
    init = run.queried[:10]
    proba = LogisticRegression().fit(X[init], y[init]).predict_proba(X[:400])
    score = (np.log(-np.sum(proba * np.log(proba + 1e-10), axis=1)) + KernelDensity(bandwidth=0.5).fit(Zp).score_samples(Zp)
             - KernelDensity(bandwidth=0.5).fit(Zp[init]).score_samples(Zp))
    score[init] = -np.inf
    assert sorted(run.queried[10:].tolist()) == sorted(np.argsort(-score)[:5].tolist())


def test_digits_bed_is_bundled_binary_and_sized_like_the_spec():
    sp = aq.digits_split(0, missing_rate=0.5)
    assert sp.X_pool.shape == (aq.DIGITS_POOL_SIZE, 64) == (1198, 64) and sp.X_test.shape == (599, 64)
    assert 0.27 < sp.y_pool.mean() < 0.33 and sp.p_test is None
    assert abs(np.isnan(sp.X_pool).mean() - 0.5) < 0.01 and not np.isnan(sp.Z_pool).any()
    again = aq.digits_split(0, missing_rate=0.5)
    np.testing.assert_array_equal(sp.y_test, again.y_test)
    assert not np.array_equal(sp.y_test, aq.digits_split(1).y_test)
