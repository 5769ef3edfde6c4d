"""Tests of ppal_lab.privacy: noise distributions, selection probabilities, accounting, budget."""
from __future__ import annotations

import math

import numpy as np
import pytest
from opacus.accountants import RDPAccountant
from scipy import integrate, special, stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.privacy import (
    BudgetExceededError,
    PrivacyBudget,
    dpsgd_epsilon,
    exponential_mechanism,
    exponential_probabilities,
    gaussian_delta,
    gaussian_mechanism,
    gaussian_sigma,
    laplace_mechanism,
    noise_multiplier_for,
    report_noisy_max,
)

N_DRAWS = 20_000


def _binomial_ok(count: int, n: int, p: float, z: float = 4.5) -> bool:
    """count within z standard deviations of n*p (a ~1e-5 two-sided false-alarm rate at z=4.5)."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p))


# ---------------------------------------------------------------------------------------------
# additive noise
# ---------------------------------------------------------------------------------------------
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


def test_classical_sigma_hand_value():
    # sqrt(2 ln(1.25 / 1e-5)) / 0.5 = sqrt(2 * 11.73607) / 0.5 = 9.68961
    assert gaussian_sigma(1.0, 0.5, 1e-5, method="classical") == pytest.approx(9.68961, abs=1e-4)
    assert gaussian_sigma(2.0, 0.5, 1e-5, method="classical") == pytest.approx(2 * 9.68961, abs=2e-4)


def test_classical_sigma_refuses_epsilon_at_least_one():
    with pytest.raises(ParameterError, match="epsilon"):
        gaussian_sigma(1.0, 1.0, 1e-5, method="classical")


def test_analytic_sigma_literature_value_and_tighter_than_classical():
    # Balle & Wang (2018): eps = 1, delta = 1e-5, Delta = 1 needs sigma ~ 3.73
    assert gaussian_sigma(1.0, 1.0, 1e-5) == pytest.approx(3.7306, abs=1e-3)
    for eps in (0.1, 0.5, 0.9):
        assert gaussian_sigma(1.0, eps, 1e-6) < gaussian_sigma(1.0, eps, 1e-6, method="classical")


@pytest.mark.parametrize("epsilon,delta", [(0.3, 1e-3), (1.0, 1e-5), (4.0, 1e-6)])
def test_analytic_sigma_meets_delta_by_direct_integration(epsilon, delta):
    """delta(eps) = integral of (p(x) - e^eps q(x))_+ with p = N(0, s^2), q = N(Delta, s^2)."""
    sens = 1.0
    sigma = gaussian_sigma(sens, epsilon, delta)
    p, q = stats.norm(0.0, sigma), stats.norm(sens, sigma)
    # p > e^eps q  <=>  x < Delta/2 - eps sigma^2 / Delta
    x_star = sens / 2 - epsilon * sigma ** 2 / sens
    exact, _ = integrate.quad(lambda x: p.pdf(x) - math.exp(epsilon) * q.pdf(x), -np.inf, x_star,
                              epsabs=1e-14, epsrel=1e-10)
    assert exact == pytest.approx(delta, rel=1e-6)
    assert gaussian_delta(sigma, sens, epsilon) == pytest.approx(delta, rel=1e-8)
    # a bit less noise breaks the target
    assert gaussian_delta(0.99 * sigma, sens, epsilon) > delta


# ---------------------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# accounting
# ---------------------------------------------------------------------------------------------
def _rdp_to_eps(alphas: np.ndarray, rdp: np.ndarray, delta: float) -> float:
    """Balle et al. (2020), Thm 21, written out independently of Opacus."""
    return float(np.min(rdp + np.log((alphas - 1) / alphas) - (np.log(delta) + np.log(alphas))
                        / (alphas - 1)))


def test_pure_releases_compose_to_closed_form():
    eps0, k, delta = 0.1, 50, 1e-5
    budget = PrivacyBudget(100.0, delta, owner="OEM")
    for _ in range(k):
        budget.spend_pure(eps0)
    alphas = np.asarray(budget.alphas)
    expected_rdp = k * np.minimum(eps0, alphas * eps0 ** 2 / 2)
    np.testing.assert_allclose(budget.rdp(), expected_rdp, rtol=1e-12)
    expected = min(_rdp_to_eps(alphas, expected_rdp, delta), k * eps0)
    assert budget.epsilon_spent() == pytest.approx(expected, rel=1e-12)
    assert budget.epsilon_spent() < k * eps0  # RDP beats basic composition for many releases


def test_single_pure_release_costs_its_epsilon():
    budget = PrivacyBudget(1.0, 1e-6)
    assert budget.spend_pure(0.3) == pytest.approx(0.3)
    assert budget.epsilon_spent(delta=1e-9) == pytest.approx(0.3)


def test_dpsgd_epsilon_equals_opacus_rdp_accountant_stepped():
    z, q, steps, delta = 1.1, 0.02, 300, 1e-5
    budget = PrivacyBudget(50.0, delta)
    budget.spend_dpsgd(z, q, steps)
    acc = RDPAccountant()
    for _ in range(steps):
        acc.step(noise_multiplier=z, sample_rate=q)
    assert budget.epsilon_spent() == pytest.approx(
        acc.get_epsilon(delta=delta, alphas=list(budget.alphas)), rel=1e-12)
    # on Opacus's own order grid the result is identical too, and our larger grid is never looser
    assert dpsgd_epsilon(z, q, steps, delta) == pytest.approx(acc.get_epsilon(delta=delta), rel=1e-12)
    assert budget.epsilon_spent() <= acc.get_epsilon(delta=delta) + 1e-12


def test_two_dpsgd_runs_compose_additively_in_rdp():
    delta = 1e-5
    budget = PrivacyBudget(50.0, delta)
    budget.spend_dpsgd(1.0, 0.01, 100)
    budget.spend_dpsgd(2.0, 0.05, 50)
    acc = RDPAccountant()
    for _ in range(100):
        acc.step(noise_multiplier=1.0, sample_rate=0.01)
    for _ in range(50):
        acc.step(noise_multiplier=2.0, sample_rate=0.05)
    assert budget.epsilon_spent() == pytest.approx(
        acc.get_epsilon(delta=delta, alphas=list(budget.alphas)), rel=1e-12)


def test_gaussian_release_is_rdp_alpha_over_two_z_squared():
    z, count, delta = 3.0, 4, 1e-6
    budget = PrivacyBudget(20.0, delta)
    budget.spend_gaussian(z, count=count)
    alphas = np.asarray(budget.alphas)
    np.testing.assert_allclose(budget.rdp(), count * alphas / (2 * z ** 2), rtol=1e-12)
    assert budget.epsilon_spent() == pytest.approx(
        _rdp_to_eps(alphas, count * alphas / (2 * z ** 2), delta), rel=1e-12)


def test_mixed_releases_take_the_better_of_two_valid_bounds():
    delta = 1e-5
    budget = PrivacyBudget(50.0, delta)
    budget.spend_dpsgd(1.0, 0.01, 200)
    budget.spend_pure(0.5)
    alphas = np.asarray(budget.alphas)
    sgm = np.asarray(budget.rdp()) - np.minimum(0.5, alphas * 0.25 / 2)
    basic = _rdp_to_eps(alphas, sgm, delta) + 0.5
    full = _rdp_to_eps(alphas, budget.rdp(), delta)
    assert budget.epsilon_spent() == pytest.approx(min(basic, full), rel=1e-10)


def test_noise_multiplier_round_trip():
    target, delta, q, steps = 2.0, 1e-5, 0.01, 1000
    z = noise_multiplier_for(target, delta, q, steps, epsilon_tolerance=0.01)
    eps = dpsgd_epsilon(z, q, steps, delta)
    assert target - 0.01 <= eps <= target
    budget = PrivacyBudget(target, delta)
    budget.spend_dpsgd(z, q, steps)  # fits exactly in the budget it was chosen for
    assert budget.epsilon_spent() <= target


# ---------------------------------------------------------------------------------------------
# the budget manager
# ---------------------------------------------------------------------------------------------
def test_refused_release_leaves_state_unchanged():
    budget = PrivacyBudget(1.0, 1e-5, owner="dismantler")
    budget.spend_pure(0.6, label="query round 1")
    budget.spend_gaussian(20.0)
    before = budget.state()
    rdp_before = budget.rdp().copy()
    history_before = list(budget.accountant.history)
    assert budget.would_exceed("pure", epsilon=0.5)
    assert not budget.can_spend("dpsgd", noise_multiplier=0.5, sample_rate=0.1, steps=1000)
    with pytest.raises(BudgetExceededError, match="dismantler.*refused"):
        budget.spend_pure(0.5)
    with pytest.raises(BudgetExceededError):
        budget.spend_dpsgd(0.5, 0.1, 1000)
    with pytest.raises(BudgetExceededError):
        budget.spend_gaussian(0.1)
    assert budget.state() == before
    np.testing.assert_array_equal(budget.rdp(), rdp_before)
    assert budget.accountant.history == history_before
    # a release that fits still goes through afterwards
    assert budget.can_spend("pure", epsilon=0.05)
    assert budget.spend_pure(0.05) <= 1.0
    assert len(budget.releases) == 3


def test_epsilon_if_does_not_spend():
    budget = PrivacyBudget(5.0, 1e-5)
    e = budget.epsilon_if("dpsgd", noise_multiplier=1.0, sample_rate=0.01, steps=100)
    assert budget.epsilon_spent() == 0.0 and budget.releases == []
    assert budget.spend_dpsgd(1.0, 0.01, 100) == pytest.approx(e)


@pytest.mark.parametrize("epsilon", [0, -1.0, float("nan"), float("inf")])
def test_budget_rejects_bad_epsilon(epsilon):
    with pytest.raises(ParameterError, match="epsilon"):
        PrivacyBudget(epsilon, 1e-5)


@pytest.mark.parametrize("delta", [0, 1, 1.5, -1e-5])
def test_budget_rejects_bad_delta(delta):
    with pytest.raises(ParameterError, match="delta"):
        PrivacyBudget(1.0, delta)


@pytest.mark.parametrize("call,name", [
    (lambda b: b.spend_pure(-0.1), "epsilon"),
    (lambda b: b.spend_dpsgd(1.0, 1.5, 10), "sample_rate"),
    (lambda b: b.spend_dpsgd(1.0, 0.1, 0), "steps"),
    (lambda b: b.spend_dpsgd(1.0, 0.1, 2.5), "steps"),
    (lambda b: b.spend_dpsgd(0.0, 0.1, 10), "noise_multiplier"),
    (lambda b: b.spend_gaussian(-2.0), "sigma_over_sensitivity"),
    (lambda b: b.epsilon_spent(delta=2.0), "delta"),
    (lambda b: b.would_exceed("laplace", epsilon=1.0), "kind"),
])
def test_budget_methods_validate_before_spending(call, name):
    budget = PrivacyBudget(1.0, 1e-5)
    with pytest.raises(ParameterError, match=name):
        call(budget)
    assert budget.epsilon_spent() == 0.0 and budget.releases == []


@pytest.mark.parametrize("call,name", [
    (lambda: laplace_mechanism(1.0, 1.0, 0.0, 0), "epsilon"),
    (lambda: laplace_mechanism(1.0, -1.0, 1.0, 0), "sensitivity"),
    (lambda: laplace_mechanism(1.0, 1.0, 1.0, "seed"), "rng"),
    (lambda: laplace_mechanism(float("nan"), 1.0, 1.0, 0), "value"),
    (lambda: gaussian_sigma(1.0, 1.0, 0.0), "delta"),
    (lambda: gaussian_sigma(1.0, 1.0, 1e-5, method="exact"), "method"),
    (lambda: report_noisy_max([1.0, 2.0], 1.0, 1.0, 0, k=3), "k"),
    (lambda: report_noisy_max([[1.0, 2.0]], 1.0, 1.0, 0), "scores"),
    (lambda: noise_multiplier_for(1.0, 1e-5, 0.0, 100), "sample_rate"),
    (lambda: noise_multiplier_for(1.0, 1e-5, 0.01, 100, epsilon_tolerance=2.0), "epsilon_tolerance"),
])
def test_mechanisms_name_the_bad_parameter(call, name):
    with pytest.raises(ParameterError, match=name):
        call()
