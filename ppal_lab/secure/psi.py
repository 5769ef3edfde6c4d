"""Private set intersection (PSI) by Diffie-Hellman over ristretto255, for schema and record alignment.

The problem
-----------
Before a consortium can learn together it must agree on *which fields* mean the same thing (schema
alignment) and, in a vertical consortium where the OEM, the fleet operator, the dismantler and the
testing facility hold different features of the same components, on *which components* they all hold
(record alignment). Neither list should be shown to the others in full: field names reveal what a site
measures, component ids reveal its customers.

Why the seed's "private set intersection" is not private
--------------------------------------------------------
Seed 000 hashes each field name without a salt and intersects the hashes. A hash of a guessable string
is no secret: anyone can hash a dictionary of plausible names and look the hashes up
(:func:`dictionary_attack`, :func:`recovery_rate`). Its data types also travel in the clear next to the
hashes. A secret salt shared by the consortium stops outsiders, not the members themselves.

Diffie-Hellman PSI (Meadows 1986; Huberman, Franklin and Hogg 1999)
-------------------------------------------------------------------
Let ``H`` hash a string to a point of the prime-order group ristretto255 (libsodium's
``crypto_core_ristretto255_from_hash``, through the ``rbcl`` bindings, which bundle libsodium). The
client holds the set X and a secret scalar ``a``; the server holds Y and a secret scalar ``b``::

    client -> server   { H(x)^a : x in X }                 (in the client's order)
    server -> client   { H(x)^(ab) : x in X }              (same order, or sorted: see ``reveal``)
                       { H(y)^b : y in Y }                 (sorted)
    client             raises each H(y)^b to a and matches: H(x)^(ab) = H(y)^(ab)  iff  x = y

Exponentiation by a secret scalar is a bijection of the group that commutes with the other party's,
so equal items meet; under the decisional Diffie-Hellman assumption (in the random-oracle model for
``H``) the masked points look random to whoever lacks the scalar.

Who learns what (semi-honest parties; tested by inspecting each party's received messages):

=================  =============================================  ======================================
``reveal``         client learns                                  server learns
=================  =============================================  ======================================
``"intersection"`` X ∩ Y (the reply keeps the client's order, so   \\|X\\| (one point per client item)
                   it can map matches back to its items), \\|Y\\|
``"size"``         \\|X ∩ Y\\| only (the doubly masked points come   \\|X\\|
                   back sorted, so a match cannot be traced to
                   an item), \\|Y\\|
=================  =============================================  ======================================

A malicious server could answer with a different set than it holds; that is outside this model.
Several parties (:func:`align_schemas`, :func:`align_records`) run two-party PSI between a *leader* and
each other party: the leader learns every pairwise intersection with it, the others learn the size of
the leader's set, and all learn the final common set (a vertical run needs it to line up its rows).
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real

__all__ = ["REVEALS", "canonical_field_name", "hash_to_group", "MessageLog", "psi", "align_schemas",
           "record_ids", "align_records", "seed_hash_field", "keyed_hash_field", "VOCABULARY", "UNITS",
           "plausible_field_names", "dictionary_attack", "recovery_rate"]

REVEALS = ("intersection", "size")


def _rbcl():
    import rbcl  # libsodium bundled; imported on first use so that the package imports without it

    return rbcl


def canonical_field_name(name: str) -> str:
    """Lower case, trimmed, runs of spaces, dots and hyphens as one underscore ("Oil-Debris ppm" ->
    "oil_debris_ppm"): the spelling agreed before alignment, so that PSI matches equal meanings."""
    if not isinstance(name, str) or not name.strip():
        raise ParameterError("field name", name, "a non-empty str")
    return re.sub(r"[\s.\-_]+", "_", name.strip().lower())


def hash_to_group(item: str, domain: bytes = b"") -> bytes:
    """``item`` as a ristretto255 point (32 bytes): SHA-512 of the domain-separated UTF-8 string, mapped
    by libsodium's ``crypto_core_ristretto255_from_hash`` (uniform, nobody knows its discrete log)."""
    digest = hashlib.sha512(b"ppal-lab psi|" + domain + b"|" + item.encode()).digest()
    return _rbcl().crypto_core_ristretto255_from_hash(digest)


