r"""Feature selection as a QUBO (mRMR with "select k"), and solvers for it.

**The model.** For ``n`` candidate features with relevance :math:`r_i \ge 0` (mutual information with
the label) and pairwise redundancy :math:`R_{ij} \ge 0` (absolute correlation or mutual information
between features), both scaled to a maximum of 1, selecting the set :math:`x \in \{0, 1\}^n` costs

.. math::

    f(x) = -\alpha \sum_i r_i x_i + \frac{1 - \alpha}{k - 1} \sum_{i \ne j} R_{ij} x_i x_j ,

which for a set of size ``k`` is ``k`` times :math:`-\alpha \bar r + (1 - \alpha) \bar R` (mean
relevance of the selected features, mean redundancy of their pairs): the max-relevance min-redundancy
criterion of Peng et al. (2005) with a weight ``alpha`` between its two parts. "Select exactly ``k``"
becomes the penalty :math:`\lambda (\sum_i x_i - k)^2`, so the problem is one quadratic unconstrained
binary optimisation (QUBO) :math:`E(x) = x^\top Q x + c` with a symmetric ``Q``.

**How large must lambda be?** (:func:`penalty_bound`.) Take any ``x`` with :math:`m = \sum x_i \ne k`
and :math:`d = |m - k|`. Flipping ``d`` variables one at a time reaches a feasible ``y``; each flip
raises ``f`` by at most ``D``, where for *adding* a variable to a set of at most ``k - 1`` others
:math:`D_+ = \max_i (Q_{ii} + 2 \cdot \text{sum of the } k - 1 \text{ largest positive } Q_{ij})` and for
*removing* one :math:`D_- = \max_i (-Q_{ii} - 2 \sum_{j} \min(0, Q_{ij}))`. Then
:math:`f^* \le f(y) \le f(x) + dD`, and with :math:`\lambda > D = \max(D_+, D_-)`:
:math:`E(x) - f^* \ge \lambda d^2 - dD \ge d(\lambda - D) > 0`. Every infeasible vector is worse than
the best feasible one, so the unconstrained minimum of ``E`` is the constrained optimum. We use
:math:`\lambda = 1.1 D` by default (for mRMR, :math:`D \le \max(\alpha, 2(1 - \alpha))`).

**Ising form and interoperability.** With :math:`x = (1 + s)/2`, :math:`E = s^\top J s + h^\top s + c'`
(:meth:`QUBO.to_ising`, exact both ways); :meth:`QUBO.to_bqm` gives a ``dimod.BinaryQuadraticModel`` for
D-Wave's samplers and any other dimod tool.

**Solvers.**

* :func:`simulated_bifurcation` — ballistic (bSB) and discrete (dSB) simulated bifurcation (Goto et
  al., Sci. Adv. 2019 and 2021): each spin is a particle with position :math:`x_i` and momentum
  :math:`y_i`; a symplectic Euler step updates
  :math:`y_i \mathrel{+}= \Delta t\,[-(a_0 - a(t)) x_i + c_0 (\sum_j \tilde J_{ij} \phi(x_j) + b_i)]` then
  :math:`x_i \mathrel{+}= \Delta t\, a_0 y_i`, with :math:`\phi(x) = x` (bSB) or :math:`\operatorname{sign}(x)`
  (dSB), a pump :math:`a(t)` that rises linearly from 0 to :math:`a_0 = 1` over the first ``ramp``
  fraction of the steps and then holds (as the ``simulated-bifurcation`` package does), and inelastic
  walls at :math:`|x_i| = 1` (position clipped, momentum zeroed). :math:`c_0 = 0.5 / (\sigma_J \sqrt{N})`
  with :math:`\sigma_J` the root-mean-square coupling; the linear field enters the force as
  :math:`c_0 b_i`. A "select k" penalty adds one stiff mode (all spins moving together) whose frequency
  grows like :math:`n^{1/4}`; the default step is therefore :math:`\Delta t = 0.5 / \sqrt{a_0 + \rho}`
  with :math:`\rho` the spectral radius of :math:`c_0 \tilde J` (a quarter of the explicit
  integrator's stability limit). Many agents run at once as one matrix product per step in torch;
  once the pump has reached :math:`a_0`, an agent stops early when all its positions sit at the walls
  and its spins have not changed for ``patience`` checks.
* :func:`swap_polish` — repair to exactly ``k`` features and a best-improvement swap local search,
  vectorised over agents; "SB + swap" is the solver we use for feature selection, and the chapter
  measures how much of its quality comes from each stage.
* :func:`exact_solve` — exhaustive search for ``n <= 24``: the ``2**n`` energies are formed block by
  block from a split of the bits into a low and a high half (one matrix product per block, no Python
  loop over states).
* Baselines: :func:`greedy_mrmr` (Peng's incremental mRMR), :func:`mi_top_k` (largest relevance),
  :func:`l1_logistic_path` (L1-regularised logistic regression, the first ``k`` features to enter the
  path), and :func:`momentum_simplex` — our re-implementation, from its description, of the routine
  seed 001 calls "simulated bifurcation": heavy-ball gradient steps on the relaxed objective with a
  projection onto the simplex :math:`\{p \ge 0, \sum p = k\}`, then the ``k`` largest coordinates. It has
  no bifurcation, pump or walls; it is projected gradient ascent with momentum.

Every public function validates its arguments before any work and raises
:class:`~ppal_lab.compendium.errors.ParameterError` naming the parameter, the value and the allowed range.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real

__all__ = [
    "MAX_EXACT_N", "SB_MODES", "REDUNDANCY_MEASURES", "QUBO", "Ising", "MRMRProblem", "SBResult",
    "ExactResult", "relevance_redundancy", "mrmr_qubo", "penalty_bound", "cardinality_penalty",
    "simulated_bifurcation", "exact_solve", "exact_energies", "greedy_mrmr", "mi_top_k",
    "l1_logistic_path", "momentum_simplex", "project_simplex", "indices_to_x", "swap_polish",
]

#: Largest number of variables :func:`exact_solve` accepts (2**24 = 16.8 million states).
MAX_EXACT_N = 24
#: Simulated-bifurcation variants: ``"ballistic"`` (bSB) and ``"discrete"`` (dSB).
SB_MODES = ("ballistic", "discrete")
#: Redundancy measures of :func:`relevance_redundancy`.
REDUNDANCY_MEASURES = ("abs_corr", "mi")
_LOW_BITS = 12          # exact search: bits enumerated along the rows of a block
_HIGH_CHUNK_BITS = 10   # ... and at most 2**10 high-bit patterns per block (32 MB of float64)


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------
def _square(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise ParameterError(name, f"<array of shape {arr.shape}>", "a square 2-D array")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(name, "<array with NaN or inf>", "finite values")
    return arr


def _vector(name: str, value: Any, n: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 1 or (n is not None and arr.size != n):
        want = f"a 1-D array of length {n}" if n is not None else "a non-empty 1-D array"
        raise ParameterError(name, f"<array of shape {arr.shape}>", want)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(name, "<array with NaN or inf>", "finite values")
    return arr


def _levels(name: str, value: Any, n: int, levels: tuple[int, int]) -> np.ndarray:
    """One vector ``(n,)`` or a stack ``(m, n)`` whose entries are all in ``levels`` (0/1 or -1/+1)."""
    arr = np.asarray(value)
    if arr.ndim not in (1, 2) or arr.shape[-1] != n:
        raise ParameterError(name, f"<array of shape {arr.shape}>", f"shape ({n},) or (m, {n})")
    arr = arr.astype(np.float64)
    if not np.all((arr == levels[0]) | (arr == levels[1])):
        allowed = f"{{{levels[0]}, {levels[1]}}}"
        raise ParameterError(name, f"<array with values other than {levels[0]} and {levels[1]}>",
                             f"values in {allowed}")
    return arr


def _quadratic(M: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Row-wise ``x^T M x`` for a 2-D ``X`` (float64)."""
    return np.einsum("ij,ij->i", X @ M, X)


