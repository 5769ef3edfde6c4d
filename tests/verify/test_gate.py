"""Tests of ppal_lab.verify.gate: the verified-label gate and the joint parameter check."""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab import verify as V
from ppal_lab.compendium.errors import ParameterError


@pytest.mark.parametrize("kwargs, name", [
    ({"anomaly_rate": 1.0}, "anomaly_rate"), ({"anomaly_rate": -0.01}, "anomaly_rate"),
    ({"anomaly_rate": 0.0}, "anomaly_rate"),  # valid alone, but leaves no anomaly to detect
    ({"fpr_target": 0.0}, "fpr_target"), ({"fpr_target": 1.0}, "fpr_target"),
    ({"threshold": 1.0}, "threshold"), ({"anomaly_kinds": ["nope"]}, "anomaly_kinds"),
    ({"inverse": "magic"}, "inverse"), ({"label_budget": 5000}, "label_budget"),
    ({"n_secure": 5000}, "n_secure"), ({"strategy": "psychic"}, "strategy"),
    ({"verifier_labels": 401}, "verifier_labels"),  # more trusted labels than the consortium buys
])
def test_validate_setup_names_the_bad_parameter(kwargs, name):
    args = {"n_items": 2000, "anomaly_rate": 0.2, "anomaly_kinds": list(V.ANOMALY_KINDS),
            "fpr_target": 0.05, "threshold": 0.85, "inverse": "grid", **kwargs}
    with pytest.raises(ParameterError) as err:
        V.validate_setup(**args)
    assert err.value.name == name


def test_label_gate_drops_unverified_labels_and_records_every_decision(setup):
    b = setup.test.subset(np.arange(60))
    flipped = V.ClaimBatch(**{**{f: getattr(b, f) for f in b.__dataclass_fields__},
                              "label": np.where(np.arange(60) % 3 == 0, 1 - b.label, b.label)})
    parts = [np.arange(30), np.arange(30, 60)]
    new = [np.arange(10), np.arange(5)]
    plain = setup.verifier.verify(flipped.subset(np.r_[0:10, 30:35]), setup.threshold)["verified"].to_numpy()
    gate = V.VerifiedLabelGate("label", setup.verifier, setup.threshold, flipped, parts)
    keep = gate(0, new)
    np.testing.assert_array_equal(np.concatenate(keep), plain)
    assert not plain.all()  # some flipped labels are caught
    assert [(p, pos.tolist()) for p, pos, _ in gate.decisions] == [(0, list(range(10))), (1, list(range(5)))]


def test_batch_gate_is_all_or_nothing_per_round_but_per_label_on_the_initial_labels(setup):
    b = setup.test.subset(np.arange(40))
    bad = V.ClaimBatch(**{**{f: getattr(b, f) for f in b.__dataclass_fields__}, "label": 1 - b.label})
    parts = [np.arange(20), np.arange(20, 40)]
    new = [np.arange(8), np.arange(8)]
    per_label = V.VerifiedLabelGate("label", setup.verifier, setup.threshold, bad, parts)(0, new)
    assert not all(k.all() for k in per_label)
    batch = V.VerifiedLabelGate("batch", setup.verifier, setup.threshold, bad, parts)
    assert not any(k.any() for k in batch(3, new))
    for a, c in zip(batch(-1, new), per_label):
        np.testing.assert_array_equal(a, c)
    none = V.VerifiedLabelGate("none", setup.verifier, setup.threshold, bad, parts)
    assert all(k.all() for k in none(0, new))
    with pytest.raises(ParameterError, match="gate"):
        V.VerifiedLabelGate("sometimes", setup.verifier, setup.threshold, bad, parts)
