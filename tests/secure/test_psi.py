"""DH-PSI over ristretto255 (ppal_lab.secure.psi): correctness against a plain intersection, what each
party learns (read from the messages it receives), schema and record alignment of the vertical
consortium, and the dictionary attack on the seed's unsalted field-name hashes."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from ppal_lab.secure import psi as P
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.data import make_remanufacturing, vertical_partition
from ppal_lab.secure.psi import (MessageLog, align_records, align_schemas, canonical_field_name,
                                 dictionary_attack, hash_to_group, keyed_hash_field, plausible_field_names,
                                 psi, record_ids, recovery_rate, seed_hash_field)

pytest.importorskip("rbcl")


def _random_sets(seed, n_x=60, n_y=80, universe=150):
    rng = np.random.default_rng(seed)
    X = {f"item-{i}" for i in rng.choice(universe, n_x, replace=False)}
    Y = {f"item-{i}" for i in rng.choice(universe, n_y, replace=False)}
    return X, Y


@pytest.mark.parametrize("seed", range(4))
def test_psi_equals_the_plain_intersection(seed):
    X, Y = _random_sets(seed)
    out = psi(X, Y)
    assert out["intersection"] == sorted(X & Y) and out["size"] == len(X & Y)
    assert psi(X, Y, reveal="size")["size"] == len(X & Y)


def test_edge_cases_empty_disjoint_identical():
    assert psi([], ["a"])["intersection"] == []
    assert psi(["a", "b"], ["c"])["size"] == 0
    assert psi(["a", "b", "a"], ["b", "a"])["intersection"] == ["a", "b"]


def test_the_server_receives_only_fresh_random_looking_points_one_per_client_item():
    X, Y = _random_sets(7)
    t1, t2 = MessageLog(), MessageLog()
    psi(X, Y, transcript=t1)
    psi(X, Y, transcript=t2)
    seen1, seen2 = t1.received_by("server"), t2.received_by("server")
    assert list(seen1) == ["H(x)^a"] and len(seen1["H(x)^a"]) == len(X)   # it learns |X|
    unmasked = {hash_to_group(x) for x in X | Y} | {hashlib.sha256(x.encode()).digest() for x in X}
    assert not unmasked & set(seen1["H(x)^a"])                                  # no item in the clear
    assert not set(seen1["H(x)^a"]) & set(seen2["H(x)^a"])                     # fresh scalar: unlinkable runs


def test_the_client_learns_the_intersection_and_the_server_set_size():
    X, Y = _random_sets(8)
    t = MessageLog()
    out = psi(X, Y, transcript=t)
    seen = t.received_by("client")
    assert len(seen["H(y)^b"]) == len(Y) == out["client_learns_server_size"]
    assert len(seen["H(x)^ab"]) == len(X)
    assert not {hash_to_group(y) for y in Y} & set(seen["H(y)^b"])             # server items masked


def test_in_size_mode_the_reply_order_carries_no_item_identity():
    """The doubly masked points come back sorted: their order is a function of the set of values,
    so the client cannot say which of its items matched; in intersection mode the order is the client's."""
    X, Y = _random_sets(9)
    t = MessageLog()
    out = psi(X, Y, reveal="size", transcript=t)
    back = t.received_by("client")["H(x)^ab"]
    assert out["intersection"] is None and back == sorted(back)
    t2 = MessageLog()
    psi(X, Y, reveal="intersection", transcript=t2)
    back2 = t2.received_by("client")["H(x)^ab"]
    assert back2 != sorted(back2)  # 60 random points in sorted order by chance: probability 1/60!


def test_canonical_names_match_different_spellings():
    assert canonical_field_name(" Oil-Debris  ppm") == canonical_field_name("oil_debris_ppm") == "oil_debris_ppm"
    out = align_schemas({"a": ["Mileage kkm", "x"], "b": ["mileage_kkm", "y"]}, leader="a")
    assert out["common"] == ["mileage_kkm"]


def test_schema_alignment_of_the_consortium_equals_the_plain_intersection():
    data = make_remanufacturing(50, seed=0)
    keys = ["serial_number", "model_year"]  # fields every party records besides its own block
    schemas = {p: list(data.features_of(p)) + keys for p in data.parties}
    out = align_schemas(schemas, leader="testing_facility")
    plain = set.intersection(*({canonical_field_name(f) for f in s} for s in schemas.values()))
    assert out["common"] == sorted(plain) == ["model_year", "serial_number"]
    assert set(out["pairwise"]) == set(data.parties) - {"testing_facility"}
    # the leader received, from each party, that party's masked set (its size) and nothing in the clear
    for party in out["pairwise"]:
        seen = out["transcript"].received_by("testing_facility", sender=party)
        assert len(seen["H(y)^b"]) == len(set(schemas[party]))  # OEM lists model_year twice
        assert not {P.hash_to_group(f, b"schema") for f in schemas[party]} & set(seen["H(y)^b"])


def test_record_alignment_lines_up_the_vertical_blocks():
    data = make_remanufacturing(300, seed=1)
    ids = record_ids(data.n_items, data.parties, coverage=0.7, seed=3)
    blocks = {p: frame.iloc[[int(s[3:]) for s in ids[p]]] for p, frame in vertical_partition(data).items()}
    out = align_records(ids, leader="oem", blocks=blocks)
    plain = sorted(set.intersection(*map(set, ids.values())))
    assert out["common"] == plain and 0 < len(plain) < data.n_items
    rows = [int(s[3:]) for s in plain]
    for party, block in out["blocks"].items():  # row k of every block is component plain[k]
        np.testing.assert_array_equal(block.to_numpy(), data.X.iloc[rows][data.features_of(party)].to_numpy())


def test_dictionary_attack_recovers_exactly_the_names_in_the_dictionary():
    data = make_remanufacturing(20, seed=0)
    names = list(data.feature_names) + ["zq7_secret_field"]
    dictionary = plausible_field_names(2)
    out = recovery_rate(names, dictionary)
    in_dictionary = set(names) & set(dictionary)          # membership, no hashing
    assert set(out["recovered"]) == in_dictionary and "zq7_secret_field" in out["hidden"]
    assert out["n_recovered"] == len(in_dictionary) and out["rate"] == len(in_dictionary) / len(names)


def test_a_secret_key_defeats_the_outsiders_dictionary_but_not_a_key_holder():
    names = ["mileage_kkm", "duty_cycle", "oil_debris_ppm"]
    key = os.urandom(32)
    published = [keyed_hash_field(n, key) for n in names]
    dictionary = plausible_field_names(2)
    assert dictionary_attack(published, dictionary) == {}                       # outsider: seed's hash
    insider = dictionary_attack(published, dictionary, lambda s: keyed_hash_field(s, key))
    assert sorted(insider.values()) == sorted(names)
    assert seed_hash_field("a") == hashlib.sha256(b"a").hexdigest()


def test_bad_input_is_refused():
    with pytest.raises(ParameterError):
        psi("abc", ["a"])
    with pytest.raises(ParameterError):
        psi(["a"], ["b"], reveal="everything")
    with pytest.raises(ParameterError):
        align_schemas({"a": ["x"]}, leader="a")
    with pytest.raises(ParameterError):
        record_ids(10, ["a", "b"], coverage=0)
    with pytest.raises(ParameterError):
        canonical_field_name("  ")
