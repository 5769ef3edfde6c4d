"""Experiments of the secure two-party MADDPG chapter: equivalence with EDE, overhead and its scaling,
and the operation counts behind seed 002's complexity theorems (Appendix F).

Every run starts from a plaintext EDE learner pre-trained on simulated data (seed 002's exploration
phase, which shares no private data); the secure phase then plays ``iterations`` measured steps in two
processes and the same steps in plaintext, from the same state and the same external randomness
(:func:`ppal_lab.secure.secure_maddpg.run_secure_phase`).
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from ppal_lab.compendium.errors import check_int
from ppal_lab.marl.maddpg import MADDPG, MADDPGConfig, GameConfig, _progress_bar
from ppal_lab.secure.secure_maddpg import (PRECISION_BITS_RANGE, SecurePhase, SecureSettings,
                                   run_secure_phase, weight_table)
from ppal_lab.marl.supply_game import ACT_DIM, OBS_DIM

__all__ = ["pretrained_learner", "equivalence_runs", "scaling_runs", "metric_averages", "moving_averages",
           "moving_average_errors", "weights_by_network", "cost_drift", "distinct_iteration_counts",
           "iteration_counts", "PRECISION_BITS_RANGE"]
COUNT_COLUMNS = ("rounds", "bytes", "shared_data", "shared_weights", "comparisons")

METRICS = ("reward_0", "reward_1", "total_reward", "wastage", "ncr")


@contextlib.contextmanager
def _one_thread(total: int, desc: str, progress: bool):
    """One torch thread in this process while the parties run (they need the cores), and an optional
    progress bar over ``total`` runs."""
    bar = _progress_bar(total, desc) if progress else None
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield bar
    finally:
        torch.set_num_threads(saved)
        if bar is not None:
            bar.close()


def pretrained_learner(seed: int, cfg: MADDPGConfig, game: GameConfig | None = None,
                       pretrain_episodes: int = 400) -> MADDPG:
    """A one-run EDE learner after ``pretrain_episodes`` exploration episodes on simulated data (at
    least enough to fill one minibatch)."""
    check_int("pretrain_episodes", pretrain_episodes, 0)
    learner = MADDPG([seed], ["ede"], game, cfg)
    per_chunk = cfg.pretrain_envs * learner.game.horizon
    needed = math.ceil(cfg.batch_size / per_chunk) * cfg.pretrain_envs
    learner.play("pretrain", max(pretrain_episodes, needed), cfg.pretrain_envs, cfg.pretrain_noise)
    return learner


def equivalence_runs(seeds: Sequence[int], cfg: MADDPGConfig, iterations: int, settings: SecureSettings,
                     game: GameConfig | None = None, pretrain_episodes: int = 400,
                     progress: bool = True) -> list[SecurePhase]:
    """One secure phase beside its plaintext EDE twin per seed (CrypTen's masks seeded from the seed too,
    so a rerun gives the same numbers)."""
    check_int("iterations", iterations, 1)
    seeds = [check_int("seed", s, 0, 2**32 - 1) for s in seeds]
    out = []
    with _one_thread(len(seeds), "secure phases", progress) as bar:
        for s in seeds:
            learner = pretrained_learner(s, cfg, game, pretrain_episodes)
            out.append(run_secure_phase(learner, iterations, settings, sharing_seed=s))
            if bar is not None:
                bar.update(1)
    return out


def scaling_runs(hiddens: Iterable[int], batches: Iterable[int], iterations: int, settings: SecureSettings,
                 seed: int = 0, base_hidden: int = 128, base_batch: int = 128, game: GameConfig | None = None,
                 progress: bool = True) -> pd.DataFrame:
    """Time, rounds and bytes per iteration, secure against plaintext, for each hidden size (batch
    ``base_batch``) and each batch size (hidden ``base_hidden``). One row per setting."""
    check_int("iterations", iterations, 2)
    settings_list = [(h, base_batch) for h in hiddens] + [(base_hidden, b) for b in batches if b != base_batch]
    settings_list = list(dict.fromkeys(settings_list))
    rows = []
    with _one_thread(len(settings_list), "sizes", progress) as bar:
        for hidden, batch in settings_list:
            cfg = MADDPGConfig(hidden=check_int("hidden", hidden, 1), batch_size=check_int("batch_size", batch, 1))
            phase = run_secure_phase(pretrained_learner(seed, cfg, game, 0), iterations, settings,
                                     sharing_seed=seed)
            row = {"hidden": hidden, "batch": batch, **phase.summary()}
            row.update({f"{k}_ms": 1e3 * v for k, v in phase.phases_s.items()})
            row.update(iteration_counts(cfg))
            rows.append(row)
            if bar is not None:
                bar.update(1)
    return pd.DataFrame(rows)


def metric_averages(phases: Sequence[SecurePhase], metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per seed and metric: the average over the secure phase's iterations in both runs, their absolute
    difference and the difference relative to the EDE average (seed 002's Table 2, per seed)."""
    rows = []
    for ph in phases:
        for m in metrics:
            sec, pla = float(ph.secure[m].mean()), float(ph.plain[m].mean())
            rows.append({"seed": ph.seed, "metric": m, "secure": sec, "ede": pla, "abs_diff": abs(sec - pla),
                         "rel_diff": abs(sec - pla) / abs(pla) if pla != 0 else (0.0 if sec == 0 else math.inf)})
    return pd.DataFrame(rows)


