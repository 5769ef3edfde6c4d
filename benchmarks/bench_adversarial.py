"""Chapter 10's accuracy against the share of Byzantine sites: every aggregation rule under one attack
at the Byzantine shares 0, 10, ..., 40%, on the federated protocol's in-process site group
(``ch10_adversarial_participants.share_grid``), for ``n_seeds`` seeds.

Notebook 10 reads the record (spec ``reads=``) instead of running the grid: about 33 federated runs
per seed, each 20 sites x 20 rounds of local SGD in PyTorch, which would take the notebook over its
5-minute budget on 2 cores.

Usage::

    python benchmarks/bench_adversarial.py                     # the notebook's default parameters
    python benchmarks/bench_adversarial.py -p attack ipm -p n_seeds 5

Writes ``data/results/bench_adversarial.json`` atomically.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ppal_lab.chapters import ch10_adversarial_participants as ch  # noqa: E402
from ppal_lab.compendium.errors import ParameterError  # noqa: E402
from ppal_lab.compendium.results import write_json_atomic  # noqa: E402
from ppal_lab.compendium.specs import SPECS  # noqa: E402

SPEC = SPECS["10_adversarial_participants"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter of notebook 10 (default: the spec's defaults)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "bench_adversarial.json")
    args = parser.parse_args(argv)
    types = {p.name: p.kind for p in SPEC.params}
    try:
        changes = {}
        for name, value in args.p:
            if name not in types:
                raise ParameterError(name, value, f"a parameter of {SPEC.name}")
            changes[name] = types[name](value)
        values = SPEC.validate({**SPEC.defaults(), **changes})
    except (ParameterError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    P = SimpleNamespace(**values)
    t0 = time.perf_counter()
    grid = ch.share_grid(P)
    wall = time.perf_counter() - t0
    record = {"benchmark": "bench_adversarial", "params": values, "wall_s": round(wall, 1),
              "runs": int(len(grid)), "platform": platform.platform(), "python": platform.python_version(),
              "torch": torch.__version__,
              "share_grid": grid[["seed", "aggregator", "attack", "share", "f", "accuracy"]].to_dict("records")}
    write_json_atomic(args.out, record)
    print(f"{len(grid)} runs in {wall:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
