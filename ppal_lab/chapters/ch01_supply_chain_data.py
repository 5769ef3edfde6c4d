"""Summaries of the chapter "the data sets" (seeds 000 and 001): what the two synthetic supply chains
look like, how sparse the magnet data are, and how much drift costs.

Claims and figures (``notebooks/01_supply_chain_data.ipynb``, record
``data/results/01_supply_chain_data.json``):

* the partitions of the remanufacturing data (figure ``01_partitions``) and its latent condition
  (``01_reman_condition``) — :func:`ppal_lab.data.describe.site_summary` and
  :func:`~ppal_lab.data.describe.party_summary`;
* the sparsity of the magnet data (figure ``01_magnet_sparsity``) — :func:`label_balance`; drift and
  the informative features (``01_magnet_drift``);
* what drift costs a model trained on the first quarter (``01_drift_accuracy``) — :func:`drift_study`;
* the seed's claim on the case study's sparsity — :func:`fill_record`; the claim is declared in the
  chapter's spec (``ppal_lab.compendium.specs``) and decided by the verdict engine.

Data: :func:`ppal_lab.data.make_remanufacturing`, :func:`ppal_lab.data.make_magnet_grades` and
scikit-learn's bundled data sets (:func:`ppal_lab.data.load_sklearn`). The descriptive statistics shared
with other chapters live in :mod:`ppal_lab.data.describe`.

Run time: the defaults (5 seeds of 120,000 drives) ran in about 15 s of cell time for the committed
notebook; the reduced size of ``tests/compendium/test_determinism.py`` in about 7 s.
"""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS
from ppal_lab.data import SKLEARN_DATASETS, SupplyChainData, describe, load_sklearn, make_magnet_grades

__all__ = [
    "drift_study",
    "fill_record",
    "glue_values",
    "headline_table",
    "label_balance",
    "plot_condition",
    "plot_drift",
    "plot_drift_accuracy",
    "plot_partitions",
    "plot_sparsity",
    "sklearn_table",
]


def label_balance(magnet: SupplyChainData) -> pd.DataFrame:
    """Drives by label status (labelled / unlabelled) and true grade (high / low)."""
    return pd.DataFrame({"status": ["labelled", "labelled", "unlabelled", "unlabelled"],
                         "grade": ["high", "low", "high", "low"],
                         "drives": [int((magnet.labelled & (magnet.y == 1)).sum()),
                                    int((magnet.labelled & (magnet.y == 0)).sum()),
                                    int((~magnet.labelled & (magnet.y == 1)).sum()),
                                    int((~magnet.labelled & (magnet.y == 0)).sum())]})


def drift_study(P: Any) -> tuple[pd.DataFrame, pd.Series]:
    """Accuracy per quarter of a model trained on the first quarter
    (:func:`ppal_lab.data.describe.drift_accuracy`), one row per seed ``seed .. seed + n_seeds - 1``, and
    the drop from the first quarter to the last, per seed."""
    drift = pd.DataFrame([describe.drift_accuracy(
        make_magnet_grades(P.n_per_month, P.n_months, missing_rate=P.missing_rate,
                           missing_mechanism=P.missing_mechanism, label_rate=P.label_rate, seed=s), s)
        for s in range(P.seed, P.seed + P.n_seeds)])
    return drift, drift.iloc[:, 0] - drift.iloc[:, -1]


def sklearn_table() -> pd.DataFrame:
    """Items, features and classes of scikit-learn's bundled data sets."""
    return pd.DataFrame([{"data set": name, "items": d.n_items, "features": len(d.feature_names),
                          "classes": int(len(np.unique(d.y)))}
                         for name in SKLEARN_DATASETS for d in [load_sklearn(name)]])


