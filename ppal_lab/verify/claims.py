r"""Claims to verify and the anomalies a verifier must catch.

A *claim* is what an inspector or a model reports about an item: its condition
:math:`\hat c = (\hat h, \hat d)` (health in [0, 1], defect 0/1) and the decision :math:`\hat y`
(1 = profitably remanufacturable). :class:`ClaimBatch` holds claims with the private bench readings they
are checked against and the simulation's truth; an honest claim (:func:`honest_batch`) is the condition
the inverse model reads from the item's own bench readings, with the true label.

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

Severity
--------
The ranges above mix small and large anomalies, so a pooled detection rate is set by the ranges. With
``severity=s`` (:func:`inject_anomalies`) the graded kinds (:data:`GRADED_KINDS`) instead take one size,
``s`` in units of the bench's noise: ``sensor_drift`` shifts its channel by ``s`` noise SDs;
``ood_component`` raises the vibration baseline by ``s`` vibration-noise SDs and multiplies the wear-driven
oil debris by ``1 + 0.4 s`` (the wear term is at least 15, so at least ``s`` debris-noise SDs);
``tampered_prediction`` raises the claimed health by ``s`` x :data:`HEALTH_STEP` (about the health error of
an honest reading) and still hides the defect and claims label 1. ``sensor_fault`` and ``label_noise``
have no size and keep their form. At ``s = 0`` a graded anomaly changes nothing but a tampered claim's
defect and label.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ppal_lab import data as D
from ppal_lab.compendium.errors import ParameterError, as_generator, check_choice, check_real
from ppal_lab.verify.bench import BENCH_SD, GridInverse, MLPInverse, forward

__all__ = ["ANOMALY_KINDS", "GRADED_KINDS", "HEALTH_STEP", "ClaimBatch", "honest_batch", "inject_anomalies"]

ANOMALY_KINDS: tuple[str, ...] = ("tampered_prediction", "sensor_fault", "sensor_drift",
                                  "ood_component", "label_noise")
#: The kinds whose size ``severity`` sets (module docstring).
GRADED_KINDS: tuple[str, ...] = ("tampered_prediction", "sensor_drift", "ood_component")
#: Health units per unit of a tampered claim's severity: about the health RMSE of an honest reading.
HEALTH_STEP = 0.05


def _kinds(kinds: Any) -> tuple[str, ...]:
    if isinstance(kinds, str) or not isinstance(kinds, Sequence) or len(kinds) == 0:
        raise ParameterError("anomaly_kinds", kinds, "a non-empty list of " + ", ".join(ANOMALY_KINDS))
    for k in kinds:
        check_choice("anomaly_kinds", k, ANOMALY_KINDS)
    if len(set(kinds)) != len(kinds):
        raise ParameterError("anomaly_kinds", list(kinds), "a list without repeats")
    return tuple(kinds)



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
                     rng: Any, severity: float | None = None) -> ClaimBatch:
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
    severity : float >= 0, optional
        One size for the graded kinds, in noise units (module docstring); ``None``: the ranges.
    """
    if not isinstance(batch, ClaimBatch):
        raise ParameterError("batch", type(batch).__name__, "a ClaimBatch")
    kinds = _kinds(kinds)
    rate = check_real("anomaly_rate", rate, 0.0, 1.0, high_open=True)
    if not isinstance(inverse, (GridInverse, MLPInverse)):
        raise ParameterError("inverse", type(inverse).__name__, "a GridInverse or MLPInverse")
    rng = as_generator(rng)
    if severity is not None:
        severity = check_real("severity", severity, 0.0, 100.0)
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
            raise_h = rng.uniform(0.1, 0.4, k) if severity is None else np.full(k, severity * HEALTH_STEP)
            out["health"][idx] = np.minimum(1.0, out["health"][idx] + raise_h)
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
                size = rng.uniform(2.0, 6.0, k) if severity is None else np.full(k, severity)
                shift = rng.choice([-1.0, 1.0], size=k) * size
                m[rows, channel] = np.maximum(m[rows, channel] + shift * BENCH_SD[channel], 0.0)
            else:  # ood_component
                th, td = out["true_health"][idx], out["true_defect"][idx]
                clean = forward(th, td, out["variant"][idx], out["tolerance"][idx])
                if severity is None:
                    offset, factor = rng.uniform(1.0, 2.5, k), rng.uniform(1.5, 3.0, k)
                else:
                    offset, factor = np.full(k, severity * BENCH_SD[0]), np.full(k, 1.0 + 0.4 * severity)
                clean[:, 0] += offset
                clean[:, 2] = (clean[:, 2] - 40.0 * td) * factor + 40.0 * td
                m = _noisy(clean, rng)
            out["readings"][idx] = m
            h, d, _ = inverse.invert(m, out["variant"][idx], out["tolerance"][idx])
            out["health"][idx], out["defect"][idx] = h, d
    return ClaimBatch(**out)