# --------------------------------------------------------------------------------------------------
# QUBO and Ising models
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class QUBO:
    """``E(x) = x^T Q x + offset`` over ``x`` in ``{0, 1}^n``; ``Q`` is stored symmetric (float64).

    The diagonal holds the linear terms (``x_i**2 = x_i``). A non-symmetric ``Q`` is replaced by
    ``(Q + Q^T) / 2``, which has the same energies.
    """

    Q: np.ndarray
    offset: float = 0.0

    def __post_init__(self):
        Q = _square("Q", self.Q)
        Q = 0.5 * (Q + Q.T)
        Q.flags.writeable = False
        object.__setattr__(self, "Q", Q)
        object.__setattr__(self, "offset", check_real("offset", self.offset))

    @property
    def n(self) -> int:
        """Number of binary variables."""
        return self.Q.shape[0]

    def energy(self, x: Any) -> float | np.ndarray:
        """Energy of one 0/1 vector (a float) or of each row of a 2-D array (an array)."""
        X = _levels("x", x, self.n, (0, 1))
        e = _quadratic(self.Q, np.atleast_2d(X)) + self.offset
        return float(e[0]) if X.ndim == 1 else e

    def to_ising(self) -> "Ising":
        """The same energies over spins ``s = 2x - 1``: ``J = Q_offdiag / 4``, ``h = Q 1 / 2``."""
        Q = self.Q
        J = Q / 4.0
        np.fill_diagonal(J, 0.0)
        h = Q.sum(axis=1) / 2.0
        const = self.offset + (Q.sum() + np.trace(Q)) / 4.0
        return Ising(J, h, const)

    def to_bqm(self):
        """A ``dimod.BinaryQuadraticModel`` (vartype BINARY, variables ``0 .. n-1``) with the same
        energies."""
        import dimod

        return dimod.BinaryQuadraticModel(np.diag(self.Q).copy(), 2.0 * np.triu(self.Q, 1),
                                          self.offset, dimod.BINARY)


