"""Tests of ppal_lab.learning.cold_start: the seed's cold start returns feature indices as item indices;
k-means takes one item per cluster."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from ppal_lab.learning import cold_start as cs
from ppal_lab.compendium.errors import ParameterError


def test_seed_cold_start_returns_feature_indices_as_item_indices():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((5000, 30)) @ rng.standard_normal((30, 30))
    picks = cs.seed_cold_start(Z, 8, rng=0)
    assert picks.size == 8 and picks.max() < Z.shape[1]
    with pytest.raises(ParameterError, match="n_initial"):
        cs.seed_cold_start(Z, 31)


def test_kmeans_cold_start_takes_one_item_per_cluster():
    Z, labels = make_blobs(n_samples=3000, centers=6, cluster_std=0.3, n_features=5, random_state=1)
    picks = cs.cold_start(Z, 6, "kmeans", rng=0)
    assert np.unique(picks).size == 6
    assert sorted(labels[picks].tolist()) == list(range(6))
    rand = cs.cold_start(Z, 6, "random", rng=0)
    assert np.unique(rand).size == 6
