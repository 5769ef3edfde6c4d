"""Experiments of the secret-sharing chapter: Shamir's scheme checked, CrypTen's fixed point measured.

Claims (seed 002, Appendix B and C), declared in the chapter's spec and decided by the verdict engine
(:func:`add_claims`) from 0/1 metrics that :func:`record_metrics` computes from the run:

* ``shamir_t_plus_1_reconstruct`` — any ``t + 1`` parties rebuild the secret
  (:func:`reconstruction_study`; metric ``shamir_all_reconstructions_correct``);
* ``shamir_t_shares_hide`` — ``t`` shares, and the values opened in degree reductions, are
  independent of the secret (:func:`privacy_study`: chi-square tests of independence, secret x
  observation, Bonferroni-corrected, with a ``t + 1``-share power check; metric
  ``shamir_hiding_not_rejected``);
* ``shamir_circuits_degree_reduction`` — random circuits of additions and degree-reduced
  multiplications are exact on shares (:func:`circuit_study`; metric ``shamir_all_wires_exact``);
  the field elements per multiplication are counted from the messages the simulated parties send;
* ``secfloat_vs_fixed_point`` — not measurable (SecFloat is not run); CrypTen's fixed point is
  measured against float32 in float32 ULPs (:func:`ppal_lab.secure.fixed_point.run_op_table`).

Figures: ``06_shamir_polynomial``, ``06_shamir_uniform_shares``, ``06_fixed_point_error_vs_input``,
``06_fixed_point_error_sources_and_cost``. Data: none; every value is drawn from the ``seed``
parameter. The scheme itself is :mod:`ppal_lab.secure.shamir` (all parties in one process, for
teaching) and the two-party fixed-point measurements are :mod:`ppal_lab.secure.fixed_point`. At the
defaults (5 seeds, 20000 sharings, 50 circuits, 1000 inputs) the notebook ran in about 13 s for the
committed record (``wall_time_s``), most of it the two CrypTen parties.
"""
from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.specs import SPECS
from ppal_lab.secure import fixed_point as fp
from ppal_lab.secure import shamir

__all__ = [
    "HEADLINE_KEYS", "HIDING_SECRETS", "OPENED_PER_CELL", "OP_TITLE", "ablation_table", "add_claims",
    "beaver_table", "bonferroni", "circuit_study", "glue_values", "headline_table", "multiplication_steps_table",
    "op_summary_table", "plot_error_sources_and_cost", "plot_error_vs_input", "plot_shamir_polynomial",
    "privacy_study", "reconstruction_study", "record_metrics", "setup", "worse_than_float32",
]

#: Metrics of the headline table, in order (the ``fp_*`` ones for every op of ``fp.OP_NAMES``).
HEADLINE_KEYS = (["shamir_reconstruction_rate", "shamir_circuit_exact_rate", "shamir_max_degree",
                  "shamir_independence_min_pvalue", "shamir_elements_per_mul"]
                 + [f"fp_{m}_{op}" for m in ("max_abs_error", "median_ulp32") for op in fp.OP_NAMES]
                 + [f"fp_rounds_{op}" for op in fp.OP_NAMES] + ["crypten_decode_slips"])
#: Secrets per independence test (distinct, drawn from the small field with each seed).
HIDING_SECRETS = 4
#: Expected count per cell of the opened-values test: ``OPENED_PER_CELL * small_modulus`` products per secret.
OPENED_PER_CELL = 20
#: The independence tests of the hiding claim, per seed (the power check is not one of them).
_HIDING_COLUMNS = ["p (first t parties)", "p (last t parties)", "p (opened values)"]
_POWER_COLUMN = "p (t+1 parties, power check)"


