"""Tests of the secure two-party MADDPG (ppal_lab.secure.secure_maddpg and its party side,
ppal_lab.secure.maddpg_party); the chapter's summaries: tests/chapters/test_ch08_secure_maddpg.py.
The runs use the dealer (CrypTen's TTP provider in its own process, started by run_parties).

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
import pandas as pd
import pytest
import torch
from scipy import stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.marl.maddpg import MADDPG, MADDPGConfig
from ppal_lab.secure import run_parties
from ppal_lab.secure.examples import reveal_probe
from ppal_lab.marl.maddpg import initial_obs
from ppal_lab.secure.maddpg_party import OWN_INIT, PlayerDraws, public_batches
from ppal_lab.secure.secure_maddpg import (NETWORKS, JointDraws, SecureSettings, own_state, plain_phase,
                                           private_seeds, run_secure_phase, weight_table)
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


def test_own_state_holds_only_that_players_columns():
    learner = pretrained_learner(1, CFG, pretrain_episodes=16)
    for p in (0, 1):
        st = own_state(learner, p)
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
    run = run_secure_phase(other, 1, SecureSettings(keep_shares=True), pretrain_episodes=16, sharing_seed=5)
    assert not torch.equal(other.buf_obs[0, :16, 0], pretrained_learner(5, CFG, pretrain_episodes=16).buf_obs[0, :16, 0])
    assert torch.equal(run.shares[1]["peer_obs_share"], phase.shares[1]["peer_obs_share"])


def test_a_killed_party_ends_the_run_with_a_clear_error_quickly():
    learner = pretrained_learner(0, CFG, pretrain_episodes=16)
    start = time.monotonic()
    with pytest.raises(PartyError, match="rank 1"):
        run_secure_phase(learner, 5, SecureSettings(crash_at=(1, 2), timeout_s=100), pretrain_episodes=16)
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("kwargs", [{"precision_bits": 9}, {"precision_bits": 21}, {"precision_bits": True},
                                    {"max_retries": -1}, {"timeout_s": 0}, {"inject_wrap": (("critic", 1),)},
                                    {"inject_wrap": (("critic", 1, 2),)}, {"batch_dealer": 1}])
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
            run_secure_phase(learner, args.pop("iterations"), pretrain_episodes=16, **args)
    with pytest.raises(ParameterError):
        run_secure_phase(MADDPG([0], ["nds"], cfg=CFG), 2, pretrain_episodes=16)
    with pytest.raises(ParameterError, match="pre-trained"):
        run_secure_phase(MADDPG([0], ["ede"], cfg=CFG), 2, pretrain_episodes=16)


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


def test_each_player_draws_only_from_its_own_seed_and_the_twin_replays_both():
    """A player's draws depend on its own seed alone; the plaintext twin's JointDraws serve the two
    players' draws in ExternalRandomness's layout; the minibatch rows come from the public seed."""
    s0, s1 = private_seeds(4)
    a, b = PlayerDraws(0, s0), PlayerDraws(0, s0)
    assert np.array_equal(a.initial(), b.initial()) and np.array_equal(a.action_noise(), b.action_noise())
    assert not np.array_equal(PlayerDraws(0, s0).action_noise(), PlayerDraws(0, s0 + 1).action_noise())
    with pytest.raises(ParameterError):
        PlayerDraws(0, s0).demand()                       # the demand shocks are player 1's market
    joint, p0, p1 = JointDraws(None, 4), PlayerDraws(0, s0), PlayerDraws(1, s1)
    u = joint.initial("real", 1)[0]
    np.testing.assert_array_equal(u[list(OWN_INIT[0])], p0.initial())
    np.testing.assert_array_equal(u[list(OWN_INIT[1])], p1.initial())
    np.testing.assert_array_equal(joint.action_noise(1)[0], np.stack([p0.action_noise(), p1.action_noise()]))
    assert joint.demand("real", 1)[0] == p1.demand()
    np.testing.assert_array_equal(joint.minibatch(100, 8), public_batches(4).integers(0, 100, 8))


def test_a_players_first_observation_needs_only_its_draws_and_the_number_it_is_sent():
    """Each player's row of initial_obs depends on its own three draws and on the one number of the
    other's that it is sent at the start (p0 to player 1, q1 to player 0), whatever the rest is."""
    from ppal_lab.marl.maddpg import GameConfig
    from ppal_lab.secure.maddpg_party import _SENT_AT_START

    game, rng = GameConfig(), np.random.default_rng(0)
    for _ in range(20):
        u = rng.random(6)
        joint = initial_obs(game, u)
        for p in (0, 1):
            other = 1 - p
            v = rng.random(6)                             # the other's private draws: anything
            v[list(OWN_INIT[p])] = u[list(OWN_INIT[p])]
            v[_SENT_AT_START[other]] = u[_SENT_AT_START[other]]
            np.testing.assert_array_equal(initial_obs(game, v)[p], joint[p])


def test_a_party_that_replays_another_exploration_is_refused():
    learner = pretrained_learner(8, CFG, pretrain_episodes=16)
    with pytest.raises(RuntimeError, match="another exploration"):
        run_secure_phase(learner, 1, pretrain_episodes=32, sharing_seed=8)


