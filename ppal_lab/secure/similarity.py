r"""Secure similarity: compare a private input with a simulated one on secret shares (CrypTen, 2 parties).

The inverse-simulation verifier (:mod:`ppal_lab.verify`) asks how close the bench readings that a
prediction implies (the *simulated input*, computed by the verifier) are to the bench readings that
were really measured (the *private input*, held by the testing facility). The seed document calls this
step "homomorphic similarity". Here it runs as a two-party computation with CrypTen
(Knott et al. 2021) in two separate processes started by :func:`ppal_lab.secure.run_parties`:

* party 0 (the **input owner**) secret-shares its readings :math:`m` (shape ``(n, k)``);
* party 1 (the **verifier**) secret-shares the simulated readings :math:`\hat m`;
* both compute on shares, per item :math:`i`,

  .. math::

     z_{ij} = (m_{ij} - \hat m_{ij}) / \sigma_j, \qquad
     q_i = \frac1k \sum_j \min(z_{ij}^2, Z^2), \qquad
     s_i = \frac{1}{1 + q_i},

  where :math:`\sigma_j` are the public noise standard deviations of the bench channels and
  :math:`Z` (:data:`Z_MAX`, 10 noise SDs) caps one channel's contribution;
* only :math:`s` is opened, and only to party 1 (:func:`~ppal_lab.secure.twoparty.reveal_to`); with
  ``reveal="decision"`` only the bit :math:`[s > \theta]` is opened instead, computed as the
  comparison :math:`q < 1/\theta - 1` (no reciprocal needed). The verifier's verdict needs no more:
  its other score, the consistency, uses only its own claim.

:func:`plaintext_similarity` is the same formula in float64; the secure result equals it within the
fixed-point tolerance (16 fractional bits, ~1.5e-5, plus the rounding in the Newton iterations of the
reciprocal; we observed at most ~1e-4 and the tests allow 1e-3).

Why the cap :math:`Z`: CrypTen's reciprocal is Newton-Raphson started from
:math:`3 e^{1 - 2x} + 0.003`, with :math:`e^y` approximated by :math:`(1 + y/256)^{256}`. That start
is valid only for :math:`1 - 2x \ge -256`, i.e. :math:`x = 1 + q \le 128.5`; beyond it the base
turns negative and the result is garbage. With :math:`Z = 10` we have :math:`1 + q \le 101`. The cap
changes nothing that matters for verification: an item with one channel 10 SDs off already scores
:math:`s \le 1/26`. It costs one secure comparison (a ReLU) per reading.

Range of the inputs: every reading must be finite and in ``[0, MAX_READING]``. Then
:math:`|z| \le 5000 / 0.35 < 1.5 \cdot 10^4`, and the Beaver product of two such values at scale
:math:`2^{16}` each (:math:`z^2 2^{32} < 10^{18}`) stays inside CrypTen's signed 64-bit ring.

Threat model
------------
Semi-honest players (they follow the protocol but try to learn from what they receive), and a dealer
that is not a player: :func:`~ppal_lab.secure.twoparty.run_parties` starts CrypTen's ``TTP`` server as
a third process that hands out the Beaver triples and other correlated randomness, freshly seeded from
``os.urandom`` on every run, and does not collude with either player (see
:mod:`ppal_lab.secure.twoparty`). Under this model:

===================  ==========================================================================
who                  receives (and so learns)
===================  ==========================================================================
party 0 (readings)   the shapes ``n``, ``k``; masked openings and its triple shares (uniform ring
                     elements, independent of :math:`\hat m`); no output
party 1 (verifier)   the shapes; masked openings (uniform, independent of :math:`m`); the opened
                     scores :math:`s_i` (or the bits :math:`[s_i > \theta]`)
dealer               the kinds and shapes of the tuples player 0 asks for; no data, no output
===================  ==========================================================================

``tests/secure/test_transcript.py`` records what each party receives in runs that differ only in
the other player's data and checks this table: a two-sample test cannot tell the transcripts apart,
player 0 receives no output, the only output message of player 1 carries the scores, and a leaky
variant (:func:`ppal_lab.secure.transcript.leaky_similarity_party`) is caught.

What the score itself gives away: it is a function of the private readings and tells party 1 the
noise-weighted distance of :math:`m_i` from a point :math:`\hat m_i` that party 1 chose. From
:math:`k + 1` scores of the same item at affinely independent points (and no channel capped) it
recovers :math:`m_i` exactly by trilateration (:func:`ppal_lab.verify.reconstruct_readings` shows it).
Revealing only the decision bit leaks one bit per query; limiting verifications per item bounds both.

A dealer that colludes with a player gives that player everything; and CrypTen's masks come from
torch's Mersenne-Twister generators with 32-bit seeds, so the hiding holds against parties that do
not search 2^32 seeds (see :mod:`ppal_lab.secure.twoparty`).

Nothing here protects against a *malicious* party (one that feeds wrong readings or deviates from the
protocol): integrity of the inputs needs commitments or signed readings, outside this module.

Cost
----
:func:`secure_similarity` launches the two processes **once** for a whole batch (process start and
``import crypten`` take seconds) and can measure several batch sizes in the same launch
(``batch_sizes``): the number of communication rounds does not grow with the batch (every operation
is vectorised), the bytes grow linearly. Counts are CrypTen's own per-party counters (see
:mod:`ppal_lab.secure.twoparty`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ppal_lab.compendium.errors import ParameterError, check_choice, check_range

__all__ = [
    "Z_MAX", "MAX_READING", "REVEALS", "plaintext_similarity", "plaintext_decision",
    "similarity_party", "own_data_similarity_party", "own_data", "SecureSimilarityResult",
    "secure_similarity",
]

Z_MAX = 10.0
"""Cap on one channel's standardised residual |z| (noise SDs); see the module docstring."""

