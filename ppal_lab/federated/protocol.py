"""The loop of the federated active-learning protocol: FedAvg rounds, evaluation by the orchestrator,
queries and the allocation of each round's batch, labelling, and an optional label gate between
labelling and training.

One round of :class:`FederatedProtocol`:

1. *training* — :func:`federated_round`: every site trains the global model on its labelled set and the
   orchestrator aggregates the local models (FedAvg, or a caller's aggregation such as masked FedAvg);
   optionally the sites send compressed updates (the site group's codec,
   :mod:`ppal_lab.federated.compression`) and the orchestrator aggregates hierarchically (``edges``,
   ``kappa``: HierFAVG over logical edge tiers, :class:`FederatedProtocol`);
2. *evaluation* — the orchestrator scores the global model on its own test set;
3. *query* — uncertainty strategies: every site proposes candidates and releases their (noisy) scores,
   the orchestrator splits the batch with :func:`allocate_batch`; ``"random"``: a hypergeometric split of
   the batch over the public unlabelled counts; each site labels its share;
4. *gate* (optional) — a :data:`LabelGate` decides which new labels enter the training sets; rejected
   items stay inspected (:meth:`~ppal_lab.federated.participant.Participant.reject`), so the label
   budget counts labels *bought*.

:func:`~ppal_lab.federated.orchestrator.run_federated_al` builds the sites, the plan and the seed streams
and runs this loop; so does any variant of the protocol (e.g. chapter 9's verified-label gate), so there
is one implementation of the loop. The privacy analysis is in :mod:`ppal_lab.federated.orchestrator`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ppal_lab.compendium.errors import ParameterError, check_int
from ppal_lab.federated.aggregation import fedavg
from ppal_lab.federated.compression import Codec, SiteEncoder, codec_rng, payload_bytes
from ppal_lab.federated.participant import Participant
from ppal_lab.federated.training import _load_vector

__all__ = ["Aggregate", "FederatedProtocol", "History", "LabelGate", "LocalSites", "SiteGroupWrapper", "allocate_batch",
           "federated_round", "initial_split", "seed_streams"]

#: ``aggregate(vectors, weights) -> average``: how the orchestrator combines the local models.
Aggregate = Callable[[Sequence[torch.Tensor], np.ndarray], torch.Tensor]
#: ``gate(round_index, new) -> keep``: per site, a boolean mask over the local positions ``new[p]``
#: labelled in this round (``round_index = -1``: the initial labels); rejected labels never train.
LabelGate = Callable[[int, list], list]


def allocate_batch(released: Sequence[np.ndarray | None], batch: int) -> np.ndarray:
    """Split a global batch across participants from their released proposal scores.

    The orchestrator merges all released values and keeps the ``batch`` largest (ties: lower
    participant, then earlier proposal); participant *p* gets as many labels as it has values among
    them. It never learns which items the values belong to.

    Parameters
    ----------
    released : sequence of (numpy.ndarray or None)
        Per participant, its released (noisy) scores, or ``None`` if it proposed nothing.
    batch : int
        Labels to allocate, >= 0.

    Returns
    -------
    numpy.ndarray of int
        Labels per participant (sum = ``min(batch, number of released values)``).
    """
    batch = check_int("batch", batch, 0)
    owner, value, rank = [], [], []
    for p, v in enumerate(released):
        if v is None:
            continue
        v = np.asarray(v, dtype=np.float64)
        owner.append(np.full(v.size, p))
        value.append(v)
        rank.append(np.arange(v.size))
    counts = np.zeros(len(released), dtype=np.int64)
    if not owner or batch == 0:
        return counts
    o, v, r = np.concatenate(owner), np.concatenate(value), np.concatenate(rank)
    order = np.lexsort((r, o, -v))[:batch]
    np.add.at(counts, o[order], 1)
    return counts



def _aggregate(local: Sequence[torch.Tensor | None], n_labelled: np.ndarray, global_params: torch.Tensor,
               aggregate: Aggregate) -> tuple[torch.Tensor, np.ndarray]:
    """The orchestrator's side of a FedAvg round: the average of what the sites sent, weighted by their
    labelled-set sizes (sites that sent nothing weigh 0; if none sent, the model is unchanged)."""
    weights = np.array([n if v is not None else 0 for v, n in zip(local, n_labelled)], dtype=np.float64)
    sent = [v for v in local if v is not None]
    if not sent:
        return global_params.clone(), weights
    return aggregate(sent, weights[weights > 0]), weights


def federated_round(participants: Sequence[Participant], global_params: torch.Tensor,
                    round_index: int, aggregate: Aggregate = fedavg
                    ) -> tuple[torch.Tensor, list[torch.Tensor | None], np.ndarray]:
    """One FedAvg round: local updates, then their average weighted by labelled-set sizes.

    ``aggregate(vectors, weights)`` computes the average (default :func:`fedavg`; e.g. a
    :func:`~ppal_lab.federated.aggregation.secure_fedavg` closure for masked aggregation).

    Sites that send nothing (training stopped) are left out of the average; if none sends, the global
    model is unchanged.

    Returns
    -------
    new_params : torch.Tensor
        The new global parameter vector.
    local_params : list of (torch.Tensor or None)
        What each site sent.
    weights : numpy.ndarray
        Labelled-set sizes used as weights (0 for sites that sent nothing).
    """
    sites = LocalSites(participants)
    local = sites.train(global_params, round_index)
    new, weights = _aggregate(local, sites.public_counts()[:, 1], global_params, aggregate)
    return new, local, weights


class LocalSites:
    """The in-process engine: every site is a :class:`Participant` in this process, called in site
    order (fast and bit-reproducible; the notebooks use it).

    ``codec`` (default: none) is how the sites encode their updates
    (:mod:`ppal_lab.federated.compression`): each site encodes with its own
    :class:`~ppal_lab.federated.compression.SiteEncoder` (residual and rounding stream from ``seed``),
    the orchestrator decodes. ``update_bytes`` counts each site's uploaded update arrays.

    A *site group* is what :class:`FederatedProtocol` talks to; the Flower engine
    (:class:`ppal_lab.federated.flower_app.FlowerSites`) has the same methods and sends each step to the
    sites as a Flower message, whose handler calls the same :class:`Participant` method. Only
    :meth:`label` here also returns item identities: a simulation record the orchestrator never uses.
    """

    def __init__(self, participants: Sequence[Participant], codec: Codec | None = None,
                 seed: int = 0) -> None:
        self.participants = list(participants)
        self.codec = codec or Codec()
        self.encoders = [SiteEncoder(self.codec, codec_rng(seed, p)) for p in range(len(self.participants))]
        self.update_bytes = np.zeros(len(self.participants), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.participants)

    def public_counts(self) -> np.ndarray:
        """Per site ``(labels bought, labelled-set size, never inspected)``: numbers the orchestrator
        knows (it allocated them)."""
        return np.array([[s.n_inspected, s.n_labelled, s.n_unlabelled] for s in self.participants],
                        dtype=np.int64).reshape(-1, 3)

    def train(self, params: torch.Tensor | Sequence[torch.Tensor], t: int) -> list[torch.Tensor | None]:
        """Every site's local update of ``params`` (one vector for all sites, or one per site: its
        edge's model), as the orchestrator reconstructs it from the encoded reply (``None``: the site
        sent nothing)."""
        starts = _per_site(params, len(self))
        out = []
        for p, (s, start) in enumerate(zip(self.participants, starts)):
            local = s.local_update(start, t)
            if local is None:
                out.append(None)
                continue
            if self.codec.method == "none":  # the float32 model itself, as before compression existed
                self.update_bytes[p] += local.numel() * local.element_size()
                out.append(local)
                continue
            arrays = self.encoders[p].encode(local.numpy(), start.numpy())  # at the site
            self.update_bytes[p] += payload_bytes(arrays)
            out.append(torch.from_numpy(self.codec.rebuild(start.numpy(), arrays)))  # at the orchestrator
        return out

    def propose(self, model: nn.Module, strategy: str, ks: Sequence[int], epsilon_select: float | None,
                epsilon_value: float | None, t: int) -> list[np.ndarray | None]:
        """Every site's released proposal scores under the global ``model``."""
        return [s.propose(model, strategy, k, epsilon_select, epsilon_value, t)
                for s, k in zip(self.participants, ks)]

    def label(self, counts: np.ndarray, at_random: bool) -> list[np.ndarray]:
        """Every site buys its allocated labels (its best proposals, or uniformly at random)."""
        return [s.label_random(int(c)) if at_random else s.label(int(c))
                for s, c in zip(self.participants, counts)]

    def labelled_positions(self) -> list[np.ndarray]:
        """Each site's labelled local positions (simulation record and label gate)."""
        return [s.labelled_positions for s in self.participants]

    def reject(self, positions: Sequence[np.ndarray]) -> None:
        """Take rejected labels out of the training sets (the label gate)."""
        for s, pos in zip(self.participants, positions):
            s.reject(pos)

    def report(self) -> list[dict]:
        """What every site reports at the end of a run (:meth:`Participant.report`), plus its
        labelled positions (simulation record)."""
        return [dict(s.report(), positions=s.labelled_positions) for s in self.participants]


