"""mRMR QUBO, its Ising and dimod forms, the exact solver, simulated bifurcation and the baselines."""
import itertools

import numpy as np
import pytest

from ppal_lab.optimize import qubo as q
from ppal_lab.chapters import ch05_qubo_feature_selection as fx
from ppal_lab.compendium.errors import ParameterError


def brute_force(qubo: q.QUBO):
    """Every state by an explicit loop (the slow reference the vectorised search must match)."""
    states = np.array(list(itertools.product([0, 1], repeat=qubo.n)))
    energies = np.array([s @ qubo.Q @ s + qubo.offset for s in states.astype(float)])
    return states, energies


def random_qubo(n, seed):
    rng = np.random.default_rng(seed)
    return q.QUBO(rng.normal(size=(n, n)), float(rng.normal()))


def random_mrmr(n, k, seed, alpha=0.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, n))
    X[:, 1:4] += X[:, [0]]                        # redundant block
    y = (X[:, 0] + 0.5 * X[:, 5] + 0.3 * rng.normal(size=200) > 0).astype(int)
    r, R = q.relevance_redundancy(X, y, seed=seed)
    return q.mrmr_qubo(r, R, k, alpha)


# ---------------------------------------------------------------------------------------------
# exact search
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 5, 9, 13, 14])
def test_exact_solve_equals_brute_force(n):
    qubo = random_qubo(n, seed=n)
    states, energies = brute_force(qubo)
    res = q.exact_solve(qubo)
    assert res.energy == pytest.approx(energies.min(), abs=1e-9)
    assert qubo.energy(res.x) == pytest.approx(energies.min(), abs=1e-9)
    assert res.n_states == 2**n


@pytest.mark.parametrize("n", [6, 13])
def test_exact_energies_in_code_order_and_constrained_minimum(n):
    qubo = random_qubo(n, seed=100 + n)
    states, energies = brute_force(qubo)
    codes = (states * (1 << np.arange(n))).sum(axis=1)     # bit i of the code is x_i
    ours = q.exact_energies(qubo)
    np.testing.assert_allclose(ours[codes], energies, atol=1e-9)
    for k in (0, 2, n):
        mask = states.sum(axis=1) == k
        res = q.exact_solve(qubo, k=k)
        assert res.x.sum() == k
        assert res.energy == pytest.approx(energies[mask].min(), abs=1e-9)


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
# simulated bifurcation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", q.SB_MODES)
def test_sb_is_reproducible_by_seed(mode):
    problem = random_mrmr(30, 6, seed=2)
    a = q.simulated_bifurcation(problem, mode, n_agents=8, max_steps=300, seed=4, num_threads=1)
    b = q.simulated_bifurcation(problem, mode, n_agents=8, max_steps=300, seed=4, num_threads=1)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.energy == b.energy and a.steps == b.steps
    glass = q.Ising(np.random.default_rng(0).normal(size=(30, 30)), np.zeros(30))
    d = q.simulated_bifurcation(glass, mode, n_agents=8, max_steps=1, seed=4, num_threads=1)
    e = q.simulated_bifurcation(glass, mode, n_agents=8, max_steps=1, seed=5, num_threads=1)
    assert not np.array_equal(d.samples, e.samples)     # different seeds start elsewhere
    assert a.samples.shape == (8, 30) and set(np.unique(a.samples)) <= {0, 1}


def test_sb_energies_are_the_qubo_energies_of_its_samples():
    problem = random_mrmr(20, 5, seed=9)
    res = q.simulated_bifurcation(problem, n_agents=16, seed=0)
    np.testing.assert_allclose(res.energies, problem.energy(res.samples))
    assert res.energy == res.energies.min()
    np.testing.assert_array_equal(res.x, res.samples[np.argmin(res.energies)])


