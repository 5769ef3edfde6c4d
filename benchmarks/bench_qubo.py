"""QUBO solvers on instances with known optima: time to target (TTS99) for our simulated bifurcation
and every peer, under equal wall-time budgets, one thread each.

Instance families (``ppal_lab.optimize.instances``), each with its target energy:

* ``planted`` — Wishart planted instances (Hamze et al. 2020) at ``--planted-sizes`` and every
  ``--alphas`` (smaller = harder); target: the planted ground-state energy (known by construction).
* ``sk`` — Sherrington–Kirkpatrick instances at ``--sk-sizes``; target: the exact ground state for
  ``n <= 24``, else the best energy any solver found in this run (``best_found``); the record gives
  the Parisi energy per spin beside it.
* ``mrmr`` — mRMR "select k" on real correlated data (scikit-learn's breast-cancer set, 30 features)
  and on the chapter's peer instance (``--mrmr-sizes``); ``densest`` — k-densest subgraph of G(n, 1/2)
  (``--densest-sizes``, ``--densest-k``); target: the optimum certified by
  ``cardinality_branch_and_bound`` (started from greedy + swap), or the best found when it runs out of
  ``--bnb-nodes`` (the record says which).

Rules fixed before any run (``ppal_lab.optimize.peers`` gives each solver's settings):

* Every solver gets the same wall-time budget per instance (``--budget-s``): its run (one call with
  ``--n-agents`` agents/reads/starts, new seed each time) is repeated until the budget is spent (at
  least ``--min-runs`` runs, at most ``--max-runs``).
* The same polish for all or for none (``--polish``; ``local`` = swap polish on "select k" problems,
  single-flip descent otherwise), its time counted in the run's time.
* One thread: BLAS/OpenMP pools limited to one by threadpoolctl and ``torch.set_num_threads(1)``; each
  run's CPU time is recorded beside its wall time.
* The machine's load average is recorded before and after; the record is flagged ``loaded`` when the
  1-minute load before exceeds ``--max-load`` (``--refuse-loaded`` then stops before any run).

Metrics (``ppal_lab.optimize.tts``): success probability per run and per read/agent (Wilson
intervals), TTS99 = median run time x ln(0.01)/ln(1 - p_run) with its interval, the residual energy per
spin against time (best so far minus target). Ours = ``bsb``; each instance lists TTS(ours)/TTS(peer)
for every peer, and whether the instance discriminates (headroom: a finite best TTS at least twice
below the better of the trivial solvers, ``random`` and ``greedy``; an instance no solver solves
within its budget does not discriminate either).

Usage::

    python benchmarks/bench_qubo.py                         # the full grid (about an hour)
    python benchmarks/bench_qubo.py --tiny --out /tmp/bench_qubo.json
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.chapters import ch05_qubo_feature_selection as fx  # noqa: E402
from ppal_lab.compendium.errors import check_range  # noqa: E402
from ppal_lab.compendium.results import write_json_atomic  # noqa: E402
from ppal_lab.optimize import instances as inst  # noqa: E402
from ppal_lab.optimize import peers, tts  # noqa: E402
from ppal_lab.optimize.exact import MAX_EXACT_N, exact_solve  # noqa: E402
from ppal_lab.optimize.qubo import MRMRProblem, mrmr_qubo, relevance_redundancy  # noqa: E402

OURS = "bsb"
TARGET_CONFIDENCE = 0.99
TRIVIAL = ("random", "greedy")  # the cheap baselines (with the polish, random + swap and greedy + swap)
DISCRIMINATION_FACTOR = 2.0     # headroom: the trivial solvers' best TTS at least this many times the best


TINY = dict(planted_sizes=[40], alphas=[1.0], sk_sizes=[16], mrmr_sizes=[40], densest_sizes=[30], k=6,
            densest_k=6, budget_s=0.3, max_runs=5, n_agents=8, max_steps=200, pkg_max_steps=500, sa_sweeps=100,
            tabu_timeout_ms=5, bnb_nodes=200_000)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planted-sizes", type=int, nargs="*", default=[100, 500, 1000])
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                    help="Wishart column ratios M/N (smaller = harder)")
    ap.add_argument("--sk-sizes", type=int, nargs="*", default=[20, 100, 500])
    ap.add_argument("--mrmr-sizes", type=int, nargs="*", default=[50, 200, 1000],
                    help="sizes of the chapter's peer instance (the real-data instance always runs)")
    ap.add_argument("--densest-sizes", type=int, nargs="*", default=[30, 200])
    ap.add_argument("--k", type=int, default=15, help="features to select (mRMR; the chapter's k)")
    ap.add_argument("--densest-k", type=int, default=12,
                    help="vertices to select: above G(n, 1/2)'s clique number (about 2 log2 n) "
                         "up to n = 200, else a k-clique exists and greedy finds it")
    ap.add_argument("--solvers", nargs="+", default=list(peers.SOLVERS), choices=peers.SOLVERS)
    ap.add_argument("--polish", default="local", choices=peers.POLISHES)
    ap.add_argument("--budget-s", type=float, default=10.0, help="wall seconds per solver and instance")
    ap.add_argument("--min-runs", type=int, default=1)
    ap.add_argument("--max-runs", type=int, default=200)
    ap.add_argument("--n-agents", type=int, default=32, help="agents / reads / starts per run")
    ap.add_argument("--max-steps", type=int, default=1000, help="our SB steps")
    ap.add_argument("--pkg-max-steps", type=int, default=10_000, help="the package's steps (its default)")
    ap.add_argument("--sa-sweeps", type=int, default=1000)
    ap.add_argument("--tabu-timeout-ms", type=int, default=20)
    ap.add_argument("--bnb-nodes", type=int, default=100_000, help="branch-and-bound node limit")
    ap.add_argument("--max-load", type=float, default=0.5, help="1-minute load above which it is flagged")
    ap.add_argument("--refuse-loaded", action="store_true", help="stop if the machine is loaded")
    ap.add_argument("--seed", type=int, default=0, help="instance seed; run r of a solver uses seed + r")
    ap.add_argument("--tiny", action="store_true", help="a seconds-long check of the whole pipeline (small "
                    "defaults, see TINY)")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "bench_qubo.json")
    if "--tiny" in (sys.argv[1:] if argv is None else argv):   # new defaults; explicit options still win
        ap.set_defaults(**TINY)
    args = ap.parse_args(argv)
    check_range("k", args.k, 2)
    for s in args.planted_sizes + args.sk_sizes:
        check_range("sizes", s, 2)
    check_range("densest_k", args.densest_k, 2)
    for s in args.mrmr_sizes:
        check_range("mrmr_sizes", s, args.k + 1)
    for s in args.densest_sizes:
        check_range("densest_sizes", s, args.densest_k + 1)
    for a in args.alphas:
        check_range("alphas", a, 0, 4, low_open=True)
    check_range("budget_s", args.budget_s, 0, low_open=True)
    check_range("min_runs", args.min_runs, 1)
    check_range("max_runs", args.max_runs, args.min_runs)
    for name in ("n_agents", "max_steps", "pkg_max_steps", "sa_sweeps", "tabu_timeout_ms", "bnb_nodes"):
        check_range(name, getattr(args, name), 1)
    check_range("max_load", args.max_load, 0)
    check_range("seed", args.seed, 0, 2**31 - 1 - args.max_runs)
    if OURS not in args.solvers:
        args.solvers = [OURS, *args.solvers]
    return args


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _certified(problem: MRMRProblem, bnb_nodes: int) -> tuple[float, str, float]:
    """(target, kind, seconds): the branch-and-bound optimum of a "select k" problem."""
    start = peers.polish(problem, peers.solver_samples("greedy", problem))[0]
    res = inst.cardinality_branch_and_bound(problem, incumbent=start, max_nodes=bnb_nodes)
    # the penalised energy of a feasible vector is its objective value
    return float(problem.energy(res.x)), ("certified" if res.certified else "best_found"), res.wall_time_s


def instances(args: argparse.Namespace):
    """Yield ``(family, label, n, problem, target or None, target_kind, extra)``."""
    for n in args.planted_sizes:
        for a in args.alphas:
            p = inst.wishart_planted(n, a, args.seed)
            yield "planted", f"planted n={n} alpha={a:g}", n, p.qubo, p.energy, "planted", {"alpha": a}
    for n in args.sk_sizes:
        model = inst.sk_instance(n, args.seed).to_qubo()
        ref = {"parisi_energy": inst.PARISI_E0 * n}
        if n <= MAX_EXACT_N:
            yield "sk", f"sk n={n}", n, model, exact_solve(model).energy, "exact", ref
        else:
            yield "sk", f"sk n={n}", n, model, None, "best_found", ref
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    cands = [("mrmr", "mrmr breast-cancer n=30", mrmr_qubo(*relevance_redundancy(X, y, seed=args.seed),
                                                          min(args.k, 29)))]
    cands += [("mrmr", f"mrmr peer n={n}", fx.peer_instance(n, args.k, 0.5, args.seed))
              for n in args.mrmr_sizes]
    cands += [("densest", f"densest n={n}", inst.densest_subgraph(n, args.densest_k, 0.5, args.seed))
              for n in args.densest_sizes]
    for family, label, problem in cands:
        target, kind, secs = _certified(problem, args.bnb_nodes)
        yield family, label, problem.n, problem, target, kind, {"k": problem.k, "certify_s": secs}


def run_solver(name: str, problem, args: argparse.Namespace) -> dict:
    """Runs of one solver until its budget is spent: per run wall and CPU seconds, every row's energy."""
    times, cpus, energies = [], [], []
    spent = 0.0
    for r in range(args.max_runs):
        if r >= args.min_runs and spent >= args.budget_s:
            break
        t0, c0 = time.perf_counter(), time.process_time()
        X = peers.solver_samples(name, problem, n_agents=args.n_agents, max_steps=args.max_steps,
                                 pkg_max_steps=args.pkg_max_steps, sa_sweeps=args.sa_sweeps,
                                 tabu_timeout_ms=args.tabu_timeout_ms, seed=args.seed + r)
        X = peers.polish(problem, X, args.polish)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        spent += dt
        times.append(dt)
        cpus.append(dc)
        energies.append(np.asarray(problem.energy(X), dtype=float).ravel().tolist())
    return {"run_times_s": times, "run_cpu_s": cpus, "energies": energies}


