"""Tests of ppal_lab.verify.verifier: the three steps, the ROC threshold and ROC curves."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ppal_lab import verify as V
from ppal_lab.compendium.errors import ParameterError


def test_verifier_passes_a_clean_item_and_flags_planted_anomalies(setup):
    ver, thr, test = setup.verifier, setup.threshold, setup.test_matched
    clean = ver.verify(test, thr)
    # the threshold was set on other honest items claimed the same way; most honest test items pass
    assert clean["verified"].mean() > 0.9
    i = int(np.flatnonzero((test.defect == 1) & (test.health < 0.6) & clean["verified"].to_numpy())[0])
    item = test.subset([i])
    assert bool(ver.verify(item, thr)["verified"].iloc[0])
    # tampered: hide the defect, inflate health, claim remanufacturable -> readings contradict it
    tampered = V.ClaimBatch(**{**{f: getattr(item, f) for f in item.__dataclass_fields__},
                               "health": np.minimum(1.0, item.health + 0.3), "defect": np.zeros(1),
                               "label": np.ones(1, dtype=int)})
    out = ver.verify(tampered, thr)
    assert not out["verified"].iloc[0] and out["similarity"].iloc[0] < 0.1
    # a flipped label on a confidently classified item: readings agree, the decision does not
    conf = np.flatnonzero(clean["label_agreement"].to_numpy() > 0.99)[0]
    flipped = test.subset([conf])
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


def test_decision_model_learns_only_from_the_labelled_items(setup):
    """fit_verifier(labelled=...) must not read the calibration items' labels: flipping every one of them
    leaves the decision model unchanged, while a fit on them (the leaky variant) differs."""
    from ppal_lab import data as D

    cal = D.make_remanufacturing(600, seed=11, label_noise=0.0)
    trusted = D.make_remanufacturing(100, seed=12, label_noise=0.0)
    flipped = replace(cal, y=1 - np.asarray(cal.y))
    a = V.fit_verifier(cal, "grid", 0, labelled=trusted)
    b = V.fit_verifier(flipped, "grid", 0, labelled=trusted)
    np.testing.assert_array_equal(a.decision.model.coef_, b.decision.model.coef_)
    claims = V.honest_batch(trusted, V.GridInverse())
    own = V.DecisionModel().fit(claims.health, claims.defect, claims.variant, claims.tolerance, claims.label)
    np.testing.assert_allclose(a.decision.model.coef_, own.model.coef_)
    leaky = V.fit_verifier(cal, "grid", 0)
    assert not np.allclose(leaky.decision.model.coef_, a.decision.model.coef_)


def test_detection_curves_grow_with_severity_from_the_false_positive_rate(setup):
    rows = V.detection_by_severity(setup.verifier, setup.threshold, setup.test_matched, ["sensor_drift"], 0.5,
                                   setup.verifier.inverse, 0, [0.0, 8.0])
    drift = rows[rows.kind == "sensor_drift"].set_index("severity")["detection"]
    honest = (setup.verifier.verify(setup.test_matched)["score"] <= setup.threshold).mean()
    # size 0 changes nothing: the "anomalous" items are flagged like honest ones (binomial noise)
    assert abs(drift[0.0] - honest) < 0.06
    assert drift[8.0] > 0.95
    assert (rows[rows.kind == "all"]["n"] == 400).all()


@pytest.mark.parametrize("call", [
    lambda: V.DecisionModel().fit([0.5] * 4, [0] * 4, [0] * 4, [0] * 4, [1] * 4),
])
def test_bad_inputs_raise_parameter_error(call):
    with pytest.raises(ParameterError):
        call()
