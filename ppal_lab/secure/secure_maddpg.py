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
Values carry ``precision_bits`` fractional bits (workable:
:data:`ppal_lab.secure.fixed_point.TRAINING_PRECISION_BITS_RANGE`) in CrypTen's 64-bit ring. CrypTen's two-party
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

Where the code lives
--------------------
This module is the driver: it hands each player its own part of a pre-trained plaintext learner
(:func:`player_state`, :func:`party_randomness`), starts the two parties, replays the same steps in
plaintext (:func:`plain_phase`) and collects both (:class:`SecurePhase`, :func:`weight_table`). The party
side -- the player's plaintext half and the protocol above -- is :mod:`ppal_lab.secure.maddpg_party`;
the passes on shares are :mod:`ppal_lab.secure.mlp_on_shares` (shared with :mod:`ppal_lab.secure.secure_mlp`)
and the sigmoid :mod:`ppal_lab.secure.secure_sigmoid`.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.marl.maddpg import MADDPG, GameConfig, MADDPGConfig, NetStack, initial_obs
from ppal_lab.marl.supply_game import normalized_revenue
from ppal_lab.secure.maddpg_party import NETWORKS, SecureSettings, secure_party
from ppal_lab.secure.secure_sigmoid import secure_sigmoid, sigmoid_exp_coefficients

__all__ = ["NETWORKS", "STEP_COLUMNS", "SecurePhase", "SecureSettings", "party_randomness", "plain_phase",
           "player_state", "run_secure_phase", "secure_party", "secure_sigmoid", "sigmoid_exp_coefficients",
           "weight_table"]

STEP_COLUMNS = ("reward_0", "reward_1", "total_reward", "wastage", "ncr", "p0", "q0", "p1", "q1")


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


def player_state(learner: MADDPG, player: int) -> dict:
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


# --------------------------------------------------------------------------------------------------
# The plaintext reference and the driver
# --------------------------------------------------------------------------------------------------
def plain_phase(learner: MADDPG, iterations: int, start_step: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``iterations`` steps of the measured phase of a one-run EDE learner in plaintext, exactly as
    :meth:`~ppal_lab.marl.maddpg.MADDPG.play` plays them (one episode at a time, noise ``cfg.noise``, one
    update per step, by the same :meth:`~ppal_lab.marl.maddpg.MADDPG.step`), but recorded and timed per
    step. Returns the per-step table and the seconds per iteration."""
    g, H = learner.game, learner.game.horizon
    rows, times, obs = [], [], None
    for it in range(iterations):
        t = (start_step + it) % H
        if t == 0:
            obs = learner.initial("real", 1)
        t0 = time.perf_counter()
        nxt, rew, info, _ = learner.step("real", obs, t, learner.cfg.noise)
        times.append(time.perf_counter() - t0)
        a = info["actions"][0, 0]
        r0, r1, w = float(rew[0, 0, 0]), float(rew[0, 0, 1]), float(info["wastage"][0, 0])
        rows.append({"iteration": it, "step": t, "reward_0": r0, "reward_1": r1, "total_reward": r0 + r1,
                     "wastage": w, "ncr": float(normalized_revenue(g, r0 + r1, w)), "p0": a[0, 0], "q0": a[0, 1],
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
                     "ncr": float(normalized_revenue(game, total, w)), "p0": r0["price"], "q0": r0["quantity"],
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
    plain_w = {(name, p): [x.numpy() for x in getattr(twin, name).select(p)] for p in (0, 1) for name in NETWORKS}
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
