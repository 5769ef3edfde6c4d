"""One player's process in the secure two-party MADDPG: its own state, its own draws, and the protocol.

:func:`secure_party` is the party function that :func:`ppal_lab.secure.twoparty.run_parties` starts once
per player (or :func:`~ppal_lab.secure.twoparty.run_this_party` on its own host, with the dealer on a
third). A party receives only public parameters and its own private seed, and builds everything it holds
itself (:func:`own_state`): the public exploration phase (simulated data from the public seed, which any
party can replay, :func:`exploration_learner`) of which it keeps its own player's networks, Adam state and
buffer columns, and discards the rest; then its own private draws of the measured phase
(:class:`PlayerDraws`: its part of each initial state, its exploration noise, and for player 1 its
market's demand shocks) from its own seed. Public randomness -- the minibatch row indices -- comes from
:func:`public_batches`, which both derive from the public seed (no message needed).

Then it plays the measured steps: acting on shares of both observations, the split environment step
(order and invoice exchanged), and each MADDPG update on shares -- forward and backward passes by
:mod:`ppal_lab.secure.mlp_on_shares`, the actors' sigmoid by
:func:`ppal_lab.secure.secure_sigmoid.secure_sigmoid` -- with the gradients opened to their owners only
after the wrap-around check on shares (:meth:`_Party._guarded`), who apply the plaintext
:class:`ppal_lab.marl.networks.Adam`. The protocol and its threat model are described in
:mod:`ppal_lab.secure.secure_maddpg`.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import signal
import time

from dataclasses import dataclass

import numpy as np
import torch

from ppal_lab.compendium.errors import ParameterError, check_range
from ppal_lab.marl.maddpg import (ACT_DIM, ACTOR_IN, CRITIC_IN, MADDPG, Adam, GameConfig, MADDPGConfig, NetStack,
                                  initial_obs)
from ppal_lab.marl.supply_game import OBS_DIM, TIME_COL, retailer_step, supplier_step
from ppal_lab.secure.fixed_point import TRAINING_PRECISION_BITS_RANGE
from ppal_lab.secure.mlp_on_shares import (backward, counted, crypten_is_negative, flat_grads, forward, is_negative,
                                           profile, slice_cache, tally, watch_truncations)
from ppal_lab.secure.secure_sigmoid import secure_sigmoid

__all__ = ["NETWORKS", "OWN_INIT", "PlayerDraws", "SecureSettings", "exploration_learner", "own_state",
           "public_batches", "secure_party", "secure_party_from_config", "state_digest", "wrap_bound",
           "wrap_detected"]

NETWORKS = ("actor", "critic", "actor_target", "critic_target")

OWN_INIT = ((0, 2, 3), (1, 4, 5))
"""Which of :func:`ppal_lab.marl.supply_game.initial_obs`'s six uniform draws each player owns: player 0
its stock, price and quantity (``u[0], u[2], u[3]``), player 1 its own (``u[1], u[4], u[5]``). Each
player's first observation also holds one number of the other's -- player 0 the retailer's last order
``q1`` (``u[5]``), player 1 the supplier's last price ``p0`` (``u[2]``) -- which they send each other at
the start of an episode, as every later step's order and invoice do."""

_SENT_AT_START = (2, 5)      # u index player 0 sends (p0), u index player 1 sends (q1)


