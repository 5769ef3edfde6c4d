"""The registry of notebooks and their parameters (pure data: no algorithms are imported here).

Each spec also declares the :class:`~ppal_lab.compendium.params.Constraint` s its notebook needs between
parameters: the checks its code makes at run time and the combinations that would crash it, so a bad
combination is refused before any kernel starts. Data-dependent limits use the constants below, not the
data (a test compares them with the real loaders).
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Mapping

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.params import TIMING, Constraint, NotebookSpec, Param
from ppal_lab.compendium.verdicts import Claim

SEED = Param("seed", int, 0, "seed of every random draw in the notebook", low=0, high=2**32 - 1)

#: Items in scikit-learn's bundled data sets (``ppal_lab.data.load_sklearn``).
SKLEARN_SIZES = {"breast_cancer": 569, "digits": 1797, "wine": 178}
#: Steps of one episode of the supply-chain game (``ppal_lab.marl.supply_game.GameConfig().horizon``).
GAME_HORIZON = 40


def seeds_fit(*counts: str) -> Constraint:
    """Repeats use seeds ``seed .. seed + n - 1``: each must be a 32-bit seed like ``seed`` itself
    (scikit-learn and the MADDPG learners refuse larger ones, deep inside a run)."""
    last = lambda v: max(v[c] for c in counts)  # noqa: E731
    return Constraint(("seed", *counts), lambda v: v["seed"] + last(v) - 1 <= 2**32 - 1,
                      lambda v: f"<= {2**32 - last(v)} so that the last repeat's seed, seed + "
                                f"{' / '.join(counts)} - 1, stays <= 2**32 - 1")


def _drift_train_rows(v) -> int:
    """First-quarter drives the drift model of chapter 01 trains on (``describe.drift_accuracy``:
    at most 6000 drives, 70% of them)."""
    m = min(6000, 3 * v["n_per_month"])
    return m - math.ceil(0.3 * m)


def _drift_missing_limit(v) -> float:
    """Largest ``missing_rate`` leaving each feature 20 expected observed values among those drives:
    scikit-learn's gradient boosting crashes on a feature with none ("window shape cannot be larger
    than input array shape"). Under MAR ``weight_g`` is never missing, so the 49 other columns carry the
    whole rate (``data.make_magnet_grades`` refuses MAR rates >= 49/50)."""
    share = 49 / 50 if v["missing_mechanism"] == "mar" else 1.0
    return (1 - 20 / _drift_train_rows(v)) * share


def _al_pool(v, key: str) -> int:
    """Pool of chapter 02's data set ``v[key]`` after the held-out split (``ch02_active_learning.pool_size``:
    ``ceil(test_fraction n)`` items are held out), without loading it."""
    n = v["n_items"] if v[key] == "remanufacturing" else SKLEARN_SIZES[v[key]]
    return n - math.ceil(v["test_fraction"] * n)


def _al_pool_fits(key: str) -> Constraint:
    def allowed(v) -> str:
        size = (f"n_items = {v['n_items']:,}" if v[key] == "remanufacturing"
                else f"{SKLEARN_SIZES[v[key]]:,} in {v[key]}")
        return (f"<= the pool of {key} {v[key]!r}: {_al_pool(v, key):,} items ({size}, less "
                f"test_fraction = {v['test_fraction']:g} held out)")

    return Constraint(("label_budget", key, "n_items", "test_fraction"),
                      lambda v: v["label_budget"] <= _al_pool(v, key), allowed)


def _min_sparse_pool(v) -> int:
    """Smallest chapter-03 pool giving each feature 200 expected observed values, so the seed's cold
    start sees both values of ``helium_filled`` (1 for 5% of drives; a constant column makes its
    feature correlations NaN and it refuses the pool)."""
    return math.ceil(200 / (1 - v["missing_rate"]) - 1e-9)  # 200 / (1 - 0.8) is 1000.0000000000002


def _quarter_labels(v) -> int:
    """Labelled drives of one quarter in chapter 04 (``continual.check_settings``: 2% a month)."""
    return 3 * max(1, round(0.02 * v["n_per_month"]))


def _prime(n: int) -> bool:
    from sympy import isprime  # a library's test: the registry imports no algorithm of the field

    return bool(isprime(n))


def _verify_pool(v) -> int:
    """Items of chapter 09's collaborative cycle outside its test quarter (``verify.validate_setup``)."""
    return v["n_items"] - int(round(0.25 * v["n_items"]))

SPECS: dict[str, NotebookSpec] = {}


def register(spec: NotebookSpec) -> NotebookSpec:
    SPECS[spec.name] = spec
    return spec


register(NotebookSpec(
    name="01_supply_chain_data",
    title="The two data sets: remanufacturing and magnet grades",
    params=(
        SEED,
        Param("n_seeds", int, 5, "independent data sets for the drift confidence interval", low=1, high=50),
        Param("n_items", int, 4000, "remanufacturing components generated", low=100, high=1_000_000),
        Param("n_sites", int, 4, "participants in the horizontal partition", low=1, high=100),
        Param("n_per_month", int, 10_000, "hard drives arriving per month", low=100, high=1_000_000),
        Param("n_months", int, 12, "months of hard-drive arrivals (3 per quarter)", low=3, high=60),
        Param("missing_rate", float, 0.8, "fraction of magnet-data feature values missing",
              low=0.0, high=1.0, high_open=True),
        Param("missing_mechanism", str, "mcar", "how magnet-data values go missing",
              choices=("mcar", "mar", "mnar")),
        Param("label_rate", float, 0.02, "fraction of hard drives with a known magnet grade",
              low=0.0, high=1.0, low_open=True),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("missing_rate", "missing_mechanism", "n_per_month"),
                   lambda v: v["missing_rate"] <= _drift_missing_limit(v),
                   lambda v: f"<= {_drift_missing_limit(v):.4g} ({v['missing_mechanism']}, n_per_month = "
                             f"{v['n_per_month']}): the drift model trains on {_drift_train_rows(v)} first-"
                             "quarter drives and every feature needs >= 20 observed values there (expected)"),
    ),
    headline=("remanufacturable_rate", "magnet_missing_rate", "magnet_label_rate",
              "drift_accuracy_drop"),
    budget_s=60.0,
    claims=(
        Claim("magnet_data_sparsity", "001", "The case study had about 10,000 drives a month, 2% of them "
              "labelled, and 80% of feature values missing.", "2% labelled; 80% missing", "not measurable",
              reason="the seed's case-study data are not published; our generator is built to the sparsity the "
              "seed describes, so measuring it would only return its own settings"),
    ),
))


