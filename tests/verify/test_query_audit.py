"""The query auditor: exact counts on hand-made logs, chapter 9's probe refused before it completes,
and detection / false-alarm rates on simulated honest and probing logs."""
import numpy as np
import pytest

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.verify.attacks import probe_claims
from ppal_lab.verify.claims import ClaimBatch
from ppal_lab.verify.query_audit import (QueryLog, detection_rates, probe_pattern, probe_statistic, refused,
                                         simulate_log)


def log_of(rows):
    """(requester, item, health, defect) rows -> QueryLog."""
    a = np.array(rows, dtype=float)
    return QueryLog(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2:], np.zeros(len(a), dtype=bool))


def test_statistic_counts_distinct_claims_per_requester_and_item_within_the_window():
    log = log_of([(0, 7, 0.5, 0), (0, 7, 0.5, 0),          # a retry: the same claim, not a new point
                  (1, 7, 0.2, 0),                          # another requester, same item
                  (0, 7, 0.6, 0), (0, 3, 0.6, 0), (0, 7, 0.6, 1)])
    np.testing.assert_array_equal(probe_statistic(log, 10, "requester"), [1, 1, 1, 2, 1, 3])
    np.testing.assert_array_equal(probe_statistic(log, 10, "item"), [1, 1, 2, 3, 1, 4])
    # a window of 3 queries forgets the first two
    np.testing.assert_array_equal(probe_statistic(log, 3, "requester"), [1, 1, 1, 2, 1, 2])


def test_chapter_9_probe_is_refused_at_its_fifth_query():
    n = 3
    batch = ClaimBatch(readings=np.ones((n, 4)), health=np.array([0.3, 0.55, 0.8]), defect=np.array([0., 1., 0.]),
                       label=np.zeros(n, int), variant=np.zeros(n, int), tolerance=np.zeros(n, int),
                       kind=np.full(n, "clean", dtype=object), true_health=np.zeros(n), true_defect=np.zeros(n),
                       true_label=np.zeros(n, int))
    probes = probe_claims(batch, 1)
    claims = np.column_stack([probes.health, probes.defect])
    np.testing.assert_allclose(claims, probe_pattern(0.55, 1.0, 5))       # the same pattern as chapter 9's
    # the verifier's probes, interleaved with honest traffic of others
    rows = []
    for k, c in enumerate(claims):
        rows += [(5, 1, *c), (k, 100 + k, 0.5, 0.0)]
    log = log_of(rows)
    is_probe = log.requester == 5
    out = refused(log, threshold=5, window=50)
    assert out[is_probe].tolist() == [False, False, False, False, True]  # 4 scores answered: k = 4 unknowns
    assert not out[~is_probe].any()


def test_simulated_logs_are_seeded_and_carry_the_probes():
    a = simulate_log(200, 100, 10, 3, n_probes=5, n_sybils=2)
    b = simulate_log(200, 100, 10, 3, n_probes=5, n_sybils=2)
    np.testing.assert_array_equal(a.claim, b.claim)
    assert len(a) == 205 and a.probe.sum() == 5
    assert set(a.requester[a.probe]) == {10, 11} and len(set(a.item[a.probe])) == 1
    assert not np.isin(a.requester[~a.probe], [10, 11]).any()


def test_roc_of_the_per_requester_detector():
    r = detection_rates([3, 4, 5, 6], window=50, by="requester", n_logs=40, seed=1)
    # a burst of 5 probes reaches 5 distinct claims unless clipping at health 0 or 1 merged two
    assert r["detection"][2] >= 0.85 and r["detection"][3] == 0.0
    assert np.all(np.diff(r["detection"]) <= 0) and np.all(np.diff(r["false_alarm"]) <= 0)
    assert r["false_alarm"][2] <= 0.3 and r["refused_honest"][2] < 0.005
    assert r["false_alarm"][0] > r["false_alarm"][2]                 # a lower threshold costs honest users


def test_sybils_evade_the_per_requester_count_but_not_the_per_item_count():
    kw = dict(window=50, n_logs=30, seed=2, n_sybils=5)
    per_requester = detection_rates([5], by="requester", **kw)
    per_item = detection_rates([5], by="item", **kw)
    assert per_requester["detection"][0] == 0.0
    assert per_item["detection"][0] >= 0.85
    # ... at the price of false alarms on popular items
    assert per_item["false_alarm"][0] > per_requester["false_alarm"][0]
    assert per_item["refused_honest"][0] > 10 * per_requester["refused_honest"][0]


def test_slow_probing_evades_a_short_window():
    fast = detection_rates([5], window=10, n_logs=30, seed=3)
    slow = detection_rates([5], window=10, n_logs=30, seed=3, spread=250)
    assert fast["detection"][0] >= 0.85 and slow["detection"][0] <= 0.1


def test_bad_input_is_refused():
    log = simulate_log(20, 10, 3, 0)
    with pytest.raises(ParameterError, match="by"):
        probe_statistic(log, 10, "site")
    with pytest.raises(ParameterError, match="threshold"):
        refused(log, 1, 10)
    with pytest.raises(ParameterError, match="thresholds"):
        detection_rates([1.5], 10)
    with pytest.raises(ParameterError, match="n_sybils"):
        simulate_log(20, 10, 3, 0, n_probes=5, n_sybils=6)