@dataclass(frozen=True)
class SecureSettings:
    """Settings of the secure phase that the plaintext learner does not have."""

    precision_bits: int = 18
    max_retries: int = 4
    timeout_s: float | None = None     # None: generous, from the iterations and sizes
    crash_at: tuple[int, int] | None = None   # (rank, iteration): that party kills itself (tests)
    keep_shares: bool = False          # return the first shares received (independence tests)
    keep_view: bool = False            # return everything opened to this party (verdict bits, own values)
    inject_wrap: tuple = ()            # (stage, iteration, sign) triples: a real wrap in the first attempt (tests)
    comparison: str = "carry_tree"     # ReLU comparisons: our carry tree, or "crypten" (the baseline, benchmarks)
    batch_dealer: bool = True          # a stage's dealer requests in one round trip (False: one per tuple)
    relu_bits: int = 32                # ReLU signs read mod 2^relu_bits: exact for |z| < 2^(relu_bits-1-b)

    def __post_init__(self):
        if isinstance(self.precision_bits, bool) or not isinstance(self.precision_bits, (int, np.integer)):
            raise ParameterError("precision_bits", self.precision_bits, "an int")
        check_range("precision_bits", int(self.precision_bits), *TRAINING_PRECISION_BITS_RANGE)
        check_range("max_retries", self.max_retries, 0, 100)
        if self.timeout_s is not None:
            check_range("timeout_s", self.timeout_s, 0.0, low_open=True)
        if self.comparison not in ("carry_tree", "crypten"):
            raise ParameterError("comparison", self.comparison, "'carry_tree' or 'crypten'")
        if self.relu_bits not in (32, 64):
            raise ParameterError("relu_bits", self.relu_bits, "32 or 64 (the ring the ReLU signs are read in)")
        if not isinstance(self.batch_dealer, bool):
            raise ParameterError("batch_dealer", self.batch_dealer, "True or False")
        for entry in self.inject_wrap:
            if len(entry) != 3 or entry[0] not in ("acting", "critic", "actor") or entry[2] not in (-1, 1):
                raise ParameterError("inject_wrap", entry, "(stage in acting/critic/actor, iteration, sign +-1)")


# --------------------------------------------------------------------------------------------------
# What one party builds for itself
# --------------------------------------------------------------------------------------------------
def exploration_learner(seed: int, cfg: MADDPGConfig, game: GameConfig | None = None,
                        episodes: int = 400) -> MADDPG:
    """The public exploration phase: a one-run EDE learner after ``episodes`` episodes on simulated data
    drawn from the public ``seed`` (at least enough to fill one minibatch). No private data enters it, so
    every party can replay it; a party keeps only its own player's part (:func:`own_state`)."""
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 0:
        raise ParameterError("pretrain_episodes", episodes, "an int >= 0")
    learner = MADDPG([seed], ["ede"], game, cfg)
    per_chunk = cfg.pretrain_envs * learner.game.horizon
    needed = math.ceil(cfg.batch_size / per_chunk) * cfg.pretrain_envs
    learner.play("pretrain", max(int(episodes), needed), cfg.pretrain_envs, cfg.pretrain_noise)
    return learner


def own_state(learner: MADDPG, player: int) -> dict:
    """Everything player ``player`` owns in a one-run EDE learner: its four networks, its Adam moments
    and step counts, and its columns of the replay buffer (observations, actions, rewards, next
    observations). Nothing of the other player is included."""
    if learner.n_runs != 1 or learner.modes != ["ede"]:
        raise ParameterError("learner", learner.runs, "a learner with one run in mode 'ede'")
    if player not in (0, 1):
        raise ParameterError("player", player, "0 or 1")
    k, n = player, learner.buf_size
    state = {name: getattr(learner, name).select(k) for name in NETWORKS}
    for name, opt, net in (("actor", learner.actor_opt, learner.actor), ("critic", learner.critic_opt,
                                                                           learner.critic)):
        state[f"{name}_adam"] = {"m": NetStack(net.n, net.sizes, opt.m).select(k),
                                 "v": NetStack(net.n, net.sizes, opt.v).select(k), "t": opt.t}
    state["buffer"] = {"obs": learner.buf_obs[0, :n, player].clone(), "act": learner.buf_act[0, :n, player].clone(),
                       "rew": learner.buf_rew[0, :n, player].clone(),
                       "next": learner.buf_next[0, :n, player].clone(), "pos": learner.buf_pos, "size": n}
    return state


def state_digest(state: dict) -> str:
    """A digest of a player's networks and buffer columns: the parties report theirs, so the driver can
    check that each built the same starting state as its plaintext twin."""
    h = hashlib.sha256()
    for name in NETWORKS:
        for p in state[name]:
            h.update(p.numpy().tobytes())
    for key in ("obs", "act", "rew", "next"):
        h.update(state["buffer"][key].numpy().tobytes())
    return h.hexdigest()