def _per_site(params: torch.Tensor | Sequence[torch.Tensor], n: int) -> list[torch.Tensor]:
    """``params`` for every site: one vector for all, or already one per site."""
    if isinstance(params, torch.Tensor):
        return [params] * n
    if len(params) != n:
        raise ParameterError("params", f"{len(params)} vectors", f"one for all sites or one per site ({n})")
    return list(params)


class SiteGroupWrapper:
    """A site group that wraps another and passes every step through to it: subclasses change what
    :meth:`train` returns (clipping and noise at the sites, Byzantine sites), nothing else."""

    def __init__(self, sites: Any) -> None:
        self.sites = sites

    def __len__(self) -> int:
        return len(self.sites)

    def __getattr__(self, name: str) -> Any:  # public_counts, report, ...: the wrapped group's
        if name.startswith("_") or name == "sites":
            raise AttributeError(name)
        return getattr(self.sites, name)

    def train(self, params: torch.Tensor, t: int) -> list[torch.Tensor | None]:
        return self.sites.train(params, t)


def initial_split(sizes: np.ndarray, total: int) -> np.ndarray:
    """Initial labels per site, proportional to pool size (largest remainder), >= 1, <= pool."""
    share = total * sizes / sizes.sum()
    counts = np.maximum(np.floor(share).astype(np.int64), 1)
    counts = np.minimum(counts, sizes)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    i = 0
    while counts.sum() < total:  # hand out the remainder by largest fractional part
        p = order[i % order.size]
        if counts[p] < sizes[p]:
            counts[p] += 1
        i += 1
    while counts.sum() > total:  # the >= 1 floor can overshoot: take back from the largest
        p = int(np.argmax(counts))
        counts[p] -= 1
    return counts


