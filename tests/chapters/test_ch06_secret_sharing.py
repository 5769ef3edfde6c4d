"""The secret-sharing chapter (notebooks/06): its Shamir studies, record metrics and declared claims."""
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters import ch06_secret_sharing as ch
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS
from ppal_lab.secure import fixed_point as fp
from ppal_lab.secure import shamir


def params(**changes):
    """The notebook's parameters at the determinism test's reduced size."""
    values = dict(seed=0, n_seeds=2, t=2, n_parties=5, modulus=2305843009213693951, small_modulus=13,
                  n_sharings=1000, n_circuits=5, precision_bits=16, n_inputs=50)
    return SimpleNamespace(**{**values, **changes})


def test_setup_checks_what_a_range_cannot_before_any_work():
    scheme, small, rng = ch.setup(params())
    assert (scheme.t, scheme.n) == (2, 5) and isinstance(rng, np.random.Generator)
    with pytest.raises(ParameterError, match="^n_sharings = 800"):
        ch.setup(params(n_sharings=800))                 # 5 * 13**2 = 845 needed
    with pytest.raises(ParameterError, match="^n = 4"):
        ch.setup(params(n_parties=4))                    # multiplication needs n >= 2t + 1


def test_bonferroni_keeps_the_familywise_error_at_one_percent():
    n_tests, alpha = ch.bonferroni(5)
    assert n_tests == 15 and alpha == pytest.approx(0.01 / 15)


def test_shamir_studies_at_the_reduced_size():
    """Sections "Shamir's scheme, step by step" and "Computing on shares" at the reduced size."""
    P = params()
    recon, privacy, circuits = ch.reconstruction_study(P), ch.privacy_study(P), ch.circuit_study(P)
    assert list(recon.index) == [0, 1] and (recon.rate == 1).all()
    assert privacy["p (t+1 parties, power check)"].isna().all()   # 13**3 cells: too few sharings
    assert privacy[["p (first t parties)", "p (last t parties)", "p (opened values)"]].gt(0).all().all()
    assert (circuits.exact_rate == 1).all() and (circuits.max_degree <= P.t).all()
    # counted from the parties' messages: double random sharing 2n(n-1) + opening n(n-1)
    assert (circuits["elements per multiplication"] == 3 * P.n_parties * (P.n_parties - 1)).all()
    assert ch.privacy_study(P).equals(privacy)                      # seeded: same parameters, same table


def test_power_check_rejects_t_plus_one_shares():
    """With enough sharings for the 13**3 cells, t + 1 shares (which determine the secret) are caught."""
    privacy = ch.privacy_study(params(n_seeds=1, n_sharings=11_000))
    assert privacy["p (t+1 parties, power check)"].iloc[0] < 1e-6


def _claims_record(P, privacy=None):
    recon, circuits = ch.reconstruction_study(P), ch.circuit_study(P)
    privacy = ch.privacy_study(P) if privacy is None else privacy
    summary = pd.DataFrame({"median_ulp32": [2.0] * len(fp.OP_NAMES)}, index=list(fp.OP_NAMES))
    record = ResultRecord("06_secret_sharing", vars(P))
    ch.record_metrics(record, P, recon, privacy, circuits, _FakeTable(P))
    worse = ch.add_claims(record, P, recon, privacy, circuits, summary)
    return record, worse


class _FakeTable:
    """The op table's two accessors that record_metrics reads, without starting CrypTen."""

    def __init__(self, P):
        rows = [{"op": op, "max_abs_err": 1e-4, "max_rel_err": 1e-3, "median_ulp32": 2.0, "median_ulp32_f32": 0.3,
                 "rounds": 1, "bytes": 8 * P.n_inputs, "time_s": 0.01, "within_bound": 1.0}
                for op in fp.OP_NAMES for _ in range(P.n_seeds)]
        self._per_rep = pd.DataFrame(rows)
        self.samples = pd.DataFrame({"crypten_decoded": [1.0, 2.0], "secure": [1.0, 2.0]})

    def per_rep(self):
        return self._per_rep


