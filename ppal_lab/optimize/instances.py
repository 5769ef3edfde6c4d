r"""QUBO instance families whose optimum is known: the test beds on which solvers can differ.

* :func:`wishart_planted` — the Wishart planted ensemble (Hamze, Raymond, Pattison, Biswas and
  Katzgraber, Phys. Rev. E 101, 052102, 2020). ``M = alpha N`` Gaussian columns ``w_mu`` are projected
  orthogonal to a random planted spin vector ``t``; the couplings
  :math:`J = W W^\top / (2N)` (diagonal removed) give :math:`E(s) = \lVert W^\top s\rVert^2 / (2N) - c`,
  a sum of squares that vanishes at ``t``: ``t`` (and ``-t``) is a ground state with the known energy
  ``-c = -trace(W W^T) / (2N)``. ``alpha`` tunes hardness: the smaller, the more rugged (the paper's
  first-order transition lies below ``alpha = 1``).
* :func:`sk_instance` — a Sherrington–Kirkpatrick spin glass, :math:`H = -\sum_{i<j} J_{ij} s_i s_j`
  with :math:`J_{ij} \sim N(0, 1/N)`. No optimum is known at large ``N``; the Parisi ground-state energy
  per spin :data:`PARISI_E0` is the large-``N`` reference (finite ``N`` lie above it, the gap shrinking
  like :math:`N^{-2/3}`, Boettcher 2005). For ``N <= 24`` :mod:`ppal_lab.optimize.exact` certifies it.
* :func:`densest_subgraph` — the k-densest subgraph of a random graph as a "select k" problem (an
  :class:`~ppal_lab.optimize.qubo.MRMRProblem` with no relevance: fewest complement edges = most edges).
* :func:`cardinality_branch_and_bound` — an exact solver of ``min x^T Q x`` subject to ``sum x = k``
  (depth-first branch and bound with a bound from the ``m`` smallest completions); it certifies
  cardinality-constrained instances beyond the ``n <= 24`` of exhaustive search.

Every public function validates its arguments before any work and raises
:class:`~ppal_lab.compendium.errors.ParameterError` naming the parameter, the value and the allowed range.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppal_lab.compendium.errors import ParameterError, check_int, check_real
from ppal_lab.optimize.qubo import QUBO, Ising, MRMRProblem, mrmr_qubo

__all__ = ["BnBResult", "PARISI_E0", "PlantedInstance", "SK_FINITE_SIZE_EXPONENT",
           "cardinality_branch_and_bound", "densest_subgraph", "sk_instance", "wishart_planted"]

#: Parisi's ground-state energy per spin of the SK model with couplings of variance 1/N
#: (Crisanti and Rizzo 2002: -0.7631667...).
PARISI_E0 = -0.7631667
#: Finite-size correction exponent of the SK ground-state energy per spin, e_N - e_inf ~ N^(-2/3)
#: (Boettcher, Eur. Phys. J. B 46, 501, 2005).
SK_FINITE_SIZE_EXPONENT = 2.0 / 3.0


@dataclass(frozen=True, eq=False)
class PlantedInstance:
    """A Wishart planted instance: the Ising model, its planted ground state and energy."""

    ising: Ising
    spins: np.ndarray          #: the planted ground state t (±1, int8)
    energy: float              #: its energy, the ground-state energy
    alpha: float

    @property
    def n(self) -> int:
        return self.ising.n

    @property
    def qubo(self) -> QUBO:
        """The same energies over ``x = (1 + s) / 2``."""
        return self.ising.to_qubo()

    @property
    def x(self) -> np.ndarray:
        """The planted state as a 0/1 vector."""
        return ((self.spins + 1) // 2).astype(np.int8)


def wishart_planted(n: int, alpha: float, seed: int = 0) -> PlantedInstance:
    """A Wishart planted instance with ``n`` spins and ``M = max(1, round(alpha n))`` columns."""
    n = check_int("n", n, 2)
    alpha = check_real("alpha", alpha, 0, 4, low_open=True)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    rng = np.random.default_rng(seed)
    m = max(1, int(round(alpha * n)))
    t = rng.choice(np.array([-1, 1], dtype=np.int8), size=n)
    W = rng.standard_normal((n, m))
    W -= np.outer(t, t @ W) / n                       # each column orthogonal to t (t.t = n)
    C = W @ W.T / (2.0 * n)
    ising = Ising(C, np.zeros(n))                     # the diagonal moves into the offset ...
    ising = Ising(ising.J, ising.h)                   # ... and is dropped (Hamze et al.): E(t) = -trace(C)
    return PlantedInstance(ising, t, float(ising.energy(t)), alpha)


def sk_instance(n: int, seed: int = 0) -> Ising:
    """An SK instance, ``H(s) = -sum_{i<j} J_ij s_i s_j`` with ``J_ij ~ N(0, 1/n)`` (no field)."""
    n = check_int("n", n, 2)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    rng = np.random.default_rng(seed)
    J = np.triu(rng.standard_normal((n, n)) / math.sqrt(n), 1)
    return Ising(-(J + J.T) / 2.0, np.zeros(n))     # s^T J s counts each pair twice


def densest_subgraph(n: int, k: int, p: float = 0.5, seed: int = 0) -> MRMRProblem:
    """The k-densest subgraph of a ``G(n, p)`` random graph as a "select k" problem: minimise the
    edges of the complement graph inside the chosen set (an mRMR problem with ``alpha = 0`` and the
    complement's adjacency as redundancy). For a set of ``k`` vertices the objective is
    ``2 m / (k - 1)`` with ``m`` the complement's edges inside it; ``G`` has ``k (k - 1) / 2 - m``."""
    n = check_int("n", n, 3)
    k = check_int("k", k, 2, n - 1)
    p = check_real("p", p, 0, 1, low_open=True, high_open=True)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    rng = np.random.default_rng(seed)
    A = np.triu(rng.random((n, n)) < p, 1)
    A = (A | A.T).astype(np.float64)
    comp = 1.0 - A
    np.fill_diagonal(comp, 0.0)
    return mrmr_qubo(np.zeros(n), comp, k, alpha=0.0)


@dataclass(frozen=True, eq=False)
class BnBResult:
    """Outcome of :func:`cardinality_branch_and_bound`."""

    x: np.ndarray            #: best 0/1 vector with exactly k ones
    energy: float            #: its value x^T Q x + offset
    certified: bool          #: True when the search finished (x is optimal)
    nodes: int
    wall_time_s: float


def _completion_bound(Q: np.ndarray, lin: np.ndarray, free: np.ndarray, m: int) -> tuple[float, np.ndarray]:
    """Lower bound on the cost of adding ``m`` of the ``free`` variables (and each one's own bound):
    each added ``j`` costs ``lin_j`` plus its pairs with the other ``m - 1`` added, at least the sum of
    its ``m - 1`` smallest ``Q_jl`` over free ``l != j``."""
    F = np.flatnonzero(free)
    c = lin[F].copy()
    if m > 1:
        S = Q[np.ix_(F, F)].copy()
        np.fill_diagonal(S, np.inf)
        c += np.partition(S, m - 2, axis=1)[:, : m - 1].sum(axis=1)
    if m > F.size:
        return np.inf, c
    return float(np.partition(c, m - 1)[:m].sum()), c


def cardinality_branch_and_bound(problem: QUBO | MRMRProblem, k: int | None = None, *,
                                 incumbent: Any = None, max_nodes: int = 2_000_000) -> BnBResult:
    """Exact ``min x^T Q x + offset`` subject to ``sum(x) = k`` (for an MRMRProblem: its objective,
    without the penalty, and its ``k``). Depth-first: branch on the free variable with the smallest
    bound (include it first, then exclude it); prune a node when the chosen set's value plus
    :func:`_completion_bound` is not below the incumbent. ``incumbent`` (a feasible 0/1 vector, e.g.
    a heuristic's answer) starts the search with a good upper bound. ``certified`` is False when
    ``max_nodes`` were explored before the search finished."""
    if isinstance(problem, MRMRProblem):
        qubo, k = problem.objective, problem.k if k is None else k
    elif isinstance(problem, QUBO):
        qubo = problem
    else:
        raise ParameterError("problem", type(problem).__name__, "a QUBO or MRMRProblem")
    n = qubo.n
    if k is None:
        raise ParameterError("k", None, "an integer in [0, n] for a QUBO")
    k = check_int("k", k, 0, n)
    max_nodes = check_int("max_nodes", max_nodes, 1)
    Q = qubo.Q
    best_x, best_e = None, np.inf
    if incumbent is not None:
        x0 = np.asarray(incumbent)
        if x0.shape != (n,) or not np.isin(x0, (0, 1)).all() or int(x0.sum()) != k:
            raise ParameterError("incumbent", "<array>", f"a 0/1 vector of length {n} with {k} ones")
        best_x, best_e = x0.astype(np.int8), float(x0 @ Q @ x0)
    t0 = time.perf_counter()
    nodes = 0
    # stack of (chosen mask, free mask, value of chosen set, lin = diag(Q) + 2 Q x_chosen)
    stack = [(np.zeros(n, bool), np.ones(n, bool), 0.0, np.diag(Q).copy())]
    while stack:
        if nodes >= max_nodes:
            break
        chosen, free, val, lin = stack.pop()
        nodes += 1
        m = k - int(chosen.sum())
        if m == 0:
            if val < best_e - 1e-12:
                best_x, best_e = chosen.astype(np.int8), val
            continue
        bound, c = _completion_bound(Q, lin, free, m)
        if val + bound >= best_e - 1e-12:
            continue
        F = np.flatnonzero(free)
        j = int(F[np.argmin(c)])
        out_free = free.copy()
        out_free[j] = False
        stack.append((chosen, out_free, val, lin))                     # exclude j (explored second)
        inc = chosen.copy()
        inc[j] = True
        stack.append((inc, out_free, val + lin[j], lin + 2.0 * Q[j]))   # include j (explored first)
    certified = not stack
    return BnBResult(best_x, best_e + qubo.offset, certified and best_x is not None, nodes,
                     time.perf_counter() - t0)
