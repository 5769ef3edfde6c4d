"""Tests of ppal_lab.chapters.ch02_active_learning_figures: the notebook's figures, tables, glue and record entries."""
from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters import ch02_active_learning as E
from ppal_lab.chapters import ch02_active_learning_figures as F
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord


def _P(**kw):
    base = dict(seed=5, dataset="breast_cancer", real_dataset="wine", n_items=4000, test_fraction=0.25, epsilon=1.0,
                delta=1e-5, n_participants=4, non_iid=0.5, label_budget=200, initial_labels=20, batch_size=10,
                strategy="entropy", model="logreg", target_fraction=0.95, n_seeds=3)
    return SimpleNamespace(**{**base, **kw})


def _summary():
    rows = [(s, n, m, m - 0.05, m + 0.05) for s, off in [("entropy", 0.1), ("random", 0.0)]
            for n, m in [(20, 0.6 + off), (40, 0.7 + off), (60, 0.75 + off)]]
    return pd.DataFrame(rows, columns=["strategy", "n_labels", "mean", "low", "high"])


def _by_target():
    return pd.DataFrame({"strategy": ["entropy", "entropy", "margin"], "target_fraction": [0.9, 0.95, 0.9],
                         "labels": [40, 60, 50], "baseline_labels": [80, 100, 80], "saving": [0.5, 0.4, 0.375],
                         "saving_low": [0.3, 0.2, 0.1], "saving_high": [0.6, 0.5, 0.5],
                         "censored": [False, True, False]})


def _frac_table():
    return pd.DataFrame({"epsilon": [0.5, 1.0, math.inf], "fraction": [0.8, 0.9, 1.0],
                         "fraction_low": [0.7, 0.85, 0.98], "fraction_high": [0.9, 0.95, 1.02], "n": [3, 3, 3]})


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_sites_table_counts_items_and_class_one_share_per_site():
    data = SimpleNamespace(n_participants=2, y=np.array([1, 0, 1, 1, 0]),
                           partition=[np.array([0, 1, 2]), np.array([3, 4])])
    table = F.sites_table(data)
    assert list(table.columns) == ["site 0", "site 1"]
    assert list(table.index) == ["pool items", "share of class 1"]
    assert table.loc["pool items", "site 0"] == 3 and table.loc["pool items", "site 1"] == 2
    assert table.loc["share of class 1", "site 0"] == pytest.approx(0.667)  # 2 of 3, rounded
    assert table.loc["share of class 1", "site 1"] == pytest.approx(0.5)


def test_learning_curves_figure_has_curves_reference_lines_and_saving_panel():
    fig = F.plot_learning_curves(_summary(), _by_target(), 0.9, 0.95, dataset="remanufacturing", strategy="entropy",
                                 n_seeds=3)
    top, bottom = fig.axes
    assert fig.get_size_inches()[0] <= 7.5
    assert top.get_title() == "remanufacturing: learning curves (3 seeds, 95% CI)"
    assert (top.get_xlabel(), top.get_ylabel()) == ("labels (count)", "test accuracy (fraction)")
    assert _legend_texts(top) == ["entropy", "random", "all pool labels", "target (95% of it)"]
    hlines = [ln.get_ydata()[0] for ln in top.get_lines()[2:]]
    assert hlines == pytest.approx([0.9, 0.855])  # the full-data accuracy and 95% of it
    assert bottom.get_title() == "Label saving of entropy vs random"
    assert bottom.get_xlabel() == "target (fraction of full-data accuracy)"
    assert "seed's claim (73%)" in _legend_texts(bottom)
    plt.close(fig)


def test_real_dataset_figure_pairs_curves_with_the_fraction_plot():
    fig = F.plot_real_dataset(_summary(), _frac_table(), 0.8, 0.9, dataset="wine", n_seeds=2, delta=1e-5)
    top, bottom = fig.axes
    assert fig.get_size_inches()[0] <= 7.5
    assert top.get_title() == "wine: learning curves (2 seeds, 95% CI)"
    assert _legend_texts(top)[-2:] == ["all pool labels", "target"]
    assert top.get_lines()[-1].get_ydata()[0] == pytest.approx(0.72)
    assert bottom.get_title() == "wine: federated DP active learning"
    assert [t.get_text() for t in bottom.get_xticklabels()] == [E.epsilon_label(e) for e in [0.5, 1.0, math.inf]]
    plt.close(fig)


