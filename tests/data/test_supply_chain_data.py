"""Tests of ppal_lab.data.supply_chain_data: the container locks its label arrays."""
from __future__ import annotations

import pytest


def test_labels_are_read_only(reman):
    with pytest.raises(ValueError):
        reman.y[0] = 1 - reman.y[0]
