"""Shared fixtures of the data tests: one thread for small fits, and one data set of each generator."""
from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits

from ppal_lab.data import SupplyChainData, make_magnet_grades, make_remanufacturing


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Small fits run faster single-threaded, and OpenMP spinning makes them crawl on a busy machine.
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def reman() -> SupplyChainData:
    return make_remanufacturing(seed=0)


@pytest.fixture(scope="module")
def magnet() -> SupplyChainData:
    return make_magnet_grades(n_per_month=500, seed=0)
