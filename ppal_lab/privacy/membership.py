r"""Membership inference: does the trained model tell its training records from others?

Seed 000 adds "gradient clipping and noise addition to prevent membership inference". This module
measures whether it does, end to end: train a model, attack it, and compare the attack's success with
what differential privacy allows.

**The game** (Yeom et al. 2018; Humphries et al. 2020). Each record of a target pool joins the
training set independently with probability 1/2. The attacker gets the trained model and a record and
guesses "member". Its *advantage* is :math:`\text{TPR} - \text{FPR}`.

**The attack** (shadow-model loss threshold; Shokri et al. 2017, Yeom et al. 2018). Members tend to
have a lower loss. The attacker holds its own records from the same population, trains ``n_shadow``
shadow models with the same recipe on random halves of them, and picks the loss threshold :math:`\tau`
that separates the shadow members from the shadow non-members best. On the target model it predicts
"member" iff :math:`\text{loss} \le \tau`. The threshold never sees the target's members, so the rates
measured on the target are unbiased, and Clopper–Pearson intervals bound them.

**What DP implies.** If training is :math:`(\varepsilon, \delta)`-DP with respect to one record, every
attack satisfies :math:`\text{TPR} \le e^{\varepsilon}\,\text{FPR} + \delta` and
:math:`1 - \text{FPR} \le e^{\varepsilon}(1 - \text{TPR}) + \delta` (Kairouz et al. 2015), hence

.. math:: \text{TPR} - \text{FPR} \le \frac{e^{\varepsilon} - 1 + 2\delta}{e^{\varepsilon} + 1}

(:func:`dp_advantage_bound`; Humphries et al. 2020) and, at a given FPR, the TPR bound of
:func:`dp_tpr_bound`. At :math:`\varepsilon = 1` the advantage is at most 0.46, at
:math:`\varepsilon = 8` at most 0.9993: a loose promise, which is why the measured advantage is the
number to look at.

**The audit** (:func:`membership_audit`) takes a *training recipe*: any function ``train(X, y, seed)``
returning the per-record loss function of the model it trained. :func:`dpsgd_trainer` is one recipe: a
small MLP trained by Opacus's DP-SGD (``PrivacyEngine.make_private``: Poisson sampling, per-record
clipping, Gaussian noise; noise multiplier from the RDP accountant for the target
:math:`(\varepsilon, \delta)`), or by plain SGD for :math:`\varepsilon = \infty`. A federated protocol
plugs in the same way (chapter 10 audits the model its federated protocol trains), which makes the
audit one of the whole protocol rather than of one mechanism.
A measured advantage above the bound (beyond sampling error) is proof of a broken guarantee; one below
it proves nothing about the guarantee, only about this attack.

**A second attack: offline LiRA** (Carlini et al. 2022, the likelihood-ratio attack without shadow
models trained on the target records). The score of a record is its *logit-scaled confidence*
:math:`\phi = \log\frac{p_y}{1 - p_y}` (:math:`p_y = e^{-\text{loss}}`), which is close to Gaussian
across training runs. The shadow models never saw the target records, so their :math:`\phi` on a
target record estimate its *out* distribution: mean :math:`\mu_x` per record and, with few shadow
models, one pooled standard deviation :math:`\sigma` (the paper's fixed-variance variant; estimated from
the median absolute deviation, so that a few records with wild shadow scores do not inflate it). The target
model's record is called a member when :math:`(\phi_x - \mu_x)/\sigma > \Phi^{-1}(1 - \text{FPR})`,
a one-sided test of nominal level ``fpr_target`` fixed before the target is seen, so its rates are
unbiased as well (its real false-positive rate is somewhat higher, since :math:`\mu_x` is itself an
estimate from few models: about 0.15 for a nominal 0.1 with two shadow models). Where the loss threshold compares records with each other, LiRA compares
each record with itself under models that did not train on it, which removes the per-record
difficulty.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
from scipy import stats

from ppal_lab.compendium.errors import (ParameterError, check_int, check_labels, check_matrix, check_open_unit,
                                        check_positive, check_range)
from ppal_lab.privacy.accounting import noise_multiplier_for, quiet_opacus
from ppal_lab.privacy.audit import clopper_pearson_upper, epsilon_from_rates

__all__ = [
    "LossFunction",
    "MembershipAudit",
    "Trainer",
    "dp_advantage_bound",
    "dp_tpr_bound",
    "dpsgd_trainer",
    "logit_confidence",
    "membership_audit",
]

#: Per-record losses of a trained model: ``loss(X, y) -> array of shape (n,)``.
LossFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: A training recipe: ``train(X, y, seed) -> LossFunction``.
Trainer = Callable[[np.ndarray, np.ndarray, int], LossFunction]


def dp_advantage_bound(epsilon: float, delta: float = 0.0) -> float:
    r"""The largest membership advantage :math:`\text{TPR} - \text{FPR}` an
    :math:`(\varepsilon, \delta)`-DP training allows: :math:`(e^\varepsilon - 1 + 2\delta)/(e^\varepsilon + 1)`
    (1 for :math:`\varepsilon = \infty`)."""
    eps = float(check_range("epsilon", epsilon, 0))
    d = float(check_range("delta", delta, 0, 1, high_open=True))
    if math.isinf(eps):
        return 1.0
    return min(1.0, (math.expm1(eps) + 2 * d) / (math.exp(eps) + 1))


def dp_tpr_bound(fpr: float, epsilon: float, delta: float = 0.0) -> float:
    r"""The largest TPR at false-positive rate ``fpr`` under :math:`(\varepsilon, \delta)`-DP:
    :math:`\min\{1,\ e^\varepsilon\,\text{FPR} + \delta,\ 1 - e^{-\varepsilon}(1 - \delta - \text{FPR})\}`."""
    a = float(check_range("fpr", fpr, 0, 1))
    eps = float(check_range("epsilon", epsilon, 0))
    d = float(check_range("delta", delta, 0, 1, high_open=True))
    if math.isinf(eps):
        return 1.0
    return float(min(1.0, math.exp(eps) * a + d, 1.0 - math.exp(-eps) * (1.0 - d - a)))


def dpsgd_trainer(epsilon: float, delta: float = 1e-5, *, epochs: int = 60, batch_size: int = 20,
                  lr: float = 0.5, clip_norm: float = 1.0, hidden: int = 64) -> Trainer:
    r"""A training recipe: a one-hidden-layer MLP (``hidden`` ReLU units) trained for ``epochs`` epochs
    with learning rate ``lr``. For finite ``epsilon``: Opacus DP-SGD with sample rate
    ``batch_size / n``, per-record clipping to ``clip_norm`` and the noise multiplier that reaches
    :math:`(\varepsilon, \delta)` after all steps (RDP accountant). For ``epsilon = inf``: plain
    minibatch SGD, no clipping, no noise (the non-private model)."""
    eps = float(check_range("epsilon", epsilon, 0, low_open=True))
    dlt = check_open_unit("delta", delta)
    epochs = check_int("epochs", epochs, 1, 100_000)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_positive("lr", lr)
    clip_norm = check_positive("clip_norm", clip_norm)
    hidden = check_int("hidden", hidden, 1, 100_000)

    def train(X: np.ndarray, y: np.ndarray, seed: int) -> LossFunction:
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader, TensorDataset

        n, n_classes = X.shape[0], int(y.max()) + 1
        q = min(1.0, batch_size / n)
        steps = max(1, int(round(epochs / q)))
        with torch.random.fork_rng(devices=[]):       # every draw from `seed`; the caller's RNG untouched
            torch.manual_seed(seed)
            model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(hidden, max(n_classes, 2)))
            data = TensorDataset(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y))
            loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                                generator=torch.Generator().manual_seed(seed))
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            if math.isfinite(eps):
                z = noise_multiplier_for(eps, dlt, q, steps)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Secure RNG turned off")
                    engine = PrivacyEngine()
                model, opt, loader = engine.make_private(
                    module=model, optimizer=opt, data_loader=loader, noise_multiplier=z,
                    max_grad_norm=clip_norm, noise_generator=torch.Generator().manual_seed(seed + 1))
            loss_fn = torch.nn.CrossEntropyLoss()
            with quiet_opacus():
                t = 0
                while t < steps:
                    for xb, yb in loader:
                        if xb.shape[0]:
                            opt.zero_grad()
                            loss_fn(model(xb), yb).backward()
                            opt.step()
                        t += 1
                        if t == steps:
                            break
        model.eval()

        def losses(Xe: np.ndarray, ye: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                logits = model(torch.as_tensor(Xe, dtype=torch.float32))
                out = torch.nn.functional.cross_entropy(logits, torch.as_tensor(ye), reduction="none")
            return out.double().numpy()

        return losses

    return train


@dataclass(frozen=True)
class MembershipAudit:
    """The outcome of one membership audit; rates on the target model, bounds at level ``1 - alpha``.

    ``advantage_lower`` is a lower confidence bound on TPR - FPR; ``advantage_bound`` what DP at
    ``epsilon`` allows (1 when ``epsilon`` is infinite); ``epsilon_lb`` the :math:`\\varepsilon` the
    measured rates prove (:func:`ppal_lab.privacy.audit.epsilon_from_rates` on the upper bounds of FPR
    and FNR). ``tpr_low``/``fpr_low`` are the rates at the threshold with ``fpr_target`` on the shadow
    models, ``tpr_low_bound`` the TPR DP allows at the measured ``fpr_low``."""

    epsilon: float
    delta: float
    threshold: float
    tpr: float
    fpr: float
    advantage: float
    advantage_lower: float
    advantage_bound: float
    epsilon_lb: float
    fpr_target: float
    tpr_low: float
    fpr_low: float
    tpr_low_bound: float
    n_members: int
    n_nonmembers: int
    shadow_advantage: float
    alpha: float
    lira_tpr: float = math.nan
    lira_fpr: float = math.nan
    lira_advantage: float = math.nan
    lira_advantage_lower: float = math.nan

    def as_dict(self) -> dict:
        return asdict(self)


def logit_confidence(loss: Any) -> np.ndarray:
    r"""LiRA's score from a cross-entropy loss: :math:`\log\frac{p}{1-p}` with :math:`p = e^{-\text{loss}}`
    (computed as :math:`-\text{loss} - \log(-\mathrm{expm1}(-\text{loss}))`, exact for small losses).
    Losses below ``1e-7`` count as ``1e-7``: a float32 loss that small is rounding (it reads 0 once
    :math:`1 - p` is below float32's resolution), so the score is capped at about 16."""
    loss = np.maximum(np.asarray(loss, dtype=np.float64), 1e-7)
    return -loss - np.log(-np.expm1(-loss))


def _best_threshold(loss_in: np.ndarray, loss_out: np.ndarray) -> tuple[float, float]:
    """The threshold tau maximising P(in <= tau) - P(out <= tau), and that advantage."""
    cand = np.unique(np.concatenate([loss_in, loss_out]))
    tpr = np.searchsorted(np.sort(loss_in), cand, side="right") / loss_in.size
    fpr = np.searchsorted(np.sort(loss_out), cand, side="right") / loss_out.size
    k = int(np.argmax(tpr - fpr))
    return float(cand[k]), float(tpr[k] - fpr[k])


def membership_audit(train: Trainer, X_target: Any, y_target: Any, X_shadow: Any, y_shadow: Any, *,
                     epsilon: float, delta: float = 0.0, n_shadow: int = 4, fpr_target: float = 0.1,
                     alpha: float = 0.05, seed: int = 0) -> MembershipAudit:
    r"""Shadow-model loss-threshold membership inference against the model ``train`` makes.

    Each record of ``X_target`` joins the target's training set with probability 1/2 (drawn from
    ``seed``); the attacker calibrates its threshold on ``n_shadow`` shadow models trained by the same
    recipe on random halves of ``X_shadow`` (its own records) and is scored on all target records.

    Parameters
    ----------
    train : callable
        The training recipe, ``train(X, y, seed) -> loss(X, y)`` (e.g. :func:`dpsgd_trainer`).
    X_target, y_target, X_shadow, y_shadow : array_like
        Two disjoint samples of one population (>= 20 records each), integer labels.
    epsilon, delta : float
        The guarantee ``train`` claims (``inf`` for none): only used for the bounds.
    fpr_target : float
        The false-positive rate, on the shadow models, of the low-FPR threshold.
    alpha : float
        Total error probability of the confidence bounds (two-sided: alpha/2 per rate).
    """
    Xt = check_matrix("X_target", X_target)
    Xs = check_matrix("X_shadow", X_shadow, n_cols=Xt.shape[1])
    yt = check_labels("y_target", y_target, Xt.shape[0])
    ys = check_labels("y_shadow", y_shadow, Xs.shape[0])
    if min(Xt.shape[0], Xs.shape[0]) < 20:
        raise ParameterError("X_target", f"{Xt.shape[0]} and {Xs.shape[0]} records", ">= 20 records each")
    eps = float(check_range("epsilon", epsilon, 0, low_open=True))
    dlt = float(check_range("delta", delta, 0, 1, high_open=True))
    n_shadow = check_int("n_shadow", n_shadow, 1, 100)
    fpr_target = check_open_unit("fpr_target", fpr_target)
    a = check_open_unit("alpha", alpha)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)

    # shadow models: the attacker's calibration (and LiRA's out-distribution of every target record)
    s_in, s_out, phi_out = [], [], []
    for k in range(n_shadow):
        member = rng.random(Xs.shape[0]) < 0.5
        shadow = train(Xs[member], ys[member], seed * 1000 + k + 1)
        loss = shadow(Xs, ys)
        s_in.append(loss[member])
        s_out.append(loss[~member])
        phi_out.append(logit_confidence(shadow(Xt, yt)))
    l_in, l_out = np.concatenate(s_in), np.concatenate(s_out)
    tau, shadow_adv = _best_threshold(l_in, l_out)
    tau_low = float(np.quantile(l_out, fpr_target, method="lower"))

    # the target model
    member = rng.random(Xt.shape[0]) < 0.5
    if member.sum() < 2 or (~member).sum() < 2:
        raise ParameterError("X_target", f"{Xt.shape[0]} records", "enough records for members and non-members")
    loss = train(Xt[member], yt[member], seed * 1000)(Xt, yt)
    t_in, t_out = loss[member], loss[~member]
    k_tp, k_fp = int(np.sum(t_in <= tau)), int(np.sum(t_out <= tau))
    n_in, n_out = t_in.size, t_out.size
    fpr_u = float(clopper_pearson_upper(k_fp, n_out, a / 2))
    fnr_u = float(clopper_pearson_upper(n_in - k_tp, n_in, a / 2))
    tpr, fpr = k_tp / n_in, k_fp / n_out
    fpr_low = float(np.mean(t_out <= tau_low))
    fpr_low_u = float(clopper_pearson_upper(int(np.sum(t_out <= tau_low)), n_out, a / 2))
    lira = _offline_lira(np.array(phi_out), logit_confidence(loss), member, fpr_target, a)
    return MembershipAudit(
        epsilon=eps, delta=dlt, threshold=tau, tpr=tpr, fpr=fpr, advantage=tpr - fpr,
        advantage_lower=(1.0 - fnr_u) - fpr_u, advantage_bound=dp_advantage_bound(eps, dlt),
        epsilon_lb=float(epsilon_from_rates(fpr_u, fnr_u, dlt)), fpr_target=fpr_target,
        tpr_low=float(np.mean(t_in <= tau_low)), fpr_low=fpr_low,
        tpr_low_bound=dp_tpr_bound(fpr_low_u, eps, dlt), n_members=int(n_in), n_nonmembers=int(n_out),
        shadow_advantage=shadow_adv, alpha=a, **lira)


