"""Cost of a secure two-party MLP training step (ppal_lab.secure.secure_mlp) against plaintext torch.

For every hidden size x batch size, one two-party run of ``--iterations`` Adam steps (critic: identity
output, owner = party 0, input = party 0's ``--d0`` features next to party 1's ``--d1`` features) and
the same steps in plaintext (one torch thread) from identical weights and minibatches. Reported per
iteration (medians over the iterations after the first): secure and plaintext milliseconds and their
ratio, rounds and bytes (CrypTen's counters; bytes = sum over both parties / 2), the owner's time per
phase (matmul = secure matrix products, relu = secure comparisons + mask products, share, reveal,
adam), and the final-weight MAE/RMSE against plaintext.

Usage::

    python benchmarks/bench_secure_mlp.py --hidden 32 64 128 256 --batch 32 128 --iterations 6

Writes ``data/results/bench_secure_mlp.json`` atomically; records the load average (timings on a
busy machine are inflated, the ratio less so since both sides are measured under the same load).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.compendium.errors import check_range  # noqa: E402
from ppal_lab.compendium.results import write_json_atomic  # noqa: E402
from ppal_lab.secure.fixed_point import PRECISION_BITS_RANGE  # noqa: E402
from ppal_lab.secure.secure_mlp import MLPConfig, run_secure_training  # noqa: E402


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--iterations", type=int, default=6, help="Adam steps per run, >= 2")
    ap.add_argument("--d0", type=int, default=8)
    ap.add_argument("--d1", type=int, default=8)
    ap.add_argument("--precision-bits", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--autograd-at", type=int, nargs=2, default=[128, 128], metavar=("HIDDEN", "BATCH"),
                    help="also time CrypTen's autograd version of the step at this size (0 0: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "bench_secure_mlp.json")
    args = ap.parse_args(argv)
    for h in args.hidden:
        check_range("hidden", h, 1)
    for b in args.batch:
        check_range("batch", b, 1)
    check_range("iterations", args.iterations, 2)
    check_range("d0", args.d0, 1)
    check_range("d1", args.d1, 1)
    check_range("precision_bits", args.precision_bits, *PRECISION_BITS_RANGE)
    check_range("seed", args.seed, 0)
    return args


def _autograd_comparison(args, hidden, batch) -> dict:
    """Hand-written backward vs CrypTen autograd, same data, interleaved in one process pair each."""
    import numpy as np

    from ppal_lab.secure import run_parties
    from ppal_lab.secure.secure_mlp import (PARAM_NAMES, crypten_autograd_party, init_weights,
                                            plain_gradients, secure_mlp_party)

    cfg = MLPConfig(d0=args.d0, d1=args.d1, hidden=hidden, precision_bits=args.precision_bits)
    g = torch.Generator().manual_seed(args.seed)
    n = args.iterations
    x0, x1 = torch.randn(n, batch, args.d0, generator=g), torch.randn(n, batch, args.d1, generator=g)
    t = torch.randn(n, batch, 1, generator=g)
    w = init_weights(cfg, args.seed)
    own = [{"x": x0, "weights": w, "targets": t}, {"x": x1}]
    _, ref = plain_gradients(w, x0[0], x1[0], t[0], cfg)
    out = {"hidden": hidden, "batch": batch}
    for label, fn in (("autograd", crypten_autograd_party), ("handwritten", secure_mlp_party)):
        res = run_parties(fn, 2, args=(cfg, n, batch), party_args=[(own[0],), (own[1],)],
                          timeout=600, verbose_comm=True, seed=args.seed)
        out[f"{label}_ms"] = 1e3 * float(np.median(res[0]["iter_s"][1:]))
        out[f"{label}_rounds"] = int(np.median(res[0]["rounds"]))
        out[f"{label}_bytes"] = float(np.mean([np.mean(r["bytes"]) for r in res]))
        out[f"{label}_grad_max_abs_err"] = max(float((res[0]["first_grads"][k] - ref[k]).abs().max())
                                               for k in PARAM_NAMES)
    return out


def main(argv=None) -> int:
    args = _parse(argv)
    rows = []
    load_before = os.getloadavg()
    for hidden in args.hidden:
        for batch in args.batch:
            cfg = MLPConfig(d0=args.d0, d1=args.d1, hidden=hidden, precision_bits=args.precision_bits)
            g = torch.Generator().manual_seed(args.seed)
            n = args.iterations
            x0 = torch.randn(n, batch, args.d0, generator=g)
            x1 = torch.randn(n, batch, args.d1, generator=g)
            t = torch.randn(n, batch, 1, generator=g)
            res = run_secure_training(cfg, x0, x1, t, seed=args.seed, weight_seed=args.seed,
                                      timeout=600)
            row = res.summary()
            row["load_1min"] = os.getloadavg()[0]
            rows.append(row)
            ph = row["phases_ms"]
            print(f"hidden {hidden:4d} batch {batch:4d}: secure {row['secure_ms']:8.1f} ms, plain "
                  f"{row['plain_ms']:6.2f} ms, ratio {row['ratio']:7.1f}x, rounds "
                  f"{row['rounds_per_iter']:.0f}, {row['bytes_per_iter'] / 1e6:.2f} MB | matmul "
                  f"{ph['matmul']:.1f} relu {ph['relu']:.1f} reveal {ph['reveal']:.1f} ms | weight "
                  f"RMSE {row['final_weight_rmse']:.2e}", flush=True)
    autograd = None
    if args.autograd_at[0] > 0:
        autograd = _autograd_comparison(args, *args.autograd_at)
        print(f"CrypTen autograd at hidden {args.autograd_at[0]} batch {args.autograd_at[1]}: "
              f"{autograd['autograd_ms']:.1f} ms vs hand-written {autograd['handwritten_ms']:.1f} ms; "
              f"rounds {autograd['autograd_rounds']} vs {autograd['handwritten_rounds']}", flush=True)
    out = {"benchmark": "secure_mlp", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "load_avg_before": list(load_before), "load_avg_after": list(os.getloadavg()),
           "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "goal_ratio": 200.0, "rows": rows,
           "autograd_comparison": autograd}
    write_json_atomic(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
