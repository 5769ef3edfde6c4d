"""Tests of ppal_lab.chapters.ch03_sparsity: the seed's minimal example (section "The seed's minimal
example"), the paired contrasts, and the figures the chapter's declared claims read."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ppal_lab.chapters import ch03_sparsity as ch03
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS
from ppal_lab.learning import acquisition as aq
from ppal_lab.learning.cold_start import cold_start
from ppal_lab.privacy import audit, sparsity


def test_minimal_example_labels_carry_no_signal():
    X, y, labelled = aq.seed_minimal_example(42)
    assert X.shape == (1000, 50) and abs((X == 0).mean() - 0.8) < 0.01
    assert 0.25 < y.mean() < 0.35 and 0 < labelled.sum() < 60
    assert aq.independent_label_ceiling(0.3) == {"accuracy": 0.7, "balanced_accuracy": 0.5}
    res = ch03.minimal_example_scores(0, "entropy")
    assert res["accuracy"] < 0.76 and abs(res["balanced_accuracy"] - 0.5) < 0.06



P = SimpleNamespace(n_labels=60, model="logreg", epsilon=0.5, delta=1e-5, dp_batch_size=50, n_pool=1000,
                    dp_steps=50, batch_size=20, bandwidth=0.5)


def _frames(density_acc, majority_acc, seeds=(3, 4), full_balanced=(0.55, 0.56), nonprivate_balanced=(0.5, 0.5)):
    """Minimal per-seed inputs of :func:`ch03.fill_metrics`, rows shuffled so that only pairing by seed
    gives the right differences."""
    final = pd.DataFrame([{"strategy": st, "cold_start": cold, "seed": s,
                           "accuracy": density_acc[i] if (st, cold) in (("density", "kmeans"), ("density_literal", "kmeans")) else 0.7,
                           "balanced_accuracy": 0.5, "f1": 0.2}
                          for st in aq.STRATEGIES for cold in ("random", "kmeans") for i, s in enumerate(seeds)])
    refs = pd.DataFrame([{"reference": name, "seed": s, "accuracy": acc}
                         for i, s in enumerate(seeds)
                         for name, acc in [("majority class", majority_acc[i]), ("oracle (true probabilities)", 0.85),
                                           ("logreg on all pool labels", 0.8)]])
    refs["balanced_accuracy"] = [0.5 if r.reference == "majority class" else full_balanced[seeds.index(r.seed)]
                                 for r in refs.itertuples()]
    mini = pd.DataFrame({"accuracy": [0.65, 0.7], "balanced_accuracy": [0.5, 0.5]})
    mech = pd.DataFrame([{"mechanism": m, "seed": s, "noise_energy": 2.0 if m == "seed" else 1.0,
                          "noisy_step_fraction": 0.6, "accuracy": 0.5,
                          "balanced_accuracy": nonprivate_balanced[i] if m == "nonprivate" else 0.5}
                         for m in sparsity.MECHANISMS for i, s in enumerate(seeds)])
    return final.sample(frac=1, random_state=0), refs.iloc[::-1], mini, mech


def _audit_tab(epsilon_lbs, trials=200):
    return pd.DataFrame({"audit": ch03.AUDIT_KEYS, "epsilon_lb": epsilon_lbs, "trials_per_world": trials})


AGREE = pd.DataFrame({"seed": [3, 4], "rho_literal_variant": [0.4, 0.5], "top_shared_literal_variant": [0.6, 0.7],
                      "rho_literal_distance": [0.99, 0.98]})


def _fill(record, frames, audit_tab, bed_frames=None):
    """fill_metrics on the magnet frames, fill_bed_metrics on the digits frames (the same by default)."""
    ch03.fill_metrics(record, P, *frames, audit_tab)
    final, refs = (bed_frames or frames)[:2]
    ch03.fill_bed_metrics(record, P, final, refs, AGREE)


def test_gains_over_references_are_paired_by_seed_and_every_claim_is_decided():
    record = ResultRecord("03_sparsity", {"seed": 3})
    _fill(record, _frames([0.80, 0.93], [0.70, 0.75]), _audit_tab([0.0] * 5))
    M = record.metrics
    gain = M["accuracy_gain_density_kmeans_over_majority"]
    assert gain["value"] == pytest.approx(0.14)  # per seed 0.10 and 0.18; unpaired rows would give 0.05 and 0.23
    assert gain["ci95"] == pytest.approx(stats.t.interval(0.95, 1, loc=0.14, scale=stats.sem([0.10, 0.18])))
    assert M["oracle_gain_over_majority"]["value"] == pytest.approx(0.125)
    assert M["oracle_minus_random_accuracy"]["value"] == pytest.approx(0.15)
    verdicts = ch03.add_claims(record, P, {"seed_vs_always": 0.6}, np.arange(20), n_features=50)
    assert list(verdicts) == [c.id for c in SPECS["03_sparsity"].claims]
    assert all(c["measured"] for c in record.claims)


def test_audit_refutes_the_empty_batch_guarantee_and_never_certifies_one():
    """The guarantee factor's interval reaches 0 (no accountant bounds the seed's epsilon), so a clean
    audit cannot certify the guarantee; the seed's empty-batch release is caught with 200 trials."""
    gen = np.random.default_rng(0)
    leak = audit.empirical_epsilon(*audit.seed_mechanism_scores("empty_batch", 200, P.epsilon, P.delta, gen),
                                   P.delta, rng=gen).epsilon_lb
    clean = audit.empirical_epsilon(gen.normal(size=200), gen.normal(size=200), P.delta, rng=gen).epsilon_lb
    for epsilon_lb, caught in [(leak, True), (clean, False)]:
        record = ResultRecord("03_sparsity", {"seed": 3})
        _fill(record, _frames([0.8, 0.9], [0.7, 0.75]), _audit_tab([epsilon_lb] + [0.0] * 4))
        low, high = record.metrics["dp_guarantee_factor_seed_empty_batch"]["ci95"]
        assert low == 0 and (high < 1) == caught
        verdict = ch03.add_claims(record, P, {"seed_vs_always": 0.6}, np.arange(20), n_features=50)["dp_guarantee"]
        assert verdict != "reproduced"


