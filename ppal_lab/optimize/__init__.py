"""QUBO models and their solvers: the mRMR feature-selection QUBO, simulated bifurcation, exact
enumeration, swap polishing and the peers it is compared with (``qubo``).

Who may import it: ``chapters``. It imports only the compendium's ``errors`` and ``paths``.
"""
