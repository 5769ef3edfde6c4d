r"""Experiments of the chapter "extreme sparsity" (seed 001): density-aware acquisition, cold start, and
the seed's sparsity-aware differential privacy, on the magnet-grade data.

Claims and figures (``notebooks/03_sparsity.ipynb``, record ``data/results/03_sparsity.json``):

* *PPAL reaches 89% with 200 labels* and *PPAL > uncertainty > random* — :func:`compare_strategies`
  (learning curves, figure ``03_acquisition_curves``), :func:`reference_scores` (majority class, the
  oracle that knows the true probabilities, all pool labels) and the paired contrasts of
  :func:`contrast_table`, on two beds: the magnet data (PPAL = the scalable variant ``"density"``) and the
  headroom bed of :func:`bed_splits` (PPAL = the seed's rule as written, ``"density_literal"``); each bed's
  headroom (:func:`fill_headroom`) gates the claims read on it;
* the two density rules' rank agreement — :func:`literal_vs_variant`;
* the density ratio's behaviour (figure ``03_density_ratio``) — :func:`ratio_diagnostics`;
* *the cold start finds diverse subspaces* — :func:`initial_set_quality` over the cold starts of
  :data:`ppal_lab.learning.acquisition.COLD_STARTS`;
* *the minimal example demonstrates PPAL* — :func:`minimal_example_scores`;
* *40% less noise than DP-SGD*, *a strong guarantee at epsilon = 0.5* and *density-adaptive noise* —
  :func:`noise_sweep` (figure ``03_noise_ratio``), :func:`dp_tasks` for
  :func:`ppal_lab.privacy.sparsity.compare_mechanisms`, and the audits of :mod:`ppal_lab.privacy.audit`
  (figure ``03_audit_scores``).

The notebook's figures are drawn by the ``plot_*`` functions, its tables by the ``*_table`` functions
(:func:`strategy_table`, :func:`density_variant_table`, ...) at the end of this module.

:func:`fill_metrics` and :func:`fill_bed_metrics` write every measured figure into the record (the DP-training
claims' gate ``headroom_dp_nonprivate_lower`` included); :func:`add_claims` adds the claims
declared in the chapter's spec (``ppal_lab.compendium.specs``) with the verdicts the engine computes
from those figures.

Data: one month of :func:`ppal_lab.data.make_magnet_grades` per seed (no drift, MCAR missingness),
split into a pool and a test set by :func:`ppal_lab.learning.acquisition.magnet_split`; the seed's
minimal example (labels independent of the features) by
:func:`ppal_lab.learning.acquisition.seed_minimal_example`.

Run time: the defaults (5 seeds, a pool of 10,000 drives, 200 labels, 1000 DP-SGD steps, 10,000 audit
trials) ran in about 40 s of cell time before issue 15; the seed's rule on the magnet pools (10 acquisition
runs and the rank comparison, each a 10^4 x 10^4 KDE) and the digits bed (40 runs on 1,198 images) add
about 45 s by direct timing; the reduced size of ``tests/compendium/test_determinism.py`` runs in seconds.
"""
from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_range
from ppal_lab.compendium.results import ResultRecord, mean_ci
from ppal_lab.compendium.specs import SPECS
from ppal_lab.learning.acquisition import (DIGITS_POOL_SIZE, MODELS, STRATEGIES, AcquisitionRun, MagnetSplit,
                                           check_acquisition_parameters, classification_scores, digits_split,
                                           fix_single_class, geometry, magnet_split, make_classifier,
                                           run_acquisition, seed_minimal_example)
from ppal_lab.learning.cold_start import COLD_STARTS, cold_start
from ppal_lab.learning.density import (check_indices, density_scores, entropy, log_density_ratio,
                                       nearest_sq_distance, pool_log_density, rank_agreement,
                                       seed_literal_log_ratio, seed_literal_scores)
from ppal_lab.privacy import audit, sparsity

__all__ = [
    "AUDIT_KEYS",
    "CONTRASTS",
    "DENSITY_VARIANTS",
    "add_claims",
    "audit_trials_table",
    "bed_splits",
    "cold_start_table",
    "compare_strategies",
    "contrast_table",
    "curves_frame",
    "density_variant_table",
    "dp_table",
    "dp_tasks",
    "fill_metrics",
    "forty_percent_table",
    "glue_values",
    "headline_table",
    "initial_set_quality",
    "literal_vs_variant",
    "minimal_example_scores",
    "no_missing_accuracy",
    "noise_sweep",
    "paired",
    "plot_acquisition_curves",
    "plot_audit_scores",
    "plot_density_ratio",
    "plot_noise_ratio",
    "ratio_diagnostics",
    "reference_scores",
    "runs_frame",
    "start",
    "strategy_runs",
    "strategy_table",
    "summary_table",
]

#: Record keys of the five audits of :func:`ppal_lab.privacy.audit.audit_table`, in its row order.
AUDIT_KEYS = ["audit_epsilon_seed_empty_batch", "audit_epsilon_seed_density_noise", "audit_epsilon_seed_rounds",
              "audit_epsilon_opacus_dpsgd", "audit_epsilon_opacus_control"]
#: Paired contrasts of the acquisition study: name -> ((strategy, cold start), (strategy, cold start)).
CONTRASTS = {"density+kmeans minus entropy+random": (("density", "kmeans"), ("entropy", "random")),
             "density+kmeans minus random+random": (("density", "kmeans"), ("random", "random")),
             "entropy+random minus random+random": (("entropy", "random"), ("random", "random")),
             "kmeans minus random cold start (random sampling)": (("random", "kmeans"), ("random", "random"))}
#: Per-batch expected labelled drives of the noise sweep (figure ``03_noise_ratio``).
SWEEP_PER_BATCH = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16)
#: Density-rule variants of the section on the rule's weight: label -> (bandwidth, weight).
DENSITY_VARIANTS = {"variant (h=0.5, weight 1)": (0.5, 1.0), "wide kernel (h=4)": (4.0, 1.0),
                    "tempered (weight 0.05)": (0.5, 0.05)}


