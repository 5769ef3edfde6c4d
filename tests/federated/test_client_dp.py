"""Tests of ppal_lab.federated.client_dp: Flower's fixed clipping and Gaussian noise scale on the
protocol's site groups."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ppal_lab.federated.client_dp import ClippedSites, clip_update, noisy_fedavg


def test_clipping_scales_long_updates_to_the_norm_and_keeps_short_ones():
    g = torch.full((100,), 2.0)
    long, short = g + 0.5, g + 0.01                          # update norms 5 and 0.1
    np.testing.assert_allclose(np.linalg.norm(clip_update(long, g, 1.0) - 2.0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(clip_update(long, g, 1.0) - 2.0, np.full(100, 0.1), rtol=1e-5)  # direction kept
    np.testing.assert_allclose(clip_update(short, g, 1.0), short.double().numpy(), rtol=0, atol=0)


def test_sites_clip_then_add_noise_of_std_z_times_the_clipping_norm(fixed_sites):
    g = torch.zeros(20_000)
    sites = ClippedSites(fixed_sites([np.full(20_000, 1.0), np.zeros(20_000)]), 0.5, 2.0, rng=0)
    big, zero = (v.double().numpy() for v in sites.train(g, 0))
    assert abs(zero.std() - 2.0 * 0.5) < 0.02 and abs(zero.mean()) < 0.02
    noise = big - 0.5 / np.sqrt(20_000)                      # clipped to norm 0.5, then noised
    assert abs(noise.std() - 1.0) < 0.02 and abs(noise.mean()) < 0.02
    assert not np.allclose(noise, zero)                      # every site draws its own noise
    quiet = ClippedSites(fixed_sites([np.full(400, 1.0)]), 0.5)   # no noise: clipping only
    assert np.linalg.norm(quiet.train(torch.zeros(400), 0)[0].double().numpy()) == pytest.approx(0.5, rel=1e-6)
    assert len(sites) == 2 and sites.public_counts().shape == (2, 3)   # the rest passes through


@pytest.mark.parametrize("n", [4, 20])
def test_the_central_noise_of_an_aggregate_of_zero_updates_has_std_z_clip_over_n(n):
    agg = noisy_fedavg(1.5, 0.8, rng=1)
    out = agg([torch.zeros(50_000) for _ in range(n)], np.ones(n)).double().numpy()
    assert out.std() == pytest.approx(1.5 * 0.8 / n, rel=0.02) and abs(out.mean()) < 4 * 1.2 / n / 200
    ones = agg([torch.ones(10) * k for k in range(n)], None).double().numpy()
    assert abs(ones.mean() - (n - 1) / 2) < 5 * 1.5 * 0.8 / n   # the mean, noised


def test_noise_repeats_with_the_seed():
    a = noisy_fedavg(1.0, 1.0, rng=3)([torch.zeros(5)] * 3)
    b = noisy_fedavg(1.0, 1.0, rng=3)([torch.zeros(5)] * 3)
    assert torch.equal(a, b)
