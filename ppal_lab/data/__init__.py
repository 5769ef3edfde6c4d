"""Seeded data sets for the compendium: two synthetic supply chains and three small real data sets.

Every generator draws all of its randomness from one ``np.random.default_rng(seed)``, so the same
arguments always give identical data, and every array operation is vectorised over items.

* :func:`make_remanufacturing` — used automotive transmissions seen by four parties (OEM, fleet
  operator, dismantler, testing facility); the label says whether an item can be remanufactured at a
  profit. The test bench is exposed as :func:`bench_forward` so that the verification chapter can use
  exactly the same forward model.
* :func:`make_magnet_grades` — end-of-life hard drives, a few percent labelled with whether their
  voice-coil magnets are high grade, most feature values missing (MCAR, MAR or MNAR) and quarterly drift.
* :func:`load_sklearn` — breast cancer, digits and wine from scikit-learn, in the same container.
* :func:`horizontal_partition` / :func:`vertical_partition` — split items across sites, or features
  across parties.

All of them return (or take) a :class:`SupplyChainData`; :func:`load_dataset` dispatches by name.
:mod:`ppal_lab.data.describe` holds the descriptive statistics the data chapters show.

Modules: ``supply_chain_data`` (the container), ``remanufacturing``, ``magnet``, ``loaders``,
``partition``, ``describe``. Any room may import this one (``from ppal_lab import data as D``,
``from ppal_lab.data import SupplyChainData``); it imports only ``ppal_lab.compendium.errors``.
"""
from __future__ import annotations

from ppal_lab.data.loaders import DATASETS, SKLEARN_DATASETS, load_dataset, load_sklearn
from ppal_lab.data.magnet import MAGNET_MIN_FEATURES, MAGNET_PARTIES, MISSING_MECHANISMS, make_magnet_grades
from ppal_lab.data.partition import horizontal_partition, vertical_partition
from ppal_lab.data.remanufacturing import (BENCH_COLUMNS, BENCH_NOISE_SD, REMANUFACTURING_PARTIES,
                                           bench_forward, make_remanufacturing)
from ppal_lab.data.supply_chain_data import SupplyChainData

__all__ = [
    "BENCH_COLUMNS", "BENCH_NOISE_SD", "DATASETS", "MAGNET_MIN_FEATURES", "MAGNET_PARTIES",
    "MISSING_MECHANISMS", "REMANUFACTURING_PARTIES", "SKLEARN_DATASETS", "SupplyChainData",
    "bench_forward", "horizontal_partition", "load_dataset", "load_sklearn", "make_magnet_grades",
    "make_remanufacturing", "vertical_partition",
]
