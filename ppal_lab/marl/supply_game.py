r"""The two-player supply-chain game of seed 002 as a PettingZoo ``ParallelEnv``, with a vectorized core.

Seed 002 (Mukherjee et al. 2023, arXiv:2312.05686) plays MADDPG on the two-player supply chain of Li,
Ratliff and Kumar (2022, arXiv:2205.02760). Its Appendix D names the ingredients (a consumer demand that
falls with price, a raw-material price that depends on the quantity ordered, sales bounded by stock) but
the formulas did not survive in the text we have, so the game below is our own, documented,
reconstruction. Player 0 (the
*supplier*) buys raw material and sells finished units to player 1 (the *retailer*), who sells them to
consumers. Both move simultaneously once a step; an episode has ``horizon`` steps.

**Actions** (continuous, clipped to their box): player 0 chooses ``(p0, q0)`` — its selling price to
player 1, in ``[0, price_limits[0]]``, and the raw material it buys, in ``[0, quantity_limit]``; player 1
chooses ``(p1, q1)`` — its consumer price, in ``[0, price_limits[1]]``, and the units it orders from
player 0, in ``[0, quantity_limit]``.

**One step** (stocks ``s0, s1`` carried over from the previous step; ``eps ~ N(0, 1)``)::

    c(q0)  = raw_price + raw_price_slope * q0            raw-material price per unit
    x0     = min(q1, s0 + q0)                            units shipped to player 1 (raw converts 1:1)
    D      = max(0, demand_intercept - demand_slope * p1 + demand_noise * eps)   consumer demand
    x1     = min(D, s1 + x0)                             units sold to consumers
    (lead_time = 1: x0 = min(q1, s0) and x1 = min(D, s1): units bought or shipped this step can be
    sold from the next step on, as in lisarah/supply_chain, the code of Li, Ratliff & Kumar)
    s0'    = (1 - spoilage) * (s0 + q0 - x0)             stocks carried over; the spoiled part and,
    s1'    = (1 - spoilage) * (s1 + x0 - x1)             after the last step, all stock is wastage
    r0     = k * (p0 * x0 - c(q0) * q0)                  reward of player 0 (Appendix D, eq. 1)
    r1     = k * (p1 * x1 - p0 * x0)                     reward of player 1 (Appendix D, eq. 2)

with ``k = reward_coeff`` (1: rewards are profits; lisarah/supply_chain uses 10).

**Wastage** of a step is ``spoilage * (stock before spoiling)`` summed over both players, plus, at the
last step of an episode, both players' remaining stock (unsold goods are discarded when the episode
ends). The seed's *normalized cumulative revenue* is total reward minus the wastage cost,
``raw_price * wastage`` — its Appendix I table is consistent with exactly that unit cost.

**Observations** (5 numbers per player, raw units; the learner rescales them with ``obs_scale()``).
Each player sees its own stock, its own last price, the steps left in the episode (column
:data:`TIME_COL`, common knowledge: it lets a policy plan for the end, where left-over stock is
wasted) and two signals from its own market — what the other player did *to it* (an order, a price) is
transaction data both sides know; the rest is private::

    player 0: [s0, p0, left, q1, x0]   stock, last price, steps left, last order received, last shipped
    player 1: [s1, p1, left, D,  p0]   stock, last price, steps left, last consumer demand, last price paid

The steps left replace each player's own last quantity (a deterministic actor's own last action is a
function of its previous observation), so the input sizes stay Appendix G's.

Seed 002's Appendix G gives actor input 10 and critic input 14: with 5 numbers a player, that is both
players' observations (actor) plus both players' 2-number actions (critic) — the *explicit data
exchange* configuration of :mod:`ppal_lab.marl.maddpg`.

**Initial state**: six uniform draws ``u`` give stocks ``s_i = u * init_stock`` and a random "previous"
action of each player; the previous shipment is the previous order (``x0 = q1``) and the previous demand
is its noise-free value; the steps left start at ``horizon``. Defaults are seed 002's Appendix I setting:
price limits 10 and 18, quantity limit 20, raw material 0.5 a unit, standard-normal demand noise, 40-step
episodes; the demand line ``20 - p1``, lead time 0, rewards = profits and zero spoilage are our first
choices. Chapter 7 calibrates these unknowns on the seed's NDS row
(:data:`ppal_lab.chapters.ch07_supply_chain_maddpg.GAME_FAMILY`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from gymnasium.spaces import Box
from pettingzoo import ParallelEnv

from ppal_lab.compendium.errors import ParameterError, check_range

AGENTS = ("player_0", "player_1")
OBS_NAMES = (("stock", "price", "steps_left", "order_received", "shipped"),
             ("stock", "price", "steps_left", "consumer_demand", "price_paid"))
OBS_DIM, ACT_DIM, N_INIT = 5, 2, 6
TIME_COL = 2    # the column of every observation that holds the steps left in the episode


@dataclass(frozen=True)
class GameConfig:
    """Parameters of the game (defaults: seed 002, Appendix I, plus the choices stated above)."""

    price_limits: tuple[float, float] = (10.0, 18.0)
    quantity_limit: float = 20.0
    raw_price: float = 0.5
    raw_price_slope: float = 0.0
    demand_intercept: float = 20.0
    demand_slope: float = 1.0
    demand_noise: float = 1.0
    spoilage: float = 0.0
    horizon: int = 40
    init_stock: float | None = None  # None: the quantity limit
    lead_time: int = 0               # 1: units bought or shipped in a step can be sold from the next step on
    reward_coeff: float = 1.0        # rewards are this multiple of the profits (lisarah/supply_chain: 10)

    def __post_init__(self):
        limits = self.price_limits
        if not (isinstance(limits, (tuple, list)) and len(limits) == 2):
            raise ParameterError("price_limits", limits, "a pair (player 0, player 1) of numbers > 0")
        object.__setattr__(self, "price_limits", tuple(float(p) for p in limits))
        for i, p in enumerate(self.price_limits):
            check_range(f"price_limits[{i}]", p, 0.0, low_open=True)
        check_range("quantity_limit", self.quantity_limit, 0.0, low_open=True)
        check_range("raw_price", self.raw_price, 0.0)
        check_range("raw_price_slope", self.raw_price_slope, 0.0)
        check_range("demand_intercept", self.demand_intercept, 0.0, low_open=True)
        check_range("demand_slope", self.demand_slope, 0.0)
        check_range("demand_noise", self.demand_noise, 0.0)
        check_range("spoilage", self.spoilage, 0.0, 1.0)
        if not isinstance(self.horizon, (int, np.integer)) or isinstance(self.horizon, bool):
            raise ParameterError("horizon", self.horizon, "an int >= 1")
        check_range("horizon", self.horizon, 1)
        if self.init_stock is not None:
            check_range("init_stock", self.init_stock, 0.0)
        if self.lead_time not in (0, 1) or isinstance(self.lead_time, bool):
            raise ParameterError("lead_time", self.lead_time, "0 or 1 (steps before bought units can be sold)")
        check_range("reward_coeff", self.reward_coeff, 0.0, low_open=True)

    @property
    def initial_stock_max(self) -> float:
        return float(self.quantity_limit if self.init_stock is None else self.init_stock)

    def action_high(self) -> np.ndarray:
        """Upper bounds of the actions, shape ``(2 players, 2)``: ``[[p0max, qmax], [p1max, qmax]]``."""
        q = self.quantity_limit
        return np.array([[self.price_limits[0], q], [self.price_limits[1], q]], dtype=np.float64)

    def obs_scale(self) -> np.ndarray:
        """Typical size of each observation entry, shape ``(2, 5)``: the learner divides by it."""
        p0, p1 = self.price_limits
        q = self.quantity_limit
        T = float(self.horizon)
        return np.array([[q, p0, T, q, q], [q, p1, T, q, p0]], dtype=np.float64)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def initial_obs(cfg: GameConfig, u: np.ndarray) -> np.ndarray:
    """Initial observations, shape ``(..., 2, 5)``, from uniform draws ``u`` of shape ``(..., 6)``."""
    u = np.asarray(u, dtype=np.float64)
    if u.shape[-1:] != (N_INIT,) or np.any((u < 0) | (u > 1)):
        raise ParameterError("u", f"array of shape {u.shape}", "uniform draws in [0, 1], last axis 6")
    high = cfg.action_high()
    s0, s1 = u[..., 0] * cfg.initial_stock_max, u[..., 1] * cfg.initial_stock_max
    p0, q0 = u[..., 2] * high[0, 0], u[..., 3] * high[0, 1]
    p1, q1 = u[..., 4] * high[1, 0], u[..., 5] * high[1, 1]
    demand = np.maximum(0.0, cfg.demand_intercept - cfg.demand_slope * p1)
    left = np.full_like(s0, float(cfg.horizon))
    obs0 = np.stack([s0, p0, left, q1, q1], axis=-1)
    obs1 = np.stack([s1, p1, left, demand, p0], axis=-1)
    return np.stack([obs0, obs1], axis=-2)


def _carry_over(cfg: GameConfig, left: np.ndarray, last: bool) -> tuple[np.ndarray, np.ndarray]:
    """Stock carried to the next step and this step's wastage, from the units ``left`` after trading:
    a ``spoilage`` share perishes, and after the episode's last step everything left is wasted."""
    waste = cfg.spoilage * left
    keep = (1.0 - cfg.spoilage) * left
    if last:
        waste = waste + keep
    return keep, waste


