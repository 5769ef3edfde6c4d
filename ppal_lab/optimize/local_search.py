"""Local search: swap polishing and Peng's greedy mRMR for "select k", single-flip descent for any QUBO.

* :func:`swap_polish` — repair to exactly ``k`` features and a best-improvement swap local search,
  vectorised over agents; "SB + swap" is the solver we use for feature selection, and the chapter
  measures how much of its quality comes from each stage.
* :func:`flip_polish` — steepest single-flip descent on any QUBO, vectorised over rows: the same
  polish for every solver on unconstrained instances (planted, SK), as :func:`swap_polish` is on
  "select k" instances.
* :func:`greedy_mrmr` — Peng et al.'s (2005) incremental mRMR: the most relevant feature first, then
  one feature at a time, the best trade of relevance against mean redundancy with those chosen.

Every public function validates its arguments before any work and raises
:class:`~ppal_lab.compendium.errors.ParameterError` naming the parameter, the value and the allowed range.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ppal_lab.compendium.errors import check_int
from ppal_lab.optimize.qubo import QUBO, Ising, MRMRProblem, _as_qubo, _levels, _problem_k

__all__ = ["flip_polish", "greedy_mrmr", "swap_polish"]


def swap_polish(problem: MRMRProblem, x: Any, *, max_rounds: int | None = None) -> np.ndarray:
    """Make each row of ``x`` select exactly ``k`` features, then improve it by swaps (1-swap local
    search on the mRMR cost ``f``), for all rows at once.

    Repair: while a row has more than ``k`` ones, drop the feature whose removal lowers ``f`` most
    (raises it least); while it has fewer, add the best feature. Then, while some swap of a selected
    feature ``i`` for an unselected ``j`` lowers ``f`` (by more than 1e-12), make the best one:
    ``delta = (Q_ii - g_i) + (Q_jj + g_j) - 2 Q_ij`` with ``g = 2 Q x``. Stops after ``max_rounds``
    swaps per row (default ``10 n``). Returns an int8 array of the same shape as ``x``; the result is a
    local optimum: no single swap improves it.
    """
    problem, _ = _problem_k(problem, None)
    X = _levels("x", x, problem.n, (0, 1))
    single = X.ndim == 1
    X = np.atleast_2d(X).copy()
    n, k = problem.n, problem.k
    max_rounds = 10 * n if max_rounds is None else check_int("max_rounds", max_rounds, 0)
    Q = problem.objective.Q
    d = np.diag(Q)
    rows = np.arange(X.shape[0])
    G = 2.0 * X @ Q
    # repair: at most n single moves per row, all rows together
    for _ in range(n):
        count = X.sum(axis=1)
        over, under = count > k, count < k
        if not (over.any() or under.any()):
            break
        remove = np.where(X == 1, d - G, np.inf)        # change of f when a 1 becomes 0
        add = np.where(X == 0, d + G, np.inf)           # change of f when a 0 becomes 1
        pick = np.where(over, remove.argmin(axis=1), add.argmin(axis=1))
        act = over | under
        sign = np.where(over, -1.0, 1.0)
        X[rows[act], pick[act]] += sign[act]
        G[act] += 2.0 * sign[act, None] * Q[pick[act]]
    # best-improvement swaps
    live = np.ones(X.shape[0], dtype=bool)
    for _ in range(max_rounds):
        if not live.any():
            break
        idx = np.flatnonzero(live)
        Xl, Gl = X[idx], G[idx]
        sel = np.argsort(-Xl, axis=1, kind="stable")[:, :k]           # the k selected features
        out_gain = np.take_along_axis(d[None, :] - Gl, sel, axis=1)    # (m, k)
        in_gain = np.where(Xl == 0, d[None, :] + Gl, np.inf)          # (m, n)
        delta = out_gain[:, :, None] + in_gain[:, None, :] - 2.0 * Q[sel]
        flat = delta.reshape(len(idx), -1).argmin(axis=1)
        best = delta.reshape(len(idx), -1)[np.arange(len(idx)), flat]
        improve = best < -1e-12
        live[idx[~improve]] = False
        if not improve.any():
            break
        a = idx[improve]
        i = sel[improve, flat[improve] // n]
        j = flat[improve] % n
        X[a, i] = 0
        X[a, j] = 1
        G[a] += 2.0 * (Q[j] - Q[i])
    out = X.astype(np.int8)
    return out[0] if single else out


def flip_polish(problem: QUBO | Ising | MRMRProblem, x: Any, *, max_rounds: int | None = None) -> np.ndarray:
    """Steepest descent by single flips on each row of ``x`` (0/1): while some flip lowers the energy
    (by more than 1e-12), make the best one; flipping ``i`` changes ``E`` by
    ``(1 - 2 x_i) g_i + Q_ii`` with ``g = 2 Q x``. At most ``max_rounds`` flips per row (default
    ``10 n``). Returns an int8 array of the same shape; each row is a 1-flip local minimum."""
    qubo = _as_qubo(problem)
    X = _levels("x", x, qubo.n, (0, 1))
    single = X.ndim == 1
    X = np.atleast_2d(X).astype(np.float64)
    max_rounds = 10 * qubo.n if max_rounds is None else check_int("max_rounds", max_rounds, 0)
    Q = qubo.Q
    d = np.diag(Q)
    G = 2.0 * X @ Q
    live = np.arange(X.shape[0])
    for _ in range(max_rounds):
        if live.size == 0:
            break
        delta = (1.0 - 2.0 * X[live]) * G[live] + d
        i = delta.argmin(axis=1)
        improve = delta[np.arange(live.size), i] < -1e-12
        live, i = live[improve], i[improve]
        step = 1.0 - 2.0 * X[live, i]
        X[live, i] += step
        G[live] += 2.0 * step[:, None] * Q[i]
    out = X.astype(np.int8)
    return out[0] if single else out


def greedy_mrmr(problem: MRMRProblem, k: int | None = None) -> np.ndarray:
    """Peng et al.'s incremental mRMR: start from the most relevant feature, then add the feature
    maximising ``alpha * r_i - (1 - alpha) * mean_{j in S} R_ij``. Returns indices in pick order."""
    problem, k = _problem_k(problem, k)
    r, R, a = problem.relevance, problem.redundancy, problem.alpha
    chosen = [int(np.argmax(r))]
    free = np.ones(problem.n, dtype=bool)
    free[chosen[0]] = False
    red_sum = R[chosen[0]].copy()
    for t in range(1, k):
        score = a * r - (1.0 - a) * red_sum / t
        score[~free] = -np.inf
        i = int(np.argmax(score))
        chosen.append(i)
        free[i] = False
        red_sum += R[i]
    return np.array(chosen, dtype=np.int64)