@dataclass(frozen=True, eq=False)
class Ising:
    """``E(s) = s^T J s + h^T s + offset`` over ``s`` in ``{-1, 1}^n``; ``J`` symmetric, zero diagonal."""

    J: np.ndarray
    h: np.ndarray
    offset: float = 0.0

    def __post_init__(self):
        J = _square("J", self.J)
        J = 0.5 * (J + J.T)
        # a diagonal only adds the constant trace(J) since s_i**2 = 1
        offset = check_real("offset", self.offset) + float(np.trace(J))
        np.fill_diagonal(J, 0.0)
        h = _vector("h", self.h, J.shape[0]).copy()
        J.flags.writeable = False
        h.flags.writeable = False
        object.__setattr__(self, "J", J)
        object.__setattr__(self, "h", h)
        object.__setattr__(self, "offset", offset)

    @property
    def n(self) -> int:
        return self.J.shape[0]

    def energy(self, s: Any) -> float | np.ndarray:
        """Energy of one ±1 vector (a float) or of each row of a 2-D array (an array)."""
        S = _levels("s", s, self.n, (-1, 1))
        S2 = np.atleast_2d(S)
        e = _quadratic(self.J, S2) + S2 @ self.h + self.offset
        return float(e[0]) if S.ndim == 1 else e

    def to_qubo(self) -> QUBO:
        """The same energies over ``x = (1 + s) / 2``."""
        J, h = self.J, self.h
        Q = 4.0 * J + np.diag(2.0 * h - 4.0 * J.sum(axis=1))
        return QUBO(Q, self.offset + J.sum() - h.sum())

    def to_bqm(self):
        """A ``dimod.BinaryQuadraticModel`` (vartype SPIN) with the same energies."""
        import dimod

        return dimod.BinaryQuadraticModel(self.h.copy(), 2.0 * np.triu(self.J, 1), self.offset,
                                          dimod.SPIN)


def cardinality_penalty(n: int, k: int, lam: float) -> QUBO:
    """``lam * (sum(x) - k)**2`` as a QUBO: ``Q = lam (1 1^T - 2k I)``, offset ``lam k**2``."""
    n = check_int("n", n, 1)
    k = check_int("k", k, 1, n)
    lam = check_real("lam", lam, 0)
    return QUBO(lam * (np.ones((n, n)) - 2.0 * k * np.eye(n)), lam * k * k)


