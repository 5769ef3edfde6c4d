"""Baselines: the simplex projection and the seed's routine, the L1 path, relevance estimates."""
import numpy as np
import pytest

from ppal_lab import optimize as q
from ppal_lab.compendium.errors import ParameterError

from qubo_cases import random_mrmr  # noqa: E402  (tests/optimize/qubo_cases.py)


def test_simplex_projection_and_the_seed_routine():
    v = np.random.default_rng(0).normal(size=(5, 9)) * 3
    P = q.project_simplex(v, 4.0)
    np.testing.assert_allclose(P.sum(axis=1), 4.0)
    assert np.all(P >= 0)
    # optimality: P = max(v - theta, 0) with one theta per row
    for p, row in zip(P, v):
        theta = (row - p)[p > 0]
        np.testing.assert_allclose(theta, theta[0])
        assert np.all(row[p == 0] <= theta[0] + 1e-12)
    problem = random_mrmr(12, 4, seed=1)
    picks = q.momentum_simplex(problem, seed=0)
    assert len(set(picks)) == 4
    np.testing.assert_array_equal(picks, q.momentum_simplex(problem, seed=0))


def test_l1_path_and_relevance_estimates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8))
    X[:, 7] = 1.0                                   # constant column
    y = (X[:, 0] - X[:, 1] + 0.2 * rng.normal(size=400) > 0).astype(int)
    r, R = q.relevance_redundancy(X, y, seed=0)
    assert set(np.argsort(-r)[:2]) == {0, 1}
    assert np.allclose(R, R.T) and np.all(np.diag(R) == 0) and R.max() <= 1
    assert np.all(R[7] == 0)
    _, Rmi = q.relevance_redundancy(X[:, :4], y, redundancy="mi", seed=0)
    assert np.allclose(Rmi, Rmi.T) and Rmi.shape == (4, 4)
    path = q.l1_logistic_path(X, y, [1, 2, 5])
    assert set(path[2]) == {0, 1} and all(len(path[k]) == k for k in (1, 2, 5))


def test_bad_input_is_rejected_with_the_parameter_named():
    with pytest.raises(ParameterError, match="^ks = 4"):
        q.l1_logistic_path(np.zeros((10, 3)), np.arange(10) % 2, [4])
