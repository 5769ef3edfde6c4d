r"""Pool-based active learning on any scikit-learn classifier with ``predict_proba``.

Acquisition scores (higher = more informative), from the predicted class probabilities
:math:`p_{(1)} \ge p_{(2)} \ge \dots` of an item:

* ``least_confident``: :math:`1 - p_{(1)}`, in :math:`[0, 1 - 1/C]`;
* ``margin``: :math:`1 - (p_{(1)} - p_{(2)})`, in :math:`[0, 1]` — the usual "smallest margin first"
  rule written so that a larger score means more uncertain;
* ``entropy``: :math:`-\sum_c p_c \ln p_c` (with :math:`0 \ln 0 = 0`), in :math:`[0, \ln C]`;
* ``random``: uniform sampling without replacement (the baseline).

These are the definitions of Settles (2009) and the values scikit-activeml's ``UncertaintySampling``
computes (``'least_confident'``, ``'margin_sampling'``, ``'entropy'``), so the picks coincide whenever
the scores have no ties (tested). Bounded scores also give report-noisy-max a finite sensitivity (see
:mod:`ppal_lab.privacy`).

Top-b selection uses ``np.argpartition`` (linear time) rather than a full sort; ties at the boundary
are broken deterministically by the lowest pool index, and the returned batch is ordered by score
(descending), then index.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from scipy import special, stats

from ppal_lab.compendium.errors import ParameterError, as_generator, check_choice, check_int, check_range

__all__ = [
    "STRATEGIES",
    "LearningCurve",
    "acquisition_scores",
    "label_saving",
    "labels_to_reach",
    "mean_curve",
    "query",
    "run_active_learning",
    "top_k",
    "uncertainty_scores",
]

#: Query strategies understood by :func:`query` and :func:`run_active_learning`.
STRATEGIES: tuple[str, ...] = ("random", "least_confident", "margin", "entropy")
_UNCERTAINTY = STRATEGIES[1:]
_COLUMN_LOOP_MAX = 16  # classes up to which scores are computed column by column


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _n_rows(name: str, X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        raise ParameterError(name, type(X).__name__ if shape is None else f"array of shape {shape}",
                             "a 2-d array (n_samples, n_features)")
    if shape[0] == 0:
        raise ParameterError(name, f"array of shape {shape}", "at least one row")
    return int(shape[0])


def _candidate_indices(candidates: Any, n_pool: int) -> np.ndarray:
    try:
        idx = np.asarray(candidates)
    except (TypeError, ValueError):
        raise ParameterError("candidates", candidates, "a 1-d array of pool indices") from None
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ParameterError("candidates", f"array of dtype {idx.dtype} and shape {idx.shape}",
                             "a non-empty 1-d array of integer pool indices")
    if idx.min() < 0 or idx.max() >= n_pool:
        raise ParameterError("candidates", f"indices in [{idx.min()}, {idx.max()}]",
                             f"indices in [0, {n_pool - 1}]")
    if np.unique(idx).size != idx.size:
        raise ParameterError("candidates", "an array with repeated indices", "unique indices")
    return idx.astype(np.intp, copy=False)


# ----------------------------------------------------------------------------------------------
# scores and selection
# ----------------------------------------------------------------------------------------------
def uncertainty_scores(proba: np.ndarray, strategy: str) -> np.ndarray:
    r"""Uncertainty of each row of a class-probability matrix (higher = more uncertain).

    Parameters
    ----------
    proba : numpy.ndarray of shape (n, C)
        Rows of class probabilities (``predict_proba`` output), ``C >= 2``.
    strategy : {"least_confident", "margin", "entropy"}
        Score, see the module docstring.

    Returns
    -------
    numpy.ndarray of shape (n,)
        Scores.
    """
    check_choice("strategy", strategy, _UNCERTAINTY)
    P = np.asarray(proba, dtype=float)
    if P.ndim != 2 or P.shape[1] < 2:
        raise ParameterError("proba", f"array of shape {P.shape}", "a 2-d array with >= 2 columns")
    if P.shape[1] > _COLUMN_LOOP_MAX:
        return _scores_wide(P, strategy)
    # Few classes: numpy's reductions along a short axis=1 are ~30x slower than a loop of
    # vectorized column operations, which give bit-identical maxima (and sums for < 8 classes).
    cols = [P[:, c] for c in range(P.shape[1])]
    if strategy == "entropy":
        total = special.entr(cols[0])
        for col in cols[1:]:
            total += special.entr(col)
        return total
    first = cols[0].copy()
    if strategy == "least_confident":
        for col in cols[1:]:
            np.maximum(first, col, out=first)
        return 1.0 - first
    second = np.full_like(first, -np.inf)
    for col in cols[1:]:
        np.maximum(second, np.minimum(first, col), out=second)  # runner-up so far
        np.maximum(first, col, out=first)
    return 1.0 - (first - second)


def _scores_wide(P: np.ndarray, strategy: str) -> np.ndarray:
    """Row reductions for many classes (the column loop would cost more than it saves)."""
    if strategy == "least_confident":
        return 1.0 - P.max(axis=1)
    if strategy == "margin":
        top2 = -np.partition(-P, 1, axis=1)[:, :2]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    return special.entr(P).sum(axis=1)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores in linear time, lowest index first among ties.

    Parameters
    ----------
    scores : numpy.ndarray of shape (n,)
        Finite scores.
    k : int
        ``1 <= k <= n``.

    Returns
    -------
    numpy.ndarray of shape (k,)
        Indices ordered by score (descending), then by index (ascending).
    """
    s = np.asarray(scores)
    k = check_int("k", k, 1, s.size)
    if k == s.size:
        chosen = np.arange(s.size)
    else:
        # argpartition is O(n) but arbitrary among ties at the k-th value; fix the boundary so the
        # result is the lowest indices among equal scores, independent of numpy's internals.
        part = np.argpartition(s, s.size - k)[s.size - k:]
        kth = s[part].min()
        above = np.flatnonzero(s > kth)
        ties = np.flatnonzero(s == kth)[: k - above.size]
        chosen = np.concatenate([above, ties])
    return chosen[np.lexsort((chosen, -s[chosen]))]