MAX_READING = 5000.0
"""Largest reading either party may share (keeps fixed-point products inside the 64-bit ring)."""

RECIPROCAL_SCALE = 4.0
"""K in 1/(1+q) = (1/K) / ((1+q)/K): Newton's estimates then lie in [K/(1 + Z^2), K] = [0.04, 4].
Of K = 4, 8, 16, 32 (and no scaling), 4 gave the smallest largest error (~8e-5 over q in [0, 100]);
without scaling the error reached 1e-3 at small scores (see :func:`_secure_scores`)."""

REVEALS = ("score", "decision")
"""What the verifier learns: the similarity score itself (the seed's design) or only [score > threshold]."""


# ------------------------------------------------------------------------------------------ plaintext

def _readings(name: str, value: Any, k: int | None = None) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(name, type(value).__name__, "a numeric (n, k) array") from None
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0 or (k is not None and a.shape[1] != k):
        want = "a non-empty (n, k) array" if k is None else f"a non-empty (n, {k}) array"
        raise ParameterError(name, f"array of shape {a.shape}", want)
    bad = ~np.isfinite(a) | (a < 0) | (a > MAX_READING)
    if bad.any():
        raise ParameterError(name, float(a[bad][0]), f"finite readings in [0, {MAX_READING:g}]")
    return a


