"""Run a CrypTen computation as 2 or 3 separate OS processes, one per party, without ever hanging.

Two ways to run a party function ``fn(rank, *args)``:

* :func:`run_parties` -- on one machine (a notebook, a test): starts ``world_size`` processes with the
  ``spawn`` start method, lets them meet through a ``file://`` rendezvous in a fresh temporary directory
  (no ports, so no port clashes), collects every party's return value, and tidies up. If a party raises,
  the others are killed and :class:`PartyError` says which rank failed and why (with its traceback). If
  the whole run takes longer than ``timeout`` seconds -- typically a party waiting for a peer that never
  sends -- every party is killed and :class:`PartyTimeout` is raised.
* :func:`run_this_party` -- across machines: each host sets ``RANK``, ``WORLD_SIZE`` and either
  ``RENDEZVOUS`` (a torch ``init_method`` URL such as ``tcp://10.0.0.1:29500``) or ``MASTER_ADDR`` and
  ``MASTER_PORT``, and calls ``run_this_party(fn, ...)``; it runs only this rank's part, in this process.

Rules for party functions (the ``spawn`` start method imports them afresh in each child):

* ``fn`` must be defined at module level in an importable ``.py`` module (e.g.
  :mod:`ppal_lab.secure.examples`), not in a notebook cell, not a lambda or a nested function.
* ``args``, ``party_args`` and the return values must be picklable; return plaintext (revealed) tensors
  or numbers, not CrypTensors.
* Each party starts with a fresh default ``crypten.cfg``: set CrypTen options inside ``fn``.
* ``fn`` must not start processes of its own (parties are daemon processes).
* In a script, call :func:`run_parties` under ``if __name__ == "__main__":`` (``spawn`` re-imports the
  main script in every party; without the guard the parties die at start-up -> :class:`PartyError`).
* The ``timeout`` covers the whole run, including process start-up and ``import crypten`` (2-5 s on
  two busy cores).
* Linux/macOS only (CrypTen's process communicator refuses Windows), and only CrypTen's default
  ``TFP`` provider: the ``TTP`` provider needs an extra server process that these launchers do not start.

Threat model of the computations run this way: semi-honest parties; CrypTen's default "trusted first
party" (TFP) provider, in which party 0 generates the Beaver triples itself. That stands in for a
trusted dealer and is *not* private against party 0 in a real deployment. Each party learns its own
inputs, the shapes of all inputs, and whatever the computation reveals (``get_plain_text``). To open a
value to one party only, use :func:`reveal_to`, not CrypTen's ``reveal(dst=...)``, which leaks about
half of the value to the other party (see :func:`reveal_to`).

Seeding: with ``seed=None`` CrypTen draws its secret-sharing seeds from ``os.urandom`` (its secure
default). With an integer ``seed``, torch/numpy/random in party ``r`` and all CrypTen generators are
seeded from ``(seed, r)`` so a run is bit-for-bit reproducible -- but then anybody who knows the seed
can undo the sharing masks: use it for experiments, never for real private data.

Communication statistics (``verbose_comm=True``) are CrypTen's own per-party counters, reset just
before ``fn`` starts: ``rounds`` counts communication calls of this party, ``bytes`` counts 8 bytes per
ring element (pickled objects by ``sys.getsizeof``) that this party sent or received. CrypTen notes that
a 2-party total is roughly the sum over parties divided by two.
"""
from __future__ import annotations

import hashlib
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

from ppal_lab.compendium.errors import ParameterError, check_choice, check_range

__all__ = [
    "PartyError", "PartyTimeout", "CommStats", "PartyResults", "PartyOutcome",
    "run_parties", "run_this_party", "comm_stats", "reveal_to", "WORLD_SIZES",
]

WORLD_SIZES = (2, 3)
"""Numbers of parties supported (CrypTen's arithmetic works for more, the chapters use 2 or 3)."""

_EXIT_GRACE_S = 5.0  # how long finished parties get to tear down their process group before being killed


