"""Descriptive statistics behind the data chapter: partitions, missingness, label balance, drift."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import mutual_info_classif
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from ppal_lab.data.supply_chain_data import SupplyChainData


def site_summary(data: SupplyChainData, parts: list[np.ndarray]) -> pd.DataFrame:
    """Items and positive-label rate per site of a horizontal partition."""
    return pd.DataFrame({
        "site": [f"site {i + 1}" for i in range(len(parts))],
        "items": [len(p) for p in parts],
        "positive_rate": [float(np.mean(data.y[p])) for p in parts],
    })


def party_summary(data: SupplyChainData) -> pd.DataFrame:
    """Features held by each party of a vertical partition."""
    rows = [{"party": party, "features": len(data.features_of(party)),
             "names": ", ".join(data.features_of(party))} for party in data.parties]
    return pd.DataFrame(rows)


def missingness_sample(data: SupplyChainData, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """A random sample of rows as a 0/1 missingness matrix (1 = missing), for a heatmap."""
    rows = np.sort(rng.choice(data.n_items, size=min(n_rows, data.n_items), replace=False))
    return data.X.iloc[rows].isna().astype(int)


def quarter_summary(data: SupplyChainData) -> pd.DataFrame:
    """Per quarter: items, positive rate, labelled items, missing rate, manufacturers seen, mean date."""
    q = data.meta["quarter"].to_numpy()
    manufacturer = data.X_complete["manufacturer"] if data.X_complete is not None else data.X["manufacturer"]
    rows = []
    for quarter in np.unique(q):
        m = q == quarter
        rows.append({
            "quarter": f"Q{quarter + 1}",
            "items": int(m.sum()),
            "positive_rate": float(data.y[m].mean()),
            "labelled": int(data.labelled[m].sum()),
            "missing_rate": float(data.X[m].isna().to_numpy().mean()),
            "manufacturers": int(manufacturer[m].nunique()),
            "mean_manufacturing_date": float(data.X_complete["manufacturing_date"][m].mean())
            if data.X_complete is not None else float("nan"),
        })
    return pd.DataFrame(rows)


def top_predictors(data: SupplyChainData, n_items: int, seed: int) -> pd.Series:
    """Mutual information (nats) of each complete feature with the label, on a random subsample."""
    X = data.X_complete if data.X_complete is not None else data.X
    rng = np.random.default_rng(seed)
    rows = rng.choice(data.n_items, size=min(n_items, data.n_items), replace=False)
    discrete = np.array([c in data.categorical for c in X.columns])
    mi = mutual_info_classif(X.iloc[rows].to_numpy(), data.y[rows], discrete_features=discrete,
                             random_state=seed)
    return pd.Series(mi, index=X.columns, name="mutual_information").sort_values(ascending=False)


def drift_accuracy(data: SupplyChainData, seed: int, max_items: int = 6000) -> pd.Series:
    """Accuracy per quarter of a model trained on the first quarter (observed features, NaN kept).

    Up to ``max_items`` first-quarter drives are split 70/30; the held-out 30% measures in-quarter
    accuracy, and up to ``max_items`` drives of every later quarter are scored. True labels are used
    throughout: this shows drift, not label scarcity.
    """
    rng = np.random.default_rng(seed)
    q = data.meta["quarter"].to_numpy()
    X, y = data.X.to_numpy(), np.asarray(data.y)

    def sample(quarter: int) -> np.ndarray:
        idx = np.flatnonzero(q == quarter)
        return np.sort(rng.choice(idx, size=min(max_items, idx.size), replace=False))

    quarters = np.unique(q)
    first = sample(quarters[0])
    train, held = train_test_split(first, test_size=0.3, random_state=seed, stratify=y[first])
    # Small fits: OpenMP threads gain little and spin-wait badly on a busy 2-core machine (15x slower).
    with threadpool_limits(limits=1, user_api="openmp"):
        model = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(X[train], y[train])
        acc = {f"Q{quarters[0] + 1}": float(model.score(X[held], y[held]))}
        for quarter in quarters[1:]:
            m = sample(quarter)
            acc[f"Q{quarter + 1}"] = float(model.score(X[m], y[m]))
    return pd.Series(acc, name="accuracy")
