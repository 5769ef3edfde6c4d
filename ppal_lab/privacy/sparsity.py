r"""Seed 001's "sparsity-aware" differential privacy, as it is defined, next to DP-SGD (Opacus).

The seed's mechanism
--------------------
Seed 001's ``SparsityAwareDPOptimizer.add_noise`` takes one gradient per batch and a mask saying which
batches contain labelled data. A batch with data gets Gaussian noise of standard deviation

.. math:: \sigma_{\text{seed}} = \Delta\,\sqrt{2 \ln(1.25/\delta)}\,/\,\varepsilon

(the classical calibration of one Gaussian release, Dwork & Roth 2014, Thm A.1, proved for
:math:`\varepsilon < 1`); an **empty batch releases an exact zero, without noise**. The seed also
describes, in words only, noise that adapts to the local density of the data — more noise where the
data are dense, less where they are sparse. :class:`SparsityAwareDP` implements both; the density rule
has to be made concrete, and we use a scale-free one:

.. math:: f_b = r^{\,2F(\bar\ell_b) - 1} \in [1/r,\, r],

where :math:`\bar\ell_b` is the mean log density of the batch's labelled records, :math:`F` the
empirical distribution function of the labelled records' log densities and :math:`r` = ``max_factor``:
a batch as dense as the median record gets :math:`\sigma_{\text{seed}}`, the densest up to
:math:`r\sigma_{\text{seed}}`, the sparsest down to :math:`\sigma_{\text{seed}}/r`.

The seed never clips gradients, so its ``sensitivity=1.0`` is an assumption, not a property. We clip
every per-record gradient to L2 norm :math:`C` (= the sensitivity of a batch's gradient *sum* under
adding or removing one record), the most favourable reading.

What it guarantees
------------------
Nothing finite. When a record is the only labelled one of its batch, removing it turns a noisy
release into an exact zero, so the two neighbouring data sets are told apart with certainty: no
:math:`\varepsilon < \infty` holds for any :math:`\delta` below the probability of that event
(:mod:`ppal_lab.privacy.audit` measures it). The density rule makes it worse in a second way: the noise scale
itself is a function of the data, and records in sparse regions — the most identifiable ones — get the
least noise. The per-step calibration also ignores composition over steps.

The correct variant is DP-SGD (Abadi et al. 2016) as Opacus implements it: Poisson sampling of records
with rate :math:`q`, per-record clipping to :math:`C`, noise :math:`\mathcal N(0, z^2C^2)` added at
**every** step (empty batches included), and :math:`z` from an accountant for the target
:math:`(\varepsilon, \delta)` over :math:`T` steps (:func:`ppal_lab.privacy.noise_multiplier_for`, RDP).

Training
--------
:func:`train_private_logreg` trains one logistic regression with each mechanism through the same
Opacus machinery (``DPDataLoader`` Poisson sampling, ``GradSampleModule`` per-record gradients,
``DPOptimizer`` clipping and scaling): only the noise rule differs, and the noise actually drawn at
every step is recorded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ppal_lab.compendium.errors import ParameterError, as_generator, check_choice, check_int, check_open_unit, check_positive, check_range
from ppal_lab.privacy.accounting import dpsgd_epsilon, gaussian_sigma, noise_multiplier_for, quiet_opacus

__all__ = [
    "MECHANISMS",
    "PrivateFit",
    "SparsityAwareDP",
    "clip_rows",
    "compare_mechanisms",
    "density_noise_factors",
    "empty_batch_probability",
    "noise_comparison",
    "seed_noise_std",
    "train_private_logreg",
]

#: Training mechanisms of :func:`train_private_logreg`.
MECHANISMS: tuple[str, ...] = ("nonprivate", "dpsgd", "seed", "seed_density")


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------
# the seed's mechanism
# ----------------------------------------------------------------------------------------------
def seed_noise_std(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    r"""The seed's per-batch noise, :math:`\Delta\sqrt{2\ln(1.25/\delta)}/\varepsilon`.

    Equal to :func:`ppal_lab.privacy.accounting.gaussian_sigma` with ``method="classical"`` for
    :math:`\varepsilon < 1`; computed for any :math:`\varepsilon > 0` because the seed uses it at
    :math:`\varepsilon = 1` too (where the classical theorem no longer applies).
    """
    eps = check_positive("epsilon", epsilon)
    dlt = check_open_unit("delta", delta)
    sens = check_positive("sensitivity", sensitivity)
    if eps < 1.0:
        return gaussian_sigma(sens, eps, dlt, method="classical")
    return sens * math.sqrt(2.0 * math.log(1.25 / dlt)) / eps


def density_noise_factors(batch_log_density: Any, record_log_density: Any,
                          max_factor: float = 2.0) -> np.ndarray:
    r"""The density rule: :math:`f = r^{2F(\bar\ell) - 1}`, see the module docstring.

    Parameters
    ----------
    batch_log_density : array_like
        Mean log density :math:`\bar\ell_b` of each batch's labelled records.
    record_log_density : array_like of shape (n,)
        Log densities of all labelled records (defines the empirical distribution function
        :math:`F(t) = \#\{i : \ell_i \le t\} / n`).
    max_factor : float
        :math:`r \ge 1`; ``1`` switches the rule off (every factor is 1).

    Returns
    -------
    numpy.ndarray
        Factors in :math:`[1/r, r]`, same shape as ``batch_log_density``.
    """
    b = np.asarray(batch_log_density, dtype=float)
    ref = np.sort(np.asarray(record_log_density, dtype=float).ravel())
    r = float(check_range("max_factor", max_factor, 1.0, math.inf, high_open=True))
    if ref.size == 0 or not np.all(np.isfinite(ref)):
        raise ParameterError("record_log_density", "an empty or non-finite array",
                             "a non-empty array of finite log densities")
    if not np.all(np.isfinite(b)):
        raise ParameterError("batch_log_density", "non-finite values", "finite log densities")
    F = np.searchsorted(ref, b, side="right") / ref.size
    return r ** (2.0 * F - 1.0)


def clip_rows(G: Any, clip_norm: float) -> np.ndarray:
    """Scale each row (last axis) of ``G`` to L2 norm at most ``clip_norm`` (Opacus's flat clipping)."""
    A = np.asarray(G, dtype=float)
    C = check_positive("clip_norm", clip_norm)
    norms = np.linalg.norm(A, axis=-1, keepdims=True)
    return A * np.minimum(1.0, C / np.maximum(norms, 1e-300))


class SparsityAwareDP:
    r"""Seed 001's mechanism on per-batch gradient sums (vectorised over any leading axes).

    Parameters
    ----------
    epsilon, delta : float
        The per-release target the seed calibrates to, :math:`\varepsilon > 0`,
        :math:`\delta \in (0, 1)`.
    clip_norm : float
        :math:`C`: per-record clipping norm, hence the sensitivity of a batch sum.
    max_factor : float
        :math:`r` of the density rule (``1`` = no density adaptation).

    Examples
    --------
    >>> mech = SparsityAwareDP(epsilon=0.5, delta=1e-5)
    >>> noisy, std = mech.release(np.ones((3, 4)), np.array([True, False, True]), rng=0)
    >>> bool((noisy[1] == 0).all()), float(std[1])
    (True, 0.0)
    """

    def __init__(self, epsilon: float, delta: float, clip_norm: float = 1.0, max_factor: float = 1.0):
        self.epsilon = check_positive("epsilon", epsilon)
        self.delta = check_open_unit("delta", delta)
        self.clip_norm = check_positive("clip_norm", clip_norm)
        self.max_factor = float(check_range("max_factor", max_factor, 1.0, math.inf, high_open=True))
        self.sigma = seed_noise_std(self.epsilon, self.delta, self.clip_norm)

    def noise_std(self, has_data: Any, factors: Any = None) -> np.ndarray:
        """Noise standard deviation of each batch: ``sigma * factor`` with data, 0 without."""
        mask = np.asarray(has_data)
        if mask.dtype != bool:
            raise ParameterError("has_data", f"array of dtype {mask.dtype}", "a boolean array")
        f = np.ones(mask.shape) if factors is None else np.broadcast_to(
            np.asarray(factors, dtype=float), mask.shape)
        if self.max_factor == 1.0 and factors is not None and not np.allclose(f, 1.0):
            raise ParameterError("factors", "factors != 1", "all 1 when max_factor == 1")
        if np.any(~np.isfinite(f)) or np.any(f <= 0):
            raise ParameterError("factors", "non-positive or non-finite values", "finite values > 0")
        return np.where(mask, self.sigma * f, 0.0)

    def release(self, grad_sums: Any, has_data: Any, rng: np.random.Generator | int,
                factors: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Noisy batch gradients: ``grad + N(0, std^2 I)`` where a batch has data, exact zeros where not.

        ``grad_sums`` has shape ``has_data.shape + (d,)`` (sums of clipped per-record gradients).
        Returns ``(noisy, std)``.
        """
        G = np.asarray(grad_sums, dtype=float)
        std = self.noise_std(has_data, factors)
        if G.shape[:-1] != std.shape:
            raise ParameterError("grad_sums", f"array of shape {G.shape}",
                                 f"shape {std.shape + ('d',)} to match has_data")
        gen = as_generator(rng)
        noisy = G + gen.standard_normal(G.shape) * std[..., None]
        return np.where(std[..., None] > 0, noisy, 0.0), std


# ----------------------------------------------------------------------------------------------
# noise bookkeeping at equal (epsilon, delta), sampling rate and steps
# ----------------------------------------------------------------------------------------------
def empty_batch_probability(sample_rate: float, n_labelled: int) -> float:
    r"""Probability that a Poisson-sampled batch holds no labelled record, :math:`(1 - q)^{n_L}`."""
    q = float(check_range("sample_rate", sample_rate, 0, 1, low_open=True))
    n = check_int("n_labelled", n_labelled, 1)
    return float((1.0 - q) ** n)


def noise_comparison(epsilon: float, delta: float, sample_rate: float, steps: int, n_labelled: int,
                     clip_norm: float = 1.0) -> dict[str, float]:
    r"""Expected noise of the seed's mechanism and of DP-SGD at the same declared
    :math:`(\varepsilon, \delta)`, sampling rate :math:`q` and number of steps :math:`T`.

    Per coordinate and step, the seed adds variance :math:`\sigma_{\text{seed}}^2` on the expected
    fraction :math:`1 - (1-q)^{n_L}` of non-empty steps; DP-SGD adds :math:`(zC)^2` on every step,
    with :math:`z` from the RDP accountant (Opacus) for :math:`(\varepsilon, \delta, q, T)`.

    Returns
    -------
    dict
        ``seed_sigma``, ``dpsgd_sigma``, ``nonempty_fraction``, ``seed_energy`` and ``dpsgd_energy``
        (expected noise variance per coordinate summed over the :math:`T` steps),
        ``seed_vs_dpsgd`` (= seed_energy / dpsgd_energy), ``seed_vs_always`` (the seed's energy over the
        same :math:`\sigma_{\text{seed}}` added at every step, i.e. the non-empty fraction: the
        saving the seed's comparison measures), and ``seed_epsilon_if_noise_always`` (the RDP epsilon
        the seed's noise *would* give at :math:`\delta` if it were added at every step).
    """
    eps = check_positive("epsilon", epsilon)
    dlt = check_open_unit("delta", delta)
    q = float(check_range("sample_rate", sample_rate, 0, 1, low_open=True))
    T = check_int("steps", steps, 1)
    n = check_int("n_labelled", n_labelled, 1)
    C = check_positive("clip_norm", clip_norm)
    s_seed = seed_noise_std(eps, dlt, C)
    z = noise_multiplier_for(eps, dlt, q, T)
    nonempty = 1.0 - empty_batch_probability(q, n)
    e_seed = T * nonempty * s_seed ** 2
    e_dp = T * (z * C) ** 2
    return {"seed_sigma": s_seed, "dpsgd_sigma": z * C, "dpsgd_noise_multiplier": z,
            "nonempty_fraction": nonempty, "seed_energy": e_seed, "dpsgd_energy": e_dp,
            "seed_vs_dpsgd": e_seed / e_dp, "seed_vs_always": nonempty,
            "seed_epsilon_if_noise_always": dpsgd_epsilon(s_seed / C, q, T, dlt)}


# ----------------------------------------------------------------------------------------------
# training through Opacus
# ----------------------------------------------------------------------------------------------
def _recording_optimizer_class():
    from opacus.optimizers import DPOptimizer
    from opacus.optimizers.optimizer import _check_processed_flag, _generate_noise, _mark_as_processed

    class NoiseRecordingDPOptimizer(DPOptimizer):
        """Opacus's ``DPOptimizer`` whose ``add_noise`` also records the squared norm of the noise
        it draws (``noise_sq``); ``noise_multiplier`` may be changed between steps."""

        noise_sq = 0.0

        def add_noise(self):
            total = 0.0
            for p in self.params:
                _check_processed_flag(p.summed_grad)
                noise = _generate_noise(std=self.noise_multiplier * self.max_grad_norm,
                                        reference=p.summed_grad, generator=self.generator,
                                        secure_mode=self.secure_mode)
                total += float((noise.double() ** 2).sum())
                p.grad = (p.summed_grad + noise).view_as(p)
                _mark_as_processed(p.summed_grad)
            self.noise_sq = total

    return NoiseRecordingDPOptimizer


@dataclass
class PrivateFit:
    """One logistic regression trained with one mechanism, and the noise that was actually added."""

    mechanism: str
    weight: np.ndarray
    bias: float
    steps: int
    sample_rate: float
    noise_multiplier: float | None
    noisy_steps: int
    empty_steps: int
    noise_energy: float
    noise_std: np.ndarray = field(repr=False)
    epsilon: float = math.nan

    def decision(self, Z: Any) -> np.ndarray:
        """Logits of the fitted model."""
        return np.asarray(Z, dtype=float) @ self.weight + self.bias

    def scores(self, Z: Any, y: Any) -> dict[str, float]:
        """Accuracy and balanced accuracy at threshold 0.5."""
        from sklearn.metrics import accuracy_score, balanced_accuracy_score

        pred = (self.decision(Z) > 0).astype(int)
        return {"accuracy": float(accuracy_score(y, pred)),
                "balanced_accuracy": float(balanced_accuracy_score(y, pred))}


def train_private_logreg(Z_lab: Any, y_lab: Any, n_pool: int, mechanism: str, epsilon: float,
                         delta: float, batch_size: int, steps: int, lr: float = 0.1,
                         clip_norm: float = 1.0, seed: int = 0, log_density: Any = None,
                         max_factor: float = 2.0) -> PrivateFit:
    r"""Train a logistic regression on the labelled records with one privacy mechanism.

    The pool has ``n_pool`` items, of which the rows of ``Z_lab`` are labelled; a step draws a Poisson
    batch of expected size ``batch_size`` from the pool (rate :math:`q` = ``batch_size / n_pool``).
    Unlabelled items have no gradient, so each labelled record is sampled with probability :math:`q`
    and the rest of the pool is not materialised. Every mechanism runs through Opacus's
    ``DPDataLoader`` / ``GradSampleModule`` / ``DPOptimizer`` (clip to ``clip_norm``, divide the
    noisy sum by the expected number of labelled records per step, SGD with learning rate ``lr``,
    zero initial weights); only the noise differs:

    * ``"nonprivate"`` — no noise (clipping kept, so only the noise differs);
    * ``"dpsgd"`` — :math:`z` from :func:`ppal_lab.privacy.noise_multiplier_for` at
      :math:`(\varepsilon, \delta, q, T)`, at every step, empty batches included;
    * ``"seed"`` — :func:`seed_noise_std` on steps whose batch holds a labelled record, no noise on
      empty steps (a zero update);
    * ``"seed_density"`` — as ``"seed"`` times :func:`density_noise_factors` of the batch, from the
      records' ``log_density`` (required).

    Returns
    -------
    PrivateFit
        Weights, the per-step noise standard deviation, the squared norm of all noise drawn
        (``noise_energy``) and the accounted epsilon (``dpsgd``: the target; ``seed*``: ``inf``, see
        the module docstring; ``nonprivate``: ``inf``).
    """
    import torch
    from opacus import GradSampleModule
    from opacus.data_loader import DPDataLoader
    from torch.utils.data import TensorDataset

    check_choice("mechanism", mechanism, MECHANISMS)
    Z = np.asarray(Z_lab, dtype=np.float64)
    y = np.asarray(y_lab)
    if Z.ndim != 2 or Z.shape[0] < 1 or not np.all(np.isfinite(Z)):
        raise ParameterError("Z_lab", f"array of shape {Z.shape}", "a non-empty finite 2-d array")
    if y.shape != (Z.shape[0],) or not np.isin(y, (0, 1)).all():
        raise ParameterError("y_lab", f"array of shape {y.shape}", "0/1 labels, one per row of Z_lab")
    n_lab = Z.shape[0]
    n_pool = check_int("n_pool", n_pool, n_lab)
    eps = check_positive("epsilon", epsilon)
    dlt = check_open_unit("delta", delta)
    batch_size = check_int("batch_size", batch_size, 1, n_pool)
    T = check_int("steps", steps, 1)
    lr = check_positive("lr", lr)
    C = check_positive("clip_norm", clip_norm)
    seed = check_int("seed", seed, 0)
    r = float(check_range("max_factor", max_factor, 1.0, math.inf, high_open=True))
    ld = None
    if mechanism == "seed_density":
        if log_density is None:
            raise ParameterError("log_density", None, "one log density per labelled record")
        ld = np.asarray(log_density, dtype=float)
        if ld.shape != (n_lab,) or not np.all(np.isfinite(ld)):
            raise ParameterError("log_density", f"array of shape {ld.shape}",
                                 f"{n_lab} finite log densities")

    q = batch_size / n_pool
    expected = q * n_lab
    if mechanism == "dpsgd":
        z_fixed = noise_multiplier_for(eps, dlt, q, T)
    else:
        z_fixed = None
    mech = SparsityAwareDP(eps, dlt, C, max_factor=r if mechanism == "seed_density" else 1.0)

    torch.manual_seed(seed)
    data = TensorDataset(torch.as_tensor(Z, dtype=torch.float32),
                         torch.as_tensor(y, dtype=torch.float32),
                         torch.arange(n_lab))
    loader = DPDataLoader(data, sample_rate=q, generator=torch.Generator().manual_seed(seed))
    model = torch.nn.Linear(Z.shape[1], 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    gsm = GradSampleModule(model, loss_reduction="sum")
    opt = _recording_optimizer_class()(
        torch.optim.SGD(gsm.parameters(), lr=lr), noise_multiplier=0.0, max_grad_norm=C,
        expected_batch_size=expected, loss_reduction="mean",
        generator=torch.Generator().manual_seed(seed + 1))
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")

    stds = np.empty(T)
    energy = 0.0
    noisy = empty = 0
    with quiet_opacus():
        t = 0
        while t < T:
            for xb, yb, ib in loader:
                has_data = xb.shape[0] > 0
                if mechanism == "nonprivate":
                    std = 0.0
                elif mechanism == "dpsgd":
                    std = z_fixed * C
                else:
                    factor = None
                    if ld is not None and has_data:
                        factor = density_noise_factors(ld[ib.numpy()].mean(), ld, r)
                    std = float(mech.noise_std(np.array(has_data), factor))
                opt.noise_multiplier = std / C
                opt.zero_grad()
                loss_fn(gsm(xb).squeeze(-1), yb).backward()
                opt.step()
                stds[t] = std
                energy += opt.noise_sq
                noisy += std > 0
                empty += not has_data
                t += 1
                if t == T:
                    break
    w = model.weight.detach().double().numpy().ravel()
    b = float(model.bias.detach().double().numpy()[0])
    return PrivateFit(mechanism, w, b, T, q, z_fixed, int(noisy), int(empty), float(energy), stds,
                      eps if mechanism == "dpsgd" else math.inf)


def compare_mechanisms(tasks: list[dict], n_pool: int, epsilon: float, delta: float, batch_size: int,
                       steps: int, lr: float = 0.1, mechanisms: tuple[str, ...] = MECHANISMS,
                       max_factor: float = 2.0, progress: bool = False):
    """Train every mechanism on every task and tabulate noise and utility.

    Each task is a dict with ``seed``, ``Z_lab``, ``y_lab``, ``Z_test``, ``y_test`` and
    ``log_density`` (of the labelled records, for ``"seed_density"``). Returns a ``pandas.DataFrame``
    with one row per (task, mechanism): accuracy, balanced accuracy, ``noise_energy`` (squared norm of
    all noise drawn), ``noise_energy_per_coord`` (divided by the number of parameters), the fraction of
    steps with noise and of empty steps, the mean per-step noise standard deviation and the accounted
    epsilon.
    """
    import pandas as pd
    import torch

    for m in mechanisms:
        check_choice("mechanisms", m, MECHANISMS)
    if not tasks:
        raise ParameterError("tasks", tasks, "a non-empty list of task dicts")
    jobs = [(t, m) for t in tasks for m in mechanisms]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="private fits", leave=False)
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for task, m in jobs:
            fit = train_private_logreg(task["Z_lab"], task["y_lab"], n_pool, m, epsilon, delta,
                                       batch_size, steps, lr=lr, seed=task["seed"],
                                       log_density=task.get("log_density"), max_factor=max_factor)
            n_par = fit.weight.size + 1
            rows.append({"mechanism": m, "seed": task["seed"],
                         **fit.scores(task["Z_test"], task["y_test"]),
                         "noise_energy": fit.noise_energy,
                         "noise_energy_per_coord": fit.noise_energy / n_par,
                         "noisy_step_fraction": fit.noisy_steps / fit.steps,
                         "empty_step_fraction": fit.empty_steps / fit.steps,
                         "mean_noise_std": float(fit.noise_std.mean()),
                         "epsilon_accounted": fit.epsilon})
            if bar is not None:
                bar.update(1)
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    return pd.DataFrame(rows)