def supplier_step(cfg: GameConfig, obs0: np.ndarray, action0: np.ndarray, order: np.ndarray,
                  last: bool = False) -> dict[str, np.ndarray]:
    """Player 0's half of a step, computed from what player 0 knows.

    ``obs0``: ``(..., 5)`` its observation (only the stock ``obs0[..., 0]`` matters); ``action0``:
    ``(..., 2)`` its physical action ``[p0, q0]``; ``order``: ``(...)`` the units player 1 orders (``q1``,
    already clipped by player 1) -- the one thing it learns from player 1, as in any purchase order.
    Returns its ``next_obs``, ``reward``, ``wastage`` and what it tells player 1 on the invoice:
    ``shipped`` and the price ``p0``. Together with :func:`retailer_step` this *is* :func:`game_step`,
    so two parties can play the game in separate processes exchanging only the order and the invoice.
    """
    a = np.clip(np.asarray(action0, dtype=np.float64), 0.0, cfg.action_high()[0])
    p0, q0 = a[..., 0], a[..., 1]
    obs0 = np.asarray(obs0, dtype=np.float64)
    s0, left = obs0[..., 0], obs0[..., TIME_COL] - 1.0
    q1 = np.asarray(order, dtype=np.float64)
    unit_raw = cfg.raw_price + cfg.raw_price_slope * q0
    shipped = np.minimum(q1, s0 + (q0 if cfg.lead_time == 0 else 0.0))
    keep, waste = _carry_over(cfg, s0 + q0 - shipped, last)
    return {"next_obs": np.stack([keep, p0, left, q1, shipped], axis=-1),
            "reward": cfg.reward_coeff * (p0 * shipped - unit_raw * q0), "wastage": waste, "shipped": shipped,
            "price": p0,
            "raw_cost": unit_raw * q0, "action": a}


