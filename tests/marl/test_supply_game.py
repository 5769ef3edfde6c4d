"""The two-player supply-chain game: PettingZoo API, the step equations on hand-computed cases, wastage
accounting, the vectorized path against the environment, reproducibility and bad parameters."""
import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.marl.supply_game import (AGENTS, OBS_NAMES, TIME_COL, GameConfig, SupplyChainEnv, SupplyChainVec,
                                       game_step, initial_obs, normalized_revenue, stackelberg_benchmark)


def obs_pair(s0, s1):
    """Observations whose stocks are s0 and s1 (the other entries do not drive the dynamics)."""
    return np.array([[s0, 1.0, 1.0, 1.0, 1.0], [s1, 1.0, 1.0, 1.0, 1.0]])


def test_parallel_api_test_passes_without_warnings():
    env = SupplyChainEnv()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel_api_test(env, num_cycles=200)


def test_observations_and_actions_lie_in_their_spaces_and_episode_lasts_horizon():
    env = SupplyChainEnv(GameConfig(horizon=7))
    obs, _ = env.reset(seed=1)
    steps = 0
    while env.agents:
        for a in AGENTS:
            assert env.observation_space(a).contains(obs[a]), (a, obs[a])
        obs, rew, term, trunc, info = env.step({a: env.action_space(a).sample() for a in env.agents})
        steps += 1
    assert steps == 7 and all(trunc.values()) and not any(term.values())
    assert env.observation_space("player_1").shape == (5,) and env.action_space("player_1").high[0] == 18


def test_step_equations_on_a_hand_computed_case():
    # s0=3, s1=2; p0=4, q0=5; p1=12, q1=6; eps=0.5, raw price 0.5, demand 20 - p1 + eps.
    # shipped = min(6, 3+5) = 6; demand = 8.5; sold = min(8.5, 2+6) = 8; stocks 2 and 0.
    # r0 = 4*6 - 0.5*5 = 21.5; r1 = 12*8 - 4*6 = 72.
    cfg = GameConfig()
    nxt, rew, info = game_step(cfg, obs_pair(3, 2), np.array([[4, 5], [12, 6]]), np.array(0.5))
    assert rew.tolist() == [21.5, 72.0]
    assert (info["shipped"], info["demand"], info["sold"], info["wastage"]) == (6, 8.5, 8, 0)
    np.testing.assert_allclose(nxt, [[2, 4, 0, 6, 6], [0, 12, 0, 8.5, 4]])   # column 2: steps left, 1 -> 0
    # the same step as the episode's last: the leftover 2 units are wastage
    _, _, info = game_step(cfg, obs_pair(3, 2), np.array([[4, 5], [12, 6]]), np.array(0.5), last=True)
    assert info["wastage"] == 2


def test_stock_out_quantity_dependent_raw_price_spoilage_and_zero_demand():
    # player 0 cannot ship more than s0 + q0; raw price 1 + 0.1 q0; 50% of leftovers spoil.
    cfg = GameConfig(raw_price=1.0, raw_price_slope=0.1, spoilage=0.5)
    nxt, rew, info = game_step(cfg, obs_pair(1, 10), np.array([[5, 2], [17, 10]]), np.array(-10.0))
    # shipped = min(10, 3) = 3; demand = max(0, 20 - 17 - 10) = 0; sold 0; unit raw 1.2
    assert info["shipped"] == 3 and info["demand"] == 0 and info["sold"] == 0
    np.testing.assert_allclose(rew, [5 * 3 - 1.2 * 2, 0 - 5 * 3])
    # leftovers: player 0 has 0, player 1 has 13 -> 6.5 spoil, 6.5 carry over
    assert info["wastage"] == pytest.approx(6.5) and nxt[1, 0] == pytest.approx(6.5) and nxt[0, 0] == 0


def test_actions_outside_the_box_are_clipped():
    cfg = GameConfig()
    _, rew, info = game_step(cfg, obs_pair(0, 0), np.array([[99, 30], [-5, 25]]), np.array(0.0))
    np.testing.assert_array_equal(info["actions"], [[10, 20], [0, 20]])
    assert info["shipped"] == 20 and info["sold"] == 20 and rew[1] == 0 - 10 * 20


