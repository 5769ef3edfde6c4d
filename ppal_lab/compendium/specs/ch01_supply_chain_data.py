"""Spec of notebook 01_supply_chain_data: its parameters, the constraints between them and its claims."""
from __future__ import annotations

import math

from ppal_lab.compendium.params import Constraint, NotebookSpec, Param
from ppal_lab.compendium.specs.common import SEED, seeds_fit
from ppal_lab.compendium.specs.registry import register
from ppal_lab.compendium.verdicts import Claim


def _drift_train_rows(v) -> int:
    """First-quarter drives the drift model of chapter 01 trains on (``describe.drift_accuracy``:
    at most 6000 drives, 70% of them)."""
    m = min(6000, 3 * v["n_per_month"])
    return m - math.ceil(0.3 * m)


def _drift_missing_limit(v) -> float:
    """Largest ``missing_rate`` leaving each feature 20 expected observed values among those drives:
    scikit-learn's gradient boosting crashes on a feature with none ("window shape cannot be larger
    than input array shape"). Under MAR ``weight_g`` is never missing, so the 49 other columns carry the
    whole rate (``data.make_magnet_grades`` refuses MAR rates >= 49/50)."""
    share = 49 / 50 if v["missing_mechanism"] == "mar" else 1.0
    return (1 - 20 / _drift_train_rows(v)) * share


register(NotebookSpec(
    name="01_supply_chain_data",
    title="The two data sets: remanufacturing and magnet grades",
    params=(
        SEED,
        Param("n_seeds", int, 5, "independent data sets for the drift confidence interval", low=1, high=50),
        Param("n_items", int, 4000, "remanufacturing components generated", low=100, high=1_000_000),
        Param("n_sites", int, 4, "participants in the horizontal partition", low=1, high=100),
        Param("n_per_month", int, 10_000, "hard drives arriving per month", low=100, high=1_000_000),
        Param("n_months", int, 12, "months of hard-drive arrivals (3 per quarter)", low=3, high=60),
        Param("missing_rate", float, 0.8, "fraction of magnet-data feature values missing",
              low=0.0, high=1.0, high_open=True),
        Param("missing_mechanism", str, "mcar", "how magnet-data values go missing",
              choices=("mcar", "mar", "mnar")),
        Param("label_rate", float, 0.02, "fraction of hard drives with a known magnet grade",
              low=0.0, high=1.0, low_open=True),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("missing_rate", "missing_mechanism", "n_per_month"),
                   lambda v: v["missing_rate"] <= _drift_missing_limit(v),
                   lambda v: f"<= {_drift_missing_limit(v):.4g} ({v['missing_mechanism']}, n_per_month = "
                             f"{v['n_per_month']}): the drift model trains on {_drift_train_rows(v)} first-"
                             "quarter drives and every feature needs >= 20 observed values there (expected)"),
    ),
    headline=("remanufacturable_rate", "magnet_missing_rate", "magnet_label_rate",
              "drift_accuracy_drop"),
    budget_s=60.0,
    claims=(
        Claim("magnet_data_sparsity", "001", "The case study had about 10,000 drives a month, 2% of them "
              "labelled, and 80% of feature values missing.", "2% labelled; 80% missing", "not measurable",
              reason="the seed's case-study data are not published; our generator is built to the sparsity the "
              "seed describes, so measuring it would only return its own settings"),
    ),
))

