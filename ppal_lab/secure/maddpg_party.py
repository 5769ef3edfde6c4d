"""One player's process in the secure two-party MADDPG: its plaintext half and the protocol it runs.

:func:`secure_party` is the party function that :func:`ppal_lab.secure.twoparty.run_parties` starts once
per player (or :func:`~ppal_lab.secure.twoparty.run_this_party` on its own host). It builds the player's
plaintext half (:class:`_Player`: its four networks, their Adam state and its columns of the replay
buffer) from that player's state alone, then plays the measured steps: acting on shares of both
observations, the split environment step (order and invoice exchanged), and each MADDPG update on
shares -- forward and backward passes by :mod:`ppal_lab.secure.mlp_on_shares`, the actors' sigmoid by
:func:`ppal_lab.secure.secure_sigmoid.secure_sigmoid` -- with the gradients revealed to their owners only,
who apply the plaintext :class:`ppal_lab.marl.networks.Adam`. The protocol, its threat model and the
wrap-around guard are described in :mod:`ppal_lab.secure.secure_maddpg`.
"""
from __future__ import annotations

import math
import os
import signal
import time

from dataclasses import dataclass

import numpy as np
import torch

from ppal_lab.compendium.errors import ParameterError, check_range
from ppal_lab.marl.maddpg import ACT_DIM, ACTOR_IN, CRITIC_IN, Adam, GameConfig, MADDPGConfig, NetStack
from ppal_lab.marl.supply_game import OBS_DIM, retailer_step, supplier_step
from ppal_lab.secure.fixed_point import TRAINING_PRECISION_BITS_RANGE
from ppal_lab.secure.mlp_on_shares import backward, flat_grads, forward, slice_cache, tally
from ppal_lab.secure.secure_sigmoid import secure_sigmoid

__all__ = ["NETWORKS", "SecureSettings", "secure_party"]

NETWORKS = ("actor", "critic", "actor_target", "critic_target")


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
        check_range("precision_bits", int(self.precision_bits), *TRAINING_PRECISION_BITS_RANGE)
        check_range("wrap_threshold", self.wrap_threshold, 1.0)
        check_range("max_retries", self.max_retries, 0, 100)
        if self.timeout_s is not None:
            check_range("timeout_s", self.timeout_s, 0.0, low_open=True)


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
            z, _ = forward(_share_net(c, self.rank, self.me, "actor"), c.cat([o, _swap(o)], dim=-1))
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
            za, a_cache = forward(actors, c.cat([c.cat([o, _swap(o)], -1), c.cat([n, _swap(n)], -1)], 0))
            mu_all = secure_sigmoid(za)
            mu, mu_next = mu_all[0:2], mu_all[2:4]
            # level 2: critic(o, a) and target critic(o', mu'(o')) of both players
            own_now, own_next = c.cat([o, a], -1), c.cat([n, mu_next], -1)
            critics = _cat_nets(_share_net(c, rank, me, "critic"), _share_net(c, rank, me, "critic_target"))
            x_q = c.cat([c.cat([own_now, _swap(own_now)], -1), c.cat([own_next, _swap(own_next)], -1)], 0)
            q_all, q_cache = forward(critics, x_q)
            resid = q_all[0:2] - (r + q_all[2:4] * cfg.gamma)     # Q - y, unscaled (2/B applied later)
            grads = backward([w[0:2] for w in critics], slice_cache(q_cache, slice(0, 2)), resid)
            self._level1 = (o, a, own_now, actors, za, a_cache, mu)
            return self._reveal_own(flat_grads(grads)) * (2.0 / B)

        g_critic = self._guarded("critic", critic_stage)
        me.apply("critic", torch.from_numpy(g_critic).float())

        def actor_stage(attempt):
            o, a, own_now, actors, za, a_cache, mu = self._level1
            if attempt:     # a wrap-around may sit in level 1's actor half: recompute it afresh
                actors = _share_net(c, rank, me, "actor")
                za, a_cache = forward(actors, c.cat([o, _swap(o)], -1))
                mu = secure_sigmoid(za)
            critic = _share_net(c, rank, me, "critic")          # the updated critics, re-shared
            x = c.cat([c.cat([o, mu], -1), _swap(own_now)], -1)
            _, q_cache = forward(critic, x)
            hs, masks = q_cache
            # d(-sum Q)/d(last pre-activation) = -1 for every row: g2 = -W3^T, no product needed
            g = critic[4].transpose(1, 2).neg().expand(2, B, cfg.hidden) * masks[1]
            g = g.matmul(critic[2].transpose(1, 2)) * masks[0]
            g_mu = g.matmul(critic[0][:, OBS_DIM:OBS_DIM + ACT_DIM, :].transpose(1, 2))   # (2, B, 2)
            g_z = g_mu * (mu * (1 - mu)) + za[0:2] * (2.0 * cfg.actor_reg / ACT_DIM)
            grads = backward([w[0:2] for w in actors], slice_cache(a_cache, slice(0, 2)), g_z)
            return self._reveal_own(flat_grads(grads)) * (1.0 / B)

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
    measured ("real") phase, one secure MADDPG update after each. ``state`` is :func:`~ppal_lab.secure.secure_maddpg.player_state` of
    this player only; ``rand`` this player's part of the external randomness
    (:func:`~ppal_lab.secure.secure_maddpg.party_randomness`). Returns this player's per-step metrics, final weights, timings,
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
        tally.clear()
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
                          **tally})
        a = out["action"]
        rows.append({"iteration": it, "step": t, "reward": float(out["reward"]), "wastage": float(out["wastage"]),
                     "price": float(a[0]), "quantity": float(a[1])})
        obs = out["next_obs"]
    provider.trace(False)
    provider.tuple_cache, provider.request_cache = {}, []
    return {"rank": rank, "steps": rows, "weights": me.weights(), "timing": timing, "comm": comm_rows,
            "retries": party.retries, "shares": party.shares_seen}
