"""Tests of ppal_lab.chapters.ch09_inverse_simulation (chapter 9, "Inverse-simulation verification"):
seed preparation, the detection study, the gated collaborative cycle on the federated protocol, and the
claims declared in the spec, decided on the metrics the chapter records."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ppal_lab import verify as V
from ppal_lab.chapters import ch09_inverse_simulation as E
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord
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
    # the threshold holds its 5% on claims made like the calibration ones (200 items: binomial slack);
    # the independent claimant's honest items are the measured mismatch, whatever it is
    assert 0.0 <= s["fpr_matched"] <= 0.15 and 0.0 <= s["fpr"] <= 1.0 and 0 < s["detection"] <= 1


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


def test_bit_mismatches_count_verdicts_unlike_plaintext():
    plain = pd.DataFrame({"verified": [True, False, True, False]})
    check = E.SecureCheck(None, None, None, None, plain, pd.DataFrame({"verified": [True, False, True, True]}),
                          np.array([True, True, False, False]), pd.Series(dtype=object))
    assert check.bit_mismatches == 2 and check.mismatches == 3


def _decide(bits_exact=1.0, gain_ci=(0.01, 0.09)):
    """The chapter's claims decided on a record holding the metrics they and their descriptions read."""
    P = SimpleNamespace(anomaly_kinds=list(V.ANOMALY_KINDS), n_seeds=5, fpr_target=0.05, threshold=0.85,
                        n_sites=4, corrupt_rate=1.0, label_budget=400, n_secure=256, severity=3.0, claimant="mlp",
                        batch_size=5, verifier_labels=400)
    record = ResultRecord("09_inverse_simulation", vars(P))
    record.add_metric("detection_at_severity", [0.80, 0.84, 0.82], "fraction")
    record.add_metric("detection_rate_at_fpr", [0.20, 0.24, 0.22], "fraction")
    record.add_metric("fixed_threshold_false_positive_rate", [0.88, 0.90, 0.89], "fraction")
    record.add_metric("gate_accuracy_gain", float(np.mean(gain_ci)), "fraction", ci=gain_ci, n=5)
    for name, value in {"fixed_threshold_detection_rate": 0.99, "roc_threshold": 0.3, "secure_max_abs_error": 5e-5,
                        "secure_verdict_mismatches": 0.0, "secure_rounds_score": 39.0,
                        "secure_bytes_per_item": 2536.0, "leak_reconstruction_error_sd": 0.1,
                        "bits_only_verification_exact": bits_exact,
                        "fpr_mismatch": 0.12, "fpr_matched": 0.05, "gate_headroom": 0.03,
                        **{f"detection_at_severity_{k}": 0.8 for k in V.ANOMALY_KINDS}}.items():
        record.add_metric(name, value, "")
    runs = pd.DataFrame({"labels": ["corrupted"], "gate": ["batch"], "labels_used": [15]})
    return record, E.add_claims(record, P, runs)


def test_claims_are_decided_on_the_metrics_the_chapter_records():
    record, verdicts = _decide()
    assert [c["id"] for c in record.claims] == [c.id for c in SPECS["09_inverse_simulation"].claims]
    assert "82.0% (95% CI" in record.claims[0]["measured"] and "15 of 400 labels" in record.claims[3]["measured"]
    # the rule reads detection at the declared severity; the first rule, kept beside it, the pooled ranges
    assert verdicts["inverse_simulation_detection"] == "reproduced"
    assert record.claims[0]["first_verdict"] == "partly"
    assert "seeds would tell a gain" in record.claims[3]["measured"]
    # a fixed threshold that flags 89% of honest items misses the claim's 10%; a gate whose gain's interval
    # lies above zero protects; a single verdict unlike plaintext when only bits are opened breaks the claim
    assert verdicts["fixed_consistency_threshold"] == "not reproduced"
    assert verdicts["verified_label_gate"] == "reproduced"
    assert verdicts["verification_without_exposure"] == "reproduced"
    assert _decide(bits_exact=0.0)[1]["verification_without_exposure"] == "not reproduced"
    assert _decide(gain_ci=(-0.05, 0.2))[1]["verified_label_gate"] == "inconclusive"


