r"""Federated, differentially private active learning over a horizontal partition.

Several participants (sites) each hold a pool of items; an item's label costs an expert inspection
that only its owner can run. An orchestrator coordinates FedAvg training of one global model and
decides how many of each round's ``batch_size`` labels every site buys. Raw features, labels, scores
and item identities never leave a site.

Protocol (one round)
--------------------
1. *Training* — every site copies the global model, trains it on its labelled set for
   ``local_steps`` steps and sends the weights back; the orchestrator averages them weighted by the
   labelled-set sizes (FedAvg, McMahan et al. 2017, :func:`fedavg`). Private mode: each site's local
   training is DP-SGD through Opacus (per-sample clipping to ``max_grad_norm``, Gaussian noise with
   multiplier :math:`z`, Poisson sampling with rate :math:`q`).
2. *Evaluation* — the orchestrator scores the global model on its own held-out test set.
3. *Query* — every site scores its unlabelled items under the global model (uncertainty normalised to
   :math:`[0, 1]`, :func:`normalized_scores`), picks ``proposals`` candidates with report-noisy-max
   (the identities stay local) and releases only their Laplace-noised scores. The orchestrator merges
   the released values of all sites, gives the global batch to the best ones and tells each site how
   many labels ``n_p`` it may buy; the site labels its ``n_p`` best-released proposals.

Non-private mode (``epsilon=None`` or ``inf``) runs exactly the same code with the noise removed:
exact top scores, exact score values, plain SGD on the same Poisson batches with the same step size.

Unit of privacy and what each party learns
------------------------------------------
The unit of privacy is **one record (features and label) of one participant**, under *zero-out*
adjacency: a neighbouring data set replaces that record by a null record that scores 0 and
contributes a zero gradient (Kairouz et al. 2021). Pool sizes, labelled-set sizes and allocations
are public (the orchestrator decides them from DP outputs). For DP-SGD zero-out is exactly the
relation Opacus's RDP analysis of the sampled Gaussian mechanism covers (a present vs. an absent
clipped gradient). Replacing one real record by another is two zero-out steps, so by group privacy
such a change is protected at :math:`(2\varepsilon, (1 + e^{\varepsilon})\delta)`.

* The orchestrator sees: the DP-SGD weights of every site, the noisy scores of each site's proposals,
  and the numbers it computed itself (allocations, labelled-set sizes, test accuracy).
* A site sees: the global models (DP with respect to every other site's records) and its own
  allocation counts. It never sees other sites' releases.

Everything anyone sees is a post-processing of the DP releases accounted below.

Accounting (per site, in its own :class:`~ppal_lab.privacy.PrivacyBudget`)
--------------------------------------------------------------------------
The budget :math:`(\varepsilon, \delta)` is split up front (uncertainty strategies), with
:math:`s` = ``query_share``:

* *queries*: :math:`s\varepsilon / R` per query round (``R`` = number of query rounds), half to the
  selection and half to the values (both pure DP, below).
* *training*: everything the planned query releases leave of :math:`\varepsilon` under the
  accountant's composition — at least :math:`(1 - s)\varepsilon` (basic composition), usually
  more (RDP composition of many small pure releases). One noise multiplier :math:`z` is chosen up
  front for the planned ``(R + 1) * local_steps`` steps at rate :math:`q`, by bisection on the same
  accountant that charges them (the question :func:`~ppal_lab.privacy.noise_multiplier_for`
  answers, here with the query releases included and the orders :data:`ACCOUNTING_ALPHAS`); every
  round charges ``spend_dpsgd(z, q, local_steps)`` before it runs. Each record joins a local batch
  independently with probability :math:`q` (Opacus's Poisson sampler over the *current* labelled
  set), so the true sample rate is :math:`q` in every round although the labelled set grows — only
  the expected batch :math:`q N_t` grows. Updates are scaled by the public :math:`1/(q N_t)`.
* query releases in detail:

  - selection — report-noisy-max top-``k`` of the normalised scores. Given the (public) global model,
    a record's score depends on that record only, so zero-out moves one coordinate by at most
    :math:`\Delta = 1`. Because only one coordinate moves (a *monotone* change), each
    exponential-mechanism pick with weights :math:`\exp(\varepsilon_1 u_i / \Delta)` is already
    :math:`\varepsilon_1`-DP: the factor 2 of the general mechanism is not needed. We therefore call
    :func:`~ppal_lab.privacy.report_noisy_max` with ``sensitivity = 1/2`` — its Gumbel scale
    :math:`2k(\Delta/2)/\varepsilon_{\text{sel}} = k/\varepsilon_{\text{sel}}` — and the top-``k``
    (``k`` sequential picks) is :math:`\varepsilon_{\text{sel}}`-DP in total.
  - values — fresh Laplace noise of scale :math:`1/\varepsilon_{\text{val}}` on the ``k`` chosen
    scores. For fixed chosen identities zero-out changes at most one of them by at most 1, so the L1
    sensitivity is 1. The Gumbel-noised values of the selection are *not* released: the noisy
    maximum is Gumbel distributed with a location that moves by up to :math:`\Delta`, and the
    density ratio of two Gumbel laws (scale :math:`\beta`) shifted by :math:`\Delta`,
    :math:`e^{-\Delta/\beta}\exp(e^{-(x-\mu)/\beta}(e^{\Delta/\beta} - 1))`, is unbounded as
    :math:`x \to -\infty`, so they are not a pure-DP release.

  Both are charged with ``spend_pure`` after one conservative affordability check of their sum.

Composition of everything at the budget's :math:`\delta` is the
:class:`~ppal_lab.privacy.PrivacyBudget` bound (RDP, or DP-SGD RDP plus the pure epsilons,
whichever is smaller); the plan is computed with that same bound, so a site that makes every
planned release ends at (just under) :math:`\varepsilon`. The ``random`` strategy needs no query
release (uniform choice is data-independent; the orchestrator splits the batch by a hypergeometric
draw over the public unlabelled counts) and gives training the whole :math:`\varepsilon`.

Refused releases
----------------
If a release would exceed a site's budget (:class:`~ppal_lab.privacy.BudgetExceededError`, nothing is
spent), the site stops that activity for the rest of the run and the run log says so: a refused
DP-SGD round means it sends no more updates (FedAvg averages the others); a refused query means it
proposes nothing more (the batch goes to the others). If no site can propose, labelling stops and the
result is marked ``stopped_early``. The plan above fits the budget, so a normal run refuses nothing;
the policy is the safety net for runs that deviate from the plan. If ``epsilon`` is so small that
training would need a noise multiplier above :math:`10^6`, no site trains at all (logged) and the
query releases still run.

Feature scaling
---------------
Features are standardised with one public affine map, by default the mean and standard deviation of
the orchestrator's evaluation set ``X_test`` (it holds no participant record, so using it costs no
privacy), or a map the caller passes (e.g. engineering ranges). Local standardisation would give
the same raw value different inputs at different sites under non-IID partitions, so averaged
weights would mix incompatible coordinate systems; pooled statistics would need a further DP
release.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Sequence

import numpy as np
import torch

from ppal_lab.compendium.errors import (ParameterError, check_choice, check_int, check_labels, check_matrix,
                                        check_range, check_real)
import ppal_lab.federated.accounting as accounting
from ppal_lab.federated.accounting import ACCOUNTING_ALPHAS, MAX_NOISE_MULTIPLIER, _SiteBudget
from ppal_lab.federated.compression import Codec
from ppal_lab.federated.participant import Participant
from ppal_lab.federated.protocol import FederatedProtocol, History, LocalSites, initial_split, seed_streams
from ppal_lab.federated.training import MODELS, TrainingPlan, make_model
from ppal_lab.learning.active import STRATEGIES, LearningCurve

__all__ = ["FederatedResult", "build_site", "run_federated_al", "run_protocol"]


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _partition(partition: Any, n: int) -> list[np.ndarray]:
    if isinstance(partition, np.ndarray) or not isinstance(partition, Sequence) or not partition:
        raise ParameterError("partition", type(partition).__name__,
                             "a non-empty list of index arrays (one per participant)")
    parts = []
    for p, idx in enumerate(partition):
        a = np.asarray(idx)
        if a.ndim != 1 or a.size == 0 or a.dtype.kind not in "iu":
            raise ParameterError("partition", f"element {p} of dtype {a.dtype}, shape {a.shape}",
                                 "non-empty 1-d integer index arrays")
        if a.min() < 0 or a.max() >= n:
            raise ParameterError("partition", f"element {p} with indices in [{a.min()}, {a.max()}]",
                                 f"indices in [0, {n - 1}]")
        parts.append(a.astype(np.int64))
    flat = np.concatenate(parts)
    if np.unique(flat).size != flat.size:
        raise ParameterError("partition", "index arrays that overlap or repeat",
                             "disjoint index arrays (each item owned by one participant)")
    return parts


def _epsilon(epsilon: Any) -> float | None:
    """``None`` for the non-private mode, else a finite epsilon > 0."""
    if epsilon is None:
        return None
    if isinstance(epsilon, bool) or not isinstance(epsilon, Real) or math.isnan(epsilon):
        raise ParameterError("epsilon", epsilon, "None, math.inf (non-private) or a number > 0")
    if math.isinf(epsilon) and epsilon > 0:
        return None
    check_range("epsilon", float(epsilon), 0, math.inf, low_open=True, high_open=True)
    return float(epsilon)


def _scaling(scaling: Any, X_test: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    if scaling is None:
        center = X_test.mean(axis=0)
        scale = X_test.std(axis=0)
        scale[~(scale > 0)] = 1.0  # a constant column stays constant (centred at 0)
        return center, scale
    if not isinstance(scaling, tuple) or len(scaling) != 2:
        raise ParameterError("scaling", type(scaling).__name__, "None or a (center, scale) tuple")
    center = np.asarray(scaling[0], dtype=np.float64)
    scale = np.asarray(scaling[1], dtype=np.float64)
    if center.shape != (d,) or scale.shape != (d,) or not np.all(np.isfinite(center)) \
            or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ParameterError("scaling", f"arrays of shapes {center.shape}, {scale.shape}",
                             f"finite (center, scale) arrays of shape ({d},) with scale > 0")
    return center, scale


# ----------------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------------
@dataclass
class FederatedResult:
    """Outcome of one federated (or centralized) active-learning run.

    Attributes
    ----------
    curve : LearningCurve
        Test accuracy of the global model after each training round against labels used; ``queried``
        holds global pool indices in labelling order (a simulation record: no party sees it whole).
    epsilon_spent : numpy.ndarray
        Per participant, epsilon at ``delta`` from its accountant (``inf`` when non-private).
    labels_per_participant : numpy.ndarray of int
        Labelled-set size of each participant at the end.
    dpsgd_steps : numpy.ndarray of int
        Noisy DP-SGD steps each participant's optimizer actually took (0 when non-private).
    round_time_s : list of float
        Wall time of each round (training, evaluation, query, labelling).
    epsilon, delta, query_share : float or None
        The budget per participant (``None`` = non-private) and its split.
    noise_multiplier : float or None
        DP-SGD noise multiplier chosen up front (``None`` when non-private).
    plan : TrainingPlan
        Local training settings.
    labelled : list of numpy.ndarray
        Global indices labelled by each participant (simulation record).
    ledgers : list of dict
        ``PrivacyBudget.state()`` of each participant (empty dicts when non-private).
    log : list of str
        Events such as refused releases.
    stopped_early : bool
        True when labelling ended before the label budget (no site could propose).
    wall_time_s : float
        Total wall time.
    final_params : numpy.ndarray or None
        The global model's parameter vector after the last round (compare engines with it).
    """

    curve: LearningCurve
    epsilon_spent: np.ndarray
    labels_per_participant: np.ndarray
    dpsgd_steps: np.ndarray
    round_time_s: list[float]
    epsilon: float | None
    delta: float
    query_share: float
    noise_multiplier: float | None
    plan: TrainingPlan
    labelled: list[np.ndarray] = field(repr=False)
    ledgers: list[dict] = field(repr=False)
    log: list[str] = field(default_factory=list)
    stopped_early: bool = False
    wall_time_s: float = 0.0
    final_params: np.ndarray | None = field(default=None, repr=False)
    #: per training round, array bytes of the sites' updates, of the models sent to them and
    #: through the cloud (``History``'s counts)
    traffic: dict = field(default_factory=dict, repr=False)

    @property
    def final_accuracy(self) -> float:
        """Test accuracy after the last round."""
        return float(self.curve.accuracy[-1])

    def to_dict(self) -> dict:
        """JSON-ready summary (``inf`` epsilons become ``None``)."""
        eps = [None if math.isinf(e) else float(e) for e in self.epsilon_spent]
        return {"curve": self.curve.to_dict(), "epsilon": self.epsilon, "delta": self.delta,
                "query_share": self.query_share, "noise_multiplier": self.noise_multiplier,
                "epsilon_spent": eps,
                "labels_per_participant": self.labels_per_participant.tolist(),
                "dpsgd_steps": self.dpsgd_steps.tolist(),
                "round_time_s": list(self.round_time_s), "wall_time_s": self.wall_time_s,
                "stopped_early": self.stopped_early, "log": list(self.log)}


def _validate(X, y, X_test, y_test, partition, label_budget, batch_size, strategy, epsilon, delta,
              query_share, model, local_epochs, sample_rate, lr, max_grad_norm, hidden,
              initial_labels, proposals, seed, progress, scaling, **topology: Any) -> dict:
    Xa = check_matrix("X", X)
    ya = check_labels("y", y, Xa.shape[0])
    Xt = check_matrix("X_test", X_test)
    if Xt.shape[1] != Xa.shape[1]:
        raise ParameterError("X_test", f"array with {Xt.shape[1]} columns",
                             f"{Xa.shape[1]} columns like X")
    yt = check_labels("y_test", y_test, Xt.shape[0])
    n_classes = int(max(ya.max(), yt.max())) + 1
    if n_classes < 2:
        raise ParameterError("y", "a single class", "at least two classes")
    parts = _partition(partition, Xa.shape[0])
    v = _settings([p.size for p in parts], label_budget, batch_size, strategy, epsilon, delta,
                  query_share, model, local_epochs, sample_rate, lr, max_grad_norm, hidden,
                  initial_labels, proposals, seed, progress, **topology)
    center, scale = _scaling(scaling, Xt, Xa.shape[1])
    return dict(v, X=Xa, y=ya, X_test=Xt, y_test=yt, n_classes=n_classes, parts=parts, center=center,
                scale=scale)


def _settings(pool_sizes, label_budget, batch_size, strategy, epsilon, delta, query_share, model,
              local_epochs, sample_rate, lr, max_grad_norm, hidden, initial_labels, proposals, seed,
              progress, compression="none", quant_bits=8, topk_fraction=0.1, edges=None, kappa=1) -> dict:
    """The checks of every setting that is not data (shared with the Flower orchestrator, which knows
    only the sites' pool sizes)."""
    n_part, total = len(pool_sizes), int(sum(pool_sizes))
    initial_labels = check_int("initial_labels", initial_labels, n_part, total - 1)
    label_budget = check_int("label_budget", label_budget, initial_labels + 1, total)
    batch_size = check_int("batch_size", batch_size, 1)
    check_choice("strategy", strategy, STRATEGIES)
    eps = _epsilon(epsilon)
    delta = check_real("delta", delta, 0.0, 1.0, low_open=True, high_open=True)
    query_share = check_real("query_share", query_share, 0.0, 1.0, low_open=True, high_open=True)
    check_choice("model", model, MODELS)
    local_epochs = check_int("local_epochs", local_epochs, 1)
    sample_rate = check_real("sample_rate", sample_rate, 0.0, 1.0, high_open=False, low_open=True)
    lr = check_real("lr", lr, 0.0, math.inf, low_open=True, high_open=True)
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, 0.0, math.inf, low_open=True, high_open=True)
    hidden = check_int("hidden", hidden, 1)
    if proposals is not None:
        proposals = check_int("proposals", proposals, 1)
    seed = check_int("seed", seed, 0)
    if not isinstance(progress, bool):
        raise ParameterError("progress", progress, "True or False")
    codec = Codec(compression, quant_bits, topk_fraction)  # checks all three
    if edges is not None:
        edges = check_int("edges", edges, 1, n_part)
    kappa = check_int("kappa", kappa, 1)
    return dict(compression=codec.method, quant_bits=codec.bits, topk_fraction=codec.fraction,
                edges=edges, kappa=kappa, initial_labels=initial_labels, label_budget=label_budget, batch_size=batch_size,
                strategy=strategy, epsilon=eps, delta=delta, query_share=query_share, model=model,
                local_epochs=local_epochs, sample_rate=sample_rate, lr=lr,
                max_grad_norm=max_grad_norm, hidden=hidden, proposals=proposals, seed=seed,
                progress=progress)