def setup(params: Any) -> tuple[shamir.Shamir, shamir.Shamir, np.random.Generator]:
    """The checks that need more than a range, before any work: the scheme in the field of
    ``modulus`` (``t < n``, modulus prime and ``> n``) must multiply (``n >= 2t + 1``), the small field
    must be a scheme too, and ``n_sharings`` must fill the ``small_modulus**t`` cells of the independence
    test five times over per secret (with at most a million cells). Returns the two schemes (seeded with
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
    """Number of independence tests of the hiding claim (three per seed) and the per-test threshold
    that keeps the chance of rejecting a correct scheme at most 1% over all of them."""
    n_tests = len(_HIDING_COLUMNS) * n_seeds
    return n_tests, 0.01 / n_tests


def privacy_study(params: Any) -> pd.DataFrame:
    """Per seed, in GF(small_modulus), :data:`HIDING_SECRETS` random distinct secrets: chi-square
    p-values of independence (:func:`ppal_lab.secure.shamir.independence_test`) between the secret and
    the joint shares of the first ``t`` parties, of the last ``t`` parties (``n_sharings`` sharings
    per secret), and the value opened by the degree reduction of a product equal to the secret
    (``OPENED_PER_CELL * small_modulus`` products per secret); and the same test on ``t + 1`` shares
    (the power check: they determine the secret; NaN when ``n_sharings`` is too small for its
    ``small_modulus**(t+1)`` cells). Indexed by seed."""
    P = params
    first_t, last_t = range(1, P.t + 1), range(P.n_parties - P.t + 1, P.n_parties + 1)
    power_ok = P.n_sharings >= 5 * P.small_modulus ** (P.t + 1) and P.small_modulus ** (P.t + 1) <= 10**6
    rows = []
    for k in range(P.n_seeds):
        s_k = shamir.Shamir(P.t, P.n_parties, P.small_modulus, rng=P.seed + k)
        rng = np.random.default_rng([P.seed, k])
        secrets = [int(v) for v in rng.choice(P.small_modulus, HIDING_SECRETS, replace=False)]
        opened = {s: shamir.opened_observations(s_k, s, OPENED_PER_CELL * P.small_modulus, rng) for s in secrets}
        rows.append({"seed": P.seed + k, "secrets": ", ".join(map(str, secrets)),
                     "p (first t parties)": _p_shares(s_k, secrets, first_t, P.n_sharings),
                     "p (last t parties)": _p_shares(s_k, secrets, last_t, P.n_sharings),
                     "p (opened values)": shamir.independence_test(opened)["pvalue"],
                     _POWER_COLUMN: _p_shares(s_k, secrets, range(1, P.t + 2), P.n_sharings) if power_ok else np.nan})
    return pd.DataFrame(rows).set_index("seed")


def _p_shares(scheme: shamir.Shamir, secrets: Sequence[int], parties: Sequence[int], n_sharings: int) -> float:
    """p-value of independence between the secret and the joint shares of ``parties``."""
    return shamir.independence_test({s: shamir.share_observations(scheme, s, parties, n_sharings)
                                     for s in secrets})["pvalue"]


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
    (:func:`ppal_lab.secure.shamir.circuit_trial`) and the field elements the parties sent per
    multiplication while evaluating the gates (counted from their messages; NaN without a
    multiplication)."""
    P = params
    rows = []
    for k in range(P.n_seeds):
        s_k = shamir.Shamir(P.t, P.n_parties, P.modulus, rng=P.seed + k)
        res = shamir.circuit_trial(s_k, P.n_circuits, np.random.default_rng([P.seed, k, 2]))
        rows.append({"seed": P.seed + k,
                     **{key: res[key] for key in ("wires", "exact", "exact_rate", "max_degree", "multiplications")},
                     "elements per multiplication": (res["gate_elements"] / res["multiplications"]
                                                     if res["multiplications"] else np.nan)})
    return pd.DataFrame(rows).set_index("seed")


