r"""Secure two-party MADDPG: the EDE learner of :mod:`ppal_lab.marl.maddpg` with each player in its own process.

Seed 002 (Sections 3--5, Appendices E, F, H) trains the two supply-chain players' MADDPG so that each
network sees both players' data (*explicit data exchange*, EDE) while no private value ever leaves its
owner in the clear. Here that is done with CrypTen's two-party arithmetic secret sharing: one OS process
per player and a third for the dealer (:func:`ppal_lab.secure.twoparty.run_parties`; on separate hosts
the same party function runs through :func:`~ppal_lab.secure.twoparty.run_this_party`).

What each player holds in the clear (and nobody else sees): its observations, its actions, its rewards,
its replay buffer (its own columns of every transition), its four networks (actor, critic, and their
targets) and their Adam state. Each party builds these itself (:mod:`ppal_lab.secure.maddpg_party`):
from the public exploration phase (simulated data from the public seed, which it replays and of which it
keeps only its own player's part) and, for the measured phase, from its own private seed (its part of
each initial state, its exploration noise, and for player 1 the demand shocks of its market). What the
players tell each other in the clear is what a supply chain's paperwork carries anyway: player 1's
order ``q1`` and player 0's invoice (price ``p0``, units shipped), and at the start of an episode the
same two numbers of the initial state. Public randomness: the minibatch row indices, which both derive
from the public seed (:func:`~ppal_lab.secure.maddpg_party.public_batches`). To compare with plaintext
EDE, the driver (the experimenter, who knows both private seeds) replays both players' draws in one
plaintext learner (:class:`JointDraws`); nothing of that reaches the parties.

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

Every ReLU mask is computed once (one secure comparison per hidden layer,
:func:`~ppal_lab.secure.mlp_on_shares.is_negative`: a carry tree that needs only the sign, about a third
of CrypTen's comparison bytes) and reused by the backward pass; all residuals are back-propagated
unscaled and the public factors (``2/B``, ``1/B``) applied by the owner after the reveal, which keeps
fixed-point precision.

Threat model
------------
Semi-honest players and a semi-honest dealer that colludes with neither (CrypTen's TTP provider in its
own process, :mod:`ppal_lab.secure.twoparty`). The dealer hands out Beaver triples and random bits; it
receives only requests (the kind and shapes of each tuple), never a share of data nor an opened value.
Everything a player receives during the computation (shares of the other's inputs and weights, opened
Beaver differences, the binary circuits' messages, player 0's triple shares from the dealer) is masked by
uniform ring elements it does not know. A dealer that colluded with a player would give that player
everything; a malicious player is not covered. What each player *learns*:

* the public protocol (network shapes, batch size, hyper-parameters, number of iterations, the public
  seed and so the minibatch indices), the order and invoice of every step and of each episode's start;
* one bit per stage attempt: whether some truncation of the stage wrapped around (below);
* its own actions (revealed pre-sigmoid outputs of its actor), which depend on the other player's
  observations: any policy that reads another's data reveals something of it through its actions;
* the gradients of its own networks. These leak: the first-layer gradient rows that belong to the other
  player's inputs are ``x_other^T g`` -- per step ``hidden`` weighted sums of each of the other's
  features over the minibatch, which gradient-inversion attacks can exploit (exact recovery for a
  minibatch of one). Revealing gradients to the owner is seed 002's design (plaintext Adam); hiding them
  would need Adam itself on shares.

The dealer learns the number and shapes of the products and comparisons, i.e. the public protocol, and
so also how many stage attempts there were (a recomputed stage asks for its tuples again): the wrap bits
above. By default (:attr:`SecureSettings.batch_dealer`) player 0 asks for each stage attempt's tuples in
one message (:class:`ppal_lab.secure.twoparty.dealer_batch`): the same requests and the same values, one
round trip per stage attempt instead of one per tuple.

Fixed point and the wrap-around check
-------------------------------------
Values carry ``precision_bits`` fractional bits (workable:
:data:`ppal_lab.secure.fixed_point.TRAINING_PRECISION_BITS_RANGE`) in CrypTen's 64-bit ring. CrypTen's two-party
truncation after a product (each player divides its own share) fails with probability about
``|v| 2^(2b) / 2^64`` per element, and a failure adds exactly ``+-2^(64-2b)`` (``2^28`` at 18 bits) to
that element; one iteration truncates roughly ``10^6`` elements at the default sizes, so at 18 bits a
failure happens about once in a hundred iterations. Unchecked, the owner would receive a gradient built
on that value, from which it can read the other player's inputs of a buffer row exactly (the wrapped
element's column of ``dW1`` divided by its ``db1``).

So no value is opened before the stage is checked, and the check runs on shares
(:meth:`~ppal_lab.secure.maddpg_party._Party._guarded`): every truncation of the stage adds, locally, a
checksum of its output with public random signs (:func:`~ppal_lab.secure.mlp_on_shares.watch_truncations`);
the players compare the checksums with a bound (a quarter of ``2^(64-2b)``) on shares, sum the
indicators on shares, and open only ``count > 0`` -- one bit, to both. If it is 1, nothing else is opened
and both recompute the stage with fresh randomness (at most :attr:`SecureSettings.max_retries` times; the
retries are counted). A failure therefore reveals one bit: that a wrap happened in that stage attempt
(whose probability grows with the magnitudes of the stage's values). Not caught: two or more wraps in
one truncated tensor whose signed contributions cancel to within the bound -- probability about
``(n p)^2 / 2`` per tensor of ``n`` elements with per-element failure probability ``p`` (of the order
of ``10^-6`` per iteration at the defaults); then the owner's gradient differs from the honest one by that
wrap's effect.

Every value is opened to its owner with :func:`ppal_lab.secure.twoparty.reveal_to` (the other party
sends its share point to point). CrypTen's own ``reveal(dst=...)`` is not used: it runs gloo's ring
reduce, through which the non-owner ends up with about half of the opened values in the clear.

Where the code lives
--------------------
This module is the driver: it starts the players and the dealer (:func:`run_secure_phase`), replays the
same steps in plaintext (:func:`plain_phase`, :class:`JointDraws`) and collects both
(:class:`SecurePhase`, :func:`weight_table`). The party side -- what a party builds for itself and the
protocol above -- is :mod:`ppal_lab.secure.maddpg_party`; the passes on shares, the comparison and the
truncation watch are :mod:`ppal_lab.secure.mlp_on_shares` (shared with :mod:`ppal_lab.secure.secure_mlp`)
and the sigmoid :mod:`ppal_lab.secure.secure_sigmoid`.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.marl.maddpg import MADDPG, GameConfig, MADDPGConfig
from ppal_lab.marl.networks import largest_preactivation
from ppal_lab.marl.supply_game import normalized_revenue
from ppal_lab.secure.maddpg_party import (NETWORKS, OWN_INIT, PlayerDraws, SecureSettings, exploration_learner,
                                          own_state, public_batches, secure_party, state_digest)
from ppal_lab.secure.secure_sigmoid import secure_sigmoid, sigmoid_exp_coefficients

__all__ = ["NETWORKS", "STEP_COLUMNS", "JointDraws", "SecurePhase", "SecureSettings", "exploration_learner",
           "own_state", "plain_phase", "private_seeds", "run_secure_phase", "secure_party", "secure_sigmoid",
           "sigmoid_exp_coefficients", "state_digest", "weight_table", "with_joint_draws"]

STEP_COLUMNS = ("reward_0", "reward_1", "total_reward", "wastage", "ncr", "p0", "q0", "p1", "q1")


# --------------------------------------------------------------------------------------------------
# The experimenter's view of both players' draws (for the plaintext twin only)
# --------------------------------------------------------------------------------------------------
def private_seeds(seed: int) -> tuple[int, int]:
    """The players' own seeds in an experiment driven by ``seed``. In a deployment each player picks its
    own and tells nobody; here the experimenter derives both so that it can replay the same draws in
    plaintext (:class:`JointDraws`)."""
    state = np.random.SeedSequence([int(seed), 0x9A27]).generate_state(2)
    return int(state[0]), int(state[1])


def with_joint_draws(learner: MADDPG) -> MADDPG:
    """A copy of a one-run learner that draws its measured phase as the two parties do (:class:`JointDraws`)."""
    twin = copy.deepcopy(learner)
    seed = twin.seeds[0]
    twin.rand[seed] = JointDraws(twin.rand[seed], seed)
    return twin


class JointDraws:
    """Both players' draws of the measured phase, combined as :class:`ppal_lab.marl.randomness.ExternalRandomness`
    serves them to a learner: installed in the plaintext twin (``learner.rand[seed]``) so that it plays
    the same steps as the two parties -- the same initial states, noise, demand shocks and minibatch rows.
    Draws of other phases and kinds go to the learner's own randomness ``base``."""

    def __init__(self, base, seed: int):
        self.base = base
        self.players = [PlayerDraws(p, s) for p, s in enumerate(private_seeds(seed))]
        self.batches = public_batches(seed)

    def initial(self, phase: str, n: int) -> np.ndarray:
        if phase != "real":
            return self.base.initial(phase, n)
        u = np.empty((n, 6))
        for k in range(n):
            for p in (0, 1):
                u[k, list(OWN_INIT[p])] = self.players[p].initial()
        return u

    def action_noise(self, n: int) -> np.ndarray:
        return np.stack([[self.players[p].action_noise() for p in (0, 1)] for _ in range(n)])

    def demand(self, phase: str, n: int) -> np.ndarray:
        if phase != "real":
            return self.base.demand(phase, n)
        return np.array([self.players[1].demand() for _ in range(n)])

    def minibatch(self, size: int, batch: int) -> np.ndarray:
        return self.batches.integers(0, size, batch)

    def __getattr__(self, name):            # weights, random_actions, ...: the learner's own streams
        if name.startswith("__") or name == "base":
            raise AttributeError(name)      # (copy and pickle probe dunders before __dict__ is set)
        return getattr(self.base, name)


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
    secure_s: np.ndarray               # seconds per iteration, player 0's clock (dealer waits included)
    dealer_s: np.ndarray               # of which player 0 waited for the dealer's triples
    plain_s: np.ndarray
    phases_s: dict                     # mean seconds per iteration: acting, env, update, dealer
    comm: pd.DataFrame                 # per-iteration rounds and bytes (per party; bytes summed/2), dealer's too
    retries: dict
    wall_s: float
    shares: list = field(default_factory=list, repr=False)
    views: list = field(default_factory=list, repr=False)
    profile: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)   # bytes/rounds/s per kind
    dealer_stats: dict | None = None   # the dealer's own count over the whole run (rounds, bytes, seconds)
    relu_headroom: float = float("nan")  # the ReLU ring's bound / largest |hidden pre-activation| (plain twin)

    def summary(self) -> dict:
        """Medians over the iterations after the first: ``online_ms`` (player 0's time less its waits for
        the dealer), ``dealer_ms`` (those waits), ``total_ms``, plaintext ``plain_ms`` and the ratios;
        player-to-player ``rounds``/``mbytes`` and the dealer's ``dealer_rounds``/``dealer_mbytes`` and
        ``dealer_requests`` (player 0's messages to the dealer: round trips)."""
        rest = slice(1, None) if len(self.secure_s) > 1 else slice(None)
        total, dealer = self.secure_s[rest], self.dealer_s[rest]
        online, plain = total - dealer, self.plain_s[rest]
        return {"seed": self.seed, "iterations": self.iterations,
                "online_ms": 1e3 * float(np.median(online)), "dealer_ms": 1e3 * float(np.median(dealer)),
                "total_ms": 1e3 * float(np.median(total)), "plain_ms": 1e3 * float(np.median(plain)),
                "online_ratio": float(np.median(online) / np.median(plain)),
                "total_ratio": float(np.median(total) / np.median(plain)),
                "rounds": float(self.comm["rounds"].median()), "mbytes": float(self.comm["bytes"].median()) / 1e6,
                "dealer_rounds": float(self.comm["dealer_rounds"].median()),
                "dealer_mbytes": float(self.comm["dealer_bytes"].median()) / 1e6,
                "dealer_requests": float(self.comm["dealer_requests"].median()),
                "retries": int(sum(self.retries.values())), "wall_s": self.wall_s,
                "relu_headroom": self.relu_headroom}