class PlayerDraws:
    """Player ``rank``'s private draws in the measured phase, from its own ``seed`` alone (three streams):
    its three uniform draws of each initial state (:data:`OWN_INIT`), its exploration noise ``(2,)`` per
    step and -- player 1 only, the retailer's market -- the demand shock per step."""

    def __init__(self, rank: int, seed: int):
        if rank not in (0, 1):
            raise ParameterError("rank", rank, "0 or 1")
        streams = np.random.SeedSequence([int(seed), 0x5EC2, rank]).spawn(3)
        self.rank = rank
        self._init, self._noise, self._demand = (np.random.default_rng(s) for s in streams)

    def initial(self) -> np.ndarray:
        return self._init.random(len(OWN_INIT[self.rank]))

    def action_noise(self) -> np.ndarray:
        return self._noise.standard_normal(ACT_DIM)

    def demand(self) -> float:
        if self.rank != 1:
            raise ParameterError("rank", self.rank, "1 (the demand shocks are the retailer's market)")
        return float(self._demand.standard_normal())


def public_batches(seed: int):
    """The public stream of minibatch row indices, derived from the public ``seed`` by both players
    (row indices reveal nothing private: every row of the buffer is equally likely)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EC2, 0xB]))


def wrap_bound(precision_bits: int) -> float:
    """Truncation checksums of absolute value above this mean a wrap: a quarter of one wrap's ``2^(64-2b)``."""
    return float(2.0 ** (64 - 2 * int(precision_bits) - 2))


def wrap_detected(crypten, sums: list, precision_bits: int, comparison: str = "carry_tree") -> bool:
    """One bit, opened to both players: did any truncation watched into ``sums`` wrap around? From each
    party's shares of the truncation checksums (:func:`~ppal_lab.secure.mlp_on_shares.watch_truncations`):
    ``|s| > bound`` (:func:`wrap_bound`) is compared on shares, the indicators summed on shares, and only
    ``count > 0`` is opened -- not the checksums, not which truncation, not how many. Call on both parties.
    ``comparison``: our carry tree (:func:`~ppal_lab.secure.mlp_on_shares.is_negative`; the count, at most
    twice the number of checksums, is compared in the smallest ring that holds it) or CrypTen's own."""
    with counted("wrap_check"):
        s = crypten.mpc.MPCTensor.from_shares(torch.stack(sums))     # scale 2^b, like the values
        tally["range_checked"] += 2 * s.nelement()
        bound = wrap_bound(precision_bits)
        both = crypten.cat([bound - s, bound + s])                 # negative where |s| > bound
        if comparison == "carry_tree":
            bits = next(k for k in (8, 16, 32, 64) if both.nelement() < 2 ** (k - 1))
            count = is_negative(both).sum()                         # scale 1
            flag = is_negative(-count, bits=bits).get_plain_text()  # [count > 0]: the one opened bit
        else:
            flag = (-both.lt(0).sum()).lt(0).get_plain_text()
    return bool(int(flag.item()) > 0)


