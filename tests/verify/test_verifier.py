"""Tests of ppal_lab.verify.verifier: the three steps, the ROC threshold and ROC curves."""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab import verify as V
from ppal_lab.compendium.errors import ParameterError


def test_verifier_passes_a_clean_item_and_flags_planted_anomalies(setup):
    ver, thr = setup.verifier, setup.threshold
    clean = ver.verify(setup.test, thr)
    # the threshold was set on other honest items; most honest test items pass
    assert clean["verified"].mean() > 0.9
    i = int(np.flatnonzero((setup.test.defect == 1) & (setup.test.health < 0.6)
                           & clean["verified"].to_numpy())[0])
    item = setup.test.subset([i])
    assert bool(ver.verify(item, thr)["verified"].iloc[0])
    # tampered: hide the defect, inflate health, claim remanufacturable -> readings contradict it
    tampered = V.ClaimBatch(**{**{f: getattr(item, f) for f in item.__dataclass_fields__},
                               "health": np.minimum(1.0, item.health + 0.3), "defect": np.zeros(1),
                               "label": np.ones(1, dtype=int)})
    out = ver.verify(tampered, thr)
    assert not out["verified"].iloc[0] and out["similarity"].iloc[0] < 0.1
    # a flipped label on a confidently classified item: readings agree, the decision does not
    conf = np.flatnonzero(clean["label_agreement"].to_numpy() > 0.99)[0]
    flipped = setup.test.subset([conf])
    flipped = V.ClaimBatch(**{**{f: getattr(flipped, f) for f in flipped.__dataclass_fields__},
                              "label": 1 - flipped.label})
    out = ver.verify(flipped, thr)
    assert not out["verified"].iloc[0]
    assert out["similarity"].iloc[0] == pytest.approx(clean["similarity"].iloc[conf])


def test_label_noise_is_invisible_to_the_similarity(setup):
    b = setup.test
    flipped = V.ClaimBatch(**{**{f: getattr(b, f) for f in b.__dataclass_fields__}, "label": 1 - b.label})
    a, c = setup.verifier.verify(b), setup.verifier.verify(flipped)
    np.testing.assert_array_equal(a["similarity"], c["similarity"])
    assert (c["consistency"] < a["consistency"]).mean() > 0.8


def test_verify_accepts_external_similarity_and_checks_it(setup):
    b = setup.test.subset(np.arange(10))
    plain = setup.verifier.verify(b)
    again = setup.verifier.verify(b, similarity=plain["similarity"].to_numpy())
    np.testing.assert_array_equal(plain["score"], again["score"])
    with pytest.raises(ParameterError, match="similarity"):
        setup.verifier.verify(b, similarity=np.ones(3))
    with pytest.raises(ParameterError, match="threshold"):
        setup.verifier.verify(b, threshold=1.5)


def test_threshold_at_fpr_flags_at_most_the_target_share():
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    thr = V.threshold_at_fpr(scores, 0.05)
    assert (scores <= thr).sum() == 50
    assert V.threshold_at_fpr(scores[:10], 0.05) == 0.0  # fewer than one item: flag nothing
    for bad in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ParameterError, match="fpr_target"):
            V.threshold_at_fpr(scores, bad)


@pytest.mark.parametrize("call", [
    lambda: V.DecisionModel().fit([0.5] * 4, [0] * 4, [0] * 4, [0] * 4, [1] * 4),
])
def test_bad_inputs_raise_parameter_error(call):
    with pytest.raises(ParameterError):
        call()