def acquisition_scores(model: Any, X: Any, strategy: str) -> np.ndarray:
    """``uncertainty_scores(model.predict_proba(X), strategy)`` for a fitted classifier."""
    check_choice("strategy", strategy, _UNCERTAINTY)
    if not hasattr(model, "predict_proba"):
        raise ParameterError("model", type(model).__name__, "a fitted classifier with predict_proba")
    _n_rows("X", X)
    return uncertainty_scores(model.predict_proba(X), strategy)


def _diverse_pick(X: Any, scores: np.ndarray, batch_size: int, diversity: float,
                  shortlist: int) -> np.ndarray:
    """Greedy score/distance trade-off inside the ``shortlist`` best-scored items.

    Returns positions into ``scores``; see :func:`query` for the rule.
    """
    short = top_k(scores, min(shortlist, scores.size))
    rows = X.iloc[short] if hasattr(X, "iloc") else X[short]
    Z = np.asarray(rows.toarray() if hasattr(rows, "toarray") else rows, dtype=float)
    s = scores[short]
    span = s.max() - s.min()
    s_norm = (s - s.min()) / span if span > 0 else np.zeros_like(s)
    # scale distances by the largest distance to the top item so the term lies in [0, 1]
    d_min = np.sqrt(((Z - Z[0]) ** 2).sum(axis=1))
    d_scale = d_min.max()
    if d_scale == 0:
        return short[:batch_size]
    picked = [0]
    taken = np.zeros(short.size, dtype=bool)
    taken[0] = True
    for _ in range(batch_size - 1):
        value = (1.0 - diversity) * s_norm + diversity * np.minimum(d_min / d_scale, 1.0)
        value[taken] = -np.inf
        j = int(np.argmax(value))  # first maximum = best score rank among ties
        picked.append(j)
        taken[j] = True
        d_min = np.minimum(d_min, np.sqrt(((Z - Z[j]) ** 2).sum(axis=1)))
    return short[np.asarray(picked)]