class _Player:
    """A party's plaintext half: its networks, Adam optimisers and replay buffer."""

    def __init__(self, rank: int, state: dict, cfg: MADDPGConfig):
        self.rank, self.cfg = rank, cfg
        H = cfg.hidden
        sizes = {"actor": (ACTOR_IN, H, H, ACT_DIM), "critic": (CRITIC_IN, H, H, 1)}
        self.nets = {}
        for name in NETWORKS:
            net = NetStack(1, sizes[name.split("_")[0]])
            for p, v in zip(net.params, state[name]):
                p[0].copy_(v)
            self.nets[name] = net
        self.opt, self.grad = {}, {}
        for name, lr in (("actor", cfg.lr_actor), ("critic", cfg.lr_critic)):
            net = self.nets[name]
            opt = Adam(net.flat, lr, cfg.adam_betas, cfg.adam_eps)
            for key in ("m", "v"):
                for p, v in zip(NetStack(1, net.sizes, getattr(opt, key)).params, state[f"{name}_adam"][key]):
                    p[0].copy_(v)
            opt.t = state[f"{name}_adam"]["t"]
            self.opt[name], self.grad[name] = opt, net.zeros_like()
        buf, cap = state["buffer"], cfg.buffer_size
        self.obs, self.act = torch.zeros(cap, OBS_DIM), torch.zeros(cap, ACT_DIM)
        self.rew, self.next = torch.zeros(cap), torch.zeros(cap, OBS_DIM)
        n = buf["size"]
        self.obs[:n], self.act[:n], self.rew[:n], self.next[:n] = buf["obs"], buf["act"], buf["rew"], buf["next"]
        self.pos, self.size = buf["pos"], n

    def store(self, obs_n, act, rew, next_n):
        self.obs[self.pos], self.act[self.pos], self.rew[self.pos], self.next[self.pos] = obs_n, act, rew, next_n
        self.pos = (self.pos + 1) % self.cfg.buffer_size
        self.size = min(self.size + 1, self.cfg.buffer_size)

    def apply(self, name: str, flat_grad: torch.Tensor) -> None:
        """Adam on network ``name`` with the revealed (already scaled) flat gradient."""
        grad = self.grad[name]
        pos = 0
        for p in grad.params:
            n = p.numel()
            p.copy_(flat_grad[pos:pos + n].view_as(p))
            pos += n
        self.opt[name].step(grad.flat)

    def soft_update(self) -> None:
        for name in ("actor", "critic"):
            self.nets[f"{name}_target"].flat.lerp_(self.nets[name].flat, self.cfg.tau)

    def weights(self) -> dict[str, list[np.ndarray]]:
        return {name: [p[0].numpy().copy() for p in net.params] for name, net in self.nets.items()}


def _share2(crypten, rank: int, mine: torch.Tensor | None, shape, kind: str = "data"):
    """Shares of a ``(2, *shape)`` tensor whose slice ``p`` is party ``p``'s private value."""
    tally[f"shared_{kind}"] += 2 * math.prod(shape)
    parts = [crypten.cryptensor(mine if rank == p else torch.empty(shape), src=p).unsqueeze(0) for p in (0, 1)]
    return crypten.cat(parts, dim=0)


def _swap(x):
    """Slices (0, 1) -> (1, 0): player ``i``'s network reads the other player's block."""
    from ppal_lab.secure.crypten_compat import crypten

    return crypten.cat([x[1:2], x[0:1]], dim=0)


def _share_net(crypten, rank: int, player: _Player, name: str):
    """Stacked ``(2, ...)`` shares of both players' network ``name`` (each shares its own)."""
    mine = player.nets[name].params
    return [_share2(crypten, rank, mine[j][0], tuple(mine[j].shape[1:]), "weights") for j in range(len(mine))]


def _cat_nets(a, b):
    from ppal_lab.secure.crypten_compat import crypten

    return [crypten.cat([x, y], dim=0) for x, y in zip(a, b)]