def start(P: Any) -> tuple[ResultRecord, list[int]]:
    """Cross-parameter checks (before any work), one torch thread seeded by ``P.seed``, the empty
    record and the seeds ``seed .. seed + n_seeds - 1``."""
    check_acquisition_parameters(P.n_pool, P.n_labels, P.n_initial, P.batch_size)
    check_acquisition_parameters(DIGITS_POOL_SIZE, P.n_labels, P.n_initial, P.batch_size)  # the headroom bed
    check_range("dp_batch_size", P.dp_batch_size, 1, P.n_pool)
    torch.set_num_threads(1)
    torch.manual_seed(P.seed)
    return ResultRecord("03_sparsity", vars(P)), list(range(P.seed, P.seed + P.n_seeds))


def reference_scores(splits: Sequence[MagnetSplit], seeds: Sequence[int], model: str, n_pool: int) -> pd.DataFrame:
    """Test scores of three references per seed: the majority class of the pool, the oracle that knows
    every drive's true probability (complete features; only where the bed has one, ``p_test``), and
    ``model`` fitted on all pool labels."""
    refs = []
    for s, sp in zip(seeds, splits):
        refs.append({"reference": "majority class", "seed": s,
                     **classification_scores(sp.y_test, np.full(sp.y_test.size, int(sp.y_pool.mean() > 0.5)))})
        if sp.p_test is not None:
            refs.append({"reference": "oracle (true probabilities)", "seed": s,
                         **classification_scores(sp.y_test, (sp.p_test > 0.5).astype(int))})
        full = make_classifier(model, s).fit(sp.X_pool, sp.y_pool)
        refs.append({"reference": f"{model} on all {n_pool} pool labels", "seed": s,
                     **classification_scores(sp.y_test, full.predict(sp.X_test))})
    return pd.DataFrame(refs)


def bed_splits(seeds: Sequence[int], missing_rate: float) -> list[MagnetSplit]:
    """The headroom bed, one split per seed: :func:`ppal_lab.learning.acquisition.digits_split` (scikit-learn's
    digits, "0, 1 or 2" against the rest, values missing at ``missing_rate``). It was chosen for its headroom
    (all-label balanced accuracy far above 0.5), before any acquisition result on it was seen."""
    return [digits_split(s, missing_rate) for s in seeds]


# --------------------------------------------------------------------------------------------------
# Acquisition studies: strategies, cold starts, the density ratio, the minimal example
# --------------------------------------------------------------------------------------------------
def compare_strategies(splits: list[MagnetSplit], strategies: tuple[str, ...], colds: tuple[str, ...],
                       n_labels: int, n_initial: int, batch_size: int, seeds: list[int],
                       model: str = "logreg", bandwidth: float = 0.5, n_reference: int = 1000,
                       weight: float = 1.0, progress: bool = False) -> list[AcquisitionRun]:
    """:func:`run_acquisition` for every (split, seed) pair, strategy and cold start.

    ``splits[i]`` is run with seed ``seeds[i]`` (one data set per seed); every strategy sees the same
    cold-start labels at a given seed and cold start. Small fits run on one thread.
    """
    if len(splits) != len(seeds) or not splits:
        raise ParameterError("seeds", seeds, f"one seed per split ({len(splits)} splits)")
    for s in strategies:
        check_choice("strategies", s, STRATEGIES)
    for c in colds:
        check_choice("colds", c, COLD_STARTS)
    check_choice("model", model, MODELS)
    check_acquisition_parameters(splits[0].Z_pool.shape[0], n_labels, n_initial, batch_size)
    jobs = [(sp, seed, s, c) for sp, seed in zip(splits, seeds) for c in colds for s in strategies]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="acquisition runs", leave=False)
    runs = []
    with threadpool_limits(1):
        for sp, seed, s, c in jobs:
            runs.append(run_acquisition(lambda: make_classifier(model, seed), sp.X_pool, sp.y_pool,
                                        sp.X_test, sp.y_test, sp.Z_pool, s, c, n_labels, n_initial,
                                        batch_size, seed, bandwidth, n_reference, weight))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return runs


def runs_frame(runs: list[AcquisitionRun]) -> pd.DataFrame:
    """Final scores of runs as a ``pandas.DataFrame`` (one row per run)."""
    return pd.DataFrame([{"strategy": r.strategy, "cold_start": r.cold_start, "seed": r.seed,
                          "labels": int(r.n_labels[-1]), **r.final()} for r in runs])


def curves_frame(runs: list[AcquisitionRun]) -> pd.DataFrame:
    """Learning curves of runs in long format (columns strategy, cold_start, seed, labels, metric,
    value)."""
    rows = []
    for r in runs:
        for metric in ("accuracy", "balanced_accuracy", "f1"):
            for n, v in zip(r.n_labels, getattr(r, metric)):
                rows.append({"strategy": r.strategy, "cold_start": r.cold_start, "seed": r.seed,
                             "labels": int(n), "metric": metric, "value": float(v)})
    return pd.DataFrame(rows)


def summary_table(frame: pd.DataFrame, by: list[str], metrics: list[str], digits: int = 3) -> pd.DataFrame:
    """Mean and 95% Student-t CI over the rows of each group, as ``"mean [lo, hi]"`` strings."""
    rows = []
    for key, g in frame.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for m in metrics:
            mean, ci, n = mean_ci(g[m])
            row[m] = f"{mean:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")
        row["n"] = n
        rows.append(row)
    return pd.DataFrame(rows)


def ratio_diagnostics(split: MagnetSplit, labelled: np.ndarray, bandwidth: float = 0.5,
                      n_reference: int = 1000, seed: int = 0, model: str = "logreg"):
    """How the density ratio behaves on one pool with a given labelled set.

    Returns ``(summary, frame)``: the span of the log ratio (natural log), the share of pool items
    whose ratio overflows ``float64`` when exponentiated as in the seed's code, the Spearman rank
    correlations of the log score with the log ratio, with the entropy, and of the log ratio with the
    distance to the nearest labelled item; and a per-item frame (log ratio, entropy, distance) of the
    unlabelled items.
    """
    lab = check_indices("labelled", labelled, split.Z_pool.shape[0])
    clf = make_classifier(model, seed).fit(split.X_pool[lab], split.y_pool[lab])
    lr = log_density_ratio(split.Z_pool, lab, bandwidth, n_reference, seed)
    unl = np.setdiff1d(np.arange(split.Z_pool.shape[0]), lab)
    H = entropy(clf.predict_proba(split.X_pool[unl]))
    score = density_scores(clf.predict_proba(split.X_pool[unl]), lr[unl])
    Zl = split.Z_pool[lab]
    dist = np.sqrt(np.maximum(nearest_sq_distance(split.Z_pool[unl], Zl), 0.0))
    finite = np.isfinite(score)
    summary = {
        "log_ratio_min": float(lr[unl].min()), "log_ratio_max": float(lr[unl].max()),
        "overflow_share": float(np.mean(lr[unl] > np.log(np.finfo(float).max))),
        "rho_score_ratio": float(spearmanr(score[finite], lr[unl][finite]).statistic),
        "rho_score_entropy": float(spearmanr(score[finite], H[finite]).statistic),
        "rho_ratio_distance": float(spearmanr(lr[unl], dist).statistic),
    }
    frame = pd.DataFrame({"log_ratio": lr[unl], "entropy": H, "distance": dist})
    return summary, frame