def query(model: Any, X_pool: Any, strategy: str, batch_size: int,
          rng: np.random.Generator | int | None = None, diversity: float = 0.0,
          candidates: Sequence[int] | np.ndarray | None = None,
          shortlist: int | None = None) -> np.ndarray:
    r"""Choose ``batch_size`` pool items to label.

    Uncertainty strategies take the top-``batch_size`` scores (linear-time partition; ties by lowest
    pool index). With ``diversity = \lambda > 0`` the batch is built greedily inside a shortlist of
    the ``m`` best-scored candidates (``m = shortlist``, default ``10 * batch_size``): the first pick is
    the most uncertain item, each further pick maximizes

    .. math:: (1 - \lambda)\,\tilde u_i + \lambda\,\tilde d_i,

    where :math:`\tilde u_i` is the score min-max scaled over the shortlist and :math:`\tilde d_i` the
    Euclidean distance from *i* to the nearest already-picked item, divided by the largest distance
    to the first pick (so both terms lie in [0, 1]); distances are taken in the feature space as
    given, so standardize features whose units differ. :math:`\lambda = 0` is plain top-b;
    :math:`\lambda = 1` is farthest-point traversal of the shortlist.

    Parameters
    ----------
    model : classifier
        Fitted, with ``predict_proba`` (unused for ``"random"``).
    X_pool : array_like of shape (n, d)
        The unlabelled pool (rows indexed by the returned indices).
    strategy : {"random", "least_confident", "margin", "entropy"}
        Acquisition rule.
    batch_size : int
        Number of items, ``1 <= batch_size <= number of candidates``.
    rng : numpy.random.Generator or int, optional
        Needed by ``"random"`` only (ignored otherwise: uncertainty picks are deterministic).
    diversity : float
        :math:`\lambda \in [0, 1]`.
    candidates : array_like of int, optional
        Restrict the choice to these pool indices (e.g. the still-unlabelled ones).
    shortlist : int, optional
        Shortlist size for the diversity step, ``>= batch_size``.

    Returns
    -------
    numpy.ndarray of shape (batch_size,)
        Indices into ``X_pool``, most informative first (uncertainty strategies).
    """
    check_choice("strategy", strategy, STRATEGIES)
    n_pool = _n_rows("X_pool", X_pool)
    cand = None if candidates is None else _candidate_indices(candidates, n_pool)
    n_cand = n_pool if cand is None else cand.size
    batch_size = check_int("batch_size", batch_size, 1, n_cand)
    diversity = float(check_range("diversity", diversity, 0.0, 1.0))
    m = 10 * batch_size if shortlist is None else check_int("shortlist", shortlist, batch_size)
    if strategy == "random":
        gen = as_generator(rng)
        pick = gen.choice(n_cand, size=batch_size, replace=False)
        return pick if cand is None else cand[pick]
    if rng is not None:
        as_generator(rng)  # validate, even though deterministic strategies do not draw
    if not hasattr(model, "predict_proba"):
        raise ParameterError("model", type(model).__name__, "a fitted classifier with predict_proba")

    Xc = X_pool if cand is None else (X_pool.iloc[cand] if hasattr(X_pool, "iloc") else X_pool[cand])
    scores = uncertainty_scores(model.predict_proba(Xc), strategy)
    if not np.all(np.isfinite(scores)):
        raise ValueError("predict_proba returned non-finite probabilities")
    if diversity > 0.0 and batch_size > 1:
        pos = _diverse_pick(Xc, scores, batch_size, diversity, m)
    else:
        pos = top_k(scores, batch_size)
    return pos if cand is None else cand[pos]


