"""Every solver of the QUBO comparison behind one call, with settings fixed by rules declared here.

:func:`solver_samples` runs one solver once on a QUBO (or an MRMRProblem's penalised QUBO) and returns
one 0/1 row per agent, read or start. The rules, fixed before any comparison was run:

* ``bsb``/``dsb`` — our ballistic/discrete simulated bifurcation, ``n_agents`` agents, ``max_steps``.
* ``sbpkg-ballistic``, ``sbpkg-discrete``, ``sbpkg-heated`` — the ``simulated-bifurcation`` package
  (its three variants; heated = discrete with heating), the same agents, ``pkg_max_steps`` (its
  library default 10000) with its own early stopping, float32.
* ``sa`` — D-Wave's SimulatedAnnealingSampler, ``n_agents`` reads (one per SB agent) of ``sa_sweeps``
  sweeps; its β range is D-Wave's default rule applied to the problem **without** a cardinality
  penalty (the objective of an MRMRProblem; the whole QUBO otherwise), so that the penalty's large
  field does not set the hot temperature.
* ``tabu`` — D-Wave's TabuSampler, ``n_agents`` reads of ``tabu_timeout_ms`` each.
* ``random`` — ``n_agents`` random 0/1 vectors (ones with probability ``k/n`` for "select k").
* ``greedy`` — Peng's greedy mRMR (one start; "select k" problems only).

Polishing (the same for every solver or for none) is the caller's: :func:`polish` applies swap
polishing to "select k" problems and single-flip descent to the others.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int
from ppal_lab.optimize.bifurcation import simulated_bifurcation
from ppal_lab.optimize.local_search import flip_polish, greedy_mrmr, swap_polish
from ppal_lab.optimize.qubo import QUBO, Ising, MRMRProblem, _as_qubo, indices_to_x

__all__ = ["POLISHES", "SOLVERS", "polish", "solver_samples"]

SOLVERS = ("bsb", "dsb", "sbpkg-ballistic", "sbpkg-discrete", "sbpkg-heated", "sa", "tabu", "random",
           "greedy")
POLISHES = ("none", "local")


def _order(sampleset, n: int) -> np.ndarray:
    cols = [list(sampleset.variables).index(i) for i in range(n)]
    return sampleset.record.sample[:, cols].astype(np.int8)


def solver_samples(name: str, problem: QUBO | Ising | MRMRProblem, *, n_agents: int = 32,
                   max_steps: int = 1000, pkg_max_steps: int = 10_000, sa_sweeps: int = 1000,
                   tabu_timeout_ms: int = 20, seed: int = 0) -> np.ndarray:
    """One run of solver ``name`` (see the module docstring): an int8 array (rows, n) of 0/1 states."""
    check_choice("solver", name, SOLVERS)
    qubo = _as_qubo(problem)
    n_agents = check_int("n_agents", n_agents, 1)
    max_steps = check_int("max_steps", max_steps, 1)
    pkg_max_steps = check_int("pkg_max_steps", pkg_max_steps, 1)
    sa_sweeps = check_int("sa_sweeps", sa_sweeps, 1)
    tabu_timeout_ms = check_int("tabu_timeout_ms", tabu_timeout_ms, 1)
    seed = check_int("seed", seed, 0, 2**31 - 1)
    n = qubo.n
    if name in ("bsb", "dsb"):
        mode = "ballistic" if name == "bsb" else "discrete"
        return simulated_bifurcation(qubo, mode, n_agents=n_agents, max_steps=max_steps, seed=seed).samples
    if name.startswith("sbpkg"):
        import simulated_bifurcation as sbp
        import torch

        torch.manual_seed(seed)
        variant = name.split("-")[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "no agent has converged": it still returns its spins
            x, _ = sbp.minimize(torch.as_tensor(qubo.Q), domain="binary",
                                mode="ballistic" if variant == "ballistic" else "discrete",
                                heated=variant == "heated", agents=n_agents, max_steps=pkg_max_steps,
                                best_only=False, verbose=False, dtype=torch.float32)
        return np.atleast_2d(x.numpy()).round().astype(np.int8)
    if name == "sa":
        from dwave.samplers import SimulatedAnnealingSampler
        from dwave.samplers.sa.sampler import default_beta_range

        rule = problem.objective if isinstance(problem, MRMRProblem) else qubo
        beta = default_beta_range(rule.to_bqm())
        ss = SimulatedAnnealingSampler().sample(qubo.to_bqm(), num_reads=n_agents, num_sweeps=sa_sweeps,
                                                beta_range=beta, seed=seed)
        return _order(ss, n)
    if name == "tabu":
        from dwave.samplers import TabuSampler

        ss = TabuSampler().sample(qubo.to_bqm(), num_reads=n_agents, timeout=tabu_timeout_ms, seed=seed)
        return _order(ss, n)
    if name == "random":
        rng = np.random.default_rng(seed)
        share = problem.k / n if isinstance(problem, MRMRProblem) else 0.5
        return (rng.random((n_agents, n)) < share).astype(np.int8)
    if not isinstance(problem, MRMRProblem):       # greedy
        raise ParameterError("solver", name, "a solver for this problem (greedy needs a 'select k' problem)")
    return indices_to_x(greedy_mrmr(problem), n)[None, :].astype(np.int8)


def polish(problem: QUBO | Ising | MRMRProblem, X: Any, how: str = "local") -> np.ndarray:
    """``how="local"``: swap polish for a "select k" problem, single-flip descent otherwise;
    ``"none"``: ``X`` unchanged (as int8 rows)."""
    check_choice("polish", how, POLISHES)
    X = np.atleast_2d(np.asarray(X)).astype(np.int8)
    if how == "none":
        return X
    if isinstance(problem, MRMRProblem):
        return swap_polish(problem, X)
    return flip_polish(problem, X)