def test_claims_are_decided_from_metrics_the_record_has():
    P = params()
    record, worse = _claims_record(P)
    assert worse == list(fp.OP_NAMES)
    claims = {c["id"]: c for c in record.claims}
    assert list(claims) == [c.id for c in SPECS["06_secret_sharing"].claims]
    for c in SPECS["06_secret_sharing"].claims:
        assert c.kind == "not measurable" or c.metric in record.metrics
    assert [claims[i]["verdict"] for i in claims] == ["reproduced"] * 3 + ["not measurable"]
    assert record.metrics["shamir_elements_per_mul"]["value"] == 3 * P.n_parties * (P.n_parties - 1)


def test_a_rejected_independence_test_sets_the_hiding_metric_to_zero():
    """The 0/1 metric follows the declared level: one p-value at the Bonferroni threshold is a rejection."""
    P = params()
    _, alpha = ch.bonferroni(P.n_seeds)
    privacy = ch.privacy_study(P)
    privacy.iloc[1, privacy.columns.get_loc("p (opened values)")] = alpha
    record, _ = _claims_record(P, privacy)
    assert record.metrics["shamir_hiding_not_rejected"]["value"] == 0
    assert {c["id"]: c["verdict"] for c in record.claims}["shamir_t_shares_hide"] == "not reproduced"


# ---- the notebook's figures and tables --------------------------------------------------------------


def test_glue_values_add_the_parameters_the_prose_names_only_when_given():
    P = params()
    record, worse = _claims_record(P)
    circuits = ch.circuit_study(P)
    summary = pd.DataFrame({"within_bound": [1.0, 0.5]}, index=["add", "mul"])
    kw = {"n_tests": 6, "slips": 0, "n_results": 2, "worse": worse}
    plain = ch.glue_values(record, circuits, summary, **kw)
    assert "modulus" not in plain and plain["within_min"] == 0.5 and plain["n_worse"] == len(fp.OP_NAMES)
    full = ch.glue_values(record, circuits, summary, **kw, params=P)
    assert {k: full[k] for k in ("small_modulus", "precision_bits", "modulus", "n_sharings")} == {
        "small_modulus": 13, "precision_bits": 16, "modulus": 2305843009213693951, "n_sharings": 1000}


def test_shamir_polynomial_figure_marks_shares_and_secret_in_both_panels():
    small = shamir.Shamir(1, 3, 7, rng=0)
    fig = ch.plot_shamir_polynomial(small, [3, 2], [5, 0, 2], 3)   # f(x) = 3 + 2x mod 7: f(1..3) = 5, 0, 2
    top, bottom = fig.axes
    assert fig.get_figwidth() <= 7.5 and top.get_title() == "The dealer's polynomial"
    assert bottom.get_title() == "The same polynomial in GF(7)"
    assert [t.get_text() for t in bottom.get_legend().get_texts()] == [
        "f(x) mod p, all x in the field", "the n shares", "secret f(0)"]
    field_points = bottom.collections[0].get_offsets()
    assert len(field_points) == 7 and list(field_points[:, 1]) == [3, 5, 0, 2, 4, 6, 1]
    assert list(top.collections[0].get_offsets()[:, 1]) == [5, 7, 9]      # before mod p
    plt.close(fig)


def test_multiplication_steps_table_shows_degrees_values_and_messages():
    s = shamir.Shamir(1, 3, 101, rng=0)
    a, b = s.share(3), s.share(4)
    h = s.mul_local(a, b)
    r_t, r_2t = s.double_random()
    d = s.open(h - r_2t, degree=2)
    steps = ch.multiplication_steps_table(s, a, h, r_t, r_2t, d, r_t + d, 12, 6)
    assert list(steps.columns) == ["degree of the shares' polynomial", "value", "field elements sent (counted)"]
    assert steps.loc["[h] = [a]·[b]: local products", "degree of the shares' polynomial"] == 2
    assert steps.loc["[ab] = d + [r]_t"].tolist() == [1, 12, 0]                 # 3 * 4, back at degree t
    assert steps.loc["[r]_t and [r]_2t: double random sharing"].tolist() == ["1 and 2", "unknown to all", 12]
    assert steps["field elements sent (counted)"].tolist() == ["—", 0, 12, 6, 0]


def test_beaver_table_lists_the_steps_with_party_zeros_share():
    result = {"e": 11, "f": -7, "z_shares": (1, 2), "result": -4.875}
    tab = ch.beaver_table(3.25, -1.5, 100, 30, result)
    assert list(tab.columns) == ["value"]
    assert tab.loc["x, y", "value"] == "3.25, -1.5" and tab.loc["party 0's share of x", "value"] == 70
    assert tab.loc["x·y decoded", "value"] == -4.875 and len(tab) == 7


