"""Secure aggregation with drop-outs (ppal_lab.secure.secure_aggregation): the sum is exact, one site's
masked update looks uniform, drop-outs up to the threshold are survived and one more aborts cleanly,
the server's unmasking view never covers a site whose update it holds, and a server that shows
different survivor sets to different sites is caught by the consistency check.

The uniformity tests use a chi-square test at ALPHA = 1e-3 on 256 bins of ~100 expected counts; the
masks come from the OS, so a correct implementation fails one of the three with probability <= 0.3%.
The control shows the same test rejects an unmasked update."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.secure.secure_aggregation import (SEED_BYTES, AggregationAborted, SecureAggregation, Traffic,
                                                 decode, dropout_trial, encode, folded_seed32, prg)

ALPHA = 1e-3


@pytest.fixture(scope="module")
def agg7():
    return SecureAggregation(7, threshold=4)


def _updates(n, dim, seed):
    return list(np.random.default_rng(seed).normal(scale=3.0, size=(n, dim)))


def _plain_ring_sum(updates, included, frac_bits=16):
    """The fixed-point sum computed in the clear with Python integers (no masks, no numpy wrap)."""
    total = [0] * len(updates[0])
    for i in included:
        for k, v in enumerate(np.round(np.asarray(updates[i - 1]) * 2**frac_bits).astype(np.int64)):
            total[k] += int(v)
    return np.array([t % 2**64 for t in total], dtype=np.uint64)


def test_the_sum_is_exact_without_dropouts(agg7):
    x = _updates(7, 50, 0)
    out = agg7.run(x)
    np.testing.assert_array_equal(out["ring_sum"], _plain_ring_sum(x, range(1, 8)))
    assert np.abs(out["sum"] - np.sum(x, axis=0)).max() <= 7 * 2.0**-17


@pytest.mark.parametrize("n_early, n_late", [(a, b) for a, b in itertools.product(range(4), range(4)) if a + b <= 3])
def test_dropouts_up_to_the_threshold_are_survived_exactly(agg7, n_early, n_late):
    rng = np.random.default_rng(10 * n_early + n_late)
    order = [int(s) for s in rng.permutation(np.arange(1, 8))]
    early, late = set(order[:n_early]), set(order[n_early:n_early + n_late])
    x = _updates(7, 20, n_early + n_late)
    out = agg7.run(x, drop_before_masking=early, drop_before_unmasking=late)
    included = sorted(set(range(1, 8)) - early)
    assert out["included"] == included
    np.testing.assert_array_equal(out["ring_sum"], _plain_ring_sum(x, included))


@pytest.mark.parametrize("early, late", [({1, 2, 3, 4}, set()), ({1, 2}, {5, 6}), (set(), {1, 2, 3, 7})])
def test_one_dropout_beyond_the_threshold_aborts_before_any_share_is_revealed(agg7, monkeypatch, early, late):
    revealed = []
    original = SecureAggregation._unmask_response
    monkeypatch.setattr(SecureAggregation, "_unmask_response",
                        staticmethod(lambda *a: revealed.append(1) or original(*a)))
    with pytest.raises(AggregationAborted, match="threshold is 4"):
        agg7.run(_updates(7, 5, 1), drop_before_masking=early, drop_before_unmasking=late)
    assert revealed == []


def test_the_server_view_never_covers_a_site_whose_update_it_holds(agg7):
    out = agg7.run(_updates(7, 5, 2), drop_before_masking={3, 6})
    for response in out["view"]["unmask"].values():
        b_sites = {a for kind, a, _ in response if kind == "b"}
        s_pairs = {(a, b) for kind, a, b in response if kind == "s"}
        assert b_sites == set(out["included"])
        assert all(len({a, b} & {3, 6}) == 1 for a, b in s_pairs)  # only pairs with one dropped site
        assert len(s_pairs) == 2 * 5
    with pytest.raises(AggregationAborted, match="inconsistent"):
        SecureAggregation._unmask_response({}, {1, 2}, {2})


def test_the_consistency_check_passes_an_honest_round_and_signs_one_set(agg7):
    out = agg7.run(_updates(7, 3, 4), drop_before_masking={2})
    assert out["consistency"]["refused"] == []
    assert all(shown == out["included"] for shown in out["consistency"]["shown"].values())


def test_sites_shown_a_minority_survivor_set_refuse_to_unmask():
    """The server tells sites 4 and 5 that site 5 dropped (to get its pair seeds) while the others
    were told it sent: only two signatures match their set, so they refuse; the round completes from
    the three honest replies, and nobody revealed a pair seed of site 5."""
    agg = SecureAggregation(5)  # threshold 3
    updates = _updates(5, 4, 5)
    lie = {1, 2, 3, 4}
    out = agg.run(updates, announce={4: lie, 5: lie})
    assert out["consistency"]["refused"] == [4, 5]
    assert sorted(out["view"]["unmask"]) == [1, 2, 3]
    assert all(kind == "b" for reply in out["view"]["unmask"].values() for kind, _, _ in reply)
    np.testing.assert_array_equal(out["ring_sum"], _plain_ring_sum(updates, range(1, 6)))


def test_a_server_that_lies_to_a_majority_is_caught_before_it_can_unmask():
    """Three of five sites are told site 5 dropped, two the truth: the two refuse (two signatures on
    their set), so the server never gets site 5's self-seed shares and the round aborts."""
    agg = SecureAggregation(5)
    lie = {1, 2, 3, 4}
    with pytest.raises(AggregationAborted, match="consistency"):
        agg.run(_updates(5, 4, 6), announce={1: lie, 2: lie, 3: lie})
    # split into groups below the threshold, no set gathers enough signatures: every site refuses
    signatures, refused = agg._consistency_check({1: {1, 2}, 2: {1, 2}, 3: {1, 2, 3}}, 0, Traffic())
    assert refused == [1, 2, 3] and len(signatures) == 3


