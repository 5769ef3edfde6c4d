"""Execute notebooks with papermill: in place for the book, or into ``runs/`` with new parameters.

The runner knows notebooks only through :mod:`ppal_lab.compendium.specs` (pure data); it never imports algorithms.
A committed notebook carries, in its metadata, a hash of everything its outputs depend on: its cell
sources, the ``ppal_lab`` sources and its default parameters. ``ppal-lab book`` re-executes exactly the
notebooks whose hash no longer matches (or whose result record is missing).
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import nbformat

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.params import NotebookSpec
from ppal_lab.compendium.paths import OUTPUT_ENV, notebooks_dir, repo_root, runs_dir
from ppal_lab.compendium.results import load_record, write_json_atomic
from ppal_lab.compendium.specs import SPECS

KERNEL = "python3"


def _short_hash(obj: Any, n: int = 8) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _imported_modules(source: str, package: str | None = None) -> set[str]:
    """Names of ``ppal_lab`` modules imported by ``source``. ``package`` is the package that holds the
    source (for relative imports inside ``ppal_lab``)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:  # a notebook cell with IPython magics: read its import lines alone
        lines = [ln.strip() for ln in source.splitlines() if ln.lstrip().startswith(("import ", "from "))]
        tree = ast.parse("\n".join(lines))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ppal_lab"}
        elif isinstance(node, ast.ImportFrom):
            if node.level and package:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "ppal_lab":
                # `from ppal_lab import data` imports a module; `from x import name` a name (ignored later)
                found |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return found


def _module_files(modules: set[str]) -> set[Path]:
    """Source files of the given ``ppal_lab`` modules and of everything they import in the package."""
    root = Path(__file__).resolve().parents[1]  # the ppal_lab package
    files: set[Path] = {root / "compendium" / "record_schema.json"}
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)]  # parents run first
        parts = name.split(".")[1:]
        candidates = [root.joinpath(*parts, "__init__.py")]
        if parts:
            candidates.append(root.joinpath(*parts).with_suffix(".py"))
        for cand in candidates:
            # The registry holds every notebook's spec; a notebook's own defaults are hashed on their own.
            if cand.exists() and "specs" not in cand.relative_to(root).parts[:2]:
                files.add(cand)
                package = name if cand.name == "__init__.py" else name.rsplit(".", 1)[0]
                todo += _imported_modules(cand.read_text(), package)
    return files


def input_hash(spec: NotebookSpec, nb_path: Path | None = None) -> str:
    """Hash of what a notebook's outputs depend on: its cell sources, the ``ppal_lab`` modules it
    imports (transitively), its default parameters, its declared claims and the benchmark records it reads."""
    nb = nbformat.read(nb_path or notebooks_dir() / spec.filename, as_version=4)
    h = hashlib.sha256()
    imported: set[str] = set()
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        h.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
        if cell.cell_type == "code":
            imported |= _imported_modules(cell.source)
    package = Path(__file__).resolve().parents[1]
    for f in sorted(_module_files(imported)):
        h.update(str(f.relative_to(package)).encode() + b"\0" + f.read_bytes())
    h.update(json.dumps(spec.defaults(), sort_keys=True).encode())
    h.update(repr(spec.claims).encode())  # the declared rules decide the verdicts the outputs show
    for name in spec.reads:  # a rerun benchmark changes what the notebook reports
        record = repo_root() / "data" / "results" / name
        h.update(name.encode() + b"\0" + (record.read_bytes() if record.exists() else b"missing"))
    return h.hexdigest()


def is_stale(spec: NotebookSpec) -> bool:
    """True when the committed notebook's outputs may not match its current inputs."""
    path = notebooks_dir() / spec.filename
    nb = nbformat.read(path, as_version=4)
    recorded = nb.metadata.get("ppal", {}).get("input_hash")
    has_record = (repo_root() / "data" / "results" / f"{spec.name}.json").exists()
    return recorded != input_hash(spec, path) or not has_record


