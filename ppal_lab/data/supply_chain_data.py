"""The container every data set of the compendium comes in: :class:`SupplyChainData`.

Features (with ``NaN`` for missing values), labels, which party holds which feature, the latent
variables that generated a synthetic set and per-item bookkeeping travel together, so that generators
(:mod:`ppal_lab.data.remanufacturing`, :mod:`ppal_lab.data.magnet`, :mod:`ppal_lab.data.loaders`),
partitions (:mod:`ppal_lab.data.partition`) and every chapter speak one format.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ppal_lab.compendium.errors import ParameterError, check_choice

__all__ = ["SupplyChainData"]


@dataclass(frozen=True)
class SupplyChainData:
    """One data set: features, labels, who owns which feature, and what generated it.

    The dataclass is frozen and ``y`` / ``labelled`` are read-only arrays; the DataFrames are not
    copied, so treat them as read-only too (use :meth:`subset` or ``.copy()`` to derive new data).

    Attributes
    ----------
    name : str
        Data set name (one of :data:`DATASETS`).
    X : pandas.DataFrame
        Observed features, all ``float64``; ``NaN`` marks a missing value. Categorical columns hold
        integer codes stored as floats. Rows are items ``0 .. n_items - 1``.
    y : numpy.ndarray
        True label of every item (``int64``), never missing. Binary except for digits and wine.
    feature_names : tuple of str
        Column order of ``X``.
    categorical : tuple of str
        Columns of ``X`` that hold nominal codes (one-hot encode them for linear models).
    party_of : dict
        Feature name -> name of the party that holds it (for vertical partitioning).
    latent : pandas.DataFrame or None
        Unobserved variables that generated the data (synthetic sets only), one row per item.
    meta : pandas.DataFrame
        Per-item bookkeeping that is not a feature (fleet operator, month, quarter, facility...).
    labelled : numpy.ndarray
        Boolean mask of items whose label is *observed*; all ``True`` unless the generator simulates
        scarce labels (magnet grades).
    X_complete : pandas.DataFrame or None
        The features before missing values were masked, for evaluation only; ``None`` when the data
        set has no simulated missingness.
    """

    name: str
    X: pd.DataFrame
    y: np.ndarray
    feature_names: tuple[str, ...]
    categorical: tuple[str, ...]
    party_of: dict[str, str]
    latent: pd.DataFrame | None
    meta: pd.DataFrame
    labelled: np.ndarray
    X_complete: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        n = len(self.X)
        if tuple(self.X.columns) != tuple(self.feature_names):
            raise ParameterError("feature_names", self.feature_names, "the column order of X")
        for name, value in (("y", self.y), ("labelled", self.labelled), ("meta", self.meta),
                            ("latent", self.latent), ("X_complete", self.X_complete)):
            if value is not None and len(value) != n:
                raise ParameterError(name, f"<{len(value)} rows>", f"{n} rows, like X")
        if set(self.party_of) != set(self.feature_names):
            raise ParameterError("party_of", sorted(self.party_of), "a party for every feature")
        if not set(self.categorical) <= set(self.feature_names):
            raise ParameterError("categorical", self.categorical, "a subset of feature_names")
        # Lock the label arrays: several experiments often share one data set object.
        self.y.flags.writeable = False
        self.labelled.flags.writeable = False

    @property
    def n_items(self) -> int:
        """Number of items (rows)."""
        return len(self.X)

    @property
    def parties(self) -> tuple[str, ...]:
        """Party names in order of their first feature."""
        return tuple(dict.fromkeys(self.party_of[f] for f in self.feature_names))

    @property
    def y_observed(self) -> np.ndarray:
        """Labels as a practitioner sees them: ``y`` where labelled, ``-1`` elsewhere."""
        return np.where(self.labelled, self.y, -1)

    def features_of(self, party: str) -> list[str]:
        """Feature names held by ``party``, in column order."""
        check_choice("party", party, self.parties)
        return [f for f in self.feature_names if self.party_of[f] == party]

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(X, y)`` as a float64 matrix (NaN for missing) and the true int64 labels."""
        return self.X.to_numpy(dtype=np.float64), np.asarray(self.y)

    def subset(self, index: np.ndarray) -> SupplyChainData:
        """The items at integer positions ``index`` as a new data set (rows renumbered from 0)."""
        idx = np.asarray(index)
        if idx.ndim != 1 or (idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0
                                          or idx.max() >= self.n_items)):
            raise ParameterError("index", index,
                                 f"a 1-D integer array with values in [0, {self.n_items})")

        def rows(frame: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if frame is None else frame.iloc[idx].reset_index(drop=True)

        return replace(self, X=rows(self.X), y=np.array(self.y[idx]), latent=rows(self.latent),
                       meta=rows(self.meta), labelled=np.array(self.labelled[idx]),
                       X_complete=rows(self.X_complete))
