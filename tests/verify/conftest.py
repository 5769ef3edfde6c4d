"""The fitted verifier the tests of this room share: one repeat of chapter 9's seed preparation (fit
the verifier on calibration items, choose its threshold at a 5% false-positive rate, draw honest test
claims), the simplest way to obtain a consistent set of fitted models."""
import pytest

from ppal_lab.chapters.ch09_inverse_simulation import prepare_seed


@pytest.fixture(scope="module")
def setup():
    return prepare_seed(3, n_items=800, fpr_target=0.05)