def literal_vs_variant(split: MagnetSplit, labelled: np.ndarray, bandwidth: float = 0.5, n_reference: int = 1000,
                       seed: int = 0, model: str = "logreg", k: int = 20) -> dict[str, float]:
    """The seed's density rule as written beside the scalable variant of ``run_acquisition``, on one pool
    with a given labelled set and ``model`` fitted on it: Spearman's rho between the two scores over the
    unlabelled items, the share of their top ``k`` picks in common, and the literal score's rho with the
    distance to the nearest labelled item. The literal rule's pool KDE is the whole pool (chunked)."""
    lab = check_indices("labelled", labelled, split.Z_pool.shape[0])
    clf = make_classifier(model, seed).fit(split.X_pool[lab], split.y_pool[lab])
    unl = np.setdiff1d(np.arange(split.Z_pool.shape[0]), lab)
    proba = clf.predict_proba(split.X_pool[unl])
    literal = seed_literal_scores(proba, seed_literal_log_ratio(split.Z_pool, lab, bandwidth)[unl])
    variant = density_scores(proba, log_density_ratio(split.Z_pool, lab, bandwidth, n_reference, seed)[unl])
    dist = nearest_sq_distance(split.Z_pool[unl], split.Z_pool[lab])
    agree = rank_agreement(literal, variant, k)
    return {"seed": seed, "rho_literal_variant": agree["spearman"], "top_shared_literal_variant": agree["top_k_shared"],
            "rho_literal_distance": rank_agreement(literal, dist, k)["spearman"]}


def initial_set_quality(split: MagnetSplit, method: str, n_initial: int, seed: int,
                        model: str = "logreg") -> dict[str, float]:
    """One cold start on one pool: high-grade items among the picks, the largest pick index, the mean
    distance from a pool item to its nearest pick (coverage; lower is better) and test scores of a
    model fitted on the picks alone (after the same single-class fix as :func:`run_acquisition`)."""
    gen = np.random.default_rng(check_int("seed", seed, 0))
    picks = fix_single_class(cold_start(split.Z_pool, n_initial, method, gen), split.y_pool, gen)
    clf = make_classifier(model, seed).fit(split.X_pool[picks], split.y_pool[picks])
    cover = float(np.sqrt(np.maximum(nearest_sq_distance(split.Z_pool, split.Z_pool[picks]), 0)).mean())
    return {"cold_start": method, "seed": seed, "high_grade_picked": int(split.y_pool[picks].sum()),
            "max_index": int(picks.max()), "coverage_distance": cover,
            **classification_scores(split.y_test, clf.predict(split.X_test))}


def minimal_example_scores(seed: int, strategy: str = "density", n_initial: int = 20,
                           n_labels: int = 70, batch_size: int = 10, model: str = "logreg",
                           bandwidth: float = 0.5) -> dict[str, float]:
    """Active learning on the seed's minimal example: a pool of 1000 items drawn by
    :func:`seed_minimal_example` (labels independent of the features), ``n_initial`` random labels
    plus ``(n_labels - n_initial) / batch_size`` rounds (the seed: 5 rounds of 10), scored on 1000
    fresh items of the same law."""
    check_choice("strategy", strategy, STRATEGIES)
    X, y, _ = seed_minimal_example(seed, n_samples=2000)
    Z, Zt = geometry(X[:1000], X[1000:])
    run = run_acquisition(lambda: make_classifier(model, seed), X[:1000], y[:1000], X[1000:],
                          y[1000:], Z, strategy, "random", n_labels, n_initial, batch_size, seed,
                          bandwidth)
    return {"strategy": strategy, "seed": seed, **run.final()}


# --------------------------------------------------------------------------------------------------
# Paired contrasts of the acquisition study
# --------------------------------------------------------------------------------------------------
def paired(final: pd.DataFrame, a: tuple[str, str], b: tuple[str, str], metric: str) -> np.ndarray:
    """``metric`` of (strategy, cold start) ``a`` minus that of ``b``, seed by seed, from :func:`runs_frame`."""
    pick = lambda st, cold: final[(final.strategy == st) & (final.cold_start == cold)].set_index("seed")[metric]  # noqa: E731
    x, y = pick(*a), pick(*b)
    return (x - y.loc[x.index]).to_numpy()


def contrast_table(final: pd.DataFrame) -> pd.DataFrame:
    """Mean paired difference and 95% Student-t CI of every contrast of :data:`CONTRASTS`."""
    diff_rows = []
    for name, (a, b) in CONTRASTS.items():
        for metric in ["accuracy", "balanced_accuracy"]:
            m, ci, n = mean_ci(paired(final, a, b, metric))
            diff_rows.append({"contrast": name, "metric": metric, "mean difference": round(m, 4),
                              "95% CI": None if ci is None else (round(ci[0], 4), round(ci[1], 4)), "n": n})
    return pd.DataFrame(diff_rows)


