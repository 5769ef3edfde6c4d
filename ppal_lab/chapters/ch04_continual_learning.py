r"""Experiments of the chapter "continual learning under drift" (seed 001): a small network trained
quarter by quarter on the magnet-grade data, with and without elastic weight consolidation (EWC).

The test bed (issue 15): the magnet generator's ``concept="conflict"`` drift, in which a new product
family arrives every quarter and the strongest signal (manufacturing date) reverses from one family to
the next, so a model that follows the newest quarter must unlearn the old ones while a model trained on
everything can keep both. Whether the bed can show what the claims are about is measured, not assumed:
the headroom ``headroom_bwt_auc`` (joint training's backward transfer minus fine-tuning's, ROC AUC) must
reach the minimum declared in the spec, else the claims are "not measurable". Every quarter is trained
to convergence of its held-out fit (early stopping on the quarter's validation drives), and EWC's
penalty weight is chosen per seed on validation drives, never on test drives.

Claims and figures (``notebooks/04_continual_learning.ipynb``, record
``data/results/04_continual_learning.json``):

* *a model updated on new data forgets earlier patterns* — :func:`run_experiment` over seeds and
  penalty strengths, summarised per run by :func:`summarise` (the continual-learning metrics of
  :func:`ppal_lab.learning.continual.cl_metrics`, in ROC AUC, log-loss and accuracy); score matrices
  (figure ``04_accuracy_matrix``, :func:`mean_matrix`, :func:`plot_score_matrices`), past vs current quarters
  (figure ``04_past_vs_current``, :func:`per_quarter`, :func:`ci_table`, :func:`plot_past_vs_current`);
* *EWC counters the forgetting* — EWC at the lambda chosen on validation drives
  (:func:`validation_lambda`, :func:`with_validation_choice`), the lambda sweeps (figures
  ``04_lambda_sweep`` and ``04_lambda_sweep_contrast``), :func:`metric_table`, the paired differences
  of :func:`paired_difference`; the exercises' comparisons by :func:`fisher_traces` and :func:`variant_table`.

:func:`fill_metrics` writes the measured figures into the record, :func:`add_claims` the claims declared in
the chapter's spec (``ppal_lab.compendium.specs``) with the verdicts the engine computes from them.
The algorithms live in the learning room: the encoder and quarterly tasks in
:mod:`ppal_lab.learning.quarter_tasks`, the MLP, Fisher information, EWC penalty and training in
:mod:`ppal_lab.learning.ewc`, one quarter-by-quarter run in :mod:`ppal_lab.learning.continual`.

Data: :func:`ppal_lab.data.make_magnet_grades` (12 months, drift on, ``concept`` of the spec) per seed,
at the chapter's missing rate and, as a contrast, with complete features; quarters become tasks (with
test and validation drives) by :func:`ppal_lab.learning.quarter_tasks.make_quarter_tasks`.

Run time (estimated from direct calls of these functions at the defaults, one free core, not from a
notebook run): about 12 s of CPU per seed for both studies, about 25 s for the exercises, so about
100 s for the notebook against its 180 s budget.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from ppal_lab.compendium import plots
from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_range, check_real
from ppal_lab.compendium.results import ResultRecord, mean_ci
from ppal_lab.compendium.specs import SPECS
from ppal_lab.data import SupplyChainData, describe, make_magnet_grades
from ppal_lab.data.magnet import CONCEPTS
from ppal_lab.learning import ewc
from ppal_lab.learning.continual import (METHODS, SCORES, check_settings, check_training, cl_metrics, lambda_grid,
                                         run_sequence)
from ppal_lab.learning.quarter_tasks import QuarterTasks, make_quarter_tasks

__all__ = [
    "METRICS",
    "SCORE_NAME",
    "VALIDATION_LABEL",
    "add_claims",
    "check_settings",
    "ci_table",
    "fill_metrics",
    "fisher_traces",
    "glue_values",
    "headline_table",
    "mean_matrix",
    "metric_table",
    "paired_difference",
    "per_quarter",
    "plot_past_vs_current",
    "plot_score_matrices",
    "quarter_table",
    "run_experiment",
    "start",
    "summarise",
    "sweep_plot",
    "validation_lambda",
    "variant_table",
    "with_validation_choice",
]

#: Scores shown in the chapter, with their display names (log-loss: lower is better).
SCORE_NAME = {"roc_auc": "ROC AUC", "log_loss": "log-loss", "accuracy": "accuracy"}
#: Continual-learning metrics recorded per configuration.
METRICS = ("average_accuracy", "backward_transfer", "plasticity")
#: Label of EWC at the penalty weight chosen on validation drives.
VALIDATION_LABEL = "EWC (validation λ)"
_UNIT = {"accuracy": "accuracy (fraction)", "roc_auc": "ROC AUC", "log_loss": "log-loss (nats)"}
_SUFFIX = {"roc_auc": "auc", "log_loss": "logloss", "accuracy": "accuracy"}


def start(P: Any) -> tuple[ResultRecord, list[float], list[int], dict[str, Any], str]:
    """Cross-parameter checks (before any data exist), one torch thread, and the chapter's constants:
    ``(record, lambdas, seeds, settings, ewc_label)`` — the sorted lambda sweep (with ``P.ewc_lambda``),
    the seeds, the keyword arguments of :func:`run_experiment` shared by every study, and the label of
    EWC at ``P.ewc_lambda``."""
    check_settings(P.n_per_month, P.n_labels, P.n_test + P.n_val)
    lambdas = sorted(set(lambda_grid(P.lambda_min, P.lambda_max, P.n_lambdas)) | {P.ewc_lambda})
    torch.set_num_threads(1)            # small networks: one thread is fastest, and fair to a busy machine
    record = ResultRecord("04_continual_learning", vars(P))
    seeds = list(range(P.seed, P.seed + P.n_seeds))
    settings = dict(n_labels=P.n_labels, n_test=P.n_test, n_val=P.n_val, n_per_month=P.n_per_month,
                    epochs=P.epochs, hidden=(P.hidden_units, P.hidden_units), fisher=P.fisher,
                    consolidation=P.consolidation, strategy=P.strategy, concept=P.concept)
    return record, lambdas, seeds, settings, f"EWC λ={P.ewc_lambda:g}"


def quarter_table(example: SupplyChainData, tasks: QuarterTasks) -> pd.DataFrame:
    """Per quarter of one data set: drives, positive rate, labels, missingness, manufacturers and mean
    date (:func:`ppal_lab.data.describe.quarter_summary`), the training labels and the test drives'
    majority-class accuracy."""
    table = describe.quarter_summary(example)[["quarter", "items", "positive_rate", "labelled", "missing_rate",
                                               "manufacturers", "mean_manufacturing_date"]]
    table["training labels"] = [len(i) for i in tasks.labelled]
    table["majority-class accuracy"] = [max(y.mean(), 1 - y.mean()) for y in tasks.y_test]
    table["validation drives"] = [len(y) for y in tasks.y_val]
    return table


# --------------------------------------------------------------------------------------------------
# Experiments over seeds and lambdas
# --------------------------------------------------------------------------------------------------
def run_experiment(seeds: Iterable[int], *, ewc_lambdas: Sequence[float], n_labels: int = 600,
                   n_test: int = 2000, missing_rate: float = 0.8, n_per_month: int = 10_000,
                   label_rate: float = 0.02, methods: Sequence[str] = METHODS, epochs: int = 30,
                   hidden: Sequence[int] | int = (32, 32), lr: float = 1e-3, batch_size: int = 32,
                   fisher: str = "true", consolidation: str = "per_task", strategy: str = "random",
                   concept: str = "conflict", n_val: int = 0, progress: bool = False) -> pd.DataFrame:
    """Every method (EWC at each of ``ewc_lambdas``) on a fresh magnet data set per seed.

    Seed ``s`` drives the data (``make_magnet_grades(seed=s, concept=concept)``), the labelled, test
    and validation draws, the initial weights and the minibatch order. With ``n_val > 0`` validation
    drives per quarter, each quarter trains to convergence of its held-out fit (``epochs`` is then a
    maximum) and :func:`validation_lambda` can choose EWC's weight. Returns the long table of
    :meth:`ContinualRun.as_frame` for all runs (``train_quarter``/``eval_quarter`` from 0).
    """
    seeds = [check_int("seed", s, 0) for s in seeds]
    if not seeds:
        raise ParameterError("seeds", seeds, "at least one seed")
    lambdas = [check_real("ewc_lambdas", v, 0.0) for v in ewc_lambdas]
    methods = [check_choice("methods", m, METHODS) for m in methods]
    if "ewc" in methods and not lambdas:
        raise ParameterError("ewc_lambdas", list(ewc_lambdas), "at least one lambda >= 0 for 'ewc'")
    check_range("missing_rate", missing_rate, 0.0, 1.0, high_open=True)
    check_choice("concept", concept, CONCEPTS)
    n_val = check_int("n_val", n_val, 0)
    check_settings(n_per_month, n_labels, n_test + n_val, label_rate)
    settings = dict(epochs=epochs, hidden=hidden, lr=lr, batch_size=batch_size, fisher=fisher,
                    consolidation=consolidation, strategy=strategy)
    # validate the training settings once, before generating any data
    check_training(epochs, hidden, lr, batch_size, fisher, consolidation, strategy)
    if not isinstance(progress, bool):
        raise ParameterError("progress", progress, "True or False")

    configs = [(m, 0.0) for m in methods if m != "ewc"]
    configs += [("ewc", lam) for lam in lambdas] if "ewc" in methods else []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds) * len(configs), desc="continual runs", leave=False)
    frames = []
    for s in seeds:
        data = make_magnet_grades(n_per_month=n_per_month, missing_rate=missing_rate,
                                  label_rate=label_rate, seed=s, concept=concept)
        tasks = make_quarter_tasks(data, n_labels, n_test, seed=s, n_val=n_val)
        for method, lam in configs:
            frames.append(run_sequence(tasks, method, ewc_lambda=lam, seed=s, **settings).as_frame())
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return pd.concat(frames, ignore_index=True)


def summarise(frame: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Per seed and configuration: the :func:`cl_metrics` of its accuracy matrix (``value`` column).
    One row per (seed, method, ewc_lambda, label)."""
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError("frame", type(frame).__name__, "a DataFrame from run_experiment")
    check_choice("value", value, SCORES)
    rows = []
    for (s, m, lam, label), g in frame.groupby(["seed", "method", "ewc_lambda", "label"], sort=False):
        R = g.pivot(index="train_quarter", columns="eval_quarter", values=value).to_numpy()
        rows.append({"seed": s, "method": m, "ewc_lambda": lam, "label": label, **cl_metrics(R)})
    return pd.DataFrame(rows)