def test_verifier_labels_stay_within_the_budget_and_claimants_are_not_the_verifier(setup):
    # the threshold is set on the second half of the verifier's 400 trusted labels, the model fitted on the first
    assert len(setup.calibration) == 200
    # honest claims come from an independent network: not the verifier's own round trip
    assert isinstance(setup.claimant, V.MLPInverse) and isinstance(setup.verifier.inverse, V.GridInverse)
    assert np.abs(setup.test.health - setup.test_matched.health).mean() > 1e-3
    np.testing.assert_array_equal(setup.test.readings, setup.test_matched.readings)
    res = E.detection_study(setup, 0.2)
    assert 0.0 <= res.fpr_matched <= 0.15
    spec = SPECS["09_inverse_simulation"]
    assert spec.param("batch_size").default == 5  # the seed's queries per round
    with pytest.raises(Exception, match="verifier_labels"):
        spec.validate({"verifier_labels": 401})


def test_severity_curves_read_the_declared_severity(setup):
    P = SimpleNamespace(severity=2.5, n_seeds=1, anomaly_rate=0.3, anomaly_kinds=["sensor_drift", "label_noise"])
    curves = E.severity_curves([setup], P)
    assert set(curves["severity"]) == set(E.SEVERITIES) | {2.5}
    drift = curves[curves.kind == "sensor_drift"].set_index("severity")["detection"]
    assert drift[8.0] > drift[0.0] + 0.5
    noise = curves[curves.kind == "label_noise"]["detection"]
    assert noise.nunique() == 1  # label noise has no size: the same items at every severity


def test_gated_cycle_leaves_rejected_items_bought_and_out_of_training(setup):
    res = E.run_gated_cycle(setup, "label", corrupt_rate=1.0, n_items=400, label_budget=60, batch_size=10,
                            secure_aggregation=False)
    assert res.labels_bought[-1] == res.bought.sum() == 60
    assert (res.accepted <= res.bought).all() and res.accepted.sum() == res.labels_used[-1]
    assert np.all(np.diff(res.labels_bought) >= 0) and len(res.accuracy) == len(res.labels_bought)


# ---- the chapter's figures (ppal_lab.chapters.ch09_inverse_simulation_figures) -------------------------
def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_inverse_models_draws_both_methods_and_the_chi2_reference():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters import ch09_inverse_simulation_figures as F

    rows = [(m, h, h + 0.01, r, 0.001) for m in ["grid search", "MLP"] for h, r in [(0.2, 1.0), (0.5, 3.0),
                                                                                     (0.9, 5.0)]]
    details = pd.DataFrame(rows, columns=["method", "true_health", "health", "residual", "roundtrip_error"])
    fig = F.plot_inverse_models(details, n_test=2, seed=0)
    axes = fig.get_axes()
    assert len(axes) == 3 and fig.get_figwidth() <= 7.5
    assert [ax.get_title() for ax in axes] == ["Health from noisy readings", "Residual D² (dashed: χ², 3 dof)",
                                               "Noise-free round trip G(F(c)) - c"]
    assert len(axes[0].collections[0].get_offsets()) == 4  # min(600, n_test) = 2 points per method
    assert len(axes[1].lines) == 1 and axes[1].get_xlabel() == "D² (squared noise SDs)"
    assert _legend_texts(axes[2]) == ["grid search", "MLP"]
    plt.close(fig)


def test_plot_honest_scores_marks_both_thresholds_on_three_histograms():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters import ch09_inverse_simulation_figures as F

    cal = pd.DataFrame({"similarity": [0.4, 0.5, 0.6], "consistency": [0.9, 1.0, 0.8], "score": [0.4, 0.5, 0.6]})
    fig = F.plot_honest_scores(cal, 0.85, 0.31, 0.05)
    axes = fig.get_axes()
    assert len(axes) == 3 and fig.get_figwidth() <= 7.5
    assert axes[2].get_title() == "Honest: verification score min(s, κ)"
    assert [ln.get_xdata()[0] for ln in axes[1].lines] == [0.85, 0.31]
    assert _legend_texts(axes[0]) == ["fixed threshold 0.85", "ROC threshold (5% FPR)"]
    assert axes[1].get_legend() is None
    plt.close(fig)