def moving_averages(phases: Sequence[SecurePhase], window: int = 10,
                    metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Trailing moving averages of each metric per iteration, both runs (long format), with the
    deviation relative to the metric's mean absolute EDE value over the phase (``rel_dev``)."""
    check_int("window", window, 1)
    rows = []
    for ph in phases:
        for m in metrics:
            sec = ph.secure[m].rolling(window, min_periods=1).mean().to_numpy()
            pla = ph.plain[m].rolling(window, min_periods=1).mean().to_numpy()
            scale = float(np.abs(ph.plain[m]).mean()) or 1.0
            rows.append(pd.DataFrame({"seed": ph.seed, "metric": m, "iteration": ph.plain["iteration"],
                                      "secure": sec, "ede": pla, "rel_dev": np.abs(sec - pla) / scale}))
    return pd.concat(rows, ignore_index=True)


def moving_average_errors(ma: pd.DataFrame) -> pd.DataFrame:
    """Seed 002's Table 3 from :func:`moving_averages`: per metric, the MAE and RMSE between the secure
    and the EDE moving-average curves, averaged over the seeds."""
    dev = (ma["secure"] - ma["ede"]).abs()
    per_seed = dev.groupby([ma["metric"], ma["seed"]]).agg(mae="mean", rmse=lambda d: float(np.sqrt((d ** 2).mean())))
    return per_seed.groupby("metric").mean()


def cost_drift(phases: Sequence[SecurePhase]) -> dict[int, float]:
    """Per seed: the change of the online time per iteration over the phase, from a straight line fitted
    to the iterations after the first (which records the triples), relative to the line's start."""
    from scipy import stats

    out = {}
    for ph in phases:
        it = np.arange(1, len(ph.secure_s))
        if len(it) < 3:
            out[ph.seed] = 0.0
            continue
        fit = stats.linregress(it, ph.secure_s[1:])
        out[ph.seed] = float(fit.slope * (it[-1] - it[0]) / fit.intercept)
    return out


def distinct_iteration_counts(phases: Sequence[SecurePhase]) -> pd.DataFrame:
    """The distinct per-iteration operation counts (rounds, bytes, shared and compared elements) over
    every iteration of every phase: one row when all iterations do the same work."""
    counts = pd.concat([ph.comm[list(COUNT_COLUMNS)] for ph in phases])
    return counts.drop_duplicates().astype(int).reset_index(drop=True)


def weights_by_network(phases: Sequence[SecurePhase]) -> pd.DataFrame:
    """Seed 002's Table 4: MAE and RMSE of the final weights per network and player, for every seed."""
    frames = [weight_table(ph.secure_weights, ph.plain_weights).assign(seed=ph.seed) for ph in phases]
    return pd.concat(frames, ignore_index=True)


def iteration_counts(cfg: MADDPGConfig) -> dict:
    """Operation counts of one secure iteration (acting + one update), from the network shapes.

    ``shared_data``: private data elements secret-shared (observations, actions, rewards, next
    observations of the minibatch, and the acting observation) -- seed 002's "pre-processing" of states
    and actions, Theorem 1; ``shared_weights``: weight elements shared (every network of both players,
    every iteration, because owners update them in plaintext) -- what Theorem 2's *native* variant adds;
    ``comparisons``: elements compared securely (ReLU: hidden units x rows for every hidden layer of
    every network evaluated; the sigmoid's three tests per actor output). The parties count the same
    quantities as they run (:attr:`SecurePhase.comm`); the tests check that they agree.
    """
    H, B, s, a = cfg.hidden, cfg.batch_size, OBS_DIM, ACT_DIM
    actor_in, critic_in = 2 * s, 2 * (s + a)
    actor_w = actor_in * H + H + H * H + H + H * a + a
    critic_w = critic_in * H + H + H * H + H + H + 1
    shared_data = 2 * (s + B * (2 * s + a + 1))
    shared_weights = 2 * (actor_w + actor_w) + 2 * (critic_w + critic_w) + 2 * critic_w + 2 * actor_w
    comparisons = 2 * 2 * H * 1 + 4 * 2 * H * B + 4 * 2 * H * B + 2 * 2 * H * B + 3 * 4 * B * a
    return {"shared_data": shared_data, "shared_weights": shared_weights, "comparisons": comparisons}
