"""Hybrid X25519 + ML-KEM-768 key exchange (ppal_lab.secure.key_exchange): agreement, transcript binding,
authentication against tampering and a man in the middle, and the seed's flow that cannot agree."""
from __future__ import annotations

import dataclasses
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.secure.key_exchange import (KEY_BYTES, HandshakeError, Identity, Initiator, derive_session_key,
                                          handshake, handshake_sizes, respond, seed_flow_keys,
                                          seed_pqcrypto_api, time_handshakes)


@pytest.fixture(scope="module")
def alice():
    return Identity.generate("oem")


@pytest.fixture(scope="module")
def bob():
    return Identity.generate("dismantler")


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def test_both_sides_agree_and_each_handshake_gives_a_fresh_key(alice, bob):
    key_a, key_b, _ = handshake(alice, bob)
    key_a2, key_b2, _ = handshake(alice, bob)
    assert key_a == key_b and len(key_a) == KEY_BYTES
    assert key_a2 == key_b2 and key_a2 != key_a


def test_the_key_depends_on_both_secrets_and_every_transcript_byte():
    ss_pq, ss_ec, T = os.urandom(32), os.urandom(32), os.urandom(32)
    key = derive_session_key(ss_pq, ss_ec, T)[0]
    # breaking one component (the attacker knows it) still leaves the key unknown: each one changes it
    assert derive_session_key(_flip(ss_pq), ss_ec, T)[0] != key
    assert derive_session_key(ss_pq, _flip(ss_ec), T)[0] != key
    assert derive_session_key(ss_pq, ss_ec, _flip(T, 31))[0] != key


def test_a_changed_ciphertext_aborts(alice, bob):
    a = Initiator(alice)
    reply, _ = respond(bob, a.hello, alice.public)
    bad = dataclasses.replace(reply, ciphertext=_flip(reply.ciphertext, 500))
    with pytest.raises(HandshakeError, match="signature"):
        a.finish(bad, bob.public)
    # without the signature, ML-KEM alone would not object: implicit rejection returns another secret
    sk = mlkem.MLKEM768PrivateKey.generate()
    secret, ct = sk.public_key().encapsulate()
    assert sk.decapsulate(_flip(ct, 500)) != secret


@pytest.mark.parametrize("field", ["x25519_public", "mlkem_public"])
def test_a_changed_public_key_in_the_hello_aborts(alice, bob, field):
    a = Initiator(alice)
    bad = dataclasses.replace(a.hello, **{field: _flip(getattr(a.hello, field), 5)})
    with pytest.raises(HandshakeError, match="signature"):
        respond(bob, bad, alice.public)


def test_a_changed_public_key_in_the_reply_aborts(alice, bob):
    a = Initiator(alice)
    reply, _ = respond(bob, a.hello, alice.public)
    bad = dataclasses.replace(reply, x25519_public=x25519.X25519PrivateKey.generate().public_key().public_bytes_raw())
    with pytest.raises(HandshakeError, match="signature"):
        a.finish(bad, bob.public)


def test_a_wrong_confirmation_tag_aborts(alice, bob):
    a = Initiator(alice)
    reply, _ = respond(bob, a.hello, alice.public)
    with pytest.raises(HandshakeError, match="confirmation"):
        a.finish(dataclasses.replace(reply, confirm=_flip(reply.confirm)), bob.public)


def test_a_man_in_the_middle_is_detected_on_both_legs(alice, bob):
    mallory = Identity.generate("oem")  # claims Alice's name, but has her own signing key
    # leg 1: Mallory replaces Alice's hello with her own (her keys), signed by her
    m_init = Initiator(mallory)
    with pytest.raises(HandshakeError, match="pinned"):
        respond(bob, m_init.hello, alice.public)
    # leg 2: Mallory answers Alice's hello herself, pretending to be Bob
    a = Initiator(alice)
    m_reply, _ = respond(Identity(bob.name, mallory.signing_key), a.hello, alice.public)
    with pytest.raises(HandshakeError, match="pinned"):
        a.finish(m_reply, bob.public)


def test_without_authentication_the_man_in_the_middle_would_share_a_key_with_each_side(alice, bob):
    """Control for the test above: if Bob pinned whatever key came with the hello (no authentication),
    Mallory's substituted hello is accepted and Mallory, not Alice, holds Bob's key."""
    mallory = Identity.generate("oem")
    m_init = Initiator(mallory)
    reply, key_b = respond(bob, m_init.hello, mallory.public)
    assert m_init.finish(reply, bob.public) == key_b


def test_sizes_match_the_standards(alice, bob):
    s = handshake_sizes()
    assert (s["x25519_public"], s["mlkem768_encapsulation_key"], s["mlkem768_ciphertext"],
            s["ed25519_signature"]) == (32, 1184, 1088, 64)
    assert s["total_bytes"] == s["hello_bytes"] + s["reply_bytes"] > 32 + 1184 + 1088 + 2 * 64
    assert s["classical_equivalent_bytes"] == s["total_bytes"] - 1184 - 1088


def test_time_handshakes_reports_positive_times():
    t = time_handshakes(3)
    assert t["n"] == 3 and 0 < t["min_ms"] <= t["mean_ms"]
    with pytest.raises(ParameterError):
        time_handshakes(0)


def test_the_seeds_flow_gives_two_different_keys_while_the_real_kem_agrees():
    key_a, key_b = seed_flow_keys()
    assert key_a != key_b
    # the same ML-KEM used correctly (encapsulate to the peer, the peer decapsulates) agrees
    sk = mlkem.MLKEM768PrivateKey.generate()
    secret, ct = sk.public_key().encapsulate()
    assert sk.decapsulate(ct) == secret


def test_the_seeds_pqcrypto_call_does_not_exist():
    pytest.importorskip("pqcrypto.kem")
    api = seed_pqcrypto_api()
    assert api["installed"] and not api["has_kyber1024"]
    assert "ml_kem_1024" in api["ml_kem_modules"]


def test_bad_input_is_refused():
    with pytest.raises(ParameterError):
        Identity.generate("")
    with pytest.raises(ParameterError):
        derive_session_key(b"x", os.urandom(32), os.urandom(32))
