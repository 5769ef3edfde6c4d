"""Spec of notebook 06_secret_sharing: its parameters, the constraints between them and its claims."""
from __future__ import annotations

import math

from ppal_lab.compendium.params import TIMING, Constraint, NotebookSpec, Param
from ppal_lab.compendium.specs.common import SEED, seeds_fit
from ppal_lab.compendium.specs.registry import register
from ppal_lab.compendium.verdicts import Claim


def _prime(n: int) -> bool:
    from sympy import isprime  # a library's test: the registry imports no algorithm of the field

    return bool(isprime(n))


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

