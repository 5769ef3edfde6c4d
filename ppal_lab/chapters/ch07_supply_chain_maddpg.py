"""Chapter 7, two-player supply chain: MADDPG with and without data sharing (seed 002).

**Claims and figures.** Seed 002's Appendix I (Table 5): EDE wastes 35.71% less than NDS and earns
765.91% more normalized cumulative revenue; its abstract: secure 2PC (equivalent to EDE, checked in
chapter 8) has 68.19% less wastage and 42.27% more revenue per player. Figures ``07_random_episode``,
``07_learning_curves`` and ``07_critic_loss``; the headline table of means with 95% intervals; the
randomness-streams table that shows NDS and EDE meet identical external draws.

**Data.** None: the supply-chain game (:mod:`ppal_lab.marl.supply_game`) is simulated from the seed.

**How long.** At the defaults (5 seeds x 2 modes, 1,600 pre-training and 100 measured episodes,
128 hidden units, 2 worker processes) about 3.5 minutes on 2 cores; the reduced test size
(``tests/compendium/test_determinism.py``) about 15 seconds.

Here live the chapter's driver (:func:`run_experiment`, training every (seed, mode) pair in this process
or in worker processes), its summaries (:func:`summarize`, :func:`paired_change`,
:func:`relative_change`, :func:`moving_average_ci`, :func:`critic_loss_curve`) and the record filling;
the claims are declared in the chapter's spec and decided by :mod:`ppal_lab.compendium.verdicts`; the game
and the learner are in :mod:`ppal_lab.marl`.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Iterable

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int
from ppal_lab.compendium.results import ResultRecord, mean_ci
from ppal_lab.compendium.specs import SPECS
from ppal_lab.marl.maddpg import (EPISODE_COLUMNS, MADDPG, PHASES, STREAMS, MADDPGConfig, progress_bar,
                                  random_policy)
from ppal_lab.marl.supply_game import GameConfig, SupplyChainEnv, stackelberg_benchmark

__all__ = ["CHANGE_METRICS", "add_claims", "config_dict", "configs", "critic_loss_curve",
           "fill_record", "glue_values", "headline_means", "headline_table", "moving_average_ci",
           "paired_change", "protocol_glue", "random_episode", "randomness_streams", "relative_change",
           "relative_changes", "run_experiment", "summarize", "yardstick"]


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
    bar = progress_bar(len(tasks), "training runs" if n_jobs > 1 else "seeds") if progress else None
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
    # Workers finish in any order: key order (seed, modes) keeps every table the same for any n_jobs.
    for (seed, group), (df, w, sec) in sorted(results, key=lambda r: (r[0][0], tuple(r[0][1]))):
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


def moving_average_ci(table: pd.DataFrame, metric: str, window: int = 10, phase: str = "real") -> pd.DataFrame:
    """Per mode and episode: the moving average (trailing ``window`` episodes) of ``metric`` within each
    seed, then its mean over seeds and a 95% Student-t interval (columns ``mode, episode, mean, lo, hi``)."""
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


# --------------------------------------------------------------------------------------------------
# The notebook's steps
# --------------------------------------------------------------------------------------------------
#: The record's metric of each relative change of :func:`relative_changes` (the spec's claims read them).
CHANGE_METRICS = {"wastage": "wastage_reduction_ede_vs_nds", "ncr": "ncr_improvement_ede_vs_nds",
                  "reward_per_player": "reward_per_player_improvement_ede_vs_nds"}
_NCR_NOTE = "The seed's percentage is a change over a negative NDS revenue (-10.68), which inflates it."
_SECURE_NOTE = "EDE stands in for secure 2PC, which the seed reports equivalent to EDE (checked in the next chapter)."
_FIRST_RULE_NOTE = ("The first rule (the seed's figure inside our 95% CI, zero excluded on the claimed side) was "
                    "replaced by the declared region around the seed's figure.")
_UNITS = {"reward_0": "profit per episode", "reward_1": "profit per episode", "total_reward": "profit per episode",
          "wastage": "units per episode", "ncr": "profit per episode"}
_HEADLINE_MODES = ("nds", "ede", "random")


def configs(P) -> tuple[GameConfig, MADDPGConfig, list[int]]:
    """The game, the learner's hyper-parameters and the seeds from the notebook's parameters ``P``."""
    game = GameConfig(spoilage=P.spoilage)
    cfg = MADDPGConfig(hidden=P.hidden, batch_size=P.batch_size, lr_actor=P.lr_actor, lr_critic=P.lr_critic,
                       gamma=P.gamma, noise=P.noise, pretrain_envs=P.pretrain_envs)
    return game, cfg, list(range(P.seed, P.seed + P.n_seeds))


def yardstick(game: GameConfig) -> tuple[pd.DataFrame, dict]:
    """The Stackelberg and integrated-firm benchmarks as a table, and the numbers the prose quotes."""
    bench, T = stackelberg_benchmark(game), game.horizon
    values = {"stack_p0": bench["p0"], "stack_p1": bench["p1"], "stack_q": bench["quantity"],
              "stack_total": (bench["reward_0"] + bench["reward_1"]) * T,
              "integrated_total": bench["integrated_reward"] * T}
    table = pd.DataFrame({"supplier leads (Stackelberg)": [bench["p0"], bench["p1"], bench["quantity"],
                                                           bench["reward_0"] * T, bench["reward_1"] * T],
                          "one integrated firm": [np.nan, bench["integrated_price"], bench["integrated_quantity"],
                                                  bench["integrated_reward"] * T, np.nan]},
                         index=["p0", "p1", "units a step", "profit 0 per episode", "profit 1 per episode"])
    return table.round(2), values


def random_episode(game: GameConfig, seed: int) -> pd.DataFrame:
    """One episode of the PettingZoo environment under uniformly random actions: stocks, rewards and
    wastage per step."""
    env = SupplyChainEnv(game)
    obs, _ = env.reset(seed=seed)
    act_rng = np.random.default_rng(seed)
    trace = []
    while env.agents:
        actions = {a: act_rng.random(2) * env.action_space(a).high for a in env.agents}
        obs, rew, _, _, info = env.step(actions)
        trace.append({"stock 0": obs["player_0"][0], "stock 1": obs["player_1"][0],
                      "reward 0": rew["player_0"], "reward 1": rew["player_1"],
                      "wastage": info["player_0"]["wastage"]})
    return pd.DataFrame(trace).rename_axis("step")


def randomness_streams(seed: int, game: GameConfig) -> pd.DataFrame:
    """Per stream of :class:`~ppal_lab.marl.randomness.ExternalRandomness`: how many draws a short NDS and
    a short EDE run make, and whether every draw is identical in the two modes."""
    logs = {}
    for mode in ("nds", "ede"):
        probe = MADDPG([seed], [mode], game, MADDPGConfig(hidden=8, batch_size=16, buffer_size=1000),
                       record_randomness=True)
        probe.train(episodes=2, pretrain_episodes=8)
        logs[mode] = probe.rand[seed].log
    return pd.DataFrame({stream: {"draws": len(logs["nds"][stream]),
                                  "identical in NDS and EDE": all(np.array_equal(a, b) for a, b in
                                                                  zip(logs["nds"][stream], logs["ede"][stream]))}
                         for stream in STREAMS}).T


def protocol_glue(P, game: GameConfig) -> dict:
    """The training protocol's numbers the prose quotes (episodes and updates of each phase)."""
    return {"pretrain_episodes": P.pretrain_episodes, "pretrain_envs": P.pretrain_envs,
            "pretrain_updates": -(-P.pretrain_episodes // P.pretrain_envs) * game.horizon,
            "episodes": P.episodes, "real_updates": P.episodes * game.horizon}


def _fmt(values) -> str:
    mean, ci, n = mean_ci(values)
    return f"{mean:8.1f} [{ci[0]:8.1f}, {ci[1]:8.1f}]" if ci else f"{mean:8.1f}"


def headline_means(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% interval over seeds of each metric, per mode (NDS, EDE, random policy)."""
    cols = {"reward_0": "reward player 0", "reward_1": "reward player 1", "total_reward": "total reward",
            "wastage": "wastage (units)", "ncr": "normalized cumulative revenue"}
    return pd.DataFrame({label: {m.upper(): _fmt(summary.loc[summary["mode"] == m, c]) for m in _HEADLINE_MODES}
                         for c, label in cols.items()}).T


def relative_changes(summary: pd.DataFrame) -> dict[str, dict]:
    """EDE against NDS: wastage reduction, NCR and per-player reward improvement (:func:`relative_change`)."""
    return {"wastage": relative_change(summary, "wastage", reduction=True),
            "ncr": relative_change(summary, "ncr"),
            "reward_per_player": relative_change(summary, "reward_per_player")}


def add_claims(record: ResultRecord, changes: dict) -> tuple[dict, pd.DataFrame]:
    """Decide the claims declared in the chapter's spec on the record's relative changes (call
    :func:`fill_record` first); returns the verdicts and the table the notebook shows."""
    claims = SPECS[record.notebook].claims
    change_of = {c.id: changes[next(k for k, m in CHANGE_METRICS.items() if m == c.metric)] for c in claims}
    interval = {cid: f"{ch['value']:.1%} (95% CI {ch['ci'][0]:.1%} to {ch['ci'][1]:.1%})"
                for cid, ch in change_of.items()}
    measured = {cid: f"{interval[cid]}, from the means of {ch['n']} paired seeds" for cid, ch in change_of.items()}
    notes = {c.id: " ".join(([_NCR_NOTE] if c.metric == CHANGE_METRICS["ncr"] else [])
                            + ([_SECURE_NOTE] if c.id.startswith("secure_") else []) + [_FIRST_RULE_NOTE])
             for c in claims}
    verdicts = record.decide_claims(claims, measured, notes)
    seeds_needed = {e["id"]: e.get("seeds_needed") for e in record.claims}
    rows = {c.id: {"seed": c.seed_value, "measured (from the means)": interval[c.id],
                   "each seed": ", ".join(f"{v:.0%}" for v in change_of[c.id]["per_seed"]),
                   "claim region": f"{c.target - c.margin:.1%} to {c.target + c.margin:.1%}",
                   "seeds needed": seeds_needed[c.id], "verdict": verdicts[c.id]} for c in claims}
    return verdicts, pd.DataFrame(rows).T


def fill_record(record: ResultRecord, summary: pd.DataFrame, changes: dict, seconds: dict) -> None:
    """The chapter's metrics: per-mode averages, the relative changes, the supplier's critic loss and the
    training CPU time."""
    for mode in _HEADLINE_MODES:
        sel = summary[summary["mode"] == mode]
        for metric, unit in _UNITS.items():
            record.add_metric(f"{metric}_{mode}", sel[metric].tolist(), unit,
                              f"{metric} averaged over the measured episodes, {mode.upper()}")
    how = "from the means over seeds; CI by the delta method over paired seeds (values: linearised contributions)"
    what = {"wastage": "(NDS - EDE) / NDS wastage", "ncr": "(EDE - NDS) / |NDS| normalized cumulative revenue",
            "reward_per_player": "(EDE - NDS) / |NDS| mean reward per player"}
    for key, name in CHANGE_METRICS.items():
        record.add_metric(name, changes[key]["pseudo"], "fraction", f"{what[key]}, {how}")
    for mode in ("nds", "ede"):
        record.add_metric(f"supplier_critic_loss_{mode}",
                          summary.loc[summary["mode"] == mode, "critic_loss_0"].tolist(), "squared scaled TD error",
                          f"player 0's critic loss over the measured episodes, {mode.upper()}")
    record.add_metric("train_cpu_seconds", sum(seconds.values()), "s", "CPU time of all training tasks (varies)")


def glue_values(record: ResultRecord, changes: dict, verdicts: dict, n_seeds: int) -> tuple[dict, dict]:
    """The numbers the prose quotes (the seeds each claim needs included), and the engine's verdicts as
    Markdown text (bold)."""
    numbers = {f"{key}_{mode}": record.metrics[f"{key}_{mode}"]["value"]
               for key in ("wastage", "ncr", "total_reward", "reward_0", "reward_1") for mode in _HEADLINE_MODES}
    for key, ch in changes.items():
        numbers.update({f"rel_{key}": ch["value"], f"rel_{key}_lo": ch["ci"][0], f"rel_{key}_hi": ch["ci"][1]})
    numbers.update({f"closs_{mode}": record.metrics[f"supplier_critic_loss_{mode}"]["value"]
                    for mode in ("nds", "ede")})
    numbers.update({f"seeds_needed_{cid}": record.metrics[f"seeds_needed_{cid}"]["value"] for cid in verdicts
                    if f"seeds_needed_{cid}" in record.metrics})
    markdown = {f"verdict_{cid}": f"**{v}**" for cid, v in verdicts.items()}
    numbers["n_seeds"] = n_seeds
    return numbers, markdown


def headline_table(record: ResultRecord) -> str:
    """Every metric but the CPU time: value, 95% interval and n, as fixed-width text."""
    headline = pd.DataFrame({k: {"value": v["value"], "ci95": np.round(v["ci95"], 3).tolist() if v["ci95"] else None,
                                 "n": v["n"]} for k, v in record.metrics.items() if k != "train_cpu_seconds"}).T
    return headline.to_string(formatters={"value": "{:.3f}".format})


def reward_predictability(game: GameConfig, seed: int, n_envs: int = 500) -> pd.Series:
    """Exercise ``ex-maddpg-information``: cross-validated R² of player 0's reward from its own data (what
    an NDS critic reads) and from both players' data (EDE), over ``n_envs`` random-play episodes."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import cross_val_score

    from ppal_lab.marl.supply_game import SupplyChainVec

    rng = np.random.default_rng(seed)
    vec, X_own, X_all, y = SupplyChainVec(game), [], [], []
    obs = vec.reset(rng.random((n_envs, 6)))
    for t in range(game.horizon):
        act = rng.random((n_envs, 2, 2)) * game.action_high()
        X_own.append(np.hstack([obs[:, 0], act[:, 0]]))
        X_all.append(np.hstack([obs[:, 0], act[:, 0], obs[:, 1], act[:, 1]]))
        obs, rew, _, _ = vec.step(act, rng.standard_normal(n_envs))
        y.append(rew[:, 0])
    y = np.concatenate(y)
    return pd.Series({name: cross_val_score(HistGradientBoostingRegressor(random_state=0), np.vstack(X), y,
                                            cv=3).mean()
                      for name, X in {"own data (NDS critic)": X_own, "both players' data (EDE critic)": X_all}.items()},
                     name="R² of player 0's reward")
