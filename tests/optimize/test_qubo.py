"""mRMR QUBO, the cardinality penalty and its bound, the Ising and dimod forms."""
import numpy as np
import pytest

from ppal_lab import optimize as q
from ppal_lab.compendium.errors import ParameterError

from qubo_cases import brute_force, random_mrmr, random_qubo  # noqa: E402  (tests/optimize/qubo_cases.py)


# ---------------------------------------------------------------------------------------------
# the cardinality penalty
# ---------------------------------------------------------------------------------------------
def test_cardinality_penalty_is_lambda_times_squared_violation():
    pen = q.cardinality_penalty(7, 3, 2.5)
    states, energies = brute_force(pen)
    np.testing.assert_allclose(energies, 2.5 * (states.sum(axis=1) - 3) ** 2, atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_penalty_bound_makes_every_infeasible_state_worse_for_any_qubo(seed):
    """The bound holds for a general objective (negative and positive couplings), not only mRMR."""
    rng = np.random.default_rng(seed)
    n = 9
    k = int(rng.integers(1, n + 1))
    objective = random_qubo(n, seed=1000 + seed)
    lam = q.penalty_bound(objective, k) * 1.0001 + 1e-9
    pen = q.cardinality_penalty(n, k, lam)
    total = q.QUBO(objective.Q + pen.Q, objective.offset + pen.offset)
    energies = q.exact_energies(total)
    ones = np.array([bin(c).count("1") for c in range(2**n)])
    best_feasible = energies[ones == k].min()
    assert np.all(energies[ones != k] > best_feasible)


@pytest.mark.parametrize("seed,k,alpha", [(0, 3, 0.5), (1, 5, 0.2), (2, 2, 0.9), (3, 7, 1.0), (4, 4, 0.0)])
def test_mrmr_penalty_keeps_the_constrained_optimum(seed, k, alpha):
    problem = random_mrmr(11, k, seed, alpha)
    assert problem.lam > problem.lam_bound
    energies = q.exact_energies(problem)
    ones = np.array([bin(c).count("1") for c in range(2**11)])
    assert energies[ones != k].min() > energies[ones == k].min()
    unconstrained = q.exact_solve(problem)
    constrained = q.exact_solve(problem.objective, k=k)
    assert unconstrained.x.sum() == k
    assert problem.objective_value(unconstrained.x) == pytest.approx(constrained.energy, abs=1e-12)


def test_mrmr_objective_is_k_times_mean_relevance_and_redundancy():
    problem = random_mrmr(10, 4, seed=5, alpha=0.3)
    idx = np.array([0, 2, 5, 7])
    x = q.indices_to_x(idx, 10)
    r, R = problem.relevance, problem.redundancy
    pairs = [R[i, j] for i in idx for j in idx if i < j]
    expected = 4 * (-0.3 * r[idx].mean() + 0.7 * np.mean(pairs))
    assert problem.objective_value(x) == pytest.approx(expected)
    assert problem.energy(x) == pytest.approx(expected)          # feasible: no penalty
    assert r.max() == pytest.approx(1.0) and R.max() == pytest.approx(1.0)


def test_too_small_a_penalty_can_make_the_optimum_infeasible():
    problem = random_mrmr(10, 2, seed=3, alpha=1.0)      # pure relevance: more features always help
    weak = q.mrmr_qubo(problem.relevance, problem.redundancy, 2, 1.0, lam=1e-3)
    assert q.exact_solve(weak).x.sum() > 2
    assert q.exact_solve(problem).x.sum() == 2


# ---------------------------------------------------------------------------------------------
# Ising and dimod forms
# ---------------------------------------------------------------------------------------------
def test_qubo_ising_energies_agree_both_ways():
    qubo = random_qubo(10, seed=7)
    X = np.random.default_rng(0).integers(0, 2, size=(200, 10))
    ising = qubo.to_ising()
    np.testing.assert_allclose(ising.energy(2 * X - 1), qubo.energy(X), atol=1e-10)
    back = ising.to_qubo()
    np.testing.assert_allclose(back.energy(X), qubo.energy(X), atol=1e-10)
    assert np.all(np.diag(ising.J) == 0) and np.allclose(ising.J, ising.J.T)


def test_dimod_export_gives_the_same_energies():
    problem = random_mrmr(12, 4, seed=11)
    X = np.random.default_rng(1).integers(0, 2, size=(300, 12))
    bqm = problem.qubo.to_bqm()
    np.testing.assert_allclose(bqm.energies((X, list(range(12)))), problem.energy(X), atol=1e-9)
    spin = problem.qubo.to_ising().to_bqm()
    np.testing.assert_allclose(spin.energies((2 * X - 1, list(range(12)))), problem.energy(X), atol=1e-9)
    # and dimod's own exhaustive solver finds our optimum
    import dimod
    best = dimod.ExactSolver().sample(bqm).first.energy
    assert best == pytest.approx(q.exact_solve(problem).energy, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# bad input: a clear error before any work
# ---------------------------------------------------------------------------------------------
def test_bad_input_is_rejected_with_the_parameter_named():
    r, R = np.ones(5), np.zeros((5, 5))
    for kwargs, name in [({"k": 0}, "k"), ({"k": -2}, "k"), ({"k": 6}, "k"),
                         ({"k": 2, "alpha": 1.5}, "alpha"), ({"k": 2, "alpha": -0.1}, "alpha")]:
        with pytest.raises(ParameterError, match=f"^{name} = "):
            q.mrmr_qubo(r, R, **kwargs)
    problem = q.mrmr_qubo(r, R, 2)
    with pytest.raises(ParameterError, match="^x = "):
        problem.energy([0, 1, 2, 0, 0])