def test_the_seeds_cold_start_picks_feature_indices_not_drives():
    Z = np.random.default_rng(1).normal(size=(400, 10))
    for method, picks_items in [("seed", 0.0), ("kmeans", 1.0)]:
        record = ResultRecord("03_sparsity", {"seed": 3})
        _fill(record, _frames([0.8, 0.9], [0.7, 0.75]), _audit_tab([0.0] * 5))
        ch03.add_claims(record, P, {"seed_vs_always": 0.6}, cold_start(Z, 5, method, 0), n_features=10)
        assert record.metrics["seed_cold_start_picks_items"]["value"] == picks_items


def test_paired_contrasts_are_differences_by_seed():
    arms = [("density", "kmeans", [0.7, 0.8]), ("entropy", "random", [0.6, 0.75]),
            ("random", "random", [0.5, 0.55]), ("random", "kmeans", [0.52, 0.6])]
    final = pd.DataFrame([{"strategy": st, "cold_start": cold, "seed": seed, "accuracy": acc,
                           "balanced_accuracy": acc - 0.1}
                          for st, cold, accs in arms for seed, acc in zip([0, 1], accs)])
    np.testing.assert_allclose(ch03.paired(final, ("density", "kmeans"), ("entropy", "random"), "accuracy"),
                               [0.1, 0.05])
    table = ch03.contrast_table(final)
    assert list(table["contrast"].unique()) == list(ch03.CONTRASTS) and (table["n"] == 2).all()
    row = table[(table["contrast"] == "density+kmeans minus random+random") & (table["metric"] == "accuracy")]
    assert row["mean difference"].item() == pytest.approx(0.225)


def test_a_bed_without_headroom_decides_nothing_and_keeps_the_first_rule():
    """All-label balanced accuracy 0.55 (the magnet bed's) leaves the acquisition claims not measurable whatever
    the strategies score; a bed at 0.9 decides them. The first rule (oracle gain) is still decided beside."""
    record = ResultRecord("03_sparsity", {"seed": 3})
    digits = _frames([0.95, 0.97], [0.70, 0.72], full_balanced=(0.9, 0.92))
    _fill(record, _frames([0.95, 0.97], [0.65, 0.66]), _audit_tab([0.0] * 5), digits)
    assert record.metrics["headroom_balanced_accuracy_magnet"]["value"] == pytest.approx(0.055)
    assert record.metrics["headroom_balanced_accuracy_digits"]["value"] == pytest.approx(0.41)
    assert record.metrics["headroom_accuracy_digits"]["value"] == pytest.approx(0.09)
    verdicts = ch03.add_claims(record, P, {"seed_vs_always": 0.6}, np.arange(20), n_features=50)
    claims = {c["id"]: c for c in record.claims}
    for cid in ("ppal_accuracy_200_labels", "acquisition_ordering_ppal_vs_uncertainty",
                "acquisition_ordering_uncertainty_vs_random"):
        assert verdicts[cid] == "not measurable" and "first_verdict" in claims[cid]
        assert verdicts[cid + "_digits"] != "not measurable"
    # gains 0.25 and 0.25 over the majority class: beyond the claim's region 0.19 +- 0.0475
    assert verdicts["ppal_accuracy_200_labels_digits"] == "partly"
    # the first rule's gate, the oracle's gain (0.20 and 0.19), lets the magnet bed decide: gains 0.30 and 0.31
    assert claims["ppal_accuracy_200_labels"]["first_verdict"] == "partly"


