"""The data the federated tests share."""
import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from ppal_lab.data import horizontal_partition, make_remanufacturing


@pytest.fixture(scope="module")
def reman():
    """Remanufacturing data (2000 items), a stratified 75/25 split, a non-IID 4-site partition."""
    data = make_remanufacturing(2000, seed=1)
    X, y = data.to_numpy()
    tr, te = train_test_split(np.arange(y.size), test_size=0.25, stratify=y, random_state=0)
    parts = horizontal_partition(data.subset(tr), 4, non_iid=0.5, seed=1)
    return X[tr], y[tr], X[te], y[te], parts
