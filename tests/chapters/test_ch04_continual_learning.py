"""Tests of ppal_lab.chapters.ch04_continual_learning: the experiment driver (deterministic, paired by seed,
validated before any data exist), the summaries and the figures the chapter's declared claims read."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters import ch04_continual_learning as ch04
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS
from ppal_lab.compendium.verdicts import VERDICTS



def test_experiment_is_deterministic_and_paired():
    kw = dict(ewc_lambdas=[10.0], n_labels=12, n_test=100, n_per_month=200, epochs=2, hidden=(8,))
    f1 = ch04.run_experiment([0, 1], **kw)
    f2 = ch04.run_experiment([0, 1], **kw)
    pd.testing.assert_frame_equal(f1, f2)
    assert set(f1["label"]) == {"finetune", "joint", "EWC λ=10"}
    first = f1[f1["train_quarter"] == 0].groupby(["seed", "eval_quarter"])["accuracy"].nunique()
    assert (first == 1).all()       # before any consolidation all methods are the same network
    s = ch04.summarise(f1)
    assert len(s) == 6 and np.isfinite(s["backward_transfer"]).all()
    assert ch04.paired_difference(s, "average_accuracy", "joint", "finetune").shape == (2,)



def test_ci_table_gives_the_t_interval_per_group():
    neg = [-0.05, -0.04, -0.06]
    table = ch04.ci_table(pd.DataFrame({"g": ["x"] * 3 + ["y"], "v": neg + [1.0]}), "g", "v")
    assert table["n"].tolist() == [3, 1] and table["low"].iloc[0] < -0.05 < table["high"].iloc[0]
    assert table["low"].iloc[1] == table["high"].iloc[1] == 1.0


def _small_record(concept="conflict"):
    kw = dict(ewc_lambdas=[10.0, 1000.0], n_labels=12, n_test=100, n_val=60, n_per_month=200, epochs=3,
              hidden=(8,), concept=concept)
    frame = ch04.run_experiment([0, 1], **kw)
    chosen = ch04.validation_lambda(frame)
    summ = {score: ch04.with_validation_choice(ch04.summarise(frame, score), chosen) for score in ch04.SCORE_NAME}
    P = SimpleNamespace(missing_rate=0.8, n_seeds=2, seed=0, ewc_lambda=1000.0, concept=concept, epochs=3)
    record = ResultRecord("04_continual_learning", {"seed": 0})
    ch04.fill_metrics(record, P, "EWC λ=1000", [("", summ, frame, 0.8), ("contrast_", summ, frame, 0.8)])
    return record, P, frame, chosen


def test_every_declared_claim_reads_a_paired_metric_of_the_record():
    record, P, frame, chosen = _small_record()
    verdicts = ch04.add_claims(record, P, "EWC λ=1000")
    assert list(verdicts) == [c.id for c in SPECS["04_continual_learning"].claims]
    M = record.metrics
    for suffix in ("auc", "logloss", "accuracy"):  # the paired differences are those of the two methods' own figures
        assert M[f"ewc_minus_finetune_bwt_{suffix}"]["value"] == pytest.approx(
            M[f"bwt_ewc_{suffix}"]["value"] - M[f"bwt_finetune_{suffix}"]["value"])
    assert M["headroom_bwt_auc"]["value"] == pytest.approx(M["bwt_joint_auc"]["value"] - M["bwt_finetune_auc"]["value"])
    assert M["lambda_validation"]["value"] == pytest.approx(chosen.mean())
    assert 1 <= M["epochs_to_convergence"]["value"] <= 3
    glued = ch04.glue_values(record, P, pd.DataFrame({"majority-class accuracy": [0.7, 0.8]}))
    assert {glued[f"verdict_{cid}"] for cid in verdicts} <= set(VERDICTS)


def test_claims_are_not_measurable_when_the_bed_has_no_headroom():
    record, P, _, _ = _small_record()
    spec_min = {c.headroom_min for c in SPECS["04_continual_learning"].claims}
    assert spec_min == {0.05} and {c.headroom for c in SPECS["04_continual_learning"].claims} == {"headroom_bwt_auc"}
    record.metrics["headroom_bwt_auc"]["value"] = 0.049          # a bed that cannot show avoidable forgetting
    verdicts = ch04.add_claims(record, P, "EWC λ=1000")
    assert set(verdicts.values()) == {"not measurable"}
    record.metrics["headroom_bwt_auc"]["value"], record.claims = 0.2, []
    assert "not measurable" not in set(ch04.add_claims(record, P, "EWC λ=1000").values())


def test_lambda_is_chosen_on_validation_drives_never_on_test_drives():
    # Two weights: the test drives favour 10, the validation drives favour 1000; a leaky choice would say 10.
    rows = []
    for lam, test, val in [(10.0, 0.9, 0.6), (1000.0, 0.6, 0.7)]:
        for j in range(2):
            rows.append(dict(seed=0, method="ewc", ewc_lambda=lam, label=f"EWC λ={lam:g}", train_quarter=1,
                             eval_quarter=j, roc_auc=test, val_roc_auc=val))
    frame = pd.DataFrame(rows)
    assert ch04.validation_lambda(frame).to_dict() == {0: 1000.0}
    frame["val_roc_auc"] = 0.65                                    # a tie goes to the smaller weight
    assert ch04.validation_lambda(frame).to_dict() == {0: 10.0}
    with pytest.raises(ParameterError):
        ch04.validation_lambda(frame.assign(val_roc_auc=np.nan))


def test_conflict_bed_reverses_the_date_effect_between_families_and_leaves_the_default_alone():
    from ppal_lab.data import make_magnet_grades

    base = make_magnet_grades(n_per_month=400, seed=5)
    assert base.X.equals(make_magnet_grades(n_per_month=400, seed=5, concept="gradual").X)
    d = make_magnet_grades(n_per_month=400, missing_rate=0.0, seed=5, concept="conflict")
    q, m = d.meta["quarter"].to_numpy(), d.X_complete["manufacturer"].to_numpy()
    assert all(set(np.unique(m[q == k])) == {2 * k, 2 * k + 1} for k in range(4))   # a new family each quarter
    date, logit = d.X_complete["manufacturing_date"].to_numpy(), d.latent["grade_logit"].to_numpy()
    slopes = [np.polyfit(date[q == k], logit[q == k], 1)[0] for k in range(4)]
    assert slopes[0] > 0.2 and slopes[1] < -0.2 and slopes[2] > 0.2 and slopes[3] < -0.2
    with pytest.raises(ParameterError) as err:
        make_magnet_grades(n_per_month=100, drift=False, concept="conflict")
    assert err.value.name == "concept"


@pytest.mark.parametrize("kw, name", [
    (dict(missing_rate=1.0), "missing_rate"), (dict(missing_rate=-0.1), "missing_rate"),
    (dict(n_labels=0), "n_labels"), (dict(n_labels=10**5), "n_labels"),
    (dict(ewc_lambdas=[-1.0]), "ewc_lambdas"), (dict(epochs=0), "epochs"),
    (dict(fisher="x"), "fisher"), (dict(methods=["ewc", "replay"]), "methods"),
    (dict(concept="sudden"), "concept"), (dict(n_val=-1), "n_val"),
])
def test_run_experiment_validates_before_generating_data(monkeypatch, kw, name):
    def forbidden(*a, **k):
        raise AssertionError("data generated before validation")

    monkeypatch.setattr(ch04, "make_magnet_grades", forbidden)
    args = dict(ewc_lambdas=[1.0]) | kw
    with pytest.raises(ParameterError) as err:
        ch04.run_experiment([0], **args)
    assert err.value.name == name



# --------------------------------------------------------------------------------------------------
# The notebook's figures and exercise tables
# --------------------------------------------------------------------------------------------------
def _long_frame(cells):
    """A run_experiment-like long frame over two quarters: ``cells`` maps (seed, label) to the 2 x 2 matrix of
    every score (ROC AUC; log-loss and accuracy are derived from it)."""
    rows = []
    for (seed, label), R in cells.items():
        method, lam = ("ewc", 10.0) if label.startswith("EWC") else (label, 0.0)
        for i in range(2):
            for j in range(2):
                rows.append({"seed": seed, "method": method, "ewc_lambda": lam, "label": label, "train_quarter": i,
                             "eval_quarter": j, "roc_auc": R[i][j], "log_loss": 1 - R[i][j],
                             "accuracy": R[i][j] - 0.1})
    return pd.DataFrame(rows)


LABELS = ["finetune", "EWC λ=10", "joint"]
FRAME = _long_frame({(s, label): [[0.8 + 0.1 * s, 0.5], [0.6, 0.9 - k * 0.1]]
                     for s in (0, 1) for k, label in enumerate(LABELS)})


def test_score_matrices_show_the_mean_matrix_of_every_configuration_and_score():
    fig = ch04.plot_score_matrices(FRAME, LABELS, 2, n_seeds=2, missing_rate=0.8)
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 10 and len(shown) == 9  # three scores x three configurations, two per row
    assert shown[0].get_title() == "finetune: ROC AUC" and shown[-1].get_title() == "joint: accuracy"
    assert [t.get_text() for t in shown[0].texts] == ["0.850", "0.500", "0.600", "0.900"]  # seeds 0 and 1 averaged
    assert [t.get_text() for t in shown[0].get_xticklabels()] == ["Q1", "Q2"]
    assert fig._suptitle.get_text() == "Score matrices, mean of 2 seeds (80% missing values)"
    assert fig.get_size_inches()[0] == 7.5
    plt.close(fig)


def test_past_vs_current_draws_current_and_past_lines_per_configuration():
    fig = ch04.plot_past_vs_current(FRAME, LABELS, 2)
    top, bottom = fig.axes
    assert top.get_title() == "ROC AUC: current vs past quarters" and bottom.get_title().startswith("log-loss")
    assert len(top.containers) == 6  # three configurations x (current, past)
    current = top.containers[0].lines[0]  # finetune, current quarter: 0.85 then 0.9
    assert list(current.get_ydata()) == pytest.approx([0.85, 0.9]) and list(current.get_xdata()) == [1, 2]
    labels = [t.get_text() for t in bottom.get_legend().get_texts()]
    assert "finetune, current quarter" in labels and "joint, past quarters" in labels and top.get_legend() is None
    assert fig.get_size_inches()[0] == 7.5
    plt.close(fig)


def test_variant_table_sets_the_exercise_runs_beside_the_chosen_seeds():
    summary = ch04.summarise(_long_frame({(s, label): [[0.7 + 0.1 * s, 0.5], [0.6, 0.8]]
                                          for s in (0, 1, 2) for label in ("finetune", "EWC λ=10")}), "roc_auc")
    other = _long_frame({(0, "EWC λ=10"): [[0.8, 0.5], [0.6, 0.9]], (0, "finetune"): [[0.5, 0.5], [0.5, 0.5]]})
    table = ch04.variant_table(summary, other, [0, 1], "fisher", ("true", "empirical"), ["EWC λ=10"])
    assert list(table.columns) == list(ch04.METRICS) and list(table.index) == ["empirical", "true"]
    # seeds 0 and 1 only: backward transfer 0.6 - 0.7 and 0.6 - 0.8, plasticity 0.75 and 0.8
    assert table.loc["true"].tolist() == pytest.approx([0.7, -0.15, 0.775])
    # every run of ``other`` counts: EWC (0.75, -0.2, 0.85) and fine-tuning (0.5, 0, 0.5)
    assert table.loc["empirical"].tolist() == pytest.approx([0.625, -0.1, 0.675])
    both = ch04.variant_table(summary, other, [0], "labels", ("random", "entropy"), ["finetune", "EWC λ=10"])
    assert both.index.names == ["label", "labels"] and len(both) == 4
    assert both.loc[("finetune", "entropy"), "plasticity"] == pytest.approx(0.5)


def test_fisher_traces_are_positive_per_kind_and_reproducible():
    from ppal_lab.learning import ewc

    Pq = SimpleNamespace(n_per_month=200, contrast_missing_rate=0.0, seed=0, concept="conflict", n_labels=12,
                         n_test=100, epochs=2)
    traces = ch04.fisher_traces(Pq, (8,))
    assert list(traces.index) == list(ewc.FISHER_KINDS) and traces.name == "total Fisher (trace)"
    assert (traces > 0).all()
    pd.testing.assert_series_equal(traces, ch04.fisher_traces(Pq, (8,)))
