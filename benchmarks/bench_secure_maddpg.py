"""The full-scale secure two-party MADDPG run of seed 002, measured: a long exploration phase in
plaintext (simulated data), then ``--iterations`` secure iterations (one environment step and one
MADDPG update each) beside the plaintext EDE twin from the same state and external randomness.

Usage (the seed's setting: 800 secure iterations; our exploration phase is chapter 07's 1600 episodes)::

    python benchmarks/bench_secure_maddpg.py --iterations 800 --pretrain-episodes 1600 --seed 0

Writes ``data/results/bench_secure_maddpg_full.json`` atomically: the wall time of the whole run
(``total_wall_s``, exploration included) and of the secure phase (``secure_phase_wall_s``), online and
offline (triple generation) milliseconds per iteration, the plaintext milliseconds per iteration, rounds
and bytes, retries after wrap-arounds, the metric averages of both runs, and the final-weight MAE/RMSE
per network. Chapter 08 shows this file. The load average before and after is recorded: timings on a
busy machine are inflated.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.compendium.errors import check_range  # noqa: E402
from ppal_lab.marl.maddpg import MADDPGConfig  # noqa: E402
from ppal_lab.compendium.results import write_json_atomic  # noqa: E402
from ppal_lab.secure.fixed_point import TRAINING_PRECISION_BITS_RANGE  # noqa: E402
from ppal_lab.secure.secure_maddpg import SecureSettings  # noqa: E402
from ppal_lab.chapters.ch08_secure_maddpg import (equivalence_runs, metric_averages,  # noqa: E402
                                                weights_by_network)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=800)
    ap.add_argument("--pretrain-episodes", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--precision-bits", type=int, default=18)
    ap.add_argument("--out", default=str(ROOT / "data" / "results" / "bench_secure_maddpg_full.json"))
    args = ap.parse_args(argv)
    check_range("iterations", args.iterations, 1)
    check_range("pretrain_episodes", args.pretrain_episodes, 0)
    check_range("precision_bits", args.precision_bits, *TRAINING_PRECISION_BITS_RANGE)
    cfg = MADDPGConfig(hidden=args.hidden, batch_size=args.batch)
    load_before = os.getloadavg()
    start = time.perf_counter()
    phase = equivalence_runs([args.seed], cfg, args.iterations, SecureSettings(precision_bits=args.precision_bits),
                             pretrain_episodes=args.pretrain_episodes)[0]
    wall = time.perf_counter() - start
    record = {"benchmark": "bench_secure_maddpg_full", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "args": vars(args), "cpus": os.cpu_count(), "platform": platform.platform(),
              "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
              **phase.summary(), "total_wall_s": wall, "secure_phase_wall_s": phase.wall_s,
              "online_s_total": float(phase.secure_s.sum()), "offline_s_total": float(phase.offline_s.sum()),
              "plain_s_total": float(phase.plain_s.sum()),
              "metric_averages": metric_averages([phase]).to_dict("records"),
              "weights": weights_by_network([phase]).to_dict("records")}
    write_json_atomic(args.out, record)
    print({k: record[k] for k in ("total_wall_s", "secure_phase_wall_s", "secure_ms", "offline_ms", "plain_ms",
                                  "ratio", "retries")})
    return record


if __name__ == "__main__":
    main()