@pytest.mark.parametrize("nonprivate, gated", [((0.5, 0.51), True), ((0.52, 0.49), True), ((0.8, 0.82), False)])
def test_dp_training_claims_are_judged_only_where_the_non_private_model_beats_chance(nonprivate, gated):
    record = ResultRecord("03_sparsity", {"seed": 3})
    _fill(record, _frames([0.8, 0.9], [0.7, 0.75], nonprivate_balanced=nonprivate), _audit_tab([3.0] * 5))
    verdicts = ch03.add_claims(record, P, {"seed_vs_always": 0.6}, np.arange(20), n_features=50)
    for cid in ("dp_noise_40_percent_less", "density_adaptive_noise"):
        assert (verdicts[cid] == "not measurable") == gated
    assert verdicts["dp_guarantee"] == "not reproduced"   # an audit needs no learner


def test_one_repeat_gives_the_dp_gate_no_headroom():
    record = ResultRecord("03_sparsity", {"seed": 3})
    frames = _frames([0.8], [0.7], seeds=(3,), full_balanced=(0.9,), nonprivate_balanced=(0.9,))
    ch03.fill_metrics(record, P, *frames, _audit_tab([0.0] * 5))
    assert record.metrics["headroom_dp_nonprivate_lower"]["value"] == -0.5


def test_literal_and_variant_rules_on_a_magnet_pool_at_d50():
    """At the seed's d = 50 and h = 0.5 the rank agreement the record carries is Spearman's rho of the two
    scores (recomputed here with scikit-learn's KDE for the literal one), below 1: the rules differ."""
    from scipy.stats import spearmanr
    from sklearn.neighbors import KernelDensity

    sp = aq.magnet_split(2, n_pool=2500, n_test=100)
    lab = np.random.default_rng(2).choice(2500, 60, replace=False)
    res = ch03.literal_vs_variant(sp, lab, 0.5, n_reference=250, seed=2)
    unl = np.setdiff1d(np.arange(2500), lab)
    proba = aq.make_classifier("logreg", 2).fit(sp.X_pool[lab], sp.y_pool[lab]).predict_proba(sp.X_pool[unl])
    Z = sp.Z_pool
    literal = (np.log(np.maximum(-np.sum(proba * np.log(proba + 1e-10), axis=1), 0))
               + (KernelDensity(bandwidth=0.5).fit(Z).score_samples(Z) - KernelDensity(bandwidth=0.5).fit(Z[lab])
                  .score_samples(Z))[unl])
    from ppal_lab.learning import density as dn
    variant = dn.density_scores(proba, dn.log_density_ratio(Z, lab, 0.5, 250, 2)[unl])
    assert res["rho_literal_variant"] == pytest.approx(spearmanr(literal, variant).statistic, abs=1e-9)
    assert res["rho_literal_variant"] < 0.95 and res["rho_literal_distance"] > 0.95


# --------------------------------------------------------------------------------------------------
# The notebook's tables and figures
# --------------------------------------------------------------------------------------------------
def _run(strategy, cold, seed, acc):
    """A stand-in for an AcquisitionRun: two rounds, at 10 and 20 labels."""
    return aq.AcquisitionRun(strategy, cold, seed, np.array([10, 20]), np.array([0.5, acc]),
                             np.array([0.5, acc - 0.1]), np.array([0.2, 0.3]), np.arange(20))