def _mask(points: Iterable[bytes], scalar: bytes) -> list[bytes]:
    mult = _rbcl().crypto_scalarmult_ristretto255
    return [mult(scalar, p) for p in points]


@dataclass
class MessageLog:
    """Every message of a run: ``(sender, receiver, name, payload)`` with payload a list of 32-byte
    points. :meth:`received_by` is what a party sees; :attr:`bytes_sent` the traffic."""

    messages: list = field(default_factory=list)

    def send(self, sender: str, receiver: str, name: str, payload: list[bytes]) -> list[bytes]:
        self.messages.append((sender, receiver, name, list(payload)))
        return list(payload)

    def received_by(self, party: str, sender: str | None = None) -> dict[str, list[bytes]]:
        """Message name -> payload of what ``party`` received (from ``sender`` only, when given: a
        leader that ran PSI with several parties received messages of the same name from each)."""
        return {name: payload for s, receiver, name, payload in self.messages
                if receiver == party and sender in (None, s)}

    @property
    def bytes_sent(self) -> int:
        return sum(len(p) for *_, payload in self.messages for p in payload)


def _as_set(name: str, items) -> list[str]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ParameterError(name, type(items).__name__, "an iterable of str")
    items = list(items)
    if not all(isinstance(x, str) for x in items):
        raise ParameterError(name, "non-str items", "an iterable of str")
    return sorted(set(items))


def psi(client_items: Iterable[str], server_items: Iterable[str], reveal: str = "intersection",
        domain: bytes = b"", transcript: MessageLog | None = None, client: str = "client",
        server: str = "server") -> dict:
    """Run DH-PSI between a client and a server (both simulated here; every message goes through the
    :class:`MessageLog`). Duplicates are dropped (sets).

    Returns ``intersection`` (sorted list; ``None`` when ``reveal="size"``), ``size``, the set sizes each
    side learns (``client_learns_server_size``, ``server_learns_client_size``), ``bytes`` sent and the
    ``transcript``. The scalars come from libsodium's CSPRNG and are never returned.
    """
    X, Y = _as_set("client_items", client_items), _as_set("server_items", server_items)
    check_choice("reveal", reveal, REVEALS)
    t = MessageLog() if transcript is None else transcript
    rb = _rbcl()
    a, b = rb.crypto_core_ristretto255_scalar_random(), rb.crypto_core_ristretto255_scalar_random()

    # client: mask its items, keep the order (its own secret bookkeeping)
    request = t.send(client, server, "H(x)^a", _mask((hash_to_group(x, domain) for x in X), a))
    # server: mask the request again and its own items once
    doubly = _mask(request, b)
    if reveal == "size":
        doubly = sorted(doubly)  # order now depends on the set of values only, not on which x
    back = t.send(server, client, "H(x)^ab", doubly)
    server_masked = t.send(server, client, "H(y)^b", sorted(_mask((hash_to_group(y, domain) for y in Y), b)))
    # client: finish the server's items and match
    theirs = set(_mask(server_masked, a))
    hits = [p in theirs for p in back]
    intersection = [x for x, hit in zip(X, hits) if hit] if reveal == "intersection" else None
    return {"intersection": intersection, "size": int(sum(hits)),
            "client_learns_server_size": len(server_masked), "server_learns_client_size": len(request),
            "bytes": t.bytes_sent, "transcript": t}


# ------------------------------------------------------------------------------------ several parties

def _check_leader(parties: Sequence[str], leader: str) -> None:
    if len(parties) < 2:
        raise ParameterError("parties", list(parties), "at least two parties")
    check_choice("leader", leader, parties)