register(NotebookSpec(
    name="06_secret_sharing",
    title="Secret sharing and secure computation",
    params=(
        SEED,
        Param("n_seeds", int, 5, "repeats (seed, seed + 1, ...) for the confidence intervals", low=2, high=50),
        Param("t", int, 2, "Shamir threshold: polynomials of degree t, any t + 1 shares reconstruct",
              low=1, high=10),
        Param("n_parties", int, 5, "Shamir parties n (multiplication needs n >= 2t + 1)", low=2, high=21),
        Param("modulus", int, 2**61 - 1, "prime field modulus of the Shamir arithmetic", low=3,
              high=2**127 - 1),
        Param("small_modulus", int, 13, "small prime field for the plots and the independence tests",
              low=3, high=101),
        Param("n_sharings", int, 20_000, "sharings per secret in each independence test (>= 5 small_modulus^t)",
              low=100, high=2_000_000),
        Param("n_circuits", int, 50, "random arithmetic circuits evaluated on shares per seed",
              low=1, high=10_000),
        Param("precision_bits", int, 16, "CrypTen fixed-point fractional bits (crypten.cfg.encoder)",
              low=8, high=24),
        Param("n_inputs", int, 1000, "random inputs per CrypTen operation and seed", low=10, high=100_000),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("n_parties", "t"), lambda v: v["n_parties"] >= 2 * v["t"] + 1,
                   lambda v: f">= 2t + 1 = {2 * v['t'] + 1} (t = {v['t']}): multiplication on shares needs it"),
        Constraint(("modulus",), lambda v: _prime(v["modulus"]), "a prime (Z_p is a field only for prime p)"),
        Constraint(("modulus", "n_parties"), lambda v: v["modulus"] > v["n_parties"],
                   lambda v: f"> n_parties = {v['n_parties']} (each party needs its own non-zero point)"),
        Constraint(("small_modulus",), lambda v: _prime(v["small_modulus"]),
                   "a prime (Z_p is a field only for prime p)"),
        Constraint(("small_modulus", "n_parties"), lambda v: v["small_modulus"] > v["n_parties"],
                   lambda v: f"> n_parties = {v['n_parties']} (each party needs its own non-zero point)"),
        Constraint(("small_modulus", "t"), lambda v: v["small_modulus"] ** v["t"] <= 10**6,
                   lambda v: f"<= {math.floor(10 ** (6 / v['t']) + 1e-9)} at t = {v['t']}: the independence test "
                             "counts small_modulus^t cells (at most 1e6)"),
        Constraint(("n_sharings", "small_modulus", "t"),
                   lambda v: v["n_sharings"] >= 5 * v["small_modulus"] ** v["t"],
                   lambda v: f">= 5 small_modulus^t = {5 * v['small_modulus'] ** v['t']:,} (the chi-square "
                             "test needs 5 sharings per cell and secret)"),
    ),
    headline=("shamir_reconstruction_rate", "shamir_circuit_exact_rate", "shamir_independence_min_pvalue",
              "fp_max_abs_error_mul", "fp_max_rel_error_exp", "fp_median_ulp32_sigmoid", "fp_rounds_div"),
    budget_s=120.0,
    tolerances=(("fp_time_ms_*", TIMING),),  # wall times are not results
    claims=(
        Claim("shamir_t_plus_1_reconstruct", "002",
              "In t-out-of-n Shamir sharing any t+1 or more parties reconstruct the secret uniquely by Lagrange "
              "interpolation. Measured as 1 when every reconstruction from t+1 or more parties in the run "
              "returned the secret, else 0.",
              "holds by construction (Appendix B, no number)", "qualitative",
              metric="shamir_all_reconstructions_correct"),
        Claim("shamir_t_shares_hide", "002",
              "Any t or fewer shares leave the secret uniformly random (they reveal nothing about it). Measured "
              "as 1 when no chi-square test of independence between the secret and t parties' shares, or the "
              "value opened in a degree reduction, rejects at a familywise level of 1% (Bonferroni), else 0.",
              "holds by construction (Appendix B, no number)", "qualitative",
              metric="shamir_hiding_not_rejected"),
        Claim("shamir_circuits_degree_reduction", "002",
              "Additions are local; a product of shares has degree 2t and is reduced back to degree t with a "
              "random r shared with degree t and 2t, which needs n >= 2t+1; so any arithmetic circuit can be "
              "computed on shares. Measured as 1 when every wire of the run's random circuits computed on "
              "shares equals its clear value and no sharing has degree above t, else 0.",
              "holds by construction (Appendix B, no number)", "qualitative", metric="shamir_all_wires_exact"),
        Claim("secfloat_vs_fixed_point", "002",
              "The seed computes add, mul, div, exp, log, sigmoid, tanh and relu with SecFloat's secure 32-bit "
              "floats rather than fixed point (Appendix C); implied: fixed-point secure arithmetic cannot match "
              "float32 precision.",
              "no number in the seed", "not measurable",
              reason="the seed gives no figure for SecFloat's precision or cost, and SecFloat (C++, EzPC) is not "
                     "installable here: only CrypTen's fixed-point side is measured (fp_median_ulp32_* beside "
                     "float32's), and the comparison needs both sides"),
    ),
))