# --------------------------------------------------------------------------------------------------
# The seed's sparsity-aware mechanism
# --------------------------------------------------------------------------------------------------
def noise_sweep(P: Any) -> tuple[float, dict[str, float], pd.DataFrame]:
    """The DP-SGD sample rate ``q`` of this run, :func:`ppal_lab.privacy.sparsity.noise_comparison` at
    it, and the same comparison over :data:`SWEEP_PER_BATCH` expected labelled drives per batch."""
    q = P.dp_batch_size / P.n_pool
    nc = sparsity.noise_comparison(P.epsilon, P.delta, q, P.dp_steps, P.n_labels)
    sweep = []
    for per_batch in SWEEP_PER_BATCH:
        qq = min(per_batch / P.n_labels, 1.0)
        c = sparsity.noise_comparison(P.epsilon, P.delta, qq, P.dp_steps, P.n_labels)
        sweep.append({"labelled per batch": qq * P.n_labels, "seed / its own always-noise baseline": c["seed_vs_always"],
                      "seed / DP-SGD (Opacus, RDP)": c["seed_vs_dpsgd"],
                      "eps certified if the seed's noise were always added": c["seed_epsilon_if_noise_always"]})
    return q, nc, pd.DataFrame(sweep)


def dp_tasks(runs: Sequence[AcquisitionRun], splits: Sequence[MagnetSplit], seeds: Sequence[int],
             strategy: str, bandwidth: float) -> list[dict[str, Any]]:
    """Per seed, the drives labelled by ``strategy`` with the k-means cold start (in the geometry),
    the test set and the pool log density of the labelled drives: the tasks of
    :func:`ppal_lab.privacy.sparsity.compare_mechanisms`."""
    tasks = []
    for s, sp in zip(seeds, splits):
        r = next(r for r in runs if r.seed == s and r.strategy == strategy and r.cold_start == "kmeans")
        log_density = pool_log_density(sp.Z_pool, bandwidth, 1000, s)
        tasks.append({"seed": s, "Z_lab": sp.Z_pool[r.queried], "y_lab": sp.y_pool[r.queried], "Z_test": sp.Z_test,
                      "y_test": sp.y_test, "log_density": log_density[r.queried]})
    return tasks


def dp_table(mech: pd.DataFrame) -> pd.DataFrame:
    """Scores and noise of each private training mechanism (mean and 95% CI) with its accounted epsilon."""
    table = summary_table(mech, ["mechanism"], ["accuracy", "balanced_accuracy", "noise_energy_per_coord",
                                                "noisy_step_fraction"], digits=3)
    table["epsilon accounted"] = mech.groupby("mechanism", sort=False)["epsilon_accounted"].first().to_numpy()
    return table


# --------------------------------------------------------------------------------------------------
# The record: figures, claims and verdicts
# --------------------------------------------------------------------------------------------------
def fill_metrics(record: ResultRecord, P: Any, final: pd.DataFrame, refs: pd.DataFrame, mini: pd.DataFrame,
                 mech: pd.DataFrame, audit_tab: pd.DataFrame) -> None:
    """Every measured figure of the chapter into ``record`` (one value per seed where there are seeds)."""
    fill_headroom(record, refs, "magnet", P.model)
    for st in [s for s in STRATEGIES if s in set(final.strategy)]:
        for cold in ("random", "kmeans"):
            g = final[(final.strategy == st) & (final.cold_start == cold)]
            for metric in ("accuracy", "balanced_accuracy", "f1"):
                record.add_metric(f"{metric}_{st}_{cold}", g[metric].to_list(), "fraction",
                                  f"test {metric} at {P.n_labels} labels, {st} acquisition, {cold} cold start")
    for name, key in [("majority class", "majority_accuracy"), ("oracle (true probabilities)", "oracle_accuracy")]:
        record.add_metric(key, refs[refs.reference == name].accuracy.to_list(), "fraction", f"test accuracy of the {name}")
    record.add_metric("full_label_accuracy", refs[refs.reference.str.startswith(P.model)].accuracy.to_list(), "fraction",
                      f"test accuracy of {P.model} trained on all pool labels")
    for a, b, key in [(("density", "kmeans"), ("entropy", "random"), "density_minus_entropy_accuracy"),
                      (("density", "kmeans"), ("random", "random"), "density_minus_random_accuracy"),
                      (("entropy", "random"), ("random", "random"), "entropy_minus_random_accuracy")]:
        record.add_metric(key, paired(final, a, b, "accuracy").tolist(), "accuracy points (fraction)", "paired difference")
    # Gains over a reference on the same test drives, seed by seed: no skill is the majority class, and the
    # oracle's gain over a baseline is the most any method could show (the claims' headroom).
    def arm(st, cold):
        return final[(final.strategy == st) & (final.cold_start == cold)].set_index("seed").accuracy

    majority, oracle = (refs[refs.reference == name].set_index("seed").accuracy
                        for name in ("majority class", "oracle (true probabilities)"))
    for key, x, y, what in [
            ("accuracy_gain_density_kmeans_over_majority", arm("density", "kmeans"), majority,
             "density-aware + k-means accuracy minus the majority class's"),
            ("oracle_gain_over_majority", oracle, majority, "oracle accuracy minus the majority class's"),
            ("oracle_minus_entropy_accuracy", oracle, arm("entropy", "random"), "oracle accuracy minus entropy + random's"),
            ("oracle_minus_random_accuracy", oracle, arm("random", "random"), "oracle accuracy minus random + random's")]:
        record.add_metric(key, (x - y.loc[x.index]).tolist(), "accuracy points (fraction)",
                          f"{what} at {P.n_labels} labels, paired by repeat (same test drives)")
    record.add_metric("minimal_example_accuracy", mini.accuracy.to_list(), "fraction",
                      "test accuracy on the seed's minimal example (all strategies and repeats)")
    record.add_metric("minimal_example_balanced_accuracy", mini.balanced_accuracy.to_list(), "fraction",
                      "test balanced accuracy on the seed's minimal example")
    ratio = (mech[mech.mechanism == "seed"].set_index("seed").noise_energy
             / mech[mech.mechanism == "dpsgd"].set_index("seed").noise_energy)
    record.add_metric("noise_energy_seed_over_dpsgd", ratio.to_list(), "ratio",
                      "noise actually drawn by the seed's mechanism over that of Opacus DP-SGD, same eps, delta, q, T")
    record.add_metric("seed_nonempty_step_fraction", mech[mech.mechanism == "seed"].noisy_step_fraction.to_list(),
                      "fraction", "steps on which the seed's mechanism added noise")
    # The DP-training claims' gate: the non-private model must beat chance (balanced accuracy 0.5), judged on the
    # lower 95% bound of its gain; one repeat has no bound and counts as none (-0.5, the floor).
    gain = mech[mech.mechanism == "nonprivate"].balanced_accuracy.to_numpy() - 0.5
    _, ci, n = mean_ci(gain)
    record.add_metric("headroom_dp_nonprivate_lower", float(ci[0]) if ci else -0.5, "balanced accuracy points",
                      f"lower 95% bound of the non-private model's balanced accuracy minus 0.5 (chance), n = {n}; "
                      "-0.5 without an interval")
    for m in sparsity.MECHANISMS:
        g = mech[mech.mechanism == m]
        record.add_metric(f"dp_accuracy_{m}", g.accuracy.to_list(), "fraction", f"test accuracy, {m} training")
        record.add_metric(f"dp_balanced_accuracy_{m}", g.balanced_accuracy.to_list(), "fraction",
                          f"test balanced accuracy, {m} training")
    for key, (_, row) in zip(AUDIT_KEYS, audit_tab.iterrows()):
        record.add_metric(key, float(row.epsilon_lb), "epsilon (lower bound, 95%)", row.audit)
    # A guarantee "epsilon <= declared" as a bounded figure: e^(declared - epsilon) >= 1. The audit bounds epsilon
    # from below only; nothing bounds the seed's mechanism from above (it has no accountant; its epsilon is
    # infinite once a record can be the only labelled one of its batch), so the interval reaches 0 (epsilon = inf).
    for key, (_, row) in zip(AUDIT_KEYS[:2], audit_tab.iterrows()):
        factor = float(np.exp(P.epsilon - row.epsilon_lb))
        record.add_metric(key.replace("audit_epsilon", "dp_guarantee_factor"), factor, "e^(declared epsilon - epsilon)",
                          f"{row.audit}: e^(declared epsilon - epsilon), 1 or more when the declared epsilon holds; "
                          "one-sided 95% interval [0, e^(declared - audit lower bound)], value at its upper end",
                          ci=(0.0, factor), n=int(row.trials_per_world))