class _Party:
    """One player's process: its plaintext half plus the secure protocol."""

    def __init__(self, rank, game, cfg, settings, player, draws, batches):
        from ppal_lab.secure.crypten_compat import crypten

        self.crypten, self.comm = crypten, crypten.comm.get()
        self.rank, self.game, self.cfg, self.s = rank, game, cfg, settings
        self.me, self.draws, self.batches = player, draws, batches
        self.iteration = 0
        self.scale = 2 ** int(settings.precision_bits)
        self.obs_scale = game.obs_scale()[rank]
        self.act_high = game.action_high()[rank]
        self.retries = {"acting": 0, "critic": 0, "actor": 0}
        self.shares_seen, self.view = {}, []
        # ReLU signs in the ring of 2^relu_bits: pre-activations are small (the chapter measures how small)
        self.negative = (functools.partial(is_negative, bits=settings.relu_bits)
                         if settings.comparison == "carry_tree" else crypten_is_negative)

    # ---- the wrap-around check on shares, then the opening to the owners -------------------------
    def _reveal_own(self, x) -> np.ndarray:
        """Open slice ``p`` of a stacked ``(2, ...)`` CrypTensor to party ``p`` only; decode exactly."""
        from ppal_lab.secure.fixed_point import decode_exact
        from ppal_lab.secure.twoparty import reveal_to

        mine = None
        with counted("reveal"):
            for p in (0, 1):
                ring = reveal_to(x[p], p)
                if p == self.rank:
                    mine = decode_exact(ring, self.scale)
        return mine

    def _wrap_at(self, stage: str, attempt: int):
        """(tests) The injected wrap of this stage's first attempt: ``(index, ring units)`` or None."""
        for name, it, sign in self.s.inject_wrap:
            if attempt == 0 and name == stage and it == self.iteration:
                return (0, 0, 0), sign * 2 ** (64 - int(self.s.precision_bits))
        return None

    def _guarded(self, stage: str, compute):
        """Compute a stage on shares, check it on shares, and only then open its result to the owners.

        ``compute(attempt, wrap_at)`` returns the stacked value to open. Every truncation inside it is
        watched; when the one opened bit says that one wrapped, nothing else is opened and both
        recompute the stage with fresh randomness (triples and truncation splits)."""
        from ppal_lab.secure.twoparty import dealer_batch

        for attempt in range(self.s.max_retries + 1):
            # the attempt's dealer requests are fixed by the public shapes: one round trip (a retry too)
            with dealer_batch(stage, enabled=self.s.batch_dealer):
                with watch_truncations() as sums:
                    value = compute(attempt, self._wrap_at(stage, attempt))
                bad = wrap_detected(self.crypten, sums, self.s.precision_bits, self.s.comparison)
            if self.s.keep_view:
                self.view.append({"stage": stage, "iteration": self.iteration, "attempt": attempt, "bit": bad})
            if not bad:
                mine = self._reveal_own(value)
                if self.s.keep_view:
                    self.view[-1]["opened"] = mine.copy()
                return mine
            self.retries[stage] += 1
        raise RuntimeError(f"{stage}: {self.s.max_retries + 1} attempts in a row hit a fixed-point "
                           f"wrap-around at precision_bits={self.s.precision_bits}; use fewer bits")

    def _share(self, mine, shape, kind: str = "data"):
        with counted("sharing"):
            return _share2(self.crypten, self.rank, mine, shape, kind)

    def _share_net(self, name: str):
        with counted("sharing"):
            return _share_net(self.crypten, self.rank, self.me, name)

    # ---- acting -------------------------------------------------------------------------------------
    def act(self, obs_n: torch.Tensor) -> torch.Tensor:
        """Own action in [0, 1] units, ``(2,)``, from own normalised observation ``(OBS_DIM,)``."""
        c = self.crypten

        def compute(attempt, wrap_at):
            o = self._share(obs_n[None], (1, OBS_DIM))        # (2, 1, OBS_DIM)
            z, _ = forward(self._share_net("actor"), c.cat([o, _swap(o)], dim=-1), wrap_at=wrap_at,
                           negative=self.negative)
            return z

        z = self._guarded("acting", compute)
        return torch.sigmoid(torch.from_numpy(z).float())[0]

    # ---- one MADDPG update --------------------------------------------------------------------------
    def update(self, idx: torch.Tensor) -> None:
        """One MADDPG update on the public minibatch rows ``idx`` of both players' buffers."""
        c, me, cfg = self.crypten, self.me, self.cfg
        B = cfg.batch_size
        obs, act, rew, nxt = me.obs[idx], me.act[idx], me.rew[idx], me.next[idx]
        going_on = (nxt[:, TIME_COL] > 0).float()[:, None]  # steps left after this one: public
        keep = self.s.keep_shares and not self.shares_seen
        rank = self.rank

        def critic_stage(attempt, wrap_at):
            o = self._share(obs, (B, OBS_DIM))
            a = self._share(act, (B, ACT_DIM))
            n = self._share(nxt, (B, OBS_DIM))
            r = self._share(rew[:, None], (B, 1))
            if keep:
                self.shares_seen = {"peer_obs_share": o.share[1 - rank].clone(),
                                    "own_obs_share": o.share[rank].clone(), "peer_obs_shape": tuple(obs.shape)}
            # level 1: actor(o) and target actor(o') of both players, one call per layer
            actors = _cat_nets(self._share_net("actor"), self._share_net("actor_target"))
            za, a_cache = forward(actors, c.cat([c.cat([o, _swap(o)], -1), c.cat([n, _swap(n)], -1)], 0),
                                  negative=self.negative)
            with counted("sigmoid"):
                mu_all = secure_sigmoid(za)
            mu, mu_next = mu_all[0:2], mu_all[2:4]
            # level 2: critic(o, a) and target critic(o', mu'(o')) of both players
            own_now, own_next = c.cat([o, a], -1), c.cat([n, mu_next], -1)
            critics = _cat_nets(self._share_net("critic"), self._share_net("critic_target"))
            x_q = c.cat([c.cat([own_now, _swap(own_now)], -1), c.cat([own_next, _swap(own_next)], -1)], 0)
            q_all, q_cache = forward(critics, x_q, wrap_at=wrap_at, negative=self.negative)
            # the episode clock is public: no bootstrap past a last step (EDE's target, marl.maddpg)
            resid = q_all[0:2] - (r + q_all[2:4] * (cfg.gamma * going_on))  # Q - y (2/B applied later)
            grads = backward([w[0:2] for w in critics], slice_cache(q_cache, slice(0, 2)), resid)
            self._level1 = (o, a, own_now, actors, za, a_cache, mu)
            return flat_grads(grads)

        g_critic = self._guarded("critic", critic_stage) * (2.0 / B)
        me.apply("critic", torch.from_numpy(g_critic).float())

        def actor_stage(attempt, wrap_at):
            o, a, own_now, actors, za, a_cache, mu = self._level1    # checked with the critic stage
            critic = self._share_net("critic")          # the updated critics, re-shared
            x = c.cat([c.cat([o, mu], -1), _swap(own_now)], -1)
            _, q_cache = forward(critic, x, wrap_at=wrap_at, negative=self.negative)
            hs, masks = q_cache
            with counted("matmul"):
                # d(-sum Q)/d(last pre-activation) = -1 for every row: g2 = -W3^T, no product needed
                g = critic[4].transpose(1, 2).neg().expand(2, B, cfg.hidden) * masks[1]
                g = g.matmul(critic[2].transpose(1, 2)) * masks[0]
                g_mu = g.matmul(critic[0][:, OBS_DIM:OBS_DIM + ACT_DIM, :].transpose(1, 2))   # (2, B, 2)
            with counted("sigmoid"):     # the sigmoid's derivative
                g_z = g_mu * (mu * (1 - mu)) + za[0:2] * (2.0 * cfg.actor_reg / ACT_DIM)
            grads = backward([w[0:2] for w in actors], slice_cache(a_cache, slice(0, 2)), g_z)
            return flat_grads(grads)

        try:
            g_actor = self._guarded("actor", actor_stage) * (1.0 / B)
        finally:
            self._level1 = None
        me.apply("actor", torch.from_numpy(g_actor).float())
        me.soft_update()

    # ---- the environment, split ------------------------------------------------------------------
    def initial_obs(self) -> np.ndarray:
        """This player's first observation of an episode: its own draws, plus the one number of the
        other's that its observation holds (sent at the start, :data:`OWN_INIT`)."""
        u = np.full(6, 0.5)                       # the other's private draws: unknown here, unused below
        u[list(OWN_INIT[self.rank])] = self.draws.initial()
        sent = torch.tensor([u[_SENT_AT_START[self.rank]]], dtype=torch.float64)
        for p in (0, 1):
            got = self.comm.broadcast(sent if p == self.rank else torch.empty(1, dtype=torch.float64), p)
            if p != self.rank:
                u[_SENT_AT_START[p]] = float(got[0])
        return initial_obs(self.game, u)[self.rank]

    def env_step(self, obs_own: np.ndarray, unit: torch.Tensor, last: bool) -> dict:
        phys = unit.numpy().astype(np.float64) * self.act_high
        if self.rank == 1:
            shock = self.draws.demand()
            order = np.clip(phys[1:2], 0.0, self.game.quantity_limit)
            self.comm.broadcast(torch.from_numpy(order), 1)
            invoice = self.comm.broadcast(torch.empty(2, dtype=torch.float64), 0).numpy()
            return retailer_step(self.game, obs_own, phys, invoice[0], invoice[1], shock, last)
        order = self.comm.broadcast(torch.empty(1, dtype=torch.float64), 1).numpy()[0]
        out = supplier_step(self.game, obs_own, phys, order, last)
        self.comm.broadcast(torch.tensor([float(out["price"]), float(out["shipped"])], dtype=torch.float64), 0)
        return out


