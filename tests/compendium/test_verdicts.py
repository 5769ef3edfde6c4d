"""The verdict engine's rules as a truth table: each row is a declared claim, a measured interval and the
verdict the rule must give (``book/verdict_rules.md`` explains the rules)."""
import pytest

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.verdicts import Claim, decide, decide_all, seeds_needed


def metric(lo, hi, value=None, n=5):
    return {"value": (lo + hi) / 2 if value is None else value, "ci95": [lo, hi], "n": n, "unit": "x"}


EFFECT = Claim("e", "000", "s", "40%", "effect", metric="m", target=0.40)  # margin: a quarter, ± 0.10
LESS = Claim("l", "000", "s", "-35%", "effect", metric="m", target=-0.35, direction=-1)  # ± 0.0875


@pytest.mark.parametrize("claim, lo, hi, verdict", [
    (EFFECT, 0.32, 0.48, "reproduced"),        # inside 0.40 ± 0.10
    (EFFECT, 0.17, 0.81, "partly"),            # an effect, but the interval is wider than the region
    (EFFECT, 0.05, 0.20, "partly"),            # a real effect, smaller than claimed
    (EFFECT, 0.60, 0.90, "partly"),            # larger than claimed
    (EFFECT, -0.37, 0.52, "inconclusive"),     # contains no effect and the claim
    (EFFECT, -0.10, 0.25, "not reproduced"),   # excludes the claim, no effect shown
    (EFFECT, -0.30, -0.10, "not reproduced"),  # the opposite effect
    (LESS, -0.40, -0.30, "reproduced"),
    (LESS, -3.49, 2.12, "inconclusive"),       # chapter 07's wastage interval before the power run
    (LESS, -0.15, -0.05, "partly"),
    (LESS, 0.05, 0.30, "not reproduced"),
])
def test_effect_rule(claim, lo, hi, verdict):
    assert decide(claim, {"m": metric(lo, hi)}).verdict == verdict


GOAL = Claim("g", "001", "s", ">= 99%", "goal", metric="m", target=0.99)
CAP = Claim("c", "001", "s", "<= 2 s", "goal", metric="m", target=2.0, direction=-1)


@pytest.mark.parametrize("claim, lo, hi, value, verdict", [
    (GOAL, 0.963, 1.0, 1.0, "inconclusive"),   # 100/100 but the lower bound is 96.3%: not shown yet
    (GOAL, 0.991, 1.0, 0.998, "reproduced"),
    (GOAL, 0.90, 0.98, 0.95, "not reproduced"),
    (CAP, 1.2, 1.9, 1.5, "reproduced"),
    (CAP, 1.5, 2.5, 1.8, "inconclusive"),      # the point estimate alone would say reproduced
    (CAP, 2.1, 2.5, 2.3, "not reproduced"),
])
def test_goal_rule_reads_the_bound_never_the_point_estimate(claim, lo, hi, value, verdict):
    assert decide(claim, {"m": metric(lo, hi, value)}).verdict == verdict


EQUIV = Claim("q", "002", "s", "equivalent", "equivalence", metric="d", null_metric="nudge", margin=1.0)


@pytest.mark.parametrize("d, verdict", [
    ((7.0e-5, 8.0e-5), "reproduced"),          # as close as one fixed-point nudge
    ((1.0e-4, 2.0e-4), "inconclusive"),
    ((3.0e-3, 4.0e-3), "not reproduced"),      # as far as a frozen learner
])
def test_equivalence_is_judged_against_the_measured_null(d, verdict):
    metrics = {"d": metric(*d), "nudge": metric(8.0e-5, 1.2e-4)}
    assert decide(EQUIV, metrics).verdict == verdict


def test_one_repeat_without_an_interval_decides_no_effect_and_no_goal():
    single = {"m": {"value": 0.40, "ci95": None, "n": 1, "unit": "x"}}
    assert decide(EFFECT, single).verdict == decide(GOAL, single).verdict == "inconclusive"


def test_qualitative_not_measurable_and_headroom_gates():
    q = Claim("q", "000", "s", "holds", "qualitative", metric="holds")
    assert decide(q, {"holds": metric(1, 1, 1, n=1)}).verdict == "reproduced"
    assert decide(q, {"holds": metric(0, 0, 0, n=1)}).verdict == "not reproduced"
    nm = Claim("n", "000", "s", "40-60%", "not measurable", reason="no comparable system is timed")
    assert decide(nm, {}).verdict == "not measurable"
    gated = Claim("h", "001", "s", "89%", "effect", metric="m", target=0.1,
                  headroom="headroom", headroom_min=0.02)
    metrics = {"m": metric(0.08, 0.12), "headroom": metric(0.005, 0.005, n=1)}
    assert decide(gated, metrics).verdict == "not measurable"
    metrics["headroom"] = metric(0.2, 0.2, n=1)
    assert decide(gated, metrics).verdict == "reproduced"
    # a bed without headroom may leave the claim's estimator undefined: still "not measurable"
    assert decide(gated, {"headroom": metric(0.005, 0.005, n=1)}).verdict == "not measurable"


def test_seeds_needed_follow_the_observed_spread():
    # per-seed sd 0.2 (n = 10): 2.80² × (0.2 / 0.1)² = 31.4 → 32 seeds to tell 0.1 from no effect
    from scipy import stats

    half = stats.t.ppf(0.975, 9) * 0.2 / 10 ** 0.5
    assert seeds_needed(metric(0.1 - half, 0.1 + half, n=10), 0.1) == 32
    assert seeds_needed(metric(0.1, 0.1, n=1), 0.1) is None


def test_a_changed_rule_keeps_the_first_verdict_beside_the_new_one():
    first = Claim("e", "000", "s", "40%", "effect", metric="per_seed", target=0.4, margin=0.1)
    claim = Claim("e", "000", "s", "40%", "effect", metric="mean_curve", target=0.4, margin=0.1,
                  first_rule=first)
    [entry] = decide_all([claim], {"per_seed": metric(-0.37, 0.52), "mean_curve": metric(0.32, 0.46)})
    assert (entry["verdict"], entry["first_verdict"]) == ("reproduced", "inconclusive")
    assert "per_seed" in entry["first_rule"] and "mean_curve" in entry["rule"]
    [entry] = decide_all([claim], {"mean_curve": metric(0.32, 0.46)})  # the first estimator is undefined
    assert (entry["verdict"], entry["first_verdict"]) == ("reproduced", "not measurable")


def test_declarations_are_checked():
    with pytest.raises(ParameterError):
        Claim("x", "000", "s", "v", "effect")                      # no metric
    with pytest.raises(ParameterError):
        Claim("x", "000", "s", "v", "equivalence", metric="d")     # no null
    with pytest.raises(ParameterError):
        Claim("x", "000", "s", "v", "not measurable")              # no reason
    with pytest.raises(ParameterError):
        decide(EFFECT, {"other": metric(0, 1)})                    # the metric is not in the record
    with pytest.raises(ParameterError):
        Claim("x", "000", "s", "v", "effect", metric="m", target=0.4, margin=0.3)  # a margin without reason
    with pytest.raises(ParameterError):
        Claim("x", "000", "s", "v", "effect", metric="m", target=-0.4)  # the target is the wrong way round
    wide = Claim("x", "000", "s", "v", "effect", metric="m", target=0.4, margin=0.3, margin_reason="why")
    assert (EFFECT.margin, wide.margin, EQUIV.margin) == (pytest.approx(0.10), 0.3, 1.0)
