"""Tests of ppal_lab.learning.continual: the EWC penalty, the Fisher diagonal, fine-tuning as lambda = 0,
determinism, metrics, the encoder, and errors on bad input before any work."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ppal_lab.learning import continual as cl
from ppal_lab.data import make_magnet_grades
from ppal_lab.compendium.errors import ParameterError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small networks: one thread is fastest and avoids oversubscribing a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tasks():
    """A small drifting magnet data set: 18 labelled drives per quarter, 4 quarters."""
    data = make_magnet_grades(n_per_month=300, missing_rate=0.5, seed=3)
    return cl.make_quarter_tasks(data, n_labels=18, n_test=120, seed=3)


def _tiny_linear():
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model.bias.copy_(torch.tensor([0.5, -0.5]))
    return model


# --------------------------------------------------------------------------------------------------
# EWC penalty
# --------------------------------------------------------------------------------------------------
def test_ewc_penalty_matches_hand_computation():
    model = _tiny_linear()
    fisher1 = {"weight": torch.tensor([[1.0, 2.0], [0.5, 1.0]]), "bias": torch.tensor([2.0, 4.0])}
    anchor1 = {"weight": torch.tensor([[0.0, 1.0], [1.0, 1.0]]), "bias": torch.zeros(2)}
    # by hand: weight diffs (1, 1, 2, 3) -> F * d^2 = 1*1 + 2*1 + 0.5*4 + 1*9 = 14;
    # bias diffs (0.5, -0.5) -> 2*0.25 + 4*0.25 = 1.5; total 15.5; lambda/2 = 1.5 -> 23.25
    assert cl.ewc_penalty(model, [fisher1], [anchor1], 3.0).item() == pytest.approx(23.25)
    # a second past task: unit Fisher, every weight 1 away from its anchor -> 6 * 1.5 = 9 more
    fisher2 = {k: torch.ones_like(v) for k, v in fisher1.items()}
    anchor2 = {k: v.detach() + 1.0 for k, v in model.named_parameters()}
    assert cl.ewc_penalty(model, [fisher1, fisher2], [anchor1, anchor2], 3.0).item() == pytest.approx(32.25)
    assert cl.ewc_penalty(model, [], [], 3.0).item() == 0.0


def test_ewc_class_penalty_and_gradient():
    torch.manual_seed(0)
    model = cl.make_mlp(4, (3,), 2, seed=1)
    X = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    ewc = cl.EWC(2.5)
    ewc.consolidate(model, X)
    assert ewc.penalty(model).item() == 0.0          # at the anchor
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    pen = ewc.penalty(model)
    ref = cl.ewc_penalty(model, ewc.fishers, ewc.anchors, 2.5)
    assert pen.item() == pytest.approx(ref.item(), rel=1e-6)
    pen.backward()
    for name, p in model.named_parameters():        # d/dtheta = lambda * F * (theta - theta*)
        expect = 2.5 * ewc.fishers[0][name] * (p.detach() - ewc.anchors[0][name])
        torch.testing.assert_close(p.grad, expect)


def test_online_consolidation_sums_fishers_and_moves_anchor():
    model = cl.make_mlp(3, (4,), 2, seed=0)
    rng = np.random.default_rng(1)
    X1, X2 = (rng.standard_normal((25, 3)).astype(np.float32) for _ in range(2))
    ewc = cl.EWC(1.0, consolidation="online", gamma=0.5)
    ewc.consolidate(model, X1)
    f1 = cl.fisher_diagonal(model, X1)
    with torch.no_grad():
        model[0].weight.add_(0.3)
    ewc.consolidate(model, X2)
    f2 = cl.fisher_diagonal(model, X2)
    assert len(ewc.fishers) == 1 and len(ewc.anchors) == 1
    for k in f1:
        torch.testing.assert_close(ewc.fishers[0][k], 0.5 * f1[k] + f2[k])
    torch.testing.assert_close(ewc.anchors[0]["0.weight"], model[0].weight.detach())
    per_task = cl.EWC(1.0)
    per_task.consolidate(model, X1)
    per_task.consolidate(model, X2)
    assert len(per_task.fishers) == 2


# --------------------------------------------------------------------------------------------------
# Fisher diagonal against a direct per-sample gradient computation
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", cl.FISHER_KINDS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fisher_diagonal_matches_per_sample_loop(kind, n_classes):
    rng = np.random.default_rng(n_classes)
    X = rng.standard_normal((23, 5)).astype(np.float32)
    y = rng.integers(0, n_classes, 23)
    model = cl.make_mlp(5, (4, 3), n_classes, seed=7)
    got = cl.fisher_diagonal(model, X, y, kind=kind, batch_size=6)   # several uneven batches

    want = {k: torch.zeros_like(v) for k, v in model.named_parameters()}
    for n in range(X.shape[0]):
        logp = torch.log_softmax(model(torch.from_numpy(X[n:n + 1])), dim=-1)[0]
        probs = logp.exp().detach()
        for c in range(n_classes):
            weight = probs[c] if kind == "true" else float(c == y[n])
            model.zero_grad()
            logp[c].backward(retain_graph=True)
            for k, p in model.named_parameters():
                want[k] += weight * p.grad.pow(2)
    for k in want:
        torch.testing.assert_close(got[k], want[k] / X.shape[0], rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------------------------------
# lambda = 0 is plain fine-tuning; determinism
# --------------------------------------------------------------------------------------------------
def test_lambda_zero_training_step_equals_finetuning_exactly(tasks):
    X0, y0 = tasks.train_set(0)
    X1, y1 = tasks.train_set(1)
    a = cl.make_mlp(tasks.n_inputs, (8, 8), 2, seed=5)
    b = cl.make_mlp(tasks.n_inputs, (8, 8), 2, seed=5)
    for m in (a, b):
        cl.train_quarter(m, X0, y0, epochs=3, batch_size=4, seed=1)
    ewc = cl.EWC(0.0)
    ewc.consolidate(b, X0, y0)
    assert any(f.abs().sum() > 0 for f in ewc.fishers[0].values())   # a real, non-zero Fisher
    cl.train_quarter(a, X1, y1, epochs=3, batch_size=4, seed=2)
    cl.train_quarter(b, X1, y1, epochs=3, batch_size=4, seed=2, penalty=ewc.penalty)
    for (ka, pa), (kb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(pa, pb)


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
    again = cl.make_quarter_tasks(data, n_labels=18, n_test=120, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(tasks.labelled, again.labelled))
    assert all(np.array_equal(a, b) for a, b in zip(tasks.X_test, again.X_test))


def test_experiment_is_deterministic_and_paired():
    kw = dict(ewc_lambdas=[10.0], n_labels=12, n_test=100, n_per_month=200, epochs=2, hidden=(8,))
    f1 = cl.run_experiment([0, 1], **kw)
    f2 = cl.run_experiment([0, 1], **kw)
    pd.testing.assert_frame_equal(f1, f2)
    assert set(f1["label"]) == {"finetune", "joint", "EWC λ=10"}
    first = f1[f1["train_quarter"] == 0].groupby(["seed", "eval_quarter"])["accuracy"].nunique()
    assert (first == 1).all()       # before any consolidation all methods are the same network
    s = cl.summarise(f1)
    assert len(s) == 6 and np.isfinite(s["backward_transfer"]).all()
    assert cl.paired_difference(s, "average_accuracy", "joint", "finetune").shape == (2,)


# --------------------------------------------------------------------------------------------------
# EWC does what it is for, on a task pair built to conflict
# --------------------------------------------------------------------------------------------------
def test_ewc_protects_a_conflicting_earlier_task():
    """Task B flips task A's labels on the same inputs: fine-tuning unlearns A completely; a strong
    penalty keeps part of it (the true Fisher of a confident network is small, so only part)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 2)).astype(np.float32)
    yA = (X[:, 0] > 0).astype(int)

    def accuracy_on_a_after_b(lam):
        m = cl.make_mlp(2, (16,), 2, seed=0)
        cl.train_quarter(m, X, yA, epochs=30, batch_size=50, seed=0, lr=1e-2)
        ewc = cl.EWC(lam)
        ewc.consolidate(m, X, yA)
        cl.train_quarter(m, X, 1 - yA, epochs=30, batch_size=50, seed=1, lr=1e-2,
                          penalty=ewc.penalty)
        return float(np.mean(cl.TorchClassifier(m).predict(X) == yA))

    finetuned, protected = accuracy_on_a_after_b(0.0), accuracy_on_a_after_b(1000.0)
    assert finetuned < 0.05 and protected > finetuned + 0.2


