r"""Poisoning attacks of the field, on flat update vectors.

``f`` of the ``n`` clients are Byzantine: they send whatever hurts most. Every attack here returns the
``f`` vectors they send, given the ``n - f`` honest updates of the round (the strong, *omniscient*
adversary the papers assume: it sees the honest updates before it answers) or the updates the Byzantine
clients would have computed honestly (``own``).

* ``label_flip`` — updates trained on labels :math:`y \mapsto C-1-y` (Tolpegin et al. 2020);
* ``sign_flip`` — the negation of their own honest update (Li et al. 2019, RSA);
* ``gaussian`` — :math:`\mathcal N(0, \sigma^2 I)` noise (Blanchard et al. 2017);
* ``alie`` — :math:`\mu_j - z_{\max}\sigma_j` per coordinate (Baruch, Baruch & Goldberg 2019);
* ``ipm`` — :math:`-\epsilon\,\mu` (Xie, Koyejo & Gupta 2020);
* ``adaptive`` — :math:`\mu - \gamma\,\mathrm{sign}(\mu)`, with :math:`\gamma` tuned against the
  defence (Fang et al. 2020).

(:math:`\mu, \sigma`: coordinate-wise mean and standard deviation of the honest updates.)

*A little is enough* (ALIE) stays inside the spread of honest updates, so that distance- and
rank-based rules (Krum, median, trimmed mean) cannot tell it apart. The Byzantine clients need
:math:`s = \lfloor n/2 + 1\rfloor - f` honest clients on their far side to form a majority;
:math:`z_{\max} = \Phi^{-1}\big((n - s)/n\big)` is the deviation (in honest standard deviations) beyond
which fewer than :math:`s` honest values are expected to lie. (The side is a choice: here below the
mean, against the honest direction; byzfl's ``ALittleIsEnough`` adds :math:`\tau\sigma` instead.)

*Inner-product manipulation* (IPM) makes the inner product of the aggregate with the true mean
negative: FedAvg's aggregate :math:`\frac{(n-f)\mu - f\epsilon\mu}{n}` turns against :math:`\mu` as soon
as :math:`f\epsilon > n - f`.

The *adaptive* attack knows the defence (Fang et al. 2020, "full knowledge"): it searches the deviation
:math:`\gamma` along :math:`-\mathrm{sign}(\mu)` (halving from a large start, as Fang et al. do for Krum)
and keeps the one that moves the defence's aggregate furthest against :math:`\mu`. For Krum this is the
largest :math:`\gamma` for which Krum still picks the Byzantine vector.

:class:`ByzantineSites` mounts these attacks on the federated protocol: it wraps a site group
(:class:`~ppal_lab.federated.protocol.LocalSites` or Flower's
:class:`~ppal_lab.federated.flower_app.FlowerSites`), lets every site train, then replaces what the
``f`` Byzantine sites sent. The omniscient attacks (ALIE, IPM, adaptive) read the honest sites'
updates of the round before answering: the *collusion assumption* of the papers (the Byzantine sites
share what they learn, and see or estimate the honest updates). Label flipping is the exception: it
happens at the data (the Byzantine sites hold flipped labels) and the updates go out as trained.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from scipy import stats

from ppal_lab.compendium.errors import (ParameterError, as_generator, check_choice, check_int,
                                        check_positive, check_real)
from ppal_lab.federated.protocol import SiteGroupWrapper
from ppal_lab.federated.robust import RobustAggregate, aggregate, check_rule, check_updates

__all__ = [
    "ATTACKS",
    "ByzantineSites",
    "adaptive",
    "alie",
    "alie_z",
    "byzantine_updates",
    "damage",
    "flip_labels",
    "gaussian",
    "ipm",
    "sign_flip",
]

#: The attacks of :func:`byzantine_updates` (``none``: the Byzantine clients behave).
ATTACKS: tuple[str, ...] = ("none", "label_flip", "sign_flip", "gaussian", "alie", "ipm", "adaptive")


def flip_labels(y: Any, n_classes: int) -> np.ndarray:
    """Label flipping at the data level: class ``c`` becomes ``n_classes - 1 - c`` (0 <-> 1 for two
    classes). A Byzantine client trains on these labels and sends the resulting update honestly."""
    n_classes = check_int("n_classes", n_classes, 2)
    a = np.asarray(y)
    if a.ndim != 1 or a.dtype.kind not in "iu" or (a.size and (a.min() < 0 or a.max() >= n_classes)):
        raise ParameterError("y", f"array of dtype {a.dtype} and shape {a.shape}",
                             f"1-d integer class codes in [0, {n_classes - 1}]")
    return (n_classes - 1 - a).astype(a.dtype)


def sign_flip(own: Any) -> np.ndarray:
    """Each Byzantine client sends the negation of the update it computed honestly."""
    return -check_updates(own)


def gaussian(honest: Any, f: int, sigma: float, rng: Any) -> np.ndarray:
    r""":math:`f` vectors of independent :math:`\mathcal N(0, \sigma^2)` coordinates."""
    d = check_updates(honest).shape[1]
    return as_generator(rng).normal(0.0, check_positive("sigma", sigma), size=(check_int("f", f, 0), d))


def alie_z(n: int, f: int) -> float:
    r""":math:`z_{\max} = \Phi^{-1}((n - s)/n)` with :math:`s = \lfloor n/2 + 1\rfloor - f` (Baruch et al.
    2019, Algorithm 1); needs :math:`s \ge 1`, i.e. ``f <= n // 2``."""
    n = check_int("n", n, 2)
    f = check_int("f", f, 1, n // 2)
    s = n // 2 + 1 - f
    return float(stats.norm.ppf((n - s) / n))


def alie(honest: Any, f: int, n: int | None = None, z: float | None = None) -> np.ndarray:
    r"""*A little is enough*: all ``f`` Byzantine clients send :math:`\mu - z\sigma` (coordinate-wise
    mean and sample standard deviation of the honest updates); ``z`` defaults to :func:`alie_z` for
    ``n`` clients in all (default: honest + ``f``)."""
    H = check_updates(honest)
    f = check_int("f", f, 0)
    if H.shape[0] < 2:
        raise ParameterError("honest", f"{H.shape[0]} update", "at least 2 honest updates (a standard deviation)")
    if z is None:
        z = alie_z(H.shape[0] + f if n is None else n, max(f, 1))
    z = check_real("z", z, 0.0)
    b = H.mean(0) - z * H.std(0, ddof=1)
    return np.tile(b, (f, 1))


def ipm(honest: Any, f: int, epsilon: float = 0.5) -> np.ndarray:
    r"""Inner-product manipulation: all ``f`` Byzantine clients send :math:`-\epsilon\mu`."""
    H = check_updates(honest)
    return np.tile(-check_positive("epsilon", epsilon) * H.mean(0), (check_int("f", f, 0), 1))


def damage(aggregate_vector: Any, honest: Any) -> float:
    r"""How far an aggregate moved against the honest mean :math:`\mu`:
    :math:`\langle \mu - a, \mu\rangle / \lVert\mu\rVert` (positive = pushed backwards along the honest
    direction; 0 for the honest mean itself)."""
    H = check_updates(honest)
    mu = H.mean(0)
    a = np.asarray(aggregate_vector, dtype=np.float64).reshape(-1)
    norm = np.linalg.norm(mu)
    return float((mu - a) @ mu / norm) if norm > 0 else float(np.linalg.norm(mu - a))


def adaptive(honest: Any, f: int, rule: str, gamma_max: float = 1e3, steps: int = 40,
             **rule_params: Any) -> np.ndarray:
    r"""Fang et al. (2020)-style adaptive attack against the defence ``rule``: all ``f`` Byzantine
    clients send :math:`\mu - \gamma\,\mathrm{sign}(\mu)`, with :math:`\gamma` among
    ``gamma_max``, ``gamma_max / 2``, ... (``steps`` halvings) and 0 chosen to maximise
    :func:`damage` of :func:`~ppal_lab.federated.robust.aggregate` under ``rule``. The attacker knows
    the honest updates, the rule and ``f`` (full knowledge)."""
    H = check_updates(honest)
    f = check_int("f", f, 1)
    rule = check_rule(rule, H.shape[0] + f, f)[0]
    gamma_max = check_positive("gamma_max", gamma_max)
    steps = check_int("steps", steps, 1, 200)
    mu = H.mean(0)
    direction = np.sign(mu)
    best_gamma, best_damage = 0.0, -np.inf
    for gamma in [gamma_max / 2.0 ** k for k in range(steps)] + [0.0]:
        b = np.tile(mu - gamma * direction, (f, 1))
        hurt = damage(aggregate(np.vstack([H, b]), rule, f, **rule_params), H)
        if hurt > best_damage:
            best_gamma, best_damage = gamma, hurt
    return np.tile(mu - best_gamma * direction, (f, 1))


def byzantine_updates(attack: str, honest: Any, f: int, rng: Any = 0, *, own: Any = None,
                      rule: str = "fedavg", sigma: float = 1.0, epsilon: float = 0.5,
                      rule_params: dict | None = None) -> np.ndarray:
    """What the ``f`` Byzantine clients send under ``attack`` (one of :data:`ATTACKS`), shape ``(f, d)``.

    ``own`` are the updates the Byzantine clients computed on their own data (needed by ``none``,
    ``sign_flip`` and ``label_flip``: for the latter, computed on flipped labels, :func:`flip_labels`);
    ``rule`` and ``rule_params`` are the defence the ``adaptive`` attack targets; ``sigma`` is the
    Gaussian attack's scale, ``epsilon`` the IPM factor; ``rng`` draws the Gaussian noise."""
    attack = check_choice("attack", attack, ATTACKS)
    H = check_updates(honest)
    f = check_int("f", f, 0)
    if f == 0:
        return np.zeros((0, H.shape[1]))
    if attack in ("none", "label_flip", "sign_flip"):
        if own is None:
            raise ParameterError("own", None, f"the Byzantine clients' own updates for attack {attack!r}")
        O = check_updates(own)
        if O.shape != (f, H.shape[1]):
            raise ParameterError("own", f"array of shape {O.shape}", f"shape ({f}, {H.shape[1]})")
        return -O if attack == "sign_flip" else O
    if attack == "gaussian":
        return gaussian(H, f, sigma, rng)
    if attack == "alie":
        return alie(H, f)
    if attack == "ipm":
        return ipm(H, f, epsilon)
    return adaptive(H, f, rule, **(rule_params or {}))


class ByzantineSites(SiteGroupWrapper):
    """A site group whose sites ``byzantine`` mount ``attack`` (module docstring).

    Every site trains (:meth:`train` of the wrapped group); the updates (local model minus the global
    model) of the honest sites and of the Byzantine ones (``own``: what they computed honestly, on
    flipped labels for ``label_flip``) go to :func:`byzantine_updates`, whose rows replace the
    Byzantine sites' models. ``aggregator`` is the server's rule, which the adaptive attack targets
    with the rule's own parameters of the round (full knowledge). Per round, the Gaussian attack's
    scale is ``sigma_scale`` times the honest updates' standard deviation and the adaptive attack
    searches ``gamma`` from ``gamma_scale`` times their mean coordinate spread, in ``steps`` halvings.
    ``rng`` draws the Gaussian attack's noise. The other site-group methods pass through.
    """

    def __init__(self, sites: Any, byzantine: Sequence[int], attack: str, aggregator: RobustAggregate,
                 rng: Any = 0, *, sigma_scale: float = 10.0, gamma_scale: float = 10.0, steps: int = 8,
                 ipm_epsilon: float = 0.5) -> None:
        self.sites, self.attack = sites, check_choice("attack", attack, ATTACKS)
        self.byzantine = sorted({check_int("byzantine site", int(b), 0, len(sites) - 1) for b in byzantine})
        if len(self.byzantine) > len(sites) - 2:
            raise ParameterError("byzantine", len(self.byzantine),
                                 f"at most {len(sites) - 2} of {len(sites)} sites (2 honest for a spread)")
        self.aggregator, self.rng = aggregator, as_generator(rng)
        self.sigma_scale, self.gamma_scale = sigma_scale, gamma_scale
        self.steps, self.ipm_epsilon = steps, ipm_epsilon

    def train(self, params: torch.Tensor, t: int) -> list[torch.Tensor | None]:
        local = self.sites.train(params, t)
        if not self.byzantine:
            return local
        if any(v is None for v in local):
            raise RuntimeError(f"round {t}: a site sent no update; the attacks need every site's")
        g = params.detach().to(torch.float64).numpy()
        U = np.stack([v.detach().to(torch.float64).numpy() for v in local]) - g
        honest = np.delete(U, self.byzantine, axis=0)
        spread = float(honest.std(0).mean()) + 1e-12
        B = byzantine_updates(self.attack, honest, len(self.byzantine), self.rng, own=U[self.byzantine],
                              rule=self.aggregator.rule, sigma=self.sigma_scale * float(honest.std()) + 1e-12,
                              epsilon=self.ipm_epsilon,
                              rule_params={**self.aggregator.rule_params(), "steps": self.steps,
                                           "gamma_max": self.gamma_scale * spread})
        for b, row in zip(self.byzantine, B):
            local[b] = torch.as_tensor(g + row, dtype=local[b].dtype)
        return local