def fill_headroom(record: ResultRecord, refs: pd.DataFrame, bed: str, model: str) -> None:
    """A bed's headroom, declared before its verdicts: what ``model`` on all pool labels reaches over the trivial
    classifier, in balanced accuracy (over 0.5; the claims' gate) and in accuracy (over the majority class)."""
    full = refs[refs.reference.str.startswith(model)].set_index("seed")
    majority = refs[refs.reference == "majority class"].set_index("seed").accuracy
    record.add_metric(f"headroom_balanced_accuracy_{bed}", (full.balanced_accuracy - 0.5).tolist(), "balanced accuracy "
                      "points", f"{bed} bed: balanced accuracy of {model} on all pool labels minus 0.5 (the trivial classifier)")
    record.add_metric(f"headroom_accuracy_{bed}", (full.accuracy - majority.loc[full.index]).tolist(), "accuracy points",
                      f"{bed} bed: accuracy of {model} on all pool labels minus the majority class's")


def fill_bed_metrics(record: ResultRecord, P: Any, final: pd.DataFrame, refs: pd.DataFrame,
                     agree: pd.DataFrame) -> None:
    """The headroom bed's figures (suffix ``_digits``) and the two density rules' rank agreement on the magnet
    pools (``agree`` from :func:`literal_vs_variant`, one row per seed)."""
    fill_headroom(record, refs, "digits", P.model)
    majority = refs[refs.reference == "majority class"].set_index("seed").accuracy
    for st in STRATEGIES:
        for cold in ("random", "kmeans"):
            g = final[(final.strategy == st) & (final.cold_start == cold)]
            for metric in ("accuracy", "balanced_accuracy"):
                record.add_metric(f"{metric}_{st}_{cold}_digits", g[metric].to_list(), "fraction",
                                  f"digits bed: test {metric} at {P.n_labels} labels, {st} acquisition, {cold} cold start")
    lit = final[(final.strategy == "density_literal") & (final.cold_start == "kmeans")].set_index("seed").accuracy
    record.add_metric("accuracy_gain_density_literal_kmeans_over_majority_digits", (lit - majority.loc[lit.index]).tolist(),
                      "accuracy points (fraction)", "digits bed: the seed's density rule + k-means minus the majority class")
    for a, b, key in [(("density_literal", "kmeans"), ("entropy", "random"), "density_literal_minus_entropy_accuracy_digits"),
                      (("density", "kmeans"), ("entropy", "random"), "density_minus_entropy_accuracy_digits"),
                      (("entropy", "random"), ("random", "random"), "entropy_minus_random_accuracy_digits")]:
        record.add_metric(key, paired(final, a, b, "accuracy").tolist(), "accuracy points (fraction)",
                          f"digits bed: paired difference {a} minus {b}")
    for key, what in [("rho_literal_variant", "Spearman rho between the seed's density rule as written and the scalable "
                       "variant (leave-one-out, reference subsample)"),
                      ("top_shared_literal_variant", f"share of the {P.batch_size} top picks the two rules have in common"),
                      ("rho_literal_distance", "Spearman rho between the seed's rule and the distance to the nearest "
                       "labelled drive")]:
        record.add_metric(key, agree[key].to_list(), "rank correlation" if key.startswith("rho") else "fraction",
                          f"{what}; magnet pools, d = 50, h = {P.bandwidth:g}, {P.n_labels} random labels")


