"""The adversarial-participants chapter (notebooks/10): its federated bed, DP noise, studies and claims."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ppal_lab.chapters import ch10_adversarial_participants as ch
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS
from ppal_lab.federated import robust

SPEC = SPECS["10_adversarial_participants"]


def params(**changes):
    """The notebook's defaults with ``changes``."""
    return SimpleNamespace(**{**{p.name: p.default for p in SPEC.params}, **changes})


@pytest.fixture(scope="module")
def data():
    return ch.load_federated(10, 0.5, 0)


def _spec_accepts(values) -> bool:
    try:
        SPEC.validate({**vars(params()), **values})
    except ParameterError:
        return False
    return True


@pytest.mark.parametrize("rule", ch.AGGREGATORS)
@pytest.mark.parametrize("n, fraction", [(5, 0.2), (7, 0.3), (10, 0.4), (11, 0.45), (20, 0.2), (20, 0.25),
                                         (20, 0.4), (20, 0.45), (20, 0.5), (23, 0.2), (50, 0.3)])
def test_spec_constraints_accept_exactly_what_the_rules_tolerate(rule, n, fraction):
    """The spec (pure data) copies robust.check_rule's conditions: both must agree on every cell."""
    f = ch.n_byzantine(n, fraction)
    accepted = _spec_accepts(dict(aggregator=rule, n_clients=n, byzantine_fraction=fraction, attack="gaussian"))
    assert accepted == (ch.applicable(rule, n, f) and n - f >= 2)


def test_softmax_gradient_matches_torch_autograd(data):
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.1, data.dim)
    X, y = data.X[:40], data.y[:40]
    wt = torch.tensor(w, requires_grad=True)
    W = wt.reshape(X.shape[1] + 1, data.n_classes)
    logits = torch.as_tensor(X) @ W[:-1] + W[-1]
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)).backward()
    np.testing.assert_allclose(ch._softmax_grad(w, X, y, data.n_classes), wt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_federated_bed_learns_and_repeats(data):
    clean = ch.run_federated(data, "fedavg", "none", 0, 5, seed=3)
    assert clean["accuracy"] > 0.85                          # digits is learnable: room for attacks to destroy
    assert ch.run_federated(data, "fedavg", "none", 0, 5, seed=3)["accuracy"] == clean["accuracy"]
    # Byzantine clients that behave send their honest updates: FedAvg is the clean run
    assert ch.run_federated(data, "fedavg", "none", 2, 5, seed=3)["accuracy"] == clean["accuracy"]
    assert clean["per_class"].shape == (10,) and np.all((clean["per_class"] >= 0) & (clean["per_class"] <= 1))


def test_adaptive_attack_breaks_fedavg_not_the_median(data):
    fedavg = ch.run_federated(data, "fedavg", "adaptive", 2, 5, seed=0)["accuracy"]
    median = ch.run_federated(data, "median", "adaptive", 2, 5, seed=0)["accuracy"]
    assert fedavg < 0.7 and median > 0.9                                # clean: about 0.95


def test_run_federated_refuses_a_rule_outside_its_condition(data):
    with pytest.raises(ParameterError, match="4f \\+ 3"):
        ch.run_federated(data, "bulyan", "none", 2, 1, seed=0)          # n = 10 < 11


def test_dp_noise_multiplier_reaches_the_budget_by_opacus_accounting():
    from opacus.accountants import RDPAccountant

    z = ch.dp_noise_multiplier(8.0, 20)
    acc = RDPAccountant()
    for _ in range(20):
        acc.step(noise_multiplier=z, sample_rate=1.0)
    assert 7.9 <= acc.get_epsilon(ch.DELTA) <= 8.0
    assert ch.dp_noise_multiplier(1.0, 20) > z                           # less epsilon, more noise


def test_client_noise_clips_then_adds_gaussian_of_scale_z_clip():
    U = np.vstack([np.full(4000, 0.1), np.full(4000, -0.001)])          # norms 6.3 and 0.063
    out = ch._clip_and_noise(U, 0.0, 1.0, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, np.linalg.norm(U[1])])
    noisy = ch._clip_and_noise(U, 2.0, 0.5, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(noisy[0] - noisy[0].mean()), 1.0 * np.sqrt(4000), rtol=0.05)
    resid = noisy[1] - U[1]                                             # the small update is not clipped
    assert abs(resid.std() - 2.0 * 0.5) < 0.03


