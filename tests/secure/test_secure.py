"""Tests of ppal_lab.secure: the CrypTen import shim and the multi-process party launcher.

Party functions live in ``ppal_lab.secure.examples`` because spawned parties must import them.
Fixed-point tolerance: CrypTen encodes with 16 fractional bits (resolution 2**-16 ~ 1.5e-5); for inputs
of magnitude <~ 4 and inner dimension 4, every revealed value must be within ATOL = 1e-3 of plaintext.
"""
from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import pickle
import socket
import subprocess
import sys
import time

import pytest
import torch

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.secure import examples
from ppal_lab.secure.twoparty import (CommStats, PartyError, PartyResults, PartyTimeout, run_parties,
                                      run_this_party)

ATOL = 1e-3
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


# ------------------------------------------------------------------------------------------------ shim

@pytest.mark.timeout(60)
def test_shim_imports_crypten_and_leaves_torch_onnx_alone():
    from ppal_lab.secure import crypten
    from ppal_lab.secure import crypten_compat

    assert crypten.__version__ == "0.4.1"
    assert hasattr(crypten, "cryptensor") and hasattr(crypten.nn, "from_onnx")
    # Idempotent: importing again yields the same module and installs nothing new.
    assert crypten_compat.SHIM_USED  # torch 2.13 lacks the module, so the placeholder was needed
    again, used = crypten_compat._import_crypten()
    assert again is crypten and used is False
    # The placeholder is gone from sys.modules; torch.onnx is untouched and importable.
    assert "torch.onnx._internal.registration" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("torch.onnx._internal.registration")
    import torch.onnx
    assert callable(torch.onnx.export) and callable(torch.onnx.register_custom_op_symbolic)
    # CrypTen's only reference to the removed registry fails loudly if anything ever uses it.
    placeholder = crypten.nn.onnx_converter.registry
    with pytest.raises(RuntimeError, match="no longer has"):
        placeholder.register  # noqa: B018
    with pytest.raises(RuntimeError):
        bool(placeholder)


@pytest.mark.timeout(60)
def test_without_debug_hook_skips_only_the_no_op_hook_and_restores_it():
    from ppal_lab.secure import crypten
    from ppal_lab.secure.crypten_compat import without_debug_hook

    cls = crypten.CrypTensor
    hooked = cls.__dict__["__getattribute__"]
    assert hooked.__wrapped__ is not hooked
    with without_debug_hook():
        assert cls.__dict__["__getattribute__"] is hooked.__wrapped__
    assert cls.__dict__["__getattribute__"] is hooked
    crypten.cfg.debug.validation_mode = True      # validation on: the hook does real work, keep it
    try:
        with without_debug_hook():
            assert cls.__dict__["__getattribute__"] is hooked
    finally:
        crypten.cfg.debug.validation_mode = False
    with pytest.raises(KeyError):                  # restored even when the block raises
        with without_debug_hook():
            raise KeyError("x")
    assert cls.__dict__["__getattribute__"] is hooked


@pytest.mark.timeout(60)
def test_from_pytorch_helper_uses_torchscript_exporter():
    from ppal_lab.secure import from_pytorch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    export_before = torch.onnx.export
    converted = from_pytorch(model, torch.randn(1, 3))
    assert torch.onnx.export is export_before  # the dynamo=False switch is undone
    x = torch.randn(4, 3)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x))  # unencrypted CrypTen model == torch model


# -------------------------------------------------------------------------------------- real 2PC runs

@pytest.fixture(scope="module")
def two_party_run(tmp_path_factory):
    """One seeded 2-party run, shared by the tests that inspect it (each run costs a few seconds)."""
    x, y, w = _inputs()
    save_dir = str(tmp_path_factory.mktemp("shares"))
    party_args = [({"x": x}, save_dir), ({"y": y, "W": w}, save_dir)]
    res = run_parties(examples.private_arithmetic, world_size=2, args=(X_SHAPE, W_SHAPE),
                      party_args=party_args, timeout=60, verbose_comm=True, seed=7)
    return (x, y, w), party_args, res


@pytest.mark.timeout(60)
def test_two_parties_each_supply_their_own_input(two_party_run):
    from ppal_lab.secure import crypten

    (x, y, w), _, res = two_party_run
    assert isinstance(res, PartyResults) and len(res) == 2
    for out in res:  # every party reveals the same, correct values
        _check_revealed(out, x, y, w)
        torch.testing.assert_close(out["x*y reloaded"], x * y, atol=ATOL, rtol=0)
    # The shares really are shares: neither is the fixed-point encoding of x, and they sum to it.
    s0, s1 = res[0]["my share of x"], res[1]["my share of x"]
    encoded = crypten.encoder.FixedPointEncoder(precision_bits=16).encode(x)
    assert not torch.equal(s0, encoded) and not torch.equal(s1, encoded)
    assert torch.equal(s0 + s1, encoded)
    # Communication statistics: per party, positive and of a plausible size for this tiny job.
    revealed_elements = sum(res[0][k].numel() for k in ("x*y+x", "x@W", "relu(x-y)", "x>y"))
    assert [s.rank for s in res.comm_stats] == [0, 1]
    for s in res.comm_stats:
        assert isinstance(s, CommStats)
        assert 10 <= s.rounds <= 1000
        assert 8 * revealed_elements <= s.bytes <= 1_000_000
        assert s.time_s >= 0
    assert res.wall_s > 0 and _no_leftover_parties()