register(NotebookSpec(
    name="03_sparsity",
    title="Extreme sparsity: sparsity-aware DP, density-aware acquisition and cold start",
    params=(
        SEED,
        Param("n_seeds", int, 5, "independent repeats (data set, initial labels, noise) behind each 95% CI",
              low=1, high=30),
        Param("n_pool", int, 10_000, "unlabelled hard drives in the pool (one month of intake)",
              low=100, high=200_000),
        Param("n_test", int, 5000, "held-out drives for accuracy", low=100, high=100_000),
        Param("n_labels", int, 200, "label budget of each acquisition run (initial labels included), "
              "<= n_pool", low=2, high=200_000),
        Param("n_initial", int, 20, "labels chosen by the cold start (<= 50: the seed's cold start "
              "picks one per feature cluster)", low=2, high=50),
        Param("batch_size", int, 20, "labels acquired per round", low=1, high=10_000),
        Param("strategy", str, "density", "acquisition strategy whose labels the DP section trains on",
              choices=("random", "entropy", "density")),
        Param("model", str, "logreg", "classifier: imputation pipeline + logistic regression, or "
              "NaN-native gradient boosting", choices=("logreg", "hgb")),
        Param("bandwidth", float, 0.5, "KDE bandwidth of the density ratio, standardised units "
              "(the seed uses 0.5)", low=0.0, high=100.0, low_open=True),
        Param("missing_rate", float, 0.8, "fraction of feature values missing (MCAR)",
              low=0.0, high=1.0, high_open=True),
        Param("epsilon", float, 0.5, "declared privacy budget epsilon (the seed's pipeline uses 0.5; "
              "the accountant searches to 0.01)", low=0.01, high=100.0, low_open=True),
        Param("delta", float, 1e-5, "declared delta", low=0.0, high=1.0, low_open=True, high_open=True),
        Param("dp_batch_size", int, 50, "expected pool items per DP step (Poisson rate = "
              "dp_batch_size / n_pool), <= n_pool", low=1, high=200_000),
        Param("dp_steps", int, 1000, "DP training steps", low=1, high=100_000),
        Param("n_trials", int, 10_000, "audit trials per world (without and with the canary)",
              low=100, high=1_000_000),
        Param("bed_missing_rate", float, 0.0, "fraction of pixel values missing (MCAR) on the headroom bed "
              "(scikit-learn's digits, 1,198 pool images)", low=0.0, high=1.0, high_open=True),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("n_labels", "n_pool"), lambda v: v["n_labels"] <= v["n_pool"],
                   lambda v: f"<= n_pool = {v['n_pool']:,}"),
        Constraint(("n_labels",), lambda v: v["n_labels"] <= 1198,  # 1,797 digits less a third for the test
                   lambda v: "<= 1,198 (the pool of the digits headroom bed)"),
        Constraint(("n_initial", "n_labels"), lambda v: v["n_initial"] <= v["n_labels"],
                   lambda v: f"<= n_labels = {v['n_labels']} (the cold start's labels are part of the budget)"),
        Constraint(("dp_batch_size", "n_pool"), lambda v: v["dp_batch_size"] <= v["n_pool"],
                   lambda v: f"<= n_pool = {v['n_pool']:,} (its Poisson sampling rate is dp_batch_size / n_pool)"),
        Constraint(("n_pool", "missing_rate"), lambda v: v["n_pool"] >= _min_sparse_pool(v),
                   lambda v: f">= {_min_sparse_pool(v):,} at missing_rate = {v['missing_rate']:g}: every feature "
                             "needs >= 200 observed pool values (expected) for the seed's cold start"),
    ),
    headline=("accuracy_density_kmeans", "accuracy_entropy_random", "accuracy_random_random",
              "balanced_accuracy_density_kmeans", "noise_energy_seed_over_dpsgd",
              "audit_epsilon_seed_empty_batch", "audit_epsilon_opacus_dpsgd"),
    budget_s=180.0,
    # Accuracy claims read differences paired by repeat (same test drives). PPAL is density-aware acquisition
    # with the k-means cold start; uncertainty sampling is entropy from random initial labels. No skill is
    # always answering the majority grade: the seed gives no class balance for its case study, and its own
    # synthetic sparse data (the minimal example) are 30% high grade, so its 89% is a gain of 0.89 - 0.70 = 0.19
    # over no skill; 89% > 71% > 62% are gains of 0.18 and 0.09 between strategies. Headroom: the oracle (true
    # probabilities, complete features) over the baseline, the most any method can expect to gain; a bed where
    # it is below the claim region's lower edge (target - 0.25 target) cannot show the claim.
    # Issue 15 (rule changed after the magnet results were known; the oracle gates stay as first_rule): a bed's
    # headroom is what a learner can reach, all-label balanced accuracy minus the trivial classifier's 0.5
    # (headroom_balanced_accuracy_<bed>), gated at the same lower edge. Two beds: the magnet data (the seed's
    # setting; PPAL there is the scalable variant, "density") and scikit-learn's digits as a binary task with
    # 30% positives (chosen for its headroom, declared before any acquisition result on it; PPAL there is the
    # seed's rule as written, "density_literal"). DP-training claims are judged only where the non-private
    # model beats chance: headroom_dp_nonprivate_lower, the lower 95% bound of its balanced accuracy minus
    # 0.5, must be >= 0 (one repeat has no bound and counts as no headroom).
    # "40% less noise": the mechanism keeps the per-step noise scale and drops the noise of empty batches, so
    # the saving is in the total noise drawn (energy) over training; no saving is a ratio of 1.
    # Guarantees: "epsilon <= declared" is the goal e^(declared - epsilon) >= 1, judged on its interval
    # [0, e^(declared - audit lower bound)]: an audit can refute a guarantee (upper end below 1), never prove it.
    # The guarantee of the mechanism is audited where it is defined (noise only on non-empty batches), the
    # density rule by its own audit; the seed's "improved trade-off" presupposes that the declared epsilon holds.
    claims=(
        Claim("ppal_accuracy_200_labels", "001", "With 200 labels the PPAL pipeline reached 89% accuracy in "
              "predicting magnet grade: 19 points above always answering the majority grade (70% on the seed's "
              "own synthetic data, the only class balance it gives).", "89%", "effect",
              metric="accuracy_gain_density_kmeans_over_majority", target=0.19,
              headroom="headroom_balanced_accuracy_magnet", headroom_min=0.1425,
              first_rule=Claim("ppal_accuracy_200_labels", "001", "The oracle's gain gates it.", "89%", "effect",
                               metric="accuracy_gain_density_kmeans_over_majority", target=0.19,
                               headroom="oracle_gain_over_majority", headroom_min=0.1425)),
        Claim("acquisition_ordering_ppal_vs_uncertainty", "001", "At 200 labels PPAL (89%) beats standard "
              "uncertainty sampling (71%) by 18 accuracy points.", "89% vs 71%", "effect",
              metric="density_minus_entropy_accuracy", target=0.18,
              headroom="headroom_balanced_accuracy_magnet", headroom_min=0.135,
              first_rule=Claim("acquisition_ordering_ppal_vs_uncertainty", "001", "The oracle's gain gates it.",
                               "89% vs 71%", "effect", metric="density_minus_entropy_accuracy", target=0.18,
                               headroom="oracle_minus_entropy_accuracy", headroom_min=0.135)),
        Claim("acquisition_ordering_uncertainty_vs_random", "001", "At 200 labels uncertainty sampling (71%) beats "
              "random sampling (62%) by 9 accuracy points.", "71% vs 62%", "effect",
              metric="entropy_minus_random_accuracy", target=0.09,
              headroom="headroom_balanced_accuracy_magnet", headroom_min=0.0675,
              first_rule=Claim("acquisition_ordering_uncertainty_vs_random", "001", "The oracle's gain gates it.",
                               "71% vs 62%", "effect", metric="entropy_minus_random_accuracy", target=0.09,
                               headroom="oracle_minus_random_accuracy", headroom_min=0.0675)),
        Claim("ppal_accuracy_200_labels_digits", "001", "With 200 labels PPAL (the seed's density rule as written, "
              "k-means cold start) gains 19 accuracy points over always answering the majority class (89% against "
              "70%), on the digits bed.", "89%", "effect",
              metric="accuracy_gain_density_literal_kmeans_over_majority_digits", target=0.19,
              headroom="headroom_balanced_accuracy_digits", headroom_min=0.1425),
        Claim("acquisition_ordering_ppal_vs_uncertainty_digits", "001", "At 200 labels PPAL (the seed's rule as "
              "written) beats uncertainty sampling by 18 accuracy points (89% vs 71%), on the digits bed.",
              "89% vs 71%", "effect", metric="density_literal_minus_entropy_accuracy_digits", target=0.18,
              headroom="headroom_balanced_accuracy_digits", headroom_min=0.135),
        Claim("acquisition_ordering_uncertainty_vs_random_digits", "001", "At 200 labels uncertainty sampling beats "
              "random sampling by 9 accuracy points (71% vs 62%), on the digits bed.", "71% vs 62%", "effect",
              metric="entropy_minus_random_accuracy_digits", target=0.09,
              headroom="headroom_balanced_accuracy_digits", headroom_min=0.0675),
        Claim("dp_noise_40_percent_less", "001", "The sparsity-aware noise mechanism needs 40% less noise than "
              "standard DP-SGD (noise drawn, seed over DP-SGD, at the same declared epsilon, delta, sampling rate "
              "and steps).", "40% less noise", "effect", metric="noise_energy_seed_over_dpsgd", target=0.6,
              direction=-1, null=1.0,
              headroom="headroom_dp_nonprivate_lower", headroom_min=0.0,
              first_rule=Claim("dp_noise_40_percent_less", "001", "Judged without a gate.", "40% less noise",
                               "effect", metric="noise_energy_seed_over_dpsgd", target=0.6, direction=-1, null=1.0)),
        Claim("dp_guarantee", "001", "At epsilon = 0.5 the sparsity-aware mechanism provides a strong privacy "
              "guarantee: its true epsilon is at most the declared one.", "(0.5, delta)-DP", "goal",
              metric="dp_guarantee_factor_seed_empty_batch", target=1.0),
        Claim("density_adaptive_noise", "001", "Scaling the noise with the local density of the queried points "
              "(more noise where data are dense, less where sparse) improves the privacy-accuracy trade-off, at the "
              "declared epsilon.", "no figure", "goal", metric="dp_guarantee_factor_seed_density_noise", target=1.0,
              headroom="headroom_dp_nonprivate_lower", headroom_min=0.0,
              first_rule=Claim("density_adaptive_noise", "001", "Judged without a gate.", "no figure", "goal",
                               metric="dp_guarantee_factor_seed_density_noise", target=1.0)),
        Claim("cold_start_diverse_subspaces", "001", "The cold start identifies diverse subspaces and samples "
              "drives from each.", "no figure", "qualitative", metric="seed_cold_start_picks_items"),
        Claim("minimal_example", "001", "The minimal working example demonstrates PPAL on synthetic sparse data.",
              "an accuracy is printed", "not measurable", reason="its labels are drawn independently of its "
              "features, so no method can expect more than the majority class (70% accuracy, 50% balanced "
              "accuracy): the example has no headroom to show learning"),
    ),
))


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
              "ncr_improvement_ede_vs_nds"),
    budget_s=300.0,
    tolerances=(("train_cpu_seconds", TIMING),),  # wall times are not results
    # Relative changes of EDE over NDS from the modes' means, as the seed computes them; wastage is a
    # reduction, (NDS - EDE) / NDS, so less wastage is a positive change. EDE stands in for secure 2PC
    # in the abstract's claims: the seed reports the two equivalent (chapter 8 checks it).
    claims=(
        Claim("ede_less_wastage_appendix_i", "002", "EDE has 35.71% less wastage than NDS over the 100 measured "
              "epochs (Appendix I, Table 5).", "35.71%", "effect", metric="wastage_reduction_ede_vs_nds",
              target=0.3571),
        Claim("ede_better_ncr_appendix_i", "002", "EDE has 765.91% better normalized cumulative revenue than NDS "
              "(Appendix I, Table 5).", "765.91%", "effect", metric="ncr_improvement_ede_vs_nds", target=7.6591),
        Claim("secure_less_wastage_abstract", "002", "Secure 2PC has on average 68.19% less supply-chain wastage "
              "than no data sharing (abstract).", "68.19%", "effect", metric="wastage_reduction_ede_vs_nds",
              target=0.6819),
        Claim("secure_better_revenue_per_player_abstract", "002", "Secure 2PC gives on average 42.27% better "
              "average cumulative revenue for each player (abstract).", "42.27%", "effect",
              metric="reward_per_player_improvement_ede_vs_nds", target=0.4227),
    ),
))