def test_real_wraps_are_detected_on_shares_and_the_stage_recomputed():
    """Real truncation failures (2^(64-b) ring units on one share, where CrypTen's truncation puts them):
    upwards in the critic stage, downwards (a ReLU unit silently switched off) in the actor stage and in
    acting. Each is caught, recomputed once, and the run stays equivalent."""
    learner = pretrained_learner(7, CFG, pretrain_episodes=16)
    inject = (("critic", 2, 1), ("actor", 3, -1), ("acting", 3, -1))
    ph = run_secure_phase(learner, 5, SecureSettings(inject_wrap=inject), pretrain_episodes=16, sharing_seed=7)
    assert ph.retries == {"acting": 1, "critic": 1, "actor": 1}
    table = weight_table(ph.secure_weights, ph.plain_weights)
    assert table["rmse"].max() < 1e-4 and table["max_abs"].max() < 5e-3
    np.testing.assert_allclose(ph.secure[["p0", "q0", "p1", "q1"]], ph.plain[["p0", "q0", "p1", "q1"]], atol=1e-3)


def test_a_wrap_changes_what_the_owner_receives_by_one_bit_only():
    """Two runs with the same masks and dealer, one with a real wrap of player 0's critic (one first-layer
    pre-activation + 2^28, the review's attack): what each party receives -- the opened verdict bits and
    the values opened to it -- differs only in one extra bit (1 then a recomputation); every opened value
    agrees within fixed-point rounding. Opening before checking would hand the owner the wrapped
    gradient (entries ~2^28 x the other's data) and fail the comparison."""
    learner = pretrained_learner(9, CFG, pretrain_episodes=16)
    runs = [run_secure_phase(learner, 3, SecureSettings(keep_view=True, inject_wrap=inject), pretrain_episodes=16,
                             sharing_seed=9) for inject in ((), (("critic", 1, 1),))]
    for p in (0, 1):
        clean, wrapped = runs[0].views[p], runs[1].views[p]
        extra = [v for v in wrapped if v["bit"]]
        assert [(v["stage"], v["iteration"], v["attempt"]) for v in extra] == [("critic", 1, 0)]
        assert "opened" not in extra[0] and not any(v["bit"] for v in clean)
        rest = [v for v in wrapped if not v["bit"]]
        assert [(v["stage"], v["iteration"]) for v in rest] == [(v["stage"], v["iteration"]) for v in clean]
        for v, w in zip(clean, rest):
            np.testing.assert_allclose(w["opened"], v["opened"], rtol=1e-3, atol=1e-3)


def test_the_parties_are_given_public_parameters_and_their_own_seed_only(monkeypatch):
    """Nothing of either player's state reaches the launcher: every party gets the same public arguments
    (game, hyper-parameters, settings, iterations, public seed, exploration episodes) and its own seed."""
    import pickle

    import ppal_lab.secure.twoparty as tp

    seen = {}

    def capture(fn, world_size, args=(), party_args=None, **kwargs):
        seen.update(fn=fn, args=args, party_args=party_args)
        raise RuntimeError("captured")

    monkeypatch.setattr(tp, "run_parties", capture)
    learner = pretrained_learner(3, CFG, pretrain_episodes=16)
    with pytest.raises(RuntimeError, match="captured"):
        run_secure_phase(learner, 2, pretrain_episodes=16, sharing_seed=3)
    assert seen["fn"].__name__ == "secure_party"
    assert [type(a).__name__ for a in seen["args"]] == ["GameConfig", "MADDPGConfig", "SecureSettings", "int", "int",
                                                        "int"]
    assert [len(p) for p in seen["party_args"]] == [1, 1] and seen["party_args"][0] != seen["party_args"][1]
    assert all(isinstance(p[0], int) for p in seen["party_args"])
    assert len(pickle.dumps((seen["args"], seen["party_args"]))) < 4000     # no tensors, no buffers


def test_batched_dealer_requests_change_no_value_and_cut_the_round_trips():
    """The same run (seeds, dealer seed, an injected wrap in acting and in the critic stage) with one
    dealer request per tuple and with each stage attempt's requests in one message: bit-identical
    weights, actions and player-to-player traffic, the same retries, and far fewer dealer round trips."""
    learner = pretrained_learner(7, CFG, pretrain_episodes=16)
    inject = (("acting", 1, -1), ("critic", 2, 1))
    one_by_one, batched = [run_secure_phase(learner, 4, SecureSettings(inject_wrap=inject, batch_dealer=b),
                                            pretrain_episodes=16, sharing_seed=7) for b in (False, True)]
    for key, weights in one_by_one.secure_weights.items():
        assert all(np.array_equal(a, b) for a, b in zip(weights, batched.secure_weights[key])), key
    pd.testing.assert_frame_equal(one_by_one.secure, batched.secure)
    for col in ("rounds", "bytes"):
        assert one_by_one.comm[col].tolist() == batched.comm[col].tolist(), col
    assert (batched.comm["dealer_bytes"] <= one_by_one.comm["dealer_bytes"]).all()   # the same shares
    assert one_by_one.retries == batched.retries == {"acting": 1, "critic": 1, "actor": 0}
    table = weight_table(batched.secure_weights, batched.plain_weights)
    assert table["rmse"].max() < 1e-4 and table["max_abs"].max() < 5e-3
    # one message per stage attempt once recorded (iteration 0 records); a retry prefetches again
    assert batched.comm["dealer_requests"].tolist()[1:] == [4, 4, 3]     # retries in iterations 1, 2
    assert (one_by_one.comm["dealer_requests"][1:] > 40 * batched.comm["dealer_requests"][1:]).all()


def test_the_party_command_config_switches_batching():
    from ppal_lab.secure.maddpg_party import _config_arguments

    assert _config_arguments({"private_seed": 1})[2].batch_dealer is True
    assert _config_arguments({"private_seed": 1, "batch_dealer": 0})[2].batch_dealer is False
    for bad in (2, True):
        with pytest.raises(ParameterError):
            _config_arguments({"private_seed": 1, "batch_dealer": bad})
