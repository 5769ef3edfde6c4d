"""Tests of the secure two-party MADDPG (ppal_lab.secure.secure_maddpg and its party side,
ppal_lab.secure.maddpg_party); the chapter's summaries: tests/chapters/test_ch08_secure_maddpg.py.

The secure runs are small (hidden 16, minibatch 16, a few iterations) so that two spawned parties finish
in seconds. Tolerances: values carry 18 fractional bits (u = 2^-18 ~ 3.8e-6); a weight's gradient passes
through at most ~8 truncated products, and Adam's step size (lr = 1e-3) bounds how far one step moves a
weight, so after a handful of updates the weights agree to ~1e-5 RMSE; we allow 1e-4 RMSE and 5e-3 for
the largest single difference (Adam turns a tiny gradient's rounding error into a full step when the
gradient is near zero). Actions pass through one secure forward pass: 1e-3 in physical units.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import pytest
import torch
from scipy import stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.marl.maddpg import MADDPG, MADDPGConfig
from ppal_lab.secure import run_parties
from ppal_lab.secure.examples import reveal_probe
from ppal_lab.secure.secure_maddpg import (NETWORKS, SecureSettings, party_randomness, plain_phase,
                                           player_state, run_secure_phase, weight_table)
from ppal_lab.secure.twoparty import PartyError
from ppal_lab.chapters.ch08_secure_maddpg import metric_averages, pretrained_learner

CFG = MADDPGConfig(hidden=16, batch_size=16)


def test_plain_phase_replays_maddpg_play_exactly():
    learner = pretrained_learner(2, CFG, pretrain_episodes=16)
    a, b = copy.deepcopy(learner), copy.deepcopy(learner)
    H = learner.game.horizon
    steps, _ = plain_phase(a, 2 * H)
    episodes = b.play("real", 2, 1, CFG.noise)
    per_episode = steps.groupby(steps["iteration"] // H)[["reward_0", "reward_1", "wastage"]].sum()
    for col in ("reward_0", "reward_1", "wastage"):
        np.testing.assert_allclose(per_episode[col].to_numpy(), episodes[col].to_numpy(), rtol=1e-12)
    assert torch.equal(a.actor.flat, b.actor.flat) and torch.equal(a.critic.flat, b.critic.flat)


def test_player_state_holds_only_that_players_columns():
    learner = pretrained_learner(1, CFG, pretrain_episodes=16)
    for p in (0, 1):
        st = player_state(learner, p)
        n = learner.buf_size
        assert torch.equal(st["buffer"]["obs"], learner.buf_obs[0, :n, p])
        assert torch.equal(st["buffer"]["rew"], learner.buf_rew[0, :n, p])
        assert st["buffer"]["obs"].shape == (n, 5) and st["buffer"]["act"].shape == (n, 2)
        assert torch.equal(st["critic"][0], learner.critic.params[0][p])
        assert st["actor_adam"]["t"] == learner.actor_opt.t > 0


def test_secure_phase_equals_plaintext_ede_within_fixed_point_tolerance(phase):
    table = weight_table(phase.secure_weights, phase.plain_weights)
    assert len(table) == 2 * len(NETWORKS)
    assert table["rmse"].max() < 1e-4, table
    assert table["max_abs"].max() < 5e-3, table
    for col in ("p0", "q0", "p1", "q1"):
        np.testing.assert_allclose(phase.secure[col], phase.plain[col], atol=1e-3)
    avg = metric_averages([phase])
    assert avg["rel_diff"].max() < 1e-3
    assert sum(phase.retries.values()) == 0


def test_the_share_a_party_holds_of_the_others_data_looks_uniform(phase):
    held = phase.shares[1]["peer_obs_share"].numpy().ravel()    # party 1's share of party 0's observations
    own = phase.shares[0]["own_obs_share"].numpy().ravel()
    top = (held.view(np.uint64) >> np.uint64(60)).astype(int)
    assert stats.chisquare(np.bincount(top, minlength=16)).pvalue > 1e-3
    assert np.abs(held).max() > 2**50                          # not a fixed-point encoding of data in [0, 2]
    assert not np.array_equal(held, own)


def test_the_share_a_party_holds_does_not_depend_on_the_others_data(phase):
    """Same CrypTen seed, different private data (another learner): party 1 ends up with bit-identical
    shares of party 0's observations -- they are a function of the masks alone. (A scheme in which the
    owner sent a masked value, x + r, would fail this test.)"""
    other = pretrained_learner(6, CFG, pretrain_episodes=16)
    run = run_secure_phase(other, 1, SecureSettings(keep_shares=True), sharing_seed=5)
    assert not torch.equal(other.buf_obs[0, :16, 0], pretrained_learner(5, CFG, pretrain_episodes=16).buf_obs[0, :16, 0])
    assert torch.equal(run.shares[1]["peer_obs_share"], phase.shares[1]["peer_obs_share"])


def test_a_killed_party_ends_the_run_with_a_clear_error_quickly():
    learner = pretrained_learner(0, CFG, pretrain_episodes=16)
    start = time.monotonic()
    with pytest.raises(PartyError, match="rank 1"):
        run_secure_phase(learner, 5, SecureSettings(crash_at=(1, 2), timeout_s=100))
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("kwargs", [{"precision_bits": 9}, {"precision_bits": 21}, {"precision_bits": True},
                                    {"wrap_threshold": 0.5}, {"max_retries": -1}, {"timeout_s": 0}])
def test_bad_settings_raise(kwargs):
    with pytest.raises(ParameterError):
        SecureSettings(**kwargs)


def test_bad_run_arguments_raise_before_any_party_starts(monkeypatch):
    import ppal_lab.secure.twoparty as tp

    monkeypatch.setattr(tp, "run_parties", lambda *a, **k: pytest.fail("parties started"))
    learner = pretrained_learner(0, CFG, pretrain_episodes=16)
    for kwargs in ({"world_size": 3}, {"iterations": 0}, {"iterations": 2.5}):
        args = {"iterations": 2, **kwargs}
        with pytest.raises(ParameterError):
            run_secure_phase(learner, args.pop("iterations"), **args)
    with pytest.raises(ParameterError):
        run_secure_phase(MADDPG([0], ["nds"], cfg=CFG), 2)
    with pytest.raises(ParameterError, match="pre-trained"):
        run_secure_phase(MADDPG([0], ["ede"], cfg=CFG), 2)


def test_reveal_to_sends_the_owner_the_value_and_the_other_party_nothing():
    x, y = torch.linspace(-3, 3, 16), torch.linspace(10, 40, 16)      # y is party 1's private input
    res = run_parties(reveal_probe, 2, timeout=120, party_args=[(x,), (y,)])
    scale = res[1]["scale"]
    np.testing.assert_allclose(res[1]["opened"].numpy() / scale, (x + y).numpy(), atol=1e-4)
    assert res[0]["opened"] is None and res[0]["received_during_reveal_to"] == []
    # why CrypTen's reveal(dst=...) is not used: after gloo's reduce, party 0 holds part of x + y in the
    # clear, hence party 1's private y
    held = res[0]["buffer_after_reduce"].numpy() / scale
    recovered = np.isclose(held - x.numpy(), y.numpy(), atol=1e-4)
    assert recovered.sum() >= len(y) // 4


def test_each_party_gets_only_its_own_external_randomness():
    learner = pretrained_learner(4, CFG, pretrain_episodes=16)
    rd = copy.deepcopy(learner.rand[4])
    p0, p1 = party_randomness(copy.deepcopy(rd), learner.game, CFG, 50, learner.buf_size)
    assert p0["demand"] is None and p1["batches"] is None          # shocks: player 1; indices: player 0
    assert len(p0["batches"]) == 50 and sorted(p0["initial"]) == [0, 40] and p1["initial"][0].shape == (5,)
    noise = np.stack([rd.action_noise(1)[0] for _ in range(50)])
    np.testing.assert_array_equal(p0["noise"], noise[:, 0])
    np.testing.assert_array_equal(p1["noise"], noise[:, 1])


def test_a_flagged_stage_is_recomputed_and_the_run_stays_equivalent():
    learner = pretrained_learner(7, CFG, pretrain_episodes=16)
    inject = (("critic", 2), ("actor", 3), ("acting", 3))
    ph = run_secure_phase(learner, 5, SecureSettings(inject_wrap=inject), sharing_seed=7)
    assert ph.retries == {"acting": 1, "critic": 1, "actor": 1}
    table = weight_table(ph.secure_weights, ph.plain_weights)
    assert table["rmse"].max() < 1e-4 and table["max_abs"].max() < 5e-3
    np.testing.assert_allclose(ph.secure[["p0", "q0", "p1", "q1"]], ph.plain[["p0", "q0", "p1", "q1"]], atol=1e-3)
