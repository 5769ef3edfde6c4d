"""What several chapters' specs share: the seed parameter, data-dependent sizes (constants, checked
against the real loaders by a test) and constraint builders."""
from __future__ import annotations

from ppal_lab.compendium.params import Constraint, Param

SEED = Param("seed", int, 0, "seed of every random draw in the notebook", low=0, high=2**32 - 1)

#: Items in scikit-learn's bundled data sets (``ppal_lab.data.load_sklearn``).
SKLEARN_SIZES = {"breast_cancer": 569, "digits": 1797, "wine": 178}

#: Steps of one episode of the supply-chain game (``ppal_lab.marl.supply_game.GameConfig().horizon``).
GAME_HORIZON = 40



def seeds_fit(*counts: str) -> Constraint:
    """Repeats use seeds ``seed .. seed + n - 1``: each must be a 32-bit seed like ``seed`` itself
    (scikit-learn and the MADDPG learners refuse larger ones, deep inside a run)."""
    last = lambda v: max(v[c] for c in counts)  # noqa: E731
    return Constraint(("seed", *counts), lambda v: v["seed"] + last(v) - 1 <= 2**32 - 1,
                      lambda v: f"<= {2**32 - last(v)} so that the last repeat's seed, seed + "
                                f"{' / '.join(counts)} - 1, stays <= 2**32 - 1")
