r"""Secure two-party MADDPG: the EDE learner of :mod:`ppal_lab.marl.maddpg` with each player in its own process.

Seed 002 (Sections 3--5, Appendices E, F, H) trains the two supply-chain players' MADDPG so that each
network sees both players' data (*explicit data exchange*, EDE) while no private value ever leaves its
owner in the clear. Here that is done with CrypTen's two-party arithmetic secret sharing, one OS process
per player (:func:`ppal_lab.secure.twoparty.run_parties`; the same party function runs on two hosts
through :func:`~ppal_lab.secure.twoparty.run_this_party`).

What each player holds in the clear (and nobody else sees): its observations, its actions, its rewards,
its replay buffer (its own columns of every transition), its four networks (actor, critic, and their
targets) and their Adam state. What the players tell each other in the clear is what a supply chain's
paperwork carries anyway: player 1's order ``q1`` and player 0's invoice (price ``p0``, units shipped),
:func:`ppal_lab.marl.supply_game.supplier_step` / :func:`~ppal_lab.marl.supply_game.retailer_step`; and, as in
Appendix E, player 0 draws the minibatch row indices and sends them, and both build their halves of the
minibatch from their own buffers. For the comparison with plaintext EDE, the external randomness (initial
states, action noise, demand shocks, minibatch indices) is drawn in advance from the EDE run's seeded
streams, and each process receives only its own part (:func:`party_randomness`).

One training iteration = one environment step and one MADDPG update (``updates_per_step`` = 1):

1. **Acting.** Both actors run on secret shares of both observations (2 ReLU layers). Each actor's
   pre-sigmoid output is revealed to its owner only, who applies the sigmoid and the exploration noise in
   plaintext, exactly as :meth:`ppal_lab.marl.maddpg.MADDPG.play` does (revealing ``z`` tells the owner
   nothing its own action does not).
2. **Environment.** Order and invoice are exchanged; each player computes its own next observation and
   reward.
3. **Critic update.** Level 1: actor and target actor of both players (4 networks) on shares, batched
   into one call per layer, followed by one secure sigmoid (:func:`secure_sigmoid`). Level 2: critic on
   the buffer's state--action pairs and target critic on the next state and target actions (4 networks,
   batched). The TD residual ``Q - (r + gamma Q')`` is back-propagated on shares through the critic; the
   critic gradients are revealed to their owners only, who apply Adam in plaintext (the same
   :class:`ppal_lab.marl.maddpg.Adam` code as the plaintext learner).
4. **Actor update.** The owners re-share their updated critics; level 3 evaluates each critic at the
   player's *new* action ``mu_i(o)`` and the other player's buffer action, back-propagates ``-1/B`` to the
   action inputs, through the sigmoid and the actor; the actor gradients are revealed to their owners, who
   apply Adam and the soft target updates in plaintext.

Every ReLU mask is computed once (one secure comparison per hidden layer) and reused by the backward
pass; all residuals are back-propagated unscaled and the public factors (``2/B``, ``1/B``) applied by the
owner after the reveal, which keeps fixed-point precision.

Threat model
------------
Semi-honest parties. Beaver triples and the binary triples of the comparisons come from CrypTen's
default *trusted first party* provider: party 0 generates them from seeds only it knows. That stands in
for a trusted dealer and is **not** private against party 0 in a real deployment (use CrypTen's TTP
provider on a third host, or an offline phase with homomorphic encryption or OT). Everything a party
receives during the computation (shares of the other's inputs and weights, opened Beaver differences,
the binary circuit's messages) is masked by uniform ring elements. What each player *learns*:

* the public protocol (network shapes, batch size, hyper-parameters, number of iterations), the order
  and invoice of every step, and the minibatch indices (player 1 learns them from player 0);
* one bit per stage: whether the other party flagged a wrap-around (see below);
* its own actions (revealed pre-sigmoid outputs of its actor), which depend on the other player's
  observations: any policy that reads another's data reveals something of it through its actions;
* the gradients of its own networks. These leak: the first-layer gradient rows that belong to the other
  player's inputs are ``x_other^T g`` -- per step ``hidden`` weighted sums of each of the other's
  features over the minibatch, which gradient-inversion attacks can exploit (exact recovery for a
  minibatch of one). Revealing gradients to the owner is seed 002's design (plaintext Adam); hiding them
  would need Adam itself on shares.

Fixed point and the wrap-around guard
-------------------------------------
Values carry ``precision_bits`` fractional bits in CrypTen's 64-bit ring. CrypTen's two-party
truncation after a product fails with probability about ``|v| 2^(2b) / 2^64`` per element (the shares
wrap around the ring), which turns one element into a value near ``±2^(64-2b)``. One iteration truncates
roughly ``10^6`` elements at the default sizes, so at 18 bits a failure happens about once in a hundred
iterations. A failure that inflates a value usually reaches a revealed value (a gradient or an action) as an absurd
magnitude; the owner then flags the stage and both parties recompute it with fresh randomness
(:attr:`SecureSettings.wrap_threshold`, at most :attr:`SecureSettings.max_retries` times), and the
retries are counted. Not every failure is caught: one that drives a pre-activation to a huge negative
value only switches that ReLU unit off, and one in an actor's pre-sigmoid output is clipped by the
sigmoid to a wrong but ordinary action. Such misses are rare and bounded, and show up as a larger
weight difference from the plaintext run.

Every value is opened to its owner with :func:`ppal_lab.secure.twoparty.reveal_to` (the other party
sends its share point to point). CrypTen's own ``reveal(dst=...)`` is not used: it runs gloo's ring
reduce, through which the non-owner ends up with about half of the opened values in the clear.
"""
from __future__ import annotations

