"""Shared cases for the optimize tests: a brute-force reference and random QUBO and mRMR instances."""
import itertools

import numpy as np

from ppal_lab import optimize as q


def brute_force(qubo: q.QUBO):
    """Every state by an explicit loop (the slow reference the vectorised search must match)."""
    states = np.array(list(itertools.product([0, 1], repeat=qubo.n)))
    energies = np.array([s @ qubo.Q @ s + qubo.offset for s in states.astype(float)])
    return states, energies


def random_qubo(n, seed):
    rng = np.random.default_rng(seed)
    return q.QUBO(rng.normal(size=(n, n)), float(rng.normal()))


def random_mrmr(n, k, seed, alpha=0.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, n))
    X[:, 1:4] += X[:, [0]]                        # redundant block
    y = (X[:, 0] + 0.5 * X[:, 5] + 0.3 * rng.normal(size=200) > 0).astype(int)
    r, R = q.relevance_redundancy(X, y, seed=seed)
    return q.mrmr_qubo(r, R, k, alpha)