# ----------------------------------------------------------------------------------------------
# learning curves
# ----------------------------------------------------------------------------------------------
@dataclass
class LearningCurve:
    """Test accuracy after each labelling round of one active-learning run.

    Attributes
    ----------
    n_labels : numpy.ndarray of int
        Labels used to fit the model at each point (increasing).
    accuracy : numpy.ndarray of float
        Test accuracy at each point.
    strategy : str
        Query strategy.
    seed : int
        Seed of the run (initial set and random draws).
    queried : numpy.ndarray of int
        Pool indices in the order they were labelled (initial set first).
    """

    n_labels: np.ndarray
    accuracy: np.ndarray
    strategy: str
    seed: int
    queried: np.ndarray = field(repr=False)

    def as_frame(self):
        """The curve as a ``pandas.DataFrame`` (columns n_labels, accuracy, strategy, seed)."""
        import pandas as pd

        return pd.DataFrame({"n_labels": self.n_labels, "accuracy": self.accuracy,
                             "strategy": self.strategy, "seed": self.seed})

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return {"strategy": self.strategy, "seed": self.seed,
                "n_labels": self.n_labels.tolist(), "accuracy": self.accuracy.tolist()}


def _initial_indices(y: np.ndarray, n_initial: int, gen: np.random.Generator) -> np.ndarray:
    """Uniform random initial set; if it has one class only, swap its last item for the first item
    of another class in the same permutation (most classifiers cannot fit a single class)."""
    perm = gen.permutation(y.size)
    init = perm[:n_initial].copy()
    if np.unique(y[init]).size < 2:
        other = perm[n_initial:][y[perm[n_initial:]] != y[init[0]]]
        if other.size == 0:
            raise ParameterError("y", "a single class", "at least two classes")
        init[-1] = other[0]
    return init


def run_active_learning(estimator_factory: Callable[[], Any], X: Any, y: Any, X_test: Any,
                        y_test: Any, strategy: str, label_budget: int, batch_size: int,
                        initial_labels: int, seed: int, diversity: float = 0.0,
                        progress: bool = False) -> LearningCurve:
    r"""Simulate pool-based active learning with an oracle that reveals ``y``.

    Start from ``initial_labels`` random labelled items (the same for every strategy at a given
    seed), then repeat: fit a fresh ``estimator_factory()`` on the labelled set, record test
    accuracy, query ``batch_size`` items among the unlabelled ones (the last batch is trimmed) —
    until ``label_budget`` labels (initial ones included) have been used and the final model scored.

    Parameters
    ----------
    estimator_factory : callable
        Returns a new unfitted scikit-learn classifier with ``predict_proba``.
    X, y : array_like
        The pool and its hidden labels.
    X_test, y_test : array_like
        Held-out evaluation data.
    strategy : {"random", "least_confident", "margin", "entropy"}
        Acquisition rule.
    label_budget : int
        Total labels, ``initial_labels <= label_budget <= len(X)``.
    batch_size : int
        Labels per round, >= 1.
    initial_labels : int
        Random labels to start with, ``2 <= initial_labels``.
    seed : int
        Seed of every random draw of the run (>= 0).
    diversity : float
        Diversity weight passed to :func:`query`, in [0, 1].
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    LearningCurve
    """
    if not callable(estimator_factory):
        raise ParameterError("estimator_factory", estimator_factory, "a callable returning a classifier")
    check_choice("strategy", strategy, STRATEGIES)
    n = _n_rows("X", X)
    y_arr = np.asarray(y)
    if y_arr.shape != (n,):
        raise ParameterError("y", f"array of shape {y_arr.shape}", f"shape ({n},) to match X")
    n_test = _n_rows("X_test", X_test)
    y_test_arr = np.asarray(y_test)
    if y_test_arr.shape != (n_test,):
        raise ParameterError("y_test", f"array of shape {y_test_arr.shape}",
                             f"shape ({n_test},) to match X_test")
    initial_labels = check_int("initial_labels", initial_labels, 2, n)
    label_budget = check_int("label_budget", label_budget, initial_labels, n)
    batch_size = check_int("batch_size", batch_size, 1)
    diversity = float(check_range("diversity", diversity, 0.0, 1.0))
    seed = check_int("seed", seed, 0)
    if not isinstance(progress, bool):
        raise ParameterError("progress", progress, "True or False")

    gen = np.random.default_rng(seed)
    take = (lambda A, i: A.iloc[i]) if hasattr(X, "iloc") else (lambda A, i: A[i])
    labelled = np.zeros(n, dtype=bool)
    order = list(_initial_indices(y_arr, initial_labels, gen))
    labelled[order] = True
    n_labels, accuracy = [], []

    n_rounds = math.ceil((label_budget - initial_labels) / batch_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_rounds + 1, desc=f"AL {strategy}", leave=False)
    while True:
        idx = np.asarray(order)
        model = estimator_factory()
        model.fit(take(X, idx), y_arr[idx])
        n_labels.append(idx.size)
        accuracy.append(float(np.mean(model.predict(X_test) == y_test_arr)))
        if bar is not None:
            bar.update(1)
        if idx.size >= label_budget:
            break
        b = min(batch_size, label_budget - idx.size)
        new = query(model, X, strategy, b, rng=gen if strategy == "random" else None,
                    diversity=diversity, candidates=np.flatnonzero(~labelled))
        labelled[new] = True
        order.extend(new.tolist())
    if bar is not None:
        bar.close()
    return LearningCurve(np.asarray(n_labels), np.asarray(accuracy), strategy, seed,
                         np.asarray(order))


