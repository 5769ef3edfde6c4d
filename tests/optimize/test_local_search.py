"""Swap polishing (feasible local optima) and Peng's greedy mRMR."""
import numpy as np
import pytest

from ppal_lab import optimize as q

from qubo_cases import random_mrmr  # noqa: E402  (tests/optimize/qubo_cases.py)


def test_swap_polish_returns_feasible_local_optima():
    problem = random_mrmr(15, 5, seed=21)
    X = np.random.default_rng(0).integers(0, 2, size=(10, 15))
    P = q.swap_polish(problem, X)
    assert np.all(P.sum(axis=1) == 5)
    for x in P:                        # no single swap improves any row
        f = problem.objective_value(x)
        for i in np.flatnonzero(x):
            for j in np.flatnonzero(x == 0):
                y = x.copy()
                y[i], y[j] = 0, 1
                assert problem.objective_value(y) >= f - 1e-12


def test_greedy_mrmr_and_top_k():
    problem = random_mrmr(12, 4, seed=8, alpha=0.5)
    g = q.greedy_mrmr(problem)
    assert g[0] == np.argmax(problem.relevance) and len(set(g)) == 4
    # the second pick maximises relevance minus redundancy with the first
    score = 0.5 * problem.relevance - 0.5 * problem.redundancy[g[0]]
    score[g[0]] = -np.inf
    assert g[1] == np.argmax(score)
    top = q.mi_top_k(problem.relevance, 3)
    np.testing.assert_array_equal(top, np.argsort(-problem.relevance, kind="stable")[:3])


def test_flip_polish_returns_single_flip_local_minima_never_worse():
    from qubo_cases import random_qubo
    qubo = random_qubo(12, seed=4)
    X = np.random.default_rng(1).integers(0, 2, size=(20, 12))
    P = q.flip_polish(qubo, X)
    assert np.all(qubo.energy(P) <= qubo.energy(X) + 1e-12)
    for x in P:                        # no single flip improves any row
        e = qubo.energy(x)
        for i in range(12):
            y = x.copy()
            y[i] = 1 - y[i]
            assert qubo.energy(y) >= e - 1e-12
    assert q.flip_polish(qubo, X[0]).shape == (12,)