Streams = tuple[np.random.Generator, int, list[np.random.Generator], list[tuple[int, int]]]


def seed_streams(seed: int, n_sites: int) -> Streams:
    """All randomness of a run from one seed: the orchestrator's stream (model initialisation,
    random allocations) and one stream per site (torch seeds for sampling and DP noise, then every
    numpy draw of that site)."""
    streams = np.random.SeedSequence(seed).spawn(n_sites + 1)
    orchestrator_rng = np.random.default_rng(streams[0])
    model_seed = int(orchestrator_rng.integers(2**31))
    site_rngs, torch_seeds = [], []
    for stream in streams[1:]:
        rng = np.random.default_rng(stream)
        a, b = rng.integers(2**31, size=2)
        site_rngs.append(rng)
        torch_seeds.append((int(a), int(b)))
    return orchestrator_rng, model_seed, site_rngs, torch_seeds




@dataclass
class History:
    """What the orchestrator observed, one entry per training round (the curve), plus the run's
    simulation record.

    Attributes
    ----------
    n_labels : list of int
        Labels bought (inspections paid, initial ones included) after each round.
    n_used : list of int
        Labels in the training sets after each round (equals ``n_labels`` without a gate).
    accuracy : list of float
        Test accuracy of the global model after each round.
    round_time_s : list of float
        Wall time of each round (training, evaluation, query, labelling, gate).
    queried : list of numpy.ndarray
        Global indices labelled, in labelling order (initial sets first); a simulation record.
    stopped_early : bool
        True when labelling ended before the label budget (nothing could be allocated).
    log : list of (int, str)
        The orchestrator's events ``(round, message)``.
    update_bytes, model_bytes : list of int
        Per training round, the update arrays all sites uploaded (as encoded; measured by the engine,
        0 when it does not count) and the model arrays sent down to them (float32).
    cloud_bytes : list of int
        Per training round, the arrays through the cloud: flat, every site's upload and download;
        hierarchical, the edge models' uploads and the cloud model's downloads at a cloud round
        (0 in between).
    """

    n_labels: list[int] = field(default_factory=list)
    n_used: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    round_time_s: list[float] = field(default_factory=list)
    queried: list[np.ndarray] = field(default_factory=list)
    stopped_early: bool = False
    log: list[tuple[int, str]] = field(default_factory=list)
    update_bytes: list[int] = field(default_factory=list)
    model_bytes: list[int] = field(default_factory=list)
    cloud_bytes: list[int] = field(default_factory=list)


