"""Secure aggregation with drop-outs (Bonawitz et al. 2017), pairwise seeds from the hybrid key exchange.

The goal: a server learns the *sum* of the sites' model updates and nothing else about any one of them,
even when some sites vanish mid-round (a laptop closes, a plant's link drops).

The idea in one line: site ``i`` sends ``y_i = x_i + PRG(b_i) + sum_{j>i} PRG(s_ij) - sum_{j<i} PRG(s_ij)``
(mod 2^64). Summed over all sites the pairwise masks cancel (``+PRG(s_ij)`` at ``i``, ``-PRG(s_ij)`` at
``j``); each ``y_i`` alone looks uniformly random whatever ``x_i`` is (it is uniform if the PRG output is,
and indistinguishable from uniform to anyone who cannot break ChaCha20).

One round, as simulated by :class:`SecureAggregation` (every message is counted in :class:`Traffic`;
the server only relays and adds)::

    0  key agreement   every pair (i, j) runs the authenticated hybrid X25519 + ML-KEM-768 handshake
                       (:mod:`ppal_lab.secure.key_exchange`) through the server; from the session key
                       HKDF derives the 256-bit mask seed s_ij and an encryption key for shares.
    1  share keys      site i draws a 256-bit self-mask seed b_i and deals Shamir shares
                       (:mod:`ppal_lab.secure.shamir`, field GF(2^521 - 1), any ``threshold`` shares
                       reconstruct) of b_i and of every s_ij with j > i; each share is encrypted
                       (ChaCha20-Poly1305) for its holder, so the relaying server cannot read it.
    2  masked input    the sites still there (U2) send y_i; the others have dropped out.
    3' consistency     the server tells every site in U3 which sites sent a masked update (U2); each site
                       signs that set with its Ed25519 identity key and the server forwards the
                       signatures; a site answers the unmasking request only if ``threshold`` sites
                       signed the very set it was shown (Bonawitz et al.'s ConsistencyCheck round).
    3  unmasking       the sites still there (U3) send, for each i in U2, their share of b_i, and for each
                       dropped d and each j in U2, their share of s_dj -- never both kinds for one site
                       (a site refuses such a request), so the server can never unmask a site that sent
                       y_i. With ``threshold`` responses the server rebuilds the seeds, removes the
                       self masks of U2 and the masks between U2 and the dropped sites, and reads the sum.

Why the self mask ``b_i``: if a slow site's ``y_i`` arrived after the server had been told it dropped
(and had rebuilt its pairwise seeds), the pairwise masks alone would no longer hide ``x_i``.

* **Exact sum.** Updates are encoded in fixed point (``round(x * 2^frac_bits)`` as a 64-bit integer);
  all arithmetic is mod 2^64, so the server gets exactly the sum of the encoded updates of U2 (the only
  error is each site's rounding, at most 2^-(frac_bits+1) per coordinate and site), provided the true
  sum fits (|sum| < 2^63 / 2^frac_bits).
* **Drop-outs.** The round completes while at least ``threshold`` sites remain at every step; with one
  fewer it raises :class:`AggregationAborted` *before* any share is revealed.
* **Threshold.** ``threshold > n_sites / 2`` is required: two disjoint groups of survivors can then
  never both reach it (so one run cannot be split into two unmaskings of different sets).
* **Seeds stay 256-bit.** The PRG is the ChaCha20 keystream keyed by the whole 32-byte seed. Flower's
  SecAgg+ (``pseudo_rand_gen``, flwr issue #7522, open) XOR-folds each seed to 32 bits
  (:func:`folded_seed32`) and feeds it to NumPy's Mersenne Twister, which is not a cryptographic
  generator: 2^224 different 256-bit seeds then give the same mask, and 2^32 guesses try them all.
  Here a seed of another length is refused (:func:`prg`).

* **Consistency check.** A server that shows different survivor sets to different sites (to learn
  one site's self seed from some and its pair seeds from others) is caught: every site signs one set
  per round, ``threshold > n_sites / 2`` signatures on one set leave too few for any other, so the
  sites shown a minority story refuse to answer (``run(..., announce=...)`` simulates such a server).
  Its signatures are counted with the unmasking phase they guard.

Model: semi-honest sites, a server that may lie about who dropped out, authenticated channels from
pinned Ed25519 identities (Bonawitz et al.'s full malicious model also needs signed key
advertisements, which the authenticated handshake provides here).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ppal_lab.compendium.errors import ParameterError, check_int, check_real
from ppal_lab.secure.key_exchange import HandshakeError, Identity, _verify, handshake
from ppal_lab.secure.shamir import Shamir

__all__ = ["SEED_BYTES", "SHARE_FIELD", "AggregationAborted", "prg", "folded_seed32", "encode", "decode",
           "Traffic",
           "SecureAggregation", "dropout_trial"]

SEED_BYTES = 32
"""Mask seeds are 256 bits, end to end."""
SHARE_FIELD = 2**521 - 1
"""A Mersenne prime larger than any 256-bit seed: the field the seeds are Shamir-shared in."""
_SHARE_BYTES = 66  # one element of GF(2^521 - 1)


class AggregationAborted(RuntimeError):
    """Fewer than ``threshold`` sites remained: the round stops and no seed is reconstructed."""


def prg(seed: bytes, n: int, round_no: int = 0) -> np.ndarray:
    """``n`` pseudo-random uint64 values: the ChaCha20 keystream under the full 256-bit ``seed`` (the
    nonce carries the round number, so one seed can mask several rounds independently)."""
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        got = f"{type(seed).__name__} of length {len(seed)}" if hasattr(seed, "__len__") else type(seed).__name__
        raise ParameterError("seed", got, f"{SEED_BYTES} bytes (a full 256-bit seed)")
    nonce = bytes(4) + check_int("round_no", round_no, 0).to_bytes(12, "little")
    stream = Cipher(algorithms.ChaCha20(seed, nonce), mode=None).encryptor().update(bytes(8 * n))
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


def folded_seed32(seed: bytes) -> int:
    """The 32-bit value Flower's SecAgg+ ``pseudo_rand_gen`` keeps of a seed (XOR of its 4-byte words;
    flwr issue #7522): reproduced here for comparison only, never used for masking."""
    if not isinstance(seed, bytes) or len(seed) % 4:
        raise ParameterError("seed", type(seed).__name__, "bytes whose length is a multiple of 4")
    out = 0
    for k in range(0, len(seed), 4):
        out ^= int.from_bytes(seed[k:k + 4], "little")
    return out


