"""Run a CrypTen computation as separate OS processes -- the players and a dealer -- without ever hanging.

Two ways to run a party function ``fn(rank, *args)``:

* :func:`run_parties` -- on one machine (a notebook, a test): starts ``world_size`` player processes and
  (by default) one **dealer** process with the ``spawn`` start method, lets them meet through a
  ``file://`` rendezvous in a fresh temporary directory (no ports, so no port clashes), collects every
  player's return value, and tidies up. If a player or the dealer raises or dies, the others are killed
  and :class:`PartyError` says which rank failed and why (with its traceback). If the whole run takes
  longer than ``timeout`` seconds -- typically a party waiting for a peer that never sends -- every
  process is killed and :class:`PartyTimeout` is raised.
* :func:`run_this_party` -- across machines (``ppal-lab party`` is its command-line form): each host sets
  ``RANK``, ``WORLD_SIZE`` and either ``RENDEZVOUS`` (a torch ``init_method`` URL such as
  ``tcp://10.0.0.1:29500``) or ``MASTER_ADDR`` and ``MASTER_PORT``, and runs only its own part, in its
  own process. ``WORLD_SIZE`` counts the players; the dealer is ``RANK = WORLD_SIZE``.

The dealer
----------
Products and comparisons on additive shares consume correlated randomness (Beaver triples, random
wrap counts, random bits). By default it comes from CrypTen's ``TTP`` provider ("trusted third
party"), whose server runs here as a process of its own, rank ``world_size``, that is *not a player*:

* at start-up it sends each player ``i`` a seed; player ``i`` then draws its own shares of every
  triple ``(a_i, b_i, c_i)`` from it, without communication. For each triple, player 0 asks the dealer
  (message: the kind of tuple and the tensor shapes -- no data) and receives ``c_0 = a*b - c_1 - ...``;
  no other player ever receives anything from the dealer. Inside :class:`dealer_batch` (a stage whose
  requests are fixed by public shapes) player 0 sends the stage's whole list of requests in one
  message and receives all its ``c_0`` at once -- the same values, one round trip instead of one per
  tuple;
* the dealer receives only those requests: which kind of tuple, of which shapes. It never receives a
  share of anybody's data, nor any opened value;
* its seeds come from fresh OS entropy (``os.urandom``) on every run, *not* from ``seed``: a player who
  could reproduce the dealer's seeds would know every triple and could unmask everything. Only an
  explicit ``dealer_seed`` (given to the dealer process alone) makes the dealer reproducible -- for
  transcript tests and bit-reproducible experiments.

What the players compute does not depend on the dealer's randomness except through fixed-point
rounding: a product's shares are split differently with different triples, and CrypTen's two-party
truncation (each player divides its own share) then rounds to one of the two neighbouring fixed-point
values (an error of at most one unit, 2^-16 at 16 bits, per truncation), and -- with probability about
|v|·2^(2b)/2^64 per element -- wraps (see :mod:`ppal_lab.secure.fixed_point`). Comparisons, sharing
and openings are exact. Iterative operations amplify the unit: chapter 06's division (ten Newton
steps) differed by up to 1.5e-3 between two fresh dealers. So a seeded run with a fresh dealer
reproduces its numbers only up to that rounding; an experiment that must repeat bit for bit passes
``dealer_seed`` as well (as :func:`ppal_lab.secure.fixed_point.run_op_table` and
:func:`ppal_lab.secure.similarity.secure_similarity` do when given a seed).

CrypTen's own server loop ends silently on any ``RuntimeError`` (a failed request, a lost peer), which
leaves player 0 waiting forever; the loop here lets every error out, so it reaches :class:`PartyError`.
Traffic with the dealer is counted apart: ``comm_stats`` of the players (and CrypTen's counters read
inside a party function) cover only player-to-player traffic, :attr:`PartyResults.dealer_stats` is
the dealer's own count, and :func:`dealer_comm_stats` gives one player's traffic with the dealer.
``dealer=False`` falls back to CrypTen's default ``TFP`` provider, where player 0 generates the triples
itself -- which gives player 0 every mask, so it is private against player 1 only.

Threat model
------------
Semi-honest players (they follow the protocol and try to learn from what they receive) and a
semi-honest dealer that does not collude with any player. Under that model a player receives: its own
inputs; the public shapes; openings ``x - a`` masked by dealer randomness it does not know (uniform
ring elements); player 0 also receives its triple shares ``c_0`` from the dealer (uniform); and the
outputs opened to it. The dealer receives the sequence of tuple kinds and shapes. A dealer that
colludes with a player gives that player everything; a malicious player is not covered.
``tests/secure/test_transcript.py`` records what each party receives and checks that, outputs aside,
it does not depend on the other player's data (see :mod:`ppal_lab.secure.transcript`).

Two limits of CrypTen itself that this model does not remove: (1) all its masks come from torch's
Mersenne-Twister generators, which take only 32 bits of their seed (``manual_seed(s)`` and
``manual_seed(s + 2**32)`` give the same stream): a player who tries all 2^32 seeds of a generator
(hours of CPU) can check each guess against a triple and so recover the other player's triple shares.
The guarantee is statistical hiding under the model, not cryptographic security. (2) The dealer sees
nothing of the data but must be trusted to hand out correct, unlinked triples.

Rules for party functions (the ``spawn`` start method imports them afresh in each child):

* ``fn`` must be defined at module level in an importable ``.py`` module (e.g.
  :mod:`ppal_lab.secure.examples`), not in a notebook cell, not a lambda or a nested function.
* ``args``, ``party_args`` and the return values must be picklable; return plaintext (revealed) tensors
  or numbers, not CrypTensors.
* Each party starts with a fresh default ``crypten.cfg`` (the provider is set before ``crypten.init``):
  set other CrypTen options inside ``fn``.
* ``fn`` must not start processes of its own (parties are daemon processes).
* In a script, call :func:`run_parties` under ``if __name__ == "__main__":`` (``spawn`` re-imports the
  main script in every party; without the guard the parties die at start-up -> :class:`PartyError`).
* The ``timeout`` covers the whole run, including process start-up and ``import crypten`` (2-5 s on
  two busy cores).
* Linux/macOS only (CrypTen's process communicator refuses Windows).

Each player learns its own inputs, the shapes of all inputs, and whatever the computation opens
(``get_plain_text`` opens to every player). To open a value to one player only, use :func:`reveal_to`,
not CrypTen's ``reveal(dst=...)``, which leaks about half of the value to the other player (see
:func:`reveal_to`).

Seeding: with ``seed=None`` CrypTen draws its secret-sharing seeds from ``os.urandom`` (its secure
default). With an integer ``seed``, torch/numpy/random in player ``r`` and all CrypTen generators of the
players are seeded from ``(seed, r)`` so a player's own draws are reproducible -- but then anybody who
knows the seed can undo the sharing masks: use it for experiments, never for real private data.

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
    "run_parties", "run_this_party", "comm_stats", "dealer_comm_stats", "dealer_requests", "dealer_batch",
    "reveal_to", "WORLD_SIZES",
]

WORLD_SIZES = (2, 3)
"""Numbers of parties supported (CrypTen's arithmetic works for more, the chapters use 2 or 3)."""

_EXIT_GRACE_S = 5.0  # how long finished parties get to tear down their process group before being killed


class PartyError(RuntimeError):
    """A player or the dealer raised an exception or died; the other processes were stopped.

    ``rank`` is the failed process's rank; ``dealer`` says whether it was the dealer (rank =
    number of players).
    """

    def __init__(self, rank: int, message: str, remote_traceback: str = "", dealer: bool = False):
        self.rank, self.message, self.remote_traceback = rank, message, remote_traceback
        self.dealer = bool(dealer)
        who = f"the dealer (rank {rank})" if dealer else f"party rank {rank}"
        text = f"{who} failed: {message}"
        if remote_traceback:
            text += f"\n--- traceback in {who} ---\n{remote_traceback.rstrip()}"
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
    """The players' return values (index = rank), plus ``comm_stats``, ``dealer_stats`` and ``wall_s``.

    ``comm_stats`` is a list of :class:`CommStats` (one per player, player-to-player traffic only) when
    ``verbose_comm`` was set, else ``None``. ``dealer_stats`` is the dealer's own :class:`CommStats`
    (rank = number of players) when ``verbose_comm`` was set and a dealer ran, else ``None``.
    """

    def __init__(self, values, comm_stats: list[CommStats] | None, wall_s: float,
                 dealer_stats: CommStats | None = None):
        super().__init__(values)
        self.comm_stats, self.wall_s, self.dealer_stats = comm_stats, wall_s, dealer_stats


class PartyOutcome(NamedTuple):
    """What :func:`run_this_party` returns: this rank's value (``None`` for the dealer) and (with
    ``verbose_comm``) its stats (a player's exclude its traffic with the dealer)."""

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

    Player-to-player traffic only (traffic with the dealer: :func:`dealer_comm_stats`). Meaningful only
    when the run was started with ``verbose_comm=True`` (otherwise CrypTen counts nothing and all
    fields are 0).
    """
    from ppal_lab.secure.crypten_compat import crypten

    communicator = crypten.comm.get()
    raw = communicator.get_communication_stats()
    return CommStats(rank=communicator.get_rank(), rounds=int(raw["rounds"]),
                     bytes=int(round(raw["bytes"])), time_s=float(raw["time"]))


_dealer_traffic = {"rounds": 0, "bytes": 0.0, "time": 0.0, "requests": 0}  # player 0 <-> the dealer


def dealer_comm_stats() -> CommStats:
    """This player's traffic with the dealer so far (player 0's requests and triple shares; zero for
    the other players, who only received a seed at start-up); call inside a party function."""
    from ppal_lab.secure.crypten_compat import crypten

    return CommStats(rank=crypten.comm.get().get_rank(), rounds=int(_dealer_traffic["rounds"]),
                     bytes=int(round(_dealer_traffic["bytes"])), time_s=float(_dealer_traffic["time"]))


def dealer_requests() -> int:
    """How many messages this player has sent the dealer so far (each one round trip: a single tuple
    request, or a whole :class:`dealer_batch`); call inside a party function."""
    return int(_dealer_traffic["requests"])


def _counted_apart(communicator, request: Callable) -> Callable:
    """``request`` with its traffic booked in :data:`_dealer_traffic`, not in CrypTen's counters (it
    talks to the dealer through the same communicator as the players talk to each other)."""

    def counted_request(*args, **kwargs):
        saved = (communicator.comm_rounds, communicator.comm_bytes, communicator.comm_time)
        try:
            return request(*args, **kwargs)
        finally:
            _dealer_traffic["rounds"] += communicator.comm_rounds - saved[0]
            _dealer_traffic["bytes"] += communicator.comm_bytes - saved[1]
            _dealer_traffic["time"] += communicator.comm_time - saved[2]
            _dealer_traffic["requests"] += 1
            communicator.comm_rounds, communicator.comm_bytes, communicator.comm_time = saved

    return counted_request


def _count_dealer_traffic_apart(crypten) -> None:
    """Book player 0's requests to the dealer in :data:`_dealer_traffic`, not in CrypTen's counters,
    and route them through :class:`_DealerBatches` (a no-op outside :func:`dealer_batch`)."""
    from crypten.mpc.provider.ttp_provider import TTPClient

    _dealer_traffic.update(rounds=0, bytes=0.0, time=0.0, requests=0)
    communicator, client = crypten.comm.get(), TTPClient.get()
    single = _counted_apart(communicator, client.ttp_request)
    batch = _counted_apart(communicator, lambda requests: _request_batch(communicator, client, requests))
    _batches.attach(single, batch)
    client.ttp_request = _batches.request  # an instance attribute: shadows the method for this run


# ------------------------------------------------------------------ batched requests to the dealer
#
# CrypTen's TTP client asks the dealer for player 0's share of each tuple in its own round trip. The
# requests of a stage are fixed by the public shapes, so player 0 records them the first time a stage
# runs and afterwards sends the whole list in one message at the start of the stage; the dealer
# serves them in order (its copies of the players' generators advance exactly as one by one) and
# answers with one flat tensor. Player 0 then serves each provider call from that queue, checking it
# is the recorded one. The values are bit-identical; only the number of round trips changes.

def _request_key(function, device, args, kwargs) -> bytes:
    return pickle.dumps((function, None if device is None else str(device), args, kwargs))


def _request_batch(communicator, client, requests: list[dict]) -> list:
    """Send ``requests`` (TTP request messages) to the dealer in one message; its results, in order."""
    import torch

    dealer = communicator.get_ttp_rank()
    communicator.send_obj({"function": _BATCH, "requests": requests}, dealer, client.ttp_group)
    sizes = communicator.recv_obj(dealer, client.ttp_group)
    flat = torch.empty(sum(math.prod(s) for s in sizes), dtype=torch.long)
    communicator.broadcast(flat, dealer, client.comm_group)
    out, pos = [], 0
    for size in sizes:
        n = math.prod(size)
        out.append(flat[pos:pos + n].view(size))
        pos += n
    return out


_BATCH = "batch"  # the function name of a batched request (not one of CrypTen's TTP_FUNCTIONS)


class _DealerBatches:
    """Player 0's recorded request sequences per stage and the queue of prefetched shares."""

    def __init__(self):
        self.single = self.batch = None
        self.recorded: dict[str, list[tuple]] = {}
        self.stage = self.recording = self.queue = None

    def attach(self, single: Callable, batch: Callable) -> None:
        self.single, self.batch = single, batch
        self.recorded, self.stage, self.recording, self.queue = {}, None, None, None

    def request(self, function, device, *args, **kwargs):
        if self.queue is None:
            if self.recording is not None:
                self.recording.append((function, device, args, kwargs))
            return self.single(function, device, *args, **kwargs)
        if not self.queue:
            raise RuntimeError(f"dealer batch {self.stage!r}: a request for {function}{args} beyond the "
                               "recorded sequence (the stage's requests must not depend on data)")
        key, result = self.queue.pop(0)
        if key != _request_key(function, device, args, kwargs):
            raise RuntimeError(f"dealer batch {self.stage!r}: request {function}{args} differs from the "
                               "recorded one (the stage's requests must not depend on data)")
        return result if device is None else result.to(device)


