"""Figures, tables, glue values and record entries of the notebook 02_active_learning (companion of ch02)."""
from __future__ import annotations

import inspect
import math
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ppal_lab import federated
from ppal_lab.chapters import ch02_active_learning as E

__all__ = [
    "add_accuracy_metrics",
    "add_saving_metrics",
    "bench_glue",
    "bench_table",
    "big_budget_setup",
    "budget_table",
    "canary_worlds",
    "ci_glue_values",
    "fraction_by_sites",
    "glue_values",
    "headline_table",
    "observer_row",
    "plot_learning_curves",
    "plot_overhead",
    "plot_real_dataset",
    "private_runs",
    "release_values",
    "saving_table",
    "sites_table",
]


# ----------------------------------------------------------------------------------------------
# data, curves and the benchmark
# ----------------------------------------------------------------------------------------------
def sites_table(data: E.ALData) -> pd.DataFrame:
    """Pool items and share of class 1 of each site (rows), one column per site, rounded to 3 digits."""
    return pd.DataFrame({
        "site": [f"site {p}" for p in range(data.n_participants)],
        "pool items": [idx.size for idx in data.partition],
        "share of class 1": [float(np.mean(data.y[idx] == 1)) for idx in data.partition],
    }).round(3).set_index("site").T


def _curves_panel(ax: Any, summary: pd.DataFrame, full_acc: float, target: float, target_label: str,
                  title: str) -> None:
    E.plot_curves(ax, summary)
    ax.axhline(full_acc, c="k", lw=1, label="all pool labels")
    ax.axhline(target, c="k", lw=1, ls="--", label=target_label)
    ax.set(title=title, xlabel="labels (count)", ylabel="test accuracy (fraction)")
    ax.legend(fontsize=8)


def plot_learning_curves(summary: pd.DataFrame, by_target: pd.DataFrame, full_acc: float, target_fraction: float,
                         *, dataset: str, strategy: str, n_seeds: int) -> plt.Figure:
    """Figure 02_learning_curves: the mean learning curves with the full-data accuracy and the target
    (``target_fraction`` of it) on top, the label saving of ``strategy`` against random per target below."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 7), layout="constrained")
    _curves_panel(axes[0], summary, full_acc, target_fraction * full_acc, f"target ({target_fraction:.0%} of it)",
                  f"{dataset}: learning curves ({n_seeds} seeds, 95% CI)")
    E.plot_saving_by_target(axes[1], by_target, strategy)
    axes[1].set(title=f"Label saving of {strategy} vs random", xlabel="target (fraction of full-data accuracy)",
                ylabel="labels saved (fraction)")
    axes[1].legend()
    return fig


def plot_real_dataset(summary: pd.DataFrame, fraction_table: pd.DataFrame, full_acc: float, target_fraction: float,
                      *, dataset: str, n_seeds: int, delta: float) -> plt.Figure:
    """Figure 02_real_dataset: the mean learning curves on the real data set on top, the fraction of the
    centralized accuracy per ε (:func:`ppal_lab.chapters.ch02_active_learning.fraction_plot`) below."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 7), layout="constrained")
    _curves_panel(axes[0], summary, full_acc, target_fraction * full_acc, "target",
                  f"{dataset}: learning curves ({n_seeds} seeds, 95% CI)")
    E.fraction_plot(axes[1], fraction_table, f"{dataset}: federated DP active learning", delta)
    return fig


_BENCH_COLUMNS = {"pool_size": "pool size", "strategy": "strategy", "ours_median_s": "ours (ms)",
                  "skactiveml_median_s": "scikit-activeml (ms)", "ratio_ours_over_theirs": "time ratio",
                  "same_picks": "same picks"}


def bench_table(bench: dict) -> pd.DataFrame:
    """The rows of the query benchmark record (``bench_query.json``), times in ms, columns renamed."""
    table = pd.DataFrame(bench["rows"])[list(_BENCH_COLUMNS)]
    table[["ours_median_s", "skactiveml_median_s"]] *= 1000
    return table.rename(columns=_BENCH_COLUMNS)


def bench_glue(table: pd.DataFrame) -> dict[str, float]:
    """Largest time ratio (ours over scikit-activeml) of :func:`bench_table` and the speed-ups it spans."""
    ratio = table["time ratio"]
    return {"bench_ratio_max": float(ratio.max()), "bench_speedup_min": float(1 / ratio.max()),
            "bench_speedup_max": float(1 / ratio.min())}


