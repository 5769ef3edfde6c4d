"""Chapter 7's driver, summaries and verdict rule (:mod:`ppal_lab.chapters.ch07_supply_chain_maddpg`):
worker processes give the same results as one process; a short training beats the random policy (the
critic-loss figure of the section "Learning curves"); the relative changes of the section "Headline
figures" and the claim rule."""
import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters.ch07_supply_chain_maddpg import (claim_verdict, paired_change, relative_change,
                                                        run_experiment, summarize)
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import mean_ci
from ppal_lab.marl.maddpg import MADDPG, MADDPGConfig, random_policy

SMALL = MADDPGConfig(hidden=16, batch_size=32, buffer_size=4000, pretrain_envs=8)



@pytest.mark.timeout(120)
def test_worker_processes_give_the_same_results_as_one_process():
    kw = dict(seeds=[1, 2], modes=["nds", "ede"], cfg=SMALL, episodes=2, pretrain_episodes=8, progress=False)
    t1, w1, _ = run_experiment(n_jobs=1, **kw)
    t2, w2, _ = run_experiment(n_jobs=2, **kw)
    pd.testing.assert_frame_equal(t1, t2)
    assert all(np.array_equal(a, b) for key in w1 for net in w1[key] for a, b in zip(w1[key][net], w2[key][net]))


# ---- learning -------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_short_training_lowers_critic_loss_and_beats_the_random_policy():
    cfg = MADDPGConfig(hidden=64, batch_size=64, buffer_size=20_000, pretrain_envs=16)
    learner = MADDPG([0], ["nds", "ede"], cfg=cfg)
    table = learner.train(episodes=10, pretrain_episodes=320)
    pre = table[table["phase"] == "pretrain"].assign(round=lambda d: d["episode"] // cfg.pretrain_envs)
    loss = pre.groupby(["mode", "round"])[["critic_loss_0", "critic_loss_1"]].mean()
    first = loss.groupby("mode").head(3).groupby("mode").mean()
    last = loss.groupby("mode").tail(3).groupby("mode").mean()
    # with both players' data the critics fit their TD targets: the loss falls by more than half ...
    assert (last.loc["ede"] < 0.5 * first.loc["ede"]).all(), loss
    assert last.loc["nds", "critic_loss_1"] < 0.5 * first.loc["nds", "critic_loss_1"], loss
    # ... but the supplier's NDS critic cannot see the order that decides its sales: it stays far worse
    assert last.loc["nds", "critic_loss_0"] > 3 * last.loc["ede", "critic_loss_0"], loss
    summary = summarize(pd.concat([table, random_policy([0], 10)]))
    reward = summary.set_index("mode")["total_reward"]
    assert reward["nds"] > reward["random"] and reward["ede"] > reward["random"], reward


def test_summaries_and_paired_changes():
    table = pd.DataFrame({"seed": [0, 0, 1, 1], "mode": ["nds", "ede"] * 2, "phase": "real",
                          **{c: [1.0, 2.0, -2.0, 1.0] for c in ("reward_0", "reward_1", "total_reward", "wastage",
                                                               "ncr", "p0", "q0", "p1", "q1", "shipped", "sold",
                                                               "critic_loss_0", "critic_loss_1")}})
    s = summarize(table)
    change = paired_change(s, "ncr")
    assert change["difference"].tolist() == [1.0, 3.0] and change["relative"].tolist() == [1.0, 1.5]
    # relative change from the means: NDS mean -0.5, EDE mean 1.5 -> (1.5 + 0.5) / 0.5 = 4
    rel = relative_change(s, "ncr")
    assert rel["value"] == pytest.approx(4.0) and rel["n"] == 2
    assert rel["per_seed"].tolist() == [1.0, 1.5]
    # linearised contributions: R = -3, ede - R * nds = [5, -5], divided by |-0.5|, times sign(-0.5)
    np.testing.assert_allclose(rel["pseudo"], [-6.0, 14.0])
    assert rel["ci"] == pytest.approx(mean_ci(rel["pseudo"])[1])
    red = relative_change(s, "wastage", reduction=True)
    assert red["value"] == pytest.approx(-4.0) and red["per_seed"].tolist() == [-1.0, -1.5]
    # an exact, common ratio across seeds has no uncertainty
    exact = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "mode": ["nds", "ede"] * 3,
                          "wastage": [10.0, 6.0, 20.0, 12.0, 5.0, 3.0]})
    red = relative_change(exact, "wastage", reduction=True)
    assert red["value"] == pytest.approx(0.4) and red["ci"] == pytest.approx((0.4, 0.4))
    with pytest.raises(ParameterError, match="phase"):
        summarize(table, "pretrain")
    with pytest.raises(ParameterError, match="mode"):
        paired_change(s, "ncr", other="ctde")


@pytest.mark.parametrize("ci, claimed, verdict", [
    ((0.2, 0.5), 0.3571, "reproduced"), ((0.05, 0.2), 0.3571, "partly"), ((-0.1, 0.5), 0.3571, "not reproduced"),
    ((-0.5, -0.1), 0.3571, "not reproduced"), ((-0.5, -0.1), -0.3, "reproduced"), (None, 0.3, "not measurable"),
])
def test_claim_verdict_rule(ci, claimed, verdict):
    assert claim_verdict(ci, claimed) == verdict


@pytest.mark.parametrize("call, name", [
    (lambda: run_experiment([0], episodes=0, progress=False), "episodes"),
    (lambda: run_experiment([0], n_jobs=0, progress=False), "n_jobs"),
])
def test_bad_arguments_raise_before_any_work(call, name):
    with pytest.raises(ParameterError, match=name.replace("[", r"\[").replace("]", r"\]") + " ="):
        call()
