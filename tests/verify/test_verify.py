"""Tests of ppal_lab.verify: forward and inverse models, the verifier, anomaly injection, thresholds,
the revealed-score leak, pairwise-masked FedAvg and the verified-label gate.

Tolerances, stated once:
* forward∘inverse on noise-free readings: the grid search recovers health within 1e-3 (its resolution
  is 1e-4) and the defect exactly, for every condition in [0, 1] x {0, 1} and every design;
* on noisy readings (bench noise at the generator's scale): health RMSE < 0.08, defect accuracy
  > 0.97 for the grid search; health RMSE < 0.08, defect accuracy > 0.95 for a briefly trained MLP.
  (The noise floor: near health 1 the bench barely changes with health, so RMSE ~0.06 is the best
  an unbiased estimator gets there.)
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ppal_lab import data as D
from ppal_lab import verify as V
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.federated import fedavg
from ppal_lab.secure.similarity import plaintext_similarity
from ppal_lab.compendium.specs import SPECS


@pytest.fixture(scope="module")
def setup():
    return V.prepare_seed(3, n_items=800, fpr_target=0.05)


def _conditions(n, seed=0):
    rng = np.random.default_rng(seed)
    h = np.r_[0.0, 1.0, rng.random(n - 2)]
    return h, rng.integers(0, 2, n).astype(float), rng.integers(0, 4, n), rng.integers(0, 3, n)


# ------------------------------------------------------------------------------------ forward model

def test_forward_is_the_generators_bench_model_and_broadcasts():
    h, d, v, t = _conditions(50)
    expected = D.bench_forward(h, d, v, t).to_numpy()
    np.testing.assert_array_equal(V.forward(h, d, v, t), expected)
    grid = V.forward(np.linspace(0, 1, 7)[None, :], d[:, None], v[:, None], t[:, None])
    assert grid.shape == (50, 7, 4)
    np.testing.assert_array_equal(grid[:, 3], V.forward(np.full(50, 0.5), d, v, t))


def test_generator_bench_columns_equal_forward_plus_noise_of_the_documented_size():
    data = D.make_remanufacturing(4000, seed=1)
    lat, X = data.latent, data.X
    clean = V.forward(lat["health"], lat["defect"].astype(float), X["design_variant"].astype(int),
                      X["tolerance_class"].astype(int))
    resid = X[list(D.BENCH_COLUMNS)].to_numpy() - clean
    np.testing.assert_allclose(resid.std(axis=0), V.BENCH_SD, rtol=0.06)


# ------------------------------------------------------------------------------------ inverse models

def test_grid_inverse_recovers_the_condition_from_noise_free_readings():
    h, d, v, t = _conditions(400)
    inv = V.GridInverse()
    assert inv.resolution < 2e-4
    h2, d2, res = inv.invert(V.forward(h, d, v, t), v, t)
    assert np.abs(h2 - h).max() < 1e-3
    np.testing.assert_array_equal(d2, d)
    assert res.max() < 1e-4


def test_grid_inverse_on_noisy_readings_within_stated_tolerance():
    data = D.make_remanufacturing(2000, seed=5, label_noise=0.0)
    b = V.honest_batch(data, V.GridInverse())
    assert np.sqrt(np.mean((b.health - b.true_health) ** 2)) < 0.08
    assert np.mean(b.defect == b.true_defect) > 0.97
    # the minimised residual is a chi-square-like statistic: mean near 3 (4 channels, 1 fitted value)
    _, _, res = V.GridInverse().invert(b.readings, b.variant, b.tolerance)
    assert 2.5 < res.mean() < 3.5


def test_mlp_inverse_learns_the_inverse_from_simulated_pairs():
    cal = D.make_remanufacturing(1500, seed=6, label_noise=0.0)
    mlp = V.MLPInverse(epochs=10, seed=0).fit(cal.latent["health"], cal.latent["defect"].astype(float),
                                              cal.X["design_variant"].astype(int),
                                              cal.X["tolerance_class"].astype(int))
    b = V.honest_batch(D.make_remanufacturing(1500, seed=7, label_noise=0.0), mlp)
    assert np.sqrt(np.mean((b.health - b.true_health) ** 2)) < 0.08
    assert np.mean(b.defect == b.true_defect) > 0.95
    with pytest.raises(RuntimeError):
        V.MLPInverse().invert(b.readings, b.variant, b.tolerance)


# ------------------------------------------------------------------------------------ the verifier

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


def test_roc_by_kind_and_detection_summary(setup):
    res = V.detection_study(setup, 0.25, ["tampered_prediction", "label_noise"])
    per = res.per_kind()
    assert set(per["kind"]) == {"tampered_prediction", "label_noise"}
    assert per["n"].sum() == round(0.25 * len(setup.test))
    # label noise: similarity cannot see it, consistency can
    row = per.set_index("kind").loc["label_noise"]
    assert abs(row["auc_similarity"] - 0.5) < 0.1 and row["auc_consistency"] > 0.9
    roc = V.roc_by_kind(res.scores["score"], res.scores["kind"])
    assert set(roc["kind"]) == {"tampered_prediction", "label_noise"}
    assert roc.groupby("kind")["tpr"].max().eq(1.0).all()
    s = res.summary()
    assert 0.0 <= s["fpr"] <= 0.15 and 0 < s["detection"] <= 1


# ------------------------------------------------------------------------------------ anomalies

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


@pytest.mark.parametrize("kwargs, name", [
    ({"anomaly_rate": 1.0}, "anomaly_rate"), ({"anomaly_rate": -0.01}, "anomaly_rate"),
    ({"anomaly_rate": 0.0}, "anomaly_rate"),  # valid alone, but leaves no anomaly to detect
    ({"fpr_target": 0.0}, "fpr_target"), ({"fpr_target": 1.0}, "fpr_target"),
    ({"threshold": 1.0}, "threshold"), ({"anomaly_kinds": ["nope"]}, "anomaly_kinds"),
    ({"inverse": "magic"}, "inverse"), ({"label_budget": 5000}, "label_budget"),
    ({"n_secure": 5000}, "n_secure"), ({"strategy": "psychic"}, "strategy"),
])
def test_validate_setup_names_the_bad_parameter(kwargs, name):
    args = {"n_items": 2000, "anomaly_rate": 0.2, "anomaly_kinds": list(V.ANOMALY_KINDS),
            "fpr_target": 0.05, "threshold": 0.85, "inverse": "grid", **kwargs}
    with pytest.raises(ParameterError) as err:
        V.validate_setup(**args)
    assert err.value.name == name


@pytest.mark.parametrize("call", [
    lambda: V.forward(1.5, 0, 0, 0),
    lambda: V.forward(0.5, 0, 4, 0),
    lambda: V.GridInverse().invert(np.ones((3, 3)), [0, 0, 0], [0, 0, 0]),
    lambda: V.GridInverse().invert(np.ones((2, 4)), [0, 7], [0, 0]),
    lambda: V.GridInverse().invert(np.full((1, 4), np.nan), [0], [0]),
    lambda: V.GridInverse(n_grid=1),
    lambda: V.prepare_seed(-1),
    lambda: V.prepare_seed(0, n_items=10),
    lambda: V.make_inverse("magic"),
    lambda: V.DecisionModel().fit([0.5] * 4, [0] * 4, [0] * 4, [0] * 4, [1] * 4),
])
def test_bad_inputs_raise_parameter_error(call):
    with pytest.raises(ParameterError):
        call()


def test_spec_choices_match_the_module():
    spec = SPECS["09_inverse_simulation"]
    assert spec.param("anomaly_kinds").choices == V.ANOMALY_KINDS
    assert spec.param("inverse").choices == V.INVERSE_METHODS
    assert spec.param("threshold").default == V.SEED_THRESHOLD


# ------------------------------------------------------------------------------------ leakage

def test_revealed_scores_reconstruct_the_private_readings(setup):
    b = setup.test
    item = int(np.flatnonzero(b.kind == "clean")[0])
    probes = V.probe_claims(b, item)
    sim = setup.verifier.simulate_input(probes)
    assert np.all(np.abs((probes.readings - sim) / V.BENCH_SD) < 10)  # no channel capped
    scores = plaintext_similarity(probes.readings, sim, V.BENCH_SD)
    rec = V.reconstruct_readings(sim, scores)
    np.testing.assert_allclose(rec, b.readings[item], rtol=1e-6, atol=1e-6)
    with pytest.raises(ParameterError):
        V.reconstruct_readings(sim[:4], scores[:4])


# ------------------------------------------------------------------------------------ cycle

def test_secure_fedavg_equals_fedavg_and_masks_hide_each_update():
    g = torch.Generator().manual_seed(0)
    vecs = [torch.randn(50, generator=g) * 3 for _ in range(4)]
    weights = [10, 25, 3, 40]
    avg, masked = V.secure_fedavg(vecs, weights, 0)
    torch.testing.assert_close(avg, fedavg(vecs, weights), atol=1e-6, rtol=0)
    assert avg.dtype == vecs[0].dtype
    # a masked message is unrelated to the plain fixed-point encoding (uniform in the 64-bit ring)
    plain = np.round(vecs[0].double().numpy() * weights[0] / sum(weights) * 2.0**32).astype(np.int64)
    assert np.mean(masked[0].view(np.int64) == plain) == 0.0
    assert np.abs(masked[0].view(np.int64).astype(float)).mean() > 1e17
    one, _ = V.secure_fedavg(vecs[:1], [5], 0)
    torch.testing.assert_close(one, vecs[0], atol=1e-8, rtol=0)
    with pytest.raises(ParameterError):
        V.secure_fedavg(vecs, [1, 2], 0)
    with pytest.raises(ParameterError):
        V.secure_fedavg(vecs, [0, 0, 0, 0], 0)


def test_gate_keeps_wrong_labels_out_and_spends_the_budget(setup):
    kw = dict(n_items=800, label_budget=100, batch_size=20, corrupt_rate=1.0)
    runs = V.gate_study([setup], [("corrupted", "none"), ("corrupted", "label"), ("corrupted", "batch"),
                                  ("clean", "none")], **kw)
    r = runs.set_index(["labels", "gate"])
    assert (runs["labels_bought"] == 100).all()
    assert r.loc[("corrupted", "none"), "wrong_used"] > 0
    assert r.loc[("corrupted", "label"), "wrong_used"] < r.loc[("corrupted", "none"), "wrong_used"]
    assert r.loc[("corrupted", "label"), "corrupted_rejected"] > 0.3
    assert r.loc[("corrupted", "batch"), "labels_used"] <= r.loc[("corrupted", "label"), "labels_used"]
    assert r.loc[("clean", "none"), "wrong_used"] == 0
    assert r.loc[("clean", "none"), "labels_used"] == 100
    # the arms share data and initial labels: without a gate and without corruption nothing differs
    # but the labels, so the clean/ungated run matches a direct call
    direct = V.run_gated_cycle(setup, "none", corrupt_rate=0.0, n_items=800, label_budget=100,
                               batch_size=20, secure_aggregation=True)
    assert direct.final_accuracy == pytest.approx(r.loc[("clean", "none"), "accuracy"])
    summary = V.summarize_gate(runs)
    assert set(summary["gate"]) == {"none", "label", "batch"}
    with pytest.raises(ParameterError, match="gate"):
        V.run_gated_cycle(setup, "sometimes")