register(NotebookSpec(
    name="08_secure_maddpg",
    title="Secure two-party MADDPG with CrypTen",
    params=(
        SEED,
        Param("n_seeds", int, 3, "independent secure phases (seeds seed, seed+1, ...), each beside its EDE twin",
              low=2, high=20),
        Param("secure_iterations", int, 40, "secure training iterations per seed (one step and one update each; "
              "the seed's full run: 800)", low=1, high=20_000),
        Param("pretrain_episodes", int, 400, "plaintext exploration episodes on simulated data before the "
              "secure phase", low=0, high=1_000_000),
        Param("hidden", int, 128, "hidden units of every actor and critic layer", low=1, high=512),
        Param("batch_size", int, 128, "replay minibatch size", low=1, high=1024),
        Param("precision_bits", int, 18, "fractional bits of CrypTen's fixed point (workable: 10 to 20)",
              low=10, high=20),
        Param("world_size", int, 2, "number of parties (the game and the protocol are two-party)", low=2, high=2),
        Param("scaling_hidden", list, ["32", "64", "128", "256"], "hidden sizes of the overhead scaling (batch "
              "batch_size)", choices=("8", "16", "32", "64", "128", "256", "512")),
        Param("scaling_batch", list, ["32", "256"], "minibatch sizes of the overhead scaling (hidden hidden)",
              choices=("8", "16", "32", "64", "128", "256", "512", "1024")),
        Param("scaling_iterations", int, 3, "iterations per scaling run (the first is not timed)", low=2, high=100),
    ),
    constraints=(seeds_fit("n_seeds"),),
    headline=("max_metric_rel_diff", "max_weight_rmse", "nudge_weight_rmse", "secure_online_ms",
              "secure_offline_ms", "plain_ms", "online_ratio"),
    budget_s=480.0,
    reads=("bench_secure_maddpg_full.json",),
    tolerances=(("*_ms", TIMING), ("*_ratio", TIMING), ("cost_growth_over_phase", TIMING)),  # wall times are not results
    claims=(
        # Equivalence: the secure run is as close to EDE as one fixed-point step of the weights puts EDE
        # from itself (the null, measured on the secure run's own EDE twin), and a learner that does not
        # learn must lie beyond that null (headroom).
        Claim("secure_equivalent_to_ede", "002", "With all external randomness fixed, Secure 2PC training gives "
              "results equivalent to explicit data exchange (Section 5.1, Appendix H): the final weights of the "
              "secure run are no farther from EDE's than EDE's own when every initial weight is nudged by one "
              "fixed-point step (2^-precision_bits).",
              "metric MAEs up to 0.88 between the modes (Appendix H, Table 3); final-weight MAE/RMSE per network "
              "(Table 4, values not in our text)", "equivalence", metric="max_weight_rmse",
              null_metric="nudge_weight_rmse", headroom="null_headroom", headroom_min=1.0),
        Claim("theorem1_linear_in_iterations", "002", "The secure MADDPG's lifetime cost grows linearly in the "
              "number of iterations (Appendix F, Theorem 1): the counted cost of n iterations is a + b n.",
              "O(n) for n iterations", "qualitative", metric="lifetime_cost_linear",
              headroom="lifetime_cost_increments", headroom_min=2.0,  # one increment is a line through anything
              first_rule=Claim("theorem1_linear_in_iterations", "002", "Every secure iteration performs the same "
                               "operation counts.", "O(n) for n iterations", "qualitative",
                               metric="same_counts_every_iteration")),
        Claim("secure_overhead", "002", "Secure computation increases computation time and communication "
              "(Section 5).", "no figure in the supplement", "not measurable",
              reason="the supplement gives no overhead figure to compare our measured ratios with"),
        Claim("secure_equivalent_to_ede_800_iterations", "002", "Secure 2PC training is equivalent to EDE over the "
              "seed's full run of 800 iterations (Section 5.1, Appendix H), judged as at 40 iterations.",
              "metric MAEs up to 0.88 between the modes (Table 3)", "equivalence",
              metric="full_scale_max_weight_rmse", null_metric="full_scale_nudge_weight_rmse",
              headroom="full_scale_null_headroom", headroom_min=1.0),
    ),
))


