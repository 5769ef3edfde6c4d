"""Figures and tables of the QUBO feature-selection chapter (companion of :mod:`.ch05_qubo_feature_selection`)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ppal_lab.chapters.ch05_qubo_feature_selection import SOLVER_LABELS, selector_label

__all__ = ["OPTIMALITY_COLUMNS", "downstream_accuracy_table", "load_note", "optimality_table", "plot_downstream",
           "plot_optimality", "plot_peers", "plot_worked_example", "tts_table"]

#: Columns of the optimality summary the chapter shows, in order.
OPTIMALITY_COLUMNS = ["label", "success", "wilson_lo", "wilson_hi", "mean_gap", "max_gap", "feasible",
                      "mean_time_ms"]


def plot_worked_example(relevance: np.ndarray, names: np.ndarray, selected: Iterable[int], ours_label: str,
                        n_top: int = 20) -> Figure:
    """Figure ``05_worked_example``: horizontal bars of the ``n_top`` largest relevances (most relevant on top),
    the features in ``selected`` in the palette's first colour, the others in its grey."""
    selected = set(selected)
    order = np.argsort(-relevance)[:n_top]
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    colors = [sns.color_palette()[0] if i in selected else sns.color_palette()[7] for i in order]
    ax.barh(names[order][::-1], relevance[order][::-1], color=colors[::-1])
    ax.set(title=f"Relevance of the {n_top} most relevant features (blue: selected by {ours_label})",
           xlabel="mutual information with the grade (scaled to max 1)", ylabel="")
    ax.tick_params(axis="y", labelsize=8)
    return fig


def optimality_table(opt_summary: pd.DataFrame) -> pd.DataFrame:
    """The columns of :data:`OPTIMALITY_COLUMNS` of :func:`.summarize_optimality`'s table."""
    return opt_summary[OPTIMALITY_COLUMNS]


def plot_optimality(opt: pd.DataFrame, opt_summary: pd.DataFrame, n_instances: int) -> Figure:
    """Figure ``05_optimality``: the share of instances each solver solves exactly (Wilson 95% CI, bars sorted by
    success) above a strip plot of every run's relative energy gap (log scale; gaps below 1e-6 shown at 1e-6)."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.5), layout="constrained")
    s = opt_summary.sort_values("success")
    axes[0].barh(s["label"], s["success"], xerr=[(s["success"] - s["wilson_lo"]).clip(lower=0),
                                                 (s["wilson_hi"] - s["success"]).clip(lower=0)],
                 color=sns.color_palette()[0], capsize=3)
    axes[0].set(title=f"Exact optimum found ({n_instances} instances, Wilson 95% CI)",
                xlabel="share of instances (fraction)", xlim=(0, 1.02))
    gaps = opt.assign(label=opt["solver"].map(SOLVER_LABELS), gap=opt["gap"].clip(lower=1e-6))
    sns.stripplot(gaps, y="label", x="gap", order=list(s["label"])[::-1], ax=axes[1], size=3, alpha=0.6, jitter=0.25)
    axes[1].set(xscale="log", title="Relative energy gap to the optimum (1e-6 = found)",
                xlabel="(E - E*) / |E*|, log scale", ylabel="")
    return fig


def load_note(load_before: float, load_after: float, cores: int) -> str:
    """The line that reports the machine's load around the peer comparison."""
    return (f"load average (1 min) on this machine: {load_before:.1f} before, {load_after:.1f} after, "
            f"{cores} cores")


def plot_peers(peers: pd.DataFrame, k: int) -> Figure:
    """Figure ``05_peers``: one log-log panel per problem size (three sizes) of the gap to the best energy
    (clipped at 1e-5) against wall time, one marker per solver; the fourth panel holds the shared legend."""
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 6.4), sharey=True, layout="constrained")
    for ax, (n, g) in zip(axes.flat, peers.groupby("n")):
        g = g.assign(label=g["solver"].map(SOLVER_LABELS), gap=g["gap_to_best"].clip(lower=1e-5))
        sns.scatterplot(g, x="time_s", y="gap", hue="label", style="label", ax=ax, s=60, legend="auto")
        ax.set(xscale="log", yscale="log", title=f"n = {n} features, k = {k}", xlabel="wall time (s, log)",
               ylabel="gap to best energy\n(relative, 1e-5 = best)")
    solvers = {lab: h for ax in axes.flat[:-1] for h, lab in zip(*ax.get_legend_handles_labels())}
    for ax in axes.flat[:-1]:
        ax.get_legend().remove()
    axes[1, 1].legend(solvers.values(), solvers.keys(), loc="center", title="solver")
    axes[1, 1].axis("off")
    return fig


def tts_table(instances: Sequence[dict[str, Any]]) -> pd.DataFrame | None:
    """TTS99 (seconds) by instance (name, target kind, whether it discriminates) and solver, from the
    ``instances`` of the ``bench_qubo`` record; ``None`` without instances. A missing TTS99 (the solver never
    reached the target in its budget) stays missing."""
    rows = [{"instance": i["instance"], "target": i["target_kind"], "discriminates": i["discriminates"],
             "solver": s, "p per run": r["p_run"], "TTS99 s": r["tts99_s"]}
            for i in instances for s, r in i["solvers"].items()]
    if not rows:
        return None
    return pd.DataFrame(rows).pivot(index=["instance", "target", "discriminates"], columns="solver", values="TTS99 s")


def downstream_accuracy_table(down: pd.DataFrame, solver: str, polish: bool) -> pd.DataFrame:
    """Held-out accuracy by data set and ``k`` (rows) and selector (columns, in words), from
    :func:`.summarize_downstream`, with the all-features model of each data set as the last column (one model
    per data set: the reference each row is compared with)."""
    accuracy = down[down["selector"] != "all"].pivot_table(index=["dataset", "k"], columns="selector",
                                                           values="accuracy")
    full = down[down["selector"] == "all"].groupby("dataset")["accuracy"].first()
    accuracy["all features"] = full.reindex(accuracy.index.get_level_values("dataset")).to_numpy()
    return accuracy.rename(columns=lambda s: selector_label(s, solver, polish) if s != "all features" else s)


def plot_downstream(down: pd.DataFrame, datasets: Sequence[str], n_seeds: int, solver: str, polish: bool) -> Figure:
    """Figure ``05_downstream``: one panel per data set of held-out accuracy against ``k`` by selector (95% CI
    bands), the all-features model as a grey line in its grey 95% CI band; the legend on the last panel."""
    fig, axes = plt.subplots(len(datasets), 1, figsize=(7.5, 3.5 * len(datasets)), layout="constrained")
    for ax, ds in zip(np.atleast_1d(axes), datasets):
        d = down[down["dataset"] == ds].sort_values("k", kind="stable")
        full = d[d["selector"] == "all"].iloc[0]
        ax.axhspan(full["ci_lo"], full["ci_hi"], color="0.85", label="all features (95% CI)")
        ax.axhline(full["accuracy"], color="0.4", lw=1)
        for i, (sel, g) in enumerate((sel, g) for sel, g in d.groupby("selector", sort=False) if sel != "all"):
            ax.plot(g["k"], g["accuracy"], marker="o", label=selector_label(sel, solver, polish),
                    color=sns.color_palette()[i])
            ax.fill_between(g["k"], g["ci_lo"], g["ci_hi"], alpha=0.12, color=sns.color_palette()[i])
        ax.set(title=f"{ds}: held-out accuracy ({n_seeds} seeds, 95% CI)", xlabel="features selected k",
               ylabel="accuracy (fraction)")
    np.atleast_1d(axes)[-1].legend(fontsize=8, loc="lower right")
    return fig
