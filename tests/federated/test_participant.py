"""Tests of ppal_lab.federated.participant: the normalised scores a site releases, and its labelled set."""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab.federated import Participant, TrainingPlan, make_model, normalized_scores
from ppal_lab.learning.active import uncertainty_scores
from ppal_lab.privacy import exponential_probabilities


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


def test_reject_takes_labels_out_of_training_but_keeps_them_bought():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)
    plan = TrainingPlan(0.5, 2, 0.5, 1.0, None)
    site = Participant("s", X, y, np.array([0, 1, 2, 3]), make_model("logreg", 3, 2), plan, None, rng, 1, 2)
    site.reject(np.array([1, 3]))
    assert site.labelled_positions.tolist() == [0, 2]  # labelling order kept
    assert (site.n_labelled, site.n_inspected, site.n_unlabelled) == (2, 4, 26)
    new = site.label_random(5)
    assert not set(new.tolist()) & {0, 1, 2, 3}  # rejected items are never offered again
    assert (site.n_labelled, site.n_inspected) == (7, 9)
    never = int(np.setdiff1d(np.arange(30), np.r_[0, 1, 2, 3, new])[0])
    with pytest.raises(RuntimeError):
        site.reject(np.array([never]))


def test_a_site_rebuilt_from_its_state_continues_exactly():
    """Flower's ClientApp rebuilds the site for every message from get_state(): the rebuilt site must
    train, propose and label exactly as the site that never stopped (private mode: DP noise, sampling,
    selection noise and the ledger all continue)."""
    import torch

    from ppal_lab.federated.accounting import ACCOUNTING_ALPHAS, _SiteBudget

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    plan = TrainingPlan(0.5, 3, 0.5, 1.0, 1.1)

    def site(seed_rng):
        return Participant("s", X, y, np.array([0, 1, 2, 3, 4, 5]), make_model("logreg", 3, 2), plan,
                           _SiteBudget(20.0, 1e-5, owner="s", alphas=ACCOUNTING_ALPHAS), seed_rng, 7, 8)

    def step(s, params, t):
        vec = s.local_update(params, t)
        model = make_model("logreg", 3, 2, seed=t)
        released = s.propose(model, "margin", 4, 0.5, 0.5, t)
        return vec, released, s.label(2)

    params = torch.zeros(8)
    a = site(np.random.default_rng(3))
    first = step(a, params, 0)
    b = site(np.random.default_rng(99))  # wrong streams, wrong everything: the state must overwrite them
    b.set_state(a.get_state())
    for t in (1, 2):
        ra, rb = step(a, first[0], t), step(b, first[0], t)
        assert torch.equal(ra[0], rb[0])
        np.testing.assert_array_equal(ra[1], rb[1])
        np.testing.assert_array_equal(ra[2], rb[2])
    assert a.report() == b.report() and a.report()["noisy_steps"] == 9
    assert not torch.equal(first[0], ra[0])  # the steps did something
