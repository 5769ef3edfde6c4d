"""Exhaustive search: every state, in code order, with and without the cardinality constraint."""
import numpy as np
import pytest

from ppal_lab import optimize as q
from ppal_lab.compendium.errors import ParameterError

from qubo_cases import brute_force, random_qubo  # noqa: E402  (tests/optimize/qubo_cases.py)


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


def test_bad_input_is_rejected_with_the_parameter_named():
    big = q.QUBO(np.zeros((25, 25)))
    with pytest.raises(ParameterError, match="^n = 25 .*<= 24"):
        q.exact_solve(big)
    with pytest.raises(ParameterError, match="^n = 25"):
        q.exact_energies(big)