# --------------------------------------------------------------------------------------------------
# metrics, encoder, active learning per quarter
# --------------------------------------------------------------------------------------------------
def test_cl_metrics_by_hand():
    m = cl.cl_metrics([[0.8, 0.5], [0.7, 0.9]])
    assert m["average_accuracy"] == pytest.approx(0.8)
    assert m["backward_transfer"] == pytest.approx(-0.1)
    assert m["forgetting"] == pytest.approx(0.1)
    assert m["plasticity"] == pytest.approx(0.85)
    R = [[0.8, 0.1, 0.1], [0.9, 0.7, 0.2], [0.6, 0.5, 0.75]]
    m = cl.cl_metrics(R)
    assert m["backward_transfer"] == pytest.approx(((0.6 - 0.8) + (0.5 - 0.7)) / 2)
    assert m["forgetting"] == pytest.approx(((0.9 - 0.6) + (0.7 - 0.5)) / 2)   # max after learning
    assert m["past_accuracy"] == pytest.approx(0.55) and m["current_accuracy"] == 0.75


def test_verdict_rules():
    neg, zero, pos = [-0.05, -0.04, -0.06], [-0.05, 0.04, 0.01], [0.05, 0.04, 0.06]
    assert cl.ci_sign(neg) == -1 and cl.ci_sign(zero) == 0 and cl.ci_sign(pos) == 1
    assert cl.forgetting_verdict({"accuracy": neg, "roc_auc": neg}) == "reproduced"
    assert cl.forgetting_verdict({"accuracy": zero, "roc_auc": neg}) == "partly"
    assert cl.forgetting_verdict({"accuracy": zero}, {"roc_auc": neg}) == "partly"
    assert cl.forgetting_verdict({"accuracy": zero, "roc_auc": pos}) == "not reproduced"
    assert cl.mitigation_verdict({"a": pos, "b": pos}, {"a": zero, "b": pos}) == "reproduced"
    assert cl.mitigation_verdict({"a": pos, "b": zero}, {"a": zero, "b": zero}) == "partly"
    assert cl.mitigation_verdict({"a": pos}, {"a": neg}) == "partly"
    assert cl.mitigation_verdict({"a": zero}, {"a": pos}) == "partly"
    assert cl.mitigation_verdict({"a": zero}, {"a": neg}) == "not reproduced"
    table = cl.ci_table(pd.DataFrame({"g": ["x"] * 3 + ["y"], "v": neg + [1.0]}), "g", "v")
    assert table["n"].tolist() == [3, 1] and table["low"].iloc[0] < -0.05 < table["high"].iloc[0]


