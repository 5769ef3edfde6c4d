"""What each party receives: record a party's transcript and test it against the threat model.

The threat model of :mod:`ppal_lab.secure.twoparty` says what a semi-honest player may learn: the public
shapes and the outputs opened to it -- everything else it receives must be independent of the other
player's private data. This module checks that claim on real runs:

* :func:`recorded_party` wraps any party function: while it runs, every tensor (and pickled object) that
  arrives at this process through CrypTen's communicator is recorded, in order, as a
  :class:`Message` -- the operation, whether it came from the other players or from the dealer, its
  shape, and its ring elements (as unsigned 64-bit integers). Messages received inside
  :func:`~ppal_lab.secure.twoparty.reveal_to` are tagged ``"output"``: they are the declared outputs.
  Player 0 also records what it sends to the dealer (the dealer's whole view: CrypTen's dealer
  receives nothing but these requests).
* :func:`compare_transcripts` takes one party's transcripts from two runs that differ only in the
  *other* player's private data and asks whether they can be told apart: the sequence of operations,
  sources and shapes must be identical, and for every non-output message a two-sample
  Kolmogorov-Smirnov test compares its elements (read as signed 64-bit integers and mapped to [-1, 1)
  as ``v / 2^63``) across the runs.
  The runs are "indistinguishable" when the smallest p-value, Bonferroni-corrected over the messages,
  stays above ``alpha``.

Openings of masked values (``x - a`` with ``a`` uniform on the ring) are uniform on the ring whatever
``x`` is, so they pass; a value opened or sent without a mask (a small fixed-point number near 0 or
near 2^64) shifts with the other player's data and fails. An output opened to the wrong player shows
up as an ``"output"`` message where the threat model declares none. :func:`leaky_similarity_party`
makes both mistakes on purpose, to show that the tests catch them.

What the recorder does not see: ``irecv`` (CrypTen uses it only for three-party replicated sharing)
and the seed exchanges inside ``crypten.init``, which happen before any data exists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Message", "PartyTranscript", "recorded_party", "TranscriptComparison", "compare_transcripts",
           "LEAKS", "leaky_similarity_party"]


@dataclass(frozen=True)
class Message:
    """One thing a party received: ``op`` (communicator method), ``source`` (``"players"`` or
    ``"dealer"``), ``tag`` (``"output"`` inside ``reveal_to``, else ``"protocol"``), ``shape``, and
    ``values`` (uint64 ring elements; for a pickled object its ``repr`` as bytes)."""

    op: str
    source: str
    tag: str
    shape: tuple
    values: np.ndarray = field(repr=False)

    @property
    def kind(self) -> tuple:
        """What is public about the message: everything but its values."""
        return (self.op, self.source, self.tag, self.shape)


@dataclass
class PartyTranscript:
    """A party's return ``value``, what it ``received`` and (player 0) what it ``sent_to_dealer``."""

    rank: int
    value: Any
    received: list[Message]
    sent_to_dealer: list[str]

    def outputs(self) -> list[Message]:
        return [m for m in self.received if m.tag == "output"]


def _ring(tensor) -> np.ndarray:
    return tensor.detach().cpu().reshape(-1).numpy().astype(np.int64).view(np.uint64).copy()


class _Recorder:
    """Wraps the receiving methods of this process's CrypTen communicator (instance attributes)."""

    def __init__(self, communicator):
        self.comm, self.rank = communicator, communicator.get_rank()
        self.dealer_rank = communicator.get_ttp_rank() if getattr(communicator, "ttp_initialized", False) else None
        self.received: list[Message] = []
        self.sent_to_dealer: list[str] = []
        self.tag = "protocol"
        self.saved: dict[str, Callable] = {}

    def _add(self, op, src, tensors):
        source = "dealer" if src is not None and src == self.dealer_rank else "players"
        for t in tensors if isinstance(tensors, (list, tuple)) else [tensors]:
            self.received.append(Message(op, source, self.tag, tuple(t.shape), _ring(t)))

    def _add_obj(self, op, src, obj):
        source = "dealer" if src == self.dealer_rank else "players"
        raw = np.frombuffer(repr(obj).encode(), dtype=np.uint8).copy()
        self.received.append(Message(op, source, self.tag, (), raw))

    def install(self):
        c, rank = self.comm, self.rank

        def wrap(name, record):
            original = getattr(c, name)
            self.saved[name] = original

            def spy(*args, **kwargs):
                out = original(*args, **kwargs)
                record(out, *args, **kwargs)
                return out

            setattr(c, name, spy)

        wrap("recv", lambda out, tensor, src=None: self._add("recv", src, out))
        wrap("broadcast", lambda out, inp, src, group=None, batched=False:
             src != rank and self._add("broadcast", src, out))
        wrap("all_reduce", lambda out, inp, *a, **k: self._add("all_reduce", None, out))
        wrap("reduce", lambda out, inp, dst, *a, **k: dst == rank and self._add("reduce", None, out))
        wrap("all_gather", lambda out, t: self._add("all_gather", None, [x for i, x in enumerate(out) if i != rank]))
        wrap("gather", lambda out, t, dst: dst == rank and self._add("gather", None,
                                                                        [x for i, x in enumerate(out) if i != rank]))
        wrap("scatter", lambda out, lst, src, *a, **k: src != rank and self._add("scatter", src, out))
        wrap("recv_obj", lambda out, src, group=None: self._add_obj("recv_obj", src, out))
        wrap("broadcast_obj", lambda out, obj, src, group=None:
             src != rank and self._add_obj("broadcast_obj", src, out))
        wrap("send_obj", lambda out, obj, dst, group=None:
             dst == self.dealer_rank and self.sent_to_dealer.append(repr(obj)))

    def uninstall(self):
        for name in self.saved:
            delattr(self.comm, name)  # the class's method shows through again


