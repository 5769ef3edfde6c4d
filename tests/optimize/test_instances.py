"""Instance families with known optima: the planted state is a ground state, SK approaches Parisi's
energy, and branch and bound finds the constrained optimum that exhaustive search finds."""
import numpy as np
import pytest

from ppal_lab import optimize as q
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.optimize import instances as inst

from qubo_cases import brute_force, random_mrmr  # noqa: E402  (tests/optimize/qubo_cases.py)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_planted_state_is_a_ground_state_by_brute_force(alpha, seed):
    p = inst.wishart_planted(12, alpha, seed)
    states, energies = brute_force(p.qubo)
    assert p.energy == pytest.approx(energies.min(), abs=1e-9)
    assert p.qubo.energy(p.x) == pytest.approx(p.energy, abs=1e-9)
    best = states[energies <= energies.min() + 1e-9]
    # the ground states are t and -t (and, for Gaussian columns, nothing else)
    assert {tuple(b) for b in best} == {tuple(p.x), tuple(1 - p.x)}


def test_planted_energy_is_not_reached_by_a_random_state():
    p = inst.wishart_planted(200, 0.5, 3)
    s = np.random.default_rng(0).choice([-1, 1], size=(50, 200))
    assert (p.ising.energy(s) > p.energy + 1.0).all()


def test_sk_ground_state_per_spin_nears_parisi_and_lies_above_it():
    e = [q.exact_solve(inst.sk_instance(20, seed)).energy / 20 for seed in range(4)]
    assert inst.PARISI_E0 < np.mean(e) < inst.PARISI_E0 + 0.2
    # couplings of variance 1/n: H = -sum_{i<j} J_ij s_i s_j
    ising = inst.sk_instance(400, 0)
    assert np.std(-2.0 * ising.J[np.triu_indices(400, 1)]) * np.sqrt(400) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("n,k,seed", [(12, 3, 0), (16, 5, 1), (18, 9, 2)])
def test_branch_and_bound_equals_exhaustive_search(n, k, seed):
    for problem in (random_mrmr(n, k, seed), inst.densest_subgraph(n, k, 0.4, seed)):
        res = inst.cardinality_branch_and_bound(problem)
        ref = q.exact_solve(problem.objective, k=k)
        assert res.certified and res.x.sum() == k
        assert res.energy == pytest.approx(ref.energy, abs=1e-9)
        assert problem.objective.energy(res.x) == pytest.approx(res.energy, abs=1e-9)


def test_branch_and_bound_on_a_general_qubo_and_an_incumbent():
    rng = np.random.default_rng(5)
    qubo = q.QUBO(rng.normal(size=(14, 14)), 0.3)
    for k in (0, 1, 4, 14):
        states, energies = brute_force(qubo)
        ref = energies[states.sum(axis=1) == k].min()
        assert inst.cardinality_branch_and_bound(qubo, k).energy == pytest.approx(ref, abs=1e-9)
    start = q.indices_to_x([0, 1, 2, 3], 14)
    assert inst.cardinality_branch_and_bound(qubo, 4, incumbent=start).energy == pytest.approx(
        energies[states.sum(axis=1) == 4].min(), abs=1e-9)


def test_branch_and_bound_out_of_nodes_is_not_certified():
    problem = inst.densest_subgraph(40, 10, 0.5, 0)
    res = inst.cardinality_branch_and_bound(problem, max_nodes=5)
    assert not res.certified


def test_densest_subgraph_counts_edges():
    problem = inst.densest_subgraph(10, 4, 0.5, 7)
    res = q.exact_solve(problem.objective, k=4)
    comp = problem.redundancy > 0          # complement graph (scaled to 1)
    sel = np.flatnonzero(res.x)
    assert comp[np.ix_(sel, sel)].sum() / 2 == pytest.approx(res.energy * 3 / 2)


def test_bad_input_is_rejected_with_the_parameter_named():
    with pytest.raises(ParameterError, match="^alpha = 0"):
        inst.wishart_planted(10, 0.0)
    with pytest.raises(ParameterError, match="^n = 1"):
        inst.sk_instance(1)
    with pytest.raises(ParameterError, match="^k = 10"):
        inst.densest_subgraph(10, 10)
    with pytest.raises(ParameterError, match="^incumbent"):
        inst.cardinality_branch_and_bound(random_mrmr(10, 3, 0), incumbent=np.ones(10))


def scip_cardinality_optimum(qubo, k):
    """min x^T Q x + offset subject to sum(x) = k, solved by SCIP on the standard linearisation
    (y_ij = x_i x_j through y >= x_i + x_j - 1, y <= x_i, y <= x_j): an independent exact solver."""
    pyscipopt = pytest.importorskip("pyscipopt")
    Q, n = qubo.Q, qubo.n
    m = pyscipopt.Model()
    m.hideOutput()
    x = [m.addVar(vtype="B") for _ in range(n)]
    obj = pyscipopt.quicksum(Q[i, i] * x[i] for i in range(n))
    for i in range(n):
        for j in range(i + 1, n):
            if Q[i, j] != 0.0:
                y = m.addVar(lb=0.0, ub=1.0)
                m.addCons(y >= x[i] + x[j] - 1)
                m.addCons(y <= x[i])
                m.addCons(y <= x[j])
                obj += 2.0 * Q[i, j] * y
    m.addCons(pyscipopt.quicksum(x) == k)
    m.setObjective(obj, "minimize")
    m.optimize()
    assert m.getStatus() == "optimal"
    return m.getObjVal() + qubo.offset


@pytest.mark.slow
@pytest.mark.parametrize("n,k,seed", [(36, 6, 3), (40, 10, 4)])
def test_branch_and_bound_certificates_agree_with_scip_beyond_exhaustive_reach(n, k, seed):
    """C(40, 10) = 8.5e8 subsets: past brute force, so the certificate is checked against SCIP."""
    for problem in (random_mrmr(n, k, seed), inst.densest_subgraph(n, k, 0.3, seed)):
        res = inst.cardinality_branch_and_bound(problem)
        assert res.certified
        assert res.energy == pytest.approx(scip_cardinality_optimum(problem.objective, k), abs=1e-6)
