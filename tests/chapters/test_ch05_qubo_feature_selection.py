"""The QUBO feature-selection chapter (notebooks/05): solvers by name, its studies' checks, its record and claims."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ppal_lab import optimize as q
from ppal_lab.chapters import ch05_qubo_feature_selection as fx
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS


@pytest.mark.parametrize("seed", range(4))
def test_sb_with_swaps_finds_the_exact_mrmr_optimum(seed):
    """Section 1 ("How often does each solver find the optimum?"): bSB + swap on random instances."""
    problem = fx.random_instance(fx.instance_seed(12345, seed))
    x = fx.run_solver("bsb+swap", problem, seed=seed).x
    assert problem.energy(x) == pytest.approx(q.exact_solve(problem).energy, abs=1e-9)


def test_wilson_interval_is_the_score_interval():
    """Against the closed form of Wilson's score interval (z = 1.96): 100/100 does not show 99%."""
    z = 1.959963984540054
    for successes, n in [(100, 100), (0, 10), (37, 50), (1, 3)]:
        p = successes / n
        centre, half = (p + z**2 / (2 * n)), z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        assert fx.wilson_interval(successes, n) == pytest.approx(((centre - half) / (1 + z**2 / n),
                                                                  (centre + half) / (1 + z**2 / n)), abs=1e-12)
    assert fx.wilson_interval(100, 100)[0] == pytest.approx(0.963, abs=5e-4)


def test_bad_input_is_rejected_with_the_parameter_named():
    r, R = np.ones(5), np.zeros((5, 5))
    problem = q.mrmr_qubo(r, R, 2)
    with pytest.raises(ParameterError, match="^n_agents = "):
        fx.run_solver("bsb", problem, n_agents=0)
    with pytest.raises(ParameterError, match="^alpha = "):
        fx.optimality_study(2, n_seeds=1, alpha=2.0)


@pytest.mark.parametrize("means", [(0.0,) * 6, (-1.0, -0.9, -0.8, -0.7, -0.5, 0.0)])
def test_worst_comparison_covers_the_largest_true_mean(means):
    """Six comparisons of three repeats each, largest true mean 0: the interval covers it in at least 95%
    of 2000 simulated runs (equal means are the hardest case for the lower end)."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(2000):
        value, (lo, hi), n = fx.worst_comparison(np.array(means)[:, None] + rng.standard_normal((6, 3)))
        covered += lo <= 0.0 <= hi
        assert n == 3 and lo <= value <= hi
    assert covered / 2000 >= 0.95
    assert fx.worst_comparison([[1.0], [2.0]]) == (2.0, None, 1)      # one repeat: no interval


def test_peer_differences_pair_runs_by_size_and_seed():
    peers = pd.DataFrame({"n": [50] * 4, "seed": [0, 1, 0, 1], "solver": ["bsb+swap", "bsb+swap", "sa", "sa"],
                          "gap_to_best": [0.0, 0.1, 0.5, 0.1], "time_s": [1.0, 3.0, 2.0, 1.0]})
    d = fx.peer_differences(peers, "bsb+swap", rivals=("sa",)).set_index("seed")
    assert d.energy_excess.to_list() == pytest.approx([-0.5, 0.0])
    assert d.log_time_ratio.to_list() == pytest.approx([np.log(0.5), np.log(3.0)])


def _fake_studies(instances=20, solved=20, seeds=3):
    """Study tables shaped like the chapter's (the shapes record_metrics and add_claims read)."""
    opt = pd.DataFrame([{"instance": i, "block": i % 2, "n": 12, "k": 4, "solver": s, "energy": -1.0, "optimum": -1.0,
                         "success": i < solved, "gap": 0.0 if i < solved else 0.1, "feasible": True, "time_s": 0.01}
                        for s in fx.OPTIMALITY_SOLVERS for i in range(instances)])
    peers = pd.DataFrame([{"n": n, "k": 15, "solver": s, "seed": r, "energy": -1.0, "feasible": True,
                           "time_s": 0.1 * (1 + r), "cpu_s": 0.1 * (1 + r), "gap_to_best": 0.0 if "swap" in s else 0.2}
                          for n in (50, 200, 1000) for s in fx.peer_solvers("bsb") for r in range(seeds)])
    sweep = pd.DataFrame([{"dataset": d, "seed": r, "selector": sel, "k": k, "accuracy": 0.8, "features": ""}
                          for d in ("magnet", "breast_cancer") for r in range(2)
                          for sel, ks in (("all", [50 if d == "magnet" else 30]), ("sb", [5, 10, 15, 20, 25, 30]))
                          for k in ks])
    top2 = pd.DataFrame({"date_and_maker_top2": [True, True], "date_and_maker_ours": [True, False]})
    return opt, peers, sweep, top2


def test_claims_read_metrics_the_record_has():
    P = SimpleNamespace(seed=0, n_seeds=2, dataset="breast_cancer", k=15, alpha=0.5, solver="bsb", polish=True,
                        n_agents=8, n_instances=20, peer_seeds=3)
    opt, peers, sweep, top2 = _fake_studies()
    record = ResultRecord("05_qubo_feature_selection", vars(P))
    k_keep, k_keep_real = fx.record_metrics(record, P, opt, peers, sweep, load=1.0)
    fx.add_claims(record, P, fx.summarize_optimality(opt), peers, top2, k_keep, k_keep_real, 1.0, 2)
    claims = SPECS["05_qubo_feature_selection"].claims
    assert [c["id"] for c in record.claims] == [c.id for c in claims]
    for c in claims:   # a claim gated by a bed without headroom (no usable TTS record) may lack its metric
        assert (c.kind == "not measurable" or c.metric in record.metrics
                or record.metrics[c.headroom]["value"] < c.headroom_min)
    success = record.metrics["optimality_success_ours"]
    assert success["n"] == 20 and success["value"] == 1.0 and success["ci95"][0] < 0.9   # over instances
    energy = record.metrics["peer_energy_excess_worst"]             # ours 0, the raw peers 0.2 above the best
    assert energy["value"] == pytest.approx(-0.2) and energy["n"] == 3 and energy["ci95"] == pytest.approx([-0.2, -0.2])
    time = record.metrics["peer_log_time_ratio_worst"]
    assert time["value"] == pytest.approx(0.0, abs=1e-12) and time["ci95"][0] <= 0 <= time["ci95"][1]


def test_names_and_the_worked_example_forms_agree():
    """Section "A worked example": the Ising form and the dimod export give the QUBO's energies."""
    assert fx.ours_name("bsb", True) == "bsb+swap" and fx.ours_name("dsb", False) == "dsb"
    assert fx.peer_solvers("dsb")[:2] == ["dsb", "dsb+swap"]
    problem = fx.random_instance(fx.instance_seed(7, 0))
    ising_err, dimod_err = fx.form_agreement(problem, seed=0, n_states=200)
    assert ising_err < 1e-9 and dimod_err < 1e-9


def test_lambda_threshold_and_agents_exercises():
    share = fx.lambda_threshold_study(0, 0.5, n_instances=3, fractions=(0.1, 1.2))
    assert list(share.index) == [0.1, 1.2] and share.loc[1.2] == 1.0     # above the bound: always feasible
    found = fx.agents_study(0, 0.5, n_instances=2, agents=(4,))
    assert found.shape == (1, 2) and found.loc[4, fx.SOLVER_LABELS["random+swap"]] == 1.0
