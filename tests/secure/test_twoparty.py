"""Tests of ppal_lab.secure.twoparty: the launcher of players and dealer, on one host and one per host.

Party functions live in importable modules because spawned parties must import them (those defined
here are imported by the children as ``test_twoparty``, through the sys.path that ``spawn`` passes on).
Fixed-point tolerance: CrypTen encodes with 16 fractional bits (resolution 2**-16 ~ 1.5e-5); for inputs
of magnitude <~ 4 and inner dimension 4, every revealed value must be within ATOL = 1e-3 of plaintext.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ppal_lab.compendium import cli
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.secure import examples
from ppal_lab.secure.transcript import recorded_party
from ppal_lab.secure.twoparty import (CommStats, PartyError, PartyResults, PartyTimeout, comm_stats,
                                      dealer_batch, dealer_comm_stats, dealer_requests, run_parties,
                                      run_this_party)

ATOL = 1e-3
LSB = 2.0**-16
X_SHAPE, W_SHAPE = (3, 4), (4, 2)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(X_SHAPE, generator=g), torch.randn(X_SHAPE, generator=g)
    w = torch.randn(W_SHAPE, generator=g)
    assert (x - y).abs().min() > 1e-3  # keep the comparison away from fixed-point ties
    return x, y, w


def _check_revealed(out, x, y, w):
    torch.testing.assert_close(out["x*y+x"], x * y + x, atol=ATOL, rtol=0)
    torch.testing.assert_close(out["x@W"], x @ w, atol=ATOL, rtol=0)
    torch.testing.assert_close(out["relu(x-y)"], (x - y).relu(), atol=ATOL, rtol=0)
    assert torch.equal(out["x>y"], (x > y).float())


def _no_leftover_parties():
    return [p for p in multiprocessing.active_children() if p.name.startswith("ppal-party-")] == []


# ----------------------------------------------------------------- party functions for these tests

def counting_party(rank: int) -> tuple:
    """One product of shared 4x4 tensors; this player's traffic with the players and with the dealer."""
    from ppal_lab.secure import crypten

    x = crypten.cryptensor(torch.ones(4, 4), src=0)
    (x * x).get_plain_text()
    return comm_stats(), dealer_comm_stats()


def bad_dealer_request_party(rank: int, kind: str) -> None:
    """Player 0 asks the dealer for a triple it cannot make (a 2x3 @ 4x5 product: a RuntimeError
    there, which CrypTen's own server loop swallows) or of a kind it does not serve."""
    from crypten.mpc.provider.ttp_provider import TTPClient

    if rank == 0:
        TTPClient.get().ttp_request(kind, None, (2, 3), (4, 5), "matmul")


def staged_party(rank: int, batch: bool, runs: list) -> tuple:
    """A stage (a product, a matrix product and, if ``compare``, a comparison) run once per entry
    ``(n, compare)`` of ``runs`` (n: the side of the square inputs), each run inside
    ``dealer_batch("stage")``; the opened results and the counts."""
    from ppal_lab.secure import crypten

    out = []
    for n, compare in runs:
        x = crypten.cryptensor(torch.linspace(-2, 2, n * n).view(n, n), src=0)
        y = crypten.cryptensor(torch.linspace(3, -1, n * n).view(n, n), src=1)
        with dealer_batch("stage", enabled=batch):
            z = x * y + x.matmul(y)
            z = z * (x > y) if compare else z
        out.append(z.get_plain_text())
    return out, comm_stats(), dealer_comm_stats(), dealer_requests()


# ---------------------------------------------------------------------------- one host, with dealer

ARGS = (X_SHAPE, W_SHAPE)


