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
``requests x 1.5 RTT + bytes x 8 / bandwidth`` for player 0's requests to the dealer (a model; how far
it is from a real delayed network: ``--network-check`` below). ``--baseline-profile N`` also
measures N iterations with CrypTen's own comparison (``profile_baseline``): the byte profile before our
comparison circuit. The load average before and after is recorded: timings on a busy machine are
inflated.

``--network-check`` (needs root; not run by CI) validates that model instead: it writes
``data/results/bench_secure_network.json`` (or ``--out``). Each player and the dealer run as ``ppal-lab
party`` (:func:`ppal_lab.secure.maddpg_party.secure_party_from_config`) in a network namespace of its own
(``tests/secure/netlab.py``), joined by a user-space delaying router (a TUN device per namespace): without
delay or limit (before and after the others: the compute), at 1 Gbit/s per sender with round-trip times
0, 0.5 ms and 10 ms; and once by veth pairs and a bridge (kernel forwarding: the router's own cost). Per
setting (``floor``): the one-byte TCP echo time and the seconds per opening of a small shared vector
(``opening_s``) and per product (``product_s``: an opening and a request to the dealer); and
(``network_check``) the median seconds per iteration after the first (player 0's clock, dealer waits
included) beside the model ``compute + comm_model_s(...)`` with the counted rounds and bytes, its relative
error ``model / measured - 1``, and a per-call model (``call_model_s``) that charges each counted round
what an opening costs on that network more than without delay, and each dealer request what a product
costs more than an opening, likewise::

    python benchmarks/bench_secure_maddpg.py --network-check --iterations 4 --pretrain-episodes 0

Player 0 asks the dealer for each stage attempt's tuples in one message (the default;
:class:`ppal_lab.secure.twoparty.dealer_batch`); ``--no-batch-dealer`` asks one tuple at a time, as
CrypTen does. ``--compare-batching --out FILE`` runs the secure phase both ways, one after the other in
the same process state, and records both summaries (``dealer_requests``: player 0's round trips to the
dealer per iteration) and whether the weights agree bit for bit; with ``--network-check`` it repeats the
check with one request per tuple (``one_request_per_tuple`` in the record; ``batch_dealer`` says how the
main check ran).

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


def comm_model_s(rounds: float, mbytes: float, dealer_rounds: float, dealer_mbytes: float, rtt: float,
                 bandwidth: float) -> tuple[float, float]:
    """Modelled seconds of communication per iteration ``(players, dealer)``: ``rounds x RTT + bytes x 8 /
    bandwidth`` between the players (each counted communication call taken as a full round trip), and for
    player 0's requests to the dealer ``requests x 1.5 RTT + bytes x 8 / bandwidth`` -- a request is three
    counted calls (the request, the size of the answer, the answer), i.e. one round trip and a half."""
    players = rounds * rtt + mbytes * 8e6 / bandwidth
    dealer = dealer_rounds / 3 * 1.5 * rtt + dealer_mbytes * 8e6 / bandwidth
    return players, dealer


def cost_model(summary: dict) -> list[dict]:
    """Modelled seconds per iteration on a network of the given bandwidth and round-trip time: the measured
    online compute plus :func:`comm_model_s`."""
    rows = []
    for name, bandwidth, rtt in NETWORKS_MODELLED:
        players, dealer = comm_model_s(summary["rounds"], summary["mbytes"], summary["dealer_rounds"],
                                       summary["dealer_mbytes"], rtt, bandwidth)
        total = summary["online_ms"] / 1e3 + players + dealer
        rows.append({"network": name, "bandwidth_bit_s": bandwidth, "rtt_s": rtt, "players_comm_s": players,
                     "dealer_comm_s": dealer, "iteration_s": total,
                     "ratio_to_plain": total / (summary["plain_ms"] / 1e3)})
    return rows


def profile_table(phase) -> dict:
    """Player 0's median bytes, rounds and seconds per iteration by kind of operation (after the first)."""
    prof = phase.profile.iloc[1:] if len(phase.profile) > 1 else phase.profile
    return {k: float(v) for k, v in prof.median().items()}

NETWORKS_CHECKED = (("router, no delay, no limit", "router", None, 0.0),
                    ("veth, no delay, no limit", "veth", None, 0.0),
                    ("router, 1 Gbit/s, RTT 0", "router", 1e9, 0.0),
                    ("router, 1 Gbit/s, RTT 0.5 ms", "router", 1e9, 0.5e-3),
                    ("router, 1 Gbit/s, RTT 10 ms", "router", 1e9, 10e-3),
                    ("router, no delay, no limit, again", "router", None, 0.0))
"""(name, link, bandwidth, round-trip time); the model's compute is the mean of the two runs through the
router without delay or limit (the machine is shared: their difference shows the drift)."""


