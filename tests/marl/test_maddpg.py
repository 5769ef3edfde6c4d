"""MADDPG: one full update against an independent autograd implementation, the information structure of
each mode, identical external randomness across modes, reproducibility, the random-policy baseline, and
bad parameters. (The passes and Adam: ``test_networks.py``; the streams: ``test_randomness.py``; the
chapter's driver and summaries: ``tests/chapters/test_ch07_supply_chain_maddpg.py``.)"""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.marl.maddpg import (ACTOR_IN, CRITIC_IN, MODES, STREAMS, Adam, MADDPG, MADDPGConfig, critic_inputs,
                                  input_masks, mlp_forward, random_policy)
from ppal_lab.marl.supply_game import TIME_COL, GameConfig

SMALL = MADDPGConfig(hidden=16, batch_size=32, buffer_size=4000, pretrain_envs=8)



def filled(learner: MADDPG, episodes: int = 8) -> MADDPG:
    learner.play("pretrain", episodes, n_envs=8, noise=0.3, learn=True)
    return learner


# ---- one update -----------------------------------------------------------------------------------


def _reference_update(learner: MADDPG, batch: dict) -> dict:
    """One MADDPG update of a single-run learner written independently with torch.nn, autograd and
    torch.optim.Adam, starting from the learner's current parameters."""
    cfg, H = learner.cfg, learner.cfg.hidden
    masks = [[torch.tensor(m, dtype=torch.float32) for m in input_masks(learner.runs[0][1], i)] for i in range(2)]

    def module(net, k, sizes):
        layers = []
        for j, (fin, fout) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = torch.nn.Linear(fin, fout)
            with torch.no_grad():
                lin.weight.copy_(net.params[2 * j][k].T)
                lin.bias.copy_(net.params[2 * j + 1][k, 0])
            layers += [lin, torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1])

    nets = {name: [module(getattr(learner, name), k, sizes) for k in range(2)]
            for name, sizes in (("actor", (ACTOR_IN, H, H, 2)), ("critic", (CRITIC_IN, H, H, 1)),
                                ("actor_target", (ACTOR_IN, H, H, 2)), ("critic_target", (CRITIC_IN, H, H, 1)))}
    o, a, r, o2 = (batch[k][0] for k in ("obs", "act", "rew", "next"))

    def a_in(obs, i):
        return torch.cat([obs[:, i], obs[:, 1 - i]], -1) * masks[i][0]

    def c_in(obs, act, i):
        return torch.cat([obs[:, i], act[:, i], obs[:, 1 - i], act[:, 1 - i]], -1) * masks[i][1]

    with torch.no_grad():
        a2 = torch.stack([torch.sigmoid(nets["actor_target"][i](a_in(o2, i))) for i in range(2)], 1)
        last = torch.tensor([[float(t == 0)] for t in o2[:, 0, TIME_COL].tolist()])   # no steps left: episode over
        y = [r[:, i:i + 1] + torch.where(last > 0, 0.0, cfg.gamma * nets["critic_target"][i](c_in(o2, a2, i)))
             for i in range(2)]
    opt_c = torch.optim.Adam([p for m in nets["critic"] for p in m.parameters()], lr=cfg.lr_critic)
    loss = sum(torch.nn.functional.mse_loss(nets["critic"][i](c_in(o, a, i)), y[i]) for i in range(2))
    loss.backward()
    opt_c.step()
    opt_a = torch.optim.Adam([p for m in nets["actor"] for p in m.parameters()], lr=cfg.lr_actor)
    total = 0.0
    for i in range(2):
        z = nets["actor"][i](a_in(o, i))
        a_new = a.clone()
        a_new[:, i] = torch.sigmoid(z)
        total = total - nets["critic"][i](c_in(o, a_new, i)).mean() + cfg.actor_reg * (z ** 2).mean()
    opt_a.zero_grad()
    total.backward()
    opt_a.step()
    with torch.no_grad():
        for online, target in (("actor", "actor_target"), ("critic", "critic_target")):
            for i in range(2):
                for p, q in zip(nets[online][i].parameters(), nets[target][i].parameters()):
                    q.mul_(1 - cfg.tau).add_(p, alpha=cfg.tau)
    return nets