def test_strategy_and_cold_start_tables_summarise_by_group():
    final = pd.DataFrame({"strategy": ["random", "random", "entropy"], "cold_start": ["kmeans"] * 3,
                          "seed": [0, 1, 0], "accuracy": [0.6, 0.8, 0.9], "balanced_accuracy": [0.5, 0.5, 0.7],
                          "f1": [0.1, 0.3, 0.4]})
    table = ch03.strategy_table(final)
    assert list(table.columns) == ["strategy", "cold_start", "accuracy", "balanced_accuracy", "f1", "n"]
    row = table[table.strategy == "random"].iloc[0]
    assert row.accuracy.startswith("0.700 [") and row.f1.startswith("0.200 [") and row.n == 2
    assert table[table.strategy == "entropy"].iloc[0].accuracy == "0.900"  # one run: no interval
    init = final.rename(columns={"strategy": "cold"}).assign(cold_start=["seed", "kmeans", "kmeans"],
                                                              coverage_distance=[1.0, 2.0, 4.0],
                                                              high_grade_picked=[1, 2, 3], max_index=[5, 60, 70])
    table = ch03.cold_start_table(init)
    assert list(table.columns) == ["cold_start", "coverage_distance", "high_grade_picked", "max_index", "accuracy",
                                   "balanced_accuracy", "n"]
    assert table.set_index("cold_start").loc["kmeans", "coverage_distance"].startswith("3.000 [")


def test_strategy_runs_cover_every_strategy_and_both_cold_starts_at_the_budget():
    Pq = SimpleNamespace(n_labels=30, n_initial=10, batch_size=10, model="logreg", bandwidth=0.5)
    sp = aq.magnet_split(1, n_pool=200, n_test=100)
    runs = ch03.strategy_runs([sp], [1], Pq)
    assert {(r.strategy, r.cold_start) for r in runs} == {(s, c) for s in aq.STRATEGIES for c in ("random", "kmeans")}
    assert len(runs) == 2 * len(aq.STRATEGIES) and all(r.n_labels[-1] == 30 and r.seed == 1 for r in runs)


def test_plot_density_ratio_has_a_histogram_and_a_scatter_of_the_sampled_drives():
    gen = np.random.default_rng(0)
    frame = pd.DataFrame({"log_ratio": gen.normal(size=40), "entropy": gen.uniform(size=40),
                          "distance": gen.uniform(size=40)})
    fig = ch03.plot_density_ratio(frame, seed=0)
    top, bottom = fig.axes[:2]
    assert top.get_title() == "Density ratio across the pool" and top.get_yscale() == "log"
    assert top.get_xlabel() == "log10 of p_pool / p_labelled" and len(top.patches) == 60
    assert bottom.get_title() == "Ratio vs distance to the nearest labelled drive"
    assert bottom.get_ylabel() == "log ratio (nats)" and len(bottom.collections[0].get_offsets()) == 40
    assert fig.get_size_inches()[0] <= 7.5
    plt.close(fig)


def test_plot_acquisition_curves_has_one_line_per_arm_and_the_majority_class():
    runs = [_run(st, "random", s, acc) for st, acc in [("random", 0.6), ("entropy_x", 0.8)] for s in (0, 1)]
    refs = pd.DataFrame({"reference": ["majority class", "majority class", "oracle"], "accuracy": [0.7, 0.5, 0.9]})
    fig = ch03.plot_acquisition_curves(runs, refs, n_seeds=2)
    top, bottom = fig.axes
    assert top.get_title() == "Test accuracy (2 repeats, 95% CI)"
    assert bottom.get_title() == "Test balanced accuracy (2 repeats, 95% CI)"
    assert bottom.get_ylabel() == "test balanced accuracy (fraction)" and bottom.get_legend() is None
    hline = [ln for ln in top.lines if ln.get_label() == "majority class"]
    assert len(hline) == 1 and hline[0].get_ydata()[0] == pytest.approx(0.6)
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert "entropy x" in legend and "majority class" in legend and "cold start" in legend
    assert fig.get_size_inches()[0] <= 7.5
    plt.close(fig)


def test_plot_noise_ratio_marks_the_claim_and_the_setting():
    sweep = pd.DataFrame({"labelled per batch": [0.1, 1.0, 10.0], "seed / DP-SGD": [3.0, 2.0, 1.5],
                          "seed / always": [0.1, 0.6, 1.0], "other": [9.0, 9.0, 9.0]})
    fig = ch03.plot_noise_ratio(sweep, 2.5, 0.5, 1000)
    ax = fig.axes[0]
    assert ax.get_title() == "Noise of the seed's mechanism, ε = 0.5, 1000 steps"
    assert ax.get_xscale() == ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["seed / DP-SGD", "seed / always", "the seed's claim (40% less)", "this run's setting"]
    assert ax.lines[3].get_xdata()[0] == 2.5 and ax.lines[2].get_ydata()[0] == 0.6
    plt.close(fig)