register(NotebookSpec(
    name="04_continual_learning",
    title="Continual learning under drift: does EWC stop forgetting?",
    params=(
        SEED,
        Param("n_seeds", int, 5, "independent data sets and networks (confidence intervals over them)",
              low=2, high=50),
        Param("n_per_month", int, 10_000, "hard drives arriving per month (12 months = 4 quarters)",
              low=500, high=100_000),
        Param("missing_rate", float, 0.8, "fraction of feature values missing (MCAR) in the main experiment",
              low=0.0, high=1.0, high_open=True),
        Param("contrast_missing_rate", float, 0.0, "fraction of feature values missing in the contrast experiment",
              low=0.0, high=1.0, high_open=True),
        Param("n_labels", int, 600, "labelled drives per quarter the network trains on "
              "(at most 3 x round(0.02 n_per_month))", low=1, high=6000),
        Param("n_test", int, 2000, "unlabelled drives per quarter held out, with true grades, for evaluation",
              low=50, high=100_000),
        Param("n_val", int, 1000, "further unlabelled drives per quarter, with true grades, that stop training "
              "and choose EWC's lambda (never the test drives)", low=50, high=100_000),
        Param("concept", str, "conflict", "label drift between quarters: a new product family each quarter whose "
              "date effect reverses the last one's (conflict), or the generator's gradual drift",
              choices=("conflict", "gradual")),
        Param("epochs", int, 50, "most passes over a quarter's training labels (training stops earlier once the "
              "validation fit stops improving)", low=1, high=500),
        Param("hidden_units", int, 32, "units in each of the network's two hidden layers", low=1, high=1024),
        Param("ewc_lambda", float, 1000.0, "the seed's EWC penalty weight, added to the sweep and reported beside "
              "the weight chosen on validation drives", low=0.0),
        Param("lambda_min", float, 10.0, "smallest EWC penalty weight of the sweep", low=0.0, low_open=True),
        Param("lambda_max", float, 1000.0, "largest EWC penalty weight of the sweep (>= lambda_min)",
              low=0.0, low_open=True),
        Param("n_lambdas", int, 3, "geometrically spaced penalty weights in the sweep", low=1, high=20),
        Param("fisher", str, "true", "Fisher diagonal: of the model's predictions (true) or of the labels",
              choices=("true", "empirical")),
        Param("consolidation", str, "per_task", "one EWC penalty per past quarter, or one running penalty",
              choices=("per_task", "online")),
        Param("strategy", str, "random", "which drives of a quarter get labels: the randomly labelled ones, "
              "or active learning with the current network", choices=("random", "least_confident", "margin",
                                                                    "entropy")),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("n_labels", "n_per_month"), lambda v: v["n_labels"] <= _quarter_labels(v),
                   lambda v: f"<= {_quarter_labels(v)}, the labelled drives of a quarter "
                             f"(3 x round(2% of n_per_month = {v['n_per_month']:,}))"),
        Constraint(("n_test", "n_per_month"),
                   lambda v: v["n_test"] <= 3 * v["n_per_month"] - _quarter_labels(v),
                   lambda v: f"<= {3 * v['n_per_month'] - _quarter_labels(v):,}, the unlabelled drives of a quarter"),
        Constraint(("n_val", "n_test", "n_per_month"),
                   lambda v: v["n_val"] + v["n_test"] <= 3 * v["n_per_month"] - _quarter_labels(v),
                   lambda v: f"<= {3 * v['n_per_month'] - _quarter_labels(v) - v['n_test']:,}, the unlabelled drives "
                             f"of a quarter left after n_test = {v['n_test']:,}"),
        Constraint(("lambda_max", "lambda_min"), lambda v: v["lambda_max"] >= v["lambda_min"],
                   lambda v: f">= lambda_min = {v['lambda_min']:g}"),
    ),
    headline=("headroom_bwt_auc", "bwt_finetune_auc", "bwt_ewc_auc", "bwt_joint_auc", "bwt_finetune_logloss",
              "bwt_ewc_logloss", "bwt_joint_logloss", "ewc_minus_finetune_bwt_auc", "ewc_minus_finetune_average_auc",
              "contrast_headroom_bwt_auc"),
    budget_s=180.0,
    # Issue 15 replaced the BED, not the rule. The first bed (the generator's gradual drift) had nothing to
    # forget: fine-tuning's backward transfer was -0.015 ROC AUC [-0.030, -0.001] at 80% missing and even a
    # perfect learner could lose at most 0.04 AUC on it, so both EWC claims were graded "partly" on noise.
    # The new bed (`concept="conflict"`) brings a new product family each quarter whose date effect reverses
    # the previous one's; only the manufacturer code tells families apart, so joint training can keep every
    # quarter while fine-tuning must unlearn. Each claim is still the seed's sign, a goal judged on the 95% CI's
    # bound in the seed's setting (`missing_rate`). What changed with the bed: (1) the readings are ROC AUC
    # and log-loss, no longer accuracy, which on this data mostly follows the class balance; (2) "EWC" is EWC
    # at the lambda chosen per seed on validation drives (the seed's 1000 is in the sweep and reported beside
    # it as `*_ewc_seed_lambda_*`); (3) every quarter is trained to convergence of its held-out fit; (4) each
    # claim is gated by the bed's headroom, `headroom_bwt_auc` = joint training's backward transfer minus
    # fine-tuning's (ROC AUC, paired by seed): forgetting that a learner could avoid. Its minimum, 0.05 AUC,
    # comes from what the claims need, not from the headroom measured: the sampling error of one quarter's
    # ROC AUC on n_test = 2000 drives is about 0.012, so avoidable forgetting must be about four of those
    # before "EWC forgets less" can be told from noise; below it the claims are "not measurable". (Disclosed:
    # a two-seed probe of the bed, run to see whether its conflict shows at all, came before this choice.) The
    # forgetting claim shares the gate: on a bed where nothing can be forgotten, "it forgets" decides nothing
    # (so on this bed it largely tests the bed; the mitigation claim is the informative one). The old ids with
    # accuracy readings are retired with the old bed. Log-loss is lower-better: forgetting is a positive
    # backward transfer, and EWC helping a negative difference.
    claims=(
        Claim("ewc_forgetting_under_drift_auc", "001", "When new products enter the supply chain (quarterly drift), a "
              "model updated on new data forgets earlier patterns (ROC AUC: fine-tuning's backward transfer below 0).",
              "qualitative; no number given", "goal", metric="bwt_finetune_auc", target=0.0, direction=-1,
              headroom="headroom_bwt_auc", headroom_min=0.05),
        Claim("ewc_forgetting_under_drift_logloss", "001", "When new products enter the supply chain (quarterly "
              "drift), a model updated on new data forgets earlier patterns (log-loss: fine-tuning's backward "
              "transfer above 0).", "qualitative; no number given", "goal", metric="bwt_finetune_logloss",
              target=0.0, direction=1, headroom="headroom_bwt_auc", headroom_min=0.05),
        Claim("ewc_mitigates_forgetting_auc", "001", "Elastic weight consolidation counters the forgetting by "
              "penalising changes to important weights (ROC AUC: EWC's backward transfer minus fine-tuning's above 0, "
              "lambda chosen on validation drives).", "qualitative; no number given (lambda = 1000)", "goal",
              metric="ewc_minus_finetune_bwt_auc", target=0.0, direction=1, headroom="headroom_bwt_auc",
              headroom_min=0.05),
        Claim("ewc_mitigates_forgetting_logloss", "001", "Elastic weight consolidation counters the forgetting by "
              "penalising changes to important weights (log-loss: EWC's backward transfer minus fine-tuning's below "
              "0, lambda chosen on validation drives).", "qualitative; no number given (lambda = 1000)", "goal",
              metric="ewc_minus_finetune_bwt_logloss", target=0.0, direction=-1, headroom="headroom_bwt_auc",
              headroom_min=0.05),
    ),
))


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


