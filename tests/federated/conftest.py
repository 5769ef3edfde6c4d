"""The data the federated tests share."""
import os

# Flower and Ray read these when first imported: no usage statistics leave this machine
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from ppal_lab.data import horizontal_partition, make_remanufacturing  # noqa: E402


@pytest.fixture(scope="module")
def reman():
    """Remanufacturing data (2000 items), a stratified 75/25 split, a non-IID 4-site partition."""
    data = make_remanufacturing(2000, seed=1)
    X, y = data.to_numpy()
    tr, te = train_test_split(np.arange(y.size), test_size=0.25, stratify=y, random_state=0)
    parts = horizontal_partition(data.subset(tr), 4, non_iid=0.5, seed=1)
    return X[tr], y[tr], X[te], y[te], parts


class FixedSites:
    """A site group whose sites send fixed local models (float64), whatever the global model."""

    def __init__(self, local):
        self.local = [torch.as_tensor(v, dtype=torch.float64) for v in local]

    def __len__(self):
        return len(self.local)

    def train(self, params, t):
        return [v.clone() for v in self.local]

    def public_counts(self):
        return np.ones((len(self.local), 3), dtype=np.int64)


@pytest.fixture
def fixed_sites():
    """The :class:`FixedSites` class (a site group of fixed updates, for wrappers of site groups)."""
    return FixedSites
