"""Experiments of the secret-sharing chapter: Shamir's scheme checked, CrypTen's fixed point measured.

Claims (seed 002, Appendix B and C), each judged here from the chapter's measurements:

* ``shamir_t_plus_1_reconstruct`` — any ``t + 1`` parties rebuild the secret
  (:func:`reconstruction_study`, judged by :func:`reconstruction_verdict`);
* ``shamir_t_shares_hide`` — any ``t`` shares leave the secret uniform (:func:`privacy_study`, a
  Bonferroni-corrected chi-square test per seed with a ``t + 1``-share power check;
  :func:`hiding_verdict`);
* ``shamir_circuits_degree_reduction`` — random circuits of additions and degree-reduced
  multiplications are exact on shares (:func:`circuit_study`, :func:`circuit_verdict`);
* ``secfloat_vs_fixed_point`` — CrypTen's fixed point against float32, in float32 ULPs
  (:func:`fixed_point_verdict`, from :func:`ppal_lab.secure.fixed_point.run_op_table`).

Figures: ``06_shamir_polynomial``, ``06_shamir_uniform_shares``, ``06_fixed_point_error_vs_input``,
``06_fixed_point_error_sources_and_cost``. Data: none; every value is drawn from the ``seed``
parameter. The scheme itself is :mod:`ppal_lab.secure.shamir` (all parties in one process, for
teaching) and the two-party fixed-point measurements are :mod:`ppal_lab.secure.fixed_point`. At the
defaults (5 seeds, 20000 sharings, 50 circuits, 1000 inputs) the notebook ran in about 13 s for the
committed record (``wall_time_s``), most of it the two CrypTen parties.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.secure import fixed_point as fp
from ppal_lab.secure import shamir

__all__ = [
    "HEADLINE_KEYS", "add_claims", "bonferroni", "circuit_study", "circuit_verdict",
    "fixed_point_verdict", "glue_values", "headline_table", "hiding_verdict", "privacy_study",
    "reconstruction_study", "reconstruction_verdict", "record_metrics", "setup", "worse_than_float32",
]

#: Metrics of the headline table, in order (the ``fp_*`` ones for every op of ``fp.OP_NAMES``).
HEADLINE_KEYS = (["shamir_reconstruction_rate", "shamir_circuit_exact_rate", "shamir_max_degree",
                  "shamir_uniformity_pvalue", "shamir_elements_per_mul"]
                 + [f"fp_{m}_{op}" for m in ("max_abs_error", "median_ulp32") for op in fp.OP_NAMES]
                 + [f"fp_rounds_{op}" for op in fp.OP_NAMES] + ["crypten_decode_slips"])
_T_COLUMNS = ["p (first t parties)", "p (last t parties)"]


def setup(params: Any) -> tuple[shamir.Shamir, shamir.Shamir, np.random.Generator]:
    """The checks that need more than a range, before any work: the scheme in the field of
    ``modulus`` (``t < n``, modulus prime and ``> n``) must multiply (``n >= 2t + 1``), the small field
    must be a scheme too, and ``n_sharings`` must fill the ``small_modulus**t`` cells of the uniformity
    test five times over (with at most a million cells). Returns the two schemes (seeded with
    ``seed``), the large field's and the small field's, and the notebook's own generator (``seed``)."""
    P = params
    scheme = shamir.Shamir(P.t, P.n_parties, P.modulus, rng=P.seed)
    scheme.check_multiplication()
    small = shamir.Shamir(P.t, P.n_parties, P.small_modulus, rng=P.seed)
    cells = P.small_modulus ** P.t
    if cells > 10**6 or P.n_sharings < 5 * cells:
        raise ParameterError("n_sharings", P.n_sharings, f">= 5 * small_modulus^t = {5 * cells} "
                             "(with small_modulus^t <= 1e6)")
    return scheme, small, np.random.default_rng(P.seed)


def bonferroni(n_seeds: int) -> tuple[int, float]:
    """Number of uniformity tests (two per seed) and the per-test threshold that keeps the chance of
    rejecting a correct scheme at most 1% over all of them."""
    n_tests = 2 * n_seeds
    return n_tests, 0.01 / n_tests


