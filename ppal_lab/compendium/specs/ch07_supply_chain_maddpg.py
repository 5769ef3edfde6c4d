"""Spec of notebook 07_supply_chain_maddpg: its parameters, the constraints between them and its claims."""
from __future__ import annotations

from ppal_lab.compendium.params import TIMING, Constraint, NotebookSpec, Param
from ppal_lab.compendium.specs.common import GAME_HORIZON, SEED, seeds_fit
from ppal_lab.compendium.specs.registry import register
from ppal_lab.compendium.verdicts import Claim

register(NotebookSpec(
    name="07_supply_chain_maddpg",
    title="Two-player supply chain: MADDPG with and without data sharing",
    params=(
        SEED,
        Param("n_seeds", int, 5, "independent training runs per mode (seeds seed, seed+1, ...)", low=2, high=50),
        Param("episodes", int, 100, "measured 40-step episodes after pre-training (the seed's 100 epochs)",
              low=1, high=5000),
        Param("pretrain_episodes", int, 1600, "exploration / pre-training episodes on simulated data",
              low=0, high=1_000_000),
        Param("pretrain_envs", int, 16, "pre-training episodes played side by side (one update a step)",
              low=1, high=1024),
        Param("hidden", int, 128, "hidden units of every actor and critic layer", low=1, high=1024),
        Param("batch_size", int, 128, "replay minibatch size", low=1, high=4096),
        Param("lr_actor", float, 1e-3, "Adam learning rate of the actors", low=0.0, high=1.0, low_open=True),
        Param("lr_critic", float, 1e-3, "Adam learning rate of the critics", low=0.0, high=1.0, low_open=True),
        Param("gamma", float, 0.95, "discount factor", low=0.0, high=1.0, high_open=True),
        Param("noise", float, 0.1, "exploration noise std in the measured episodes (action range = 1)",
              low=0.0, high=1.0),
        Param("spoilage", float, 0.0, "share of each player's leftover stock that perishes every step",
              low=0.0, high=1.0),
        Param("n_jobs", int, 2, "worker processes for training (1 = in the notebook's process)", low=1, high=64),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("batch_size", "episodes", "pretrain_episodes"),
                   lambda v: v["batch_size"] <= GAME_HORIZON * (v["episodes"] + v["pretrain_episodes"]),
                   lambda v: f"<= the {GAME_HORIZON * (v['episodes'] + v['pretrain_episodes']):,} transitions of all "
                             f"episodes ({GAME_HORIZON} steps x (episodes + pretrain_episodes)): the critics learn "
                             "only once the replay buffer holds a minibatch"),
    ),
    headline=("wastage_nds", "wastage_ede", "ncr_nds", "ncr_ede", "wastage_reduction_ede_vs_nds",
              "ncr_improvement_ede_vs_nds", "nds_baseline_total_reward", "nds_baseline_wastage", "nds_baseline_ncr"),
    budget_s=300.0,
    tolerances=(("train_cpu_seconds", TIMING),),  # wall times are not results
    # The game is calibrated on the seed's NDS row only (benchmarks/bench_supply_game.py, calibration seeds
    # disjoint from every evaluation seed); the Appendix I claims are judged only when our NDS meets the
    # declared criterion (headroom gate), on the benchmark's powered paired seeds when its record holds them.
    # Relative changes of EDE over NDS from the modes' means, as the seed computes them; wastage is a
    # reduction, (NDS - EDE) / NDS, so less wastage is a positive change.
    reads=("bench_supply_game.json",),
    claims=(
        Claim("ede_less_wastage_appendix_i", "002", "EDE has 35.71% less wastage than NDS over the 100 measured "
              "epochs (Appendix I, Table 5).", "35.71%", "effect", metric="wastage_reduction_ede_vs_nds",
              target=0.3571, headroom="nds_baseline_matches", headroom_min=1.0),
        Claim("ede_better_ncr_appendix_i", "002", "EDE has 765.91% better normalized cumulative revenue than NDS "
              "(Appendix I, Table 5).", "765.91%", "effect", metric="ncr_improvement_ede_vs_nds", target=7.6591,
              headroom="nds_baseline_matches", headroom_min=1.0),
        Claim("secure_less_wastage_abstract", "002", "Secure 2PC has on average 68.19% less supply-chain wastage "
              "than no data sharing (abstract).", "68.19%", "not measurable",
              reason="the abstract's figure comes from the main paper's price-demand setting, which Appendix I says "
              "differs from its own and whose parameters our copy of the seed lacks",
              first_rule=Claim("secure_less_wastage_abstract", "002", "Judged in Appendix I's setting.", "68.19%",
                               "effect", metric="wastage_reduction_ede_vs_nds", target=0.6819)),
        Claim("secure_better_revenue_per_player_abstract", "002", "Secure 2PC gives on average 42.27% better "
              "average cumulative revenue for each player (abstract).", "42.27%", "not measurable",
              reason="the abstract's figure comes from the main paper's price-demand setting, which Appendix I says "
              "differs from its own and whose parameters our copy of the seed lacks",
              first_rule=Claim("secure_better_revenue_per_player_abstract", "002", "Judged in Appendix I's setting.",
                               "42.27%", "effect", metric="reward_per_player_improvement_ede_vs_nds",
                               target=0.4227)),
    ),
))

