"""Tests of ppal_lab.chapters.ch01_supply_chain_data: the label balance, the record with its one declared claim, and
the glue values the prose quotes (section "Headline figures")."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters import ch01_supply_chain_data as ch01
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS
from ppal_lab.data import describe, horizontal_partition, make_magnet_grades, make_remanufacturing


@pytest.fixture(scope="module")
def small():
    reman = make_remanufacturing(300, seed=1)
    magnet = make_magnet_grades(200, 3, seed=1)
    return reman, describe.site_summary(reman, horizontal_partition(reman, 3, seed=1)), magnet


def test_label_balance_counts_every_drive_once(small):
    _, _, magnet = small
    balance = ch01.label_balance(magnet)
    assert balance["drives"].sum() == magnet.n_items
    assert balance[balance.status == "labelled"]["drives"].sum() == magnet.labelled.sum()
    assert balance[balance.grade == "high"]["drives"].sum() == magnet.y.sum()


def test_record_holds_the_figures_and_the_declared_claim(small):
    """The one claim of the spec is recorded, described with the rates of the data actually generated."""
    reman, sites, magnet = small
    record = ResultRecord("01_supply_chain_data", {"seed": 0})
    ch01.fill_record(record, reman, sites, magnet, pd.Series([0.05, 0.07]))
    assert record.metrics["remanufacturable_rate"]["value"] == pytest.approx(reman.y.mean())
    assert record.metrics["magnet_label_rate"]["value"] == pytest.approx(magnet.labelled.mean())
    assert record.metrics["drift_accuracy_drop"]["n"] == 2
    assert [c["id"] for c in record.claims] == [c.id for c in SPECS["01_supply_chain_data"].claims]
    assert f"{magnet.labelled.mean():.1%} labelled" in record.claims[0]["measured"]


@pytest.mark.parametrize("n_seeds", [1, 2])
def test_glue_values_fall_back_to_the_single_drop(small, n_seeds):
    reman, sites, magnet = small
    record = ResultRecord("01_supply_chain_data", {"seed": 0})
    drop = pd.Series([0.05, 0.07][:n_seeds])
    ch01.fill_record(record, reman, sites, magnet, drop)
    values = ch01.glue_values(record, SimpleNamespace(n_seeds=n_seeds), drop)
    lo, hi = values["drift_ci_lo"], values["drift_ci_hi"]
    assert lo <= values["drift_accuracy_drop"] <= hi
    assert (lo == hi == 0.05) if n_seeds == 1 else lo < hi
    assert list(ch01.headline_table(record).columns) == ["value", "ci95", "n", "unit"]


# ---------------------------------------------------------------------------------------------
# the notebook's figures
# ---------------------------------------------------------------------------------------------
def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_partitions_figure_has_a_bar_per_site_and_per_party(small):
    reman, sites, _ = small
    fig = ch01.plot_partitions(reman, sites)
    assert fig.get_size_inches()[0] <= 7.5
    assert _titles(fig) == ["Horizontal partition: items per site", "Non-IID: remanufacturable rate per site",
                            "Vertical partition: features per party"]
    items, rate, parties = fig.axes
    assert sorted(p.get_height() for p in items.patches) == sorted(sites["items"])
    assert rate.get_lines()[-1].get_ydata()[0] == pytest.approx(reman.y.mean())  # the all-sites line
    assert [t.get_text() for t in rate.get_legend().get_texts()] == ["all sites"]
    party = describe.party_summary(reman)
    assert len(parties.patches) == len(party) and sum(p.get_height() for p in parties.patches) == reman.X.shape[1]
    assert all("_" not in t.get_text() for t in parties.get_xticklabels())
    plt.close(fig)


def test_condition_figure_splits_health_by_label(small):
    reman, _, _ = small
    fig = ch01.plot_condition(reman)
    assert fig.get_size_inches()[0] <= 7.5
    assert _titles(fig) == ["Latent health by label", "What the bench sees"]
    hist, scatter = fig.axes
    assert hist.get_xlabel() == "latent health h (1 = as new)"
    assert [t.get_text() for t in hist.get_legend().get_texts()] == ["yes", "no"]
    assert len(scatter.collections[0].get_offsets()) == reman.n_items  # one point per item
    assert scatter.get_ylabel() == "vibration RMS (mm/s)"
    plt.close(fig)


def test_sparsity_figure_maps_the_sample_and_the_label_balance(small):
    _, _, magnet = small
    sample = describe.missingness_sample(magnet, 40, np.random.default_rng(0))
    fig = ch01.plot_sparsity(sample, ch01.label_balance(magnet), "mnar")
    heat, bars = fig.axes[:2]
    assert fig.get_size_inches()[0] <= 7.5
    assert heat.get_title() == "Missing values (MNAR), 40 random drives (blue = missing)"
    assert heat.collections[0].get_array().size == sample.size  # drives x features cells
    assert bars.get_yscale() == "log" and bars.get_title() == "Label balance"
    assert [t.get_text() for t in bars.get_legend().get_texts()] == ["high", "low"]
    plt.close(fig)


def test_drift_figure_has_a_violin_per_quarter_and_eight_features():
    magnet = make_magnet_grades(100, 9, seed=1)  # three quarters
    mi = pd.Series(np.arange(10.0, 0, -1), index=[f"feature {i}" for i in range(10)])
    fig = ch01.plot_drift(magnet, mi)
    violins, bars = fig.axes
    assert fig.get_size_inches()[0] <= 7.5
    assert [t.get_text() for t in violins.get_xticklabels()] == ["Q1", "Q2", "Q3"]
    assert violins.get_title() == "Drift: manufacturing date by arrival quarter"
    assert sorted(p.get_width() for p in bars.patches) == pytest.approx([3, 4, 5, 6, 7, 8, 9, 10])
    assert bars.get_xlabel() == "mutual information with label (nats)"
    plt.close(fig)


def test_drift_accuracy_figure_has_a_point_per_quarter():
    drift = pd.DataFrame({"Q1": [0.9, 0.8], "Q2": [0.8, 0.7], "Q3": [0.7, 0.6], "Q4": [0.6, 0.5]})
    fig = ch01.plot_drift_accuracy(drift, 2)
    (ax,) = fig.axes
    assert fig.get_size_inches()[0] <= 7.5
    assert ax.get_title() == "Trained on Q1, scored per quarter (2 seeds, 95% CI)"
    means = [ln for ln in ax.get_lines() if len(ln.get_ydata()) == 4][0].get_ydata()
    assert list(means) == pytest.approx([0.85, 0.75, 0.65, 0.55])
    assert ax.get_xlabel() == "quarter scored"
    plt.close(fig)