def validation_lambda(frame: pd.DataFrame) -> pd.Series:
    """Per seed, the EWC penalty weight whose final network has the highest mean ROC AUC over the
    quarters' *validation* drives (the average score, which rewards remembering and learning alike;
    ties go to the smaller weight). Test drives play no part."""
    ewc_rows = frame[(frame["method"] == "ewc") & (frame["train_quarter"] == frame["train_quarter"].max())]
    if ewc_rows.empty or ewc_rows["val_roc_auc"].isna().all():
        raise ParameterError("frame", "no EWC runs with validation drives", "run_experiment(..., n_val > 0) with 'ewc'")
    score = ewc_rows.groupby(["seed", "ewc_lambda"])["val_roc_auc"].mean().reset_index()
    score = score.sort_values(["seed", "val_roc_auc", "ewc_lambda"], ascending=[True, False, True])
    return score.groupby("seed", sort=False)["ewc_lambda"].first().rename("lambda")


def with_validation_choice(summary: pd.DataFrame, chosen: pd.Series) -> pd.DataFrame:
    """``summary`` (from :func:`summarise`) plus, per seed, a copy of the EWC row at the weight
    ``chosen`` for it (:func:`validation_lambda`), labelled :data:`VALIDATION_LABEL`."""
    ewc = summary[summary["method"] == "ewc"]
    picked = ewc[ewc["ewc_lambda"] == ewc["seed"].map(chosen)].assign(label=VALIDATION_LABEL)
    if picked["seed"].nunique() != summary["seed"].nunique():
        raise ParameterError("chosen", dict(chosen), "one swept lambda per seed of the summary")
    return pd.concat([summary, picked], ignore_index=True)


