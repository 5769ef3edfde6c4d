"""The secret-sharing chapter (notebooks/06): its Shamir studies, record metrics and declared claims."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters import ch06_secret_sharing as ch
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS
from ppal_lab.secure import fixed_point as fp


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