register(NotebookSpec(
    name="02_active_learning",
    title="Traditional vs privacy-preserving active learning",
    params=(
        Param("seed", int, 100, "seed of the data set, split and partition; repeats use seed, seed + 1, ... "
              "(100: clear of the small seeds used while building ppal_lab)", low=0, high=2**32 - 1),
        Param("n_seeds", int, 10, "independent repeats behind each 95% CI", low=2, high=50),
        Param("dataset", str, "remanufacturing", "main data set (sections 1-3)",
              choices=("remanufacturing", "breast_cancer", "digits", "wine")),
        Param("real_dataset", str, "breast_cancer", "real scikit-learn data set of section 4",
              choices=("breast_cancer", "digits", "wine")),
        Param("n_items", int, 4000, "remanufacturing items generated (pool + test set)", low=100,
              high=100_000),
        Param("test_fraction", float, 0.25, "share of each data set held out for testing", low=0.05,
              high=0.5),
        Param("epsilon", float, 1.0, "per-participant budget (unit: one record) of the headline and the "
              "overhead; the grid adds 0.1, 0.5, 1, 2, 4, 8 and no privacy", low=0.0, high=100.0,
              low_open=True),
        Param("delta", float, 1e-5, "delta of every participant's budget", low=0.0, high=1.0,
              low_open=True, high_open=True),
        Param("n_participants", int, 4, "sites of the horizontal partition", low=1, high=50),
        Param("non_iid", float, 0.5, "label skew of the partition (0 = stratified)", low=0.0, high=1.0),
        Param("label_budget", int, 200, "labels per run, initial ones included (<= pool size)", low=3,
              high=100_000),
        Param("initial_labels", int, 20, "random labels before the first query (>= n_participants; "
              ">= 8: a section compares 1, 4 and 8 sites)", low=8, high=10_000),
        Param("batch_size", int, 10, "labels bought per query round", low=1, high=10_000),
        Param("strategy", str, "entropy", "uncertainty strategy of the federated runs and the headline "
              "saving", choices=("least_confident", "margin", "entropy")),
        Param("model", str, "logreg", "global model of the federated runs and their centralized "
              "reference", choices=("logreg", "mlp")),
        Param("target_fraction", float, 0.95, "target accuracy as a fraction of the full-data accuracy",
              low=0.0, high=1.0, low_open=True),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("initial_labels", "n_participants"), lambda v: v["initial_labels"] >= v["n_participants"],
                   lambda v: f">= n_participants = {v['n_participants']} (every site starts with a label)"),
        Constraint(("label_budget", "initial_labels"), lambda v: v["label_budget"] > v["initial_labels"],
                   lambda v: f"> initial_labels = {v['initial_labels']} (at least one query)"),
        _al_pool_fits("dataset"),
        _al_pool_fits("real_dataset"),
    ),
    headline=("full_data_accuracy", "label_saving", "label_saving_headroom", "label_saving_at_target",
              "labels_to_target_strategy", "labels_to_target_random", "curve_area_gain",
              "fraction_of_centralized_eps1", "fraction_of_centralized", "fraction_of_centralized_nonprivate",
              "round_overhead", "real_label_saving", "real_label_saving_headroom",
              "real_fraction_of_centralized_eps1", "real_round_overhead"),
    budget_s=180.0,
    reads=("bench_query.json",),
    tolerances=(("*round_overhead", TIMING),),  # wall times are not results
    # Label saving: `strategy` vs random, labels to reach each target of ch02_active_learning.SAVING_TARGETS
    # (0.85, 0.87, ..., 0.99 of full-data accuracy; the seed names none) read off the mean learning curves, the
    # saving averaged over the targets where it is defined, 95% paired bootstrap CI over repeats. Headroom: the
    # same average for a strategy that reaches every target after one query round; a bed where even that saves
    # less than the claim region's lower edge (0.73 - 0.25 x 0.73 = 0.5475) cannot show the claim.
    # Privacy-utility: the seed's figure is a ratio to the centralized system, so no effect (privacy costs
    # nothing) is 1 and the claim is a cost of 8% of centralized accuracy, read at epsilon = 1 whatever `epsilon`.
    claims=(
        Claim("label_saving", "000", "Active learning reduced labelling requirements by 73% compared to random "
              "sampling.", "73% fewer labels", "effect", metric="label_saving", target=0.73,
              headroom="label_saving_headroom", headroom_min=0.5475,
              first_rule=Claim("label_saving", "000", "Active learning reduced labelling requirements by 73% "
                               "compared to random sampling.", "73% fewer labels", "effect",
                               metric="label_saving_per_seed", target=0.73)),
        Claim("label_saving_real", "000", "Active learning reduced labelling requirements by 73% compared to "
              "random sampling (on the real data set).", "73% fewer labels", "effect", metric="real_label_saving",
              target=0.73, headroom="real_label_saving_headroom", headroom_min=0.5475),
        Claim("privacy_utility_eps1", "000", "The privacy-preserving system reached 92% of the accuracy of a "
              "centralized system at epsilon = 1.", "92% at ε = 1", "effect", metric="fraction_of_centralized_eps1",
              target=0.92, direction=-1, null=1.0),
        Claim("privacy_utility_eps1_real", "000", "The privacy-preserving system reached 92% of the accuracy of a "
              "centralized system at epsilon = 1 (on the real data set).", "92% at ε = 1", "effect",
              metric="real_fraction_of_centralized_eps1", target=0.92, direction=-1, null=1.0),
        Claim("privacy_overhead", "000", "The privacy-preserving operations added 40-60% overhead.", "40-60%",
              "not measurable", reason="the seed's 40-60% is the cost of its cryptographic protocol "
              "(homomorphic encryption or secure computation); our private rounds add DP noise and "
              "accounting only, and no comparable cryptographic system is timed here"),
    ),
))


