"""Split a data set across sites (items, optionally non-IID) or across parties (features).

Horizontal partitions feed the federated chapters; vertical partitions the secure-computation ones.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_range
from ppal_lab.data.supply_chain_data import SupplyChainData

__all__ = ["horizontal_partition", "vertical_partition"]


def _check_data(data: Any) -> SupplyChainData:
    if not isinstance(data, SupplyChainData):
        raise ParameterError("data", type(data).__name__, "a SupplyChainData")
    return data



def horizontal_partition(data: SupplyChainData, n_sites: int = 4, non_iid: float = 0.5, seed: int = 0,
                         by: str = "label") -> list[np.ndarray]:
    """Split items across ``n_sites`` sites, optionally non-IID.

    Items are grouped into strata — the label (``by="label"``) or a column of ``data.meta`` such as
    the fleet ``"operator"``. Stratum ``c`` is spread over the sites with proportions
    ``p_c = (1 - non_iid) / n_sites + non_iid * q_c`` where ``q_c ~ Dirichlet(1, ..., 1)``, so
    ``non_iid = 0`` gives stratified equal splits and ``non_iid = 1`` strongly skewed ones. Counts per
    site are the rounded cumulative proportions, after a random shuffle within each stratum. If a site
    ends up empty, it takes one item from the largest site.

    Parameters
    ----------
    data : SupplyChainData
        The data set to split.
    n_sites : int, default 4
        Number of sites, in [1, n_items].
    non_iid : float, default 0.5
        Degree of label (or stratum) skew, in [0, 1].
    seed : int, default 0
        Seed of the split, >= 0.
    by : str, default "label"
        ``"label"`` or the name of a column of ``data.meta``.

    Returns
    -------
    list of numpy.ndarray
        One sorted int64 index array per site; together they cover every item exactly once. Use
        ``data.subset(idx)`` for the per-site data set.
    """
    data = _check_data(data)
    n_sites = check_int("n_sites", n_sites, 1, data.n_items)
    check_range("non_iid", non_iid, 0, 1)
    seed = check_int("seed", seed, 0)
    check_choice("by", by, ["label", *map(str, data.meta.columns)])
    rng = np.random.default_rng(seed)

    strata = np.asarray(data.y) if by == "label" else data.meta[by].to_numpy()
    _, stratum = np.unique(strata, return_inverse=True)
    n_strata = stratum.max() + 1
    props = (1 - non_iid) / n_sites + non_iid * rng.dirichlet(np.ones(n_sites), size=n_strata)
    # Shuffle, then sort by stratum: each stratum becomes a contiguous, randomly ordered run.
    order = np.lexsort((rng.random(data.n_items), stratum))
    sizes = np.bincount(stratum, minlength=n_strata)
    bounds = np.round(np.cumsum(props, axis=1) * sizes[:, None]).astype(np.int64)   # (strata, sites)
    position = np.arange(data.n_items) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    site_sorted = (position[:, None] >= bounds[stratum[order]]).sum(axis=1)
    site = np.empty(data.n_items, dtype=np.int64)
    site[order] = np.minimum(site_sorted, n_sites - 1)

    for empty in np.flatnonzero(np.bincount(site, minlength=n_sites) == 0):   # at most n_sites passes
        donor = np.argmax(np.bincount(site, minlength=n_sites))
        site[rng.choice(np.flatnonzero(site == donor))] = empty
    return [np.flatnonzero(site == s) for s in range(n_sites)]


def vertical_partition(data: SupplyChainData) -> dict[str, pd.DataFrame]:
    """Each party's block of feature columns for all items, in the same row order.

    Returns
    -------
    dict
        Party name (in :attr:`SupplyChainData.parties` order) -> DataFrame of that party's columns.
    """
    data = _check_data(data)
    return {party: data.X[data.features_of(party)] for party in data.parties}
