"""The full-scale secure two-party MADDPG run of seed 002, measured: a long exploration phase in
plaintext (simulated data), then ``--iterations`` secure iterations (one environment step and one
MADDPG update each) beside the plaintext EDE twin from the same state and external randomness, and the
nudge null of the equivalence claim (plaintext EDE with every initial weight nudged by one fixed-point
step, ``--nudges`` times; :func:`ppal_lab.chapters.ch08_secure_maddpg.nudge_null`).

Usage (the seed's setting: 800 secure iterations; our exploration phase is chapter 07's 1600 episodes)::

    python benchmarks/bench_secure_maddpg.py --iterations 800 --pretrain-episodes 1600 --seed 0

Writes ``data/results/bench_secure_maddpg_full.json`` atomically: the wall time of the whole run
(``total_wall_s``, exploration included) and of the secure phase (``secure_phase_wall_s``), online and
offline (triple generation) milliseconds per iteration, the plaintext milliseconds per iteration, rounds
and bytes, retries after wrap-arounds, the metric averages of both runs, the final-weight MAE/RMSE per
network and the nudge null (``nudge_null``). Chapter 08 shows this file. The load average before and
after is recorded: timings on a busy machine are inflated.

``--null-only`` adds the nudge null to an existing record at ``--out`` without repeating its secure run
(about a minute instead of a quarter of an hour): it pre-trains the same learner from the record's
settings, records how far its plaintext EDE replay is from the record's EDE metric averages
(``nudge_null_replay_metric_diff``, 0 when it is the same run) and merges the null into the record.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.compendium.errors import ParameterError, check_range  # noqa: E402
from ppal_lab.marl.maddpg import MADDPGConfig  # noqa: E402
from ppal_lab.compendium.results import write_json_atomic  # noqa: E402
from ppal_lab.secure.fixed_point import TRAINING_PRECISION_BITS_RANGE  # noqa: E402
from ppal_lab.secure.secure_maddpg import SecureSettings, plain_phase  # noqa: E402
from ppal_lab.chapters.ch08_secure_maddpg import (NUDGES, equivalence_and_null, metric_averages,  # noqa: E402
                                                nudge_null, pretrained_learner, weights_by_network)

SETTINGS = ("iterations", "pretrain_episodes", "seed", "hidden", "batch", "precision_bits")


def add_null(args, cfg: MADDPGConfig) -> dict:
    """The record at ``args.out`` with the nudge null of its run merged in (its secure run not repeated)."""
    record = json.loads(Path(args.out).read_text())
    differ = {k: (record["args"][k], vars(args)[k]) for k in SETTINGS if record["args"][k] != vars(args)[k]}
    if differ:
        raise ParameterError("settings", differ, "the settings of the record's run (record, given)")
    start = time.perf_counter()
    torch.set_num_threads(1)            # as the chapter's runs (one thread while the parties would run)
    learner = pretrained_learner(args.seed, cfg, pretrain_episodes=args.pretrain_episodes)
    replay, _ = plain_phase(copy.deepcopy(learner), args.iterations)
    # whether this is the record's EDE run bit for bit: over hundreds of iterations a change of arithmetic
    # (code version, BLAS kernels) alone takes the run elsewhere, and the null is then that of a sibling run
    mismatch = max(abs(float(replay[r["metric"]].mean()) - r["ede"]) for r in record["metric_averages"])
    null = nudge_null(learner, args.iterations, args.precision_bits, args.nudges)
    record.update({"nudge_null": null.to_dict("records"), "nudge_null_wall_s": time.perf_counter() - start,
                   "nudge_null_created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "nudge_null_replay_metric_diff": mismatch})
    record["args"]["nudges"] = args.nudges
    return record


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=800)
    ap.add_argument("--pretrain-episodes", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--precision-bits", type=int, default=18)
    ap.add_argument("--nudges", type=int, default=NUDGES)
    ap.add_argument("--null-only", action="store_true",
                    help="add the nudge null to the existing record at --out; its secure run is not repeated")
    ap.add_argument("--out", default=str(ROOT / "data" / "results" / "bench_secure_maddpg_full.json"))
    args = ap.parse_args(argv)
    check_range("iterations", args.iterations, 1)
    check_range("pretrain_episodes", args.pretrain_episodes, 0)
    check_range("precision_bits", args.precision_bits, *TRAINING_PRECISION_BITS_RANGE)
    check_range("nudges", args.nudges, 2)   # an interval over the nudges needs two
    cfg = MADDPGConfig(hidden=args.hidden, batch_size=args.batch)
    if args.null_only:
        record = add_null(args, cfg)
        write_json_atomic(args.out, record)
        print(json.dumps(record["nudge_null"], indent=1))
        return record
    load_before = os.getloadavg()
    start = time.perf_counter()
    phases, null = equivalence_and_null([args.seed], cfg, args.iterations,
                                        SecureSettings(precision_bits=args.precision_bits),
                                        pretrain_episodes=args.pretrain_episodes, nudges=args.nudges)
    phase = phases[0]
    wall = time.perf_counter() - start
    args_record = {k: v for k, v in vars(args).items() if k != "null_only"}
    record = {"benchmark": "bench_secure_maddpg_full", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "args": args_record, "cpus": os.cpu_count(), "platform": platform.platform(),
              "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
              **phase.summary(), "total_wall_s": wall, "secure_phase_wall_s": phase.wall_s,
              "online_s_total": float(phase.secure_s.sum()), "offline_s_total": float(phase.offline_s.sum()),
              "plain_s_total": float(phase.plain_s.sum()),
              "metric_averages": metric_averages([phase]).to_dict("records"),
              "weights": weights_by_network([phase]).to_dict("records"), "nudge_null": null.to_dict("records"),
              "nudge_null_replay_metric_diff": 0.0}   # the null's un-nudged run is the secure run's twin itself
    write_json_atomic(args.out, record)
    print({k: record[k] for k in ("total_wall_s", "secure_phase_wall_s", "secure_ms", "offline_ms", "plain_ms",
                                  "ratio", "retries")})
    return record


if __name__ == "__main__":
    main()
