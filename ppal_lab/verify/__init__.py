r"""Inverse-simulation verification of predictions about remanufacturing components (seed 000).

The seed's "trust layer" checks a prediction without ground truth: simulate backward from the
prediction to the input it implies, compare that with the real (private) input, simulate forward again
and compare with the prediction. This module builds every part of it on the remanufacturing data of
:func:`ppal_lab.data.make_remanufacturing`.

The objects
-----------
* **Private input** — the four test-bench readings :math:`m` of an item (vibration, backlash, oil
  debris, temperature rise), held by the testing facility.
* **Prediction** (a *claim*) — what an inspector or a model reports about the item: its condition
  :math:`\hat c = (\hat h, \hat d)` (health in [0, 1], defect 0/1) and the decision :math:`\hat y`
  (1 = profitably remanufacturable). An honest claim is the condition estimated from the item's own
  bench readings by the inverse model, with the true label.
* **Forward process model** :func:`forward` — condition and design -> noise-free bench readings. It is
  :func:`ppal_lab.data.bench_forward` itself, the documented model the data generator uses, so the
  two cannot disagree.
* **Inverse model** — readings and design -> condition, two ways: :class:`GridInverse` (maximum
  likelihood: for each defect value the health in [0, 1] minimising the noise-weighted squared
  residual, by a vectorised grid search refined twice) and :class:`MLPInverse` (a small torch network
  trained on simulated (condition, readings) pairs; it learns the posterior mean under its training
  distribution instead).
* **Decision model** :class:`DecisionModel` — condition and design -> probability of "remanufacturable",
  a logistic regression on the features the generator's documented economics depend on, fitted on
  trusted calibration items.

The seed names its two maps after the *prediction system* (input -> prediction): its "inverse model"
maps a prediction back to an input, which physically is the bench simulation, and its "forward model"
maps an input to a prediction, which physically is our inverse model followed by the decision model.
We keep the physical names; :class:`Verifier` runs the seed's three steps:

1. *backward from the prediction*: :math:`\hat m = F(\hat c)` — the readings the claim implies;
2. *compare with the private input*: similarity
   :math:`s = 1 / (1 + \frac1k\sum_j \min(z_j^2, Z^2))`, :math:`z_j = (m_j - \hat m_j)/\sigma_j`
   (the seed's :math:`1/(1 + \text{squared difference})` on noise-standardised readings, each channel
   capped at :math:`Z = 10` SDs; :func:`ppal_lab.secure.similarity.plaintext_similarity`). This is the
   only step that touches the private input; :mod:`ppal_lab.secure.similarity` computes it on secret
   shares;
3. *forward again and compare with the prediction*: :math:`c' = G(\hat m)`, then consistency
   :math:`\kappa = a_c \cdot a_y` with condition agreement
   :math:`a_c = 1/(1 + ((\hat h - h')/\tau)^2 + (\hat d - d')^2)` (:math:`\tau` =
   :data:`TAU_HEALTH`) and label agreement :math:`a_y = P(\hat y \mid c', \text{design})` from the
   decision model. It uses only the claim and public models, so the verifier computes it in the clear.

The seed verifies when both scores exceed 0.85, i.e. when the *verification score*
:math:`v = \min(s, \kappa)` exceeds it; an item is flagged when :math:`v \le \theta`.
:func:`threshold_at_fpr` chooses :math:`\theta` from honest calibration items at a target
false-positive rate instead.

What the checks can and cannot see: the round trip :math:`G(F(\hat c))` returns the claim itself
whenever the models are consistent, so step 3 carries no information about the private input; its
useful part is whether the label follows from the claimed condition. A careless inspector's flipped
label with an honest condition is invisible to step 2 (the similarity does not depend on the label).

Anomalies (:func:`inject_anomalies`, :data:`ANOMALY_KINDS`)
-----------------------------------------------------------
``tampered_prediction``
    the claim is edited to sell the core: health raised by U(0.1, 0.4) (capped at 1), any defect
    hidden, label set to 1.
``sensor_fault``
    one bench channel fails: it reads 0 (dead) or, with equal probability, repeats another item's
    reading (frozen); the claim is then derived, honestly, from the faulty readings.
``sensor_drift``
    one channel's calibration drifts by ±U(2, 6) noise SDs; claim derived from the drifted readings.
``ood_component``
    a transmission outside the OEM catalogue: its bench physics differ (vibration baseline
    +U(1, 2.5) mm/s, wear-driven oil debris x U(1.5, 3)); readings simulated with those physics from
    its true condition, claim derived assuming catalogue physics.
``label_noise``
    a careless inspector's decision: label flipped, condition claim honest.

The verified-label gate (:func:`run_gated_cycle`)
-------------------------------------------------
The collaborative cycle of the seed's case study, composed from :mod:`ppal_lab.federated`'s building
blocks (its :class:`~ppal_lab.federated.Participant`, :func:`~ppal_lab.federated.allocate_batch`,
:func:`~ppal_lab.federated.fedavg`): local training, aggregation (optionally by pairwise masking,
:func:`secure_fedavg`), uncertainty queries, labels from each site's inspector, verification, and an
update with verified labels only. The federated module offers no hook between labelling and
training, so the gate removes a rejected item from the site's training list (``Participant.order``);
the item stays marked as inspected, so it is not queried again and its label cost is spent. Gates:
``"none"``, ``"label"`` (drop each unverified label) and ``"batch"`` (the seed's rule: keep a round's
labels only if *all* of them verify). The cycle is non-private (exact queries, plain SGD): the gate acts
on labels before training and is orthogonal to DP.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from ppal_lab import data as D
from ppal_lab.learning.active import STRATEGIES
from ppal_lab.compendium.errors import ParameterError, as_generator, check_choice, check_int, check_real
from ppal_lab.federated import Participant, TrainingPlan, allocate_batch, check_average_inputs, fedavg, make_model
from ppal_lab.compendium.results import mean_ci
from ppal_lab.secure.similarity import plaintext_similarity

__all__ = [
    "BENCH_SD", "SEED_THRESHOLD", "TAU_HEALTH", "ANOMALY_KINDS", "INVERSE_METHODS", "GATES",
    "CYCLE_ARMS", "forward", "GridInverse", "MLPInverse", "make_inverse", "DecisionModel",
    "ClaimBatch", "honest_batch", "inject_anomalies", "Verifier", "fit_verifier",
    "threshold_at_fpr", "roc_by_kind", "SeedSetup", "prepare_seed", "compare_inverses", "DetectionResult",
    "detection_study", "summarize_detection", "validate_setup", "reconstruct_readings",
    "probe_claims", "secure_fedavg", "CycleResult", "run_gated_cycle", "gate_study",
    "summarize_gate",
]

#: Noise standard deviation of each bench channel, in :data:`ppal_lab.data.BENCH_COLUMNS` order.
BENCH_SD = np.array([D.BENCH_NOISE_SD[c] for c in D.BENCH_COLUMNS])
BENCH_SD.flags.writeable = False
#: The seed's fixed consistency threshold.
SEED_THRESHOLD = 0.85
#: Health difference (in health units) at which the condition agreement of the round trip halves.
TAU_HEALTH = 0.05
ANOMALY_KINDS: tuple[str, ...] = ("tampered_prediction", "sensor_fault", "sensor_drift",
                                  "ood_component", "label_noise")
INVERSE_METHODS: tuple[str, ...] = ("grid", "mlp")
GATES: tuple[str, ...] = ("none", "label", "batch")
#: (labels, gate) of the arms that :func:`gate_study` compares.
CYCLE_ARMS: tuple[tuple[str, str], ...] = (("clean", "none"), ("clean", "label"),
                                           ("corrupted", "none"), ("corrupted", "label"),
                                           ("corrupted", "batch"))

_N_VARIANTS, _N_TOLERANCES = 4, 3
_CHUNK = 2048  # items per block of the grid search (bounds memory: CHUNK x grid x 4 floats)


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _design(variant: Any, tolerance: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(variant)
    t = np.asarray(tolerance)
    for name, a, k in (("variant", v, _N_VARIANTS), ("tolerance", t, _N_TOLERANCES)):
        if a.shape != (n,) or not np.all(np.isfinite(a.astype(np.float64))) \
                or np.any(a != np.round(a)) or a.min() < 0 or a.max() > k - 1:
            raise ParameterError(name, f"array of shape {a.shape}", f"{n} integer codes in [0, {k - 1}]")
    return v.astype(np.int64), t.astype(np.int64)


def _readings(readings: Any) -> np.ndarray:
    try:
        m = np.asarray(readings, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError("readings", type(readings).__name__, "a numeric (n, 4) array") from None
    if m.ndim != 2 or m.shape[1] != len(D.BENCH_COLUMNS) or m.shape[0] == 0:
        raise ParameterError("readings", f"array of shape {m.shape}", "a non-empty (n, 4) array")
    if not np.all(np.isfinite(m)):
        raise ParameterError("readings", "an array with NaN or inf", "finite readings")
    return m


def _unit(name: str, value: Any, n: int, binary: bool = False) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape != (n,) or not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1 \
            or (binary and np.any((a != 0) & (a != 1))):
        raise ParameterError(name, f"array of shape {a.shape}",
                             f"{n} values {'in {0, 1}' if binary else 'in [0, 1]'}")
    return a


def _kinds(kinds: Any) -> tuple[str, ...]:
    if isinstance(kinds, str) or not isinstance(kinds, Sequence) or len(kinds) == 0:
        raise ParameterError("anomaly_kinds", kinds, "a non-empty list of " + ", ".join(ANOMALY_KINDS))
    for k in kinds:
        check_choice("anomaly_kinds", k, ANOMALY_KINDS)
    if len(set(kinds)) != len(kinds):
        raise ParameterError("anomaly_kinds", list(kinds), "a list without repeats")
    return tuple(kinds)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny networks: one torch thread (thread start-up and contention cost more than they save)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------
# forward model
# ----------------------------------------------------------------------------------------------
def forward(health: Any, defect: Any, variant: Any, tolerance: Any) -> np.ndarray:
    """Noise-free bench readings of a condition: :func:`ppal_lab.data.bench_forward`, as an array.

    Arguments broadcast like NumPy arrays (so a grid of candidate healths per item is one call); the
    result has the broadcast shape plus a last axis of the four channels (:data:`BENCH_SD` order).
    Out-of-range arguments raise :class:`~ppal_lab.compendium.errors.ParameterError` (from ``bench_forward``).
    """
    shape = np.broadcast_shapes(*(np.shape(a) for a in (health, defect, variant, tolerance)))
    out = D.bench_forward(health, defect, variant, tolerance).to_numpy(dtype=np.float64, copy=True)
    return out.reshape(*shape, len(D.BENCH_COLUMNS))


def _residual(readings: np.ndarray, health: np.ndarray, defect: np.ndarray, v: np.ndarray,
              t: np.ndarray) -> np.ndarray:
    """Noise-weighted squared residual D^2 = sum_j ((m_j - F_j(c)) / sigma_j)^2 of each item."""
    return (((forward(health, defect, v, t) - readings) / BENCH_SD) ** 2).sum(axis=-1)


# ----------------------------------------------------------------------------------------------
# inverse models
# ----------------------------------------------------------------------------------------------
class GridInverse:
    r"""Maximum-likelihood inverse of the bench by a vectorised grid search.

    For defect :math:`d \in \{0, 1\}` and every item, the health :math:`h \in [0, 1]` minimising
    :math:`D^2 = \sum_j ((m_j - F_j(h, d)) / \sigma_j)^2` (the negative log-likelihood of Gaussian
    bench noise, up to constants) is found on a grid of ``n_grid`` points, then refined ``rounds``
    times on ``n_refine`` points spanning one step either side of the best point (resolution
    :math:`1/((n_\text{grid} - 1) (n_\text{refine} - 1)^{\text{rounds}} / 2^{\text{rounds}})`, 1e-4 at
    the defaults); the defect with the smaller residual wins. The search is one-dimensional per
    defect value, so the coarse grid can miss the global minimum only if the residual has a second,
    deeper minimum narrower than one grid step; on noise-free readings it recovers the condition to
    the resolution (tested).
    """

    method = "grid"

    def __init__(self, n_grid: int = 101, n_refine: int = 21, rounds: int = 2):
        self.n_grid = check_int("n_grid", n_grid, 3, 100_000)
        self.n_refine = check_int("n_refine", n_refine, 3, 10_000)
        self.rounds = check_int("rounds", rounds, 0, 10)

    @property
    def resolution(self) -> float:
        step = 1.0 / (self.n_grid - 1)
        for _ in range(self.rounds):
            step = 2.0 * step / (self.n_refine - 1)
        return step

    def invert(self, readings: Any, variant: Any, tolerance: Any
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(health, defect, residual D^2)`` of each item (defect is 0.0 or 1.0)."""
        m = _readings(readings)
        v, t = _design(variant, tolerance, m.shape[0])
        out = [self._invert(m[i:i + _CHUNK], v[i:i + _CHUNK], t[i:i + _CHUNK])
               for i in range(0, m.shape[0], _CHUNK)]
        return tuple(np.concatenate(parts) for parts in zip(*out))  # type: ignore[return-value]

    def _invert(self, m, v, t):
        n = m.shape[0]
        rows = np.arange(n)
        best_h, best_d, best_r = np.zeros(n), np.zeros(n), np.full(n, np.inf)
        for d in (0.0, 1.0):
            H = np.broadcast_to(np.linspace(0.0, 1.0, self.n_grid), (n, self.n_grid))
            step = 1.0 / (self.n_grid - 1)
            for r in range(self.rounds + 1):
                res = _residual(m[:, None, :], H, d, v[:, None], t[:, None])
                i = res.argmin(axis=1)
                h, rmin = H[rows, i], res[rows, i]
                if r < self.rounds:
                    H = np.clip(h[:, None] + np.linspace(-step, step, self.n_refine)[None], 0.0, 1.0)
                    step = 2.0 * step / (self.n_refine - 1)
            better = rmin < best_r
            best_h[better], best_d[better], best_r[better] = h[better], d, rmin[better]
        return best_h, best_d, best_r