# ----------------------------------------------------------------------------------------------
# the privacy-utility grid
# ----------------------------------------------------------------------------------------------
def private_runs(grid: pd.DataFrame) -> pd.DataFrame:
    """The federated runs with a finite ε of a :func:`privacy_utility_grid`, after checking that no site
    overspent its ε and that no run stopped early (AssertionError otherwise)."""
    private = grid[(grid["setting"] == "federated") & np.isfinite(grid["epsilon"])]
    if not (private["epsilon_spent"] <= private["epsilon"] * (1 + 1e-9)).all():
        raise AssertionError("a site overspent")
    if grid["stopped_early"].any():
        raise AssertionError("a run stopped early")
    return private


def release_values(P: Any, private: pd.DataFrame) -> dict[str, float]:
    """What one query round releases at ``P.epsilon``: the query share and DP-SGD sample rate (defaults of
    :func:`ppal_lab.federated.run_federated_al`), query rounds, ε of one release, its Laplace scale, the mean
    noise multiplier, labels per site, the noise-to-signal ratios at the start and end, and the pick ratio."""
    defaults = inspect.signature(federated.run_federated_al).parameters
    query_share, sample_rate = defaults["query_share"].default, defaults["sample_rate"].default
    n_rounds = math.ceil((P.label_budget - P.initial_labels) / P.batch_size)
    eps_release = P.epsilon * query_share / n_rounds / 2
    z_at_eps = float(private.loc[np.isclose(private["epsilon"], P.epsilon), "noise_multiplier"].mean())
    labels_per_site = P.label_budget / P.n_participants
    return {"query_share": query_share, "n_query_rounds": n_rounds, "eps_release": eps_release,
            "laplace_scale": 1 / eps_release, "z_at_eps": z_at_eps, "labels_per_site": labels_per_site,
            "epsilon": P.epsilon, "noise_to_signal_end": z_at_eps / (sample_rate * labels_per_site),
            "noise_to_signal_start": z_at_eps / (sample_rate * P.initial_labels / P.n_participants),
            "sample_rate": sample_rate, "pick_ratio": math.exp(eps_release)}


