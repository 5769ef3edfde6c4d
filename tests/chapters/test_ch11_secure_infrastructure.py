"""Chapter 11 (secure infrastructure): the vertical split training against scikit-learn, update compression
and hierarchical averaging, the studies' checks, the spec's drop-out constraint against the protocol, and the
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


# ----------------------------------------------------------------------------- compression, scaling

def test_stochastic_quantization_is_unbiased_and_on_its_grid():
    rng = np.random.default_rng(5)
    delta = rng.normal(size=50)
    draws = np.array([ch.compress(delta, "flat int-quantized", np.zeros(50), rng, quant_bits=4)[0]
                      for _ in range(4000)])
    levels = draws / np.abs(delta).max() * 7
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)  # 2^(4-1) - 1 = 7 levels a side
    np.testing.assert_allclose(draws.mean(axis=0), delta, atol=4 * draws.std(axis=0).max() / np.sqrt(4000))
    assert ch.compress(delta, "flat int-quantized", np.zeros(50), rng, quant_bits=4)[2] == 4 + 25


def test_top_k_sends_the_largest_entries_and_keeps_the_rest_for_later():
    rng = np.random.default_rng(6)
    delta, residual = rng.normal(size=40), rng.normal(size=40)
    sent, new_residual, nbytes = ch.compress(delta, "flat top-k", residual, rng, topk_fraction=0.1)
    assert np.count_nonzero(sent) == 4 and nbytes == 4 * 8
    full = delta + residual
    assert set(np.flatnonzero(sent)) == set(np.argsort(-np.abs(full))[:4])
    np.testing.assert_allclose(sent + new_residual, full)  # nothing is lost, only delayed


def test_hierarchical_averaging_every_round_equals_flat_averaging():
    data = make_remanufacturing(1200, seed=7)
    X = (data.X.to_numpy() - data.X.to_numpy().mean(axis=0)) / data.X.to_numpy().std(axis=0)
    parts = [(X[s], data.y[s].astype(float)) for s in np.array_split(np.arange(900), 9)]
    flat = ch.federated_logistic(parts, X[900:], data.y[900:], 10, "flat float32", np.random.default_rng(0))
    hier = ch.federated_logistic(parts, X[900:], data.y[900:], 10, "hierarchical", np.random.default_rng(0), kappa=1)
    assert hier["accuracy"] == flat["accuracy"]
    assert hier["cloud_bytes_round"] < flat["cloud_bytes_round"]  # 3 edges instead of 9 sites
    assert flat["bytes_per_site_round"] == hier["bytes_per_site_round"] == 4 * 16


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
    P = _params(n_seeds=2, n_items=1000, rounds=2, n_sites=5, update_dim=1280)
    data = make_remanufacturing(P.n_items, seed=P.seed)
    dictionary, schema = ch.dictionary_study(data.feature_names), ch.schema_study(data)
    align, ranges, checks = ch.alignment_study(P), ch.dp_range_study(P), ch.key_exchange_checks()
    secagg, scaling, bench = ch.secagg_study(P), ch.scaling_study(P), ch.read_bench()
    record = ResultRecord(NAME, vars(P))
    ch.record_metrics(record, P, dictionary, schema, align, ranges, checks, bench, secagg, scaling)
    verdicts = ch.add_claims(record, P, dictionary, schema, align, checks, secagg, scaling)
    assert list(verdicts) == [c.id for c in SPECS[NAME].claims]
    assert {m for m in SPECS[NAME].headline} <= set(record.metrics)
    assert record.metrics["seed_flow_keys_agree"]["value"] == 0.0
    assert record.metrics["psi_alignment_correct_and_minimal"]["value"] == 1.0
    values = ch.glue_values(record, P, dictionary, schema, align, bench)
    assert values["n_recovered"] == int(round(record.metrics["dictionary_recovery_rate"]["value"] * 15))
    assert all(f"verdict_{c.id}" in values for c in SPECS[NAME].claims)
