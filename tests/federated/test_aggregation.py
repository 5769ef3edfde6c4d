"""Tests of ppal_lab.federated.aggregation: FedAvg and masked FedAvg."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.federated import fedavg, secure_fedavg


def test_fedavg_is_the_weighted_average():
    rng = np.random.default_rng(0)
    vecs = [torch.tensor(rng.normal(size=7), dtype=torch.float32) for _ in range(3)]
    w = [5.0, 12.0, 3.0]
    expected = sum(wi * v.double() for wi, v in zip(w, vecs)) / sum(w)
    np.testing.assert_allclose(fedavg(vecs, w).double().numpy(), expected.numpy(), rtol=1e-6)
    assert torch.equal(fedavg([vecs[0]], [37.0]), vecs[0])  # one site: bit-identical
    with pytest.raises(ParameterError) as err:
        fedavg(vecs, [0.0, 0.0, 0.0])
    assert err.value.name == "weights"


def test_secure_fedavg_equals_fedavg_and_masks_hide_each_update():
    g = torch.Generator().manual_seed(0)
    vecs = [torch.randn(50, generator=g) * 3 for _ in range(4)]
    weights = [10, 25, 3, 40]
    avg, masked = secure_fedavg(vecs, weights, 0)
    torch.testing.assert_close(avg, fedavg(vecs, weights), atol=1e-6, rtol=0)
    assert avg.dtype == vecs[0].dtype
    # a masked message is unrelated to the plain fixed-point encoding (uniform in the 64-bit ring)
    plain = np.round(vecs[0].double().numpy() * weights[0] / sum(weights) * 2.0**32).astype(np.int64)
    assert np.mean(masked[0].view(np.int64) == plain) == 0.0
    assert np.abs(masked[0].view(np.int64).astype(float)).mean() > 1e17
    one, _ = secure_fedavg(vecs[:1], [5], 0)
    torch.testing.assert_close(one, vecs[0], atol=1e-8, rtol=0)
    with pytest.raises(ParameterError):
        secure_fedavg(vecs, [1, 2], 0)
    with pytest.raises(ParameterError):
        secure_fedavg(vecs, [0, 0, 0, 0], 0)