def secure_party(rank: int, game: GameConfig, cfg: MADDPGConfig, settings: SecureSettings, iterations: int,
                 public_seed: int, pretrain_episodes: int, private_seed: int) -> dict:
    """Party function for :func:`~ppal_lab.secure.twoparty.run_parties`: ``iterations`` steps of the
    measured ("real") phase, one secure MADDPG update after each.

    Public, the same on both players: the game, the hyper-parameters, the settings, the number of
    iterations, the public seed of the exploration phase and of the minibatch indices, and the number
    of exploration episodes. Private: ``private_seed``, this player's own seed (:class:`PlayerDraws`).
    The party builds its own state from these (:func:`exploration_learner`, :func:`own_state`); nothing
    of the other player's is passed in. Returns this player's per-step metrics, final weights, timings,
    communication and retry counts."""
    from ppal_lab.secure.crypten_compat import cached_config, crypten, without_debug_hook

    torch.set_num_threads(1)       # the parties share the cores
    learner = exploration_learner(public_seed, cfg, game, pretrain_episodes)
    state = own_state(learner, rank)
    del learner                    # the other player's half of the public exploration is not kept
    digest = state_digest(state)
    crypten.cfg.encoder.precision_bits = int(settings.precision_bits)
    with without_debug_hook(), cached_config():
        out = _play(rank, game, cfg, settings, iterations, state, PlayerDraws(rank, private_seed),
                    public_batches(public_seed))
    return {**out, "start_digest": digest}


