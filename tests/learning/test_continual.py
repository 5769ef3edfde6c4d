"""Tests of ppal_lab.learning.continual: fine-tuning as lambda = 0 over a run, determinism, metrics,
active learning per quarter, and errors on bad input before any work."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ppal_lab.learning import continual as cl, ewc as ew, quarter_tasks as qt
from ppal_lab.data import make_magnet_grades
from ppal_lab.compendium.errors import ParameterError


def test_lambda_zero_run_equals_finetune_run_exactly(tasks):
    ft = cl.run_sequence(tasks, "finetune", epochs=2, hidden=(8,), seed=4)
    ewc0 = cl.run_sequence(tasks, "ewc", ewc_lambda=0.0, epochs=2, hidden=(8,), seed=4)
    for score in cl.SCORES:
        assert np.array_equal(getattr(ft, score), getattr(ewc0, score), equal_nan=True)


def test_same_seed_same_run_and_global_rng_untouched(tasks):
    torch.manual_seed(11)
    before = torch.rand(3)
    torch.manual_seed(11)
    r1 = cl.run_sequence(tasks, "ewc", ewc_lambda=5.0, epochs=2, hidden=(8,), seed=9)
    after = torch.rand(3)
    assert torch.equal(before, after)                  # training drew from its own generators
    r2 = cl.run_sequence(tasks, "ewc", ewc_lambda=5.0, epochs=2, hidden=(8,), seed=9)
    assert np.array_equal(r1.accuracy, r2.accuracy) and np.array_equal(r1.roc_auc, r2.roc_auc)
    data = make_magnet_grades(n_per_month=300, missing_rate=0.5, seed=3)
    again = qt.make_quarter_tasks(data, n_labels=18, n_test=120, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(tasks.labelled, again.labelled))
    assert all(np.array_equal(a, b) for a, b in zip(tasks.X_test, again.X_test))


def test_cl_metrics_by_hand():
    m = cl.cl_metrics([[0.8, 0.5], [0.7, 0.9]])
    assert m["average_accuracy"] == pytest.approx(0.8)
    assert m["backward_transfer"] == pytest.approx(-0.1)
    assert m["plasticity"] == pytest.approx(0.85)
    R = [[0.8, 0.1, 0.1], [0.9, 0.7, 0.2], [0.6, 0.5, 0.75]]
    m = cl.cl_metrics(R)
    assert m["backward_transfer"] == pytest.approx(((0.6 - 0.8) + (0.5 - 0.7)) / 2)
    assert m["past_accuracy"] == pytest.approx(0.55) and m["current_accuracy"] == 0.75
    assert "forgetting" not in m


def test_backward_transfer_is_unbiased_without_forgetting():
    # A model that never changes, scored with noise: its true backward transfer is 0. The mean BWT over
    # many noisy draws stays at 0, whereas a maximum over past rows (Chaudhry's forgetting) is biased up.
    rng = np.random.default_rng(0)
    draws = [cl.cl_metrics(0.8 + 0.02 * rng.standard_normal((4, 4))) for _ in range(4000)]
    bwt = np.array([d["backward_transfer"] for d in draws])
    assert abs(bwt.mean()) < 4 * bwt.std() / np.sqrt(bwt.size)


def test_log_loss_and_validation_scores_match_sklearn(tasks):
    from sklearn.metrics import log_loss, roc_auc_score

    data = make_magnet_grades(n_per_month=300, missing_rate=0.5, seed=3)
    t = qt.make_quarter_tasks(data, n_labels=18, n_test=120, seed=3, n_val=60)
    run = cl.run_sequence(t, "finetune", epochs=3, hidden=(8,), seed=1)
    model = ew.make_mlp(t.n_inputs, (8,), 2, qt.seed_of(1, 1))
    for q in range(t.n_quarters):       # replay the run (early stopping on the quarter's validation drives)
        ew.train_quarter(model, *t.train_set(q), epochs=3, seed=qt.seed_of(1, 2, q), val=(t.X_val[q], t.y_val[q]))
        assert run.epochs_run[q] == model.best_epoch_
    p_test = ew.TorchClassifier(model).predict_proba(t.X_test[0])[:, 1]
    p_val = ew.TorchClassifier(model).predict_proba(t.X_val[0])[:, 1]
    assert run.log_loss[-1, 0] == pytest.approx(log_loss(t.y_test[0], p_test))
    assert run.val_roc_auc[-1, 0] == pytest.approx(roc_auc_score(t.y_val[0], p_val))
    assert run.val_log_loss[-1, 0] == pytest.approx(log_loss(t.y_val[0], p_val))
    no_val = cl.run_sequence(tasks, "finetune", epochs=2, hidden=(8,), seed=4)
    assert np.isnan(no_val.val_roc_auc).all()


def test_active_learning_per_quarter_queries_the_pool(tasks):
    run = cl.run_sequence(tasks, "finetune", epochs=2, hidden=(8,), strategy="entropy", seed=0)
    assert np.array_equal(run.queried[0], tasks.labelled[0])
    for q in range(1, tasks.n_quarters):
        assert np.unique(run.queried[q]).size == tasks.n_labels
        assert run.queried[q].max() < len(tasks.y_pool[q])
    joint = cl.run_sequence(tasks, "joint", epochs=1, hidden=(8,), seed=0)
    assert joint.n_train.tolist() == [18, 36, 54, 72]


@pytest.mark.parametrize("call, name", [
    (lambda t: ew.EWC(-1.0), "ewc_lambda"),
    (lambda t: ew.EWC(float("nan")), "ewc_lambda"),
    (lambda t: ew.EWC(1.0, fisher="diagonal"), "fisher"),
    (lambda t: ew.EWC(1.0, consolidation="merge"), "consolidation"),
    (lambda t: ew.EWC(1.0, gamma=1.5), "gamma"),
    (lambda t: cl.run_sequence(t, "ewc", ewc_lambda=-0.1), "ewc_lambda"),
    (lambda t: cl.run_sequence(t, "finetune", ewc_lambda=1.0), "ewc_lambda"),
    (lambda t: cl.run_sequence(t, "replay"), "method"),
    (lambda t: cl.run_sequence(t, "ewc", epochs=0), "epochs"),
    (lambda t: cl.run_sequence(t, "ewc", strategy="density"), "strategy"),
    (lambda t: cl.run_sequence(t, "ewc", hidden=()), "hidden"),
    (lambda t: cl.run_sequence(t, "ewc", lr=0.0), "lr"),
    (lambda t: cl.run_sequence("tasks", "ewc"), "tasks"),
    (lambda t: ew.make_mlp(0), "n_inputs"),
    (lambda t: ew.ewc_penalty(nn.Linear(2, 2), [], [], -2.0), "ewc_lambda"),
    (lambda t: ew.fisher_diagonal(nn.Linear(2, 2), np.full((3, 2), np.nan)), "X"),
    (lambda t: ew.fisher_diagonal(nn.Linear(2, 2), np.ones((3, 2)), kind="empirical"), "y"),
    (lambda t: ew.fisher_diagonal(nn.Linear(2, 2), np.ones((3, 2)), kind="hessian"), "kind"),
    (lambda t: ew.train_quarter(nn.Linear(2, 2), np.ones((3, 2)), [0, 1]), "y"),
    (lambda t: cl.lambda_grid(10.0, 1.0, 3), "lambda_max"),
    (lambda t: cl.lambda_grid(0.0, 1.0, 3), "lambda_min"),
    (lambda t: cl.cl_metrics([[0.5, 0.5]]), "R"),
    (lambda t: cl.check_settings(10_000, 0, 100), "n_labels"),
    (lambda t: cl.check_settings(10_000, 601, 100), "n_labels"),
    (lambda t: cl.check_settings(10_000, 600, 0), "n_test"),
    (lambda t: qt.MissingnessEncoder(["a"]).transform(pd.DataFrame({"a": [1.0]})), "encoder"),
])
def test_bad_input_raises_parameter_error(tasks, call, name):
    with pytest.raises(ParameterError) as err:
        call(tasks)
    assert err.value.name == name


def test_check_training_normalises_and_names_the_bad_setting():
    assert cl.check_training(3, 16, 0.01, 8, "true", "online", "entropy") == (3, (16,), 0.01, 8)
    with pytest.raises(ParameterError, match="consolidation"):
        cl.check_training(3, 16, 0.01, 8, "true", "sometimes", "entropy")
