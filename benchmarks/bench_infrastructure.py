"""Secure infrastructure costs: hybrid handshake, DH-PSI, secure aggregation vs sites and drop-out rate.

* Handshake (:mod:`ppal_lab.secure.key_exchange`): bytes per message and component; time per complete
  authenticated X25519 + ML-KEM-768 handshake against a classical X25519 + Ed25519 one (both sides in
  one process; medians over repeats).
* PSI (:mod:`ppal_lab.secure.psi`): time and bytes of DH-PSI over ristretto255 for growing sets (half
  of the client's items are in the server's set), against the seed's exchange of plain hashes
  (32 bytes per item, no computation to speak of); and the dictionary attack on the seed's unsalted
  field-name hashes (names recovered, dictionary size, time).
* Secure aggregation (:mod:`ppal_lab.secure.secure_aggregation`): for each number of sites and
  drop-out rate, ``--repeats`` rounds (seeds 0..repeats-1) of ``--dim`` coordinates; fraction of rounds
  completed (and the exact probability, a binomial tail), bytes per site (sent and received through
  the server) and seconds per phase (means over the completed rounds; the *total* compute of all sites
  and the server, simulated in one process: a site's own share is about 1/n of it).

Usage::

    python benchmarks/bench_infrastructure.py --sites 5 10 20 50 --dropout-rates 0 0.1 0.3 0.45

Writes ``data/results/bench_infrastructure.json`` atomically.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cryptography  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519  # noqa: E402

from ppal_lab.compendium.results import write_json_atomic  # noqa: E402
from ppal_lab.compendium.errors import check_int, check_real  # noqa: E402
from ppal_lab.data import make_remanufacturing  # noqa: E402
from ppal_lab.secure import key_exchange as kx  # noqa: E402
from ppal_lab.secure import psi as P  # noqa: E402
from ppal_lab.secure.secure_aggregation import SecureAggregation, dropout_trial  # noqa: E402


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--handshakes", type=int, default=200, help="timed handshakes, >= 3")
    ap.add_argument("--psi-sizes", type=int, nargs="+", default=[100, 1000, 4000], help="client set sizes, >= 1")
    ap.add_argument("--sites", type=int, nargs="+", default=[5, 10, 20, 50], help="numbers of sites, >= 2")
    ap.add_argument("--dropout-rates", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.45],
                    help="per-site drop-out probabilities in [0, 1)")
    ap.add_argument("--dim", type=int, default=1000, help="coordinates of each update, >= 1")
    ap.add_argument("--repeats", type=int, default=5, help="rounds per cell, >= 1")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "bench_infrastructure.json")
    args = ap.parse_args(argv)
    check_int("handshakes", args.handshakes, 3)
    for s in args.psi_sizes:
        check_int("psi_sizes", s, 1)
    for n in args.sites:
        check_int("sites", n, 2)
    for r in args.dropout_rates:
        check_real("dropout_rates", r, 0, 1, high_open=True)
    check_int("dim", args.dim, 1)
    check_int("repeats", args.repeats, 1)
    return args


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _classical_handshake(a: ed25519.Ed25519PrivateKey, b: ed25519.Ed25519PrivateKey) -> None:
    """X25519 + Ed25519 signatures, the same flow without ML-KEM (the classical baseline)."""
    xa, xb = x25519.X25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    pa, pb = xa.public_key().public_bytes_raw(), xb.public_key().public_bytes_raw()
    sa, sb = a.sign(pa), b.sign(pa + pb)
    a.public_key().verify(sa, pa)
    b.public_key().verify(sb, pa + pb)
    assert xa.exchange(xb.public_key()) == xb.exchange(xa.public_key())


def bench_handshake(n: int) -> dict:
    a, b = kx.Identity.generate("site-001"), kx.Identity.generate("site-002")
    ea, eb = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    kx.handshake(a, b)  # warm-up
    return {"sizes": kx.handshake_sizes(), "hybrid_median_ms": _median_ms(lambda: kx.handshake(a, b), n),
            "classical_median_ms": _median_ms(lambda: _classical_handshake(ea, eb), n), "n": n,
            "seed_flow_keys_agree": len(set(kx.seed_flow_keys())) == 1}


def bench_psi(sizes) -> dict:
    rows = []
    for n in sizes:
        X = [f"TX-{i:06d}" for i in range(n)]
        Y = [f"TX-{i:06d}" for i in range(n // 2, n // 2 + n)]
        t0 = time.perf_counter()
        out = P.psi(X, Y)
        dt = time.perf_counter() - t0
        assert out["intersection"] == sorted(set(X) & set(Y))
        rows.append({"client_size": n, "server_size": n, "intersection": out["size"], "seconds": dt,
                     "bytes": out["bytes"], "plain_hash_bytes": 32 * (len(X) + len(Y))})
    data = make_remanufacturing(10, seed=0)
    attack = {}
    for words in (1, 2):
        dictionary = P.plausible_field_names(words)
        t0 = time.perf_counter()
        r = P.recovery_rate(data.feature_names, dictionary)
        attack[f"max_words_{words}"] = {**r, "seconds": time.perf_counter() - t0}
    return {"rows": rows, "dictionary_attack": attack}


def bench_secagg(sites, rates, dim: int, repeats: int) -> list[dict]:
    rows = []
    for n in sites:
        for rate in rates:
            trials = [dropout_trial(n, rate, dim=dim, seed=s) for s in range(repeats)]
            done = [t for t in trials if t["completed"]]
            threshold = SecureAggregation(n).threshold
            row = {"n_sites": n, "threshold": threshold, "dropout_rate": rate, "dim": dim,
                   "rounds": repeats, "completed": len(done), "mean_dropped": float(np.mean([t["n_dropped"] for t in trials])),
                   # a round completes iff at most n - threshold sites drop: Binomial(n, rate) <= n - threshold
                   "p_complete_binomial": float(stats.binom.cdf(n - threshold, n, rate))}
            if done:
                phases = SecureAggregation.PHASES
                row["bytes_per_site"] = {p: float(np.mean([t["traffic"][p] for t in done])) / n for p in phases}
                row["seconds"] = {p: float(np.mean([t["seconds"][p] for t in done])) for p in phases}
                row["max_abs_error"] = max(t["max_abs_error"] for t in done)
            rows.append(row)
            print(f"sites {n:>3} rate {rate:.2f}: {len(done)}/{repeats} completed"
                  + (f", {sum(row['seconds'].values()):.2f} s/round, "
                     f"{sum(row['bytes_per_site'].values()) / 1e3:.1f} kB/site" if done else ""))
    return rows


def main(argv=None) -> int:
    args = _parse(argv)
    t0 = time.perf_counter()
    from importlib.metadata import version

    record = {
        "benchmark": "bench_infrastructure",
        "description": "hybrid handshake sizes and time; DH-PSI cost; secure aggregation cost and completion "
                       "vs sites and drop-out rate (threshold = n_sites // 2 + 1)",
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "cryptography": cryptography.__version__, "rbcl": version("rbcl")},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count()},
        "handshake": bench_handshake(args.handshakes),
        "psi": bench_psi(args.psi_sizes),
        "secure_aggregation": bench_secagg(args.sites, args.dropout_rates, args.dim, args.repeats),
    }
    record["wall_time_s"] = time.perf_counter() - t0
    h = record["handshake"]
    print(f"handshake: {h['sizes']['total_bytes']} B, hybrid {h['hybrid_median_ms']:.2f} ms, "
          f"classical {h['classical_median_ms']:.2f} ms")
    for r in record["psi"]["rows"]:
        print(f"psi {r['client_size']:>6}: {r['seconds']:.2f} s, {r['bytes'] / 1e3:.0f} kB")
    write_json_atomic(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
