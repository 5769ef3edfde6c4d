"""Tests of ppal_lab.federated.protocol: one FedAvg round, the batch allocation and the round loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant

from ppal_lab.federated import (ACCOUNTING_ALPHAS, FederatedProtocol, Participant, TrainingPlan, allocate_batch,
                                federated_round, make_model, run_federated_al)
from ppal_lab.privacy import PrivacyBudget

DELTA = 1e-5


def _sites(reman, private: bool, n_sites: int = 3):
    X, y, _, _, parts = reman
    Xs = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    z = 1.3 if private else None
    plan = TrainingPlan(sample_rate=0.5, local_steps=4, lr=0.5, max_grad_norm=0.1,
                        noise_multiplier=z)
    sites = []
    for p in range(n_sites):
        rng = np.random.default_rng(p)
        rows = parts[p]
        budget = (PrivacyBudget(50.0, DELTA, owner=f"s{p}", alphas=ACCOUNTING_ALPHAS) if private
                  else None)
        init = rng.choice(rows.size, size=5 + 3 * p, replace=False)  # unequal sizes: weights matter
        sites.append(Participant(f"s{p}", Xs[rows], y[rows], init,
                                 make_model("logreg", X.shape[1], 2), plan, budget, rng, 10 + p,
                                 20 + p))
    return sites, plan, make_model("logreg", X.shape[1], 2, seed=3)


def test_federated_round_averages_local_weights_by_labelled_set_size(reman):
    sites, _, model = _sites(reman, private=False)
    start = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    new, local, weights = federated_round(sites, start, 0)
    assert all(v is not None and not torch.equal(v, start) for v in local)  # every site trained
    np.testing.assert_array_equal(weights, [5, 8, 11])
    expected = sum(w * v.double() for w, v in zip(weights, local)) / weights.sum()
    np.testing.assert_allclose(new.double().numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)


def test_private_round_charges_exactly_the_steps_taken(reman):
    sites, plan, model = _sites(reman, private=True)
    start = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    federated_round(sites, start, 0)
    federated_round(sites, start, 1)
    for s in sites:
        assert s.noisy_steps == 2 * plan.local_steps
        acc = RDPAccountant()
        acc.history = [(plan.noise_multiplier, plan.sample_rate, plan.local_steps)] * 2
        opacus_eps = acc.get_epsilon(delta=DELTA, alphas=list(ACCOUNTING_ALPHAS))
        assert s.epsilon_spent == pytest.approx(opacus_eps, rel=1e-10)


def test_allocate_batch_takes_the_largest_released_values():
    released = [np.array([0.9, 0.1]), None, np.array([0.5, 0.8, 0.7])]
    np.testing.assert_array_equal(allocate_batch(released, 3), [1, 0, 2])
    np.testing.assert_array_equal(allocate_batch(released, 10), [2, 0, 3])  # fewer than the batch
    np.testing.assert_array_equal(allocate_batch([None, None], 4), [0, 0])


def _protocol(reman, label_gate=None, strategy="margin"):
    X, _, Xt, yt, parts = reman
    sites, _, model = _sites(reman, private=False)
    X_test = torch.as_tensor(((Xt - X.mean(0)) / X.std(0)).astype(np.float32))
    start = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    protocol = FederatedProtocol(sites, parts[:3], model, X_test, yt, 60, 10, strategy,
                                 np.random.default_rng(0), label_gate=label_gate)
    return protocol, sites, start


@pytest.mark.parametrize("strategy", ["margin", "random"])
def test_a_gate_that_accepts_everything_changes_nothing(reman, strategy):
    calls = []

    def accept(t, new):
        calls.append(t)
        return [np.ones(len(pos), dtype=bool) for pos in new]

    plain, _, start = _protocol(reman, strategy=strategy)
    gated, _, _ = _protocol(reman, accept, strategy=strategy)
    a, b = plain.run(start), gated.run(start)
    assert a.accuracy == b.accuracy and a.n_labels == b.n_labels == b.n_used
    np.testing.assert_array_equal(np.concatenate(a.queried), np.concatenate(b.queried))
    assert calls[0] == -1 and calls[1:] == list(range(len(calls) - 1))  # initial labels, then rounds


def test_rejected_labels_never_train_but_count_against_the_budget(reman):
    def reject_site_0(t, new):
        return [np.full(len(pos), p != 0) for p, pos in enumerate(new)]

    protocol, sites, start = _protocol(reman, reject_site_0)
    h = protocol.run(start)
    assert h.n_labels[-1] == 60 == sum(s.n_inspected for s in sites)
    assert sites[0].n_labelled == 0 and sites[0].n_inspected > 0
    assert h.n_used[-1] == sites[1].n_labelled + sites[2].n_labelled < 60
    assert len(h.accuracy) == len(h.n_labels) == len(h.n_used)


# -------------------------------------------------------------------------- compression, hierarchy
def _run(reman, **topology):
    X, y, Xt, yt, parts = reman
    return run_federated_al(X, y, Xt, yt, parts, 120, 20, "least_confident", None, seed=2, lr=0.5,
                            **topology)


def test_hierarchical_averaging_with_a_cloud_round_every_round_is_flat_averaging(reman):
    flat, hier = _run(reman), _run(reman, edges=2, kappa=1)
    np.testing.assert_allclose(hier.final_params, flat.final_params, rtol=0, atol=1e-5)
    assert hier.curve.n_labels.tolist() == flat.curve.n_labels.tolist()
    d = flat.final_params.size
    # per round: flat, every site's float32 update up and model down through the cloud; hierarchical,
    # two edge models up and the cloud model down twice
    assert flat.traffic["cloud_bytes"] == [2 * 4 * 4 * d] * len(flat.curve.accuracy)
    assert hier.traffic["cloud_bytes"] == [2 * 2 * 4 * d] * len(hier.curve.accuracy)
    assert hier.traffic["update_bytes"] == flat.traffic["update_bytes"] == [4 * 4 * d] * len(flat.curve.accuracy)


def test_between_cloud_rounds_the_global_model_stands_still(reman):
    hier = _run(reman, edges=2, kappa=3)
    rounds = len(hier.curve.accuracy)
    cloud = [(t + 1) % 3 == 0 or t == rounds - 1 for t in range(rounds)]
    d = hier.final_params.size
    assert hier.traffic["cloud_bytes"] == [2 * 2 * 4 * d if c else 0 for c in cloud]
    acc = hier.curve.accuracy
    # the evaluated (cloud) model changes only in cloud rounds
    assert all(acc[t] == acc[t - 1] for t in range(1, rounds) if not cloud[t])
    assert not np.allclose(hier.final_params, _run(reman).final_params, atol=1e-4)


def test_compressed_updates_are_smaller_and_change_the_model_only_a_little(reman):
    flat = _run(reman)
    d, n = flat.final_params.size, 4
    for method, per_site in (("int8", d + 4), ("topk", 8 * max(1, -(-d // 10)))):
        run = _run(reman, compression=method)
        assert run.traffic["update_bytes"] == [n * per_site] * len(run.curve.accuracy)
        assert run.traffic["cloud_bytes"] == [n * per_site + n * 4 * d] * len(run.curve.accuracy)
        assert not np.array_equal(run.final_params, flat.final_params)
        assert abs(run.final_accuracy - flat.final_accuracy) < 0.1