def penalty_bound(objective: QUBO | np.ndarray, k: int) -> float:
    """The ``D`` of the module docstring: any ``lam > D`` makes every vector with ``sum(x) != k``
    worse than the best vector with ``sum(x) == k``. Returns ``max(D, 0)``."""
    Q = objective.Q if isinstance(objective, QUBO) else _square("objective", objective)
    n = Q.shape[0]
    k = check_int("k", k, 1, n)
    d = np.diag(Q)
    off = Q - np.diag(d)
    pos, neg = np.clip(off, 0.0, None), np.clip(off, None, 0.0)
    top = -np.sort(-pos, axis=1)[:, : k - 1].sum(axis=1) if k > 1 else np.zeros(n)
    add = d + 2.0 * top                  # adding i to a set of at most k - 1 others
    remove = -d - 2.0 * neg.sum(axis=1)  # removing i from any set
    return float(max(add.max(), remove.max() if k < n else -np.inf, 0.0))


@dataclass(frozen=True, eq=False)
class MRMRProblem:
    """An mRMR "select k of n" problem: the scaled inputs, the objective and the penalised QUBO."""

    relevance: np.ndarray     #: scaled to a maximum of 1
    redundancy: np.ndarray    #: scaled to a maximum off-diagonal value of 1, zero diagonal
    k: int
    alpha: float
    lam: float                #: penalty weight used
    lam_bound: float          #: any lam above this keeps the optimum feasible (penalty_bound)
    objective: QUBO           #: f(x), without the penalty
    qubo: QUBO                #: f(x) + lam (sum(x) - k)**2

    @property
    def n(self) -> int:
        return self.qubo.n

    def energy(self, x: Any) -> float | np.ndarray:
        """Penalised energy ``E(x)``."""
        return self.qubo.energy(x)

    def objective_value(self, x: Any) -> float | np.ndarray:
        """mRMR cost ``f(x)`` without the penalty."""
        return self.objective.energy(x)

    def feasible(self, x: Any) -> bool | np.ndarray:
        """Whether ``x`` (one vector or each row) selects exactly ``k`` features."""
        X = _levels("x", x, self.n, (0, 1))
        ok = X.sum(axis=-1) == self.k
        return bool(ok) if X.ndim == 1 else ok


def _scale_max(values: np.ndarray) -> np.ndarray:
    top = float(np.max(values)) if values.size else 0.0
    return values / top if top > 0 else values.copy()


def mrmr_qubo(relevance: Any, redundancy: Any, k: int, alpha: float = 0.5, *, lam: float | None = None,
              penalty_scale: float = 1.1) -> MRMRProblem:
    """Build the mRMR QUBO of the module docstring.

    Parameters
    ----------
    relevance : array of shape (n,)
        Relevance of each feature (>= 0, e.g. mutual information with the label); scaled to max 1.
    redundancy : array of shape (n, n)
        Redundancy between features (>= 0, symmetrised, diagonal ignored); scaled to max 1.
    k : int
        Number of features to select, in [1, n].
    alpha : float, default 0.5
        Weight of relevance against redundancy, in [0, 1].
    lam : float, optional
        Penalty weight (> 0). Default: ``penalty_scale * penalty_bound`` (1.0 if the bound is 0).
    penalty_scale : float, default 1.1
        Safety factor over the bound, > 1.
    """
    r = _vector("relevance", relevance)
    n = r.size
    R = _square("redundancy", redundancy)
    if R.shape[0] != n:
        raise ParameterError("redundancy", f"<array of shape {R.shape}>", f"shape ({n}, {n})")
    if np.any(r < 0):
        raise ParameterError("relevance", float(r[r < 0][0]), "values >= 0")
    if np.any(R < 0):
        raise ParameterError("redundancy", float(R[R < 0][0]), "values >= 0")
    k = check_int("k", k, 1, n)
    alpha = check_real("alpha", alpha, 0, 1)
    penalty_scale = check_real("penalty_scale", penalty_scale, 1, low_open=True)
    if lam is not None:
        lam = check_real("lam", lam, 0, low_open=True)

    r = _scale_max(r)
    R = 0.5 * (R + R.T)
    np.fill_diagonal(R, 0.0)
    R = _scale_max(R)
    Q = (1.0 - alpha) / max(k - 1, 1) * R
    Q[np.diag_indices(n)] = -alpha * r
    objective = QUBO(Q)
    bound = penalty_bound(objective, k)
    if lam is None:
        lam = penalty_scale * bound if bound > 0 else 1.0
    pen = cardinality_penalty(n, k, lam)
    qubo = QUBO(objective.Q + pen.Q, pen.offset)
    r.flags.writeable = False
    R.flags.writeable = False
    return MRMRProblem(r, R, k, alpha, float(lam), bound, objective, qubo)


