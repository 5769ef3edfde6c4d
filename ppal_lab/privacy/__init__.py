r"""Differential-privacy mechanisms and a per-participant privacy budget manager.

Unit of privacy
---------------
Every guarantee below is *record-level*: two data sets are neighbours when they differ in one record
of one participant. The caller states the sensitivity :math:`\Delta` of the released quantity with
respect to that neighbouring relation; the mechanisms only calibrate noise to it.

Mechanisms
----------
* :func:`laplace_mechanism` — :math:`f(D) + \mathrm{Lap}(\Delta_1/\varepsilon)`: pure
  :math:`\varepsilon`-DP for an L1 sensitivity :math:`\Delta_1`.
* :func:`gaussian_mechanism` — :math:`f(D) + \mathcal N(0, \sigma^2)` with :math:`\sigma` from
  :func:`gaussian_sigma`: :math:`(\varepsilon, \delta)`-DP for an L2 sensitivity :math:`\Delta_2`.
  The default calibration is the *analytic* Gaussian mechanism of Balle & Wang (2018), exact for every
  :math:`\varepsilon > 0`; the classical :math:`\sigma = \sqrt{2\ln(1.25/\delta)}\,\Delta_2/\varepsilon`
  (Dwork & Roth 2014, Thm A.1) is available and only valid for :math:`\varepsilon < 1`.
* :func:`exponential_mechanism` / :func:`report_noisy_max` — private selection of the index with a
  high score. Adding Gumbel noise of scale :math:`2\Delta/\varepsilon` and taking the arg-max samples
  index *i* with probability :math:`\propto \exp(\varepsilon s_i / (2\Delta))`, i.e. it *is* the
  exponential mechanism (McSherry & Talwar 2007), :math:`\varepsilon`-DP.

Accounting
----------
:class:`PrivacyBudget` composes every release of one participant with Rényi DP (Mironov 2017), using
Opacus's RDP analysis of the sampled Gaussian mechanism (the code path of
``opacus.accountants.RDPAccountant``) and the conversion to :math:`(\varepsilon, \delta)` of Balle et
al. (2020) that Opacus implements. Pure :math:`\varepsilon`-DP releases enter the RDP sum through
:math:`\varepsilon\text{-DP} \Rightarrow (\alpha, \min\{\varepsilon, \alpha\varepsilon^2/2\})\text{-RDP}`
(the first term is immediate from the definition, the second is Bun & Steinke 2016, Prop. 3.3:
:math:`\varepsilon`-DP implies :math:`\tfrac12\varepsilon^2`-zCDP). See :class:`PrivacyBudget`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as _rdp
from opacus.accountants.utils import get_noise_multiplier
from scipy import optimize, special

from ppal_lab.compendium.errors import ParameterError, as_generator, check_choice, check_int, check_open_unit, check_positive, check_range

__all__ = [
    "BudgetExceededError",
    "PrivacyBudget",
    "Release",
    "DEFAULT_ALPHAS",
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

#: RDP orders used by :class:`PrivacyBudget`: Opacus's default orders extended to 256 so that
#: long compositions of small-epsilon releases find their optimal order inside the grid.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(RDPAccountant.DEFAULT_ALPHAS) + (80, 96, 128, 192, 256)

_GAUSSIAN_METHODS = ("analytic", "classical")


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _finite_array(name: str, value: Any, *, ndim: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(name, value, "numeric (array-like of floats)") from None
    if ndim is not None and arr.ndim != ndim:
        raise ParameterError(name, f"array of shape {arr.shape}", f"a {ndim}-d array")
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ParameterError(name, value if arr.size < 8 else f"array of shape {arr.shape}",
                             "non-empty and finite")
    return arr


def _like_input(value: Any, out: np.ndarray) -> float | np.ndarray:
    """Return a float for scalar input, an array otherwise."""
    return float(out) if np.ndim(value) == 0 else out


# ----------------------------------------------------------------------------------------------
# additive-noise mechanisms
# ----------------------------------------------------------------------------------------------
def laplace_mechanism(value: float | np.ndarray, sensitivity: float, epsilon: float,
                      rng: np.random.Generator | int) -> float | np.ndarray:
    r"""Release ``value`` with Laplace noise: pure :math:`\varepsilon`-DP.

    .. math:: M(D) = f(D) + Z, \qquad Z_j \sim \mathrm{Lap}(0, b),\ b = \Delta_1 / \varepsilon,

    where :math:`\Delta_1 = \max_{D \sim D'} \lVert f(D) - f(D') \rVert_1` is the L1 sensitivity of the
    *whole* released vector (Dwork et al. 2006). Independent noise is drawn for every coordinate.

    Parameters
    ----------
    value : float or array_like
        The exact query answer :math:`f(D)`.
    sensitivity : float
        L1 sensitivity :math:`\Delta_1 > 0`.
    epsilon : float
        Privacy parameter :math:`\varepsilon > 0` of this one release.
    rng : numpy.random.Generator or int
        Source of the noise (an int is used as a seed).

    Returns
    -------
    float or numpy.ndarray
        The noisy answer, same shape as ``value``.
    """
    x = _finite_array("value", value)
    scale = check_positive("sensitivity", sensitivity) / check_positive("epsilon", epsilon)
    gen = as_generator(rng)
    return _like_input(value, x + gen.laplace(0.0, scale, size=x.shape))


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


def gaussian_mechanism(value: float | np.ndarray, sensitivity: float, epsilon: float, delta: float,
                       rng: np.random.Generator | int,
                       method: str = "analytic") -> float | np.ndarray:
    r"""Release ``value`` with Gaussian noise: :math:`(\varepsilon, \delta)`-DP.

    .. math:: M(D) = f(D) + Z, \qquad Z_j \sim \mathcal N(0, \sigma^2),

    with :math:`\sigma` from :func:`gaussian_sigma` (analytic calibration by default) and
    :math:`\Delta_2 = \max_{D \sim D'} \lVert f(D) - f(D') \rVert_2`.

    Parameters
    ----------
    value : float or array_like
        The exact answer :math:`f(D)`.
    sensitivity : float
        L2 sensitivity :math:`\Delta_2 > 0`.
    epsilon, delta : float
        Target guarantee, :math:`\varepsilon > 0`, :math:`\delta \in (0, 1)`.
    rng : numpy.random.Generator or int
        Source of the noise.
    method : {"analytic", "classical"}
        Calibration, see :func:`gaussian_sigma`.

    Returns
    -------
    float or numpy.ndarray
        The noisy answer, same shape as ``value``.
    """
    x = _finite_array("value", value)
    sigma = gaussian_sigma(sensitivity, epsilon, delta, method)
    gen = as_generator(rng)
    return _like_input(value, x + gen.normal(0.0, sigma, size=x.shape))


# ----------------------------------------------------------------------------------------------
# private selection
# ----------------------------------------------------------------------------------------------
def exponential_probabilities(scores: Sequence[float] | np.ndarray, sensitivity: float,
                              epsilon: float) -> np.ndarray:
    r"""Selection probabilities of the exponential mechanism with utility = score.

    .. math:: \Pr[i] = \frac{\exp(\varepsilon s_i / (2\Delta))}{\sum_j \exp(\varepsilon s_j / (2\Delta))}

    where :math:`\Delta = \max_{D\sim D'} \max_i |s_i(D) - s_i(D')|` is the sensitivity of the scores.

    Parameters
    ----------
    scores : array_like of shape (n,)
        Utilities :math:`s_i` (higher = preferred).
    sensitivity : float
        :math:`\Delta > 0`.
    epsilon : float
        :math:`\varepsilon > 0` of one selection.

    Returns
    -------
    numpy.ndarray of shape (n,)
        Probabilities summing to one.
    """
    s = _finite_array("scores", scores, ndim=1)
    sens = check_positive("sensitivity", sensitivity)
    eps = check_positive("epsilon", epsilon)
    return special.softmax(eps * s / (2.0 * sens))


def exponential_mechanism(scores: Sequence[float] | np.ndarray, sensitivity: float, epsilon: float,
                          rng: np.random.Generator | int) -> tuple[int, np.ndarray]:
    r"""Pick one index with the exponential mechanism: :math:`\varepsilon`-DP.

    Parameters
    ----------
    scores : array_like of shape (n,)
        Utilities (higher = preferred).
    sensitivity : float
        Sensitivity :math:`\Delta > 0` of every score.
    epsilon : float
        :math:`\varepsilon > 0` spent by this pick.
    rng : numpy.random.Generator or int
        Randomness.

    Returns
    -------
    index : int
        The selected index.
    probabilities : numpy.ndarray
        The selection probabilities, see :func:`exponential_probabilities`.
    """
    p = exponential_probabilities(scores, sensitivity, epsilon)
    gen = as_generator(rng)
    return int(gen.choice(p.size, p=p)), p


def report_noisy_max(scores: Sequence[float] | np.ndarray, sensitivity: float, epsilon: float,
                     rng: np.random.Generator | int, k: int = 1) -> np.ndarray:
    r"""Private top-``k`` selection by Gumbel report-noisy-max: :math:`\varepsilon`-DP in total.

    Each score receives independent Gumbel noise :math:`G_i \sim \mathrm{Gumbel}(0, 2k\Delta/\varepsilon)`
    and the indices of the ``k`` largest noisy scores are released (only the indices, never the noisy
    values).

    Privacy accounting. With the per-pick parameter :math:`\varepsilon_1 = \varepsilon / k`, the noise
    scale is :math:`2\Delta/\varepsilon_1`, so the arg-max is distributed exactly as the exponential
    mechanism :math:`\Pr[i] \propto \exp(\varepsilon_1 s_i / (2\Delta))` and is
    :math:`\varepsilon_1`-DP. Taking the top ``k`` of one noisy vector is distributed exactly as ``k``
    sequential exponential-mechanism picks without replacement (Durfee & Rogers 2019, "one-shot" top-k),
    so by basic composition the release is :math:`k \varepsilon_1 = \varepsilon`-DP. ``epsilon`` is
    therefore the *total* cost of the call; charge it once with :meth:`PrivacyBudget.spend_pure`.

    Parameters
    ----------
    scores : array_like of shape (n,)
        Utilities (higher = preferred); e.g. uncertainty scores bounded in ``[0, R]`` whose values
        change by at most :math:`\Delta \le R` between neighbouring data sets.
    sensitivity : float
        Sensitivity :math:`\Delta > 0` of every score.
    epsilon : float
        Total :math:`\varepsilon > 0` of the ``k`` picks.
    rng : numpy.random.Generator or int
        Randomness.
    k : int
        Number of indices to release, ``1 <= k <= n``.

    Returns
    -------
    numpy.ndarray of shape (k,)
        Selected indices, best noisy score first.
    """
    s = _finite_array("scores", scores, ndim=1)
    sens = check_positive("sensitivity", sensitivity)
    eps = check_positive("epsilon", epsilon)
    k = check_int("k", k, 1)
    if k > s.size:
        raise ParameterError("k", k, f"<= the number of scores ({s.size})")
    gen = as_generator(rng)
    noisy = s + gen.gumbel(0.0, 2.0 * k * sens / eps, size=s.size)
    if k == 1:
        return np.array([int(np.argmax(noisy))])
    top = np.argpartition(-noisy, k - 1)[:k]
    return top[np.argsort(-noisy[top], kind="stable")]


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


# ----------------------------------------------------------------------------------------------
# budget manager
# ----------------------------------------------------------------------------------------------
class BudgetExceededError(RuntimeError):
    """A release would push a participant's epsilon above its budget; nothing was spent."""


