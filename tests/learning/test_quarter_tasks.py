"""Tests of ppal_lab.learning.quarter_tasks: the missingness encoder and the sizes of quarterly tasks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ppal_lab.data import make_magnet_grades
from ppal_lab.learning import quarter_tasks as qt
from ppal_lab.compendium.errors import ParameterError


def test_encoder_imputes_flags_and_one_hots():
    fit = pd.DataFrame({"count": [1.0, 2.0, 3.0, 100.0, np.nan, 4.0],
                        "temp": [10.0, 12.0, np.nan, 14.0, 16.0, 18.0],
                        "maker": [0.0, 1.0, 1.0, np.nan, 0.0, 1.0]})
    enc = qt.MissingnessEncoder(["maker"], levels={"maker": [0, 1, 2]}).fit(fit)
    assert enc.log_ == {"count": True, "temp": False}
    new = pd.DataFrame({"count": [np.nan, 3.0], "temp": [14.0, np.nan], "maker": [2.0, 7.0]})
    Z = enc.transform(new)
    names = enc.feature_names_
    col = {n: Z[:, i] for i, n in enumerate(names)}
    assert np.isfinite(Z).all() and Z.dtype == np.float32
    assert col["count"][0] == 0.0 and col["count__missing"].tolist() == [1.0, 0.0]
    t = np.log1p(np.array([1.0, 2.0, 3.0, 100.0, 4.0]))
    assert col["count"][1] == pytest.approx((np.log1p(3.0) - t.mean()) / t.std(), rel=1e-5)
    assert col["temp"][0] == pytest.approx(0.0) and col["temp__missing"].tolist() == [0.0, 1.0]
    assert col["maker=2"].tolist() == [1.0, 0.0]       # code 7 is outside the code book: all zeros
    assert col["maker=0"].tolist() == col["maker=1"].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("n_labels, n_test", [(0, 10), (19, 10), (5, 0), (5, 10**6)])
def test_make_quarter_tasks_rejects_sizes(n_labels, n_test):
    data = make_magnet_grades(n_per_month=300, seed=0)          # 18 labelled drives a quarter
    with pytest.raises(ParameterError, match="n_labels|n_test"):
        qt.make_quarter_tasks(data, n_labels, n_test)


def test_validation_drives_are_unlabelled_disjoint_and_leave_the_other_draws_alone():
    data = make_magnet_grades(n_per_month=300, missing_rate=0.5, seed=3)
    plain = qt.make_quarter_tasks(data, n_labels=18, n_test=120, seed=3)
    t = qt.make_quarter_tasks(data, n_labels=18, n_test=120, seed=3, n_val=80)
    for q in range(t.n_quarters):
        assert np.array_equal(t.X_test[q], plain.X_test[q])              # same test drives
        assert np.array_equal(t.train_set(q)[0], plain.train_set(q)[0])   # same training labels
        assert len(t.y_val[q]) == 80 and len(t.y_pool[q]) == len(plain.y_pool[q]) - 80
        # validation drives are neither test nor pool drives (rows compared by their encoding)
        enc = {r.tobytes() for r in t.X_val[q]}
        assert not enc & {r.tobytes() for r in t.X_test[q]}
        assert not enc & {r.tobytes() for r in t.X_pool[q]}
    assert all(len(y) == 0 for y in plain.y_val)
    with pytest.raises(ParameterError) as err:
        qt.make_quarter_tasks(data, n_labels=18, n_test=120, seed=3, n_val=10**6)
    assert err.value.name == "n_val"