def test_bench_table_converts_seconds_to_ms_and_glue_reads_the_ratios():
    bench = {"rows": [{"pool_size": 100, "strategy": "entropy", "ours_median_s": 0.002, "skactiveml_median_s": 0.01,
                       "ratio_ours_over_theirs": 0.2, "same_picks": True, "extra": 1},
                      {"pool_size": 1000, "strategy": "margin", "ours_median_s": 0.004, "skactiveml_median_s": 0.008,
                       "ratio_ours_over_theirs": 0.5, "same_picks": False, "extra": 2}]}
    table = F.bench_table(bench)
    assert list(table.columns) == ["pool size", "strategy", "ours (ms)", "scikit-activeml (ms)", "time ratio",
                                   "same picks"]
    assert table["ours (ms)"].tolist() == pytest.approx([2.0, 4.0])
    assert table["scikit-activeml (ms)"].tolist() == pytest.approx([10.0, 8.0])
    glued = F.bench_glue(table)
    assert glued == pytest.approx({"bench_ratio_max": 0.5, "bench_speedup_min": 2.0, "bench_speedup_max": 5.0})
    assert all(type(v) is float for v in glued.values())


def _grid(spent=0.9, stopped=False):
    return pd.DataFrame({"setting": ["centralized", "federated", "federated", "federated"],
                         "epsilon": [np.nan, 1.0, 2.0, math.inf], "epsilon_spent": [np.nan, spent, 1.5, np.nan],
                         "noise_multiplier": [np.nan, 4.0, 2.0, 0.0], "stopped_early": [False, stopped, False, False],
                         "final_accuracy": [0.9, 0.8, 0.85, 0.88]})


def test_private_runs_keeps_finite_epsilon_federated_rows_and_checks_the_budget():
    private = F.private_runs(_grid())
    assert private["epsilon"].tolist() == [1.0, 2.0]
    with pytest.raises(AssertionError, match="overspent"):
        F.private_runs(_grid(spent=1.01))
    with pytest.raises(AssertionError, match="stopped early"):
        F.private_runs(_grid(stopped=True))


def test_release_values_by_hand():
    values = F.release_values(_P(), F.private_runs(_grid()))
    assert values["n_query_rounds"] == 18  # (200 - 20) / 10
    assert values["query_share"] == 0.2 and values["sample_rate"] == 0.5  # run_federated_al's defaults
    assert values["eps_release"] == pytest.approx(1.0 * 0.2 / 18 / 2)
    assert values["laplace_scale"] == pytest.approx(180.0)
    assert values["z_at_eps"] == 4.0 and values["labels_per_site"] == 50.0
    assert values["noise_to_signal_end"] == pytest.approx(4.0 / 25)  # z / (0.5 * 50)
    assert values["noise_to_signal_start"] == pytest.approx(4.0 / 2.5)  # z / (0.5 * 20 / 4)
    assert values["pick_ratio"] == pytest.approx(math.exp(1 / 180))


def test_overhead_figure_has_two_bars_per_repeat_and_the_run_legend():
    over = pd.DataFrame({"seed": [1, 2, 3], "private_round_s": [0.02, 0.03, 0.025],
                         "nonprivate_round_s": [0.01, 0.01, 0.02], "overhead": [1.0, 2.0, 0.25]})
    fig = F.plot_overhead(over, 1.0, n_participants=4, load=1.5, cores=2)
    (ax,) = fig.axes
    assert fig.get_size_inches()[0] <= 7.5
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if p.get_height() > 0)
    assert heights == [10.0, 10.0, 20.0, 20.0, 25.0, 30.0]  # ms
    assert _legend_texts(ax) == ["non-private", "ε = 1"]
    assert ax.get_title() == "Mean wall time per round, 4 sites (load 1.5 on 2 cores)"
    assert ax.get_ylabel() == "time per round (ms)"
    plt.close(fig)


def test_saving_table_keeps_one_strategy_indexed_by_target():
    table = F.saving_table(_by_target(), "entropy")
    assert list(table.index) == [0.9, 0.95]
    assert list(table.columns) == ["labels", "baseline_labels", "saving", "saving_low", "saving_high", "censored"]
    assert table.loc[0.95, "censored"] and table.loc[0.9, "labels"] == 40


