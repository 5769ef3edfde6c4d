"""Tests of ppal_lab.chapters.ch01_supply_chain_data: the label balance, the record with its one declared claim, and
the glue values the prose quotes (section "Headline figures")."""
from __future__ import annotations

from types import SimpleNamespace

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