def _op_summary(ops=("add", "mul")):
    return pd.DataFrame({"max_abs_err": [1e-5, 2e-4], "max_rel_err": [1e-3, 2e-3], "median_ulp32": [0.4, 3.0],
                         "median_ulp32_f32": [0.2, 0.25], "max_approx_err": [0.0, 1e-4],
                         "max_rounding_err": [1e-5, 1e-4], "max_abs_err_f32": [1e-7, 2e-7],
                         "within_bound": [1.0, 0.5], "rounds": [0, 3], "bytes_per_element": [0, 48.0],
                         "time_s": [0.002, 0.0125]}, index=list(ops))


def test_op_summary_table_puts_one_op_a_column_with_rounds_whole_and_shares_in_percent():
    styler = ch.op_summary_table(_op_summary())
    assert list(styler.data.columns) == ["add", "mul"] and len(styler.data) == 10
    assert styler.data.loc["time (ms)", "mul"] == pytest.approx(12.5)
    html = styler.to_html()
    assert "50.0%" in html and "100.0%" in html and ">3<" in html and "12.5" in html


def test_error_sources_and_cost_figure_has_three_panels_with_bars_per_op():
    fig = ch.plot_error_sources_and_cost(_op_summary())
    top = next(ax for ax in fig.axes if ax.get_title().startswith("Where the error"))
    assert [t.get_text() for t in top.get_legend().get_texts()] == [
        "approximation (algorithm)", "rounding (fixed point)", "float32"]
    assert len(top.patches) == 3 * 2 and top.get_yscale() == "log"
    assert min(p.get_height() for p in top.patches) == pytest.approx(1e-12)     # the zero drawn at 1e-12
    titles = {ax.get_title(): ax for ax in fig.axes}
    assert [p.get_height() for p in titles["Rounds per operation"].patches] == [0, 3]
    assert titles["Bytes per element"].get_ylabel() == "bytes (two-party total)" and fig.get_figwidth() <= 7.5
    plt.close(fig)


def test_error_vs_input_figure_has_a_panel_per_op_from_the_first_repeat():
    rows = [{"op": op, "rep": rep, "key": k, "abs_err_secure": 0.0 if k == 1 else 1e-5, "abs_err_f32": 1e-7}
            for op in fp.OP_NAMES for rep in (0, 1) for k in (-2, 1, 3)]
    fig = ch.plot_error_vs_input(pd.DataFrame(rows), 16, 4)
    axes = fig.axes
    assert len(axes) == len(fp.OP_NAMES) == 8 and fig.get_figwidth() <= 7.5
    assert [ax.get_title() for ax in axes] == [ch.OP_TITLE[op] for op in fp.OP_NAMES]
    div = axes[list(fp.OP_NAMES).index("div")]
    assert div.get_xscale() == "log" and div.get_xlabel() == "|divisor y|"
    secure = div.collections[0].get_offsets()
    assert len(secure) == 3 and sorted(secure[:, 0]) == [1, 2, 3] and secure[:, 1].min() == pytest.approx(1e-12)
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["CrypTen fixed point", "float32", "$2^{-b}$"]
    assert "seed 4, b = 16" in fig._suptitle.get_text()
    plt.close(fig)


def test_ablation_table_sets_the_precisions_side_by_side():
    idx = pd.MultiIndex.from_product([["mul", "exp"], [12, 20]], names=["op", "precision_bits"])
    bits = pd.DataFrame({"max_abs_err": [1e-3, 1e-5, 2e-3, 2e-5]}, index=idx)
    iters = pd.DataFrame({"max_abs_err": [5e-4], "rounds": [30]},
                         index=pd.MultiIndex.from_tuples([("exp", 16)], names=["op", "precision_bits"]))
    cmp = ch.ablation_table(bits, iters, pd.Series({"mul": 1e-4, "exp": 2e-4}), 16)
    assert list(cmp.columns) == ["12 bits", "16 bits (main table)", "20 bits", "16 bits, exp with 12 iterations",
                                 "rounds (12 exp iterations)"]
    assert cmp.loc["exp", "20 bits"] == 2e-5 and cmp.loc["exp", "rounds (12 exp iterations)"] == 30
    assert np.isnan(cmp.loc["mul", "16 bits, exp with 12 iterations"])