@pytest.mark.timeout(60)
def test_seeded_run_is_reproducible(two_party_run):
    _, party_args, first = two_party_run
    second = run_parties(examples.private_arithmetic, 2, (X_SHAPE, W_SHAPE), party_args=party_args,
                         seed=7)
    assert second.comm_stats is None
    for a, b in zip(first, second):  # bit-for-bit equal, the random-looking shares included
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.timeout(60)
def test_three_parties():
    x, y, w = _inputs(1)
    res = run_parties(examples.private_arithmetic, 3, (X_SHAPE, W_SHAPE), timeout=60,
                      party_args=[({"x": x},), ({"y": y, "W": w},), ({},)])
    assert len(res) == 3
    for out in res:
        _check_revealed(out, x, y, w)
    assert torch.equal(sum(out["my share of x"] for out in res),
                       (x * 2**16).long())  # CrypTen's encoder truncates towards zero


# ------------------------------------------------------------------------------------ failure modes

@pytest.mark.timeout(60)
def test_raising_party_gives_prompt_party_error():
    start = time.monotonic()
    with pytest.raises(PartyError) as info:
        run_parties(examples.failing_party, args=(1,), timeout=60)
    elapsed = time.monotonic() - start
    assert info.value.rank == 1
    assert "party 1 refuses to take part" in str(info.value)
    assert "ValueError" in info.value.remote_traceback and "failing_party" in info.value.remote_traceback
    assert elapsed < 30  # start-up (~2-3 s) plus reporting, far below the 60 s timeout
    assert _no_leftover_parties()


@pytest.mark.timeout(60)
def test_party_dying_without_a_word_gives_party_error():
    with pytest.raises(PartyError, match="exit code 3") as info:
        run_parties(examples.crashing_party, args=(3,), timeout=60)
    assert info.value.rank == 1 and _no_leftover_parties()


@pytest.mark.timeout(40)
def test_party_waiting_for_missing_peer_times_out():
    timeout = 10.0
    start = time.monotonic()
    with pytest.raises(PartyTimeout) as info:
        run_parties(examples.deserting_party, timeout=timeout)
    elapsed = time.monotonic() - start
    assert timeout <= elapsed < timeout + 8  # killing and reaping takes at most a few seconds
    assert 0 in info.value.pending
    assert _no_leftover_parties()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kwargs", [
    {"world_size": 1}, {"world_size": 4}, {"world_size": "2"}, {"world_size": True}, {"world_size": 2.0},
    {"timeout": 0}, {"timeout": -1.0}, {"timeout": math.inf}, {"timeout": math.nan},
    {"seed": -1}, {"seed": 1.5}, {"args": "xy"}, {"party_args": [()]},
    {"args": (lambda: 0,)},
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
outcome = run_this_party(private_arithmetic, ((3, 4), (4, 2), own), seed=5, verbose_comm=True)
with open(sys.argv[2], "wb") as f:
    pickle.dump(tuple(outcome), f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_run_this_party_with_master_addr_and_port(tmp_path):
    """Two independent interpreters, as on two hosts, meet through MASTER_ADDR/MASTER_PORT."""
    x, y, w = _inputs(2)
    port = _free_port()
    procs = []
    try:
        for rank, own in enumerate([{"x": x}, {"y": y, "W": w}]):
            with open(tmp_path / f"in{rank}.pkl", "wb") as f:
                pickle.dump(own, f)
            env = {k: v for k, v in os.environ.items() if k != "RENDEZVOUS"}
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank))
            procs.append(subprocess.Popen(
                [sys.executable, "-c", _PARTY_SCRIPT, str(tmp_path / f"in{rank}.pkl"),
                 str(tmp_path / f"out{rank}.pkl")], env=env, stderr=subprocess.PIPE))
        for proc in procs:
            _, err = proc.communicate(timeout=45)
            assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for rank in range(2):
        with open(tmp_path / f"out{rank}.pkl", "rb") as f:
            value, stats = pickle.load(f)
        _check_revealed(value, x, y, w)
        assert stats.rank == rank and stats.rounds > 0 and stats.bytes > 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize("env", [
    {"WORLD_SIZE": "2"},                                                   # no RANK
    {"WORLD_SIZE": "4", "RANK": "0", "RENDEZVOUS": "file:///nonexistent"},  # unsupported world size
    {"WORLD_SIZE": "2", "RANK": "2", "RENDEZVOUS": "file:///nonexistent"},  # rank out of range
    {"WORLD_SIZE": "2", "RANK": "0"},                                       # no rendezvous at all
])
def test_run_this_party_validates_environment(monkeypatch, env):
    for key in ("RANK", "WORLD_SIZE", "RENDEZVOUS", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ParameterError):
        run_this_party(examples.deserting_party)
