"""Small real data sets shipped with scikit-learn, and every data set of the compendium by name.

:func:`load_sklearn` puts breast cancer, digits and wine (bundled, no download) in the common
:class:`~ppal_lab.data.supply_chain_data.SupplyChainData` container; :func:`load_dataset` dispatches
any name of :data:`DATASETS` to its generator or loader.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
import pandas as pd

from ppal_lab.compendium.errors import check_choice, check_int
from ppal_lab.data.magnet import make_magnet_grades
from ppal_lab.data.remanufacturing import make_remanufacturing
from ppal_lab.data.supply_chain_data import SupplyChainData

__all__ = ["DATASETS", "SKLEARN_DATASETS", "load_dataset", "load_sklearn"]

DATASETS = ("remanufacturing", "magnet", "breast_cancer", "digits", "wine")
SKLEARN_DATASETS = ("breast_cancer", "digits", "wine")


def load_sklearn(name: str, n_parties: int = 4) -> SupplyChainData:
    """A small real data set from scikit-learn (bundled, no download) in the common container.

    ``breast_cancer`` (569 x 30, binary: 1 = benign), ``digits`` (1797 x 64, ten classes) and ``wine``
    (178 x 13, three classes). Multiclass labels are kept as they are. Features are split into
    ``n_parties`` contiguous blocks owned by pseudo-parties ``party_0 ...``; nothing is categorical,
    ``latent`` is ``None`` and every item is labelled.

    Parameters
    ----------
    name : {"breast_cancer", "digits", "wine"}
        Which data set.
    n_parties : int, default 4
        Number of pseudo-parties, in [1, number of features].
    """
    from sklearn import datasets

    check_choice("name", name, SKLEARN_DATASETS)
    bunch = getattr(datasets, f"load_{name}")()
    names = [str(c) for c in bunch.feature_names]
    n_parties = check_int("n_parties", n_parties, 1, len(names))
    X = pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=names)
    blocks = np.array_split(np.arange(len(names)), n_parties)
    party_of = {names[j]: f"party_{p}" for p, block in enumerate(blocks) for j in block}
    n = len(X)
    return SupplyChainData(
        name=name, X=X, y=np.asarray(bunch.target, dtype=np.int64), feature_names=tuple(names),
        categorical=(), party_of=party_of, latent=None, meta=pd.DataFrame(index=pd.RangeIndex(n)),
        labelled=np.ones(n, dtype=bool))


def load_dataset(name: str, seed: int = 0, **kwargs: Any) -> SupplyChainData:
    """Any data set of :data:`DATASETS` by name.

    ``seed`` and ``kwargs`` go to the generator (:func:`make_remanufacturing`,
    :func:`make_magnet_grades`) or to :func:`load_sklearn`, whose data are fixed and ignore ``seed``.
    An unknown keyword raises :class:`ParameterError`.
    """
    check_choice("name", name, DATASETS)
    factories: dict[str, Callable[..., SupplyChainData]] = {
        "remanufacturing": make_remanufacturing, "magnet": make_magnet_grades}
    factory = factories.get(name, load_sklearn)
    accepted = set(inspect.signature(factory).parameters) - {"name", "seed"}
    for key in kwargs:
        check_choice("keyword argument", key, sorted(accepted))
    if name in SKLEARN_DATASETS:
        check_int("seed", seed, 0)
        return load_sklearn(name, **kwargs)
    return factory(seed=seed, **kwargs)
