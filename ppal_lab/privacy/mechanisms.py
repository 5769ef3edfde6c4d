r"""Differential-privacy mechanisms: additive noise (Laplace, Gaussian) and private selection.

Unit of privacy: *record-level* — two data sets are neighbours when they differ in one record of one
participant. The caller states the sensitivity :math:`\Delta` of the released quantity with respect to
that neighbouring relation; the mechanisms only calibrate noise to it.

* :func:`laplace_mechanism` — :math:`f(D) + \mathrm{Lap}(\Delta_1/\varepsilon)`: pure
  :math:`\varepsilon`-DP for an L1 sensitivity :math:`\Delta_1`.
* :func:`gaussian_mechanism` — :math:`f(D) + \mathcal N(0, \sigma^2)` with :math:`\sigma` from
  :func:`~ppal_lab.privacy.accounting.gaussian_sigma`: :math:`(\varepsilon, \delta)`-DP for an L2
  sensitivity :math:`\Delta_2` (analytic calibration of Balle & Wang 2018 by default).
* :func:`exponential_mechanism` / :func:`report_noisy_max` — private selection of the index with a
  high score. Adding Gumbel noise of scale :math:`2\Delta/\varepsilon` and taking the arg-max samples
  index *i* with probability :math:`\propto \exp(\varepsilon s_i / (2\Delta))`, i.e. it *is* the
  exponential mechanism (McSherry & Talwar 2007), :math:`\varepsilon`-DP.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import special

from ppal_lab.compendium.errors import ParameterError, as_generator, check_int, check_positive
from ppal_lab.privacy.accounting import gaussian_sigma

__all__ = ["exponential_mechanism", "exponential_probabilities", "gaussian_mechanism",
           "laplace_mechanism", "report_noisy_max"]


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
