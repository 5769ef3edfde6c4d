"""Tests of ppal_lab.compendium.runner beyond the command line (tests/compendium/test_cli.py): a sweep
on a Ray cluster brings back the same records and files as local processes."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ppal_lab.compendium import runner
from ppal_lab.compendium.specs import SPECS

POINT = {"n_seeds": 1, "n_items": 600, "n_per_month": 500}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _without_timings(obj):
    """Everything but wall times and creation stamps (which differ between any two runs)."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if "time" not in k and k != "created"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


@pytest.mark.slow
def test_sweep_on_a_ray_cluster_brings_back_what_local_processes_write(tmp_path):
    pytest.importorskip("ray")
    spec = SPECS["01_supply_chain_data"]
    points = runner.grid(spec, [("seed", "4")])
    points = [dict(POINT, **p) for p in points]
    port = _free_port()
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    # a one-host cluster on loopback, started and stopped by this test only (its own process group)
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                             "--disable-usage-stats", "--temp-dir", ray_tmp],
                            env=env, stdout=open(tmp_path / "ray.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in (tmp_path / "ray.log").read_text(errors="replace"):
            assert head.poll() is None and time.monotonic() < deadline, (tmp_path / "ray.log").read_text()
            time.sleep(1)
        out_ray, rows_ray = runner.sweep(spec, points, out=tmp_path / "ray-sweep",
                                         ray_address=f"127.0.0.1:{port}")
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, 9)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    out_local, rows_local = runner.sweep(spec, points, jobs=1, out=tmp_path / "local-sweep")
    assert [r["error"] for r in rows_ray] == [""]
    assert _without_timings(rows_ray) == _without_timings(rows_local)
    files_ray = sorted(p.relative_to(out_ray) for p in out_ray.rglob("*") if p.is_file())
    files_local = sorted(p.relative_to(out_local) for p in out_local.rglob("*") if p.is_file())
    assert files_ray == files_local
    for rel in files_ray:
        if rel.suffix == ".json" and rel.name != "table.json":
            a = json.loads((out_ray / rel).read_text())
            b = json.loads((out_local / rel).read_text())
            assert _without_timings(a) == _without_timings(b)