def record_metrics(record: Any, params: Any, recon: pd.DataFrame, privacy: pd.DataFrame,
                   circuits: pd.DataFrame, table: Any) -> tuple[int, int]:
    """Fill ``record`` with the Shamir metrics and, per op, the fixed-point errors and costs of
    ``table`` (an :class:`~ppal_lab.secure.fixed_point.OpTable`). Returns how many results CrypTen
    0.4.1's own decoder gets wrong by one, and of how many."""
    P = params
    n_tests, alpha = bonferroni(P.n_seeds)
    record.add_metric("shamir_reconstruction_rate", recon.rate.to_list(), "fraction",
                      "sets of >= t+1 parties that rebuilt the secret, per seed")
    record.add_metric("shamir_all_reconstructions_correct", float(recon.correct.sum() == recon.checked.sum()),
                      "0/1", f"1 when all {int(recon.checked.sum())} reconstructions from >= t+1 parties returned "
                      "the secret")
    record.add_metric("shamir_t_sets_refused", (recon.t_sets_refused / recon.t_sets_tried).to_list(), "fraction",
                      "sets of t parties whose reconstruction was refused (all must be), per seed")
    record.add_metric("shamir_circuit_exact_rate", circuits.exact_rate.to_list(), "fraction",
                      "wires of random circuits computed on shares that equal the clear result, per seed")
    record.add_metric("shamir_max_degree", circuits.max_degree.to_list(), "degree",
                      "largest actual degree of any wire's sharing after degree reduction, per seed")
    record.add_metric("shamir_all_wires_exact",
                      float(circuits.exact.sum() == circuits.wires.sum() and circuits.max_degree.max() <= P.t),
                      "0/1", f"1 when all {int(circuits.wires.sum())} wires computed on shares equal the clear "
                      "result and no sharing has degree above t")
    min_p = float(privacy[_HIDING_COLUMNS].min().min())
    record.add_metric("shamir_independence_pvalue", privacy[_HIDING_COLUMNS].min(axis=1).to_list(), "p-value",
                      "smallest chi-square p-value of independence from the secret (t shares, opened values), "
                      "per seed")
    record.add_metric("shamir_independence_min_pvalue", min_p, "p-value", f"smallest of the {n_tests} independence "
                      "tests")
    record.add_metric("shamir_hiding_not_rejected", float(min_p > alpha), "0/1",
                      f"1 when none of the {n_tests} independence tests rejects at p <= {alpha:.2g} (Bonferroni, "
                      "familywise 1%)")
    if privacy[_POWER_COLUMN].notna().all():
        record.add_metric("shamir_power_max_pvalue", float(privacy[_POWER_COLUMN].max()), "p-value",
                          "largest p-value of the t+1-share power check (must be tiny)")
    per_mul = circuits["elements per multiplication"].dropna()
    if len(per_mul):
        record.add_metric("shamir_elements_per_mul", per_mul.to_list(), "field elements",
                          "field elements the parties sent per multiplication (degree reduction included), "
                          "counted from their messages, per seed")
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


def worse_than_float32(median_ulp32: pd.Series) -> list[str]:
    """The ops whose median fixed-point error exceeds float32's 0.5 ULP."""
    return [op for op in fp.OP_NAMES if median_ulp32[op] > 0.5]


def add_claims(record: Any, params: Any, recon: pd.DataFrame, privacy: pd.DataFrame, circuits: pd.DataFrame,
               summary: pd.DataFrame) -> list[str]:
    """Add the chapter's four claims (declared in its spec) to ``record``, after :func:`record_metrics`,
    with what was measured; the verdict engine decides them. ``summary``: the op table's summary, one
    row per op. Returns the ops worse than float32."""
    P, m = params, record.metrics
    n_tests, alpha = bonferroni(P.n_seeds)
    ulp = summary.median_ulp32
    worse = worse_than_float32(ulp)
    power = (f"; t+1 shares: largest p = {privacy[_POWER_COLUMN].max():.1e}" if privacy[_POWER_COLUMN].notna().all()
             else "; t+1 power check not run (too few sharings for its cells)")
    per_mul = (f"{m['shamir_elements_per_mul']['value']:.0f} field elements sent per multiplication (counted)"
               if "shamir_elements_per_mul" in m else "no multiplication drawn")
    measured = {
        "shamir_t_plus_1_reconstruct":
            f"{int(recon.correct.sum())} of {int(recon.checked.sum())} reconstructions correct over {P.n_seeds} "
            f"seeds (t={P.t}, n={P.n_parties}); {int(recon.t_sets_refused.sum())} of "
            f"{int(recon.t_sets_tried.sum())} sets of t parties refused",
        "shamir_t_shares_hide":
            f"{n_tests} chi-square tests of independence between the secret ({HIDING_SECRETS} secrets per seed, "
            f"GF({P.small_modulus})) and t shares or the value opened in a degree reduction: smallest p = "
            f"{m['shamir_independence_min_pvalue']['value']:.3f} (Bonferroni threshold {alpha:.4f})" + power,
        "shamir_circuits_degree_reduction":
            f"{int(circuits.exact.sum())} of {int(circuits.wires.sum())} wires exact in "
            f"{P.n_seeds * P.n_circuits} random circuits; degree after reduction <= {int(circuits.max_degree.max())}; "
            f"{per_mul}",
        "secfloat_vs_fixed_point":
            f"CrypTen fixed point (b={P.precision_bits}) median error above float32's 0.5 ULP for {len(worse)} of "
            f"{len(fp.OP_NAMES)} ops: " + ", ".join(f"{op} {ulp[op]:.3g}" for op in fp.OP_NAMES) + " ULP",
    }
    notes = {"shamir_t_shares_hide": "A test can only fail to find a leak; that t shares carry no information is a "
                                     "theorem, illustrated by the candidate count."}
    record.decide_claims(SPECS[record.notebook].claims, measured, notes)
    return worse


