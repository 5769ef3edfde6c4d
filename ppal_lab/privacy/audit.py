r"""Empirical privacy audits: distinguishing tests on neighbouring data sets.

A mechanism :math:`M` is :math:`(\varepsilon, \delta)`-DP only if every test that tries to tell
:math:`M(D)` from :math:`M(D')`, for neighbouring data sets :math:`D' = D \cup \{z\}` (one added
record, the *canary* :math:`z`), has false-positive and false-negative rates with

.. math:: \text{FPR} + e^{\varepsilon}\,\text{FNR} \ge 1 - \delta, \qquad
          \text{FNR} + e^{\varepsilon}\,\text{FPR} \ge 1 - \delta

(Kairouz et al. 2015). Running the mechanism many times on :math:`D` and on :math:`D'`, thresholding an
attack statistic and bounding both error rates from above with Clopper–Pearson intervals turns any
attack into a statistically valid **lower bound** on the :math:`\varepsilon` the mechanism really has
(Jagielski et al. 2020; Nasr et al. 2021):

.. math:: \hat\varepsilon_{\text{lb}} = \max\Big\{\ln\frac{1 - \delta - \overline{\text{FNR}}}{\overline{\text{FPR}}},\;
          \ln\frac{1 - \delta - \overline{\text{FPR}}}{\overline{\text{FNR}}}\Big\},

where the bars are one-sided upper confidence bounds at level :math:`1 - \alpha/2` each, so the bound
holds with probability at least :math:`1 - \alpha`. :func:`empirical_epsilon` picks the threshold on one
half of the trials and evaluates it on the other half, so the choice does not bias the bound.

A correct :math:`(\varepsilon, \delta)`-DP mechanism gives :math:`\hat\varepsilon_{\text{lb}} > \varepsilon`
with probability at most :math:`\alpha` (the audit's false-positive rate); a bound far above the
declared :math:`\varepsilon` is proof of a leak.

Trials
------
* :func:`seed_mechanism_scores` — seed 001's mechanism (:class:`ppal_lab.privacy.sparsity.SparsityAwareDP`) in
  three worst-case-style scenarios, fully vectorised over trials.
* :func:`opacus_dpsgd_scores` — Opacus's own DP-SGD (``DPDataLoader`` + ``GradSampleModule`` +
  ``DPOptimizer``). Many independent trials run inside *one* Opacus training: each trial is a
  *replica* with its own parameter row of an ``nn.Embedding`` and its own records; a record's gradient
  touches only its replica's row, so per-record clipping, Poisson sampling (independent per record)
  and the independent Gaussian noise on every coordinate are exactly those of separate runs.

The canary is a "Dirac" canary (Nasr et al. 2021): its gradient lies on a coordinate no other record
touches, and the loss is linear so its clipped gradient is the same at every step — the worst case the
DP-SGD analysis covers. The adversary sees every step's update (DP-SGD's threat model) and uses the
Neyman–Pearson likelihood-ratio statistic.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_open_unit, check_range
from ppal_lab.privacy.accounting import noise_multiplier_for, quiet_opacus
from ppal_lab.privacy.sparsity import SparsityAwareDP, density_noise_factors

__all__ = [
    "SCENARIOS",
    "AuditResult",
    "audit_table",
    "clopper_pearson_upper",
    "empirical_epsilon",
    "epsilon_from_rates",
    "opacus_dpsgd_scores",
    "seed_mechanism_scores",
]

#: Scenarios of :func:`seed_mechanism_scores`.
SCENARIOS: tuple[str, ...] = ("empty_batch", "density_noise", "rounds")


def _scores(name: str, x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or a.size < 4 or np.isnan(a).any():
        raise ParameterError(name, f"array of shape {a.shape}", "a 1-d array of >= 4 scores without NaN")
    return a


# ----------------------------------------------------------------------------------------------
# from error rates to epsilon
# ----------------------------------------------------------------------------------------------
def clopper_pearson_upper(k: Any, n: int, alpha: float) -> np.ndarray:
    r"""One-sided Clopper–Pearson upper bound at level :math:`1-\alpha` for ``k`` events in ``n``
    trials: the :math:`1-\alpha` quantile of Beta(k + 1, n - k); 1 when ``k = n``."""
    n = check_int("n", n, 1)
    a = check_open_unit("alpha", alpha)
    k = np.asarray(k, dtype=float)
    if np.any(k < 0) or np.any(k > n) or np.any(k != np.round(k)):
        raise ParameterError("k", k.tolist() if k.size < 10 else "an array", f"integers in [0, {n}]")
    safe = np.minimum(k, n - 1)
    return np.where(k >= n, 1.0, stats.beta.ppf(1.0 - a, safe + 1.0, n - safe))


def epsilon_from_rates(fpr: Any, fnr: Any, delta: float) -> np.ndarray:
    r"""The smallest :math:`\varepsilon \ge 0` compatible with the error rates under
    :math:`(\varepsilon, \delta)`-DP (both inequalities of the module docstring); ``inf`` when a rate is
    0 and the other leaves room."""
    d = check_range("delta", delta, 0, 1, high_open=True)
    fp = np.asarray(fpr, dtype=float)
    fn = np.asarray(fnr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.where(1 - d - fn > 0, np.log(np.maximum(1 - d - fn, 1e-300)) - np.log(fp), -np.inf)
        e2 = np.where(1 - d - fp > 0, np.log(np.maximum(1 - d - fp, 1e-300)) - np.log(fn), -np.inf)
    return np.maximum(np.maximum(e1, e2), 0.0)


@dataclass(frozen=True)
class AuditResult:
    """The outcome of one audit (rates on the evaluation half; bounds at level 1 - alpha)."""

    epsilon_lb: float
    threshold: float
    fpr: float
    fnr: float
    fpr_upper: float
    fnr_upper: float
    n_out: int
    n_in: int
    delta: float
    alpha: float

    def as_dict(self) -> dict:
        return asdict(self)


def empirical_epsilon(scores_out: Any, scores_in: Any, delta: float, alpha: float = 0.05,
                      rng: np.random.Generator | int = 0, max_thresholds: int = 2000) -> AuditResult:
    r"""Empirical :math:`\varepsilon` lower bound from attack scores (higher = "the canary is in").

    The trials of each world are split at random into halves. On the first halves, every candidate
    threshold :math:`\tau` (up to ``max_thresholds`` quantiles of the scores) gives the test
    "in iff score :math:`\ge \tau`"; the :math:`\tau` with the largest Clopper–Pearson bound is kept.
    On the second halves that single :math:`\tau` is evaluated: FPR and FNR with upper bounds at level
    :math:`1-\alpha/2` each, turned into :math:`\hat\varepsilon_{\text{lb}}` by
    :func:`epsilon_from_rates`. With probability :math:`\ge 1-\alpha` the mechanism's true
    :math:`\varepsilon` (at ``delta``) is at least the returned bound.

    Parameters
    ----------
    scores_out, scores_in : array_like
        Attack statistic on trials without (:math:`D`) and with (:math:`D'`) the canary, >= 4 each.
    delta : float
        :math:`\delta \in [0, 1)` of the guarantee being audited.
    alpha : float
        Total error probability of the two confidence bounds, in (0, 1).
    rng : numpy.random.Generator or int
        Draws the split.
    max_thresholds : int
        Candidate thresholds tried on the selection half.
    """
    s_out = _scores("scores_out", scores_out)
    s_in = _scores("scores_in", scores_in)
    d = float(check_range("delta", delta, 0, 1, high_open=True))
    a = check_open_unit("alpha", alpha)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(check_int("rng", rng, 0))
    m = check_int("max_thresholds", max_thresholds, 2)
    po, pi = gen.permutation(s_out.size), gen.permutation(s_in.size)
    sel_out, ev_out = np.sort(s_out[po[: s_out.size // 2]]), s_out[po[s_out.size // 2:]]
    sel_in, ev_in = np.sort(s_in[pi[: s_in.size // 2]]), s_in[pi[s_in.size // 2:]]

    pooled = np.concatenate([sel_out, sel_in])
    cand = np.unique(np.quantile(pooled, np.linspace(0, 1, m), method="nearest"))
    cand = np.concatenate([cand, np.nextafter(cand, np.inf)])  # thresholds just above each value
    fp = sel_out.size - np.searchsorted(sel_out, cand, side="left")   # out >= tau
    fn = np.searchsorted(sel_in, cand, side="left")                    # in < tau
    eps_sel = epsilon_from_rates(clopper_pearson_upper(fp, sel_out.size, a / 2),
                                 clopper_pearson_upper(fn, sel_in.size, a / 2), d)
    tau = float(cand[int(np.argmax(eps_sel))])

    k_fp = int(np.sum(ev_out >= tau))
    k_fn = int(np.sum(ev_in < tau))
    fp_u = float(clopper_pearson_upper(k_fp, ev_out.size, a / 2))
    fn_u = float(clopper_pearson_upper(k_fn, ev_in.size, a / 2))
    eps = float(epsilon_from_rates(fp_u, fn_u, d))
    return AuditResult(eps, tau, k_fp / ev_out.size, k_fn / ev_in.size, fp_u, fn_u, int(ev_out.size),
                       int(ev_in.size), d, a)


# ----------------------------------------------------------------------------------------------
# trials of seed 001's mechanism
# ----------------------------------------------------------------------------------------------
def seed_mechanism_scores(scenario: str, n_trials: int, epsilon: float, delta: float,
                          rng: np.random.Generator | int = 0, dim: int = 51, rounds: int = 100,
                          max_factor: float = 2.0, batch_records: int = 4,
                          n_labelled: int = 200) -> tuple[np.ndarray, np.ndarray]:
    r"""Attack scores on ``n_trials`` runs of the seed's mechanism without and with the canary.

    Batches are fixed (the seed's ``has_data_mask`` is per batch, e.g. per client). Per-record
    gradients are clipped to :math:`C = 1`; the canary's gradient is the unit vector :math:`e_0` and
    the adversary knows the other records' gradients (the usual DP adversary), so it subtracts them.

    * ``"empty_batch"`` — the canary is the only labelled record of its batch. Without it the batch
      releases an exact zero; with it, :math:`e_0 + \mathcal N(0, \sigma^2 I_{\text{dim}})`.
      Statistic: the norm of the release.
    * ``"density_noise"`` — the canary joins a batch of ``batch_records`` records from the densest
      region, while its own log density is the lowest of the ``n_labelled`` labelled records; the
      density rule (``max_factor`` :math:`r`) then lowers the batch's noise. Statistic: minus the
      squared norm of the release (the noise scale shows in all ``dim`` coordinates; the others'
      gradients are set to 0, which changes nothing since the adversary knows them).
    * ``"rounds"`` — the canary's batch always holds other records (noise is always added), and the
      batch is released in each of ``rounds`` rounds, each calibrated on its own as the seed does.
      Statistic: the sum over rounds of the release's :math:`e_0` coordinate minus the known part.

    Returns
    -------
    (scores_out, scores_in) : tuple of numpy.ndarray
        One statistic per trial, higher meaning "the canary is in".
    """
    check_choice("scenario", scenario, SCENARIOS)
    n = check_int("n_trials", n_trials, 4)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(check_int("rng", rng, 0))
    dim = check_int("dim", dim, 1)
    rounds = check_int("rounds", rounds, 1)
    m = check_int("batch_records", batch_records, 1)
    n_lab = check_int("n_labelled", n_labelled, m + 1)
    canary = np.zeros(dim)
    canary[0] = 1.0
    if scenario == "empty_batch":
        mech = SparsityAwareDP(epsilon, delta)
        out, _ = mech.release(np.zeros((n, dim)), np.zeros(n, dtype=bool), gen)
        inn, _ = mech.release(np.broadcast_to(canary, (n, dim)), np.ones(n, dtype=bool), gen)
        return np.linalg.norm(out, axis=1), np.linalg.norm(inn, axis=1)
    if scenario == "density_noise":
        mech = SparsityAwareDP(epsilon, delta, max_factor=max_factor)
        # Log densities of the labelled records: any continuous profile gives the same ranks. The
        # batch takes the m densest records; the canary is below the sparsest one.
        dens = np.sort(np.random.default_rng(12345).standard_normal(n_lab - 1))
        batch = dens[-m:]
        canary_density = dens[0] - 1.0
        f_out = density_noise_factors(batch.mean(), dens, max_factor)
        f_in = density_noise_factors(np.append(batch, canary_density).mean(),
                                     np.append(dens, canary_density), max_factor)
        ones = np.ones(n, dtype=bool)
        out, _ = mech.release(np.zeros((n, dim)), ones, gen, factors=np.full(n, f_out))
        inn, _ = mech.release(np.broadcast_to(canary, (n, dim)), ones, gen, factors=np.full(n, f_in))
        # The noise scale shows in every coordinate: score minus the squared norm of the release
        # (the known gradients are 0 here except the canary's unit vector, negligible against it).
        return -np.sum(out ** 2, axis=1), -np.sum(inn ** 2, axis=1)
    mech = SparsityAwareDP(epsilon, delta)
    ones = np.ones((n, rounds), dtype=bool)
    out, _ = mech.release(np.zeros((n, rounds, 1)), ones, gen)
    inn, _ = mech.release(np.ones((n, rounds, 1)), ones, gen)
    return out[..., 0].sum(axis=1), inn[..., 0].sum(axis=1)


# ----------------------------------------------------------------------------------------------
# trials of Opacus DP-SGD
# ----------------------------------------------------------------------------------------------
def _llr_poisson_gaussian(u: np.ndarray, q: float, z: float) -> np.ndarray:
    r"""Log-likelihood ratio of per-step statistics :math:`u_t` under
    :math:`(1-q)\mathcal N(0, z^2) + q\mathcal N(1, z^2)` against :math:`\mathcal N(0, z^2)`,
    summed over steps (last axis)."""
    shift = (2.0 * u - 1.0) / (2.0 * z * z)
    return np.logaddexp(math.log1p(-q) if q < 1 else -np.inf, math.log(q) + shift).sum(axis=-1)


def opacus_dpsgd_scores(epsilon: float, delta: float, sample_rate: float, steps: int, n_trials: int,
                        seed: int = 0, n_other: int = 4, replicas_per_run: int = 1000,
                        noise_multiplier: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    r"""Attack scores on ``n_trials`` runs of Opacus DP-SGD without and with a Dirac canary.

    Each replica holds ``n_other`` records whose clipped gradient is :math:`-e_1` and, in the "in"
    world, the canary with clipped gradient :math:`-e_0` (linear loss, per-record clip norm 1). DP-SGD
    runs ``steps`` steps with Poisson rate ``sample_rate`` and noise multiplier :math:`z` (from the RDP
    accountant for ``(epsilon, delta, sample_rate, steps)`` unless ``noise_multiplier`` is given, e.g.
    to audit a miscalibrated run), learning rate 1 and ``loss_reduction="mean"``. The adversary reads
    the canary coordinate of every step's update, rescales it to :math:`u_t = 1[\text{canary sampled}]
    + \mathcal N(0, z^2)` and scores the likelihood ratio of the two worlds.

    Returns
    -------
    (scores_out, scores_in, z)
    """
    import torch
    from opacus import GradSampleModule
    from opacus.data_loader import DPDataLoader
    from opacus.optimizers import DPOptimizer
    from torch.utils.data import TensorDataset

    eps = float(check_range("epsilon", epsilon, 0, math.inf, low_open=True, high_open=True))
    dlt = check_open_unit("delta", delta)
    q = float(check_range("sample_rate", sample_rate, 0, 1, low_open=True))
    T = check_int("steps", steps, 1)
    n = check_int("n_trials", n_trials, 4)
    seed = check_int("seed", seed, 0)
    n_other = check_int("n_other", n_other, 0)
    R = check_int("replicas_per_run", replicas_per_run, 2)
    R -= R % 2
    z = noise_multiplier_for(eps, dlt, q, T) if noise_multiplier is None else float(
        check_range("noise_multiplier", noise_multiplier, 0, math.inf, low_open=True, high_open=True))

    class Replicas(torch.nn.Module):
        def __init__(self, k: int):
            super().__init__()
            self.w = torch.nn.Embedding(k, 2)
            torch.nn.init.zeros_(self.w.weight)

        def forward(self, rep, x):
            return (self.w(rep) * x).sum(-1)

    out_scores, in_scores = [], []
    run = 0
    with quiet_opacus():
        while min(len(out_scores), len(in_scores)) < n:
            half = R // 2
            # replicas [0, half) hold the canary ("in"), [half, R) do not ("out")
            rep = np.concatenate([np.repeat(np.arange(R), n_other), np.arange(half)])
            x = np.zeros((rep.size, 2))
            x[: R * n_other, 1] = 10.0          # gradient norm 10 -> clipped to 1
            x[R * n_other:, 0] = 10.0
            data = TensorDataset(torch.as_tensor(rep), torch.as_tensor(x, dtype=torch.float32))
            g = torch.Generator().manual_seed(seed * 7919 + run)
            loader = DPDataLoader(data, sample_rate=q, generator=g)
            model = Replicas(R)
            gsm = GradSampleModule(model, loss_reduction="sum")
            expected = q * rep.size
            opt = DPOptimizer(torch.optim.SGD(gsm.parameters(), lr=1.0), noise_multiplier=z,
                              max_grad_norm=1.0, expected_batch_size=expected, loss_reduction="mean",
                              generator=torch.Generator().manual_seed(seed * 7919 + run + 10**6))
            u = np.empty((R, T))
            prev = model.w.weight.detach()[:, 0].double().numpy().copy()
            t = 0
            while t < T:
                for rb, xb in loader:
                    opt.zero_grad()
                    (-gsm(rb, xb).sum()).backward()
                    opt.step()
                    now = model.w.weight.detach()[:, 0].double().numpy().copy()
                    u[:, t] = (now - prev) * expected   # = 1[sampled] - noise/C
                    prev = now
                    t += 1
                    if t == T:
                        break
            scores = _llr_poisson_gaussian(u, q, z)
            in_scores.extend(scores[:half].tolist())
            out_scores.extend(scores[half:].tolist())
            run += 1
    return np.asarray(out_scores[:n]), np.asarray(in_scores[:n]), z


def audit_table(epsilon: float, delta: float, n_trials: int, seed: int = 0, alpha: float = 0.05,
                opacus_sample_rate: float = 0.1, opacus_steps: int = 20, rounds: int = 100,
                max_factor: float = 2.0, dim: int = 51):
    """Audit the seed's mechanism (three scenarios) and Opacus DP-SGD at the same declared
    ``(epsilon, delta)``, plus a control: Opacus run with a tenth of the noise multiplier it needs.

    Returns ``(table, scores)``: a ``pandas.DataFrame`` with one row per audit (declared epsilon,
    trials per world, FPR/FNR on the evaluation half, their upper bounds, the empirical epsilon lower
    bound at level ``1 - alpha`` and whether it exceeds the declared epsilon), and the raw scores by
    row name for plotting.
    """
    import pandas as pd

    eps = float(check_range("epsilon", epsilon, 0, math.inf, low_open=True, high_open=True))
    dlt = check_open_unit("delta", delta)
    n = check_int("n_trials", n_trials, 4)
    seed = check_int("seed", seed, 0)
    gen = np.random.default_rng(seed)
    scores, rows = {}, []
    labels = {"empty_batch": "seed: empty batch released as exact zero",
              "density_noise": "seed: density-adaptive noise (sparse canary)",
              "rounds": f"seed: {rounds} rounds, each calibrated alone"}
    for sc in SCENARIOS:
        scores[labels[sc]] = seed_mechanism_scores(sc, n, eps, dlt, gen, dim=dim, rounds=rounds,
                                                   max_factor=max_factor)
    z = noise_multiplier_for(eps, dlt, opacus_sample_rate, opacus_steps)
    o, i, _ = opacus_dpsgd_scores(eps, dlt, opacus_sample_rate, opacus_steps, n, seed=seed)
    scores[f"Opacus DP-SGD (q={opacus_sample_rate:g}, T={opacus_steps}, z={z:.2f})"] = (o, i)
    o, i, _ = opacus_dpsgd_scores(eps, dlt, opacus_sample_rate, opacus_steps, n, seed=seed + 1,
                                  noise_multiplier=z / 10)
    scores[f"control: Opacus with z/10 = {z / 10:.2f}"] = (o, i)
    for name, (o, i) in scores.items():
        res = empirical_epsilon(o, i, dlt, alpha, gen)
        rows.append({"audit": name, "declared_epsilon": eps, "trials_per_world": n,
                     "fpr": res.fpr, "fnr": res.fnr, "fpr_upper": res.fpr_upper,
                     "fnr_upper": res.fnr_upper, "epsilon_lb": res.epsilon_lb,
                     "exceeds_declared": bool(res.epsilon_lb > eps)})
    return pd.DataFrame(rows), scores
