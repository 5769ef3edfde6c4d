"""Spec of notebook 11_secure_infrastructure: its parameters, the constraints between them and its claims."""
from __future__ import annotations

import math

from ppal_lab.compendium.params import TIMING, Constraint, NotebookSpec, Param
from ppal_lab.compendium.specs.common import SEED, seeds_fit
from ppal_lab.compendium.specs.registry import register
from ppal_lab.compendium.verdicts import Claim


def _secagg_max_dropouts(v) -> int:
    """Sites chapter 11's secure aggregation survives losing: ``n_sites - threshold`` with the
    threshold ``n_sites // 2 + 1`` (``secure.secure_aggregation.SecureAggregation``)."""
    return v["n_sites"] - (v["n_sites"] // 2 + 1)


register(NotebookSpec(
    name="11_secure_infrastructure",
    title="Secure infrastructure: private alignment, hybrid post-quantum keys, secure aggregation, scaling",
    params=(
        SEED,
        Param("n_seeds", int, 5, "repeats (seed, seed + 1, ...) behind every 95% CI", low=2, high=50),
        Param("n_items", int, 2000, "components per repeat (the vertical consortium and the DP ranges)",
              low=200, high=100_000),
        Param("coverage", float, 0.8, "probability that a party holds a given component's record",
              low=0.0, high=1.0, low_open=True),
        Param("epsilon", float, 1.0, "epsilon of each DP quantile (a range of two quantiles spends 2 epsilon)",
              low=0.0, high=100.0, low_open=True),
        Param("n_sites", int, 10, "sites in the live secure-aggregation round", low=2, high=50),
        Param("dropout_rate", float, 0.2, "share of the sites that drop out of the live round "
              "(round(dropout_rate n_sites) sites)", low=0.0, high=1.0, high_open=True),
        Param("update_dim", int, 2560, "coordinates of each update in the live round (the uniformity test "
              "needs 5 per top-byte value)", low=1280, high=1_000_000),
    ),
    constraints=(
        seeds_fit("n_seeds"),
        Constraint(("dropout_rate", "n_sites"),
                   lambda v: round(v["dropout_rate"] * v["n_sites"]) <= _secagg_max_dropouts(v),
                   lambda v: f"<= {(_secagg_max_dropouts(v) + 0.5) / v['n_sites']:.3g} (round(dropout_rate "
                             f"n_sites) <= {_secagg_max_dropouts(v)}: with n_sites = {v['n_sites']} the threshold "
                             f"is {v['n_sites'] // 2 + 1} sites, beyond it no round completes)"),
        Constraint(("n_items", "coverage"), lambda v: v["n_items"] * v["coverage"] ** 4 >= 100,
                   lambda v: f">= {math.ceil(100 / v['coverage'] ** 4)} at coverage = {v['coverage']:g} (the four "
                             "parties share about n_items coverage^4 components; the vertical model needs 100)"),
    ),
    headline=("dictionary_recovery_rate", "psi_aligned_components", "vertical_accuracy_gain",
              "dp_range_rank_error", "handshake_bytes", "secagg_max_abs_error",
              "scaling_accuracy_drop_50", "scaling_cloud_bytes_ratio_50"),
    budget_s=180.0,
    tolerances=(("*_seconds", TIMING), ("*_ms", TIMING), ("secagg_uniformity_min_p", TIMING)),
    reads=("bench_infrastructure.json", "bench_federated_scale.json"),
    claims=(
        Claim("seed_hashed_schema_hides_names", "000",
              "Hashing the field names aligns schemas 'without exposing sensitive field names' (Challenge 1, "
              "_hash_field with no salt; data types sent in the clear). Measured as 1 when a dictionary of "
              "one- and two-word plausible names with unit suffixes recovers none of the consortium's field "
              "names from their published hashes, else 0. (The dictionary was written by authors who had seen "
              "the names: an informed insider's attack.)",
              "qualitative (no figure)", "qualitative", metric="seed_hashes_hide_all_names"),
        Claim("private_schema_alignment", "000",
              "Schemas and records can be aligned by a private set intersection without exposing what lies "
              "outside the intersection. Measured with DH-PSI over ristretto255 as 1 when, in every repeat, "
              "the schema and record alignments equal the plain intersections and each party received "
              "nothing but masked points, one per item of the other side's set (the set sizes), else 0.",
              "qualitative (no figure)", "qualitative", metric="psi_alignment_correct_and_minimal"),
        Claim("obfuscated_ranges", "000",
              "Value ranges are shared after obfuscation ('ranges': self._obfuscate_ranges(...)).",
              "no method, no figure", "not measurable",
              reason="the seed does not define _obfuscate_ranges, so there is nothing to attack or measure; the "
                     "chapter releases ranges as epsilon-DP quantiles instead (dp_range_rank_error)"),
        Claim("seed_quantum_resistant_exchange", "000",
              "The seed's QuantumResistantKeyExchange (X25519 + Kyber1024 combined in HKDF) establishes a shared "
              "secret between two peers. Measured as 1 when the seed's flow, run by both peers with the real "
              "ML-KEM (pqcrypto has no kyber1024), gives both the same key, else 0.",
              "qualitative (no figure)", "qualitative", metric="seed_flow_keys_agree"),
        Claim("hybrid_key_exchange_today", "000",
              "Hybrid classical + post-quantum key exchange can be implemented today to future-proof the "
              "consortium's channels. Measured as 1 when an authenticated X25519 + ML-KEM-768 handshake bound to "
              "its transcript agrees on one key and aborts on a changed ciphertext, a changed public key and a "
              "man in the middle, else 0. (Resistance to a quantum computer is ML-KEM's hardness assumption "
              "(FIPS 203): not measurable here.)",
              "qualitative (no figure)", "qualitative", metric="hybrid_handshake_checks_pass"),
        Claim("secure_aggregation_of_updates", "000",
              "The collaborative cycle aggregates the partners' updates securely (_secure_aggregate). Measured "
              "as 1 when, in every repeat, the securely aggregated sum equals the plain sum within the "
              "fixed-point rounding bound despite round(dropout_rate n_sites) drop-outs, one site's masked update "
              "passes a uniformity test (familywise 0.1%), no unmasking reply covers a site both ways, and one "
              "drop-out beyond the threshold aborts, else 0.",
              "qualitative (no figure)", "qualitative", metric="secagg_checks_pass"),
        Claim("scaling_to_50_sites", "000",
              "From 5 to 50+ participants, hierarchical federated learning and model compression (quantization, "
              "pruning) kept communication manageable (Challenge 3). The seed gives no figure; read as: at 50 "
              "sites, the worst of hierarchical, quantized and top-k aggregation loses at most 1 percentage "
              "point of test accuracy against flat float32 federated averaging. Measured on the compendium's "
              "federated protocol on Flower's simulation engine (benchmarks/bench_federated_scale.py: DP "
              "federated active learning, int8 and top-k updates with error feedback, HierFAVG edges): per "
              "repeat, the largest drop over the benchmark's global models (the repeats run on the "
              "in-process engine, which gives Flower's model bit for bit).",
              "qualitative (no figure)", "goal", metric="scaling_accuracy_drop_50", target=0.01, direction=-1),
    ),
))

