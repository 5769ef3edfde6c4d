"""One process per host: two players and the dealer, each in a network namespace of its own.

The test makes four namespaces -- one per party and one holding a bridge -- joined by veth pairs, with
addresses 10.77.0.1-3/24 that exist only inside them (no route leaves them), runs ``ppal-lab party``
in each party's namespace (chapter 09's secure similarity, each player drawing its own data from its
own seed), and checks that the result equals the one-host run of :func:`run_parties` with the same
seeds, bit for bit. Needs root (CAP_NET_ADMIN); where ``ip netns add`` is not permitted it skips and
says why. The namespaces are deleted in a ``finally`` (which also removes the veths and the bridge).

The same for the secure MADDPG (two iterations, small networks): each player's ``ppal-lab party`` gets
only the public config and its own private seed, and the result equals :func:`run_parties` running
:func:`~ppal_lab.secure.maddpg_party.secure_party` on one host. And the delaying router of
``netlab.py`` (which ``bench_secure_maddpg.py --network-check`` uses) delays by what it is asked to.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from ppal_lab.secure.similarity import own_data, own_data_similarity_party, plaintext_similarity
from ppal_lab.marl.maddpg import GameConfig, MADDPGConfig
from ppal_lab.secure.maddpg_party import SecureSettings, secure_party
from ppal_lab.secure.secure_maddpg import private_seeds
from ppal_lab.secure.twoparty import run_parties

from netlab import NetLabUnavailable, PartyNet, echo_rtt, run_party_commands

N, K, THRESHOLD, DATA_SEED, SEED, DEALER_SEED = 12, 4, 0.5, 3, 4, 5
SD = [0.5, 1.0, 2.0, 4.0]
SUBNET = "10.77.0"


@pytest.fixture
def namespaces(tmp_path):
    """Three namespaces (players 0, 1 and the dealer) on a bridge; removed afterwards, also on failure."""
    try:
        with PartyNet(3, "veth") as net:
            yield net
    except NetLabUnavailable as exc:
        pytest.skip(str(exc))


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
            procs.append(subprocess.Popen(_party_command(rank, namespaces.ns[rank], str(tmp_path / f"{rank}.pkl")),
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


MADDPG_CONFIG = {"seed": 3, "iterations": 2, "hidden": 16, "batch": 16, "pretrain_episodes": 0}
MADDPG_SHARING_SEED = 8


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_secure_maddpg_players_and_dealer_in_three_namespaces_match_the_one_host_run(namespaces, tmp_path):
    own = private_seeds(MADDPG_CONFIG["seed"])
    apart = run_party_commands(namespaces, "ppal_lab.secure.maddpg_party:secure_party_from_config",
                               [json.dumps([{**MADDPG_CONFIG, "private_seed": s}]) for s in own],
                               seed=MADDPG_SHARING_SEED, dealer_seed=MADDPG_SHARING_SEED, workdir=str(tmp_path))
    c = MADDPG_CONFIG
    public = (GameConfig(), MADDPGConfig(hidden=c["hidden"], batch_size=c["batch"]), SecureSettings(),
              c["iterations"], c["seed"], c["pretrain_episodes"])
    one_host = run_parties(secure_party, 2, args=public, party_args=[(s,) for s in own], seed=MADDPG_SHARING_SEED,
                           dealer_seed=MADDPG_SHARING_SEED, verbose_comm=True, timeout=300)
    for rank in (0, 1):
        got, want = apart[rank]["value"], one_host[rank]
        assert got["start_digest"] == want["start_digest"]        # each built the same state by itself
        assert got["steps"] == want["steps"] and len(got["steps"]) == c["iterations"]
        assert got["weights"].keys() == want["weights"].keys()
        for name in want["weights"]:                              # the trained networks, bit for bit
            for x, y in zip(got["weights"][name], want["weights"][name]):
                assert np.array_equal(np.asarray(x), np.asarray(y)), (rank, name)
        stats = apart[rank]["comm_stats"]
        assert (stats.rounds, stats.bytes) == (one_host.comm_stats[rank].rounds, one_host.comm_stats[rank].bytes)
    assert apart[2]["value"] is None and apart[2]["comm_stats"].rounds == one_host.dealer_stats.rounds > 0


def test_the_delaying_router_delays_by_the_round_trip_asked_for():
    try:
        with PartyNet(2, "veth", subnet=78) as net:
            veth = echo_rtt(net, 100)[0]
        with PartyNet(2, "router", rtt_s=0.02, rate_bit_s=1e9, subnet=79) as net:
            delayed = echo_rtt(net, 30)[0]
            assert net.router.packets > 0
    except NetLabUnavailable as exc:
        pytest.skip(str(exc))
    # the echo's own round trip plus 20 ms (a user-space router on a shared machine adds a little more)
    assert 0.02 + veth <= delayed < 0.02 + veth + 0.005, (veth, delayed)
