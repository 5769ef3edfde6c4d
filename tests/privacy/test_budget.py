"""Tests of ppal_lab.privacy.budget: RDP composition of releases and the refusal of overspending."""
from __future__ import annotations

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.privacy import BudgetExceededError, PrivacyBudget


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
