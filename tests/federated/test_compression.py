"""Tests of ppal_lab.federated.compression: the update codecs' unbiasedness, sizes, top-k selection
and error feedback."""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.federated.compression import Codec, SiteEncoder, codec_rng, payload_bytes


def test_stochastic_rounding_is_unbiased_and_on_its_grid():
    delta = np.random.default_rng(0).normal(size=50)
    codec, rng = Codec("int8", bits=4), np.random.default_rng(1)
    draws = np.array([codec.decode(codec.encode(delta, None, rng)[0], 50) for _ in range(4000)])
    levels = 7  # 2^(4-1) - 1 levels of the largest magnitude
    step = np.abs(delta).max() / levels
    grid = draws / step
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-4)  # every value a multiple of the step
    # each coordinate is one of its two neighbouring grid points
    assert np.all(np.abs(draws - delta) < step + 1e-9)
    # mean of 4000 draws within 5 standard errors (variance <= step^2 / 4 per draw)
    assert np.all(np.abs(draws.mean(axis=0) - delta) < 5 * step / 2 / np.sqrt(4000))


def test_payload_bytes_are_the_encoded_arrays():
    delta = np.random.default_rng(2).normal(size=1000)
    rng = np.random.default_rng(0)
    assert payload_bytes(Codec("none").encode(delta, None, rng)[0]) == 4 * 1000
    assert payload_bytes(Codec("int8", bits=8).encode(delta, None, rng)[0]) == 1000 + 4
    assert payload_bytes(Codec("int8", bits=12).encode(delta, None, rng)[0]) == 2 * 1000 + 4
    assert payload_bytes(Codec("topk", fraction=0.05).encode(delta, None, rng)[0]) == 50 * (4 + 4)


def test_top_k_keeps_the_k_largest_and_feeds_back_the_rest():
    rng = np.random.default_rng(3)
    delta, residual = rng.normal(size=40), rng.normal(size=40) * 0.1
    codec = Codec("topk", fraction=0.1)
    arrays, new_residual = codec.encode(delta, residual, rng)
    full = delta + residual
    assert set(arrays["index"]) == set(np.argsort(-np.abs(full))[:4])
    sent = codec.decode(arrays, 40)
    np.testing.assert_allclose(sent + new_residual, full, atol=1e-12)  # nothing is lost
    assert np.all(new_residual[arrays["index"]] == pytest.approx(0, abs=1e-6))


def test_error_feedback_delivers_the_whole_update_over_rounds():
    """The decoded updates plus the final residual add up to the sum of all updates (mass
    conservation), and a constant update is eventually sent in every coordinate."""
    rng = np.random.default_rng(4)
    enc = SiteEncoder(Codec("topk", fraction=0.25), rng)
    updates = rng.normal(size=(30, 8))
    received = np.zeros(8)
    for u in updates:
        received += enc.codec.decode(enc.encode(u, np.zeros(8)), 8)
    np.testing.assert_allclose(received + enc.residual, updates.sum(axis=0), atol=1e-5)
    enc = SiteEncoder(Codec("topk", fraction=0.25), rng)
    touched = set()
    for _ in range(40):  # a small coordinate waits until its residual is among the largest
        touched |= set(enc.encode(np.arange(1.0, 9.0), np.zeros(8))["index"].tolist())
    assert touched == set(range(8))


def test_rebuild_adds_the_decoded_update_to_the_start_model():
    start = np.random.default_rng(5).normal(size=20).astype(np.float32)
    local = start + np.float32(0.01) * np.arange(20, dtype=np.float32)
    codec = Codec("int8")
    out = codec.rebuild(start, codec.encode(local - start, None, np.random.default_rng(0))[0])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, local, atol=0.19 / 127 + 1e-6)  # within one rounding step


def test_rounding_streams_differ_per_site_and_repeat_per_seed():
    assert codec_rng(3, 0).random() == codec_rng(3, 0).random()
    assert codec_rng(3, 0).random() != codec_rng(3, 1).random()


@pytest.mark.parametrize("kw", [dict(method="gzip"), dict(method="int8", bits=1),
                                dict(method="topk", fraction=0.0), dict(method="topk", fraction=1.5)])
def test_bad_codec_settings_are_refused(kw):
    with pytest.raises(ParameterError):
        Codec(**kw)
