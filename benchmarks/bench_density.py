"""Density-aware acquisition (seed 001's uncertainty x density ratio) at 10^4 to 10^6 pool items.

One acquisition step from scratch on the magnet data (50 features, 80% missing values): class
probabilities of a fitted classifier on the whole pool, the pool KDE on a reference subsample of
``--n-reference`` items, the KDE of ``--n-labelled`` labelled items, and the top-``--batch`` selection
(:func:`ppal_lab.learning.density.density_query` with its parts timed separately). The classifier (mean
imputation + logistic regression) is fitted once on the labelled items, outside the timing.

For comparison, at the sizes up to ``--seed-max`` the seed's own computation is timed too: a
scikit-learn ``KernelDensity`` fitted on the *whole* pool and evaluated on the whole pool (O(n^2)), and
``KernelDensity`` with its default tree on the same reference subsample as ours.

Usage::

    python benchmarks/bench_density.py --sizes 10000 100000 1000000 --repeats 3

Writes ``data/results/bench_density.json`` atomically (``ppal_lab.compendium.results.write_json_atomic``) with
medians, the fitted scaling exponent (slope of log time on log size) and whether 100,000 items took at
most 5 s (by wall time, and by CPU time, which does not grow with other processes' load).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.learning import acquisition as aq, active, density  # noqa: E402
from ppal_lab.data import make_magnet_grades  # noqa: E402
from ppal_lab.compendium.errors import ParameterError, check_range  # noqa: E402
from ppal_lab.compendium.results import library_versions, write_json_atomic  # noqa: E402

BUDGET_ITEMS, BUDGET_S = 100_000, 5.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                    help="pool sizes (items), each >= 1000")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per size, >= 1")
    ap.add_argument("--n-labelled", type=int, default=200, help="labelled items, >= 2")
    ap.add_argument("--n-reference", type=int, default=1000, help="reference subsample of the pool KDE")
    ap.add_argument("--batch", type=int, default=20, help="items selected per step, >= 1")
    ap.add_argument("--bandwidth", type=float, default=0.5, help="KDE bandwidth (standardised units)")
    ap.add_argument("--seed-max", type=int, default=20_000,
                    help="largest size at which the seed's O(n^2) KDE is also timed")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data and the draws")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "bench_density.json",
                    help="where the JSON record goes")
    args = ap.parse_args(argv)
    for s in args.sizes:
        check_range("sizes", s, 1000)
    check_range("repeats", args.repeats, 1)
    check_range("n_labelled", args.n_labelled, 2)
    check_range("n_reference", args.n_reference, 2)
    check_range("batch", args.batch, 1)
    check_range("bandwidth", args.bandwidth, 0, low_open=True)
    check_range("seed", args.seed, 0)
    if args.n_labelled + args.batch > min(args.sizes):
        raise ParameterError("n_labelled", args.n_labelled, f"+ batch <= the smallest size {min(args.sizes)}")
    return args


def _time(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_size(n: int, args: argparse.Namespace) -> dict:
    data = make_magnet_grades(n_per_month=n, n_months=1, drift=False, seed=args.seed)
    X, y = data.to_numpy()
    rng = np.random.default_rng(args.seed)
    lab = rng.choice(n, size=args.n_labelled, replace=False)
    if np.unique(y[lab]).size < 2:
        lab[-1] = int(np.flatnonzero(y != y[lab[0]])[0])
    model = aq.make_classifier("logreg", args.seed).fit(X[lab], y[lab])
    Z, = aq.geometry(X)

    parts = {"predict_proba": [], "pool_density": [], "labelled_density": [], "select": [], "total": [],
             "total_cpu": []}
    picks_first = None
    for r in range(args.repeats):
        t_tot, c_tot = time.perf_counter(), time.process_time()
        t_p, proba = _time(lambda: model.predict_proba(X))
        t_pool, log_pool = _time(lambda: density.pool_log_density(Z, args.bandwidth, args.n_reference,
                                                            np.random.default_rng(args.seed + r)))
        t_lab, log_lab = _time(lambda: density.kde_log_density(Z, Z[lab], args.bandwidth))

        def select():
            cand = np.setdiff1d(np.arange(n), lab)
            score = density.density_scores(proba[cand], (log_pool - log_lab)[cand])
            score = np.where(np.isfinite(score), score, -1e300)
            return cand[active.top_k(score, args.batch)]

        t_sel, picks = _time(select)
        parts["total"].append(time.perf_counter() - t_tot)
        parts["total_cpu"].append(time.process_time() - c_tot)
        for k, v in (("predict_proba", t_p), ("pool_density", t_pool), ("labelled_density", t_lab),
                     ("select", t_sel)):
            parts[k].append(v)
        if picks_first is None:
            picks_first = picks
    # the timed pieces are exactly density_query (same reference draw as repeat 0)
    check = density.density_query(model, X, Z, lab, args.batch, args.bandwidth, args.n_reference,
                             np.random.default_rng(args.seed))
    row = {"items": n, "features": int(X.shape[1]), "missing_share": float(np.isnan(X).mean()),
           **{f"{k}_median_s": float(np.median(v)) for k, v in parts.items()},
           "total_all_s": parts["total"], "same_picks_as_density_query": bool(
               np.array_equal(np.sort(check), np.sort(picks_first)))}

    if n <= args.seed_max:
        from sklearn.neighbors import KernelDensity

        t_seed, _ = _time(lambda: KernelDensity(bandwidth=args.bandwidth).fit(Z).score_samples(Z))
        ref = np.sort(np.random.default_rng(args.seed).choice(n, size=min(args.n_reference, n),
                                                               replace=False))
        t_tree, _ = _time(lambda: KernelDensity(bandwidth=args.bandwidth).fit(Z[ref]).score_samples(Z))
        row["seed_full_kde_pool_density_s"] = t_seed
        row["sklearn_tree_kde_same_reference_s"] = t_tree
    return row


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    t0 = time.perf_counter()
    rows = []
    for n in sorted(args.sizes):
        rows.append(bench_size(n, args))
        r = rows[-1]
        extra = ""
        if "seed_full_kde_pool_density_s" in r:
            extra = (f"  seed O(n^2) pool KDE {r['seed_full_kde_pool_density_s']:.2f} s,"
                     f" sklearn tree KDE on the same reference {r['sklearn_tree_kde_same_reference_s']:.2f} s")
        print(f"{n:>9} items: total {r['total_median_s']:.3f} s wall, {r['total_cpu_median_s']:.3f} s CPU (proba {r['predict_proba_median_s']:.3f},"
              f" pool KDE {r['pool_density_median_s']:.3f}, labelled KDE {r['labelled_density_median_s']:.3f},"
              f" select {r['select_median_s']:.3f}){extra}", flush=True)
    sizes = np.array([r["items"] for r in rows], dtype=float)
    totals = np.array([r["total_median_s"] for r in rows])
    slope = float(np.polyfit(np.log(sizes), np.log(totals), 1)[0]) if len(rows) > 1 else None
    at_budget = [r for r in rows if r["items"] == BUDGET_ITEMS]
    meets = bool(at_budget[0]["total_median_s"] <= BUDGET_S) if at_budget else None
    meets_cpu = bool(at_budget[0]["total_cpu_median_s"] <= BUDGET_S) if at_budget else None
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    record = {
        "benchmark": "bench_density",
        "description": "one density-aware acquisition step (predict_proba + pool KDE on a reference "
                       "subsample + labelled KDE + top-k) on the magnet data; medians over repeats",
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": library_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "load_average_at_end": load},
        "rows": rows,
        "scaling_exponent": slope,
        "budget": {"items": BUDGET_ITEMS, "seconds": BUDGET_S, "met": meets,
                   "met_by_cpu_time": meets_cpu,
                   "note": "wall time depends on the machine's load; CPU time (all threads of this "
                           "process) bounds the wall time of the same work on an idle machine"},
        "wall_time_s": time.perf_counter() - t0,
    }
    write_json_atomic(args.out, record)
    print(f"scaling exponent (log time vs log items): {slope:.3f}" if slope is not None else "")
    print(f"{BUDGET_ITEMS} items within {BUDGET_S} s: wall {meets}, CPU time {meets_cpu}; "
          f"load average {load}")
    print(f"wrote {args.out}")
    return 0 if meets in (True, None) and all(r["same_picks_as_density_query"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