class PartyError(RuntimeError):
    """A party raised an exception or died; the other parties were stopped."""

    def __init__(self, rank: int, message: str, remote_traceback: str = ""):
        self.rank, self.message, self.remote_traceback = rank, message, remote_traceback
        text = f"party rank {rank} failed: {message}"
        if remote_traceback:
            text += f"\n--- traceback in party rank {rank} ---\n{remote_traceback.rstrip()}"
        super().__init__(text)


class PartyTimeout(TimeoutError):
    """The parties did not all finish within the timeout; all of them were killed."""

    def __init__(self, timeout: float, pending: Sequence[int]):
        self.timeout, self.pending = timeout, tuple(pending)
        super().__init__(
            f"the parties did not finish within timeout = {timeout} s (still running: ranks "
            f"{list(self.pending)}); all parties were killed. A party waiting for a peer that never "
            "sends (e.g. a reveal or save_from_party called on one rank only) blocks forever."
        )


@dataclass(frozen=True)
class CommStats:
    """One party's communication while ``fn`` ran (CrypTen's counters, see the module docstring)."""

    rank: int
    rounds: int
    bytes: int
    time_s: float


class PartyResults(list):
    """The per-rank return values (index = rank), plus ``comm_stats`` and ``wall_s`` of the run.

    ``comm_stats`` is a list of :class:`CommStats` (one per rank) when ``verbose_comm`` was set,
    else ``None``.
    """

    def __init__(self, values, comm_stats: list[CommStats] | None, wall_s: float):
        super().__init__(values)
        self.comm_stats, self.wall_s = comm_stats, wall_s


class PartyOutcome(NamedTuple):
    """What :func:`run_this_party` returns: this rank's value and (with ``verbose_comm``) its stats."""

    value: Any
    comm_stats: CommStats | None


# ---------------------------------------------------------------------------------------------- helpers

def _derive_seed(seed: int, *labels) -> int:
    """A 63-bit seed from ``seed`` and labels (stable across processes, unlike ``hash``)."""
    text = ":".join(map(str, (seed, *labels))).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


def _seed_plaintext_rngs(seed: int, rank: int) -> None:
    import numpy as np
    import torch

    torch.manual_seed(_derive_seed(seed, "torch", rank))
    np.random.seed(_derive_seed(seed, "numpy", rank) % 2**32)
    random.seed(_derive_seed(seed, "random", rank))


def _seed_crypten(crypten, seed: int, rank: int, world_size: int) -> None:
    """Replace CrypTen's os.urandom seeds by ones derived from ``seed``, consistently across parties.

    CrypTen's pseudo-random zero sharings need party r's "prev" generator to equal party r-1's "next"
    generator, and one "global" generator shared by all; "local" is private to each party.
    """
    seeds = {
        "next": _derive_seed(seed, "crypten-next", rank),
        "prev": _derive_seed(seed, "crypten-next", (rank - 1) % world_size),
        "local": _derive_seed(seed, "crypten-local", rank),
        "global": _derive_seed(seed, "crypten-global"),
    }
    for key, value in seeds.items():
        for generator in crypten.generators[key].values():
            generator.manual_seed(value)


def comm_stats() -> CommStats:
    """This party's communication counters so far; call inside a party function.

    Meaningful only when the run was started with ``verbose_comm=True`` (otherwise CrypTen counts
    nothing and all fields are 0).
    """
    from ppal_lab.secure.crypten_compat import crypten

    communicator = crypten.comm.get()
    raw = communicator.get_communication_stats()
    return CommStats(rank=communicator.get_rank(), rounds=int(raw["rounds"]),
                     bytes=int(round(raw["bytes"])), time_s=float(raw["time"]))


