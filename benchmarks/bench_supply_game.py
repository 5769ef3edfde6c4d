"""Chapter 7's supply-chain game: calibrate the reconstruction on the seed's NDS row, then a powered
paired comparison of NDS and EDE (seed 002, Appendix I, Table 5). One worker process per seed.

Stage ``calibrate`` (run first): every candidate game of the declared family :data:`CANDIDATES` trains
NDS alone on the calibration seeds :data:`CALIBRATION_SEEDS` (disjoint from every evaluation seed), at
the chapter's default training sizes; each candidate's NDS averages over the measured episodes are
compared with the seed's NDS row in both reporting units (per 40-step episode, and per step, as
``lisarah/supply_chain`` reports ``episode_reward / steps``). The criterion, fixed before any run
(:data:`CRITERION`): the signs of the total reward and the NCR match the seed's, and the wastage and
the NCR are each within a factor 2 of the seed's. The family, the seed's row and the criterion live in
:mod:`ppal_lab.chapters.ch07_supply_chain_maddpg`. The first candidate (in declared order) and unit
meeting it is frozen as ``chosen``; none meeting it is recorded as ``chosen: null``. The EDE row and the
claimed differences are never read.

Stage ``compare``: NDS and EDE (same seed, identical external randomness) on ``--seeds`` evaluation
seeds ``--first-seed``, ... in the chosen game (or ``--candidate``), one process per seed (``--jobs``
at a time), with progress lines; the record keeps per-seed averages and the stage's wall time.

Each paired seed (NDS and EDE at the chapter's defaults) costs about 65 s of one idle core; calibration
(8 candidates x 2 seeds, NDS only) about 16 x 32 s. When no candidate meets the criterion, ``compare``
needs ``--candidate`` (chapter 7 plays ``ours_lead0_spoil0`` then).

Usage::

    python benchmarks/bench_supply_game.py --stage calibrate --jobs 1          # ~9 min idle, 1 core
    python benchmarks/bench_supply_game.py --stage compare --candidate ours_lead0_spoil0 --seeds 40 --jobs 2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.chapters import ch07_supply_chain_maddpg as ch07  # noqa: E402
from ppal_lab.compendium.errors import ParameterError, check_int  # noqa: E402
from ppal_lab.compendium.paths import repo_root  # noqa: E402
from ppal_lab.compendium.results import write_json_atomic  # noqa: E402

OUT = ch07.BENCH_RECORD
SEED_NDS = ch07.SEED_NDS_ROW          # the seed's NDS row (Appendix I, Table 5): the only numbers calibration reads
CRITERION = ch07.CALIBRATION_CRITERION
CANDIDATES = ch07.GAME_FAMILY
CALIBRATION_SEEDS = (100_000, 100_001)
UNITS = {u: ch07.unit_factor(u, 40) for u in ch07.REPORT_UNITS}
METRICS = ("reward_0", "reward_1", "total_reward", "wastage", "ncr")
TRAIN = {"episodes": 100, "pretrain_episodes": 1600}


def _train(seed: int, modes: tuple[str, ...], game_kwargs: dict, episodes: int, pretrain: int) -> dict:
    """Train ``modes`` on one seed (one thread); per mode, the averages over the measured episodes."""
    import torch

    from ppal_lab.marl.maddpg import MADDPG, GameConfig, MADDPGConfig

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    learner = MADDPG([seed], list(modes), GameConfig(**game_kwargs), MADDPGConfig())
    table = learner.train(episodes, pretrain)
    real = table[table["phase"] == "real"]
    out = {m: {k: float(real.loc[real["mode"] == m, k].mean()) for k in METRICS} for m in modes}
    return {"seed": seed, "by_mode": out, "seconds": time.perf_counter() - t0}


def _run_all(tasks: list[tuple], jobs: int, label: str) -> list[dict]:
    results, t0 = [], time.perf_counter()
    if jobs == 1:
        for i, t in enumerate(tasks, 1):
            results.append((t, _train(*t[1:])))
            print(f"[{label}] {i}/{len(tasks)} done ({time.perf_counter() - t0:.0f} s)", flush=True)
        return results
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
        futures = {ex.submit(_train, *t[1:]): t for t in tasks}
        for i, fut in enumerate(as_completed(futures), 1):
            results.append((futures[fut], fut.result()))
            print(f"[{label}] {i}/{len(tasks)} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return results


def calibrate(jobs: int, episodes: int, pretrain: int) -> dict:
    tasks = [(name, s, ("nds",), kw, episodes, pretrain) for name, kw in CANDIDATES.items()
             for s in CALIBRATION_SEEDS]
    t0 = time.perf_counter()
    results = _run_all(tasks, jobs, "calibrate")
    rows, chosen = [], None
    for name in CANDIDATES:
        runs = [r["by_mode"]["nds"] for t, r in results if t[0] == name]
        mean = {k: sum(r[k] for r in runs) / len(runs) for k in METRICS}
        for unit, factor in UNITS.items():
            vals = {k: v * factor for k, v in mean.items()}
            ok = ch07.meets_nds_row(vals)
            rows.append({"candidate": name, "unit": unit, **vals, "meets": ok})
            if ok and chosen is None:
                chosen = {"candidate": name, "unit": unit}
    return {"criterion": CRITERION, "seed_nds_row": SEED_NDS, "seeds": list(CALIBRATION_SEEDS),
            "candidates": CANDIDATES, "training": {"episodes": episodes, "pretrain_episodes": pretrain},
            "rows": rows, "chosen": chosen, "wall_s": time.perf_counter() - t0}


def compare(candidate: str, unit: str, seeds: int, first: int, jobs: int, episodes: int, pretrain: int) -> dict:
    eval_seeds = list(range(first, first + seeds))
    if set(eval_seeds) & set(CALIBRATION_SEEDS):
        raise ParameterError("first_seed", first, f"evaluation seeds disjoint from {CALIBRATION_SEEDS}")
    tasks = [(candidate, s, ("nds", "ede"), CANDIDATES[candidate], episodes, pretrain) for s in eval_seeds]
    t0 = time.perf_counter()
    results = sorted((r for _, r in _run_all(tasks, jobs, "compare")), key=lambda r: r["seed"])
    factor = UNITS[unit]
    per_seed = [{"seed": r["seed"], **{f"{k}_{m}": r["by_mode"][m][k] * factor for m in ("nds", "ede")
                                       for k in METRICS}, "seconds": r["seconds"]} for r in results]
    return {"candidate": candidate, "game": CANDIDATES[candidate], "unit": unit, "seeds": eval_seeds,
            "training": {"episodes": episodes, "pretrain_episodes": pretrain}, "per_seed": per_seed,
            "wall_s": time.perf_counter() - t0, "jobs": jobs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=("calibrate", "compare"), required=True)
    ap.add_argument("--seeds", type=int, default=40, help="evaluation seeds of the compare stage")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (one seed each)")
    ap.add_argument("--candidate", default=None, help="compare in this candidate (default: the chosen one)")
    ap.add_argument("--episodes", type=int, default=TRAIN["episodes"])
    ap.add_argument("--pretrain-episodes", type=int, default=TRAIN["pretrain_episodes"])
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    try:
        check_int("seeds", a.seeds, 2, 10_000)
        check_int("jobs", a.jobs, 1, 256)
        check_int("episodes", a.episodes, 1)
        check_int("pretrain_episodes", a.pretrain_episodes, 0)
        if a.candidate is not None and a.candidate not in CANDIDATES:
            raise ParameterError("candidate", a.candidate, "one of " + ", ".join(CANDIDATES))
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = a.out or repo_root() / "data" / "results" / OUT
    record = json.loads(out.read_text()) if out.exists() else {"name": "bench_supply_game"}
    if a.stage == "calibrate":
        record["calibration"] = calibrate(a.jobs, a.episodes, a.pretrain_episodes)
        record.pop("comparison", None)   # a new calibration voids an older comparison
    else:
        chosen = (record.get("calibration") or {}).get("chosen")
        if a.candidate is None and chosen is None:
            print("error: no candidate chosen by calibration: run --stage calibrate or give --candidate",
                  file=sys.stderr)
            return 2
        cand = a.candidate or chosen["candidate"]
        unit = chosen["unit"] if chosen and chosen["candidate"] == cand else "episode"
        record["comparison"] = compare(cand, unit, a.seeds, a.first_seed, a.jobs, a.episodes, a.pretrain_episodes)
    record["cpu_count"] = os.cpu_count()
    write_json_atomic(out, record)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
