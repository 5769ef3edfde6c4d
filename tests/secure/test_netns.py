"""One process per host: two players and the dealer, each in a network namespace of its own.

The test makes four namespaces -- one per party and one holding a bridge -- joined by veth pairs, with
addresses 10.77.0.1-3/24 that exist only inside them (no route leaves them), runs ``ppal-lab party``
in each party's namespace (chapter 09's secure similarity, each player drawing its own data from its
own seed), and checks that the result equals the one-host run of :func:`run_parties` with the same
seeds, bit for bit. Needs root (CAP_NET_ADMIN); where ``ip netns add`` is not permitted it skips and
says why. The namespaces are deleted in a ``finally`` (which also removes the veths and the bridge).
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ppal_lab.secure.similarity import own_data, own_data_similarity_party, plaintext_similarity
from ppal_lab.secure.twoparty import run_parties

N, K, THRESHOLD, DATA_SEED, SEED, DEALER_SEED = 12, 4, 0.5, 3, 4, 5
SD = [0.5, 1.0, 2.0, 4.0]
SUBNET = "10.77.0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def namespaces():
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")
    tag = f"ppal{os.getpid() % 100000}"
    names = {"switch": f"{tag}sw", 0: f"{tag}p0", 1: f"{tag}p1", 2: f"{tag}dl"}
    made = []
    try:
        try:
            _ip("netns", "add", names["switch"])
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot create network namespaces here (needs root / CAP_NET_ADMIN): "
                        f"{exc.stderr.strip()}")
        made.append(names["switch"])
        sw = names["switch"]
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        for rank in range(3):
            ns = names[rank]
            _ip("netns", "add", ns)
            made.append(ns)
            # One veth pair per party: "eth0" inside the party's namespace, its peer on the bridge.
            _ip("-n", sw, "link", "add", f"port{rank}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", sw, "link", "set", f"port{rank}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{rank + 1}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield names
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _party_command(rank: int, ns: str, out: str) -> list[str]:
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "ppal_lab.compendium.cli", "party",
           "--rank", str(rank), "--world-size", "2", "--rendezvous", f"tcp://{SUBNET}.1:29511",
           "--verbose-comm", "--out", out]
    if rank == 2:
        return cmd + ["--dealer-seed", str(DEALER_SEED)]
    return cmd + ["--seed", str(SEED), "--args", f"[{N}, {K}, {SD}, {THRESHOLD}, {DATA_SEED}]",
                  "ppal_lab.secure.similarity:own_data_similarity_party"]


@pytest.mark.timeout(400)
def test_players_and_dealer_in_three_namespaces_match_the_one_host_run(namespaces, tmp_path):
    procs = []
    try:
        for rank in range(3):
            env = dict(os.environ, GLOO_SOCKET_IFNAME="eth0")  # gloo talks over the veth only
            for key in ("RANK", "WORLD_SIZE", "RENDEZVOUS", "MASTER_ADDR", "MASTER_PORT"):
                env.pop(key, None)
            procs.append(subprocess.Popen(_party_command(rank, namespaces[rank], str(tmp_path / f"{rank}.pkl")),
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode()[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    apart = []
    for rank in range(3):
        with open(tmp_path / f"{rank}.pkl", "rb") as f:
            apart.append(pickle.load(f))
    one_host = run_parties(own_data_similarity_party, 2, args=(N, K, SD, THRESHOLD, DATA_SEED), seed=SEED,
                           dealer_seed=DEALER_SEED, verbose_comm=True, timeout=200)
    # Player 1 received the scores and decisions; identical to the one-host run, bit for bit.
    assert apart[0]["value"]["values"] == {} == one_host[0]["values"]
    for mode in ("score", "decision"):
        assert np.array_equal(apart[1]["value"]["values"][mode], one_host[1]["values"][mode])
    m, m_hat = own_data(0, N, K, SD, DATA_SEED), own_data(1, N, K, SD, DATA_SEED)
    np.testing.assert_allclose(apart[1]["value"]["values"]["score"], plaintext_similarity(m, m_hat, SD), atol=1e-3)
    # The same messages: per player, the same rounds and bytes; the dealer did the same work.
    for rank in range(2):
        got, want = apart[rank]["comm_stats"], one_host.comm_stats[rank]
        assert (got.rounds, got.bytes) == (want.rounds, want.bytes)
    assert apart[2]["value"] is None and apart[2]["comm_stats"].rounds == one_host.dealer_stats.rounds > 0
