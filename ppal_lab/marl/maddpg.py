r"""MADDPG (Lowe et al. 2017) for the two-player supply chain, with and without data sharing.

Each player ``i`` has an actor :math:`\mu_i` and a critic :math:`Q_i` (3 linear layers, ``hidden`` units,
ReLU; the actor ends in a sigmoid scaled to the action box, the critic in the identity — seed 002,
Appendix G), target copies updated softly (``tau``), a replay buffer and Gaussian exploration noise. What a
player's networks may *read* is the information structure, set by the mode:

========  ===========================  ======================================  ==============
mode      actor input (10 columns)     critic input (14 columns)               shares data?
========  ===========================  ======================================  ==============
``nds``   own observation              own observation and action              never
``ede``   both observations            both observations and actions           always
``ctde``  own observation              both observations and actions           in training
========  ===========================  ======================================  ==============

``nds`` and ``ede`` are seed 002's *no data sharing* and *explicit data exchange*; ``ctde`` is Lowe et al.'s
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
(:func:`mlp_forward`) and backward (:func:`mlp_backward`) passes and a hand-written Adam
(:class:`Adam`), built only from matrix products, additions, ReLU masks and the sigmoid — operations a
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
(``benchmarks/bench_maddpg.py``), and :func:`run_experiment` spreads runs over worker processes instead.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_range
from ppal_lab.marl.supply_game import ACT_DIM, N_INIT, OBS_DIM, GameConfig, game_step, initial_obs

MODES = ("nds", "ede", "ctde")
MODE_NAMES = {"nds": "no data sharing (NDS)", "ede": "explicit data exchange (EDE)",
              "ctde": "centralised critic only (CTDE)"}
ACTOR_IN = 2 * OBS_DIM                 # 10, as in seed 002's Appendix G
CRITIC_IN = 2 * (OBS_DIM + ACT_DIM)    # 14
PHASES = ("pretrain", "real", "eval")
STREAMS = ("weights", "init_pretrain", "demand_pretrain", "init_real", "demand_real", "init_eval",
           "demand_eval", "noise", "batch", "random_policy")
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


def input_masks(mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The actor (10) and critic (14) input masks of a mode: 1 = the player's network reads the column."""
    check_choice("mode", mode, MODES)
    actor_joint, critic_joint = {"nds": (False, False), "ede": (True, True), "ctde": (False, True)}[mode]
    own_a, own_c = np.ones(OBS_DIM), np.ones(OBS_DIM + ACT_DIM)
    actor = np.concatenate([own_a, np.full(OBS_DIM, float(actor_joint))])
    critic = np.concatenate([own_c, np.full(OBS_DIM + ACT_DIM, float(critic_joint))])
    return actor, critic


