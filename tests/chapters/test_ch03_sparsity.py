"""Tests of ppal_lab.chapters.ch03_sparsity: the seed's minimal example (section "The seed's minimal
example"), the paired contrasts, and the verdict rules of the chapter's claims."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters import ch03_sparsity as ch03
from ppal_lab.learning import acquisition as aq
from ppal_lab.compendium.results import mean_ci


def test_minimal_example_labels_carry_no_signal():
    X, y, labelled = aq.seed_minimal_example(42)
    assert X.shape == (1000, 50) and abs((X == 0).mean() - 0.8) < 0.01
    assert 0.25 < y.mean() < 0.35 and 0 < labelled.sum() < 60
    assert aq.independent_label_ceiling(0.3) == {"accuracy": 0.7, "balanced_accuracy": 0.5}
    res = ch03.minimal_example_scores(0, "entropy")
    assert res["accuracy"] < 0.76 and abs(res["balanced_accuracy"] - 0.5) < 0.06



def _metric(values):
    """A record metric as ResultRecord.add_metric writes it (mean, Student-t 95% CI, n)."""
    mean, ci, n = mean_ci(values)
    return {"value": mean, "ci95": list(ci) if ci else None, "n": n}


def _measured(**over):
    """The figures of the chapter's committed record at its defaults, with some replaced."""
    record = json.loads((Path(__file__).resolve().parents[2] / "data/results/03_sparsity.json").read_text())
    return record["metrics"] | {k: _metric(v) for k, v in over.items()}


def test_verdicts_at_the_chapter_defaults_are_the_recorded_ones():
    """Section "Headline figures": the rules give the verdicts the committed record states (the seed's
    cold start picks feature indices, all below the 50 features)."""
    record = json.loads((Path(__file__).resolve().parents[2] / "data/results/03_sparsity.json").read_text())
    verdicts = ch03.claim_verdicts(record["metrics"], record["parameters"]["epsilon"], np.arange(20), n_features=50)
    assert verdicts == {c["id"]: c["verdict"] for c in record["claims"]}
    assert set(verdicts.values()) == {"not reproduced", "not measurable"}


def test_verdicts_follow_the_measured_figures():
    good = _measured(accuracy_density_kmeans=[0.95, 0.96, 0.955],
                     density_minus_entropy_accuracy=[0.10, 0.12, 0.11],
                     entropy_minus_random_accuracy=[0.05, 0.06, 0.07],
                     noise_energy_seed_over_dpsgd=[0.5, 0.55, 0.52],
                     audit_epsilon_seed_empty_batch=[0.3], audit_epsilon_seed_density_noise=[0.2],
                     audit_epsilon_seed_rounds=[0.1])
    v = ch03.claim_verdicts(good, 0.5, np.array([3, 700]), n_features=50)
    assert v["ppal_accuracy_200_labels"] == "reproduced" and v["acquisition_ordering"] == "reproduced"
    assert v["dp_noise_40_percent_less"] == "reproduced"
    assert v["dp_guarantee"] == v["density_adaptive_noise"] == v["cold_start_diverse_subspaces"] == "inconclusive"
    half = _measured(accuracy_density_kmeans=[0.80, 0.95, 0.9], entropy_minus_random_accuracy=[0.05, 0.06, 0.07])
    v = ch03.claim_verdicts(half, 0.5, np.arange(20), n_features=50)
    assert v["ppal_accuracy_200_labels"] == "inconclusive" and v["acquisition_ordering"] == "partly"
    one_seed = _measured(density_minus_entropy_accuracy=[0.2], entropy_minus_random_accuracy=[0.1])
    assert ch03.claim_verdicts(one_seed, 0.5, np.arange(20), 50)["acquisition_ordering"] == "not reproduced"


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
