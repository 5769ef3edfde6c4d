r"""Experiments of the adversarial-participants chapter (seed 000, "Challenge 2"): poisoning against
FedAvg and the robust rules, robust aggregation of DP-noised updates, query auditing, and membership
inference against the bound DP implies.

Building blocks (each tested in its own room): :mod:`ppal_lab.federated.robust` (the seed's aggregator
as written, Flower's aggregation functions, centered clipping), :mod:`ppal_lab.federated.poisoning` (the
six attacks), :mod:`ppal_lab.verify.query_audit` (the probe detector) and
:mod:`ppal_lab.privacy.membership` (the shadow-model audit with Opacus DP-SGD).

**The federated bed.** The federated protocol's move onto Flower is under way (issue 19), so this
chapter runs its own small FedAvg loop (:func:`run_federated`): scikit-learn's *digits* (1797 images,
ten classes) split across ``n_clients`` sites by :func:`ppal_lab.data.horizontal_partition` (label skew
``non_iid``), a softmax regression (650 parameters) trained by one local epoch of minibatch SGD per
round, the flat updates of all clients aggregated by one rule of
:func:`ppal_lab.federated.robust.aggregate`. ``f = round(byzantine_fraction * n_clients)`` clients, drawn
from the seed, are Byzantine; the rules are told ``f`` (as the papers assume). Digits is chosen for its
power: FedAvg reaches about 95% test accuracy, so an attack has 85 points of room to destroy.

**Bulyan.** :func:`~ppal_lab.federated.robust.aggregate` uses ``aggregate_bulyan`` of
``flwr.server.strategy.aggregate`` (the paper's sequential Krum selection), not the ServerApp strategy
``flwr.serverapp.strategy.Bulyan`` (Multi-Krum scores computed once); the two disagree on heavy-tailed
inputs, and the chapter reports the first.

Claims (declared in the chapter's spec, decided by the verdict engine from the record):
``seed_aggregator_as_written`` (qualitative), ``robust_aggregation_defends`` (goal on the worst retained
accuracy over the attacks, with FedAvg's headroom), ``clipping_noise_prevent_membership_inference`` (goal
on the advantage at ``epsilon = 1``, with the non-private model's advantage as headroom),
``query_auditing_detects`` and ``query_auditing_false_alarms`` (goals on the detector at threshold 5).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ppal_lab import data as D
from ppal_lab.compendium.errors import ParameterError, check_int, check_real
from ppal_lab.compendium.specs import SPECS
from ppal_lab.federated import poisoning, robust
from ppal_lab.privacy import membership
from ppal_lab.privacy.accounting import noise_multiplier_for
from ppal_lab.verify import query_audit

__all__ = [
    "AGGREGATORS", "ATTACKS", "DELTA", "MI_EPSILONS", "SHARES", "THRESHOLDS", "FedData", "add_claims",
    "applicable", "attack_grid", "audit_study", "dp_noise_multiplier", "dp_study", "glue_values",
    "headline_table", "load_federated", "local_update", "membership_study", "minority_class", "minority_table",
    "n_byzantine", "predict", "record_metrics",
    "retained_table", "run_federated", "seed_aggregator_demo", "share_grid",
]

#: Aggregation rules compared (FedAvg first).
AGGREGATORS: tuple[str, ...] = robust.RULES
#: Attacks compared; ``none``: the f Byzantine clients behave (the rules still drop f).
ATTACKS: tuple[str, ...] = poisoning.ATTACKS
#: Byzantine shares of the share grid.
SHARES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)
#: Privacy levels of the membership audit (inf: plain SGD).
MI_EPSILONS: tuple[float, ...] = (math.inf, 8.0, 1.0)
#: delta of every (epsilon, delta) guarantee in the chapter.
DELTA = 1e-5
#: Detector thresholds of the query-audit ROC (5 = k + 1 refuses chapter 09's fifth probe).
THRESHOLDS: tuple[int, ...] = (2, 3, 4, 5, 6, 8)
#: Clipping norm of the DP updates (fixed before the runs; a first-round update on digits has norm about 1).
DP_CLIP = 1.0
#: Local learning rate and minibatch size of every client.
LR, BATCH = 0.5, 16


def n_byzantine(n_clients: int, fraction: float) -> int:
    """Byzantine clients among ``n_clients``: ``round(fraction * n_clients)`` (as the spec's constraints)."""
    return int(round(check_real("byzantine_fraction", fraction, 0.0, 1.0) * check_int("n_clients", n_clients, 1)))


def applicable(rule: str, n: int, f: int, attack: str = "none") -> bool:
    """Whether ``rule`` tolerates ``f`` of ``n`` (:func:`robust.check_rule`) and ``attack`` can be
    mounted (ALIE needs ``f <= n // 2``)."""
    try:
        robust.check_rule(rule, n, f)
    except ParameterError:
        return False
    return not (attack in ("alie",) and f > n // 2)


# ----------------------------------------------------------------------------------------------
# the federated bed
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FedData:
    """Digits standardised with the test set's statistics (a public map), split into a training pool
    partitioned across clients and a test set."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    parts: tuple
    n_classes: int

    @property
    def dim(self) -> int:
        return (self.X.shape[1] + 1) * self.n_classes


def load_federated(n_clients: int, non_iid: float, seed: int) -> FedData:
    """Digits, a stratified 25% test split and a label-skewed partition of the rest (all from ``seed``)."""
    from sklearn.model_selection import train_test_split

    raw = D.load_dataset("digits", seed=seed)
    X, y = raw.X.to_numpy(dtype=np.float64), np.asarray(raw.y, dtype=np.int64)
    pool, test = (np.sort(a) for a in train_test_split(np.arange(y.size), test_size=0.25, stratify=y,
                                                        random_state=seed))
    center, scale = X[test].mean(0), X[test].std(0)
    scale[~(scale > 0)] = 1.0
    Xs = (X - center) / scale
    parts = D.horizontal_partition(raw.subset(pool), n_clients, non_iid=non_iid, seed=seed)
    return FedData(Xs[pool], y[pool], Xs[test], y[test], tuple(parts), int(y.max()) + 1)


def _softmax_grad(w: np.ndarray, X: np.ndarray, y: np.ndarray, C: int) -> np.ndarray:
    W = w.reshape(X.shape[1] + 1, C)
    z = X @ W[:-1] + W[-1]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(y.size), y] -= 1.0
    return np.vstack([X.T @ p, p.sum(0)]).ravel() / y.size


def local_update(w: np.ndarray, X: np.ndarray, y: np.ndarray, C: int, rng: np.random.Generator) -> np.ndarray:
    """One local epoch of minibatch SGD (batches of :data:`BATCH`, step :data:`LR`); returns the update."""
    v = w.copy()
    order = rng.permutation(y.size)
    for k in range(0, y.size, BATCH):
        b = order[k:k + BATCH]
        v -= LR * _softmax_grad(v, X[b], y[b], C)
    return v - w


def predict(w: np.ndarray, X: np.ndarray, C: int) -> np.ndarray:
    W = w.reshape(X.shape[1] + 1, C)
    return np.argmax(X @ W[:-1] + W[-1], axis=1)


def _clip_and_noise(U: np.ndarray, z: float, clip: float, rng: np.random.Generator) -> np.ndarray:
    """Client-level Gaussian mechanism, at each client: clip the update to norm ``clip``, add N(0, (z clip)^2)."""
    norms = np.linalg.norm(U, axis=1, keepdims=True)
    return U * np.minimum(1.0, clip / np.maximum(norms, 1e-12)) + rng.normal(0.0, z * clip, U.shape)


def run_federated(data: FedData, rule: str, attack: str, f: int, rounds: int, seed: int, *,
                  dp_z: float | None = None, dp_clip: float = 1.0) -> dict[str, Any]:
    """FedAvg rounds with ``f`` Byzantine clients mounting ``attack`` and the server aggregating by ``rule``.

    Every round each honest client sends its local update (clipped and noised at the client when
    ``dp_z`` is set: noise multiplier ``z``, clipping norm ``dp_clip``); the Byzantine clients send
    :func:`ppal_lab.federated.poisoning.byzantine_updates` (label flip: trained on flipped labels; sign
    flip: the negated honest update; the omniscient attacks see the honest updates; ``adaptive`` targets
    ``rule``). Centered clipping uses the median update norm as ``tau`` and the last aggregate as start.
    Returns the final test accuracy, per-class accuracy and the server's aggregation time per round."""
    n = len(data.parts)
    robust.check_rule(rule, n, f)
    rng = np.random.default_rng([seed, 10])
    byz = set(rng.choice(n, f, replace=False).tolist())
    w, last, agg_s = np.zeros(data.dim), np.zeros(data.dim), 0.0
    for _ in range(rounds):
        honest, own = [], []
        for c, idx in enumerate(data.parts):
            flip = c in byz and attack == "label_flip"
            y_c = poisoning.flip_labels(data.y[idx], data.n_classes) if flip else data.y[idx]
            (own if c in byz else honest).append(local_update(w, data.X[idx], y_c, data.n_classes, rng))
        H = np.asarray(honest)
        if dp_z is not None:
            H = _clip_and_noise(H, dp_z, dp_clip, rng)
        tau = float(np.median(np.linalg.norm(H, axis=1))) if rule == "cclip" else 1.0
        kw = {"tau": tau, "start": last} if rule == "cclip" else {}
        B = poisoning.byzantine_updates(attack, H, f, rng, own=np.asarray(own) if f else None, rule=rule,
                                      sigma=float(H.std()) * 10 + 1e-12,
                                      rule_params={**kw, "gamma_max": 10.0 * float(H.std(0).mean()) + 1e-12,
                                                   "steps": 8})
        t0 = time.perf_counter()
        last = robust.aggregate(np.vstack([H, B]), rule, f, **kw)
        agg_s += time.perf_counter() - t0
        w = w + last
    pred = predict(w, data.X_test, data.n_classes)
    per_class = np.array([np.mean(pred[data.y_test == k] == k) for k in range(data.n_classes)])
    return {"accuracy": float(np.mean(pred == data.y_test)), "per_class": per_class,
            "agg_ms": 1000 * agg_s / rounds}


def _run_rows(P: Any, cells: list[tuple[str, str, float]], **kw: Any) -> pd.DataFrame:
    """Run every (rule, attack, share) cell for seeds ``seed .. seed + n_seeds - 1``; inapplicable
    cells (the rule's condition fails) are skipped."""
    rows = []
    for k in range(P.n_seeds):
        data = load_federated(P.n_clients, P.non_iid, P.seed + k)
        for rule, attack, share in cells:
            f = n_byzantine(P.n_clients, share)
            if not applicable(rule, P.n_clients, f, attack) or (attack == "adaptive" and f == 0):
                continue
            r = run_federated(data, rule, attack, f, P.rounds, P.seed + k, **kw)
            rows.append({"seed": P.seed + k, "aggregator": rule, "attack": attack, "share": share, "f": f,
                         "accuracy": r["accuracy"], "agg_ms": r["agg_ms"],
                         **{f"class_{c}": a for c, a in enumerate(r["per_class"])}})
    return pd.DataFrame(rows)


def share_grid(P: Any) -> pd.DataFrame:
    """Accuracy of every rule under ``P.attack`` for the Byzantine shares of :data:`SHARES` (share 0: all
    clients honest), one row per seed and cell."""
    return _run_rows(P, [(r, P.attack if s else "none", s) for s in SHARES for r in AGGREGATORS])


def attack_grid(P: Any) -> pd.DataFrame:
    """Accuracy of every rule under every attack of :data:`ATTACKS` at ``P.byzantine_fraction``."""
    return _run_rows(P, [(r, a, P.byzantine_fraction) for a in ATTACKS for r in AGGREGATORS])


def retained_table(grid: pd.DataFrame, clean: pd.DataFrame) -> pd.DataFrame:
    """Accuracy divided by the same seed's clean FedAvg accuracy (``clean``: rows of share 0, fedavg)."""
    ref = clean.query("aggregator == 'fedavg'").set_index("seed").accuracy
    return grid.assign(retained=grid.accuracy / grid.seed.map(ref))


def minority_table(P: Any, grid: pd.DataFrame) -> pd.DataFrame:
    """Per rule, with no attack (the f clients behave): mean test accuracy on each seed's
    :func:`minority_class` and on the other classes."""
    rows = []
    for seed, g in grid.query("attack == 'none'").groupby("seed"):
        k = minority_class(load_federated(P.n_clients, P.non_iid, int(seed)))
        others = [f"class_{j}" for j in range(10) if j != k]
        rows.append(pd.DataFrame({"aggregator": g.aggregator, "minority class": g[f"class_{k}"],
                                  "other classes": g[others].mean(axis=1)}))
    return pd.concat(rows).groupby("aggregator")[["minority class", "other classes"]].mean()


def minority_class(data: FedData) -> int:
    """The class held most exclusively: the largest share of its training records at its top two clients."""
    counts = np.array([np.bincount(data.y[idx], minlength=data.n_classes) for idx in data.parts])
    top2 = np.sort(counts, axis=0)[-2:].sum(0) / counts.sum(0)
    return int(np.argmax(top2))


# ----------------------------------------------------------------------------------------------
# robust aggregation of DP-noised updates
# ----------------------------------------------------------------------------------------------
def dp_noise_multiplier(epsilon: float, rounds: int) -> float:
    """Noise multiplier of the client-level Gaussian mechanism that gives each client's contribution
    ``(epsilon, DELTA)``-DP over ``rounds`` rounds of full participation (RDP accountant, sample rate 1)."""
    return noise_multiplier_for(epsilon, DELTA, 1.0, rounds)


def dp_study(P: Any, rules: tuple[str, ...] = ("fedavg", "median", "trimmed_mean")) -> pd.DataFrame:
    """``rules`` (plus ``P.aggregator``) with and without ``P.attack`` at ``P.byzantine_fraction``, the
    honest updates clipped (norm :data:`DP_CLIP`) and noised at the clients for ``(P.dp_epsilon, DELTA)``."""
    rules = tuple(dict.fromkeys(rules + (P.aggregator,)))
    z = dp_noise_multiplier(P.dp_epsilon, P.rounds)
    cells = [(r, a, P.byzantine_fraction) for a in ("none", P.attack) for r in rules]
    return _run_rows(P, cells, dp_z=z, dp_clip=DP_CLIP).assign(epsilon=P.dp_epsilon, z=z)


# ----------------------------------------------------------------------------------------------
# query auditing and membership inference
# ----------------------------------------------------------------------------------------------
def audit_study(P: Any) -> pd.DataFrame:
    """Detection and false-alarm rates per threshold (:data:`THRESHOLDS`) and seed, for the detector
    counting per requester (one prober) and per item (the probes split among three sybils)."""
    rows = []
    for k in range(P.n_seeds):
        for by, sybils in (("requester", 1), ("requester", 3), ("item", 3)):
            r = query_audit.detection_rates(np.array(THRESHOLDS), P.audit_window, by, n_logs=P.n_logs,
                                            seed=P.seed + k, n_sybils=sybils)
            rows += [{"seed": P.seed + k, "by": by, "sybils": sybils, "threshold": int(t),
                      "detection": d, "false_alarm": a}
                     for t, d, a in zip(r["threshold"], r["detection"], r["false_alarm"])]
    return pd.DataFrame(rows)


def membership_study(P: Any) -> pd.DataFrame:
    """Shadow-model membership audits (:func:`ppal_lab.privacy.membership.membership_audit`) of an MLP
    trained on ``P.n_target // 2`` digits on average, at each epsilon of :data:`MI_EPSILONS`, per seed."""
    raw = D.load_dataset("digits", seed=P.seed)
    X = raw.X.to_numpy(dtype=np.float64) / 16.0
    y = np.asarray(raw.y, dtype=np.int64)
    rows = []
    for k in range(P.n_seeds):
        order = np.random.default_rng([P.seed + k, 20]).permutation(y.size)
        tgt, sh = order[:P.n_target], order[P.n_target:2 * P.n_target]
        for eps in MI_EPSILONS:
            train = membership.dpsgd_trainer(eps, DELTA, epochs=P.mi_epochs)
            a = membership.membership_audit(train, X[tgt], y[tgt], X[sh], y[sh], epsilon=eps, delta=DELTA,
                                            n_shadow=2, seed=P.seed + k)
            rows.append({"seed": P.seed + k, **a.as_dict()})
    return pd.DataFrame(rows)


def seed_aggregator_demo(seed: int) -> dict[str, Any]:
    """The seed's aggregator on five clients' updates, flat and 2-d: what it returns, against the
    coordinate median, and whether the class as written runs."""
    rng = np.random.default_rng([seed, 30])
    flat, layer = rng.normal(size=(5, 6)), rng.normal(size=(5, 3, 4))
    seed_flat = robust.seed_secure_aggregate(flat)
    seed_layer = robust.seed_secure_aggregate(layer)
    try:
        robust.SeedByzantineRobustAggregator().secure_aggregate(list(flat))
        error = ""
    except AttributeError as exc:
        error = f"AttributeError: {exc}"
    lo, hi = robust.median_replace_one_shift(5, 1.0)
    return {"flat_equals_median": bool(np.allclose(seed_flat, np.median(flat, axis=0))),
            "layer_shape_in": layer.shape[1:], "layer_shape_out": np.shape(seed_layer),
            "layer_equals_median": bool(np.shape(seed_layer) == layer.shape[1:]
                                        and np.allclose(seed_layer, np.median(layer, axis=0))),
            "class_error": error, "median_shift": float(np.median(hi) - np.median(lo)),
            "flat": flat, "layer": layer, "seed_layer": np.asarray(seed_layer)}


# ----------------------------------------------------------------------------------------------
# the record
# ----------------------------------------------------------------------------------------------
def _per_seed(df: pd.DataFrame, col: str = "accuracy") -> list[float]:
    return df.sort_values("seed")[col].to_list()


def record_metrics(record: Any, P: Any, shares: pd.DataFrame, grid: pd.DataFrame, dp: pd.DataFrame,
                   audit: pd.DataFrame, mi: pd.DataFrame, demo: dict) -> pd.DataFrame:
    """Fill ``record`` with the chapter's metrics; returns the worst retained accuracy per rule and seed."""
    clean = shares.query("share == 0")
    record.add_metric("clean_accuracy", _per_seed(clean.query("aggregator == 'fedavg'")), "fraction",
                      "FedAvg test accuracy with every client honest, per seed")
    for (rule, s), g in shares.query("share > 0").groupby(["aggregator", "share"]):
        record.add_metric(f"acc_{P.attack}_{rule}_{round(100 * s)}", _per_seed(g), "fraction",
                          f"{rule} under {P.attack} with {round(100 * s)}% Byzantine clients, per seed")
    ret = retained_table(grid.query("attack != 'none'"), clean)
    worst = ret.groupby(["aggregator", "seed"]).retained.min().unstack("aggregator")
    for rule in worst.columns:
        record.add_metric(f"worst_retained_{rule}", worst[rule].to_list(), "fraction",
                          f"{rule}: worst accuracy over the attacks at byzantine_fraction, / clean FedAvg accuracy")
        g = grid.query("aggregator == @rule and attack == 'none'")
        record.add_metric(f"agg_ms_{rule}", g.agg_ms.to_list(), "ms", f"{rule}: server aggregation time per round")
    record.add_metric("worst_retained_aggregator", worst[P.aggregator].to_list(), "fraction",
                      f"worst_retained_{P.aggregator}: the aggregator parameter's rule")
    target = robust_goal_target()
    record.add_metric("robust_goal_headroom", float(target - worst["fedavg"].mean()), "fraction",
                      "goal minus FedAvg's mean worst retained accuracy (room the attacks leave to be defended)")
    for (rule, a), g in dp.groupby(["aggregator", "attack"]):
        record.add_metric(f"dp_acc_{a}_{rule}", _per_seed(g), "fraction",
                          f"{rule}, {a}, client-level DP at epsilon = {P.dp_epsilon:g}")
    at5 = audit.query("threshold == 5")
    for (by, syb), g in at5.groupby(["by", "sybils"]):
        tag = f"{by}_{syb}"
        record.add_metric(f"audit_detection_{tag}", _per_seed(g, "detection"), "fraction",
                          f"probing logs with a refused probe at threshold 5 ({by}, {syb} prober(s))")
        record.add_metric(f"audit_false_alarm_{tag}", _per_seed(g, "false_alarm"), "fraction",
                          f"honest logs with a refused query at threshold 5 ({by})")
    for eps, g in mi.groupby("epsilon"):
        tag = "inf" if math.isinf(eps) else f"{eps:g}"
        record.add_metric(f"mi_advantage_eps_{tag}", _per_seed(g, "advantage"), "TPR - FPR",
                          f"shadow-threshold membership advantage at epsilon = {tag}")
        record.add_metric(f"mi_bound_eps_{tag}", float(g.advantage_bound.iloc[0]), "TPR - FPR",
                          f"largest advantage (epsilon = {tag}, delta = {DELTA:g}) allows")
    record.add_metric("seed_aggregator_works", float(demo["layer_equals_median"] and not demo["class_error"]),
                      "0/1", "1 when the seed's class runs and returns the coordinate median of a 2-d layer")
    return worst


def robust_goal_target() -> float:
    """The declared goal of ``robust_aggregation_defends`` (read from the spec, never from the data)."""
    return next(c.target for c in SPECS["10_adversarial_participants"].claims if c.id == "robust_aggregation_defends")


def add_claims(record: Any, P: Any, worst: pd.DataFrame, audit: pd.DataFrame, demo: dict) -> dict[str, str]:
    """Add the chapter's claims (declared in its spec) with what was measured; the engine decides them."""
    m = record.metrics
    at5 = audit.query("threshold == 5 and by == 'requester' and sybils == 1")
    measured = {
        "seed_aggregator_as_written":
            f"flat updates: equal to the coordinate median = {demo['flat_equals_median']}; a "
            f"{demo['layer_shape_in']} layer came back with shape {demo['layer_shape_out']}; the class: "
            f"{demo['class_error'] or 'ran'}",
        "robust_aggregation_defends":
            f"{P.aggregator}: worst retained accuracy over {len(ATTACKS) - 1} attacks at {P.byzantine_fraction:.0%} "
            f"Byzantine = {m['worst_retained_aggregator']['value']:.3f}; FedAvg's "
            f"{m['worst_retained_fedavg']['value']:.3f} ({P.n_seeds} seeds)",
        "clipping_noise_prevent_membership_inference":
            f"advantage at epsilon = 1: {m['mi_advantage_eps_1']['value']:.3f} (bound "
            f"{m['mi_bound_eps_1']['value']:.3f}); at epsilon = inf: {m['mi_advantage_eps_inf']['value']:.3f}",
        "query_auditing_detects": f"detection {at5.detection.mean():.3f}, false alarm {at5.false_alarm.mean():.3f} "
                                  f"(window {P.audit_window}, {P.n_logs} logs per seed)",
        "query_auditing_false_alarms": f"false alarm {at5.false_alarm.mean():.3f} at threshold 5",
    }
    notes = {"robust_aggregation_defends": "the chapter's own FedAvg loop on digits (the Flower runs come with "
                                           "issue 19); Bulyan is flwr.server.strategy.aggregate.aggregate_bulyan"}
    return record.decide_claims(SPECS[record.notebook].claims, measured, notes)


def headline_table(record: Any) -> pd.DataFrame:
    """The spec's headline metrics as text: value, 95% interval, n and unit."""
    m = record.metrics
    return pd.DataFrame({k: {"value": f"{m[k]['value']:.4g}",
                             "ci95": "" if m[k]["ci95"] is None else "[{:.4g}, {:.4g}]".format(*m[k]["ci95"]),
                             "n": m[k]["n"], "unit": m[k]["unit"]}
                         for k in SPECS[record.notebook].headline if k in m}).T


def glue_values(record: Any, P: Any, dp: pd.DataFrame) -> dict[str, Any]:
    """The numbers the notebook's prose glues: every metric but timings, ``f``, ``n_clients``, the DP
    noise multiplier and each claim's verdict as ``v_<claim id>``."""
    m = record.metrics
    v = {k: m[k]["value"] for k in m if not k.startswith("agg_ms")}
    v.update(f=n_byzantine(P.n_clients, P.byzantine_fraction), n_clients=P.n_clients, dp_z=float(dp.z.iloc[0]))
    v.update({f"v_{c['id']}": c["verdict"] for c in record.claims})
    return v
