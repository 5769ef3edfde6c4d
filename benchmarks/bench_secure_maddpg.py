"""The full-scale secure two-party MADDPG run of seed 002, measured: a long exploration phase in
plaintext (simulated data, public), then ``--iterations`` secure iterations (one environment step and one
MADDPG update each) by two player processes and a dealer (CrypTen's TTP provider, its own process),
beside the plaintext EDE twin from the same state and the same draws, and the nudge null of the
equivalence claim (plaintext EDE with every initial weight nudged by one fixed-point step, ``--nudges``
times; :func:`ppal_lab.chapters.ch08_secure_maddpg.nudge_null`).

Usage (the seed's setting: 800 secure iterations; our exploration phase is chapter 07's 1600 episodes)::

    python benchmarks/bench_secure_maddpg.py --iterations 800 --pretrain-episodes 1600 --seed 0 --baseline-profile 5

Writes ``data/results/bench_secure_maddpg_full.json`` atomically. Per iteration (medians over the
iterations after the first): ``online_ms`` (player 0's clock less its waits for the dealer),
``dealer_ms`` (those waits), ``total_ms``, the plaintext ``plain_ms`` timed in the same run, and the
ratios; per iteration the player-to-player ``bytes_per_iteration`` / ``rounds_per_iteration`` (CrypTen's
counters; bytes of both parties summed and halved, rounds of player 0) and the traffic with the dealer
(``dealer_bytes_per_iteration``, ``dealer_rounds_per_iteration``; ``dealer_stats``: the dealer's own
count over the run); ``profile``: player 0's bytes, rounds and seconds per iteration by kind of
operation (matmul, relu = comparison and mask product, sigmoid, wrap_check, reveal, sharing);
``cost_model``: per network setting (1 Gbit/s; 0.5 ms and 10 ms round-trip time) the modelled time of
an iteration, ``online + rounds x RTT + bytes x 8 / bandwidth`` between the players plus
``requests x 1.5 RTT + bytes x 8 / bandwidth`` for player 0's requests to the dealer (a model, not
validated against a delaying relay). ``--baseline-profile N`` also
measures N iterations with CrypTen's own comparison (``profile_baseline``): the byte profile before our
comparison circuit. The load average before and after is recorded: timings on a busy machine are
inflated.

``--null-only`` adds the nudge null to an existing record at ``--out`` without repeating its secure run
(about a minute instead of a quarter of an hour): it pre-trains the same learner from the record's
settings, records how far its plaintext EDE replay is from the record's EDE metric averages
(``nudge_null_replay_metric_diff``, 0 when it is the same run) and merges the null into the record.
"""
from __future__ import annotations

import argparse
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
from ppal_lab.secure.secure_maddpg import SecureSettings, plain_phase, with_joint_draws  # noqa: E402
from ppal_lab.chapters.ch08_secure_maddpg import (NUDGES, equivalence_and_null, equivalence_runs,  # noqa: E402
                                                metric_averages, nudge_null, pretrained_learner,
                                                weights_by_network)

NETWORKS_MODELLED = (("1 Gbit/s, RTT 0.5 ms", 1e9, 0.5e-3), ("1 Gbit/s, RTT 10 ms", 1e9, 10e-3))


def cost_model(summary: dict) -> list[dict]:
    """Modelled seconds per iteration on a network of the given bandwidth and round-trip time: the measured
    online compute plus ``rounds x RTT + bytes x 8 / bandwidth`` between the players (each counted
    communication call taken as a full round trip: an upper bound), and for player 0's requests to the
    dealer ``requests x 1.5 RTT + bytes x 8 / bandwidth`` -- a request is three counted calls (the request,
    the size of the answer, the answer), i.e. one round trip and a half."""
    rows = []
    for name, bandwidth, rtt in NETWORKS_MODELLED:
        players = summary["rounds"] * rtt + summary["mbytes"] * 8e6 / bandwidth
        dealer = summary["dealer_rounds"] / 3 * 1.5 * rtt + summary["dealer_mbytes"] * 8e6 / bandwidth
        total = summary["online_ms"] / 1e3 + players + dealer
        rows.append({"network": name, "bandwidth_bit_s": bandwidth, "rtt_s": rtt, "players_comm_s": players,
                     "dealer_comm_s": dealer, "iteration_s": total,
                     "ratio_to_plain": total / (summary["plain_ms"] / 1e3)})
    return rows


def profile_table(phase) -> dict:
    """Player 0's median bytes, rounds and seconds per iteration by kind of operation (after the first)."""
    prof = phase.profile.iloc[1:] if len(phase.profile) > 1 else phase.profile
    return {k: float(v) for k, v in prof.median().items()}

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
    replay, _ = plain_phase(with_joint_draws(learner), args.iterations)
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
    ap.add_argument("--baseline-profile", type=int, default=0,
                    help="also run this many iterations with CrypTen's own comparison (the profile before)")
    ap.add_argument("--null-only", action="store_true",
                    help="add the nudge null to the existing record at --out; its secure run is not repeated")
    ap.add_argument("--out", default=str(ROOT / "data" / "results" / "bench_secure_maddpg_full.json"))
    args = ap.parse_args(argv)
    check_range("iterations", args.iterations, 1)
    check_range("pretrain_episodes", args.pretrain_episodes, 0)
    check_range("precision_bits", args.precision_bits, *TRAINING_PRECISION_BITS_RANGE)
    check_range("nudges", args.nudges, 2)   # an interval over the nudges needs two
    check_range("baseline_profile", args.baseline_profile, 0)
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
    summary = phase.summary()
    baseline = None
    if args.baseline_profile:
        base = equivalence_runs([args.seed], cfg, args.baseline_profile,
                                SecureSettings(precision_bits=args.precision_bits, comparison="crypten"),
                                pretrain_episodes=args.pretrain_episodes, progress=False)[0]
        baseline = {"iterations": args.baseline_profile, "summary": base.summary(), "profile": profile_table(base)}
    args_record = {k: v for k, v in vars(args).items() if k != "null_only"}
    record = {"benchmark": "bench_secure_maddpg_full", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "args": args_record, "cpus": os.cpu_count(), "platform": platform.platform(),
              "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
              **summary, "total_wall_s": wall, "secure_phase_wall_s": phase.wall_s,
              "bytes_per_iteration": summary["mbytes"] * 1e6, "rounds_per_iteration": summary["rounds"],
              "dealer_bytes_per_iteration": summary["dealer_mbytes"] * 1e6,
              "dealer_rounds_per_iteration": summary["dealer_rounds"], "dealer_stats": phase.dealer_stats,
              "online_s_total": float((phase.secure_s - phase.dealer_s).sum()),
              "dealer_s_total": float(phase.dealer_s.sum()), "plain_s_total": float(phase.plain_s.sum()),
              "profile": profile_table(phase), "profile_baseline": baseline, "cost_model": cost_model(summary),
              "metric_averages": metric_averages([phase]).to_dict("records"),
              "weights": weights_by_network([phase]).to_dict("records"), "nudge_null": null.to_dict("records"),
              "nudge_null_replay_metric_diff": 0.0}   # the null's un-nudged run is the secure run's twin itself
    write_json_atomic(args.out, record)
    print({k: record[k] for k in ("total_wall_s", "secure_phase_wall_s", "online_ms", "dealer_ms", "plain_ms",
                                  "online_ratio", "total_ratio", "mbytes", "rounds", "dealer_mbytes", "retries")})
    print(json.dumps(record["cost_model"], indent=1))
    return record


if __name__ == "__main__":
    main()
