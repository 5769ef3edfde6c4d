r"""MADDPG (Lowe et al. 2017) for the two-player supply chain, with and without data sharing.

Each player ``i`` has an actor :math:`\mu_i` and a critic :math:`Q_i` (3 linear layers, ``hidden`` units,
ReLU; the actor ends in a sigmoid scaled to the action box, the critic in the identity — seed 002,
Appendix G), target copies updated softly (``tau``), a replay buffer and Gaussian exploration noise. What a
player's networks may *read* is the information structure, set by the mode:

========  ===========================  ======================================  ==============
mode      actor input (10 columns)     critic input (14 columns)               shares data?
========  ===========================  ======================================  ==============
``nds``   own observation              own observation and action, plus the    never
                                       transaction it receives this step
                                       (order q1 / price p0, public)
``ede``   both observations            both observations and actions           always
``ctde``  own observation              both observations and actions           in training
========  ===========================  ======================================  ==============

Transaction data are public (the order reaches the supplier and the price the retailer in the clear,
in the secure protocol too), so column 13 (the other's ``q1``) of the supplier's critic and column 12
(the other's ``p0``) of the retailer's are readable in every mode. Critic targets do not bootstrap past an
episode's last step: a transition whose next observation has no steps left
(:data:`~ppal_lab.marl.supply_game.TIME_COL`) is terminal. ``nds`` and ``ede`` are seed 002's *no data
sharing* and *explicit data exchange*; ``ctde`` is Lowe et al.'s
original centralised-critic, decentralised-actor MADDPG. Inputs are always laid out as
``[own obs (5), other obs (5)]`` (actor) and ``[own obs (5), own action (2), other obs (5), other
action (2)]`` (critic); a mode multiplies the columns a player may not read by zero. A zeroed column
contributes nothing to any output and receives an exactly zero gradient, so its first-layer weights never
move under Adam: a masked network *is* the smaller network, and every mode has the same layer sizes as
Appendix G (10 and 14 inputs). First-layer weights are scaled by the number of *readable* inputs, so each
mode starts from PyTorch's default initialisation of its own, smaller network.

**Identical external randomness.** Every random draw outside the learner's arithmetic comes from
:class:`ExternalRandomness`, one independent NumPy stream per purpose (weights, initial states and demand
noise per phase, exploration noise, minibatch indices, random-policy actions), seeded only by the run's
seed and consumed in an order that does not depend on the mode. Runs of different modes with the same
seed therefore start from the same weights (up to the mode's scaling), meet the same initial states and
demand shocks, add the same noise to their actions and sample the same replay rows, step by step; a
secure two-party run can replay them by building the same object from the same seed. Both players
sample the *same* row indices (seed 002, Appendix E).

**Arithmetic that can run on secret shares.** The networks are plain tensors with explicit forward
(:func:`~ppal_lab.marl.networks.mlp_forward`) and backward (:func:`~ppal_lab.marl.networks.mlp_backward`)
passes and a hand-written Adam (:class:`~ppal_lab.marl.networks.Adam`), built only from matrix products, additions, ReLU masks and the sigmoid — operations a
secret-sharing engine provides — and each update is split into :meth:`MADDPG.critic_targets`,
:meth:`MADDPG.critic_step`, :meth:`MADDPG.actor_step` and :meth:`MADDPG.soft_update` so that a secure
variant can replace them one by one. Because each input puts the player's own columns first, a first layer
splits as ``x @ W1 = x_own @ W1[:k] + x_other @ W1[k:]``: in a two-party run, player ``i`` computes the
first term on its own data and only the second needs the other player's (secret-shared) columns. The unit
tests check the passes and Adam against PyTorch autograd, and one whole update against an independent
``torch.nn`` implementation.

Many runs (seeds × modes) can train at once as one batch of networks (leading dimension ``2 × runs``,
player-major). A run's numbers are bit-for-bit the same whichever runs share its batch (the tests check
this); at 128 hidden units the arithmetic dominates, so batching saves little time
(``benchmarks/bench_maddpg.py``), and chapter 7's driver
(:func:`ppal_lab.chapters.ch07_supply_chain_maddpg.run_experiment`) spreads runs over worker processes
instead.

The randomness streams live in :mod:`ppal_lab.marl.randomness`, the networks, passes and Adam in
:mod:`ppal_lab.marl.networks`; both are re-exported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_range
from ppal_lab.marl.networks import Adam, NetStack, mlp_backward, mlp_forward
from ppal_lab.marl.randomness import PHASES, STREAMS, ExternalRandomness
from ppal_lab.marl.supply_game import (ACT_DIM, OBS_DIM, TIME_COL, GameConfig, game_step, initial_obs,
                                       normalized_revenue)

__all__ = ["ACTOR_IN", "ACT_DIM", "Adam", "CRITIC_IN", "EPISODE_COLUMNS", "ExternalRandomness", "GameConfig",
           "MADDPG", "MADDPGConfig", "MODES", "MODE_NAMES", "NetStack", "OBS_DIM", "PHASES", "STREAMS",
           "actor_inputs", "critic_inputs", "game_step", "initial_obs", "input_masks", "mlp_backward",
           "mlp_forward", "progress_bar", "random_policy"]

MODES = ("nds", "ede", "ctde")
MODE_NAMES = {"nds": "no data sharing (NDS)", "ede": "explicit data exchange (EDE)",
              "ctde": "centralised critic only (CTDE)"}
ACTOR_IN = 2 * OBS_DIM                 # 10, as in seed 002's Appendix G
CRITIC_IN = 2 * (OBS_DIM + ACT_DIM)    # 14
EPISODE_COLUMNS = ("reward_0", "reward_1", "total_reward", "wastage", "ncr", "p0", "q0", "p1", "q1",
                   "shipped", "sold", "critic_loss_0", "critic_loss_1")


@dataclass(frozen=True)
class MADDPGConfig:
    """Hyper-parameters. Appendix G fixes ``hidden=128``, ``batch_size=128`` and Adam; the rest are ours
    (Lowe et al.'s ``gamma`` and ``tau``; learning rates, noise and reward scale for this game)."""

    hidden: int = 128
    batch_size: int = 128
    lr_actor: float = 1e-3
    lr_critic: float = 1e-3
    gamma: float = 0.95
    tau: float = 0.01
    buffer_size: int = 100_000
    noise: float = 0.1            # std of the Gaussian action noise (actions in [0, 1] units), real phase
    pretrain_noise: float = 0.3   # the same during the exploration / pre-training phase
    reward_scale: float = 0.01    # rewards are multiplied by this before the critics see them
    actor_reg: float = 1e-3       # penalty on the actor's pre-sigmoid outputs (Lowe et al.'s code has one)
    pretrain_envs: int = 16       # pre-training episodes played side by side
    updates_per_step: int = 1
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8

    def __post_init__(self):
        check_int("hidden", self.hidden, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("buffer_size", self.buffer_size, 1)
        if self.batch_size > self.buffer_size:
            raise ParameterError("batch_size", self.batch_size, f"<= buffer_size ({self.buffer_size})")
        check_range("lr_actor", self.lr_actor, 0.0, 1.0, low_open=True)
        check_range("lr_critic", self.lr_critic, 0.0, 1.0, low_open=True)
        check_range("gamma", self.gamma, 0.0, 1.0, high_open=True)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        check_range("noise", self.noise, 0.0, 1.0)
        check_range("pretrain_noise", self.pretrain_noise, 0.0, 1.0)
        check_range("reward_scale", self.reward_scale, 0.0, low_open=True)
        check_range("actor_reg", self.actor_reg, 0.0)
        check_int("pretrain_envs", self.pretrain_envs, 1)
        check_int("updates_per_step", self.updates_per_step, 1)
        b1, b2 = self.adam_betas
        check_range("adam_betas[0]", b1, 0.0, 1.0, high_open=True)
        check_range("adam_betas[1]", b2, 0.0, 1.0, high_open=True)
        check_range("adam_eps", self.adam_eps, 0.0, low_open=True)


def input_masks(mode: str, player: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The actor (10) and critic (14) input masks of ``player`` in a mode: 1 = its network reads the column."""
    check_choice("mode", mode, MODES)
    check_choice("player", player, (0, 1))
    actor_joint, critic_joint = {"nds": (False, False), "ede": (True, True), "ctde": (False, True)}[mode]
    own_a, own_c = np.ones(OBS_DIM), np.ones(OBS_DIM + ACT_DIM)
    actor = np.concatenate([own_a, np.full(OBS_DIM, float(actor_joint))])
    critic = np.concatenate([own_c, np.full(OBS_DIM + ACT_DIM, float(critic_joint))])
    # Transaction data are public: the order q1 reaches the supplier and the price p0 the retailer in the
    # clear in every mode (and in the secure protocol), so even an NDS critic reads this step's one.
    critic[2 * OBS_DIM + ACT_DIM + (1 if player == 0 else 0)] = 1.0
    return actor, critic


# --------------------------------------------------------------------------------------------------
# The learner
# --------------------------------------------------------------------------------------------------
def actor_inputs(obs: torch.Tensor) -> torch.Tensor:
    """``obs (runs, B, 2, 5)`` → ``(2·runs, B, 10)``: ``[own, other]`` per player, player-major."""
    o0, o1 = obs[:, :, 0], obs[:, :, 1]
    return torch.cat([torch.cat([o0, o1], -1), torch.cat([o1, o0], -1)], 0)


def critic_inputs(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """``obs (runs, B, 2, 5)``, ``act (runs, B, 2, 2)`` → ``(2·runs, B, 14)``:
    ``[own obs, own action, other obs, other action]`` per player, player-major."""
    x0 = torch.cat([obs[:, :, 0], act[:, :, 0]], -1)
    x1 = torch.cat([obs[:, :, 1], act[:, :, 1]], -1)
    return torch.cat([torch.cat([x0, x1], -1), torch.cat([x1, x0], -1)], 0)


def _players_to_runs(x: torch.Tensor, runs: int) -> torch.Tensor:
    """``(2·runs, B, k)`` player-major → ``(runs, B, 2, k)``."""
    return x.view(2, runs, *x.shape[1:]).permute(1, 2, 0, 3)


class MADDPG:
    """MADDPG for every (seed, mode) pair of ``seeds × modes``, trained side by side.

    >>> learner = MADDPG(seeds=[0], modes=["nds", "ede"])
    >>> result = learner.train(episodes=5, pretrain_episodes=16)   # doctest: +SKIP
    """

    def __init__(self, seeds: Iterable[int], modes: Iterable[str] = ("nds", "ede"),
                 game: GameConfig | None = None, cfg: MADDPGConfig | None = None,
                 record_randomness: bool = False):
        seeds, modes = list(seeds), list(modes)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ParameterError("seeds", seeds, "a non-empty list of distinct ints")
        for s in seeds:
            check_int("seed", s, 0, 2**32 - 1)
        if not modes or len(set(modes)) != len(modes):
            raise ParameterError("modes", modes, "a non-empty list of distinct modes")
        for m in modes:
            check_choice("mode", m, MODES)
        if game is not None and not isinstance(game, GameConfig):
            raise ParameterError("game", game, "a GameConfig")
        if cfg is not None and not isinstance(cfg, MADDPGConfig):
            raise ParameterError("cfg", cfg, "a MADDPGConfig")
        self.game, self.cfg = game or GameConfig(), cfg or MADDPGConfig()
        self.seeds, self.modes = seeds, modes
        self.runs = [(s, m) for s in seeds for m in modes]
        self.n_runs = R = len(self.runs)
        self.rand = {s: ExternalRandomness(s, record=record_randomness) for s in seeds}
        self._seed_index = np.array([seeds.index(s) for s, _ in self.runs])
        H = self.cfg.hidden
        masks = [[input_masks(m, player) for _, m in self.runs] for player in range(2)]
        self.actor_mask = torch.tensor(np.stack([masks[i][r][0] for i in range(2) for r in range(R)]),
                                       dtype=torch.float32)[:, None, :]
        self.critic_mask = torch.tensor(np.stack([masks[i][r][1] for i in range(2) for r in range(R)]),
                                        dtype=torch.float32)[:, None, :]
        self.actor, self.critic = NetStack(2 * R, (ACTOR_IN, H, H, ACT_DIM)), NetStack(2 * R, (CRITIC_IN, H, H, 1))
        self._init_weights()
        self.actor_target, self.critic_target = self.actor.clone(), self.critic.clone()
        self.actor_grad, self.critic_grad = self.actor.zeros_like(), self.critic.zeros_like()
        c = self.cfg
        self.actor_opt = Adam(self.actor.flat, c.lr_actor, c.adam_betas, c.adam_eps)
        self.critic_opt = Adam(self.critic.flat, c.lr_critic, c.adam_betas, c.adam_eps)
        cap = c.buffer_size
        self.buf_obs = torch.zeros(R, cap, 2, OBS_DIM)
        self.buf_act = torch.zeros(R, cap, 2, ACT_DIM)
        self.buf_rew = torch.zeros(R, cap, 2)
        self.buf_next = torch.zeros(R, cap, 2, OBS_DIM)
        self.buf_pos, self.buf_size = 0, 0
        self.obs_scale = self.game.obs_scale()
        self.act_high = self.game.action_high()
        self.updates = 0
        self._losses: list[np.ndarray] = []

    # ---- initialisation ------------------------------------------------------------------------
    def _init_weights(self) -> None:
        """Uniform(-b, b) with b = 1/sqrt(readable fan-in), PyTorch's default for ``nn.Linear``."""
        R = self.n_runs
        for net, mask in ((self.actor, self.actor_mask), (self.critic, self.critic_mask)):
            raw = {s: [self.rand[s].weights((2,) + shape[1:]) for shape in net.shapes] for s in self.seeds}
            for k in range(2 * R):
                player, r = divmod(k, R)
                seed = self.runs[r][0]
                fan_in = [float(mask[k].sum())] + list(net.sizes[1:-1])
                for j, p in enumerate(net.params):
                    bound = 1.0 / math.sqrt(fan_in[j // 2])
                    p[k].copy_(torch.from_numpy(raw[seed][j][player] * bound))

    # ---- randomness per run ------------------------------------------------------------------
    def _per_run(self, draw) -> np.ndarray:
        """Call ``draw(rand)`` once per seed and spread the result over that seed's runs."""
        by_seed = np.stack([draw(self.rand[s]) for s in self.seeds])
        return by_seed[self._seed_index]

    # ---- acting ------------------------------------------------------------------------------
    def normalize(self, obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(obs / self.obs_scale).float()

    def act(self, obs_n: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Deterministic actions in [0, 1] units, ``(runs, B, 2, 2)``, from normalised ``obs (runs, B, 2, 5)``."""
        net = self.actor_target if target else self.actor
        y, _ = mlp_forward(net.params, actor_inputs(obs_n), self.actor_mask, "sigmoid")
        return _players_to_runs(y, self.n_runs)

    # ---- replay buffer -----------------------------------------------------------------------
    def store(self, obs_n, act, rew_scaled, next_n) -> None:
        E, cap = obs_n.shape[1], self.cfg.buffer_size
        idx = (self.buf_pos + torch.arange(E)) % cap
        self.buf_obs[:, idx], self.buf_act[:, idx] = obs_n, act
        self.buf_rew[:, idx], self.buf_next[:, idx] = rew_scaled, next_n
        self.buf_pos = int((self.buf_pos + E) % cap)
        self.buf_size = min(self.buf_size + E, cap)

    def sample(self) -> dict[str, torch.Tensor]:
        """A minibatch per run; every run of one seed (and both players) gets the same row indices."""
        B = self.cfg.batch_size
        idx = torch.from_numpy(self._per_run(lambda rd: rd.minibatch(self.buf_size, B)))
        rows = torch.arange(self.n_runs)[:, None]
        return {"obs": self.buf_obs[rows, idx], "act": self.buf_act[rows, idx],
                "rew": self.buf_rew[rows, idx], "next": self.buf_next[rows, idx]}

    # ---- one MADDPG update, in four replaceable parts ---------------------------------------
    def critic_targets(self, batch) -> torch.Tensor:
        """``y_i = r_i + gamma * (1 - done) * Q'_i(x', mu'_0(.), mu'_1(.))``, shape ``(2·runs, B, 1)``;
        ``done`` (no steps left in ``x'``) ends the episode, so nothing is bootstrapped past it."""
        next_act = self.act(batch["next"], target=True)
        q_next, _ = mlp_forward(self.critic_target.params, critic_inputs(batch["next"], next_act),
                                self.critic_mask)
        rew = batch["rew"].permute(2, 0, 1).reshape(2 * self.n_runs, -1, 1)
        going_on = (batch["next"][:, :, 0, TIME_COL] > 0).float().repeat(2, 1)[..., None]
        return rew + (self.cfg.gamma * going_on) * q_next

    def critic_step(self, batch, y: torch.Tensor) -> torch.Tensor:
        """One Adam step on the mean squared TD error; returns the loss per network ``(2·runs,)``."""
        q, cache = mlp_forward(self.critic.params, critic_inputs(batch["obs"], batch["act"]), self.critic_mask)
        diff = q - y
        mlp_backward(self.critic.params, cache, diff * (2.0 / diff.shape[1]), grads=self.critic_grad.params)
        self.critic_opt.step(self.critic_grad.flat)
        return (diff ** 2).mean(dim=(1, 2))

    def actor_step(self, batch) -> torch.Tensor:
        """One Adam step on ``-mean Q_i(x, mu_i(.), a_other) + actor_reg * mean(z^2)`` (the other
        player's action from the buffer, as in Lowe et al.); returns ``-mean Q`` per network."""
        R, B = self.n_runs, self.cfg.batch_size
        mu, a_cache = mlp_forward(self.actor.params, actor_inputs(batch["obs"]), self.actor_mask, "sigmoid")
        own = _players_to_runs(mu, R)                       # (R, B, 2, 2): player i's own new action
        obs, act = batch["obs"], batch["act"]
        x0 = torch.cat([obs[:, :, 0], own[:, :, 0]], -1)
        x1 = torch.cat([obs[:, :, 1], own[:, :, 1]], -1)
        b0 = torch.cat([obs[:, :, 0], act[:, :, 0]], -1)
        b1 = torch.cat([obs[:, :, 1], act[:, :, 1]], -1)
        x = torch.cat([torch.cat([x0, b1], -1), torch.cat([x1, b0], -1)], 0)
        q, c_cache = mlp_forward(self.critic.params, x, self.critic_mask)
        g_in = mlp_backward(self.critic.params, c_cache, torch.full_like(q, -1.0 / B), need_input=True)
        g_mu = g_in[:, :, OBS_DIM:OBS_DIM + ACT_DIM]
        z = a_cache[-1]
        g_z = g_mu * mu * (1.0 - mu) + z * (2.0 * self.cfg.actor_reg / (B * ACT_DIM))
        mlp_backward(self.actor.params, a_cache, g_z, grads=self.actor_grad.params)
        self.actor_opt.step(self.actor_grad.flat)
        return -q.mean(dim=(1, 2))

    def soft_update(self) -> None:
        tau = self.cfg.tau
        self.actor_target.flat.lerp_(self.actor.flat, tau)
        self.critic_target.flat.lerp_(self.critic.flat, tau)

    def update(self) -> np.ndarray:
        """One MADDPG update of every network; returns the critic losses, shape ``(runs, 2)``."""
        batch = self.sample()
        loss = self.critic_step(batch, self.critic_targets(batch))
        self.actor_step(batch)
        self.soft_update()
        self.updates += 1
        return loss.view(2, self.n_runs).T.numpy().copy()

    # ---- playing episodes --------------------------------------------------------------------
    def initial(self, phase: str, n_envs: int = 1) -> np.ndarray:
        """The initial observations ``(runs, n_envs, 2, 5)`` of ``n_envs`` new episodes of ``phase``."""
        return initial_obs(self.game, self._per_run(lambda rd: rd.initial(phase, n_envs)))

    def step(self, phase: str, obs: np.ndarray, t: int, noise: float = 0.0, learn: bool = True,
             policy: str = "actor") -> tuple[np.ndarray, np.ndarray, dict, list[np.ndarray]]:
        """One environment step ``t`` of every run's episodes from ``obs (runs, E, 2, 5)``: act (with
        exploration ``noise``), play the game, and with ``learn`` store the transition and update
        ``updates_per_step`` times once the buffer holds a minibatch. Returns the next observations, the
        rewards, the game's ``info`` and the critic losses of the updates (a list of ``(runs, 2)``)."""
        E, losses = obs.shape[1], []
        obs_n = self.normalize(obs)
        if policy == "actor":
            with torch.no_grad():
                unit = self.act(obs_n)
            eps = torch.from_numpy(self._per_run(lambda rd: rd.action_noise(E))).float()
            unit = (unit + noise * eps).clamp_(0.0, 1.0)
        else:
            unit = torch.from_numpy(self._per_run(lambda rd: rd.random_actions(E))).float()
        phys = unit.numpy().astype(np.float64) * self.act_high
        shock = self._per_run(lambda rd: rd.demand(phase, E))
        nxt, rew, info = game_step(self.game, obs, phys, shock, last=t == self.game.horizon - 1)
        if learn:
            self.store(obs_n, unit, torch.from_numpy(rew * self.cfg.reward_scale).float(), self.normalize(nxt))
            if self.buf_size >= self.cfg.batch_size:
                for _ in range(self.cfg.updates_per_step):
                    losses.append(self.update())
        return nxt, rew, info, losses

    def play(self, phase: str, episodes: int, n_envs: int = 1, noise: float = 0.0, learn: bool = True,
             policy: str = "actor", progress=None) -> pd.DataFrame:
        """Play ``episodes`` episodes (``n_envs`` side by side), learning after every step when ``learn``;
        returns one row per run and episode with the episode's totals and averages."""
        check_choice("phase", phase, PHASES)
        check_choice("policy", policy, ("actor", "random"))
        check_int("episodes", episodes, 0)
        check_int("n_envs", n_envs, 1)
        check_range("noise", noise, 0.0, 1.0)
        rows, done, T, R = [], 0, self.game.horizon, self.n_runs
        while done < episodes:
            E = min(n_envs, episodes - done)
            obs = self.initial(phase, E)
            tot = {k: np.zeros((R, E)) for k in ("r0", "r1", "waste", "p0", "q0", "p1", "q1", "ship", "sold")}
            losses = []
            for t in range(T):
                obs, rew, info, step_losses = self.step(phase, obs, t, noise, learn, policy)
                losses += step_losses
                a = info["actions"]
                for key, val in (("r0", rew[..., 0]), ("r1", rew[..., 1]), ("waste", info["wastage"]),
                                 ("p0", a[..., 0, 0]), ("q0", a[..., 0, 1]), ("p1", a[..., 1, 0]),
                                 ("q1", a[..., 1, 1]), ("ship", info["shipped"]), ("sold", info["sold"])):
                    tot[key] += val
            loss = np.mean(losses, axis=0) if losses else np.full((R, 2), np.nan)
            for r, (seed, mode) in enumerate(self.runs):
                for e in range(E):
                    total = tot["r0"][r, e] + tot["r1"][r, e]
                    rows.append({"seed": seed, "mode": mode, "phase": phase, "policy": policy,
                                 "episode": done + e, "reward_0": tot["r0"][r, e], "reward_1": tot["r1"][r, e],
                                 "total_reward": total, "wastage": tot["waste"][r, e],
                                 "ncr": normalized_revenue(self.game, total, tot["waste"][r, e]),
                                 **{k: tot[k][r, e] / T for k in ("p0", "q0", "p1", "q1")},
                                 "shipped": tot["ship"][r, e] / T, "sold": tot["sold"][r, e] / T,
                                 "critic_loss_0": loss[r, 0], "critic_loss_1": loss[r, 1]})
            done += E
            if progress is not None:
                progress.update(E)
        return pd.DataFrame(rows)

    def train(self, episodes: int, pretrain_episodes: int, progress: bool = False) -> pd.DataFrame:
        """Seed 002's protocol: ``pretrain_episodes`` of exploration on simulated data (its own initial
        states and demand shocks, ``pretrain_noise``, ``pretrain_envs`` at a time), then ``episodes``
        measured episodes one at a time with ``noise``, learning throughout."""
        check_int("episodes", episodes, 1)
        check_int("pretrain_episodes", pretrain_episodes, 0)
        bar = None
        if progress:
            bar = progress_bar(episodes + pretrain_episodes, f"seeds {self.seeds}", leave=False)
        c = self.cfg
        pre = self.play("pretrain", pretrain_episodes, c.pretrain_envs, c.pretrain_noise, progress=bar)
        real = self.play("real", episodes, 1, c.noise, progress=bar)
        if bar is not None:
            bar.close()
        return pd.concat([pre, real], ignore_index=True)

    def weights(self, seed: int, mode: str) -> dict[str, list[np.ndarray]]:
        """Final parameters of one run: ``{"actor_0": [W1, b1, ...], "critic_0": ..., "actor_target_0": ...}``."""
        r = self.runs.index((seed, mode))
        out = {}
        for name, net in (("actor", self.actor), ("critic", self.critic),
                          ("actor_target", self.actor_target), ("critic_target", self.critic_target)):
            for player in range(2):
                out[f"{name}_{player}"] = [p.numpy() for p in net.select(player * self.n_runs + r)]
        return out


# --------------------------------------------------------------------------------------------------
# Progress and the random-policy baseline
# --------------------------------------------------------------------------------------------------
def progress_bar(total: int, desc: str, leave: bool = True):
    import warnings

    with warnings.catch_warnings():       # tqdm.auto warns when ipywidgets is missing; text bars are fine
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=leave)


def random_policy(seeds: Iterable[int], episodes: int, game: GameConfig | None = None) -> pd.DataFrame:
    """Uniformly random actions on the same measured episodes (initial states, demand) as training."""
    learner = MADDPG(seeds, ["nds"], game, MADDPGConfig(buffer_size=1, batch_size=1, hidden=1))
    return learner.play("real", episodes, 1, learn=False, policy="random").assign(mode="random")