def test_encoder_imputes_flags_and_one_hots():
    fit = pd.DataFrame({"count": [1.0, 2.0, 3.0, 100.0, np.nan, 4.0],
                        "temp": [10.0, 12.0, np.nan, 14.0, 16.0, 18.0],
                        "maker": [0.0, 1.0, 1.0, np.nan, 0.0, 1.0]})
    enc = cl.MissingnessEncoder(["maker"], levels={"maker": [0, 1, 2]}).fit(fit)
    assert enc.log_ == {"count": True, "temp": False}
    new = pd.DataFrame({"count": [np.nan, 3.0], "temp": [14.0, np.nan], "maker": [2.0, 7.0]})
    Z = enc.transform(new)
    names = enc.feature_names_
    col = {n: Z[:, i] for i, n in enumerate(names)}
    assert np.isfinite(Z).all() and Z.dtype == np.float32
    assert col["count"][0] == 0.0 and col["count__missing"].tolist() == [1.0, 0.0]
    t = np.log1p(np.array([1.0, 2.0, 3.0, 100.0, 4.0]))
    assert col["count"][1] == pytest.approx((np.log1p(3.0) - t.mean()) / t.std(), rel=1e-5)
    assert col["temp"][0] == pytest.approx(0.0) and col["temp__missing"].tolist() == [0.0, 1.0]
    assert col["maker=2"].tolist() == [1.0, 0.0]       # code 7 is outside the code book: all zeros
    assert col["maker=0"].tolist() == col["maker=1"].tolist() == [0.0, 0.0]


def test_active_learning_per_quarter_queries_the_pool(tasks):
    run = cl.run_sequence(tasks, "finetune", epochs=2, hidden=(8,), strategy="entropy", seed=0)
    assert np.array_equal(run.queried[0], tasks.labelled[0])
    for q in range(1, tasks.n_quarters):
        assert np.unique(run.queried[q]).size == tasks.n_labels
        assert run.queried[q].max() < len(tasks.y_pool[q])
    joint = cl.run_sequence(tasks, "joint", epochs=1, hidden=(8,), seed=0)
    assert joint.n_train.tolist() == [18, 36, 54, 72]