import collections
import copy
import math
import os
import signal
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ppal_lab.compendium.errors import ParameterError, check_range
from ppal_lab.marl.maddpg import (ACT_DIM, ACTOR_IN, CRITIC_IN, MADDPG, Adam, GameConfig, MADDPGConfig, NetStack,
                             game_step, initial_obs)
from ppal_lab.marl.supply_game import OBS_DIM, retailer_step, supplier_step

__all__ = ["PRECISION_BITS_RANGE", "NETWORKS", "STEP_COLUMNS", "SecureSettings", "player_state", "party_randomness",
           "secure_sigmoid", "secure_party", "plain_phase", "run_secure_phase", "SecurePhase",
           "weight_table", "sigmoid_exp_coefficients"]

PRECISION_BITS_RANGE = (10, 20)
"""Fractional bits this protocol works with: below 10 the fixed-point resolution (1e-3) swamps the
gradients; above 20 truncation wrap-arounds (probability ~ |v| 2^(2b-64) per element) come so often
that most iterations need a retry."""
NETWORKS = ("actor", "critic", "actor_target", "critic_target")
STEP_COLUMNS = ("reward_0", "reward_1", "total_reward", "wastage", "ncr", "p0", "q0", "p1", "q1")
_SIGMOID_CLIP = 16.0       # |z| is clipped here before exp(-|z|); sigmoid(16) = 1 - 1.1e-7
_EXP_DEGREE = 8            # polynomial for exp(-t) on t in [0, 2] (t = |z| / 8), then 3 squarings
_RECIP_ITERS = 3           # Newton steps for 1 / d on d in [1, 2] from the line 1.5 - d/2
_tally: collections.Counter = collections.Counter()   # elements shared / compared (per party process)


@dataclass(frozen=True)
class SecureSettings:
    """Settings of the secure phase that the plaintext learner does not have."""

    precision_bits: int = 18
    wrap_threshold: float = 1e4   # a revealed |value| above this (or non-finite) = a wrap-around
    max_retries: int = 4
    timeout_s: float | None = None     # None: generous, from the iterations and sizes
    crash_at: tuple[int, int] | None = None   # (rank, iteration): that party kills itself (tests)
    keep_shares: bool = False          # return the first shares received (independence tests)
    inject_wrap: tuple[tuple[str, int], ...] = ()   # (stage, iteration) pairs: flag the first attempt (tests)
    offline: bool = True               # pre-generate the triples (dealer's offline phase), timed apart

    def __post_init__(self):
        if isinstance(self.precision_bits, bool) or not isinstance(self.precision_bits, (int, np.integer)):
            raise ParameterError("precision_bits", self.precision_bits, "an int")
        check_range("precision_bits", int(self.precision_bits), *PRECISION_BITS_RANGE)
        check_range("wrap_threshold", self.wrap_threshold, 1.0)
        check_range("max_retries", self.max_retries, 0, 100)
        if self.timeout_s is not None:
            check_range("timeout_s", self.timeout_s, 0.0, low_open=True)


# --------------------------------------------------------------------------------------------------
# Handing one player's part of a plaintext learner to its party
# --------------------------------------------------------------------------------------------------
def party_randomness(rand, game: GameConfig, cfg: MADDPGConfig, iterations: int, buffer_size: int,
                     start_step: int = 0) -> list[dict]:
    """The secure phase's external randomness, drawn in advance from ``rand`` exactly as
    :meth:`ppal_lab.marl.maddpg.MADDPG.play` would draw it, and split between the players: each gets its own
    initial observations (``{iteration: obs}``) and action noise ``(iterations, 2)``; player 1 alone the
    demand shocks of its market; player 0 alone the minibatch indices, which it sends to player 1
    (Appendix E). Nothing of one player's draws reaches the other's process."""
    H = game.horizon
    initial, noise, demand, batches, size = {}, [], [], [], buffer_size
    for it in range(iterations):
        if (start_step + it) % H == 0:
            initial[it] = initial_obs(game, rand.initial("real", 1))[0]
        noise.append(rand.action_noise(1)[0])
        demand.append(rand.demand("real", 1)[0])
        size = min(size + 1, cfg.buffer_size)
        if size >= cfg.batch_size:
            batches += [rand.minibatch(size, cfg.batch_size) for _ in range(cfg.updates_per_step)]
    return [{"initial": {k: v[p].copy() for k, v in initial.items()}, "noise": np.array([n[p] for n in noise]),
             "demand": np.array(demand) if p == 1 else None, "batches": batches if p == 0 else None}
            for p in (0, 1)]