def test_plot_roc_by_kind_draws_one_curve_per_kind_and_auc_bars():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters import ch09_inverse_simulation_figures as F

    scores = pd.DataFrame({"score": [0.9, 0.8, 0.7, 0.2, 0.6, 0.1],
                           "kind": ["clean", "clean", "clean", "sensor_fault", "label_noise", "label_noise"]})
    per_kind = pd.DataFrame({"kind": ["sensor_fault", "label_noise"] * 2, "seed": [0, 0, 1, 1],
                             "auc": [1.0, 0.6, 0.9, 0.7], "auc_similarity": [1.0, 0.5, 0.9, 0.5],
                             "auc_consistency": [0.5, 0.9, 0.5, 0.8]})
    fig = F.plot_roc_by_kind([SimpleNamespace(scores=scores)], per_kind, seed=4, fpr_target=0.05, n_seeds=2)
    top, bottom = fig.get_axes()
    assert top.get_title() == "ROC of min(s, κ) per anomaly kind (seed 4)"
    assert set(_legend_texts(top)) == {"sensor fault", "label noise"}  # kinds in words
    assert len(bottom.patches) >= 6  # 2 kinds x 3 scores
    assert _legend_texts(bottom) == ["min(s, κ)", "similarity s", "consistency κ"]
    assert bottom.get_xlim() == (0.3, 1.0) and fig.get_figwidth() <= 7.5
    plt.close(fig)


def test_plot_detection_by_severity_shows_declared_severity_and_the_seeds_figure():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters import ch09_inverse_simulation_figures as F

    curves = pd.DataFrame({"severity": [0.0, 3.0, 0.0, 3.0], "detection": [0.1, 0.8, 0.2, 0.2],
                           "kind": ["sensor_drift", "sensor_drift", "label_noise", "label_noise"]})
    fig = F.plot_detection_by_severity(curves, 2.5, n_seeds=3)
    (ax,) = fig.get_axes()
    assert ax.get_title() == "Detection at the ROC threshold against anomaly size (3 seeds, 95% CI)"
    assert {"declared severity 2.5", "the seed's 89%", "sensor_drift", "label_noise"} <= set(_legend_texts(ax))
    assert ax.get_ylim() == (0, 1.02) and fig.get_figwidth() <= 7.5
    plt.close(fig)


def test_plot_secure_similarity_plots_differences_and_one_cost_line_per_mode():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters import ch09_inverse_simulation_figures as F

    sec = SimpleNamespace(plaintext_scores=np.array([0.2, 0.5]), scores=np.array([0.2001, 0.4998]))
    cost = pd.DataFrame({"reveal": ["score", "score", "decision", "decision"], "items": [1, 10, 1, 10],
                         "bytes": [2000, 20000, 1000, 10000], "rounds": [30, 30, 12, 12]})
    fig = F.plot_secure_similarity(sec, cost)
    top, bottom = fig.get_axes()
    assert np.allclose(top.collections[0].get_offsets()[:, 1], [1e-4, -2e-4])
    assert len(bottom.lines) == 2 and list(bottom.lines[0].get_ydata()) == [2.0, 20.0]  # kB
    assert _legend_texts(bottom) == ["reveal score (30 rounds)", "reveal decision (12 rounds)"]
    assert bottom.get_xscale() == "log" and fig.get_figwidth() <= 7.5
    plt.close(fig)


def test_plot_gate_cycle_shows_each_arm_and_its_learning_curve():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters import ch09_inverse_simulation_figures as F

    runs = pd.DataFrame([{"labels": lab, "gate": gate, "seed": s, "accuracy": 0.8 + 0.01 * s,
                          "curve_bought": [0, 5, 10], "curve_accuracy": [0.5, 0.6, 0.7 + 0.01 * s]}
                         for lab, gate in [("clean", "none"), ("corrupted", "label")] for s in (0, 1)])
    runs["arm"] = E.arm_labels(runs)
    fig = F.plot_gate_cycle(runs, n_seeds=2)
    top, bottom = fig.get_axes()
    assert top.get_title() == "Final test accuracy (2 seeds, 95% CI)"
    assert [t.get_text() for t in top.get_yticklabels()] == list(runs["arm"].unique())
    assert _legend_texts(bottom) == list(runs["arm"].unique())
    assert bottom.get_xlabel() == "labels bought (inspections paid)" and fig.get_figwidth() <= 7.5
    plt.close(fig)