def run_federated_al(X: Any, y: Any, X_test: Any, y_test: Any, partition: Sequence[Any],
                     label_budget: int, batch_size: int, strategy: str,
                     epsilon: float | None = None, delta: float = 1e-5, query_share: float = 0.2,
                     model: str = "logreg", local_epochs: int = 2, seed: int = 0, *,
                     sample_rate: float = 0.5, lr: float = 2.0, max_grad_norm: float = 0.1,
                     hidden: int = 32, initial_labels: int = 20, proposals: int | None = None,
                     scaling: tuple[np.ndarray, np.ndarray] | None = None,
                     progress: bool = False, compression: str = "none", quant_bits: int = 8,
                     topk_fraction: float = 0.1, edges: int | None = None,
                     kappa: int = 1) -> FederatedResult:
    r"""Federated active learning with DP training and DP query selection (module docstring).

    The run starts from ``initial_labels`` random labels split across sites in proportion to pool
    size, then alternates FedAvg rounds and query rounds; ``R = ceil((label_budget - initial_labels)
    / batch_size)`` query rounds (the last batch trimmed) and ``R + 1`` training rounds, the model
    warm-started from round to round. The learning curve has one point per training round.

    Parameters
    ----------
    X, y : array_like
        All pools stacked (rows indexed by ``partition``) and their hidden labels (codes 0..C-1).
        Features must be numeric and finite (encode and impute first).
    X_test, y_test : array_like
        The orchestrator's evaluation set (also the default source of the public feature scaling).
    partition : list of array_like of int
        Row indices of ``X`` owned by each participant (disjoint, non-empty); ``len(partition)``
        participants, >= 1.
    label_budget : int
        Total labels including the initial ones, ``initial_labels < label_budget <= pool size``.
    batch_size : int
        Labels bought per query round across all sites, >= 1.
    strategy : {"random", "least_confident", "margin", "entropy"}
        Acquisition rule.
    epsilon : float or None
        Per-participant budget (unit: one of its records); ``None`` or ``inf`` = non-private.
    delta : float
        :math:`\delta \in (0, 1)` of every participant's budget.
    query_share : float
        Fraction of epsilon for query releases, in (0, 1) (not spent by ``"random"``).
    model : {"logreg", "mlp"}
        Global model class.
    local_epochs : int
        Expected passes over the labelled set per round, >= 1 (``ceil(local_epochs / sample_rate)``
        local steps).
    seed : int
        Seed of every random draw (>= 0).
    sample_rate : float
        Poisson rate :math:`q \in (0, 1]` of local batches.
    lr : float
        SGD step size, > 0.
    max_grad_norm : float
        Per-record clipping norm (private mode), > 0. A small norm trades a little bias at large
        epsilon for much less relative noise at small epsilon (measured on the remanufacturing data).
    hidden : int
        Hidden units of ``"mlp"``, >= 1.
    initial_labels : int
        Random labels before the first round, ``n_participants <= initial_labels < label_budget``.
    proposals : int or None
        Candidates each site proposes per round, >= 1; default ``min(batch_size,
        ceil(2 batch_size / n_participants))`` — enough for a site to take twice its fair share,
        few enough to keep report-noisy-max's noise (scale ``proposals / epsilon_select``) small.
    scaling : (numpy.ndarray, numpy.ndarray) or None
        Public ``(center, scale)`` of the features; default: mean and std of ``X_test``.
    progress : bool
        Show a tqdm progress bar.
    compression, quant_bits, topk_fraction : str, int, float
        How sites encode their updates: ``"none"`` (float32 models), ``"int8"`` (stochastic rounding
        to ``quant_bits``) or ``"topk"`` (``topk_fraction`` of the coordinates, error feedback);
        :mod:`ppal_lab.federated.compression`.
    edges, kappa : int or None, int
        Hierarchical aggregation over ``edges`` logical edge tiers, the cloud averaging them every
        ``kappa`` rounds (:class:`~ppal_lab.federated.protocol.FederatedProtocol`); ``None``: flat.

    Returns
    -------
    FederatedResult
    """
    v = _validate(X, y, X_test, y_test, partition, label_budget, batch_size, strategy, epsilon,
                  delta, query_share, model, local_epochs, sample_rate, lr, max_grad_norm, hidden,
                  initial_labels, proposals, seed, progress, scaling, compression=compression,
                  quant_bits=quant_bits, topk_fraction=topk_fraction, edges=edges, kappa=kappa)
    return _run(v)


