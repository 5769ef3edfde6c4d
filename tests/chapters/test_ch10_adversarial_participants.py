"""The adversarial-participants chapter (notebooks/10): its federated bed, DP noise, studies and claims."""
import math
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from ppal_lab.chapters import ch10_adversarial_participants as ch
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS

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


def test_federated_bed_learns_and_repeats(data):
    clean = ch.run_federated(data, "fedavg", "none", 0, 5, seed=3)
    assert clean["accuracy"] > 0.85                          # digits is learnable: room for attacks to destroy
    assert ch.run_federated(data, "fedavg", "none", 0, 5, seed=3)["accuracy"] == clean["accuracy"]
    # Byzantine clients that behave send their honest updates: FedAvg is the clean run
    assert ch.run_federated(data, "fedavg", "none", 2, 5, seed=3)["accuracy"] == clean["accuracy"]
    assert clean["per_class"].shape == (10,) and np.all((clean["per_class"] >= 0) & (clean["per_class"] <= 1))


def test_sites_are_the_protocols_participants_holding_every_record(data):
    sites = ch.local_sites(data, 3, flipped=frozenset({1}))
    counts = sites.public_counts()
    np.testing.assert_array_equal(counts[:, 1], [p.size for p in data.parts])   # all records labelled
    assert counts[:, 2].sum() == 0
    p1 = sites.participants[1]
    np.testing.assert_array_equal(p1.labels_of(np.arange(p1.n_pool)), 9 - data.y[data.parts[1]])


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


def test_client_level_dp_noise_at_the_server_is_for_fedavg_and_repeats(data):
    z = ch.dp_noise_multiplier(8.0, 3)
    with pytest.raises(ParameterError, match="dp_noise"):
        ch.run_federated(data, "median", "none", 1, 1, 0, dp_z=z, dp_noise="server")
    central = ch.run_federated(data, "fedavg", "none", 0, 3, 0, dp_z=z, dp_noise="server")
    assert torch.equal(central["params"], ch.run_federated(data, "fedavg", "none", 0, 3, 0, dp_z=z,
                                                           dp_noise="server")["params"])
    at_sites = ch.run_federated(data, "fedavg", "none", 0, 3, 0, dp_z=z)
    clean = ch.run_federated(data, "fedavg", "none", 0, 3, 0)
    drift = [float((r["params"] - clean["params"]).norm()) for r in (central, at_sites)]
    assert drift[0] < drift[1]             # one noise draw on the mean against n draws averaged: sqrt(n) less


def test_membership_trainer_is_the_protocol_with_dp_sgd_at_the_sites_within_budget():
    rng = np.random.default_rng(0)
    X, y = rng.random((60, 64)), rng.integers(0, 10, 60)
    for eps in (1.0, 8.0):                 # a plan the site budgets refuse would raise
        train = ch.federated_trainer(eps, 3)
        a, b = train(X, y, 4)(X, y), train(X, y, 4)(X, y)
        assert a.shape == (60,) and np.array_equal(a, b)
    plain = ch.federated_trainer(math.inf, 3)(X, y, 4)(X, y)
    assert not np.allclose(plain, a)


def test_seed_aggregator_demo_shows_its_defects():
    demo = ch.seed_aggregator_demo(0)
    assert demo["flat_equals_median"] and not demo["layer_equals_median"]
    assert demo["layer_shape_in"] == (3, 4) and demo["layer_shape_out"] == (3,)
    assert demo["class_error"].startswith("AttributeError") and "sensitivity" in demo["class_error"]
    assert demo["median_shift"] == 1.0


def test_minority_class_is_the_one_two_clients_hold(data):
    y = np.repeat(np.arange(3), 30)
    parts = (np.r_[0:10, 30:40, 60:85], np.r_[10:20, 40:50, 85:88], np.r_[20:30, 50:60, 88:90])
    toy = ch.FedData(np.zeros((90, 2)), y, np.zeros((3, 2)), np.arange(3), parts, 3, np.zeros(2), np.ones(2))
    assert ch.minority_class(toy) == 2                                  # 25 + 3 of 30 at two clients


def test_the_share_grid_is_read_from_the_benchmark_record(tmp_path):
    import json

    rows = [{"seed": 0, "aggregator": "median", "attack": "ipm", "share": 0.2, "f": 4, "accuracy": 0.9}]
    (tmp_path / "b.json").write_text(json.dumps({"params": {"attack": "ipm", "n_seeds": 1}, "share_grid": rows}))
    grid, params = ch.read_share_grid(tmp_path / "b.json")
    assert grid.to_dict("records") == rows and params["attack"] == "ipm"


def test_clean_runs_are_fedavg_without_attack():
    grid = pd.DataFrame({"seed": [0, 0, 0], "aggregator": ["fedavg", "median", "fedavg"],
                         "attack": ["none", "none", "ipm"], "accuracy": [0.9, 0.8, 0.1], "share": 0.2})
    assert ch.clean_runs(grid).to_dict("records") == [{"seed": 0, "aggregator": "fedavg", "attack": "none",
                                                       "accuracy": 0.9, "share": 0.0}]


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