def labels_to_reach(curve: LearningCurve, target_accuracy: float) -> int | None:
    """Smallest number of labels at which ``curve`` reaches ``target_accuracy``.

    Parameters
    ----------
    curve : LearningCurve
        A learning curve (``n_labels`` increasing).
    target_accuracy : float
        Target in [0, 1].

    Returns
    -------
    int or None
        The first ``n_labels`` with ``accuracy >= target_accuracy``; ``None`` if never reached.
    """
    if not isinstance(curve, LearningCurve):
        raise ParameterError("curve", type(curve).__name__, "a LearningCurve")
    target = float(check_range("target_accuracy", target_accuracy, 0.0, 1.0))
    hit = np.flatnonzero(curve.accuracy >= target)
    return int(curve.n_labels[hit[0]]) if hit.size else None


def label_saving(curve: LearningCurve, random_curve: LearningCurve,
                 target_accuracy: float) -> float | None:
    r"""Fraction of labels saved against random sampling to reach a target accuracy.

    .. math:: \text{saving} = 1 - L_{\text{strategy}} / L_{\text{random}}

    with :math:`L` from :func:`labels_to_reach`. ``None`` when either curve never reaches the target
    (the saving is then undefined, not zero).
    """
    l_s = labels_to_reach(curve, target_accuracy)
    l_r = labels_to_reach(random_curve, target_accuracy)
    if l_s is None or l_r is None:
        return None
    return 1.0 - l_s / l_r


def mean_curve(curves: Sequence[LearningCurve], confidence: float = 0.95) -> dict:
    """Mean accuracy over runs with a Student-t confidence interval at each ``n_labels``.

    Parameters
    ----------
    curves : sequence of LearningCurve
        Runs on the same ``n_labels`` grid (same budget, batch size and initial size).
    confidence : float
        Level of the interval, in (0, 1).

    Returns
    -------
    dict
        ``n_labels``, ``mean``, ``low``, ``high`` (arrays) and ``n_runs``.
    """
    if len(curves) == 0 or not all(isinstance(c, LearningCurve) for c in curves):
        raise ParameterError("curves", curves, "a non-empty sequence of LearningCurve")
    confidence = float(check_range("confidence", confidence, 0, 1, low_open=True, high_open=True))
    grid = curves[0].n_labels
    if any(not np.array_equal(c.n_labels, grid) for c in curves):
        raise ParameterError("curves", "curves with different n_labels", "the same n_labels grid")
    A = np.vstack([c.accuracy for c in curves])
    mean = A.mean(axis=0)
    if len(curves) > 1:
        half = stats.t.ppf(0.5 + confidence / 2, len(curves) - 1) * A.std(axis=0, ddof=1) \
            / math.sqrt(len(curves))
    else:
        half = np.full_like(mean, np.nan)
    return {"n_labels": grid.copy(), "mean": mean, "low": mean - half, "high": mean + half,
            "n_runs": len(curves)}
