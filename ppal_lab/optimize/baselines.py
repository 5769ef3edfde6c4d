r"""Baseline feature selectors the chapter compares simulated bifurcation with.

:func:`mi_top_k` (largest relevance), :func:`l1_logistic_path` (L1-regularised logistic regression, the
first ``k`` features to enter the path), and :func:`momentum_simplex` — our re-implementation, from its
description, of the routine seed 001 calls "simulated bifurcation": heavy-ball gradient steps on the
relaxed objective with a projection onto the simplex :math:`\{p \ge 0, \sum p = k\}`
(:func:`project_simplex`), then the ``k`` largest coordinates. It has no bifurcation, pump or walls; it
is projected gradient ascent with momentum. (Peng's greedy mRMR is in
:mod:`ppal_lab.optimize.local_search`.)

Every public function validates its arguments before any work and raises
:class:`~ppal_lab.compendium.errors.ParameterError` naming the parameter, the value and the allowed range.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ppal_lab.compendium.errors import ParameterError, check_int, check_real
from ppal_lab.optimize.qubo import MRMRProblem, _problem_k, _vector

__all__ = ["l1_logistic_path", "mi_top_k", "momentum_simplex", "project_simplex"]


def mi_top_k(relevance: Any, k: int) -> np.ndarray:
    """The ``k`` most relevant features (ties: lower index first), most relevant first."""
    r = _vector("relevance", relevance)
    k = check_int("k", k, 1, r.size)
    return np.argsort(-r, kind="stable")[:k].astype(np.int64)


def l1_logistic_path(X: Any, y: Any, ks: Sequence[int], *, seed: int = 0, n_c: int = 40,
                     c_span: float = 1e4) -> dict[int, np.ndarray]:
    """For each ``k`` in ``ks``: the ``k`` features with the largest |coefficient| at the smallest
    ``C`` on a log grid (``l1_min_c`` to ``c_span`` times it) where an L1-regularised logistic
    regression (standardised features, liblinear, one-vs-rest for several classes) uses at least ``k``
    features. If no ``C`` on the grid reaches ``k``, the largest ``C`` is used."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import l1_min_c

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        raise ParameterError("X", "<array>", "a finite 2-D array (impute missing values first)")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ParameterError("y", f"<array of shape {y.shape}>", f"shape ({X.shape[0]},)")
    ks = [check_int("ks", k, 1, X.shape[1]) for k in ks]
    if not ks:
        raise ParameterError("ks", ks, "a non-empty list of integers")
    seed = check_int("seed", seed, 0, 2**32 - 1)
    n_c = check_int("n_c", n_c, 2)
    c_span = check_real("c_span", c_span, 1, low_open=True)

    Z = StandardScaler().fit_transform(X)
    base = LogisticRegression(C=1.0, l1_ratio=1.0, solver="liblinear", random_state=seed, max_iter=1000)
    multi = np.unique(y).size > 2
    grid = l1_min_c(Z, y, loss="log") * np.logspace(0, math.log10(c_span), n_c)
    weights = []

    def weight(i: int) -> np.ndarray:
        while len(weights) <= i:
            c = grid[len(weights)]
            model = (OneVsRestClassifier(base.set_params(C=c)) if multi else base.set_params(C=c))
            model.fit(Z, y)
            coef = (np.vstack([e.coef_ for e in model.estimators_]) if multi else model.coef_)
            weights.append(np.abs(coef).max(axis=0))
        return weights[i]

    out = {}
    for k in sorted(set(ks)):
        i = 0 if not weights else len(weights) - 1
        while i < n_c - 1 and np.count_nonzero(weight(i)) < k:
            i += 1
        w = weight(i)
        out[k] = np.argsort(-w, kind="stable")[:k].astype(np.int64)
    return out


def project_simplex(v: Any, total: float) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto ``{p >= 0, sum(p) = total}`` (sort-based)."""
    V = np.atleast_2d(np.asarray(v, dtype=np.float64))
    total = check_real("total", total, 0, low_open=True)
    u = -np.sort(-V, axis=1)
    css = np.cumsum(u, axis=1) - total
    idx = np.arange(1, V.shape[1] + 1)
    rho = (u - css / idx > 0).sum(axis=1)          # number of positive entries after the shift
    theta = css[np.arange(V.shape[0]), rho - 1] / rho
    P = np.maximum(V - theta[:, None], 0.0)
    return P[0] if np.ndim(v) == 1 else P


def momentum_simplex(problem: MRMRProblem, *, iterations: int = 100, momentum: float = 0.9,
                     step: float = 0.1, seed: int = 0) -> np.ndarray:
    """Seed 001's "simulated bifurcation", re-implemented from its description on our QUBO.

    Start from Gaussian positions ``p`` and momenta ``m``; repeat ``iterations`` times:
    ``g = -2 Q p`` (ascent direction of ``-f``), ``m = momentum * m + step * g``, ``p = p + m``, then
    project ``p`` onto ``{p >= 0, sum(p) = k}``; finally return the ``k`` largest coordinates (ties:
    lower index first). The penalty is not used: the projection plays its part.
    """
    problem, k = _problem_k(problem, None)
    iterations = check_int("iterations", iterations, 1)
    momentum = check_real("momentum", momentum, 0, 1)
    step = check_real("step", step, 0, low_open=True)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    rng = np.random.default_rng(seed)
    Q = problem.objective.Q
    p = rng.standard_normal(problem.n)
    m = rng.standard_normal(problem.n)
    for _ in range(iterations):
        m = momentum * m + step * (-2.0 * Q @ p)
        p = project_simplex(p + m, k)
    return np.argsort(-p, kind="stable")[:k].astype(np.int64)
