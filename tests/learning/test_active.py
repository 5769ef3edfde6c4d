"""Tests of ppal_lab.learning.active: scores, selection, agreement with scikit-activeml, learning curves."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skactiveml.classifier import SklearnClassifier
from skactiveml.pool import UncertaintySampling

from ppal_lab.learning.active import (
    STRATEGIES,
    LearningCurve,
    label_saving,
    labels_to_reach,
    mean_curve,
    query,
    run_active_learning,
    top_k,
    uncertainty_scores,
)
from ppal_lab.compendium.errors import ParameterError

SKACTIVEML_METHOD = {"least_confident": "least_confident", "margin": "margin_sampling",
                     "entropy": "entropy"}


@pytest.fixture(scope="module")
def fitted_pool():
    """A 3-class continuous problem: probabilities have no ties, so picks are unambiguous."""
    X, y = make_classification(n_samples=3000, n_features=20, n_informative=8, n_classes=3,
                               random_state=0)
    model = LogisticRegression(max_iter=2000).fit(X[:300], y[:300])
    return model, X[300:], np.unique(y)


class FixedProba:
    """A stand-in 'fitted classifier' whose P(class 1) is the first feature."""

    def predict_proba(self, X):
        p = np.asarray(X)[:, 0]
        return np.column_stack([1 - p, p])


def test_scores_hand_values():
    P = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(uncertainty_scores(P, "least_confident"), [0.3, 2 / 3, 0.0])
    np.testing.assert_allclose(uncertainty_scores(P, "margin"), [0.5, 1.0, 0.0])
    h = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    np.testing.assert_allclose(uncertainty_scores(P, "entropy"), [h, np.log(3), 0.0])


@pytest.mark.parametrize("n_classes", [2, 3, 7, 12, 40])
def test_scores_match_textbook_formulas(n_classes):
    """Column-loop fast path (<= 16 classes) and row reductions (more) agree with the formulas."""
    P = np.random.default_rng(n_classes).dirichlet(np.ones(n_classes), size=500)
    S = np.sort(P, axis=1)[:, ::-1]
    np.testing.assert_array_equal(uncertainty_scores(P, "least_confident"), 1 - S[:, 0])
    np.testing.assert_array_equal(uncertainty_scores(P, "margin"), 1 - (S[:, 0] - S[:, 1]))
    np.testing.assert_allclose(uncertainty_scores(P, "entropy"), -(P * np.log(P)).sum(axis=1),
                               rtol=1e-13)


@pytest.mark.parametrize("strategy", ["least_confident", "margin", "entropy"])
@pytest.mark.parametrize("batch_size", [1, 7])
def test_picks_equal_scikit_activeml(fitted_pool, strategy, batch_size):
    model, X_pool, classes = fitted_pool
    ours = query(model, X_pool, strategy, batch_size)
    # fit_clf=False: skactiveml uses the already-fitted estimator inside the wrapper, no refit.
    clf = SklearnClassifier(model, classes=classes)
    us = UncertaintySampling(method=SKACTIVEML_METHOD[strategy], random_state=0)
    theirs = us.query(X_pool, np.full(len(X_pool), np.nan), clf, fit_clf=False,
                      batch_size=batch_size)
    np.testing.assert_array_equal(ours, theirs)  # same items, same order (descending utility)


def test_picks_equal_scikit_activeml_on_candidate_subset(fitted_pool):
    model, X_pool, classes = fitted_pool
    cand = np.arange(0, len(X_pool), 3)
    ours = query(model, X_pool, "entropy", 5, candidates=cand)
    y = np.full(len(X_pool), np.nan)
    theirs = UncertaintySampling(method="entropy", random_state=0).query(
        X_pool, y, SklearnClassifier(model, classes=classes), fit_clf=False, candidates=cand,
        batch_size=5)
    np.testing.assert_array_equal(ours, theirs)
    assert np.isin(ours, cand).all()


def test_top_k_is_exact_and_breaks_ties_by_lowest_index():
    np.testing.assert_array_equal(top_k(np.array([1.0, 3.0, 3.0, 2.0, 3.0]), 2), [1, 2])
    np.testing.assert_array_equal(top_k(np.array([5.0, 5.0, 5.0]), 3), [0, 1, 2])
    rng = np.random.default_rng(0)
    s = rng.integers(0, 50, size=20_000).astype(float)  # many ties
    for k in (1, 10, 333):
        expected = np.lexsort((np.arange(s.size), -s))[:k]  # full stable sort, for reference
        np.testing.assert_array_equal(top_k(s, k), expected)


def test_binary_strategies_rank_identically():
    """For two classes 1 - max p, 1 - |p0 - p1| and entropy are monotone in each other."""
    X, y = make_classification(n_samples=1500, n_features=10, random_state=1)
    model = LogisticRegression().fit(X[:100], y[:100])
    picks = [query(model, X[100:], s, 9).tolist() for s in ("least_confident", "margin", "entropy")]
    assert picks[0] == picks[1] == picks[2]


def test_random_strategy_reproducible_by_seed(fitted_pool):
    model, X_pool, _ = fitted_pool
    a = query(model, X_pool, "random", 10, rng=3)
    b = query(model, X_pool, "random", 10, rng=np.random.default_rng(3))
    c = query(model, X_pool, "random", 10, rng=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.unique(a).size == 10
    cand = np.array([5, 9, 11, 40, 41])
    assert set(query(None, X_pool, "random", 5, rng=0, candidates=cand)) == set(cand)


def test_diversity_spreads_a_batch_of_near_duplicates():
    # the 5 most uncertain items are copies of one point; a second uncertain cluster sits far away
    X = np.array([[0.5, 0.0]] * 5 + [[0.45, 10.0]] * 5 + [[0.9, 0.0]] * 50)
    model = FixedProba()
    plain = query(model, X, "least_confident", 2)
    assert set(plain) <= set(range(5))  # no diversity: both picks from the duplicate cluster
    diverse = query(model, X, "least_confident", 2, diversity=0.5)
    assert diverse[0] == 0 and 5 <= diverse[1] < 10
    np.testing.assert_array_equal(query(model, X, "least_confident", 2, diversity=0.0), plain)


@pytest.mark.parametrize("kwargs,name", [
    (dict(strategy="uncertain", batch_size=1), "strategy"),
    (dict(strategy="entropy", batch_size=0), "batch_size"),
    (dict(strategy="entropy", batch_size=10_000), "batch_size"),
    (dict(strategy="entropy", batch_size=2, diversity=1.5), "diversity"),
    (dict(strategy="random", batch_size=2), "rng"),
    (dict(strategy="entropy", batch_size=2, candidates=[0, 0, 1]), "candidates"),
    (dict(strategy="entropy", batch_size=2, candidates=[0, 99_999]), "candidates"),
    (dict(strategy="entropy", batch_size=3, candidates=[0, 1]), "batch_size"),
])
def test_query_validates_arguments(fitted_pool, kwargs, name):
    model, X_pool, _ = fitted_pool
    with pytest.raises(ParameterError, match=name):
        query(model, X_pool, **kwargs)


def _curve(n, acc, strategy="x"):
    return LearningCurve(np.asarray(n), np.asarray(acc, dtype=float), strategy, 0,
                         np.arange(max(n)))


def test_labels_to_reach_and_saving_on_hand_made_curves():
    smart = _curve([10, 20, 30, 40], [0.70, 0.85, 0.90, 0.92])
    rand = _curve([10, 20, 30, 40], [0.70, 0.75, 0.84, 0.90])
    assert labels_to_reach(smart, 0.85) == 20
    assert labels_to_reach(rand, 0.85) == 40
    assert labels_to_reach(smart, 0.70) == 10
    assert labels_to_reach(smart, 0.95) is None
    assert label_saving(smart, rand, 0.90) == pytest.approx(1 - 30 / 40)
    assert label_saving(smart, rand, 0.85) == pytest.approx(1 - 20 / 40)
    assert label_saving(smart, rand, 0.91) is None  # random never gets there: undefined
    with pytest.raises(ParameterError, match="target_accuracy"):
        labels_to_reach(smart, 1.5)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def _factory():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def test_run_validates_budget_against_pool(cancer):
    X_tr, X_te, y_tr, y_te = cancer
    with pytest.raises(ParameterError, match="label_budget"):
        run_active_learning(_factory, X_tr, y_tr, X_te, y_te, "entropy", len(X_tr) + 1, 5, 10, 0)
    with pytest.raises(ParameterError, match="label_budget"):
        run_active_learning(_factory, X_tr, y_tr, X_te, y_te, "entropy", 5, 5, 10, 0)
    with pytest.raises(ParameterError, match="initial_labels"):
        run_active_learning(_factory, X_tr, y_tr, X_te, y_te, "entropy", 20, 5, 1, 0)
    with pytest.raises(ParameterError, match="y"):
        run_active_learning(_factory, X_tr, y_tr[:-1], X_te, y_te, "entropy", 20, 5, 10, 0)


def test_run_shape_determinism_and_uniqueness(cancer):
    X_tr, X_te, y_tr, y_te = cancer
    a = run_active_learning(_factory, X_tr, y_tr, X_te, y_te, "margin", 32, 5, 10, seed=1)
    b = run_active_learning(_factory, X_tr, y_tr, X_te, y_te, "margin", 32, 5, 10, seed=1)
    np.testing.assert_array_equal(a.n_labels, [10, 15, 20, 25, 30, 32])  # last batch trimmed
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    np.testing.assert_array_equal(a.queried, b.queried)
    assert a.queried.size == 32 and np.unique(a.queried).size == 32
    r = run_active_learning(_factory, X_tr, y_tr, X_te, y_te, "random", 32, 5, 10, seed=1)
    np.testing.assert_array_equal(r.queried[:10], a.queried[:10])  # same initial set per seed
    assert list(a.as_frame().columns) == ["n_labels", "accuracy", "strategy", "seed"]


def test_uncertainty_beats_random_on_breast_cancer_at_small_budget(cancer):
    """Area under the learning curve (mean accuracy over the curve), averaged over 5 seeds.

    Measured here: random 0.914, least-confident 0.927 on this split; the assertion only asks for
    the ordering, which held on every split and seed set we tried.
    """
    X_tr, X_te, y_tr, y_te = cancer
    seeds = range(5)
    curves = {s: [run_active_learning(_factory, X_tr, y_tr, X_te, y_te, s, 40, 5, 10, seed)
                  for seed in seeds] for s in ("random", "least_confident")}
    area = {s: np.mean([c.accuracy.mean() for c in cs]) for s, cs in curves.items()}
    assert area["least_confident"] > area["random"]
    summary = mean_curve(curves["least_confident"])
    assert summary["n_runs"] == 5 and np.all(summary["low"] <= summary["mean"])
    assert np.all(summary["mean"] <= summary["high"])


def test_progress_bar_runs(cancer):
    X_tr, X_te, y_tr, y_te = cancer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm may warn about a missing notebook frontend
        c = run_active_learning(_factory, X_tr, y_tr, X_te, y_te, "entropy", 15, 5, 10, 0,
                                progress=True)
    assert c.n_labels.tolist() == [10, 15]


def test_strategies_tuple():
    assert STRATEGIES == ("random", "least_confident", "margin", "entropy")