def retailer_step(cfg: GameConfig, obs1: np.ndarray, action1: np.ndarray, price: np.ndarray,
                  shipped: np.ndarray, eps: np.ndarray, last: bool = False) -> dict[str, np.ndarray]:
    """Player 1's half of a step: its ``obs1 (..., 5)``, physical action ``[p1, q1] (..., 2)``, the
    invoice from player 0 (``price`` p0 and ``shipped`` units) and the demand noise ``eps`` of its own
    market. Returns its ``next_obs``, ``reward``, ``wastage``, ``sold`` and ``demand``."""
    a = np.clip(np.asarray(action1, dtype=np.float64), 0.0, cfg.action_high()[1])
    p1, q1 = a[..., 0], a[..., 1]
    obs1 = np.asarray(obs1, dtype=np.float64)
    s1, left = obs1[..., 0], obs1[..., TIME_COL] - 1.0
    p0, shipped = np.asarray(price, dtype=np.float64), np.asarray(shipped, dtype=np.float64)
    demand = np.maximum(0.0, cfg.demand_intercept - cfg.demand_slope * p1
                        + cfg.demand_noise * np.asarray(eps, dtype=np.float64))
    sold = np.minimum(demand, s1 + (shipped if cfg.lead_time == 0 else 0.0))
    keep, waste = _carry_over(cfg, s1 + shipped - sold, last)
    return {"next_obs": np.stack([keep, p1, left, demand, p0], axis=-1),
            "reward": cfg.reward_coeff * (p1 * sold - p0 * shipped),
            "wastage": waste, "sold": sold, "demand": demand, "action": a}


