"""Every peer solver behind one call: valid rows, the same polish for all, the greedy restriction."""
import numpy as np
import pytest

from ppal_lab import optimize as q
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.optimize import instances as inst
from ppal_lab.optimize import peers

from qubo_cases import random_mrmr  # noqa: E402  (tests/optimize/qubo_cases.py)

FAST = dict(n_agents=4, max_steps=100, pkg_max_steps=200, sa_sweeps=50, tabu_timeout_ms=5, seed=3)


@pytest.mark.parametrize("name", peers.SOLVERS)
def test_every_solver_returns_binary_rows_and_polish_makes_them_feasible(name):
    problem = random_mrmr(14, 4, seed=2)
    X = peers.solver_samples(name, problem, **FAST)
    assert X.ndim == 2 and X.shape[1] == 14 and np.isin(X, (0, 1)).all()
    assert X.shape[0] == (1 if name == "greedy" else 4)
    P = peers.polish(problem, X)
    assert (P.sum(axis=1) == 4).all()
    np.testing.assert_array_equal(peers.polish(problem, X, "none"), X)


def test_tabu_and_sa_find_a_small_planted_ground_state():
    p = inst.wishart_planted(16, 1.0, 0)
    for name in ("tabu", "sa"):
        X = peers.polish(p.qubo, peers.solver_samples(name, p.qubo, n_agents=16, seed=0))
        assert p.qubo.energy(X).min() == pytest.approx(p.energy, abs=1e-9)


def test_bad_input_is_rejected_with_the_parameter_named():
    qubo = q.QUBO(np.eye(5))
    with pytest.raises(ParameterError, match="^solver = 'greedy'"):
        peers.solver_samples("greedy", qubo)
    with pytest.raises(ParameterError, match="^solver = 'cplex'"):
        peers.solver_samples("cplex", qubo)
    with pytest.raises(ParameterError, match="^polish = 'twice'"):
        peers.polish(qubo, np.zeros((1, 5)), "twice")