@pytest.fixture(scope="module")
def two_party_run(tmp_path_factory):
    """One seeded 2-player run with a seeded dealer, shared by the tests that inspect it."""
    x, y, w = _inputs()
    save_dir = str(tmp_path_factory.mktemp("shares"))
    party_args = [({"x": x}, save_dir), ({"y": y, "W": w}, save_dir)]
    res = run_parties(recorded_party, world_size=2, args=(examples.private_arithmetic, *ARGS),
                      party_args=party_args, timeout=120, verbose_comm=True, seed=7, dealer_seed=11)
    return (x, y, w), party_args, res


@pytest.mark.timeout(150)
def test_two_players_and_a_dealer_each_supply_their_own_input(two_party_run):
    from ppal_lab.secure import crypten

    (x, y, w), _, res = two_party_run
    assert isinstance(res, PartyResults) and len(res) == 2
    for rec in res:  # every player reveals the same, correct values
        _check_revealed(rec.value, x, y, w)
        torch.testing.assert_close(rec.value["x*y reloaded"], x * y, atol=ATOL, rtol=0)
    s0, s1 = res[0].value["my share of x"], res[1].value["my share of x"]
    encoded = crypten.encoder.FixedPointEncoder(precision_bits=16).encode(x)
    assert not torch.equal(s0, encoded) and not torch.equal(s1, encoded)
    assert torch.equal(s0 + s1, encoded)
    # The dealer is a process of its own: only player 0 hears from it, player 1 never does.
    from_dealer = [[m for m in rec.received if m.source == "dealer"] for rec in res]
    assert len(from_dealer[0]) > 0 and from_dealer[1] == []
    assert len(res[0].sent_to_dealer) > 0 and res[1].sent_to_dealer == []
    # Statistics: player-to-player traffic is symmetric once the dealer's is booked apart.
    a, b = res.comm_stats
    assert (a.rank, b.rank) == (0, 1) and a.rounds == b.rounds and a.bytes == b.bytes
    revealed = sum(res[0].value[k].numel() for k in ("x*y+x", "x@W", "relu(x-y)", "x>y"))
    assert 10 <= a.rounds <= 1000 and 8 * revealed <= a.bytes <= 1_000_000
    d = res.dealer_stats
    # per request the dealer receives it, sends the size, broadcasts c_0; at the end, player 0's "terminate"
    assert isinstance(d, CommStats) and d.rank == 2 and d.rounds == 3 * len(res[0].sent_to_dealer) + 1
    assert res.wall_s > 0 and _no_leftover_parties()


@pytest.mark.timeout(150)
def test_seeded_dealer_reproduces_bit_for_bit_and_fresh_dealer_only_the_rounding(two_party_run):
    _, party_args, first = two_party_run
    same = run_parties(recorded_party, 2, (examples.private_arithmetic, *ARGS), party_args=party_args,
                       seed=7, dealer_seed=11, timeout=120)
    fresh = run_parties(recorded_party, 2, (examples.private_arithmetic, *ARGS), party_args=party_args,
                        seed=7, timeout=120)
    assert same.comm_stats is None and same.dealer_stats is None
    for a, b, c in zip(first, same, fresh):
        assert all(torch.equal(a.value[k], b.value[k]) for k in a.value)  # the random-looking shares too
        # A fresh dealer: other triples (player 0 receives other c_0)...
        dealer_a = [m.values for m in a.received if m.source == "dealer"]
        dealer_c = [m.values for m in c.received if m.source == "dealer"]
        assert all(np.array_equal(u, v) for u, v in zip(dealer_a, [m.values for m in b.received
                                                                    if m.source == "dealer"]))
        assert a.rank == 1 or not all(np.array_equal(u, v) for u, v in zip(dealer_a, dealer_c))
        # ... and the same results, up to one fixed-point unit per truncation (one per product here).
        for key in ("relu(x-y)", "x>y", "my share of x"):
            assert torch.equal(a.value[key], c.value[key])
        for key in ("x*y+x", "x@W"):
            assert (a.value[key] - c.value[key]).abs().max() <= LSB * 1.01