# ----------------------------------------------------------------------------------------------
# the same rounds on Flower: sites as ClientApps (tests/federated/test_flower_app.py's helpers)
# ----------------------------------------------------------------------------------------------
def _flower_helpers():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "federated" / "test_flower_app.py"
    spec = importlib.util.spec_from_file_location("_test_flower_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flower_setting(tmp_path):
    """4 sites, site 0..3 with 1 Byzantine sign-flipper, the median, 2 rounds: the in-process run,
    and what a Flower ServerApp needs to run the same."""
    from ppal_lab.federated.flower_app import write_site_files

    data = ch.load_federated(4, 0.5, 1)
    byz = ch.byzantine_sites(4, 1, 1)
    ours = ch.run_federated(data, "median", "sign_flip", 1, 2, seed=1)
    write_site_files(data.X, data.y, data.parts, tmp_path)

    def on_flower(grid, node_ids):
        from ppal_lab.federated.flower_app import FlowerSites
        from ppal_lab.federated.protocol import seed_streams

        v = ch.site_settings(data, 1)
        sites = FlowerSites(grid, node_ids).setup(v, {"plan": ch.PLAN, "training_off": False},
                                                  seed_streams(1, 4)[1], [p.size for p in data.parts])
        return ch.train_federated(sites, data, "median", "sign_flip", byz, 2, seed=1), sites

    return ours, on_flower


def test_ch10_rounds_on_flower_messages_give_the_in_process_model(tmp_path):
    from ppal_lab.federated.flower_app import site_app

    ours, on_flower = _flower_setting(tmp_path)
    grid = _flower_helpers().LoopbackGrid(site_app(tmp_path), 4)
    theirs, sites = on_flower(grid, grid.get_node_ids())
    assert torch.equal(ours["params"], theirs["params"]) and ours["accuracy"] == theirs["accuracy"]
    assert {step for step, *_ in sites.transcript} == {"query.hello", "query.setup", "train"}


@pytest.mark.slow
def test_ch10_rounds_on_flowers_simulation_engine_give_the_in_process_model(tmp_path):
    """Flower's simulation engine (Ray, 2 CPUs): the same model as in process, bit for bit."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from ppal_lab.federated import flower_app

    ours, on_flower = _flower_setting(tmp_path)
    box, app = [], ServerApp()

    @app.main()
    def main(grid, context):
        nodes = []
        while len(nodes) < 4:
            nodes = sorted(grid.get_node_ids())
        box.append(on_flower(grid, nodes[:4])[0])

    flower_app._start_ray(flower_app.RAY_BACKEND["init_args"])
    run_simulation(app, flower_app.site_app(tmp_path), num_supernodes=4, backend_config=flower_app.RAY_BACKEND)
    assert box and torch.equal(ours["params"], box[0]["params"])


# ---- the notebook's figure and table ----------------------------------------------------------------


def test_audit_roc_figure_has_a_line_per_scheme_averaged_over_seeds():
    rows = [{"seed": s, "by": by, "sybils": syb, "threshold": t, "detection": 1.0 - 0.1 * t + 0.1 * s,
             "false_alarm": 0.5 - 0.1 * t}
            for s in (0, 1) for by, syb in (("requester", 1), ("item", 3)) for t in (3, 4, 5)]
    fig = ch.plot_audit_roc(pd.DataFrame(rows), 40)
    ax = fig.axes[0]
    assert ax.get_title() == "Query auditor ROC, window 40" and fig.get_figwidth() <= 7.5
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["count per item, 3 prober(s)",
                                                                  "count per requester, 1 prober(s)"]
    item = ax.get_lines()[0]
    assert list(item.get_xdata()) == pytest.approx([0.2, 0.1, 0.0])
    assert list(item.get_ydata()) == pytest.approx([0.75, 0.65, 0.55])          # mean over the two seeds
    assert [a.get_text() for a in ax.texts] == ["5", "5"] and ax.texts[0].xy == pytest.approx((0.0, 0.55))
    assert ax.get_lines()[-1].get_linestyle() == ":"                             # the chance diagonal
    plt.close(fig)


def test_advantage_table_averages_per_epsilon_with_infinity_in_words():
    mi = pd.DataFrame({"epsilon": [math.inf, math.inf, 1.0], "advantage": [0.2, 0.4, 0.01],
                       "advantage_lower": [0.1, 0.3, -0.05], "lira_advantage": [0.25, 0.35, 0.0],
                       "advantage_bound": [1.0, 1.0, 0.46], "epsilon_lb": [0.5, 0.7, 0.0]})
    adv = ch.advantage_table(mi)
    assert list(adv.index) == ["1", "inf"]
    assert list(adv.columns) == ["loss threshold", "95% lower bound", "LiRA", "DP bound", "epsilon proved"]
    assert adv.loc["inf"].tolist() == pytest.approx([0.3, 0.2, 0.3, 1.0, 0.6])
    assert adv.loc["1", "DP bound"] == 0.46
