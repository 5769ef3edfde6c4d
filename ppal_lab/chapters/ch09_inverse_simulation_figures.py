"""Figures of the chapter "inverse-simulation verification" (companion of :mod:`.ch09_inverse_simulation`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from scipy import stats

from ppal_lab.chapters.ch09_inverse_simulation import gate_curves, roc_and_auc

__all__ = ["plot_detection_by_severity", "plot_gate_cycle", "plot_honest_scores", "plot_inverse_models",
           "plot_roc_by_kind", "plot_secure_similarity"]

INVERSE_ORDER = ["grid search", "MLP"]


def plot_inverse_models(details: pd.DataFrame, n_test: int, seed: int) -> Figure:
    """Estimated against true health, the residual D² against χ²(3), and the noise-free round-trip error,
    for the methods of ``details`` (the second table of :func:`compare_inverses`); at most 600 points per
    method (of ``n_test`` test items) are drawn in the scatters, sampled with ``seed``."""
    fig, axes = plt.subplot_mosaic([[0, 1], [2, 2]], figsize=(7.5, 6.6), layout="constrained")
    sample = details.groupby("method").sample(min(600, n_test), random_state=seed)
    sns.scatterplot(sample, x="true_health", y="health", hue="method", hue_order=INVERSE_ORDER, s=8, alpha=0.5,
                    ax=axes[0])
    axes[0].plot([0, 1], [0, 1], "k--", lw=1)
    axes[0].set(title="Health from noisy readings", xlabel="true health h", ylabel="estimated health")
    sns.histplot(details, x="residual", hue="method", hue_order=INVERSE_ORDER, stat="density", common_norm=False,
                 element="step", bins=np.linspace(0, 20, 41), ax=axes[1])
    grid_x = np.linspace(0.05, 20, 200)
    axes[1].plot(grid_x, stats.chi2.pdf(grid_x, 3), "k--", lw=1)
    axes[1].set(title="Residual D² (dashed: χ², 3 dof)", xlabel="D² (squared noise SDs)", ylabel="density")
    sns.scatterplot(sample, x="true_health", y="roundtrip_error", hue="method", hue_order=INVERSE_ORDER, s=8,
                    ax=axes[2])
    axes[2].set(title="Noise-free round trip G(F(c)) - c", xlabel="true health h", ylabel="health error")
    return fig


def plot_honest_scores(cal: pd.DataFrame, fixed_threshold: float, roc_threshold: float,
                       fpr_target: float) -> Figure:
    """Histograms of honest items' similarity, consistency and verification score (columns of ``cal``), with
    the fixed threshold and the one read off the ROC curve at ``fpr_target``."""
    fig, axes = plt.subplot_mosaic([[0, 1], [2, 2]], figsize=(7.5, 6), layout="constrained")
    for ax, col, title in zip(axes.values(), ["similarity", "consistency", "score"],
                              ["step 2: similarity s", "step 3: consistency κ", "verification score min(s, κ)"]):
        sns.histplot(cal[col], bins=np.linspace(0, 1, 41), ax=ax)
        ax.axvline(fixed_threshold, c="C3", ls="--", label=f"fixed threshold {fixed_threshold:g}")
        ax.axvline(roc_threshold, c="k", ls=":", label=f"ROC threshold ({fpr_target:.0%} FPR)")
        ax.set(title=f"Honest: {title}", xlabel="score", ylabel="items (count)")
    axes[0].legend(loc="upper left")
    return fig


def plot_roc_by_kind(results: Sequence[Any], per_kind: pd.DataFrame, seed: int, fpr_target: float,
                     n_seeds: int) -> Figure:
    """ROC curves of min(s, κ) per anomaly kind (the first seed) and the AUC per kind and score over seeds,
    from :func:`roc_and_auc`; anomaly kinds are written in words."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 8), layout="constrained")
    roc, auc_long = (d.assign(kind=d["kind"].str.replace("_", " ")) for d in roc_and_auc(results, per_kind))
    sns.lineplot(roc, x="fpr", y="tpr", hue="kind", ax=axes[0], drawstyle="steps-post", errorbar=None)
    axes[0].plot([0, 1], [0, 1], "k:", lw=1)
    axes[0].axvline(fpr_target, c="grey", ls="--", lw=1)
    axes[0].set(title=f"ROC of min(s, κ) per anomaly kind (seed {seed})", xlabel="false-positive rate",
                ylabel="detection rate (true-positive rate)")
    sns.barplot(auc_long, y="kind", x="AUC", hue="score", errorbar=("ci", 95), seed=seed, ax=axes[1])
    axes[1].axvline(0.5, c="k", ls=":", lw=1)
    axes[1].set(title=f"AUC per kind and score ({n_seeds} seeds, 95% CI)", xlabel="area under the ROC curve",
                ylabel="", xlim=(0.3, 1.0))
    sns.move_legend(axes[1], "upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, title="score")
    return fig


def plot_detection_by_severity(curves: pd.DataFrame, severity: float, n_seeds: int, seed: int = 0) -> Figure:
    """Detection at the ROC threshold against anomaly size per kind (``curves`` of :func:`severity_curves`),
    with the declared ``severity`` and the seed's 89%."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    sns.lineplot(curves, x="severity", y="detection", hue="kind", marker="o", errorbar=("ci", 95), seed=seed, ax=ax)
    ax.axvline(severity, c="grey", ls="--", lw=1, label=f"declared severity {severity:g}")
    ax.axhline(0.89, c="C3", ls=":", lw=1, label="the seed's 89%")
    ax.set(title=f"Detection at the ROC threshold against anomaly size ({n_seeds} seeds, 95% CI)",
           xlabel="severity s (noise units)", ylabel="detection rate (fraction)", ylim=(0, 1.02))
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_secure_similarity(sec: Any, sec_cost: pd.DataFrame) -> Figure:
    """Secure minus plaintext similarity (``sec.scores``, ``sec.plaintext_scores``), and the two-party traffic
    against the batch size per reveal mode (``sec_cost``: columns reveal, items, bytes, rounds)."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.2), layout="constrained")
    axes[0].scatter(sec.plaintext_scores, sec.scores - sec.plaintext_scores, s=8)
    axes[0].axhline(0, c="k", lw=0.8)
    axes[0].set(title="Secure minus plaintext similarity", xlabel="plaintext similarity s",
                ylabel="secure - plaintext")
    for mode, grp in sec_cost.groupby("reveal", sort=False):
        axes[1].plot(grp["items"], grp["bytes"] / 1e3, "o-", label=f"reveal {mode} ({grp['rounds'].iloc[0]} rounds)")
    axes[1].set(xscale="log", yscale="log", title="Communication grows with the batch, rounds do not",
                xlabel="items in the batch", ylabel="two-party traffic (kB)")
    axes[1].legend()
    return fig


def plot_gate_cycle(runs: pd.DataFrame, n_seeds: int, seed: int = 0) -> Figure:
    """Final test accuracy per arm (95% CI over seeds) and the learning curves against labels bought, from the
    runs of :func:`gate_study` with their ``arm`` column."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.8), layout="constrained")
    sns.pointplot(runs, y="arm", x="accuracy", errorbar=("ci", 95), seed=seed, linestyle="none", ax=axes[0])
    axes[0].set(title=f"Final test accuracy ({n_seeds} seeds, 95% CI)", xlabel="accuracy (fraction)", ylabel="")
    sns.lineplot(gate_curves(runs), x="labels bought", y="accuracy", hue="arm", errorbar=("ci", 95), seed=seed,
                 ax=axes[1])
    axes[1].set(title="Learning curves (mean, 95% CI)", xlabel="labels bought (inspections paid)",
                ylabel="accuracy (fraction)")
    axes[1].legend(fontsize=8)
    return fig