def add_claims(record: ResultRecord, P: Any, nc: dict[str, float], seed_picks: np.ndarray,
               n_features: int) -> dict[str, str]:
    """The chapter's claims (declared in its spec) with the verdicts the engine computes from the record,
    after the one figure they need beyond :func:`fill_metrics`: whether the seed's cold start
    (``seed_picks``, on the first pool) picks drives at all, or only rows below ``n_features`` — feature
    indices used as item indices. Returns the verdict of each claim."""
    M = record.metrics
    record.add_metric("seed_cold_start_picks_items", float(int(np.max(seed_picks)) >= n_features), "0/1",
                      f"1 when some pick of the seed's cold start lies beyond the first {n_features} rows of the pool "
                      "(the picks can be drives chosen by subspace), 0 when all are feature indices")

    def fmt(key, pct=True):
        v, ci = M[key]["value"], M[key]["ci95"]
        f = (lambda x: f"{x:.1%}") if pct else (lambda x: f"{x:.3g}")
        return f(v) + (f" [{f(ci[0])}, {f(ci[1])}]" if ci else "")

    def points(key):  # accuracy differences, in percentage points
        v, ci = M[key]["value"], M[key]["ci95"]
        return f"{100 * v:+.1f}" + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "") + " points"

    audits = (f"empirical epsilon lower bounds (95%) against the declared {P.epsilon:g}: empty batch "
              f"{fmt('audit_epsilon_seed_empty_batch', False)}, density-adaptive noise "
              f"{fmt('audit_epsilon_seed_density_noise', False)}, rounds {fmt('audit_epsilon_seed_rounds', False)}; "
              f"Opacus DP-SGD {fmt('audit_epsilon_opacus_dpsgd', False)}, its miscalibrated control "
              f"{fmt('audit_epsilon_opacus_control', False)}")
    magnet_room = (f"magnet bed headroom (all-label balanced accuracy minus 0.5) {fmt('headroom_balanced_accuracy_magnet', False)}"
                   f"; PPAL there is the scalable variant")
    digits_room = f"digits bed headroom {fmt('headroom_balanced_accuracy_digits', False)}; PPAL is the seed's rule as written"
    dp_room = f"non-private model's balanced accuracy over chance, lower 95% bound {M['headroom_dp_nonprivate_lower']['value']:.3f}"
    measured = {
        "ppal_accuracy_200_labels": f"density-aware + k-means cold start at {P.n_labels} labels: accuracy "
        f"{fmt('accuracy_density_kmeans')}, {points('accuracy_gain_density_kmeans_over_majority')} over the majority "
        f"class; the oracle's gain over the majority class (first rule's headroom) {points('oracle_gain_over_majority')}; "
        f"{magnet_room}",
        "ppal_accuracy_200_labels_digits": f"the seed's density rule + k-means at {P.n_labels} labels: accuracy "
        f"{fmt('accuracy_density_literal_kmeans_digits')}, {points('accuracy_gain_density_literal_kmeans_over_majority_digits')}"
        f" over the majority class; {digits_room}",
        "acquisition_ordering_ppal_vs_uncertainty_digits": f"the seed's density rule + k-means minus entropy + random: "
        f"{points('density_literal_minus_entropy_accuracy_digits')} (the scalable variant: "
        f"{points('density_minus_entropy_accuracy_digits')}); {digits_room}",
        "acquisition_ordering_uncertainty_vs_random_digits": f"entropy minus random sampling: "
        f"{points('entropy_minus_random_accuracy_digits')}; {digits_room}",
        "acquisition_ordering_ppal_vs_uncertainty": f"density + k-means {fmt('accuracy_density_kmeans')}, entropy + "
        f"random {fmt('accuracy_entropy_random')}: paired difference {points('density_minus_entropy_accuracy')}; the "
        f"oracle over entropy (first rule's headroom) {points('oracle_minus_entropy_accuracy')}; {magnet_room}",
        "acquisition_ordering_uncertainty_vs_random": f"entropy {fmt('accuracy_entropy_random')}, random "
        f"{fmt('accuracy_random_random')}: paired difference {points('entropy_minus_random_accuracy')}; the oracle "
        f"over random (first rule's headroom) {points('oracle_minus_random_accuracy')}; {magnet_room}",
        "dp_noise_40_percent_less": f"same declared eps={P.epsilon:g}, delta={P.delta:g}, q={P.dp_batch_size / P.n_pool:g}, "
        f"T={P.dp_steps}: the seed's mechanism drew {fmt('noise_energy_seed_over_dpsgd', False)} times the noise "
        f"energy of Opacus DP-SGD; against the same per-step noise on every batch it saves "
        f"{1 - nc['seed_vs_always']:.0%}, the share of empty batches; {dp_room}",
        "dp_guarantee": audits,
        "density_adaptive_noise": f"audit of the density rule: epsilon >= {fmt('audit_epsilon_seed_density_noise', False)} "
        f"against a declared {P.epsilon:g}; test accuracy {fmt('dp_accuracy_seed_density')} with it, "
        f"{fmt('dp_accuracy_seed')} with the seed's fixed noise; {dp_room}",
        "cold_start_diverse_subspaces": f"largest pool row among the {len(seed_picks)} picks of the seed's cold start "
        f"on the first pool: {int(np.max(seed_picks))}, with {n_features} features (its code draws a feature index "
        "from each feature cluster and uses it as an item index)",
        "minimal_example": f"labels drawn independently of the features: expected accuracy <= 70% and balanced accuracy "
        f"= 50% for any method; measured {fmt('minimal_example_accuracy')} and "
        f"{fmt('minimal_example_balanced_accuracy')}",
    }
    notes = {
        "ppal_accuracy_200_labels": "The oracle knows each drive's true probability from its complete features; "
        "no classifier can expect more.",
        "dp_noise_40_percent_less": "The mechanism keeps its per-step noise scale; its only saving is the noise it "
        "drops on empty batches, whose share the batch size sets, and that release is what the audit of "
        "dp_guarantee tests.",
        "dp_guarantee": "An audit can refute a guarantee, never prove one. Releasing exact zeros for empty batches makes "
        "epsilon infinite; the audit bound is limited only by the number of trials.",
        "density_adaptive_noise": "The noise scale depends on the data and is lowest for the most identifiable records.",
        "cold_start_diverse_subspaces": "k-means on the drives is the item-diversity cold start the text describes.",
        "minimal_example": "As published the example also calls undefined methods.",
    }
    return record.decide_claims(SPECS[record.notebook].claims, measured, notes)