@pytest.mark.timeout(120)
def test_three_players_and_a_dealer():
    x, y, w = _inputs(1)
    res = run_parties(examples.private_arithmetic, 3, ARGS, timeout=100,
                      party_args=[({"x": x},), ({"y": y, "W": w},), ({},)])
    assert len(res) == 3
    for out in res:
        _check_revealed(out, x, y, w)
    assert torch.equal(sum(out["my share of x"] for out in res), (x * 2**16).long())


@pytest.mark.timeout(120)
def test_dealer_traffic_is_counted_apart():
    res = run_parties(counting_party, 2, timeout=100, verbose_comm=True)
    (players0, dealer0), (players1, dealer1) = res
    assert res.comm_stats == [players0, players1]
    assert players0.rounds == players1.rounds > 0 and players0.bytes == players1.bytes
    assert dealer1.rounds == 0 and dealer1.bytes == 0           # player 1 never talks to the dealer
    assert dealer0.rounds + 1 == res.dealer_stats.rounds > 1    # both ends; the dealer also got "terminate"
    tfp = run_parties(counting_party, 2, timeout=100, verbose_comm=True, dealer=False)
    assert tfp.dealer_stats is None and tfp[0][1].rounds == 0   # TFP: player 0 makes the triples itself


@pytest.mark.timeout(200)
def test_batched_dealer_requests_give_the_same_values_in_fewer_round_trips():
    """Three runs of a stage, with and without batching, same seeds and dealer: bit-identical openings,
    the same player-to-player traffic; with batching player 0 talks to the dealer once per run of the
    stage after the first (which records the requests one by one)."""
    runs = [run_parties(staged_party, 2, args=(batch, [(3, True)] * 3), timeout=150, verbose_comm=True, seed=4,
                        dealer_seed=5) for batch in (False, True)]
    for p in (0, 1):
        for plain, batched in zip(runs[0][p][0], runs[1][p][0]):
            assert torch.equal(plain, batched)
        assert runs[0][p][1].rounds == runs[1][p][1].rounds and runs[0][p][1].bytes == runs[1][p][1].bytes
    per_run = runs[0][0][3] // 3                      # one request per tuple, the same in every run
    assert per_run >= 4 and runs[0][0][3] == 3 * per_run
    assert runs[1][0][3] == per_run + 2               # recorded once, then one message per run
    assert runs[1][0][2].rounds == runs[1][0][3] * (runs[0][0][2].rounds // runs[0][0][3])
    assert runs[1][1][3] == runs[0][1][3] == 0        # player 1 never talks to the dealer
    expected = [torch.linspace(-2, 2, 9).view(3, 3), torch.linspace(3, -1, 9).view(3, 3)]
    x, y = expected
    torch.testing.assert_close(runs[1][0][0][2], (x * y + x @ y) * (x > y), atol=ATOL, rtol=0)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("runs, error", [([(3, True), (4, True)], "differs from the recorded"),
                                         ([(3, True), (3, False)], "not used"),
                                         ([(3, False), (3, True)], "beyond the recorded")])
def test_a_batched_stage_whose_requests_change_is_refused(runs, error):
    """Player 0 checks every call against the recorded sequence: never a share meant for another call."""
    with pytest.raises(PartyError, match=error) as info:
        run_parties(staged_party, 2, args=(True, runs), timeout=100)
    assert info.value.rank == 0


# ------------------------------------------------------------------------------------ failure modes

@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind, error", [("additive", "RuntimeError"), ("no_such_tuple", "ValueError"),
                                         ("batch", "ValueError")])    # a batch without its list of requests
def test_a_failing_dealer_gives_prompt_party_error(kind, error):
    start = time.monotonic()
    with pytest.raises(PartyError) as info:
        run_parties(bad_dealer_request_party, args=(kind,), timeout=80)
    assert info.value.dealer and info.value.rank == 2 and "the dealer (rank 2)" in str(info.value)
    assert error in info.value.message
    assert time.monotonic() - start < 60 and _no_leftover_parties()  # reported, not timed out