def headline_table(record: Any, keys: Sequence[str] = HEADLINE_KEYS) -> pd.DataFrame:
    """The headline metrics the record has, as text: value, 95% interval, n and unit."""
    m = record.metrics
    return pd.DataFrame({k: {"value": f"{m[k]['value']:.4g}",
                             "ci95": ("" if m[k]["ci95"] is None else "[{:.4g}, {:.4g}]".format(*m[k]["ci95"])),
                             "n": m[k]["n"], "unit": m[k]["unit"]} for k in keys if k in m}).T


def _interval(metric: dict) -> list[float]:
    return metric["ci95"] or [metric["value"]] * 2


def glue_values(record: Any, circuits: pd.DataFrame, summary: pd.DataFrame, *, n_tests: int, slips: int,
                n_results: int, worse: Sequence[str], params: Any = None) -> dict[str, Any]:
    """The numbers the prose quotes (the glue values), by name; with ``params``, also the parameters the
    prose names (``small_modulus``, ``precision_bits``, ``modulus``, ``n_sharings``)."""
    m = record.metrics
    values = {
        "n_privacy_tests": n_tests, "ulp_mul": m["fp_median_ulp32_mul"]["value"],
        "exp_rel": m["fp_max_rel_error_exp"]["value"], "decode_slips": slips, "n_results": n_results,
        "recon_rate": m["shamir_reconstruction_rate"]["value"], "circ_rate": m["shamir_circuit_exact_rate"]["value"],
        "n_wires": int(circuits.wires.sum()), "min_p": m["shamir_independence_min_pvalue"]["value"],
        "mul_err": m["fp_max_abs_error_mul"]["value"],
        "mul_err_lo": _interval(m["fp_max_abs_error_mul"])[0], "mul_err_hi": _interval(m["fp_max_abs_error_mul"])[1],
        "exp_rel_lo": _interval(m["fp_max_rel_error_exp"])[0], "exp_rel_hi": _interval(m["fp_max_rel_error_exp"])[1],
        "ulp_sigmoid": m["fp_median_ulp32_sigmoid"]["value"],
        "mul_elements": m["shamir_elements_per_mul"]["value"] if "shamir_elements_per_mul" in m else float("nan"),
    }
    values.update({f"rounds_{op}": m[f"fp_rounds_{op}"]["value"] for op in fp.OP_NAMES})
    values.update({"sig_err": m["fp_max_abs_error_sigmoid"]["value"], "within_min": float(summary.within_bound.min()),
                   "n_worse": len(worse), "n_ops": len(fp.OP_NAMES)})
    if params is not None:
        values.update({k: getattr(params, k) for k in ("small_modulus", "precision_bits", "modulus", "n_sharings")})
    return values


# --------------------------------------------------------------------------------------------------
# The notebook's figures and tables
# --------------------------------------------------------------------------------------------------
#: Panel titles of :func:`plot_error_vs_input`, per op.
OP_TITLE = {"add": "addition x + y", "mul": "multiplication x·y", "div": "division x / y", "exp": "exponential exp(x)",
            "log": "logarithm ln(x)", "sigmoid": "sigmoid", "tanh": "hyperbolic tangent", "relu": "ReLU max(0, x)"}