@pytest.mark.parametrize("spoilage", [0.0, 0.2])
def test_units_are_conserved_wastage_accounts_for_every_unsold_unit(spoilage):
    """initial stock + raw material bought = units sold to consumers + wastage, episode by episode."""
    cfg = GameConfig(spoilage=spoilage, horizon=25)
    rng = np.random.default_rng(5)
    vec = SupplyChainVec(cfg)
    obs = vec.reset(rng.random((64, 6)))
    inflow = obs[:, 0, 0] + obs[:, 1, 0]
    sold = waste = 0.0
    done = False
    while not done:
        act = rng.random((64, 2, 2)) * cfg.action_high()
        obs, _, done, info = vec.step(act, rng.standard_normal(64))
        inflow = inflow + info["actions"][:, 0, 1]
        sold, waste = sold + info["sold"], waste + info["wastage"]
    np.testing.assert_allclose(inflow, sold + waste, rtol=1e-12)
    assert waste.max() > 0 and np.all(waste >= 0)


def test_vectorized_path_equals_the_pettingzoo_environment():
    cfg = GameConfig(horizon=12)
    env = SupplyChainEnv(cfg)
    rng_actions = np.random.default_rng(9)
    n = 5
    acts = rng_actions.random((n, cfg.horizon, 2, 2)) * cfg.action_high()
    env_rewards, env_waste = np.zeros((n, cfg.horizon, 2)), np.zeros((n, cfg.horizon))
    draws_u, draws_eps = [], []
    for e in range(n):
        obs, _ = env.reset(seed=100 + e)
        mirror = np.random.default_rng(100 + e)        # the env draws u, then one shock per step
        draws_u.append(mirror.random(6))
        draws_eps.append(mirror.standard_normal(cfg.horizon))
        for t in range(cfg.horizon):
            obs, rew, _, _, info = env.step({a: acts[e, t, i] for i, a in enumerate(AGENTS)})
            env_rewards[e, t] = [rew[a] for a in AGENTS]
            env_waste[e, t] = info["player_0"]["wastage"]
    vec = SupplyChainVec(cfg)
    vec.reset(np.array(draws_u))
    eps = np.array(draws_eps)
    for t in range(cfg.horizon):
        _, rew, done, info = vec.step(acts[:, t], eps[:, t])
        np.testing.assert_allclose(rew, env_rewards[:, t], rtol=1e-6)
        np.testing.assert_allclose(info["wastage"], env_waste[:, t], rtol=1e-6, atol=1e-5)
    assert done


def test_reset_with_a_seed_reproduces_the_episode():
    def episode(seed):
        env = SupplyChainEnv()
        obs, _ = env.reset(seed=seed)
        out = [obs["player_1"].copy()]
        while env.agents:
            obs, rew, *_ = env.step({"player_0": np.array([5.0, 6.0]), "player_1": np.array([9.0, 6.0])})
            out += [obs["player_1"].copy(), np.array([rew["player_0"], rew["player_1"]])]
        return np.concatenate(out)

    np.testing.assert_array_equal(episode(4), episode(4))
    assert not np.array_equal(episode(4), episode(5))


def test_initial_state_maps_uniform_draws_to_the_documented_ranges():
    cfg = GameConfig()
    obs = initial_obs(cfg, np.array([[0.5, 0.25, 1.0, 0.0, 0.5, 0.1]]))[0]
    np.testing.assert_allclose(obs, [[10, 10, 40, 2, 2], [5, 9, 40, 11, 10]])   # 40 steps left


def test_stackelberg_benchmark_hand_computed():
    # defaults: the supplier's optimum p0 = (20 + 0.5) / 2 = 10.25 is capped at its limit 10;
    # the retailer answers p1 = (20 + 10) / 2 = 15 and orders 5.
    b = stackelberg_benchmark(GameConfig())
    assert (b["p0"], b["p1"], b["quantity"]) == pytest.approx((10, 15, 5))
    assert (b["reward_0"], b["reward_1"]) == pytest.approx((47.5, 25.0))
    # uncapped: p0 = 10.25, p1 = 15.125, q = 4.875; the integrated chain prices at 10.25
    b = stackelberg_benchmark(GameConfig(price_limits=(100, 100)))
    assert (b["p0"], b["p1"], b["quantity"]) == pytest.approx((10.25, 15.125, 4.875), abs=1e-3)
    assert b["integrated_price"] == pytest.approx(10.25) and b["integrated_reward"] == pytest.approx(95.0625)


