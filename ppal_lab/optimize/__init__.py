"""Optimisation for feature selection: the mRMR "select k" problem as a QUBO, and its solvers.

* :mod:`~ppal_lab.optimize.qubo` — QUBO and Ising models, the cardinality penalty and its bound, the
  mRMR problem (:func:`mrmr_qubo`) and its relevance/redundancy inputs;
* :mod:`~ppal_lab.optimize.bifurcation` — ballistic and discrete simulated bifurcation;
* :mod:`~ppal_lab.optimize.exact` — exhaustive search for ``n <= 24``;
* :mod:`~ppal_lab.optimize.local_search` — swap polishing, single-flip descent and Peng's greedy mRMR;
* :mod:`~ppal_lab.optimize.instances` — instance families with known optima (Wishart planted, SK,
  densest subgraph) and a branch and bound that certifies "select k" optima;
* :mod:`~ppal_lab.optimize.tts` — time to target (TTS99), success probability, residual energy;
* :mod:`~ppal_lab.optimize.baselines` — MI top-k, the L1 logistic path and the seed's momentum-simplex
  routine.

Who may import it: ``chapters`` (and tests and benchmarks). It imports only the compendium's ``errors``
(and no other room).
"""
from ppal_lab.optimize.baselines import l1_logistic_path, mi_top_k, momentum_simplex, project_simplex
from ppal_lab.optimize.bifurcation import SB_MODES, SBResult, simulated_bifurcation
from ppal_lab.optimize.exact import MAX_EXACT_N, ExactResult, exact_energies, exact_solve
from ppal_lab.optimize.local_search import flip_polish, greedy_mrmr, swap_polish
from ppal_lab.optimize.qubo import (QUBO, REDUNDANCY_MEASURES, Ising, MRMRProblem, cardinality_penalty,
                                    indices_to_x, mrmr_qubo, penalty_bound, relevance_redundancy)

__all__ = [
    "ExactResult", "Ising", "MAX_EXACT_N", "MRMRProblem", "QUBO", "REDUNDANCY_MEASURES", "SBResult",
    "SB_MODES", "cardinality_penalty", "exact_energies", "exact_solve", "flip_polish", "greedy_mrmr",
    "indices_to_x",
    "l1_logistic_path", "mi_top_k", "momentum_simplex", "mrmr_qubo", "penalty_bound", "project_simplex",
    "relevance_redundancy", "simulated_bifurcation", "swap_polish",
]
