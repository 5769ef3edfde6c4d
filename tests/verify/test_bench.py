"""Tests of ppal_lab.verify.bench: the forward model and the inverse models.

Tolerances, stated once:
* forward∘inverse on noise-free readings: the grid search recovers health within 1e-3 (its resolution
  is 1e-4) and the defect exactly, for every condition in [0, 1] x {0, 1} and every design;
* on noisy readings (bench noise at the generator's scale): health RMSE < 0.08, defect accuracy
  > 0.97 for the grid search; health RMSE < 0.08, defect accuracy > 0.95 for a briefly trained MLP.
  (The noise floor: near health 1 the bench barely changes with health, so RMSE ~0.06 is the best
  an unbiased estimator gets there.)
"""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab import data as D
from ppal_lab import verify as V
from ppal_lab.compendium.errors import ParameterError


def _conditions(n, seed=0):
    rng = np.random.default_rng(seed)
    h = np.r_[0.0, 1.0, rng.random(n - 2)]
    return h, rng.integers(0, 2, n).astype(float), rng.integers(0, 4, n), rng.integers(0, 3, n)


def test_forward_is_the_generators_bench_model_and_broadcasts():
    h, d, v, t = _conditions(50)
    expected = D.bench_forward(h, d, v, t).to_numpy()
    np.testing.assert_array_equal(V.forward(h, d, v, t), expected)
    grid = V.forward(np.linspace(0, 1, 7)[None, :], d[:, None], v[:, None], t[:, None])
    assert grid.shape == (50, 7, 4)
    np.testing.assert_array_equal(grid[:, 3], V.forward(np.full(50, 0.5), d, v, t))


def test_generator_bench_columns_equal_forward_plus_noise_of_the_documented_size():
    data = D.make_remanufacturing(4000, seed=1)
    lat, X = data.latent, data.X
    clean = V.forward(lat["health"], lat["defect"].astype(float), X["design_variant"].astype(int),
                      X["tolerance_class"].astype(int))
    resid = X[list(D.BENCH_COLUMNS)].to_numpy() - clean
    np.testing.assert_allclose(resid.std(axis=0), V.BENCH_SD, rtol=0.06)


def test_grid_inverse_recovers_the_condition_from_noise_free_readings():
    h, d, v, t = _conditions(400)
    inv = V.GridInverse()
    assert inv.resolution < 2e-4
    h2, d2, res = inv.invert(V.forward(h, d, v, t), v, t)
    assert np.abs(h2 - h).max() < 1e-3
    np.testing.assert_array_equal(d2, d)
    assert res.max() < 1e-4


def test_grid_inverse_on_noisy_readings_within_stated_tolerance():
    data = D.make_remanufacturing(2000, seed=5, label_noise=0.0)
    b = V.honest_batch(data, V.GridInverse())
    assert np.sqrt(np.mean((b.health - b.true_health) ** 2)) < 0.08
    assert np.mean(b.defect == b.true_defect) > 0.97
    # the minimised residual is a chi-square-like statistic: mean near 3 (4 channels, 1 fitted value)
    _, _, res = V.GridInverse().invert(b.readings, b.variant, b.tolerance)
    assert 2.5 < res.mean() < 3.5


def test_mlp_inverse_learns_the_inverse_from_simulated_pairs():
    cal = D.make_remanufacturing(1500, seed=6, label_noise=0.0)
    mlp = V.MLPInverse(epochs=10, seed=0).fit(cal.latent["health"], cal.latent["defect"].astype(float),
                                              cal.X["design_variant"].astype(int),
                                              cal.X["tolerance_class"].astype(int))
    b = V.honest_batch(D.make_remanufacturing(1500, seed=7, label_noise=0.0), mlp)
    assert np.sqrt(np.mean((b.health - b.true_health) ** 2)) < 0.08
    assert np.mean(b.defect == b.true_defect) > 0.95
    with pytest.raises(RuntimeError):
        V.MLPInverse().invert(b.readings, b.variant, b.tolerance)


@pytest.mark.parametrize("call", [
    lambda: V.forward(1.5, 0, 0, 0),
    lambda: V.forward(0.5, 0, 4, 0),
    lambda: V.GridInverse().invert(np.ones((3, 3)), [0, 0, 0], [0, 0, 0]),
    lambda: V.GridInverse().invert(np.ones((2, 4)), [0, 7], [0, 0]),
    lambda: V.GridInverse().invert(np.full((1, 4), np.nan), [0], [0]),
    lambda: V.GridInverse(n_grid=1),
    lambda: V.make_inverse("magic"),
])
def test_bad_inputs_raise_parameter_error(call):
    with pytest.raises(ParameterError):
        call()


def test_fit_inverse_gives_independent_claimant_models():
    a_data = D.make_remanufacturing(600, seed=21, label_noise=0.0)
    b_data = D.make_remanufacturing(600, seed=22, label_noise=0.0)
    assert isinstance(V.fit_inverse("grid", a_data), V.GridInverse)
    a = V.fit_inverse("mlp", a_data, seed=1)
    again = V.fit_inverse("mlp", a_data, seed=1)
    other = V.fit_inverse("mlp", b_data, seed=2)
    test = V.honest_batch(D.make_remanufacturing(300, seed=23, label_noise=0.0), V.GridInverse())
    args = (test.readings, test.variant, test.tolerance)
    np.testing.assert_array_equal(a.invert(*args)[0], again.invert(*args)[0])  # reproducible from its seed
    assert np.abs(a.invert(*args)[0] - other.invert(*args)[0]).mean() > 1e-3  # another claimant's model
    with pytest.raises(ParameterError, match="data"):
        V.fit_inverse("mlp", "not data")
