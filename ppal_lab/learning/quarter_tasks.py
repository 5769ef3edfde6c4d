r"""The magnet data as quarterly tasks for continual learning: a frozen encoder for missing values,
and each quarter's labelled training drives, unlabelled pool and test drives.

**Labels.** The network trains on *labelled drives only* (supervised; the unlabelled 98% are used
for nothing but the encoder's statistics and, optionally, as an active-learning pool). Each quarter
contributes ``n_labels`` drives drawn uniformly from the drives the generator marked as labelled.

**Missing values.** :class:`MissingnessEncoder`: numeric columns are (for non-negative, right-skewed
columns) ``log1p``-transformed, standardised with the *first quarter's* observed mean and standard
deviation, clipped to ``[-8, 8]``, and a missing value is imputed by that mean (0 after
standardisation). Categorical columns are one-hot encoded over a fixed code book (a missing code is
all zeros). Every column also gets a 0/1 missingness indicator, so the network can tell an imputed 0
from an observed average value (under MCAR the indicators carry no label information; under MAR and
MNAR they can). The encoder is fitted once, before the first quarter, and then frozen so that a weight
always means the same input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import skew

from ppal_lab.compendium.errors import ParameterError, check_int
from ppal_lab.data import SupplyChainData

__all__ = ["MissingnessEncoder", "QuarterTasks", "make_quarter_tasks", "seed_of"]

_CLIP = 8.0


def seed_of(*parts: int) -> int:
    """A 63-bit seed derived from integers (seed, quarter, ...), independent across parts."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


