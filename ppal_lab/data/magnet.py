"""Magnet grades of end-of-life hard drives (seed 001): sparse labels, sparse features, drift.

:func:`make_magnet_grades` draws drives month by month for three parties (OEM registry, collector,
recycler); a few percent carry a label saying whether their voice-coil magnets are high grade, most
feature values are missing (MCAR, MAR or MNAR) and later quarters drift. All randomness flows from one
``np.random.default_rng(seed)``, and every array operation is vectorised over items.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_range
from ppal_lab.data.supply_chain_data import SupplyChainData

__all__ = ["CONCEPTS", "MAGNET_MIN_FEATURES", "MAGNET_PARTIES", "MISSING_MECHANISMS", "make_magnet_grades"]

MISSING_MECHANISMS = ("mcar", "mar", "mnar")
#: How the label relation drifts between quarters (see :func:`make_magnet_grades`).
CONCEPTS = ("gradual", "conflict")


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(name, value, "True or False")
    return bool(value)



def _choice_by_group(rng: np.random.Generator, group: np.ndarray, values: np.ndarray,
                     probs: np.ndarray) -> np.ndarray:
    """Draw one value per item from row ``group[i]`` of ``values`` with the probabilities in that row.

    Rows may be padded on the right with zero probabilities.
    """
    probs = np.asarray(probs, dtype=np.float64)
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    last = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)  # last usable column per row
    u = rng.random(group.size)
    idx = np.minimum((u[:, None] >= cum[group]).sum(axis=1), last[group])
    return np.asarray(values)[group, idx]



MAGNET_PARTIES = ("oem_registry", "collector", "recycler")
#: The ten core features always present; ``n_features`` below this is rejected.
MAGNET_MIN_FEATURES = 10

# Six incumbent manufacturers and two entrants (codes 6 and 7, from quarters 1 and 2 when drift is on).
_MFR_PROPENSITY = np.array([-1.8, -1.0, -0.3, 0.5, 1.3, 2.0, 1.3, -1.2])   # log-odds of a high grade
_MFR_DRIFT_PER_YEAR = np.array([1.6, 0.0, -1.6, 0.0, -1.4, 1.0, 0.0, 0.0])   # supplier switches
_MFR_SHARE = np.array([0.24, 0.20, 0.18, 0.15, 0.13, 0.10])
_MFR_ENTRY_QUARTER = (1, 2)
_MFR_ENTRANT_SHARE = 0.12
_DATE_SHIFT_PER_YEAR = 3.0          # years by which the intake gets newer per year of operation
_FF_NAMES = ("3.5in", "2.5in", "1.8in")
_FF_SHARE = np.array([0.55, 0.38, 0.07])
_FF_PLATTER_P = np.array([[0.15, 0.30, 0.30, 0.15, 0.10], [0.5, 0.4, 0.1, 0, 0], [0.7, 0.3, 0, 0, 0]])
_FF_RPM = np.array([[5400, 5900, 7200, 10000, 15000], [4200, 5400, 7200, 7200, 7200],
                    [3600, 4200, 4200, 4200, 4200]], dtype=np.float64)
_FF_RPM_P = np.array([[0.25, 0.15, 0.45, 0.10, 0.05], [0.2, 0.6, 0.2, 0, 0], [0.4, 0.6, 0, 0, 0]])
_FF_CAPACITY_LOG2 = np.array([0.8, 0.0, -0.9])
# Weight (g) per form factor: base, per platter, standard deviation.
_FF_WEIGHT = np.array([[520.0, 35.0, 20.0], [85.0, 15.0, 6.0], [50.0, 8.0, 3.0]])
_MAGNET_INTERCEPT = -1.75           # sets the positive rate to about 22-32 %
# concept="conflict": one manufacturer pair (a product family) per quarter, the date effect's sign
# alternating between families, a high- and a low-propensity maker in each family.
_CONFLICT_PROPENSITY = np.array([-0.8, 0.8, -0.8, 0.8, -0.8, 0.8, -0.8, 0.8])
_CONFLICT_DATE_SIGN = np.array([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0])
_CONFLICT_INTERCEPT = -1.0
_MAR_DRIVER = "weight_g"            # weighed at intake, so always observed under MAR
_MISSING_SLOPE = {"mar": -1.5, "mnar": 1.5}   # log-odds of missingness per standard deviation

# Extra features beyond the core ten: (name, party, kind, loadings on standardised core signals,
# noise sd, location, scale). kind "num": loc + scale*s; "count": round(exp(loc + scale*s));
# "cat": s cut into `loc` equiprobable levels. Loadings are kept weak so that no extra feature carries
# as much information about the grade as manufacturing date or manufacturer.
_SIGNALS = ("date", "log_capacity", "weight", "rpm", "platters", "power_on_hours")
_EXTRAS: tuple[tuple[str, str, str, dict[str, float], float, float, float], ...] = (
    ("cache_mb", "oem_registry", "count", {"date": 0.35, "log_capacity": 0.3}, 0.8, np.log(16), 0.8),
    ("collection_channel", "collector", "cat", {}, 1.0, 4, 0),
    ("load_cycle_count", "recycler", "count", {"power_on_hours": 0.8}, 0.6, np.log(2e4), 0.9),
    ("firmware_major", "oem_registry", "count", {"date": 0.5}, 0.9, np.log(4), 0.5),
    ("chassis_mass_g", "collector", "num", {"weight": 0.9}, 0.4, 400.0, 150.0),
    ("reallocated_sectors", "recycler", "count", {"power_on_hours": 0.4}, 1.0, np.log(3), 1.2),
    ("areal_density_gbit_in2", "oem_registry", "count", {"date": 0.4, "log_capacity": 0.2}, 0.8,
     np.log(400), 0.6),
    ("region_of_origin", "collector", "cat", {}, 1.0, 5, 0),
    ("spin_up_time_ms", "recycler", "num", {"platters": 0.4, "rpm": -0.3}, 0.8, 4000.0, 800.0),
    ("max_transfer_mb_s", "oem_registry", "num", {"rpm": 0.5, "date": 0.4}, 0.8, 150.0, 40.0),
    ("label_legibility", "collector", "num", {"power_on_hours": -0.3}, 1.0, 0.7, 0.15),
    ("seek_error_rate", "recycler", "num", {"power_on_hours": 0.4}, 1.0, 1e-3, 3e-4),
    ("head_count", "oem_registry", "count", {"platters": 0.9}, 0.3, np.log(4), 0.5),
    ("days_in_storage", "collector", "count", {}, 1.0, np.log(60), 0.8),
    ("temperature_max_c", "recycler", "num", {"rpm": 0.5}, 0.8, 45.0, 6.0),
    ("warranty_years", "oem_registry", "cat", {"rpm": 0.4}, 1.0, 3, 0),
    ("enclosure_damage_score", "collector", "num", {}, 1.0, 2.0, 1.0),
    ("start_stop_count", "recycler", "count", {"power_on_hours": 0.6}, 0.8, np.log(3000), 0.8),
    ("power_idle_w", "oem_registry", "num", {"weight": 0.6, "rpm": 0.3}, 0.6, 5.0, 1.5),
    ("transport_distance_km", "collector", "count", {}, 1.0, np.log(250), 0.7),
    ("head_flying_hours", "recycler", "num", {"power_on_hours": 0.95}, 0.3, 25000.0, 9000.0),
    ("acoustic_idle_db", "oem_registry", "num", {"rpm": 0.6}, 0.7, 28.0, 3.0),
    ("data_wipe_method", "collector", "cat", {"date": 0.3}, 1.0, 3, 0),
    ("pending_sectors", "recycler", "count", {"power_on_hours": 0.3}, 1.0, np.log(1.5), 1.0),
    ("shock_rating_g", "oem_registry", "num", {"weight": -0.6}, 0.7, 300.0, 80.0),
    ("screws_missing", "collector", "count", {}, 1.0, np.log(0.5), 0.8),
    ("crc_error_count", "recycler", "count", {}, 1.0, np.log(2), 1.0),
    ("power_active_w", "oem_registry", "num", {"weight": 0.5, "rpm": 0.5}, 0.6, 7.0, 2.0),
    ("intake_batch_size", "collector", "count", {}, 1.0, np.log(120), 0.5),
    ("spindle_current_ma", "recycler", "num", {"rpm": 0.6, "weight": 0.3}, 0.6, 450.0, 120.0),
    ("pcb_revision", "oem_registry", "cat", {"date": 0.35}, 1.0, 6, 0),
    ("pallet_position", "collector", "cat", {}, 1.0, 8, 0),
    ("bearing_noise_db", "recycler", "num", {"power_on_hours": 0.5}, 0.8, 35.0, 4.0),
    ("vcm_coil_resistance_ohm", "oem_registry", "num", {"weight": 0.3}, 1.0, 9.0, 1.5),
    ("shred_line", "collector", "cat", {}, 1.0, 3, 0),
    ("shock_events", "recycler", "count", {}, 1.0, np.log(1), 1.0),
    ("sector_size_bytes", "oem_registry", "cat", {"date": 0.45}, 0.9, 2, 0),
    ("disassembly_time_s", "recycler", "num", {"platters": 0.5, "weight": 0.3}, 0.8, 240.0, 60.0),
    ("vcm_magnet_mass_g", "recycler", "num", {"weight": 0.7}, 0.6, 12.0, 4.0),
    ("spindle_poles", "oem_registry", "cat", {}, 1.0, 3, 0),
)


def _magnet_extras(rng: np.random.Generator, n_extra: int, signals: np.ndarray
                   ) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """Generate ``n_extra`` weak proxy / noise features from the standardised core ``signals``."""
    spec = list(_EXTRAS[:n_extra])
    # Past the named pool, pad with pure-noise auxiliary columns spread over the parties.
    spec += [(f"aux_{k:03d}", MAGNET_PARTIES[k % 3], "num", {}, 1.0, 0.0, 1.0)
             for k in range(n_extra - len(spec))]
    loadings = np.array([[s[3].get(sig, 0.0) for sig in _SIGNALS] for s in spec])
    loadings = loadings.reshape(len(spec), len(_SIGNALS))       # keeps its shape when spec is empty
    sd = np.array([s[4] for s in spec])
    noise = rng.standard_normal((signals.shape[0], len(spec))) * sd
    latent = _standardise(signals @ loadings.T + noise)
    loc, scale = np.array([s[5] for s in spec], float), np.array([s[6] for s in spec], float)
    kind = np.array([s[2] for s in spec])
    out = loc + scale * latent
    count = kind == "count"
    out[:, count] = np.round(np.exp(np.clip(out[:, count], None, 30)))
    for j in np.flatnonzero(kind == "cat"):     # loop over (few) columns, not rows
        levels = int(loc[j])
        out[:, j] = np.searchsorted(norm.ppf(np.arange(1, levels) / levels), latent[:, j])
    return [s[0] for s in spec], [s[1] for s in spec], [s[0] for s in spec if s[2] == "cat"], out


def _standardise(values: np.ndarray) -> np.ndarray:
    """Column-wise z-scores; constant columns become 0."""
    std = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _calibrate_offsets(z: np.ndarray, slope: float, target: float) -> np.ndarray:
    """Per-column offsets ``c`` with ``mean(expit(c + slope * z)) == target`` (bisection)."""
    lo, hi = np.full(z.shape[1], -40.0), np.full(z.shape[1], 40.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        above = expit(mid + slope * z).mean(axis=0) > target
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _missing_mask(rng: np.random.Generator, values: np.ndarray, columns: list[str], rate: float,
                  mechanism: str) -> np.ndarray:
    """Boolean mask of cells to hide; see :func:`make_magnet_grades` for the three mechanisms."""
    n, f = values.shape
    if rate == 0:
        return np.zeros((n, f), dtype=bool)
    u = rng.random((n, f))
    if mechanism == "mcar":
        return u < rate
    z = _standardise(values)
    sample = rng.choice(n, size=min(n, 8192), replace=False)   # calibrating on a sample is enough
    slope = _MISSING_SLOPE[mechanism]
    if mechanism == "mar":
        driver = columns.index(_MAR_DRIVER)
        # The driver is never hidden, so the other columns carry the whole missing budget.
        per_column = rate * f / (f - 1)
        offset = _calibrate_offsets(z[sample, driver][:, None], slope, per_column)
        mask = u < expit(offset + slope * z[:, driver])[:, None]
        mask[:, driver] = False
        return mask
    offsets = _calibrate_offsets(z[sample], slope, rate)
    return u < expit(offsets + slope * z)


def make_magnet_grades(n_per_month: int = 10_000, n_months: int = 12, n_features: int = 50,
                       missing_rate: float = 0.8, missing_mechanism: str = "mcar",
                       label_rate: float = 0.02, drift: bool = True, seed: int = 0,
                       concept: str = "gradual") -> SupplyChainData:
    """End-of-life hard drives: is the voice-coil magnet high grade? Sparse labels, sparse features.

    Core features (always present, in this order): ``manufacturer`` (code), ``manufacturing_date``
    (fractional year), ``form_factor`` (0 = 3.5 in, 1 = 2.5 in, 2 = 1.8 in), ``capacity_gb``,
    ``weight_g``, ``rpm``, ``platter_count``, ``interface`` (0 = PATA, 1 = SATA, 2 = SAS),
    ``power_on_hours`` and ``helium_filled`` (0/1). Capacity grows with date and platters, weight with
    form factor and platters, helium appears on large 3.5 in drives after 2013.5. The remaining
    ``n_features - 10`` columns are SMART counters, spec-sheet entries and intake records that are weak
    linear proxies of the core signals or pure noise (past 50 features: ``aux_NNN`` noise columns).

    Label: ``y = 1`` (high grade) with probability ``expit(logit)`` where ::

        logit = -1.75 + A[manufacturer] + 2.2 tanh((date - 2011) / 3) + 0.35 [3.5 in] + 0.25 helium
                + drift terms,   A = (-1.8, -1.0, -0.3, 0.5, 1.3, 2.0, 1.3, -1.2)

    so manufacturing date and manufacturer are by construction the two most informative features;
    size only matters a little. Measured on seeds 0-7 (5000 drives of the complete features, drift on):
    they rank first and second by ``mutual_info_classif`` (about 0.06-0.10 nats each, capacity next at
    0.03-0.05) and by permutation importance of a gradient-boosted model (seeds 0-1). Positive rate is
    about 0.22 in the first quarter and 0.32 in the fourth (0.28 overall at the defaults).

    Drift (``drift=True``), with ``tau = quarter / 4`` years since the first quarter
    (``meta["quarter"] = month // 3``): intake dates shift newer by ``3 tau`` years (so capacities
    grow), manufacturer 6 enters in quarter 1 and manufacturer 7 in quarter 2 (12 % of intake each),
    four incumbents change magnet supplier (their log-odds move by 1.0-1.6 per year), and drives
    made after about 2016 lose ``2 tau`` log-odds (dysprosium-lean magnets). A model fitted on the
    first quarter therefore degrades on the last one. ``drift=False`` makes every month identically
    distributed with the first quarter's law. Measured (1000 drives a month, seeds 0-2,
    ``HistGradientBoostingClassifier`` on the complete features, fitted on 75 % of quarter 0):
    accuracy 0.79-0.84 on the held-out quarter-0 drives and 0.66-0.69 on quarter 3 (ROC AUC 0.83-0.84
    vs 0.71-0.73); without drift, 0.83-0.84 on quarter 3.

    ``concept="conflict"`` (needs ``drift=True``) replaces the gradual label drift by concepts that
    conflict on the same inputs: quarter ``q`` takes in only manufacturers ``2q`` and ``2q + 1`` (a new
    product family each quarter; codes wrap after four quarters), and ::

        logit = -1.0 +- 0.8 + s[family] 2.2 tanh((date - 2011) / 3) + 0.35 [3.5 in] + 0.25 helium

    with ``s = +1`` for families 0 and 2 and ``-1`` for families 1 and 3: the strongest signal reverses
    from one quarter to the next, and only the manufacturer code tells the families apart. Intake
    dates shift as above. The default ``"gradual"`` is the drift described above, unchanged.

    Missing values (never the label), about ``missing_rate`` of all feature cells:

    * ``"mcar"`` — every cell independently with probability ``missing_rate``.
    * ``"mar"`` — ``weight_g`` is always observed; every other cell of a row is missing with
      probability ``expit(c - 1.5 z_weight)`` (light drives come with fewer records), with ``c`` set
      so that the overall rate is ``missing_rate``; needs ``missing_rate < (n_features-1)/n_features``.
    * ``"mnar"`` — each cell is missing with probability ``expit(c_j + 1.5 z_ij)`` where ``z_ij`` is
      the standardised value of that cell itself (large values are hidden more often), ``c_j`` set so
      that each column's rate is ``missing_rate``.

    Labels: in every month ``max(1, round(label_rate * n_per_month))`` drives, chosen uniformly, have
    an observed label (``labelled``); ``y`` keeps the true label of every drive for evaluation and
    ``y_observed`` is ``-1`` for the rest.

    Parameters
    ----------
    n_per_month : int, default 10000
        Drives processed per month, >= 1.
    n_months : int, default 12
        Number of months, >= 1.
    n_features : int, default 50
        Number of feature columns, >= 10 (:data:`MAGNET_MIN_FEATURES`).
    missing_rate : float, default 0.8
        Fraction of feature cells that are missing, in [0, 1).
    missing_mechanism : {"mcar", "mar", "mnar"}, default "mcar"
        How missingness is chosen (see above).
    label_rate : float, default 0.02
        Fraction of drives with an observed label, in (0, 1].
    drift : bool, default True
        Whether later quarters drift (see above).
    concept : {"gradual", "conflict"}, default "gradual"
        How the label relation drifts when ``drift`` is on (see above).
    seed : int, default 0
        Seed of the only random generator, >= 0.

    Returns
    -------
    SupplyChainData
        ``X`` with NaNs, ``X_complete`` without; ``latent`` has ``grade_logit`` and
        ``grade_probability``; ``meta`` has ``month``, ``quarter`` and ``facility`` (one of three
        recycling facilities, uniform).
    """
    n_per_month = check_int("n_per_month", n_per_month, 1)
    n_months = check_int("n_months", n_months, 1)
    n_features = check_int("n_features", n_features, MAGNET_MIN_FEATURES)
    check_range("missing_rate", missing_rate, 0, 1, high_open=True)
    check_choice("missing_mechanism", missing_mechanism, MISSING_MECHANISMS)
    if missing_mechanism == "mar" and missing_rate >= (n_features - 1) / n_features:
        limit = (n_features - 1) / n_features
        raise ParameterError("missing_rate", missing_rate,
                             f"< {limit:.4g} under 'mar' (weight_g is never missing)")
    check_range("label_rate", label_rate, 0, 1, low_open=True)
    drift = _check_bool("drift", drift)
    seed = check_int("seed", seed, 0)
    check_choice("concept", concept, CONCEPTS)
    if concept == "conflict" and not drift:
        raise ParameterError("concept", concept, "'gradual' when drift=False (conflicting concepts are a drift)")
    rng = np.random.default_rng(seed)

    n = n_per_month * n_months
    month = np.repeat(np.arange(n_months), n_per_month)
    quarter = month // 3
    n_quarters = int(quarter[-1]) + 1
    tau = quarter / 4.0 if drift else np.zeros(n)

    # Manufacturer shares per quarter; entrants take their share from the incumbents proportionally.
    shares = np.zeros((n_quarters, len(_MFR_PROPENSITY)))
    entered = np.array([[drift and q >= e for e in _MFR_ENTRY_QUARTER] for q in range(n_quarters)])
    shares[:, 6:] = entered * _MFR_ENTRANT_SHARE
    shares[:, :6] = _MFR_SHARE * (1.0 - shares[:, 6:].sum(axis=1, keepdims=True))
    if concept == "conflict":
        shares[:] = 0.0
        family = np.arange(n_quarters) % 4
        shares[np.arange(n_quarters), 2 * family] = shares[np.arange(n_quarters), 2 * family + 1] = 0.5
    codes = np.broadcast_to(np.arange(len(_MFR_PROPENSITY)), shares.shape)
    manufacturer = _choice_by_group(rng, quarter, codes, shares).astype(np.int64)

    date = 2004.0 + 12.0 * rng.beta(2.2, 1.8, n) + _DATE_SHIFT_PER_YEAR * tau
    ff = rng.choice(3, size=n, p=_FF_SHARE)
    platters = _choice_by_group(rng, ff, np.arange(1, 6)[None, :].repeat(3, 0), _FF_PLATTER_P)
    helium = (ff == 0) & (date > 2013.5) & (rng.random(n) < 0.6)
    platters = np.where(helium, rng.integers(6, 10, n), platters).astype(np.float64)
    log2_capacity = (7.0 + 0.38 * (date - 2004.0) + np.log2(platters) + _FF_CAPACITY_LOG2[ff]
                     + 0.6 * rng.standard_normal(n))
    capacity = np.round(2.0**log2_capacity)
    base, per_platter, weight_sd = _FF_WEIGHT[ff].T
    weight = base + per_platter * platters + 20.0 * helium + weight_sd * rng.standard_normal(n)
    rpm = _choice_by_group(rng, ff, _FF_RPM, _FF_RPM_P)
    sas = (rpm >= 10000) & (rng.random(n) < 0.85)
    pata = date < 2007.0 + 0.7 * rng.standard_normal(n)
    interface = np.where(sas, 2, np.where(pata, 0, 1)).astype(np.float64)
    power_on_hours = np.round(8760.0 * rng.gamma(2.5, 1.2, n) * rng.beta(3.0, 2.0, n))

    logit = (_MAGNET_INTERCEPT + _MFR_PROPENSITY[manufacturer]
             + _MFR_DRIFT_PER_YEAR[manufacturer] * tau
             + 2.2 * np.tanh((date - 2011.0) / 3.0) - 2.0 * tau * expit(2.0 * (date - 2016.0))
             + 0.35 * (ff == 0) + 0.25 * helium)
    if concept == "conflict":
        logit = (_CONFLICT_INTERCEPT + _CONFLICT_PROPENSITY[manufacturer]
                 + _CONFLICT_DATE_SIGN[manufacturer] * 2.2 * np.tanh((date - 2011.0) / 3.0)
                 + 0.35 * (ff == 0) + 0.25 * helium)
    prob = expit(logit)
    y = (rng.random(n) < prob).astype(np.int64)

    core = {
        "manufacturer": manufacturer.astype(np.float64), "manufacturing_date": date,
        "form_factor": ff.astype(np.float64), "capacity_gb": capacity, "weight_g": weight, "rpm": rpm,
        "platter_count": platters, "interface": interface, "power_on_hours": power_on_hours,
        "helium_filled": helium.astype(np.float64),
    }
    # Weight is measured at intake and power-on hours read from SMART at the recycler.
    core_party = (["oem_registry"] * 4 + ["collector"] + ["oem_registry"] * 3
                  + ["recycler", "oem_registry"])
    signals = np.column_stack([date, log2_capacity, weight, rpm, platters, power_on_hours])
    signals = _standardise(signals)
    extra_names, extra_party, extra_cat, extra = _magnet_extras(rng, n_features - len(core), signals)

    names = list(core) + extra_names
    complete = np.column_stack([*core.values(), extra])
    mask = _missing_mask(rng, complete, names, missing_rate, missing_mechanism)
    X_complete = pd.DataFrame(complete, columns=names)
    X = pd.DataFrame(np.where(mask, np.nan, complete), columns=names)

    # Exactly k labelled drives per month: rank random keys within each month.
    k = max(1, round(label_rate * n_per_month))
    order = np.lexsort((rng.random(n), month))
    labelled = np.zeros(n, dtype=bool)
    labelled[order[(np.arange(n) - month[order] * n_per_month) < k]] = True

    return SupplyChainData(
        name="magnet", X=X, y=y, feature_names=tuple(names),
        categorical=("manufacturer", "form_factor", "interface", *extra_cat),
        party_of=dict(zip(names, core_party + extra_party)),
        latent=pd.DataFrame({"grade_logit": logit, "grade_probability": prob}),
        meta=pd.DataFrame({"month": month, "quarter": quarter, "facility": rng.integers(0, 3, n)}),
        labelled=labelled, X_complete=X_complete)
