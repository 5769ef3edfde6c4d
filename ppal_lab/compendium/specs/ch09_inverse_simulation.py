"""Spec of notebook 09_inverse_simulation: its parameters, the constraints between them and its claims."""
from __future__ import annotations

from ppal_lab.compendium.params import TIMING, Constraint, NotebookSpec, Param
from ppal_lab.compendium.specs.common import SEED, seeds_fit
from ppal_lab.compendium.specs.registry import register
from ppal_lab.compendium.verdicts import Claim


def _verify_pool(v) -> int:
    """Items of chapter 09's collaborative cycle outside its test quarter (``verify.validate_setup``)."""
    return v["n_items"] - int(round(0.25 * v["n_items"]))


register(NotebookSpec(
    name="09_inverse_simulation",
    title="Inverse-simulation verification: the trust layer",
    params=(
        SEED,
        # 10 (was 5): what the 180 s budget affords with the seed's 5 queries a round, chosen before the gate's
        # gain was measured at that batch size; the gate claim's record says how many seeds would resolve it
        Param("n_seeds", int, 10, "independent repeats (seed, seed + 1, ...) behind every 95% CI", low=2, high=50),
        Param("n_items", int, 2000, "items per repeat: the verified test stream, each calibration half, and "
              "the collaborative cycle's population", low=200, high=200_000),
        Param("anomaly_rate", float, 0.2, "fraction of the test stream made anomalous (kinds in equal shares)",
              low=0.0, high=1.0, high_open=True),
        Param("anomaly_kinds", list, ["tampered_prediction", "sensor_fault", "sensor_drift", "ood_component",
                                      "label_noise"], "anomaly kinds injected",
              choices=("tampered_prediction", "sensor_fault", "sensor_drift", "ood_component", "label_noise")),
        Param("fpr_target", float, 0.05, "false-positive rate at which the ROC threshold is set on honest "
              "calibration items", low=0.0, high=1.0, low_open=True, high_open=True),
        Param("threshold", float, 0.85, "fixed threshold on both scores compared with the ROC one (the seed's 0.85)",
              low=0.0, high=1.0, low_open=True, high_open=True),
        Param("inverse", str, "grid", "the verifier's inverse model: grid search (maximum likelihood) or a learned "
              "MLP", choices=("grid", "mlp")),
        Param("claimant", str, "mlp", "inverse model of the honest claimants, fitted apart from the verifier's "
              "(an MLP on its own items and seed; 'grid' with a grid verifier is the circular case)",
              choices=("grid", "mlp")),
        Param("verifier_labels", int, 400, "trusted labels the verifier may use: half fit its decision model, "
              "half set its threshold (<= label_budget, what the consortium pays for)", low=20, high=150_000),
        # declared before any detection curve was measured: 3 noise SDs, the classical 3-sigma fault size
        Param("severity", float, 3.0, "size of the graded anomalies (tampering, drift, out-of-catalogue) in noise "
              "units at which the detection claim is read", low=0.0, high=20.0),
        Param("n_secure", int, 256, "test items verified on secret shares in the one CrypTen launch (<= n_items)",
              low=16, high=5000),
        Param("n_sites", int, 4, "participants of the collaborative cycle (one of them corrupts labels)",
              low=2, high=20),
        Param("corrupt_rate", float, 1.0, "probability that the corrupted participant's inspector answers an "
              "item wrongly", low=0.0, high=1.0),
        Param("label_budget", int, 400, "labels bought in the collaborative cycle, 20 initial ones included "
              "(<= 3/4 n_items)", low=21, high=150_000),
        Param("batch_size", int, 5, "labels bought per round of the cycle (the seed queries 5)", low=1, high=10_000),
        Param("strategy", str, "least_confident", "query strategy of the cycle",
              choices=("random", "least_confident", "margin", "entropy")),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("n_secure", "n_items"), lambda v: v["n_secure"] <= v["n_items"],
                   lambda v: f"<= n_items = {v['n_items']:,} (the secure batch comes from the test stream)"),
        Constraint(("anomaly_kinds",), lambda v: len(set(v["anomaly_kinds"])) == len(v["anomaly_kinds"]),
                   "a list without repeats"),
        Constraint(("anomaly_rate", "n_items", "anomaly_kinds"),
                   lambda v: round(v["anomaly_rate"] * v["n_items"]) // len(v["anomaly_kinds"]) >= 5,
                   lambda v: f">= {5 * len(v['anomaly_kinds']) / v['n_items']:.3g} so that each of the "
                             f"{len(v['anomaly_kinds'])} anomaly kinds gets at least 5 of the n_items = "
                             f"{v['n_items']:,} test items"),
        Constraint(("label_budget", "n_items"), lambda v: v["label_budget"] <= _verify_pool(v),
                   lambda v: f"<= {_verify_pool(v):,}, the cycle's pool (n_items less its test quarter)"),
        Constraint(("batch_size", "label_budget"), lambda v: v["batch_size"] <= v["label_budget"],
                   lambda v: f"<= label_budget = {v['label_budget']}"),
        Constraint(("verifier_labels", "label_budget"), lambda v: v["verifier_labels"] <= v["label_budget"],
                   lambda v: f"<= label_budget = {v['label_budget']} (the verifier knows no more labels than the "
                             "consortium can buy)"),
    ),
    headline=("detection_at_severity", "detection_rate_at_fpr", "false_positive_rate", "fpr_mismatch", "fixed_threshold_false_positive_rate",
              "auc_label_noise", "secure_max_abs_error", "gate_accuracy_gain"),
    budget_s=180.0,
    tolerances=(("*_time_s", TIMING), ("*_wall_s", TIMING)),  # wall times are not results
    claims=(
        # re-declared after review (issue 15): the pooled rate over the kinds' ranges was set by the chosen
        # sizes; the rule now reads detection at the spec's declared severity, the first rule is kept
        Claim("inverse_simulation_detection", "000", "Inverse simulation caught 89% of anomalous predictions that "
              "would otherwise have gone undetected. (Read at the declared severity, 3 noise SDs. No effect: a "
              "verifier without skill, which flags anomalous items at the rate it flags honest ones, the default "
              "5% its threshold is set to.)", "89%", "effect",
              metric="detection_at_severity", target=0.89, null=0.05,
              first_rule=Claim("inverse_simulation_detection", "000", "Inverse simulation caught 89% of anomalous "
                               "predictions, pooled over the anomaly kinds' ranges.", "89%", "effect",
                               metric="detection_rate_at_fpr", target=0.89, null=0.05)),
        Claim("fixed_consistency_threshold", "000", "A prediction is verified when its similarity and consistency "
              "both exceed a fixed threshold of 0.85. (A verifier must pass honest predictions; the seed states no "
              "false-positive rate, so the fixed threshold is held to flagging at most 10% of honest items, twice "
              "the default rate the ROC threshold is set to.)", "threshold 0.85", "goal",
              metric="fixed_threshold_false_positive_rate", target=0.10, direction=-1),
        Claim("verification_without_exposure", "000", "Verification without exposure is possible: consistency "
              "checks provide a trust layer even when the data remain encrypted (the similarity is computed "
              "homomorphically). (Holds when the verification on secret shares that opens nothing but each item's "
              "decision bit gives every item's plaintext verdict.)", "qualitative (no figure)", "qualitative",
              metric="bits_only_verification_exact"),
        Claim("verified_label_gate", "000", "Updating the collaborative model with verified labels only protects it "
              "from anomalous labels. (The seed gives no figure: read as a direction, the per-label gate's accuracy "
              "gain over no gate, with one site's inspector answering wrongly, is above zero.)",
              "qualitative (no figure)", "goal", metric="gate_accuracy_gain", target=0.0),
    ),
))