def _privacy_plan(v: dict, n_query_rounds: int, local_steps: int, uses_queries: bool
                  ) -> tuple[TrainingPlan, float | None, float | None, float | None, list[tuple[int, str]]]:
    """The split of every site's budget (module docstring): ``(plan, noise multiplier, epsilon per
    selection, epsilon per value release, log)``. With no feasible DP-SGD plan the plan is private
    with the largest noise multiplier and the log says that no site trains."""
    eps, log = v["epsilon"], []
    noise_multiplier = eps_select = eps_value = None
    if eps is not None:
        if uses_queries:
            eps_select = eps_value = eps * v["query_share"] / n_query_rounds / 2.0
        planned_queries = (eps_select, eps_value) * n_query_rounds if uses_queries else ()
        noise_multiplier = accounting.plan_noise_multiplier(eps, v["delta"], v["sample_rate"],
                                                             (n_query_rounds + 1) * local_steps,
                                                             planned_queries)
        if noise_multiplier is None:
            log.append((-1, f"plan: epsilon={eps:g} leaves too little for training (noise "
                            "multiplier > 1e6): no site trains"))
    plan = TrainingPlan(v["sample_rate"], local_steps, v["lr"], v["max_grad_norm"],
                        noise_multiplier if eps is not None else None)
    if eps is not None and noise_multiplier is None:
        # no feasible DP-SGD plan: build private sites whose training is switched off from the start
        plan = TrainingPlan(v["sample_rate"], local_steps, v["lr"], v["max_grad_norm"],
                            MAX_NOISE_MULTIPLIER)
    return plan, noise_multiplier, eps_select, eps_value, log