def glue_values(record: ResultRecord, P: Any, positive_rate: float, diag: dict[str, float],
                nc: dict[str, float]) -> dict[str, Any]:
    """The numbers the chapter's prose quotes, by glue name, and the engine's verdict on each claim
    (``verdict_<claim id>``)."""
    M = record.metrics
    q = P.dp_batch_size / P.n_pool
    values = {
        "positive_rate": positive_rate, "majority_accuracy": M["majority_accuracy"]["value"],
        "oracle_accuracy": M["oracle_accuracy"]["value"], "full_label_accuracy": M["full_label_accuracy"]["value"],
        "ratio_span_decades": (diag["log_ratio_max"] - diag["log_ratio_min"]) / np.log(10),
        "overflow_share": diag["overflow_share"], "rho_score_ratio": diag["rho_score_ratio"],
        "rho_score_entropy": diag["rho_score_entropy"], "rho_ratio_distance": diag["rho_ratio_distance"],
        "acc_density_kmeans": M["accuracy_density_kmeans"]["value"],
        "labelled_per_batch": q * P.n_labels, "empty_fraction": 1 - nc["nonempty_fraction"],
        "saving_vs_always": 1 - nc["seed_vs_always"], "seed_over_dpsgd": nc["seed_vs_dpsgd"],
        "seed_eps_if_always": nc["seed_epsilon_if_noise_always"], "declared_epsilon": P.epsilon,
        "seed_over_dpsgd_measured": M["noise_energy_seed_over_dpsgd"]["value"],
        "audit_empty": M["audit_epsilon_seed_empty_batch"]["value"],
        "audit_density": M["audit_epsilon_seed_density_noise"]["value"],
        "audit_rounds": M["audit_epsilon_seed_rounds"]["value"],
        "audit_opacus": M["audit_epsilon_opacus_dpsgd"]["value"],
        "audit_control": M["audit_epsilon_opacus_control"]["value"],
        "acc_entropy_random": M["accuracy_entropy_random"]["value"],
        "acc_random_random": M["accuracy_random_random"]["value"],
        "mini_accuracy": M["minimal_example_accuracy"]["value"],
        "oracle_gain_over_majority": M["oracle_gain_over_majority"]["value"],
        **{k: M[k]["value"] for k in ("headroom_balanced_accuracy_magnet", "headroom_balanced_accuracy_digits",
                                      "headroom_accuracy_digits", "headroom_dp_nonprivate_lower", "rho_literal_variant",
                                      "top_shared_literal_variant", "rho_literal_distance",
                                      "accuracy_density_literal_kmeans_digits", "accuracy_entropy_random_digits",
                                      "accuracy_random_random_digits")},
    }
    return {k: float(v) for k, v in values.items()} | {f"verdict_{c['id']}": c["verdict"] for c in record.claims}


def headline_table(record: ResultRecord) -> pd.DataFrame:
    """The headline figures (value, 95% interval, n) of the record."""
    M = record.metrics
    keys = ["majority_accuracy", "oracle_accuracy", "full_label_accuracy", "accuracy_random_random",
            "accuracy_entropy_random", "accuracy_density_random", "accuracy_density_kmeans",
            "headroom_balanced_accuracy_magnet", "headroom_balanced_accuracy_digits", "rho_literal_variant",
            "accuracy_random_random_digits", "accuracy_entropy_random_digits", "accuracy_density_literal_kmeans_digits",
            "balanced_accuracy_density_kmeans", "noise_energy_seed_over_dpsgd", *AUDIT_KEYS]
    return pd.DataFrame({k: {"value": M[k]["value"], "ci95_lo": M[k]["ci95"][0] if M[k]["ci95"] else None,
                             "ci95_hi": M[k]["ci95"][1] if M[k]["ci95"] else None, "n": M[k]["n"]}
                         for k in keys}).T


# --------------------------------------------------------------------------------------------------
# Tables and figures of the notebook
# --------------------------------------------------------------------------------------------------
def strategy_runs(splits: list[MagnetSplit], seeds: list[int], P: Any, progress: bool = False) -> list[AcquisitionRun]:
    """:func:`compare_strategies` of every strategy of ``STRATEGIES`` with the random and k-means cold starts, at
    the notebook's budget (``P.n_labels``, ``P.n_initial``, ``P.batch_size``), model and bandwidth."""
    return compare_strategies(splits, STRATEGIES, ("random", "kmeans"), P.n_labels, P.n_initial, P.batch_size,
                              seeds, model=P.model, bandwidth=P.bandwidth, progress=progress)


def strategy_table(final: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary_table` of :func:`runs_frame` by strategy and cold start (accuracy, balanced accuracy, F1)."""
    return summary_table(final, ["strategy", "cold_start"], ["accuracy", "balanced_accuracy", "f1"])


def cold_start_table(init: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary_table` of :func:`initial_set_quality` rows by cold start."""
    return summary_table(init, ["cold_start"], ["coverage_distance", "high_grade_picked", "max_index", "accuracy",
                                                "balanced_accuracy"])


def plot_density_ratio(ratio_frame: pd.DataFrame, seed: int) -> plt.Figure:
    """Figure ``03_density_ratio``: the log10 density ratio across the pool (log count axis) above the log ratio
    against the distance to the nearest labelled drive, coloured by entropy (at most 3000 drives, drawn with
    ``seed``), from the frame of :func:`ratio_diagnostics`."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.4), layout="constrained")
    sns.histplot(ratio_frame["log_ratio"] / np.log(10), bins=60, ax=axes[0])
    axes[0].set(yscale="log", title="Density ratio across the pool", xlabel="log10 of p_pool / p_labelled",
                ylabel="drives (count, log scale)")
    sub = ratio_frame.sample(min(3000, len(ratio_frame)), random_state=seed)
    sns.scatterplot(sub, x="distance", y="log_ratio", hue="entropy", s=8, ax=axes[1], palette="viridis")
    axes[1].set(title="Ratio vs distance to the nearest labelled drive",
                xlabel="distance to nearest labelled drive (standardised units)", ylabel="log ratio (nats)")
    return fig


def plot_acquisition_curves(runs: list[AcquisitionRun], refs: pd.DataFrame, n_seeds: int, seed: int = 0) -> plt.Figure:
    """Figure ``03_acquisition_curves``: test accuracy and balanced accuracy against labels used (95% CI over
    the ``n_seeds`` repeats), one line per strategy and cold start, the majority class of ``refs`` dotted."""
    curves = curves_frame(runs)
    words = {k: curves[k].str.replace("_", " ") for k in ("strategy", "cold_start")}
    curves = curves.assign(**words).rename(columns={"cold_start": "cold start"})
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 7), layout="constrained")
    for ax, metric in zip(axes, ["accuracy", "balanced_accuracy"]):
        sns.lineplot(curves[curves.metric == metric], x="labels", y="value", hue="strategy", style="cold start",
                     errorbar=("ci", 95), seed=seed, ax=ax)
        ax.set(xlabel="labels used (count)", ylabel=f"test {metric.replace('_', ' ')} (fraction)",
               title=f"Test {metric.replace('_', ' ')} ({n_seeds} repeats, 95% CI)")
    axes[0].axhline(refs[refs.reference == "majority class"].accuracy.mean(), c="k", ls=":", lw=1,
                    label="majority class")
    axes[0].legend(fontsize=8)
    axes[1].get_legend().remove()
    return fig


