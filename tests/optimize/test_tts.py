"""Time to target, success probability and residual energy on toy inputs with exact answers."""
import math

import numpy as np
import pytest

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.optimize import tts as T


def test_tts_counts_the_runs_needed_for_99_percent():
    # p = 0.9: two runs fail together with probability 0.01, so TTS99 is exactly two runs
    assert T.tts(0.5, 0.9) == pytest.approx(1.0)
    # p = 0.5: 1 - 0.5**R = 0.99 at R = log2(100)
    assert T.tts(1.0, 0.5) == pytest.approx(math.log2(100))
    assert T.tts(2.0, 0.995) == 2.0          # one run already suffices
    assert T.tts(2.0, 1.0) == 2.0
    assert T.tts(2.0, 0.0) == math.inf
    assert T.tts(1.0, 0.5, q=0.75) == pytest.approx(2.0)


def test_tts_agrees_with_simulated_repetition():
    rng = np.random.default_rng(0)
    p, run_time = 0.2, 0.01
    budget = T.tts(run_time, p)
    runs = int(round(budget / run_time))
    hit = (rng.random((20000, runs)) < p).any(axis=1).mean()
    assert hit == pytest.approx(0.99, abs=0.003)


def test_success_probability_and_its_interval():
    e = np.array([-2.0, -2.0 + 1e-12, -1.5, -1.0, -2.0])
    p, wins, runs, (lo, hi) = T.success_probability(e, -2.0)
    assert (p, wins, runs) == (0.6, 3, 5)
    assert lo < 0.6 < hi
    # 100 successes in 100 trials: the Wilson lower bound is 96.3%
    _, _, _, (lo, hi) = T.success_probability(np.zeros(100), 0.0)
    assert lo == pytest.approx(0.963, abs=5e-4) and hi == 1.0
    assert T.success_probability([-1.0 + 1e-6], -1.0)[1] == 0       # beyond the tolerance
    lo_t, hi_t = T.tts_interval(1.0, (0.5, 0.9))
    assert lo_t == pytest.approx(2.0) and hi_t == pytest.approx(math.log2(100))


def test_residual_curve_is_the_best_so_far_minus_the_target():
    times = [1.0, 1.0, 2.0]
    energies = [-1.0, -3.0, -2.0]
    out = T.residual_curve(times, energies, -4.0, [0.5, 1.0, 1.5, 2.0, 3.9, 4.0, 10.0])
    assert np.isnan(out[0])
    np.testing.assert_allclose(out[1:], [3.0, 3.0, 1.0, 1.0, 1.0, 1.0])


def test_bad_input_is_rejected_with_the_parameter_named():
    with pytest.raises(ParameterError, match="^p = 1.5"):
        T.tts(1.0, 1.5)
    with pytest.raises(ParameterError, match="^q = 1"):
        T.tts(1.0, 0.5, q=1.0)
    with pytest.raises(ParameterError, match="^energies"):
        T.success_probability([], 0.0)
    with pytest.raises(ParameterError, match="^run_times"):
        T.residual_curve([1.0], [1.0, 2.0], 0.0, [1.0])


def _row(t, lo, hi, runs=10):
    return {"tts99_s": t, "tts99_ci_s": [lo, hi], "runs": runs}


def test_worst_log_tts_ratio_and_headroom_read_a_table():
    table = [
        {"family": "planted", "n": 100, "headroom_trivial_over_best_tts": 8.0, "discriminates": True,
         "solvers": {"bsb": _row(1.0, 0.5, 2.0), "sa": _row(2.0, 1.0, 4.0), "tabu": _row(0.5, 0.25, 1.0)}},
        {"family": "planted", "n": 100, "headroom_trivial_over_best_tts": 1.0, "discriminates": False,
         "solvers": {"bsb": _row(9.0, 9.0, 9.0), "sa": _row(0.1, 0.1, 0.1)}},
        {"family": "planted", "n": 500, "headroom_trivial_over_best_tts": "inf", "discriminates": True,
         "solvers": {"bsb": _row(None, 3.0, None, 4), "sa": _row(4.0, 2.0, 8.0)}},
        {"family": "sk", "n": 100, "headroom_trivial_over_best_tts": None, "discriminates": False,
         "solvers": {"bsb": _row(1.0, 1.0, 1.0), "sa": _row(1.0, 1.0, 1.0)}},
    ]
    value, (lo, hi), n, runs = T.worst_log_tts_ratio(table, "bsb", "planted", [100], discriminating=True)
    assert value == pytest.approx(math.log(2.0)) and n == 2 and runs == 10
    assert lo == pytest.approx(math.log(0.5 / 1.0)) and hi == pytest.approx(math.log(2.0 / 0.25))
    assert T.worst_log_tts_ratio(table, "bsb", "planted", [100])[0] == pytest.approx(math.log(90.0))
    value, (lo, hi), n, runs = T.worst_log_tts_ratio(table, "bsb", "planted", discriminating=True)
    assert value == T.LOG_RATIO_CAP and hi == T.LOG_RATIO_CAP and n == 3 and runs == 4
    assert lo == pytest.approx(math.log(0.5 / 1.0))       # tabu at n = 100 (3/8 at n = 500 is lower)
    assert T.worst_tts(table, "bsb", "planted", discriminating=True) == (T.TTS_CAP_S, (3.0, T.TTS_CAP_S), 4)
    assert T.worst_tts(table, "bsb", "planted", [100]) == (9.0, (9.0, 9.0), 10)
    # per size the most discriminating instance, then the weakest size
    assert T.bed_headroom(table, "planted") == 8.0
    assert T.bed_headroom(table, "planted", [500]) == T.TTS_CAP_S
    assert T.bed_headroom(table, "planted", [100, 500, 1000]) == 0.0      # no instance at n = 1000
    assert T.bed_headroom(table, "sk") == 0.0 and T.bed_headroom(table, "mrmr") == 0.0
    with pytest.raises(ParameterError, match="^family = 'mrmr'"):
        T.worst_log_tts_ratio(table, "bsb", "mrmr")
