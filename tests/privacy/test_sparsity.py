"""Tests of ppal_lab.privacy.sparsity: the seed's noise scale, empty batches, the density rule, the noise
bookkeeping against the accountant, and training through Opacus."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ppal_lab.privacy import sparsity as sp
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.privacy import dpsgd_epsilon, gaussian_sigma, noise_multiplier_for


@pytest.mark.parametrize("eps, delta, sens", [(0.5, 1e-5, 1.0), (0.9, 1e-6, 2.5), (1.0, 1e-5, 1.0),
                                              (4.0, 1e-3, 0.1)])
def test_seed_noise_std_is_the_classical_gaussian_formula(eps, delta, sens):
    expected = sens * math.sqrt(2 * math.log(1.25 / delta)) / eps
    assert sp.seed_noise_std(eps, delta, sens) == pytest.approx(expected, rel=1e-12)
    if eps < 1:
        assert sp.seed_noise_std(eps, delta, sens) == pytest.approx(
            gaussian_sigma(sens, eps, delta, method="classical"), rel=1e-12)


def test_release_adds_noise_of_the_stated_scale_and_nothing_to_empty_batches():
    mech = sp.SparsityAwareDP(epsilon=0.5, delta=1e-5)
    n, d = 4000, 25
    grads = np.full((n, d), 0.3)
    has = np.arange(n) % 2 == 0
    noisy, std = mech.release(grads, has, rng=0)
    assert np.all(noisy[~has] == 0.0) and np.all(std[~has] == 0.0)
    resid = noisy[has] - grads[has]
    assert resid.std() == pytest.approx(mech.sigma, rel=0.01)
    assert abs(resid.mean()) < 0.01 * mech.sigma
    assert mech.sigma == pytest.approx(math.sqrt(2 * math.log(1.25e5)) / 0.5)


def test_density_factors_span_one_over_r_to_r_and_grow_with_density():
    dens = np.linspace(-3, 3, 101)
    f = sp.density_noise_factors(dens, dens, max_factor=2.0)
    assert f.min() == pytest.approx(2 ** (2 / 101 - 1)) and f.max() == pytest.approx(2.0)
    assert np.all(np.diff(f) > 0)
    assert sp.density_noise_factors(0.0, dens, 2.0) == pytest.approx(2 ** (2 * 51 / 101 - 1))
    np.testing.assert_allclose(sp.density_noise_factors(dens, dens, 1.0), 1.0)
    mech = sp.SparsityAwareDP(0.5, 1e-5, max_factor=2.0)
    std = mech.noise_std(np.array([True, True, False]), np.array([0.5, 2.0, 2.0]))
    np.testing.assert_allclose(std, [0.5 * mech.sigma, 2 * mech.sigma, 0.0])


def test_clip_rows_bounds_every_row_norm():
    G = np.random.default_rng(0).normal(0, 3, (100, 7))
    C = sp.clip_rows(G, 1.5)
    assert np.linalg.norm(C, axis=1).max() <= 1.5 + 1e-12
    small = np.linalg.norm(G, axis=1) <= 1.5
    np.testing.assert_array_equal(C[small], G[small])


def test_noise_comparison_uses_the_accountant_and_the_empty_batch_probability():
    q, T, n = 0.005, 500, 200
    c = sp.noise_comparison(0.5, 1e-5, q, T, n)
    assert c["nonempty_fraction"] == pytest.approx(1 - (1 - q) ** n)
    assert c["seed_vs_always"] == c["nonempty_fraction"]
    z = noise_multiplier_for(0.5, 1e-5, q, T)
    assert c["dpsgd_sigma"] == pytest.approx(z)
    assert c["seed_vs_dpsgd"] == pytest.approx(c["nonempty_fraction"] * c["seed_sigma"] ** 2 / z ** 2)
    assert c["seed_epsilon_if_noise_always"] == pytest.approx(dpsgd_epsilon(c["seed_sigma"], q, T, 1e-5))
    assert dpsgd_epsilon(z, q, T, 1e-5) <= 0.5 + 1e-9


@pytest.fixture(scope="module")
def lab_data():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((120, 6))
    y = (Z[:, 0] + 0.5 * rng.standard_normal(120) > 0).astype(int)
    return Z, y


@pytest.mark.timeout(120)
def test_dpsgd_training_adds_the_accountant_noise_at_every_step(lab_data):
    Z, y = lab_data
    T = 300
    fit = sp.train_private_logreg(Z, y, n_pool=2400, mechanism="dpsgd", epsilon=1.0, delta=1e-5,
                                  batch_size=20, steps=T, seed=0)
    z = noise_multiplier_for(1.0, 1e-5, 20 / 2400, T)
    assert fit.noise_multiplier == pytest.approx(z)
    assert fit.noisy_steps == T and np.allclose(fit.noise_std, z)
    assert 0 < fit.empty_steps < T
    n_params = Z.shape[1] + 1
    expected = T * n_params * z ** 2
    assert fit.noise_energy == pytest.approx(expected, rel=4 / math.sqrt(T * n_params / 2))
    assert fit.epsilon == 1.0


@pytest.mark.timeout(120)
def test_seed_training_skips_noise_exactly_on_empty_batches(lab_data):
    Z, y = lab_data
    fit = sp.train_private_logreg(Z, y, n_pool=2400, mechanism="seed", epsilon=0.5, delta=1e-5,
                                  batch_size=20, steps=300, seed=0)
    sigma = sp.seed_noise_std(0.5, 1e-5)
    assert fit.empty_steps + fit.noisy_steps == 300 and fit.empty_steps > 0
    assert set(np.round(fit.noise_std, 9)) == {0.0, round(sigma, 9)}
    assert fit.epsilon == math.inf
    # q n_L = 1: about e^-1 of the steps are empty
    assert abs(fit.empty_steps / 300 - math.exp(-1)) < 0.1
    dens = np.random.default_rng(0).standard_normal(Z.shape[0])
    fit_d = sp.train_private_logreg(Z, y, 2400, "seed_density", 0.5, 1e-5, 20, 300, seed=0,
                                    log_density=dens, max_factor=2.0)
    noisy = fit_d.noise_std[fit_d.noise_std > 0]
    assert noisy.min() >= sigma / 2 - 1e-9 and noisy.max() <= 2 * sigma + 1e-9 and np.ptp(noisy) > 0


@pytest.mark.timeout(120)
def test_nonprivate_training_learns_and_draws_no_noise(lab_data):
    Z, y = lab_data
    fit = sp.train_private_logreg(Z, y, 240, "nonprivate", 1.0, 1e-5, 60, 300, lr=0.5, seed=0)
    assert fit.noise_energy == 0.0 and fit.noisy_steps == 0
    assert fit.scores(Z, y)["accuracy"] > 0.75
    assert fit.weight[0] > 0


@pytest.mark.parametrize("kwargs, name", [
    ({"epsilon": 0.0}, "epsilon"), ({"epsilon": -1.0}, "epsilon"), ({"delta": 1.0}, "delta"),
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 10_000}, "batch_size"), ({"steps": 0}, "steps"),
    ({"mechanism": "laplace"}, "mechanism"), ({"mechanism": "seed_density"}, "log_density"),
    ({"n_pool": 10}, "n_pool"), ({"max_factor": 0.5}, "max_factor"),
])
def test_bad_training_parameters_raise_before_any_work(lab_data, kwargs, name):
    Z, y = lab_data
    args = {"n_pool": 2400, "mechanism": "dpsgd", "epsilon": 1.0, "delta": 1e-5, "batch_size": 20,
            "steps": 10, **kwargs}
    with pytest.raises(ParameterError, match=name):
        sp.train_private_logreg(Z, y, **args)


def test_bad_mechanism_arguments():
    with pytest.raises(ParameterError, match="epsilon"):
        sp.SparsityAwareDP(0, 1e-5)
    with pytest.raises(ParameterError, match="has_data"):
        sp.SparsityAwareDP(1.0, 1e-5).noise_std(np.array([1, 0]))
    with pytest.raises(ParameterError, match="grad_sums"):
        sp.SparsityAwareDP(1.0, 1e-5).release(np.zeros((3, 2)), np.ones(4, dtype=bool), rng=0)
    with pytest.raises(ParameterError, match="sample_rate"):
        sp.empty_batch_probability(0.0, 10)
