"""Exact minimisation of a QUBO by enumerating all ``2**n`` states (``n <= 24``).

:func:`exact_solve` finds the minimum (optionally over the states with exactly ``k`` ones, the
constrained optimum that checks the cardinality penalty); :func:`exact_energies` returns every energy.
The ``2**n`` energies are formed block by block from a split of the bits into a low and a high half
(one matrix product per block, no Python loop over states). They are the reference every heuristic
solver of the chapter is measured against.

Every public function validates its arguments before any work and raises
:class:`~ppal_lab.compendium.errors.ParameterError` naming the parameter, the value and the allowed range.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppal_lab.compendium.errors import ParameterError, check_int
from ppal_lab.optimize.qubo import QUBO, Ising, MRMRProblem, _as_qubo, _quadratic

__all__ = ["ExactResult", "MAX_EXACT_N", "exact_energies", "exact_solve"]

#: Largest number of variables :func:`exact_solve` accepts (2**24 = 16.8 million states).
MAX_EXACT_N = 24
_LOW_BITS = 12          # exact search: bits enumerated along the rows of a block
_HIGH_CHUNK_BITS = 10   # ... and at most 2**10 high-bit patterns per block (32 MB of float64)


@dataclass(frozen=True, eq=False)
class ExactResult:
    """Outcome of :func:`exact_solve`."""

    x: np.ndarray        #: a minimiser (the one with the smallest integer code, bit i = x_i)
    energy: float
    n_states: int        #: states enumerated (2**n)
    wall_time_s: float


def _bit_matrix(m: int) -> np.ndarray:
    codes = np.arange(2**m, dtype=np.int64)
    return ((codes[:, None] >> np.arange(m)) & 1).astype(np.float64)


def _energy_blocks(qubo: QUBO):
    """Yield ``(start, E, pop)``: energies of states ``u + 2**b * v`` for all ``u`` (rows) and a chunk
    of ``v`` (columns) starting at ``start``; ``pop`` is the number of ones of each state."""
    n = qubo.n
    b = min(n, _LOW_BITS)
    Q = qubo.Q
    U = _bit_matrix(b)
    eu = _quadratic(Q[:b, :b], U)
    pu = U.sum(axis=1)
    m = n - b
    if m == 0:
        yield 0, (eu + qubo.offset)[:, None], pu[:, None]
        return
    UQ = 2.0 * (U @ Q[:b, b:])                       # (2**b, m)
    chunk = 2 ** min(m, _HIGH_CHUNK_BITS)
    Qvv = Q[b:, b:]
    for start in range(0, 2**m, chunk):              # at most 2**(24-12-10) = 4 blocks
        codes = np.arange(start, start + chunk, dtype=np.int64)
        V = ((codes[:, None] >> np.arange(m)) & 1).astype(np.float64)
        E = UQ @ V.T
        E += eu[:, None]
        E += (_quadratic(Qvv, V) + qubo.offset)[None, :]
        yield start, E, pu[:, None] + V.sum(axis=1)[None, :]


def _check_exact(problem: Any) -> QUBO:
    qubo = _as_qubo(problem)
    if qubo.n > MAX_EXACT_N:
        raise ParameterError("n", qubo.n, f"<= {MAX_EXACT_N} for exact search (2**n states)")
    return qubo


def exact_solve(problem: QUBO | Ising | MRMRProblem, k: int | None = None) -> ExactResult:
    """Exhaustive minimum over all ``2**n`` states (``n <= 24``); with ``k``, over the states with
    exactly ``k`` ones (the constrained optimum, used to check the penalty)."""
    qubo = _check_exact(problem)
    if k is not None:
        k = check_int("k", k, 0, qubo.n)
    t0 = time.perf_counter()
    b = min(qubo.n, _LOW_BITS)
    best_e, best_code = np.inf, -1
    for start, E, pop in _energy_blocks(qubo):
        if k is not None:
            E = np.where(pop == k, E, np.inf)
        # smallest code among ties: code = u + 2**b v, so compare column-major
        flat = np.argmin(E.T)
        v, u = divmod(int(flat), E.shape[0])
        if E[u, v] < best_e:
            best_e, best_code = float(E[u, v]), u + ((start + v) << b)
    x = ((best_code >> np.arange(qubo.n)) & 1).astype(np.int8)
    return ExactResult(x, float(qubo.energy(x)), 2**qubo.n, time.perf_counter() - t0)


def exact_energies(problem: QUBO | Ising | MRMRProblem) -> np.ndarray:
    """Energies of all ``2**n`` states (``n <= 24``); entry ``c`` is the state with ``x_i = (c >> i) & 1``."""
    qubo = _check_exact(problem)
    b = min(qubo.n, _LOW_BITS)
    out = np.empty(2**qubo.n)
    for start, E, _ in _energy_blocks(qubo):
        cols = E.shape[1]
        out[(start << b): ((start + cols) << b)] = E.T.ravel()
    return out