def game_step(cfg: GameConfig, obs: np.ndarray, actions: np.ndarray, eps: np.ndarray,
              last: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One step of the game for any number of episodes at once.

    ``obs``: ``(..., 2, 5)`` current observations (only the stocks ``obs[..., i, 0]`` drive the dynamics);
    ``actions``: ``(..., 2, 2)`` physical actions ``[[p0, q0], [p1, q1]]`` (clipped to their box);
    ``eps``: ``(...)`` standard-normal demand noise; ``last``: the episode's final step (all remaining
    stock becomes wastage). Returns ``(next_obs, rewards (..., 2), info)`` where ``info`` holds arrays
    ``shipped``, ``sold``, ``demand``, ``raw_cost``, ``wastage`` and the clipped ``actions``.
    It runs the two players' halves (:func:`supplier_step`, :func:`retailer_step`) in order: player 1's
    order goes to player 0, player 0's invoice to player 1.
    """
    obs = np.asarray(obs, dtype=np.float64)
    actions = np.asarray(actions, dtype=np.float64)
    order = np.clip(actions[..., 1, 1], 0.0, cfg.quantity_limit)
    p0 = supplier_step(cfg, obs[..., 0, :], actions[..., 0, :], order, last)
    p1 = retailer_step(cfg, obs[..., 1, :], actions[..., 1, :], p0["price"], p0["shipped"], eps, last)
    rewards = np.stack([p0["reward"], p1["reward"]], axis=-1)
    next_obs = np.stack([p0["next_obs"], p1["next_obs"]], axis=-2)
    info = {"shipped": p0["shipped"], "sold": p1["sold"], "demand": p1["demand"], "raw_cost": p0["raw_cost"],
            "wastage": p0["wastage"] + p1["wastage"], "actions": np.stack([p0["action"], p1["action"]], -2)}
    return next_obs, rewards, info


def normalized_revenue(cfg: GameConfig, total_reward, wastage):
    """Seed 002's *normalized cumulative revenue*: total reward minus ``raw_price * wastage``."""
    return np.asarray(total_reward) - cfg.raw_price * np.asarray(wastage)


def stackelberg_benchmark(cfg: GameConfig) -> dict[str, float]:
    """The noise-free one-step price game with the supplier leading, as a yardstick.

    The retailer's best response to ``p0`` is ``p1 = (a/b + p0) / 2`` (capped at its limit); the supplier
    then maximises ``(p0 - c) * (a - b p1)``. Also returned: the integrated chain (one firm, price to
    consumers only). Assumes a constant raw price and no stock, so it ignores inventory dynamics.
    """
    a, b, c, k_r = cfg.demand_intercept, max(cfg.demand_slope, 1e-12), cfg.raw_price, cfg.reward_coeff
    p0_grid = np.linspace(0.0, cfg.price_limits[0], 100_001)
    p1 = np.minimum((a / b + p0_grid) / 2.0, cfg.price_limits[1])
    q = np.clip(a - b * p1, 0.0, cfg.quantity_limit)
    k = int(np.argmax((p0_grid - c) * q))
    p1_int = float(np.clip((a / b + c) / 2.0, 0.0, cfg.price_limits[1]))
    q_int = float(np.clip(a - b * p1_int, 0.0, cfg.quantity_limit))
    return {"p0": float(p0_grid[k]), "p1": float(p1[k]), "quantity": float(q[k]),
            "reward_0": float((p0_grid[k] - c) * q[k]) * k_r, "reward_1": float((p1[k] - p0_grid[k]) * q[k]) * k_r,
            "integrated_price": p1_int, "integrated_quantity": q_int,
            "integrated_reward": (p1_int - c) * q_int * k_r}