def _sd(sd: Any, k: int) -> np.ndarray:
    try:
        s = np.asarray(sd, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError("sd", sd, f"{k} positive numbers") from None
    if s.shape != (k,) or not np.all(np.isfinite(s)) or np.any(s <= 0.1):
        raise ParameterError("sd", sd, f"{k} finite noise SDs, each > 0.1 (one per channel)")
    return s


def _pair(readings: Any, simulated: Any, sd: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = _readings("readings", readings)
    m_hat = _readings("simulated", simulated, m.shape[1])
    if m_hat.shape != m.shape:
        raise ParameterError("simulated", f"array of shape {m_hat.shape}", f"shape {m.shape} like readings")
    return m, m_hat, _sd(sd, m.shape[1])


def plaintext_similarity(readings: Any, simulated: Any, sd: Any) -> np.ndarray:
    r"""The similarity :math:`s_i = 1 / (1 + \frac1k\sum_j \min(z_{ij}^2, Z^2))` in float64.

    Parameters
    ----------
    readings, simulated : array_like of shape (n, k)
        Measured and simulated readings, finite, in ``[0, MAX_READING]``.
    sd : array_like of shape (k,)
        Noise standard deviation of each channel (> 0.1; the bench's are 0.35 to 6).

    Returns
    -------
    numpy.ndarray of shape (n,)
        Scores in :math:`[1/(1 + Z^2), 1]`; 1 means the readings equal the simulation.
    """
    m, m_hat, s = _pair(readings, simulated, sd)
    z2 = np.minimum(((m - m_hat) / s) ** 2, Z_MAX**2)
    return 1.0 / (1.0 + z2.mean(axis=1))


def _threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise ParameterError("threshold", threshold, "a number in (1/(1 + Z_MAX^2), 1)")
    return float(check_range("threshold", float(threshold), 1.0 / (1.0 + Z_MAX**2), 1.0,
                             low_open=True, high_open=True))


def plaintext_decision(readings: Any, simulated: Any, sd: Any, threshold: float) -> np.ndarray:
    """``plaintext_similarity(...) > threshold``, computed as ``reveal="decision"`` does: the capped
    mean squared residual against ``1/threshold - 1`` (no reciprocal)."""
    t = _threshold(threshold)
    m, m_hat, s = _pair(readings, simulated, sd)
    q = np.minimum(((m - m_hat) / s) ** 2, Z_MAX**2).mean(axis=1)
    return q < 1.0 / t - 1.0


# ------------------------------------------------------------------------------------ party function

def _secure_scores(crypten, x, y, inv_sd, reveal: str, q_max: float):
    """The similarity (or the decision bit) of shared readings x (party 0) and y (party 1)."""
    k = x.size(1)
    z = (x - y) * inv_sd                       # public scale: local multiply + truncation
    z2 = z.square()                            # Beaver multiplication
    z2 = (Z_MAX**2) - (Z_MAX**2 - z2).relu()   # min(z^2, Z^2) with one comparison per reading
    q = z2.sum(dim=1) * (1.0 / k)
    if reveal == "decision":
        return q.lt(q_max)                     # s > t  <=>  q < 1/t - 1; only the bit is opened
    # 1/(1 + q) = (1/K) * 1/((1 + q)/K): Newton's iterations square their current estimate, and in
    # fixed point the square of a small estimate (s ~ 0.01) keeps few significant bits, an error that
    # the next multiplication by 1 + q (up to 101) amplifies. (1 + q)/K > 0: no sign computation.
    with crypten.cfg.temp_override({"functions.reciprocal_all_pos": True}):
        return ((q + 1.0) * (1.0 / RECIPROCAL_SCALE)).reciprocal() * (1.0 / RECIPROCAL_SCALE)


def similarity_party(rank: int, n_items: int, n_channels: int, sd: Sequence[float],
                     segments: Sequence[tuple[str, int]], threshold: float, own: np.ndarray) -> dict:
    """Party function for :func:`ppal_lab.secure.run_parties` (world size 2).

    Party 0 passes its readings as ``own``, party 1 its simulated readings; the peer's array never
    reaches this process. Both share their arrays once, then, for every ``(reveal, b)`` in
    ``segments``, compute the scores (or decision bits) of the first ``b`` items and open them to
    party 1, measuring this party's rounds, bytes and seconds for the computation and the opening.

    Returns ``{"cost": [{"reveal", "items", "rounds", "bytes", "time_s"}, ...], "values": {reveal:
    array}}``: the opened values of the largest segment of each reveal mode, at party 1 (party 0
    receives none, its ``values`` is empty).
    """
    import torch

    from ppal_lab.secure.crypten_compat import crypten
    from ppal_lab.secure.fixed_point import decode_exact
    from ppal_lab.secure.twoparty import reveal_to

    torch.set_num_threads(1)  # small tensors: extra threads only contend with the peer for the CPU
    comm = crypten.comm.get()
    shape = (n_items, n_channels)
    mine = torch.as_tensor(np.asarray(own, dtype=np.float64))
    placeholder = torch.empty(shape, dtype=torch.float64)
    x = crypten.cryptensor(mine if rank == 0 else placeholder, src=0)
    y = crypten.cryptensor(mine if rank == 1 else placeholder, src=1)
    inv_sd = torch.as_tensor(1.0 / np.asarray(sd, dtype=np.float64))
    q_max = 1.0 / threshold - 1.0
    cost, values, largest = [], {}, {}
    for reveal, b in segments:
        comm.barrier()  # both parties start together, so each clock measures the protocol
        before = comm.get_communication_stats()
        start = time.perf_counter()
        out = _secure_scores(crypten, x[:b], y[:b], inv_sd, reveal, q_max)
        ring = reveal_to(out, 1)        # point to point: party 0 receives nothing
        opened = torch.from_numpy(decode_exact(ring, out.encoder.scale)) if rank == 1 else None
        elapsed = time.perf_counter() - start
        after = comm.get_communication_stats()
        cost.append({"reveal": reveal, "items": int(b), "rounds": int(after["rounds"] - before["rounds"]),
                     "bytes": float(after["bytes"] - before["bytes"]), "time_s": elapsed})
        if rank == 1 and b >= largest.get(reveal, 0):
            largest[reveal] = b
            values[reveal] = opened.double().numpy()
    return {"cost": cost, "values": values}


def own_data_similarity_party(rank: int, n_items: int, n_channels: int, sd: Sequence[float],
                              threshold: float, data_seed: int) -> dict:
    """Party function for players on hosts of their own (``ppal-lab party``): each player draws its
    own array from ``(data_seed, rank)`` -- player 0 its readings, player 1 its simulated readings,
    both around 75 with the channels' noise -- and runs :func:`similarity_party` for both reveal
    modes on all items. Nothing private is passed between hosts; ``data_seed`` stands for each
    site's own data. :func:`own_data` gives the same arrays, for checking."""
    own = own_data(rank, n_items, n_channels, sd, data_seed)
    segments = [("score", n_items), ("decision", n_items)]
    return similarity_party(rank, n_items, n_channels, sd, segments, threshold, own)


def own_data(rank: int, n_items: int, n_channels: int, sd: Sequence[float], data_seed: int) -> np.ndarray:
    """The array player ``rank`` of :func:`own_data_similarity_party` holds."""
    rng = np.random.default_rng([int(data_seed), int(rank)])
    return 75.0 + rng.normal(0.0, 1.0, (n_items, n_channels)) * np.asarray(sd, dtype=np.float64)


# ---------------------------------------------------------------------------------------- launcher

@dataclass
class SecureSimilarityResult:
    """What one secure run produced and cost.

    Attributes
    ----------
    scores, decisions : numpy.ndarray or None
        What party 1 received for every item: the similarity scores and/or the 0/1 decisions
        ``score > threshold`` (``None`` for a mode that was not run).
    plaintext_scores, plaintext_decisions : numpy.ndarray or None
        The same quantities in float64 (:func:`plaintext_similarity`, :func:`plaintext_decision`),
        for the comparison only; no party computes them in a deployment.
    threshold : float
    cost : pandas.DataFrame
        One row per party, reveal mode and batch size: ``party``, ``reveal``, ``items``, ``rounds``,
        ``bytes`` (as counted by that party), ``time_s`` (that party's clock, waiting included).
    wall_s : float
        The whole launch, process start-up and ``import crypten`` included.
    """

    scores: np.ndarray | None
    decisions: np.ndarray | None
    plaintext_scores: np.ndarray | None
    plaintext_decisions: np.ndarray | None
    threshold: float
    cost: pd.DataFrame = field(repr=False)
    wall_s: float = 0.0

    @property
    def max_abs_error(self) -> float:
        """Largest |secure - plaintext| score (NaN if scores were not revealed)."""
        if self.scores is None:
            return float("nan")
        return float(np.abs(self.scores - self.plaintext_scores).max())

    @property
    def decision_mismatches(self) -> int:
        """Number of items whose secure decision differs from the plaintext one (-1 if not run)."""
        if self.decisions is None:
            return -1
        return int(np.sum(self.decisions.astype(bool) != self.plaintext_decisions))

    def total_cost(self) -> pd.DataFrame:
        """Per reveal mode and batch size: rounds (the larger party count), bytes (two-party total =
        mean of the two parties' counts, CrypTen's convention), the slower party's time, and the
        bytes and milliseconds per item."""
        g = self.cost.groupby(["reveal", "items"], sort=False)
        out = pd.DataFrame({"rounds": g["rounds"].max(), "bytes": g["bytes"].mean(),
                            "time_s": g["time_s"].max()}).reset_index()
        out["bytes_per_item"] = out["bytes"] / out["items"]
        out["ms_per_item"] = 1e3 * out["time_s"] / out["items"]
        return out


def _count(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ParameterError(name, value, f"an integer >= {low}")
    check_range(name, int(value), low, high)
    return int(value)


def _reveals(reveal: Any) -> tuple[str, ...]:
    modes = (reveal,) if isinstance(reveal, str) else reveal
    if not isinstance(modes, Sequence) or len(modes) == 0:
        raise ParameterError("reveal", reveal, "one of 'score', 'decision' or a list of them")
    for r in modes:
        check_choice("reveal", r, REVEALS)
    if len(set(modes)) != len(modes):
        raise ParameterError("reveal", list(modes), "a list without repeats")
    return tuple(modes)


def secure_similarity(readings: Any, simulated: Any, sd: Any, *,
                      reveal: str | Sequence[str] = "score", threshold: float = 0.85,
                      batch_sizes: Sequence[int] | None = None, seed: int | None = None,
                      timeout: float = 180.0) -> SecureSimilarityResult:
    """Compute the similarity of every item on secret shares in two CrypTen processes (one launch).

    Parameters
    ----------
    readings : array_like of shape (n, k)
        Party 0's private readings (finite, in ``[0, MAX_READING]``).
    simulated : array_like of shape (n, k)
        Party 1's simulated readings (same shape and range).
    sd : array_like of shape (k,)
        Public noise standard deviation of each channel (> 0.1).
    reveal : {"score", "decision"} or a list of both
        Open the scores (the seed's design) and/or only ``score > threshold``; both run in the
        same launch on the same shares.
    threshold : float
        Decision threshold, in ``(1/(1 + Z_MAX^2), 1)``.
    batch_sizes : sequence of int, optional
        Prefix sizes to time in the same launch (each in ``[1, n]``, increasing); ``n`` is appended
        if missing. Default: ``[n]``. Every reveal mode runs every size.
    seed : int or None
        ``None``: CrypTen's secure random seeds and a freshly seeded dealer. An int seeds the players
        and the dealer, which makes the run reproducible and *insecure* (anyone who knows it can undo
        the masks): for experiments only.
    timeout : float
        Seconds for the whole launch (> 0); past it both parties are killed.

    Returns
    -------
    SecureSimilarityResult
    """
    m, m_hat, s = _pair(readings, simulated, sd)
    modes = _reveals(reveal)
    t = _threshold(threshold)
    n, k = m.shape
    if batch_sizes is None:
        sizes = [n]
    else:
        if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Sequence) or not batch_sizes:
            raise ParameterError("batch_sizes", batch_sizes, f"a non-empty list of integers in [1, {n}]")
        sizes = [_count("batch_sizes", b, 1, n) for b in batch_sizes]
        if any(b2 <= b1 for b1, b2 in zip(sizes, sizes[1:])):
            raise ParameterError("batch_sizes", list(batch_sizes), "strictly increasing sizes")
        if sizes[-1] != n:
            sizes.append(n)
    if seed is not None:
        _count("seed", seed, 0)
    if isinstance(timeout, bool) or not isinstance(timeout, Real) or not math.isfinite(timeout):
        raise ParameterError("timeout", timeout, "a finite number of seconds > 0")
    check_range("timeout", float(timeout), 0, None, low_open=True)

    from ppal_lab.secure.twoparty import run_parties

    segments = [(r, b) for r in modes for b in sizes]
    res = run_parties(similarity_party, 2, args=(n, k, s.tolist(), segments, t),
                      party_args=[(m,), (m_hat,)], timeout=float(timeout), verbose_comm=True,
                      seed=seed, dealer_seed=seed)  # seeded: the dealer too (scores depend on its rounding)
    rows = [{"party": rank, **c} for rank, out in enumerate(res) for c in out["cost"]]
    got = res[1]["values"]
    scores = np.asarray(got["score"], dtype=np.float64) if "score" in got else None
    decisions = np.asarray(got["decision"], dtype=np.float64) if "decision" in got else None
    return SecureSimilarityResult(
        scores=scores, decisions=decisions,
        plaintext_scores=plaintext_similarity(m, m_hat, s) if scores is not None else None,
        plaintext_decisions=plaintext_decision(m, m_hat, s, t) if decisions is not None else None,
        threshold=t, cost=pd.DataFrame(rows), wall_s=float(res.wall_s))