class _kernel_environment:
    """Set the variables a kernel inherits for one execution: where outputs go, and the running
    interpreter's folder first on PATH (so the kernel is this environment's Python)."""

    def __init__(self, output_dir: Path | None):
        self.values = {OUTPUT_ENV: str(output_dir) if output_dir is not None else None,
                       "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.values}
        self._apply(self.values)

    def __exit__(self, *exc):
        self._apply(self.saved)

    @staticmethod
    def _apply(values: Mapping[str, str | None]) -> None:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(spec: NotebookSpec, output_nb: Path, parameters: Mapping[str, Any] | None = None,
            output_dir: Path | None = None, progress: bool = True, stamp: bool = False) -> Path:
    """Execute ``spec``'s committed notebook into ``output_nb`` atomically: the run goes to a temporary
    file in a hidden folder beside the target and replaces it only on success, so a failed run leaves
    nothing behind. Records and figures go to ``output_dir`` (``None``: the committed locations). With
    ``stamp`` the notebook's metadata records its input hash (see :func:`is_stale`).

    If the committed notebook is edited while it runs, the result is discarded with an error rather
    than written over the newer source. Two executions into the same ``output_nb`` at once are refused.
    """
    src = notebooks_dir() / spec.filename
    output_nb = Path(output_nb)
    with _exclusive(output_nb):
        return _execute_locked(spec, src, output_nb, parameters, output_dir, progress, stamp)


@contextlib.contextmanager
def _exclusive(output_nb: Path):
    """One execution per output notebook at a time, across processes: a second one fails at once
    instead of racing the first to the same notebook, record and figures."""
    import fcntl

    key = hashlib.sha256(str(output_nb.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"ppal-lab-{key}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{output_nb} is already being executed by another process; wait for it "
                               "to finish") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _execute_locked(spec, src: Path, output_nb: Path, parameters, output_dir, progress, stamp) -> Path:
    import papermill as pm

    source_before = src.read_bytes()
    scratch = output_nb.parent / ".executing"
    scratch.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=scratch, prefix=f"{output_nb.stem}.", suffix=".ipynb")
    os.close(fd)
    try:
        digest = input_hash(spec) if stamp else None
        with _kernel_environment(output_dir):
            pm.execute_notebook(str(src), tmp, parameters=dict(parameters or {}), kernel_name=KERNEL,
                                cwd=str(notebooks_dir()), progress_bar=progress)
        if digest:
            nb = nbformat.read(tmp, as_version=4)
            nb.metadata["ppal"] = {"input_hash": digest}
            nbformat.write(nb, tmp)
        if src.read_bytes() != source_before:
            raise RuntimeError(f"{src} changed while it was executing; its outputs were discarded: run again")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; an executed notebook is meant to be shared
        os.replace(tmp, output_nb)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        with contextlib.suppress(OSError):
            scratch.rmdir()  # only when empty: another execution may be using it
    return output_nb


@dataclass
class RunResult:
    notebook: Path
    record_path: Path
    record: dict


class NotebookFailed(RuntimeError):
    """A notebook raised inside its kernel; the one-line message names the notebook, the cell and the
    error (the full traceback is papermill's, as ``__cause__``)."""


def _nearest_existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def check_out(out: str | os.PathLike, name: str = "out") -> Path:
    """``out`` as an absolute path if it is, or can be created as, a folder we can write in; else
    :class:`ParameterError` naming ``name``. Tested by creating and removing a temporary folder in its
    nearest existing ancestor, so permissions, read-only mounts and ``/proc`` all count and nothing is
    left behind."""
    out = Path(out).absolute()
    base = _nearest_existing(out)
    if not base.is_dir():
        raise ParameterError(name, str(out), f"a folder that can be created and written ({base} is a file)")
    try:
        os.rmdir(tempfile.mkdtemp(dir=base, prefix=".ppal-probe-"))
    except OSError as exc:
        raise ParameterError(name, str(out), f"a folder that can be created and written ({base}: "
                                             f"{exc.strerror})") from None
    return out


def _move_into(src: Path, dst: Path) -> None:
    """Move a finished run's files into ``dst``: the whole folder at once when ``dst`` is new, else file
    by file, replacing files of the same name and keeping anything else (``--out`` may hold other
    things)."""
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
        return
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def _failure(spec: NotebookSpec, exc) -> NotebookFailed:
    """One line for a papermill execution error. Papermill's ``cell_index`` counts its injected
    parameters cell; the line gives the index in the committed notebook instead."""
    nb = nbformat.read(notebooks_dir() / spec.filename, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    cell = exc.cell_index - 1 if tagged and exc.cell_index > tagged[0] + 1 else exc.cell_index
    evalue = (str(exc.evalue).strip().splitlines() or [""])[0]
    return NotebookFailed(f"{spec.filename} failed in cell {cell}: {exc.ename}: {evalue} (nothing was written)")


def run(spec: NotebookSpec, overrides: Mapping[str, Any], out: Path | None = None,
        progress: bool = True) -> RunResult:
    """Run a notebook with new parameters into ``out`` (default ``runs/<name>-<hash>/``); the
    committed notebook and results are never touched. Parameters, their constraints and ``out`` are
    checked before anything is written.

    The run executes into a hidden temporary folder in ``out``'s nearest existing ancestor, and its
    notebook, record and figures move into ``out`` only when it succeeds: a failed run leaves nothing
    (:class:`NotebookFailed` when the notebook raised). Two runs into the same ``out`` at once are refused.
    """
    params = spec.validate(overrides)
    out = check_out(out if out else runs_dir() / f"{spec.name}-{_short_hash(params)}")
    from papermill.exceptions import PapermillExecutionError

    with _exclusive(out / spec.filename):
        # mkdir, not mkdtemp: the folder becomes ``out`` and should get the usual permissions
        tmp = _nearest_existing(out) / f".{out.name}.running-{os.getpid()}-{os.urandom(4).hex()}"
        tmp.mkdir()
        try:
            _execute_locked(spec, notebooks_dir() / spec.filename, tmp / spec.filename, params, tmp,
                            progress, False)
            _move_into(tmp, out)
        except PapermillExecutionError as exc:
            raise _failure(spec, exc) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    record_path = out / f"{spec.name}.json"
    return RunResult(out / spec.filename, record_path, load_record(record_path))


def refresh(spec: NotebookSpec, progress: bool = True) -> Path:
    """Re-execute a committed notebook at its defaults, in place, and stamp its input hash."""
    path = notebooks_dir() / spec.filename
    return execute(spec, path, None, output_dir=None, progress=progress, stamp=True)


def build_book(strict: bool = True) -> None:
    """Build the HTML book offline from the committed notebooks (no execution)."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(repo_root())]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)


def headline(spec: NotebookSpec, record: Mapping[str, Any]) -> list[str]:
    """Lines ``name = value [lo, hi] unit`` for the notebook's headline metrics."""
    lines = []
    for name in spec.headline or tuple(record["metrics"]):
        m = record["metrics"].get(name)
        if m is None:
            continue
        ci = f" [{m['ci95'][0]:.4g}, {m['ci95'][1]:.4g}]" if m["ci95"] else ""
        lines.append(f"{name} = {m['value']:.4g}{ci} {m['unit']} (n={m['n']})")
    return lines


# --------------------------------------------------------------------------- sweeps
def grid(spec: NotebookSpec, axes: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Cartesian product of parameter values. Scalar values are comma-separated (``0.5,1,2``); the
    values of a list parameter are separated by ``;`` (``a,b;c``). Everything is validated first,
    every grid point with the spec's constraints too, so one bad point stops the sweep before it starts."""
    names, choices = [], []
    for name, text in axes:
        param = spec.param(name)
        sep = ";" if param.kind is list else ","
        names.append(name)
        choices.append([param.parse(t) for t in text.split(sep) if t.strip()])
    points = [dict(zip(names, combo)) for combo in itertools.product(*choices)]
    for point in points:
        spec.validate(point)
    return points


def _sweep_point(name: str, overrides: dict, out: str) -> dict:
    spec = SPECS[name]
    result = run(spec, overrides, Path(out), progress=False)
    return result.record


def _sweep_point_files(name: str, overrides: dict) -> tuple[dict, dict[str, bytes]]:
    """One grid point as a Ray task: executed into a scratch folder on whichever host runs it; the
    record and every file written come back (hosts need not share a disk)."""
    with tempfile.TemporaryDirectory(prefix="ppal-sweep-") as tmp:
        record = _sweep_point(name, overrides, tmp)
        files = {str(p.relative_to(tmp)): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
    return record, files


class _RayPool:
    """Grid points as Ray tasks (one CPU each) on the cluster at ``address``, e.g. ``127.0.0.1:6379``
    or ``ray://head:10001``. Every host needs this compendium (same version) installed."""

    def __init__(self, address: str) -> None:
        import ray

        self._ray = ray
        ray.init(address=address, log_to_driver=False)
        self._task = ray.remote(num_cpus=1)(_sweep_point_files)

    def __enter__(self) -> "_RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self._ray.shutdown()

    def submit(self, name: str, point: dict):
        return self._task.remote(name, point).future()


def sweep(spec: NotebookSpec, points: list[dict[str, Any]], jobs: int = 2,
          out: Path | None = None, ray_address: str | None = None) -> tuple[Path, list[dict]]:
    """Run every grid point in parallel processes, or as tasks on the Ray cluster at ``ray_address``
    (the files of each point come back into the same folders as with local processes); a failed point
    is reported, the others complete. Writes ``table.csv`` and ``table.json`` into ``out``; returns
    the folder and the rows. Every point and ``out`` are checked before the first point starts."""
    from tqdm.auto import tqdm

    for point in points:
        spec.validate(point)
    out = check_out(out if out else runs_dir() / f"sweep-{spec.name}-{_short_hash(points)}")
    rows: list[dict] = []
    pool = ProcessPoolExecutor(max_workers=jobs) if ray_address is None else _RayPool(ray_address)
    with pool:
        futures = {}
        for point in points:
            point_dir = out / f"{spec.name}-{_short_hash(spec.validate(point))}"
            fut = (pool.submit(_sweep_point, spec.name, point, str(point_dir)) if ray_address is None
                   else pool.submit(spec.name, point))
            futures[fut] = point, point_dir
        for fut in tqdm(as_completed(futures), total=len(futures), desc=f"sweep {spec.name}"):
            point, point_dir = futures[fut]
            row: dict[str, Any] = dict(point)
            try:
                record = fut.result()
                if ray_address is not None:
                    record, files = record
                    for rel, data in files.items():
                        (point_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                        (point_dir / rel).write_bytes(data)
                for metric, m in record["metrics"].items():
                    row[metric] = m["value"]
                    if m["ci95"]:
                        row[f"{metric}_ci_lo"], row[f"{metric}_ci_hi"] = m["ci95"]
                row["error"] = ""
            except Exception as exc:  # a failed point must not stop the others
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            rows.append(row)
    rows.sort(key=lambda r: json.dumps({k: r[k] for k in points[0]}, sort_keys=True, default=str))
    _write_table(out, rows)
    return out, rows


def _write_table(out: Path, rows: list[dict]) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "table.json", rows)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".table.", suffix=".csv")
    os.close(fd)
    pd.DataFrame(rows).to_csv(tmp, index=False)
    os.replace(tmp, out / "table.csv")
