"""Tests of ppal_lab.privacy.accounting: Gaussian calibration (classical and analytic) and DP-SGD epsilon."""
from __future__ import annotations

import math

import numpy as np
import pytest
from opacus.accountants import RDPAccountant
from scipy import integrate, stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.privacy import PrivacyBudget, dpsgd_epsilon, gaussian_delta, gaussian_sigma, noise_multiplier_for


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


def test_noise_multiplier_round_trip():
    target, delta, q, steps = 2.0, 1e-5, 0.01, 1000
    z = noise_multiplier_for(target, delta, q, steps, epsilon_tolerance=0.01)
    eps = dpsgd_epsilon(z, q, steps, delta)
    assert target - 0.01 <= eps <= target
    budget = PrivacyBudget(target, delta)
    budget.spend_dpsgd(z, q, steps)  # fits exactly in the budget it was chosen for
    assert budget.epsilon_spent() <= target


@pytest.mark.parametrize("call,name", [
    (lambda: gaussian_sigma(1.0, 1.0, 0.0), "delta"),
    (lambda: gaussian_sigma(1.0, 1.0, 1e-5, method="exact"), "method"),
    (lambda: noise_multiplier_for(1.0, 1e-5, 0.0, 100), "sample_rate"),
    (lambda: noise_multiplier_for(1.0, 1e-5, 0.01, 100, epsilon_tolerance=2.0), "epsilon_tolerance"),
])
def test_accounting_names_the_bad_parameter(call, name):
    with pytest.raises(ParameterError, match=name):
        call()


def test_quiet_opacus_silences_its_step_warnings_and_restores_the_log_level():
    import logging
    import warnings

    from ppal_lab.privacy.accounting import quiet_opacus

    log = logging.getLogger("opacus")
    log.setLevel(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_opacus():
            assert not log.isEnabledFor(logging.WARNING)
            warnings.warn("Full backward hook will not fire")
        warnings.warn("Full backward hook will not fire")
    assert log.level == logging.INFO
    assert len(caught) == 1          # only the one outside the block
    log.setLevel(logging.NOTSET)
