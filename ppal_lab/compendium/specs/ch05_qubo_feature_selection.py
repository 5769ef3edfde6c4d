"""Spec of notebook 05_qubo_feature_selection: its parameters, the constraints between them and its claims."""
from __future__ import annotations

from ppal_lab.compendium.params import TIMING, Constraint, NotebookSpec, Param
from ppal_lab.compendium.specs.common import SEED, seeds_fit
from ppal_lab.compendium.specs.registry import register
from ppal_lab.compendium.verdicts import Claim

register(NotebookSpec(
    name="05_qubo_feature_selection",
    title="QUBO feature selection by simulated bifurcation",
    params=(
        SEED,
        Param("n_seeds", int, 5, "data splits / solver seeds / instance blocks behind each 95% CI",
              low=2, high=50),
        Param("dataset", str, "breast_cancer", "real scikit-learn data set compared with the magnet data",
              choices=("breast_cancer", "wine", "digits")),
        Param("k", int, 15, "features to select in the worked example and the peer comparison "
              "(the seed selects 15 of 50)", low=1, high=49),
        Param("alpha", float, 0.5, "weight of relevance against redundancy in the mRMR QUBO",
              low=0.0, high=1.0),
        Param("solver", str, "bsb", "our simulated-bifurcation variant: ballistic or discrete",
              choices=("bsb", "dsb")),
        Param("polish", bool, True, "follow simulated bifurcation by the swap local search"),
        Param("n_agents", int, 32, "SB agents (and annealing reads / random starts on small instances)",
              low=1, high=4096),
        Param("n_instances", int, 100, "random instances (10-20 features) of the optimality study",
              low=2, high=10_000),
        Param("peer_seeds", int, 3, "solver seeds per size in the comparison with the peers", low=1, high=20),
    ),
    constraints=(
        seeds_fit("n_seeds", "peer_seeds"),
        Constraint(("n_seeds", "n_instances"), lambda v: v["n_seeds"] <= v["n_instances"],
                   lambda v: f"<= n_instances = {v['n_instances']} (the optimality study splits the instances "
                             "into n_seeds blocks)"),
    ),
    headline=("optimality_success_ours", "optimality_success_sb_raw", "optimality_success_seed_routine",
              "time_n1000_ours_s", "accuracy_magnet_ours_k", "accuracy_magnet_all"),
    budget_s=180.0,
    reads=("bench_qubo.json",),
    tolerances=(("time_*", TIMING), ("cpu_*", TIMING), ("peer_log_time_ratio_*", TIMING),  # wall times are not results
                ("tts*", TIMING)),
    claims=(
        Claim("qubo_seed_routine_is_sb", "001",
              "The seed's selector is a simulated-bifurcation algorithm (a classical approximation of quantum "
              "annealing) that solves the feature-selection QUBO.", "simulated bifurcation", "not measurable",
              reason="whether the seed's code is simulated bifurcation is a matter of reading its update rule, "
                     "not of measurement: it is projected gradient ascent with heavy-ball momentum, with no pump, "
                     "bifurcation or walls; how well it solves the QUBO is measured beside it "
                     "(optimality_success_seed_routine)"),
        Claim("qubo_12_15_features", "001",
              "The quantum-inspired selector consistently identified 12-15 critical features out of 50 that keep "
              "the predictive accuracy.", "12-15 of 50", "not measurable",
              reason="how many features keep the accuracy is a property of the data: the seed's data are not "
                     "published, and our magnet generator makes the grade depend on four features by "
                     "construction (manufacturer, manufacturing date, form factor, helium), so the count we find "
                     "reflects our design, not the seed's facility"),
        Claim("qubo_70pct_cost_reduction", "001", "Feature selection reduced data-collection costs by 70%.", "70%",
              "not measurable",
              reason="70% is 35 of 50 features dropped; a cost saving needs the cost of collecting each feature, "
                     "which the seed does not give"),
        Claim("qubo_top_two_features", "001",
              "Drive manufacturing date and original equipment manufacturer are the two most predictive features.",
              "date and manufacturer on top", "not measurable",
              reason="our magnet generator builds this ranking in (see the data chapter), so finding it again is "
                     "no evidence about the seed's facility, whose data are not published"),
        Claim("qubo_goal_optimality", "001",
              "Chapter goal: our solver finds the exact optimum on at least 99% of at least 100 random mRMR "
              "instances with n <= 24.", ">= 99%", "goal",
              metric="optimality_success_ours", target=0.99, direction=1),
        # Issue 18 (rules changed after the first results; the first rules stay as first_rule): the mRMR peer
        # instances cannot tell solvers apart (random + swap reaches the best energy), so the energy goal is
        # gated by the mRMR bed's headroom in benchmarks/bench_qubo.py (the better of random/greedy + polish
        # must need at least twice the best solver's TTS99; 2 is the benchmark's declared discrimination
        # factor, fixed before any full run). The time goals are restated in the field's metric, time to
        # target with 99% confidence, on Wishart planted instances whose optimum is known, read from the
        # benchmark's record (equal wall-time budgets, the same polish for all, one thread), on the planted
        # instances that discriminate (headroom >= 2); the planted bed's headroom is, per goal size, that of
        # its most discriminating alpha, then the smallest over the sizes. A record that is missing, older or
        # measured on a loaded machine gives headroom 0: "not measurable". (Disclosed: a probe at n = 100 on
        # a loaded machine, run to check the benchmark, showed alpha = 0.5 unsolved by every solver within
        # 3 s and alpha = 2 solved by random + polish; the per-size aggregation was chosen after it.)
        Claim("qubo_goal_peers_energy", "001",
              "Chapter goal, first half: at n = 50, 200 and 1000 our solver reaches equal or better energy than "
              "the simulated-bifurcation package and D-Wave's simulated annealing (read on the worst of the six "
              "comparisons: relative energy excess <= 0), on a bed where the solver matters.",
              "equal or better energy", "goal", metric="peer_energy_excess_worst", target=0.0, direction=-1,
              headroom="tts_headroom_mrmr", headroom_min=2.0,
              first_rule=Claim("qubo_goal_peers_energy", "001", "Judged without a gate.", "equal or better energy",
                               "goal", metric="peer_energy_excess_worst", target=0.0, direction=-1)),
        Claim("qubo_goal_peers_time", "001",
              "Chapter goal, restated (issue 18): on Wishart planted instances at n = 100, 500 and 1000 that "
              "discriminate, our solver's time to target (TTS99) is at most every peer's (worst log TTS ratio "
              "<= 0).",
              "TTS99 at most every peer's", "goal", metric="tts_log_ratio_worst_planted", target=0.0,
              direction=-1, headroom="tts_headroom_planted", headroom_min=2.0,
              first_rule=Claim("qubo_goal_peers_time", "001", "Wall time on the mRMR peer instances.",
                               "equal or less time", "goal", metric="peer_log_time_ratio_worst", target=0.0,
                               direction=-1)),
        Claim("qubo_goal_n1000_time", "001",
              "Chapter goal, restated (issue 18): at n = 1000 our solver's time to target (TTS99) on every "
              "Wishart planted instance of the benchmark that discriminates is at most 2 s, one thread.",
              "<= 2 s", "goal", metric="tts99_n1000_ours_s", target=2.0, direction=-1, headroom="tts_headroom_planted",
              headroom_min=2.0,
              first_rule=Claim("qubo_goal_n1000_time", "001", "CPU time of one solve at n = 1000.", "<= 2 s",
                               "goal", metric="cpu_n1000_ours_s", target=2.0, direction=-1)),
    ),
))