def _finite(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


def summarize(raw: dict, target: float, n: int, budget: float) -> dict:
    best = np.array([min(e) for e in raw["energies"]])
    reads = np.concatenate([np.asarray(e) for e in raw["energies"]])
    p_run, wins, runs, ci = tts.success_probability(best, target)
    p_read, read_wins, n_reads, read_ci = tts.success_probability(reads, target)
    t_run = float(np.median(raw["run_times_s"]))
    t99 = tts.tts(t_run, p_run, TARGET_CONFIDENCE)
    lo, hi = tts.tts_interval(t_run, ci, TARGET_CONFIDENCE)
    grid = np.geomspace(max(min(raw["run_times_s"]), 1e-4), max(budget, sum(raw["run_times_s"])), 12)
    resid = tts.residual_curve(raw["run_times_s"], best, target, grid) / n
    cpu = np.array(raw["run_cpu_s"]) / np.maximum(np.array(raw["run_times_s"]), 1e-12)
    return {"runs": runs, "successes": wins, "p_run": p_run, "p_run_ci": list(ci),
            "reads": n_reads, "p_read": p_read, "p_read_ci": list(read_ci),
            "median_run_s": t_run, "tts99_s": _finite(t99), "tts99_ci_s": [_finite(lo), _finite(hi)],
            "best_energy": float(best.min()), "median_best_energy": float(np.median(best)),
            "residual_grid_s": grid.tolist(),
            "residual_per_spin": [None if np.isnan(v) else float(v) for v in resid],
            "cpu_over_wall_max": float(cpu.max())}


def _ratio(ours: float | None, peer: float | None) -> float | None:
    """TTS(ours)/TTS(peer); None where both failed (no information), inf/0 where one did."""
    if ours is None and peer is None:
        return None
    if ours is None:
        return math.inf
    if peer is None:
        return 0.0
    return ours / peer if peer > 0 else math.inf


def bench(args: argparse.Namespace) -> dict:
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    load_before = os.getloadavg()
    loaded = load_before[0] > args.max_load
    results = []
    with threadpool_limits(limits=1):
        torch.set_num_threads(1)
        pools = [{"api": p["internal_api"], "threads": p["num_threads"]} for p in threadpool_info()]
        for idx, (family, label, n, problem, target, kind, extra) in enumerate(instances(args)):
            solvers = [s for s in args.solvers if s != "greedy" or isinstance(problem, MRMRProblem)]
            shift = idx % len(solvers)                    # rotate the order between instances
            raw = {s: run_solver(s, problem, args) for s in solvers[shift:] + solvers[:shift]}
            if target is None:
                target = min(min(min(e) for e in r["energies"]) for r in raw.values())
            rows = {s: summarize(raw[s], target, n, args.budget_s) for s in solvers}
            finite = [r["tts99_s"] for r in rows.values() if r["tts99_s"] is not None]
            best_tts = min(finite) if finite else None
            easy = [rows[s]["tts99_s"] for s in TRIVIAL if s in rows and rows[s]["tts99_s"] is not None]
            trivial = min(easy) if easy else None
            headroom = None if best_tts is None else (
                math.inf if trivial is None else trivial / max(best_tts, 1e-12))
            peers_ = [s for s in solvers if s != OURS]
            ratios = {s: _ratio(rows[OURS]["tts99_s"], rows[s]["tts99_s"]) for s in peers_}
            known = [v for v in ratios.values() if v is not None]
            results.append({
                "family": family, "instance": label, "n": n, "target_energy": float(target),
                "target_kind": kind, **extra, "solvers": rows,
                "tts_ratio_ours_over_peer": {s: (None if v is None else (str(v) if math.isinf(v) else v))
                                             for s, v in ratios.items()},
                "ours_tts_at_most_every_peer": bool(known) and all(v <= 1.0 for v in known)
                and rows[OURS]["tts99_s"] is not None,
                "headroom_trivial_over_best_tts": None if headroom is None else (
                    str(headroom) if math.isinf(headroom) else headroom),
                "discriminates": headroom is not None and headroom >= DISCRIMINATION_FACTOR})
            print(f"{label:<28} target {target:.5f} ({kind})", flush=True)
    load_after = os.getloadavg()
    loaded = loaded or load_after[0] > args.max_load + 1.0      # the benchmark itself adds one
    return {
        "benchmark": "bench_qubo",
        "description": "QUBO instances with known optima: TTS99, success probability per run and per "
                       "read, residual energy per spin against time; equal wall-time budgets, one thread",
        "ours": OURS, "target_confidence": TARGET_CONFIDENCE,
        "discrimination_factor": DISCRIMINATION_FACTOR,
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "torch": torch.__version__, "simulated-bifurcation": _version("simulated-bifurcation"),
                     "dwave-samplers": _version("dwave-samplers"), "dimod": _version("dimod"),
                     "threadpoolctl": _version("threadpoolctl")},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "load_average_before": list(load_before), "load_average_after": list(load_after),
                    "max_load": args.max_load, "loaded": bool(loaded), "thread_pools": pools,
                    "torch_threads": 1},
        "instances": results,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.refuse_loaded and os.getloadavg()[0] > args.max_load:
        print(f"refused: 1-minute load {os.getloadavg()[0]:.2f} > --max-load {args.max_load}")
        return 3
    t0 = time.perf_counter()
    record = bench(args)
    record["wall_time_s"] = time.perf_counter() - t0
    print(f"\n{'instance':<28} {'solver':<16} {'runs':>4} {'p_run':>6} {'p_read':>6} {'TTS99 s':>9}")
    for inst_ in record["instances"]:
        for s, r in inst_["solvers"].items():
            t = "inf" if r["tts99_s"] is None else f"{r['tts99_s']:.3f}"
            print(f"{inst_['instance']:<28} {s:<16} {r['runs']:>4} {r['p_run']:>6.2f} "
                  f"{r['p_read']:>6.2f} {t:>9}")
    write_json_atomic(args.out, record)
    m = record["machine"]
    print(f"load average before/after: {m['load_average_before'][0]:.2f} / {m['load_average_after'][0]:.2f}"
          f"{' (LOADED: timings unreliable)' if m['loaded'] else ''}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
