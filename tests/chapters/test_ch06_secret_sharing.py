"""The secret-sharing chapter (notebooks/06): its Shamir studies, record and verdict rules."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters import ch06_secret_sharing as ch
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord
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
    assert n_tests == 10 and alpha == pytest.approx(0.001)


def test_shamir_studies_reproduce_the_three_appendix_b_claims():
    """Section "Shamir's scheme, step by step" and "Computing on shares" at the reduced size."""
    P = params()
    recon, privacy, circuits = ch.reconstruction_study(P), ch.privacy_study(P), ch.circuit_study(P)
    assert list(recon.index) == [0, 1] and (recon.rate == 1).all()
    assert privacy["p (t+1 parties, power check)"].isna().all()   # 13**3 cells: too few sharings
    assert (circuits.exact_rate == 1).all() and (circuits.max_degree <= P.t).all()
    _, alpha = ch.bonferroni(P.n_seeds)
    assert ch.reconstruction_verdict(recon) == "reproduced"
    assert ch.hiding_verdict(privacy, alpha) == "reproduced"
    assert ch.circuit_verdict(circuits, P.t) == "reproduced"
    assert ch.privacy_study(P).equals(privacy)                      # seeded: same parameters, same table


def test_verdict_rules():
    recon = pd.DataFrame({"rate": [1.0, 1.0], "t_sets_refused": [10, 9], "t_sets_tried": [10, 10]})
    assert ch.reconstruction_verdict(recon) == "not reproduced"
    privacy = pd.DataFrame({"p (first t parties)": [0.5, 0.0001], "p (last t parties)": [0.3, 0.4],
                            "p (t+1 parties, power check)": [1e-9, 1e-9]})
    assert ch.hiding_verdict(privacy, 0.001) == "not reproduced"
    assert ch.hiding_verdict(privacy.assign(**{"p (first t parties)": 0.5}), 0.001) == "reproduced"
    weak_power = privacy.assign(**{"p (first t parties)": 0.5, "p (t+1 parties, power check)": 0.2})
    assert ch.hiding_verdict(weak_power, 0.001) == "not reproduced"
    circuits = pd.DataFrame({"exact_rate": [1.0, 1.0], "max_degree": [2, 3]})
    assert ch.circuit_verdict(circuits, 2) == "not reproduced" and ch.circuit_verdict(circuits, 3) == "reproduced"
    ulp = pd.Series({op: 0.4 for op in fp.OP_NAMES})
    assert ch.worse_than_float32(ulp) == [] and ch.fixed_point_verdict([]) == "not reproduced"
    half = list(fp.OP_NAMES[: len(fp.OP_NAMES) // 2])
    assert ch.worse_than_float32(pd.Series({op: (3.0 if op in half else 0.4) for op in fp.OP_NAMES})) == half
    assert ch.fixed_point_verdict(half) == "partly"


def test_add_claims_records_four_claims_with_their_verdicts():
    P = params()
    recon, privacy, circuits = ch.reconstruction_study(P), ch.privacy_study(P), ch.circuit_study(P)
    summary = pd.DataFrame({"median_ulp32": [2.0] * len(fp.OP_NAMES)}, index=list(fp.OP_NAMES))
    record = ResultRecord("06_secret_sharing", vars(P))
    worse = ch.add_claims(record, P, recon, privacy, circuits, summary)
    assert worse == list(fp.OP_NAMES)
    assert [c["id"] for c in record.claims] == ["shamir_t_plus_1_reconstruct", "shamir_t_shares_hide",
                                               "shamir_circuits_degree_reduction", "secfloat_vs_fixed_point"]
    assert [c["verdict"] for c in record.claims] == ["reproduced"] * 3 + ["partly"]