def fill_record(record: ResultRecord, reman: SupplyChainData, site_table: pd.DataFrame,
                magnet: SupplyChainData, drop: pd.Series) -> None:
    """The chapter's measured figures into ``record``, and its one claim as the verdict engine decides it."""
    record.add_metric("remanufacturable_rate", float(reman.y.mean()), "fraction",
                      "share of remanufacturing items labelled profitably remanufacturable")
    record.add_metric("site_positive_rate_range", float(np.ptp(site_table["positive_rate"])), "fraction",
                      "largest minus smallest positive rate across sites (non-IID strength)")
    record.add_metric("magnet_missing_rate", float(magnet.X.isna().to_numpy().mean()), "fraction",
                      "share of magnet-data feature values missing")
    record.add_metric("magnet_label_rate", float(magnet.labelled.mean()), "fraction",
                      "share of drives with an observed magnet grade")
    record.add_metric("magnet_positive_rate", float(magnet.y.mean()), "fraction",
                      "share of drives with a high-grade magnet (true labels)")
    record.add_metric("drift_accuracy_drop", drop.to_list(), "accuracy points (fraction)",
                      "accuracy on the first quarter's held-out drives minus accuracy on the last quarter")
    label_rate, missing_rate = magnet.labelled.mean(), magnet.X.isna().to_numpy().mean()
    record.decide_claims(SPECS[record.notebook].claims, {
        "magnet_data_sparsity": f"our generator at this run's parameters: {magnet.n_items:,} drives, "
                                f"{label_rate:.1%} labelled, {missing_rate:.1%} of feature values missing"},
        {"magnet_data_sparsity": "We generate data with the sparsity the seed describes. Its introduction also "
                                 "speaks of 99.5% missing data, which contradicts the 80% of its case study."})


def glue_values(record: ResultRecord, P: Any, drop: pd.Series) -> dict[str, Any]:
    """The numbers the chapter's prose quotes, by glue name (the drift interval is the single drop when
    there is one seed), and the engine's verdict on the claim (``verdict_sparsity``)."""
    M = record.metrics
    values = {name: M[name]["value"] for name in
              ["drift_accuracy_drop", "remanufacturable_rate", "magnet_missing_rate", "magnet_label_rate"]}
    values["drift_ci_lo"] = M["drift_accuracy_drop"]["ci95"][0] if P.n_seeds > 1 else drop.iloc[0]
    values["drift_ci_hi"] = M["drift_accuracy_drop"]["ci95"][1] if P.n_seeds > 1 else drop.iloc[0]
    values["verdict_sparsity"] = next(c["verdict"] for c in record.claims if c["id"] == "magnet_data_sparsity")
    return values


def headline_table(record: ResultRecord) -> pd.DataFrame:
    """Every metric of the record: value, 95% interval, n and unit."""
    return pd.DataFrame({k: {"value": v["value"], "ci95": v["ci95"], "n": v["n"], "unit": v["unit"]}
                         for k, v in record.metrics.items()}).T


# ----------------------------------------------------------------------------------------------
# the notebook's figures
# ----------------------------------------------------------------------------------------------
def plot_partitions(reman: SupplyChainData, site_table: pd.DataFrame) -> plt.Figure:
    """Figure 01_partitions: items and remanufacturable rate per site (``site_table``:
    :func:`ppal_lab.data.describe.site_summary`), and features per party of the vertical partition."""
    fig, axes = plt.subplot_mosaic([[0, 1], [2, 2]], figsize=(7.5, 6.4), layout="constrained")
    sns.barplot(site_table, x="site", y="items", ax=axes[0], color=sns.color_palette()[0])
    axes[0].set(title="Horizontal partition: items per site", ylabel="items (count)", xlabel="")
    sns.barplot(site_table, x="site", y="positive_rate", ax=axes[1], color=sns.color_palette()[1])
    axes[1].axhline(reman.y.mean(), ls="--", c="k", lw=1, label="all sites")
    axes[1].set(title="Non-IID: remanufacturable rate per site", ylabel="positive rate (fraction)", xlabel="")
    axes[1].legend()
    party_table = describe.party_summary(reman).replace("_", " ", regex=True)
    sns.barplot(party_table, x="party", y="features", ax=axes[2], color=sns.color_palette()[2])
    axes[2].set(title="Vertical partition: features per party", ylabel="features (count)", xlabel="")
    axes[2].tick_params(axis="x", rotation=20)
    return fig


