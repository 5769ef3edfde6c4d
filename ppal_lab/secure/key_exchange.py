"""Hybrid post-quantum key exchange: X25519 + ML-KEM-768, bound to the transcript, signed with Ed25519.

Why a hybrid
------------
A key agreed today with elliptic-curve Diffie-Hellman (X25519) can be recorded now and decrypted later
by a quantum computer ("harvest now, decrypt later"). ML-KEM (FIPS 203, formerly Kyber) is believed to
resist quantum attacks but is young. A *hybrid* exchange runs both and derives the session key from both
shared secrets, so an attacker must break **both** to learn it. This is the design of the IETF hybrid
key exchange for TLS 1.3 (draft-ietf-tls-hybrid-design; the code point ``X25519MLKEM768`` concatenates
the ML-KEM secret and the X25519 secret) and feeds the concatenation, together with a hash of the
whole transcript, into a key-derivation function.

The protocol here (one round trip, initiator ``A``, responder ``B``)::

    A -> B   hello  = (name_A, X25519 public x_A, ML-KEM-768 encapsulation key ek_A, sig_A(hello))
    B        checks sig_A against A's *pinned* identity key; ct, ss_pq = Encaps(ek_A);
             ss_ec = X25519(y_B, x_A); T = SHA-256(hello || name_B || y_B public || ct)
             K = HKDF-SHA256(ikm = ss_pq || ss_ec, salt = T, info = LABEL || T)
    B -> A   reply  = (name_B, y_B public, ct, sig_B(T), confirm = HMAC(K_confirm, "responder"))
    A        checks sig_B, decapsulates ss_pq, derives the same K and checks ``confirm``.

* **Agreement.** Both sides compute the same ``K`` (:func:`handshake`).
* **Transcript binding.** ``K`` depends on both public keys, the ciphertext and both names: a changed
  byte anywhere gives a different key (:func:`derive_session_key`).
* **Authentication.** Each side signs what it sent (A its hello, B the transcript hash) with its
  long-term Ed25519 identity key, and each checks the other's signature against an identity key it
  knows in advance (a directory, a certificate). A man in the middle who swaps in his own keys must
  sign with his own identity key and is caught; a changed ciphertext or public key breaks a signature
  and the handshake aborts with :class:`HandshakeError` *before* any key is used.
* **Key confirmation.** ``confirm`` proves that B derived the same ``K`` (ML-KEM's implicit rejection
  returns a pseudo-random secret for a wrong ciphertext instead of an error, so a tampered ciphertext
  would otherwise only show up later as garbage).

* **Forward secrecy.** The X25519 and ML-KEM keys are fresh for every handshake and then discarded, so
  stealing an identity key later does not reveal past session keys.

What it does **not** give: protection against a stolen identity key used in a *future* handshake (the
thief can impersonate its owner), key confirmation from A to B (B learns that A holds the key when A's
first encrypted message decrypts), or identity hiding (names travel in the clear).

The seed's code and why it cannot work
--------------------------------------
Seed 000 calls ``pqcrypto.kem.kyber1024.generate_keypair()``; the pqcrypto package names its modules
``ml_kem_512/768/1024`` (there is no ``kyber1024``; see :func:`seed_pqcrypto_api`). More important,
its ``establish_shared_secret`` has *each* side encapsulate to the *peer's* key and keep its own
encapsulated secret, never decapsulating the peer's ciphertext: the two sides end up with two
unrelated post-quantum secrets and hence different keys (:func:`seed_flow_keys` reproduces the flow
with the real ML-KEM and shows the keys differ). It also has no authentication (anyone in the middle
can run the exchange with each side) and HKDF binds no transcript.
"""
from __future__ import annotations

import hashlib
import hmac
import importlib
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ppal_lab.compendium.errors import ParameterError

__all__ = ["LABEL", "KEY_BYTES", "HandshakeError", "Identity", "Hello", "Reply", "Initiator", "respond",
           "transcript_hash",
           "derive_session_key", "handshake", "handshake_sizes", "time_handshakes", "seed_flow_keys",
           "seed_pqcrypto_api"]

LABEL = b"ppal-lab hybrid X25519+ML-KEM-768 v1"
"""Domain-separation label: the key derived here can never collide with one derived by another protocol."""
KEY_BYTES = 32
"""Length of the session key (256 bits)."""


class HandshakeError(Exception):
    """The handshake was aborted: a signature, the key confirmation or a message's format failed."""


def _raw_public(key) -> bytes:
    return key.public_bytes_raw()


def _framed(*fields: bytes) -> bytes:
    """Length-prefixed concatenation, so that no two different field lists give the same bytes."""
    return b"".join(len(f).to_bytes(4, "big") + f for f in fields)


@dataclass(frozen=True)
class Identity:
    """A party's long-term identity: a name and an Ed25519 signing key. Others know ``public``."""

    name: str
    signing_key: ed25519.Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> "Identity":
        if not isinstance(name, str) or not name:
            raise ParameterError("name", name, "a non-empty str")
        return cls(name, ed25519.Ed25519PrivateKey.generate())

    @property
    def public(self) -> bytes:
        """The 32-byte Ed25519 public key that the other parties pin."""
        return _raw_public(self.signing_key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message)