def align_schemas(schemas: Mapping[str, Iterable[str]], leader: str) -> dict:
    """The field names that every party holds, by DH-PSI between ``leader`` and each other party on
    canonical names (:func:`canonical_field_name`).

    Returns ``common`` (sorted canonical names held by all), ``pairwise`` (what the leader learned from
    each party: the pairwise intersections), ``bytes`` and the shared ``transcript``.
    """
    if not isinstance(schemas, Mapping):
        raise ParameterError("schemas", type(schemas).__name__, "a mapping party -> field names")
    _check_leader(list(schemas), leader)
    canon = {p: [canonical_field_name(f) for f in _as_set(f"schemas[{p!r}]", names)]
             for p, names in schemas.items()}
    t, pairwise = MessageLog(), {}
    for party in schemas:
        if party != leader:
            run = psi(canon[leader], canon[party], "intersection", b"schema", t, leader, party)
            pairwise[party] = run["intersection"]
    common = set(canon[leader]).intersection(*map(set, pairwise.values()))
    return {"common": sorted(common), "pairwise": pairwise, "bytes": t.bytes_sent, "transcript": t}


def record_ids(n_items: int, parties: Sequence[str], coverage: float = 0.8,
               seed: int = 0) -> dict[str, list[str]]:
    """Component serial numbers ("TX-000042" for item 42) that each party holds: each party saw each of
    ``n_items`` components independently with probability ``coverage`` (a vertical consortium whose
    members did not all handle every component)."""
    n_items = check_int("n_items", n_items, 1)
    check_real("coverage", coverage, 0, 1, low_open=True)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    return {p: [f"TX-{i:06d}" for i in np.flatnonzero(rng.random(n_items) < coverage)] for p in parties}


def align_records(ids: Mapping[str, Sequence[str]], leader: str,
                  blocks: Mapping[str, pd.DataFrame] | None = None) -> dict:
    """The components that every party holds, by DH-PSI between ``leader`` and each other party.

    ``ids[p]`` lists the serial numbers of party ``p``'s rows. With ``blocks`` (party -> its feature
    columns, e.g. from :func:`ppal_lab.data.vertical_partition`, one row per entry of ``ids[p]`` in the
    same order), each party's block is returned restricted to the common components, sorted by serial
    number, so that row ``k`` of every block is the same component.
    """
    if not isinstance(ids, Mapping):
        raise ParameterError("ids", type(ids).__name__, "a mapping party -> serial numbers")
    _check_leader(list(ids), leader)
    t, pairwise = MessageLog(), {}
    for party in ids:
        if party != leader:
            run = psi(ids[leader], ids[party], "intersection", b"record", t, leader, party)
            pairwise[party] = run["intersection"]
    common = sorted(set(ids[leader]).intersection(*map(set, pairwise.values())))
    out = {"common": common, "pairwise_sizes": {p: len(v) for p, v in pairwise.items()},
           "bytes": t.bytes_sent, "transcript": t}
    if blocks is not None:
        aligned = {}
        for party, frame in blocks.items():
            if party not in ids or len(ids[party]) != len(frame):
                raise ParameterError(f"blocks[{party!r}]", f"{len(frame)} rows",
                                     f"one row per serial number of {party!r}")
            position = {s: k for k, s in enumerate(ids[party])}
            aligned[party] = frame.iloc[[position[s] for s in common]].set_axis(common, axis=0)
        out["blocks"] = aligned
    return out


# ------------------------------------------------------------------- the seed's unsalted field hashes

def seed_hash_field(name: str) -> str:
    """The seed's ``_hash_field`` as far as it can be read: a plain SHA-256 of the name, no salt (the
    seed does not show its hash; any unsalted deterministic hash falls to the same attack)."""
    return hashlib.sha256(name.encode()).hexdigest()