def recorded_party(rank: int, fn: Callable, *args) -> PartyTranscript:
    """Party function: run ``fn(rank, *args)`` while recording what this party receives.

    ``fn`` must be a module-level party function (it travels to the spawned party by reference).
    Messages received inside :func:`~ppal_lab.secure.twoparty.reveal_to` are tagged ``"output"``.
    """
    from ppal_lab.secure import twoparty
    from ppal_lab.secure.crypten_compat import crypten

    recorder = _Recorder(crypten.comm.get())
    reveal_to = twoparty.reveal_to

    def tagged_reveal_to(x, dst):
        recorder.tag = "output"
        try:
            return reveal_to(x, dst)
        finally:
            recorder.tag = "protocol"

    recorder.install()
    twoparty.reveal_to = tagged_reveal_to  # party functions import reveal_to when they run
    try:
        value = fn(rank, *args)
    finally:
        twoparty.reveal_to = reveal_to
        recorder.uninstall()
    return PartyTranscript(rank, value, recorder.received, recorder.sent_to_dealer)


@dataclass(frozen=True)
class TranscriptComparison:
    """Result of :func:`compare_transcripts`.

    ``same_structure``: identical operations, sources, tags and shapes, in order (and identical
    requests to the dealer). ``n_tested``: non-output messages tested. ``min_p``: smallest per-message
    KS p-value (1.0 if none). ``worst``: index of that message. ``indistinguishable``: same structure
    and ``min_p * n_tested > alpha``.
    """

    same_structure: bool
    n_tested: int
    min_p: float
    worst: int | None
    alpha: float

    @property
    def indistinguishable(self) -> bool:
        return self.same_structure and self.min_p * max(self.n_tested, 1) > self.alpha


def compare_transcripts(a: PartyTranscript, b: PartyTranscript, alpha: float = 1e-3) -> TranscriptComparison:
    """Can one party's transcripts from two runs be told apart? (See the module docstring.)"""
    from scipy.stats import ks_2samp

    same = ([m.kind for m in a.received] == [m.kind for m in b.received]
            and a.sent_to_dealer == b.sent_to_dealer)
    min_p, worst, n = 1.0, None, 0
    for i, (ma, mb) in enumerate(zip(a.received, b.received)):
        if ma.tag == "output":
            continue  # declared outputs: the caller checks they carry nothing but the output
        if ma.values.dtype != np.uint64:  # a pickled object (a shape): must be identical
            same = same and np.array_equal(ma.values, mb.values)
            continue
        n += 1
        if ma.values.size == 0 or np.array_equal(ma.values, mb.values):
            continue
        # As signed ring elements in [-1, 1): uniform for masked openings, near 0 for fixed-point values.
        ua, ub = (v.view(np.int64).astype(np.float64) / 2.0**63 for v in (ma.values, mb.values))
        p = float(ks_2samp(ua, ub).pvalue)
        if p < min_p:
            min_p, worst = p, i
    return TranscriptComparison(same, n, min_p, worst, alpha)


LEAKS = ("open_residuals", "score_to_owner")
"""The deliberate mistakes of :func:`leaky_similarity_party`."""


def leaky_similarity_party(rank: int, n_items: int, n_channels: int, sd, segments, threshold: float, own,
                           leak: str = "open_residuals") -> dict:
    """:func:`ppal_lab.secure.similarity.similarity_party` with a deliberate leak, for the transcript tests.

    ``leak="open_residuals"``: first open the standardised residuals ``z = (m - m_hat)/sd`` to both
    players with CrypTen's ``get_plain_text`` (a "debugging" print); player 0, knowing ``m``, then knows
    ``m_hat``. ``leak="score_to_owner"``: also open the scores of all items to player 0 (``reveal_to``
    the wrong party), which the threat model says receives no output.
    """
    import torch

    from ppal_lab.secure.crypten_compat import crypten
    from ppal_lab.secure.similarity import _secure_scores, similarity_party
    from ppal_lab.secure.twoparty import reveal_to

    shape = (n_items, n_channels)
    mine = torch.as_tensor(np.asarray(own, dtype=np.float64))
    x = crypten.cryptensor(mine if rank == 0 else torch.empty(shape, dtype=torch.float64), src=0)
    y = crypten.cryptensor(mine if rank == 1 else torch.empty(shape, dtype=torch.float64), src=1)
    inv_sd = torch.as_tensor(1.0 / np.asarray(sd, dtype=np.float64))
    if leak == "open_residuals":
        ((x - y) * inv_sd).get_plain_text()
    elif leak == "score_to_owner":
        reveal_to(_secure_scores(crypten, x, y, inv_sd, "score", 1.0 / threshold - 1.0), 0)
    else:
        raise ValueError(f"leak must be one of {LEAKS}, not {leak!r}")
    return similarity_party(rank, n_items, n_channels, sd, segments, threshold, own)
