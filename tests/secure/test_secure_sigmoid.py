"""The sigmoid on shares of :mod:`ppal_lab.secure.secure_sigmoid` against float64 and CrypTen's own."""
import numpy as np
import torch

from ppal_lab.secure import run_parties
from ppal_lab.secure.examples import sigmoid_party


def test_secure_sigmoid_is_accurate_where_cryptens_is_not():
    xs = torch.linspace(-30, 30, 601, dtype=torch.float64).float()
    res = run_parties(sigmoid_party, 2, args=(xs, 18), timeout=120)
    exact = torch.sigmoid(xs.double()).numpy()
    ours, theirs = res[0]["ours"], res[0]["crypten"]
    assert np.abs(ours - exact).max() < 2e-5
    assert np.abs(theirs - exact).max() > 5e-4          # why we do not use CrypTen's: it is ~1e-3 off
