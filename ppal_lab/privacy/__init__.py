r"""Differential privacy: mechanisms, accounting, a per-participant budget, the seed's sparsity-aware
mechanism and empirical audits.

Unit of privacy
---------------
Every guarantee below is *record-level*: two data sets are neighbours when they differ in one record
of one participant. The caller states the sensitivity :math:`\Delta` of the released quantity with
respect to that neighbouring relation; the mechanisms only calibrate noise to it.

Modules (laid out like Opacus's accountants)
--------------------------------------------
* :mod:`~ppal_lab.privacy.mechanisms` — :func:`laplace_mechanism` (pure :math:`\varepsilon`-DP),
  :func:`gaussian_mechanism` (:math:`(\varepsilon, \delta)`-DP), :func:`exponential_mechanism` and
  :func:`report_noisy_max` (private selection; McSherry & Talwar 2007).
* :mod:`~ppal_lab.privacy.accounting` — :func:`gaussian_sigma` / :func:`gaussian_delta` (the analytic
  Gaussian mechanism of Balle & Wang 2018, or the classical calibration of Dwork & Roth 2014),
  :func:`dpsgd_epsilon` / :func:`noise_multiplier_for` (DP-SGD by Rényi DP through Opacus), and the RDP
  orders :data:`DEFAULT_ALPHAS`.
* :mod:`~ppal_lab.privacy.budget` — :class:`PrivacyBudget`, which composes every release of one
  participant with RDP (Mironov 2017) and refuses overspending (:class:`BudgetExceededError`).
* :mod:`~ppal_lab.privacy.sparsity` — seed 001's sparsity-aware mechanism, re-implemented as published.
* :mod:`~ppal_lab.privacy.audit` — empirical lower bounds on epsilon that show broken guarantees.
* :mod:`~ppal_lab.privacy.quantiles` — DP quantiles (exponential mechanism over intervals, Smith 2011)
  for sharing a field's range with a guarantee.
* :mod:`~ppal_lab.privacy.membership` — a membership-inference audit of a whole training pipeline
  against the advantage DP allows.

Who may import it: any field room (``federated`` uses the budget and the mechanisms) and any chapter.
It imports only ``ppal_lab.compendium.errors`` from the machinery.
"""
from __future__ import annotations

from ppal_lab.privacy.accounting import (DEFAULT_ALPHAS, dpsgd_epsilon, gaussian_delta, gaussian_sigma,
                                         noise_multiplier_for)
from ppal_lab.privacy.budget import BudgetExceededError, PrivacyBudget, Release
from ppal_lab.privacy.mechanisms import (exponential_mechanism, exponential_probabilities, gaussian_mechanism,
                                         laplace_mechanism, report_noisy_max)

__all__ = [
    "BudgetExceededError",
    "DEFAULT_ALPHAS",
    "PrivacyBudget",
    "Release",
    "dpsgd_epsilon",
    "exponential_mechanism",
    "exponential_probabilities",
    "gaussian_delta",
    "gaussian_mechanism",
    "gaussian_sigma",
    "laplace_mechanism",
    "noise_multiplier_for",
    "report_noisy_max",
]