def plot_noise_ratio(sweep: pd.DataFrame, labelled_now: float, epsilon: float, dp_steps: int) -> plt.Figure:
    """Figure ``03_noise_ratio``: the two noise variance ratios of :func:`noise_sweep` against the expected
    labelled drives per batch (log axes), the seed's claimed 0.6 and this run's setting ``labelled_now`` marked."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
    for col in sweep.columns[1:3]:
        ax.plot(sweep["labelled per batch"], sweep[col], marker="o", label=col)
    ax.axhline(0.6, c="k", ls=":", lw=1, label="the seed's claim (40% less)")
    ax.axvline(labelled_now, c="grey", ls="--", lw=1, label="this run's setting")
    ax.set(xscale="log", yscale="log", xlabel="expected labelled drives per batch (q n_L)",
           ylabel="noise variance ratio", title=f"Noise of the seed's mechanism, ε = {epsilon:g}, {dp_steps} steps")
    ax.legend(fontsize=8)
    return fig


def plot_audit_scores(audit_scores: dict[str, tuple[np.ndarray, np.ndarray]]) -> plt.Figure:
    """Figure ``03_audit_scores``: density histograms of the attack statistic without and with the canary, one
    panel per audit of :func:`ppal_lab.privacy.audit.audit_table` (its 1st, 2nd, 4th and 5th), one shared legend."""
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 6), layout="constrained")
    shown = list(audit_scores.items())[:2] + list(audit_scores.items())[3:5]
    for ax, (name, (o, i)) in zip(axes.flat, shown):
        lo, hi = np.percentile(np.concatenate([o, i]), [0.5, 99.5])
        bins = np.linspace(lo, hi, 60) if hi > lo else 30
        ax.hist(o, bins=bins, alpha=0.6, density=True, label="without canary (D)")
        ax.hist(i, bins=bins, alpha=0.6, density=True, label="with canary (D')")
        ax.set(xlabel="attack statistic (higher = canary in)", ylabel="probability density", yticks=[])
        ax.set_title(name, fontsize=9)
        ax.locator_params(axis="x", nbins=5)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2)
    return fig


def density_variant_table(splits: list[MagnetSplit], seeds: list[int], final: pd.DataFrame, P: Any) -> pd.DataFrame:
    """Mean final scores (accuracy, balanced accuracy, F1) of the density rule + k-means under each setting of
    :data:`DENSITY_VARIANTS` on the first two seeds, beside entropy + k-means from ``final`` on the same seeds."""
    rows = []
    for label, (bw, w) in DENSITY_VARIANTS.items():
        for s, sp in zip(seeds[:2], splits[:2]):
            r = run_acquisition(lambda: make_classifier(P.model, s), sp.X_pool, sp.y_pool, sp.X_test, sp.y_test,
                                sp.Z_pool, "density", "kmeans", P.n_labels, P.n_initial, P.batch_size, s,
                                bandwidth=bw, weight=w)
            rows.append({"variant": label, "seed": s, **r.final()})
    ref = final[(final.strategy == "entropy") & (final.cold_start == "kmeans") & final.seed.isin(seeds[:2])]
    rows += [{"variant": "entropy (for reference)", "seed": int(x.seed), "accuracy": x.accuracy,
              "balanced_accuracy": x.balanced_accuracy, "f1": x.f1} for x in ref.itertuples()]
    return pd.DataFrame(rows).groupby("variant")[["accuracy", "balanced_accuracy", "f1"]].mean()


def forty_percent_table(P: Any) -> pd.Series:
    """The setting where the seed's mechanism would save 40% against its own baseline: a sampling rate ``q`` with
    60% of the batches holding a labelled drive (``1 - (1 - q)^n_labels = 0.6``), and its noise at that rate."""
    q40 = 1 - 0.4 ** (1 / P.n_labels)
    c40 = sparsity.noise_comparison(P.epsilon, P.delta, q40, P.dp_steps, P.n_labels)
    return pd.Series({"labelled per batch": q40 * P.n_labels, "pool drives per batch": q40 * P.n_pool,
                      "seed saving vs its baseline": 1 - c40["seed_vs_always"], "seed sigma": c40["seed_sigma"],
                      "DP-SGD sigma": c40["dpsgd_sigma"], "seed / DP-SGD noise variance": c40["seed_vs_dpsgd"]})


def audit_trials_table(P: Any, trials: Sequence[int] = (100, 1000, 10000, 100000)) -> pd.DataFrame:
    """The empty-batch audit's epsilon lower bound against the number of trials per world, all draws from one
    generator seeded by ``P.seed``, in the order of ``trials``."""
    gen = np.random.default_rng(P.seed)
    return pd.DataFrame([{"trials per world": n, "epsilon lower bound": audit.empirical_epsilon(
        *audit.seed_mechanism_scores("empty_batch", n, P.epsilon, P.delta, gen), P.delta, rng=gen).epsilon_lb}
        for n in trials])


def no_missing_accuracy(P: Any) -> pd.Series:
    """Test accuracy on one magnet split without missing values (seed ``P.seed``): the oracle, the majority class,
    and random sampling and entropy at ``P.n_labels`` labels (random cold start)."""
    sp0 = magnet_split(P.seed, P.n_pool, P.n_test, 0.0)
    res = {"oracle": float(np.mean((sp0.p_test > 0.5) == sp0.y_test)), "majority": sp0.majority_accuracy}
    for st in ("random", "entropy"):
        r = run_acquisition(lambda: make_classifier(P.model, P.seed), sp0.X_pool, sp0.y_pool, sp0.X_test,
                            sp0.y_test, sp0.Z_pool, st, "random", P.n_labels, P.n_initial, P.batch_size, P.seed)
        res[f"{st} at {P.n_labels} labels"] = r.final()["accuracy"]
    return pd.Series(res, name="accuracy, no missing values")