def _verify(public: bytes, signature: bytes, message: bytes, who: str) -> None:
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise HandshakeError(f"{who}'s signature does not verify against its pinned identity key") from None


@dataclass(frozen=True)
class Hello:
    """A -> B: name, X25519 public key (32 B), ML-KEM-768 encapsulation key (1184 B), signature (64 B)."""

    name: str
    x25519_public: bytes
    mlkem_public: bytes
    signature: bytes

    def signed_part(self) -> bytes:
        return _framed(LABEL, b"hello", self.name.encode(), self.x25519_public, self.mlkem_public)

    def to_bytes(self) -> bytes:
        return _framed(self.signed_part(), self.signature)


@dataclass(frozen=True)
class Reply:
    """B -> A: name, X25519 public key (32 B), ML-KEM ciphertext (1088 B), signature (64 B), key
    confirmation tag (32 B)."""

    name: str
    x25519_public: bytes
    ciphertext: bytes
    signature: bytes
    confirm: bytes

    def to_bytes(self) -> bytes:
        return _framed(self.name.encode(), self.x25519_public, self.ciphertext, self.signature, self.confirm)


def transcript_hash(hello: Hello, responder: str, responder_x25519: bytes, ciphertext: bytes) -> bytes:
    """SHA-256 over everything both sides sent (the hello with its signature, B's name, key and ct)."""
    framed = _framed(hello.to_bytes(), responder.encode(), responder_x25519, ciphertext)
    return hashlib.sha256(framed).digest()


def derive_session_key(ss_pq: bytes, ss_ec: bytes, transcript: bytes) -> tuple[bytes, bytes]:
    """The session key and the key-confirmation key from both secrets and the transcript hash.

    The input keying material is ``ss_pq || ss_ec`` (fixed lengths, ML-KEM first as in
    ``X25519MLKEM768``); the transcript hash is the HKDF salt and part of ``info``, so both public keys,
    the ciphertext and the names select the key.
    """
    if len(ss_pq) != 32 or len(ss_ec) != 32 or len(transcript) != 32:
        raise ParameterError("secrets", (len(ss_pq), len(ss_ec), len(transcript)), "three 32-byte strings")
    okm = HKDF(algorithm=hashes.SHA256(), length=2 * KEY_BYTES, salt=transcript,
               info=LABEL + b" session|" + transcript).derive(ss_pq + ss_ec)
    return okm[:KEY_BYTES], okm[KEY_BYTES:]


def _confirm_tag(confirm_key: bytes) -> bytes:
    return hmac.new(confirm_key, LABEL + b" responder confirms", hashlib.sha256).digest()


class Initiator:
    """Side A: makes fresh ephemeral keys and the signed :class:`Hello`, then :meth:`finish`es."""

    def __init__(self, identity: Identity):
        if not isinstance(identity, Identity):
            raise ParameterError("identity", type(identity).__name__, "an Identity")
        self.identity = identity
        self._x = x25519.X25519PrivateKey.generate()
        self._kem = mlkem.MLKEM768PrivateKey.generate()
        unsigned = Hello(identity.name, _raw_public(self._x.public_key()),
                         _raw_public(self._kem.public_key()), b"")
        self.hello = Hello(unsigned.name, unsigned.x25519_public, unsigned.mlkem_public,
                           identity.sign(unsigned.signed_part()))

    def finish(self, reply: Reply, responder_public: bytes) -> bytes:
        """Check B's signature (against B's pinned identity key ``responder_public``) and the key
        confirmation; return the session key or raise :class:`HandshakeError`."""
        T = transcript_hash(self.hello, reply.name, reply.x25519_public, reply.ciphertext)
        _verify(responder_public, reply.signature, _framed(LABEL, b"reply", T), reply.name)
        try:
            ss_pq = self._kem.decapsulate(reply.ciphertext)
            ss_ec = self._x.exchange(x25519.X25519PublicKey.from_public_bytes(reply.x25519_public))
        except ValueError as err:  # wrong lengths, a low-order point
            raise HandshakeError(f"malformed reply: {err}") from None
        key, confirm_key = derive_session_key(ss_pq, ss_ec, T)
        if not hmac.compare_digest(reply.confirm, _confirm_tag(confirm_key)):
            raise HandshakeError("key confirmation failed: the two sides derived different keys")
        return key