def test_plot_audit_scores_shows_four_of_the_five_audits():
    gen = np.random.default_rng(0)
    scores = {name: (gen.normal(size=100), gen.normal(1, size=100)) for name in "ABCDE"}
    scores["B"] = (np.zeros(50), np.zeros(50))  # a degenerate audit: 30 bins, no range
    fig = ch03.plot_audit_scores(scores)
    assert [ax.get_title() for ax in fig.axes] == ["A", "B", "D", "E"]
    # 59 bins between the 0.5 and 99.5 percentiles per histogram, 30 where they coincide
    assert all(len(ax.patches) == 2 * 59 for ax in (fig.axes[0], fig.axes[2])) and len(fig.axes[1].patches) == 60
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["without canary (D)", "with canary (D')"]
    assert fig.get_size_inches()[0] <= 7.5
    plt.close(fig)


def test_density_variant_table_sets_the_variants_beside_entropy_on_two_seeds():
    Pq = SimpleNamespace(n_labels=30, n_initial=10, batch_size=10, model="logreg")
    splits = [aq.magnet_split(s, n_pool=200, n_test=100) for s in (5, 6)]
    final = pd.DataFrame({"strategy": ["entropy", "entropy", "entropy", "random"], "cold_start": ["kmeans"] * 4,
                          "seed": [5, 6, 7, 5], "accuracy": [0.6, 0.8, 0.0, 0.0], "balanced_accuracy": [0.5] * 4,
                          "f1": [0.2, 0.4, 0.0, 0.0]})
    table = ch03.density_variant_table(splits, [5, 6, 7], final, Pq)
    assert sorted(table.index) == sorted([*ch03.DENSITY_VARIANTS, "entropy (for reference)"])
    assert table.loc["entropy (for reference)", "accuracy"] == pytest.approx(0.7)  # seeds 5 and 6 only
    assert table.loc["entropy (for reference)", "f1"] == pytest.approx(0.3)
    assert table.accuracy.between(0, 1).all()


def test_forty_percent_table_is_the_setting_that_saves_forty_percent():
    for n_labels in (1, 200):
        row = ch03.forty_percent_table(SimpleNamespace(n_labels=n_labels, n_pool=1000, epsilon=0.5, delta=1e-5,
                                                       dp_steps=100))
        assert row["seed saving vs its baseline"] == pytest.approx(0.4)
    assert row["labelled per batch"] < 0.92  # -ln 0.4 = 0.916 in the limit of many labels
    one = ch03.forty_percent_table(SimpleNamespace(n_labels=1, n_pool=1000, epsilon=0.5, delta=1e-5, dp_steps=100))
    assert one["labelled per batch"] == pytest.approx(0.6) and one["pool drives per batch"] == pytest.approx(600)


def test_audit_trials_table_catches_the_empty_batch_release():
    Pq = SimpleNamespace(seed=0, epsilon=P.epsilon, delta=P.delta)
    table = ch03.audit_trials_table(Pq, trials=(200, 100))
    assert list(table.columns) == ["trials per world", "epsilon lower bound"]
    assert table["trials per world"].tolist() == [200, 100]
    assert table["epsilon lower bound"].iloc[0] > P.epsilon  # the same draws as the audit test above
    assert table.equals(ch03.audit_trials_table(Pq, trials=(200, 100)))


def test_no_missing_accuracy_reports_the_references_and_two_strategies():
    Pq = SimpleNamespace(seed=4, n_pool=200, n_test=150, n_labels=30, n_initial=10, batch_size=10, model="logreg")
    res = ch03.no_missing_accuracy(Pq)
    sp = aq.magnet_split(4, 200, 150, 0.0)
    assert res.name == "accuracy, no missing values"
    assert list(res.index) == ["oracle", "majority", "random at 30 labels", "entropy at 30 labels"]
    assert res["oracle"] == pytest.approx(sp.bayes_accuracy) and res["majority"] == sp.majority_accuracy
    assert res.between(0, 1).all()
