"""Tests of ppal_lab.data.remanufacturing: shapes, determinism, learnable labels, the bench's forward model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ppal_lab.data import BENCH_COLUMNS, BENCH_NOISE_SD, REMANUFACTURING_PARTIES, bench_forward, make_remanufacturing
from ppal_lab.compendium.errors import ParameterError


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


@pytest.mark.parametrize("call,name", [
    (lambda: make_remanufacturing(n_items=5), "n_items"),
    (lambda: make_remanufacturing(n_items=100.0), "n_items"),
    (lambda: make_remanufacturing(seed=-1), "seed"),
    (lambda: make_remanufacturing(noise=-0.1), "noise"),
    (lambda: make_remanufacturing(label_noise=0.5), "label_noise"),
    (lambda: make_remanufacturing(missing_rate=1.0), "missing_rate"),
    (lambda: bench_forward(1.2, 0, 0, 0), "health"),
    (lambda: bench_forward(0.5, 0, 4, 0), "design_variant"),
    (lambda: bench_forward(0.5, 0, 0, 1.5), "tolerance_class"),
    (lambda: bench_forward(0.5, 0, 0, 0, noise=-1), "noise"),
    (lambda: bench_forward(0.5, 0, 0, 0, rng=3), "rng"),
])
def test_bad_inputs_raise_parameter_error(call, name):
    with pytest.raises(ParameterError) as info:
        call()
    assert info.value.name == name and str(info.value).startswith(name)