def plot_shamir_polynomial(small: shamir.Shamir, coeffs: Sequence[int], shares: Sequence[int],
                           secret: int) -> plt.Figure:
    """Figure ``06_shamir_polynomial``: the dealer's polynomial ``coeffs`` over the integers with the values
    it gives the parties 1..n (n = ``len(shares)``, top), and the same polynomial in ``small``'s field for
    every element with the ``shares`` (bottom); the secret f(0) starred in both."""
    n = len(shares)
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.4), layout="constrained")
    xs, parties = np.linspace(0, n + 0.3, 200), np.arange(1, n + 1)
    poly = np.polynomial.Polynomial(coeffs)
    axes[0].plot(xs, poly(xs), lw=2, label="f(x) over the integers")
    axes[0].scatter(parties, poly(parties), s=60, zorder=3, label="shares (before mod p)")
    axes[0].set(title="The dealer's polynomial", xlabel="party number x", ylabel="f(x) (integer)")
    field = np.arange(small.p)
    axes[1].scatter(field, [small.evaluate(coeffs, int(v)) for v in field], s=25, c="0.6",
                    label="f(x) mod p, all x in the field")
    axes[1].scatter(parties, shares, s=60, zorder=3, label="the n shares")
    axes[1].set(title=f"The same polynomial in GF({small.p})", xlabel="x (field element)", ylabel="f(x) mod p")
    for ax, size in zip(axes, (None, 8)):
        ax.scatter([0], [secret], marker="*", s=250, c="k", zorder=4, label="secret f(0)")
        ax.legend(fontsize=size)
    return fig


def multiplication_steps_table(scheme: shamir.Shamir, a: Any, h: Any, r_t: Any, r_2t: Any, d: int, c: Any,
                               sent_r: int, sent_d: int) -> pd.DataFrame:
    """The steps of one degree-reduced multiplication on shares (``a`` dealt, ``h`` the local products,
    the double random sharing ``r_t``/``r_2t``, the opened ``d`` and the result ``c``): per step the degree
    of the shares' polynomial, the value they hold and the field elements sent (``sent_r`` for the double
    random sharing, ``sent_d`` for opening ``d``)."""
    return pd.DataFrame(
        [("[a], [b]: dealt", scheme.degree_of(a), scheme.reconstruct(a), "—"),
         ("[h] = [a]·[b]: local products", scheme.degree_of(h), scheme.reconstruct(h), 0),
         ("[r]_t and [r]_2t: double random sharing", f"{scheme.degree_of(r_t)} and {scheme.degree_of(r_2t)}",
          "unknown to all", sent_r),
         ("d = ab - r: opened from [h] - [r]_2t", "—", d, sent_d),
         ("[ab] = d + [r]_t", scheme.degree_of(c), scheme.reconstruct(c), 0)],
        columns=["step", "degree of the shares' polynomial", "value", "field elements sent (counted)"],
    ).set_index("step")


def beaver_table(x: float, y: float, x_encoded: int, mask_x: int, result: dict) -> pd.DataFrame:
    """One Beaver-triple multiplication of ``x`` and ``y`` step by step: the encoded ``x``, party 0's share
    of it (``x_encoded - mask_x``), and the opened values, product shares and decoded product of ``result``
    (:func:`ppal_lab.secure.fixed_point.beaver_multiply`)."""
    return pd.Series({"x, y": f"{x:g}, {y:g}", "encoded x": x_encoded, "party 0's share of x": x_encoded - mask_x,
                      "opened e = x - a": result["e"], "opened f = y - b": result["f"],
                      "shares of xy (scale 2^2b)": result["z_shares"], "x·y decoded": result["result"]},
                     name="value").to_frame()


def op_summary_table(summary: pd.DataFrame) -> Any:
    """The op table's ``summary`` (one row per op) as the book shows it: one operation a column (so that
    it fits the page), errors to 3 significant digits, rounds whole, the share within the bound in %."""
    show = pd.DataFrame({
        "max abs error": summary.max_abs_err, "max rel error": summary.max_rel_err,
        "median error (float32 ULP)": summary.median_ulp32, "float32: median ULP": summary.median_ulp32_f32,
        "approximation error (max)": summary.max_approx_err, "rounding error (max)": summary.max_rounding_err,
        "within rounding bound": summary.within_bound, "rounds": summary.rounds,
        "bytes / element": summary.bytes_per_element, "time (ms)": 1000 * summary.time_s,
    })
    rows = pd.IndexSlice
    return (show.T.style.format("{:.3g}").format("{:.0f}", subset=rows[["rounds"], :])
            .format("{:.1%}", subset=rows[["within rounding bound"], :]))