def relevance_redundancy(X: Any, y: Any, *, discrete: Any = None, redundancy: str = "abs_corr",
                         seed: int = 0, n_neighbors: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Relevance (mutual information of each column with ``y``, in nats) and redundancy between columns.

    ``discrete`` is a boolean mask of nominal columns (their MI uses counts, not neighbours).
    ``redundancy="abs_corr"``: absolute Pearson correlation (0 for a constant column);
    ``"mi"``: mutual information between columns, symmetrised. ``X`` must have no missing values
    (impute first, or use complete features). MI estimates use scikit-learn's k-nearest-neighbour
    estimators with ``random_state=seed``.
    """
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ParameterError("X", f"<array of shape {X.shape}>", "a 2-D array with >= 2 rows")
    if not np.all(np.isfinite(X)):
        raise ParameterError("X", "<array with NaN or inf>", "finite values (impute missing values first)")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ParameterError("y", f"<array of shape {y.shape}>", f"shape ({X.shape[0]},)")
    mask = np.zeros(X.shape[1], bool) if discrete is None else np.asarray(discrete, dtype=bool)
    if mask.shape != (X.shape[1],):
        raise ParameterError("discrete", f"<array of shape {mask.shape}>", f"shape ({X.shape[1]},)")
    check_choice("redundancy", redundancy, REDUNDANCY_MEASURES)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    n_neighbors = check_int("n_neighbors", n_neighbors, 1)

    rel = mutual_info_classif(X, y, discrete_features=mask, n_neighbors=n_neighbors, random_state=seed)
    if redundancy == "abs_corr":
        sd = X.std(axis=0)
        Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        R = np.abs(Z.T @ Z) / X.shape[0]
        R[:, sd == 0] = 0.0
        R[sd == 0, :] = 0.0
        R = np.clip(R, 0.0, 1.0)
    else:
        R = np.zeros((X.shape[1], X.shape[1]))
        for j in range(X.shape[1]):   # one estimator call per column (each over all columns)
            fn = mutual_info_classif if mask[j] else mutual_info_regression
            R[j] = fn(X, X[:, j], discrete_features=mask, n_neighbors=n_neighbors, random_state=seed)
        R = 0.5 * (R + R.T)
    np.fill_diagonal(R, 0.0)
    return np.clip(rel, 0.0, None), R


# --------------------------------------------------------------------------------------------------
# Simulated bifurcation
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SBResult:
    """Outcome of :func:`simulated_bifurcation`."""

    x: np.ndarray            #: best 0/1 vector found (int8)
    energy: float            #: its energy (float64)
    samples: np.ndarray      #: every agent's final 0/1 vector, shape (n_agents, n)
    energies: np.ndarray     #: every agent's energy
    steps: int               #: integration steps run (the last agent's)
    stopped_early: int       #: agents stopped by the stability criterion
    wall_time_s: float
    mode: str
    dt: float                #: time step used


class _torch_threads:
    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.saved = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


def _as_qubo(problem: Any) -> QUBO:
    if isinstance(problem, MRMRProblem):
        return problem.qubo
    if isinstance(problem, Ising):
        return problem.to_qubo()
    if isinstance(problem, QUBO):
        return problem
    raise ParameterError("problem", type(problem).__name__, "a QUBO, Ising or MRMRProblem")


def simulated_bifurcation(problem: QUBO | Ising | MRMRProblem, mode: str = "ballistic", *,
                          n_agents: int = 32, max_steps: int = 1000, dt: float | None = None,
                          ramp: float = 0.7, seed: int = 0,
                          early_stopping: bool = True, check_every: int = 10, patience: int = 5,
                          dtype: str = "float32", num_threads: int | None = None) -> SBResult:
    """Minimise a QUBO with ballistic or discrete simulated bifurcation (Goto et al. 2019, 2021).

    Parameters
    ----------
    problem : QUBO, Ising or MRMRProblem
        What to minimise (an MRMRProblem's penalised QUBO).
    mode : {"ballistic", "discrete"}, default "ballistic"
        bSB (the positions themselves in the coupling term, the better variant on mRMR problems here)
        or dSB (their signs).
    n_agents : int, default 32
        Independent trajectories run together (one matrix product per step), >= 1.
    max_steps : int, default 1000
        Integration steps, >= 1.
    dt : float, optional
        Time step of the symplectic Euler integrator, in (0, 2], capped at 90% of the stability limit
        ``2 / sqrt(1 + rho)``. Default: ``0.5 / sqrt(1 + rho)`` (see the module docstring).
    ramp : float, default 0.7
        Fraction of ``max_steps`` over which the pump ``a(t)`` rises from 0 to 1, in (0, 1]; it then
        holds at 1.
    seed : int, default 0
        Seed of the initial positions and momenta (uniform in [-0.1, 0.1]); same seed, same result.
    early_stopping : bool, default True
        After the pump has reached 1, stop an agent once all its positions are at the walls and its
        spins have been identical for ``patience`` consecutive checks made every ``check_every`` steps;
        the run ends when every agent has stopped.
    dtype : {"float32", "float64"}
        Precision of the dynamics (energies are always recomputed in float64).
    num_threads : int, optional
        torch threads for this call (restored afterwards); ``None`` keeps torch's setting.
    """
    qubo = _as_qubo(problem)
    check_choice("mode", mode, SB_MODES)
    n_agents = check_int("n_agents", n_agents, 1)
    max_steps = check_int("max_steps", max_steps, 1)
    if dt is not None:
        dt = check_real("dt", dt, 0, 2, low_open=True)
    ramp = check_real("ramp", ramp, 0, 1, low_open=True)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    if not isinstance(early_stopping, (bool, np.bool_)):
        raise ParameterError("early_stopping", early_stopping, "True or False")
    check_every = check_int("check_every", check_every, 1)
    patience = check_int("patience", patience, 1)
    check_choice("dtype", dtype, ("float32", "float64"))
    if num_threads is not None:
        num_threads = check_int("num_threads", num_threads, 1)

    t0 = time.perf_counter()
    with _torch_threads(num_threads):
        samples, steps, stopped, dt = _sb_run(qubo, mode, n_agents, max_steps, dt, ramp, seed,
                                          bool(early_stopping), check_every, patience,
                                          getattr(torch, dtype))
    energies = qubo.energy(samples)
    best = int(np.argmin(energies))
    return SBResult(samples[best].copy(), float(energies[best]), samples, energies, steps, stopped,
                    time.perf_counter() - t0, mode, dt)


def _stiffness(K: np.ndarray, a0: float, iterations: int = 60) -> float:
    """``sqrt(a0 + rho)`` with ``rho`` (power iteration, +5%) the spectral radius of the scaled couplings.

    The linear part of the dynamics, ``x'' = -(a0 - a) x + K x``, is integrated stably by symplectic
    Euler only while ``dt * sqrt(a0 + rho) < 2``; a "select k" penalty adds one very stiff mode (all
    spins moving together, ``rho`` of order ``0.5 sqrt(n)``), so ``dt`` must shrink as ``n`` grows."""
    n = K.shape[0]
    v = np.random.default_rng(0).standard_normal(n)
    rho = 0.0
    for _ in range(iterations):
        w = K @ v
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            break
        rho, v = norm / float(np.linalg.norm(v)), w / norm
    return math.sqrt(a0 + 1.05 * rho)


def _sb_run(qubo: QUBO, mode: str, n_agents: int, max_steps: int, dt: float | None, ramp: float, seed: int,
            early_stopping: bool, check_every: int, patience: int, tdtype
            ) -> tuple[np.ndarray, int, int, float]:
    ising = qubo.to_ising()
    n = ising.n
    K = -2.0 * ising.J                     # SB convention: E = -1/2 s^T K s - b^T s (+ const)
    b = -ising.h
    rms = math.sqrt(float((K**2).sum()) / (n * (n - 1))) if n > 1 else 0.0
    c0 = 0.5 / (rms * math.sqrt(n)) if rms > 0 else 0.5
    Kt = torch.as_tensor(K * c0, dtype=tdtype)   # c0 folded into the couplings and the field
    bt = torch.as_tensor(b * c0, dtype=tdtype)
    a0 = 1.0
    limit = _stiffness(K * c0, a0)
    dt = 0.5 / limit if dt is None else min(dt, 1.8 / limit)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_agents, n, generator=gen, dtype=tdtype) * 2 - 1) * 0.1
    y = (torch.rand(n_agents, n, generator=gen, dtype=tdtype) * 2 - 1) * 0.1
    discrete = mode == "discrete"
    ramp_steps = max(1.0, ramp * max_steps)
    final = np.zeros((n_agents, n), dtype=bool)
    active = np.arange(n_agents)
    prev = torch.zeros(n_agents, n, dtype=torch.bool)
    stable = torch.zeros(n_agents, dtype=torch.int64)
    stopped = 0
    step = 0
    for step in range(1, max_steps + 1):
        pump = a0 * min(1.0, (step - 1) / ramp_steps)
        phi = torch.sign(x) if discrete else x
        # y += dt * (-(a0 - a) x + c0 (K phi(x) + b)); x += dt * a0 * y   (symplectic Euler)
        y.add_(x, alpha=-dt * (a0 - pump))
        y.addmm_(phi, Kt, alpha=dt)
        y.add_(bt, alpha=dt)
        x.add_(y, alpha=dt * a0)
        wall = x.abs() > 1.0
        y.masked_fill_(wall, 0.0)
        x.clamp_(-1.0, 1.0)
        if early_stopping and pump >= a0 and step % check_every == 0 and step < max_steps:
            spins = x >= 0
            settled = (spins == prev).all(dim=1) & (x.abs() == 1.0).all(dim=1)
            stable = torch.where(settled, stable + 1, torch.zeros_like(stable))
            prev = spins
            done = stable >= patience
            if bool(done.any()):
                idx = done.numpy()
                final[active[idx]] = spins[done].numpy()
                stopped += int(idx.sum())
                keep = ~done
                active = active[~idx]
                if active.size == 0:
                    break
                x, y, prev, stable = x[keep], y[keep], prev[keep], stable[keep]
    if active.size:
        final[active] = (x >= 0).numpy()
    return final.astype(np.int8), step, stopped, dt


# --------------------------------------------------------------------------------------------------
# Exact search for small n
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------------
def indices_to_x(indices: Sequence[int], n: int) -> np.ndarray:
    """0/1 vector (int8) of length ``n`` with ones at ``indices``."""
    n = check_int("n", n, 1)
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
        raise ParameterError("indices", list(np.asarray(indices).ravel()), f"integers in [0, {n})")
    x = np.zeros(n, dtype=np.int8)
    x[idx] = 1
    return x


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
    if not isinstance(problem, MRMRProblem):
        raise ParameterError("problem", type(problem).__name__, "an MRMRProblem")
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


def _problem_k(problem: Any, k: int | None) -> tuple[MRMRProblem, int]:
    if not isinstance(problem, MRMRProblem):
        raise ParameterError("problem", type(problem).__name__, "an MRMRProblem")
    return problem, problem.k if k is None else check_int("k", k, 1, problem.n)


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