def _saving(strategy="entropy"):
    return pd.DataFrame({"strategy": [strategy], "labels": [60.0], "labels_low": [50.0], "labels_high": [70.0],
                         "baseline_labels": [120.0], "baseline_low": [100.0], "baseline_high": [140.0],
                         "saving": [0.5], "saving_low": [0.3], "saving_high": [0.6], "n_seeds": [3],
                         "n": [3]}).set_index("strategy")


def test_saving_and_accuracy_metrics_enter_the_record_in_order():
    record = ResultRecord("02_active_learning", {})
    P = _P(dataset="remanufacturing")
    F.add_saving_metrics(record, P, _saving(), _saving())
    assert list(record.metrics) == ["label_saving_at_target", "real_label_saving_at_target",
                                    "labels_to_target_strategy", "labels_to_target_random"]
    assert record.metrics["labels_to_target_random"]["value"] == 120.0
    assert record.metrics["labels_to_target_random"]["ci95"] == [100.0, 140.0]
    assert "95% of full-data accuracy" in record.metrics["label_saving_at_target"]["description"]
    fractions = pd.DataFrame({"epsilon": [1.0, 1.0, math.inf], "fraction": [0.8, 0.9, 1.0]})
    F.add_accuracy_metrics(record, P, 0.93, _grid(), fractions)
    assert record.metrics["full_data_accuracy"]["value"] == 0.93
    assert record.metrics["centralized_accuracy_at_budget"]["value"] == 0.9
    assert record.metrics["fraction_of_centralized"]["value"] == pytest.approx(0.85)
    assert record.metrics["fraction_of_centralized"]["n"] == 2
    assert record.metrics["fraction_of_centralized_nonprivate"]["value"] == 1.0


def test_headline_table_leaves_out_overheads_and_rounds_the_interval():
    record = SimpleNamespace(metrics={
        "a": {"value": 0.5, "ci95": [0.41234, 0.61234], "n": 3, "unit": "fraction"},
        "round_overhead": {"value": 1.0, "ci95": None, "n": 3, "unit": "fraction"},
        "b": {"value": 7.0, "ci95": None, "n": 1, "unit": "labels"}})
    table = F.headline_table(record)
    assert list(table.index) == ["a", "b"]
    assert list(table.columns) == ["value", "ci95", "n", "unit"]
    assert table.loc["a", "ci95"] == [0.412, 0.612] and table.loc["b", "ci95"] is None


def test_ci_glue_values_collapse_the_interval_of_one_repeat():
    sets = {"label_saving": (0.5, 0.4, 0.6, 3), "label_saving_headroom": (0.7, np.nan, np.nan, 1)}
    values = F.ci_glue_values(sets, _frac_table(), _frac_table(), _saving(), _saving(), "entropy", 0.5)
    assert values["label_saving_lo"] == 0.4 and values["label_saving_n"] == 3
    assert values["label_saving_headroom_lo"] == values["label_saving_headroom_hi"] == 0.7
    assert (values["real_fraction"], values["real_fraction_lo"]) == (0.8, 0.7)  # at ε = 0.5
    assert (values["fraction_none"], values["fraction_none_hi"]) == (1.0, 1.02)
    assert values["target_saving_hi"] == 0.6 and values["saving_per_seed_n"] == 3
    assert all(type(v) in (float, int) for v in values.values())


def test_glue_values_are_plain_numbers_and_markdown():
    record = SimpleNamespace(claims=[{"id": "label_saving", "verdict": "partly", "first_verdict": "no"},
                                     {"id": "privacy_overhead", "verdict": "yes"}])
    saving = _saving().assign(labels=np.float64(60.0))
    frac = _frac_table().assign(fraction_low=[0.7, 0.92, 0.98])
    values = F.glue_values(record, _P(), full_acc=0.9, real_full=0.8, saving=saving, frac_table=frac, load=1.25,
                           cores=2)
    assert values["target_acc"] == pytest.approx(0.855)
    assert type(values["labels_strategy"]) is float and values["labels_random_hi"] == 140.0
    assert values["n_targets"] == len(E.SAVING_TARGETS)
    assert values["strategy_name"].data == "`entropy`" and values["real_name"].data == "`wine`"
    assert values["verdict_label_saving"].data == "**partly**"
    assert values["first_verdict_label_saving"].data == "**no**"
    assert values["first_verdict_privacy_overhead"].data == "**-**"
    assert values["eps_for_90"].data == E.epsilon_label(1.0)  # the smallest ε with its CI above 0.9
    none = F.glue_values(record, _P(), full_acc=0.9, real_full=0.8, saving=saving,
                         frac_table=_frac_table().assign(fraction_low=0.5), load=1.0, cores=2)
    assert none["eps_for_90"].data == "none of the grid"