def plot_overhead(over: pd.DataFrame, epsilon: float, *, n_participants: int, load: float,
                  cores: int | None) -> plt.Figure:
    """Figure 02_overhead: mean wall time per round (ms) of each repeat, non-private and private bars."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    times = over.melt(id_vars="seed", value_vars=["nonprivate_round_s", "private_round_s"], var_name="run",
                      value_name="s").replace({"nonprivate_round_s": "non-private",
                                               "private_round_s": f"ε = {epsilon:g}"})
    times["ms"] = 1000 * times["s"]
    sns.barplot(times, x="seed", y="ms", hue="run", ax=ax)
    ax.set(title=f"Mean wall time per round, {n_participants} sites (load {load:.1f} on {cores} cores)",
           xlabel="repeat (seed)", ylabel="time per round (ms)")
    return fig


_SAVING_COLUMNS = ["target_fraction", "labels", "baseline_labels", "saving", "saving_low", "saving_high", "censored"]


def saving_table(by_target: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """The rows of ``strategy`` of a :func:`savings_by_target` table, indexed by the target fraction."""
    return by_target.loc[by_target["strategy"] == strategy, _SAVING_COLUMNS].set_index("target_fraction")


# ----------------------------------------------------------------------------------------------
# record, headline and glue
# ----------------------------------------------------------------------------------------------
def add_saving_metrics(record: Any, P: Any, main_saving: pd.DataFrame, real_saving: pd.DataFrame) -> None:
    """Add the label saving at ``P.target_fraction`` on both data sets (one-target :func:`savings_by_target`
    tables indexed by strategy), then the labels ``P.strategy`` and random need on the main one."""
    at = f"{P.target_fraction:.0%} of full-data accuracy (mean curve, 95% paired bootstrap CI)"
    for prefix, tab in [("", main_saving), ("real_", real_saving)]:
        r = tab.loc[P.strategy]
        E.add_figure(record, prefix + "label_saving_at_target", (r["saving"], r["saving_low"], r["saving_high"],
                                                                 r["n_seeds"]),
                     "fraction", f"{P.strategy} vs random, labels saved to reach {at}")
    r = main_saving.loc[P.strategy]
    E.add_figure(record, "labels_to_target_strategy", (r["labels"], r["labels_low"], r["labels_high"], P.n_seeds),
                 "labels", f"labels {P.strategy} needs to reach {at}")
    E.add_figure(record, "labels_to_target_random",
                 (r["baseline_labels"], r["baseline_low"], r["baseline_high"], P.n_seeds),
                 "labels", f"labels random needs to reach {at}")


def add_accuracy_metrics(record: Any, P: Any, full_acc: float, grid: pd.DataFrame, fractions: pd.DataFrame) -> None:
    """Add the full-data accuracy, the centralized reference's accuracy at the budget, and the fraction of it
    the federated runs reach at ``P.epsilon`` and without privacy (:func:`fraction_of_centralized` rows)."""
    E.add_metric(record, "full_data_accuracy", full_acc, "fraction",
                 f"{P.dataset}: logistic regression on every pool label")
    E.add_metric(record, "centralized_accuracy_at_budget",
                 grid.loc[grid["setting"] == "centralized", "final_accuracy"],
                 "fraction", "centralized non-private reference (torch model) at the label budget")
    E.add_metric(record, "fraction_of_centralized",
                 fractions.loc[np.isclose(fractions["epsilon"], P.epsilon), "fraction"],
                 "fraction", f"federated DP AL at ε = {P.epsilon:g} / centralized")
    E.add_metric(record, "fraction_of_centralized_nonprivate",
                 fractions.loc[np.isinf(fractions["epsilon"]), "fraction"],
                 "fraction", "federated without privacy / centralized")


def headline_table(record: Any) -> pd.DataFrame:
    """Value, 95% CI (rounded to 3 digits), n and unit of each metric of ``record`` but the wall-time overheads."""
    metrics = {k: m for k, m in record.metrics.items() if not k.endswith("overhead")}
    return pd.DataFrame({k: {"value": m["value"],
                             "ci95": None if m["ci95"] is None else [round(v, 3) for v in m["ci95"]],
                             "n": m["n"], "unit": m["unit"]} for k, m in metrics.items()}).T


def _ci_values(prefix: str, m: float, lo: float, hi: float, n: int) -> dict[str, float | int]:
    """``prefix``, ``_lo``, ``_hi``, ``_n`` as plain numbers (the interval collapses to the value at n = 1)."""
    return {prefix: float(m), prefix + "_lo": float(lo if n > 1 else m), prefix + "_hi": float(hi if n > 1 else m),
            prefix + "_n": int(n)}


def ci_glue_values(claim_sets: dict[str, tuple], real_frac: pd.DataFrame, frac_table: pd.DataFrame,
                   per_seed: pd.DataFrame, saving: pd.DataFrame, strategy: str,
                   epsilon: float) -> dict[str, float | int]:
    """Each claim metric of :func:`claim_sets` by its record name (NaN: undefined), the fraction of centralized
    accuracy on the real data set at ``epsilon`` and without privacy on the main one, and the saving of ``strategy``
    per seed and off the mean curves, each with ``_lo``, ``_hi`` and ``_n``."""
    values = {}
    for name, figure in claim_sets.items():
        values.update(_ci_values(name, *figure))
    values.update(_ci_values("real_fraction", *E.fraction_at(real_frac, epsilon)))
    values.update(_ci_values("fraction_none", *E.fraction_at(frac_table, math.inf)))
    ps, r = per_seed.loc[strategy], saving.loc[strategy]
    values.update(_ci_values("saving_per_seed", ps["saving"], ps["saving_low"], ps["saving_high"], int(ps["n"])))
    values.update(_ci_values("target_saving", r["saving"], r["saving_low"], r["saving_high"], int(r["n_seeds"])))
    return values


def glue_values(record: Any, P: Any, *, full_acc: float, real_full: float, saving: pd.DataFrame,
                frac_table: pd.DataFrame, load: float, cores: int | None) -> dict[str, Any]:
    """The prose's numbers (plain Python) and Markdown: accuracies, labels to the target, the machine's load,
    names, the engine's verdicts (and the first rule's), and the smallest ε whose CI stays above 90%."""
    from IPython.display import Markdown

    r = saving.loc[P.strategy]
    values = {"full_acc": full_acc, "target_acc": P.target_fraction * full_acc, "real_full": real_full,
              "target_pct": P.target_fraction, "load": load, "cores": cores, "labels_strategy": r["labels"],
              "labels_random": r["baseline_labels"], "labels_random_lo": r["baseline_low"],
              "labels_random_hi": r["baseline_high"], "label_budget": P.label_budget,
              "n_targets": len(E.SAVING_TARGETS)}
    values = {k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()}
    values["strategy_name"] = Markdown(f"`{P.strategy}`")
    values["real_name"] = Markdown(f"`{P.real_dataset}`")
    for c in record.claims:
        values["verdict_" + c["id"]] = Markdown(f"**{c['verdict']}**")
        values["first_verdict_" + c["id"]] = Markdown(f"**{c.get('first_verdict', '-')}**")
    eps = frac_table[frac_table["fraction_low"] > 0.9]["epsilon"]
    values["eps_for_90"] = Markdown(E.epsilon_label(eps.min()) if len(eps) else "none of the grid")
    return values


# ----------------------------------------------------------------------------------------------
# the exercises
# ----------------------------------------------------------------------------------------------
def canary_worlds(data: E.ALData, strategy: str, rng: np.random.Generator) -> dict[bool, np.ndarray]:
    """Site 0's normalized scores (times 0.999) under a model fitted on 40 random pool labels (drawn from
    ``rng``), with one more record appended: a null record (score 0, key False) or the canary (1, True)."""
    from sklearn.linear_model import LogisticRegression

    start = rng.choice(data.pool_size, 40, replace=False)
    clf = LogisticRegression(max_iter=1000).fit(data.X[start], data.y[start])
    pool = federated.normalized_scores(clf.predict_proba(data.X[data.partition[0]]), strategy) * 0.999
    return {False: np.append(pool, 0.0), True: np.append(pool, 1.0)}


def observer_row(top: dict[bool, np.ndarray], private: bool) -> dict[str, Any]:
    """The best threshold observer of the largest release: fitted on the first half of each world's draws
    (``top[True]``: with the canary), its accuracy on the second half and a normal 95% CI over all draws."""
    half_n = top[True].size // 2
    ts = np.quantile(np.concatenate([v[:half_n] for v in top.values()]), np.linspace(0, 1, 201))
    t = max(ts, key=lambda t: np.mean(top[True][:half_n] >= t) + np.mean(top[False][:half_n] < t))
    acc = 0.5 * (np.mean(top[True][half_n:] >= t) + np.mean(top[False][half_n:] < t))
    half = 1.96 * math.sqrt(acc * (1 - acc) / top[True].size)
    return {"release": "DP" if private else "exact", "observer accuracy": acc,
            "95% CI": f"{max(acc - half, 0):.3f} to {min(acc + half, 1):.3f}"}


def fraction_by_sites(P: Any, setup: dict, sites: Sequence[int] = (1, 4, 8), n_seeds: int = 3) -> pd.DataFrame:
    """Fraction of centralized accuracy at ε = 1 (mean over ``n_seeds`` repeats) with the pool of ``P.dataset``
    split across each number of ``sites``."""
    rows = []
    for n_sites in sites:
        d = E.prepare(P.dataset, P.seed, n_items=P.n_items, test_fraction=P.test_fraction, n_participants=n_sites,
                      non_iid=P.non_iid)
        g = E.privacy_utility_grid(d, [1.0], strategy=P.strategy, delta=P.delta, n_seeds=n_seeds, seed=P.seed,
                                   **setup)
        rows.append({"sites": n_sites, f"fraction of centralized at ε = 1 ({n_seeds} repeats)":
                     E.fraction_of_centralized(g)["fraction"].mean()})
    return pd.DataFrame(rows)


def big_budget_setup(P: Any, pool_size: int, n_rounds: int) -> dict[str, int]:
    """Four times the label budget (at most the pool) in the same ``n_rounds`` query rounds, checked by
    :func:`validate_setup`: ``label_budget``, ``initial_labels`` and ``batch_size``."""
    budget = min(4 * P.label_budget, pool_size)
    big = dict(label_budget=budget, initial_labels=P.initial_labels,
               batch_size=math.ceil((budget - P.initial_labels) / n_rounds))
    E.validate_setup([P.dataset], n_items=P.n_items, test_fraction=P.test_fraction, n_participants=P.n_participants,
                     **big)
    return big


def budget_table(fractions: pd.DataFrame, big_grid: pd.DataFrame, label_budget: int, big_budget: int,
                 seed: int) -> pd.DataFrame:
    """Fraction of centralized accuracy at ε = 1 at the label budget (the first two repeats of ``fractions``)
    and at ``big_budget`` (the runs of ``big_grid``)."""
    first = fractions[np.isclose(fractions["epsilon"], 1.0) & (fractions["seed"] < seed + 2)]
    return pd.DataFrame({"label budget": [label_budget, big_budget],
                         "fraction of centralized at ε = 1 (2 repeats)": [
                             first["fraction"].mean(), E.fraction_of_centralized(big_grid)["fraction"].mean()]})