# --------------------------------------------------------------------------------------------------
# bad input: a ParameterError naming the parameter, before any work
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, name", [
    (lambda t: cl.EWC(-1.0), "ewc_lambda"),
    (lambda t: cl.EWC(float("nan")), "ewc_lambda"),
    (lambda t: cl.EWC(1.0, fisher="diagonal"), "fisher"),
    (lambda t: cl.EWC(1.0, consolidation="merge"), "consolidation"),
    (lambda t: cl.EWC(1.0, gamma=1.5), "gamma"),
    (lambda t: cl.run_sequence(t, "ewc", ewc_lambda=-0.1), "ewc_lambda"),
    (lambda t: cl.run_sequence(t, "finetune", ewc_lambda=1.0), "ewc_lambda"),
    (lambda t: cl.run_sequence(t, "replay"), "method"),
    (lambda t: cl.run_sequence(t, "ewc", epochs=0), "epochs"),
    (lambda t: cl.run_sequence(t, "ewc", strategy="density"), "strategy"),
    (lambda t: cl.run_sequence(t, "ewc", hidden=()), "hidden"),
    (lambda t: cl.run_sequence(t, "ewc", lr=0.0), "lr"),
    (lambda t: cl.run_sequence("tasks", "ewc"), "tasks"),
    (lambda t: cl.make_mlp(0), "n_inputs"),
    (lambda t: cl.ewc_penalty(nn.Linear(2, 2), [], [], -2.0), "ewc_lambda"),
    (lambda t: cl.fisher_diagonal(nn.Linear(2, 2), np.full((3, 2), np.nan)), "X"),
    (lambda t: cl.fisher_diagonal(nn.Linear(2, 2), np.ones((3, 2)), kind="empirical"), "y"),
    (lambda t: cl.fisher_diagonal(nn.Linear(2, 2), np.ones((3, 2)), kind="hessian"), "kind"),
    (lambda t: cl.train_quarter(nn.Linear(2, 2), np.ones((3, 2)), [0, 1]), "y"),
    (lambda t: cl.lambda_grid(10.0, 1.0, 3), "lambda_max"),
    (lambda t: cl.lambda_grid(0.0, 1.0, 3), "lambda_min"),
    (lambda t: cl.cl_metrics([[0.5, 0.5]]), "R"),
    (lambda t: cl.check_settings(10_000, 0, 100), "n_labels"),
    (lambda t: cl.check_settings(10_000, 601, 100), "n_labels"),
    (lambda t: cl.check_settings(10_000, 600, 0), "n_test"),
    (lambda t: cl.MissingnessEncoder(["a"]).transform(pd.DataFrame({"a": [1.0]})), "encoder"),
])
def test_bad_input_raises_parameter_error(tasks, call, name):
    with pytest.raises(ParameterError) as err:
        call(tasks)
    assert err.value.name == name


@pytest.mark.parametrize("n_labels, n_test", [(0, 10), (19, 10), (5, 0), (5, 10**6)])
def test_make_quarter_tasks_rejects_sizes(n_labels, n_test):
    data = make_magnet_grades(n_per_month=300, seed=0)          # 18 labelled drives a quarter
    with pytest.raises(ParameterError, match="n_labels|n_test"):
        cl.make_quarter_tasks(data, n_labels, n_test)


@pytest.mark.parametrize("kw, name", [
    (dict(missing_rate=1.0), "missing_rate"), (dict(missing_rate=-0.1), "missing_rate"),
    (dict(n_labels=0), "n_labels"), (dict(n_labels=10**5), "n_labels"),
    (dict(ewc_lambdas=[-1.0]), "ewc_lambdas"), (dict(epochs=0), "epochs"),
    (dict(fisher="x"), "fisher"), (dict(methods=["ewc", "replay"]), "methods"),
])
def test_run_experiment_validates_before_generating_data(monkeypatch, kw, name):
    def forbidden(*a, **k):
        raise AssertionError("data generated before validation")

    monkeypatch.setattr(cl, "make_magnet_grades", forbidden)
    args = dict(ewc_lambdas=[1.0]) | kw
    with pytest.raises(ParameterError) as err:
        cl.run_experiment([0], **args)
    assert err.value.name == name