class MLPInverse:
    """A small torch network readings + design -> (health, defect), learned from simulated pairs.

    :meth:`fit` takes the conditions and designs of trusted calibration items, simulates
    ``n_draws`` noisy bench readings of each with :func:`ppal_lab.data.bench_forward`, and trains a
    2-hidden-layer tanh network (inputs: standardised readings and one-hot design; outputs: health
    through a sigmoid, trained with squared error, and a defect logit, trained with cross-entropy)
    with Adam. It estimates the posterior mean under the calibration distribution of conditions
    rather than the maximum-likelihood condition, so it is more accurate on typical items and less
    faithful to the physics at the edges (the notebook measures both).
    """

    method = "mlp"

    def __init__(self, hidden: int = 64, epochs: int = 30, lr: float = 3e-3, batch_size: int = 256,
                 n_draws: int = 3, seed: int = 0):
        self.hidden = check_int("hidden", hidden, 1, 4096)
        self.epochs = check_int("epochs", epochs, 1, 10_000)
        self.lr = check_real("lr", lr, 0.0, 10.0, low_open=True)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.n_draws = check_int("n_draws", n_draws, 1, 100)
        self.seed = check_int("seed", seed, 0)
        self.net: nn.Module | None = None
        self._center = self._scale = None

    def _inputs(self, m: np.ndarray, v: np.ndarray, t: np.ndarray) -> torch.Tensor:
        onehot = np.zeros((m.shape[0], _N_VARIANTS + _N_TOLERANCES))
        onehot[np.arange(m.shape[0]), v] = 1.0
        onehot[np.arange(m.shape[0]), _N_VARIANTS + t] = 1.0
        return torch.as_tensor(np.column_stack([(m - self._center) / self._scale, onehot]),
                               dtype=torch.float32)

    def fit(self, health: Any, defect: Any, variant: Any, tolerance: Any) -> MLPInverse:
        """Train on simulated readings of the given conditions; returns ``self``."""
        h = np.asarray(health, dtype=np.float64)
        n = h.shape[0] if h.ndim == 1 else 0
        if n < 10:
            raise ParameterError("health", f"array of shape {h.shape}", "at least 10 conditions")
        h = _unit("health", h, n)
        d = _unit("defect", defect, n, binary=True)
        v, t = _design(variant, tolerance, n)
        rng = np.random.default_rng([self.seed, 0x1A7])
        H, Dd, V, T = (np.tile(a, self.n_draws) for a in (h, d, v, t))
        M = D.bench_forward(H, Dd, V, T, rng=rng).to_numpy()
        self._center, self._scale = M.mean(axis=0), M.std(axis=0)
        X = self._inputs(M, V, T)
        yh = torch.as_tensor(H, dtype=torch.float32)
        yd = torch.as_tensor(Dd, dtype=torch.float32)
        with _one_thread(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = nn.Sequential(nn.Linear(X.shape[1], self.hidden), nn.Tanh(),
                                nn.Linear(self.hidden, self.hidden), nn.Tanh(),
                                nn.Linear(self.hidden, 2))
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            bce = nn.BCEWithLogitsLoss()
            for _ in range(self.epochs):
                perm = torch.randperm(X.shape[0])
                for i in range(0, X.shape[0], self.batch_size):
                    idx = perm[i:i + self.batch_size]
                    out = net(X[idx])
                    # health error weighted so that both terms are of order 1 at the start
                    loss = 20.0 * ((torch.sigmoid(out[:, 0]) - yh[idx]) ** 2).mean() \
                        + bce(out[:, 1], yd[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        self.net = net.eval()
        return self

    def invert(self, readings: Any, variant: Any, tolerance: Any
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(health, defect, residual D^2)``; defect is the network's decision (0.0/1.0)."""
        if self.net is None:
            raise RuntimeError("MLPInverse.invert called before fit")
        m = _readings(readings)
        v, t = _design(variant, tolerance, m.shape[0])
        with _one_thread(), torch.no_grad():
            out = self.net(self._inputs(m, v, t)).double().numpy()
        h = np.clip(1.0 / (1.0 + np.exp(-out[:, 0])), 0.0, 1.0)
        d = (out[:, 1] > 0).astype(np.float64)
        return h, d, _residual(m, h, d, v, t)


def make_inverse(method: str, seed: int = 0) -> GridInverse | MLPInverse:
    """An unfitted inverse model by name (``"grid"`` needs no fitting)."""
    check_choice("inverse", method, INVERSE_METHODS)
    return GridInverse() if method == "grid" else MLPInverse(seed=seed)


# ----------------------------------------------------------------------------------------------
# decision model
# ----------------------------------------------------------------------------------------------
def _decision_features(h: np.ndarray, d: np.ndarray, v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """One-hot (variant x tolerance) for the core value, (1 - h)^2 per tolerance class for the rework,
    and the defect: the terms of the generator's documented margin (corrosion is not in a claim)."""
    n = h.shape[0]
    cell = np.zeros((n, _N_VARIANTS * _N_TOLERANCES))
    cell[np.arange(n), v * _N_TOLERANCES + t] = 1.0
    wear = np.zeros((n, _N_TOLERANCES))
    wear[np.arange(n), t] = (1.0 - h) ** 2
    return np.column_stack([cell, wear, d])


class DecisionModel:
    """P(remanufacturable | health, defect, design): logistic regression on :func:`_decision_features`."""

    def __init__(self, C: float = 10.0):
        self.C = check_real("C", C, 0.0, None, low_open=True)
        self.model: LogisticRegression | None = None

    def fit(self, health: Any, defect: Any, variant: Any, tolerance: Any, y: Any) -> DecisionModel:
        h = np.asarray(health, dtype=np.float64)
        n = h.shape[0] if h.ndim == 1 else 0
        h = _unit("health", h, n)
        d = _unit("defect", defect, n)
        v, t = _design(variant, tolerance, n)
        y = np.asarray(y)
        if y.shape != (n,) or not np.isin(y, (0, 1)).all() or np.unique(y).size < 2:
            raise ParameterError("y", f"array of shape {y.shape}", f"{n} labels in {{0, 1}}, both present")
        self.model = LogisticRegression(C=self.C, max_iter=5000).fit(
            _decision_features(h, d, v, t), y.astype(np.int64))
        return self

    def proba(self, health: Any, defect: Any, variant: Any, tolerance: Any) -> np.ndarray:
        """P(y = 1) of each item."""
        if self.model is None:
            raise RuntimeError("DecisionModel.proba called before fit")
        h = np.asarray(health, dtype=np.float64)
        n = h.shape[0] if h.ndim == 1 else 0
        v, t = _design(variant, tolerance, n)
        return self.model.predict_proba(_decision_features(_unit("health", h, n),
                                                           _unit("defect", defect, n), v, t))[:, 1]


# ----------------------------------------------------------------------------------------------
# claims and anomalies
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimBatch:
    """Items to verify: the private readings, the claims about them, and the simulation's truth.

    Attributes
    ----------
    readings : numpy.ndarray of shape (n, 4)
        The bench readings on record (party 0's private input; faulty for sensor anomalies).
    health, defect, label : numpy.ndarray of shape (n,)
        The claim (party 1): condition and decision.
    variant, tolerance : numpy.ndarray of int
        The design (public within the consortium).
    kind : numpy.ndarray of str
        ``"clean"`` or the anomaly kind (simulation truth: the verifier never reads it).
    true_health, true_defect, true_label : numpy.ndarray
        The latent condition and the true label (simulation truth).
    """

    readings: np.ndarray
    health: np.ndarray
    defect: np.ndarray
    label: np.ndarray
    variant: np.ndarray
    tolerance: np.ndarray
    kind: np.ndarray
    true_health: np.ndarray
    true_defect: np.ndarray
    true_label: np.ndarray

    def __post_init__(self) -> None:
        n = self.readings.shape[0]
        for name in ("health", "defect", "label", "variant", "tolerance", "kind", "true_health",
                     "true_defect", "true_label"):
            if getattr(self, name).shape != (n,):
                raise ParameterError(name, f"array of shape {getattr(self, name).shape}", f"shape ({n},)")

    def __len__(self) -> int:
        return int(self.readings.shape[0])

    @property
    def is_anomaly(self) -> np.ndarray:
        return self.kind != "clean"

    def subset(self, index: Any) -> ClaimBatch:
        idx = np.asarray(index)
        return ClaimBatch(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})

    @staticmethod
    def concat(batches: Sequence[ClaimBatch]) -> ClaimBatch:
        """The items of several batches, in order."""
        if not batches or not all(isinstance(b, ClaimBatch) for b in batches):
            raise ParameterError("batches", batches, "a non-empty list of ClaimBatch")
        return ClaimBatch(**{f: np.concatenate([getattr(b, f) for b in batches])
                             for f in ClaimBatch.__dataclass_fields__})


def honest_batch(data: D.SupplyChainData, inverse: GridInverse | MLPInverse) -> ClaimBatch:
    """Honest claims for every item: the condition the inverse model reads from the item's bench
    readings and the item's true label. ``data`` must be remanufacturing data without missing values."""
    if not isinstance(data, D.SupplyChainData) or data.name != "remanufacturing" or data.latent is None:
        raise ParameterError("data", type(data).__name__, "remanufacturing data from make_remanufacturing")
    m = data.X[list(D.BENCH_COLUMNS)].to_numpy(dtype=np.float64)
    if np.isnan(m).any():
        raise ParameterError("data", "bench readings with missing values", "complete readings "
                             "(missing_rate = 0)")
    v = data.X["design_variant"].to_numpy().astype(np.int64)
    t = data.X["tolerance_class"].to_numpy().astype(np.int64)
    h, d, _ = inverse.invert(m, v, t)
    y = np.asarray(data.y, dtype=np.int64)
    return ClaimBatch(readings=m, health=h, defect=d, label=y.copy(), variant=v, tolerance=t,
                      kind=np.full(len(y), "clean", dtype=object),
                      true_health=data.latent["health"].to_numpy(dtype=np.float64),
                      true_defect=data.latent["defect"].to_numpy(dtype=np.float64), true_label=y.copy())


def _noisy(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(clean + rng.standard_normal(clean.shape) * BENCH_SD, 0.0, None)


def inject_anomalies(batch: ClaimBatch, kinds: Sequence[str], rate: float, inverse: GridInverse | MLPInverse,
                     rng: Any) -> ClaimBatch:
    """Make exactly ``round(rate * n)`` random items anomalous, the kinds as equal in number as possible.

    Kinds are assigned in a random order cycling through ``kinds``; see the module docstring for what
    each kind does. Claims of items whose readings change (sensor and out-of-distribution kinds) are
    re-derived with ``inverse``. Returns a new batch (``kind`` marks the anomalous items).

    Parameters
    ----------
    batch : ClaimBatch
        Honest items (``kind == "clean"`` everywhere).
    kinds : sequence of str
        Non-empty, without repeats, from :data:`ANOMALY_KINDS`.
    rate : float
        Fraction of anomalous items, in [0, 1).
    inverse : GridInverse or MLPInverse
        Fitted inverse model of the honest claimant.
    rng : numpy.random.Generator or int
        Randomness of the choice and of the anomalies.
    """
    if not isinstance(batch, ClaimBatch):
        raise ParameterError("batch", type(batch).__name__, "a ClaimBatch")
    kinds = _kinds(kinds)
    rate = check_real("anomaly_rate", rate, 0.0, 1.0, high_open=True)
    if not isinstance(inverse, (GridInverse, MLPInverse)):
        raise ParameterError("inverse", type(inverse).__name__, "a GridInverse or MLPInverse")
    rng = as_generator(rng)
    if np.any(batch.is_anomaly):
        raise ParameterError("batch", "a batch that already has anomalies", "an honest batch")
    n = len(batch)
    n_bad = int(round(rate * n))
    chosen = rng.choice(n, size=n_bad, replace=False)
    labels = np.array(kinds, dtype=object)[(np.arange(n_bad) + rng.integers(len(kinds))) % len(kinds)]
    rng.shuffle(labels)
    out = {f: np.array(getattr(batch, f), copy=True) for f in batch.__dataclass_fields__}
    out["kind"][chosen] = labels
    for kind in kinds:
        idx = chosen[labels == kind]
        if idx.size == 0:
            continue
        k = idx.size
        if kind == "tampered_prediction":
            out["health"][idx] = np.minimum(1.0, out["health"][idx] + rng.uniform(0.1, 0.4, k))
            out["defect"][idx] = 0.0
            out["label"][idx] = 1
        elif kind == "label_noise":
            out["label"][idx] = 1 - out["label"][idx]
        else:
            m = out["readings"][idx]
            channel = rng.integers(m.shape[1], size=k)
            rows = np.arange(k)
            if kind == "sensor_fault":
                dead = rng.random(k) < 0.5
                donor = batch.readings[rng.integers(n, size=k), channel]
                m[rows, channel] = np.where(dead, 0.0, donor)
            elif kind == "sensor_drift":
                shift = rng.choice([-1.0, 1.0], size=k) * rng.uniform(2.0, 6.0, k)
                m[rows, channel] = np.maximum(m[rows, channel] + shift * BENCH_SD[channel], 0.0)
            else:  # ood_component
                th, td = out["true_health"][idx], out["true_defect"][idx]
                clean = forward(th, td, out["variant"][idx], out["tolerance"][idx])
                clean[:, 0] += rng.uniform(1.0, 2.5, k)
                clean[:, 2] = (clean[:, 2] - 40.0 * td) * rng.uniform(1.5, 3.0, k) + 40.0 * td
                m = _noisy(clean, rng)
            out["readings"][idx] = m
            h, d, _ = inverse.invert(m, out["variant"][idx], out["tolerance"][idx])
            out["health"][idx], out["defect"][idx] = h, d
    return ClaimBatch(**out)


# ----------------------------------------------------------------------------------------------
# the verifier
# ----------------------------------------------------------------------------------------------
@dataclass
class Verifier:
    """The seed's three steps with our models (module docstring); :meth:`verify` runs them."""

    inverse: GridInverse | MLPInverse
    decision: DecisionModel
    tau_health: float = TAU_HEALTH

    def simulate_input(self, batch: ClaimBatch) -> np.ndarray:
        """Step 1: the bench readings each claim implies (backward through the prediction system)."""
        return forward(batch.health, batch.defect, batch.variant, batch.tolerance)

    def consistency(self, batch: ClaimBatch, simulated: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step 3: ``(consistency, condition agreement, label agreement)`` of the round trip
        claim -> simulated readings -> inverse model -> decision model."""
        m_hat = self.simulate_input(batch) if simulated is None else simulated
        h2, d2, _ = self.inverse.invert(m_hat, batch.variant, batch.tolerance)
        cond = 1.0 / (1.0 + ((batch.health - h2) / self.tau_health) ** 2 + (batch.defect - d2) ** 2)
        p1 = self.decision.proba(h2, d2, batch.variant, batch.tolerance)
        lab = np.where(batch.label == 1, p1, 1.0 - p1)
        return cond * lab, cond, lab

    def verify(self, batch: ClaimBatch, threshold: float = SEED_THRESHOLD,
               similarity: np.ndarray | None = None) -> pd.DataFrame:
        """Run the three steps; one row per item.

        ``similarity`` replaces step 2 by externally computed scores (e.g. the secure ones).
        Columns: ``similarity``, ``condition_agreement``, ``label_agreement``, ``consistency``,
        ``score`` (= min(similarity, consistency)), ``verified`` (= score > threshold).
        """
        if not isinstance(batch, ClaimBatch):
            raise ParameterError("batch", type(batch).__name__, "a ClaimBatch")
        threshold = check_real("threshold", threshold, 0.0, 1.0)
        m_hat = self.simulate_input(batch)
        if similarity is None:
            s = plaintext_similarity(batch.readings, m_hat, BENCH_SD)
        else:
            s = np.asarray(similarity, dtype=np.float64)
            if s.shape != (len(batch),) or not np.all(np.isfinite(s)):
                raise ParameterError("similarity", f"array of shape {s.shape}", f"{len(batch)} finite scores")
        kappa, cond, lab = self.consistency(batch, m_hat)
        score = np.minimum(s, kappa)
        return pd.DataFrame({"similarity": s, "condition_agreement": cond, "label_agreement": lab,
                             "consistency": kappa, "score": score, "verified": score > threshold})


def fit_verifier(calibration: D.SupplyChainData, inverse: str = "grid", seed: int = 0) -> Verifier:
    """Fit the verifier's models on trusted calibration items (their latent condition and labels).

    ``"mlp"`` trains the network on the calibration conditions; the decision model is fitted on the
    calibration items' *claimed* conditions (as the inverse reads them from their readings), the
    inputs it will see when verifying.
    """
    check_choice("inverse", inverse, INVERSE_METHODS)
    seed = check_int("seed", seed, 0)
    model = make_inverse(inverse, seed)
    if isinstance(model, MLPInverse):
        lat = calibration.latent
        model.fit(lat["health"].to_numpy(), lat["defect"].to_numpy(dtype=np.float64),
                  calibration.X["design_variant"].to_numpy().astype(np.int64),
                  calibration.X["tolerance_class"].to_numpy().astype(np.int64))
    claims = honest_batch(calibration, model)
    decision = DecisionModel().fit(claims.health, claims.defect, claims.variant, claims.tolerance,
                                   claims.label)
    return Verifier(model, decision)


def threshold_at_fpr(clean_scores: Any, fpr: float) -> float:
    r"""The threshold :math:`\theta` that flags (score :math:`\le \theta`) the ``floor(fpr * n)``
    lowest honest scores, so the empirical false-positive rate is at most ``fpr``; ``0.0`` (flag
    nothing, scores are positive) when ``fpr * n < 1``."""
    fpr = check_real("fpr_target", fpr, 0.0, 1.0, low_open=True, high_open=True)
    s = np.sort(np.asarray(clean_scores, dtype=np.float64))
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)):
        raise ParameterError("clean_scores", f"array of shape {s.shape}", "a non-empty 1-d array of finite scores")
    k = int(math.floor(fpr * s.size + 1e-9))
    return float(s[k - 1]) if k >= 1 else 0.0


def roc_by_kind(scores: Any, kind: Any) -> pd.DataFrame:
    """ROC curve of each anomaly kind against the clean items (lower score = more anomalous).

    Returns long-format rows ``kind, fpr, tpr``."""
    s = np.asarray(scores, dtype=np.float64)
    k = np.asarray(kind, dtype=object)
    clean = k == "clean"
    rows = []
    for name in [x for x in ANOMALY_KINDS if np.any(k == x)]:
        sel = clean | (k == name)
        fpr, tpr, _ = roc_curve((k[sel] == name).astype(int), -s[sel])
        rows.append(pd.DataFrame({"kind": name, "fpr": fpr, "tpr": tpr}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["kind", "fpr", "tpr"])


# ----------------------------------------------------------------------------------------------
# one seed: data, verifier, threshold
# ----------------------------------------------------------------------------------------------
def _stream_seeds(seed: int) -> dict[str, int]:
    names = ("calibration", "test", "anomalies", "model", "cycle", "cycle_rng")
    states = np.random.SeedSequence(seed).spawn(len(names))
    return {n: int(s.generate_state(1)[0]) for n, s in zip(names, states)}


@dataclass
class SeedSetup:
    """Everything one repeat needs: the fitted verifier, its ROC threshold and the honest test batch.

    Attributes
    ----------
    seed : int
    verifier : Verifier
    threshold : float
        Chosen on honest held-out calibration items at ``fpr_target``.
    fpr_target : float
    calibration : ClaimBatch
        Those honest held-out calibration items.
    calibration_scores : numpy.ndarray
        Their verification scores.
    test : ClaimBatch
        Honest claims about ``n_items`` fresh items.
    streams : dict
        The integer seeds of this repeat's independent random streams.
    """

    seed: int
    verifier: Verifier
    threshold: float
    fpr_target: float
    calibration: ClaimBatch = field(repr=False)
    calibration_scores: np.ndarray = field(repr=False)
    test: ClaimBatch = field(repr=False)
    streams: dict = field(repr=False, default_factory=dict)


def prepare_seed(seed: int, n_items: int = 2000, fpr_target: float = 0.05, inverse: str = "grid") -> SeedSetup:
    """Generate calibration and test items (generator label noise off), fit the verifier on half of
    the calibration items and choose the threshold on the other half.

    The generator's own 5% label flips are switched off (``label_noise=0``) so that every wrong label
    in an experiment is one we injected and know about.
    """
    seed = check_int("seed", seed, 0)
    n_items = check_int("n_items", n_items, 100, 1_000_000)
    fpr_target = check_real("fpr_target", fpr_target, 0.0, 1.0, low_open=True, high_open=True)
    check_choice("inverse", inverse, INVERSE_METHODS)
    st = _stream_seeds(seed)
    cal = D.make_remanufacturing(2 * n_items, seed=st["calibration"], label_noise=0.0)
    half = np.arange(n_items)
    verifier = fit_verifier(cal.subset(half), inverse, st["model"])
    held = honest_batch(cal.subset(half + n_items), verifier.inverse)
    cal_scores = verifier.verify(held)["score"].to_numpy()
    test = honest_batch(D.make_remanufacturing(n_items, seed=st["test"], label_noise=0.0), verifier.inverse)
    return SeedSetup(seed, verifier, threshold_at_fpr(cal_scores, fpr_target), fpr_target, held,
                     cal_scores, test, st)


def compare_inverses(setup: SeedSetup, mlp_epochs: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both inverse models on the seed's honest test items: accuracy, physics and speed.

    The network is trained on the seed's calibration conditions (as :func:`prepare_seed` would).
    Returns ``(summary, details)``: per method the health RMSE and MAE and the defect accuracy on
    the noisy readings, the largest and RMS health error of the noise-free round trip
    :math:`G(F(c))`, the mean residual :math:`D^2` of the recovered condition, and the
    milliseconds per 1000 items; ``details`` has one row per method and item.
    """
    if not isinstance(setup, SeedSetup):
        raise ParameterError("setup", type(setup).__name__, "a SeedSetup from prepare_seed")
    n = len(setup.test)
    cal = D.make_remanufacturing(2 * n, seed=setup.streams["calibration"], label_noise=0.0).subset(np.arange(n))
    mlp = MLPInverse(epochs=mlp_epochs, seed=setup.streams["model"])
    t0 = time.perf_counter()
    mlp.fit(cal.latent["health"].to_numpy(), cal.latent["defect"].to_numpy(dtype=np.float64),
            cal.X["design_variant"].to_numpy().astype(np.int64),
            cal.X["tolerance_class"].to_numpy().astype(np.int64))
    fit_s = time.perf_counter() - t0
    b = setup.test
    clean = forward(b.true_health, b.true_defect, b.variant, b.tolerance)
    rows, details = [], []
    for name, model, train_s in (("grid search", GridInverse(), 0.0), ("MLP", mlp, fit_s)):
        t0 = time.perf_counter()
        h, d, res = model.invert(b.readings, b.variant, b.tolerance)
        ms = 1e3 * (time.perf_counter() - t0) * 1000 / n
        h0, d0, _ = model.invert(clean, b.variant, b.tolerance)
        rt = h0 - b.true_health
        rows.append({"method": name, "health_rmse": float(np.sqrt(np.mean((h - b.true_health) ** 2))),
                     "health_mae": float(np.mean(np.abs(h - b.true_health))),
                     "defect_accuracy": float(np.mean(d == b.true_defect)),
                     "roundtrip_max_error": float(np.abs(rt).max()),
                     "roundtrip_rmse": float(np.sqrt(np.mean(rt ** 2))),
                     "roundtrip_defect_accuracy": float(np.mean(d0 == b.true_defect)),
                     "mean_residual": float(res.mean()), "ms_per_1000": ms, "train_s": train_s})
        details.append(pd.DataFrame({"method": name, "true_health": b.true_health, "health": h,
                                     "residual": res, "roundtrip_error": rt}))
    return pd.DataFrame(rows), pd.concat(details, ignore_index=True)


# ----------------------------------------------------------------------------------------------
# detection study
# ----------------------------------------------------------------------------------------------
@dataclass
class DetectionResult:
    """Verification of one seed's test stream with injected anomalies.

    ``scores`` has one row per item: ``kind``, ``similarity``, ``consistency``, ``score``.
    """

    seed: int
    scores: pd.DataFrame
    threshold: float
    fixed_threshold: float
    fpr_target: float

    def per_kind(self) -> pd.DataFrame:
        """Per anomaly kind: items, AUC of the verification score, of the similarity and of the
        consistency alone, and the detection rate at the ROC threshold and at the fixed threshold."""
        s = self.scores
        clean = s[s["kind"] == "clean"]
        rows = []
        for kind in [k for k in ANOMALY_KINDS if (s["kind"] == k).any()]:
            bad = s[s["kind"] == kind]
            y = np.r_[np.zeros(len(clean)), np.ones(len(bad))]
            row = {"kind": kind, "n": len(bad)}
            for col, name in (("score", "auc"), ("similarity", "auc_similarity"),
                              ("consistency", "auc_consistency")):
                row[name] = roc_auc_score(y, -np.r_[clean[col], bad[col]]) if len(clean) else np.nan
            row["detection"] = float((bad["score"] <= self.threshold).mean())
            row["detection_fixed"] = float((bad["score"] <= self.fixed_threshold).mean())
            rows.append(row)
        return pd.DataFrame(rows)

    def summary(self) -> dict:
        """Pooled figures: detection over all anomalies, false-positive rates, precision of flags."""
        s = self.scores
        bad, clean = s["kind"] != "clean", s["kind"] == "clean"
        flagged = s["score"] <= self.threshold
        fixed = s["score"] <= self.fixed_threshold
        nan = float("nan")
        return {"seed": self.seed, "threshold": self.threshold,
                "detection": float(flagged[bad].mean()) if bad.any() else nan,
                "fpr": float(flagged[clean].mean()) if clean.any() else nan,
                "precision": float(bad[flagged].mean()) if flagged.any() else nan,
                "detection_fixed": float(fixed[bad].mean()) if bad.any() else nan,
                "fpr_fixed": float(fixed[clean].mean()) if clean.any() else nan}


def detection_study(setup: SeedSetup, anomaly_rate: float = 0.2,
                    anomaly_kinds: Sequence[str] = ANOMALY_KINDS,
                    fixed_threshold: float = SEED_THRESHOLD) -> DetectionResult:
    """Inject anomalies into the seed's honest test batch and verify every item."""
    if not isinstance(setup, SeedSetup):
        raise ParameterError("setup", type(setup).__name__, "a SeedSetup from prepare_seed")
    fixed_threshold = check_real("threshold", fixed_threshold, 0.0, 1.0, low_open=True, high_open=True)
    batch = inject_anomalies(setup.test, anomaly_kinds, anomaly_rate, setup.verifier.inverse,
                             setup.streams["anomalies"])
    v = setup.verifier.verify(batch, fixed_threshold)
    scores = pd.DataFrame({"kind": batch.kind.astype(str), "similarity": v["similarity"],
                           "consistency": v["consistency"], "score": v["score"]})
    return DetectionResult(setup.seed, scores, setup.threshold, fixed_threshold, setup.fpr_target)


def summarize_detection(results: Sequence[DetectionResult]) -> pd.DataFrame:
    """Mean and 95% CI over seeds of every per-kind figure (rows: kind, metric)."""
    per = pd.concat([r.per_kind().assign(seed=r.seed) for r in results], ignore_index=True)
    rows = []
    for kind, g in per.groupby("kind", sort=False):
        for metric in ("auc", "auc_similarity", "auc_consistency", "detection", "detection_fixed"):
            mean, ci, n = mean_ci(g[metric])
            rows.append({"kind": kind, "metric": metric, "mean": mean,
                         "lo": ci[0] if ci else np.nan, "hi": ci[1] if ci else np.nan, "n": n})
    return pd.DataFrame(rows)


def validate_setup(n_items: int, anomaly_rate: float, anomaly_kinds: Sequence[str], fpr_target: float,
                   threshold: float, inverse: str, *, n_sites: int = 4, label_budget: int = 400,
                   batch_size: int = 40, strategy: str = "least_confident", corrupt_rate: float = 1.0,
                   initial_labels: int = 20, test_fraction: float = 0.25, n_secure: int = 256,
                   min_per_kind: int = 5) -> None:
    """Check the notebook's parameters together, before any work (each alone is checked by its spec).

    Raises :class:`~ppal_lab.compendium.errors.ParameterError` when the anomaly rate leaves fewer than
    ``min_per_kind`` anomalies of some kind, the label budget does not fit the cycle's pool, or the
    secure batch (``n_secure`` items plus 5 probes) does not fit the test stream.
    """
    n_items = check_int("n_items", n_items, 100, 1_000_000)
    check_int("n_secure", n_secure, 1, n_items)
    kinds = _kinds(anomaly_kinds)
    anomaly_rate = check_real("anomaly_rate", anomaly_rate, 0.0, 1.0, high_open=True)
    check_real("fpr_target", fpr_target, 0.0, 1.0, low_open=True, high_open=True)
    check_real("threshold", threshold, 0.0, 1.0, low_open=True, high_open=True)
    check_choice("inverse", inverse, INVERSE_METHODS)
    per_kind = int(round(anomaly_rate * n_items)) // len(kinds)
    if per_kind < min_per_kind:
        need = min_per_kind * len(kinds) / n_items
        raise ParameterError("anomaly_rate", anomaly_rate,
                             f">= {need:.3g} so that each of the {len(kinds)} anomaly kinds gets at least "
                             f"{min_per_kind} of the n_items = {n_items} test items")
    n_sites = check_int("n_sites", n_sites, 2, 100)
    check_choice("strategy", strategy, STRATEGIES)
    check_real("corrupt_rate", corrupt_rate, 0.0, 1.0)
    pool = n_items - int(round(test_fraction * n_items))
    initial_labels = check_int("initial_labels", initial_labels, n_sites, pool - 1)
    check_int("label_budget", label_budget, initial_labels + 1, pool)
    check_int("batch_size", batch_size, 1, label_budget)


# ----------------------------------------------------------------------------------------------
# what the revealed score leaks
# ----------------------------------------------------------------------------------------------
def reconstruct_readings(simulated: Any, scores: Any, sd: Any = BENCH_SD) -> np.ndarray:
    r"""Recover private readings from revealed similarity scores by trilateration.

    Each score gives :math:`D_i^2 = k (1/s_i - 1) = \lVert (m - \hat m_i)/\sigma \rVert^2` (when no
    channel reached the cap :math:`Z`). Subtracting the first equation from the others leaves a
    linear system in :math:`u = m/\sigma`, solved by least squares; ``k + 1`` affinely independent
    points :math:`\hat m_i` determine :math:`m` exactly.

    Parameters
    ----------
    simulated : array_like of shape (q, k)
        The points the verifier chose (simulated readings), ``q >= k + 1``.
    scores : array_like of shape (q,)
        The revealed scores, in (0, 1].
    sd : array_like of shape (k,)
        The public noise SDs.
    """
    P = np.asarray(simulated, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] < P.shape[1] + 1 or s.shape != (P.shape[0],) or sd.shape != (P.shape[1],):
        raise ParameterError("simulated", f"array of shape {P.shape}", "(q, k) with q >= k + 1, "
                             "scores of shape (q,) and sd of shape (k,)")
    if not np.all((s > 0) & (s <= 1)):
        raise ParameterError("scores", s.tolist(), "values in (0, 1]")
    k = P.shape[1]
    d2 = k * (1.0 / s - 1.0)
    V = P / sd
    A = 2.0 * (V[1:] - V[0])
    b = (V[1:] ** 2).sum(1) - (V[0] ** 2).sum() - d2[1:] + d2[0]
    u, *_ = np.linalg.lstsq(A, b, rcond=None)
    return u * sd


def probe_claims(batch: ClaimBatch, item: int, n_probes: int = 5) -> ClaimBatch:
    """``n_probes`` legitimate-looking claims about one item that a curious verifier could submit:
    its claimed health shifted by small steps, and once with the defect flipped (so the simulated
    readings span all four directions). Returns a batch of ``n_probes`` copies of the item."""
    item = check_int("item", item, 0, len(batch) - 1)
    n_probes = check_int("n_probes", n_probes, len(D.BENCH_COLUMNS) + 1, 50)
    probes = batch.subset(np.full(n_probes, item))
    steps = np.linspace(-0.12, 0.12, n_probes - 1)
    h = np.clip(probes.health[0] + np.r_[steps, 0.0], 0.0, 1.0)
    d = probes.defect.copy()
    d[-1] = 1.0 - d[-1]
    return replace(probes, health=h, defect=d)


# ----------------------------------------------------------------------------------------------
# secure aggregation (pairwise masks) for the collaborative cycle
# ----------------------------------------------------------------------------------------------
_FRAC_BITS = 32


def secure_fedavg(vectors: Sequence[torch.Tensor], weights: Sequence[float], rng: Any
                  ) -> tuple[torch.Tensor, list[np.ndarray]]:
    r"""FedAvg by pairwise masking (semi-honest, no drop-outs): the orchestrator sees only masked
    vectors, whose sum is the weighted average.

    Site :math:`p` encodes :math:`w_p v_p / \sum_q w_q` in fixed point (32 fractional bits) in the
    ring :math:`\mathbb{Z}_{2^{64}}` and adds :math:`\sum_{q > p} r_{pq} - \sum_{q < p} r_{qp}`, where
    :math:`r_{pq}` is a uniformly random ring vector from a seed that sites :math:`p` and :math:`q`
    share (in a deployment: from a key agreement; here drawn from ``rng``). Each masked vector alone
    is uniform; the masks cancel in the sum. Equals :func:`ppal_lab.federated.fedavg` to ~1e-9 per
    coordinate (tested). The weights (labelled-set sizes) are public, as in the federated module.

    Returns ``(average, masked)``: the average (dtype of the first vector) and what each site sent.
    """
    rng = as_generator(rng)
    w = check_average_inputs(vectors, weights)
    V = [torch.as_tensor(v).detach().to(torch.float64).numpy() for v in vectors]
    scaled = [wp / w.sum() * v for wp, v in zip(w, V)]
    if max(np.abs(s).max() for s in scaled) >= 2.0 ** (62 - _FRAC_BITS):
        raise ParameterError("vectors", "values too large", f"|w v / sum w| < 2^{62 - _FRAC_BITS}")
    n, d = len(V), V[0].size
    seeds = rng.integers(0, 2**63, size=(n, n))
    masked = []
    with np.errstate(over="ignore"):
        for p, s in enumerate(scaled):
            msg = np.round(s * 2.0**_FRAC_BITS).astype(np.int64).view(np.uint64)
            for q in range(n):
                if q == p:
                    continue
                pair = seeds[min(p, q), max(p, q)]
                r = np.random.default_rng(int(pair)).integers(0, 2**64, size=d, dtype=np.uint64)
                msg = msg + r if p < q else msg - r
            masked.append(msg)
        total = np.zeros(d, dtype=np.uint64)
        for msg in masked:
            total = total + msg
    avg = total.view(np.int64).astype(np.float64) / 2.0**_FRAC_BITS
    return torch.as_tensor(avg).to(torch.as_tensor(vectors[0]).dtype), masked


# ----------------------------------------------------------------------------------------------
# the collaborative cycle with a verified-label gate
# ----------------------------------------------------------------------------------------------
@dataclass
class CycleResult:
    """One run of the collaborative cycle.

    Attributes
    ----------
    labels_bought : numpy.ndarray
        Inspections paid after each training round (initial labels included).
    labels_used : numpy.ndarray
        Labels in the training sets after each round (accepted by the gate).
    accuracy : numpy.ndarray
        Test accuracy of the global model after each round.
    bought, accepted, wrong_used : numpy.ndarray of int
        Per site: labels bought, labels accepted, accepted labels that are wrong.
    corrupted_rejected : float
        Share of the wrong labels bought (all sites) that the gate rejected (NaN if none was wrong).
    correct_rejected : float
        Share of the correct labels bought that the gate rejected.
    wall_time_s : float
    """

    labels_bought: np.ndarray
    labels_used: np.ndarray
    accuracy: np.ndarray
    bought: np.ndarray
    accepted: np.ndarray
    wrong_used: np.ndarray
    corrupted_rejected: float
    correct_rejected: float
    wall_time_s: float

    @property
    def final_accuracy(self) -> float:
        return float(self.accuracy[-1])


@dataclass
class _CycleData:
    X: np.ndarray        # scaled features of the pool (float32)
    X_test: torch.Tensor
    y_test: np.ndarray
    parts: list          # pool positions of each site
    claims: ClaimBatch   # honest claims about the pool items, labels = oracle answers
    wrong: np.ndarray    # oracle answer differs from the truth (per pool item)


def _cycle_data(setup: SeedSetup, n_items: int, n_sites: int, corrupt_site: int, corrupt_rate: float,
                test_fraction: float, non_iid: float) -> _CycleData:
    st = setup.streams
    data = D.make_remanufacturing(n_items, seed=st["cycle"], label_noise=0.0)
    rng = np.random.default_rng(st["cycle_rng"])
    order = rng.permutation(n_items)
    n_test = int(round(test_fraction * n_items))
    test, pool = np.sort(order[:n_test]), np.sort(order[n_test:])
    X = data.X.to_numpy(dtype=np.float64)
    center, scale = X[test].mean(axis=0), X[test].std(axis=0)
    scale[~(scale > 0)] = 1.0
    pool_data = data.subset(pool)
    parts = D.horizontal_partition(pool_data, n_sites, non_iid=non_iid, seed=int(rng.integers(2**31)))
    claims = honest_batch(pool_data, setup.verifier.inverse)
    # the corrupted site's inspector: each of its items' answers is flipped with probability corrupt_rate
    flip = np.zeros(len(pool), dtype=bool)
    site_items = parts[corrupt_site]
    flip[site_items] = rng.random(site_items.size) < corrupt_rate
    answers = np.where(flip, 1 - claims.true_label, claims.true_label)
    return _CycleData(X=((X[pool] - center) / scale).astype(np.float32),
                      X_test=torch.as_tensor(((X[test] - center) / scale).astype(np.float32)),
                      y_test=np.asarray(data.y)[test], parts=parts,
                      claims=replace(claims, label=answers), wrong=flip)


def _split_initial(sizes: np.ndarray, total: int) -> np.ndarray:
    """Initial labels per site in proportion to pool size (largest remainder), each >= 1."""
    share = total * sizes / sizes.sum()
    counts = np.maximum(np.floor(share).astype(np.int64), 1)
    for p in np.argsort(-(share - np.floor(share)), kind="stable")[: max(0, total - int(counts.sum()))]:
        counts[p] += 1
    while counts.sum() > total:
        counts[int(np.argmax(counts))] -= 1
    return counts


def run_gated_cycle(setup: SeedSetup, gate: str = "label", *, corrupt_rate: float = 1.0,
                    n_items: int = 2000, n_sites: int = 4, corrupt_site: int = 0,
                    label_budget: int = 400, batch_size: int = 40, strategy: str = "least_confident",
                    initial_labels: int = 20, model: str = "logreg", local_epochs: int = 2,
                    sample_rate: float = 0.5, lr: float = 2.0, non_iid: float = 0.5,
                    test_fraction: float = 0.25, secure_aggregation: bool = True,
                    _data: _CycleData | None = None) -> CycleResult:
    """The seed's collaborative cycle with one site's inspector corrupting labels, gated or not.

    Per round: every site trains the global model on its accepted labels (``ceil(local_epochs /
    sample_rate)`` Poisson-sampled SGD steps, as in :mod:`ppal_lab.federated`); the orchestrator
    aggregates (FedAvg weighted by accepted-label counts, by :func:`secure_fedavg` or in the clear)
    and scores the model on its test set; sites propose their most uncertain items (exact scores,
    non-private), the orchestrator allocates the batch (:func:`ppal_lab.federated.allocate_batch`),
    the sites buy the labels, and the gate verifies each new (claim, label) against the item's
    bench readings with ``setup.verifier`` at ``setup.threshold``. The initial random labels pass
    the per-label gate in both gated modes.

    Everything random comes from ``setup.streams``, so the arms of one seed share data, partition,
    corruption, initial labels and model initialisation (a paired comparison).

    Parameters
    ----------
    gate : {"none", "label", "batch"}
        No gate, drop each unverified label, or the seed's rule (drop the round's labels unless all
        verify).
    corrupt_rate : float
        Probability that the corrupted site's inspector answers an item wrongly, in [0, 1].
    """
    check_choice("gate", gate, GATES)
    if not isinstance(setup, SeedSetup):
        raise ParameterError("setup", type(setup).__name__, "a SeedSetup from prepare_seed")
    corrupt_rate = check_real("corrupt_rate", corrupt_rate, 0.0, 1.0)
    n_items = check_int("n_items", n_items, 100, 1_000_000)
    n_sites = check_int("n_sites", n_sites, 2, 100)
    corrupt_site = check_int("corrupt_site", corrupt_site, 0, n_sites - 1)
    check_choice("strategy", strategy, STRATEGIES)
    test_fraction = check_real("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    pool_size = n_items - int(round(test_fraction * n_items))
    initial_labels = check_int("initial_labels", initial_labels, n_sites, pool_size - 1)
    label_budget = check_int("label_budget", label_budget, initial_labels + 1, pool_size)
    batch_size = check_int("batch_size", batch_size, 1)
    non_iid = check_real("non_iid", non_iid, 0.0, 1.0)
    if not isinstance(secure_aggregation, bool):
        raise ParameterError("secure_aggregation", secure_aggregation, "True or False")
    plan = TrainingPlan(sample_rate, math.ceil(local_epochs / sample_rate), lr, 1.0, None)

    t_start = time.perf_counter()
    cd = _data or _cycle_data(setup, n_items, n_sites, corrupt_site, corrupt_rate, test_fraction, non_iid)
    verifier, threshold = setup.verifier, setup.threshold
    rng = np.random.default_rng([setup.streams["cycle_rng"], 1])
    model_seed = int(rng.integers(2**31))
    n_init = _split_initial(np.array([p.size for p in cd.parts]), initial_labels)

    d_in = cd.X.shape[1]
    with _one_thread():
        sites = []
        for p, rows in enumerate(cd.parts):
            site_rng = np.random.default_rng([setup.streams["cycle_rng"], 2, p])
            start = site_rng.choice(rows.size, size=int(n_init[p]), replace=False)
            a, b = site_rng.integers(2**31, size=2)
            sites.append(Participant(f"site {p}", cd.X[rows], cd.claims.label[rows], start,
                                     make_model(model, d_in, 2, seed=model_seed), plan, None,
                                     site_rng, int(a), int(b)))
        bought = np.zeros(n_sites, dtype=int)
        wrong_bought = rejected_wrong = rejected_right = 0

        def verified(p: int, positions: np.ndarray) -> np.ndarray:
            if gate == "none" or positions.size == 0:
                return np.ones(positions.size, dtype=bool)
            items = cd.parts[p][positions]
            return verifier.verify(cd.claims.subset(items), threshold)["verified"].to_numpy()

        def settle(new: list[np.ndarray], ok: list[np.ndarray]) -> None:
            nonlocal wrong_bought, rejected_wrong, rejected_right
            for p, (site, pos, keep) in enumerate(zip(sites, new, ok)):
                bought[p] += pos.size
                wrong_bought += int(cd.wrong[cd.parts[p][pos]].sum())
                drop = set(int(i) for i in pos[~keep])
                if drop:
                    wrong = cd.wrong[cd.parts[p][np.array(sorted(drop))]]
                    rejected_wrong += int(wrong.sum())
                    rejected_right += int((~wrong).sum())
                    site.order[:] = [i for i in site.order if i not in drop]

        initial = [np.asarray(s.order, dtype=np.int64) for s in sites]
        settle(initial, [verified(p, pos) for p, pos in enumerate(initial)])

        net = make_model(model, d_in, 2, seed=model_seed)
        params = torch.nn.utils.parameters_to_vector(net.parameters()).detach().clone()
        hist_bought, hist_used, hist_acc = [], [], []
        t = 0
        while True:
            local = [s.local_update(params, t) for s in sites]
            weights = [s.n_labelled if v is not None else 0 for s, v in zip(sites, local)]
            sent = [v for v in local if v is not None]
            if sent:
                w = [x for x in weights if x > 0]
                params = secure_fedavg(sent, w, rng)[0] if secure_aggregation else fedavg(sent, w)
            torch.nn.utils.vector_to_parameters(params.clone(), net.parameters())
            with torch.no_grad():
                hist_acc.append(float(np.mean(net(cd.X_test).argmax(dim=1).numpy() == cd.y_test)))
            hist_bought.append(int(bought.sum()))
            hist_used.append(int(sum(s.n_labelled for s in sites)))
            if bought.sum() >= label_budget:
                break
            want = min(batch_size, label_budget - int(bought.sum()))
            left = np.array([p.size for p in cd.parts]) - bought
            if strategy == "random":
                counts = rng.multivariate_hypergeometric(left, min(want, int(left.sum())))
                new = [s.label_random(int(c)) for s, c in zip(sites, counts)]
            else:
                released = [s.propose(net, strategy, int(min(want, left[p])), None, None, t)
                            if left[p] > 0 else None for p, s in enumerate(sites)]
                counts = allocate_batch(released, want)
                new = [s.label(int(c)) for s, c in zip(sites, counts)]
            ok = [verified(p, pos) for p, pos in enumerate(new)]
            if gate == "batch" and not all(o.all() for o in ok):
                ok = [np.zeros_like(o) for o in ok]
            settle(new, ok)
            if counts.sum() == 0:
                break
            t += 1

    n_wrong_bought, n_right_bought = wrong_bought, int(bought.sum()) - wrong_bought
    wrong_used = np.array([int(cd.wrong[cd.parts[p][np.asarray(s.order, dtype=int)]].sum())
                           for p, s in enumerate(sites)])
    return CycleResult(
        labels_bought=np.array(hist_bought), labels_used=np.array(hist_used),
        accuracy=np.array(hist_acc), bought=bought.copy(),
        accepted=np.array([s.n_labelled for s in sites]), wrong_used=wrong_used,
        corrupted_rejected=rejected_wrong / n_wrong_bought if n_wrong_bought else float("nan"),
        correct_rejected=rejected_right / n_right_bought if n_right_bought else float("nan"),
        wall_time_s=time.perf_counter() - t_start)


def gate_study(setups: Sequence[SeedSetup], arms: Sequence[tuple[str, str]] = CYCLE_ARMS, *,
               corrupt_rate: float = 1.0, progress: bool = False, **kwargs: Any) -> pd.DataFrame:
    """Run :func:`run_gated_cycle` for every seed and arm (``(labels, gate)`` with labels ``"clean"``
    or ``"corrupted"``); one row per run with the final figures and the curves.

    The arms of one seed share everything but the corruption and the gate.
    """
    arms = list(arms)
    for labels, g in arms:
        check_choice("labels", labels, ("clean", "corrupted"))
        check_choice("gate", g, GATES)
    corrupt_rate = check_real("corrupt_rate", corrupt_rate, 0.0, 1.0)
    n_items = kwargs.get("n_items", 2000)
    n_sites = kwargs.get("n_sites", 4)
    corrupt_site = kwargs.get("corrupt_site", 0)
    test_fraction = kwargs.get("test_fraction", 0.25)
    non_iid = kwargs.get("non_iid", 0.5)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(setups) * len(arms), desc="collaborative cycle", leave=False)
    rows = []
    for setup in setups:
        cache: dict[str, _CycleData] = {}
        for labels, g in arms:
            rate = corrupt_rate if labels == "corrupted" else 0.0
            if labels not in cache:
                cache[labels] = _cycle_data(setup, n_items, n_sites, corrupt_site, rate, test_fraction,
                                            non_iid)
            res = run_gated_cycle(setup, g, corrupt_rate=rate, _data=cache[labels], **kwargs)
            rows.append({"seed": setup.seed, "labels": labels, "gate": g,
                         "accuracy": res.final_accuracy, "labels_bought": int(res.bought.sum()),
                         "labels_used": int(res.accepted.sum()),
                         "wrong_used": int(res.wrong_used.sum()),
                         "corrupted_rejected": res.corrupted_rejected,
                         "correct_rejected": res.correct_rejected,
                         "curve_bought": res.labels_bought, "curve_accuracy": res.accuracy,
                         "wall_time_s": res.wall_time_s})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return pd.DataFrame(rows)


def summarize_gate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI over seeds of the final accuracy and label figures of each arm."""
    rows = []
    for (labels, g), grp in runs.groupby(["labels", "gate"], sort=False):
        row = {"labels": labels, "gate": g, "n": len(grp)}
        for col in ("accuracy", "labels_used", "wrong_used", "corrupted_rejected", "correct_rejected"):
            vals = grp[col].dropna()
            if len(vals):
                mean, ci, _ = mean_ci(vals)
                row[col], row[col + "_lo"], row[col + "_hi"] = mean, *(ci if ci else (np.nan, np.nan))
            else:
                row[col] = row[col + "_lo"] = row[col + "_hi"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)
