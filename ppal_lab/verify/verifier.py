r"""The inverse-simulation verifier of the seed's "trust layer" (seed 000): check a prediction without
ground truth by simulating backward from it to the input it implies, comparing that with the real
(private) input, and simulating forward again. The models come from :mod:`ppal_lab.verify.bench`.

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
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve

from ppal_lab import data as D
from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real
from ppal_lab.secure.similarity import plaintext_similarity
from ppal_lab.verify.bench import (BENCH_SD, INVERSE_METHODS, GridInverse, MLPInverse, _N_TOLERANCES,
                                   _N_VARIANTS, _design, _unit, fit_inverse, forward)
from ppal_lab.verify.claims import ANOMALY_KINDS, ClaimBatch, honest_batch, inject_anomalies

__all__ = ["SEED_THRESHOLD", "TAU_HEALTH", "DecisionModel", "DetectionResult", "detection_by_severity", "Verifier", "fit_verifier", "roc_by_kind",
           "threshold_at_fpr"]

#: The seed's fixed consistency threshold.
SEED_THRESHOLD = 0.85
#: Health difference (in health units) at which the condition agreement of the round trip halves.
TAU_HEALTH = 0.05


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
    fpr_matched: float = float("nan")  # honest claims made with the verifier's own inverse

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
                "fpr_fixed": float(fixed[clean].mean()) if clean.any() else nan,
                "fpr_matched": self.fpr_matched}


def detection_by_severity(verifier: Verifier, threshold: float, batch: ClaimBatch, kinds: Any, rate: float,
                          claimant: GridInverse | MLPInverse, seed: int, severities: Any) -> pd.DataFrame:
    """Detection curves: the honest ``batch`` made anomalous at each severity (:func:`inject_anomalies`,
    the same items and random stream at every severity, so the curves differ only by the anomalies'
    size) and verified at ``threshold``. Rows ``severity, kind, n, detection`` (kind ``"all"``: pooled).
    """
    threshold = check_real("threshold", threshold, 0.0, 1.0)
    rows = []
    for sev in severities:
        bad = inject_anomalies(batch, kinds, rate, claimant, np.random.default_rng(seed), severity=sev)
        flagged = (verifier.verify(bad, threshold)["score"] <= threshold).to_numpy()
        for kind in [k for k in ANOMALY_KINDS if k in kinds] + ["all"]:
            sel = bad.is_anomaly if kind == "all" else bad.kind == kind
            rows.append({"severity": float(sev), "kind": kind, "n": int(sel.sum()),
                         "detection": float(flagged[sel].mean()) if sel.any() else float("nan")})
    return pd.DataFrame(rows)


def fit_verifier(calibration: D.SupplyChainData, inverse: str = "grid", seed: int = 0,
                 labelled: D.SupplyChainData | None = None) -> Verifier:
    """Fit the verifier's models on trusted calibration items.

    ``"mlp"`` trains the network on the calibration items' conditions (:func:`fit_inverse`: bench
    physics, no labels). The decision model is fitted on the *claimed* conditions (as the inverse reads
    them from the readings, the inputs it will see when verifying) and the labels of ``labelled``
    (default: ``calibration``): pass no more items there than the consortium could pay to inspect.
    """
    check_choice("inverse", inverse, INVERSE_METHODS)
    model = fit_inverse(inverse, calibration, check_int("seed", seed, 0))
    claims = honest_batch(calibration if labelled is None else labelled, model)
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
