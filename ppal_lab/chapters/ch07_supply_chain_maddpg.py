"""Chapter 7, two-player supply chain: MADDPG with and without data sharing (seed 002).

**Claims and figures.** Seed 002's Appendix I (Table 5): EDE wastes 35.71% less than NDS and earns
765.91% more normalized cumulative revenue (NCR); its abstract: secure 2PC has 68.19% less wastage and
42.27% more revenue per player. Figures ``07_random_episode``, ``07_learning_curves`` and
``07_critic_loss``; the calibration table (our NDS beside the seed's NDS row); the headline table of
means with 95% intervals; the claims table with absolute changes beside the percentages and the seeds
each claim needs; the randomness-streams table that shows NDS and EDE meet identical external draws.

**Reconstruction, and where each choice comes from.** Appendix D's formulas are lost in our copy of the
seed; Appendix I fixes the price limits (10, 18), the quantity limit (20), the raw price (0.5), standard
normal demand noise, NCR = total reward - wastage cost (Table 5's arithmetic gives 0.5 per wasted unit
in both rows) and 40-step episodes. The rest is a declared family (:data:`GAME_FAMILY`): our first
demand line 20 - p1 with rewards = profits, or the demand line 1 - 0.2 p and rewards = 10 x profits of
``lisarah/supply_chain`` (the code of Li, Ratliff & Kumar, arXiv:2205.02760, the game the seed plays);
lead time 0 or 1 (that code sells only stock on hand: bought units become sellable the next step);
wastage = stock left at the episode's end, with or without 10% of the stock perishing each step; and
Table 5's averages per episode or per step (that code logs ``episode_reward / steps``). Calibration
(``benchmarks/bench_supply_game.py --stage calibrate``) trains NDS alone in every candidate on seeds
100000 and 100001 (disjoint from every evaluation seed) and freezes the first candidate and unit that
meets :data:`CALIBRATION_CRITERION`, declared before the run, as :data:`CALIBRATED`; it never reads
the EDE row or the claimed differences. The record keeps ``nds_baseline_*`` beside ``seed_nds_*``; the
Appendix I claims are gated on it (``nds_baseline_matches``), so a reconstruction that misses the NDS row
makes them *not measurable*. **Outcome:** no candidate met the criterion — in every one, trained NDS
players earn a positive total and NCR, where the seed's NDS loses money — so :data:`CALIBRATED` is
``None``, the chapter plays the first candidate (:data:`PLAYED`) and the percentage claims are *not
measurable with this reconstruction*; the seeds each would need are still recorded from the spread.
The abstract's 68.19% and 42.27% come from the main paper's setting, which
Appendix I says differs and which our copy lacks: declared *not measurable*, with the verdict the first
rule (judged in Appendix I's setting) would give kept beside.

**Information structure** (:mod:`ppal_lab.marl.maddpg`). Every observation carries the steps left in
the episode (common knowledge); the critics' targets stop at the episode's last step. Transaction data
are public: the order ``q1`` reaches the supplier and the price ``p0`` the retailer in the clear in
every mode (the secure protocol too), so the NDS supplier's critic reads this step's order and the NDS
retailer's critic this step's price. Private: each player's stock, its raw purchases or consumer
demand and sales, and everything else in its observation; EDE reads both players' private numbers
(the secure protocol of chapter 8 computes on them as secret shares). Pre-training does not share
simulated data in NDS (Appendix G's "simulated data were shared"): our NDS networks have no input for
the other player's numbers in the measured phase, so sharing them in pre-training only would switch
their inputs off at the start of the measured phase, a change the seed does not describe; both modes do
play the same simulated episodes (identical external randomness).

**Power.** The notebook's own seeds are a pilot: the record carries ``seeds_needed_<claim>`` from their
spread. The decision uses the benchmark's powered comparison (``--stage compare``, one process per
paired seed) when its record holds one for the frozen game, else the notebook's seeds.

**Data.** None: the supply-chain game (:mod:`ppal_lab.marl.supply_game`) is simulated from the seed.

**How long.** At the defaults (5 seeds x 2 modes, 1,600 pre-training and 100 measured episodes,
128 hidden units, 2 worker processes) about 4 minutes on 2 cores; the reduced test size
(``tests/compendium/test_determinism.py``) about 15 seconds.

Here live the chapter's driver (:func:`run_experiment`, training every (seed, mode) pair in this process
or in worker processes), its summaries (:func:`summarize`, :func:`paired_change`,
:func:`relative_change`, :func:`moving_average_ci`, :func:`critic_loss_curve`), the calibration helpers
and the record filling; the claims are declared in the chapter's spec and decided by
:mod:`ppal_lab.compendium.verdicts`; the game and the learner are in :mod:`ppal_lab.marl`.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from scipy import stats

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int
from ppal_lab.compendium.results import ResultRecord, mean_ci
from ppal_lab.compendium.specs import SPECS
from ppal_lab.compendium.verdicts import seeds_needed
from ppal_lab.marl.maddpg import (EPISODE_COLUMNS, MADDPG, PHASES, STREAMS, MADDPGConfig, progress_bar,
                                  random_policy)
from ppal_lab.marl.supply_game import GameConfig, SupplyChainEnv, stackelberg_benchmark

__all__ = ["CALIBRATED", "CALIBRATION_CRITERION", "CHANGE_METRICS", "GAME_FAMILY", "PLAYED", "SEED_NDS_ROW",
           "UNIT", "add_claims", "calibrated_game", "calibration_glue", "config_dict", "configs", "critic_loss_curve",
           "decision_summary", "fill_bench", "fill_record", "glue_values", "headline_means", "headline_table",
           "meets_nds_row", "moving_average_ci", "nds_baseline_table", "paired_change", "protocol_glue",
           "random_episode", "randomness_streams", "read_bench", "relative_change", "relative_changes",
           "plot_critic_loss", "plot_learning_curves", "plot_random_episode", "run_experiment", "summarize",
           "unit_factor", "units", "yardstick"]


# --------------------------------------------------------------------------------------------------
# The reconstruction: a declared family of games, calibrated on the seed's NDS row only
# --------------------------------------------------------------------------------------------------
#: Seed 002's Table 5 (Appendix I), NDS row: the only numbers calibration reads (never the EDE row).
SEED_NDS_ROW = {"reward_0": -7.38, "reward_1": 3.33, "total_reward": -4.05, "wastage": 13.27, "ncr": -10.68}
#: Declared before any calibration run.
CALIBRATION_CRITERION = ("signs of the total reward and the NCR match the seed's NDS row, and the wastage and the "
                         "NCR are each within a factor 2 of it (ratio in [0.5, 2])")
#: The family of unknowns, in order of preference (``GameConfig`` arguments beyond Appendix I's limits,
#: raw price and noise). ``ours``: demand 20 - p1, rewards = profits (our first reconstruction);
#: ``lisarah``: the demand line 1 - 0.2 p and rewards = 10 x profits of lisarah/supply_chain (the code of
#: Li, Ratliff & Kumar, arXiv:2205.02760, whose game the seed plays). Each with lead time 0 or 1 and
#: wastage = stock left when the episode ends (spoilage 0) or, besides it, 10% of the stock every step.
GAME_FAMILY = {
    f"{name}_lead{lead}_spoil{sp:g}": {**demand, "lead_time": lead, "spoilage": sp}
    for name, demand in (("ours", {}), ("lisarah", {"demand_intercept": 1.0, "demand_slope": 0.2,
                                                     "reward_coeff": 10.0}))
    for lead in (0, 1) for sp in (0.0, 0.1)
}
#: Reporting units of Table 5's averages: per 40-step episode, or per step (lisarah/supply_chain logs
#: ``episode_reward / steps``).
REPORT_UNITS = ("episode", "step")
#: The calibration's frozen choice, candidate and unit (``benchmarks/bench_supply_game.py --stage
#: calibrate``; its record keeps every candidate's NDS averages): ``None``, as no candidate of the family
#: met the criterion (run of 2026-12-05: every candidate's NDS earns a positive total and NCR).
CALIBRATED: tuple[str, str] | None = None
#: The game the chapter plays: the calibrated one, else the first candidate in declared order (our first
#: reconstruction, with the steps left observed, terminal transitions masked and transactions public).
PLAYED = CALIBRATED[0] if CALIBRATED else "ours_lead0_spoil0"
#: The unit the chapter reports in: the calibrated one, else per episode.
UNIT = CALIBRATED[1] if CALIBRATED else "episode"
SUM_COLUMNS = ("reward_0", "reward_1", "total_reward", "wastage", "ncr")


def meets_nds_row(values: dict) -> bool:
    """:data:`CALIBRATION_CRITERION` on NDS averages ``values`` (keys of :data:`SEED_NDS_ROW`)."""
    signs = all((values[k] > 0) == (SEED_NDS_ROW[k] > 0) for k in ("total_reward", "ncr"))
    return signs and all(0.5 <= values[k] / SEED_NDS_ROW[k] <= 2.0 for k in ("wastage", "ncr"))


def calibrated_game(spoilage: float | None = None) -> GameConfig:
    """The game the chapter plays, :data:`PLAYED` (``spoilage`` overrides the candidate's, for exercises)."""
    kw = dict(GAME_FAMILY[PLAYED])
    if spoilage is not None:
        kw["spoilage"] = spoilage
    return GameConfig(**kw)


def unit_factor(unit: str, horizon: int) -> float:
    check_choice("unit", unit, REPORT_UNITS)
    return 1.0 if unit == "episode" else 1.0 / horizon


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


def summarize(table: pd.DataFrame, phase: str = "real", unit: str = "episode", horizon: int = 40) -> pd.DataFrame:
    """Per (seed, mode): averages over the episodes of ``phase`` (the seed's "average over the 100
    epochs"), including the mean per-player reward (``reward_per_player``); with ``unit="step"`` the
    episode sums (rewards, wastage, NCR) are divided by the ``horizon``."""
    check_choice("phase", phase, PHASES)
    sel = table[table["phase"] == phase]
    if sel.empty:
        raise ParameterError("phase", phase, "a phase present in the table")
    out = sel.groupby(["mode", "seed"])[list(EPISODE_COLUMNS)].mean()
    out[list(SUM_COLUMNS)] *= unit_factor(unit, horizon)
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
_NCR_NOTE = ("The seed's percentage is a change over a negative NDS revenue (-10.68), which inflates it; the "
             "absolute change is in the record beside it.")
_FIRST_RULE_NOTE = ("The first rule (the seed's figure inside our 95% CI, zero excluded on the claimed side) was "
                    "replaced by the declared region around the seed's figure.")
_HEADLINE_MODES = ("nds", "ede", "random")
BENCH_RECORD = "bench_supply_game.json"


def units(unit: str) -> dict[str, str]:
    """The unit of each summed column of the summary in reporting ``unit``."""
    per = "per episode" if unit == "episode" else "per step (episode average)"
    return {"reward_0": f"profit {per}", "reward_1": f"profit {per}", "total_reward": f"profit {per}",
            "wastage": f"units {per}", "ncr": f"profit {per}"}


def configs(P) -> tuple[GameConfig, MADDPGConfig, list[int]]:
    """The game (the calibrated one, :func:`calibrated_game`), the learner's hyper-parameters and the
    seeds from the notebook's parameters ``P``."""
    game = calibrated_game(P.spoilage)
    cfg = MADDPGConfig(hidden=P.hidden, batch_size=P.batch_size, lr_actor=P.lr_actor, lr_critic=P.lr_critic,
                       gamma=P.gamma, noise=P.noise, pretrain_envs=P.pretrain_envs)
    return game, cfg, list(range(P.seed, P.seed + P.n_seeds))


def read_bench(game: GameConfig, path=None) -> dict:
    """What ``benchmarks/bench_supply_game.py``'s record (default ``data/results/bench_supply_game.json``)
    says about ``game``: the calibration table, the NDS baseline of the frozen choice on the calibration
    seeds, whether it meets the criterion, and the powered comparison's per-seed summary (``None`` when
    missing, or run in another game)."""
    import json
    from pathlib import Path

    from ppal_lab.compendium.paths import repo_root

    path = Path(path) if path else repo_root() / "data" / "results" / BENCH_RECORD
    bench = json.loads(path.read_text()) if path.exists() else {}
    cal = bench.get("calibration") or {}
    rows = pd.DataFrame(cal.get("rows", []))
    cand, unit = PLAYED, UNIT
    same_game = GAME_FAMILY[cand] == cal.get("candidates", {}).get(cand) and calibrated_game() == game
    chosen = cal.get("chosen") or {}
    baseline = None
    if not rows.empty and same_game:
        sel = rows[(rows["candidate"] == cand) & (rows["unit"] == unit)]
        baseline = {k: float(sel[k].iloc[0]) for k in SEED_NDS_ROW} if len(sel) else None
    matches = bool(CALIBRATED and baseline and chosen == {"candidate": cand, "unit": unit}
                   and meets_nds_row(baseline))
    comp = bench.get("comparison") or {}
    powered = None
    if comp.get("candidate") == cand and comp.get("unit") == unit and same_game and comp.get("per_seed"):
        long = [{"mode": m, "seed": r["seed"], **{k: r[f"{k}_{m}"] for k in SUM_COLUMNS}}
                for r in comp["per_seed"] for m in ("nds", "ede")]
        powered = pd.DataFrame(long).assign(reward_per_player=lambda d: d["total_reward"] / 2)
    return {"path": path.name, "calibration": rows, "criterion": cal.get("criterion"), "baseline": baseline,
            "matches": matches, "chosen": chosen or None, "powered": powered,
            "powered_wall_s": comp.get("wall_s"), "powered_training": comp.get("training"),
            "calibration_seeds": cal.get("seeds")}


def decision_summary(bench: dict, summary: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The per-seed averages the claims are decided on: the benchmark's powered comparison when its record
    holds one for the played game, else this run's seeds; and where they come from, in words."""
    if bench["powered"] is not None:
        n = bench["powered"]["seed"].nunique()
        return bench["powered"], f"{n} paired seeds of benchmarks/bench_supply_game.py ({bench['path']})"
    n = summary.loc[summary["mode"] == "nds", "seed"].nunique()
    return summary, f"this run's {n} paired seeds"


def nds_baseline_table(bench: dict) -> pd.DataFrame:
    """The played game's NDS averages on the calibration seeds beside the seed's NDS row."""
    base = bench["baseline"] or {k: np.nan for k in SEED_NDS_ROW}
    return pd.DataFrame({"seed 002, Table 5 (NDS)": SEED_NDS_ROW,
                         f"our NDS, {PLAYED} (calibration seeds)": base}).T


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
    return f"{mean:8.2f} [{ci[0]:8.2f}, {ci[1]:8.2f}]" if ci else f"{mean:8.2f}"


def headline_means(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% interval over seeds of each metric, per mode present (NDS, EDE, random policy)."""
    cols = {"reward_0": "reward player 0", "reward_1": "reward player 1", "total_reward": "total reward",
            "wastage": "wastage (units)", "ncr": "normalized cumulative revenue"}
    modes = [m for m in _HEADLINE_MODES if m in set(summary["mode"])]
    return pd.DataFrame({label: {m.upper(): _fmt(summary.loc[summary["mode"] == m, c]) for m in modes}
                         for c, label in cols.items()}).T


def relative_changes(summary: pd.DataFrame) -> dict[str, dict]:
    """EDE against NDS: wastage reduction, NCR and per-player reward improvement (:func:`relative_change`),
    each with its absolute per-seed differences ``abs`` (EDE - NDS, in the summary's unit)."""
    out = {"wastage": relative_change(summary, "wastage", reduction=True),
           "ncr": relative_change(summary, "ncr"),
           "reward_per_player": relative_change(summary, "reward_per_player")}
    for key, ch in out.items():
        ch["abs"] = paired_change(summary, key)["difference"].to_numpy(float)
    return out


def add_claims(record: ResultRecord, changes: dict, source: str) -> tuple[dict, pd.DataFrame]:
    """Decide the claims declared in the chapter's spec on the record's relative changes (call
    :func:`fill_record` and :func:`fill_bench` first; ``source`` says which seeds they come from); returns
    the verdicts and the table the notebook shows."""
    claims = SPECS[record.notebook].claims
    key_of = {m: k for k, m in CHANGE_METRICS.items()}
    measured, notes, rows = {}, {}, {}
    for c in claims:
        rule = c.first_rule if c.kind == "not measurable" else c
        ch = changes[key_of[rule.metric]]
        mean, ci, n = mean_ci(ch["abs"])
        interval = f"{ch['value']:.1%} (95% CI {ch['ci'][0]:.1%} to {ch['ci'][1]:.1%})"
        absolute = f"{mean:+.2f} (95% CI {ci[0]:+.2f} to {ci[1]:+.2f})" if ci else f"{mean:+.2f}"
        measured[c.id] = f"{interval}, EDE - NDS {absolute}, from the means of {ch['n']} paired seeds ({source})"
        notes[c.id] = " ".join(([_NCR_NOTE] if rule.metric == CHANGE_METRICS["ncr"] else [])
                               + ([_FIRST_RULE_NOTE] if c.kind == "effect" else []))
        rows[c.id] = {"seed": c.seed_value, "measured (from the means)": interval, "EDE - NDS (absolute)": absolute,
                      "claim region": (f"{c.target - c.margin:.1%} to {c.target + c.margin:.1%}"
                                       if c.kind == "effect" else "none: " + c.reason)}
    verdicts = record.decide_claims(claims, measured, notes)
    for c in claims:     # a claim the engine did not decide still shows the seeds it would need (pilot spread)
        rule = c.first_rule if c.kind == "not measurable" else c
        name = f"seeds_needed_{c.id}"
        if name not in record.metrics:
            n = seeds_needed(record.metrics[rule.metric], rule.target - rule.null)
            if n is not None:
                record.add_metric(name, n, "seeds", "paired seeds to tell the claimed effect from none at 80% "
                                  "power (two-sided 5%), from the spread of the seeds run; the claim is undecided")
                next(e for e in record.claims if e["id"] == c.id)["seeds_needed"] = n
    for e in record.claims:
        rows[e["id"]].update({"seeds run": changes["wastage"]["n"], "seeds needed": e.get("seeds_needed"),
                              "verdict": verdicts[e["id"]]})
    return verdicts, pd.DataFrame(rows).T


def fill_record(record: ResultRecord, summary: pd.DataFrame, changes: dict, seconds: dict, unit: str,
                source: str) -> None:
    """The chapter's metrics: per-mode averages of this run, the relative and absolute changes the claims
    read (from ``source``), the supplier's critic loss and the training CPU time."""
    for mode in _HEADLINE_MODES:
        sel = summary[summary["mode"] == mode]
        for metric, u in units(unit).items():
            record.add_metric(f"{metric}_{mode}", sel[metric].tolist(), u,
                              f"{metric} averaged over the measured episodes, {mode.upper()}")
    how = (f"from the means over {source}; CI by the delta method over paired seeds (values: linearised "
           "contributions)")
    what = {"wastage": "(NDS - EDE) / NDS wastage", "ncr": "(EDE - NDS) / |NDS| normalized cumulative revenue",
            "reward_per_player": "(EDE - NDS) / |NDS| mean reward per player"}
    for key, name in CHANGE_METRICS.items():
        record.add_metric(name, changes[key]["pseudo"], "fraction", f"{what[key]}, {how}")
        record.add_metric(f"{key}_change_ede_minus_nds", changes[key]["abs"], units(unit).get(key, "profit"),
                          f"EDE - NDS {key} per paired seed, {source}")
    for mode in ("nds", "ede"):
        record.add_metric(f"supplier_critic_loss_{mode}",
                          summary.loc[summary["mode"] == mode, "critic_loss_0"].tolist(), "squared scaled TD error",
                          f"player 0's critic loss over the measured episodes, {mode.upper()}")
    record.add_metric("train_cpu_seconds", sum(seconds.values()), "s", "CPU time of all training tasks (varies)")


def fill_bench(record: ResultRecord, bench: dict, unit: str) -> None:
    """The calibration's evidence: ``nds_baseline_<metric>`` (our NDS on the calibration seeds) beside
    ``seed_nds_<metric>``, and ``nds_baseline_matches`` (1 when the frozen game meets the declared
    criterion: the Appendix I claims' headroom gate)."""
    for k, v in SEED_NDS_ROW.items():
        record.add_metric(f"seed_nds_{k}", v, "Table 5's unit (not stated: per episode or per step)",
                          "seed 002, Table 5, NDS row")
        if bench["baseline"]:
            record.add_metric(f"nds_baseline_{k}", bench["baseline"][k], units(unit)[k],
                              f"our NDS on the calibration seeds {bench['calibration_seeds']} ({bench['path']})")
    record.add_metric("nds_baseline_matches", float(bench["matches"]), "flag",
                      f"1 when our NDS meets the declared criterion: {CALIBRATION_CRITERION}")


def glue_values(record: ResultRecord, changes: dict, verdicts: dict, n_seeds: int) -> tuple[dict, dict]:
    """The numbers the prose quotes (the seeds each claim needs included), and the engine's verdicts as
    Markdown text (bold)."""
    numbers = {f"{key}_{mode}": record.metrics[f"{key}_{mode}"]["value"]
               for key in ("wastage", "ncr", "total_reward", "reward_0", "reward_1") for mode in _HEADLINE_MODES}
    for key, ch in changes.items():
        numbers.update({f"rel_{key}": ch["value"], f"rel_{key}_lo": ch["ci"][0], f"rel_{key}_hi": ch["ci"][1],
                        f"abs_{key}": float(np.mean(ch["abs"])), f"decision_seeds": ch["n"]})
    numbers.update({f"closs_{mode}": record.metrics[f"supplier_critic_loss_{mode}"]["value"]
                    for mode in ("nds", "ede")})
    numbers.update({f"seeds_needed_{cid}": record.metrics[f"seeds_needed_{cid}"]["value"] for cid in verdicts
                    if f"seeds_needed_{cid}" in record.metrics})
    numbers.update({k: v["value"] for k, v in record.metrics.items() if k.startswith(("nds_baseline_", "seed_nds_"))})
    markdown = {f"verdict_{cid}": f"**{v}**" for cid, v in verdicts.items()}
    numbers["n_seeds"] = n_seeds
    # glue prints plain numbers only (a NumPy scalar shows as 'np.float64(...)' and cannot be formatted)
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in numbers.items()}, markdown


def headline_table(record: ResultRecord) -> str:
    """Every metric but the CPU time: value, 95% interval and n, as fixed-width text."""
    headline = pd.DataFrame({k: {"value": v["value"], "ci95": np.round(v["ci95"], 3).tolist() if v["ci95"] else None,
                                 "n": v["n"]} for k, v in record.metrics.items() if k != "train_cpu_seconds"}).T
    return headline.to_string(formatters={"value": "{:.3f}".format})


def reward_predictability(game: GameConfig, seed: int, n_envs: int = 500) -> pd.Series:
    """Exercise ``ex-maddpg-information``: cross-validated R² of player 0's reward from its own data, from
    its own data and the order it receives (what its NDS critic reads) and from both players' data (EDE),
    over ``n_envs`` random-play episodes."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import cross_val_score

    from ppal_lab.marl.supply_game import SupplyChainVec

    rng = np.random.default_rng(seed)
    vec, X_own, X_nds, X_all, y = SupplyChainVec(game), [], [], [], []
    obs = vec.reset(rng.random((n_envs, 6)))
    for t in range(game.horizon):
        act = rng.random((n_envs, 2, 2)) * game.action_high()
        X_own.append(np.hstack([obs[:, 0], act[:, 0]]))
        X_nds.append(np.hstack([obs[:, 0], act[:, 0], act[:, 1, 1:]]))      # + the order received (public)
        X_all.append(np.hstack([obs[:, 0], act[:, 0], obs[:, 1], act[:, 1]]))
        obs, rew, _, _ = vec.step(act, rng.standard_normal(n_envs))
        y.append(rew[:, 0])
    y = np.concatenate(y)
    sets = {"own data only": X_own, "own data + order received (NDS critic)": X_nds,
            "both players' data (EDE critic)": X_all}
    return pd.Series({name: cross_val_score(HistGradientBoostingRegressor(random_state=0), np.vstack(X), y,
                                            cv=3).mean() for name, X in sets.items()},
                     name="R² of player 0's reward")


def calibration_glue(bench: dict) -> dict:
    """The calibration numbers the prose quotes (glue values): the criterion, how many candidate-unit pairs
    the benchmark record's ``calibration`` table holds and how many meet it, and the smallest NDS total
    reward and NCR among them."""
    rows = bench["calibration"]
    return {"criterion": CALIBRATION_CRITERION, "n_pairs": len(rows), "n_meeting": int(rows["meets"].sum()),
            "min_nds_total": float(rows["total_reward"].min()), "min_nds_ncr": float(rows["ncr"].min())}


# --------------------------------------------------------------------------------------------------
# The notebook's figures
# --------------------------------------------------------------------------------------------------
def plot_random_episode(trace: pd.DataFrame) -> plt.Figure:
    """Figure ``07_random_episode``: the two players' stocks (left) and cumulative profits (right) per step
    of one episode of random play (:func:`random_episode`)."""
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2), layout="constrained")
    trace[["stock 0", "stock 1"]].plot(ax=axes[0], title="Stocks, random play", ylabel="units", xlabel="step")
    trace[["reward 0", "reward 1"]].cumsum().plot(ax=axes[1], title="Cumulative profit, random play",
                                                  ylabel="profit (money units)", xlabel="step")
    return fig


def plot_learning_curves(table: pd.DataFrame, summary: pd.DataFrame, unit: str, episodes: int) -> plt.Figure:
    """Figure ``07_learning_curves``: per metric (total reward, wastage, NCR in ``unit``), the moving average
    over ``min(10, episodes)`` measured episodes of NDS and EDE with its 95% band over seeds
    (:func:`moving_average_ci`) and random play's mean in ``summary`` dashed; the legend in the fourth panel."""
    metrics = {k: (title, units(unit)[k]) for k, title in (("total_reward", "Total reward"), ("wastage", "Wastage"),
                                                           ("ncr", "Normalized cumulative revenue"))}
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 6), layout="constrained")
    for ax, (metric, (title, unit_label)) in zip(axes.flat, metrics.items()):
        curve = moving_average_ci(table, metric, window=min(10, episodes))
        for mode, color in zip(["nds", "ede"], sns.color_palette()):
            c = curve[curve["mode"] == mode]
            ax.plot(c["episode"], c["mean"], color=color, label=mode.upper())
            ax.fill_between(c["episode"], c["lo"], c["hi"], color=color, alpha=0.2)
        ax.axhline(summary.loc[summary["mode"] == "random", metric].mean(), color="grey", ls="--", label="random")
        ax.set(xlabel="measured episode", ylabel=unit_label, title=title)
    axes[1, 1].legend(*axes[0, 0].get_legend_handles_labels(), loc="center", title="information")
    axes[1, 1].axis("off")
    return fig


def plot_critic_loss(losses: pd.DataFrame, seed: int = 0) -> plt.Figure:
    """Figure ``07_critic_loss``: each player's critic loss (log axis) against the updates, one line per mode
    (upper case) with its 95% band over seeds, from :func:`critic_loss_curve`'s long table."""
    losses = losses.assign(mode=losses["mode"].str.upper())
    grid = sns.relplot(losses, x="updates", y="loss", hue="mode", col="player", kind="line", errorbar=("ci", 95),
                       seed=seed, height=3.2, aspect=1.1, facet_kws={"sharey": True, "legend_out": False})
    grid.set(yscale="log", xlabel="updates (environment steps)", ylabel="critic loss (squared TD error, scaled)")
    grid.set_titles("critic of {col_name}")
    return grid.figure
