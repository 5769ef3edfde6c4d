"""Result records: one JSON file per notebook run, written atomically, checked against a schema.

A record holds the parameters, the seed, library versions, wall time, metrics with 95% confidence
intervals, and the seed documents' claims beside what we measured, each with a verdict. The claims ledger
of the book is built from these records.
"""
from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from scipy import stats

from ppal_lab.compendium import numerics
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.paths import results_dir
from ppal_lab.compendium.verdicts import decide_all

SCHEMA_PATH = Path(__file__).with_name("record_schema.json")


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, tuple[float, float] | None, int]:
    """Mean and Student-t confidence interval of independent repeats (e.g. one value per seed).

    Returns ``(mean, (lo, hi), n)``; the interval is ``None`` for a single value.
    """
    x = np.asarray(list(values), dtype=float)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ParameterError("values", x.tolist(), "a non-empty list of finite numbers")
    mean = float(x.mean())
    if x.size == 1:
        return mean, None, 1
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, (mean - half, mean + half), int(x.size)


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries whose behaviour the numbers depend on (read without importing)."""
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    names = ["numpy", "torch", "scikit-learn", "opacus", "crypten", "scipy", "pandas", "ppal_lab"]
    return {"python": platform.python_version(), **{n: version(n) for n in names}}


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON to a temporary file in the same folder, then rename it into place, so a reader
    never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=2, allow_nan=False, default=_jsonable) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; a record is as readable as any file
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``record`` follows the record schema."""
    import jsonschema

    jsonschema.validate(record, json.loads(SCHEMA_PATH.read_text()))


class ResultRecord:
    """Collects one notebook run's results; :meth:`write` validates and writes them atomically.

    >>> rec = ResultRecord("01_supply_chain_data", {"seed": 0})
    >>> rec.add_metric("accuracy", [0.81, 0.83, 0.82], unit="fraction")
    """

    def __init__(self, notebook: str, parameters: Mapping[str, Any]):
        self.notebook = notebook
        self.parameters = dict(parameters)
        self.metrics: dict[str, dict[str, Any]] = {}
        self.claims: list[dict[str, Any]] = []
        self._start = time.perf_counter()

    def add_metric(self, name: str, values: float | Iterable[float], unit: str,
                   description: str = "", *, ci: tuple[float, float] | None = None,
                   n: int | None = None) -> dict[str, Any]:
        """Record a metric from one value or from independent repeats (mean and Student-t 95% CI).

        With ``ci=(low, high)`` the interval comes from elsewhere (a bootstrap, the delta method):
        ``values`` is then the point estimate, ``n`` the number of repeats behind it, and the
        ``description`` should say how the interval was computed.
        """
        if ci is not None:
            if not np.isscalar(values):
                raise ParameterError("values", values, "one point estimate when ci is given")
            if n is None or isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
                raise ParameterError("n", n, "the number of repeats (>= 2) behind the given interval")
            low, high = (float(v) for v in ci)
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise ParameterError("ci", ci, "a finite interval (low, high) with low <= high")
            mean, ci, n = float(values), (low, high), int(n)
            if not math.isfinite(mean):
                raise ParameterError("values", values, "a finite number")
        else:
            vals = [values] if np.isscalar(values) else list(values)
            mean, ci, n = mean_ci(vals)
        entry = {"value": mean, "ci95": list(ci) if ci else None, "n": n, "unit": unit}
        if description:
            entry["description"] = description
        self.metrics[name] = entry
        return entry

    def decide_claims(self, claims, measured: Mapping[str, str], notes: Mapping[str, str] | None = None
                      ) -> dict[str, str]:
        """Add ``claims`` (the chapter spec's :class:`~ppal_lab.compendium.verdicts.Claim` declarations)
        with the verdicts the engine computes from this record's metrics; ``measured`` says in words what
        was measured for each claim, ``notes`` adds context. Effect claims also get a metric
        ``seeds_needed_<id>``. Returns each claim's verdict by id."""
        notes = notes or {}
        missing = sorted({c.id for c in claims} - set(measured))
        if missing:
            raise ParameterError("measured", missing, "a description for every claim")
        for entry in decide_all(claims, self.metrics):
            entry["measured"] = measured[entry["id"]]
            if notes.get(entry["id"]):
                entry["note"] = notes[entry["id"]]
            if "seeds_needed" in entry:
                self.add_metric(f"seeds_needed_{entry['id']}", float(entry["seeds_needed"]), "seeds",
                                "repeats needed to tell the claim from no effect at 80% power")
            self.claims.append(entry)
        return {c.id: next(e["verdict"] for e in self.claims if e["id"] == c.id) for c in claims}

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "parameters": self.parameters,
            "seed": int(self.parameters.get("seed", 0)),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "numerics": numerics.state(),
            "wall_time_s": round(time.perf_counter() - self._start, 3),
            "metrics": self.metrics,
            "claims": self.claims,
        }

    def write(self, folder: str | os.PathLike | None = None) -> Path:
        """Validate and write ``<folder>/<notebook>.json`` (default: :func:`results_dir`)."""
        record = json.loads(json.dumps(self.to_dict(), default=_jsonable))
        validate_record(record)
        return write_json_atomic(Path(folder or results_dir()) / f"{self.notebook}.json", record)


def load_record(path: str | os.PathLike) -> dict[str, Any]:
    record = json.loads(Path(path).read_text())
    validate_record(record)
    return record