@pytest.mark.parametrize("mode", MODES)
def test_one_update_equals_an_independent_autograd_implementation(mode):
    learner = filled(MADDPG([3], [mode], cfg=SMALL))      # trained a little: targets differ from online
    c = learner.cfg                                       # the reference starts Adam afresh: so do we
    learner.actor_opt = Adam(learner.actor.flat, c.lr_actor, c.adam_betas, c.adam_eps)
    learner.critic_opt = Adam(learner.critic.flat, c.lr_critic, c.adam_betas, c.adam_eps)
    batch = learner.sample()
    ref = _reference_update(learner, batch)
    learner.critic_step(batch, learner.critic_targets(batch))
    learner.actor_step(batch)
    learner.soft_update()
    for name, nets in ref.items():
        for k in range(2):
            mine = getattr(learner, name).select(k)
            theirs = [t for lin in nets[k] if isinstance(lin, torch.nn.Linear) for t in (lin.weight.T, lin.bias)]
            for m, t in zip(mine, theirs):
                torch.testing.assert_close(m.reshape(t.shape), t.detach(), rtol=1e-4, atol=1e-6)


# ---- information structure ----------------------------------------------------------------------------


def test_masks_match_the_modes():
    a, c = input_masks("nds", 0)      # the supplier's critic reads the order q1 it receives (public)
    assert a.tolist() == [1] * 5 + [0] * 5 and c.tolist() == [1] * 7 + [0] * 6 + [1]
    a, c = input_masks("nds", 1)      # the retailer's critic reads the price p0 on its invoice (public)
    assert a.tolist() == [1] * 5 + [0] * 5 and c.tolist() == [1] * 7 + [0] * 5 + [1, 0]
    a, c = input_masks("ede")
    assert a.sum() == ACTOR_IN and c.sum() == CRITIC_IN
    a, c = input_masks("ctde")
    assert a.sum() == 5 and c.sum() == CRITIC_IN


def test_nds_networks_ignore_the_other_player_and_its_weights_never_move():
    learner = MADDPG([0], ["nds", "ede"], cfg=SMALL)
    start = [learner.critic.params[0].clone(), learner.actor.params[0].clone()]
    filled(learner, 16)
    assert learner.updates > 0
    # networks k = player * runs + run; run 0 is NDS, run 1 is EDE
    for net, first, cols in ((learner.critic, start[0], slice(7, 12)), (learner.actor, start[1], slice(5, 10))):
        for player in range(2):
            nds, ede = player * 2, player * 2 + 1
            assert torch.equal(net.params[0][nds, cols], first[nds, cols])        # masked: never moved
            assert not torch.equal(net.params[0][ede, cols], first[ede, cols])    # EDE: moved
    # outputs: changing the other player's observation and action changes EDE's critic only
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(4, 6, CRITIC_IN, generator=gen)
    x2 = x.clone()
    x2[:, :, 7:12] += torch.rand(4, 6, 5, generator=gen)      # the other's observation, not its action
    q1, _ = mlp_forward(learner.critic.params, x, learner.critic_mask)
    q2, _ = mlp_forward(learner.critic.params, x2, learner.critic_mask)
    assert torch.equal(q1[[0, 2]], q2[[0, 2]]) and not torch.allclose(q1[[1, 3]], q2[[1, 3]])


def test_modes_start_from_the_same_draws_scaled_to_their_own_fan_in():
    learner = MADDPG([7], ["nds", "ede"], cfg=SMALL)
    for net, own, readable in ((learner.actor, 5, 5), (learner.critic, 7, 8)):   # NDS critic: + the transaction
        full = net.sizes[0]
        for player in range(2):
            nds, ede = net.params[0][player * 2], net.params[0][player * 2 + 1]
            torch.testing.assert_close(nds[:own] * math.sqrt(readable), ede[:own] * math.sqrt(full))
            for p in net.params[2:]:                      # deeper layers: identical
                assert torch.equal(p[player * 2], p[player * 2 + 1])


# ---- randomness and reproducibility ----------------------------------------------------------------------------


def test_external_randomness_is_identical_across_modes():
    logs = {}
    for mode in MODES:
        learner = MADDPG([11], [mode], cfg=SMALL, record_randomness=True)
        learner.train(episodes=3, pretrain_episodes=16)
        logs[mode] = learner.rand[11].log
    for stream in STREAMS:
        for mode in MODES[1:]:
            a, b = logs[MODES[0]][stream], logs[mode][stream]
            assert len(a) == len(b)
            assert all(np.array_equal(x, y) for x, y in zip(a, b)), stream
    assert len(logs["nds"]["batch"]) > 0 and len(logs["nds"]["noise"]) == (2 + 3) * 40