def respond(identity: Identity, hello: Hello, initiator_public: bytes) -> tuple[Reply, bytes]:
    """Side B: check A's signature against A's pinned identity key, encapsulate to A's ML-KEM key, run
    X25519, derive the key; return the :class:`Reply` and the session key."""
    if not isinstance(identity, Identity):
        raise ParameterError("identity", type(identity).__name__, "an Identity")
    _verify(initiator_public, hello.signature, hello.signed_part(), hello.name)
    try:
        ss_pq, ct = mlkem.MLKEM768PublicKey.from_public_bytes(hello.mlkem_public).encapsulate()
        y = x25519.X25519PrivateKey.generate()
        ss_ec = y.exchange(x25519.X25519PublicKey.from_public_bytes(hello.x25519_public))
    except ValueError as err:
        raise HandshakeError(f"malformed hello: {err}") from None
    y_public = _raw_public(y.public_key())
    T = transcript_hash(hello, identity.name, y_public, ct)
    key, confirm_key = derive_session_key(ss_pq, ss_ec, T)
    signature = identity.sign(_framed(LABEL, b"reply", T))
    reply = Reply(identity.name, y_public, ct, signature, _confirm_tag(confirm_key))
    return reply, key


def handshake(a: Identity, b: Identity) -> tuple[bytes, bytes, dict]:
    """Run one honest handshake between ``a`` and ``b`` (each pins the other's real identity key).

    Returns A's key, B's key and the two messages (``{"hello": Hello, "reply": Reply}``).
    """
    initiator = Initiator(a)
    reply, key_b = respond(b, initiator.hello, a.public)
    key_a = initiator.finish(reply, b.public)
    return key_a, key_b, {"hello": initiator.hello, "reply": reply}


def handshake_sizes() -> dict:
    """Bytes on the wire per handshake (names of 8 characters), by message and component."""
    _, _, msgs = handshake(Identity.generate("site-001"), Identity.generate("site-002"))
    hello, reply = msgs["hello"], msgs["reply"]
    return {"hello_bytes": len(hello.to_bytes()), "reply_bytes": len(reply.to_bytes()),
            "total_bytes": len(hello.to_bytes()) + len(reply.to_bytes()),
            "x25519_public": len(hello.x25519_public), "mlkem768_encapsulation_key": len(hello.mlkem_public),
            "mlkem768_ciphertext": len(reply.ciphertext), "ed25519_signature": len(hello.signature),
            "confirm_tag": len(reply.confirm),
            # the same two messages without the ML-KEM key and ciphertext: an X25519-only handshake
            "classical_equivalent_bytes": len(hello.to_bytes()) + len(reply.to_bytes())
            - len(hello.mlkem_public) - len(reply.ciphertext)}


def time_handshakes(n: int = 50) -> dict:
    """Wall time of ``n`` complete handshakes (both sides, one process): mean and min per handshake in ms."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParameterError("n", n, "an int >= 1")
    a, b = Identity.generate("site-001"), Identity.generate("site-002")
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        handshake(a, b)
        times.append(time.perf_counter() - t0)
    return {"n": n, "mean_ms": 1e3 * sum(times) / n, "min_ms": 1e3 * min(times)}


# ------------------------------------------------------------------------------------ the seed's flow

def seed_flow_keys() -> tuple[bytes, bytes]:
    """The seed's ``establish_shared_secret`` run by both peers, with the real ML-KEM-768.

    Each side exchanges X25519 correctly but then *encapsulates to the peer's key* and keeps the secret
    it encapsulated itself (it never decapsulates what the peer sent), and derives
    ``HKDF-SHA512(classical || pq, salt=None, info='hybrid-key-derivation')``. The X25519 secrets agree;
    the two post-quantum secrets are independent, so the returned keys differ (with probability
    1 - 2^-256). Returns (key of A, key of B).
    """
    keys = {}
    x = {p: x25519.X25519PrivateKey.generate() for p in "AB"}
    kem = {p: mlkem.MLKEM768PrivateKey.generate() for p in "AB"}
    for me, peer in (("A", "B"), ("B", "A")):
        classical = x[me].exchange(x[peer].public_key())
        pq_secret, _ciphertext = kem[peer].public_key().encapsulate()  # to the peer; own secret kept
        keys[me] = HKDF(algorithm=hashes.SHA512(), length=64, salt=None,
                        info=b"hybrid-key-derivation").derive(classical + pq_secret)
    return keys["A"], keys["B"]


def seed_pqcrypto_api() -> dict:
    """What the installed ``pqcrypto`` offers against what the seed calls.

    Returns ``installed`` (bool), ``has_kyber1024`` (whether ``pqcrypto.kem.kyber1024`` imports), the
    ``ml_kem`` modules found and whether ``ml_kem_1024`` has the seed's ``generate_keypair``.
    """
    try:
        kem = importlib.import_module("pqcrypto.kem")
    except ImportError:
        return {"installed": False}
    try:
        importlib.import_module("pqcrypto.kem.kyber1024")
        has_kyber = True
    except ImportError:
        has_kyber = False
    ml_kem = sorted(n for n in dir(kem) if n.startswith("ml_kem"))
    module = importlib.import_module("pqcrypto.kem.ml_kem_1024") if "ml_kem_1024" in ml_kem else None
    return {"installed": True, "has_kyber1024": has_kyber, "ml_kem_modules": ml_kem,
            "ml_kem_1024_has_generate_keypair": bool(module and hasattr(module, "generate_keypair"))}
