"""Tests of ppal_lab.verify.claims: honest claims and the injected anomalies."""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab import verify as V
from ppal_lab.compendium.errors import ParameterError


def test_inject_anomalies_rates_and_kinds(setup):
    b, inv = setup.test, setup.verifier.inverse
    n = len(b)
    for rate in (0.0, 0.1, 0.37, 0.9):
        out = V.inject_anomalies(b, V.ANOMALY_KINDS, rate, inv, 1)
        assert out.is_anomaly.sum() == round(rate * n)
        counts = [int((out.kind == k).sum()) for k in V.ANOMALY_KINDS]
        assert max(counts) - min(counts) <= 1
    out = V.inject_anomalies(b, ["label_noise"], 0.5, inv, 2)
    assert np.all(out.kind[out.is_anomaly] == "label_noise")
    assert out.is_anomaly.sum() == n // 2
    # reproducible from the seed
    a1 = V.inject_anomalies(b, V.ANOMALY_KINDS, 0.2, inv, 7)
    a2 = V.inject_anomalies(b, V.ANOMALY_KINDS, 0.2, inv, 7)
    np.testing.assert_array_equal(a1.readings, a2.readings)
    np.testing.assert_array_equal(a1.kind, a2.kind)


def test_each_anomaly_kind_does_what_it_says(setup):
    b, inv = setup.test, setup.verifier.inverse
    out = V.inject_anomalies(b, V.ANOMALY_KINDS, 0.5, inv, 3)
    same_readings = np.all(out.readings == b.readings, axis=1)
    changed_channels = (out.readings != b.readings).sum(axis=1)
    k = out.kind
    tam = k == "tampered_prediction"
    assert np.all(out.health[tam] >= b.health[tam]) and np.all(out.defect[tam] == 0)
    assert np.all(out.label[tam] == 1) and np.all(same_readings[tam])
    lab = k == "label_noise"
    assert np.all(out.label[lab] == 1 - b.label[lab]) and np.all(same_readings[lab])
    np.testing.assert_array_equal(out.health[lab], b.health[lab])
    for kind in ("sensor_fault", "sensor_drift"):
        sel = k == kind
        assert np.all(changed_channels[sel] <= 1) and changed_channels[sel].mean() > 0.8
    ood = k == "ood_component"
    assert np.all(changed_channels[ood] == 4)
    clean = k == "clean"
    for f in ("readings", "health", "defect", "label"):
        np.testing.assert_array_equal(getattr(out, f)[clean], getattr(b, f)[clean])
    # claims of changed readings were re-derived from them
    sens = (k == "sensor_drift") & (changed_channels == 1)
    h2, _, _ = inv.invert(out.readings[sens], out.variant[sens], out.tolerance[sens])
    np.testing.assert_allclose(out.health[sens], h2)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"rate": -0.1}, "anomaly_rate"), ({"rate": 1.0}, "anomaly_rate"), ({"rate": float("nan")}, "anomaly_rate"),
    ({"kinds": ["tampered_prediction", "gremlins"]}, "anomaly_kinds = 'gremlins'"),
    ({"kinds": []}, "anomaly_kinds"), ({"kinds": "label_noise"}, "anomaly_kinds"),
    ({"kinds": ["label_noise", "label_noise"]}, "without repeats"), ({"rng": -1}, "rng"),
])
def test_inject_anomalies_rejects_bad_arguments(setup, kwargs, fragment):
    args = {"batch": setup.test, "kinds": list(V.ANOMALY_KINDS), "rate": 0.2,
            "inverse": setup.verifier.inverse, "rng": 0, **kwargs}
    with pytest.raises(ParameterError, match=fragment):
        V.inject_anomalies(**args)


def test_severity_sets_each_graded_kind_to_one_size_in_noise_units(setup):
    b, inv = setup.test_matched, setup.verifier.inverse
    s = 3.0
    out = V.inject_anomalies(b, V.ANOMALY_KINDS, 0.5, inv, 4, severity=s)
    k = out.kind
    drift = (k == "sensor_drift") & np.all(b.readings > s * V.BENCH_SD, axis=1)  # no clipping at 0
    z = np.abs(out.readings[drift] - b.readings[drift]) / V.BENCH_SD
    np.testing.assert_allclose(z.max(axis=1), s)
    assert np.all(np.sort(z, axis=1)[:, :3] == 0)  # one channel only
    tam = k == "tampered_prediction"
    np.testing.assert_allclose(out.health[tam], np.minimum(1.0, b.health[tam] + s * V.HEALTH_STEP))
    # out of catalogue: the noise-free readings of the true condition, vibration s SDs higher, wear debris
    # x (1 + 0.4 s): with the noise drawn again, the vibration offset shows in the mean over items
    ood = k == "ood_component"
    clean = V.forward(b.true_health[ood], b.true_defect[ood], b.variant[ood], b.tolerance[ood])
    shift = (out.readings[ood, 0] - clean[:, 0]).mean()
    assert abs(shift - s * V.BENCH_SD[0]) < 4 * V.BENCH_SD[0] / np.sqrt(ood.sum())
    # size 0: drift and out-of-catalogue leave the physics as it was (only the noise is drawn again)
    zero = V.inject_anomalies(b, ["sensor_drift"], 0.5, inv, 4, severity=0.0)
    np.testing.assert_array_equal(zero.readings, b.readings)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ParameterError, match="severity"):
            V.inject_anomalies(b, V.ANOMALY_KINDS, 0.2, inv, 0, severity=bad)
