"""Is a new run the same result as the committed one? Compare two result records metric by metric.

Same machine, same parameters: records must be identical except wall times (``exact=True``).
Another machine: floating-point paths that :mod:`ppal_lab.compendium.numerics` cannot pin (OpenBLAS's kernels,
libm) move the last bits, and training loops can amplify them, so each metric is held to the tolerance its
chapter declares (:class:`ppal_lab.compendium.params.Tolerance`, by default a quarter of the committed 95% CI
half-width); the claims' verdicts must be identical either way. ``make test`` runs this comparison after
nbval re-executes each notebook (see ``conftest.py``).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from ppal_lab.compendium.params import EXACT, NotebookSpec


def compare_records(spec: NotebookSpec, committed: Mapping[str, Any], fresh: Mapping[str, Any],
                    exact: bool = False, reference: str = "committed") -> list[str]:
    """One line per difference that matters; an empty list when ``fresh`` reproduces ``committed``
    (called ``reference`` in the messages)."""
    problems = []
    if fresh["parameters"] != committed["parameters"]:
        changed = sorted(k for k in set(fresh["parameters"]) | set(committed["parameters"])
                         if fresh["parameters"].get(k) != committed["parameters"].get(k))
        problems.append(f"parameters differ: {', '.join(changed)}")
    old, new = committed["metrics"], fresh["metrics"]
    for name in sorted(set(old) ^ set(new)):
        problems.append(f"{name}: only in the {reference if name in old else 'new'} record")
    for name in sorted(set(old) & set(new)):
        problems += _metric_problems(name, old[name], new[name], spec.tolerance(name), exact, reference)
    verdicts = [({c["id"]: c["verdict"] for c in r["claims"]}) for r in (committed, fresh)]
    for cid in sorted(set(verdicts[0]) | set(verdicts[1])):
        was, now = verdicts[0].get(cid), verdicts[1].get(cid)
        if was != now:
            problems.append(f"claim {cid}: verdict {now!r}, {reference} {was!r}")
    return problems


def _metric_problems(name: str, old: Mapping, new: Mapping, tol, exact: bool, reference: str) -> list[str]:
    if not tol.compare:
        return []
    if new["n"] != old["n"]:
        return [f"{name}: n = {new['n']}, {reference} {old['n']}"]
    allowed = (EXACT if exact else tol).allowed(old)
    delta = abs(new["value"] - old["value"])
    if math.isnan(delta) or delta > allowed:
        return [f"{name}: {new['value']:.6g}, {reference} {old['value']:.6g} "
                f"(off by {delta:.3g}; tolerance {allowed:.3g})"]
    return []


def run_twice(spec: NotebookSpec, out, second_env: Mapping[str, str] | None = None) -> list[str]:
    """Run ``spec`` at its defaults twice at once (two ``ppal-lab run`` processes; the second with
    ``second_env`` added to its environment) and compare the two records: exactly without
    ``second_env``, else with the declared tolerances. Each record is also compared with the committed
    one under the tolerances. Returns the problems, each line prefixed by what was compared."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ppal_lab.compendium.paths import repo_root

    out = Path(out)
    runs = []
    for label, extra in (("first", {}), ("second", dict(second_env or {}))):
        folder = out / f"{spec.name}-{label}"
        cmd = [sys.executable, "-m", "ppal_lab.compendium.cli", "run", spec.name, "--out", str(folder), "-q"]
        runs.append((folder, subprocess.Popen(cmd, env={**os.environ, **extra}, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True)))
    records = []
    for folder, proc in runs:
        _, err = proc.communicate()
        if proc.returncode:
            return [f"{spec.name}: the run into {folder} failed: {err.strip().splitlines()[-1:]}"]
        records.append(json.loads((folder / f"{spec.name}.json").read_text()))
    problems = [f"{spec.name}: second run {p}" for p in
                compare_records(spec, records[0], records[1], exact=not second_env, reference="first run")]
    committed = json.loads((repo_root() / "data" / "results" / f"{spec.name}.json").read_text())
    for label, record in zip(("first", "second"), records):
        problems += [f"{spec.name} {label} vs committed: {p}" for p in compare_records(spec, committed, record)]
    return problems
