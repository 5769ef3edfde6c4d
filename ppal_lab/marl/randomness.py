"""Identical external randomness for MADDPG runs: one independent NumPy stream per purpose.

Every random draw outside a learner's arithmetic (weights, initial states and demand noise per phase,
exploration noise, minibatch indices, random-policy actions) comes from :class:`ExternalRandomness`,
seeded only by the run's seed and consumed in an order that does not depend on the mode. Runs of
different modes with the same seed therefore meet the same draws step by step, and a secure two-party
run can replay them by building the same object from the same seed (seed 002, Appendix E: both players
sample the *same* minibatch rows).
"""
from __future__ import annotations

import numpy as np

from ppal_lab.compendium.errors import check_choice, check_int
from ppal_lab.marl.supply_game import ACT_DIM, N_INIT

__all__ = ["ExternalRandomness", "PHASES", "STREAMS"]

PHASES = ("pretrain", "real", "eval")
STREAMS = ("weights", "init_pretrain", "demand_pretrain", "init_real", "demand_real", "init_eval",
           "demand_eval", "noise", "batch", "random_policy")

class ExternalRandomness:
    """All draws a training run needs besides its arithmetic, one independent stream per purpose.

    Built from the run's seed alone, so any process (a plaintext run in another mode, or a secure run's
    parties) that builds it from the same seed and asks in the same order gets the same numbers. With
    ``record=True`` every draw is kept in :attr:`log` (stream name → list of arrays).
    """

    def __init__(self, seed: int, record: bool = False):
        check_int("seed", seed, 0, 2**32 - 1)
        children = np.random.SeedSequence(int(seed)).spawn(len(STREAMS))
        self.seed = int(seed)
        self._gen = {name: np.random.Generator(np.random.PCG64(ss)) for name, ss in zip(STREAMS, children)}
        self.record = record
        self.log: dict[str, list[np.ndarray]] = {name: [] for name in STREAMS}

    def _keep(self, name: str, x: np.ndarray) -> np.ndarray:
        if self.record:
            self.log[name].append(np.array(x, copy=True))
        return x

    def weights(self, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform(-1, 1) draws; the learner scales them to each layer's initialisation bound."""
        return self._keep("weights", self._gen["weights"].uniform(-1.0, 1.0, size=shape))

    def initial(self, phase: str, n: int) -> np.ndarray:
        """``(n, 6)`` uniform draws for :func:`ppal_lab.marl.supply_game.initial_obs`."""
        check_choice("phase", phase, PHASES)
        return self._keep(f"init_{phase}", self._gen[f"init_{phase}"].random((n, N_INIT)))

    def demand(self, phase: str, n: int) -> np.ndarray:
        """``(n,)`` standard-normal demand shocks for one step of ``n`` episodes."""
        check_choice("phase", phase, PHASES)
        return self._keep(f"demand_{phase}", self._gen[f"demand_{phase}"].standard_normal(n))

    def action_noise(self, n: int) -> np.ndarray:
        """``(n, 2 players, 2)`` standard-normal exploration noise (scaled by the learner)."""
        return self._keep("noise", self._gen["noise"].standard_normal((n, 2, ACT_DIM)))

    def minibatch(self, size: int, batch: int) -> np.ndarray:
        """``batch`` row indices drawn uniformly, with replacement, from a buffer holding ``size`` rows."""
        return self._keep("batch", self._gen["batch"].integers(0, size, batch))

    def random_actions(self, n: int) -> np.ndarray:
        """``(n, 2, 2)`` uniform actions in [0, 1] units for the random-policy baseline."""
        return self._keep("random_policy", self._gen["random_policy"].random((n, 2, ACT_DIM)))