register(NotebookSpec(
    name="09_inverse_simulation",
    title="Inverse-simulation verification: the trust layer",
    params=(
        SEED,
        # 10 (was 5): what the 180 s budget affords with the seed's 5 queries a round, chosen before the gate's
        # gain was measured at that batch size; the gate claim's record says how many seeds would resolve it
        Param("n_seeds", int, 10, "independent repeats (seed, seed + 1, ...) behind every 95% CI", low=2, high=50),
        Param("n_items", int, 2000, "items per repeat: the verified test stream, each calibration half, and "
              "the collaborative cycle's population", low=200, high=200_000),
        Param("anomaly_rate", float, 0.2, "fraction of the test stream made anomalous (kinds in equal shares)",
              low=0.0, high=1.0, high_open=True),
        Param("anomaly_kinds", list, ["tampered_prediction", "sensor_fault", "sensor_drift", "ood_component",
                                      "label_noise"], "anomaly kinds injected",
              choices=("tampered_prediction", "sensor_fault", "sensor_drift", "ood_component", "label_noise")),
        Param("fpr_target", float, 0.05, "false-positive rate at which the ROC threshold is set on honest "
              "calibration items", low=0.0, high=1.0, low_open=True, high_open=True),
        Param("threshold", float, 0.85, "fixed threshold on both scores compared with the ROC one (the seed's 0.85)",
              low=0.0, high=1.0, low_open=True, high_open=True),
        Param("inverse", str, "grid", "the verifier's inverse model: grid search (maximum likelihood) or a learned "
              "MLP", choices=("grid", "mlp")),
        Param("claimant", str, "mlp", "inverse model of the honest claimants, fitted apart from the verifier's "
              "(an MLP on its own items and seed; 'grid' with a grid verifier is the circular case)",
              choices=("grid", "mlp")),
        Param("verifier_labels", int, 400, "trusted labels the verifier may use: half fit its decision model, "
              "half set its threshold (<= label_budget, what the consortium pays for)", low=20, high=150_000),
        # declared before any detection curve was measured: 3 noise SDs, the classical 3-sigma fault size
        Param("severity", float, 3.0, "size of the graded anomalies (tampering, drift, out-of-catalogue) in noise "
              "units at which the detection claim is read", low=0.0, high=20.0),
        Param("n_secure", int, 256, "test items verified on secret shares in the one CrypTen launch (<= n_items)",
              low=16, high=5000),
        Param("n_sites", int, 4, "participants of the collaborative cycle (one of them corrupts labels)",
              low=2, high=20),
        Param("corrupt_rate", float, 1.0, "probability that the corrupted participant's inspector answers an "
              "item wrongly", low=0.0, high=1.0),
        Param("label_budget", int, 400, "labels bought in the collaborative cycle, 20 initial ones included "
              "(<= 3/4 n_items)", low=21, high=150_000),
        Param("batch_size", int, 5, "labels bought per round of the cycle (the seed queries 5)", low=1, high=10_000),
        Param("strategy", str, "least_confident", "query strategy of the cycle",
              choices=("random", "least_confident", "margin", "entropy")),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("n_secure", "n_items"), lambda v: v["n_secure"] <= v["n_items"],
                   lambda v: f"<= n_items = {v['n_items']:,} (the secure batch comes from the test stream)"),
        Constraint(("anomaly_kinds",), lambda v: len(set(v["anomaly_kinds"])) == len(v["anomaly_kinds"]),
                   "a list without repeats"),
        Constraint(("anomaly_rate", "n_items", "anomaly_kinds"),
                   lambda v: round(v["anomaly_rate"] * v["n_items"]) // len(v["anomaly_kinds"]) >= 5,
                   lambda v: f">= {5 * len(v['anomaly_kinds']) / v['n_items']:.3g} so that each of the "
                             f"{len(v['anomaly_kinds'])} anomaly kinds gets at least 5 of the n_items = "
                             f"{v['n_items']:,} test items"),
        Constraint(("label_budget", "n_items"), lambda v: v["label_budget"] <= _verify_pool(v),
                   lambda v: f"<= {_verify_pool(v):,}, the cycle's pool (n_items less its test quarter)"),
        Constraint(("batch_size", "label_budget"), lambda v: v["batch_size"] <= v["label_budget"],
                   lambda v: f"<= label_budget = {v['label_budget']}"),
        Constraint(("verifier_labels", "label_budget"), lambda v: v["verifier_labels"] <= v["label_budget"],
                   lambda v: f"<= label_budget = {v['label_budget']} (the verifier knows no more labels than the "
                             "consortium can buy)"),
    ),
    headline=("detection_at_severity", "detection_rate_at_fpr", "false_positive_rate", "fpr_mismatch", "fixed_threshold_false_positive_rate",
              "auc_label_noise", "secure_max_abs_error", "gate_accuracy_gain"),
    budget_s=180.0,
    tolerances=(("*_time_s", TIMING), ("*_wall_s", TIMING)),  # wall times are not results
    claims=(
        # re-declared after review (issue 15): the pooled rate over the kinds' ranges was set by the chosen
        # sizes; the rule now reads detection at the spec's declared severity, the first rule is kept
        Claim("inverse_simulation_detection", "000", "Inverse simulation caught 89% of anomalous predictions that "
              "would otherwise have gone undetected. (Read at the declared severity, 3 noise SDs. No effect: a "
              "verifier without skill, which flags anomalous items at the rate it flags honest ones, the default "
              "5% its threshold is set to.)", "89%", "effect",
              metric="detection_at_severity", target=0.89, null=0.05,
              first_rule=Claim("inverse_simulation_detection", "000", "Inverse simulation caught 89% of anomalous "
                               "predictions, pooled over the anomaly kinds' ranges.", "89%", "effect",
                               metric="detection_rate_at_fpr", target=0.89, null=0.05)),
        Claim("fixed_consistency_threshold", "000", "A prediction is verified when its similarity and consistency "
              "both exceed a fixed threshold of 0.85. (A verifier must pass honest predictions; the seed states no "
              "false-positive rate, so the fixed threshold is held to flagging at most 10% of honest items, twice "
              "the default rate the ROC threshold is set to.)", "threshold 0.85", "goal",
              metric="fixed_threshold_false_positive_rate", target=0.10, direction=-1),
        Claim("verification_without_exposure", "000", "Verification without exposure is possible: consistency "
              "checks provide a trust layer even when the data remain encrypted (the similarity is computed "
              "homomorphically). (Holds when the verification on secret shares that opens nothing but each item's "
              "decision bit gives every item's plaintext verdict.)", "qualitative (no figure)", "qualitative",
              metric="bits_only_verification_exact"),
        Claim("verified_label_gate", "000", "Updating the collaborative model with verified labels only protects it "
              "from anomalous labels. (The seed gives no figure: read as a direction, the per-label gate's accuracy "
              "gain over no gate, with one site's inspector answering wrongly, is above zero.)",
              "qualitative (no figure)", "goal", metric="gate_accuracy_gain", target=0.0),
    ),
))

