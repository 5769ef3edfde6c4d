"""Secure similarity (ppal_lab.secure.similarity): equal to plaintext within the fixed-point tolerance.

Tolerance: CrypTen's 16 fractional bits (~1.5e-5) plus the rounding in the Newton iterations of the
reciprocal. Over the whole range of the score (mean capped squared residual q in [0, 100]) we measured
at most ~1e-4; the tests allow ATOL = 1e-3. Decisions are compared on items whose q is farther than
1e-3 from the threshold's 1/threshold - 1 (at a tie the fixed-point result may fall either way).
Each launch starts two processes and imports CrypTen in both (seconds), so each test launches once.
"""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.secure.similarity import (MAX_READING, Z_MAX, plaintext_decision, plaintext_similarity,
                                        secure_similarity, similarity_party)
from ppal_lab.secure.twoparty import run_parties

ATOL = 1e-3
SD = np.array([0.35, 0.6, 6.0, 2.0])


def _pairs(n=200, seed=0):
    """Readings and simulated readings whose scores cover the whole range, capped channels included."""
    rng = np.random.default_rng(seed)
    m = np.abs(rng.normal([2.0, 6.0, 40.0, 20.0], [1.0, 2.0, 30.0, 6.0], (n, 4)))
    spread = np.exp(rng.uniform(-3.0, 3.5, (n, 1)))  # residuals from ~0.05 to ~30 noise SDs
    m_hat = np.clip(m + rng.normal(0.0, 1.0, (n, 4)) * SD * spread, 0.0, MAX_READING)
    return m, m_hat


def test_plaintext_similarity_formula_and_cap():
    m, _ = _pairs(5)
    np.testing.assert_array_equal(plaintext_similarity(m, m, SD), np.ones(5))
    far = m.copy()
    far[:, 2] += 100 * SD[2]  # one channel 100 SDs off counts as Z_MAX SDs
    np.testing.assert_allclose(plaintext_similarity(m, far, SD), 1 / (1 + Z_MAX**2 / 4))
    one = m.copy()
    one[:, 0] += 2 * SD[0]  # z = 2 on one of 4 channels: q = 1
    np.testing.assert_allclose(plaintext_similarity(m, one, SD), 0.5)
    np.testing.assert_array_equal(plaintext_decision(m, one, SD, 0.49), np.ones(5, bool))
    np.testing.assert_array_equal(plaintext_decision(m, one, SD, 0.51), np.zeros(5, bool))


@pytest.mark.parametrize("kwargs, name", [
    ({"simulated": np.ones((3, 4))}, "simulated"),
    ({"readings": -np.ones((4, 4))}, "readings"),
    ({"readings": np.full((4, 4), np.nan)}, "readings"),
    ({"readings": np.full((4, 4), 2 * MAX_READING)}, "readings"),
    ({"sd": np.ones(3)}, "sd"), ({"sd": np.zeros(4)}, "sd"),
    ({"reveal": "everything"}, "reveal"), ({"reveal": ["score", "score"]}, "reveal"),
    ({"threshold": 1.0}, "threshold"), ({"threshold": 0.001}, "threshold"),
    ({"batch_sizes": [3, 2]}, "batch_sizes"), ({"batch_sizes": [0]}, "batch_sizes"),
    ({"seed": -1}, "seed"), ({"timeout": 0}, "timeout"),
])
def test_bad_arguments_fail_before_any_process_starts(kwargs, name):
    args = {"readings": np.ones((4, 4)), "simulated": np.ones((4, 4)), "sd": SD, **kwargs}
    readings, simulated, sd = args.pop("readings"), args.pop("simulated"), args.pop("sd")
    with pytest.raises(ParameterError) as err:
        secure_similarity(readings, simulated, sd, **args)
    assert err.value.name == name


@pytest.mark.timeout(300)
def test_secure_similarity_equals_plaintext_and_rounds_do_not_grow_with_the_batch():
    m, m_hat = _pairs(200)
    threshold = 0.4
    res = secure_similarity(m, m_hat, SD, reveal=("score", "decision"), threshold=threshold,
                            batch_sizes=[1, 20], seed=0, timeout=280)
    assert res.scores.shape == (200,) and res.decisions.shape == (200,)
    np.testing.assert_allclose(res.scores, plaintext_similarity(m, m_hat, SD), atol=ATOL, rtol=0)
    assert res.max_abs_error < ATOL
    # the scores cover the range, including capped channels
    assert res.plaintext_scores.min() < 0.02 and res.plaintext_scores.max() > 0.99
    q = np.minimum(((m - m_hat) / SD) ** 2, Z_MAX**2).mean(axis=1)
    away = np.abs(q - (1 / threshold - 1)) > 1e-3
    np.testing.assert_array_equal(res.decisions[away].astype(bool), res.plaintext_decisions[away])
    # cost: two parties x two modes x three sizes; rounds constant in the batch, bytes linear
    assert len(res.cost) == 12 and set(res.cost["party"]) == {0, 1}
    tot = res.total_cost()
    for mode, grp in tot.groupby("reveal"):
        assert grp["rounds"].nunique() == 1
        per_item = grp["bytes_per_item"].to_numpy()
        np.testing.assert_allclose(per_item, per_item[0], rtol=0.05)
    rounds = tot.groupby("reveal")["rounds"].first()
    assert rounds["decision"] < rounds["score"]  # no reciprocal


@pytest.mark.timeout(300)
def test_only_the_verifier_receives_the_scores():
    m, m_hat = _pairs(16, seed=1)
    out = run_parties(similarity_party, 2, args=(16, 4, SD.tolist(), [("score", 16)], 0.5),
                      party_args=[(m,), (m_hat,)], timeout=280, verbose_comm=True, seed=1)
    assert out[0]["values"] == {}
    np.testing.assert_allclose(out[1]["values"]["score"], plaintext_similarity(m, m_hat, SD),
                               atol=ATOL, rtol=0)
    assert out.comm_stats[0].rounds == out.comm_stats[1].rounds > 0