def test_seed_aggregator_demo_shows_its_defects():
    demo = ch.seed_aggregator_demo(0)
    assert demo["flat_equals_median"] and not demo["layer_equals_median"]
    assert demo["layer_shape_in"] == (3, 4) and demo["layer_shape_out"] == (3,)
    assert demo["class_error"].startswith("AttributeError") and "sensitivity" in demo["class_error"]
    assert demo["median_shift"] == 1.0


def test_minority_class_is_the_one_two_clients_hold(data):
    y = np.repeat(np.arange(3), 30)
    parts = (np.r_[0:10, 30:40, 60:85], np.r_[10:20, 40:50, 85:88], np.r_[20:30, 50:60, 88:90])
    toy = ch.FedData(np.zeros((90, 2)), y, np.zeros((3, 2)), np.arange(3), parts, 3)
    assert ch.minority_class(toy) == 2                                  # 25 + 3 of 30 at two clients


def test_retained_divides_by_the_same_seeds_clean_fedavg():
    clean = pd.DataFrame({"seed": [0, 1, 0], "aggregator": ["fedavg", "fedavg", "median"],
                          "accuracy": [0.8, 0.5, 0.1]})
    grid = pd.DataFrame({"seed": [0, 1], "aggregator": ["median", "median"], "accuracy": [0.4, 0.5]})
    assert ch.retained_table(grid, clean).retained.tolist() == [0.5, 1.0]


def test_applicable_follows_the_rules_and_alie():
    assert ch.applicable("bulyan", 20, 4) and not ch.applicable("bulyan", 20, 5)
    assert ch.applicable("krum", 20, 8) and not ch.applicable("krum", 20, 9)
    assert not ch.applicable("median", 10, 5) and ch.applicable("fedavg", 10, 6)
    assert not ch.applicable("fedavg", 10, 6, "alie")


def test_audit_study_rates_are_rates_and_sybils_evade_the_requester_count():
    a = ch.audit_study(params(n_seeds=1, n_logs=20))
    assert set(a.threshold) == set(ch.THRESHOLDS) and a[["detection", "false_alarm"]].stack().between(0, 1).all()
    at5 = a.query("threshold == 5").set_index(["by", "sybils"])
    assert at5.loc[("requester", 3), "detection"] == 0.0                 # 5 probes over 3 ids: at most 2 each
    assert at5.loc[("item", 3), "detection"] >= at5.loc[("requester", 1), "detection"] - 1e-12


@pytest.mark.timeout(300)
def test_record_and_claims_at_a_reduced_size():
    P = params(n_seeds=2, n_clients=8, rounds=2, n_logs=5, n_target=40, mi_epochs=1)
    shares, grid, dp = ch.share_grid(P), ch.attack_grid(P), ch.dp_study(P)
    audit, mi, demo = ch.audit_study(P), ch.membership_study(P), ch.seed_aggregator_demo(P.seed)
    assert "bulyan" not in set(grid.aggregator)                         # n = 8 < 4f + 3 with f = 2
    assert set(mi.epsilon) == set(ch.MI_EPSILONS) and len(mi) == 2 * len(ch.MI_EPSILONS)
    assert np.allclose(mi.query("epsilon == 1").advantage_bound, (math.e - 1) / (math.e + 1), atol=1e-4)
    record = ResultRecord("10_adversarial_participants", vars(P))
    worst = ch.record_metrics(record, P, shares, grid, dp, audit, mi, demo)
    verdicts = ch.add_claims(record, P, worst, audit, demo)
    assert list(verdicts) == [c.id for c in SPEC.claims]
    assert verdicts["seed_aggregator_as_written"] == "not reproduced"   # the class raises
    m = record.metrics
    assert m["worst_retained_aggregator"]["value"] == m["worst_retained_trimmed_mean"]["value"]
    assert m["robust_goal_headroom"]["value"] == pytest.approx(0.9 - m["worst_retained_fedavg"]["value"])
    values = ch.glue_values(record, P, dp)
    assert values["f"] == 2 and values["v_seed_aggregator_as_written"] == "not reproduced"
    assert not any(k.startswith("agg_ms") for k in values)
