r"""A per-participant privacy budget that composes every release with Rényi DP and refuses overspending.

:class:`PrivacyBudget` composes every release of one participant with Rényi DP (Mironov 2017), using
Opacus's RDP analysis of the sampled Gaussian mechanism (the code path of
``opacus.accountants.RDPAccountant``) and the conversion to :math:`(\varepsilon, \delta)` of Balle et
al. (2020) that Opacus implements. Pure :math:`\varepsilon`-DP releases enter the RDP sum through
:math:`\varepsilon\text{-DP} \Rightarrow (\alpha, \min\{\varepsilon, \alpha\varepsilon^2/2\})\text{-RDP}`
(the first term is immediate from the definition, the second is Bun & Steinke 2016, Prop. 3.3:
:math:`\varepsilon`-DP implies :math:`\tfrac12\varepsilon^2`-zCDP). A release that would exceed the
budget raises :class:`BudgetExceededError`; each accepted one is a :class:`Release` in the ledger.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as _rdp

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_open_unit, check_positive
from ppal_lab.privacy.accounting import DEFAULT_ALPHAS, _check_dpsgd

__all__ = ["BudgetExceededError", "PrivacyBudget", "Release"]


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