def _top_byte_pvalue(values: np.ndarray) -> float:
    counts = np.bincount((values >> np.uint64(56)).astype(np.int64), minlength=256)
    return float(stats.chisquare(counts).pvalue)


@pytest.mark.parametrize("value", [0.0, 1000.0])
def test_one_sites_masked_update_looks_uniform_whatever_its_input(value):
    agg = SecureAggregation(3, threshold=2)
    dim = 25_600
    out = agg.run([np.full(dim, value), np.zeros(dim), np.ones(dim)])
    assert _top_byte_pvalue(out["view"]["masked"][1]) > ALPHA


def test_control_the_uniformity_test_rejects_an_unmasked_update():
    assert _top_byte_pvalue(encode(np.random.default_rng(0).normal(size=25_600))) < ALPHA


def test_the_prg_uses_the_whole_256_bit_seed():
    seed = bytes(range(32))
    same_low_32 = bytes(28 * [255]) + seed[28:]
    assert not np.array_equal(prg(seed, 8), prg(same_low_32, 8))
    np.testing.assert_array_equal(prg(seed, 8), prg(seed, 8))
    assert not np.array_equal(prg(seed, 8, round_no=0), prg(seed, 8, round_no=1))
    for bad in (seed[:4], seed[:31], int.from_bytes(seed, "big")):
        with pytest.raises(ParameterError, match=f"{SEED_BYTES} bytes"):
            prg(bad, 8)


def test_flowers_fold_maps_different_seeds_to_one_value_our_prg_does_not():
    """Flipping the same bits in two 4-byte words keeps the XOR fold (Flower #7522) but changes our masks."""
    seed = bytes(range(32))
    delta = bytes(4 * [0x5A])
    twin = bytes(a ^ b for a, b in zip(seed, delta + delta + bytes(24)))
    assert twin != seed and folded_seed32(twin) == folded_seed32(seed)
    assert not np.array_equal(prg(twin, 8), prg(seed, 8))


def test_fixed_point_round_trip_and_range():
    x = np.array([-2.5, 0.0, 1e-6, 12345.678])
    np.testing.assert_allclose(decode(encode(x)), x, atol=2.0**-17)
    with pytest.raises(ParameterError):
        encode(np.array([2.0**50]))
    with pytest.raises(ParameterError):
        encode(np.array([np.nan]))


def test_dropout_trial_completes_or_aborts_by_the_drawn_dropouts():
    ok = dropout_trial(6, 0.0, dim=10, seed=0)
    assert ok["completed"] and ok["n_dropped"] == 0 and ok["max_abs_error"] <= 6 * 2.0**-17
    gone = dropout_trial(6, 0.95, dim=10, seed=0)
    assert gone["n_dropped"] > 6 - gone["threshold"] and not gone["completed"]


def test_bad_input_is_refused():
    with pytest.raises(ParameterError):
        SecureAggregation(1)
    with pytest.raises(ParameterError, match="n_sites / 2"):
        SecureAggregation(6, threshold=3)
    agg = SecureAggregation(3)
    with pytest.raises(ParameterError):
        agg.run([np.zeros(3)] * 2)
    with pytest.raises(ParameterError):
        agg.run([np.zeros(3)] * 3, drop_before_masking={4})
    with pytest.raises(ParameterError):
        dropout_trial(4, 1.0)