# --------------------------------------------------------------------------------------------------
# Missing values: imputation + missingness indicators
# --------------------------------------------------------------------------------------------------
class MissingnessEncoder:
    """Mean imputation, standardisation, one-hot codes and a missingness indicator per column.

    Parameters
    ----------
    categorical : sequence of str
        Columns holding nominal codes (one-hot encoded).
    levels : dict, optional
        Code book: column -> the codes to one-hot encode. Columns not in it use the codes observed in
        the block passed to :meth:`fit`. Codes outside the book (and missing codes) encode as zeros.

    Notes
    -----
    A numeric column is ``log1p``-transformed when its observed values in the fitted block are all
    non-negative and their skewness exceeds 1 (counts, capacities, hours).
    """

    def __init__(self, categorical: Sequence[str] = (), levels: dict[str, Iterable[float]] | None = None):
        if isinstance(categorical, str) or not all(isinstance(c, str) for c in categorical):
            raise ParameterError("categorical", categorical, "a sequence of column names")
        if levels is not None and not isinstance(levels, dict):
            raise ParameterError("levels", type(levels).__name__, "a dict column -> codes, or None")
        self.categorical = tuple(categorical)
        self.levels = {k: tuple(float(v) for v in vals) for k, vals in (levels or {}).items()}
        self.columns_: tuple[str, ...] | None = None

    def fit(self, X: pd.DataFrame) -> MissingnessEncoder:
        """Learn the statistics of ``X`` (a DataFrame with NaN for missing values)."""
        if not isinstance(X, pd.DataFrame) or len(X) == 0:
            raise ParameterError("X", type(X).__name__, "a non-empty pandas.DataFrame")
        unknown = [c for c in self.categorical if c not in X.columns]
        if unknown:
            raise ParameterError("categorical", unknown, "columns of X")
        self.columns_ = tuple(X.columns)
        self.numeric_ = tuple(c for c in X.columns if c not in self.categorical)
        self.log_, self.mean_, self.scale_ = {}, {}, {}
        for c in self.numeric_:
            v = X[c].to_numpy(dtype=np.float64)
            v = v[np.isfinite(v)]
            use_log = bool(v.size > 2 and v.min() >= 0 and np.std(v) > 0 and skew(v) > 1.0)
            t = np.log1p(v) if use_log else v
            self.log_[c] = use_log
            self.mean_[c] = float(t.mean()) if t.size else 0.0
            sd = float(t.std()) if t.size else 0.0
            self.scale_[c] = sd if sd > 0 else 1.0
        self.codes_ = {}
        for c in self.categorical:
            if c in self.levels:
                self.codes_[c] = np.asarray(self.levels[c], dtype=np.float64)
            else:
                v = X[c].to_numpy(dtype=np.float64)
                self.codes_[c] = np.unique(v[np.isfinite(v)])
        self.feature_names_ = (
            [f"{c}" for c in self.numeric_]
            + [f"{c}={code:g}" for c in self.categorical for code in self.codes_[c]]
            + [f"{c}__missing" for c in self.columns_])
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode ``X`` (same columns as in :meth:`fit`) as a finite ``float32`` matrix."""
        if self.columns_ is None:
            raise ParameterError("encoder", "unfitted", "fitted (call fit first)")
        if not isinstance(X, pd.DataFrame) or tuple(X.columns) != self.columns_:
            raise ParameterError("X", type(X).__name__, "a DataFrame with the fitted columns")
        blocks = []
        num = X[list(self.numeric_)].to_numpy(dtype=np.float64, copy=True)
        for j, c in enumerate(self.numeric_):
            col = num[:, j]
            if self.log_[c]:
                col = np.log1p(np.maximum(col, 0.0))
            z = (col - self.mean_[c]) / self.scale_[c]
            num[:, j] = np.clip(np.where(np.isfinite(z), z, 0.0), -_CLIP, _CLIP)
        blocks.append(num)
        for c in self.categorical:
            v = X[c].to_numpy(dtype=np.float64)
            blocks.append((v[:, None] == self.codes_[c][None, :]).astype(np.float64))
        blocks.append(X.isna().to_numpy(dtype=np.float64))
        return np.hstack(blocks).astype(np.float32)

    def fit_transform(self, X: pd.DataFrame) -> np.ndarray:
        return self.fit(X).transform(X)


# --------------------------------------------------------------------------------------------------
# Quarterly tasks
# --------------------------------------------------------------------------------------------------
@dataclass
class QuarterTasks:
    """The magnet data cut into quarters and encoded.

    For quarter ``q``: ``X_pool[q]`` / ``y_pool[q]`` are the quarter's drives outside its test set
    (true labels kept as an oracle for active learning), ``labelled[q]`` the positions in that pool of
    the ``n_labels`` drives whose label is observed (drawn from the generator's labelled drives), and
    ``X_test[q]`` / ``y_test[q]`` ``n_test`` unlabelled drives with their true labels, for evaluation;
    ``X_val[q]`` / ``y_val[q]`` ``n_val`` further unlabelled drives (possibly none) for choosing settings.
    """

    X_pool: list[np.ndarray]
    y_pool: list[np.ndarray]
    labelled: list[np.ndarray]
    X_test: list[np.ndarray]
    y_test: list[np.ndarray]
    feature_names: tuple[str, ...]
    n_labels: int
    seed: int
    X_val: list[np.ndarray] | None = None
    y_val: list[np.ndarray] | None = None

    def __post_init__(self):
        if self.X_val is None:      # no validation drives: empty blocks of the right width
            self.X_val = [x[:0] for x in self.X_test]
            self.y_val = [y[:0] for y in self.y_test]

    @property
    def n_quarters(self) -> int:
        return len(self.X_pool)

    @property
    def n_inputs(self) -> int:
        return self.X_pool[0].shape[1]

    def train_set(self, q: int, positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Encoded features and labels of quarter ``q``'s labelled drives (or of ``positions``)."""
        q = check_int("q", q, 0, self.n_quarters - 1)
        idx = self.labelled[q] if positions is None else np.asarray(positions)
        return self.X_pool[q][idx], self.y_pool[q][idx]


def make_quarter_tasks(data: SupplyChainData, n_labels: int, n_test: int = 2000,
                       seed: int = 0, n_val: int = 0) -> QuarterTasks:
    """Split ``data`` (magnet grades, ``meta["quarter"]``) into encoded quarterly tasks.

    The encoder is fitted on the first quarter's pool features (no labels); categorical code books are
    the codes observed anywhere in ``data.X`` (an OEM registry lists every manufacturer code in
    advance, so entrants get their own inputs). Test drives are drawn from each quarter's *unlabelled*
    drives, so they never overlap a training label.

    Parameters
    ----------
    data : SupplyChainData
        With ``meta["quarter"]`` (e.g. from :func:`~ppal_lab.data.make_magnet_grades`).
    n_labels : int
        Labelled drives per quarter used for training, ``1 <= n_labels <=`` the fewest labelled drives
        of any quarter.
    n_test : int
        Test drives per quarter, ``1 <= n_test <=`` the fewest unlabelled drives of any quarter.
    seed : int
        Seed of the draws of labelled and test drives.
    n_val : int
        Validation drives per quarter, drawn (after the test drives, from their own stream) from the
        remaining unlabelled drives; ``n_test + n_val`` must fit in the fewest unlabelled drives.
    """
    if not isinstance(data, SupplyChainData) or "quarter" not in data.meta:
        raise ParameterError("data", type(data).__name__, "a SupplyChainData with meta['quarter']")
    quarter = data.meta["quarter"].to_numpy()
    quarters = np.unique(quarter)
    if quarters.size < 2:
        raise ParameterError("data", f"{quarters.size} quarter", "at least two quarters")
    lab = np.asarray(data.labelled)
    most_labels = int(min((lab & (quarter == q)).sum() for q in quarters))
    most_test = int(min((~lab & (quarter == q)).sum() for q in quarters))
    n_labels = check_int("n_labels", n_labels, 1, most_labels)
    n_test = check_int("n_test", n_test, 1, most_test)
    seed = check_int("seed", seed, 0)
    n_val = check_int("n_val", n_val, 0, most_test - n_test)
    rng = np.random.default_rng(seed_of(seed, 7))
    rng_val = np.random.default_rng(seed_of(seed, 8))

    X_all = data.X
    levels = {c: np.unique(v[np.isfinite(v)]) for c in data.categorical
              for v in [X_all[c].to_numpy(dtype=np.float64)]}
    y = np.asarray(data.y)
    pools, tests, vals = [], [], []
    for q in quarters:
        rows = np.flatnonzero(quarter == q)
        test = np.sort(rng.choice(rows[~lab[rows]], size=n_test, replace=False))
        rest = np.setdiff1d(rows[~lab[rows]], test)
        val = np.sort(rng_val.choice(rest, size=n_val, replace=False))
        pools.append(np.setdiff1d(np.setdiff1d(rows, test), val))
        tests.append(test)
        vals.append(val)
    # fitted on the first quarter's non-test features (validation drives included: features only)
    encoder = MissingnessEncoder(data.categorical, levels).fit(X_all.iloc[np.union1d(pools[0], vals[0])])
    X_pool, y_pool, labelled, X_test, y_test = [], [], [], [], []
    for pool, test in zip(pools, tests):
        X_pool.append(encoder.transform(X_all.iloc[pool]))
        y_pool.append(y[pool].astype(np.int64))
        pos = np.flatnonzero(lab[pool])
        labelled.append(np.sort(rng.choice(pos, size=n_labels, replace=False)))
        X_test.append(encoder.transform(X_all.iloc[test]))
        y_test.append(y[test].astype(np.int64))
    X_val = [encoder.transform(X_all.iloc[v]) for v in vals]
    y_val = [y[v].astype(np.int64) for v in vals]
    return QuarterTasks(X_pool, y_pool, labelled, X_test, y_test, tuple(encoder.feature_names_),
                        n_labels, seed, X_val, y_val)
