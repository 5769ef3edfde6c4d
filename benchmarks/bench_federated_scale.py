"""The federated DP active-learning protocol on Flower's simulation engine at 5 to 50+ sites.

For every number of sites: one Flower simulation (Ray, resources for a 2-core machine, telemetry off,
nothing contacts the network) of the protocol of ``ppal_lab.federated`` on the remanufacturing data,
split non-IID over the sites, and the same run on the in-process engine. Recorded per size: wall time
per round (the orchestrator's round: training, evaluation, query, labelling, all messages included)
and Ray's start-up, payload bytes per round per site (arrays and configuration that the orchestrator
sends and receives; Flower's framing not included), final accuracy, epsilon spent per site, and
whether Flower reproduced the in-process model and ledgers.

Sites hold ``--items-per-site`` items on average (a non-IID split), start from ``--initial-per-site``
labels and the consortium buys ``--batch-per-site`` labels per site and round, so the per-site work is
the same at every size and the rows show what the number of sites costs.

Usage::

    python benchmarks/bench_federated_scale.py --sites 5 10 20 50 --rounds 5

Writes ``data/results/bench_federated_scale.json`` atomically.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.compendium.errors import ParameterError, check_range  # noqa: E402
from ppal_lab.data import horizontal_partition, make_remanufacturing  # noqa: E402
from ppal_lab.federated import run_federated_al  # noqa: E402
from ppal_lab.federated.flower_app import RAY_BACKEND, run_flower_simulation  # noqa: E402


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
    if args.initial_per_site + args.rounds * args.batch_per_site > args.items_per_site:
        raise ParameterError("rounds", args.rounds, "initial + rounds * batch labels within a site's items")
    return args


def _data(n_sites: int, args: argparse.Namespace):
    n_pool = n_sites * args.items_per_site
    n_test = 500
    data = make_remanufacturing(n_pool + n_test, seed=args.seed)
    X, y = data.to_numpy()
    order = np.random.default_rng(args.seed).permutation(len(y))
    test, pool = np.sort(order[:n_test]), np.sort(order[n_test:])
    parts = horizontal_partition(data.subset(pool), n_sites, non_iid=0.5, seed=args.seed)
    return X[pool], y[pool], X[test], y[test], parts


def _row(n_sites: int, args: argparse.Namespace) -> dict:
    X, y, Xt, yt, parts = _data(n_sites, args)
    settings = dict(label_budget=n_sites * (args.initial_per_site + args.rounds * args.batch_per_site),
                    batch_size=n_sites * args.batch_per_site, strategy=args.strategy, epsilon=args.epsilon,
                    seed=args.seed, initial_labels=n_sites * args.initial_per_site)
    t0 = time.perf_counter()
    local = run_federated_al(X, y, Xt, yt, parts, **settings)
    local_s = time.perf_counter() - t0
    run = run_flower_simulation(X, y, Xt, yt, parts, **settings)
    res = run.result
    rounds = len(res.curve.accuracy)  # training rounds (one more than query rounds)
    same = bool(np.allclose(res.final_params, local.final_params, rtol=0, atol=1e-6)
                and json.dumps(res.ledgers) == json.dumps(json.loads(json.dumps(local.ledgers))))
    eps = res.epsilon_spent
    return {
        "n_sites": n_sites, "pool_sizes": [int(p.size) for p in parts], "training_rounds": rounds,
        "labels": int(res.curve.n_labels[-1]),
        "flower_wall_s": run.wall_s, "flower_round_s": list(res.round_time_s),
        "flower_round_s_median": float(np.median(res.round_time_s)),
        "flower_startup_s": run.wall_s - float(np.sum(res.round_time_s)),
        "in_process_round_s_median": float(np.median(local.round_time_s)), "in_process_wall_s": local_s,
        "bytes_per_round_per_site_sent": (run.sent_bytes / rounds).tolist(),
        "bytes_per_round_per_site_received": (run.received_bytes / rounds).tolist(),
        "bytes_per_round_per_site_median": float(np.median((run.sent_bytes + run.received_bytes) / rounds)),
        "final_accuracy": float(res.final_accuracy), "accuracy_curve": res.curve.accuracy.tolist(),
        "epsilon_spent_per_site": eps.tolist(), "epsilon_spent_max": float(eps.max()),
        "noise_multiplier": res.noise_multiplier, "same_as_in_process": same,
    }


def _write_atomic(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=2)
            fh.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    import flwr
    import ray

    t0 = time.perf_counter()
    rows = []
    print(f"{'sites':>5} {'round s':>8} {'start s':>8} {'B/round/site':>13} {'accuracy':>8} "
          f"{'eps max':>8} {'same':>5}")
    for n in args.sites:
        r = _row(n, args)
        rows.append(r)
        print(f"{n:>5} {r['flower_round_s_median']:>8.2f} {r['flower_startup_s']:>8.1f} "
              f"{r['bytes_per_round_per_site_median']:>13.0f} {r['final_accuracy']:>8.3f} "
              f"{r['epsilon_spent_max']:>8.3f} {str(r['same_as_in_process']):>5}", flush=True)
    record = {
        "benchmark": "bench_federated_scale",
        "description": "federated DP active learning on Flower's simulation engine (Ray) at several "
                       "numbers of sites; per-site work held fixed",
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"},
        "ray_backend": RAY_BACKEND,
        "versions": {"python": platform.python_version(), "flwr": flwr.__version__, "ray": ray.__version__,
                     "torch": torch.__version__, "numpy": np.__version__},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count()},
        "rows": rows,
        "wall_time_s": time.perf_counter() - t0,
    }
    _write_atomic(args.out, record)
    print(f"wrote {args.out}")
    return 0 if all(r["same_as_in_process"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
