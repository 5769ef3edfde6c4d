"""Tests of ppal_lab.chapters.ch04_continual_learning: the experiment driver (deterministic, paired by seed,
validated before any data exist), the summaries and the verdict rules of the chapter's two claims."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters import ch04_continual_learning as ch04
from ppal_lab.compendium.errors import ParameterError



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



def test_verdict_rules():
    neg, zero, pos = [-0.05, -0.04, -0.06], [-0.05, 0.04, 0.01], [0.05, 0.04, 0.06]
    assert ch04.ci_sign(neg) == -1 and ch04.ci_sign(zero) == 0 and ch04.ci_sign(pos) == 1
    assert ch04.forgetting_verdict({"accuracy": neg, "roc_auc": neg}) == "reproduced"
    assert ch04.forgetting_verdict({"accuracy": zero, "roc_auc": neg}) == "partly"
    assert ch04.forgetting_verdict({"accuracy": zero}, {"roc_auc": neg}) == "partly"
    assert ch04.forgetting_verdict({"accuracy": zero, "roc_auc": pos}) == "not reproduced"
    assert ch04.mitigation_verdict({"a": pos, "b": pos}, {"a": zero, "b": pos}) == "reproduced"
    assert ch04.mitigation_verdict({"a": pos, "b": zero}, {"a": zero, "b": zero}) == "partly"
    assert ch04.mitigation_verdict({"a": pos}, {"a": neg}) == "partly"
    assert ch04.mitigation_verdict({"a": zero}, {"a": pos}) == "partly"
    assert ch04.mitigation_verdict({"a": zero}, {"a": neg}) == "not reproduced"
    table = ch04.ci_table(pd.DataFrame({"g": ["x"] * 3 + ["y"], "v": neg + [1.0]}), "g", "v")
    assert table["n"].tolist() == [3, 1] and table["low"].iloc[0] < -0.05 < table["high"].iloc[0]



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