def plot_condition(reman: SupplyChainData) -> plt.Figure:
    """Figure 01_reman_condition: latent health by label (densities), and vibration RMS against it."""
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4), layout="constrained")
    label = pd.Series(np.where(reman.y == 1, "yes", "no"), name="remanufacturable")
    sns.histplot(x=reman.latent["health"], hue=label, hue_order=["yes", "no"], ax=axes[0], bins=40, element="step",
                 stat="density", common_norm=False)
    axes[0].set(title="Latent health by label", xlabel="latent health h (1 = as new)", ylabel="density")
    sns.scatterplot(x=reman.latent["health"], y=reman.X["vibration_rms_mm_s"], hue=label, hue_order=["yes", "no"],
                    s=8, ax=axes[1], alpha=0.5)
    axes[1].set(title="What the bench sees", xlabel="latent health h", ylabel="vibration RMS (mm/s)")
    return fig


def plot_sparsity(sample: pd.DataFrame, balance: pd.DataFrame, mechanism: str) -> plt.Figure:
    """Figure 01_magnet_sparsity: the missingness map of ``sample``
    (:func:`ppal_lab.data.describe.missingness_sample`) on top, :func:`label_balance` on a log scale below."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 8), layout="constrained", gridspec_kw={"height_ratios": [2, 1]})
    sns.heatmap(sample.T, cbar=False, cmap=["#f0f0f0", "#0173b2"], ax=axes[0], xticklabels=False, yticklabels=2)
    axes[0].set(title=f"Missing values ({mechanism.upper()}), {len(sample)} random drives (blue = missing)",
                xlabel="drive", ylabel="feature")
    axes[0].tick_params(axis="y", labelsize=7)
    sns.barplot(balance, x="status", y="drives", hue="grade", ax=axes[1])
    axes[1].set(yscale="log", title="Label balance", ylabel="drives (count, log scale)", xlabel="")
    return fig


def plot_drift(magnet: SupplyChainData, mi: pd.Series) -> plt.Figure:
    """Figure 01_magnet_drift: manufacturing date by arrival quarter (violins) on top, the eight features of
    ``mi`` (:func:`ppal_lab.data.describe.top_predictors`) most informative about the grade below."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.4), layout="constrained")
    sns.violinplot(x=magnet.meta["quarter"].map(lambda q: f"Q{q + 1}"), y=magnet.X_complete["manufacturing_date"],
                   ax=axes[0], inner="quartile", color=sns.color_palette()[0])
    axes[0].set(title="Drift: manufacturing date by arrival quarter", xlabel="arrival quarter",
                ylabel="manufacturing date (year)")
    sns.barplot(x=mi.head(8).values, y=mi.head(8).index, ax=axes[1], color=sns.color_palette()[1])
    axes[1].set(title="Most informative features", xlabel="mutual information with label (nats)", ylabel="")
    return fig


def plot_drift_accuracy(drift: pd.DataFrame, n_seeds: int, seed: int = 0) -> plt.Figure:
    """Figure 01_drift_accuracy: accuracy per quarter scored of :func:`drift_study` (mean, 95% CI over seeds)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
    sns.pointplot(drift.melt(var_name="quarter", value_name="accuracy"), x="quarter", y="accuracy",
                  errorbar=("ci", 95), seed=seed, ax=ax)
    ax.set(title=f"Trained on Q1, scored per quarter ({n_seeds} seeds, 95% CI)", ylabel="accuracy (fraction)",
           xlabel="quarter scored")
    return fig
