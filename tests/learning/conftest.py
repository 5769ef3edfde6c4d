"""Shared fixtures of the learning tests: one torch thread, a small drifting task set, a two-cluster pool."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ppal_lab.data import make_magnet_grades
from ppal_lab.learning import quarter_tasks as qt



@pytest.fixture(scope="module")
def tasks():
    """A small drifting magnet data set: 18 labelled drives per quarter, 4 quarters."""
    data = make_magnet_grades(n_per_month=300, missing_rate=0.5, seed=3)
    return qt.make_quarter_tasks(data, n_labels=18, n_test=120, seed=3)


@pytest.fixture(scope="module")
def small_pool():
    rng = np.random.default_rng(3)
    Z = np.vstack([rng.normal(0, 1, (150, 4)), rng.normal(4, 0.5, (90, 4))])
    return Z