# --------------------------------------------------------------------------------------------------
# External randomness
# --------------------------------------------------------------------------------------------------
class ExternalRandomness:
    """All draws a training run needs besides its arithmetic, one independent stream per purpose.

    Built from the run's seed alone, so any process (a plaintext run in another mode, or a secure run's
    parties) that builds it from the same seed and asks in the same order gets the same numbers. With
    ``record=True`` every draw is kept in :attr:`log` (stream name → list of arrays).
    """

    def __init__(self, seed: int, record: bool = False):
        check_int("seed", seed, 0, 2**32 - 1)
        children = np.random.SeedSequence(int(seed)).spawn(len(STREAMS))
        self.seed = int(seed)
        self._gen = {name: np.random.Generator(np.random.PCG64(ss)) for name, ss in zip(STREAMS, children)}
        self.record = record
        self.log: dict[str, list[np.ndarray]] = {name: [] for name in STREAMS}

    def _keep(self, name: str, x: np.ndarray) -> np.ndarray:
        if self.record:
            self.log[name].append(np.array(x, copy=True))
        return x

    def weights(self, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform(-1, 1) draws; the learner scales them to each layer's initialisation bound."""
        return self._keep("weights", self._gen["weights"].uniform(-1.0, 1.0, size=shape))

    def initial(self, phase: str, n: int) -> np.ndarray:
        """``(n, 6)`` uniform draws for :func:`ppal_lab.marl.supply_game.initial_obs`."""
        check_choice("phase", phase, PHASES)
        return self._keep(f"init_{phase}", self._gen[f"init_{phase}"].random((n, N_INIT)))

    def demand(self, phase: str, n: int) -> np.ndarray:
        """``(n,)`` standard-normal demand shocks for one step of ``n`` episodes."""
        check_choice("phase", phase, PHASES)
        return self._keep(f"demand_{phase}", self._gen[f"demand_{phase}"].standard_normal(n))

    def action_noise(self, n: int) -> np.ndarray:
        """``(n, 2 players, 2)`` standard-normal exploration noise (scaled by the learner)."""
        return self._keep("noise", self._gen["noise"].standard_normal((n, 2, ACT_DIM)))

    def minibatch(self, size: int, batch: int) -> np.ndarray:
        """``batch`` row indices drawn uniformly, with replacement, from a buffer holding ``size`` rows."""
        return self._keep("batch", self._gen["batch"].integers(0, size, batch))

    def random_actions(self, n: int) -> np.ndarray:
        """``(n, 2, 2)`` uniform actions in [0, 1] units for the random-policy baseline."""
        return self._keep("random_policy", self._gen["random_policy"].random((n, 2, ACT_DIM)))


# --------------------------------------------------------------------------------------------------
# Networks as plain tensors: forward, backward, Adam
# --------------------------------------------------------------------------------------------------
class NetStack:
    """``n`` MLPs of the same shape stored in one flat tensor; ``params`` are views
    ``[W1 (n, in, h), b1 (n, 1, h), W2, b2, W3 (n, h, out), b3]`` into it."""

    def __init__(self, n: int, sizes: Sequence[int], flat: torch.Tensor | None = None):
        self.n, self.sizes = n, tuple(sizes)
        self.shapes = []
        for fin, fout in zip(self.sizes[:-1], self.sizes[1:]):
            self.shapes += [(n, fin, fout), (n, 1, fout)]
        total = sum(math.prod(s) for s in self.shapes)
        self.flat = torch.zeros(total, dtype=torch.float32) if flat is None else flat
        self.params, k = [], 0
        for s in self.shapes:
            size = math.prod(s)
            self.params.append(self.flat[k:k + size].view(s))
            k += size

    def zeros_like(self) -> "NetStack":
        return NetStack(self.n, self.sizes)

    def clone(self) -> "NetStack":
        return NetStack(self.n, self.sizes, self.flat.clone())

    def select(self, k: int) -> list[torch.Tensor]:
        """The parameters of network ``k`` (copies, without the leading dimension)."""
        return [p[k].clone() for p in self.params]


def mlp_forward(params: Sequence[torch.Tensor], x: torch.Tensor, mask: torch.Tensor | None = None,
                out_act: str | None = None):
    """Forward pass of a stack of MLPs. ``x``: ``(n, batch, in)``; ``mask``: ``(n, 1, in)`` or ``None``.

    Returns ``(y, cache)``: ``y`` is ``(n, batch, out)`` (after the sigmoid when ``out_act="sigmoid"``)
    and ``cache`` holds each layer's input and the pre-activation output, for :func:`mlp_backward`.
    """
    h = x * mask if mask is not None else x
    cache = [h]
    n_layers = len(params) // 2
    for layer in range(n_layers):
        z = torch.baddbmm(params[2 * layer + 1], h, params[2 * layer])
        if layer < n_layers - 1:
            h = torch.relu(z)
            cache.append(h)
    cache.append(z)
    y = torch.sigmoid(z) if out_act == "sigmoid" else z
    return y, cache


def mlp_backward(params: Sequence[torch.Tensor], cache: list[torch.Tensor], grad_z: torch.Tensor,
                 grads: Sequence[torch.Tensor] | None = None, need_input: bool = False):
    """Backward pass: ``grad_z`` is the loss gradient w.r.t. the last layer's pre-activation output.

    Writes parameter gradients into ``grads`` (same shapes as ``params``) when given; returns the
    gradient w.r.t. the (masked) input when ``need_input``, else ``None``.
    """
    g = grad_z
    n_layers = len(params) // 2
    for layer in reversed(range(n_layers)):
        h_in = cache[layer]
        if grads is not None:
            torch.bmm(h_in.transpose(1, 2), g, out=grads[2 * layer])
            torch.sum(g, dim=1, keepdim=True, out=grads[2 * layer + 1])
        if layer > 0 or need_input:
            g = torch.bmm(g, params[2 * layer].transpose(1, 2))
            if layer > 0:
                g = g.masked_fill_(h_in <= 0, 0.0)        # ReLU: pass the gradient where the unit was on
    return g if need_input else None


class Adam:
    """Adam on a flat parameter tensor, written out (PyTorch's formula; no weight decay, no amsgrad)."""

    def __init__(self, flat: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.flat, self.lr, self.betas, self.eps = flat, lr, betas, eps
        self.m, self.v, self.t = torch.zeros_like(flat), torch.zeros_like(flat), 0

    def step(self, grad: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self.v.sqrt() / math.sqrt(1 - b2 ** self.t)).add_(self.eps)
        self.flat.addcdiv_(self.m, denom, value=-self.lr / (1 - b1 ** self.t))


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
        masks = [input_masks(m) for _, m in self.runs]
        self.actor_mask = torch.tensor(np.stack([masks[r][0] for _ in range(2) for r in range(R)]),
                                       dtype=torch.float32)[:, None, :]
        self.critic_mask = torch.tensor(np.stack([masks[r][1] for _ in range(2) for r in range(R)]),
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
        """``y_i = r_i + gamma * Q'_i(x', mu'_0(.), mu'_1(.))``, shape ``(2·runs, B, 1)``."""
        next_act = self.act(batch["next"], target=True)
        q_next, _ = mlp_forward(self.critic_target.params, critic_inputs(batch["next"], next_act),
                                self.critic_mask)
        rew = batch["rew"].permute(2, 0, 1).reshape(2 * self.n_runs, -1, 1)
        return rew + self.cfg.gamma * q_next

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
            obs = initial_obs(self.game, self._per_run(lambda rd: rd.initial(phase, E)))
            tot = {k: np.zeros((R, E)) for k in ("r0", "r1", "waste", "p0", "q0", "p1", "q1", "ship", "sold")}
            losses = []
            for t in range(T):
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
                nxt, rew, info = game_step(self.game, obs, phys, shock, last=t == T - 1)
                if learn:
                    self.store(obs_n, unit, torch.from_numpy(rew * self.cfg.reward_scale).float(),
                               self.normalize(nxt))
                    if self.buf_size >= self.cfg.batch_size:
                        for _ in range(self.cfg.updates_per_step):
                            losses.append(self.update())
                a = info["actions"]
                for key, val in (("r0", rew[..., 0]), ("r1", rew[..., 1]), ("waste", info["wastage"]),
                                 ("p0", a[..., 0, 0]), ("q0", a[..., 0, 1]), ("p1", a[..., 1, 0]),
                                 ("q1", a[..., 1, 1]), ("ship", info["shipped"]), ("sold", info["sold"])):
                    tot[key] += val
                obs = nxt
            loss = np.mean(losses, axis=0) if losses else np.full((R, 2), np.nan)
            for r, (seed, mode) in enumerate(self.runs):
                for e in range(E):
                    total = tot["r0"][r, e] + tot["r1"][r, e]
                    rows.append({"seed": seed, "mode": mode, "phase": phase, "policy": policy,
                                 "episode": done + e, "reward_0": tot["r0"][r, e], "reward_1": tot["r1"][r, e],
                                 "total_reward": total, "wastage": tot["waste"][r, e],
                                 "ncr": total - self.game.raw_price * tot["waste"][r, e],
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
            bar = _progress_bar(episodes + pretrain_episodes, f"seeds {self.seeds}", leave=False)
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
# Experiments
# --------------------------------------------------------------------------------------------------
def _progress_bar(total: int, desc: str, leave: bool = True):
    import warnings

    with warnings.catch_warnings():       # tqdm.auto warns when ipywidgets is missing; text bars are fine
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=leave)


def random_policy(seeds: Iterable[int], episodes: int, game: GameConfig | None = None) -> pd.DataFrame:
    """Uniformly random actions on the same measured episodes (initial states, demand) as training."""
    learner = MADDPG(seeds, ["nds"], game, MADDPGConfig(buffer_size=1, batch_size=1, hidden=1))
    return learner.play("real", episodes, 1, learn=False, policy="random").assign(mode="random")


def _train_task(seed: int, modes: list[str], game: GameConfig, cfg: MADDPGConfig, episodes: int,
                pretrain_episodes: int, threads: int) -> tuple[pd.DataFrame, dict, float]:
    torch.set_num_threads(threads)
    t0 = time.process_time()
    learner = MADDPG([seed], modes, game, cfg)
    df = learner.train(episodes, pretrain_episodes)
    weights = {m: learner.weights(seed, m) for m in modes}
    return df, weights, time.process_time() - t0


def run_experiment(seeds: Iterable[int], modes: Iterable[str] = ("nds", "ede"), game: GameConfig | None = None,
                   cfg: MADDPGConfig | None = None, episodes: int = 100, pretrain_episodes: int = 1600,
                   n_jobs: int = 1, progress: bool = True, baseline: bool = True):
    """Train every (seed, mode) pair, in this process (``n_jobs=1``: one task per seed, its modes side by
    side) or in ``n_jobs`` worker processes (one task per run). A run's numbers do not depend on which
    runs share its task (the tests check this), so both give the same results.

    Returns ``(episodes_table, weights, seconds)``: the per-episode table of all runs (plus, with
    ``baseline``, the random policy on the same measured episodes, mode ``"random"``),
    ``weights[(seed, mode)]`` as in :meth:`MADDPG.weights`, and the CPU seconds of each task.
    """
    seeds, modes = list(seeds), list(modes)
    game, cfg = game or GameConfig(), cfg or MADDPGConfig()
    MADDPG(seeds, modes, game, MADDPGConfig(hidden=1, batch_size=1, buffer_size=1))  # validates seeds/modes
    check_int("episodes", episodes, 1)
    check_int("pretrain_episodes", pretrain_episodes, 0)
    check_int("n_jobs", n_jobs, 1)
    groups = [modes] if n_jobs == 1 else [[m] for m in modes]
    tasks = [(s, g, game, cfg, episodes, pretrain_episodes, 1) for s in seeds for g in groups]
    results = []
    bar = _progress_bar(len(tasks), "training runs" if n_jobs > 1 else "seeds") if progress else None
    if n_jobs == 1:
        saved = torch.get_num_threads()
        try:
            for task in tasks:
                results.append((task[:2], _train_task(*task)))
                if bar is not None:
                    bar.update(1)
        finally:
            torch.set_num_threads(saved)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=min(n_jobs, len(tasks)), mp_context=mp.get_context("spawn")) as ex:
            futures = {ex.submit(_train_task, *task): task[:2] for task in tasks}
            for fut in as_completed(futures):
                results.append((futures[fut], fut.result()))
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    frames, weights, seconds = {}, {}, {}
    for (seed, group), (df, w, sec) in results:
        for m in group:
            frames[(seed, m)] = df[df["mode"] == m]
            weights[(seed, m)] = w[m]
        seconds[(seed, tuple(group))] = sec
    ordered = [frames[(s, m)] for s in seeds for m in modes]
    if baseline:
        ordered.append(random_policy(seeds, episodes, game))
    return pd.concat(ordered, ignore_index=True), weights, seconds


def summarize(table: pd.DataFrame, phase: str = "real") -> pd.DataFrame:
    """Per (seed, mode): averages over the episodes of ``phase`` (the seed's "average over the 100
    epochs"), including the mean per-player reward (``reward_per_player``)."""
    check_choice("phase", phase, PHASES)
    sel = table[table["phase"] == phase]
    if sel.empty:
        raise ParameterError("phase", phase, "a phase present in the table")
    out = sel.groupby(["mode", "seed"])[list(EPISODE_COLUMNS)].mean()
    out["reward_per_player"] = out["total_reward"] / 2
    return out.reset_index()


def paired_change(summary: pd.DataFrame, metric: str, base: str = "nds", other: str = "ede") -> pd.DataFrame:
    """Per seed: ``other - base`` and the relative change ``(other - base) / |base|`` of ``metric``."""
    wide = summary.pivot(index="seed", columns="mode", values=metric)
    for m in (base, other):
        if m not in wide:
            raise ParameterError("mode", m, "a mode present in the summary: " + ", ".join(map(str, wide)))
    diff = wide[other] - wide[base]
    return pd.DataFrame({base: wide[base], other: wide[other], "difference": diff,
                         "relative": diff / wide[base].abs()})


def config_dict(game: GameConfig, cfg: MADDPGConfig) -> dict:
    return {"game": asdict(game), "maddpg": asdict(cfg)}


def relative_change(summary: pd.DataFrame, metric: str, base: str = "nds", other: str = "ede",
                    reduction: bool = False) -> dict:
    """The relative change of ``metric`` from ``base`` to ``other`` computed from the two modes' means over
    seeds — ``(mean_other - mean_base) / |mean_base|``, or ``(mean_base - mean_other) / |mean_base|`` with
    ``reduction`` — the way a table of averages such as seed 002's reports it.

    Its 95% interval is the delta-method (ratio-estimator) interval over paired seeds: the per-seed
    linearised contributions ``pseudo = value ± (other_s - R base_s) / |mean_base|`` (``R`` the ratio of
    the means) have mean ``value``, and their Student-t interval is the interval returned, so
    ``mean_ci(pseudo)`` reproduces it. Also returned: ``per_seed``, each seed's own relative change.
    """
    from ppal_lab.compendium.results import mean_ci

    change = paired_change(summary, metric, base, other)
    b, o = change[base].to_numpy(float), change[other].to_numpy(float)
    if b.mean() == 0:
        raise ParameterError(metric, 0.0, f"a non-zero mean for mode {base!r} (the base of a relative change)")
    sign = -1.0 if reduction else 1.0
    value = sign * (o.mean() - b.mean()) / abs(b.mean())
    ratio = o.mean() / b.mean()
    pseudo = value + sign * np.sign(b.mean()) * (o - ratio * b) / abs(b.mean())
    mean, ci, n = mean_ci(pseudo)
    per_seed = sign * change["relative"].to_numpy(float)
    return {"value": float(value), "ci": ci, "n": n, "pseudo": pseudo, "per_seed": per_seed}


def claim_verdict(ci: tuple[float, float] | None, claimed: float) -> str:
    """``reproduced`` when our 95% CI excludes zero on the claimed side and contains the claimed value;
    ``partly`` when it excludes zero on the claimed side but misses the value; else ``not reproduced``."""
    if ci is None:
        return "not measurable"
    lo, hi = ci
    same_side = lo > 0 if claimed > 0 else hi < 0
    if same_side and lo <= claimed <= hi:
        return "reproduced"
    return "partly" if same_side else "not reproduced"


def moving_average_ci(table: pd.DataFrame, metric: str, window: int = 10, phase: str = "real") -> pd.DataFrame:
    """Per mode and episode: the moving average (trailing ``window`` episodes) of ``metric`` within each
    seed, then its mean over seeds and a 95% Student-t interval (columns ``mode, episode, mean, lo, hi``)."""
    from scipy import stats

    check_int("window", window, 1)
    check_choice("phase", phase, PHASES)
    sel = table[table["phase"] == phase]
    if metric not in sel or sel.empty:
        raise ParameterError("metric", metric, "a column of a non-empty phase of the table")
    wide = sel.pivot_table(index="episode", columns=["mode", "seed"], values=metric)
    smooth = wide.rolling(window, min_periods=1).mean()
    rows = []
    for mode in smooth.columns.get_level_values(0).unique():
        x = smooth[mode].to_numpy()
        n = x.shape[1]
        mean = x.mean(axis=1)
        half = (stats.t.ppf(0.975, n - 1) * x.std(axis=1, ddof=1) / np.sqrt(n)) if n > 1 else np.zeros_like(mean)
        rows.append(pd.DataFrame({"mode": mode, "episode": smooth.index, "mean": mean,
                                  "lo": mean - half, "hi": mean + half}))
    return pd.concat(rows, ignore_index=True)


def critic_loss_curve(table: pd.DataFrame, pretrain_envs: int, horizon: int = 40) -> pd.DataFrame:
    """Critic losses over the whole of training, long format (``mode, seed, player, updates, loss``),
    where ``updates`` counts the environment steps (one update each) played so far."""
    check_int("pretrain_envs", pretrain_envs, 1)
    pre = table[table["phase"] == "pretrain"].assign(steps=lambda d: (d["episode"] // pretrain_envs + 1) * horizon)
    pre = pre.drop_duplicates(["mode", "seed", "steps"])
    offset = int(pre["steps"].max()) if len(pre) else 0
    real = table[table["phase"] == "real"].assign(steps=lambda d: offset + (d["episode"] + 1) * horizon)
    both = pd.concat([pre, real]).dropna(subset=["critic_loss_0"])
    long = both.melt(id_vars=["mode", "seed", "steps"], value_vars=["critic_loss_0", "critic_loss_1"],
                     var_name="player", value_name="loss")
    long["player"] = long["player"].map({"critic_loss_0": "player 0 (supplier)",
                                         "critic_loss_1": "player 1 (retailer)"})
    return long.rename(columns={"steps": "updates"})