_batches = _DealerBatches()


class dealer_batch:
    """``with dealer_batch(stage):`` around one attempt of a stage whose dealer requests are fixed by
    public shapes: the first time (per run) player 0 records them; afterwards it fetches them all in
    one round trip at the start and serves CrypTen's calls from that queue, checking each against the
    record and that none is left at the end. Values are bit-identical to one request per tuple. A no-op
    on the other players, without a dealer, or with ``enabled=False``."""

    def __init__(self, stage: str, enabled: bool = True):
        self.stage, self.enabled = stage, enabled and _batches.batch is not None
        self.active = False

    def __enter__(self):
        from ppal_lab.secure.crypten_compat import crypten

        b = _batches
        if not self.enabled or crypten.comm.get().get_rank() != 0:
            return self
        if b.stage is not None:
            raise RuntimeError(f"dealer batch {self.stage!r} inside {b.stage!r}: they do not nest")
        self.active, b.stage = True, self.stage
        recorded = b.recorded.get(self.stage)
        if recorded is None:
            b.recording = []
        elif recorded:
            messages = [{"function": f, "device": None if d is None else str(d), "args": a, "kwargs": k}
                        for f, d, a, k in recorded]
            results = b.batch(messages)
            b.queue = [(_request_key(*r), x) for r, x in zip(recorded, results)]
        else:
            b.queue = []
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.active:
            return False
        b = _batches
        left, recording = b.queue, b.recording
        b.stage, b.queue, b.recording = None, None, None
        if exc_type is None:
            if recording is not None:
                b.recorded[self.stage] = recording
            if left:
                raise RuntimeError(f"dealer batch {self.stage!r}: {len(left)} prefetched request(s) not "
                                   "used (the stage's requests must not depend on data)")
        return False


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


