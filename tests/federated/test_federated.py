"""Tests of ppal_lab.federated: FedAvg, accounting, privacy plumbing, determinism, references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from sklearn.model_selection import train_test_split

from ppal_lab import federated
from ppal_lab.learning.active import uncertainty_scores
from ppal_lab.data import horizontal_partition, make_remanufacturing
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.federated import (
    ACCOUNTING_ALPHAS,
    Participant,
    TrainingPlan,
    allocate_batch,
    fedavg,
    federated_round,
    make_model,
    normalized_scores,
    run_centralized,
    run_federated_al,
)
from ppal_lab.privacy import PrivacyBudget, exponential_probabilities

DELTA = 1e-5


@pytest.fixture(scope="module")
def reman():
    """Remanufacturing data (2000 items), a stratified 75/25 split, a non-IID 4-site partition."""
    data = make_remanufacturing(2000, seed=1)
    X, y = data.to_numpy()
    tr, te = train_test_split(np.arange(y.size), test_size=0.25, stratify=y, random_state=0)
    parts = horizontal_partition(data.subset(tr), 4, non_iid=0.5, seed=1)
    return X[tr], y[tr], X[te], y[te], parts


def _run(reman, **kw):
    X, y, Xt, yt, parts = reman
    args = dict(label_budget=100, batch_size=20, strategy="margin", epsilon=2.0, delta=DELTA,
                seed=0)
    args.update(kw)
    return run_federated_al(X, y, Xt, yt, parts, **args)


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
def test_fedavg_is_the_weighted_average():
    rng = np.random.default_rng(0)
    vecs = [torch.tensor(rng.normal(size=7), dtype=torch.float32) for _ in range(3)]
    w = [5.0, 12.0, 3.0]
    expected = sum(wi * v.double() for wi, v in zip(w, vecs)) / sum(w)
    np.testing.assert_allclose(fedavg(vecs, w).double().numpy(), expected.numpy(), rtol=1e-6)
    assert torch.equal(fedavg([vecs[0]], [37.0]), vecs[0])  # one site: bit-identical
    with pytest.raises(ParameterError) as err:
        fedavg(vecs, [0.0, 0.0, 0.0])
    assert err.value.name == "weights"


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


def test_normalized_scores_lie_in_unit_interval_and_keep_the_ranking():
    P = np.random.default_rng(0).dirichlet(np.ones(3), size=300)
    for strategy in ("least_confident", "margin", "entropy"):
        s = normalized_scores(P, strategy)
        assert s.min() >= 0.0 and s.max() <= 1.0
        raw = uncertainty_scores(P, strategy)
        np.testing.assert_array_equal(np.argsort(s, kind="stable"), np.argsort(raw, kind="stable"))
        assert normalized_scores(np.full((1, 3), 1 / 3), strategy)[0] == pytest.approx(1.0)


def test_halved_sensitivity_is_dp_when_one_score_moves():
    """The claim behind ``sensitivity=0.5``: with one coordinate moved by <= 1 the exponential
    mechanism with weights exp(eps * u) changes every probability by at most e^eps."""
    rng = np.random.default_rng(1)
    eps = 0.7
    worst = 0.0
    for _ in range(200):
        s = rng.random(12)
        j = rng.integers(12)
        s2 = s.copy()
        s2[j] = rng.random()  # any value in [0, 1]: zero-out or a different record
        p1 = exponential_probabilities(s, 0.5, eps)
        p2 = exponential_probabilities(s2, 0.5, eps)
        worst = max(worst, np.max(np.abs(np.log(p1) - np.log(p2))))
    assert worst <= eps + 1e-12


def test_allocate_batch_takes_the_largest_released_values():
    released = [np.array([0.9, 0.1]), None, np.array([0.5, 0.8, 0.7])]
    np.testing.assert_array_equal(allocate_batch(released, 3), [1, 0, 2])
    np.testing.assert_array_equal(allocate_batch(released, 10), [2, 0, 3])  # fewer than the batch
    np.testing.assert_array_equal(allocate_batch([None, None], 4), [0, 0])


# ---------------------------------------------------------------------------------------------
# whole runs
# ---------------------------------------------------------------------------------------------
def test_epsilon_spent_equals_replayed_releases_and_labels_stay_local(reman):
    X, y, _, _, parts = reman
    eps, share = 2.0, 0.2
    res = _run(reman, label_budget=40, batch_size=20, initial_labels=20, epsilon=eps,
               query_share=share)  # one query round, two training rounds
    plan = res.plan
    assert res.curve.n_labels.tolist() == [20, 40]
    eps_half = eps * share / 1 / 2
    for p, spent in enumerate(res.epsilon_spent):
        # an independent replay of the planned releases in a fresh (uncached) budget
        fresh = PrivacyBudget(eps, DELTA, alphas=ACCOUNTING_ALPHAS)
        for _ in range(2):
            fresh.spend_dpsgd(res.noise_multiplier, plan.sample_rate, plan.local_steps)
        fresh.spend_pure(eps_half)
        fresh.spend_pure(eps_half)
        assert spent == pytest.approx(fresh.epsilon_spent(), rel=1e-12)
        assert spent <= eps
        assert res.dpsgd_steps[p] == 2 * plan.local_steps
        # the DP-SGD part alone, from Opacus's accountant, never exceeds the total
        acc = RDPAccountant()
        acc.history = [(res.noise_multiplier, plan.sample_rate, plan.local_steps)] * 2
        dp_only = acc.get_epsilon(delta=DELTA, alphas=list(ACCOUNTING_ALPHAS))
        assert dp_only <= spent <= dp_only + 2 * eps_half + 1e-12
        ledger = res.ledgers[p]
        assert ledger["sgm_history"] == [(res.noise_multiplier, plan.sample_rate,
                                          plan.local_steps)] * 2
        assert ledger["pure_epsilons"] == [eps_half, eps_half]
        # labels come only from this site's own pool
        assert np.isin(res.labelled[p], parts[p]).all()
        assert np.unique(res.labelled[p]).size == res.labelled[p].size
    assert res.labels_per_participant.sum() == 40
    assert sorted(res.curve.queried.tolist()) == sorted(np.concatenate(res.labelled).tolist())


def test_plan_spends_the_whole_budget(reman):
    res = _run(reman, epsilon=3.0)
    assert np.all(res.epsilon_spent <= 3.0)
    assert np.all(res.epsilon_spent >= 3.0 * 0.97)  # the bisection leaves < 3 % unspent
    assert not res.log


def test_same_seed_same_curve_other_seed_other_curve(reman):
    a, b, c = _run(reman, seed=4), _run(reman, seed=4), _run(reman, seed=5)
    np.testing.assert_array_equal(a.curve.accuracy, b.curve.accuracy)
    np.testing.assert_array_equal(a.curve.queried, b.curve.queried)
    np.testing.assert_array_equal(a.epsilon_spent, b.epsilon_spent)
    assert not np.array_equal(a.curve.queried, c.curve.queried)
    assert not np.array_equal(a.curve.accuracy, c.curve.accuracy)


def test_tiny_epsilon_never_exceeds_the_budget(reman):
    res = _run(reman, epsilon=1e-4)
    assert np.all(res.epsilon_spent <= 1e-4 * (1 + 1e-12))
    assert any("too little for training" in e for e in res.log)  # logged, no site trained
    assert np.all(res.dpsgd_steps == 0)
    assert res.curve.n_labels[-1] == 100  # the (cheap) query releases still ran


def test_refused_releases_stop_the_site_and_are_logged(reman, monkeypatch):
    # Sabotage the plan (80 % of the noise it needs): the ledger must refuse, not overspend.
    real = federated._plan_noise_multiplier
    monkeypatch.setattr(federated, "_plan_noise_multiplier", lambda *a: 0.8 * real(*a))
    res = _run(reman, epsilon=2.0)
    planned_steps = 5 * res.plan.local_steps  # 4 query rounds -> 5 training rounds
    assert np.all(res.epsilon_spent <= 2.0 * (1 + 1e-12))
    assert sum("DP-SGD release refused" in e for e in res.log) == 4  # once per site, then it stops
    assert np.all(res.dpsgd_steps > 0) and np.all(res.dpsgd_steps < planned_steps)
    # what is left cannot pay for a query either: every site stops proposing, labelling ends
    assert sum("query release refused" in e for e in res.log) == 4
    assert res.stopped_early and res.curve.n_labels[-1] < 100
    assert "no site could propose" in res.log[-1]
    assert len(res.curve.accuracy) == len(res.curve.n_labels)


def test_one_site_non_private_equals_centralized(reman):
    X, y, Xt, yt, parts = reman
    pool = np.sort(np.concatenate(parts))
    for strategy in ("margin", "random"):
        fed = run_federated_al(X, y, Xt, yt, [pool], 100, 20, strategy, epsilon=None, seed=2)
        cen = run_centralized(X, y, Xt, yt, 100, 20, strategy, seed=2)
        np.testing.assert_allclose(fed.curve.accuracy, cen.curve.accuracy, atol=1e-9)
        np.testing.assert_array_equal(fed.curve.queried, cen.curve.queried)
        assert np.isinf(fed.epsilon_spent).all() and fed.dpsgd_steps.tolist() == [0]


def test_accuracy_grows_with_epsilon_and_reaches_non_private(reman):
    seeds = range(3)

    def mean_acc(eps):
        return np.mean([_run(reman, epsilon=eps, seed=s).final_accuracy for s in seeds])

    low, high, huge, free = mean_acc(0.2), mean_acc(30.0), mean_acc(1e4), mean_acc(None)
    assert low < high - 0.02
    assert abs(huge - free) < 0.03
    assert free > 0.75


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,name", [
    ({"epsilon": 0.0}, "epsilon"),
    ({"epsilon": -1.0}, "epsilon"),
    ({"epsilon": math.nan}, "epsilon"),
    ({"epsilon": "1"}, "epsilon"),
    ({"delta": 0.0}, "delta"),
    ({"delta": 1.0}, "delta"),
    ({"label_budget": 10_000}, "label_budget"),
    ({"label_budget": 20}, "label_budget"),  # not above the 20 initial labels
    ({"batch_size": 0}, "batch_size"),
    ({"strategy": "greedy"}, "strategy"),
    ({"model": "cnn"}, "model"),
    ({"query_share": 1.0}, "query_share"),
    ({"local_epochs": 0}, "local_epochs"),
    ({"sample_rate": 0.0}, "sample_rate"),
    ({"initial_labels": 3}, "initial_labels"),  # fewer than the 4 participants
    ({"seed": -1}, "seed"),
    ({"proposals": 0}, "proposals"),
])
def test_bad_arguments_name_the_parameter(reman, kwargs, name):
    with pytest.raises(ParameterError) as err:
        _run(reman, **kwargs)
    assert err.value.name == name
    assert name in str(err.value)


def test_bad_partitions_and_data_are_rejected(reman):
    X, y, Xt, yt, parts = reman
    for bad in ([], [parts[0], parts[0][:3]], [np.array([], dtype=int)], [np.array([X.shape[0]])]):
        with pytest.raises(ParameterError) as err:
            run_federated_al(X, y, Xt, yt, bad, 50, 10, "margin")
        assert err.value.name == "partition"
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ParameterError) as err:
        run_federated_al(Xn, y, Xt, yt, parts, 50, 10, "margin")
    assert err.value.name == "X"