def privacy_study(params: Any) -> pd.DataFrame:
    """Per seed: chi-square p-values of the joint law of the first ``t`` and of the last ``t`` parties'
    shares against uniform on GF(small_modulus)^t, and of ``t + 1`` shares (the power check, NaN when
    ``n_sharings`` is too small for its ``small_modulus**(t+1)`` cells). Indexed by seed."""
    P = params
    rows = []
    for k in range(P.n_seeds):
        s_k = shamir.Shamir(P.t, P.n_parties, P.small_modulus, rng=P.seed + k)
        secret_k = int(np.random.default_rng([P.seed, k]).integers(P.small_modulus))
        last_t = tuple(range(P.n_parties - P.t + 1, P.n_parties + 1))
        power_ok = P.n_sharings >= 5 * P.small_modulus ** (P.t + 1) and P.small_modulus ** (P.t + 1) <= 10**6
        rows.append({
            "seed": P.seed + k, "secret": secret_k,
            "p (first t parties)": shamir.uniformity_test(s_k, secret_k, range(1, P.t + 1), P.n_sharings)["pvalue"],
            "p (last t parties)": shamir.uniformity_test(s_k, secret_k, last_t, P.n_sharings)["pvalue"],
            "p (t+1 parties, power check)": shamir.uniformity_test(
                s_k, secret_k, range(1, P.t + 2), P.n_sharings)["pvalue"] if power_ok else np.nan})
    return pd.DataFrame(rows).set_index("seed")


def reconstruction_study(params: Any, n_secrets: int = 20) -> pd.DataFrame:
    """Per seed, :func:`ppal_lab.secure.shamir.reconstruction_rate` in the field of ``modulus``:
    ``n_secrets`` random secrets rebuilt from every (or a sample of every) set of ``>= t + 1`` parties,
    every set of ``t`` refused."""
    P = params
    return pd.DataFrame([shamir.reconstruction_rate(shamir.Shamir(P.t, P.n_parties, P.modulus, rng=P.seed + k),
                                                    n_secrets, np.random.default_rng([P.seed, k, 1]))
                         for k in range(P.n_seeds)], index=pd.Index(range(P.seed, P.seed + P.n_seeds), name="seed"))


def circuit_study(params: Any) -> pd.DataFrame:
    """Per seed: ``n_circuits`` random circuits evaluated in the clear and on shares
    (:func:`ppal_lab.secure.shamir.circuit_trial`), the communication of one multiplication, and a
    Kolmogorov-Smirnov p-value of the values opened during degree reductions (``d / p`` uniform)."""
    P = params
    rows = []
    for k in range(P.n_seeds):
        s_k = shamir.Shamir(P.t, P.n_parties, P.modulus, rng=P.seed + k)
        res = shamir.circuit_trial(s_k, P.n_circuits, np.random.default_rng([P.seed, k, 2]))
        opened = np.array(s_k.comm.opened, dtype=float) / P.modulus
        rows.append({"seed": P.seed + k,
                     **{key: res[key] for key in ("wires", "exact_rate", "max_degree", "multiplications")},
                     "elements per multiplication": 3 * P.n_parties * (P.n_parties - 1),
                     "KS p (opened d / p uniform)": stats.kstest(opened, "uniform").pvalue})
    return pd.DataFrame(rows).set_index("seed")