def resolve(name: str) -> NotebookSpec:
    """Find a notebook by its full name, with or without ``.ipynb``, or by an unambiguous part of it
    (its number ``01`` or a word ``data``)."""
    key = name[:-6] if name.endswith(".ipynb") else name
    key = key.rsplit("/", 1)[-1]
    if key in SPECS:
        return SPECS[key]
    hits = [n for n in SPECS if n.split("_", 1)[0] == key or n.split("_", 1)[-1] == key]
    if not hits:
        hits = [n for n in SPECS if key and key in n]
    if len(hits) == 1:
        return SPECS[hits[0]]
    allowed = "one of " + ", ".join(SPECS) if not hits else "unambiguous among " + ", ".join(hits)
    raise ParameterError("notebook", name, allowed)


def get_spec(name: str) -> NotebookSpec:
    return resolve(name)


# Keep chapter order whatever order the chapters were registered in (list, book and errors use it).
for _name in sorted(SPECS):
    SPECS[_name] = SPECS.pop(_name)


def validate_notebook(name: str, namespace: Mapping[str, Any]) -> SimpleNamespace:
    """Validate a notebook's parameters as they stand in its namespace (call it after the
    ``parameters`` cell: ``P = validate_notebook("01_supply_chain_data", globals())``)."""
    spec = get_spec(name)
    values = {p.name: namespace[p.name] for p in spec.params if p.name in namespace}
    return SimpleNamespace(**spec.validate(values))