def _net_of(net: NetStack, k: int) -> list[torch.Tensor]:
    return [p[k].clone() for p in net.params]


def player_state(learner: MADDPG, player: int) -> dict:
    """Everything player ``player`` owns in a one-run EDE learner: its four networks, its Adam moments
    and step counts, and its columns of the replay buffer (observations, actions, rewards, next
    observations). Nothing of the other player is included."""
    if learner.n_runs != 1 or learner.modes != ["ede"]:
        raise ParameterError("learner", learner.runs, "a learner with one run in mode 'ede'")
    if player not in (0, 1):
        raise ParameterError("player", player, "0 or 1")
    k, n = player, learner.buf_size
    state = {name: _net_of(getattr(learner, name), k) for name in NETWORKS}
    for name, opt, net in (("actor", learner.actor_opt, learner.actor), ("critic", learner.critic_opt,
                                                                           learner.critic)):
        state[f"{name}_adam"] = {"m": _net_of(NetStack(net.n, net.sizes, opt.m), k),
                                 "v": _net_of(NetStack(net.n, net.sizes, opt.v), k), "t": opt.t}
    state["buffer"] = {"obs": learner.buf_obs[0, :n, player].clone(), "act": learner.buf_act[0, :n, player].clone(),
                       "rew": learner.buf_rew[0, :n, player].clone(),
                       "next": learner.buf_next[0, :n, player].clone(), "pos": learner.buf_pos, "size": n}
    return state


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


# --------------------------------------------------------------------------------------------------
# Secure building blocks (called inside a party, with CrypTen initialised)
# --------------------------------------------------------------------------------------------------
def sigmoid_exp_coefficients(degree: int = _EXP_DEGREE) -> np.ndarray:
    """Power-basis coefficients (constant first) of the Chebyshev interpolant of ``exp(-t)`` on [0, 2]
    (max error ~1e-9 at degree 8)."""
    cheb = np.polynomial.Chebyshev.interpolate(lambda t: np.exp(-t), degree, domain=[0.0, 2.0])
    return cheb.convert(kind=np.polynomial.Polynomial, domain=[0.0, 2.0], window=[0.0, 2.0]).coef


def secure_sigmoid(z):
    """``sigmoid(z)`` of a CrypTensor, accurate to ~1e-5 at 18 bits (CrypTen's own: ~2e-3).

    One batched comparison gives ``z < 0``, ``z > 16`` and ``z < -16``; ``a = min(|z|, 16)``;
    ``exp(-a) = p(a/8)^8`` with ``p`` a degree-8 polynomial for ``exp(-t)`` on [0, 2] (Horner, then 3
    squarings -- few squarings, because each doubles the fixed-point error; CrypTen's ``(1 - a/512)^512``
    multiplies it by 512); ``1/(1 + exp(-a))`` by 3 Newton steps from the line ``1.5 - d/2``, exact at
    both ends of ``d`` in [1, 2]; then ``sigmoid(z) = s + neg (1 - 2s)``. 28 rounds.
    """
    from ppal_lab.secure.crypten_compat import crypten

    n = z.size(0)
    flags = crypten.cat([-z, z - _SIGMOID_CLIP, -z - _SIGMOID_CLIP], dim=0)
    _tally["comparisons"] += flags.nelement()
    start = time.perf_counter()
    flags = flags.gt(0)                                                    # scale-1 shares
    _tally["comparison_s"] += time.perf_counter() - start
    neg, big = flags[:n], flags[n:2 * n] + flags[2 * n:]
    a = z * (1 - 2 * neg)                       # |z|; products with 0/1 shares need no truncation
    a = a - (a - _SIGMOID_CLIP) * big           # min(|z|, 16)
    t = a * 0.125
    coef = sigmoid_exp_coefficients()
    p = t * float(coef[-1]) + float(coef[-2])
    for c in coef[-3::-1]:
        p = p * t + float(c)
    for _ in range(3):
        p = p.square()
    d = p + 1.0
    y = 1.5 - 0.5 * d
    for _ in range(_RECIP_ITERS):
        y = y * (2.0 - d * y)
    return y + (1 - 2 * y) * neg


