"""Tests of ppal_lab.learning.ewc: the EWC penalty by hand, the Fisher diagonal against a per-sample loop,
online consolidation, fine-tuning as lambda = 0, and protection of a conflicting earlier task."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ppal_lab.learning import ewc as ew


def _tiny_linear():
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model.bias.copy_(torch.tensor([0.5, -0.5]))
    return model


def test_ewc_penalty_matches_hand_computation():
    model = _tiny_linear()
    fisher1 = {"weight": torch.tensor([[1.0, 2.0], [0.5, 1.0]]), "bias": torch.tensor([2.0, 4.0])}
    anchor1 = {"weight": torch.tensor([[0.0, 1.0], [1.0, 1.0]]), "bias": torch.zeros(2)}
    # by hand: weight diffs (1, 1, 2, 3) -> F * d^2 = 1*1 + 2*1 + 0.5*4 + 1*9 = 14;
    # bias diffs (0.5, -0.5) -> 2*0.25 + 4*0.25 = 1.5; total 15.5; lambda/2 = 1.5 -> 23.25
    assert ew.ewc_penalty(model, [fisher1], [anchor1], 3.0).item() == pytest.approx(23.25)
    # a second past task: unit Fisher, every weight 1 away from its anchor -> 6 * 1.5 = 9 more
    fisher2 = {k: torch.ones_like(v) for k, v in fisher1.items()}
    anchor2 = {k: v.detach() + 1.0 for k, v in model.named_parameters()}
    assert ew.ewc_penalty(model, [fisher1, fisher2], [anchor1, anchor2], 3.0).item() == pytest.approx(32.25)
    assert ew.ewc_penalty(model, [], [], 3.0).item() == 0.0


def test_ewc_class_penalty_and_gradient():
    torch.manual_seed(0)
    model = ew.make_mlp(4, (3,), 2, seed=1)
    X = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    ewc = ew.EWC(2.5)
    ewc.consolidate(model, X)
    assert ewc.penalty(model).item() == 0.0          # at the anchor
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    pen = ewc.penalty(model)
    ref = ew.ewc_penalty(model, ewc.fishers, ewc.anchors, 2.5)
    assert pen.item() == pytest.approx(ref.item(), rel=1e-6)
    pen.backward()
    for name, p in model.named_parameters():        # d/dtheta = lambda * F * (theta - theta*)
        expect = 2.5 * ewc.fishers[0][name] * (p.detach() - ewc.anchors[0][name])
        torch.testing.assert_close(p.grad, expect)


def test_online_consolidation_sums_fishers_and_moves_anchor():
    model = ew.make_mlp(3, (4,), 2, seed=0)
    rng = np.random.default_rng(1)
    X1, X2 = (rng.standard_normal((25, 3)).astype(np.float32) for _ in range(2))
    ewc = ew.EWC(1.0, consolidation="online", gamma=0.5)
    ewc.consolidate(model, X1)
    f1 = ew.fisher_diagonal(model, X1)
    with torch.no_grad():
        model[0].weight.add_(0.3)
    ewc.consolidate(model, X2)
    f2 = ew.fisher_diagonal(model, X2)
    assert len(ewc.fishers) == 1 and len(ewc.anchors) == 1
    for k in f1:
        torch.testing.assert_close(ewc.fishers[0][k], 0.5 * f1[k] + f2[k])
    torch.testing.assert_close(ewc.anchors[0]["0.weight"], model[0].weight.detach())
    per_task = ew.EWC(1.0)
    per_task.consolidate(model, X1)
    per_task.consolidate(model, X2)
    assert len(per_task.fishers) == 2


@pytest.mark.parametrize("kind", ew.FISHER_KINDS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fisher_diagonal_matches_per_sample_loop(kind, n_classes):
    rng = np.random.default_rng(n_classes)
    X = rng.standard_normal((23, 5)).astype(np.float32)
    y = rng.integers(0, n_classes, 23)
    model = ew.make_mlp(5, (4, 3), n_classes, seed=7)
    got = ew.fisher_diagonal(model, X, y, kind=kind, batch_size=6)   # several uneven batches

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


def test_lambda_zero_training_step_equals_finetuning_exactly(tasks):
    X0, y0 = tasks.train_set(0)
    X1, y1 = tasks.train_set(1)
    a = ew.make_mlp(tasks.n_inputs, (8, 8), 2, seed=5)
    b = ew.make_mlp(tasks.n_inputs, (8, 8), 2, seed=5)
    for m in (a, b):
        ew.train_quarter(m, X0, y0, epochs=3, batch_size=4, seed=1)
    ewc = ew.EWC(0.0)
    ewc.consolidate(b, X0, y0)
    assert any(f.abs().sum() > 0 for f in ewc.fishers[0].values())   # a real, non-zero Fisher
    ew.train_quarter(a, X1, y1, epochs=3, batch_size=4, seed=2)
    ew.train_quarter(b, X1, y1, epochs=3, batch_size=4, seed=2, penalty=ewc.penalty)
    for (ka, pa), (kb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(pa, pb)


def test_ewc_protects_a_conflicting_earlier_task():
    """Task B flips task A's labels on the same inputs: fine-tuning unlearns A completely; a strong
    penalty keeps part of it (the true Fisher of a confident network is small, so only part)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 2)).astype(np.float32)
    yA = (X[:, 0] > 0).astype(int)

    def accuracy_on_a_after_b(lam):
        m = ew.make_mlp(2, (16,), 2, seed=0)
        ew.train_quarter(m, X, yA, epochs=30, batch_size=50, seed=0, lr=1e-2)
        ewc = ew.EWC(lam)
        ewc.consolidate(m, X, yA)
        ew.train_quarter(m, X, 1 - yA, epochs=30, batch_size=50, seed=1, lr=1e-2,
                          penalty=ewc.penalty)
        return float(np.mean(ew.TorchClassifier(m).predict(X) == yA))

    finetuned, protected = accuracy_on_a_after_b(0.0), accuracy_on_a_after_b(1000.0)
    assert finetuned < 0.05 and protected > finetuned + 0.2


def test_early_stopping_keeps_the_best_epochs_weights_exactly():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 5)).astype(np.float32)
    y = (X[:, 0] + 0.8 * rng.standard_normal(120) > 0).astype(np.int64)
    Xv = rng.standard_normal((80, 5)).astype(np.float32)
    yv = (Xv[:, 0] + 0.8 * rng.standard_normal(80) > 0).astype(np.int64)
    stopped = ew.make_mlp(5, (16,), seed=1)
    losses = ew.train_quarter(stopped, X, y, epochs=200, batch_size=8, lr=1e-2, seed=2, val=(Xv, yv), patience=3)
    best = stopped.best_epoch_
    assert len(losses) == best + 3 < 200          # stopped three epochs after the best held-out fit
    replay = ew.make_mlp(5, (16,), seed=1)
    ew.train_quarter(replay, X, y, epochs=best, batch_size=8, lr=1e-2, seed=2)
    for a, b in zip(stopped.parameters(), replay.parameters()):
        assert torch.equal(a, b)
