"""Tests of ppal_lab.privacy.audit.

The audits below run with fixed seeds. Each empirical bound holds with probability >= 1 - alpha
(alpha = 0.05): a correct (epsilon, delta)-DP mechanism yields a bound above its epsilon with
probability at most 5% (the audit's false-positive rate), and the fixed seeds make each test
deterministic.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from ppal_lab.privacy import audit
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.privacy import gaussian_delta, noise_multiplier_for

ALPHA = 0.05


def test_clopper_pearson_upper_bound():
    assert audit.clopper_pearson_upper(0, 100, 0.05) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert audit.clopper_pearson_upper(7, 50, 0.025) == pytest.approx(stats.beta.ppf(0.975, 8, 43))
    assert audit.clopper_pearson_upper(50, 50, 0.05) == 1.0
    with pytest.raises(ParameterError, match="k"):
        audit.clopper_pearson_upper(51, 50, 0.05)


def test_epsilon_from_rates_inverts_the_dp_inequalities():
    assert audit.epsilon_from_rates(0.1, 0.5, 0.0) == pytest.approx(math.log(5))
    assert audit.epsilon_from_rates(0.5, 0.1, 0.0) == pytest.approx(math.log(5))
    assert audit.epsilon_from_rates(0.3, 0.3, 0.0) == pytest.approx(math.log(0.7 / 0.3))
    assert audit.epsilon_from_rates(0.5, 0.5, 0.0) == 0.0
    assert audit.epsilon_from_rates(0.0, 0.2, 1e-5) == math.inf


def test_perfect_separation_gives_the_clopper_pearson_limit():
    res = audit.empirical_epsilon(np.zeros(2000), np.ones(2000), 1e-5, ALPHA, rng=0)
    fp_u = 1 - (ALPHA / 2) ** (1 / 1000)
    assert res.fpr == res.fnr == 0.0
    assert res.epsilon_lb == pytest.approx(math.log((1 - 1e-5 - fp_u) / fp_u))


def test_audit_bound_is_valid_and_has_power_on_a_gaussian_mechanism():
    """Gaussian mechanism with noise multiplier 1: its exact epsilon at delta (Balle & Wang 2018)."""
    delta = 1e-3
    true_eps = optimize.brentq(lambda e: gaussian_delta(1.0, 1.0, e) - delta, 0.01, 20)
    rng = np.random.default_rng(11)
    out, inn = rng.normal(0, 1, 50_000), rng.normal(1, 1, 50_000)
    res = audit.empirical_epsilon(out, inn, delta, ALPHA, rng=1)
    assert 0.5 * true_eps < res.epsilon_lb <= true_eps


def test_audit_detects_the_empty_batch_leak_in_the_seed_mechanism():
    out, inn = audit.seed_mechanism_scores("empty_batch", 4000, 0.5, 1e-5, rng=0)
    assert np.all(out == 0) and np.all(inn > 0)
    res = audit.empirical_epsilon(out, inn, 1e-5, ALPHA, rng=0)
    assert res.epsilon_lb > 6.0 > 0.5


def test_audit_detects_the_density_noise_leak_in_the_seed_mechanism():
    out, inn = audit.seed_mechanism_scores("density_noise", 4000, 0.5, 1e-5, rng=0)
    res = audit.empirical_epsilon(out, inn, 1e-5, ALPHA, rng=0)
    assert res.epsilon_lb > 2.0


def test_audit_detects_per_round_calibration_without_composition():
    out, inn = audit.seed_mechanism_scores("rounds", 4000, 0.5, 1e-5, rng=0, rounds=100)
    res = audit.empirical_epsilon(out, inn, 1e-5, ALPHA, rng=0)
    assert res.epsilon_lb > 1.0


@pytest.mark.timeout(180)
def test_opacus_dpsgd_audit_finds_nothing_beyond_the_declared_epsilon():
    out, inn, z = audit.opacus_dpsgd_scores(0.5, 1e-5, 0.1, 20, 2000, seed=0)
    assert z == pytest.approx(noise_multiplier_for(0.5, 1e-5, 0.1, 20))
    res = audit.empirical_epsilon(out, inn, 1e-5, ALPHA, rng=0)
    assert res.epsilon_lb <= 0.5


@pytest.mark.timeout(180)
def test_opacus_audit_has_power_at_large_epsilon_and_catches_too_little_noise():
    # full-batch DP-SGD at epsilon 4: a valid bound below 4, but clearly above 0
    out, inn, _ = audit.opacus_dpsgd_scores(4.0, 1e-5, 1.0, 1, 2000, seed=1)
    res = audit.empirical_epsilon(out, inn, 1e-5, ALPHA, rng=0)
    assert 0.5 < res.epsilon_lb <= 4.0
    # the same code with a tenth of the required noise multiplier violates epsilon = 0.5
    z = noise_multiplier_for(0.5, 1e-5, 0.1, 20)
    out, inn, _ = audit.opacus_dpsgd_scores(0.5, 1e-5, 0.1, 20, 2000, seed=2, noise_multiplier=z / 10)
    res = audit.empirical_epsilon(out, inn, 1e-5, ALPHA, rng=0)
    assert res.epsilon_lb > 0.5


@pytest.mark.parametrize("call, name", [
    (lambda: audit.empirical_epsilon([0, 1, 2], [1, 2, 3, 4], 1e-5), "scores_out"),
    (lambda: audit.empirical_epsilon(np.zeros(10), np.ones(10), 1e-5, alpha=0), "alpha"),
    (lambda: audit.empirical_epsilon(np.zeros(10), np.ones(10), 1.0), "delta"),
    (lambda: audit.seed_mechanism_scores("everything", 10, 1.0, 1e-5), "scenario"),
    (lambda: audit.seed_mechanism_scores("rounds", 10, 0.0, 1e-5), "epsilon"),
    (lambda: audit.opacus_dpsgd_scores(1.0, 1e-5, 0.0, 5, 10), "sample_rate"),
])
def test_bad_audit_inputs_name_the_parameter(call, name):
    with pytest.raises(ParameterError, match=name):
        call()
