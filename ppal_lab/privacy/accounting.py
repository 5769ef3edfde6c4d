r"""Privacy accounting: the Gaussian mechanism's exact privacy profile and DP-SGD's epsilon by RDP.

* :func:`gaussian_delta` / :func:`gaussian_sigma` — the exact :math:`\delta(\varepsilon)` of the
  Gaussian mechanism and its inverse, the *analytic* calibration of Balle & Wang (2018), exact for every
  :math:`\varepsilon > 0`; the classical :math:`\sigma = \sqrt{2\ln(1.25/\delta)}\,\Delta_2/\varepsilon`
  (Dwork & Roth 2014, Thm A.1) is available and only valid for :math:`\varepsilon < 1`.
* :func:`dpsgd_epsilon` / :func:`noise_multiplier_for` — DP-SGD (the Poisson-subsampled Gaussian
  mechanism) accounted with Rényi DP (Mironov 2017) through Opacus's ``RDPAccountant``, converted to
  :math:`(\varepsilon, \delta)` with Balle et al. (2020).
* :func:`quiet_opacus` — silences the warnings Opacus gives on every step of a correct run.
* :data:`DEFAULT_ALPHAS` — the RDP orders :class:`~ppal_lab.privacy.budget.PrivacyBudget` composes over.
"""
from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from typing import Any

from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from scipy import optimize, special

from ppal_lab.compendium.errors import (ParameterError, check_choice, check_int, check_open_unit,
                                        check_positive, check_range)

__all__ = ["DEFAULT_ALPHAS", "dpsgd_epsilon", "gaussian_delta", "gaussian_sigma", "noise_multiplier_for",
           "quiet_opacus"]

#: RDP orders used by :class:`PrivacyBudget`: Opacus's default orders extended to 256 so that
#: long compositions of small-epsilon releases find their optimal order inside the grid.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(RDPAccountant.DEFAULT_ALPHAS) + (80, 96, 128, 192, 256)

_GAUSSIAN_METHODS = ("analytic", "classical")



def gaussian_delta(sigma: float, sensitivity: float, epsilon: float) -> float:
    r"""Exact :math:`\delta(\varepsilon)` of the Gaussian mechanism (Balle & Wang 2018, Thm 8).

    .. math:: \delta(\varepsilon) = \Phi\!\Big(\frac{\Delta}{2\sigma} - \frac{\varepsilon\sigma}{\Delta}\Big)
              - e^{\varepsilon}\,\Phi\!\Big(-\frac{\Delta}{2\sigma} - \frac{\varepsilon\sigma}{\Delta}\Big)

    Parameters
    ----------
    sigma : float
        Noise standard deviation :math:`\sigma > 0`.
    sensitivity : float
        L2 sensitivity :math:`\Delta_2 > 0`.
    epsilon : float
        :math:`\varepsilon \ge 0`.

    Returns
    -------
    float
        The smallest :math:`\delta` for which the mechanism is :math:`(\varepsilon, \delta)`-DP.
    """
    u = check_positive("sigma", sigma) / check_positive("sensitivity", sensitivity)
    eps = check_range("epsilon", epsilon, 0, math.inf, high_open=True)
    return float(math.exp(_log_gaussian_delta(u, float(eps))))


def _log_gaussian_delta(u: float, eps: float) -> float:
    """log delta(eps) for noise multiplier u = sigma / Delta, computed in log space.

    delta = Phi(a) * (1 - exp(eps + logPhi(b) - logPhi(a))); the ratio is <= 1 by construction,
    and log1p keeps the tail (tiny delta) accurate where a direct subtraction would cancel.
    """
    a = 1.0 / (2.0 * u) - eps * u
    b = -1.0 / (2.0 * u) - eps * u
    log_pa = float(special.log_ndtr(a))
    log_ratio = min(eps + float(special.log_ndtr(b)) - log_pa, 0.0)
    if log_ratio == 0.0:
        return -math.inf
    return log_pa + math.log(-math.expm1(log_ratio))


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float,
                   method: str = "analytic") -> float:
    r"""Noise standard deviation of an :math:`(\varepsilon, \delta)`-DP Gaussian mechanism.

    ``method="analytic"`` (default) — Balle & Wang (2018): the smallest :math:`\sigma` with
    :func:`gaussian_delta` :math:`(\sigma) \le \delta`, found by root finding on the exact privacy
    profile. Valid for every :math:`\varepsilon > 0` and never larger than the classical value.

    ``method="classical"`` — Dwork & Roth (2014), Thm A.1:
    :math:`\sigma = \sqrt{2\ln(1.25/\delta)}\,\Delta_2/\varepsilon`, proved only for
    :math:`\varepsilon < 1` (a larger epsilon raises :class:`ParameterError`).

    Parameters
    ----------
    sensitivity : float
        L2 sensitivity :math:`\Delta_2 > 0`.
    epsilon : float
        :math:`\varepsilon > 0`.
    delta : float
        :math:`\delta \in (0, 1)`.
    method : {"analytic", "classical"}
        Calibration.

    Returns
    -------
    float
        :math:`\sigma`.
    """
    sens = check_positive("sensitivity", sensitivity)
    eps = check_positive("epsilon", epsilon)
    dlt = check_open_unit("delta", delta)
    check_choice("method", method, _GAUSSIAN_METHODS)
    if method == "classical":
        if eps >= 1.0:
            raise ParameterError("epsilon", epsilon,
                                 "< 1 for method='classical' (use method='analytic')")
        return math.sqrt(2.0 * math.log(1.25 / dlt)) * sens / eps

    # delta(u) decreases in the noise multiplier u = sigma / Delta: bracket the root, then Brent on
    # log u so the tolerance is relative.
    target = math.log(dlt)
    f = lambda log_u: _log_gaussian_delta(math.exp(log_u), eps) - target  # noqa: E731
    lo, hi = -1.0, 1.0
    while f(lo) < 0:
        lo -= 2.0
    while f(hi) > 0:
        hi += 2.0
    log_u = optimize.brentq(f, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500)
    # round up by a hair so that the returned sigma is on the private side of the root
    return math.exp(log_u) * sens * (1.0 + 1e-12)