@pytest.mark.timeout(90)
def test_raising_party_gives_prompt_party_error():
    start = time.monotonic()
    with pytest.raises(PartyError) as info:
        run_parties(examples.failing_party, args=(1,), timeout=80)
    assert info.value.rank == 1 and not info.value.dealer
    assert "party 1 refuses to take part" in str(info.value)
    assert "ValueError" in info.value.remote_traceback and "failing_party" in info.value.remote_traceback
    assert time.monotonic() - start < 60 and _no_leftover_parties()


@pytest.mark.timeout(90)
def test_party_dying_without_a_word_gives_party_error():
    with pytest.raises(PartyError, match="exit code 3") as info:
        run_parties(examples.crashing_party, args=(3,), timeout=80)
    assert info.value.rank == 1 and _no_leftover_parties()


@pytest.mark.timeout(60)
def test_party_waiting_for_missing_peer_times_out():
    timeout = 15.0
    start = time.monotonic()
    with pytest.raises(PartyTimeout) as info:
        run_parties(examples.deserting_party, timeout=timeout)
    elapsed = time.monotonic() - start
    assert timeout <= elapsed < timeout + 8
    assert 0 in info.value.pending and _no_leftover_parties()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kwargs", [
    {"world_size": 1}, {"world_size": 4}, {"world_size": "2"}, {"world_size": True}, {"world_size": 2.0},
    {"timeout": 0}, {"timeout": -1.0}, {"timeout": math.inf}, {"timeout": math.nan},
    {"seed": -1}, {"seed": 1.5}, {"args": "xy"}, {"party_args": [()]},
    {"args": (lambda: 0,)}, {"dealer": 1}, {"dealer_seed": -1}, {"dealer_seed": 2.0},
    {"dealer": False, "dealer_seed": 3},
])
def test_bad_arguments_raise_parameter_error(kwargs):
    with pytest.raises(ParameterError):
        run_parties(examples.deserting_party, **kwargs)


@pytest.mark.timeout(30)
def test_unimportable_function_is_rejected_before_spawning():
    with pytest.raises(ParameterError, match="fn"):
        run_parties(lambda rank: rank)
    assert _no_leftover_parties()


# ---------------------------------------------------------------------------------- multi-host mode