def reveal_to(x, dst: int):
    """Open a two-party CrypTensor to party ``dst`` only; call inside a party function on both parties.

    The other party sends its share straight to ``dst`` (one message) and receives nothing. Returns
    the opened ring elements (int64; decode with :func:`ppal_lab.secure.fixed_point.decode_exact`) at
    ``dst`` and ``None`` elsewhere.

    Why not CrypTen's ``x.reveal(dst=...)`` / ``get_plain_text(dst=...)``: they call
    ``torch.distributed.reduce``, which gloo runs as a ring reduce-scatter followed by a gather to the
    root, so with two parties the *other* party ends up holding about half of the opened values in the
    clear (``tests/secure/test_secure_maddpg.py`` shows it).
    """
    import torch

    from ppal_lab.secure.crypten_compat import crypten

    communicator = crypten.comm.get()
    if communicator.get_world_size() != 2:
        raise ParameterError("world_size", communicator.get_world_size(), "2 (reveal_to is two-party)")
    check_choice("dst", dst, (0, 1))
    share = x.share.contiguous()
    if communicator.get_rank() == dst:
        other = communicator.recv(torch.empty_like(share), 1 - dst)
        return share + other          # int64 addition wraps around: ring arithmetic mod 2^64
    communicator.send(share, dst)
    return None


def _run_party(fn: Callable, rank: int, world_size: int, args: tuple, seed: int | None,
               verbose_comm: bool, teardown_on_error: bool) -> tuple[Any, CommStats | None]:
    """Initialise CrypTen for this process (rendezvous from the environment), run ``fn``, tear down.

    A spawned party skips the teardown after an error (``teardown_on_error=False``): it reports at once
    and is killed anyway, whereas the process group of an in-process party must not be left behind.
    """
    from ppal_lab.secure.crypten_compat import crypten

    if crypten.is_initialized():
        raise RuntimeError("CrypTen is already initialised in this process; call crypten.uninit() first")
    # Counting must be switched on before init: the communicator reads it on every call.
    crypten.cfg.communicator.verbose = bool(verbose_comm)
    if seed is not None:
        _seed_plaintext_rngs(seed, rank)
    crypten.init()
    succeeded = False
    try:
        if seed is not None:
            _seed_crypten(crypten, seed, rank, world_size)
        crypten.comm.get().reset_communication_stats()  # exclude CrypTen's own seed exchange in init()
        value = fn(rank, *args)
        stats = comm_stats() if verbose_comm else None
        # Nobody tears down the process group while a peer may still be reading its last message.
        crypten.comm.get().barrier()
        succeeded = True
        return value, stats
    finally:
        if (succeeded or teardown_on_error) and crypten.is_initialized():
            crypten.uninit()


def _child_main(conn, rank: int, world_size: int, rendezvous: str, fn: Callable, args: tuple,
                seed: int | None, verbose_comm: bool) -> None:
    """Entry point of one spawned party: run it and send back one pickled message, never raise."""
    os.environ.update(RENDEZVOUS=rendezvous, WORLD_SIZE=str(world_size), RANK=str(rank),
                      DISTRIBUTED_BACKEND="gloo")
    try:
        value, stats = _run_party(fn, rank, world_size, args, seed, verbose_comm,
                                  teardown_on_error=False)
        payload = pickle.dumps(("ok", value, stats))  # pickle here, so a bad return value is reported
    except BaseException as exc:  # report everything, including SystemExit and KeyboardInterrupt
        payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    conn.send_bytes(payload)
    conn.close()


def _check_picklable_function(fn: Callable) -> None:
    if not callable(fn):
        raise ParameterError("fn", fn, "a callable fn(rank, *args)")
    main = sys.modules.get("__main__")
    if getattr(fn, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
        raise ParameterError("fn", fn, "defined in an importable .py module (functions defined in a "
                             "notebook or interactive session cannot be imported by spawned parties)")
    try:
        pickle.dumps(fn)
    except Exception as exc:
        raise ParameterError("fn", fn, f"a module-level function that pickle can send to a spawned "
                             f"process ({type(exc).__name__}: {exc})") from None


def _stop(processes) -> None:
    """Terminate (SIGTERM), then kill (SIGKILL) whatever is still alive; reap everything."""
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + 2.0
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)