def test_training_is_reproducible_and_runs_do_not_depend_on_their_companions():
    def run(seeds, modes):
        learner = MADDPG(seeds, modes, cfg=SMALL)
        table = learner.train(episodes=2, pretrain_episodes=16)
        return table, learner

    t1, l1 = run([5], ["nds", "ede"])
    t2, l2 = run([5], ["nds", "ede"])
    pd.testing.assert_frame_equal(t1, t2)
    assert torch.equal(l1.actor.flat, l2.actor.flat) and torch.equal(l1.critic_target.flat, l2.critic_target.flat)
    t3, l3 = run([6, 5], ["ede"])                         # the same run trained beside another seed
    pd.testing.assert_frame_equal(t1[t1["mode"] == "ede"].reset_index(drop=True),
                                  t3[t3["seed"] == 5].reset_index(drop=True))
    w1, w3 = l1.weights(5, "ede"), l3.weights(5, "ede")
    assert all(np.array_equal(x, y) for k in w1 for x, y in zip(w1[k], w3[k]))
    t4, _ = run([6], ["ede"])
    assert not t4["total_reward"].equals(t3[t3["seed"] == 5]["total_reward"].reset_index(drop=True))


def test_random_policy_plays_the_same_measured_episodes_as_training():
    learner = MADDPG([2], ["ede"], cfg=SMALL, record_randomness=True)
    learner.train(episodes=3, pretrain_episodes=8)
    base = MADDPG([2], ["nds"], cfg=SMALL, record_randomness=True)
    base.play("real", 3, learn=False, policy="random")
    for stream in ("init_real", "demand_real"):
        assert all(np.array_equal(x, y) for x, y in zip(learner.rand[2].log[stream], base.rand[2].log[stream]))
    table = random_policy([2], 3)
    assert set(table["mode"]) == {"random"} and len(table) == 3


# ---- bad parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, name", [
    ({"hidden": 0}, "hidden"), ({"hidden": 2.5}, "hidden"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 64, "buffer_size": 32}, "batch_size"), ({"lr_actor": 0.0}, "lr_actor"),
    ({"lr_critic": -1e-3}, "lr_critic"), ({"gamma": 1.0}, "gamma"), ({"tau": 0.0}, "tau"),
    ({"noise": -0.1}, "noise"), ({"pretrain_envs": 0}, "pretrain_envs"),
])
def test_bad_hyper_parameters_raise(kwargs, name):
    with pytest.raises(ParameterError, match=f"^{name} ="):
        MADDPGConfig(**kwargs)


@pytest.mark.parametrize("call, name", [
    (lambda: MADDPG([], ["nds"]), "seeds"),
    (lambda: MADDPG([1, 1], ["nds"]), "seeds"),
    (lambda: MADDPG([-1], ["nds"]), "seed"),
    (lambda: MADDPG([0], ["shared"]), "mode"),
    (lambda: MADDPG([0], ["nds"], cfg=SMALL).train(episodes=0, pretrain_episodes=0), "episodes"),
    (lambda: MADDPG([0], ["nds"], cfg=SMALL).train(episodes=1, pretrain_episodes=-5), "pretrain_episodes"),
    (lambda: MADDPG([0], ["nds"], game=GameConfig(price_limits=(10, -18))), "price_limits[1]"),
])
def test_bad_arguments_raise_before_any_work(call, name):
    with pytest.raises(ParameterError, match=name.replace("[", r"\[").replace("]", r"\]") + " ="):
        call()


# ---- terminal transitions ---------------------------------------------------------------------------------


def test_critic_target_bootstraps_except_after_the_episodes_last_step():
    """An exact small case: two stored transitions that differ only in the steps left after them (1 and 0);
    the first's target is r + gamma Q'(x', mu'(x')), the last step's target is its reward alone."""
    learner = MADDPG([0], ["ede"], cfg=MADDPGConfig(hidden=4, batch_size=2, buffer_size=2))
    obs = torch.full((1, 2, 2, 5), 0.5)
    nxt = obs.clone()
    nxt[0, 0, :, TIME_COL] = 1.0 / 40            # one step left (normalised)
    nxt[0, 1, :, TIME_COL] = 0.0                 # the episode is over
    rew = torch.tensor([[[1.0, 2.0], [1.0, 2.0]]])
    batch = {"obs": obs, "act": torch.full((1, 2, 2, 2), 0.5), "rew": rew, "next": nxt}
    y = learner.critic_targets(batch)            # (2 players, 2 rows, 1)
    with torch.no_grad():
        a2 = learner.act(nxt, target=True)
        q_next, _ = mlp_forward(learner.critic_target.params, critic_inputs(nxt, a2), learner.critic_mask)
    assert float(q_next.abs().min()) > 0           # a non-zero bootstrap that the mask must remove
    for player in range(2):
        assert float(y[player, 1, 0]) == float(rew[0, 1, player])                        # terminal: reward only
        assert float(y[player, 0, 0]) == pytest.approx(float(rew[0, 0, player] + 0.95 * q_next[player, 0, 0]))