def _share2(crypten, rank: int, mine: torch.Tensor | None, shape, kind: str = "data"):
    """Shares of a ``(2, *shape)`` tensor whose slice ``p`` is party ``p``'s private value."""
    _tally[f"shared_{kind}"] += 2 * math.prod(shape)
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


def _forward(params, x):
    """Stacked 3-layer MLP forward on shares; returns the last pre-activation and the cache."""
    hs, masks, h = [x], [], x
    for layer in range(3):
        z = h.matmul(params[2 * layer]) + params[2 * layer + 1]
        if layer < 2:
            _tally["comparisons"] += z.nelement()
            start = time.perf_counter()
            m = z.gt(0)            # the only comparison of this layer; reused backward
            _tally["comparison_s"] += time.perf_counter() - start
            h = z * m
            hs.append(h)
            masks.append(m)
    return z, (hs, masks)


def _slice_cache(cache, sl: slice):
    hs, masks = cache
    return [h[sl] for h in hs], [m[sl] for m in masks]


def _backward(params, cache, g):
    """Backward of :func:`_forward` from ``g`` = dL/d(last pre-activation); returns the weight gradients."""
    hs, masks = cache
    grads = [None] * 6
    for layer in (2, 1, 0):
        grads[2 * layer] = hs[layer].transpose(1, 2).matmul(g)
        grads[2 * layer + 1] = g.sum(1, keepdim=True)
        if layer > 0:
            g = g.matmul(params[2 * layer].transpose(1, 2)) * masks[layer - 1]
    return grads


def _flat(grads):
    from ppal_lab.secure.crypten_compat import crypten

    return crypten.cat([g.flatten(start_dim=1) for g in grads], dim=1)