def _offline_lira(phi_out: np.ndarray, phi: np.ndarray, member: np.ndarray, fpr_target: float,
                  alpha: float) -> dict:
    """Offline LiRA with a pooled variance: the rates on the target at the one-sided test of level
    ``fpr_target`` (module docstring); ``phi_out`` has one row per shadow model."""
    if phi_out.shape[0] < 2:
        return {}
    k = phi_out.shape[0]
    mu = phi_out.mean(0)
    # pooled and robust: phi_k - mu ~ N(0, sigma^2 (1 - 1/k)), whose median absolute value is
    # 0.6745 sigma sqrt(1 - 1/k); a few records with wildly different shadow scores do not inflate it
    sigma = float(np.median(np.abs(phi_out - mu)) / (stats.norm.ppf(0.75) * np.sqrt(1.0 - 1.0 / k)))
    called = (phi - mu) / max(sigma, 1e-12) > stats.norm.ppf(1.0 - fpr_target)
    n_in, n_out = int(member.sum()), int((~member).sum())
    k_tp, k_fp = int(called[member].sum()), int(called[~member].sum())
    fnr_u = float(clopper_pearson_upper(n_in - k_tp, n_in, alpha / 2))
    fpr_u = float(clopper_pearson_upper(k_fp, n_out, alpha / 2))
    return {"lira_tpr": k_tp / n_in, "lira_fpr": k_fp / n_out, "lira_advantage": k_tp / n_in - k_fp / n_out,
            "lira_advantage_lower": (1.0 - fnr_u) - fpr_u}
