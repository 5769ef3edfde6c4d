"""Simulated bifurcation: reproducible by seed, energies of its samples, exact on a small glass."""
import numpy as np
import pytest

from ppal_lab import optimize as q
from ppal_lab.compendium.errors import ParameterError

from qubo_cases import random_mrmr  # noqa: E402  (tests/optimize/qubo_cases.py)


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


def test_bad_input_is_rejected_with_the_parameter_named():
    r, R = np.ones(5), np.zeros((5, 5))
    problem = q.mrmr_qubo(r, R, 2)
    with pytest.raises(ParameterError, match="^n_agents = 0"):
        q.simulated_bifurcation(problem, n_agents=0)
    with pytest.raises(ParameterError, match="^mode = "):
        q.simulated_bifurcation(problem, mode="quantum")
