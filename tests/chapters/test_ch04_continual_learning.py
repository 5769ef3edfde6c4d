"""Tests of ppal_lab.chapters.ch04_continual_learning: the experiment driver (deterministic, paired by seed,
validated before any data exist), the summaries and the figures the chapter's declared claims read."""
from __future__ import annotations

from types import SimpleNamespace

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


def test_every_declared_claim_reads_a_paired_metric_of_the_record():
    frame = ch04.run_experiment([0, 1], ewc_lambdas=[10.0], n_labels=12, n_test=100, n_per_month=200, epochs=2,
                                hidden=(8,))
    summ = {score: ch04.summarise(frame, score) for score in ch04.SCORE_NAME}
    P = SimpleNamespace(missing_rate=0.8, n_seeds=2, seed=0, ewc_lambda=10.0)
    record = ResultRecord("04_continual_learning", {"seed": 0})
    ch04.fill_metrics(record, P, "EWC λ=10", [("", summ, frame, 0.8), ("contrast_", summ, frame, 0.8)])
    verdicts = ch04.add_claims(record, P, "EWC λ=10")
    assert list(verdicts) == [c.id for c in SPECS["04_continual_learning"].claims]
    M = record.metrics
    for suffix in ("", "_auc"):  # the paired differences are those of the two methods' own figures
        assert M[f"ewc_minus_finetune_backward_transfer{suffix}"]["value"] == pytest.approx(
            M[f"ewc_backward_transfer{suffix}"]["value"] - M[f"finetune_backward_transfer{suffix}"]["value"])
    glued = ch04.glue_values(record, P, pd.DataFrame({"majority-class accuracy": [0.7, 0.8]}))
    assert {glued[f"verdict_{cid}"] for cid in verdicts} <= set(VERDICTS)


@pytest.mark.parametrize("kw, name", [
    (dict(missing_rate=1.0), "missing_rate"), (dict(missing_rate=-0.1), "missing_rate"),
    (dict(n_labels=0), "n_labels"), (dict(n_labels=10**5), "n_labels"),
    (dict(ewc_lambdas=[-1.0]), "ewc_lambdas"), (dict(epochs=0), "epochs"),
    (dict(fisher="x"), "fisher"), (dict(methods=["ewc", "replay"]), "methods"),
])
def test_run_experiment_validates_before_generating_data(monkeypatch, kw, name):
    def forbidden(*a, **k):
        raise AssertionError("data generated before validation")

    monkeypatch.setattr(ch04, "make_magnet_grades", forbidden)
    args = dict(ewc_lambdas=[1.0]) | kw
    with pytest.raises(ParameterError) as err:
        ch04.run_experiment([0], **args)
    assert err.value.name == name