class _Party:
    """One player's process: its plaintext half plus the secure protocol."""

    def __init__(self, rank, game, cfg, settings, player, rand):
        from ppal_lab.secure.crypten_compat import crypten

        self.crypten, self.comm = crypten, crypten.comm.get()
        self.rank, self.game, self.cfg, self.s = rank, game, cfg, settings
        self.me, self.rand = player, rand
        self.iteration, self._batches = 0, iter(rand["batches"] or ())
        self.scale = 2 ** int(settings.precision_bits)
        self.obs_scale = game.obs_scale()[rank]
        self.act_high = game.action_high()[rank]
        self.retries = {"acting": 0, "critic": 0, "actor": 0}
        self.shares_seen = {}

    # ---- reveal to the owners and the wrap-around guard --------------------------------------------
    def _reveal_own(self, x) -> np.ndarray:
        """Reveal slice ``p`` of a stacked ``(2, ...)`` CrypTensor to party ``p`` only; decode exactly."""
        from ppal_lab.secure.fixed_point import decode_exact
        from ppal_lab.secure.twoparty import reveal_to

        mine = None
        for p in (0, 1):
            ring = reveal_to(x[p], p)
            if p == self.rank:
                mine = decode_exact(ring, self.scale)
        return mine

    def _agree(self, bad: bool) -> bool:
        """Both parties learn whether either flagged a wrap-around (one tiny exchange)."""
        flag = self.comm.all_reduce(torch.tensor([int(bad)], dtype=torch.long))
        return bool(int(flag[0]) > 0)

    def _guarded(self, stage: str, compute):
        """Run ``compute`` until no party flags its revealed value; both parties take the same path.

        A recomputation draws its triples directly, not from the offline cache (a recomputed actor half
        has other shapes and would drain entries later stages need), and the cache is topped up by one
        iteration's worth to replace what the failed attempt used."""
        provider = self.crypten.mpc.get_default_provider()
        for attempt in range(self.s.max_retries + 1):
            stash = provider.tuple_cache if attempt else {}
            provider.tuple_cache = {} if attempt else provider.tuple_cache
            try:
                value = compute(attempt)
            finally:
                if attempt:
                    provider.tuple_cache = stash
            bad = not np.all(np.isfinite(value)) or float(np.abs(value).max()) > self.s.wrap_threshold
            bad |= attempt == 0 and (stage, self.iteration) in self.s.inject_wrap
            if not self._agree(bad):
                return value
            self.retries[stage] += 1
            if attempt == 0 and provider.tuple_cache:
                provider.fill_cache()
        raise RuntimeError(f"{stage}: {self.s.max_retries + 1} attempts in a row hit a fixed-point "
                           f"wrap-around at precision_bits={self.s.precision_bits}; use fewer bits")

    # ---- acting -------------------------------------------------------------------------------------
    def act(self, obs_n: torch.Tensor) -> torch.Tensor:
        """Own action in [0, 1] units, ``(2,)``, from own normalised observation ``(5,)``."""
        c = self.crypten

        def compute(attempt):
            o = _share2(c, self.rank, obs_n[None], (1, OBS_DIM))        # (2, 1, 5)
            z, _ = _forward(_share_net(c, self.rank, self.me, "actor"), c.cat([o, _swap(o)], dim=-1))
            return self._reveal_own(z)

        z = self._guarded("acting", compute)
        return torch.sigmoid(torch.from_numpy(z).float())[0]

    # ---- one MADDPG update --------------------------------------------------------------------------
    def update(self) -> None:
        c, rank, me, cfg = self.crypten, self.rank, self.me, self.cfg
        B = cfg.batch_size
        # Appendix E: player 0 samples the row indices and sends them; both use their own buffers.
        idx = torch.empty(B, dtype=torch.long)
        if rank == 0:
            idx = torch.from_numpy(next(self._batches)).long()
        idx = self.comm.broadcast(idx, 0)
        obs, act, rew, nxt = me.obs[idx], me.act[idx], me.rew[idx], me.next[idx]
        keep = self.s.keep_shares and not self.shares_seen

        def critic_stage(attempt):
            o = _share2(c, rank, obs, (B, OBS_DIM))
            a = _share2(c, rank, act, (B, ACT_DIM))
            n = _share2(c, rank, nxt, (B, OBS_DIM))
            r = _share2(c, rank, rew[:, None], (B, 1))
            if keep:
                self.shares_seen = {"peer_obs_share": o.share[1 - rank].clone(),
                                    "own_obs_share": o.share[rank].clone(), "peer_obs_shape": tuple(obs.shape)}
            # level 1: actor(o) and target actor(o') of both players, one call per layer
            actors = _cat_nets(_share_net(c, rank, me, "actor"), _share_net(c, rank, me, "actor_target"))
            za, a_cache = _forward(actors, c.cat([c.cat([o, _swap(o)], -1), c.cat([n, _swap(n)], -1)], 0))
            mu_all = secure_sigmoid(za)
            mu, mu_next = mu_all[0:2], mu_all[2:4]
            # level 2: critic(o, a) and target critic(o', mu'(o')) of both players
            own_now, own_next = c.cat([o, a], -1), c.cat([n, mu_next], -1)
            critics = _cat_nets(_share_net(c, rank, me, "critic"), _share_net(c, rank, me, "critic_target"))
            x_q = c.cat([c.cat([own_now, _swap(own_now)], -1), c.cat([own_next, _swap(own_next)], -1)], 0)
            q_all, q_cache = _forward(critics, x_q)
            resid = q_all[0:2] - (r + q_all[2:4] * cfg.gamma)     # Q - y, unscaled (2/B applied later)
            grads = _backward([w[0:2] for w in critics], _slice_cache(q_cache, slice(0, 2)), resid)
            self._level1 = (o, a, own_now, actors, za, a_cache, mu)
            return self._reveal_own(_flat(grads)) * (2.0 / B)

        g_critic = self._guarded("critic", critic_stage)
        me.apply("critic", torch.from_numpy(g_critic).float())

        def actor_stage(attempt):
            o, a, own_now, actors, za, a_cache, mu = self._level1
            if attempt:     # a wrap-around may sit in level 1's actor half: recompute it afresh
                actors = _share_net(c, rank, me, "actor")
                za, a_cache = _forward(actors, c.cat([o, _swap(o)], -1))
                mu = secure_sigmoid(za)
            critic = _share_net(c, rank, me, "critic")          # the updated critics, re-shared
            x = c.cat([c.cat([o, mu], -1), _swap(own_now)], -1)
            _, q_cache = _forward(critic, x)
            hs, masks = q_cache
            # d(-sum Q)/d(last pre-activation) = -1 for every row: g2 = -W3^T, no product needed
            g = critic[4].transpose(1, 2).neg().expand(2, B, cfg.hidden) * masks[1]
            g = g.matmul(critic[2].transpose(1, 2)) * masks[0]
            g_mu = g.matmul(critic[0][:, OBS_DIM:OBS_DIM + ACT_DIM, :].transpose(1, 2))   # (2, B, 2)
            g_z = g_mu * (mu * (1 - mu)) + za[0:2] * (2.0 * cfg.actor_reg / ACT_DIM)
            grads = _backward([w[0:2] for w in actors], _slice_cache(a_cache, slice(0, 2)), g_z)
            return self._reveal_own(_flat(grads)) * (1.0 / B)

        try:
            g_actor = self._guarded("actor", actor_stage)
        finally:
            self._level1 = None
        me.apply("actor", torch.from_numpy(g_actor).float())
        me.soft_update()

    # ---- the environment, split ------------------------------------------------------------------
    def env_step(self, obs_own: np.ndarray, unit: torch.Tensor, shock: np.ndarray, last: bool) -> dict:
        phys = unit.numpy().astype(np.float64) * self.act_high
        if self.rank == 1:
            order = np.clip(phys[1:2], 0.0, self.game.quantity_limit)
            self.comm.broadcast(torch.from_numpy(order), 1)
            invoice = self.comm.broadcast(torch.empty(2, dtype=torch.float64), 0).numpy()
            return retailer_step(self.game, obs_own, phys, invoice[0], invoice[1], shock[0], last)
        order = self.comm.broadcast(torch.empty(1, dtype=torch.float64), 1).numpy()[0]
        out = supplier_step(self.game, obs_own, phys, order, last)
        self.comm.broadcast(torch.tensor([float(out["price"]), float(out["shipped"])], dtype=torch.float64), 0)
        return out


