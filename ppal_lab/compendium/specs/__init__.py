"""The registry of notebooks and their parameters (pure data: no algorithms are imported here).

Each spec also declares the :class:`~ppal_lab.compendium.params.Constraint` s its notebook needs between
parameters: the checks its code makes at run time and the combinations that would crash it, so a bad
combination is refused before any kernel starts. Data-dependent limits use the constants below, not the
data (a test compares them with the real loaders).

One module per notebook (``specs/chNN_name.py``) declares its spec and registers it; ``common``
holds what several share. The package is pure data: no algorithm of the field is imported here.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.params import NotebookSpec
from ppal_lab.compendium.specs import (  # noqa: F401  (each registers its spec)
    ch01_supply_chain_data,
    ch02_active_learning,
    ch03_sparsity,
    ch04_continual_learning,
    ch05_qubo_feature_selection,
    ch06_secret_sharing,
    ch07_supply_chain_maddpg,
    ch08_secure_maddpg,
    ch09_inverse_simulation,
    ch10_adversarial_participants,
    ch11_secure_infrastructure,
)
from ppal_lab.compendium.specs.common import GAME_HORIZON, SEED, SKLEARN_SIZES, seeds_fit  # noqa: F401
from ppal_lab.compendium.specs.registry import SPECS, register  # noqa: F401


def resolve(name: str) -> NotebookSpec:
    """Find a notebook by its full name, with or without ``.ipynb``, or by an unambiguous part of it
    (its number ``01`` or a word ``data``)."""
    key = name[:-6] if name.endswith(".ipynb") else name
    key = key.rsplit("/", 1)[-1]
    if key in SPECS:
        return SPECS[key]
    hits = [n for n in SPECS if n.split("_", 1)[0] == key or n.split("_", 1)[-1] == key]
    if not hits:
        hits = [n for n in SPECS if key and key in n]
    if len(hits) == 1:
        return SPECS[hits[0]]
    allowed = "one of " + ", ".join(SPECS) if not hits else "unambiguous among " + ", ".join(hits)
    raise ParameterError("notebook", name, allowed)


def get_spec(name: str) -> NotebookSpec:
    return resolve(name)


def validate_notebook(name: str, namespace: Mapping[str, Any]) -> SimpleNamespace:
    """Validate a notebook's parameters as they stand in its namespace (call it after the
    ``parameters`` cell: ``P = validate_notebook("01_supply_chain_data", globals())``)."""
    spec = get_spec(name)
    values = {p.name: namespace[p.name] for p in spec.params if p.name in namespace}
    return SimpleNamespace(**spec.validate(values))

