r"""Experiments of the chapter "traditional vs privacy-preserving active learning" (seed 000).

Claims ``label_saving``, ``privacy_utility_eps1`` (each also on the real data set, ``*_real``) and
``privacy_overhead``, declared in the chapter's spec and decided by the verdict engine; figures
``02_learning_curves``, ``02_privacy_utility``, ``02_overhead`` and ``02_real_dataset``; the
remanufacturing data and a real scikit-learn data set; about a minute at the defaults (10 repeats) on two cores.

Three studies on one data set with a fixed held-out test set, each a function that returns a tidy
:class:`pandas.DataFrame` (one row per measurement), plus summary helpers:

* :func:`learning_curves` — centralized, non-private pool-based active learning with scikit-learn's
  ``LogisticRegression`` (refitted from scratch every round) for each strategy of
  :data:`ppal_lab.learning.active.STRATEGIES`, over seeds ``seed, seed + 1, ...``. A target accuracy is a
  fraction of the accuracy of the same model fitted on the *whole* labelled pool (:func:`full_data_accuracy`).
  The chapter's one label-saving estimator reads the labels to a target off the *mean* learning curves with a
  paired bootstrap (:func:`savings_by_target`); :func:`saving_summary` averages it over :data:`SAVING_TARGETS`
  (the claim's metric) and adds the area between the curves. The per-repeat first crossing
  (:func:`label_savings`, the first rule, kept in the record) ends a noisy curve's search at one lucky round
  and drops repeats that never reach the target; the mean curve uses every repeat and gives the labels needed
  in expectation. A target the initial labels already meet leaves nothing to save: its saving is undefined.
* :func:`privacy_utility_grid` — federated active learning (:func:`ppal_lab.federated.run_federated_al`:
  FedAvg over a horizontal partition, DP-SGD, report-noisy-max queries) at each epsilon of a grid, and
  the centralized non-private reference with the *same* model class, training steps, strategy and label
  budget (:func:`ppal_lab.federated.run_centralized`). :func:`fraction_of_centralized` divides each
  federated final accuracy by the reference's of the same seed.
* :func:`round_overhead` — from the same runs: mean wall time per round, private (at one epsilon) over
  non-private (the same federated protocol without noise), minus one.

Seeds: the data set, its train/test split and its partition come from the one ``seed`` of
:func:`prepare`; repeat ``i`` of every experiment uses seed ``seed + i`` for all its random draws
(initial labels, random queries, model initialisation, DP noise), so a repeat's result does not depend
on which other repeats ran. No test label is used to choose anything; the test set's *features* give
the public standardisation, as in :mod:`ppal_lab.federated`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from numbers import Real
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ppal_lab import data as D
from ppal_lab.learning.active import STRATEGIES, LearningCurve, labels_to_reach, mean_curve, run_active_learning
from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real
from ppal_lab.compendium.specs import SPECS
from ppal_lab.compendium.results import mean_ci

__all__ = [
    "AL_DATASETS",
    "EPSILON_GRID",
    "SAVING_TARGETS",
    "ALData",
    "dataset_size",
    "pool_size",
    "validate_setup",
    "prepare",
    "full_data_accuracy",
    "learning_curves",
    "summarize_curves",
    "label_savings",
    "summarize_savings",
    "savings_by_target",
    "saving_summary",
    "privacy_utility_grid",
    "fraction_of_centralized",
    "summarize_fraction",
    "round_overhead",
    "epsilon_label",
    # the notebook's steps
    "validate", "plot_curves", "plot_saving_by_target", "fraction_plot", "fraction_at", "claim_sets",
    "add_claims", "add_metric", "add_figure",
]

#: Data sets of the chapter: the remanufacturing generator and scikit-learn's real sets.
AL_DATASETS: tuple[str, ...] = ("remanufacturing", *D.SKLEARN_DATASETS)
#: The privacy-utility grid of the chapter; ``None`` is the non-private federated run.
EPSILON_GRID: tuple[float | None, ...] = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0, None)
#: Targets of the label-saving curve as fractions of the full-data accuracy (the seed names none); the claim
#: ``label_saving`` reads the saving averaged over them (declared in the chapter's spec).
SAVING_TARGETS: tuple[float, ...] = (0.85, 0.87, 0.89, 0.91, 0.93, 0.95, 0.97, 0.99)
#: Items in scikit-learn's bundled data sets (checked against the loaders by the tests).
_SKLEARN_SIZES = {"breast_cancer": 569, "digits": 1797, "wine": 178}


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(name, value, "True or False")
    return value


def _epsilons(epsilons: Any) -> list[float | None]:
    """A non-empty list of distinct budgets: numbers > 0, with ``None``/``inf`` for non-private."""
    if isinstance(epsilons, (str, bytes)) or not isinstance(epsilons, Sequence) or not epsilons:
        raise ParameterError("epsilons", epsilons, "a non-empty sequence of numbers > 0 or None")
    out: list[float | None] = []
    for e in epsilons:
        if e is None or (isinstance(e, Real) and not isinstance(e, bool) and math.isinf(e) and e > 0):
            value = None
        elif isinstance(e, Real) and not isinstance(e, bool) and e > 0 and math.isfinite(e):
            value = float(e)
        else:
            raise ParameterError("epsilons", list(epsilons),
                                 "numbers > 0, or None / inf for the non-private run")
        if value in out:
            raise ParameterError("epsilons", list(epsilons), "distinct values")
        out.append(value)
    return out


def epsilon_label(epsilon: float | None) -> str:
    """``"none"`` for the non-private run (``None`` or ``inf``), else the number as ``%g``."""
    return "none" if epsilon is None or math.isinf(epsilon) else f"{epsilon:g}"


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ALData:
    """One data set prepared for the chapter: an unlabelled pool with hidden labels, a held-out test
    set and a horizontal partition of the pool.

    Attributes
    ----------
    name : str
        Data set name (one of :data:`AL_DATASETS`).
    X, y : numpy.ndarray
        Pool features (float64, standardised, categorical columns one-hot encoded) and labels.
    X_test, y_test : numpy.ndarray
        The held-out test set, same encoding.
    partition : list of numpy.ndarray
        Pool row indices owned by each participant (disjoint, covering the pool).
    feature_names : tuple of str
        Column names after encoding.
    seed : int
        Seed of the data set, the split and the partition.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    partition: list[np.ndarray]
    feature_names: tuple[str, ...]
    seed: int

    @property
    def pool_size(self) -> int:
        return int(self.y.size)

    @property
    def n_classes(self) -> int:
        return int(max(self.y.max(), self.y_test.max())) + 1

    @property
    def n_participants(self) -> int:
        return len(self.partition)

    def scaling(self) -> tuple[np.ndarray, np.ndarray]:
        """The identity map: features are already standardised (with the test set's statistics, the
        federated module's default public map), so the federated runs must not rescale them."""
        d = self.X.shape[1]
        return np.zeros(d), np.ones(d)