def network_check(args, batch_dealer: bool = True) -> dict:
    """Run the secure MADDPG in namespaces on each network of :data:`NETWORKS_CHECKED` and compare the
    measured time per iteration with the model (the record of ``--network-check``); ``batch_dealer``:
    each stage attempt's dealer requests in one message (else one per tuple)."""
    import statistics
    import tempfile

    sys.path.insert(0, str(ROOT / "tests" / "secure"))
    from netlab import PartyNet, echo_rtt, run_party_commands

    from ppal_lab.secure.secure_maddpg import private_seeds

    config = {"seed": args.seed, "iterations": args.iterations, "hidden": args.hidden, "batch": args.batch,
              "pretrain_episodes": args.pretrain_episodes, "precision_bits": args.precision_bits,
              "batch_dealer": int(batch_dealer)}
    player_args = [json.dumps([{**config, "private_seed": s}]) for s in private_seeds(args.seed)]
    load_before, rows, floor, counts = os.getloadavg(), [], [], None
    for subnet, (name, mode, bandwidth, rtt) in enumerate(NETWORKS_CHECKED, start=80):
        with PartyNet(3, mode, rtt_s=rtt, rate_bit_s=bandwidth, subnet=subnet) as net, \
                tempfile.TemporaryDirectory(prefix="ppal-netcheck-") as work:
            echo = echo_rtt(net)          # players 0 and 1: the link's own round trip
            calls = run_party_commands(net, "netlab:call_costs", ["[]", "[]"], seed=args.seed, workdir=work)[0]
            start = time.perf_counter()
            res = run_party_commands(net, "ppal_lab.secure.maddpg_party:secure_party_from_config", player_args,
                                     seed=args.seed + 1, dealer_seed=args.seed + 1, workdir=work,
                                     timeout=120 + 60 * args.iterations)
            wall = time.perf_counter() - start
            late = net.router.max_lateness_s if net.router else 0.0
        p0, p1 = res[0]["value"], res[1]["value"]
        rest = slice(1, None) if args.iterations > 1 else slice(None)
        c0, c1 = p0["comm"][-1], p1["comm"][-1]
        counts = {"rounds": c0["rounds_act_env"] + c0["rounds_update"],
                  "mbytes": (c0["bytes_act_env"] + c0["bytes_update"] + c1["bytes_act_env"]
                             + c1["bytes_update"]) / 2e6,
                  "dealer_rounds": c0["dealer_rounds"], "dealer_mbytes": c0["dealer_bytes"] / 1e6,
                  "dealer_requests": c0.get("dealer_requests", c0["dealer_rounds"] / 3)}
        floor.append({"network": name, "echo_rtt_median_s": echo[0], "echo_rtt_p90_s": echo[1],
                      "router_max_lateness_s": late, **calls["value"]})
        rows.append({"network": name, "link": mode, "bandwidth_bit_s": bandwidth, "rtt_s": rtt, "wall_s": wall,
                     "measured_s": statistics.median(p0["timing"]["iteration"][rest]),
                     "dealer_wait_s": statistics.median(p0["timing"]["dealer"][rest]), **counts})
    # compute and the dealer's work, ~no network: the router runs without delay or limit, before and after
    base = [row["link"] == "router" and row["bandwidth_bit_s"] is None for row in rows]
    compute = statistics.mean(row["measured_s"] for row, b in zip(rows, base) if b)
    # the per-call model: each counted round costs what one opening costs more than without delay, each dealer
    # request what a product costs more than an opening (both measured on the same network just before)
    undelayed = [f for f, b in zip(floor, base) if b]
    base_open = statistics.mean(f["opening_s"] for f in undelayed)
    base_request = statistics.mean(f["product_s"] - f["opening_s"] for f in undelayed)
    for f, row in zip(floor, rows):
        f["opening_extra_s"] = f["opening_s"] - base_open
        f["request_extra_s"] = f["product_s"] - f["opening_s"] - base_request
        if row["rtt_s"] > 0:
            f.update(opening_round_trips=f["opening_extra_s"] / row["rtt_s"],
                     request_round_trips=f["request_extra_s"] / row["rtt_s"])
        byte_s = (row["mbytes"] + row["dealer_mbytes"]) * 8e6 / row["bandwidth_bit_s"] if row["bandwidth_bit_s"] else 0
        row["call_model_s"] = (compute + row["rounds"] * f["opening_extra_s"]
                               + row["dealer_requests"] * f["request_extra_s"] + byte_s)
        row["call_model_error"] = row["call_model_s"] / row["measured_s"] - 1
    for row in rows:
        players, dealer = (comm_model_s(row["rounds"], row["mbytes"], row["dealer_rounds"], row["dealer_mbytes"],
                                        row["rtt_s"], row["bandwidth_bit_s"]) if row["bandwidth_bit_s"] else (0, 0))
        row.update(players_comm_s=players, dealer_comm_s=dealer, model_s=compute + players + dealer,
                   relative_error=(compute + players + dealer) / row["measured_s"] - 1)
    return {"benchmark": "bench_secure_network", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "args": {k: vars(args)[k] for k in ("iterations", "pretrain_episodes", "seed", "hidden", "batch",
                                                 "precision_bits")},
            "batch_dealer": bool(batch_dealer),
            "cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(), "compute_s": compute, "floor": floor, "network_check": rows}


def compare_batching(args, cfg: MADDPGConfig) -> dict:
    """The record of ``--compare-batching``: the same secure run (seeds, seeded dealer) with one dealer
    request per tuple and with each stage attempt's requests batched, one after the other in this process
    state, and whether they agree bit for bit."""
    import numpy as np

    from ppal_lab.secure.secure_maddpg import run_secure_phase

    torch.set_num_threads(1)
    learner = pretrained_learner(args.seed, cfg, pretrain_episodes=args.pretrain_episodes)
    load_before, runs, phases = os.getloadavg(), [], []
    for batch in (False, True):
        phase = run_secure_phase(learner, args.iterations, SecureSettings(precision_bits=args.precision_bits,
                                                                          batch_dealer=batch),
                                 pretrain_episodes=args.pretrain_episodes, sharing_seed=args.seed)
        s = phase.summary()
        phases.append(phase)
        runs.append({"batch_dealer": batch, **{k: s[k] for k in ("online_ms", "dealer_ms", "total_ms",
                     "plain_ms", "online_ratio", "total_ratio", "rounds", "mbytes", "dealer_rounds",
                     "dealer_mbytes", "dealer_requests", "retries")}, "secure_phase_wall_s": phase.wall_s})
    a, b = phases
    identical = all(np.array_equal(x, y) for k in a.secure_weights
                    for x, y in zip(a.secure_weights[k], b.secure_weights[k]))
    return {"benchmark": "bench_secure_maddpg_batching", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "args": {k: vars(args)[k] for k in SETTINGS}, "cpus": os.cpu_count(),
            "platform": platform.platform(), "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
            "runs": runs, "identical_weights": bool(identical),
            "same_player_traffic": a.comm[["rounds", "bytes"]].equals(b.comm[["rounds", "bytes"]])}


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
    ap.add_argument("--network-check", action="store_true",
                    help="validate the cost model in network namespaces with a delaying router (root)")
    ap.add_argument("--compare-batching", action="store_true",
                    help="the secure run with one dealer request per tuple and with batched requests (needs "
                    "--out); with --network-check: the check batched, then one request per tuple")
    ap.add_argument("--no-batch-dealer", action="store_true",
                    help="one dealer request per tuple (default: each stage attempt's requests in one message)")
    ap.add_argument("--out", default=None, help="default data/results/bench_secure_maddpg_full.json "
                    "(bench_secure_network.json with --network-check)")
    args = ap.parse_args(argv)
    if args.out is None:
        name = "bench_secure_network.json" if args.network_check else "bench_secure_maddpg_full.json"
        args.out = str(ROOT / "data" / "results" / name)
    check_range("iterations", args.iterations, 1)
    check_range("pretrain_episodes", args.pretrain_episodes, 0)
    check_range("precision_bits", args.precision_bits, *TRAINING_PRECISION_BITS_RANGE)
    check_range("nudges", args.nudges, 2)   # an interval over the nudges needs two
    check_range("baseline_profile", args.baseline_profile, 0)
    cfg = MADDPGConfig(hidden=args.hidden, batch_size=args.batch)
    if args.network_check:
        record = network_check(args, batch_dealer=not args.no_batch_dealer)
        if args.compare_batching:     # the same check with one dealer request per tuple, just after
            other = network_check(args, batch_dealer=False)
            record["one_request_per_tuple"] = {k: other[k] for k in ("created", "load_avg_before", "load_avg_after",
                                                                     "compute_s", "floor", "network_check")}
        write_json_atomic(args.out, record)
        print(json.dumps({k: record[k] for k in ("floor", "network_check")}, indent=1))
        return record
    if args.compare_batching:
        if args.out == str(ROOT / "data" / "results" / "bench_secure_maddpg_full.json"):
            raise ParameterError("--out", args.out, "another file with --compare-batching")
        record = compare_batching(args, cfg)
        write_json_atomic(args.out, record)
        print(json.dumps(record, indent=1))
        return record
    if args.null_only:
        record = add_null(args, cfg)
        write_json_atomic(args.out, record)
        print(json.dumps(record["nudge_null"], indent=1))
        return record
    load_before = os.getloadavg()
    start = time.perf_counter()
    phases, null = equivalence_and_null([args.seed], cfg, args.iterations,
                                        SecureSettings(precision_bits=args.precision_bits,
                                                       batch_dealer=not args.no_batch_dealer),
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
    args_record = {k: v for k, v in vars(args).items() if k not in ("null_only", "network_check",
                                                                     "compare_batching", "no_batch_dealer")}
    record = {"benchmark": "bench_secure_maddpg_full", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "args": args_record, "cpus": os.cpu_count(), "platform": platform.platform(),
              "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
              "batch_dealer": not args.no_batch_dealer, **summary, "total_wall_s": wall, "secure_phase_wall_s": phase.wall_s,
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