def keyed_hash_field(name: str, key: bytes) -> str:
    """HMAC-SHA256 of the name under a secret ``key``: what a secret salt changes (outsiders without
    the key can no longer test guesses; every key holder still can)."""
    return hmac.new(key, name.encode(), hashlib.sha256).hexdigest()


VOCABULARY = (
    # components and materials
    "gear", "shaft", "bearing", "housing", "seal", "clutch", "oil", "coolant", "material", "alloy", "steel",
    "casting", "part", "component", "unit", "serial", "batch", "lot",
    # design and production
    "design", "variant", "model", "year", "version", "tolerance", "class", "grade", "type", "spec",
    "supplier", "plant", "line", "date", "age",
    # use
    "mileage", "hours", "duty", "cycle", "load", "torque", "speed", "rpm", "maintenance", "service",
    "interval", "count", "repair", "operator", "fleet", "usage", "starts",
    # condition and inspection
    "visual", "wear", "corrosion", "damage", "crack", "leak", "score", "flag", "index", "level", "grade",
    "status", "condition", "inspection",
    # test bench
    "vibration", "rms", "peak", "noise", "backlash", "debris", "particle", "temp", "temperature", "rise",
    "pressure", "efficiency", "power", "current", "voltage", "test", "result",
)
"""Words a data engineer in remanufacturing might put in a field name. Written by the authors of this
compendium, who had seen the consortium's field names: a dictionary made with domain knowledge, so the
recovery rate it gives is what an informed insider achieves, not a lower bound for a naive outsider."""

UNITS = ("", "c", "k", "kkm", "km", "mi", "h", "s", "ms", "mm", "mm_s", "um", "nm", "arcmin", "deg", "rad",
         "ppm", "pct", "bar", "kpa", "v", "a", "w", "kw", "hz", "g", "kg", "mpa")
"""Unit suffixes appended as ``_unit`` ("" means none)."""


def plausible_field_names(max_words: int = 2, vocabulary: Sequence[str] = VOCABULARY,
                          units: Sequence[str] = UNITS) -> list[str]:
    """Every ``w1[_w2...]`` of up to ``max_words`` distinct vocabulary words, each with every unit
    suffix: the attacker's dictionary (≈ 175 000 names for two words)."""
    max_words = check_int("max_words", max_words, 1, 3)
    words = list(dict.fromkeys(vocabulary))
    stems = list(words)
    level = list(words)
    for _ in range(max_words - 1):
        level = [f"{s}_{w}" for s in level for w in words if w not in s.split("_")]
        stems += level
    return [s if not u else f"{s}_{u}" for s in stems for u in units]


def dictionary_attack(hashes: Iterable[str], dictionary: Iterable[str],
                      hash_fn: Callable[[str], str] = seed_hash_field) -> dict[str, str]:
    """Hash every dictionary entry with ``hash_fn`` and look the observed ``hashes`` up: returns
    ``{hash: recovered name}`` for the hashes found."""
    wanted = set(hashes)
    found = {}
    for guess in dictionary:
        h = hash_fn(guess)
        if h in wanted:
            found[h] = guess
    return found


def recovery_rate(field_names: Iterable[str], dictionary: Sequence[str],
                  hash_fn: Callable[[str], str] = seed_hash_field) -> dict:
    """Publish ``field_names`` the seed's way (``hash_fn``) and attack them with ``dictionary``.

    Returns the recovered names, the count, the rate, the dictionary size (= hashes the attacker
    computed) and the names that stayed hidden.
    """
    names = _as_set("field_names", field_names)
    published = {hash_fn(n): n for n in names}
    found = dictionary_attack(published, dictionary, hash_fn)
    recovered = sorted(found.values())
    return {"n_fields": len(names), "recovered": recovered, "n_recovered": len(recovered),
            "rate": len(recovered) / len(names), "dictionary_size": len(dictionary),
            "hidden": sorted(set(names) - set(recovered))}
