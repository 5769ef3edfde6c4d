"""Tests of ppal_lab.data.magnet: shapes, determinism, missingness mechanisms, labels, signal and drift."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import mutual_info_classif
from sklearn.model_selection import train_test_split

from ppal_lab.data import MAGNET_PARTIES, MISSING_MECHANISMS, make_magnet_grades
from ppal_lab.compendium.errors import ParameterError


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


@pytest.mark.parametrize("call,name", [
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
])
def test_bad_inputs_raise_parameter_error(call, name):
    with pytest.raises(ParameterError) as info:
        call()
    assert info.value.name == name and str(info.value).startswith(name)