@pytest.fixture(scope="module")
def small():
    return E.prepare("breast_cancer", seed=3, n_participants=3)


def test_canary_worlds_differ_only_in_the_appended_record(small):
    worlds = F.canary_worlds(small, "entropy", np.random.default_rng(0))
    assert worlds[False].size == worlds[True].size == small.partition[0].size + 1
    np.testing.assert_array_equal(worlds[False][:-1], worlds[True][:-1])
    assert (worlds[False][-1], worlds[True][-1]) == (0.0, 1.0)
    assert worlds[False][:-1].max() <= 0.999 and worlds[False][:-1].min() >= 0
    again = F.canary_worlds(small, "entropy", np.random.default_rng(0))  # the draws come from rng only
    np.testing.assert_array_equal(again[True], worlds[True])


def test_observer_row_separates_disjoint_worlds_and_guesses_on_equal_ones():
    row = F.observer_row({True: np.ones(200), False: np.zeros(200)}, private=False)
    assert row == {"release": "exact", "observer accuracy": 1.0, "95% CI": "1.000 to 1.000"}
    rng = np.random.default_rng(1)
    same = F.observer_row({True: rng.random(2000), False: rng.random(2000)}, private=True)
    assert same["release"] == "DP" and abs(same["observer accuracy"] - 0.5) < 0.05
    lo, hi = (float(v) for v in same["95% CI"].split(" to "))
    assert lo < same["observer accuracy"] < hi


def test_fraction_by_sites_has_one_row_per_site_count():
    P = _P(dataset="breast_cancer", label_budget=30, initial_labels=10, n_participants=2)
    table = F.fraction_by_sites(P, dict(label_budget=30, initial_labels=10, batch_size=10), sites=(1, 2), n_seeds=1)
    assert list(table.columns) == ["sites", "fraction of centralized at ε = 1 (1 repeats)"]
    assert table["sites"].tolist() == [1, 2]
    assert ((table.iloc[:, 1] > 0.3) & (table.iloc[:, 1] < 1.5)).all()


def test_big_budget_is_four_times_the_budget_at_most_the_pool_in_the_same_rounds():
    big = F.big_budget_setup(_P(dataset="remanufacturing"), 3000, 18)
    assert big == {"label_budget": 800, "initial_labels": 20, "batch_size": 44}  # ceil(780 / 18)
    capped = F.big_budget_setup(_P(dataset="breast_cancer"), 426, 18)
    assert capped["label_budget"] == 426 and capped["batch_size"] == 23  # ceil(406 / 18)
    with pytest.raises(ParameterError):  # breast_cancer's pool holds 426 items, not 800
        F.big_budget_setup(_P(dataset="breast_cancer"), 3000, 18)


def test_budget_table_reads_the_first_two_repeats_at_eps_1():
    fractions = pd.DataFrame({"epsilon": [1.0, 1.0, 1.0, 2.0], "seed": [5, 6, 7, 5], "fraction": [0.8, 0.9, 0.1, 0.0]})
    big = pd.DataFrame({"setting": ["centralized", "federated", "centralized", "federated"],
                        "epsilon": [np.nan, 1.0, np.nan, 1.0], "seed": [5, 5, 6, 6],
                        "final_accuracy": [0.9, 0.81, 0.8, 0.8], "mean_round_s": [0.1] * 4})
    table = F.budget_table(fractions, big, 200, 800, 5)
    assert table["label budget"].tolist() == [200, 800]
    col = "fraction of centralized at ε = 1 (2 repeats)"
    assert table[col].tolist() == pytest.approx([0.85, (0.9 + 1.0) / 2])