def _configure(crypten, verbose_comm: bool, dealer: bool) -> None:
    """Settings every process of a run must share, made before ``crypten.init`` (which reads them)."""
    if crypten.is_initialized():
        raise RuntimeError("CrypTen is already initialised in this process; call crypten.uninit() first")
    crypten.cfg.communicator.verbose = bool(verbose_comm)  # the communicator reads it on every call
    crypten.cfg.mpc.provider = "TTP" if dealer else "TFP"


def _run_party(fn: Callable, rank: int, world_size: int, args: tuple, seed: int | None,
               verbose_comm: bool, teardown_on_error: bool, dealer: bool = True
               ) -> tuple[Any, CommStats | None]:
    """Initialise CrypTen for this player (rendezvous from the environment), run ``fn``, tear down.

    A spawned party skips the teardown after an error (``teardown_on_error=False``): it reports at once
    and is killed anyway, whereas the process group of an in-process party must not be left behind.
    """
    from ppal_lab.secure.crypten_compat import crypten

    _configure(crypten, verbose_comm, dealer)
    if seed is not None:
        _seed_plaintext_rngs(seed, rank)
    crypten.init()
    succeeded = False
    try:
        if seed is not None:
            _seed_crypten(crypten, seed, rank, world_size)
        if dealer:
            _count_dealer_traffic_apart(crypten)
        crypten.comm.get().reset_communication_stats()  # exclude CrypTen's own seed exchange in init()
        value = fn(rank, *args)
        stats = comm_stats() if verbose_comm else None
        # Nobody tears down the process group while a peer may still be reading its last message.
        crypten.comm.get().barrier()
        succeeded = True
        return value, stats
    finally:
        _batches.attach(None, None)     # recorded stages belong to this run
        if (succeeded or teardown_on_error) and crypten.is_initialized():
            crypten.uninit()