def secure_party(rank: int, game: GameConfig, cfg: MADDPGConfig, settings: SecureSettings, iterations: int,
                 state: dict, rand, start_step: int = 0) -> dict:
    """Party function for :func:`~ppal_lab.secure.twoparty.run_parties`: ``iterations`` steps of the
    measured ("real") phase, one secure MADDPG update after each. ``state`` is :func:`player_state` of
    this player only; ``rand`` this player's part of the external randomness
    (:func:`party_randomness`). Returns this player's per-step metrics, final weights, timings,
    communication and retry counts."""
    from ppal_lab.secure.crypten_compat import crypten, without_debug_hook

    torch.set_num_threads(1)       # the two parties share the cores
    crypten.cfg.encoder.precision_bits = int(settings.precision_bits)
    with without_debug_hook():
        return _play(rank, game, cfg, settings, iterations, state, rand, start_step)


_OFFLINE_BYTES = 1.5e9   # pre-generate at most this many bytes of triples at a time


def _offline_block(provider, remaining: int) -> int:
    """Iterations to pre-generate at once: as many as fit in :data:`_OFFLINE_BYTES` (same on both
    parties: it depends only on the traced request sizes)."""
    per_iteration = 0
    for name, args, kwargs in provider.request_cache:
        sizes = [a for a in args if isinstance(a, torch.Size) or isinstance(a, tuple)]
        elements = [math.prod(sz) for sz in sizes]
        per_iteration += 8 * (2 * sum(elements) + (max(elements) if elements else 0))
    return int(max(1, min(remaining, _OFFLINE_BYTES // max(per_iteration, 1))))


def _play(rank, game, cfg, settings, iterations, state, rand, start_step) -> dict:
    party = _Party(rank, game, cfg, settings, _Player(rank, state, cfg), rand)
    me, comm, H = party.me, party.comm, game.horizon
    rows, obs = [], None
    timing = {"acting": [], "env": [], "update": [], "iteration": [], "offline": [0.0] * iterations}
    comm_rows = []
    provider, ready = party.crypten.mpc.get_default_provider(), 0
    for it in range(iterations):
        t = (start_step + it) % H
        if settings.crash_at == (rank, it):
            os.kill(os.getpid(), signal.SIGKILL)
        if settings.offline:
            # The dealer's offline phase: iteration 0 records which triples an iteration uses; before
            # each later block both parties pre-generate the block's triples (no communication), and
            # the block's iterations take them from the cache, each triple used once.
            provider.trace(it == 0)
            if it >= 1 and it >= ready:
                block = _offline_block(provider, iterations - it)
                start = time.perf_counter()
                for _ in range(block):
                    provider.fill_cache()
                spent = time.perf_counter() - start
                timing["offline"][it:it + block] = [spent / block] * block
                ready = it + block
        if t == 0:
            obs = rand["initial"][it]
        party.iteration = it
        comm.barrier()
        _tally.clear()
        s0, t0 = comm.get_communication_stats(), time.perf_counter()
        obs_n = torch.from_numpy(obs / party.obs_scale).float()
        unit = party.act(obs_n)
        eps = torch.from_numpy(rand["noise"][it]).float()
        unit = (unit + cfg.noise * eps).clamp_(0.0, 1.0)
        t1 = time.perf_counter()
        shock = None if rand["demand"] is None else rand["demand"][it:it + 1]
        out = party.env_step(obs, unit, shock, last=t == H - 1)
        me.store(obs_n, unit, torch.tensor(out["reward"] * cfg.reward_scale).float(),
                 torch.from_numpy(out["next_obs"] / party.obs_scale).float())
        t2 = time.perf_counter()
        s1 = comm.get_communication_stats()
        if me.size >= cfg.batch_size:
            for _ in range(cfg.updates_per_step):
                party.update()
        t3 = time.perf_counter()
        s2 = comm.get_communication_stats()
        timing["acting"].append(t1 - t0)
        timing["env"].append(t2 - t1)
        timing["update"].append(t3 - t2)
        timing["iteration"].append(t3 - t0)
        comm_rows.append({"rounds_act_env": s1["rounds"] - s0["rounds"], "bytes_act_env": s1["bytes"] - s0["bytes"],
                          "rounds_update": s2["rounds"] - s1["rounds"], "bytes_update": s2["bytes"] - s1["bytes"],
                          **_tally})
        a = out["action"]
        rows.append({"iteration": it, "step": t, "reward": float(out["reward"]), "wastage": float(out["wastage"]),
                     "price": float(a[0]), "quantity": float(a[1])})
        obs = out["next_obs"]
    provider.trace(False)
    provider.tuple_cache, provider.request_cache = {}, []
    return {"rank": rank, "steps": rows, "weights": me.weights(), "timing": timing, "comm": comm_rows,
            "retries": party.retries, "shares": party.shares_seen}


# --------------------------------------------------------------------------------------------------
# The plaintext reference and the driver
# --------------------------------------------------------------------------------------------------
def plain_phase(learner: MADDPG, iterations: int, start_step: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``iterations`` steps of the measured phase of a one-run EDE learner in plaintext, exactly as
    :meth:`~ppal_lab.marl.maddpg.MADDPG.play` plays them (one episode at a time, noise ``cfg.noise``, one
    update per step), but recorded per step. Returns the per-step table and the seconds per iteration."""
    g, cfg, H = learner.game, learner.cfg, learner.game.horizon
    rd = learner.rand[learner.seeds[0]]
    rows, times, obs = [], [], None
    for it in range(iterations):
        t = (start_step + it) % H
        if t == 0:
            obs = initial_obs(g, rd.initial("real", 1)[None])
        t0 = time.perf_counter()
        obs_n = learner.normalize(obs)
        with torch.no_grad():
            unit = learner.act(obs_n)
        eps = torch.from_numpy(rd.action_noise(1)[None]).float()
        unit = (unit + cfg.noise * eps).clamp_(0.0, 1.0)
        phys = unit.numpy().astype(np.float64) * learner.act_high
        nxt, rew, info = game_step(g, obs, phys, rd.demand("real", 1)[None], last=t == H - 1)
        learner.store(obs_n, unit, torch.from_numpy(rew * cfg.reward_scale).float(), learner.normalize(nxt))
        if learner.buf_size >= cfg.batch_size:
            for _ in range(cfg.updates_per_step):
                learner.update()
        times.append(time.perf_counter() - t0)
        a = info["actions"][0, 0]
        r0, r1, w = float(rew[0, 0, 0]), float(rew[0, 0, 1]), float(info["wastage"][0, 0])
        rows.append({"iteration": it, "step": t, "reward_0": r0, "reward_1": r1, "total_reward": r0 + r1,
                     "wastage": w, "ncr": r0 + r1 - g.raw_price * w, "p0": a[0, 0], "q0": a[0, 1],
                     "p1": a[1, 0], "q1": a[1, 1]})
        obs = nxt
    return pd.DataFrame(rows), np.array(times)


def _combine(parties: list, game: GameConfig) -> pd.DataFrame:
    rows = []
    for r0, r1 in zip(parties[0]["steps"], parties[1]["steps"]):
        w = r0["wastage"] + r1["wastage"]
        total = r0["reward"] + r1["reward"]
        rows.append({"iteration": r0["iteration"], "step": r0["step"], "reward_0": r0["reward"],
                     "reward_1": r1["reward"], "total_reward": total, "wastage": w,
                     "ncr": total - game.raw_price * w, "p0": r0["price"], "q0": r0["quantity"],
                     "p1": r1["price"], "q1": r1["quantity"]})
    return pd.DataFrame(rows)


@dataclass
class SecurePhase:
    """One seed's secure phase beside its plaintext EDE twin (same weights, buffers and randomness)."""

    seed: int
    iterations: int
    secure: pd.DataFrame               # per-step metrics of the secure run
    plain: pd.DataFrame                # per-step metrics of the plaintext EDE run
    secure_weights: dict               # {(network, player): [W1, b1, ...]}
    plain_weights: dict
    secure_s: np.ndarray               # online seconds per iteration (player 0's clock)
    offline_s: np.ndarray              # seconds of triple generation done ahead, per iteration
    plain_s: np.ndarray
    phases_s: dict                     # mean seconds per iteration: acting, env, update
    comm: pd.DataFrame                 # per-iteration rounds and bytes (per party; bytes summed/2)
    retries: dict
    wall_s: float
    shares: list = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        sec = self.secure_s[1:] if len(self.secure_s) > 1 else self.secure_s
        pla = self.plain_s[1:] if len(self.plain_s) > 1 else self.plain_s
        off = float(np.median(self.offline_s[1:])) if len(self.offline_s) > 1 else 0.0
        return {"seed": self.seed, "iterations": self.iterations,
                "secure_ms": 1e3 * float(np.median(sec)), "offline_ms": 1e3 * off,
                "plain_ms": 1e3 * float(np.median(pla)), "ratio": float(np.median(sec) / np.median(pla)),
                "ratio_with_offline": float((np.median(sec) + off) / np.median(pla)),
                "rounds": float(self.comm["rounds"].median()), "mbytes": float(self.comm["bytes"].median()) / 1e6,
                "retries": int(sum(self.retries.values())), "wall_s": self.wall_s}


def weight_table(a: dict, b: dict) -> pd.DataFrame:
    """MAE and RMSE between two sets of final weights, per network and player (Appendix H's table)."""
    rows = []
    for (name, player) in a:
        d = np.concatenate([(x.astype(np.float64) - y.astype(np.float64)).ravel()
                            for x, y in zip(a[(name, player)], b[(name, player)])])
        rows.append({"network": name, "player": player, "mae": float(np.abs(d).mean()),
                     "rmse": float(np.sqrt((d ** 2).mean())), "max_abs": float(np.abs(d).max()), "n": d.size})
    return pd.DataFrame(rows)


def _default_timeout(iterations: int, cfg: MADDPGConfig) -> float:
    size = max(1.0, cfg.batch_size * cfg.hidden / 16384) * max(1.0, cfg.hidden / 128)
    return 120.0 + iterations * 10.0 * size


def run_secure_phase(learner: MADDPG, iterations: int, settings: SecureSettings | None = None, *,
                     world_size: int = 2, sharing_seed: int | None = None) -> SecurePhase:
    """Play ``iterations`` measured steps of a pre-trained one-run EDE ``learner`` twice from the same
    state: securely in two processes (one per player, each given only its own part) and in plaintext.
    ``learner`` itself is not changed. ``sharing_seed`` seeds CrypTen's masks (None: secure random)."""
    from ppal_lab.secure.twoparty import run_parties

    settings = settings or SecureSettings()
    if not isinstance(settings, SecureSettings):
        raise ParameterError("settings", settings, "a SecureSettings")
    if isinstance(world_size, bool) or world_size != 2:
        raise ParameterError("world_size", world_size, "2 (the game and the protocol are two-party)")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ParameterError("iterations", iterations, "an int >= 1")
    if not isinstance(learner, MADDPG) or learner.n_runs != 1 or learner.modes != ["ede"]:
        raise ParameterError("learner", getattr(learner, "runs", learner), "a MADDPG with one run in mode 'ede'")
    if learner.buf_size < learner.cfg.batch_size:
        raise ParameterError("learner", f"buffer of {learner.buf_size} rows",
                             f"a pre-trained learner with at least batch_size = {learner.cfg.batch_size} rows")
    seed = learner.seeds[0]
    rand = party_randomness(copy.deepcopy(learner.rand[seed]), learner.game, learner.cfg, int(iterations),
                            learner.buf_size)
    states = [player_state(learner, p) for p in (0, 1)]
    timeout = settings.timeout_s or _default_timeout(int(iterations), learner.cfg)
    res = run_parties(secure_party, 2, args=(learner.game, learner.cfg, settings, int(iterations)), timeout=timeout,
                      verbose_comm=True, seed=sharing_seed, party_args=[(states[0], rand[0]), (states[1], rand[1])])
    twin = copy.deepcopy(learner)
    plain, plain_s = plain_phase(twin, int(iterations))
    secure_w = {(name, p): res[p]["weights"][name] for p in (0, 1) for name in NETWORKS}
    plain_w = {(name, p): [x.numpy() for x in _net_of(getattr(twin, name), p)] for p in (0, 1) for name in NETWORKS}
    c0, c1 = pd.DataFrame(res[0]["comm"]), pd.DataFrame(res[1]["comm"])
    comm = pd.DataFrame({"rounds": c0["rounds_act_env"] + c0["rounds_update"],
                         "rounds_update": c0["rounds_update"],
                         "bytes": (c0["bytes_act_env"] + c0["bytes_update"] + c1["bytes_act_env"]
                                   + c1["bytes_update"]) / 2,
                         "bytes_update": (c0["bytes_update"] + c1["bytes_update"]) / 2,
                         **{k: c0[k] for k in ("shared_data", "shared_weights", "comparisons", "comparison_s")
                            if k in c0}})
    tm = dict(res[0]["timing"])
    tm["comparisons"] = list(c0["comparison_s"]) if "comparison_s" in c0 else [0.0]   # within acting/update
    retries = {k: res[0]["retries"][k] for k in res[0]["retries"]}
    return SecurePhase(seed=seed, iterations=int(iterations), secure=_combine(res, learner.game), plain=plain,
                       secure_weights=secure_w, plain_weights=plain_w, secure_s=np.array(tm["iteration"]),
                       offline_s=np.array(tm["offline"]),
                       plain_s=plain_s, phases_s={k: float(np.mean(v[1:] if len(v) > 1 else v)) for k, v in tm.items() if k != "iteration"},
                       comm=comm, retries=retries, wall_s=res.wall_s, shares=[r["shares"] for r in res])