@dataclass(frozen=True)
class Release:
    """One accepted release in a :class:`PrivacyBudget` ledger."""

    kind: str
    params: dict
    label: str
    epsilon_after: float


_KINDS = ("dpsgd", "pure", "gaussian")


@dataclass
class PrivacyBudget:
    r"""Privacy budget of one participant, composed over all its releases with RDP.

    The budget is an :math:`(\varepsilon_{\max}, \delta)` pair. Each release is charged by one of:

    * :meth:`spend_dpsgd` — ``steps`` steps of the Poisson-subsampled Gaussian mechanism (DP-SGD)
      with noise multiplier :math:`z` and sample rate :math:`q`; RDP from Opacus's analysis
      (``opacus.accountants.analysis.rdp.compute_rdp``, the function ``RDPAccountant`` uses).
    * :meth:`spend_gaussian` — a full-batch Gaussian release with :math:`\sigma/\Delta_2 = z`:
      :math:`\varepsilon_\alpha = \alpha / (2z^2)` (the :math:`q = 1` case of the above).
    * :meth:`spend_pure` — any :math:`\varepsilon_0`-DP release (Laplace, report-noisy-max,
      exponential mechanism): :math:`\varepsilon_\alpha = \min\{\varepsilon_0, \alpha\varepsilon_0^2/2\}`
      (definition of RDP; Bun & Steinke 2016, Prop. 3.3).

    RDP curves add up over releases at every order :math:`\alpha` in ``alphas``. The reported epsilon
    is the smaller of two valid :math:`(\varepsilon, \delta)` guarantees:

    1. RDP of everything, converted with Balle et al. (2020), Thm 21 (Opacus's ``get_privacy_spent``):
       :math:`\varepsilon = \min_\alpha\, \varepsilon_\alpha + \log((\alpha-1)/\alpha)
       - (\log\delta + \log\alpha)/(\alpha - 1)`;
    2. the Gaussian/DP-SGD part converted the same way, plus :math:`\sum \varepsilon_0` of the pure
       releases (basic composition of an :math:`(\varepsilon_A, \delta)` and an
       :math:`(\varepsilon_B, 0)` guarantee).

    The second is tighter when a few pure releases dominate; the first when there are many.

    A release that would make :meth:`epsilon_spent` exceed ``epsilon`` at the budget's ``delta``
    raises :class:`BudgetExceededError` and changes nothing.

    Parameters
    ----------
    epsilon : float
        Budget :math:`\varepsilon_{\max} > 0`.
    delta : float
        :math:`\delta \in (0, 1)` at which the budget is enforced.
    owner : str
        Name of the participant (in messages and records).
    alphas : sequence of float, optional
        RDP orders (> 1); :data:`DEFAULT_ALPHAS` when omitted.
    """

    epsilon: float
    delta: float
    owner: str = "participant"
    alphas: tuple[float, ...] = field(default=DEFAULT_ALPHAS, repr=False)
    releases: list[Release] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.epsilon = check_positive("epsilon", self.epsilon)
        self.delta = check_open_unit("delta", self.delta)
        if not isinstance(self.owner, str) or not self.owner:
            raise ParameterError("owner", self.owner, "a non-empty string")
        try:
            alphas = np.asarray(self.alphas, dtype=float)
        except (TypeError, ValueError):
            raise ParameterError("alphas", self.alphas, "a sequence of numbers > 1") from None
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)) \
                or np.any(alphas <= 1):
            raise ParameterError("alphas", self.alphas, "a non-empty sequence of finite numbers > 1")
        self.alphas = tuple(float(a) for a in alphas)
        self._alpha_arr = alphas
        # Opacus accountant holding every sampled-Gaussian entry (DP-SGD and q=1 Gaussian releases)
        self.accountant = RDPAccountant()
        self._sgm_rdp = np.zeros(alphas.size)  # cached sum of the entries' RDP curves
        self._pure: list[float] = []

    # -- internal pure functions of a (hypothetical) state ------------------------------------
    def _entry_rdp(self, z: float, q: float, steps: int) -> np.ndarray:
        return np.asarray(_rdp.compute_rdp(q=q, noise_multiplier=z, steps=steps,
                                           orders=list(self.alphas)), dtype=float)

    def _pure_rdp(self, eps0: float) -> np.ndarray:
        return np.minimum(eps0, self._alpha_arr * eps0 ** 2 / 2.0)

    def _convert(self, rdp: np.ndarray, delta: float) -> float:
        with warnings.catch_warnings():
            # Opacus warns when the optimum sits at the grid's edge; the bound is still valid.
            warnings.filterwarnings("ignore", message="Optimal order")
            eps, _ = _rdp.get_privacy_spent(orders=list(self.alphas), rdp=rdp, delta=delta)
        return float(eps)

    def _epsilon_of(self, sgm_rdp: np.ndarray, has_sgm: bool, pure: list[float],
                    delta: float) -> float:
        if not has_sgm and not pure:
            return 0.0
        pure_rdp = sum((self._pure_rdp(e) for e in pure), np.zeros_like(sgm_rdp))
        eps_rdp = self._convert(sgm_rdp + pure_rdp, delta)
        eps_basic = (self._convert(sgm_rdp, delta) if has_sgm else 0.0) + math.fsum(pure)
        return min(eps_rdp, eps_basic)

    def _validated(self, kind: str, params: dict) -> dict:
        check_choice("kind", kind, _KINDS)
        if kind == "dpsgd":
            allowed = {"noise_multiplier", "sample_rate", "steps"}
        elif kind == "pure":
            allowed = {"epsilon"}
        else:
            allowed = {"sigma_over_sensitivity", "count"}
        extra = set(params) - allowed
        if extra:
            raise ParameterError("params", sorted(extra), f"only {sorted(allowed)} for kind={kind!r}")
        if kind == "dpsgd":
            missing = {"noise_multiplier", "sample_rate", "steps"} - set(params)
            if missing:
                raise ParameterError("params", sorted(missing), "all given for kind='dpsgd'")
            z, q, t = _check_dpsgd(params["noise_multiplier"], params["sample_rate"],
                                   params["steps"])
            return {"noise_multiplier": z, "sample_rate": q, "steps": t}
        if kind == "pure":
            if "epsilon" not in params:
                raise ParameterError("params", [], "'epsilon' given for kind='pure'")
            return {"epsilon": check_positive("epsilon", params["epsilon"])}
        if "sigma_over_sensitivity" not in params:
            raise ParameterError("params", [], "'sigma_over_sensitivity' given for kind='gaussian'")
        return {"sigma_over_sensitivity": check_positive("sigma_over_sensitivity",
                                                    params["sigma_over_sensitivity"]),
                "count": check_int("count", params.get("count", 1), 1)}

    def _candidate(self, kind: str, p: dict) -> tuple[np.ndarray, bool, list[float], tuple | None]:
        """State after the release, without touching ``self``."""
        entry = None
        sgm_rdp, pure = self._sgm_rdp, self._pure
        if kind == "dpsgd":
            entry = (p["noise_multiplier"], p["sample_rate"], p["steps"])
        elif kind == "gaussian":
            entry = (p["sigma_over_sensitivity"], 1.0, p["count"])
        else:
            pure = pure + [p["epsilon"]]
        if entry is not None:
            sgm_rdp = sgm_rdp + self._entry_rdp(*entry)
        has_sgm = bool(self.accountant.history) or entry is not None
        return sgm_rdp, has_sgm, pure, entry

    # -- public API ---------------------------------------------------------------------------
    def epsilon_spent(self, delta: float | None = None) -> float:
        r"""Epsilon of all releases so far at ``delta`` (the budget's delta when omitted)."""
        dlt = self.delta if delta is None else check_open_unit("delta", delta)
        return self._epsilon_of(self._sgm_rdp, bool(self.accountant.history), self._pure, dlt)

    def remaining(self) -> float:
        """Budget left at the budget's delta, ``epsilon - epsilon_spent()`` (>= 0)."""
        return max(self.epsilon - self.epsilon_spent(), 0.0)

    def rdp(self) -> np.ndarray:
        r"""The composed RDP curve :math:`\varepsilon_\alpha` at ``alphas`` (all releases)."""
        pure_rdp = sum((self._pure_rdp(e) for e in self._pure), np.zeros(self._alpha_arr.size))
        return self._sgm_rdp + pure_rdp

    def epsilon_if(self, kind: str, **params: Any) -> float:
        """Epsilon (at the budget's delta) that spending ``kind(**params)`` would lead to.

        ``kind`` is ``"dpsgd"`` (noise_multiplier, sample_rate, steps), ``"pure"`` (epsilon) or
        ``"gaussian"`` (sigma_over_sensitivity, count=1). Nothing is spent.
        """
        p = self._validated(kind, params)
        sgm_rdp, has_sgm, pure, _ = self._candidate(kind, p)
        return self._epsilon_of(sgm_rdp, has_sgm, pure, self.delta)

    def would_exceed(self, kind: str, **params: Any) -> bool:
        """True when the release would push epsilon above the budget (nothing is spent)."""
        return self.epsilon_if(kind, **params) > self.epsilon * (1.0 + 1e-12)

    def can_spend(self, kind: str, **params: Any) -> bool:
        """``not would_exceed(kind, **params)``."""
        return not self.would_exceed(kind, **params)

    def _spend(self, kind: str, params: dict, label: str) -> float:
        if not isinstance(label, str):
            raise ParameterError("label", label, "a string")
        p = self._validated(kind, params)
        sgm_rdp, has_sgm, pure, entry = self._candidate(kind, p)
        new_eps = self._epsilon_of(sgm_rdp, has_sgm, pure, self.delta)
        if new_eps > self.epsilon * (1.0 + 1e-12):
            desc = ", ".join(f"{k}={v!r}" for k, v in p.items())
            raise BudgetExceededError(
                f"participant {self.owner!r}: {kind}({desc}) would raise epsilon (delta="
                f"{self.delta:g}) from {self.epsilon_spent():.4g} to {new_eps:.4g}, above the budget "
                f"{self.epsilon:g}; the release was refused and nothing was spent")
        # commit only after the check passed: a refused call leaves the state untouched
        if entry is not None:
            self.accountant.history.append(entry)
        self._sgm_rdp, self._pure = sgm_rdp, pure
        self.releases.append(Release(kind, p, label, new_eps))
        return new_eps

    def spend_dpsgd(self, noise_multiplier: float, sample_rate: float, steps: int,
                    label: str = "") -> float:
        r"""Charge ``steps`` DP-SGD steps (noise multiplier :math:`z`, Poisson rate :math:`q`).

        Returns the epsilon spent after the release; raises :class:`BudgetExceededError` (state
        unchanged) if it would exceed the budget.
        """
        return self._spend("dpsgd", {"noise_multiplier": noise_multiplier,
                                     "sample_rate": sample_rate, "steps": steps}, label)

    def spend_pure(self, epsilon: float, label: str = "") -> float:
        r"""Charge one :math:`\varepsilon_0`-DP release (Laplace, report-noisy-max, exponential)."""
        return self._spend("pure", {"epsilon": epsilon}, label)

    def spend_gaussian(self, sigma_over_sensitivity: float, count: int = 1, label: str = "") -> float:
        r"""Charge ``count`` Gaussian releases with noise :math:`\sigma = z\,\Delta_2`."""
        return self._spend("gaussian", {"sigma_over_sensitivity": sigma_over_sensitivity,
                                        "count": count}, label)

    def state(self) -> dict:
        """A plain-data snapshot of the ledger (for records and equality checks)."""
        return {
            "owner": self.owner,
            "epsilon_budget": self.epsilon,
            "delta": self.delta,
            "sgm_history": [tuple(h) for h in self.accountant.history],
            "pure_epsilons": list(self._pure),
            "releases": [(r.kind, dict(r.params), r.label, r.epsilon_after) for r in self.releases],
            "epsilon_spent": self.epsilon_spent(),
            "accountant": "RDP (opacus.accountants.analysis.rdp) + basic composition for pure DP",
        }