# --------------------------------------------------------------------------------------------------
# Summaries for tables and plots
# --------------------------------------------------------------------------------------------------
def mean_matrix(frame: pd.DataFrame, label: str, value: str = "accuracy") -> pd.DataFrame:
    """Mean over seeds of one configuration's matrix (rows: train quarter, columns: eval quarter)."""
    check_choice("value", value, SCORES)
    check_choice("label", label, list(dict.fromkeys(frame["label"])))
    g = frame[frame["label"] == label]
    return g.pivot_table(index="train_quarter", columns="eval_quarter", values=value, aggfunc="mean")


def per_quarter(frame: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Per seed, configuration and training quarter ``q``: the mean score on the *past* quarters
    (``j < q``; NaN for the first) and on the *current* quarter ``q``."""
    check_choice("value", value, SCORES)
    past = (frame[frame["eval_quarter"] < frame["train_quarter"]]
            .groupby(["seed", "label", "train_quarter"], sort=False)[value].mean().rename("past"))
    current = (frame[frame["eval_quarter"] == frame["train_quarter"]]
               .set_index(["seed", "label", "train_quarter"])[value].rename("current"))
    return pd.concat([current, past], axis=1).reset_index()


def paired_difference(summary: pd.DataFrame, metric: str, label_a: str, label_b: str) -> np.ndarray:
    """``metric`` of configuration ``label_a`` minus that of ``label_b``, seed by seed (same seeds:
    same data, same initial weights), from :func:`summarise`."""
    labels = list(dict.fromkeys(summary["label"]))
    check_choice("label_a", label_a, labels)
    check_choice("label_b", label_b, labels)
    check_choice("metric", metric, [c for c in summary.columns if c not in ("seed", "method",
                                                                            "ewc_lambda", "label")])
    a = summary[summary["label"] == label_a].set_index("seed")[metric]
    b = summary[summary["label"] == label_b].set_index("seed")[metric]
    return (a - b.reindex(a.index)).to_numpy(dtype=float)


def metric_table(summary: pd.DataFrame, metrics: Sequence[str] = METRICS, digits: int = 3) -> pd.DataFrame:
    """``mean [low, high]`` (95% Student-t CI over seeds) of each metric per configuration."""
    rows = {}
    for label, g in summary.groupby("label", sort=False):
        cells = {}
        for m in metrics:
            mean, ci, _ = mean_ci(g[m])
            cells[m] = (f"{mean:.{digits}f}" if ci is None
                        else f"{mean:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]")
        rows[label] = cells
    return pd.DataFrame(rows).T


def ci_table(frame: pd.DataFrame, by: str | Sequence[str], value: str,
             confidence: float = 0.95) -> pd.DataFrame:
    """Mean, Student-t interval (``low``, ``high``) and count of ``value`` per group of ``by``
    (rows with NaN ``value`` are dropped; a group of one has ``low == high == mean``)."""
    keys = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, g in frame.dropna(subset=[value]).groupby(keys, sort=False):
        mean, ci, n = mean_ci(g[value], confidence)
        lo, hi = ci if ci is not None else (mean, mean)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     "mean": mean, "low": lo, "high": hi, "n": n})
    return pd.DataFrame(rows)


def sweep_plot(summ: dict[str, pd.DataFrame], title: str, name: str) -> None:
    """Average score, backward transfer and plasticity of EWC against lambda (mean, 95% CI; the
    validation-chosen copies left out), with fine-tuning and joint training as bands, for each score of
    :data:`SCORE_NAME`; saved as ``name``."""
    metrics = ["average_accuracy", "backward_transfer", "plasticity"]
    panels = [(score, metric) for score in SCORE_NAME for metric in metrics]
    rows = -(-len(panels) // 2)  # two panels per row: the book's column is 7.5 in wide
    fig, axes = plt.subplots(rows, 2, figsize=(7.5, 2.6 * rows), layout="constrained")
    for ax, (score, metric) in zip(axes.flat, panels):
        s = summ[score]
        e = ci_table(s[(s["method"] == "ewc") & (s["ewc_lambda"] > 0) & (s["label"] != VALIDATION_LABEL)],
                     "ewc_lambda", metric)
        ax.errorbar(e["ewc_lambda"], e["mean"], yerr=[e["mean"] - e["low"], e["high"] - e["mean"]],
                    marker="o", capsize=3, label="EWC")
        for label, ls, c in [("finetune", "--", "k"), ("joint", ":", "grey")]:
            ref = ci_table(s[s["label"] == label], "label", metric).iloc[0]
            ax.axhline(ref["mean"], ls=ls, c=c, label=label)
            ax.axhspan(ref["low"], ref["high"], color=c, alpha=0.08)
        ax.set(xscale="log", xlabel="EWC penalty λ (log scale)",
               ylabel=f"{metric.replace('_', ' ')}\n({SCORE_NAME[score]})")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    plots.save(fig, name)
    plt.show()


def plot_score_matrices(frame: pd.DataFrame, labels: Sequence[str], n_quarters: int, n_seeds: int,
                        missing_rate: float) -> Figure:
    """Figure ``04_accuracy_matrix``: the mean score matrix (:func:`mean_matrix`) of each configuration of
    ``labels`` for each score of :data:`SCORE_NAME`, as annotated heat maps two per row, one colour scale per
    score (its range over the configurations); unused panels switched off."""
    quarters = [f"Q{q + 1}" for q in range(n_quarters)]
    mats = {(s, m): mean_matrix(frame, m, s) for s in SCORE_NAME for m in labels}
    lo = {s: min(mats[s, m].values.min() for m in labels) for s in SCORE_NAME}
    hi = {s: max(mats[s, m].values.max() for m in labels) for s in SCORE_NAME}
    rows = -(-len(mats) // 2)  # two panels per row
    fig, axes = plt.subplots(rows, 2, figsize=(7.5, 2.9 * rows), layout="constrained")
    for ax, ((score, label), M) in zip(axes.flat, mats.items()):
        sns.heatmap(M, annot=True, fmt=".3f", vmin=lo[score], vmax=hi[score], cmap="viridis", cbar=False, ax=ax,
                    xticklabels=quarters, yticklabels=quarters, annot_kws={"fontsize": 8})
        ax.set(title=f"{label}: {SCORE_NAME[score]}", xlabel="evaluated on quarter", ylabel="trained through")
    for ax in axes.flat[len(mats):]:
        ax.axis("off")
    fig.suptitle(f"Score matrices, mean of {n_seeds} seeds ({missing_rate:.0%} missing values)")
    return fig


def plot_past_vs_current(frame: pd.DataFrame, labels: Sequence[str], n_quarters: int) -> Figure:
    """Figure ``04_past_vs_current``: per score of :data:`SCORE_NAME`, the mean score (95% CI over seeds) on the
    quarter just trained on (solid) and on the earlier quarters (dashed) against the quarter trained through,
    one colour per configuration of ``labels`` (nudged apart along x); the legend on the last panel."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 7.5), layout="constrained")
    colors = dict(zip(labels, sns.color_palette(n_colors=3)))
    for ax, score in zip(axes, SCORE_NAME):
        pq = per_quarter(frame[frame["label"].isin(labels)], score)
        for kind, style in [("current", "-"), ("past", "--")]:
            t = ci_table(pq, ["label", "train_quarter"], kind)
            for label, g in t.groupby("label", sort=False):
                ax.errorbar(g["train_quarter"] + 1 + 0.04 * labels.index(label), g["mean"],
                            yerr=[g["mean"] - g["low"], g["high"] - g["mean"]], ls=style, marker="o", capsize=3,
                            color=colors[label], label=f"{label}, {kind} quarter" + ("s" if kind == "past" else ""))
        ax.set(xticks=range(1, n_quarters + 1), xlabel="trained through quarter",
               ylabel=f"{SCORE_NAME[score]} (mean, 95% CI)", title=f"{SCORE_NAME[score]}: current vs past quarters")
    axes[1].legend(fontsize=8, ncol=2)
    return fig


def fisher_traces(P: Any, hidden: Sequence[int]) -> pd.Series:
    """Total Fisher information (the trace of its diagonal) of each kind of :data:`ppal_lab.learning.ewc.FISHER_KINDS`
    for one network (``hidden`` units) trained on the first quarter of the contrast setting's data (seed
    ``P.seed``, ``P.contrast_missing_rate`` missing values)."""
    cdata = make_magnet_grades(P.n_per_month, missing_rate=P.contrast_missing_rate, seed=P.seed, concept=P.concept)
    ctasks = make_quarter_tasks(cdata, P.n_labels, P.n_test, seed=P.seed)
    net = ewc.make_mlp(ctasks.n_inputs, hidden, seed=P.seed)
    ewc.train_quarter(net, *ctasks.train_set(0), epochs=P.epochs, seed=P.seed)
    trace = {k: sum(float(f.sum()) for f in ewc.fisher_diagonal(net, *ctasks.train_set(0), kind=k).values())
             for k in ewc.FISHER_KINDS}
    return pd.Series(trace, name="total Fisher (trace)")


def variant_table(summary: pd.DataFrame, other: pd.DataFrame, seeds: Sequence[int], column: str,
                  values: tuple[Any, Any], labels: Sequence[str]) -> pd.DataFrame:
    """An exercise's comparison in ROC AUC: the rows of ``summary`` (a :func:`summarise` table) of the
    configurations ``labels`` on ``seeds``, as setting ``values[0]`` of ``column``, beside the summarised runs
    ``other`` (a :func:`run_experiment` frame) as setting ``values[1]``; the mean of :data:`METRICS` over seeds
    by ``column``, and by configuration first where ``labels`` has more than one."""
    base = summary[summary["label"].isin(labels) & summary["seed"].isin(seeds)]
    both = pd.concat([base.assign(**{column: values[0]}), summarise(other, "roc_auc").assign(**{column: values[1]})])
    return both.groupby(["label", column] if len(labels) > 1 else column)[list(METRICS)].mean()


# --------------------------------------------------------------------------------------------------
# The record: figures, claims and verdicts
# --------------------------------------------------------------------------------------------------
def fill_metrics(record: ResultRecord, P: Any, ewc_label: str,
                 studies: Sequence[tuple[str, dict, pd.DataFrame, float]]) -> None:
    """Every measured figure into ``record``, for each study ``(prefix, summaries by score with the
    validation choice (:func:`with_validation_choice`), frame, missing rate)``: the first-quarter
    network's drift; for each score (``auc``, ``logloss``, ``accuracy``) the backward transfer
    (``bwt_*``), average score and plasticity of fine-tuning, EWC at the validation-chosen weight
    (``ewc``), EWC at the seed's weight (``ewc_seed_lambda``) and joint training; the paired EWC-minus-
    fine-tuning differences; the bed's headroom; the chosen weights; and the epochs each quarter trained."""
    for prefix, S, F, where in studies:
        first = F[(F["label"] == "finetune") & (F["train_quarter"] == 0)].pivot(index="seed", columns="eval_quarter",
                                                                              values="roc_auc")
        record.add_metric(f"{prefix}drift_auc_drop", first.iloc[:, 0] - first.iloc[:, -1], "ROC AUC",
                          f"first-quarter network: ROC AUC on the first quarter minus on the last ({where:.0%} missing)")
        configs = [("finetune", "finetune"), ("ewc", VALIDATION_LABEL), ("ewc_seed_lambda", ewc_label),
                   ("joint", "joint")]
        for score, suffix in _SUFFIX.items():
            rows = {key: S[score][S[score]["label"] == label].set_index("seed") for key, label in configs}
            for key, label in configs:
                for m, name in [("backward_transfer", "bwt"), ("average_accuracy", "average"),
                                ("plasticity", "plasticity")]:
                    record.add_metric(f"{prefix}{name}_{key}_{suffix}", rows[key][m], _UNIT[score],
                                      f"{label}: {m.replace('_accuracy', '').replace('_', ' ')} of "
                                      f"{SCORE_NAME[score]} ({where:.0%} missing)")
            for m, name in [("backward_transfer", "bwt"), ("average_accuracy", "average")]:
                record.add_metric(f"{prefix}ewc_minus_finetune_{name}_{suffix}",
                                  paired_difference(S[score], m, VALIDATION_LABEL, "finetune"), _UNIT[score],
                                  f"EWC at the validation-chosen lambda minus fine-tuning, paired by seed: "
                                  f"{m.replace('_accuracy', '').replace('_', ' ')} ({where:.0%} missing)")
        record.add_metric(f"{prefix}headroom_bwt_auc",
                          paired_difference(S["roc_auc"], "backward_transfer", "joint", "finetune"), "ROC AUC",
                          f"the bed's headroom: joint training's backward transfer minus fine-tuning's, paired by "
                          f"seed ({where:.0%} missing)")
        chosen = S["roc_auc"][S["roc_auc"]["label"] == VALIDATION_LABEL]
        record.add_metric(f"{prefix}lambda_validation", chosen["ewc_lambda"], "lambda",
                          f"EWC weight chosen per seed on validation drives ({where:.0%} missing)")
        runs = F[F["eval_quarter"] == 0]
        record.add_metric(f"{prefix}epochs_to_convergence", runs.groupby("seed")["epochs_run"].mean(), "epochs",
                          f"mean epochs a quarter trained before its held-out fit stopped improving ({where:.0%} missing)")
        record.add_metric(f"{prefix}share_at_epoch_cap", runs.groupby("seed")["epochs_run"].apply(
            lambda e: float(np.mean(e >= P.epochs))), "fraction",
            f"share of quarters whose best held-out fit came at the last allowed epoch ({where:.0%} missing)")


def add_claims(record: ResultRecord, P: Any, ewc_label: str) -> dict[str, str]:
    """The chapter's claims (declared in its spec) with the verdicts the engine computes from the metrics of
    :func:`fill_metrics`; returns the verdict of each claim."""
    def ci_text(name):
        m = record.metrics[name]
        return f"{m['value']:+.3f} [{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]" if m["ci95"] else f"{m['value']:+.3f}"

    setting = f"{P.missing_rate:.0%} missing, concept {P.concept!r}, {P.n_seeds} seeds, 95% CI"
    bed = (f"bed headroom (joint minus fine-tuning backward transfer, ROC AUC) {ci_text('headroom_bwt_auc')}; "
           f"joint training's backward transfer {ci_text('bwt_joint_auc')}")
    measured, notes = {}, {}
    for suffix, score in [("auc", "ROC AUC"), ("logloss", "log-loss")]:
        measured[f"ewc_forgetting_under_drift_{suffix}"] = (
            f"fine-tuning's backward transfer in {score} ({setting}): {ci_text('bwt_finetune_' + suffix)}; "
            f"with complete features {ci_text('contrast_bwt_finetune_' + suffix)}; {bed}")
        measured[f"ewc_mitigates_forgetting_{suffix}"] = (
            f"EWC at the validation-chosen lambda minus fine-tuning, paired by seed ({setting}): backward transfer "
            f"in {score} {ci_text('ewc_minus_finetune_bwt_' + suffix)}, average {score} "
            f"{ci_text('ewc_minus_finetune_average_' + suffix)}; {ewc_label}: backward transfer "
            f"{ci_text('bwt_ewc_seed_lambda_' + suffix)} against fine-tuning's {ci_text('bwt_finetune_' + suffix)}; "
            f"{bed}")
        notes[f"ewc_mitigates_forgetting_{suffix}"] = (
            "Lambda chosen per seed on validation drives (final model's mean validation ROC AUC). Joint training "
            "on all labels so far is the reference a continual method tries to reach.")
    return record.decide_claims(SPECS[record.notebook].claims, measured, notes)


def glue_values(record: ResultRecord, P: Any, table: pd.DataFrame) -> dict[str, Any]:
    """The values the chapter's prose quotes, by glue name: every metric with its interval
    (``name``, ``name_lo``, ``name_hi``), the engine's verdict on each claim (``verdict_<claim id>``), the
    majority-class range, the declared headroom minimum and two parameters."""
    values = {}
    for name, m in record.metrics.items():
        values[name] = m["value"]
        values[name + "_lo"] = m["ci95"][0] if m["ci95"] else m["value"]
        values[name + "_hi"] = m["ci95"][1] if m["ci95"] else m["value"]
    values.update({f"verdict_{c['id']}": c["verdict"] for c in record.claims})
    values["majority_low"] = min(table["majority-class accuracy"])
    values["majority_high"] = max(table["majority-class accuracy"])
    values["majority_mean"] = float(np.mean(table["majority-class accuracy"]))
    values["headroom_min"] = max(c.headroom_min for c in SPECS[record.notebook].claims)
    values["seed_value"] = P.seed
    values["ewc_lambda_value"] = f"{P.ewc_lambda:g}"
    return values


def headline_table(record: ResultRecord) -> pd.DataFrame:
    """Every metric of the record: mean, 95% interval (the mean twice for one seed) and n."""
    return pd.DataFrame({k: {"mean": v["value"], "ci95 low": (v["ci95"] or [v["value"]] * 2)[0],
                             "ci95 high": (v["ci95"] or [v["value"]] * 2)[1], "n": v["n"]}
                         for k, v in record.metrics.items()}).T