def _codec(v: dict) -> Codec:
    """The run's update codec from its settings (none when they predate compression)."""
    return Codec(v.get("compression", "none"), v.get("quant_bits", 8), v.get("topk_fraction", 0.1))


def build_site(v: dict, p: int, X_scaled: np.ndarray, y: np.ndarray, n_initial: int, plan: TrainingPlan,
               model_seed: int, rng: np.random.Generator, torch_seeds: tuple[int, int],
               training_off: bool) -> Participant:
    """Site ``p`` from its own (publicly scaled) pool and its own seed stream: its initial labels drawn
    uniformly, its budget, its model copy. The in-process engine and Flower's ClientApp both call it."""
    start = rng.choice(len(y), size=int(n_initial), replace=False)
    budget = None if v["epsilon"] is None else _SiteBudget(v["epsilon"], v["delta"], owner=f"site {p}",
                                                          alphas=ACCOUNTING_ALPHAS)
    site = Participant(f"site {p}", X_scaled, y, start,
                       make_model(v["model"], X_scaled.shape[1], v["n_classes"], v["hidden"], model_seed),
                       plan, budget, rng, *torch_seeds)
    site.training_stopped = training_off
    return site


def _result(v: dict, reports: list[dict], history: History, plan: TrainingPlan,
            noise_multiplier: float | None, log: list[tuple[int, str]], t_start: float) -> FederatedResult:
    """Collect what the run produced (the sites' end-of-run reports, :meth:`Participant.report`, and
    the orchestrator's history) into a :class:`FederatedResult`. Item identities (``labelled``, the
    curve's ``queried``) are known only to the in-process engine's simulation record."""
    eps = v["epsilon"]
    # chronological; within a round the sites' events come before the orchestrator's conclusion
    tagged = ([(r, 0, m) for rep in reports for r, m in rep["events"]]
              + [(r, 1, m) for r, m in log + history.log])
    events = [m for _, _, m in sorted(tagged, key=lambda e: (e[0], e[1]))]
    queried = np.concatenate(history.queried) if history.queried else np.zeros(0, dtype=np.int64)
    curve = LearningCurve(np.asarray(history.n_labels), np.asarray(history.accuracy), v["strategy"],
                          v["seed"], queried)
    labelled = ([v["parts"][p][rep["positions"]] for p, rep in enumerate(reports)]
                if all("positions" in rep for rep in reports) and "parts" in v else [])
    return FederatedResult(
        curve=curve,
        epsilon_spent=np.array([rep["epsilon_spent"] for rep in reports], dtype=np.float64),
        labels_per_participant=np.array([rep["n_labelled"] for rep in reports], dtype=np.int64),
        dpsgd_steps=np.array([rep["noisy_steps"] for rep in reports], dtype=np.int64),
        round_time_s=history.round_time_s, epsilon=eps, delta=v["delta"], query_share=v["query_share"],
        noise_multiplier=noise_multiplier if eps is not None else None, plan=plan,
        labelled=labelled, ledgers=[rep["ledger"] for rep in reports],
        log=events, stopped_early=history.stopped_early, wall_time_s=time.perf_counter() - t_start)


