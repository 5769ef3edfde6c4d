"""Tests of ppal_lab.data: shapes, determinism, missingness, labels, partitions, signal and drift."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ppal_lab.data import (BENCH_COLUMNS, BENCH_NOISE_SD, DATASETS, MAGNET_PARTIES, MISSING_MECHANISMS,
                           REMANUFACTURING_PARTIES, SupplyChainData, bench_forward,
                           horizontal_partition, load_dataset, load_sklearn, make_magnet_grades,
                           make_remanufacturing, vertical_partition)
from ppal_lab.compendium.errors import ParameterError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Small fits run faster single-threaded, and OpenMP spinning makes them crawl on a busy machine.
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def reman() -> SupplyChainData:
    return make_remanufacturing(seed=0)


@pytest.fixture(scope="module")
def magnet() -> SupplyChainData:
    return make_magnet_grades(n_per_month=500, seed=0)


# --- remanufacturing -----------------------------------------------------------------------------
def test_remanufacturing_shapes_and_parties(reman):
    assert reman.X.shape == (4000, 15) and reman.y.shape == (4000,) and reman.y.dtype == np.int64
    assert tuple(reman.X.columns) == reman.feature_names
    assert all(reman.X.dtypes == np.float64)
    assert reman.parties == REMANUFACTURING_PARTIES
    assert set(reman.features_of("testing_facility")) == set(BENCH_COLUMNS)
    assert set(reman.categorical) <= set(reman.feature_names)
    assert list(reman.latent.columns) == ["health", "defect", "adherence", "corrosion", "margin_eur"]
    assert reman.latent["health"].between(0, 1).all()
    assert set(reman.meta.columns) == {"operator", "quarter"}
    assert reman.labelled.all() and reman.X_complete is None
    assert not reman.X.isna().any().any()
    assert 0.4 <= reman.y.mean() <= 0.6


def test_remanufacturing_is_deterministic_by_seed(reman):
    again = make_remanufacturing(seed=0)
    pd.testing.assert_frame_equal(reman.X, again.X)
    pd.testing.assert_frame_equal(reman.latent, again.latent)
    np.testing.assert_array_equal(reman.y, again.y)
    other = make_remanufacturing(seed=1)
    assert not reman.X.equals(other.X) and (reman.y != other.y).any()


def test_remanufacturing_labels_learnable_but_not_trivial(reman):
    X, y = reman.to_numpy()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(Xtr, ytr).score(Xte, yte)
    gb = HistGradientBoostingClassifier(random_state=0).fit(Xtr, ytr).score(Xte, yte)
    assert 0.65 < lr < 0.95
    assert lr < gb < 0.97


def test_remanufacturing_missing_rate_spares_oem():
    data = make_remanufacturing(n_items=2000, missing_rate=0.3, seed=2)
    missing = data.X.isna().mean()
    oem = data.features_of("oem")
    assert (missing[oem] == 0).all()
    assert np.allclose(missing.drop(oem), 0.3, atol=0.05)
    pd.testing.assert_frame_equal(data.X_complete.where(data.X.notna()), data.X)


def test_bench_forward_equations():
    clean = bench_forward(1.0, 0, 0, 0)
    np.testing.assert_allclose(clean.to_numpy(), [[1.0, 4.0, 15.0, 12.0]])
    worn = bench_forward([1.0, 0.5, 0.0], 0, 2, 1)
    assert (worn.diff().dropna() > 0).all().all()          # every reading rises with wear
    assert (bench_forward(0.5, 1, 0, 0) > bench_forward(0.5, 0, 0, 0)).all().all()
    pd.testing.assert_frame_equal(bench_forward(0.3, 0, 1, 2, rng=None),
                                  bench_forward(0.3, 0, 1, 2, noise=0, rng=np.random.default_rng(0)))


def test_generator_bench_matches_forward_model(reman):
    lat = reman.latent
    expected = bench_forward(lat["health"], lat["defect"], reman.X["design_variant"],
                             reman.X["tolerance_class"])
    residual = reman.X[list(BENCH_COLUMNS)] - expected
    for col in BENCH_COLUMNS:
        assert abs(residual[col].mean()) < 0.1 * BENCH_NOISE_SD[col]
        assert residual[col].std() == pytest.approx(BENCH_NOISE_SD[col], rel=0.1)


# --- magnet grades -------------------------------------------------------------------------------
def test_magnet_shapes_and_parties(magnet):
    assert magnet.X.shape == magnet.X_complete.shape == (6000, 50)
    assert magnet.feature_names[:2] == ("manufacturer", "manufacturing_date")
    assert {"manufacturer", "form_factor", "interface"} <= set(magnet.categorical)
    assert magnet.parties == MAGNET_PARTIES
    assert sum(len(magnet.features_of(p)) for p in magnet.parties) == 50
    assert set(magnet.meta.columns) == {"month", "quarter", "facility"}
    assert (magnet.meta["quarter"] == magnet.meta["month"] // 3).all()
    assert 0.15 <= magnet.y.mean() <= 0.35
    assert set(np.unique(magnet.y)) == {0, 1}


@pytest.mark.parametrize("n_features", [10, 23, 64])
def test_magnet_feature_count(n_features):
    data = make_magnet_grades(n_per_month=50, n_months=3, n_features=n_features, seed=0)
    assert data.X.shape == (150, n_features) and len(set(data.feature_names)) == n_features


def test_magnet_is_deterministic_by_seed(magnet):
    again = make_magnet_grades(n_per_month=500, seed=0)
    pd.testing.assert_frame_equal(magnet.X, again.X)
    pd.testing.assert_frame_equal(magnet.meta, again.meta)
    np.testing.assert_array_equal(magnet.labelled, again.labelled)
    other = make_magnet_grades(n_per_month=500, seed=1)
    assert not magnet.X_complete.equals(other.X_complete)
    assert (magnet.labelled != other.labelled).any()


@pytest.mark.parametrize("mechanism", MISSING_MECHANISMS)
@pytest.mark.parametrize("rate", [0.8, 0.3])
def test_missing_rate(mechanism, rate):
    data = make_magnet_grades(n_per_month=500, missing_rate=rate, missing_mechanism=mechanism, seed=4)
    assert data.X.isna().to_numpy().mean() == pytest.approx(rate, abs=0.02)
    observed = data.X.notna()
    pd.testing.assert_frame_equal(data.X_complete.where(observed), data.X)   # only masking happened
    assert not np.isnan(data.X_complete.to_numpy()).any()


def test_missing_rate_zero_keeps_everything():
    data = make_magnet_grades(n_per_month=100, missing_rate=0.0, seed=0)
    assert not data.X.isna().any().any()


def test_missingness_mechanisms_depend_on_what_they_should():
    def corr(a, b):
        return np.corrcoef(a, b)[0, 1]

    runs = {m: make_magnet_grades(n_per_month=500, missing_mechanism=m, seed=5)
            for m in MISSING_MECHANISMS}
    for mech, data in runs.items():
        hidden, full = data.X.isna(), data.X_complete
        own = corr(hidden["power_on_hours"], full["power_on_hours"])
        via_weight = corr(hidden["power_on_hours"], full["weight_g"])
        if mech == "mcar":
            assert abs(own) < 0.05 and abs(via_weight) < 0.05
        elif mech == "mar":
            assert not hidden["weight_g"].any()
            assert via_weight < -0.2 and abs(own) < 0.05
        else:
            assert own > 0.2 and abs(via_weight) < 0.05


def test_label_rate_and_observed_labels(magnet):
    assert magnet.labelled.mean() == pytest.approx(0.02)
    assert (np.bincount(magnet.meta["month"][magnet.labelled], minlength=12) == 10).all()
    observed = magnet.y_observed
    assert (observed[~magnet.labelled] == -1).all()
    np.testing.assert_array_equal(observed[magnet.labelled], magnet.y[magnet.labelled])
    assert (magnet.y >= 0).all()
    few = make_magnet_grades(n_per_month=30, n_months=2, label_rate=0.001, seed=0)
    assert few.labelled.sum() == 2                      # at least one label per month


def test_manufacturing_date_and_manufacturer_are_top_two_by_mutual_information(magnet):
    full = magnet.X_complete
    rows = np.random.default_rng(0).choice(len(full), 4000, replace=False)
    discrete = np.array([c in magnet.categorical or full[c].nunique() <= 2 for c in full.columns])
    mi = mutual_info_classif(full.iloc[rows], magnet.y[rows], discrete_features=discrete, random_state=0)
    top = {full.columns[j] for j in np.argsort(mi)[::-1][:2]}
    assert top == {"manufacturing_date", "manufacturer"}


def test_drift_degrades_a_first_quarter_model():
    accuracy = {}
    for drift in (True, False):
        data = make_magnet_grades(n_per_month=1000, drift=drift, seed=0)
        X, y, quarter = data.X_complete.to_numpy(), data.y, data.meta["quarter"].to_numpy()
        train, test = train_test_split(np.flatnonzero(quarter == 0), test_size=0.25, random_state=0)
        model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X[train], y[train])
        last = quarter == quarter.max()
        accuracy[drift] = model.score(X[test], y[test]), model.score(X[last], y[last])
    same_quarter, last_quarter = accuracy[True]
    assert same_quarter - last_quarter > 0.05
    assert accuracy[False][1] > last_quarter + 0.05


def test_default_magnet_size_generates_quickly():
    start = time.perf_counter()
    data = make_magnet_grades()
    elapsed = time.perf_counter() - start
    assert data.X.shape == (120_000, 50)
    assert elapsed < 5.0


# --- partitions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n_sites", [1, 4, 7])
def test_horizontal_partition_covers_each_item_once(reman, n_sites):
    parts = horizontal_partition(reman, n_sites=n_sites, non_iid=0.8, seed=3)
    assert len(parts) == n_sites and all(len(p) > 0 for p in parts)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(reman.n_items))


def test_horizontal_partition_is_non_iid_on_request(reman):
    skewed = [reman.y[p].mean() for p in horizontal_partition(reman, 4, non_iid=1.0, seed=0)]
    iid = [reman.y[p].mean() for p in horizontal_partition(reman, 4, non_iid=0.0, seed=0)]
    assert max(skewed) - min(skewed) > 0.2
    assert max(iid) - min(iid) < 0.01
    by_operator = horizontal_partition(reman, 4, non_iid=1.0, seed=0, by="operator")
    shares = [np.bincount(reman.meta["operator"][p], minlength=6) / len(p) for p in by_operator]
    assert np.ptp(np.array(shares), axis=0).max() > 0.2


def test_horizontal_partition_tiny_and_deterministic(reman):
    tiny = reman.subset(np.arange(5))
    assert sorted(len(p) for p in horizontal_partition(tiny, 5, non_iid=1.0)) == [1] * 5
    a = horizontal_partition(reman, 3, seed=9)
    b = horizontal_partition(reman, 3, seed=9)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    site = reman.subset(a[0])
    assert site.n_items == len(a[0]) and np.array_equal(site.y, reman.y[a[0]])


@pytest.mark.parametrize("name", ["remanufacturing", "breast_cancer"])
def test_vertical_partition_blocks(name, reman):
    data = reman if name == "remanufacturing" else load_sklearn(name)
    blocks = vertical_partition(data)
    assert tuple(blocks) == data.parties
    for party, block in blocks.items():
        assert block.shape[0] == data.n_items
        assert list(block.columns) == [f for f in data.feature_names if data.party_of[f] == party]
        assert block.index.equals(data.X.index)
    assert sum(b.shape[1] for b in blocks.values()) == data.X.shape[1]


# --- real data and dispatch ----------------------------------------------------------------------
@pytest.mark.parametrize("name,shape,n_classes", [("breast_cancer", (569, 30), 2),
                                                   ("digits", (1797, 64), 10), ("wine", (178, 13), 3)])
def test_load_sklearn(name, shape, n_classes):
    data = load_sklearn(name)
    assert data.X.shape == shape and len(np.unique(data.y)) == n_classes
    assert data.categorical == () and data.latent is None and data.labelled.all()
    assert len(data.parties) == 4


def test_load_dataset_dispatch():
    assert set(DATASETS) == {"remanufacturing", "magnet", "breast_cancer", "digits", "wine"}
    small = load_dataset("magnet", seed=3, n_per_month=40, n_months=3)
    assert small.X.shape == (120, 50)
    pd.testing.assert_frame_equal(small.X, make_magnet_grades(n_per_month=40, n_months=3, seed=3).X)
    assert load_dataset("remanufacturing", n_items=50).n_items == 50
    assert load_dataset("wine", n_parties=2).parties == ("party_0", "party_1")


def test_labels_are_read_only(reman):
    with pytest.raises(ValueError):
        reman.y[0] = 1 - reman.y[0]


@pytest.mark.parametrize("call,name", [
    (lambda: make_remanufacturing(n_items=5), "n_items"),
    (lambda: make_remanufacturing(n_items=100.0), "n_items"),
    (lambda: make_remanufacturing(seed=-1), "seed"),
    (lambda: make_remanufacturing(noise=-0.1), "noise"),
    (lambda: make_remanufacturing(label_noise=0.5), "label_noise"),
    (lambda: make_remanufacturing(missing_rate=1.0), "missing_rate"),
    (lambda: make_magnet_grades(n_per_month=0), "n_per_month"),
    (lambda: make_magnet_grades(n_months=0), "n_months"),
    (lambda: make_magnet_grades(n_features=9), "n_features"),
    (lambda: make_magnet_grades(missing_rate=1.0), "missing_rate"),
    (lambda: make_magnet_grades(missing_rate=float("nan")), "missing_rate"),
    (lambda: make_magnet_grades(missing_rate=0.95, missing_mechanism="mar", n_features=10),
     "missing_rate"),
    (lambda: make_magnet_grades(missing_mechanism="random"), "missing_mechanism"),
    (lambda: make_magnet_grades(label_rate=0.0), "label_rate"),
    (lambda: make_magnet_grades(label_rate=1.5), "label_rate"),
    (lambda: make_magnet_grades(drift="yes"), "drift"),
    (lambda: bench_forward(1.2, 0, 0, 0), "health"),
    (lambda: bench_forward(0.5, 0, 4, 0), "design_variant"),
    (lambda: bench_forward(0.5, 0, 0, 1.5), "tolerance_class"),
    (lambda: bench_forward(0.5, 0, 0, 0, noise=-1), "noise"),
    (lambda: bench_forward(0.5, 0, 0, 0, rng=3), "rng"),
    (lambda: horizontal_partition(make_remanufacturing(n_items=10), n_sites=11), "n_sites"),
    (lambda: horizontal_partition(make_remanufacturing(n_items=10), n_sites=0), "n_sites"),
    (lambda: horizontal_partition(make_remanufacturing(n_items=10), non_iid=1.5), "non_iid"),
    (lambda: horizontal_partition(make_remanufacturing(n_items=10), by="colour"), "by"),
    (lambda: horizontal_partition(np.zeros((3, 3))), "data"),
    (lambda: vertical_partition(pd.DataFrame()), "data"),
    (lambda: load_sklearn("iris"), "name"),
    (lambda: load_sklearn("wine", n_parties=14), "n_parties"),
    (lambda: load_dataset("mnist"), "name"),
    (lambda: load_dataset("wine", missing_rate=0.1), "keyword argument"),
    (lambda: load_dataset("magnet", n_items=10), "keyword argument"),
])
def test_bad_inputs_raise_parameter_error(call, name):
    with pytest.raises(ParameterError) as info:
        call()
    assert info.value.name == name and str(info.value).startswith(name)