def record_metrics(record: Any, params: Any, recon: pd.DataFrame, privacy: pd.DataFrame,
                   circuits: pd.DataFrame, table: Any) -> tuple[int, int]:
    """Fill ``record`` with the Shamir metrics and, per op, the fixed-point errors and costs of
    ``table`` (an :class:`~ppal_lab.secure.fixed_point.OpTable`). Returns how many results CrypTen
    0.4.1's own decoder gets wrong by one, and of how many."""
    P = params
    n_tests, _ = bonferroni(P.n_seeds)
    record.add_metric("shamir_reconstruction_rate", recon.rate.to_list(), "fraction",
                      "sets of >= t+1 parties that rebuilt the secret, per seed")
    record.add_metric("shamir_t_sets_refused", (recon.t_sets_refused / recon.t_sets_tried).to_list(), "fraction",
                      "sets of t parties whose reconstruction was refused (all must be), per seed")
    record.add_metric("shamir_circuit_exact_rate", circuits.exact_rate.to_list(), "fraction",
                      "wires of random circuits computed on shares that equal the clear result, per seed")
    record.add_metric("shamir_max_degree", circuits.max_degree.to_list(), "degree",
                      "largest actual degree of any wire's sharing after degree reduction, per seed")
    record.add_metric("shamir_uniformity_pvalue", privacy["p (first t parties)"].to_list(), "p-value",
                      "chi-square p-value of t shares against uniform on GF(p)^t, per seed")
    record.add_metric("shamir_uniformity_min_pvalue", float(privacy[_T_COLUMNS].min().min()),
                      "p-value", f"smallest of the {n_tests} uniformity tests")
    if privacy["p (t+1 parties, power check)"].notna().all():
        record.add_metric("shamir_power_max_pvalue", float(privacy["p (t+1 parties, power check)"].max()), "p-value",
                          "largest p-value of the t+1-share power check (must be tiny)")
    record.add_metric("shamir_elements_per_mul", 3 * P.n_parties * (P.n_parties - 1), "field elements",
                      "communication of one multiplication with degree reduction")
    per_rep = table.per_rep()
    for op in fp.OP_NAMES:
        r = per_rep[per_rep.op == op]
        record.add_metric(f"fp_max_abs_error_{op}", r.max_abs_err.to_list(), "absolute",
                          f"{op}: max |secure - float64| per seed")
        record.add_metric(f"fp_max_rel_error_{op}", r.max_rel_err.to_list(), "relative",
                          f"{op}: max relative error (|ref| >= 1e-3) per seed")
        record.add_metric(f"fp_median_ulp32_{op}", r.median_ulp32.to_list(), "float32 ULP",
                          f"{op}: median error in float32 ULPs per seed")
        record.add_metric(f"fp_float32_median_ulp32_{op}", r.median_ulp32_f32.to_list(), "float32 ULP",
                          f"{op}: NumPy float32's median error")
        record.add_metric(f"fp_rounds_{op}", float(r.rounds.iloc[0]), "rounds", f"{op}: communication calls per party")
        record.add_metric(f"fp_bytes_per_element_{op}", float(r.bytes.iloc[0] / P.n_inputs), "bytes",
                          f"{op}: two-party total per element")
        record.add_metric(f"fp_time_ms_{op}", (1000 * r.time_s).to_list(), "ms",
                          f"{op}: time for {P.n_inputs} elements (timing, noisy)")
        record.add_metric(f"fp_within_bound_{op}", r.within_bound.to_list(), "fraction",
                          f"{op}: results within the rounding bound")
    slips = int(table.samples.crypten_decoded.sub(table.samples.secure).abs().gt(0.5).sum())
    n_results = len(table.samples)
    record.add_metric("crypten_decode_slips", slips, "count",
                      f"results among {n_results} that CrypTen 0.4.1's decoder gets wrong by 1")
    return slips, n_results


def reconstruction_verdict(recon: pd.DataFrame) -> str:
    """Reproduced when every seed rebuilt every secret and refused every set of ``t`` parties."""
    ok = bool((recon.rate == 1).all() and (recon.t_sets_refused == recon.t_sets_tried).all())
    return "reproduced" if ok else "not reproduced"


def hiding_verdict(privacy: pd.DataFrame, alpha: float) -> str:
    """Reproduced when every ``t``-share test stays above the Bonferroni threshold ``alpha`` and every
    ``t + 1``-share power check rejects (p below 1e-6; a missing power check counts as rejecting)."""
    uniform_ok = bool((privacy[_T_COLUMNS] > alpha).all().all())
    power_ok = bool(privacy["p (t+1 parties, power check)"].fillna(0).max() < 1e-6)
    return "reproduced" if uniform_ok and power_ok else "not reproduced"


def circuit_verdict(circuits: pd.DataFrame, t: int) -> str:
    """Reproduced when every wire of every circuit is exact and no sharing has degree above ``t``."""
    ok = bool((circuits.exact_rate == 1).all() and (circuits.max_degree <= t).all())
    return "reproduced" if ok else "not reproduced"


def worse_than_float32(median_ulp32: pd.Series) -> list[str]:
    """The ops whose median fixed-point error exceeds float32's 0.5 ULP."""
    return [op for op in fp.OP_NAMES if median_ulp32[op] > 0.5]


def fixed_point_verdict(worse: Sequence[str]) -> str:
    """Partly reproduced when fixed point is worse than float32 for at least half of the ops (only the
    fixed-point side is measured), otherwise not reproduced."""
    return "partly" if len(worse) >= len(fp.OP_NAMES) // 2 else "not reproduced"