def _plan(v: dict, n_part: int) -> dict:
    """Everything the orchestrator decides before the first round from public settings: rounds,
    local steps, proposals per site, the split of every budget and the seed streams."""
    n_query_rounds = math.ceil((v["label_budget"] - v["initial_labels"]) / v["batch_size"])
    local_steps = math.ceil(v["local_epochs"] / v["sample_rate"])
    b = v["batch_size"]
    k = v["proposals"] if v["proposals"] is not None else min(b, math.ceil(2 * b / n_part))
    plan, noise_multiplier, eps_select, eps_value, log = _privacy_plan(
        v, n_query_rounds, local_steps, v["strategy"] != "random")
    return dict(plan=plan, noise_multiplier=noise_multiplier, eps_select=eps_select, eps_value=eps_value,
                log=log, proposals=k,
                training_off=v["epsilon"] is not None and noise_multiplier is None)


def run_protocol(v: dict, pool_sizes: Sequence[int], make_sites: Any, parts: Sequence[np.ndarray] | None
                 ) -> tuple[FederatedResult, torch.Tensor]:
    """Plan, build the sites, run :class:`FederatedProtocol`, collect the result and the final global
    parameters: the orchestrator of both engines.

    ``make_sites(plan_dict, model_seed, n_initial)`` returns the site group: :class:`LocalSites` of
    :func:`build_site` participants in process, or Flower's ``FlowerSites`` after its set-up message
    (whose handler calls :func:`build_site`). ``v`` holds the settings (:func:`_settings`), ``n_classes``,
    ``X_test``/``y_test`` and the public ``center``/``scale``.
    """
    t_start = time.perf_counter()
    n_part = len(pool_sizes)
    pl = _plan(v, n_part)
    orchestrator_rng, model_seed, _, _ = seed_streams(v["seed"], n_part)
    initial = initial_split(np.asarray(pool_sizes, dtype=np.int64), v["initial_labels"])
    Xt = torch.as_tensor(((v["X_test"] - v["center"]) / v["scale"]).astype(np.float32))
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread start-up costs more than it saves
    try:
        global_model = make_model(v["model"], Xt.shape[1], v["n_classes"], v["hidden"], model_seed)
        params = torch.nn.utils.parameters_to_vector(global_model.parameters()).detach().clone()
        sites = make_sites(pl, model_seed, initial)
        protocol = FederatedProtocol(
            sites, parts, global_model, Xt, v["y_test"], v["label_budget"], v["batch_size"],
            v["strategy"], orchestrator_rng, proposals=pl["proposals"], epsilon_select=pl["eps_select"],
            epsilon_value=pl["eps_value"], edges=v.get("edges"), kappa=v.get("kappa", 1),
            progress=f"federated AL {v['strategy']}" if v["progress"] else None)
        history = protocol.run(params)
        final = torch.nn.utils.parameters_to_vector(global_model.parameters()).detach().clone()
    finally:
        torch.set_num_threads(prev_threads)
    result = _result(v, sites.report(), history, pl["plan"], pl["noise_multiplier"], pl["log"], t_start)
    result.final_params = final.numpy()
    result.traffic = {"update_bytes": history.update_bytes, "model_bytes": history.model_bytes,
                      "cloud_bytes": history.cloud_bytes}
    return result, final


def _run(v: dict) -> FederatedResult:
    """The in-process engine: every site a :class:`Participant` built from its seed stream."""
    n_part = len(v["parts"])
    _, _, site_rngs, torch_seeds = seed_streams(v["seed"], n_part)
    Xs = ((v["X"] - v["center"]) / v["scale"]).astype(np.float32)

    def make_sites(pl: dict, model_seed: int, initial: np.ndarray) -> LocalSites:
        return LocalSites([build_site(v, p, Xs[rows], v["y"][rows], initial[p], pl["plan"], model_seed,
                                      site_rngs[p], torch_seeds[p], pl["training_off"])
                           for p, rows in enumerate(v["parts"])], _codec(v), v["seed"])

    return run_protocol(v, [p.size for p in v["parts"]], make_sites, v["parts"])[0]