def _dealer_torch_seed(dealer_seed: int | None) -> int:
    """The seed of the dealer's torch generator, from which CrypTen's server draws the players' seeds."""
    if dealer_seed is None:
        return int.from_bytes(os.urandom(8), "big") >> 1  # fresh: no player can reproduce it
    return _derive_seed(dealer_seed, "dealer")


def _serve_as_dealer(crypten) -> None:
    """CrypTen's TTP server loop, minus its ``except RuntimeError: return`` (errors must reach us).

    Serves player 0's requests until it sends ``"terminate"`` (from ``crypten.uninit``). Accepts only
    the tuple kinds CrypTen's TTP defines, one at a time or as a batch (:class:`dealer_batch`): a list
    of requests served in order and answered in one message.
    """
    import torch
    from crypten.mpc.provider.ttp_provider import TTP_FUNCTIONS, TTPServer

    server = TTPServer.__new__(TTPServer)  # skip TTPServer.__init__, which *is* the swallowing loop
    communicator = crypten.comm.get()
    server.ttp_group, server.comm_group, server.device = communicator.ttp_group, communicator.ttp_comm_group, "cpu"
    server._setup_generators()              # one seed per player, drawn from torch's global generator
    communicator.reset_communication_stats()
    dealer_rank = communicator.get_ttp_rank()
    while True:
        message = communicator.recv_obj(0, server.ttp_group)
        if message == "terminate":
            return
        batched = isinstance(message, dict) and message.get("function") == _BATCH
        requests = message.get("requests") if batched else [message]
        if not isinstance(requests, list) or not all(
                isinstance(m, dict) and m.get("function") in TTP_FUNCTIONS for m in requests):
            raise ValueError(f"the dealer got a request it does not serve: {message!r}"[:300])
        results = []
        for request in requests:    # in order: the generators advance as for one request at a time
            server.device = request["device"]
            results.append(getattr(server, request["function"])(*request["args"], **request["kwargs"]))
        if batched:   # player 0's shares of the whole batch: their sizes, then one flat tensor
            communicator.send_obj([r.size() for r in results], 0, server.ttp_group)
            flat = torch.cat([r.reshape(-1) for r in results]) if results else torch.empty(0, dtype=torch.long)
            communicator.broadcast(flat, dealer_rank, server.comm_group)
        else:
            communicator.send_obj(results[0].size(), 0, server.ttp_group)
            communicator.broadcast(results[0], dealer_rank, server.comm_group)


