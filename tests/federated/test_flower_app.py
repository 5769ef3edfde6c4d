"""Tests of ppal_lab.federated.flower_app: the protocol as a Flower app gives the in-process engine's
model and ledgers, and the orchestrator receives only what the "who learns what" table says.

Most tests drive the real ServerApp logic and the real ClientApp through a loopback grid (every
message handed to the ClientApp in this process, each node with its own persistent Context), so they
run in seconds; one test runs Flower's simulation engine (Ray) and one Flower's deployment engine
(SuperLink and SuperNodes as separate processes on loopback).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from ppal_lab.federated import run_federated_al
from ppal_lab.federated.flower_app import (FlowerSites, run_flower_simulation, run_on_grid, site_app,
                                           write_app_dir, write_site_files)

SETTINGS = dict(label_budget=50, batch_size=10, strategy="least_confident", epsilon=2.0, seed=3)


class LoopbackGrid(Grid):
    """A Grid that hands every message to the ClientApp in this process (one Context per node)."""

    def __init__(self, client_app, n_nodes: int, shuffle_seed: int = 0) -> None:
        # what Flower's runtime sets in a ServerApp process (messages carry the run id)
        TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
        self.app = client_app
        ids = np.random.default_rng(shuffle_seed).choice(10**9, size=n_nodes, replace=False) + 1
        # node ids are random, unrelated to the site order, as on a SuperLink
        self.contexts = {int(nid): Context(run_id=1, node_id=int(nid), state=RecordDict(), run_config={},
                                           node_config={"partition-id": p, "num-partitions": n_nodes})
                         for p, nid in enumerate(ids)}
        self.seen: list = []
        self.replies: list = []

    def set_run(self, run):  # pragma: no cover - not used
        pass

    @property
    def run(self):  # pragma: no cover - not used
        return None

    def create_message(self, *a, **k):  # pragma: no cover - not used
        raise NotImplementedError

    def get_node_ids(self):
        return list(self.contexts)[::-1]

    def push_messages(self, messages):  # pragma: no cover - not used
        raise NotImplementedError

    def pull_messages(self, message_ids):  # pragma: no cover - not used
        raise NotImplementedError

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            self.seen.append((msg.metadata.message_type, msg.metadata.dst_node_id))
            replies.append(self.app(msg, self.contexts[msg.metadata.dst_node_id]))
            self.replies.append((msg.metadata.message_type, replies[-1]))
        return replies[::-1]  # any order: the orchestrator orders replies by site


def _norm(obj):
    return json.loads(json.dumps(obj))


def _same_run(a, b):
    np.testing.assert_array_equal(a.curve.n_labels, b.curve.n_labels)
    np.testing.assert_allclose(a.curve.accuracy, b.curve.accuracy, atol=1e-12)
    np.testing.assert_allclose(a.final_params, b.final_params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.epsilon_spent, b.epsilon_spent, rtol=1e-12)
    assert _norm(a.ledgers) == _norm(b.ledgers)
    np.testing.assert_array_equal(a.dpsgd_steps, b.dpsgd_steps)
    np.testing.assert_array_equal(a.labels_per_participant, b.labels_per_participant)
    assert a.log == b.log


@pytest.fixture(scope="module")
def three_sites(reman):
    X, y, Xt, yt, parts = reman
    return X, y, Xt, yt, parts[:3]


@pytest.mark.parametrize("strategy,epsilon", [("least_confident", 2.0), ("random", 1.0), ("entropy", None)])
def test_flower_app_gives_the_in_process_model_and_ledgers(three_sites, tmp_path, strategy, epsilon):
    X, y, Xt, yt, parts = three_sites
    settings = dict(SETTINGS, strategy=strategy, epsilon=epsilon)
    ours = run_federated_al(X, y, Xt, yt, parts, **settings)
    write_site_files(X, y, parts, tmp_path)
    grid = LoopbackGrid(site_app(tmp_path), len(parts))
    theirs, final, sites = run_on_grid(grid, settings, Xt, yt, len(parts))
    _same_run(ours, theirs)
    assert torch.equal(final, torch.from_numpy(theirs.final_params))
    if epsilon is not None:
        assert np.all(theirs.epsilon_spent <= epsilon) and np.all(theirs.epsilon_spent > 0.9 * epsilon)
    assert theirs.labelled == [] and theirs.curve.queried.size == 0  # identities never left the sites


def test_the_orchestrator_receives_only_parameters_noisy_scores_and_public_counts(three_sites, tmp_path):
    X, y, Xt, yt, parts = three_sites
    write_site_files(X, y, parts, tmp_path)
    grid = LoopbackGrid(site_app(tmp_path), len(parts))
    _, _, sites = run_on_grid(grid, SETTINGS, Xt, yt, len(parts))
    received = {(step, arrays, config) for step, _, arrays, config in sites.transcript}
    assert received == {
        ("query.hello", (), ("index", "pool_size")),
        ("query.setup", (), ("counts",)),
        ("train", ("params",), ("counts",)),
        ("query.propose", ("released",), ("counts",)),
        ("query.label", (), ("counts",)),
        ("query.report", (), ("counts", "report")),
    }
    # each released vector holds at most k noisy scores (k = ceil(2 b / n) proposals per site)
    k = -(-2 * SETTINGS["batch_size"] // len(parts))
    released = [r.content["arrays"]["released"].numpy() for step, r in grid.replies
                if step == "query.propose" and "arrays" in r.content]
    assert released and all(1 <= v.size <= k for v in released)
    assert all(sites.sent_bytes > 0) and all(sites.received_bytes > 0)
    # the end-of-run report is the site's own accounting, without item identities
    reports = [json.loads(r.content["config"]["json"])["report"] for step, r in grid.replies
               if step == "query.report"]
    assert [sorted(r) for r in reports] == [["epsilon_spent", "events", "ledger", "n_labelled",
                                             "noisy_steps"]] * len(parts)


@pytest.mark.parametrize("topology", [dict(compression="int8"), dict(compression="topk", topk_fraction=0.2),
                                      dict(edges=2, kappa=2), dict(compression="int8", quant_bits=4, edges=2)])
def test_compressed_and_hierarchical_runs_on_flower_give_the_in_process_model(three_sites, tmp_path, topology):
    X, y, Xt, yt, parts = three_sites
    settings = dict(SETTINGS, **topology)
    ours = run_federated_al(X, y, Xt, yt, parts, **settings)
    write_site_files(X, y, parts, tmp_path)
    grid = LoopbackGrid(site_app(tmp_path), len(parts))
    theirs, _, sites = run_on_grid(grid, settings, Xt, yt, len(parts))
    _same_run(ours, theirs)
    assert ours.traffic == theirs.traffic
    # what travelled in the train replies is the encoded update, and its size is what was counted
    names = {arrays for step, _, arrays, _ in sites.transcript if step == "train"}
    method = topology.get("compression", "none")
    assert names == {"none": {("params",)}, "int8": {("q", "scale")}, "topk": {("index", "value")}}[method]
    train_bytes = sum(sum(a.numpy().nbytes for a in r.content["arrays"].values())
                      for step, r in grid.replies if step == "train" and "arrays" in r.content)
    assert sites.update_bytes.sum() == train_bytes == sum(theirs.traffic["update_bytes"])


def test_sites_are_ordered_by_their_index_not_by_node_id(three_sites, tmp_path):
    X, y, Xt, yt, parts = three_sites
    write_site_files(X, y, parts, tmp_path)
    for shuffle in (0, 1):
        grid = LoopbackGrid(site_app(tmp_path), len(parts), shuffle_seed=shuffle)
        sites = FlowerSites(grid, grid.get_node_ids())
        assert sites.pool_sizes == [p.size for p in parts]
        by_index = {c.node_config["partition-id"]: nid for nid, c in grid.contexts.items()}
        assert sites.node_ids == [by_index[p] for p in range(len(parts))]


@pytest.mark.slow
def test_flower_simulation_engine_gives_the_in_process_result(three_sites):
    """One run of Flower's simulation engine (Ray, 2 CPUs): same model, ledgers and curve."""
    X, y, Xt, yt, parts = three_sites
    settings = dict(SETTINGS, label_budget=40)
    ours = run_federated_al(X, y, Xt, yt, parts, **settings)
    run = run_flower_simulation(X, y, Xt, yt, parts, **settings)
    _same_run(ours, run.result)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_superlink_and_supernodes_in_separate_processes_give_the_in_process_result(three_sites, tmp_path):
    """Flower's deployment engine on loopback: a SuperLink, one SuperNode per site (each told only
    its own data file), ``flwr run`` submitting the app; insecure mode (TLS and node authentication are
    how a consortium runs it across hosts, book/reproduce.md). A ClientApp process starts for every
    message, so the job is one query round."""
    X, y, Xt, yt, parts = three_sites
    settings = dict(SETTINGS, label_budget=30, initial_labels=20)
    ours = run_federated_al(X, y, Xt, yt, parts, **settings)
    files = write_site_files(X, y, parts, tmp_path / "data")
    np.savez(tmp_path / "data" / "test.npz", X=Xt, y=yt)
    result_file = tmp_path / "result.json"
    write_app_dir(tmp_path / "app", {"n-sites": len(parts), "test-file": str(tmp_path / "data" / "test.npz"),
                                     "result-file": str(result_file), "timeout": 600.0,
                                     **{k.replace("_", "-"): v for k, v in settings.items()}})
    port = _free_port()
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "consortium"\n\n[superlink.consortium]\n'
                                      f'address = "127.0.0.1:{port}"\ninsecure = true\n')
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", FLWR_HOME=str(home),
               PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    procs = []

    def start(*cmd, log):
        procs.append(subprocess.Popen([os.path.join(bin_dir, cmd[0]), *cmd[1:]], env=env, cwd=tmp_path,
                                      stdout=open(tmp_path / log, "wb"), stderr=subprocess.STDOUT))

    try:
        start("flower-superlink", "--insecure", "--host", "127.0.0.1", "--port", str(port),
              "--database", ":flwr-in-memory:", log="superlink.log")
        for p, f in enumerate(files):
            start("flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{port}", "--port",
                  str(_free_port()), "--node-config", f"site-index={p} data-file='{f}'", log=f"site{p}.log")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the SuperLink takes a while to listen on a loaded machine
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        submitted = subprocess.run([os.path.join(bin_dir, "flwr"), "run", ".", "consortium", "--format", "json"],
                                   env=env, cwd=tmp_path / "app", capture_output=True, text=True, timeout=300)
        assert json.loads(submitted.stdout)["success"], submitted.stdout + submitted.stderr
        deadline = time.monotonic() + 780
        while not result_file.exists() and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a Flower process died"
            time.sleep(2)
        assert result_file.exists(), (tmp_path / "superlink.log").read_text(errors="replace")[-3000:]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    record = json.loads(result_file.read_text())
    np.testing.assert_allclose(record["curve"]["accuracy"], ours.curve.accuracy, atol=1e-12)
    np.testing.assert_allclose(record["final_params"], ours.final_params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(record["epsilon_spent"], ours.epsilon_spent, rtol=1e-12)
    assert _norm(record["ledgers"]) == _norm(ours.ledgers)
    assert all(b > 0 for b in record["sent_bytes"])


def test_a_consortium_whose_site_indices_do_not_cover_every_site_is_refused(three_sites, tmp_path):
    from ppal_lab.compendium.errors import ParameterError

    X, y, Xt, yt, parts = three_sites
    write_site_files(X, y, parts, tmp_path)
    grid = LoopbackGrid(site_app(tmp_path), len(parts))
    for context in grid.contexts.values():
        context.node_config["partition-id"] = 0  # every node claims to be site 0
    with pytest.raises(ParameterError, match="site-index"):
        FlowerSites(grid, grid.get_node_ids())


def test_run_config_settings_and_app_folder(tmp_path):
    from ppal_lab.federated.flower_app import settings_from_run_config

    got = settings_from_run_config({"label-budget": 80, "epsilon": "inf", "seed": 2, "test-file": "t.npz"})
    assert got == {"label_budget": 80, "epsilon": None, "seed": 2}
    app = write_app_dir(tmp_path / "app", {"n-sites": 3, "epsilon": 2.0, "strategy": "margin"})
    text = (app / "pyproject.toml").read_text()
    assert 'serverapp = "consortium_app:server_app"' in text and 'strategy = "margin"' in text
    assert "flower_app.server_app" in (app / "consortium_app.py").read_text()


def test_a_site_with_its_own_secret_seed_draws_noise_the_orchestrator_cannot_regenerate(three_sites, tmp_path):
    X, y, Xt, yt, parts = three_sites
    write_site_files(X, y, parts, tmp_path)
    runs = []
    for secret in (None, 12345):
        grid = LoopbackGrid(site_app(tmp_path), len(parts))
        if secret is not None:
            for context in grid.contexts.values():
                context.node_config["site-seed"] = secret + context.node_config["partition-id"]
        runs.append(run_on_grid(grid, dict(SETTINGS, label_budget=30), Xt, yt, len(parts))[0])
    ours = run_federated_al(X, y, Xt, yt, parts, **dict(SETTINGS, label_budget=30))
    np.testing.assert_array_equal(runs[0].final_params, ours.final_params)  # run seed: reproducible
    assert not np.allclose(runs[1].final_params, ours.final_params)  # secret seeds: other noise
    np.testing.assert_allclose(runs[1].epsilon_spent, ours.epsilon_spent)  # same accounting