def test_normalized_revenue_subtracts_the_raw_price_per_wasted_unit():
    assert normalized_revenue(GameConfig(raw_price=0.5), 100.0, 12.0) == pytest.approx(94.0)


@pytest.mark.parametrize("kwargs, name", [
    ({"price_limits": (-1.0, 18.0)}, "price_limits[0]"),
    ({"price_limits": (10.0,)}, "price_limits"),
    ({"quantity_limit": 0.0}, "quantity_limit"),
    ({"raw_price": -0.5}, "raw_price"),
    ({"demand_noise": -1.0}, "demand_noise"),
    ({"spoilage": 1.5}, "spoilage"),
    ({"horizon": 0}, "horizon"),
    ({"horizon": 2.5}, "horizon"),
    ({"init_stock": -3.0}, "init_stock"),
    ({"lead_time": 2}, "lead_time"),
    ({"reward_coeff": 0.0}, "reward_coeff"),
])
def test_bad_game_parameters_raise_before_any_work(kwargs, name):
    with pytest.raises(ParameterError, match=r"^" + name.replace("[", r"\[").replace("]", r"\]")):
        GameConfig(**kwargs)


def test_misuse_of_the_environment_is_reported():
    env = SupplyChainEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"player_0": [1, 1], "player_1": [1, 1]})
    env.reset(seed=0)
    with pytest.raises(ParameterError, match="actions"):
        env.step({"player_0": [1, 1]})
    with pytest.raises(ParameterError, match="agent"):
        env.action_space("player_2")
    with pytest.raises(ParameterError, match="u ="):
        initial_obs(GameConfig(), np.ones(5))


# ---- time left, lead time, reward coefficient ------------------------------------------------------------


def test_observations_carry_the_steps_left_down_to_zero_at_the_episode_end():
    cfg = GameConfig(horizon=5)
    vec = SupplyChainVec(cfg)
    obs = vec.reset(np.full((3, 6), 0.5))
    seen = [obs[..., TIME_COL].copy()]
    done = False
    while not done:
        obs, _, done, _ = vec.step(np.ones((3, 2, 2)), np.zeros(3))
        seen.append(obs[..., TIME_COL].copy())
    assert [float(x[0, 0]) for x in seen] == [5, 4, 3, 2, 1, 0]
    assert all(np.all(x == x[0, 0]) for x in seen)          # both players, every episode: common knowledge
    assert OBS_NAMES[0][TIME_COL] == OBS_NAMES[1][TIME_COL] == "steps_left"


def test_lead_time_one_sells_only_stock_on_hand_at_the_start_of_the_step():
    # s0=3, s1=2; p0=4, q0=5; p1=12, q1=6; eps=0.5. Lead time 1: shipped = min(6, 3) = 3 (the 5 units bought
    # arrive for the next step); sold = min(8.5, 2) = 2 (the 3 shipped arrive next step); stocks 5 and 3.
    # r0 = 10 * (4*3 - 0.5*5) = 95; r1 = 10 * (12*2 - 4*3) = 120.
    cfg = GameConfig(lead_time=1, reward_coeff=10.0)
    nxt, rew, info = game_step(cfg, obs_pair(3, 2), np.array([[4, 5], [12, 6]]), np.array(0.5), last=True)
    assert rew.tolist() == [95.0, 120.0]
    assert (info["shipped"], info["sold"], info["wastage"]) == (3, 2, 8)     # last step: 5 + 3 left wasted
    np.testing.assert_allclose(nxt[:, 0], [5, 3])


def test_wastage_models_differ_only_in_when_stock_perishes():
    cfg_end, cfg_spoil = GameConfig(), GameConfig(spoilage=0.1)
    obs = obs_pair(3, 2)
    obs[:, TIME_COL] = 10                          # not the last step
    _, _, end = game_step(cfg_end, obs, np.array([[4, 5], [12, 6]]), np.array(0.5))
    _, _, spoil = game_step(cfg_spoil, obs, np.array([[4, 5], [12, 6]]), np.array(0.5))
    assert end["wastage"] == 0 and spoil["wastage"] == pytest.approx(0.1 * 2)   # 2 units left, 10% perish
