"""Chapter 11 (secure infrastructure): the vertical split training against scikit-learn, the scaling
benchmark's table, the studies' checks, the spec's drop-out constraint against the protocol, and the
claims' wiring (the DP quantile is tested in tests/privacy/test_quantiles.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ppal_lab.chapters import ch11_secure_infrastructure as ch
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS
from ppal_lab.data import make_remanufacturing
from ppal_lab.secure import psi
from ppal_lab.secure.secure_aggregation import AggregationAborted, SecureAggregation

pytest.importorskip("rbcl")
NAME = "11_secure_infrastructure"


def _params(**over):
    return SimpleNamespace(**{**SPECS[NAME].defaults(), **over})


# -------------------------------------------------------------------------------- vertical model

def test_vertical_split_training_matches_scikit_learn_logistic_regression():
    data = make_remanufacturing(600, seed=4)
    X = data.X.to_numpy()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    cols = [data.feature_names.index(f) for p in data.parties for f in data.features_of(p)]
    blocks = np.split(X[:, cols], np.cumsum([len(data.features_of(p)) for p in data.parties])[:-1], axis=1)
    l2 = 1e-2
    w = ch.vertical_logistic(blocks, data.y, steps=4000, lr=1.0, l2=l2)
    ref = LogisticRegression(C=1 / (l2 * len(data.y)), tol=1e-10, max_iter=10_000).fit(X[:, cols], data.y)
    np.testing.assert_allclose(np.concatenate(w[:-1]), ref.coef_[0], atol=2e-3)
    assert w[-1][0] == pytest.approx(ref.intercept_[0], abs=2e-3)


def test_vertical_training_refuses_misaligned_blocks():
    with pytest.raises(ParameterError, match="blocks"):
        ch.vertical_logistic([np.zeros((5, 2)), np.zeros((4, 1))], np.zeros(5))


# ------------------------------------------------------------------------------------------- scaling
# (the codecs and the hierarchy are tested in tests/federated/test_compression.py and test_protocol.py)

def _bench_row(n, method, model="logreg", acc=0.8, update=128.0, cloud=1000.0):
    spread = [acc - 0.01, acc, acc + 0.01] if method != "topk" else [acc, acc, acc + 0.003]
    return {"n_sites": n, "model": model, "n_params": 32, "method": method, "final_accuracy": acc,
            "accuracy_per_seed": spread,
            "update_bytes_per_site_round": update, "site_tier_bytes_per_site_round": update + 128,
            "cloud_bytes_per_round": cloud, "bytes_per_round_per_site_median": 1500.0,
            "flower_round_s_median": 0.5, "in_process_round_s_median": 0.01, "flower_startup_s": 20.0,
            "same_as_in_process": True}


def _fake_bench():
    rows = []
    for n in (5, 50):
        rows += [_bench_row(n, "float32", acc=0.80, cloud=256.0 * n), _bench_row(n, "int8", acc=0.79, update=36.0),
                 _bench_row(n, "topk", acc=0.77, update=32.0), _bench_row(n, "hierarchical", acc=0.81, cloud=512.0)]
        rows += [_bench_row(n, "float32", "mlp", acc=0.75), _bench_row(n, "int8", "mlp", acc=0.745),
                 _bench_row(n, "topk", "mlp", acc=0.70), _bench_row(n, "hierarchical", "mlp", acc=0.74)]
    return {"rows": rows}


def test_scaling_table_compares_every_method_with_flat_float32_at_its_size():
    t = ch.scaling_table(_fake_bench())
    assert t.loc[("logreg", 50, "flat int8"), "update vs float32"] == pytest.approx(36 / 128)
    assert t.loc[("logreg", 50, "hierarchical"), "cloud vs flat"] == pytest.approx(512 / (256 * 50))
    assert t.loc[("logreg", 5, "hierarchical"), "cloud vs flat"] == pytest.approx(512 / (256 * 5))
    assert (t.xs("flat float32", level="method")["update vs float32"] == 1).all()
    # per repeat at the largest size, the largest drop: mlp 0.75 - 0.70 moved by the repeats' spread
    np.testing.assert_allclose(ch._accuracy_drop(t), [0.04, 0.05, 0.057])
    np.testing.assert_allclose(ch._accuracy_drop(t, "logreg"), [0.02, 0.03, 0.037])
    assert t.loc[("mlp", 50, "flat top-k"), "accuracy"] == pytest.approx(0.701)
    # a record from before compression existed: its rows are flat float32 logreg runs
    old = {"rows": [{k: v for k, v in _bench_row(5, "float32").items() if k not in ("method", "model")}]}
    assert list(ch.scaling_table(old).index) == [("logreg", 5, "flat float32")]
    assert ch.scaling_table({}).empty


# --------------------------------------------------------------------------------------- studies

def test_schema_alignment_study_reads_what_each_party_received():
    data = make_remanufacturing(50, seed=0)
    out = ch.schema_study(data)
    canon = {p: {psi.canonical_field_name(f) for f in s} for p, s in ch.schemas(data).items()}
    assert out["correct"] and out["sizes_only"]
    assert out["common"] == sorted(set.intersection(*canon.values()))
    for party in canon:  # each party received one masked point per item of the leader's schema, and the
        if party != ch.LABEL_HOLDER:  # leader one per item of each other schema: set sizes only
            assert out["received"][party] == {"H(x)^a": len(canon[ch.LABEL_HOLDER])}
            assert out["received"][ch.LABEL_HOLDER][f"H(y)^b from {party}"] == len(canon[party])
    assert out["pairwise"] == {p: sorted(canon[ch.LABEL_HOLDER] & canon[p]) for p in canon if p != ch.LABEL_HOLDER}


def test_the_dictionary_recovers_exactly_the_names_it_contains():
    names = list(make_remanufacturing(20, seed=0).feature_names)
    table = ch.dictionary_study(names)
    two = set(psi.plausible_field_names(2))
    assert set(table.index[table["recovered (2 words)"]]) == set(names) & two
    assert (table["recovered (2 words)"] >= table["recovered (1 word)"]).all()


def test_key_exchange_checks_the_seed_fails_and_the_hybrid_holds():
    checks = ch.key_exchange_checks()
    assert checks.pop("seed flow: both peers derive one key") is False
    assert all(checks.values()) and len(checks) == 5


def test_secure_aggregation_study_survives_its_dropouts_and_aborts_beyond():
    out = ch.secagg_study(_params(n_seeds=2, n_sites=7, dropout_rate=0.3, update_dim=1280))
    assert (out.dropped == 2 + 1).all() and (out.threshold == 4).all()  # 2 before masking, 1 after
    assert (out.max_abs_error <= out.error_bound).all()
    assert not out.both_kinds_revealed.any() and out.aborts_beyond_threshold.all()


@pytest.mark.parametrize("n_sites", [2, 3, 5, 8, 11])
def test_the_specs_dropout_constraint_is_where_the_protocol_stops_completing(n_sites):
    rng = np.random.default_rng(n_sites)
    for rate in np.linspace(0, 0.95, 20):
        accepted = True
        try:
            SPECS[NAME].validate({"n_sites": n_sites, "dropout_rate": float(rate)})
        except ParameterError:
            accepted = False
        agg = SecureAggregation(n_sites)
        gone = range(1, ch.n_dropped(n_sites, float(rate)) + 1)
        try:
            agg.run(list(rng.normal(size=(n_sites, 4))), drop_before_masking=gone)
            completed = True
        except AggregationAborted:
            completed = False
        assert accepted == completed, (n_sites, rate)


def test_record_metrics_and_claims_follow_the_spec():
    P = _params(n_seeds=2, n_items=1000, n_sites=5, update_dim=1280)
    data = make_remanufacturing(P.n_items, seed=P.seed)
    dictionary, schema = ch.dictionary_study(data.feature_names), ch.schema_study(data)
    align, ranges, checks = ch.alignment_study(P), ch.dp_range_study(P), ch.key_exchange_checks()
    secagg, scaling, bench = ch.secagg_study(P), ch.scaling_table(_fake_bench()), ch.read_bench()
    record = ResultRecord(NAME, vars(P))
    ch.record_metrics(record, P, dictionary, schema, align, ranges, checks, bench, secagg, scaling)
    verdicts = ch.add_claims(record, P, dictionary, schema, align, checks, secagg, scaling)
    assert list(verdicts) == [c.id for c in SPECS[NAME].claims]
    assert {m for m in SPECS[NAME].headline} <= set(record.metrics)
    assert record.metrics["seed_flow_keys_agree"]["value"] == 0.0
    assert record.metrics["psi_alignment_correct_and_minimal"]["value"] == 1.0
    assert record.metrics["scaling_accuracy_drop_50"]["value"] == pytest.approx(0.049)
    assert verdicts["scaling_to_50_sites"] == "not reproduced"  # 5 points > the 1-point reading
    values = ch.glue_values(record, P, dictionary, schema, align, bench, scaling)
    assert values["flower_sites_hi"] == 50 and values["flower_all_equal"] is True
    assert values["n_recovered"] == int(round(record.metrics["dictionary_recovery_rate"]["value"] * 15))
    assert all(f"verdict_{c.id}" in values for c in SPECS[NAME].claims)


# -------------------------------------------------------------------------------- the notebook's tables and figures

def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_schema_table_counts_fields_and_received_points_per_party():
    import pandas as pd

    schema = {"schemas": {"dismantler": ["a", "b", "c"], "oem": ["a", "d"]}, "pairwise": {"oem": ["a", "z"]},
              "received": {"dismantler": {"H(x)^a from oem": 3, "H(y)^b from oem": 2}, "oem": {"H(x)^a": 3}}}
    table = ch.schema_table(schema)
    assert list(table.columns) == ["schema (as written)", "pairwise intersection learned by the leader",
                                   "points received"]
    assert table.loc["dismantler", "points received"] == 5 and table.loc["oem", "schema (as written)"] == 2
    assert table.loc["oem", "pairwise intersection learned by the leader"] == "a, z"
    assert table.loc["dismantler", "pairwise intersection learned by the leader"] == ""  # the leader: none
    assert isinstance(table, pd.DataFrame)


def test_plot_vertical_psi_draws_accuracy_bars_and_three_cost_lines():
    import matplotlib.pyplot as plt
    import pandas as pd

    align = pd.DataFrame({"acc_label_holder": [0.7, 0.72], "acc_joint": [0.9, 0.91]}, index=[0, 1])
    rows = [{"client_size": n, "seconds": n / 1e3, "bytes": 64 * n, "plain_hash_bytes": 32 * n} for n in (100, 1000)]
    fig = ch.plot_vertical_psi(align, rows)
    left, right = fig.get_axes()
    assert len(left.patches) == 4 and _legend_texts(left) == ["dismantler alone", "all four parties (aligned by PSI)"]
    assert len(right.lines) == 3 and list(right.lines[1].get_ydata()) == [0.0064, 0.064]  # MB
    assert right.get_xscale() == "log" and right.get_title() == "PSI cost (benchmark)"
    assert fig.get_figwidth() <= 7.5
    plt.close(fig)


def test_plot_dp_quantile_density_has_three_budgets_and_the_exact_quantile():
    import matplotlib.pyplot as plt

    x = np.linspace(0, 400, 101)
    fig = ch.plot_dp_quantile_density(x, 1.0, seed=2)
    (ax,) = fig.get_axes()
    assert _legend_texts(ax) == ["ε = 0.1", "ε = 1", "ε = 10", "exact 95% quantile"]
    assert ax.lines[-1].get_xdata()[0] == 380.0  # the exact 95% quantile of 0, 4, ..., 400
    assert ax.get_title() == "Where the DP quantile lands (seed 2, n = 101)" and ax.get_xlim() == (0, 570.0)
    plt.close(fig)


def test_plot_secagg_cost_stacks_phases_and_draws_one_line_per_site_count():
    import matplotlib.pyplot as plt

    bench = {"secure_aggregation": [
        {"n_sites": n, "dropout_rate": d, "threshold": n // 2 + 1, "completed": 1, "rounds": 1,
         "p_complete_binomial": 1 - d, "bytes_per_site": {"share_keys": 1000.0 * n, "masked": 2000.0}}
        for n in (5, 10) for d in (0.0, 0.3)]}
    fig = ch.plot_secagg_cost(ch.bench_secagg_table(bench))
    left, right = fig.get_axes()
    assert len(left.patches) == 4 and _legend_texts(left) == ["share keys", "masked"]  # 2 site counts x 2 phases, in words
    assert _legend_texts(right) == ["5 sites", "10 sites"] and list(right.lines[0].get_ydata()) == [1.0, 0.7]
    assert right.get_xlabel() == "drop-out rate per site" and fig.get_figwidth() <= 7.5
    plt.close(fig)


def test_plot_scaling_bytes_accuracy_shows_the_larger_model_per_method():
    import matplotlib.pyplot as plt
    import pandas as pd

    idx = pd.MultiIndex.from_tuples([(m, method, n) for m in ("small", "large") for method in ("flat", "hier")
                                     for n in (5, 50)], names=["model", "method", "sites"])
    scaling = pd.DataFrame({"cloud B/round": [1.0, 2, 3, 4, 10, 100, 5, 6], "accuracy": [0.8] * 8}, index=idx)
    fig = ch.plot_scaling_bytes_accuracy(scaling)
    left, right = fig.get_axes()
    assert _legend_texts(left) == ["flat", "hier"] and list(left.lines[0].get_ydata()) == [10.0, 100.0]
    assert list(left.get_xticks()) == [5, 50] and left.get_yscale() == "log"
    assert right.get_title() == "Accuracy after the last round" and fig.get_figwidth() <= 7.5
    plt.close(fig)
