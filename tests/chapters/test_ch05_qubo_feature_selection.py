"""The QUBO feature-selection chapter (notebooks/05): solvers by name, its studies' checks and its verdicts."""
import numpy as np
import pandas as pd
import pytest

from ppal_lab import optimize as q
from ppal_lab.chapters import ch05_qubo_feature_selection as fx
from ppal_lab.compendium.errors import ParameterError


@pytest.mark.parametrize("seed", range(4))
def test_sb_with_swaps_finds_the_exact_mrmr_optimum(seed):
    """Section 1 ("How often does each solver find the optimum?"): bSB + swap on random instances."""
    problem = fx.random_instance(fx.instance_seed(12345, seed))
    x = fx.run_solver("bsb+swap", problem, seed=seed).x
    assert problem.energy(x) == pytest.approx(q.exact_solve(problem).energy, abs=1e-9)


def test_wilson_interval():
    lo, hi = fx.wilson_interval(100, 100)
    assert hi == pytest.approx(1.0) and 0.96 < lo < 0.97
    lo, hi = fx.wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.27 < hi < 0.29


def test_bad_input_is_rejected_with_the_parameter_named():
    r, R = np.ones(5), np.zeros((5, 5))
    problem = q.mrmr_qubo(r, R, 2)
    with pytest.raises(ParameterError, match="^n_agents = "):
        fx.run_solver("bsb", problem, n_agents=0)
    with pytest.raises(ParameterError, match="^alpha = "):
        fx.optimality_study(2, n_seeds=1, alpha=2.0)


def test_verdict_rules():
    assert [fx.count_verdict(k) for k in (None, 20, 16, 15, 12, 11, 5)] == [
        "not reproduced", "not reproduced", "not reproduced", "reproduced", "reproduced", "partly", "partly"]
    assert fx.optimality_verdict(0.99) == "reproduced" and fx.optimality_verdict(0.98) == "not reproduced"
    assert fx.time_verdict(2.0) == "reproduced" and fx.time_verdict(2.01) == "not reproduced"
    goals = pd.DataFrame({"energy_ok": [True, True], "time_ok": [True, False]})
    assert fx.peer_verdict(goals) == "partly"
    assert fx.peer_verdict(goals.assign(time_ok=True)) == "reproduced"
    assert fx.peer_verdict(goals.assign(energy_ok=[True, False], time_ok=True)) == "not reproduced"


def test_peer_goal_checks_compare_mean_energy_and_median_time():
    peers = pd.DataFrame({"n": [50] * 4, "solver": ["bsb+swap", "bsb+swap", "sa", "sa"],
                          "energy": [-2.0, -2.0, -1.0, -3.0], "time_s": [1.0, 3.0, 1.0, 1.0]})
    goals = fx.peer_goal_checks(peers, "bsb+swap", rivals=("sa",))
    assert goals[["energy_ok", "time_ok"]].values.tolist() == [[True, False]]
    assert goals.time_ratio.iloc[0] == pytest.approx(2.0)


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