def _run_dealer(world_size: int, dealer_seed: int | None, verbose_comm: bool,
                teardown_on_error: bool) -> CommStats | None:
    """Be the dealer (rank ``world_size``) of this run until player 0 ends it; return its counters."""
    import torch

    from ppal_lab.secure.crypten_compat import crypten

    _configure(crypten, verbose_comm, dealer=True)
    torch.manual_seed(_dealer_torch_seed(dealer_seed))
    crypten.init()
    succeeded = False
    try:
        _serve_as_dealer(crypten)
        stats = comm_stats() if verbose_comm else None
        succeeded = True
        return stats
    finally:
        if (succeeded or teardown_on_error) and crypten.is_initialized():
            crypten.uninit()


def _child_main(conn, rank: int, world_size: int, rendezvous: str, fn: Callable | None, args: tuple,
                seed: int | None, verbose_comm: bool, dealer: bool = True,
                dealer_seed: int | None = None) -> None:
    """Entry point of one spawned process (a player, or the dealer when ``rank == world_size``): run it
    and send back one pickled message, never raise."""
    os.environ.update(RENDEZVOUS=rendezvous, WORLD_SIZE=str(world_size), RANK=str(rank),
                      DISTRIBUTED_BACKEND="gloo")
    try:
        if rank == world_size:
            value, stats = None, _run_dealer(world_size, dealer_seed, verbose_comm,
                                             teardown_on_error=False)
        else:
            value, stats = _run_party(fn, rank, world_size, args, seed, verbose_comm,
                                      teardown_on_error=False, dealer=dealer)
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
                seed: int | None = None, dealer: bool = True,
                dealer_seed: int | None = None) -> PartyResults:
    """Run ``fn(rank, *args, *party_args[rank])`` in ``world_size`` CrypTen players (plus the dealer).

    Parameters
    ----------
    fn : module-level function ``fn(rank, ...)``; it may use ``crypten`` (already initialised).
    world_size : number of players, 2 or 3.
    args : positional arguments given to every player (public inputs such as shapes).
    timeout : seconds (> 0, finite) for the whole run; past it all processes are killed.
    verbose_comm : count communication; the stats land in ``PartyResults.comm_stats`` (players,
        player-to-player traffic) and ``PartyResults.dealer_stats`` (the dealer).
    party_args : optional, one tuple per rank, appended to ``args`` for that rank only -- the way each
        player supplies its own private input without the others receiving it.
    seed : ``None`` (CrypTen's secure random seeds) or an int >= 0 for reproducible, *insecure* player
        randomness. Never reaches the dealer.
    dealer : ``True`` (default): a dealer process, rank ``world_size``, supplies the triples (CrypTen's
        ``TTP`` provider); ``False``: CrypTen's ``TFP`` provider, player 0 makes them (not private
        against player 0).
    dealer_seed : ``None`` (default): the dealer seeds itself from ``os.urandom``; an int >= 0 makes
        the dealer reproducible (only for tests and bit-reproducible experiments).

    Returns a :class:`PartyResults` (a list of the players' values, index = rank). Raises
    :class:`PartyError` if a player or the dealer raises or dies, :class:`PartyTimeout` past
    ``timeout``, :class:`ParameterError` for bad arguments.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int):
        raise ParameterError("world_size", world_size, "one of " + ", ".join(map(str, WORLD_SIZES)))
    check_choice("world_size", world_size, WORLD_SIZES)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
        raise ParameterError("timeout", timeout, "a finite number of seconds > 0")
    check_range("timeout", timeout, 0, None, low_open=True)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ParameterError("seed", seed, "None or an int >= 0")
    if not isinstance(dealer, bool):
        raise ParameterError("dealer", dealer, "True or False")
    if dealer_seed is not None and (isinstance(dealer_seed, bool) or not isinstance(dealer_seed, int)
                                    or dealer_seed < 0 or not dealer):
        raise ParameterError("dealer_seed", dealer_seed, "None, or an int >= 0 with dealer=True")
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
    n_procs = world_size + 1 if dealer else world_size  # the dealer is rank world_size
    try:
        for rank in range(n_procs):
            conns[rank], writer = ctx.Pipe(duplex=False)
            rank_args = (*args, *party_args[rank]) if rank < world_size else ()
            proc = ctx.Process(target=_child_main, name=f"ppal-party-{rank}", daemon=True,
                               args=(writer, rank, world_size, rendezvous, fn if rank < world_size
                                     else None, rank_args, seed, verbose_comm, dealer, dealer_seed))
            try:
                proc.start()
            finally:
                writer.close()  # keep only the child's copy, so its death shows up as EOF here
            processes[rank] = proc

        results: dict[int, tuple[Any, CommStats | None]] = {}
        owner = {}
        for rank in range(n_procs):
            owner[conns[rank]] = owner[processes[rank].sentinel] = rank
        while len(results) < n_procs:
            pending = [r for r in range(n_procs) if r not in results]
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
                is_dealer = rank == world_size
                if not conn.poll(1.0 if ready is not conn else 0):
                    code = processes[rank].exitcode
                    raise PartyError(rank, f"process exited with code {code} without reporting a result",
                                     dealer=is_dealer)
                try:
                    payload = conn.recv_bytes()
                except EOFError:
                    processes[rank].join(1.0)
                    code = processes[rank].exitcode
                    raise PartyError(rank, f"process died (exit code {code}) without reporting a "
                                           "result; its stderr may say why", dealer=is_dealer) from None
                try:
                    message = pickle.loads(payload)
                except Exception as exc:
                    raise PartyError(rank, f"its result could not be unpickled here "
                                           f"({type(exc).__name__}: {exc})", dealer=is_dealer) from None
                if message[0] == "error":
                    raise PartyError(rank, message[1], message[2], dealer=is_dealer)
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
    dealer_stats = results[world_size][1] if dealer and verbose_comm else None
    return PartyResults(values, stats, time.monotonic() - start, dealer_stats)


def _env_int(name: str) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ParameterError(name, raw, "an integer set in the environment") from None


def run_this_party(fn: Callable | None, args: Sequence = (), *, seed: int | None = None,
                   verbose_comm: bool = False, dealer: bool = True,
                   dealer_seed: int | None = None) -> PartyOutcome:
    """Run this process's part of a multi-host computation; the rendezvous comes from the environment.

    Set on every host before calling: ``RANK``, ``WORLD_SIZE`` (the number of players, 2 or 3) and
    either ``RENDEZVOUS`` (a torch ``init_method`` URL, e.g. ``tcp://10.0.0.1:29500`` or
    ``file:///shared/x``) or ``MASTER_ADDR`` and ``MASTER_PORT`` (player 0's address; becomes
    ``tcp://ADDR:PORT``). ``DISTRIBUTED_BACKEND`` defaults to ``gloo``. Players have ``RANK`` 0 ..
    WORLD_SIZE-1; with ``dealer=True`` (the default, as in :func:`run_parties`) one more process, on a
    host of its own if wanted, runs with ``RANK = WORLD_SIZE`` and is the dealer (``fn`` and ``args``
    are not used there: pass ``fn=None``). Every process of a run must use the same ``dealer``; every
    player the same ``fn`` and ``seed``; each player passes its own private inputs in ``args`` (or
    builds them inside ``fn`` from its own seed and data).

    Runs in this process (``fn`` may be any callable) and returns ``PartyOutcome(value, comm_stats)``
    (``value`` is ``None`` for the dealer). There is no timeout here: a missing peer blocks until
    torch's own 30-minute rendezvous limit, so bound the job with your scheduler.
    """
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise ParameterError("args", args, "a tuple of positional arguments")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ParameterError("seed", seed, "None or an int >= 0")
    if not isinstance(dealer, bool):
        raise ParameterError("dealer", dealer, "True or False")
    if dealer_seed is not None and (isinstance(dealer_seed, bool) or not isinstance(dealer_seed, int)
                                    or dealer_seed < 0 or not dealer):
        raise ParameterError("dealer_seed", dealer_seed, "None, or an int >= 0 with dealer=True")
    world_size = check_choice("WORLD_SIZE", _env_int("WORLD_SIZE"), WORLD_SIZES)
    rank = _env_int("RANK")
    last = world_size if dealer else world_size - 1
    if not 0 <= rank <= last:
        raise ParameterError("RANK", rank, f"in [0, {last}]" + (f" ({world_size} is the dealer)" if dealer else ""))
    if rank < world_size and not callable(fn):
        raise ParameterError("fn", fn, "a callable fn(rank, *args)")
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
        if rank == world_size:
            value, stats = None, _run_dealer(world_size, dealer_seed, verbose_comm, teardown_on_error=True)
        else:
            value, stats = _run_party(fn, rank, world_size, tuple(args), seed, verbose_comm,
                                      teardown_on_error=True, dealer=dealer)
    finally:
        for key in added:
            os.environ.pop(key, None)
    return PartyOutcome(value, stats)


# ------------------------------------------------------------------------------------ command line

def _import_function(spec: str) -> Callable:
    """``"package.module:function"`` -> the function (any import error is bad input)."""
    import importlib

    module_name, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), name) if module_name and name else None
    except Exception as exc:  # ImportError, AttributeError, or the module itself failing
        raise ParameterError("FUNCTION", spec, f"an importable module:function ({type(exc).__name__}: {exc})") from None
    if not callable(fn):
        raise ParameterError("FUNCTION", spec, "module:function naming a callable fn(rank, *args)")
    return fn


def main(argv: Sequence[str] | None = None) -> int:
    """``ppal-lab party`` (also ``python -m ppal_lab.secure.twoparty``): run one player or the dealer here.

    Exit status 0 when done, 2 with one line on stderr for bad input (before any CrypTen work), 1 when
    the computation itself fails.
    """
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="ppal-lab party",
        description="Run one player (RANK < WORLD_SIZE) or the dealer (RANK = WORLD_SIZE) of a secure "
                    "computation in this process, e.g. on a host of its own. Flags override the "
                    "environment variables RANK, WORLD_SIZE and RENDEZVOUS (or MASTER_ADDR + MASTER_PORT).")
    parser.add_argument("function", nargs="?", help="the party function, module:function, called as "
                        "function(rank, *args); each player builds its own private state inside it "
                        "(not needed by the dealer)")
    parser.add_argument("--args", default="[]", help="JSON list of the public positional arguments, the "
                        "same on every player (default [])")
    parser.add_argument("--rank", type=int, help="this process's rank (default: $RANK)")
    parser.add_argument("--world-size", type=int, help="number of players (default: $WORLD_SIZE)")
    parser.add_argument("--rendezvous", help="torch init_method URL, e.g. tcp://10.0.0.1:29500 (default: "
                        "$RENDEZVOUS or tcp://$MASTER_ADDR:$MASTER_PORT)")
    parser.add_argument("--seed", type=int, help="reproducible, insecure player randomness (default: fresh)")
    parser.add_argument("--dealer-seed", type=int, help="reproducible dealer (dealer only; default: fresh)")
    parser.add_argument("--no-dealer", action="store_true", help="CrypTen's TFP provider: player 0 makes "
                        "the triples (every process of the run must agree)")
    parser.add_argument("--verbose-comm", action="store_true", help="count rounds and bytes")
    parser.add_argument("--out", help="write the outcome here (a pickle of {'rank', 'value', 'comm_stats'})")
    args = parser.parse_args(argv)
    try:
        for key, value in (("RANK", args.rank), ("WORLD_SIZE", args.world_size), ("RENDEZVOUS", args.rendezvous)):
            if value is not None:
                os.environ[key] = str(value)
        world_size, rank = _env_int("WORLD_SIZE"), _env_int("RANK")
        try:
            fn_args = json.loads(args.args)
        except json.JSONDecodeError as exc:
            raise ParameterError("--args", args.args, f"a JSON list ({exc})") from None
        if not isinstance(fn_args, list):
            raise ParameterError("--args", args.args, "a JSON list")
        is_dealer = rank == world_size and not args.no_dealer
        if args.dealer_seed is not None and not is_dealer:
            raise ParameterError("--dealer-seed", args.dealer_seed, "given to the dealer only")
        if args.out:
            out_dir = os.path.dirname(os.path.abspath(args.out))
            if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
                raise ParameterError("--out", args.out, "a file in a writable folder")
        fn = None if is_dealer else _import_function(args.function or "")
        if callable(getattr(fn, "check_args", None)):   # a function may check its arguments up front
            fn.check_args(*fn_args)
        outcome = run_this_party(fn, tuple(fn_args), seed=args.seed, verbose_comm=args.verbose_comm,
                                 dealer=not args.no_dealer, dealer_seed=args.dealer_seed)
    except ParameterError as exc:
        print(f"ppal-lab party: error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        with open(args.out, "wb") as f:
            pickle.dump({"rank": rank, "value": outcome.value, "comm_stats": outcome.comm_stats}, f)
    print(f"{'dealer' if is_dealer else 'player'} rank {rank} of {world_size} players: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