class FederatedProtocol:
    """The orchestrator's loop over already built sites (module docstring).

    Parameters
    ----------
    sites : sequence of Participant, or a site group
        The sites, their initial labels already drawn: :class:`Participant` objects (run in process,
        :class:`LocalSites`) or a site group such as Flower's
        :class:`~ppal_lab.federated.flower_app.FlowerSites`.
    parts : sequence of numpy.ndarray or None
        Global row indices of each site's pool (for the simulation record only; ``None`` when the
        engine does not see item identities).
    global_model : torch.nn.Module
        The orchestrator's copy of the model (its weights are overwritten every round).
    X_test : torch.Tensor
        The orchestrator's evaluation set, scaled like the pools.
    y_test : numpy.ndarray
        Its labels.
    label_budget, batch_size : int
        Labels to buy in all (initial ones included) and per query round.
    strategy : str
        Acquisition rule of :data:`ppal_lab.learning.active.STRATEGIES`.
    orchestrator_rng : numpy.random.Generator
        The orchestrator's randomness (random allocations; a secure ``aggregate`` may share it).
    proposals : int or "round"
        Candidates each site proposes per round, or ``"round"``: as many as the round's batch (capped
        by the site's unlabelled items).
    epsilon_select, epsilon_value : float or None
        Per-round query budgets of each site (``None``: exact, non-private proposals).
    aggregate : callable
        How local models are combined (:data:`Aggregate`), default :func:`fedavg`.
    label_gate : callable or None
        :data:`LabelGate` applied to the initial labels and to every round's new labels.
    progress : str or None
        Description of a tqdm progress bar (``None``: no bar).
    edges, kappa : int or None, int
        Hierarchical aggregation (HierFAVG, Liu et al. 2020) when ``edges`` is set: site ``p``
        reports to edge ``p % edges``; the orchestrator keeps one model per edge, every edge averages
        its sites every round (with ``aggregate``), and the cloud averages the edges (weighted by
        their labelled-set sizes) every ``kappa`` rounds and in the last round. The edges are
        logical tiers inside the orchestrator (one process, one ServerApp), not separate servers:
        their traffic is counted per tier (``History.cloud_bytes``), not sent over a network.
        Between cloud rounds, evaluation and queries use the last cloud model. ``None``: flat.
    """

    def __init__(self, sites: Any, parts: Sequence[np.ndarray] | None, global_model: nn.Module,
                 X_test: torch.Tensor, y_test: np.ndarray, label_budget: int, batch_size: int,
                 strategy: str, orchestrator_rng: np.random.Generator, *, proposals: int | str = "round",
                 epsilon_select: float | None = None, epsilon_value: float | None = None,
                 aggregate: Aggregate = fedavg, label_gate: LabelGate | None = None,
                 progress: str | None = None, edges: int | None = None, kappa: int = 1) -> None:
        if isinstance(sites, Sequence):
            sites = LocalSites(sites)
        if len(sites) == 0 or (parts is not None and len(sites) != len(parts)):
            raise ParameterError("sites", f"{len(sites)} sites for {len(parts or ())} pools",
                                 "one or more sites, one per pool")
        if proposals != "round":
            proposals = check_int("proposals", proposals, 1)
        self.sites, self.parts = sites, None if parts is None else list(parts)
        self.global_model, self.X_test, self.y_test = global_model, X_test, y_test
        self.label_budget = check_int("label_budget", label_budget, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.strategy, self.rng, self.proposals = strategy, orchestrator_rng, proposals
        self.epsilon_select, self.epsilon_value = epsilon_select, epsilon_value
        self.aggregate, self.label_gate, self.progress = aggregate, label_gate, progress
        self.edges = None if edges is None else check_int("edges", edges, 1, len(sites))
        self.kappa = check_int("kappa", kappa, 1)
        self._edge_params: list[torch.Tensor] | None = None
        self.round_bytes = (0, 0, 0)  # (updates up, models down, through the cloud) of the last round

    # -- the steps of one round ----------------------------------------------------------------
    def train(self, params: torch.Tensor, t: int, final: bool = False) -> torch.Tensor:
        """Local updates and their aggregate: the new global parameter vector (hierarchical: the
        cloud's model, new in a cloud round, ``kappa``-th or ``final``, else unchanged)."""
        before = int(np.sum(getattr(self.sites, "update_bytes", 0)))
        model_bytes = params.numel() * params.element_size()
        if self.edges is None:
            local = self.sites.train(params, t)
            new = _aggregate(local, self.sites.public_counts()[:, 1], params, self.aggregate)[0]
        else:
            new = self._train_hierarchical(params, t, final)
        up = int(np.sum(getattr(self.sites, "update_bytes", 0))) - before
        down = len(self.sites) * model_bytes
        if self.edges is None:
            cloud = up + down
        else:
            cloud = 2 * self.edges * model_bytes if self._cloud_round(t, final) else 0
        self.round_bytes = (up, down, cloud)
        return new

    def _cloud_round(self, t: int, final: bool) -> bool:
        return final or (t + 1) % self.kappa == 0

    def _train_hierarchical(self, params: torch.Tensor, t: int, final: bool) -> torch.Tensor:
        """One HierFAVG round: every site trains its edge's model, every edge averages its sites; in
        a cloud round the cloud averages the edges and every edge restarts from the result."""
        if self._edge_params is None:
            self._edge_params = [params.clone() for _ in range(self.edges)]
        edge_of = np.arange(len(self.sites)) % self.edges
        local = self.sites.train([self._edge_params[e] for e in edge_of], t)
        n_labelled = self.sites.public_counts()[:, 1]
        weight = np.zeros(self.edges)
        for e in range(self.edges):
            members = np.flatnonzero(edge_of == e)
            self._edge_params[e], w = _aggregate([local[i] for i in members], n_labelled[members],
                                                 self._edge_params[e], self.aggregate)
            weight[e] = w.sum()
        if not self._cloud_round(t, final):
            return params
        if weight.sum() == 0:
            cloud = params.clone()
        else:
            cloud = fedavg([self._edge_params[e] for e in np.flatnonzero(weight)], weight[weight > 0])
        self._edge_params = [cloud.clone() for _ in range(self.edges)]
        return cloud

    def evaluate(self, params: torch.Tensor) -> float:
        """Load ``params`` into the global model; its accuracy on the orchestrator's test set."""
        _load_vector(self.global_model.parameters(), params)
        with torch.no_grad():
            pred = self.global_model(self.X_test).argmax(dim=1).numpy()
        return float(np.mean(pred == self.y_test))

    def query(self, want: int, t: int) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Allocate ``want`` labels and let every site buy its share: ``(counts, new positions)``
        (positions only from an engine that records them)."""
        unl = self.sites.public_counts()[:, 2]
        if self.strategy != "random":
            ks = [self.proposals if self.proposals != "round" else min(want, int(u)) for u in unl]
            released = self.sites.propose(self.global_model, self.strategy, ks, self.epsilon_select,
                                          self.epsilon_value, t)
            counts = allocate_batch(released, want)
            return counts, self.sites.label(counts, at_random=False)
        # uniform sampling over the union of the pools, split by the public unlabelled counts:
        # data-independent, so free
        n_draw = min(want, int(unl.sum()))
        counts = (np.array([n_draw]) if len(self.sites) == 1 else
                  self.rng.multivariate_hypergeometric(unl, n_draw))
        return counts, self.sites.label(counts, at_random=True)

    def admit(self, new: list[np.ndarray] | None, t: int) -> None:
        """The label gate: new labels it rejects leave the training sets (they stay bought)."""
        if self.label_gate is None:
            return
        if new is None:
            raise ParameterError("label_gate", "a gate", "no gate on an engine that hides item identities")
        keep = self.label_gate(t, new)
        self.sites.reject([np.asarray(pos)[~np.asarray(ok, dtype=bool)] for pos, ok in zip(new, keep)])

    # -- the loop ------------------------------------------------------------------------------
    def run(self, params: torch.Tensor) -> History:
        """Rounds from the initial global parameters ``params`` until the label budget is bought or
        nothing can be allocated."""
        record = self.parts is not None
        h = History(queried=[p[pos] for p, pos in zip(self.parts, self.sites.labelled_positions())]
                    if record else [])
        if self.label_gate is not None:
            self.admit(self.sites.labelled_positions(), -1)
        bar = None
        if self.progress is not None:
            from tqdm.auto import tqdm

            first = int(self.sites.public_counts()[:, 0].sum())
            bar = tqdm(total=math.ceil((self.label_budget - first) / self.batch_size) + 1,
                       desc=self.progress, leave=False)
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny models: thread start-up costs more than it saves
        try:
            t = 0
            while True:
                t0 = time.perf_counter()
                # the last training round: the label budget is bought (it does not change in training)
                final = int(self.sites.public_counts()[:, 0].sum()) >= self.label_budget
                params = self.train(params, t, final)
                for name, b in zip(("update_bytes", "model_bytes", "cloud_bytes"), self.round_bytes):
                    getattr(h, name).append(b)
                h.accuracy.append(self.evaluate(params))
                public = self.sites.public_counts()
                bought = int(public[:, 0].sum())
                h.n_labels.append(bought)
                h.n_used.append(int(public[:, 1].sum()))
                if bought < self.label_budget:
                    counts, new = self.query(min(self.batch_size, self.label_budget - bought), t)
                    if record and new is not None:
                        h.queried.extend(p[pos] for p, pos in zip(self.parts, new))
                    self.admit(new, t)
                h.round_time_s.append(time.perf_counter() - t0)
                if bar is not None:
                    bar.update(1)
                if bought >= self.label_budget:
                    break
                if counts.sum() == 0:
                    h.stopped_early = True
                    h.log.append((t, f"round {t}: no site could propose; labelling stops at "
                                     f"{bought} labels"))
                    break
                t += 1
        finally:
            torch.set_num_threads(prev_threads)
            if bar is not None:
                bar.close()
        return h