# ----------------------------------------------------------------------------------------------
# DP-SGD helpers
# ----------------------------------------------------------------------------------------------
def _check_dpsgd(noise_multiplier: Any, sample_rate: Any, steps: Any) -> tuple[float, float, int]:
    return (check_positive("noise_multiplier", noise_multiplier),
            float(check_range("sample_rate", sample_rate, 0, 1, low_open=True)),
            check_int("steps", steps, 1))


def dpsgd_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    r"""Epsilon of DP-SGD (Poisson-sampled Gaussian mechanism) from Opacus's ``RDPAccountant``.

    Parameters
    ----------
    noise_multiplier : float
        :math:`z = \sigma / C` (noise std over clipping norm), > 0.
    sample_rate : float
        Poisson sampling rate :math:`q \in (0, 1]` (batch size / data set size).
    steps : int
        Number of noisy gradient steps, >= 1.
    delta : float
        :math:`\delta \in (0, 1)`.

    Returns
    -------
    float
        :math:`\varepsilon` at ``delta`` with Opacus's default RDP orders.
    """
    z, q, t = _check_dpsgd(noise_multiplier, sample_rate, steps)
    dlt = check_open_unit("delta", delta)
    acc = RDPAccountant()
    acc.history = [(z, q, t)]  # same state as t calls of acc.step(noise_multiplier=z, sample_rate=q)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order")
        return float(acc.get_epsilon(delta=dlt))


def noise_multiplier_for(target_epsilon: float, target_delta: float, sample_rate: float, steps: int,
                         epsilon_tolerance: float = 0.01) -> float:
    r"""DP-SGD noise multiplier reaching ``(target_epsilon, target_delta)`` after ``steps`` steps.

    Thin validated wrapper of ``opacus.accountants.utils.get_noise_multiplier`` (RDP accountant): a
    binary search returning the smallest :math:`z` (within the tolerance) whose epsilon is
    :math:`\le` ``target_epsilon`` and :math:`\ge` ``target_epsilon - epsilon_tolerance``.

    Parameters
    ----------
    target_epsilon : float
        > 0.
    target_delta : float
        In (0, 1).
    sample_rate : float
        In (0, 1].
    steps : int
        >= 1.
    epsilon_tolerance : float
        Precision of the search, in (0, target_epsilon).

    Returns
    -------
    float
        The noise multiplier :math:`z`.
    """
    eps = check_positive("target_epsilon", target_epsilon)
    dlt = check_open_unit("target_delta", target_delta)
    q = float(check_range("sample_rate", sample_rate, 0, 1, low_open=True))
    t = check_int("steps", steps, 1)
    tol = float(check_range("epsilon_tolerance", epsilon_tolerance, 0, eps, low_open=True,
                            high_open=True))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order")
            return float(get_noise_multiplier(target_epsilon=eps, target_delta=dlt, sample_rate=q,
                                              steps=t, accountant="rdp", epsilon_tolerance=tol))
    except ValueError:  # Opacus gives up above noise multiplier 1e6
        raise ParameterError("target_epsilon", target_epsilon,
                             "large enough to be reachable with a noise multiplier <= 1e6") from None


@contextlib.contextmanager
def quiet_opacus() -> Iterator[None]:
    """Train with Opacus without its per-step noise: it logs a warning on every empty Poisson batch (which
    DP-SGD must take) and warns that full backward hooks see inputs without gradients (they need none)."""
    log = logging.getLogger("opacus")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook")
            yield
    finally:
        log.setLevel(level)