CONFIG_KEYS = {"seed": 0, "iterations": 2, "hidden": 128, "batch": 128, "pretrain_episodes": 0,
               "precision_bits": 18, "max_retries": 4, "batch_dealer": 1, "relu_bits": 32}
"""The public settings of :func:`secure_party_from_config` and their defaults (the same on both players);
``private_seed`` (this player's own) has none."""


def _config_arguments(config) -> tuple:
    """``secure_party``'s arguments from a JSON config (see :func:`secure_party_from_config`)."""
    if not isinstance(config, dict):
        raise ParameterError("config", config, "a JSON object (dict) of settings")
    unknown = set(config) - set(CONFIG_KEYS) - {"private_seed"}
    if unknown:
        raise ParameterError("config", sorted(unknown), f"keys among {sorted(CONFIG_KEYS)} and private_seed")
    c = {**CONFIG_KEYS, **config}
    for key in (*CONFIG_KEYS, "private_seed"):
        if key not in c or isinstance(c[key], bool) or not isinstance(c[key], int):
            raise ParameterError(f"config[{key!r}]", c.get(key), "an int" + (" (this player's own seed)"
                                                                         if key == "private_seed" else ""))
    for key, low in (("seed", 0), ("private_seed", 0), ("iterations", 1), ("pretrain_episodes", 0)):
        check_range(f"config[{key!r}]", c[key], low)
    check_range("config['batch_dealer']", c["batch_dealer"], 0, 1)
    cfg = MADDPGConfig(hidden=c["hidden"], batch_size=c["batch"])
    settings = SecureSettings(precision_bits=c["precision_bits"], max_retries=c["max_retries"],
                              batch_dealer=bool(c["batch_dealer"]), relu_bits=c["relu_bits"])
    return GameConfig(), cfg, settings, c["iterations"], c["seed"], c["pretrain_episodes"], c["private_seed"]


def secure_party_from_config(rank: int, config: dict) -> dict:
    """:func:`secure_party` from a JSON-able ``config``: the form ``ppal-lab party`` runs on a host of its own::

        ppal-lab party --rank 0 --world-size 2 --rendezvous tcp://HOST0:29500 \\
            --args '[{"seed": 0, "iterations": 2, "private_seed": 1234}]' \\
            ppal_lab.secure.maddpg_party:secure_party_from_config

    Public keys (defaults in :data:`CONFIG_KEYS`, equal on both players): ``seed`` (the exploration phase
    and the minibatch rows), ``iterations``, ``hidden``, ``batch``, ``pretrain_episodes``,
    ``precision_bits``, ``max_retries``, ``batch_dealer`` (1: each stage attempt's dealer requests in one
    message, 0: one per tuple), ``relu_bits`` (32 or 64: the ring the ReLU signs are read in); the game is
    the default :class:`~ppal_lab.marl.maddpg.GameConfig`.
    Private: ``private_seed``, this player's own seed, which only this player's command line carries. The
    party builds its whole state from these (:func:`secure_party`); the result equals that of
    :func:`~ppal_lab.secure.twoparty.run_parties` running :func:`secure_party` with the same arguments."""
    return secure_party(rank, *_config_arguments(config))


