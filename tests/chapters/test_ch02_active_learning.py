"""Tests of ppal_lab.chapters.ch02_active_learning: data preparation, the experiment tables and their summaries."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ppal_lab.chapters import ch02_active_learning as E
from ppal_lab.data import load_sklearn
from ppal_lab.compendium.errors import ParameterError


@pytest.fixture(scope="module")
def small():
    """breast_cancer (pool 426), 3 sites: small enough for real runs in a second or two."""
    return E.prepare("breast_cancer", seed=3, n_participants=3)


def _without_times(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["mean_round_s", "wall_time_s"])


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", E.AL_DATASETS)
def test_pool_size_predicts_the_split_and_partition_covers_the_pool(name):
    kw = {"n_items": 300} if name == "remanufacturing" else {}
    d = E.prepare(name, seed=2, test_fraction=0.3, n_participants=4, **kw)
    n = E.dataset_size(name, **kw)
    if name != "remanufacturing":
        assert n == load_sklearn(name).n_items
    assert d.pool_size == E.pool_size(name, test_fraction=0.3, **kw)
    assert d.pool_size + d.y_test.size == n
    flat = np.sort(np.concatenate(d.partition))
    np.testing.assert_array_equal(flat, np.arange(d.pool_size))  # disjoint and covering
    assert d.X.shape == (d.pool_size, len(d.feature_names)) and np.all(np.isfinite(d.X))
    # standardised with the test set's statistics (the public map)
    np.testing.assert_allclose(d.X_test.mean(axis=0), 0.0, atol=1e-9)
    # stratified: class shares of pool and test set agree to within one item per class
    for c in range(d.n_classes):
        assert abs(np.mean(d.y == c) * d.y_test.size - np.sum(d.y_test == c)) <= 1.0


def test_prepare_one_hot_encodes_and_is_seeded():
    a = E.prepare("remanufacturing", seed=5, n_items=400)
    b = E.prepare("remanufacturing", seed=5, n_items=400)
    c = E.prepare("remanufacturing", seed=6, n_items=400)
    assert "design_variant" not in a.feature_names
    assert sum(f.startswith("design_variant_") for f in a.feature_names) == 4
    np.testing.assert_array_equal(a.X, b.X)
    for p, q in zip(a.partition, b.partition):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a.y, c.y)


def test_validate_setup_rejects_bad_inputs_before_any_work():
    assert E.validate_setup(["remanufacturing", "breast_cancer"]) == {"remanufacturing": 3000,
                                                                      "breast_cancer": 426}
    cases = [
        (dict(datasets=["wine"], label_budget=200), "label_budget"),        # pool of 133
        (dict(datasets=["remanufacturing"], n_participants=0), "n_participants"),
        (dict(datasets=["remanufacturing"], n_participants=30, initial_labels=20), "initial_labels"),
        (dict(datasets=["remanufacturing"], initial_labels=200, label_budget=200), "label_budget"),
        (dict(datasets=["mnist"]), "dataset"),
        (dict(datasets=["remanufacturing"], test_fraction=1.0), "test_fraction"),
        (dict(datasets=["remanufacturing"], batch_size=0), "batch_size"),
        (dict(datasets="remanufacturing"), "datasets"),
    ]
    for kwargs, name in cases:
        datasets = kwargs.pop("datasets")
        with pytest.raises(ParameterError) as err:
            E.validate_setup(datasets, **kwargs)
        assert err.value.name == name, kwargs


def test_experiments_validate_their_inputs(small):
    with pytest.raises(ParameterError, match="label_budget"):
        E.learning_curves(small, label_budget=small.pool_size + 1)
    with pytest.raises(ParameterError, match="strategies"):
        E.learning_curves(small, ["random", "bald"])
    with pytest.raises(ParameterError, match="data"):
        E.learning_curves(small.X)
    for bad in ([0.0], [-1.0, None], [1.0, 1.0], [], "1.0", [float("nan")]):
        with pytest.raises(ParameterError, match="epsilons"):
            E.privacy_utility_grid(small, bad)
    with pytest.raises(ParameterError, match="initial_labels"):
        E.privacy_utility_grid(small, [1.0], initial_labels=2)  # fewer than 3 sites
    with pytest.raises(ParameterError, match="delta"):
        E.privacy_utility_grid(small, [1.0], delta=1.0)


# ---------------------------------------------------------------------------------------------
# hand-made tables
# ---------------------------------------------------------------------------------------------
def _grid(rows):
    return pd.DataFrame(rows, columns=["setting", "epsilon", "seed", "final_accuracy", "mean_round_s"])


def test_fraction_of_centralized_on_a_hand_made_grid():
    grid = _grid([
        ("centralized", math.inf, 0, 0.80, 0.01), ("centralized", math.inf, 1, 0.50, 0.01),
        ("federated", 1.0, 0, 0.40, 0.30), ("federated", 1.0, 1, 0.50, 0.60),
        ("federated", math.inf, 0, 0.80, 0.20), ("federated", math.inf, 1, 0.45, 0.20),
        ("federated", 0.5, 0, 0.20, 0.30), ("federated", 0.5, 1, 0.25, 0.30),
    ])
    frac = E.fraction_of_centralized(grid)
    got = frac.set_index(["epsilon", "seed"])["fraction"]
    assert got[(1.0, 0)] == pytest.approx(0.5) and got[(1.0, 1)] == pytest.approx(1.0)
    assert got[(math.inf, 0)] == pytest.approx(1.0) and got[(math.inf, 1)] == pytest.approx(0.9)
    summary = E.summarize_fraction(frac)
    assert summary["epsilon"].tolist() == [0.5, 1.0, math.inf]  # ascending, non-private last
    row = summary.set_index("epsilon").loc[1.0]
    half = stats.t.ppf(0.975, 1) * np.std([0.5, 1.0], ddof=1) / math.sqrt(2)
    assert row["fraction"] == pytest.approx(0.75)
    assert row["fraction_low"] == pytest.approx(0.75 - half)
    assert row["fraction_high"] == pytest.approx(0.75 + half)
    assert row["accuracy"] == pytest.approx(0.45) and row["n"] == 2
    # the overhead: (0.3 / 0.2 - 1, 0.6 / 0.2 - 1)
    over = E.round_overhead(grid, 1.0)
    np.testing.assert_allclose(over["overhead"], [0.5, 2.0])
    assert over["seed"].tolist() == [0, 1]


def test_hand_made_grid_errors():
    grid = _grid([("federated", 1.0, 0, 0.4, 0.3), ("federated", math.inf, 0, 0.8, 0.2)])
    with pytest.raises(ParameterError, match="centralized"):
        E.fraction_of_centralized(grid)
    with pytest.raises(ParameterError, match="grid"):
        E.fraction_of_centralized(grid.drop(columns="seed"))
    with pytest.raises(ParameterError, match="epsilon"):
        E.round_overhead(grid, 2.0)  # not in the grid
    with pytest.raises(ParameterError, match="epsilon"):
        E.round_overhead(grid, math.inf)
    with pytest.raises(ParameterError, match="grid"):
        E.round_overhead(grid[grid["epsilon"] == 1.0], 1.0)  # no non-private run


def _curves(rows):
    return pd.DataFrame(rows, columns=["strategy", "seed", "n_labels", "accuracy"])


def test_label_savings_on_hand_made_curves():
    grid = [20, 40, 60, 80, 100]
    rows = []
    acc = {("random", 0): [.5, .6, .7, .75, .8], ("entropy", 0): [.5, .8, .85, .85, .9],
           ("random", 1): [.5, .55, .6, .65, .7], ("entropy", 1): [.5, .6, .8, .8, .8],
           ("random", 2): [.5, .6, .6, .8, .8], ("entropy", 2): [.5, .7, .7, .7, .7]}
    for (st, s), a in acc.items():
        rows += [(st, s, n, v) for n, v in zip(grid, a)]
    sv = E.label_savings(_curves(rows), 0.8).set_index("seed")
    assert sv.loc[0, "labels"] == 40 and sv.loc[0, "baseline_labels"] == 100
    assert sv.loc[0, "saving"] == pytest.approx(0.6)
    assert np.isnan(sv.loc[1, "baseline_labels"]) and np.isnan(sv.loc[1, "saving"])  # random never
    assert np.isnan(sv.loc[2, "labels"]) and np.isnan(sv.loc[2, "saving"])            # entropy never
    summary = E.summarize_savings(sv.reset_index()).iloc[0]
    assert summary["n"] == 1 and summary["n_seeds"] == 3 and summary["saving"] == pytest.approx(0.6)
    # a target the initial labels already meet (all start at 0.5) leaves nothing to save: undefined, not 0%
    assert E.label_savings(_curves(rows), 0.5)["saving"].isna().all()
    with pytest.raises(ParameterError, match="target_accuracy"):
        E.label_savings(_curves(rows), 1.5)
    with pytest.raises(ParameterError, match="baseline"):
        E.label_savings(_curves(rows), 0.8, baseline="margin")
    with pytest.raises(ParameterError, match="curves"):
        E.label_savings(_curves(rows).query("not (strategy == 'random' and seed == 2)"), 0.8)


def _two_strategies(random_acc, entropy_acc, seeds=(0, 1, 2)):
    grid = [20, 40, 60, 80, 100]
    rows = []
    for s in seeds:
        rows += [("random", s, n, v) for n, v in zip(grid, random_acc(s))]
        rows += [("entropy", s, n, v) for n, v in zip(grid, entropy_acc(s))]
    return _curves(rows)


def _at(curves, target, **kw):
    """The one-target row of savings_by_target (full accuracy 1, so the fraction is the target)."""
    return E.savings_by_target(curves, 1.0, [target], **kw).iloc[0]


def test_savings_by_target_read_off_the_mean_curves():
    # identical seeds: the bootstrap cannot move anything, so the interval is the point
    same = _two_strategies(lambda s: [.5, .6, .7, .75, .8], lambda s: [.5, .8, .85, .85, .9])
    row = _at(same, 0.8, seed=1)
    assert row["strategy"] == "entropy" and row["labels"] == 40 and row["baseline_labels"] == 100
    assert row["saving"] == pytest.approx(0.6)
    assert row["saving_low"] == pytest.approx(0.6) and row["saving_high"] == pytest.approx(0.6)
    assert not row["censored"] and row["censored_share"] == 0 and row["n_seeds"] == 3
    # the mean curve, not the seeds' first crossings: seed 0 of random crosses 0.8 early by luck
    lucky = _two_strategies(lambda s: [.5, .8 if s == 0 else .6, .7, .75, .8],
                            lambda s: [.5, .8, .85, .85, .9])
    assert E.label_savings(lucky, 0.8).set_index("seed").loc[0, "saving"] == pytest.approx(0.0)
    row = _at(lucky, 0.8)
    assert row["baseline_labels"] == 100 and row["saving"] == pytest.approx(0.6)
    assert row["saving_low"] <= 0.0 + 1e-12 and row["saving_high"] == pytest.approx(0.6)
    # a baseline that never reaches the target is censored one step beyond the budget: a lower bound
    never = _two_strategies(lambda s: [.5, .6, .6, .6, .6], lambda s: [.5, .8, .85, .85, .9])
    row = _at(never, 0.8)
    assert row["censored"] and row["baseline_labels"] == 120
    assert row["saving"] == pytest.approx(1 - 40 / 120) and row["censored_share"] == 1.0
    neither = _two_strategies(lambda s: [.5, .6, .6, .6, .6], lambda s: [.5, .6, .6, .6, .6])
    assert np.isnan(_at(neither, 0.8)["saving"])
    by = E.savings_by_target(same, 1.0, [0.5, 0.8])
    assert by["target_fraction"].tolist() == [0.5, 0.8] and by["saving"].iloc[1] == pytest.approx(0.6)
    # both start at 0.5: the initial labels meet the target, nothing to save, so undefined rather than 0%
    assert np.isnan(by["saving"].iloc[0])
    # deterministic in its seed
    pd.testing.assert_frame_equal(E.savings_by_target(lucky, 1.0, seed=4), E.savings_by_target(lucky, 1.0, seed=4))
    with pytest.raises(ParameterError, match="baseline"):
        _at(same, 0.8, baseline="margin")
    with pytest.raises(ParameterError, match="n_boot"):
        _at(same, 0.8, n_boot=10)
    with pytest.raises(ParameterError, match="fractions"):
        E.savings_by_target(same, 1.0, [])
    with pytest.raises(ParameterError, match="curves"):
        _at(same.query("not (strategy == 'random')").assign(strategy="entropy").iloc[:0], 0.8)


def test_saving_summary_averages_the_defined_targets_and_bounds_what_any_strategy_could_save():
    same = _two_strategies(lambda s: [.5, .6, .7, .75, .8], lambda s: [.5, .8, .85, .85, .9])
    got = E.saving_summary(same, 1.0, "entropy", fractions=[0.5, 0.8, 0.9])
    # 0.5: met by the initial labels (undefined); 0.8: 1 - 40/100; 0.9: random censored at 120, 1 - 100/120
    assert got["n_targets"] == 2 and got["saving"] == pytest.approx((0.6 + 1 / 6) / 2)
    assert got["saving_low"] == pytest.approx(got["saving"]) == got["saving_high"]
    # a strategy at the targets after one query round (40 labels) saves 1 - 40/100 and 1 - 40/120
    assert got["headroom"] == pytest.approx((0.6 + 2 / 3) / 2)
    # gaps 0, .2, .15, .1, .1 at 20 ... 100 labels: trapezoids 2 + 3.5 + 2.5 + 2 = 10 over a width of 80
    assert got["area"] == pytest.approx(10 / 80) and got["n_seeds"] == 3
    # no defined target: no saving, and no room for any strategy
    none = E.saving_summary(same, 1.0, "entropy", fractions=[0.5])
    assert np.isnan(none["saving"]) and none["headroom"] == 0.0 and none["n_targets"] == 0
    # with scatter over seeds the bootstrap interval surrounds the estimate
    noisy = _two_strategies(lambda s: [.5, .6 + .02 * s, .7, .75, .8], lambda s: [.5, .78 + .03 * s, .85, .85, .9])
    got = E.saving_summary(noisy, 1.0, "entropy", fractions=[0.8, 0.9], seed=3)
    assert got["saving_low"] <= got["saving"] <= got["saving_high"]
    assert got["area_low"] < got["area"] < got["area_high"]


# ---------------------------------------------------------------------------------------------
# real runs: shape, determinism, independence of seeds
# ---------------------------------------------------------------------------------------------
def test_learning_curves_are_deterministic_and_seeds_independent(small):
    kw = dict(label_budget=40, batch_size=10, initial_labels=10)
    both = E.learning_curves(small, n_seeds=2, seed=7, **kw)
    again = E.learning_curves(small, n_seeds=2, seed=7, **kw)
    pd.testing.assert_frame_equal(both, again)
    assert len(both) == 2 * 4 * 4  # seeds x strategies x points (10, 20, 30, 40 labels)
    assert set(both["n_labels"]) == {10, 20, 30, 40}
    alone = E.learning_curves(small, n_seeds=1, seed=8, **kw)
    pd.testing.assert_frame_equal(both[both["seed"] == 8].reset_index(drop=True), alone)
    # all strategies of one seed start from the same initial labels
    first = both[both["n_labels"] == 10].groupby("seed")["accuracy"].nunique()
    assert (first == 1).all()
    summary = E.summarize_curves(both)
    assert len(summary) == 4 * 4 and (summary["n_seeds"] == 2).all()
    assert (summary["low"] <= summary["mean"]).all() and (summary["mean"] <= summary["high"]).all()


def test_full_data_accuracy_is_the_fitted_logistic_regression(small):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(small.X, small.y)
    assert E.full_data_accuracy(small) == pytest.approx(np.mean(model.predict(small.X_test) == small.y_test))


def test_privacy_utility_grid_shape_budget_and_seeds(small):
    kw = dict(strategy="margin", label_budget=30, batch_size=10, initial_labels=10)
    grid = E.privacy_utility_grid(small, [1.0, None], n_seeds=2, seed=11, **kw)
    assert len(grid) == 2 * 3
    assert grid.groupby("seed")["setting"].apply(list).tolist() == [
        ["centralized", "federated", "federated"]] * 2
    private = grid[(grid["setting"] == "federated") & (grid["epsilon"] == 1.0)]
    assert (private["epsilon_spent"] <= 1.0).all() and (private["epsilon_spent"] > 0.5).all()
    assert private["noise_multiplier"].notna().all()
    assert (grid["n_labels"] == 30).all() and (grid["n_rounds"] == 3).all()
    again = E.privacy_utility_grid(small, [1.0, None], n_seeds=2, seed=11, **kw)
    pd.testing.assert_frame_equal(_without_times(grid), _without_times(again))
    alone = E.privacy_utility_grid(small, [1.0, None], n_seeds=1, seed=12, **kw)
    pd.testing.assert_frame_equal(_without_times(grid[grid["seed"] == 12].reset_index(drop=True)),
                                  _without_times(alone))
    frac = E.fraction_of_centralized(grid)
    assert len(frac) == 4 and np.all(frac["fraction"] > 0)
    over = E.round_overhead(grid, 1.0)
    assert len(over) == 2 and np.all(np.isfinite(over["overhead"]))


# ---------------------------------------------------------------------------------------------
# the notebook's claims and record
# ---------------------------------------------------------------------------------------------
def _claim_inputs():
    """Hand-made inputs of claim_sets for the main and the real data set (full-data accuracy 1)."""
    from types import SimpleNamespace

    P = SimpleNamespace(strategy="entropy", dataset="remanufacturing", real_dataset="breast_cancer", seed=0,
                        target_fraction=0.8, delta=1e-5, n_participants=4, label_budget=100, epsilon=2.0)
    main = _two_strategies(lambda s: [.5, .6 + .02 * s, .7, .75, .8], lambda s: [.5, .78 + .02 * s, .85, .85, .9])
    real = _two_strategies(lambda s: [.85, .86, .9, .92, .95], lambda s: [.85, .92 + .01 * s, .95, .96, .97])
    frac = lambda at_1: pd.DataFrame({"epsilon": [1.0, 2.0], "fraction": [at_1, 0.99], "fraction_low": [at_1 - .05, .98],
                                      "fraction_high": [at_1 + .05, 1.0], "n": [10, 10]})
    over = pd.DataFrame({"overhead": [0.45, 0.5, 0.55]})
    return P, E.claim_sets(P, [main, real], [1.0, 1.0], [E.label_savings(main, 0.8), E.label_savings(real, 0.8)],
                           [frac(0.76), frac(0.86)], [over, over * 2])


def test_claims_read_metrics_the_record_has_and_the_engine_decides_them():
    from ppal_lab.compendium.results import ResultRecord
    from ppal_lab.compendium.specs import SPECS
    from ppal_lab.compendium.verdicts import decide_all

    P, sets = _claim_inputs()
    # the privacy claim reads epsilon = 1, the seed's budget, whatever P.epsilon is
    assert sets["fraction_of_centralized_eps1"] == (0.76, 0.71, 0.81, 10)
    assert sets["real_fraction_of_centralized_eps1"][0] == 0.86
    record = ResultRecord("02_active_learning", {})
    verdicts = E.add_claims(record, P, sets)
    declared = SPECS["02_active_learning"].claims
    assert [c["id"] for c in record.claims] == [c.id for c in declared] == list(verdicts)
    for claim in declared:
        for rule in (claim, claim.first_rule):
            for name in (rule.metric, rule.headroom) if rule else ():
                assert not name or name in record.metrics, (claim.id, name)
    # nothing but the engine decides: the record's verdicts are decide_all's on the record's own metrics
    assert [c["verdict"] for c in record.claims] == [d["verdict"] for d in decide_all(declared, record.metrics)]
    assert record.claims[0]["first_verdict"] and "label_saving_per_seed" in record.claims[0]["first_rule"]
    assert "no comparable cryptographic system is timed" in record.claims[-1]["rule"]
    # what was measured is stated with its interval
    assert "remanufacturing: federated DP" in record.claims[2]["measured"] and "76% (95% CI 71% to 81%, n = 10)" \
        in record.claims[2]["measured"]


def test_an_undefined_claim_metric_is_left_out_not_zero():
    from ppal_lab.compendium.results import ResultRecord

    P, sets = _claim_inputs()
    sets["real_label_saving_per_seed"] = (np.nan, np.nan, np.nan, 0)  # no repeat defined at the target
    record = ResultRecord("02_active_learning", {})
    E.add_claims(record, P, sets)
    assert "real_label_saving_per_seed" not in record.metrics
    assert record.metrics["label_saving_headroom"]["ci95"] is None and record.metrics["label_saving_headroom"]["n"] == 1


class _Record:
    """The part of a ResultRecord that the metric helpers fill."""

    def __init__(self):
        self.metrics = {}

    def add_metric(self, name, values, unit, description, **kw):
        self.metrics[name] = {"values": values, **kw}


def test_undefined_metrics_are_left_out_of_the_record():
    record = _Record()
    E.add_metric(record, "saving_per_seed", [], "fraction", "no repeat reached the target")
    E.add_figure(record, "label_saving", (float("nan"), 0.1, 0.2, 10), "fraction", "censored")
    assert record.metrics == {}
    E.add_metric(record, "saving_per_seed", [0.2, 0.3], "fraction", "two repeats")
    E.add_figure(record, "label_saving", (0.5, 0.4, 0.6, 10), "fraction", "curve saving")
    E.add_figure(record, "headroom", (0.7, np.nan, np.nan, 1), "fraction", "one value")
    assert record.metrics["label_saving"] == {"values": 0.5, "ci": (0.4, 0.6), "n": 10}
    assert record.metrics["headroom"] == {"values": 0.7}
    np.testing.assert_array_equal(record.metrics["saving_per_seed"]["values"], [0.2, 0.3])
