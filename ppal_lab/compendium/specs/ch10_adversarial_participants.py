"""Spec of notebook 10_adversarial_participants: its parameters, the constraints between them and its claims."""
from __future__ import annotations

from ppal_lab.compendium.params import TIMING, Constraint, NotebookSpec, Param
from ppal_lab.compendium.specs.common import SEED, seeds_fit
from ppal_lab.compendium.specs.registry import register
from ppal_lab.compendium.verdicts import Claim


def _byzantine(v) -> int:
    """Byzantine clients of chapter 10: ``round(byzantine_fraction n_clients)`` (``ch10.n_byzantine``)."""
    return round(v["byzantine_fraction"] * v["n_clients"])


register(NotebookSpec(
    name="10_adversarial_participants",
    title="Adversarial participants: poisoning, robust aggregation, query auditing, membership inference",
    params=(
        SEED,
        Param("n_seeds", int, 3, "repeats (seed, seed + 1, ...) behind every 95% CI", low=2, high=30),
        Param("n_clients", int, 20, "federated clients (sites) sharing scikit-learn's digits", low=5, high=50),
        Param("byzantine_fraction", float, 0.2, "share of Byzantine clients (round(fraction n_clients) of them) "
              "in the attack table and the DP study", low=0.0, high=0.9),
        Param("attack", str, "alie", "attack of the Byzantine-share grid and the DP study",
              choices=("none", "label_flip", "sign_flip", "gaussian", "alie", "ipm", "adaptive")),
        Param("aggregator", str, "trimmed_mean", "the robust rule the seed's claim is judged on",
              choices=("fedavg", "median", "trimmed_mean", "krum", "multikrum", "bulyan", "cclip")),
        Param("rounds", int, 20, "FedAvg rounds of every federated run", low=1, high=500),
        Param("non_iid", float, 0.8, "label skew of the partition (ppal_lab.data.horizontal_partition)",
              low=0.0, high=1.0),
        Param("dp_epsilon", float, 8.0, "client-level epsilon (delta 1e-5, all rounds) of the DP study",
              low=0.0, high=1000.0, low_open=True),
        Param("audit_window", int, 50, "queries the query auditor looks back over", low=2, high=10_000),
        Param("n_logs", int, 50, "honest and probing query logs per seed and detector", low=5, high=10_000),
        Param("n_target", int, 500, "digits in the membership audit's target pool (as many for the shadows)",
              low=40, high=890),
        Param("mi_epochs", int, 60, "FedAvg rounds (one local epoch each) of each membership-audit training",
              low=1, high=1000),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("byzantine_fraction", "aggregator", "n_clients"),
                   lambda v: v["aggregator"] not in ("median", "trimmed_mean", "cclip") or 2 * _byzantine(v)
                   < v["n_clients"],
                   lambda v: f"< 0.5 for aggregator {v['aggregator']!r} (f = {_byzantine(v)} of n_clients = "
                             f"{v['n_clients']}): a Byzantine majority moves any median"),
        Constraint(("n_clients", "aggregator", "byzantine_fraction"),
                   lambda v: v["aggregator"] not in ("krum", "multikrum") or v["n_clients"] >= 2 * _byzantine(v) + 3,
                   lambda v: f">= 2f + 3 = {2 * _byzantine(v) + 3} for aggregator {v['aggregator']!r} with f = "
                             f"{_byzantine(v)} (Blanchard et al. 2017)"),
        Constraint(("n_clients", "aggregator", "byzantine_fraction"),
                   lambda v: v["aggregator"] != "bulyan" or v["n_clients"] >= 4 * _byzantine(v) + 3,
                   lambda v: f">= 4f + 3 = {4 * _byzantine(v) + 3} for aggregator 'bulyan' with f = "
                             f"{_byzantine(v)} (El Mhamdi et al. 2018)"),
        Constraint(("byzantine_fraction", "n_clients"), lambda v: v["n_clients"] - _byzantine(v) >= 2,
                   lambda v: f"<= {(v['n_clients'] - 2.5) / v['n_clients']:.3g} (at least 2 honest clients of "
                             f"{v['n_clients']}: the omniscient attacks need their spread)"),
        Constraint(("byzantine_fraction", "attack", "n_clients"),
                   lambda v: v["attack"] != "alie" or _byzantine(v) <= v["n_clients"] // 2,
                   lambda v: f"<= {(v['n_clients'] // 2 + 0.5) / v['n_clients']:.3g} for attack 'alie' (it needs "
                             "f <= n_clients // 2 to find its majority)"),
    ),
    headline=("clean_accuracy", "worst_retained_fedavg", "worst_retained_median", "worst_retained_trimmed_mean",
              "audit_detection_requester_1", "audit_false_alarm_requester_1", "mi_advantage_eps_inf",
              "mi_advantage_eps_1"),
    budget_s=240.0,
    reads=("bench_adversarial.json",),  # the accuracy-against-share grid (benchmarks/bench_adversarial.py)
    tolerances=(("agg_ms_*", TIMING),),  # wall times are not results
    claims=(
        Claim("seed_aggregator_as_written", "000",
              "The seed's ByzantineRobustAggregator.secure_aggregate returns a trimmed, coordinate-wise median of "
              "the clients' updates with Laplace noise. Measured as 1 when the class as written runs and returns "
              "the coordinate median of five clients' 2-d layer updates (shape kept), else 0.",
              "qualitative (code, no figure)", "qualitative", metric="seed_aggregator_works"),
        # goal 0.9: the chapter reads "robust" as keeping 90% of the clean accuracy under the worst attack
        Claim("robust_aggregation_defends", "000",
              "Byzantine-robust aggregation: using trimmed mean or median instead of average for model updates "
              "defends against participants that poison the model. Read as: with byzantine_fraction of the "
              "clients Byzantine, the robust rule of the aggregator parameter (default: trimmed mean) keeps at least 90% of clean FedAvg's test accuracy "
              "under the worst of six attacks (per seed, the smallest ratio); decided only when the attacks bring "
              "FedAvg at least 0.1 below that goal (headroom).",
              "qualitative (no figure)", "goal", metric="worst_retained_aggregator", target=0.9, direction=1,
              headroom="robust_goal_headroom", headroom_min=0.1),
        # goal 0.05: "prevent" read as no better than 5 points above guessing (the 5% of the false-alarm goal);
        # the headroom asks the non-private model to give the attack twice that
        Claim("clipping_noise_prevent_membership_inference", "000",
              "Gradient clipping and noise addition prevent membership inference attacks. Read as: the model the "
              "federated protocol trains with DP-SGD at every site, at epsilon = 1 per record (delta 1e-5), "
              "gives a shadow-model loss-threshold attack an advantage "
              "TPR - FPR of at most 0.05; decided only when the same attack reaches an advantage of at least 0.1 "
              "against the non-private federated model (headroom).",
              "qualitative (no figure)", "goal", metric="mi_advantage_eps_1", target=0.05, direction=-1,
              headroom="mi_advantage_eps_inf", headroom_min=0.1),
        # the pair of a conventional test: false alarms at most 5%, power at least 80%
        Claim("query_auditing_detects", "000",
              "Query auditing: monitoring query patterns for suspicious behaviour. Read as: a detector of "
              "chapter 09's five-probe trilateration pattern (distinct claims about one item by one requester "
              "within audit_window queries, refused at the fifth) catches at least 80% of probing logs.",
              "qualitative (no figure)", "goal", metric="audit_detection_requester_1", target=0.8, direction=1),
        Claim("query_auditing_false_alarms", "000",
              "Query auditing flags suspicious behaviour without flagging honest use. Read as: the same detector "
              "refuses some query in at most 5% of honest query logs (300 queries, revisions at rate 0.1).",
              "qualitative (no figure)", "goal", metric="audit_false_alarm_requester_1", target=0.05,
              direction=-1),
    ),
))