secure_party_from_config.check_args = _config_arguments   # ``ppal-lab party`` checks before any CrypTen work


def _dealer_stats():
    """This player's traffic with the dealer so far ``(rounds, bytes, seconds, messages)``; zeros
    without one."""
    try:
        from ppal_lab.secure.twoparty import dealer_comm_stats, dealer_requests
        st = dealer_comm_stats()
        return st.rounds, st.bytes, st.time_s, dealer_requests()
    except Exception:          # no dealer (CrypTen's TFP provider): nothing to count
        return 0, 0, 0.0, 0


def _play(rank, game, cfg, settings, iterations, state, draws, batches) -> dict:
    party = _Party(rank, game, cfg, settings, _Player(rank, state, cfg), draws, batches)
    me, comm, H = party.me, party.comm, game.horizon
    rows, obs = [], None
    timing = {"acting": [], "env": [], "update": [], "iteration": [], "dealer": []}
    comm_rows = []
    start_step = 0
    for it in range(iterations):
        t = (start_step + it) % H
        if settings.crash_at == (rank, it):
            os.kill(os.getpid(), signal.SIGKILL)
        if t == 0:
            obs = party.initial_obs()
        party.iteration = it
        comm.barrier()
        tally.clear()
        profile.clear()
        d0 = _dealer_stats()
        s0, t0 = comm.get_communication_stats(), time.perf_counter()
        obs_n = torch.from_numpy(obs / party.obs_scale).float()
        unit = party.act(obs_n)
        eps = torch.from_numpy(draws.action_noise()).float()
        unit = (unit + cfg.noise * eps).clamp_(0.0, 1.0)
        t1 = time.perf_counter()
        out = party.env_step(obs, unit, last=t == H - 1)
        me.store(obs_n, unit, torch.tensor(out["reward"] * cfg.reward_scale).float(),
                 torch.from_numpy(out["next_obs"] / party.obs_scale).float())
        t2 = time.perf_counter()
        s1 = comm.get_communication_stats()
        if me.size >= cfg.batch_size:
            for _ in range(cfg.updates_per_step):
                party.update(torch.from_numpy(batches.integers(0, me.size, cfg.batch_size)).long())
        t3 = time.perf_counter()
        s2, d1 = comm.get_communication_stats(), _dealer_stats()
        timing["acting"].append(t1 - t0)
        timing["env"].append(t2 - t1)
        timing["update"].append(t3 - t2)
        timing["iteration"].append(t3 - t0)
        timing["dealer"].append(d1[2] - d0[2])       # waiting for the dealer's triples (player 0)
        comm_rows.append({"rounds_act_env": s1["rounds"] - s0["rounds"], "bytes_act_env": s1["bytes"] - s0["bytes"],
                          "rounds_update": s2["rounds"] - s1["rounds"], "bytes_update": s2["bytes"] - s1["bytes"],
                          "dealer_rounds": d1[0] - d0[0], "dealer_bytes": d1[1] - d0[1],
                          "dealer_requests": d1[3] - d0[3], **tally,
                          **{f"profile_{k}": v for k, v in profile.items()}})
        a = out["action"]
        rows.append({"iteration": it, "step": t, "reward": float(out["reward"]), "wastage": float(out["wastage"]),
                     "price": float(a[0]), "quantity": float(a[1])})
        obs = out["next_obs"]
    return {"rank": rank, "steps": rows, "weights": me.weights(), "timing": timing, "comm": comm_rows,
            "retries": party.retries, "shares": party.shares_seen, "view": party.view}