def dataset_size(dataset: str, n_items: int = 4000) -> int:
    """Items in ``dataset`` before the split (``n_items`` for the generated remanufacturing data)."""
    check_choice("dataset", dataset, AL_DATASETS)
    if dataset == "remanufacturing":
        return check_int("n_items", n_items, 10)
    return _SKLEARN_SIZES[dataset]


def pool_size(dataset: str, n_items: int = 4000, test_fraction: float = 0.25) -> int:
    """Size of the unlabelled pool after the held-out split, without loading the data.

    ``ceil(test_fraction * n)`` items go to the test set — scikit-learn's rule for a fractional
    ``test_size`` (checked by :func:`prepare`).
    """
    n = dataset_size(dataset, n_items)
    test_fraction = check_real("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    return n - math.ceil(test_fraction * n)


def validate_setup(datasets: Sequence[str], *, n_items: int = 4000, test_fraction: float = 0.25,
                   label_budget: int = 200, batch_size: int = 10, initial_labels: int = 20,
                   n_participants: int = 4) -> dict[str, int]:
    """Check the data-dependent constraints of the chapter's experiments before any work.

    For every data set: ``n_participants <= initial_labels < label_budget <= pool size`` (each site
    starts with at least one label, and the budget cannot exceed the pool), ``initial_labels >= 2``,
    ``batch_size >= 1``, ``n_participants >= 1``.

    Returns
    -------
    dict
        Pool size of each data set.
    """
    if isinstance(datasets, str) or not isinstance(datasets, Sequence) or not datasets:
        raise ParameterError("datasets", datasets, "a non-empty sequence of data set names")
    n_participants = check_int("n_participants", n_participants, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    initial_labels = check_int("initial_labels", initial_labels, max(2, n_participants))
    label_budget = check_int("label_budget", label_budget, initial_labels + 1)
    pools = {}
    for name in datasets:
        n_pool = pool_size(name, n_items, test_fraction)
        if n_participants > n_pool:
            raise ParameterError("n_participants", n_participants,
                                 f"at most the pool size {n_pool} of {name}")
        if initial_labels >= n_pool:
            raise ParameterError("initial_labels", initial_labels,
                                 f"smaller than the pool size {n_pool} of {name}")
        check_int("label_budget", label_budget, initial_labels + 1, n_pool)
        pools[name] = n_pool
    return pools


def prepare(dataset: str, seed: int = 0, *, n_items: int = 4000, test_fraction: float = 0.25,
            n_participants: int = 4, non_iid: float = 0.5) -> ALData:
    """Load ``dataset``, split off a stratified test set and partition the pool across sites.

    Categorical columns are one-hot encoded; every column is then standardised with the mean and
    standard deviation of the *test* set (the federated orchestrator's public map: it holds no
    participant record). The pool is split across ``n_participants`` sites by
    :func:`ppal_lab.data.horizontal_partition` (label-skewed with strength ``non_iid``).

    Parameters
    ----------
    dataset : str
        One of :data:`AL_DATASETS`.
    seed : int
        Seed of the generated data (remanufacturing), the split and the partition, >= 0.
    n_items : int
        Remanufacturing items generated (pool + test); ignored by the scikit-learn sets.
    test_fraction : float
        Share of items held out for testing, in (0, 1).
    n_participants : int
        Sites, in [1, pool size].
    non_iid : float
        Label skew of the partition, in [0, 1].

    Returns
    -------
    ALData
    """
    from sklearn.model_selection import train_test_split

    check_choice("dataset", dataset, AL_DATASETS)
    seed = check_int("seed", seed, 0)
    n_pool = pool_size(dataset, n_items, test_fraction)
    n_participants = check_int("n_participants", n_participants, 1, n_pool)
    non_iid = check_real("non_iid", non_iid, 0.0, 1.0)

    raw = (D.load_dataset(dataset, seed=seed, n_items=n_items) if dataset == "remanufacturing"
           else D.load_dataset(dataset, seed=seed))
    frame = raw.X
    if raw.categorical:
        frame = pd.get_dummies(frame.astype({c: "int64" for c in raw.categorical}),
                               columns=list(raw.categorical), dtype=float)
    X = frame.to_numpy(dtype=np.float64)
    y = np.asarray(raw.y, dtype=np.int64)
    pool, test = train_test_split(np.arange(y.size), test_size=test_fraction, stratify=y,
                                  random_state=seed)
    pool, test = np.sort(pool), np.sort(test)
    if pool.size != n_pool:  # pool_size() must predict what the split does
        raise RuntimeError(f"pool of {pool.size} items, pool_size() said {n_pool}")
    center = X[test].mean(axis=0)
    scale = X[test].std(axis=0)
    scale[~(scale > 0)] = 1.0
    Xs = (X - center) / scale
    parts = D.horizontal_partition(raw.subset(pool), n_participants, non_iid=non_iid, seed=seed)
    return ALData(name=dataset, X=Xs[pool], y=y[pool], X_test=Xs[test], y_test=y[test],
                  partition=parts, feature_names=tuple(map(str, frame.columns)), seed=seed)


def _check_data(data: Any) -> ALData:
    if not isinstance(data, ALData):
        raise ParameterError("data", type(data).__name__, "an ALData from prepare()")
    return data


def _logreg():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def full_data_accuracy(data: ALData) -> float:
    """Test accuracy of the chapter's scikit-learn model (``LogisticRegression``, default
    regularisation) fitted on the whole pool with all its labels: the "full-data accuracy"."""
    from threadpoolctl import threadpool_limits

    data = _check_data(data)
    with threadpool_limits(1):
        model = _logreg().fit(data.X, data.y)
        return float(np.mean(model.predict(data.X_test) == data.y_test))


# ----------------------------------------------------------------------------------------------
# 1. centralized learning curves and label savings
# ----------------------------------------------------------------------------------------------
def learning_curves(data: ALData, strategies: Sequence[str] = STRATEGIES, *, label_budget: int = 200,
                    batch_size: int = 10, initial_labels: int = 20, n_seeds: int = 5, seed: int = 0,
                    progress: bool = False) -> pd.DataFrame:
    """Centralized non-private active learning for each strategy and seed.

    Every run is :func:`ppal_lab.learning.active.run_active_learning` with a fresh scikit-learn
    ``LogisticRegression`` per round; repeat ``i`` uses seed ``seed + i`` (so all strategies of a repeat
    start from the same random initial labels).

    Returns
    -------
    pandas.DataFrame
        Columns ``strategy``, ``seed``, ``n_labels``, ``accuracy``: one row per strategy, seed and
        round.
    """
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    data = _check_data(data)
    if isinstance(strategies, str) or not isinstance(strategies, Sequence) or not strategies:
        raise ParameterError("strategies", strategies, "a non-empty sequence of strategies")
    for s in strategies:
        check_choice("strategies", s, STRATEGIES)
    if len(set(strategies)) != len(strategies):
        raise ParameterError("strategies", list(strategies), "distinct strategies")
    initial_labels = check_int("initial_labels", initial_labels, 2, data.pool_size - 1)
    label_budget = check_int("label_budget", label_budget, initial_labels + 1, data.pool_size)
    batch_size = check_int("batch_size", batch_size, 1)
    n_seeds = check_int("n_seeds", n_seeds, 1)
    seed = check_int("seed", seed, 0)
    progress = _bool("progress", progress)

    frames = []
    jobs = [(s, st) for s in range(seed, seed + n_seeds) for st in strategies]
    with threadpool_limits(1):
        for s, st in tqdm(jobs, desc="learning curves", disable=not progress, leave=False):
            curve = run_active_learning(_logreg, data.X, data.y, data.X_test, data.y_test, st,
                                        label_budget, batch_size, initial_labels, s)
            frames.append(curve.as_frame())
    return pd.concat(frames, ignore_index=True)


def _curves_of(curves: pd.DataFrame) -> dict[tuple[str, int], LearningCurve]:
    need = {"strategy", "seed", "n_labels", "accuracy"}
    if not isinstance(curves, pd.DataFrame) or not need <= set(curves.columns) or curves.empty:
        raise ParameterError("curves", type(curves).__name__,
                             "a non-empty DataFrame with columns " + ", ".join(sorted(need)))
    out = {}
    for (st, s), g in curves.groupby(["strategy", "seed"], sort=False):
        g = g.sort_values("n_labels")
        out[(str(st), int(s))] = LearningCurve(g["n_labels"].to_numpy(), g["accuracy"].to_numpy(),
                                               str(st), int(s), np.zeros(0, dtype=np.int64))
    return out


def summarize_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy and 95% Student-t interval over seeds at each label count, per strategy.

    Returns
    -------
    pandas.DataFrame
        Columns ``strategy``, ``n_labels``, ``mean``, ``low``, ``high``, ``n_seeds``.
    """
    runs = _curves_of(curves)
    rows = []
    for st in dict.fromkeys(k[0] for k in runs):
        summary = mean_curve([c for (name, _), c in runs.items() if name == st])
        rows.append(pd.DataFrame({"strategy": st, "n_labels": summary["n_labels"],
                                  "mean": summary["mean"], "low": summary["low"],
                                  "high": summary["high"], "n_seeds": summary["n_runs"]}))
    return pd.concat(rows, ignore_index=True)


def label_savings(curves: pd.DataFrame, target_accuracy: float,
                  baseline: str = "random") -> pd.DataFrame:
    r"""Labels each run needs to reach ``target_accuracy``, and the saving against the baseline run
    of the same seed, :math:`1 - L_{\text{strategy}} / L_{\text{baseline}}`.

    A run that never reaches the target within its budget has ``labels = NaN``; its saving is then
    undefined (NaN), not zero, and so is a seed whose initial labels already meet the target (nothing
    to save) — :func:`summarize_savings` reports how many seeds it rests on.

    Returns
    -------
    pandas.DataFrame
        Columns ``strategy``, ``seed``, ``labels``, ``baseline_labels``, ``saving`` (one row per
        strategy other than the baseline, and seed).
    """
    runs = _curves_of(curves)
    target = check_real("target_accuracy", target_accuracy, 0.0, 1.0)
    check_choice("baseline", baseline, sorted({k[0] for k in runs}))
    rows = []
    for (st, s), curve in runs.items():
        if st == baseline:
            continue
        if (baseline, s) not in runs:
            raise ParameterError("curves", f"no {baseline!r} run for seed {s}",
                                 "a baseline run for every seed")
        own = labels_to_reach(curve, target)
        base = labels_to_reach(runs[(baseline, s)], target)
        at_start = own == base == curve.n_labels[0]
        saving = np.nan if own is None or base is None or at_start else 1.0 - own / base
        rows.append({"strategy": st, "seed": s, "labels": np.nan if own is None else float(own),
                     "baseline_labels": np.nan if base is None else float(base), "saving": saving})
    return pd.DataFrame(rows, columns=["strategy", "seed", "labels", "baseline_labels", "saving"])


def _summary_row(values: np.ndarray) -> dict:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": np.nan, "low": np.nan, "high": np.nan, "n": 0}
    mean, ci, n = mean_ci(v)
    low, high = ci if ci is not None else (np.nan, np.nan)
    return {"mean": mean, "low": low, "high": high, "n": n}


def summarize_savings(savings: pd.DataFrame) -> pd.DataFrame:
    """Per strategy of :func:`label_savings`: mean ``labels`` and ``baseline_labels`` over the seeds that
    reached the target, mean ``saving`` with its 95% Student-t interval (``saving_low``, ``saving_high``)
    over the ``n`` seeds where it is defined, and ``n_seeds``."""
    need = {"strategy", "seed", "labels", "baseline_labels", "saving"}
    if not isinstance(savings, pd.DataFrame) or not need <= set(savings.columns):
        raise ParameterError("savings", type(savings).__name__, "the DataFrame of label_savings()")
    rows = []
    for st, g in savings.groupby("strategy", sort=False):
        s = _summary_row(g["saving"].to_numpy())
        rows.append({"strategy": st, "labels": g["labels"].mean(),
                     "baseline_labels": g["baseline_labels"].mean(), "saving": s["mean"],
                     "saving_low": s["low"], "saving_high": s["high"], "n": s["n"],
                     "n_seeds": int(g["seed"].nunique())})
    return pd.DataFrame(rows)


def _paired_matrices(curves: pd.DataFrame, strategy: str, baseline: str
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy matrices (seeds x points) of two strategies over their common seeds, and the grid."""
    runs = _curves_of(curves)
    strategies = sorted({k[0] for k in runs})
    check_choice("strategy", strategy, strategies)
    check_choice("baseline", baseline, strategies)
    seeds = sorted({s for (st, s) in runs if st == strategy} & {s for (st, s) in runs if st == baseline})
    if not seeds:
        raise ParameterError("curves", f"no seed with both {strategy!r} and {baseline!r}",
                             "paired runs (the same seeds for both)")
    grid = runs[(strategy, seeds[0])].n_labels
    if any(not np.array_equal(runs[(st, s)].n_labels, grid) for s in seeds for st in (strategy, baseline)):
        raise ParameterError("curves", "runs with different n_labels", "the same n_labels grid")
    A = np.vstack([runs[(strategy, s)].accuracy for s in seeds])
    B = np.vstack([runs[(baseline, s)].accuracy for s in seeds])
    return A, B, np.asarray(grid)


def _reach(M: np.ndarray, grid: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels at which each mean curve (last axis of ``M``) first reaches each target (a new axis before
    it), censored at one grid step beyond the budget (a lower bound); and whether it got there."""
    reach = M[..., None, :] >= targets[:, None]
    reached = reach.any(axis=-1)
    step = grid[-1] - grid[-2] if grid.size > 1 else grid[-1]
    return np.where(reached, grid[np.argmax(reach, axis=-1)], grid[-1] + step).astype(float), reached


def _savings(A: np.ndarray, B: np.ndarray, grid: np.ndarray, targets: np.ndarray) -> dict:
    """The chapter's estimator on mean curves ``A`` (strategy) and ``B`` (baseline): per target the labels
    each needs and the saving ``1 - L_A / L_B``, NaN where undefined: the initial labels meet the target
    for both (nothing to save), or neither curve reaches it within the budget."""
    la, ra = _reach(A, grid, targets)
    lb, rb = _reach(B, grid, targets)
    undefined = ((la == grid[0]) & (lb == grid[0])) | ~(ra | rb)
    return {"labels": la, "baseline_labels": lb, "reached": ra & rb,
            "saving": np.where(undefined, np.nan, 1.0 - la / lb)}


def _bootstrap(curves: pd.DataFrame, strategy: str, baseline: str, targets: np.ndarray, n_boot: int,
               seed: int) -> tuple[dict, dict, np.ndarray, int]:
    """:func:`_savings` of the mean curves over the paired seeds and of ``n_boot`` resamples of the seeds
    (with replacement, the same resample for both strategies), with the mean curves' difference ``gap``."""
    A, B, grid = _paired_matrices(curves, strategy, baseline)
    n_boot, seed = check_int("n_boot", n_boot, 100), check_int("seed", seed, 0)
    idx = np.random.default_rng(seed).integers(A.shape[0], size=(n_boot, A.shape[0]))
    point = _savings(A.mean(axis=0), B.mean(axis=0), grid, targets)
    boot = _savings(A[idx].mean(axis=1), B[idx].mean(axis=1), grid, targets)
    point["gap"], boot["gap"] = A.mean(axis=0) - B.mean(axis=0), A[idx].mean(axis=1) - B[idx].mean(axis=1)
    return point, boot, grid, A.shape[0]


def _percentiles(draws: np.ndarray) -> np.ndarray:
    """2.5th and 97.5th percentiles of bootstrap draws (axis 0), ignoring undefined (NaN) draws."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all draws undefined: NaN, said by the caller
        return np.nanpercentile(draws, [2.5, 97.5], axis=0)


def _fractions(fractions: Any) -> np.ndarray:
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence) or not fractions:
        raise ParameterError("fractions", fractions, "a non-empty sequence of numbers in (0, 1]")
    return np.array([check_real("fractions", f, 0.0, 1.0, low_open=True) for f in fractions])


def savings_by_target(curves: pd.DataFrame, full_accuracy: float, fractions: Sequence[float] = SAVING_TARGETS,
                      baseline: str = "random", n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    r"""Label saving at the targets ``fraction * full_accuracy`` read off the *mean* learning curves, with a
    paired bootstrap: the chapter's one estimator.

    :math:`L` is the first label count at which the mean accuracy over seeds reaches a target (the labels
    needed *in expectation*); the saving is :math:`1 - L_{\text{strategy}} / L_{\text{baseline}}`. The 95%
    interval is the percentile bootstrap: seeds resampled with replacement, the same resample for both
    strategies and all targets, ``n_boot`` times; undefined resamples are left out. A mean curve that never
    reaches a target is *censored* at one grid step beyond the budget (a lower bound on :math:`L`;
    ``censored``, ``censored_share`` of resamples). The saving is undefined (NaN) if neither curve reaches
    the target or the initial labels already meet it.

    Returns
    -------
    pandas.DataFrame
        One row per strategy other than the baseline and target: ``target_fraction``, ``strategy``,
        ``target_accuracy``, ``labels``, ``baseline_labels``, ``saving`` (each with ``_low``/``_high``, the
        baseline's as ``baseline_low``/``baseline_high``), ``censored``, ``censored_share``, ``n_seeds``.
    """
    full = check_real("full_accuracy", full_accuracy, 0.0, 1.0, low_open=True)
    fr = _fractions(fractions)
    strategies = list(dict.fromkeys(str(s) for s in curves["strategy"])) if isinstance(
        curves, pd.DataFrame) and "strategy" in curves else []
    _curves_of(curves)  # validates the frame
    check_choice("baseline", baseline, strategies)
    rows = []
    for st in (s for s in strategies if s != baseline):
        point, boot, _, n = _bootstrap(curves, st, baseline, full * fr, n_boot, seed)
        (s_lo, s_hi), (l_lo, l_hi), (b_lo, b_hi) = (_percentiles(boot[k]) for k in (
            "saving", "labels", "baseline_labels"))
        rows.append(pd.DataFrame({
            "target_fraction": fr, "strategy": st, "target_accuracy": full * fr, "labels": point["labels"],
            "labels_low": l_lo, "labels_high": l_hi, "baseline_labels": point["baseline_labels"],
            "baseline_low": b_lo, "baseline_high": b_hi, "saving": point["saving"], "saving_low": s_lo,
            "saving_high": s_hi, "censored": ~point["reached"],
            "censored_share": np.mean(~boot["reached"], axis=0), "n_seeds": n}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def saving_summary(curves: pd.DataFrame, full_accuracy: float, strategy: str, baseline: str = "random",
                   fractions: Sequence[float] = SAVING_TARGETS, n_boot: int = 2000, seed: int = 0) -> dict:
    r"""The label-saving claim's figures for ``strategy``: the saving of :func:`savings_by_target` averaged
    over the targets where it is defined, with the same paired bootstrap (each resample averages its own
    defined targets; targets the baseline never reaches enter as lower bounds). ``headroom``: that average
    for a strategy reaching each of those targets right after its first query round,
    :math:`1 - L_1 / L_{\text{baseline}}` (0 when no target is defined); a bed where even that saves less
    than the claim needs cannot show it. ``area``: the area between the mean learning curves (strategy minus
    baseline) over the label range divided by its width, the mean accuracy gain, same bootstrap.

    Returns
    -------
    dict
        ``saving``, ``saving_low``, ``saving_high`` (NaN if no target is defined), ``n_targets`` (targets
        with a defined saving), ``headroom``, ``area``, ``area_low``, ``area_high``, ``n_seeds``.
    """
    full = check_real("full_accuracy", full_accuracy, 0.0, 1.0, low_open=True)
    point, boot, grid, n = _bootstrap(curves, strategy, baseline, full * _fractions(fractions), n_boot, seed)
    defined = np.isfinite(point["saving"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without a defined target: NaN
        lo, hi = _percentiles(np.nanmean(boot["saving"], axis=1))
    best = np.maximum(0.0, 1.0 - grid[1] / point["baseline_labels"][defined])

    def area(gap: np.ndarray) -> np.ndarray:
        return np.trapezoid(gap, grid, axis=-1) / (grid[-1] - grid[0])

    a_lo, a_hi = np.percentile(area(boot["gap"]), [2.5, 97.5])
    return {"saving": float(point["saving"][defined].mean()) if defined.any() else np.nan,
            "saving_low": float(lo), "saving_high": float(hi), "n_targets": int(defined.sum()),
            "headroom": float(best.mean()) if defined.any() else 0.0, "area": float(area(point["gap"])),
            "area_low": float(a_lo), "area_high": float(a_hi), "n_seeds": n}


# ----------------------------------------------------------------------------------------------
# 2. privacy-utility grid and 3. overhead
# ----------------------------------------------------------------------------------------------
def privacy_utility_grid(data: ALData, epsilons: Sequence[float | None] = EPSILON_GRID, *,
                         strategy: str = "entropy", label_budget: int = 200, batch_size: int = 10,
                         initial_labels: int = 20, delta: float = 1e-5, model: str = "logreg",
                         n_seeds: int = 5, seed: int = 0, progress: bool = False,
                         **federated_kwargs: Any) -> pd.DataFrame:
    """Federated private active learning at each epsilon, and the centralized non-private reference.

    For each repeat ``i`` (seed ``s = seed + i``): one :func:`ppal_lab.federated.run_centralized`
    (the whole pool, same model class and training, same strategy and label budget) and one
    :func:`ppal_lab.federated.run_federated_al` per epsilon on ``data.partition``. The runs of one seed
    follow each other, so private and non-private round times are measured close together in time.

    ``data`` comes from :func:`prepare`; ``epsilons`` are per-participant budgets (unit: one record;
    ``None`` or ``inf`` = the non-private federated run); ``strategy``, ``label_budget``, ``batch_size``,
    ``initial_labels``, ``delta`` and ``model`` are as in :func:`~ppal_lab.federated.run_federated_al`;
    repeats use seeds ``seed ... seed + n_seeds - 1``; ``progress`` shows a tqdm bar. Further keyword
    arguments go to :func:`~ppal_lab.federated.run_federated_al` (``query_share``, ``lr``,
    ``max_grad_norm`` ...), and those :func:`~ppal_lab.federated.run_centralized` also takes
    (``local_epochs``, ``sample_rate``, ``lr``, ``hidden``) to the reference too.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``setting`` ("centralized" or "federated"), ``epsilon`` (``inf`` for
        non-private), ``seed``, ``final_accuracy``, ``epsilon_spent`` (largest over participants;
        ``inf`` when non-private), ``noise_multiplier`` (NaN when non-private), ``n_labels``,
        ``n_rounds``, ``mean_round_s``, ``wall_time_s``, ``stopped_early``.
    """
    from tqdm.auto import tqdm

    from ppal_lab import federated as F

    data = _check_data(data)
    eps_list = _epsilons(epsilons)
    check_choice("strategy", strategy, STRATEGIES)
    initial_labels = check_int("initial_labels", initial_labels, max(2, data.n_participants),
                          data.pool_size - 1)
    label_budget = check_int("label_budget", label_budget, initial_labels + 1, data.pool_size)
    batch_size = check_int("batch_size", batch_size, 1)
    delta = check_real("delta", delta, 0.0, 1.0, low_open=True, high_open=True)
    check_choice("model", model, F.MODELS)
    n_seeds = check_int("n_seeds", n_seeds, 1)
    seed = check_int("seed", seed, 0)
    progress = _bool("progress", progress)
    shared = {k: federated_kwargs[k] for k in ("local_epochs", "sample_rate", "lr", "hidden")
              if k in federated_kwargs}
    common = dict(label_budget=label_budget, batch_size=batch_size, strategy=strategy, model=model,
                  initial_labels=initial_labels, scaling=data.scaling())

    def row(setting: str, eps: float | None, s: int, res: Any) -> dict:
        spent = float(np.max(res.epsilon_spent))
        return {"setting": setting, "epsilon": math.inf if eps is None else eps, "seed": s,
                "final_accuracy": res.final_accuracy, "epsilon_spent": spent,
                "noise_multiplier": np.nan if res.noise_multiplier is None else res.noise_multiplier,
                "n_labels": int(res.curve.n_labels[-1]), "n_rounds": len(res.round_time_s),
                "mean_round_s": float(np.mean(res.round_time_s)), "wall_time_s": res.wall_time_s,
                "stopped_early": bool(res.stopped_early)}

    rows = []
    with tqdm(total=n_seeds * (len(eps_list) + 1), desc="privacy-utility grid", disable=not progress,
              leave=False) as bar:
        for s in range(seed, seed + n_seeds):
            ref = F.run_centralized(data.X, data.y, data.X_test, data.y_test, seed=s, **common,
                                    **shared)
            rows.append(row("centralized", None, s, ref))
            bar.update(1)
            for eps in eps_list:
                res = F.run_federated_al(data.X, data.y, data.X_test, data.y_test, data.partition,
                                         epsilon=eps, delta=delta, seed=s, **common,
                                         **federated_kwargs)
                rows.append(row("federated", eps, s, res))
                bar.update(1)
    return pd.DataFrame(rows)


_GRID_COLUMNS = {"setting", "epsilon", "seed", "final_accuracy", "mean_round_s"}


def _check_grid(grid: Any) -> pd.DataFrame:
    if not isinstance(grid, pd.DataFrame) or not _GRID_COLUMNS <= set(grid.columns) or grid.empty:
        raise ParameterError("grid", type(grid).__name__,
                             "a DataFrame from privacy_utility_grid() (columns "
                             + ", ".join(sorted(_GRID_COLUMNS)) + ")")
    return grid


def fraction_of_centralized(grid: pd.DataFrame) -> pd.DataFrame:
    """Final accuracy of each federated run divided by the centralized reference's of the same seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``epsilon``, ``seed``, ``accuracy``, ``centralized_accuracy``, ``fraction``.
    """
    grid = _check_grid(grid)
    ref = grid[grid["setting"] == "centralized"].set_index("seed")["final_accuracy"]
    if ref.index.has_duplicates:
        raise ParameterError("grid", "several centralized runs for one seed", "one per seed")
    fed = grid[grid["setting"] == "federated"]
    missing = sorted(set(fed["seed"]) - set(ref.index))
    if missing:
        raise ParameterError("grid", f"no centralized run for seeds {missing}",
                             "a centralized run for every seed")
    if (ref <= 0).any():
        raise ParameterError("grid", "a centralized accuracy of 0", "positive reference accuracies")
    central = fed["seed"].map(ref).to_numpy()
    return pd.DataFrame({"epsilon": fed["epsilon"].to_numpy(), "seed": fed["seed"].to_numpy(),
                         "accuracy": fed["final_accuracy"].to_numpy(),
                         "centralized_accuracy": central,
                         "fraction": fed["final_accuracy"].to_numpy() / central})


def summarize_fraction(fractions: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy and fraction of centralized per epsilon, with 95% Student-t intervals over seeds.

    Returns
    -------
    pandas.DataFrame
        One row per epsilon (ascending, non-private last): ``epsilon``, ``accuracy``, ``fraction``,
        ``fraction_low``, ``fraction_high``, ``n``.
    """
    need = {"epsilon", "seed", "accuracy", "fraction"}
    if not isinstance(fractions, pd.DataFrame) or not need <= set(fractions.columns):
        raise ParameterError("fractions", type(fractions).__name__,
                             "the DataFrame of fraction_of_centralized()")
    rows = []
    for eps, g in fractions.groupby("epsilon", sort=True):
        s = _summary_row(g["fraction"].to_numpy())
        rows.append({"epsilon": float(eps), "accuracy": float(g["accuracy"].mean()),
                     "fraction": s["mean"], "fraction_low": s["low"], "fraction_high": s["high"],
                     "n": s["n"]})
    return pd.DataFrame(rows)


def round_overhead(grid: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    r"""Per seed: mean wall time per round of the private federated run at ``epsilon`` and of the
    non-private federated run, and the overhead :math:`t_{\text{private}} / t_{\text{non-private}} - 1`.

    Returns
    -------
    pandas.DataFrame
        Columns ``seed``, ``private_round_s``, ``nonprivate_round_s``, ``overhead``.
    """
    grid = _check_grid(grid)
    if isinstance(epsilon, bool) or not isinstance(epsilon, Real) or not (0 < epsilon < math.inf):
        raise ParameterError("epsilon", epsilon, "a finite number > 0 present in the grid")
    fed = grid[grid["setting"] == "federated"]
    private = fed[np.isclose(fed["epsilon"], float(epsilon))].set_index("seed")["mean_round_s"]
    plain = fed[np.isinf(fed["epsilon"])].set_index("seed")["mean_round_s"]
    if private.empty:
        raise ParameterError("epsilon", epsilon, "an epsilon of the grid")
    if plain.empty:
        raise ParameterError("grid", "no non-private federated run", "epsilon None in the grid")
    seeds = sorted(set(private.index) & set(plain.index))
    p, n = private.loc[seeds].to_numpy(), plain.loc[seeds].to_numpy()
    return pd.DataFrame({"seed": seeds, "private_round_s": p, "nonprivate_round_s": n,
                         "overhead": p / n - 1.0})


# ----------------------------------------------------------------------------------------------
# the notebook's steps: set-up, figures, claims and record
# ----------------------------------------------------------------------------------------------
def validate(P: Any) -> None:
    """The notebook's joint parameter checks, then one torch thread and torch seeded with ``P.seed``."""
    import torch

    validate_setup([P.dataset, P.real_dataset], n_items=P.n_items, test_fraction=P.test_fraction,
                   label_budget=P.label_budget, batch_size=P.batch_size, initial_labels=P.initial_labels,
                   n_participants=P.n_participants)
    torch.set_num_threads(1)
    torch.manual_seed(P.seed)


def plot_curves(ax: Any, summary: pd.DataFrame) -> None:
    """Mean learning curve and 95% band of each strategy (:func:`summarize_curves` output)."""
    for i, (name, g) in enumerate(summary.groupby("strategy", sort=False)):
        ax.plot(g["n_labels"], g["mean"], label=name.replace("_", " "), lw=2.2 - 0.4 * i,
                ls=["-", "-", "--", ":"][i])
        ax.fill_between(g["n_labels"], g["low"], g["high"], alpha=0.15)


def plot_saving_by_target(ax: Any, by_target: pd.DataFrame, strategy: str) -> None:
    """Label saving of ``strategy`` against random per target (censored targets as lower bounds)."""
    sub = by_target[by_target["strategy"] == strategy]
    ax.errorbar(sub["target_fraction"], sub["saving"], capsize=3, ls="-", marker="",
                yerr=[sub["saving"] - sub["saving_low"], sub["saving_high"] - sub["saving"]])
    for censored, marker in [(False, "o"), (True, "^")]:
        pts = sub[sub["censored"] == censored]
        ax.plot(pts["target_fraction"], pts["saving"], marker, c="C0", mfc="white" if censored else "C0",
                label="random never reaches it: lower bound" if censored else "saving (bootstrap 95% CI)")
    ax.axhline(0.73, c="C3", ls="--", label="seed's claim (73%)")
    ax.axhline(0, c="k", lw=0.8)


def fraction_plot(ax: Any, table: pd.DataFrame, title: str, delta: float) -> None:
    """Fraction of centralized accuracy against epsilon (:func:`summarize_fraction` output)."""
    x = np.where(np.isinf(table["epsilon"]), 32.0, table["epsilon"])
    ax.errorbar(x, table["fraction"], capsize=3, marker="o",
                yerr=[table["fraction"] - table["fraction_low"], table["fraction_high"] - table["fraction"]])
    ax.axhline(0.92, c="C3", ls="--", label="seed's claim at ε = 1 (92%)")
    ax.axvline(1.0, c="C3", lw=0.8, ls=":")
    ax.axhline(1.0, c="k", lw=0.8)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(list(x), [epsilon_label(e) for e in table["epsilon"]])
    ax.set(title=title, xlabel="ε per participant (δ = %g)" % delta, ylabel="fraction of centralized accuracy")
    ax.legend(loc="lower right")


def fraction_at(table: pd.DataFrame, eps: float) -> tuple:
    """``(fraction, low, high, n)`` of a :func:`summarize_fraction` table at ``eps``."""
    row = table[np.isclose(table["epsilon"], eps)].iloc[0]
    return row["fraction"], row["fraction_low"], row["fraction_high"], int(row["n"])


#: Unit and description of each metric of :func:`claim_sets` (without the ``real_`` prefix).
_CLAIM_METRICS = {
    "label_saving": ("fraction", "{data}: {strategy} vs random, labels to reach {targets} of full-data accuracy "
                     "off the mean learning curves, saving averaged over the targets where defined (95% paired "
                     "bootstrap CI over repeats)"),
    "label_saving_targets": ("targets", "{data}: targets of the label-saving curve with a defined saving"),
    "label_saving_headroom": ("fraction", "{data}: that average for a strategy reaching each target after one query"),
    "curve_area_gain": ("fraction", "{data}: area between the mean learning curves ({strategy} - random) / label "
                        "range: mean accuracy gain (95% paired bootstrap CI)"),
    "label_saving_per_seed": ("fraction", "{data}: {strategy} vs random at {target:.0%} of full-data accuracy, "
                              "per-repeat first crossings, repeats where defined"),
    "fraction_of_centralized_eps1": ("fraction", "{data}: federated DP AL at ε = 1 / centralized, per repeat"),
    "round_overhead": ("fraction", "{data}: private (ε = {epsilon:g}) / non-private round time - 1")}


def claim_sets(P: Any, curves: Sequence[pd.DataFrame], full_accuracies: Sequence[float],
               per_seed: Sequence[pd.DataFrame], fraction_tables: Sequence[pd.DataFrame],
               overheads: Sequence[pd.DataFrame]) -> dict[str, tuple]:
    """The metrics the claims read and the evidence beside them, ``name: (value, low, high, n)`` (NaN where
    undefined), for the main and the real data set (names prefixed ``real_``), each argument holding both:
    curves and full-data accuracy (:func:`saving_summary`), :func:`label_savings` at ``P.target_fraction``,
    :func:`summarize_fraction` tables (read at the seed's ε = 1 whatever ``P.epsilon``), round overheads."""
    sets = {}
    for prefix, c, full, ps, frac, over in zip(("", "real_"), curves, full_accuracies, per_seed, fraction_tables,
                                               overheads):
        s = saving_summary(c, full, P.strategy, seed=P.seed)
        one = _summary_row(ps.loc[ps["strategy"] == P.strategy, "saving"].to_numpy())
        times = _summary_row(over["overhead"].to_numpy())
        sets.update({prefix + "label_saving": (s["saving"], s["saving_low"], s["saving_high"], s["n_seeds"]),
                     prefix + "label_saving_targets": (s["n_targets"], np.nan, np.nan, 1),
                     prefix + "label_saving_headroom": (s["headroom"], np.nan, np.nan, 1),
                     prefix + "curve_area_gain": (s["area"], s["area_low"], s["area_high"], s["n_seeds"]),
                     prefix + "label_saving_per_seed": (one["mean"], one["low"], one["high"], one["n"]),
                     prefix + "fraction_of_centralized_eps1": fraction_at(frac, 1.0),
                     prefix + "round_overhead": (times["mean"], times["low"], times["high"], times["n"])})
    return sets


def add_claims(record: Any, P: Any, sets: dict[str, tuple]) -> dict[str, str]:
    """Add the defined metrics of ``sets`` (:func:`claim_sets`; an undefined one is left out, not zero), then
    the claims declared in the chapter's spec, decided by the verdict engine from the record; returns each
    claim's verdict."""
    data = {"": P.dataset, "real_": P.real_dataset}
    targets = f"{SAVING_TARGETS[0]:g}, {SAVING_TARGETS[1]:g}, ..., {SAVING_TARGETS[-1]:g}"
    for name, figure in sets.items():
        prefix = "real_" if name.startswith("real_") else ""
        unit, text = _CLAIM_METRICS[name.removeprefix(prefix)]
        add_figure(record, name, figure, unit, text.format(data=data[prefix], strategy=P.strategy, targets=targets,
                                                           target=P.target_fraction, epsilon=P.epsilon))

    def ci(name: str, fmt: str = ".0%") -> str:
        m, lo, hi, n = sets[name]
        return ("undefined" if not np.isfinite(m) else f"{m:{fmt}} (95% CI {lo:{fmt}} to {hi:{fmt}}, n = {n})"
                if n > 1 else f"{m:{fmt}} (n = {n})")

    measured, notes = {}, {}
    for prefix, suffix in (("", ""), ("real_", "_real")):
        measured["label_saving" + suffix] = (
            f"{data[prefix]}: {P.strategy} vs random, labels to reach {targets} of full-data accuracy off the mean "
            f"learning curves, saving averaged over the {sets[prefix + 'label_saving_targets'][0]:.0f} of "
            f"{len(SAVING_TARGETS)} targets where defined: {ci(prefix + 'label_saving')}; at most "
            f"{sets[prefix + 'label_saving_headroom'][0]:.0%} for any strategy; mean accuracy gain "
            f"{ci(prefix + 'curve_area_gain', '.3f')}; per repeat at {P.target_fraction:.0%}: "
            f"{ci(prefix + 'label_saving_per_seed')}")
        notes["label_saving" + suffix] = (
            "The seed names no target accuracy. A target the initial labels already meet is undefined and left "
            "out; one random never reaches enters as a lower bound (random's labels one round beyond the budget).")
        measured["privacy_utility_eps1" + suffix] = (
            f"{data[prefix]}: federated DP active learning at ε = 1 (δ = {P.delta:g}, {P.n_participants} sites, "
            f"{P.label_budget} labels) over the centralized non-private run with the same model and budget: "
            + ci(prefix + "fraction_of_centralized_eps1"))
        notes["privacy_utility_eps1" + suffix] = (
            "Unit of privacy: one record of one site; accountant: Opacus RDP, every release composed. No effect "
            "is 1, the fraction the federated runs reach without privacy (fraction_of_centralized_nonprivate).")
    notes["label_saving"] += (" The first rule read the per-repeat first crossing at the target (label_saving_"
                              "per_seed); the estimator was changed to the mean curves after that result was seen.")
    measured["privacy_overhead"] = (f"mean wall time per round, private at ε = {P.epsilon:g} over non-private: "
                                    f"{P.dataset}: {ci('round_overhead')}; {P.real_dataset}: {ci('real_round_overhead')}")
    notes["privacy_overhead"] = ("Measured on a shared 2-core machine; small models make fixed costs dominate. The "
                                 "first rule (the seed's range inside our 95% CI) read wall times; it was dropped.")
    return record.decide_claims(SPECS[record.notebook].claims, measured, notes)


def add_metric(record: Any, name: str, values: Any, unit: str, description: str) -> None:
    """Add a metric over repeats unless nothing was measured (e.g. no repeat reached the target: the
    metric is undefined, not zero)."""
    values = np.atleast_1d(np.asarray(values, dtype=float))
    if values.size:
        record.add_metric(name, values, unit, description)


def add_figure(record: Any, name: str, figure: tuple, unit: str, description: str) -> None:
    """Add ``figure = (value, low, high, n)`` with its 95% interval over ``n`` repeats (none when n = 1),
    unless the value is undefined (NaN: left out, not zero)."""
    value, low, high, n = figure
    if np.isfinite(value):
        interval = dict(ci=(low, high), n=int(n)) if n > 1 and np.isfinite([low, high]).all() else {}
        record.add_metric(name, float(value), unit, description, **interval)
