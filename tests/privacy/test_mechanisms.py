"""Tests of ppal_lab.privacy.mechanisms: noise distributions and selection probabilities."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.privacy import (exponential_mechanism, exponential_probabilities, gaussian_mechanism, gaussian_sigma,
                              laplace_mechanism, report_noisy_max)


N_DRAWS = 20_000


def _binomial_ok(count: int, n: int, p: float, z: float = 4.5) -> bool:
    """count within z standard deviations of n*p (a ~1e-5 two-sided false-alarm rate at z=4.5)."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("sensitivity,epsilon", [(1.0, 1.0), (2.0, 0.25)])
def test_laplace_noise_has_scale_sensitivity_over_epsilon(sensitivity, epsilon):
    value = np.full(N_DRAWS, 3.5)
    out = laplace_mechanism(value, sensitivity, epsilon, rng=np.random.default_rng(11))
    res = stats.kstest(out - value, stats.laplace(loc=0.0, scale=sensitivity / epsilon).cdf)
    assert res.pvalue > 1e-3
    # a wrong scale (by 20%) must be rejected: the test has power
    wrong = stats.kstest(out - value, stats.laplace(scale=1.2 * sensitivity / epsilon).cdf)
    assert wrong.pvalue < 1e-3


def test_laplace_scalar_in_scalar_out_and_seeded():
    a = laplace_mechanism(1.0, 1.0, 1.0, rng=5)
    b = laplace_mechanism(1.0, 1.0, 1.0, rng=np.random.default_rng(5))
    assert isinstance(a, float) and a == b


def test_gaussian_noise_has_computed_sigma():
    sigma = gaussian_sigma(1.5, 0.8, 1e-5)
    value = np.zeros(N_DRAWS)
    out = gaussian_mechanism(value, 1.5, 0.8, 1e-5, rng=np.random.default_rng(3))
    assert stats.kstest(out, stats.norm(scale=sigma).cdf).pvalue > 1e-3
    assert stats.kstest(out, stats.norm(scale=1.2 * sigma).cdf).pvalue < 1e-3


def test_report_noisy_max_matches_softmax_probabilities():
    scores = np.array([1.0, 0.0, 0.5, 0.9])
    eps, sens = 2.0, 1.0
    expected = special.softmax(eps * scores / (2 * sens))
    rng = np.random.default_rng(2024)
    picks = np.array([report_noisy_max(scores, sens, eps, rng)[0] for _ in range(N_DRAWS)])
    counts = np.bincount(picks, minlength=scores.size)
    for c, p in zip(counts, expected):
        assert _binomial_ok(int(c), N_DRAWS, float(p))
    np.testing.assert_allclose(exponential_probabilities(scores, sens, eps), expected, rtol=1e-12)


def test_report_noisy_max_top2_equals_sequential_exponential_mechanism():
    """One-shot Gumbel top-2 (total eps) = two exponential picks without replacement (eps/2 each)."""
    scores = np.array([1.0, 0.2, 0.6])
    eps, sens, k = 4.0, 1.0, 2
    p = special.softmax((eps / k) * scores / (2 * sens))
    rng = np.random.default_rng(7)
    pairs = [tuple(report_noisy_max(scores, sens, eps, rng, k=k)) for _ in range(N_DRAWS)]
    for i in range(3):
        for j in range(3):
            if i == j:
                continue
            expected = p[i] * p[j] / (1 - p[i])
            assert _binomial_ok(pairs.count((i, j)), N_DRAWS, float(expected))


def test_exponential_mechanism_frequencies():
    scores = np.array([0.0, 1.0, 2.0])
    rng = np.random.default_rng(1)
    picks = [exponential_mechanism(scores, 1.0, 1.0, rng)[0] for _ in range(5000)]
    _, p = exponential_mechanism(scores, 1.0, 1.0, rng)
    np.testing.assert_allclose(p, special.softmax(scores / 2))
    for i in range(3):
        assert _binomial_ok(picks.count(i), 5000, float(p[i]))


@pytest.mark.parametrize("call,name", [
    (lambda: laplace_mechanism(1.0, 1.0, 0.0, 0), "epsilon"),
    (lambda: laplace_mechanism(1.0, -1.0, 1.0, 0), "sensitivity"),
    (lambda: laplace_mechanism(1.0, 1.0, 1.0, "seed"), "rng"),
    (lambda: laplace_mechanism(float("nan"), 1.0, 1.0, 0), "value"),
    (lambda: report_noisy_max([1.0, 2.0], 1.0, 1.0, 0, k=3), "k"),
    (lambda: report_noisy_max([[1.0, 2.0]], 1.0, 1.0, 0), "scores"),
])
def test_mechanisms_name_the_bad_parameter(call, name):
    with pytest.raises(ParameterError, match=name):
        call()
