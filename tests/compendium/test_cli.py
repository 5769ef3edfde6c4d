"""The command line: bad input exits 2 with one line on stderr and writes nothing; a real run writes
its notebook and record outside notebooks/."""
import json
import subprocess
import sys

import nbformat
import pytest

from ppal_lab.compendium import runner
from ppal_lab.compendium.paths import notebooks_dir
from ppal_lab.compendium.specs import SPECS

PPAL = [sys.executable, "-m", "ppal_lab.compendium.cli"]


def ppal(*args, cwd=None):
    return subprocess.run(PPAL + list(args), capture_output=True, text=True, cwd=cwd, timeout=600)


def test_list_shows_every_notebook_and_parameter():
    out = ppal("list")
    assert out.returncode == 0
    for spec in SPECS.values():
        assert spec.name in out.stdout
        for p in spec.params:
            assert p.name in out.stdout and p.help in out.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "no_such_notebook"], "notebook = 'no_such_notebook' is invalid"),
    (["run", "01", "-p", "epsilon", "1"], "unknown parameter 'epsilon'"),
    (["run", "01", "-p", "missing_rate", "1.5"], "missing_rate = 1.5 is invalid: must be in [0.0, 1.0)"),
    (["run", "01", "-p", "n_sites", "four"], "n_sites = 'four' is invalid"),
    (["sweep", "01", "-p", "missing_mechanism", "mcar,sometimes"], "missing_mechanism = 'sometimes'"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(args, message, tmp_path):
    out_dir = tmp_path / "out"
    out = ppal(*args, "--out", str(out_dir))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and message in out.stderr
    assert not out_dir.exists()


@pytest.mark.slow
def test_run_with_new_parameters_leaves_committed_notebook_alone(tmp_path):
    committed = (notebooks_dir() / "01_supply_chain_data.ipynb").read_bytes()
    out = ppal("run", "01_supply_chain_data.ipynb", "-p", "seed", "5", "-p", "n_items", "600",
               "-p", "n_per_month", "500", "-p", "missing_mechanism", "mnar", "--out", str(tmp_path), "-q")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (notebooks_dir() / "01_supply_chain_data.ipynb").read_bytes() == committed
    record = json.loads((tmp_path / "01_supply_chain_data.json").read_text())
    assert record["parameters"]["seed"] == 5 and record["parameters"]["missing_mechanism"] == "mnar"
    assert str(tmp_path / "01_supply_chain_data.json") in out.stdout
    executed = nbformat.read(tmp_path / "01_supply_chain_data.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_sweep_reports_failed_points_and_completes_the_others(tmp_path, monkeypatch):
    calls = []

    def fake_point(name, overrides, out):
        calls.append(overrides)
        if overrides["seed"] == 1:
            raise RuntimeError("kernel died")
        return {"metrics": {"m": {"value": float(overrides["seed"]), "ci95": [0.0, 1.0]}}}

    # A thread pool stands in for processes so the monkeypatched point function is used.
    from concurrent.futures import ThreadPoolExecutor
    monkeypatch.setattr(runner, "_sweep_point", fake_point)
    monkeypatch.setattr(runner, "ProcessPoolExecutor", ThreadPoolExecutor)
    spec = SPECS["01_supply_chain_data"]
    out, rows = runner.sweep(spec, runner.grid(spec, [("seed", "0,1,2")]), jobs=2, out=tmp_path)
    assert len(calls) == 3
    assert [r["error"] for r in rows] == ["", "RuntimeError: kernel died", ""]
    assert [r.get("m") for r in rows if not r["error"]] == [0.0, 2.0]
    assert (out / "table.csv").exists() and len(json.loads((out / "table.json").read_text())) == 3


def test_grid_is_the_cartesian_product_and_validates_first():
    spec = SPECS["01_supply_chain_data"]
    points = runner.grid(spec, [("seed", "0,1"), ("missing_mechanism", "mcar,mar,mnar")])
    assert len(points) == 6 and {"seed": 1, "missing_mechanism": "mar"} in points


def test_a_second_execution_into_the_same_notebook_is_refused_at_once(tmp_path):
    target = tmp_path / "nb.ipynb"
    spec = SPECS["01_supply_chain_data"]
    with runner._exclusive(target):
        with pytest.raises(RuntimeError, match="already being executed"):
            runner.execute(spec, target, {"seed": 0})
    assert not target.exists()
    with runner._exclusive(target):      # released again
        pass