_PARTY_SCRIPT = """
import pickle, sys
from ppal_lab.secure import run_this_party
from ppal_lab.secure.examples import private_arithmetic
with open(sys.argv[1], "rb") as f:
    own = pickle.load(f)
fn = None if own is None else private_arithmetic
outcome = run_this_party(fn, () if own is None else ((3, 4), (4, 2), own), seed=5, verbose_comm=True)
with open(sys.argv[2], "wb") as f:
    pickle.dump(tuple(outcome), f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_run_this_party_with_master_addr_and_port(tmp_path):
    """Three independent interpreters, as on three hosts (two players, the dealer), meet through
    MASTER_ADDR/MASTER_PORT."""
    x, y, w = _inputs(2)
    port = _free_port()
    procs = []
    try:
        for rank, own in enumerate([{"x": x}, {"y": y, "W": w}, None]):
            with open(tmp_path / f"in{rank}.pkl", "wb") as f:
                pickle.dump(own, f)
            env = {k: v for k, v in os.environ.items() if k != "RENDEZVOUS"}
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank))
            procs.append(subprocess.Popen(
                [sys.executable, "-c", _PARTY_SCRIPT, str(tmp_path / f"in{rank}.pkl"),
                 str(tmp_path / f"out{rank}.pkl")], env=env, stderr=subprocess.PIPE))
        for proc in procs:
            _, err = proc.communicate(timeout=100)
            assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outcomes = []
    for rank in range(3):
        with open(tmp_path / f"out{rank}.pkl", "rb") as f:
            outcomes.append(pickle.load(f))
    for rank in range(2):
        value, stats = outcomes[rank]
        _check_revealed(value, x, y, w)
        assert stats.rank == rank and stats.rounds > 0 and stats.bytes > 0
    assert outcomes[2][0] is None and outcomes[2][1].rank == 2 and outcomes[2][1].rounds > 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize("env, kwargs", [
    ({"WORLD_SIZE": "2"}, {}),                                                    # no RANK
    ({"WORLD_SIZE": "4", "RANK": "0", "RENDEZVOUS": "file:///nonexistent"}, {}),  # unsupported world size
    ({"WORLD_SIZE": "2", "RANK": "3", "RENDEZVOUS": "file:///nonexistent"}, {}),  # past the dealer's rank
    ({"WORLD_SIZE": "2", "RANK": "2", "RENDEZVOUS": "file:///nonexistent"}, {"dealer": False}),  # no dealer
    ({"WORLD_SIZE": "2", "RANK": "0"}, {}),                                       # no rendezvous at all
    ({"WORLD_SIZE": "2", "RANK": "0", "RENDEZVOUS": "file:///nonexistent"}, {"dealer_seed": -2}),
])
def test_run_this_party_validates_environment(monkeypatch, env, kwargs):
    for key in ("RANK", "WORLD_SIZE", "RENDEZVOUS", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ParameterError):
        run_this_party(examples.deserting_party, **kwargs)


# ------------------------------------------------------------------------------- ppal-lab party (CLI)

MADDPG = "ppal_lab.secure.maddpg_party:secure_party_from_config"

@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv, name", [
    (["--rank", "0", "--world-size", "2", "--rendezvous", "file:///x", "nosuch:fn"], "FUNCTION"),
    (["--rank", "0", "--world-size", "2", "--rendezvous", "file:///x", "ppal_lab.secure.examples:nope"],
     "FUNCTION"),
    (["--rank", "0", "--world-size", "2", "--rendezvous", "file:///x"], "FUNCTION"),
    (["--rank", "3", "--world-size", "2", "--rendezvous", "file:///x", "ppal_lab.secure.examples:deserting_party"],
     "RANK"),
    (["--rank", "0", "--world-size", "5", "--rendezvous", "file:///x", "ppal_lab.secure.examples:deserting_party"],
     "WORLD_SIZE"),
    (["--rank", "0", "--world-size", "2", "--args", "{", "ppal_lab.secure.examples:deserting_party"], "--args"),
    (["--rank", "0", "--world-size", "2", "--dealer-seed", "3", "ppal_lab.secure.examples:deserting_party"],
     "--dealer-seed"),
    (["--rank", "2", "--world-size", "2", "--out", "/nonexistent/dir/o.pkl"], "--out"),
    # the secure MADDPG's config is checked before any CrypTen work (the rendezvous would block)
    (["--rank", "0", "--world-size", "2", "--rendezvous", "file:///x", "--args", '[{"seed": 0}]', MADDPG],
     "private_seed"),
    (["--rank", "0", "--world-size", "2", "--rendezvous", "file:///x", "--args",
      '[{"seed": 0, "private_seed": 1, "hiden": 8}]', MADDPG], "hiden"),
    (["--rank", "0", "--world-size", "2", "--rendezvous", "file:///x", "--args",
      '[{"seed": 0, "private_seed": 1, "iterations": 0}]', MADDPG], "iterations"),
    (["--rank", "0", "--world-size", "2", "--rendezvous", "file:///x", "--args",
      '[{"seed": 0, "private_seed": 1, "precision_bits": 40}]', MADDPG], "precision_bits"),
    (["--rank", "0", "--world-size", "2", "--rendezvous", "file:///x", "--args", '[[1, 2]]', MADDPG], "config"),
])
def test_party_command_refuses_bad_input_with_one_line_and_status_2(monkeypatch, capsys, argv, name):
    for key in ("RANK", "WORLD_SIZE", "RENDEZVOUS", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    assert cli.main(["party", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ppal-lab party: error:") and name in err[0]
