"""Tests of ppal_lab.data.loaders: scikit-learn's data sets in the container, dispatch by name."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ppal_lab.data import DATASETS, load_dataset, load_sklearn, make_magnet_grades
from ppal_lab.compendium.errors import ParameterError


@pytest.mark.parametrize("name,shape,n_classes", [("breast_cancer", (569, 30), 2),
                                                   ("digits", (1797, 64), 10), ("wine", (178, 13), 3)])
def test_load_sklearn(name, shape, n_classes):
    data = load_sklearn(name)
    assert data.X.shape == shape and len(np.unique(data.y)) == n_classes
    assert data.categorical == () and data.latent is None and data.labelled.all()
    assert len(data.parties) == 4


def test_load_dataset_dispatch():
    assert set(DATASETS) == {"remanufacturing", "magnet", "breast_cancer", "digits", "wine"}
    small = load_dataset("magnet", seed=3, n_per_month=40, n_months=3)
    assert small.X.shape == (120, 50)
    pd.testing.assert_frame_equal(small.X, make_magnet_grades(n_per_month=40, n_months=3, seed=3).X)
    assert load_dataset("remanufacturing", n_items=50).n_items == 50
    assert load_dataset("wine", n_parties=2).parties == ("party_0", "party_1")


@pytest.mark.parametrize("call,name", [
    (lambda: load_sklearn("iris"), "name"),
    (lambda: load_sklearn("wine", n_parties=14), "n_parties"),
    (lambda: load_dataset("mnist"), "name"),
    (lambda: load_dataset("wine", missing_rate=0.1), "keyword argument"),
    (lambda: load_dataset("magnet", n_items=10), "keyword argument"),
])
def test_bad_inputs_raise_parameter_error(call, name):
    with pytest.raises(ParameterError) as info:
        call()
    assert info.value.name == name and str(info.value).startswith(name)
