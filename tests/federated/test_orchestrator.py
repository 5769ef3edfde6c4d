"""Tests of ppal_lab.federated.orchestrator: accounting of whole runs, privacy plumbing, determinism,
and input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.federated import ACCOUNTING_ALPHAS, accounting, run_federated_al
from ppal_lab.privacy import PrivacyBudget

DELTA = 1e-5


def _run(reman, **kw):
    X, y, Xt, yt, parts = reman
    args = dict(label_budget=100, batch_size=20, strategy="margin", epsilon=2.0, delta=DELTA,
                seed=0)
    args.update(kw)
    return run_federated_al(X, y, Xt, yt, parts, **args)



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
    real = accounting.plan_noise_multiplier
    monkeypatch.setattr(accounting, "plan_noise_multiplier", lambda *a: 0.8 * real(*a))
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