class SupplyChainVec:
    """Many episodes of the game stepped at once (batch shape ``shape``), with caller-supplied noise.

    ``reset(u)`` takes uniform draws ``(*shape, 6)``; ``step(actions, eps)`` takes physical actions
    ``(*shape, 2, 2)`` and standard-normal demand noise ``(*shape)``. All episodes share the step counter.
    """

    def __init__(self, cfg: GameConfig | None = None):
        self.cfg = cfg or GameConfig()
        self.obs: np.ndarray | None = None
        self.t = 0

    def reset(self, u: np.ndarray) -> np.ndarray:
        self.obs, self.t = initial_obs(self.cfg, u), 0
        return self.obs

    def step(self, actions: np.ndarray, eps: np.ndarray):
        if self.obs is None or self.t >= self.cfg.horizon:
            raise RuntimeError("call reset() before step() and after an episode's last step")
        self.t += 1
        done = self.t == self.cfg.horizon
        self.obs, rewards, info = game_step(self.cfg, self.obs, actions, eps, last=done)
        return self.obs, rewards, done, info


class SupplyChainEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` of the game: agents ``player_0`` and ``player_1``.

    Rewards are the players' profits; ``infos[agent]`` holds the step's ``wastage`` (both players, units),
    ``shipped``, ``sold`` and ``demand``. Episodes end by truncation after ``horizon`` steps.
    ``reset(seed=...)`` seeds the initial state and the demand noise.
    """

    metadata = {"name": "supply_chain_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, cfg: GameConfig | None = None, render_mode: str | None = None):
        if render_mode is not None:
            raise ParameterError("render_mode", render_mode, "None (the game has no renderer)")
        self.cfg = cfg or GameConfig()
        self.render_mode = None
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self._rng = np.random.default_rng()
        self._vec = SupplyChainVec(self.cfg)
        self._make_spaces()

    def observation_space(self, agent: str) -> Box:
        return self._obs_spaces[self._index(agent)]

    def action_space(self, agent: str) -> Box:
        return self._act_spaces[self._index(agent)]

    def _make_spaces(self) -> None:
        c = self.cfg
        q, (pm0, pm1) = c.quantity_limit, c.price_limits
        inf = np.inf
        T = c.horizon
        obs_high = [[inf, pm0, T, q, q], [inf, pm1, T, inf, pm0]]
        self._obs_spaces = [Box(low=np.zeros(OBS_DIM, np.float32), high=np.array(h, np.float32),
                                dtype=np.float32) for h in obs_high]
        self._act_spaces = [Box(low=np.zeros(ACT_DIM, np.float32), high=h.astype(np.float32),
                                dtype=np.float32) for h in c.action_high()]

    def _index(self, agent: str) -> int:
        if agent not in AGENTS:
            raise ParameterError("agent", agent, "one of " + ", ".join(AGENTS))
        return AGENTS.index(agent)

    def _obs_dict(self) -> dict[str, np.ndarray]:
        obs = self._vec.obs.astype(np.float32)
        return {a: obs[i] for i, a in enumerate(AGENTS)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(AGENTS)
        self._vec.reset(self._rng.random(N_INIT))
        return self._obs_dict(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("the episode is over: call reset()")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ParameterError("actions", sorted(actions), f"an action for every agent (missing {missing})")
        joint = np.stack([np.asarray(actions[a], dtype=np.float64).reshape(ACT_DIM) for a in AGENTS])
        _, rewards, done, info = self._vec.step(joint, self._rng.standard_normal())
        step_info = {k: float(info[k]) for k in ("wastage", "shipped", "sold", "demand")}
        obs = self._obs_dict()
        rew = {a: float(rewards[i]) for i, a in enumerate(AGENTS)}
        term = {a: False for a in AGENTS}
        trunc = {a: bool(done) for a in AGENTS}
        infos = {a: dict(step_info) for a in AGENTS}
        if done:
            self.agents = []
        return obs, rew, term, trunc, infos

    def state(self) -> np.ndarray:
        """Both players' observations, concatenated (10 numbers): what explicit data exchange reveals."""
        return self._vec.obs.reshape(-1).astype(np.float32)

    def render(self):
        return None

    def close(self):
        pass
