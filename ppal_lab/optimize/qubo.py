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

The solvers live beside this module: :mod:`ppal_lab.optimize.bifurcation` (simulated bifurcation),
:mod:`ppal_lab.optimize.exact` (exhaustive search), :mod:`ppal_lab.optimize.local_search` (swap polish,
greedy mRMR) and :mod:`ppal_lab.optimize.baselines` (MI top-k, the L1 path, the seed's routine).

Every public function validates its arguments before any work and raises
:class:`~ppal_lab.compendium.errors.ParameterError` naming the parameter, the value and the allowed range.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real

__all__ = [
    "Ising", "MRMRProblem", "QUBO", "REDUNDANCY_MEASURES", "cardinality_penalty", "indices_to_x",
    "mrmr_qubo", "penalty_bound", "relevance_redundancy",
]

#: Redundancy measures of :func:`relevance_redundancy`.
REDUNDANCY_MEASURES = ("abs_corr", "mi")


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




def _as_qubo(problem: Any) -> QUBO:
    """The QUBO behind a QUBO, an Ising model (converted) or an MRMRProblem (its penalised QUBO)."""
    if isinstance(problem, MRMRProblem):
        return problem.qubo
    if isinstance(problem, Ising):
        return problem.to_qubo()
    if isinstance(problem, QUBO):
        return problem
    raise ParameterError("problem", type(problem).__name__, "a QUBO, Ising or MRMRProblem")


def _problem_k(problem: Any, k: int | None) -> tuple[MRMRProblem, int]:
    """``(problem, k)`` with ``k`` defaulting to ``problem.k``; ``problem`` must be an MRMRProblem."""
    if not isinstance(problem, MRMRProblem):
        raise ParameterError("problem", type(problem).__name__, "an MRMRProblem")
    return problem, problem.k if k is None else check_int("k", k, 1, problem.n)


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



def indices_to_x(indices: Sequence[int], n: int) -> np.ndarray:
    """0/1 vector (int8) of length ``n`` with ones at ``indices``."""
    n = check_int("n", n, 1)
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
        raise ParameterError("indices", list(np.asarray(indices).ravel()), f"integers in [0, {n})")
    x = np.zeros(n, dtype=np.int8)
    x[idx] = 1
    return x
