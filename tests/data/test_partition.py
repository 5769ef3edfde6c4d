"""Tests of ppal_lab.data.partition: horizontal (items, non-IID) and vertical (features) partitions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ppal_lab.data import horizontal_partition, load_sklearn, make_remanufacturing, vertical_partition
from ppal_lab.compendium.errors import ParameterError


@pytest.mark.parametrize("n_sites", [1, 4, 7])
def test_horizontal_partition_covers_each_item_once(reman, n_sites):
    parts = horizontal_partition(reman, n_sites=n_sites, non_iid=0.8, seed=3)
    assert len(parts) == n_sites and all(len(p) > 0 for p in parts)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(reman.n_items))


def test_horizontal_partition_is_non_iid_on_request(reman):
    skewed = [reman.y[p].mean() for p in horizontal_partition(reman, 4, non_iid=1.0, seed=0)]
    iid = [reman.y[p].mean() for p in horizontal_partition(reman, 4, non_iid=0.0, seed=0)]
    assert max(skewed) - min(skewed) > 0.2
    assert max(iid) - min(iid) < 0.01
    by_operator = horizontal_partition(reman, 4, non_iid=1.0, seed=0, by="operator")
    shares = [np.bincount(reman.meta["operator"][p], minlength=6) / len(p) for p in by_operator]
    assert np.ptp(np.array(shares), axis=0).max() > 0.2


def test_horizontal_partition_tiny_and_deterministic(reman):
    tiny = reman.subset(np.arange(5))
    assert sorted(len(p) for p in horizontal_partition(tiny, 5, non_iid=1.0)) == [1] * 5
    a = horizontal_partition(reman, 3, seed=9)
    b = horizontal_partition(reman, 3, seed=9)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    site = reman.subset(a[0])
    assert site.n_items == len(a[0]) and np.array_equal(site.y, reman.y[a[0]])


@pytest.mark.parametrize("name", ["remanufacturing", "breast_cancer"])
def test_vertical_partition_blocks(name, reman):
    data = reman if name == "remanufacturing" else load_sklearn(name)
    blocks = vertical_partition(data)
    assert tuple(blocks) == data.parties
    for party, block in blocks.items():
        assert block.shape[0] == data.n_items
        assert list(block.columns) == [f for f in data.feature_names if data.party_of[f] == party]
        assert block.index.equals(data.X.index)
    assert sum(b.shape[1] for b in blocks.values()) == data.X.shape[1]


@pytest.mark.parametrize("call,name", [
    (lambda: horizontal_partition(make_remanufacturing(n_items=10), n_sites=11), "n_sites"),
    (lambda: horizontal_partition(make_remanufacturing(n_items=10), n_sites=0), "n_sites"),
    (lambda: horizontal_partition(make_remanufacturing(n_items=10), non_iid=1.5), "non_iid"),
    (lambda: horizontal_partition(make_remanufacturing(n_items=10), by="colour"), "by"),
    (lambda: horizontal_partition(np.zeros((3, 3))), "data"),
    (lambda: vertical_partition(pd.DataFrame()), "data"),
])
def test_bad_inputs_raise_parameter_error(call, name):
    with pytest.raises(ParameterError) as info:
        call()
    assert info.value.name == name and str(info.value).startswith(name)
