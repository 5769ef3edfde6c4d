r"""Experiments of the adversarial-participants chapter (seed 000, "Challenge 2"): poisoning against
FedAvg and the robust rules, robust aggregation of DP-noised updates, query auditing, and membership
inference against the bound DP implies.

Building blocks (each tested in its own room): :mod:`ppal_lab.federated.robust` (the seed's aggregator
as written, Flower's aggregation functions, centered clipping), :mod:`ppal_lab.federated.poisoning` (the
six attacks), :mod:`ppal_lab.verify.query_audit` (the probe detector) and
:mod:`ppal_lab.privacy.membership` (the shadow-model audit with Opacus DP-SGD).

**The federated bed.** Every run is the project's federated protocol: a site group
(:class:`~ppal_lab.federated.protocol.LocalSites` in process, or Flower's
:class:`~ppal_lab.federated.flower_app.FlowerSites`, tested bit-identical) of
:class:`~ppal_lab.federated.participant.Participant` sites, each holding all its records labelled, and
the protocol's training step (:meth:`~ppal_lab.federated.protocol.FederatedProtocol.train`: local
Poisson-sampled SGD at every site, :data:`PLAN`, then the server's aggregate). Data: scikit-learn's
*digits* (1797 images, ten classes) split across ``n_clients`` sites by
:func:`ppal_lab.data.horizontal_partition` (label skew ``non_iid``); model: a logistic regression (650
parameters). The server's rule is a :class:`~ppal_lab.federated.robust.RobustAggregate`.
``f = round(byzantine_fraction * n_clients)`` sites, drawn from the seed, are Byzantine:
:class:`~ppal_lab.federated.poisoning.ByzantineSites` wraps the site group and replaces their updates
after every site has trained; the omniscient attacks (ALIE, IPM, adaptive) read the honest updates of
the round (the papers' collusion assumption), label-flipping sites hold flipped labels. The rules are
told ``f`` (as the papers assume). Digits is chosen for its power: FedAvg reaches about 95% test
accuracy, so an attack has 85 points of room to destroy.

**Differential privacy.** Client-level (one site = the unit): Flower's fixed clipping of every site's
update and Gaussian noise with the noise multiplier of the project's RDP accountant
(:mod:`ppal_lab.federated.client_dp`), added at the sites (so that a robust rule, which sees every
update, is post-processing) or once by the server to the mean (FedAvg only). The membership audit
uses record-level DP instead (one record = the unit, as in the membership game): DP-SGD at every
site (:func:`federated_trainer`).

**Bulyan.** :func:`~ppal_lab.federated.robust.aggregate` uses ``aggregate_bulyan`` of
``flwr.server.strategy.aggregate`` (the paper's sequential Krum selection), not the ServerApp strategy
``flwr.serverapp.strategy.Bulyan`` (Multi-Krum scores computed once); the two disagree on heavy-tailed
inputs, and the chapter reports the first.

Claims (declared in the chapter's spec, decided by the verdict engine from the record):
``seed_aggregator_as_written`` (qualitative), ``robust_aggregation_defends`` (goal on the worst retained
accuracy over the attacks, with FedAvg's headroom), ``clipping_noise_prevent_membership_inference`` (goal
on the advantage against the federated model at ``epsilon = 1``, with the non-private federated
model's advantage as headroom),
``query_auditing_detects`` and ``query_auditing_false_alarms`` (goals on the detector at threshold 5).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ppal_lab import data as D
from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real
from ppal_lab.compendium.specs import SPECS
from ppal_lab.federated import client_dp, poisoning, robust
from ppal_lab.federated.accounting import plan_noise_multiplier
from ppal_lab.federated.aggregation import fedavg
from ppal_lab.federated.orchestrator import build_site
from ppal_lab.federated.protocol import FederatedProtocol, LocalSites, seed_streams
from ppal_lab.federated.training import TrainingPlan, _load_vector, make_model
from ppal_lab.privacy import membership
from ppal_lab.privacy.accounting import noise_multiplier_for
from ppal_lab.verify import query_audit

__all__ = [
    "AGGREGATORS", "ATTACK_NAMES", "ATTACKS", "DELTA", "MI_EPSILONS", "PLAN", "RULE_NAMES", "SHARES",
    "THRESHOLDS", "add_claims", "advantage_table", "applicable", "attack_grid", "audit_study", "byzantine_sites", "clean_runs",
    "dp_noise_multiplier", "dp_study", "FedData", "federated_rounds", "federated_trainer", "glue_values",
    "headline_table", "load_federated", "local_sites", "membership_study", "minority_class", "minority_table",
    "n_byzantine", "plot_audit_roc", "read_share_grid", "record_metrics", "retained_table", "run_federated",
    "seed_aggregator_demo", "share_grid", "site_settings", "train_federated",
]

#: Aggregation rules compared (FedAvg first).
AGGREGATORS: tuple[str, ...] = robust.RULES
#: Attacks compared; ``none``: the f Byzantine clients behave (the rules still drop f).
ATTACKS: tuple[str, ...] = poisoning.ATTACKS
#: The rules and attacks in words (tables and figures).
RULE_NAMES = {"fedavg": "FedAvg", "median": "coordinate median", "trimmed_mean": "trimmed mean", "krum": "Krum",
              "multikrum": "Multi-Krum", "bulyan": "Bulyan", "cclip": "centered clipping"}
ATTACK_NAMES = {"none": "no attack", "label_flip": "label flipping", "sign_flip": "sign flipping",
                "gaussian": "Gaussian noise", "alie": "ALIE", "ipm": "IPM", "adaptive": "adaptive"}
#: Byzantine shares of the share grid.
SHARES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)
#: Privacy levels of the membership audit (inf: plain SGD).
MI_EPSILONS: tuple[float, ...] = (math.inf, 8.0, 1.0)
#: delta of every (epsilon, delta) guarantee in the chapter.
DELTA = 1e-5
#: Detector thresholds of the query-audit ROC (5 = k + 1 refuses chapter 09's fifth probe).
THRESHOLDS: tuple[int, ...] = (2, 3, 4, 5, 6, 8)
#: Sites, Poisson rate and hidden units of the membership audit's federated training.
MI_SITES, MI_RATE, MI_HIDDEN = 5, 0.2, 64
#: Clipping norm of the DP updates (fixed before the runs; a first-round update on digits has norm about 1).
DP_CLIP = 1.0
#: Local training of every site: one expected epoch of Poisson-sampled SGD (batches of a quarter of
#: the site's records on average), step 0.5 on the mean gradient of the expected batch.
PLAN = TrainingPlan(sample_rate=0.25, local_steps=4, lr=0.5, max_grad_norm=1.0, noise_multiplier=None)


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
    """Digits split into a training pool partitioned across sites and a test set; ``center``/``scale``
    (the test set's statistics, a public map) standardise every site's pool and the test set."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    parts: tuple
    n_classes: int
    center: np.ndarray
    scale: np.ndarray

    def site_data(self, p: int, flipped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Site ``p``'s raw pool and labels (``flipped``: a label-flipping site's labels)."""
        idx = self.parts[p]
        y = poisoning.flip_labels(self.y[idx], self.n_classes) if flipped else self.y[idx]
        return self.X[idx], y


def load_federated(n_clients: int, non_iid: float, seed: int) -> FedData:
    """Digits, a stratified 25% test split and a label-skewed partition of the rest (all from ``seed``)."""
    from sklearn.model_selection import train_test_split

    raw = D.load_dataset("digits", seed=seed)
    X, y = raw.X.to_numpy(dtype=np.float64), np.asarray(raw.y, dtype=np.int64)
    pool, test = (np.sort(a) for a in train_test_split(np.arange(y.size), test_size=0.25, stratify=y,
                                                        random_state=seed))
    center, scale = X[test].mean(0), X[test].std(0)
    scale[~(scale > 0)] = 1.0
    parts = D.horizontal_partition(raw.subset(pool), n_clients, non_iid=non_iid, seed=seed)
    return FedData(X[pool], y[pool], X[test], y[test], tuple(parts), int(y.max()) + 1, center, scale)


def site_settings(data: FedData, seed: int) -> dict:
    """The settings every site is built from (``orchestrator.build_site``; Flower's ``setup`` message
    carries the same): logistic regression, no record-level budget, the public scaling, the run seed."""
    return {"model": "logreg", "hidden": 32, "n_classes": data.n_classes, "epsilon": None, "delta": DELTA,
            "seed": int(seed), "center": data.center, "scale": data.scale}


def local_sites(data: FedData, seed: int, flipped: frozenset = frozenset(),
                plan: TrainingPlan = PLAN) -> LocalSites:
    """The in-process site group: one :class:`~ppal_lab.federated.participant.Participant` per part,
    holding all its records labelled, built as the Flower ClientApp builds it (same seed streams)."""
    v = site_settings(data, seed)
    _, model_seed, rngs, torch_seeds = seed_streams(seed, len(data.parts))
    sites = []
    for p in range(len(data.parts)):
        X, y = data.site_data(p, p in flipped)
        Xs = ((X - data.center) / data.scale).astype(np.float32)  # as the ClientApp scales its file
        sites.append(build_site(v, p, Xs, y, y.size, plan, model_seed, rngs[p], torch_seeds[p], False))
    return LocalSites(sites)


def byzantine_sites(n: int, f: int, seed: int) -> frozenset:
    """The ``f`` Byzantine sites of a run, drawn from ``seed``."""
    return frozenset(np.random.default_rng([seed, 10]).choice(n, f, replace=False).tolist())


def train_federated(sites: Any, data: FedData, rule: str, attack: str, byzantine: frozenset, rounds: int,
                    seed: int, *, dp_z: float | None = None, dp_clip: float = DP_CLIP,
                    dp_noise: str = "sites") -> dict[str, Any]:
    """FedAvg rounds of the federated protocol on a site group (in process or Flower's), the server
    aggregating by ``rule``; the sites ``byzantine`` mount ``attack`` (:class:`poisoning.ByzantineSites`).

    With ``dp_z``, client-level DP (:mod:`ppal_lab.federated.client_dp`): every site clips its update
    to ``dp_clip`` (:class:`~client_dp.ClippedSites`, before the attack: a Byzantine site skips nothing
    it would not skip anyway) and the noise multiplier ``dp_z`` is applied at the sites
    (``dp_noise="sites"``: any rule is post-processing) or by the server to the mean
    (``"server"``, :func:`~client_dp.noisy_fedavg`, FedAvg only). Returns the final global parameters,
    test accuracy, per-class accuracy and the server's aggregation time per round."""
    f = len(byzantine)
    robust.check_rule(rule, len(sites), f)
    check_choice("dp_noise", dp_noise, ("sites", "server"))
    if dp_noise == "server" and rule != "fedavg":
        raise ParameterError("dp_noise", dp_noise, "'sites' for a robust rule (server noise covers the mean)")
    rng = np.random.default_rng([seed, 11])
    server = robust.RobustAggregate(rule, f)
    aggregate: Any = server
    if dp_z is not None:
        sites = client_dp.ClippedSites(sites, dp_clip, dp_z if dp_noise == "sites" else None, rng)
        if dp_noise == "server":
            aggregate = client_dp.noisy_fedavg(dp_z, dp_clip, rng)
    group = poisoning.ByzantineSites(sites, sorted(byzantine), attack, server, rng)
    model = make_model("logreg", data.X.shape[1], data.n_classes, seed=seed_streams(seed, len(sites))[1])
    params = federated_rounds(group, model, aggregate, rounds)
    X_test = torch.as_tensor(((data.X_test - data.center) / data.scale).astype(np.float32))
    with torch.no_grad():
        pred = model(X_test).argmax(1).numpy()
    per_class = np.array([np.mean(pred[data.y_test == k] == k) for k in range(data.n_classes)])
    return {"params": params, "accuracy": float(np.mean(pred == data.y_test)), "per_class": per_class,
            "agg_ms": 1000 * server.seconds / rounds}


def federated_rounds(sites: Any, model: torch.nn.Module, aggregate: Any, rounds: int) -> torch.Tensor:
    """``rounds`` training rounds of the protocol (:meth:`FederatedProtocol.train`: every site's local
    update, then ``aggregate``) from ``model``'s weights, which end as the final global model. No label
    is bought: every site holds all its records labelled. A :class:`robust.RobustAggregate` is told each
    round's global model first."""
    n_records = int(sites.public_counts()[:, 1].sum())
    protocol = FederatedProtocol(sites, None, model, torch.zeros(1, 1), np.zeros(1), n_records, 1, "random",
                                 np.random.default_rng(0), aggregate=aggregate)
    params = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the protocol's loop and Flower's ClientApp: same float paths
    try:
        for t in range(rounds):
            if isinstance(aggregate, robust.RobustAggregate):
                aggregate.start_round(params)
            params = protocol.train(params, t)
    finally:
        torch.set_num_threads(threads)
    _load_vector(model.parameters(), params)
    return params


def run_federated(data: FedData, rule: str, attack: str, f: int, rounds: int, seed: int,
                  **dp: Any) -> dict[str, Any]:
    """:func:`train_federated` on the in-process site group, ``f`` Byzantine sites drawn from ``seed``."""
    byz = byzantine_sites(len(data.parts), f, seed)
    sites = local_sites(data, seed, byz if attack == "label_flip" else frozenset())
    return train_federated(sites, data, rule, attack, byz, rounds, seed, **dp)


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


def clean_runs(grid: pd.DataFrame) -> pd.DataFrame:
    """The clean FedAvg runs of an attack grid: attack ``none`` with FedAvg (the f Byzantine sites
    behave and FedAvg counts every site, so this is the run with every site honest; tested)."""
    return grid.query("attack == 'none' and aggregator == 'fedavg'").assign(share=0.0)


def read_share_grid(path: Any = None) -> tuple[pd.DataFrame, dict]:
    """The share grid of the benchmark record ``bench_adversarial.json`` (``benchmarks/bench_adversarial.py``):
    its rows and the parameters it ran at."""
    from ppal_lab.compendium.paths import repo_root

    path = repo_root() / "data" / "results" / "bench_adversarial.json" if path is None else path
    with open(path) as f:
        bench = json.load(f)
    return pd.DataFrame(bench["share_grid"]), bench["params"]


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
    """``rules`` (plus ``P.aggregator``) with and without ``P.attack`` at ``P.byzantine_fraction``, every
    update clipped at its site (norm :data:`DP_CLIP`) and noised at the sites for ``(P.dp_epsilon,
    DELTA)`` per site; beside them FedAvg with the noise added once by the server (column ``noise``)."""
    rules = tuple(dict.fromkeys(rules + (P.aggregator,)))
    z = dp_noise_multiplier(P.dp_epsilon, P.rounds)
    cells = [(r, a, P.byzantine_fraction) for a in ("none", P.attack) for r in rules]
    at_sites = _run_rows(P, cells, dp_z=z, dp_clip=DP_CLIP).assign(noise="sites")
    central = _run_rows(P, [("fedavg", a, P.byzantine_fraction) for a in ("none", P.attack)], dp_z=z,
                        dp_clip=DP_CLIP, dp_noise="server").assign(noise="server")
    return pd.concat([at_sites, central], ignore_index=True).assign(epsilon=P.dp_epsilon, z=z)


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


def federated_trainer(epsilon: float, rounds: int, n_sites: int = MI_SITES) -> membership.Trainer:
    """A training recipe for the membership audit: the federated protocol itself. The records are
    split at random across ``n_sites`` sites (Participants holding them all labelled), which train an
    MLP (:data:`MI_HIDDEN` units) for ``rounds`` FedAvg rounds of one expected local epoch. For finite
    ``epsilon`` every site trains by Opacus DP-SGD (per-record clipping, Poisson sampling, Gaussian
    noise) with the noise multiplier that spends ``(epsilon, DELTA)`` over all its steps, charged to
    its budget as it goes: the unit of privacy is one record, as in the membership game, and since a
    record lives at one site and the global model is computed from the sites' outputs, the trained
    model is ``(epsilon, DELTA)``-DP for every record. Returns the per-record loss of the final model."""
    steps = round(1 / MI_RATE)
    # the noise multiplier from the accountant that charges the sites' budgets (same orders)
    z = None if math.isinf(epsilon) else plan_noise_multiplier(epsilon, DELTA, MI_RATE, rounds * steps)
    plan = TrainingPlan(MI_RATE, steps, 0.5, 1.0, z)

    def train(X: np.ndarray, y: np.ndarray, seed: int) -> membership.LossFunction:
        v = {"model": "mlp", "hidden": MI_HIDDEN, "n_classes": 10, "delta": DELTA,
             "epsilon": None if math.isinf(epsilon) else epsilon}
        parts = np.array_split(np.random.default_rng([seed, 21]).permutation(y.size), n_sites)
        _, model_seed, rngs, torch_seeds = seed_streams(seed, n_sites)
        sites = LocalSites([build_site(v, p, X[idx].astype(np.float32), y[idx], idx.size, plan, model_seed,
                                       rngs[p], torch_seeds[p], False) for p, idx in enumerate(parts)])
        model = make_model("mlp", X.shape[1], 10, MI_HIDDEN, model_seed)
        federated_rounds(sites, model, fedavg, rounds)
        if any(s.training_stopped for s in sites.participants):  # the plan must fit every budget
            raise RuntimeError("a site's budget refused a round: its DP-SGD plan exceeds epsilon")

        def losses(Xe: np.ndarray, ye: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                logits = model(torch.as_tensor(Xe, dtype=torch.float32))
                return torch.nn.functional.cross_entropy(logits, torch.as_tensor(ye),
                                                         reduction="none").double().numpy()

        return losses

    return train


def membership_study(P: Any) -> pd.DataFrame:
    """Shadow-model membership audits (:func:`ppal_lab.privacy.membership.membership_audit`) of the
    model the federated protocol trains (:func:`federated_trainer`, ``P.mi_epochs`` rounds) on
    ``P.n_target // 2`` digits on average, at each epsilon of :data:`MI_EPSILONS`, per seed."""
    raw = D.load_dataset("digits", seed=P.seed)
    X = raw.X.to_numpy(dtype=np.float64) / 16.0
    y = np.asarray(raw.y, dtype=np.int64)
    rows = []
    for k in range(P.n_seeds):
        order = np.random.default_rng([P.seed + k, 20]).permutation(y.size)
        tgt, sh = order[:P.n_target], order[P.n_target:2 * P.n_target]
        for eps in MI_EPSILONS:
            train = federated_trainer(eps, P.mi_epochs)
            a = membership.membership_audit(train, X[tgt], y[tgt], X[sh], y[sh], epsilon=eps, delta=DELTA,
                                            n_shadow=2, seed=P.seed + k)
            rows.append({"seed": P.seed + k, **a.as_dict()})
    return pd.DataFrame(rows)


def plot_audit_roc(audit: pd.DataFrame, audit_window: int) -> plt.Figure:
    """Figure ``10_query_audit_roc``: the query auditor's ROC from :func:`audit_study`, one line per counting
    scheme and number of probers (mean false alarm and detection over seeds, one point per threshold, the
    threshold 5 annotated), with the chance diagonal dotted."""
    roc = audit.groupby(["by", "sybils", "threshold"])[["false_alarm", "detection"]].mean()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for (by, syb), g in roc.groupby(level=[0, 1]):
        ax.plot(g.false_alarm, g.detection, marker="o", label=f"count per {by}, {syb} prober(s)")
        at5 = g.xs(5, level="threshold")
        ax.annotate("5", (at5.false_alarm.iloc[0], at5.detection.iloc[0]))
    ax.plot([0, 1], [0, 1], c="grey", ls=":", lw=1)
    ax.set(xlabel="false alarm (honest logs with a refusal)", ylabel="detection (probing logs caught)",
           title=f"Query auditor ROC, window {audit_window}")
    ax.legend(fontsize=8)
    return fig


def advantage_table(mi: pd.DataFrame) -> pd.DataFrame:
    """Per epsilon of :func:`membership_study` (``inf`` for no DP), the mean membership advantage of the
    loss-threshold attack, its 95% lower bound, LiRA's, the DP bound and the epsilon the attack proves."""
    adv = mi.groupby("epsilon").agg(advantage=("advantage", "mean"), lower_95=("advantage_lower", "mean"),
                                    lira=("lira_advantage", "mean"), bound=("advantage_bound", "first"),
                                    epsilon_proved=("epsilon_lb", "mean"))
    adv.index = ["inf" if math.isinf(e) else f"{e:g}" for e in adv.index]
    adv.columns = ["loss threshold", "95% lower bound", "LiRA", "DP bound", "epsilon proved"]
    return adv


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
    clean = clean_runs(grid)
    record.add_metric("clean_accuracy", _per_seed(clean), "fraction",
                      "FedAvg test accuracy with every site honest, per seed")
    bench_attack = shares.attack[shares.share > 0].iloc[0] if (shares.share > 0).any() else P.attack
    for (rule, s), g in shares.query("share > 0").groupby(["aggregator", "share"]):
        record.add_metric(f"acc_{bench_attack}_{rule}_{round(100 * s)}", _per_seed(g), "fraction",
                          f"{rule} under {bench_attack} with {round(100 * s)}% Byzantine sites, per seed "
                          "(benchmark record bench_adversarial.json)")
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
    for (rule, a, noise), g in dp.groupby(["aggregator", "attack", "noise"]):
        tag, where = ("", "noise at the sites") if noise == "sites" else ("_server", "noise at the server")
        record.add_metric(f"dp_acc_{a}_{rule}{tag}", _per_seed(g), "fraction",
                          f"{rule}, {a}, client-level DP at epsilon = {P.dp_epsilon:g}, {where}")
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
        record.add_metric(f"lira_advantage_eps_{tag}", _per_seed(g, "lira_advantage"), "TPR - FPR",
                          f"offline LiRA membership advantage at epsilon = {tag}")
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
    notes = {"robust_aggregation_defends": "the federated protocol's site group (Participants, local SGD in "
                                           "torch) on digits; Bulyan is flwr.server.strategy.aggregate."
                                           "aggregate_bulyan",
             "clipping_noise_prevent_membership_inference": "target: the model the federated protocol trains "
                                                            f"({MI_SITES} sites, DP-SGD at every site)"}
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
    v.update(f=n_byzantine(P.n_clients, P.byzantine_fraction), n_clients=int(P.n_clients),
             dp_z=float(dp.z.iloc[0]), non_iid=float(P.non_iid), rounds=int(P.rounds),
             dp_epsilon=float(P.dp_epsilon), mi_sites=MI_SITES, mi_rounds=int(P.mi_epochs),
             n_target=int(P.n_target), attack_name=ATTACK_NAMES[P.attack])
    v.update({f"v_{c['id']}": c["verdict"] for c in record.claims})
    return v
