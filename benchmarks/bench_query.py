"""One active-learning query round: ppal_lab.learning.active.query vs scikit-activeml's UncertaintySampling.

Both sides use the *same fitted* LogisticRegression and the same pool; scikit-activeml is called with
``fit_clf=False`` on a ``SklearnClassifier`` wrapping that model, so neither side refits. Each timed
call includes ``predict_proba`` on the whole pool (the shared floor, reported separately). Repeats
are interleaved (ours/theirs alternate which goes first) in one process, medians are reported, and
the picks are checked to be identical.

Usage::

    python benchmarks/bench_query.py --sizes 10000 100000 --repeats 15

Writes ``data/results/bench_query.json`` atomically.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import skactiveml
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from skactiveml.classifier import SklearnClassifier
from skactiveml.pool import UncertaintySampling

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.compendium.results import write_json_atomic  # noqa: E402
from ppal_lab.learning.active import query  # noqa: E402
from ppal_lab.compendium.errors import ParameterError, check_range  # noqa: E402

METHODS = {"least_confident": "least_confident", "margin": "margin_sampling", "entropy": "entropy"}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                    help="pool sizes (rows), each >= 100")
    ap.add_argument("--repeats", type=int, default=15, help="timed repeats per cell, >= 3")
    ap.add_argument("--batch-size", type=int, default=10, help="items per query round, >= 1")
    ap.add_argument("--n-features", type=int, default=20, help="features of the synthetic data")
    ap.add_argument("--n-classes", type=int, default=2, help="classes of the synthetic data, >= 2")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data and the model")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "bench_query.json",
                    help="where the JSON record goes")
    args = ap.parse_args(argv)
    for s in args.sizes:
        check_range("sizes", s, 100)
    check_range("repeats", args.repeats, 3)
    check_range("n_classes", args.n_classes, 2)
    check_range("n_features", args.n_features, max(args.n_classes, 5))
    check_range("seed", args.seed, 0)
    if any(args.batch_size > s for s in args.sizes):
        raise ParameterError("batch_size", args.batch_size, f"<= the smallest size {min(args.sizes)}")
    check_range("batch_size", args.batch_size, 1)
    return args


def _timed(fn) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench(args: argparse.Namespace) -> dict:
    rows = []
    for n in args.sizes:
        X, y = make_classification(n_samples=n + 2000, n_features=args.n_features,
                                   n_informative=min(args.n_features, 10),
                                   n_classes=args.n_classes, random_state=args.seed)
        model = LogisticRegression(max_iter=2000).fit(X[:2000], y[:2000])
        X_pool = np.ascontiguousarray(X[2000:])
        y_missing = np.full(n, np.nan)  # every pool item unlabelled for skactiveml
        clf = SklearnClassifier(model, classes=np.unique(y))
        for ours_name, theirs_name in METHODS.items():
            us = UncertaintySampling(method=theirs_name, random_state=args.seed)
            ours_fn = lambda: query(model, X_pool, ours_name, args.batch_size)  # noqa: E731
            theirs_fn = lambda: us.query(X_pool, y_missing, clf, fit_clf=False,  # noqa: E731
                                         batch_size=args.batch_size)
            proba_fn = lambda: model.predict_proba(X_pool)  # noqa: E731
            for fn in (ours_fn, theirs_fn, proba_fn):  # warm-up (also the wrapper's one-off copy)
                fn()
            t_ours, t_theirs, t_proba = [], [], []
            same = True
            for r in range(args.repeats):
                order = (ours_fn, theirs_fn) if r % 2 == 0 else (theirs_fn, ours_fn)
                res = {}
                for fn in order:
                    dt, out = _timed(fn)
                    res[fn] = (dt, out)
                t_ours.append(res[ours_fn][0])
                t_theirs.append(res[theirs_fn][0])
                same &= bool(np.array_equal(res[ours_fn][1], res[theirs_fn][1]))
                t_proba.append(_timed(proba_fn)[0])
            med_o, med_t = float(np.median(t_ours)), float(np.median(t_theirs))
            rows.append({"pool_size": n, "strategy": ours_name, "skactiveml_method": theirs_name,
                         "ours_median_s": med_o, "skactiveml_median_s": med_t,
                         "predict_proba_median_s": float(np.median(t_proba)),
                         "ratio_ours_over_theirs": med_o / med_t, "same_picks": same,
                         "ours_all_s": t_ours, "skactiveml_all_s": t_theirs})
    return {
        "benchmark": "bench_query",
        "description": "one query round (batch) on a fitted LogisticRegression; times include "
                       "predict_proba; medians over interleaved repeats",
        "parameters": {"sizes": args.sizes, "repeats": args.repeats, "batch_size": args.batch_size,
                       "n_features": args.n_features, "n_classes": args.n_classes,
                       "seed": args.seed},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__,
                     "scikit-activeml": getattr(skactiveml, "__version__", "unknown")},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count()},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    t0 = time.perf_counter()
    record = bench(args)
    record["wall_time_s"] = time.perf_counter() - t0
    print(f"{'pool':>9} {'strategy':<16} {'ours ms':>9} {'skactiveml ms':>14} {'proba ms':>9} "
          f"{'ours/theirs':>12} {'same picks':>10}")
    for r in record["rows"]:
        print(f"{r['pool_size']:>9} {r['strategy']:<16} {1e3 * r['ours_median_s']:>9.2f} "
              f"{1e3 * r['skactiveml_median_s']:>14.2f} {1e3 * r['predict_proba_median_s']:>9.2f} "
              f"{r['ratio_ours_over_theirs']:>12.3f} {str(r['same_picks']):>10}")
    write_json_atomic(args.out, record)
    print(f"wrote {args.out}")
    slower = [r for r in record["rows"] if r["ratio_ours_over_theirs"] > 1.0]
    if slower:
        print("ours slower than scikit-activeml in:",
              ", ".join(f"{r['strategy']}@{r['pool_size']}" for r in slower))
    return 1 if slower or not all(r["same_picks"] for r in record["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