def test_discrete_sb_solves_a_small_spin_glass_exactly():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(14, 14))
    ising = q.Ising((A + A.T) / 2, np.zeros(14))
    res = q.simulated_bifurcation(ising, "discrete", n_agents=32, seed=0)
    assert res.energy == pytest.approx(q.exact_solve(ising).energy, abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_sb_with_swaps_finds_the_exact_mrmr_optimum(seed):
    problem = fx.random_instance(fx.instance_seed(12345, seed))
    x = fx.run_solver("bsb+swap", problem, seed=seed).x
    assert problem.energy(x) == pytest.approx(q.exact_solve(problem).energy, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# swap polish and baselines
# ---------------------------------------------------------------------------------------------
def test_swap_polish_returns_feasible_local_optima():
    problem = random_mrmr(15, 5, seed=21)
    X = np.random.default_rng(0).integers(0, 2, size=(10, 15))
    P = q.swap_polish(problem, X)
    assert np.all(P.sum(axis=1) == 5)
    for x in P:                        # no single swap improves any row
        f = problem.objective_value(x)
        for i in np.flatnonzero(x):
            for j in np.flatnonzero(x == 0):
                y = x.copy()
                y[i], y[j] = 0, 1
                assert problem.objective_value(y) >= f - 1e-12


def test_greedy_mrmr_and_top_k():
    problem = random_mrmr(12, 4, seed=8, alpha=0.5)
    g = q.greedy_mrmr(problem)
    assert g[0] == np.argmax(problem.relevance) and len(set(g)) == 4
    # the second pick maximises relevance minus redundancy with the first
    score = 0.5 * problem.relevance - 0.5 * problem.redundancy[g[0]]
    score[g[0]] = -np.inf
    assert g[1] == np.argmax(score)
    top = q.mi_top_k(problem.relevance, 3)
    np.testing.assert_array_equal(top, np.argsort(-problem.relevance, kind="stable")[:3])


def test_simplex_projection_and_the_seed_routine():
    v = np.random.default_rng(0).normal(size=(5, 9)) * 3
    P = q.project_simplex(v, 4.0)
    np.testing.assert_allclose(P.sum(axis=1), 4.0)
    assert np.all(P >= 0)
    # optimality: P = max(v - theta, 0) with one theta per row
    for p, row in zip(P, v):
        theta = (row - p)[p > 0]
        np.testing.assert_allclose(theta, theta[0])
        assert np.all(row[p == 0] <= theta[0] + 1e-12)
    problem = random_mrmr(12, 4, seed=1)
    picks = q.momentum_simplex(problem, seed=0)
    assert len(set(picks)) == 4
    np.testing.assert_array_equal(picks, q.momentum_simplex(problem, seed=0))


def test_l1_path_and_relevance_estimates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8))
    X[:, 7] = 1.0                                   # constant column
    y = (X[:, 0] - X[:, 1] + 0.2 * rng.normal(size=400) > 0).astype(int)
    r, R = q.relevance_redundancy(X, y, seed=0)
    assert set(np.argsort(-r)[:2]) == {0, 1}
    assert np.allclose(R, R.T) and np.all(np.diag(R) == 0) and R.max() <= 1
    assert np.all(R[7] == 0)
    _, Rmi = q.relevance_redundancy(X[:, :4], y, redundancy="mi", seed=0)
    assert np.allclose(Rmi, Rmi.T) and Rmi.shape == (4, 4)
    path = q.l1_logistic_path(X, y, [1, 2, 5])
    assert set(path[2]) == {0, 1} and all(len(path[k]) == k for k in (1, 2, 5))


def test_wilson_interval():
    lo, hi = fx.wilson_interval(100, 100)
    assert hi == pytest.approx(1.0) and 0.96 < lo < 0.97
    lo, hi = fx.wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.27 < hi < 0.29


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
    with pytest.raises(ParameterError, match="^n_agents = 0"):
        q.simulated_bifurcation(problem, n_agents=0)
    with pytest.raises(ParameterError, match="^mode = "):
        q.simulated_bifurcation(problem, mode="quantum")
    big = q.QUBO(np.zeros((25, 25)))
    with pytest.raises(ParameterError, match="^n = 25 .*<= 24"):
        q.exact_solve(big)
    with pytest.raises(ParameterError, match="^n = 25"):
        q.exact_energies(big)
    with pytest.raises(ParameterError, match="^ks = 4"):
        q.l1_logistic_path(np.zeros((10, 3)), np.arange(10) % 2, [4])
    with pytest.raises(ParameterError, match="^n_agents = "):
        fx.run_solver("bsb", problem, n_agents=0)
    with pytest.raises(ParameterError, match="^alpha = "):
        fx.optimality_study(2, n_seeds=1, alpha=2.0)
    with pytest.raises(ParameterError, match="^x = "):
        problem.energy([0, 1, 2, 0, 0])