# -------------------------------------------------------------------------------------------- launchers

def run_parties(fn: Callable, world_size: int = 2, args: Sequence = (), timeout: float = 60.0,
                verbose_comm: bool = False, *, party_args: Sequence[Sequence] | None = None,
                seed: int | None = None) -> PartyResults:
    """Run ``fn(rank, *args, *party_args[rank])`` in ``world_size`` CrypTen parties; return their values.

    Parameters
    ----------
    fn : module-level function ``fn(rank, ...)``; it may use ``crypten`` (already initialised).
    world_size : number of parties, 2 or 3.
    args : positional arguments given to every party (public inputs such as shapes).
    timeout : seconds (> 0, finite) for the whole run; past it all parties are killed.
    verbose_comm : count communication; the stats land in ``PartyResults.comm_stats``.
    party_args : optional, one tuple per rank, appended to ``args`` for that rank only -- the way each
        party supplies its own private input without the others receiving it.
    seed : ``None`` (CrypTen's secure random seeds) or an int >= 0 for a reproducible, *insecure* run.

    Returns a :class:`PartyResults` (a list, index = rank). Raises :class:`PartyError` if a party
    raises or dies, :class:`PartyTimeout` past ``timeout``, :class:`ParameterError` for bad arguments.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int):
        raise ParameterError("world_size", world_size, "one of " + ", ".join(map(str, WORLD_SIZES)))
    check_choice("world_size", world_size, WORLD_SIZES)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
        raise ParameterError("timeout", timeout, "a finite number of seconds > 0")
    check_range("timeout", timeout, 0, None, low_open=True)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ParameterError("seed", seed, "None or an int >= 0")
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise ParameterError("args", args, "a tuple of positional arguments")
    if party_args is None:
        party_args = [()] * world_size
    if len(party_args) != world_size or any(isinstance(a, (str, bytes)) or not isinstance(a, Sequence)
                                            for a in party_args):
        raise ParameterError("party_args", party_args, f"None or {world_size} tuples, one per rank")
    _check_picklable_function(fn)
    try:  # fail here, with the parameter's name, rather than inside Process.start()
        pickle.dumps((tuple(args), [tuple(a) for a in party_args]))
    except Exception as exc:
        raise ParameterError("args/party_args", f"<{type(exc).__name__}: {exc}>", "picklable") from None

    ctx = multiprocessing.get_context("spawn")  # fork is unsafe with torch threads and notebooks
    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="ppal-parties-")
    rendezvous = "file://" + os.path.join(workdir, "rendezvous")
    processes: dict[int, multiprocessing.process.BaseProcess] = {}
    conns: dict[int, multiprocessing.connection.Connection] = {}
    finished = False
    try:
        for rank in range(world_size):
            conns[rank], writer = ctx.Pipe(duplex=False)
            rank_args = (*args, *party_args[rank])
            proc = ctx.Process(target=_child_main, name=f"ppal-party-{rank}", daemon=True,
                               args=(writer, rank, world_size, rendezvous, fn, rank_args, seed,
                                     verbose_comm))
            try:
                proc.start()
            finally:
                writer.close()  # keep only the child's copy, so its death shows up as EOF here
            processes[rank] = proc

        results: dict[int, tuple[Any, CommStats | None]] = {}
        owner = {}
        for rank in range(world_size):
            owner[conns[rank]] = owner[processes[rank].sentinel] = rank
        while len(results) < world_size:
            pending = [r for r in range(world_size) if r not in results]
            remaining = start + timeout - time.monotonic()
            if remaining <= 0:
                raise PartyTimeout(timeout, pending)
            waitables = [conns[r] for r in pending] + [processes[r].sentinel for r in pending]
            for ready in multiprocessing.connection.wait(waitables, timeout=remaining):
                rank = owner[ready]
                if rank in results:
                    continue
                conn = conns[rank]
                # A dead party's pipe is readable too (data it sent before dying, or EOF).
                if not conn.poll(1.0 if ready is not conn else 0):
                    code = processes[rank].exitcode
                    raise PartyError(rank, f"process exited with code {code} without reporting a result")
                try:
                    payload = conn.recv_bytes()
                except EOFError:
                    processes[rank].join(1.0)
                    code = processes[rank].exitcode
                    raise PartyError(rank, f"process died (exit code {code}) without reporting a "
                                           "result; its stderr may say why") from None
                try:
                    message = pickle.loads(payload)
                except Exception as exc:
                    raise PartyError(rank, f"its result could not be unpickled here "
                                           f"({type(exc).__name__}: {exc})") from None
                if message[0] == "error":
                    raise PartyError(rank, message[1], message[2])
                results[rank] = (message[1], message[2])
        finished = True
    finally:
        if finished:  # give the parties a moment to leave cleanly, then make sure they are gone
            grace_end = time.monotonic() + _EXIT_GRACE_S
            for proc in processes.values():
                proc.join(max(0.0, grace_end - time.monotonic()))
        _stop(processes.values())
        for conn in conns.values():
            conn.close()
        shutil.rmtree(workdir, ignore_errors=True)

    values = [results[r][0] for r in range(world_size)]
    stats = [results[r][1] for r in range(world_size)] if verbose_comm else None
    return PartyResults(values, stats, time.monotonic() - start)


def _env_int(name: str) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ParameterError(name, raw, "an integer set in the environment") from None


def run_this_party(fn: Callable, args: Sequence = (), *, seed: int | None = None,
                   verbose_comm: bool = False) -> PartyOutcome:
    """Run this process's share of a multi-host computation; the rendezvous comes from the environment.

    Set on every host before calling: ``RANK`` (0 .. WORLD_SIZE-1), ``WORLD_SIZE`` (2 or 3) and either
    ``RENDEZVOUS`` (a torch ``init_method`` URL, e.g. ``tcp://10.0.0.1:29500`` or ``file:///shared/x``)
    or ``MASTER_ADDR`` and ``MASTER_PORT`` (rank 0's address; becomes ``tcp://ADDR:PORT``).
    ``DISTRIBUTED_BACKEND`` defaults to ``gloo``. Every host must call the same ``fn`` with the same
    ``seed``; each passes its own private inputs in ``args``.

    Runs in this process (``fn`` may be any callable) and returns ``PartyOutcome(value, comm_stats)``.
    There is no timeout here: a missing peer blocks until torch's own 30-minute rendezvous limit, so
    bound the job with your scheduler.
    """
    if not callable(fn):
        raise ParameterError("fn", fn, "a callable fn(rank, *args)")
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise ParameterError("args", args, "a tuple of positional arguments")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ParameterError("seed", seed, "None or an int >= 0")
    world_size = check_choice("WORLD_SIZE", _env_int("WORLD_SIZE"), WORLD_SIZES)
    rank = _env_int("RANK")
    if not 0 <= rank < world_size:
        raise ParameterError("RANK", rank, f"in [0, {world_size - 1}]")
    added = {}  # CrypTen reads these from os.environ during init; removed again afterwards
    if "RENDEZVOUS" not in os.environ:
        addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
        if not (addr and port):
            raise ParameterError("RENDEZVOUS", None, "set in the environment (or MASTER_ADDR and "
                                 "MASTER_PORT)")
        added["RENDEZVOUS"] = f"tcp://{addr}:{port}"
    if "DISTRIBUTED_BACKEND" not in os.environ:
        added["DISTRIBUTED_BACKEND"] = "gloo"
    os.environ.update(added)
    try:
        value, stats = _run_party(fn, rank, world_size, tuple(args), seed, verbose_comm,
                                  teardown_on_error=True)
    finally:
        for key in added:
            os.environ.pop(key, None)
    return PartyOutcome(value, stats)
