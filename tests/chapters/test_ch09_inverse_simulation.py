"""Tests of ppal_lab.chapters.ch09_inverse_simulation (chapter 9, "Inverse-simulation verification"):
seed preparation, the detection study, the gated collaborative cycle on the federated protocol, and the
verdict rules."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ppal_lab import verify as V
from ppal_lab.chapters import ch09_inverse_simulation as E
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.specs import SPECS


@pytest.fixture(scope="module")
def setup():
    return E.prepare_seed(3, n_items=800, fpr_target=0.05)


@pytest.mark.parametrize("call", [
    lambda: E.prepare_seed(-1),
    lambda: E.prepare_seed(0, n_items=10),
])
def test_bad_inputs_raise_parameter_error(call):
    with pytest.raises(ParameterError):
        call()


def test_roc_by_kind_and_detection_summary(setup):
    res = E.detection_study(setup, 0.25, ["tampered_prediction", "label_noise"])
    per = res.per_kind()
    assert set(per["kind"]) == {"tampered_prediction", "label_noise"}
    assert per["n"].sum() == round(0.25 * len(setup.test))
    # label noise: similarity cannot see it, consistency can
    row = per.set_index("kind").loc["label_noise"]
    assert abs(row["auc_similarity"] - 0.5) < 0.1 and row["auc_consistency"] > 0.9
    roc = V.roc_by_kind(res.scores["score"], res.scores["kind"])
    assert set(roc["kind"]) == {"tampered_prediction", "label_noise"}
    assert roc.groupby("kind")["tpr"].max().eq(1.0).all()
    s = res.summary()
    assert 0.0 <= s["fpr"] <= 0.15 and 0 < s["detection"] <= 1


def test_spec_choices_match_the_module():
    spec = SPECS["09_inverse_simulation"]
    assert spec.param("anomaly_kinds").choices == V.ANOMALY_KINDS
    assert spec.param("inverse").choices == V.INVERSE_METHODS
    assert spec.param("threshold").default == V.SEED_THRESHOLD


def test_gate_keeps_wrong_labels_out_and_spends_the_budget(setup):
    kw = dict(n_items=800, label_budget=100, batch_size=20, corrupt_rate=1.0)
    runs = E.gate_study([setup], [("corrupted", "none"), ("corrupted", "label"), ("corrupted", "batch"),
                                  ("clean", "none")], **kw)
    r = runs.set_index(["labels", "gate"])
    assert (runs["labels_bought"] == 100).all()
    assert r.loc[("corrupted", "none"), "wrong_used"] > 0
    assert r.loc[("corrupted", "label"), "wrong_used"] < r.loc[("corrupted", "none"), "wrong_used"]
    assert r.loc[("corrupted", "label"), "corrupted_rejected"] > 0.3
    assert r.loc[("corrupted", "batch"), "labels_used"] <= r.loc[("corrupted", "label"), "labels_used"]
    assert r.loc[("clean", "none"), "wrong_used"] == 0
    assert r.loc[("clean", "none"), "labels_used"] == 100
    # the arms share data and initial labels: without a gate and without corruption nothing differs
    # but the labels, so the clean/ungated run matches a direct call
    direct = E.run_gated_cycle(setup, "none", corrupt_rate=0.0, n_items=800, label_budget=100,
                               batch_size=20, secure_aggregation=True)
    assert direct.final_accuracy == pytest.approx(r.loc[("clean", "none"), "accuracy"])
    summary = E.summarize_gate(runs)
    assert set(summary["gate"]) == {"none", "label", "batch"}
    with pytest.raises(ParameterError, match="gate"):
        E.run_gated_cycle(setup, "sometimes")


class _Record:
    """The part of a ResultRecord that the verdict rules read and write."""

    def __init__(self, metrics):
        self.metrics = {k: {"value": v, "ci95": ci, "n": 5} for k, (v, ci) in metrics.items()}
        self.claims = []

    def add_claim(self, cid, seed, claim, seed_value, measured, verdict, note):
        self.claims.append({"id": cid, "verdict": verdict, "measured": measured})


def _claims(det, det_kind_hi, fixed_fpr, sec_err, mismatches, leak, gain):
    P = SimpleNamespace(anomaly_kinds=list(V.ANOMALY_KINDS), n_seeds=5, fpr_target=0.05, threshold=0.85,
                        n_sites=4, corrupt_rate=1.0, label_budget=400)
    m = {"detection_rate_at_fpr": det, "fixed_threshold_false_positive_rate": fixed_fpr,
         "fixed_threshold_detection_rate": (0.9, None), "roc_threshold": (0.3, None),
         "secure_max_abs_error": (sec_err, None), "secure_verdict_mismatches": (mismatches, None),
         "secure_rounds_score": (20.0, None), "secure_bytes_per_item": (5000.0, None),
         "leak_reconstruction_error_sd": (leak, None), "gate_accuracy_gain": gain}
    m.update({f"detection_{k}": (0.5, (0.4, det_kind_hi)) for k in V.ANOMALY_KINDS})
    record = _Record(m)
    runs = pd.DataFrame({"labels": ["corrupted"], "gate": ["batch"], "labels_used": [40]})
    E.add_claims(record, P, runs)
    return [c["verdict"] for c in record.claims]


def test_verdict_rules_of_section_verdicts():
    """The rules stated with chapter 9's claims ("What we found"), one boundary at a time."""
    ok = dict(det=(0.9, (0.85, 0.95)), det_kind_hi=0.6, fixed_fpr=(0.05, (0.04, 0.06)), sec_err=1e-5,
              mismatches=0, leak=2.0, gain=(0.05, (0.01, 0.09)))
    assert _claims(**ok) == ["reproduced", "reproduced", "reproduced", "reproduced"]
    assert _claims(**{**ok, "det": (0.7, (0.6, 0.8)), "det_kind_hi": 0.95})[0] == "partly"
    assert _claims(**{**ok, "det": (0.7, (0.6, 0.8))})[0] == "not reproduced"
    assert _claims(**{**ok, "fixed_fpr": (0.5, (0.4, 0.6))})[1] == "not reproduced"
    assert _claims(**{**ok, "fixed_fpr": (0.1, (0.08, 0.12))})[1] == "partly"
    assert _claims(**{**ok, "leak": 0.5})[2] == "partly"
    assert _claims(**{**ok, "mismatches": 1})[2] == "not reproduced"
    assert _claims(**{**ok, "gain": (0.02, (-0.01, 0.05))})[3] == "partly"
    assert _claims(**{**ok, "gain": (-0.02, (-0.05, 0.01))})[3] == "not reproduced"


def test_gated_cycle_leaves_rejected_items_bought_and_out_of_training(setup):
    res = E.run_gated_cycle(setup, "label", corrupt_rate=1.0, n_items=400, label_budget=60, batch_size=10,
                            secure_aggregation=False)
    assert res.labels_bought[-1] == res.bought.sum() == 60
    assert (res.accepted <= res.bought).all() and res.accepted.sum() == res.labels_used[-1]
    assert np.all(np.diff(res.labels_bought) >= 0) and len(res.accuracy) == len(res.labels_bought)
