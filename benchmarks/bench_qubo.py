"""mRMR feature selection as a QUBO: our simulated bifurcation vs the simulated-bifurcation package and
D-Wave's SimulatedAnnealingSampler, side by side in one process.

For each size ``n`` one instance (``ppal_lab.chapters.ch05_qubo_feature_selection.peer_instance``: MI
relevance, |correlation| redundancy, select ``k``) is solved ``--repeats`` times by every solver, the
solvers' order rotating between repeats. Each solver is timed on its own call (relevance and
redundancy are shared inputs and not timed); a ``+swap`` row is its base solver's output polished by
the same swap local search, timed as base + polish. Settings (see ``run_solvers``): ours = ballistic
SB, ``--n-agents`` agents, ``--max-steps`` steps; the package = heated discrete SB, the same agents,
``--pkg-max-steps`` steps (default twice ours: its pump needs 1000 steps to reach 1), and once more at
its library default of 10000 steps (``sbpkg_default``); D-Wave = one read of 1000 sweeps (its
defaults). Every solver runs with ``--threads`` torch/BLAS threads.

Usage::

    python benchmarks/bench_qubo.py --sizes 50 200 1000 --repeats 3

Writes ``data/results/bench_qubo.json`` atomically: per size and solver the median time, best and
mean energy, the feasible share and the median CPU time (an idle core's wall time for these
single-threaded runs), and for each peer the time ratio ours / peer and the energy
difference ours - peer (negative = ours better), with the machine's load average before and after.
"""
from __future__ import annotations

import argparse
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

OURS = "bsb+swap"
GROUPS = (("bsb", "bsb+swap"), ("sbpkg", "sbpkg+swap"), ("sbpkg_default", "sbpkg_default+swap"),
          ("sa", "sa+swap"), ("random+swap",), ("greedy",))
PEERS = ("sbpkg", "sbpkg+swap", "sbpkg_default", "sbpkg_default+swap", "sa", "sa+swap")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000], help="numbers of features")
    ap.add_argument("--k", type=int, default=15, help="features to select, >= 1 and < every size")
    ap.add_argument("--alpha", type=float, default=0.5, help="relevance weight, in [0, 1]")
    ap.add_argument("--repeats", type=int, default=3, help="solver seeds per size, >= 1")
    ap.add_argument("--n-agents", type=int, default=32, help="SB agents (ours and the package)")
    ap.add_argument("--max-steps", type=int, default=1000, help="our SB steps")
    ap.add_argument("--pkg-max-steps", type=int, default=None, help="the package's steps (default 2x ours)")
    ap.add_argument("--sa-reads", type=int, default=1, help="D-Wave annealer reads")
    ap.add_argument("--sa-sweeps", type=int, default=1000, help="D-Wave annealer sweeps per read")
    ap.add_argument("--threads", type=int, default=1, help="torch and BLAS threads for every solver")
    ap.add_argument("--seed", type=int, default=0, help="data seed; solver seeds are seed .. seed+repeats-1")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "bench_qubo.json",
                    help="where the JSON record goes")
    args = ap.parse_args(argv)
    check_range("k", args.k, 1)
    for s in args.sizes:
        check_range("sizes", s, args.k + 1)
    check_range("alpha", args.alpha, 0, 1)
    check_range("repeats", args.repeats, 1)
    check_range("n_agents", args.n_agents, 1)
    check_range("max_steps", args.max_steps, 1)
    if args.pkg_max_steps is not None:
        check_range("pkg_max_steps", args.pkg_max_steps, 1)
    check_range("sa_reads", args.sa_reads, 1)
    check_range("sa_sweeps", args.sa_sweeps, 1)
    check_range("threads", args.threads, 1)
    check_range("seed", args.seed, 0, 2**31 - 1 - args.repeats)
    return args


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def bench(args: argparse.Namespace) -> dict:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows, comparisons = [], []
    with threadpool_limits(args.threads):
        for n in args.sizes:
            problem = fx.peer_instance(n, args.k, args.alpha, args.seed)
            runs: dict[str, list[tuple[float, float, bool]]] = {}
            for rep in range(args.repeats):
                order = GROUPS[rep % len(GROUPS):] + GROUPS[:rep % len(GROUPS)]
                for group in order:
                    res = fx.run_solvers(group, problem, n_agents=args.n_agents, max_steps=args.max_steps,
                                         seed=args.seed + rep, sa_reads=args.sa_reads,
                                         sa_sweeps=args.sa_sweeps, pkg_max_steps=args.pkg_max_steps)
                    for name, (x, dt, cpu) in res.items():
                        runs.setdefault(name, []).append(
                            (dt, cpu, float(problem.energy(x)), bool(problem.feasible(x))))
            for name, vals in runs.items():
                t, c, e, f = (np.array(v) for v in zip(*vals))
                rows.append({"n": n, "solver": name, "label": fx.SOLVER_LABELS[name],
                             "median_time_s": float(np.median(t)), "all_times_s": t.tolist(),
                             "median_cpu_s": float(np.median(c)),
                             "best_energy": float(e.min()), "mean_energy": float(e.mean()),
                             "feasible_share": float(f.mean())})
            by = {r["solver"]: r for r in rows if r["n"] == n}
            for peer in PEERS:
                comparisons.append({
                    "n": n, "ours": OURS, "peer": peer,
                    "time_ratio_ours_over_peer": by[OURS]["median_time_s"] / by[peer]["median_time_s"],
                    "best_energy_diff_ours_minus_peer": by[OURS]["best_energy"] - by[peer]["best_energy"],
                    "mean_energy_diff_ours_minus_peer": by[OURS]["mean_energy"] - by[peer]["mean_energy"],
                    "ours_at_least_as_good_and_fast": bool(
                        by[OURS]["mean_energy"] <= by[peer]["mean_energy"] + 1e-9
                        and by[OURS]["median_time_s"] <= by[peer]["median_time_s"])})
    return {
        "benchmark": "bench_qubo",
        "description": "mRMR QUBO (select k): ours (bSB + swap polish) vs simulated-bifurcation and "
                       "dwave-samplers SA; wall seconds of each solver call, energies of the penalised QUBO",
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "torch": torch.__version__, "simulated-bifurcation": _version("simulated-bifurcation"),
                     "dwave-samplers": _version("dwave-samplers"), "dimod": _version("dimod")},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "load_average_before": list(load_before), "load_average_after": list(os.getloadavg())},
        "rows": rows,
        "comparisons": comparisons,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    t0 = time.perf_counter()
    record = bench(args)
    record["wall_time_s"] = time.perf_counter() - t0
    print(f"{'n':>5} {'solver':<19} {'median s':>9} {'cpu s':>7} {'best E':>10} {'mean E':>10} {'feasible':>8}")
    for r in record["rows"]:
        print(f"{r['n']:>5} {r['solver']:<19} {r['median_time_s']:>9.3f} {r['median_cpu_s']:>7.3f} "
              f"{r['best_energy']:>10.4f} {r['mean_energy']:>10.4f} {r['feasible_share']:>8.2f}")
    print(f"\n{'n':>5} {'peer':<19} {'time ours/peer':>15} {'mean E ours-peer':>17}")
    for c in record["comparisons"]:
        print(f"{c['n']:>5} {c['peer']:<19} {c['time_ratio_ours_over_peer']:>15.3f} "
              f"{c['mean_energy_diff_ours_minus_peer']:>17.5f}")
    write_json_atomic(args.out, record)
    print(f"load average before/after: {record['machine']['load_average_before'][0]:.2f} / "
          f"{record['machine']['load_average_after'][0]:.2f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