def add_claims(record: Any, params: Any, recon: pd.DataFrame, privacy: pd.DataFrame, circuits: pd.DataFrame,
               summary: pd.DataFrame) -> list[str]:
    """Add the chapter's four claims to ``record`` with their measurements and verdicts (``summary``:
    the op table's summary, one row per op). Returns the ops worse than float32."""
    P = params
    n_tests, alpha = bonferroni(P.n_seeds)
    record.add_claim(
        "shamir_t_plus_1_reconstruct", "002",
        "In t-out-of-n Shamir sharing any t+1 or more parties reconstruct the secret uniquely by Lagrange interpolation.",
        "holds by construction (Appendix B, no number)",
        f"{int(recon.correct.sum())} of {int(recon.checked.sum())} reconstructions correct over {P.n_seeds} seeds "
        f"(t={P.t}, n={P.n_parties}); every set of t parties refused",
        reconstruction_verdict(recon))
    record.add_claim(
        "shamir_t_shares_hide", "002",
        "Any t or fewer shares leave the secret uniformly random.",
        "holds by construction (Appendix B, no number)",
        f"{n_tests} chi-square tests of t shares in GF({P.small_modulus}): smallest p = "
        f"{privacy[_T_COLUMNS].min().min():.3f} (Bonferroni threshold {alpha:.4f}); "
        f"t+1 shares rejected (largest p = {privacy['p (t+1 parties, power check)'].max():.1e})",
        hiding_verdict(privacy, alpha),
        "A test can only fail to find a leak; the exact statement is a theorem, illustrated by the candidate count.")
    record.add_claim(
        "shamir_circuits_degree_reduction", "002",
        "Additions are local; a product of shares has degree 2t and is reduced back to degree t with a random r "
        "shared with degree t and 2t, which needs n >= 2t+1; so any arithmetic circuit can be computed on shares.",
        "holds by construction (Appendix B, no number)",
        f"{int((circuits.exact_rate * circuits.wires).sum())} of {int(circuits.wires.sum())} wires exact in "
        f"{P.n_seeds * P.n_circuits} random circuits; degree after reduction <= {int(circuits.max_degree.max())}; "
        f"opened values uniform (smallest KS p = {circuits['KS p (opened d / p uniform)'].min():.3f}); n = 2t refused",
        circuit_verdict(circuits, P.t))
    ulp = summary.median_ulp32
    worse = worse_than_float32(ulp)
    record.add_claim(
        "secfloat_vs_fixed_point", "002",
        "The seed computes add, mul, div, exp, log, sigmoid, tanh and relu with SecFloat's secure 32-bit floats rather "
        "than fixed point (Appendix C); implied: fixed-point secure arithmetic cannot match float32 precision.",
        "no number in the seed",
        f"CrypTen fixed point (b={P.precision_bits}) median error above float32's 0.5 ULP for {len(worse)} of "
        f"{len(fp.OP_NAMES)} ops: " + ", ".join(f"{op} {ulp[op]:.3g}" for op in fp.OP_NAMES) + " ULP",
        fixed_point_verdict(worse),
        "Only the fixed-point side is measured: SecFloat (C++, EzPC) is not installable here, so its own errors and "
        "costs are not measured; compare with the figures its authors publish.")
    return worse


def headline_table(record: Any, keys: Sequence[str] = HEADLINE_KEYS) -> pd.DataFrame:
    """The headline metrics as text: value, 95% interval, n and unit."""
    m = record.metrics
    return pd.DataFrame({k: {"value": f"{m[k]['value']:.4g}",
                             "ci95": ("" if m[k]["ci95"] is None else "[{:.4g}, {:.4g}]".format(*m[k]["ci95"])),
                             "n": m[k]["n"], "unit": m[k]["unit"]} for k in keys}).T


def _interval(metric: dict) -> list[float]:
    return metric["ci95"] or [metric["value"]] * 2


def glue_values(record: Any, circuits: pd.DataFrame, summary: pd.DataFrame, *, n_tests: int, slips: int,
                n_results: int, worse: Sequence[str]) -> dict[str, Any]:
    """The numbers the prose quotes (the glue values), by name."""
    m = record.metrics
    values = {
        "n_privacy_tests": n_tests, "ulp_mul": m["fp_median_ulp32_mul"]["value"],
        "exp_rel": m["fp_max_rel_error_exp"]["value"], "decode_slips": slips, "n_results": n_results,
        "recon_rate": m["shamir_reconstruction_rate"]["value"], "circ_rate": m["shamir_circuit_exact_rate"]["value"],
        "n_wires": int(circuits.wires.sum()), "min_p": m["shamir_uniformity_min_pvalue"]["value"],
        "mul_err": m["fp_max_abs_error_mul"]["value"],
        "mul_err_lo": _interval(m["fp_max_abs_error_mul"])[0], "mul_err_hi": _interval(m["fp_max_abs_error_mul"])[1],
        "exp_rel_lo": _interval(m["fp_max_rel_error_exp"])[0], "exp_rel_hi": _interval(m["fp_max_rel_error_exp"])[1],
        "ulp_sigmoid": m["fp_median_ulp32_sigmoid"]["value"],
    }
    values.update({f"rounds_{op}": m[f"fp_rounds_{op}"]["value"] for op in fp.OP_NAMES})
    values.update({"sig_err": m["fp_max_abs_error_sigmoid"]["value"], "within_min": float(summary.within_bound.min()),
                   "n_worse": len(worse), "n_ops": len(fp.OP_NAMES)})
    return values