def plot_error_vs_input(samples: pd.DataFrame, precision_bits: int, seed: int) -> plt.Figure:
    """Figure ``06_fixed_point_error_vs_input``: per op of ``fp.OP_NAMES`` (4 x 2 panels), the absolute
    error of the secure result and of float32 against the input (the divisor's size for ``div``) in the
    first repeat of ``samples``, with the resolution ``2**-precision_bits`` dashed; errors of 0 at 1e-12."""
    s0 = samples.query("rep == 0")
    fig, axes = plt.subplots(4, 2, figsize=(7.5, 10), layout="constrained")
    for ax, op in zip(axes.flat, fp.OP_NAMES):
        d_ = s0[s0.op == op].sort_values("key")
        key = d_.key.abs() if op == "div" else d_.key
        ax.scatter(key, d_.abs_err_secure.clip(lower=1e-12), s=4, alpha=0.6, label="CrypTen fixed point")
        ax.scatter(key, d_.abs_err_f32.clip(lower=1e-12), s=4, alpha=0.6, label="float32")
        ax.axhline(2.0**-precision_bits, c="k", ls="--", lw=1, label="$2^{-b}$")
        ax.set(yscale="log", xscale="log" if op in ("log", "div") else "linear", title=OP_TITLE.get(op, op),
               xlabel=("|divisor y|" if op == "div" else "input x"), ylabel="absolute error")
    axes[0, 0].legend(fontsize=8, markerscale=3)
    fig.suptitle(f"Absolute error against float64 (seed {seed}, b = {precision_bits};\n"
                 "errors of 0 drawn at 1e-12)")
    return fig


def plot_error_sources_and_cost(summary: pd.DataFrame) -> plt.Figure:
    """Figure ``06_fixed_point_error_sources_and_cost``: per op of ``summary``, the largest approximation,
    rounding and float32 errors (top, log axis; 0 drawn at 1e-12), the rounds and the bytes per element."""
    fig, axes = plt.subplot_mosaic([[0, 0], [1, 2]], figsize=(7.5, 6.4), layout="constrained")
    parts = (summary[["max_approx_err", "max_rounding_err", "max_abs_err_f32"]]
             .rename(columns={"max_approx_err": "approximation (algorithm)",
                              "max_rounding_err": "rounding (fixed point)", "max_abs_err_f32": "float32"})
             .clip(lower=1e-12))
    parts.plot.bar(ax=axes[0], logy=True, rot=0)
    axes[0].legend(fontsize=8, loc="upper left")
    axes[0].set(title="Where the error comes from (largest absolute error; 0 drawn at 1e-12)",
                ylabel="absolute error", xlabel="")
    summary.rounds.plot.bar(ax=axes[1], rot=45, color=sns.color_palette()[3])
    axes[1].set(title="Rounds per operation", ylabel="rounds (per party)", xlabel="")
    summary.bytes_per_element.plot.bar(ax=axes[2], rot=45, color=sns.color_palette()[4])
    axes[2].set(title="Bytes per element", ylabel="bytes (two-party total)", xlabel="")
    return fig


def ablation_table(bits_summary: pd.DataFrame, iters_summary: pd.DataFrame, main_err: pd.Series,
                   precision_bits: int) -> pd.DataFrame:
    """Largest absolute error per op at 12 and 20 fractional bits (``bits_summary``, indexed by op and
    precision_bits), beside the main table's ``main_err`` (at ``precision_bits``) and exp with 12
    iterations (``iters_summary``, one precision), whose rounds are the last column."""
    cmp = pd.concat({"12 bits": bits_summary.xs(12, level="precision_bits").max_abs_err,
                     f"{precision_bits} bits (main table)": main_err,
                     "20 bits": bits_summary.xs(20, level="precision_bits").max_abs_err,
                     "16 bits, exp with 12 iterations": iters_summary.droplevel("precision_bits").max_abs_err},
                    axis=1)
    cmp["rounds (12 exp iterations)"] = iters_summary.droplevel("precision_bits").rounds
    return cmp
