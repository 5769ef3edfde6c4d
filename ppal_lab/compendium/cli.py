"""``ppal-lab``: list, run, sweep and book — the command line over :mod:`ppal_lab.compendium.runner`.

Bad input (unknown notebook or parameter, wrong type, out of range, a combination the notebook cannot
run, an ``--out`` that cannot be written) exits with status 2 and one line on stderr, before any kernel
starts and before anything is written. A notebook that still fails in its kernel exits with status 1 and
one line naming the cell and the error, and leaves nothing behind.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.specs import SPECS, resolve


def _list(args) -> int:
    for spec in SPECS.values():
        print(f"{spec.name}  —  {spec.title}  (budget {spec.budget_s:.0f} s)")
        width = max(len(p.name) for p in spec.params)
        for p in spec.params:
            print(f"    {p.name:<{width}}  default {p.default!r:<10}  {p.allowed():<28}  {p.help}")
        print()
    return 0


def _run(args) -> int:
    from ppal_lab.compendium import runner

    spec = resolve(args.notebook)
    overrides = spec.parse(args.param or [])
    spec.validate(overrides)
    out = runner.check_out(args.out, "--out") if args.out else None
    try:
        result = runner.run(spec, overrides, out, progress=not args.quiet)
    except RuntimeError as exc:  # NotebookFailed, or a refused concurrent run: one line, no traceback
        print(f"ppal-lab: error: {exc}", file=sys.stderr)
        return 1
    print(f"notebook: {result.notebook}")
    print(f"record:   {result.record_path}")
    print(f"wall time: {result.record['wall_time_s']:.1f} s")
    for line in runner.headline(spec, result.record):
        print("  " + line)
    return 0


def _sweep(args) -> int:
    from ppal_lab.compendium import runner

    spec = resolve(args.notebook)
    points = runner.grid(spec, args.param or [])
    if not points or not args.param:
        raise ParameterError("-p", None, "at least one NAME v1,v2,... axis")
    if args.jobs < 1:
        raise ParameterError("--jobs", args.jobs, ">= 1")
    out = runner.check_out(args.out, "--out") if args.out else None
    out, rows = runner.sweep(spec, points, jobs=args.jobs, out=out, ray_address=args.ray_address)
    failed = [r for r in rows if r["error"]]
    print(f"{len(rows) - len(failed)} of {len(rows)} grid points completed; table: {out / 'table.csv'}")
    for r in failed:
        print(f"  FAILED {({k: r[k] for k in points[0]})}: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def _book(args) -> int:
    from ppal_lab.compendium import runner

    specs = [resolve(name) for name in args.notebooks] or list(SPECS.values())
    for spec in specs:
        if args.force or runner.is_stale(spec):
            print(f"executing {spec.filename} ...", flush=True)
            runner.refresh(spec, progress=not args.quiet)
        else:
            print(f"up to date: {spec.filename}")
    from ppal_lab.compendium import ledger

    print(f"claims ledger: {ledger.write()}")
    if not args.no_build:
        runner.build_book()
    return 0


def _reproduce(args) -> int:
    from ppal_lab.compendium import reproduce
    from ppal_lab.compendium.paths import runs_dir

    specs = [resolve(name) for name in args.notebooks] or list(SPECS.values())
    env = dict(item.split("=", 1) for item in args.env or [])
    out = Path(args.out) if args.out else runs_dir() / "reproduce"
    failed = 0
    for spec in specs:
        print(f"{spec.name}: two runs at the defaults{' (second with ' + ' '.join(args.env) + ')' if env else ''} ...",
              flush=True)
        problems = reproduce.run_twice(spec, out, env)
        failed += bool(problems)
        print("\n".join("  " + p for p in problems) or "  same result")
    print(f"{len(specs) - failed} of {len(specs)} notebooks reproduce; runs in {out}")
    return 1 if failed else 0


def _party(args) -> int:
    # The machinery never imports the field (tests/compendium/test_architecture.py): like `run` runs a
    # notebook, `party` runs the secure room's own command line, found by name.
    import importlib

    return importlib.import_module("ppal_lab.secure.twoparty").main(args.argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppal-lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="notebooks, their parameters, defaults and meanings").set_defaults(func=_list)

    run = sub.add_parser("run", help="run a notebook with new parameters into runs/ (or --out)")
    run.add_argument("notebook", help="name, with or without .ipynb or number prefix")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"))
    run.add_argument("--out", help="output folder (default runs/<notebook>-<hash of parameters>/)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    sweep = sub.add_parser("sweep", help="run a grid of parameter values in parallel processes")
    sweep.add_argument("notebook")
    sweep.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "V1,V2,..."))
    sweep.add_argument("--jobs", type=int, default=2, help="parallel processes (default 2)")
    sweep.add_argument("--out", help="output folder (default runs/sweep-<notebook>-<hash>/)")
    sweep.add_argument("--ray-address", metavar="ADDR",
                       help="run the points on this Ray cluster (e.g. 10.0.0.5:6379) instead of local processes")
    sweep.set_defaults(func=_sweep)

    book = sub.add_parser("book", help="execute stale notebooks in place, then build the book")
    book.add_argument("notebooks", nargs="*", help="only these notebooks (default: all)")
    book.add_argument("--force", action="store_true", help="execute every notebook")
    book.add_argument("--no-build", action="store_true", help="execute only; do not build the book")
    book.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    book.set_defaults(func=_book)

    repro = sub.add_parser("reproduce", help="run notebooks twice at their defaults and compare the records "
                                             "with each other and with the committed ones")
    repro.add_argument("notebooks", nargs="*", help="only these notebooks (default: all)")
    repro.add_argument("--env", action="append", metavar="VAR=VALUE",
                       help="set in the second run only (e.g. OPENBLAS_CORETYPE=Haswell to try other "
                            "BLAS kernels); without it the two runs must agree exactly")
    repro.add_argument("--out", help="output folder (default runs/reproduce/)")
    repro.set_defaults(func=_reproduce)

    party = sub.add_parser("party", add_help=False, help="run one player (or the dealer) of a secure "
                           "computation here, e.g. on a host of its own (ppal-lab party --help)")
    party.add_argument("argv", nargs=argparse.REMAINDER)
    party.set_defaults(func=_party)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["party"]:  # everything after `party` belongs to the party's own parser
        return _party(argparse.Namespace(argv=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ParameterError as exc:
        print(f"ppal-lab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