def weight_table(a: dict, b: dict) -> pd.DataFrame:
    """MAE and RMSE between two sets of final weights, per network and player (Appendix H's table)."""
    rows = []
    for (name, player) in a:
        d = np.concatenate([(x.astype(np.float64) - y.astype(np.float64)).ravel()
                            for x, y in zip(a[(name, player)], b[(name, player)])])
        rows.append({"network": name, "player": player, "mae": float(np.abs(d).mean()),
                     "rmse": float(np.sqrt((d ** 2).mean())), "max_abs": float(np.abs(d).max()), "n": d.size})
    return pd.DataFrame(rows)


def _default_timeout(iterations: int, cfg: MADDPGConfig, pretrain_episodes: int) -> float:
    size = max(1.0, cfg.batch_size * cfg.hidden / 16384) * max(1.0, cfg.hidden / 128)
    return 180.0 + pretrain_episodes * 0.5 + iterations * 12.0 * size


def run_secure_phase(learner: MADDPG, iterations: int, settings: SecureSettings | None = None, *,
                     pretrain_episodes: int, world_size: int = 2, sharing_seed: int | None = None) -> SecurePhase:
    """Play ``iterations`` measured steps after the public exploration phase twice: securely, in two
    player processes and a dealer, and in plaintext.

    ``learner`` is the public exploration learner (:func:`exploration_learner` of its seed with
    ``pretrain_episodes``), used here only for the plaintext twin; it is not changed and nothing of it
    is sent to the parties. Each party replays the exploration itself, keeps its own player's part, and
    draws its measured phase from its own seed (:func:`private_seeds`); the driver checks that each
    party's starting state is the twin's (digests). ``sharing_seed`` seeds the players' CrypTen masks
    and the dealer (None: secure random)."""
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
    timeout = settings.timeout_s or _default_timeout(int(iterations), learner.cfg, int(pretrain_episodes))
    public = (learner.game, learner.cfg, settings, int(iterations), seed, int(pretrain_episodes))
    # A seeded dealer only for a reproducible experiment: seeded masks protect nothing (stated in 08).
    res = run_parties(secure_party, 2, args=public, timeout=timeout, verbose_comm=True, seed=sharing_seed,
                      dealer_seed=sharing_seed, party_args=[(s,) for s in private_seeds(seed)])
    for p in (0, 1):
        if res[p]["start_digest"] != state_digest(own_state(learner, p)):
            raise RuntimeError(f"party {p} replayed another exploration phase than the driver's learner "
                               f"(pretrain_episodes={pretrain_episodes}?)")
    twin = with_joint_draws(learner)
    plain, plain_s = plain_phase(twin, int(iterations))
    with largest_preactivation() as largest:       # replayed untimed: how small the ReLU inputs stay
        plain_phase(with_joint_draws(learner), int(iterations))
    ring = settings.relu_bits if settings.comparison == "carry_tree" else 64
    headroom = 2.0 ** (ring - 1 - settings.precision_bits) / max(largest[0], 2.0 ** -settings.precision_bits)
    secure_w = {(name, p): res[p]["weights"][name] for p in (0, 1) for name in NETWORKS}
    plain_w = {(name, p): [x.numpy() for x in getattr(twin, name).select(p)] for p in (0, 1) for name in NETWORKS}
    c0, c1 = pd.DataFrame(res[0]["comm"]).fillna(0), pd.DataFrame(res[1]["comm"]).fillna(0)
    comm = pd.DataFrame({"rounds": c0["rounds_act_env"] + c0["rounds_update"],
                         "rounds_update": c0["rounds_update"],
                         "bytes": (c0["bytes_act_env"] + c0["bytes_update"] + c1["bytes_act_env"]
                                   + c1["bytes_update"]) / 2,
                         "bytes_update": (c0["bytes_update"] + c1["bytes_update"]) / 2,
                         "dealer_rounds": c0["dealer_rounds"] + c1["dealer_rounds"],
                         "dealer_bytes": c0["dealer_bytes"] + c1["dealer_bytes"],
                         "dealer_requests": c0["dealer_requests"] + c1["dealer_requests"],
                         **{k: c0[k] for k in ("shared_data", "shared_weights", "comparisons", "range_checked",
                                               "comparison_s") if k in c0}})
    prof = c0[[k for k in c0 if k.startswith("profile_")]].rename(columns=lambda k: k[len("profile_"):])
    tm = dict(res[0]["timing"])
    tm["comparisons"] = list(c0["comparison_s"]) if "comparison_s" in c0 else [0.0]   # within acting/update
    return SecurePhase(seed=seed, iterations=int(iterations), secure=_combine(res, learner.game), plain=plain,
                       secure_weights=secure_w, plain_weights=plain_w, secure_s=np.array(tm["iteration"]),
                       dealer_s=np.array(tm["dealer"]), plain_s=plain_s,
                       phases_s={k: float(np.mean(v[1:] if len(v) > 1 else v)) for k, v in tm.items()
                                 if k != "iteration"},
                       comm=comm, retries=dict(res[0]["retries"]), wall_s=res.wall_s,
                       shares=[r["shares"] for r in res], views=[r["view"] for r in res], profile=prof,
                       dealer_stats=_as_dict(getattr(res, "dealer_stats", None)), relu_headroom=headroom)


def _as_dict(stats) -> dict | None:
    if stats is None:
        return None
    return {"rounds": int(stats.rounds), "bytes": int(stats.bytes), "time_s": float(stats.time_s)}
