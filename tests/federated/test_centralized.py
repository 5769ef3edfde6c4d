"""Tests of ppal_lab.federated.centralized: the reference the federated machinery reduces to."""
from __future__ import annotations

import numpy as np

from ppal_lab.federated import run_centralized, run_federated_al


def test_one_site_non_private_equals_centralized(reman):
    X, y, Xt, yt, parts = reman
    pool = np.sort(np.concatenate(parts))
    for strategy in ("margin", "random"):
        fed = run_federated_al(X, y, Xt, yt, [pool], 100, 20, strategy, epsilon=None, seed=2)
        cen = run_centralized(X, y, Xt, yt, 100, 20, strategy, seed=2)
        np.testing.assert_allclose(fed.curve.accuracy, cen.curve.accuracy, atol=1e-9)
        np.testing.assert_array_equal(fed.curve.queried, cen.curve.queried)
        assert np.isinf(fed.epsilon_spent).all() and fed.dpsgd_steps.tolist() == [0]
