r"""The field's metrics for heuristic solvers: success probability, time to target, residual energy.

* :func:`success_probability` — the share of runs (reads, agents) whose energy reaches a target (the
  planted, certified or best known energy) within a tolerance, with a Wilson interval (SciPy).
* :func:`tts` — time to target with confidence ``q`` (TTS99 for ``q = 0.99``; Rønnow et al., Science
  345, 420, 2014): with one run taking ``t`` and succeeding with probability ``p``, the
  :math:`R = \ln(1 - q) / \ln(1 - p)` independent runs needed to succeed at least once with probability
  ``q`` take :math:`t R` (at least one run: ``t`` when ``p >= q``; infinite when ``p = 0``).
* :func:`tts_interval` — the TTS bounds that follow from the interval on ``p``.
* :func:`residual_curve` — the best energy found by time ``tau`` minus the target, when runs of given
  durations are made one after another (the residual energy against time).
* :func:`worst_log_tts_ratio`, :func:`bed_headroom`, :func:`worst_tts` — read a TTS table (the
  ``instances`` of ``benchmarks/bench_qubo.py``'s record) for the goals of the QUBO chapter.

Every public function validates its arguments before any work and raises
:class:`~ppal_lab.compendium.errors.ParameterError` naming the parameter, the value and the allowed range.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ppal_lab.compendium.errors import ParameterError, check_real

__all__ = ["LOG_RATIO_CAP", "TTS_CAP_S", "bed_headroom", "residual_curve", "success_probability",
           "success_tolerance", "tts", "tts_interval", "worst_log_tts_ratio", "worst_tts"]

#: An infinite TTS (no success within the budget) enters a log ratio as +-20 and a time as 1e6 s, so
#: that the worst comparison stays a finite number with a finite interval.
LOG_RATIO_CAP = 20.0
TTS_CAP_S = 1e6


def _energies(value: Any) -> np.ndarray:
    e = np.asarray(value, dtype=np.float64).ravel()
    if e.size == 0 or not np.all(np.isfinite(e)):
        raise ParameterError("energies", "<array>", "a non-empty array of finite numbers")
    return e


def success_tolerance(target: float, rtol: float = 1e-9, atol: float = 1e-9) -> float:
    """The slack allowed when comparing an energy with the target: ``atol + rtol * |target|``."""
    target = check_real("target", target)
    return check_real("atol", atol, 0) + check_real("rtol", rtol, 0) * abs(target)


def success_probability(energies: Any, target: float, *, rtol: float = 1e-9, atol: float = 1e-9,
                        confidence: float = 0.95) -> tuple[float, int, int, tuple[float, float]]:
    """``(p, successes, runs, (low, high))``: the share of ``energies`` at or below ``target`` (within
    :func:`success_tolerance`) and its Wilson interval at ``confidence``."""
    from scipy.stats import binomtest

    e = _energies(energies)
    confidence = check_real("confidence", confidence, 0, 1, low_open=True, high_open=True)
    wins = int((e <= target + success_tolerance(target, rtol, atol)).sum())
    ci = binomtest(wins, e.size).proportion_ci(confidence, method="wilson")
    return wins / e.size, wins, int(e.size), (float(ci.low), float(ci.high))


def tts(run_time: float, p: float, q: float = 0.99) -> float:
    """Time to reach the target at least once with probability ``q`` by repeating a run that takes
    ``run_time`` and succeeds with probability ``p``: ``run_time * max(1, ln(1-q) / ln(1-p))``."""
    run_time = check_real("run_time", run_time, 0)
    p = check_real("p", p, 0, 1)
    q = check_real("q", q, 0, 1, low_open=True, high_open=True)
    if p == 0.0:
        return math.inf
    if p >= q:
        return run_time
    return run_time * math.log1p(-q) / math.log1p(-p)


def tts_interval(run_time: float, p_interval: tuple[float, float], q: float = 0.99) -> tuple[float, float]:
    """TTS bounds from an interval ``(low, high)`` on the success probability (the high ``p`` gives the
    low TTS)."""
    low, high = (check_real("p_interval", v, 0, 1) for v in p_interval)
    if low > high:
        raise ParameterError("p_interval", p_interval, "(low, high) with low <= high")
    return tts(run_time, high, q), tts(run_time, low, q)


def residual_curve(run_times: Any, energies: Any, target: float, grid: Any) -> np.ndarray:
    """Runs made one after another (run ``i`` takes ``run_times[i]`` and ends with ``energies[i]``):
    at each time of ``grid``, the best energy of the runs finished by then minus ``target`` (NaN
    before the first run ends)."""
    e = _energies(energies)
    t = np.asarray(run_times, dtype=np.float64).ravel()
    if t.shape != e.shape or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ParameterError("run_times", "<array>", f"{e.size} finite durations >= 0")
    g = np.asarray(grid, dtype=np.float64).ravel()
    if not np.all(np.isfinite(g)):
        raise ParameterError("grid", "<array>", "finite times")
    target = check_real("target", target)
    ends = np.cumsum(t)
    best = np.minimum.accumulate(e)
    done = np.searchsorted(ends, g, side="right")          # runs finished by each grid time
    out = np.full(g.shape, np.nan)
    ok = done > 0
    out[ok] = best[done[ok] - 1] - target
    return out


def _tts3(row: dict) -> tuple[float, float, float]:
    """``(tts, low, high)`` of a table row; ``None`` (no success) is infinite."""
    f = [math.inf if v is None else float(v) for v in (row["tts99_s"], *row["tts99_ci_s"])]
    return f[0], f[1], f[2]


def _log_ratio(a: float, b: float) -> float:
    if math.isinf(a) and math.isinf(b):
        return 0.0 if a == b else math.copysign(LOG_RATIO_CAP, a - b)
    if a == 0 or b == 0 or math.isinf(a) or math.isinf(b):
        return LOG_RATIO_CAP if (math.isinf(a) or b == 0) else -LOG_RATIO_CAP
    return max(-LOG_RATIO_CAP, min(LOG_RATIO_CAP, math.log(a / b)))


def _select(instances: list[dict], family: str, sizes: Any, discriminating: bool = False) -> list[dict]:
    sizes = None if sizes is None else set(sizes)
    return [i for i in instances if i["family"] == family and (sizes is None or i["n"] in sizes)
            and (i["discriminates"] or not discriminating)]


def worst_log_tts_ratio(instances: list[dict], ours: str, family: str, sizes: Any = None, *,
                        discriminating: bool = False) -> tuple[float, tuple[float, float], int, int]:
    """The largest ``ln(TTS_ours / TTS_peer)`` over every instance of ``family`` (of the given sizes; only
    those that discriminate, with ``discriminating``) and every peer: ``(value, (low, high), comparisons,
    fewest runs behind one TTS)``. Each comparison's bounds pair our low TTS with the peer's high one and
    the reverse (Wilson intervals on the success probabilities); the interval is (largest low, largest
    high): not adjusted for multiplicity."""
    rows = _select(instances, family, sizes, discriminating)
    if not rows:
        raise ParameterError("family", family, "a family with instances of the given sizes in the table")
    vals, los, his, runs = [], [], [], []
    for inst in rows:
        a, a_lo, a_hi = _tts3(inst["solvers"][ours])
        for peer, row in inst["solvers"].items():
            if peer == ours:
                continue
            b, b_lo, b_hi = _tts3(row)
            vals.append(_log_ratio(a, b))
            los.append(_log_ratio(a_lo, b_hi))
            his.append(_log_ratio(a_hi, b_lo))
            runs.append(min(inst["solvers"][ours]["runs"], row["runs"]))
    return max(vals), (max(los), max(his)), len(vals), min(runs)


def worst_tts(instances: list[dict], ours: str, family: str, sizes: Any = None, *,
              discriminating: bool = False) -> tuple[float, tuple[float, float], int]:
    """Our largest TTS over the selected instances, its interval (largest low, largest high) and the
    fewest runs behind it; infinite values are :data:`TTS_CAP_S`."""
    rows = [i["solvers"][ours] for i in _select(instances, family, sizes, discriminating)]
    if not rows:
        raise ParameterError("family", family, "a family with instances of the given sizes in the table")
    t = np.minimum(np.array([_tts3(r) for r in rows]), TTS_CAP_S)
    return float(t[:, 0].max()), (float(t[:, 1].max()), float(t[:, 2].max())), min(r["runs"] for r in rows)


def bed_headroom(instances: list[dict], family: str, sizes: Any = None) -> float:
    """Headroom (trivial solvers' TTS over the best TTS) of a family's bed: at each size (``sizes``, or
    every size present) the largest over its instances, then the smallest over the sizes, so that every
    size needs one instance that discriminates. An instance nobody solved has none (0), one that only
    non-trivial solvers solved :data:`TTS_CAP_S`; a size without instances 0."""
    rows = _select(instances, family, sizes)
    sizes = sorted({i["n"] for i in rows}) if sizes is None else list(sizes)
    if not sizes:
        return 0.0
    best = dict.fromkeys(sizes, 0.0)
    for inst in rows:
        h = inst["headroom_trivial_over_best_tts"]
        h = 0.0 if h is None else TTS_CAP_S if h == "inf" else min(float(h), TTS_CAP_S)
        best[inst["n"]] = max(best[inst["n"]], h)
    return min(best.values())