def encode(x, frac_bits: int = 16) -> np.ndarray:
    """Fixed point: ``round(x * 2^frac_bits)`` as int64, viewed as uint64 (two's complement mod 2^64)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise ParameterError("update", f"array of shape {x.shape}", "a finite 1-d array")
    scaled = np.round(x * 2.0**frac_bits)
    if np.abs(scaled).max(initial=0) >= 2.0**62:
        raise ParameterError("update", float(np.abs(x).max()),
                             f"|values| < 2^{62 - frac_bits} at frac_bits={frac_bits}")
    return scaled.astype(np.int64).view(np.uint64)


def decode(ring: np.ndarray, frac_bits: int = 16) -> np.ndarray:
    """The inverse of :func:`encode` for a sum: read mod 2^64 as signed and divide by 2^frac_bits."""
    return np.asarray(ring, dtype=np.uint64).view(np.int64) / 2.0**frac_bits


@dataclass
class Traffic:
    """Bytes sent through the server, per phase (uploads by sites + downloads to sites)."""

    bytes: dict = field(default_factory=lambda: {p: 0 for p in SecureAggregation.PHASES})
    seconds: dict = field(default_factory=lambda: {p: 0.0 for p in SecureAggregation.PHASES})

    def relay(self, phase: str, n_bytes: int, hops: int = 2) -> None:
        """A message of ``n_bytes`` from site to site via the server (``hops=2``) or to the server (1)."""
        self.bytes[phase] += hops * n_bytes


def _sign(i: int, j: int) -> int:
    return 1 if i < j else -1


def _derive(key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ppal-lab secagg|" + label).derive(key)


class SecureAggregation:
    """Bonawitz-style secure aggregation among ``n_sites`` sites (numbered 1..n_sites).

    Parameters
    ----------
    n_sites : int >= 2
    threshold : int in (n_sites / 2, n_sites]; default ``n_sites // 2 + 1``. Sites needed at every step.
    frac_bits : fixed-point fraction bits in [0, 40].
    """

    PHASES = ("key_agreement", "share_keys", "masked_input", "unmasking")

    def __init__(self, n_sites: int, threshold: int | None = None, frac_bits: int = 16):
        self.n = check_int("n_sites", n_sites, 2)
        self.threshold = (self.n // 2 + 1 if threshold is None
                          else check_int("threshold", threshold, 2, self.n))
        if 2 * self.threshold <= self.n:
            raise ParameterError("threshold", self.threshold, f"> n_sites / 2 = {self.n / 2} and <= {self.n}")
        self.frac_bits = check_int("frac_bits", frac_bits, 0, 40)
        self.shamir = Shamir(self.threshold - 1, self.n, SHARE_FIELD)  # degree t-1: t shares reconstruct
        self.identities = {i: Identity.generate(f"site-{i:03d}") for i in range(1, self.n + 1)}

    @property
    def max_dropouts(self) -> int:
        return self.n - self.threshold

    # ---------------------------------------------------------------------------------------- phases
    def _key_agreement(self, traffic: Traffic) -> dict:
        pair = {}
        for i in range(1, self.n + 1):
            for j in range(i + 1, self.n + 1):
                key_i, key_j, msgs = handshake(self.identities[i], self.identities[j])
                assert key_i == key_j  # an honest handshake agrees (a failed one raises HandshakeError)
                traffic.relay("key_agreement", len(msgs["hello"].to_bytes()) + len(msgs["reply"].to_bytes()))
                pair[i, j] = {"mask": _derive(key_i, b"mask seed"),
                              "enc": _derive(key_i, b"share encryption")}
        return pair

    def _share_keys(self, pair: dict, traffic: Traffic) -> tuple[dict, dict]:
        """Each site deals shares of its self seed and of the pair seeds it is the lower index of; the
        shares travel encrypted. Returns the self seeds (kept by their sites) and held[k][(kind, a, b)]."""
        self_seed = {i: os.urandom(SEED_BYTES) for i in range(1, self.n + 1)}
        held = {k: {} for k in range(1, self.n + 1)}
        for i in range(1, self.n + 1):
            secrets_i = {("b", i, i): self_seed[i]}
            secrets_i.update({("s", i, j): pair[i, j]["mask"] for j in range(i + 1, self.n + 1)})
            sharings = {name: self.shamir.share(int.from_bytes(s, "big")) for name, s in secrets_i.items()}
            for k in range(1, self.n + 1):
                plain = {name: sh.shares[k - 1] for name, sh in sharings.items()}
                if k == i:
                    held[k].update(plain)
                    continue
                key = pair[min(i, k), max(i, k)]["enc"]
                blob = b"".join(v.to_bytes(_SHARE_BYTES, "big") for v in plain.values())
                nonce = os.urandom(12)
                sealed = ChaCha20Poly1305(key).encrypt(nonce, blob, f"{i}->{k}".encode())
                traffic.relay("share_keys", len(nonce) + len(sealed))
                opened = ChaCha20Poly1305(key).decrypt(nonce, sealed, f"{i}->{k}".encode())  # at site k
                held[k].update({name: int.from_bytes(opened[m * _SHARE_BYTES:(m + 1) * _SHARE_BYTES], "big")
                                for m, name in enumerate(plain)})
        return self_seed, held

    def _masked_input(self, i: int, x: np.ndarray, self_seed: bytes, pair: dict, round_no: int) -> np.ndarray:
        y = x + prg(self_seed, len(x), round_no)
        for j in range(1, self.n + 1):
            if j != i:
                mask = prg(pair[min(i, j), max(i, j)]["mask"], len(x), round_no)
                y = y + mask if _sign(i, j) > 0 else y - mask  # uint64: wraps mod 2^64
        return y

    @staticmethod
    def _unmask_response(held: dict, survivors: set, dropped: set) -> dict:
        """One site's reply to the server's unmasking request; refuses to reveal both kinds for a site."""
        if survivors & dropped:
            raise AggregationAborted(f"inconsistent request: sites {sorted(survivors & dropped)} listed both "
                                     "as having sent an update and as dropped")
        out = {("b", i, i): held[("b", i, i)] for i in survivors}
        pairs = {("s", min(d, j), max(d, j)) for d in dropped for j in survivors}
        out.update({name: held[name] for name in pairs})
        return out

    @staticmethod
    def _survivor_message(survivors: set, round_no: int) -> bytes:
        """What a site signs in the consistency check: the round and the sorted survivor set."""
        return (f"ppal-lab secagg consistency|round {round_no}|".encode()
                + b",".join(str(i).encode() for i in sorted(survivors)))

    def _consistency_check(self, shown: dict, round_no: int, traffic: Traffic) -> tuple[dict, list]:
        """Every site in ``shown`` signs the survivor set it was shown; the server forwards all
        signatures; a site goes on only if ``threshold`` distinct sites signed *its* set. Returns the
        signatures and the sites that refuse."""
        signatures = {k: self.identities[k].sign(self._survivor_message(s, round_no)) for k, s in shown.items()}
        for k in shown:  # the site's signature up, everyone's signatures down
            traffic.relay("unmasking", 64 + 64 * len(signatures), hops=1)
        refuse = []
        for k, s in shown.items():
            message, valid = self._survivor_message(s, round_no), 0
            for v, sig in signatures.items():
                try:
                    _verify(self.identities[v].public, sig, message, f"site {v}")
                    valid += 1
                except HandshakeError:
                    pass
            if valid < self.threshold:
                refuse.append(k)
        return signatures, refuse

    # ------------------------------------------------------------------------------------------- run
    def run(self, updates, drop_before_masking=(), drop_before_unmasking=(), round_no: int = 0,
            announce: dict | None = None) -> dict:
        """One aggregation round over ``updates`` (one 1-d array per site, equal lengths).

        ``drop_before_masking``: sites that vanish after sharing their keys, before sending ``y_i`` (their
        updates are not in the sum); ``drop_before_unmasking``: sites that sent ``y_i`` and then vanish.
        Returns the decoded ``sum``, the exact ``ring_sum`` (uint64), ``included`` (U2), the server's
        ``view`` (what it received: the masked updates and the unmasking shares), ``traffic`` and
        ``seconds`` per phase. Raises :class:`AggregationAborted` when fewer than ``threshold`` sites remain.

        ``announce`` (a lying server, for tests): ``{site: survivor set}`` shown to those sites instead
        of U2 before unmasking; each answers for the set it was shown, if the consistency check passes
        (``consistency`` in the result: the sets shown and the sites that refused).
        """
        if len(updates) != self.n:
            raise ParameterError("updates", f"{len(updates)} arrays", f"one per site ({self.n})")
        encoded = {i: encode(x, self.frac_bits) for i, x in enumerate(updates, start=1)}
        if len({len(v) for v in encoded.values()}) != 1:
            raise ParameterError("updates", sorted({len(v) for v in encoded.values()}),
                                 "arrays of one length")
        gone2, gone3 = (self._sites(n, d) for n, d in (("drop_before_masking", drop_before_masking),
                                                         ("drop_before_unmasking", drop_before_unmasking)))
        traffic, view = Traffic(), {"masked": {}, "unmask": {}}
        clock = time.perf_counter()

        def lap(phase):
            nonlocal clock
            now = time.perf_counter()
            traffic.seconds[phase] += now - clock
            clock = now

        pair = self._key_agreement(traffic)
        lap("key_agreement")
        self_seed, held = self._share_keys(pair, traffic)
        lap("share_keys")
        U2 = set(range(1, self.n + 1)) - gone2
        self._require(len(U2), "sending masked updates")
        for i in sorted(U2):
            view["masked"][i] = self._masked_input(i, encoded[i], self_seed[i], pair, round_no)
            traffic.relay("masked_input", view["masked"][i].nbytes, hops=1)
        lap("masked_input")
        U3 = U2 - gone3
        self._require(len(U3), "unmasking")
        everyone = set(range(1, self.n + 1))
        shown = {k: set((announce or {}).get(k, U2)) for k in sorted(U3)}
        _, refused = self._consistency_check(shown, round_no, traffic)
        willing = [k for k in sorted(U3) if k not in refused]
        # the server needs `threshold` replies for the true set U2; a site shown another set answers for it
        replies = [k for k in willing if shown[k] == U2]
        self._require(len(replies), "unmasking (after the consistency check)")
        for k in willing:
            view["unmask"][k] = self._unmask_response(held[k], shown[k], everyone - shown[k])
            traffic.relay("unmasking", _SHARE_BYTES * len(view["unmask"][k]), hops=1)
            if len([r for r in view["unmask"] if shown[r] == U2]) >= self.threshold and announce is None:
                break  # honest server: the first `threshold` replies suffice
        dropped = everyone - U2
        responders = [k for k in sorted(view["unmask"]) if shown[k] == U2][:self.threshold]
        weights = self.shamir.lagrange_at_zero(responders)

        def rebuild(name) -> bytes:
            value = sum(view["unmask"][k][name] * w for k, w in zip(responders, weights)) % SHARE_FIELD
            return value.to_bytes(SEED_BYTES, "big")

        total = np.zeros_like(encoded[1])
        for i in sorted(U2):
            total = total + view["masked"][i] - prg(rebuild(("b", i, i)), len(total), round_no)
        for d in sorted(dropped):
            for j in sorted(U2):  # y_j carries sign(j, d) * PRG(s_jd); d's opposite mask never came
                mask = prg(rebuild(("s", min(d, j), max(d, j))), len(total), round_no)
                total = total - mask if _sign(j, d) > 0 else total + mask
        lap("unmasking")
        return {"sum": decode(total, self.frac_bits), "ring_sum": total, "included": sorted(U2),
                "dropped": sorted(dropped), "late_dropped": sorted(gone3 & U2), "view": view,
                "consistency": {"shown": {k: sorted(v) for k, v in shown.items()}, "refused": refused},
                "traffic": dict(traffic.bytes), "seconds": dict(traffic.seconds)}

    def _sites(self, name: str, sites) -> set:
        sites = set(sites)
        if not all(isinstance(s, (int, np.integer)) and 1 <= s <= self.n for s in sites):
            raise ParameterError(name, sorted(sites, key=str), f"site numbers in [1, {self.n}]")
        return {int(s) for s in sites}

    def _require(self, remaining: int, step: str) -> None:
        if remaining < self.threshold:
            raise AggregationAborted(f"only {remaining} sites left before {step}; the threshold is "
                                     f"{self.threshold}: round aborted, no seed reconstructed")


def dropout_trial(n_sites: int, dropout_rate: float, dim: int = 100, threshold: int | None = None,
                  seed: int = 0) -> dict:
    """One round with random updates (normal, sd 1) where each site drops before masking with
    probability ``dropout_rate`` (all draws from ``seed``; the cryptographic keys from the OS).

    Returns ``completed``, the number dropped, the maximum error of the decoded sum against the float
    sum of the included updates, traffic and time per phase (``None`` fields when aborted).
    """
    check_real("dropout_rate", dropout_rate, 0, 1, high_open=True)
    dim = check_int("dim", dim, 1)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    agg = SecureAggregation(n_sites, threshold)
    updates = list(rng.normal(size=(agg.n, dim)))
    gone = {i for i in range(1, agg.n + 1) if rng.random() < dropout_rate}
    base = {"n_sites": agg.n, "threshold": agg.threshold, "dropout_rate": dropout_rate,
            "n_dropped": len(gone)}
    try:
        out = agg.run(updates, drop_before_masking=gone)
    except AggregationAborted:
        return {**base, "completed": False, "max_abs_error": None, "traffic": None, "seconds": None}
    plain = np.sum([updates[i - 1] for i in out["included"]], axis=0)
    return {**base, "completed": True, "max_abs_error": float(np.abs(out["sum"] - plain).max()),
            "traffic": out["traffic"], "seconds": out["seconds"]}
