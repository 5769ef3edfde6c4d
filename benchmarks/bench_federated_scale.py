"""The federated DP active-learning protocol on Flower's simulation engine at 5 to 50+ sites: flat
against hierarchical aggregation and compressed updates.

For every number of sites and every method of ``--methods``: one Flower simulation (Ray, resources for a 2-core machine, telemetry off,
nothing contacts the network) of the protocol of ``ppal_lab.federated`` on the remanufacturing data,
split non-IID over the sites, and the same run on the in-process engine. Recorded per size: wall time
per round (the orchestrator's round: training, evaluation, query, labelling, all messages included)
and Ray's start-up, payload bytes per round per site (arrays and configuration that the orchestrator
sends and receives; Flower's framing not included), final accuracy, epsilon spent per site, and
whether Flower reproduced the in-process model and ledgers.

Methods (the protocol's settings, ``ppal_lab.federated``): ``float32`` (flat FedAvg, float32 models),
``int8`` (flat, sites send their update stochastically rounded to ``--quant-bits``), ``topk`` (flat,
the ``--topk-fraction`` largest coordinates of update + residual, error feedback) and
``hierarchical`` (HierFAVG, Liu et al. 2020: ``ceil(sqrt(sites))`` edges, the cloud averages them
every ``--kappa`` rounds and in the last round; the edges are logical tiers inside the ServerApp).
Bytes are counted two ways: the Flower payload of every message (arrays and configuration, all
protocol steps), and the array bytes of the training tier: each site's encoded update up and the
float32 model down ("site tier"), and what passes through the cloud ("cloud tier": flat, all the
sites' training traffic; hierarchical, the edge models up and the cloud model down in a cloud round).

Sites hold ``--items-per-site`` items on average (a non-IID split), start from ``--initial-per-site``
labels and the consortium buys ``--batch-per-site`` labels per site and round, so the per-site work is
the same at every size and the rows show what the number of sites costs. Flower runs the first seed;
the accuracy is also recorded for ``--accuracy-seeds`` repeats (data, split and runs from seed, seed +
1, ...) on the in-process engine, which Flower reproduces bit for bit (checked on the first).

Usage::

    python benchmarks/bench_federated_scale.py --sites 5 10 20 50 --rounds 5 \
        --methods float32 int8 topk hierarchical

Writes ``data/results/bench_federated_scale.json`` atomically.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.compendium.results import write_json_atomic  # noqa: E402
from ppal_lab.compendium.errors import ParameterError, check_range  # noqa: E402
from ppal_lab.data import horizontal_partition, make_remanufacturing  # noqa: E402
from ppal_lab.federated import run_federated_al  # noqa: E402
from ppal_lab.federated.flower_app import RAY_BACKEND, run_flower_simulation  # noqa: E402

METHODS = ("float32", "int8", "topk", "hierarchical")


def method_settings(method: str, n_sites: int, args: argparse.Namespace) -> dict:
    """The protocol settings of ``method`` at ``n_sites`` sites."""
    if method == "int8":
        return {"compression": "int8", "quant_bits": args.quant_bits}
    if method == "topk":
        return {"compression": "topk", "topk_fraction": args.topk_fraction}
    if method == "hierarchical":
        return {"edges": math.ceil(math.sqrt(n_sites)), "kappa": args.kappa}
    return {}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, nargs="+", default=[5, 10, 20, 50], help="numbers of sites, each >= 2")
    ap.add_argument("--rounds", type=int, default=5, help="query rounds per run, >= 1")
    ap.add_argument("--items-per-site", type=int, default=150, help="pool items per site, >= 20")
    ap.add_argument("--initial-per-site", type=int, default=2, help="random labels per site at the start")
    ap.add_argument("--batch-per-site", type=int, default=2, help="labels bought per site and round")
    ap.add_argument("--epsilon", type=float, default=2.0, help="each site's budget (delta 1e-5)")
    ap.add_argument("--strategy", default="least_confident", help="acquisition rule")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data, the partition and the runs")
    ap.add_argument("--methods", nargs="+", default=["float32"], choices=METHODS,
                    help="aggregation and compression methods to run at every size")
    ap.add_argument("--quant-bits", type=int, default=8, help="bits per value of int8 updates (2..16)")
    ap.add_argument("--topk-fraction", type=float, default=0.1, help="share of coordinates top-k sends")
    ap.add_argument("--models", nargs="+", default=["logreg"], choices=["logreg", "mlp"],
                    help="global models to run (logreg: 32 parameters; mlp: one hidden layer)")
    ap.add_argument("--hidden", type=int, default=64, help="hidden units of the mlp")
    ap.add_argument("--accuracy-seeds", type=int, default=5,
                    help="repeats (seed, seed + 1, ...: data, split and runs) of the in-process engine behind "
                         "the accuracy columns; Flower runs the first and must reproduce it")
    ap.add_argument("--kappa", type=int, default=2, help="hierarchical: rounds between cloud averages")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "bench_federated_scale.json",
                    help="where the JSON record goes")
    args = ap.parse_args(argv)
    for s in args.sites:
        check_range("sites", s, 2)
    check_range("rounds", args.rounds, 1)
    check_range("items_per_site", args.items_per_site, 20)
    check_range("initial_per_site", args.initial_per_site, 1)
    check_range("batch_per_site", args.batch_per_site, 1)
    check_range("seed", args.seed, 0)
    check_range("quant_bits", args.quant_bits, 2, 16)
    check_range("topk_fraction", args.topk_fraction, 0, 1, low_open=True)
    check_range("kappa", args.kappa, 1)
    check_range("hidden", args.hidden, 1)
    check_range("accuracy_seeds", args.accuracy_seeds, 1)
    if args.initial_per_site + args.rounds * args.batch_per_site > args.items_per_site:
        raise ParameterError("rounds", args.rounds, "initial + rounds * batch labels within a site's items")
    return args


def _data(n_sites: int, args: argparse.Namespace, seed: int):
    n_pool = n_sites * args.items_per_site
    n_test = 500
    data = make_remanufacturing(n_pool + n_test, seed=seed)
    X, y = data.to_numpy()
    order = np.random.default_rng(seed).permutation(len(y))
    test, pool = np.sort(order[:n_test]), np.sort(order[n_test:])
    parts = horizontal_partition(data.subset(pool), n_sites, non_iid=0.5, seed=seed)
    return X[pool], y[pool], X[test], y[test], parts


def _row(n_sites: int, model: str, method: str, args: argparse.Namespace) -> dict:
    X, y, Xt, yt, parts = _data(n_sites, args, args.seed)
    settings = dict(label_budget=n_sites * (args.initial_per_site + args.rounds * args.batch_per_site),
                    batch_size=n_sites * args.batch_per_site, strategy=args.strategy, epsilon=args.epsilon,
                    seed=args.seed, initial_labels=n_sites * args.initial_per_site, model=model,
                    hidden=args.hidden, **method_settings(method, n_sites, args))
    t0 = time.perf_counter()
    local = run_federated_al(X, y, Xt, yt, parts, **settings)
    local_s = time.perf_counter() - t0
    # the accuracy's repeats on the in-process engine (the first one is the run Flower must reproduce)
    repeats = [local.final_accuracy]
    for k in range(1, args.accuracy_seeds):
        Xk, yk, Xtk, ytk, parts_k = _data(n_sites, args, args.seed + k)
        repeats.append(run_federated_al(Xk, yk, Xtk, ytk, parts_k, **dict(settings, seed=args.seed + k)
                                        ).final_accuracy)
    run = run_flower_simulation(X, y, Xt, yt, parts, **settings)
    res = run.result
    rounds = len(res.curve.accuracy)  # training rounds (one more than query rounds)
    same = bool(np.allclose(res.final_params, local.final_params, rtol=0, atol=1e-6)
                and json.dumps(res.ledgers) == json.dumps(json.loads(json.dumps(local.ledgers)))
                and res.traffic == local.traffic)
    eps = res.epsilon_spent
    traffic = res.traffic
    train_sent, train_received = run.bytes_by_step.get("train", [0, 0])
    return {
        "n_sites": n_sites, "model": model, "n_params": int(res.final_params.size), "method": method, "settings": method_settings(method, n_sites, args),
        "pool_sizes": [int(p.size) for p in parts], "training_rounds": rounds,
        "labels": int(res.curve.n_labels[-1]),
        "flower_wall_s": run.wall_s, "flower_round_s": list(res.round_time_s),
        "flower_round_s_median": float(np.median(res.round_time_s)),
        "flower_startup_s": run.wall_s - float(np.sum(res.round_time_s)),
        "in_process_round_s_median": float(np.median(local.round_time_s)), "in_process_wall_s": local_s,
        "bytes_per_round_per_site_sent": (run.sent_bytes / rounds).tolist(),
        "bytes_per_round_per_site_received": (run.received_bytes / rounds).tolist(),
        "bytes_per_round_per_site_median": float(np.median((run.sent_bytes + run.received_bytes) / rounds)),
        "train_message_bytes_per_site_round": (train_sent + train_received) / rounds / n_sites,
        "update_bytes_per_site_round": float(np.sum(traffic["update_bytes"]) / rounds / n_sites),
        "site_tier_bytes_per_site_round": float((np.sum(traffic["update_bytes"]) + np.sum(traffic["model_bytes"]))
                                                / rounds / n_sites),
        "cloud_bytes_per_round": float(np.mean(traffic["cloud_bytes"])),
        "traffic": traffic,
        "final_accuracy": float(res.final_accuracy),
        "accuracy_seeds": [args.seed + k for k in range(args.accuracy_seeds)],
        "accuracy_per_seed": [float(a) for a in repeats], "accuracy_curve": res.curve.accuracy.tolist(),
        "epsilon_spent_per_site": eps.tolist(), "epsilon_spent_max": float(eps.max()),
        "noise_multiplier": res.noise_multiplier, "same_as_in_process": same,
    }


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse(argv)
    except ParameterError as e:  # bad input: one line, before any work
        print(f"error: {e}", file=sys.stderr)
        return 2
    import flwr
    import ray

    t0 = time.perf_counter()
    record = {
        "benchmark": "bench_federated_scale",
        "description": "federated DP active learning on Flower's simulation engine (Ray) at several "
                       "numbers of sites, flat float32 against compressed updates and hierarchical "
                       "aggregation; per-site work held fixed",
        "command": "python benchmarks/bench_federated_scale.py " + " ".join(sys.argv[1:] if argv is None
                                                                             else argv),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"},
        "ray_backend": RAY_BACKEND,
        "versions": {"python": platform.python_version(), "flwr": flwr.__version__, "ray": ray.__version__,
                     "torch": torch.__version__, "numpy": np.__version__},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count()},
        "rows": [],
        "complete": False,  # the record is rewritten after every row: an interrupted run says so
    }
    print(f"{'sites':>5} {'model':>6} {'method':>12} {'round s':>8} {'start s':>8} {'B/round/site':>13} "
          f"{'update B':>9} {'cloud B':>9} {'accuracy':>8} {'eps max':>8} {'same':>5}")
    for n in args.sites:
        for model, method in [(m, x) for m in args.models for x in args.methods]:
            r = _row(n, model, method, args)
            record["rows"].append(r)
            record["wall_time_s"] = time.perf_counter() - t0
            write_json_atomic(args.out, record)
            print(f"{n:>5} {model:>6} {method:>12} {r['flower_round_s_median']:>8.2f} "
                  f"{r['flower_startup_s']:>8.1f} {r['bytes_per_round_per_site_median']:>13.0f} "
                  f"{r['update_bytes_per_site_round']:>9.0f} {r['cloud_bytes_per_round']:>9.0f} "
                  f"{np.mean(r['accuracy_per_seed']):>8.3f} {r['epsilon_spent_max']:>8.3f} "
                  f"{str(r['same_as_in_process']):>5}", flush=True)
    record["complete"] = True
    write_json_atomic(args.out, record)
    print(f"wrote {args.out}")
    return 0 if all(r["same_as_in_process"] for r in record["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
