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

import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Sequence

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants.analysis import rdp as _rdp
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch import nn

from ppal_lab.learning.active import STRATEGIES, LearningCurve, top_k, uncertainty_scores
from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_range, check_real
from ppal_lab.privacy import (DEFAULT_ALPHAS, BudgetExceededError, PrivacyBudget, laplace_mechanism,
                      report_noisy_max)

__all__ = [
    "ACCOUNTING_ALPHAS",
    "MODELS",
    "FederatedResult",
    "Participant",
    "TrainingPlan",
    "allocate_batch",
    "fedavg",
    "federated_round",
    "make_model",
    "normalized_scores",
    "run_centralized",
    "run_federated_al",
]

#: Global model classes: one linear layer, or one hidden ReLU layer.
MODELS: tuple[str, ...] = ("logreg", "mlp")

#: RDP orders of the participants' budgets: the integer orders of
#: :data:`ppal_lab.privacy.DEFAULT_ALPHAS` (2 ... 256). Opacus 1.6 evaluates fractional orders by a
#: slowly converging series: one RDP curve on the default grid took 0.1-2 s here (noise multipliers
#: 0.3-30), on its integer orders ~10 ms. Dropping the fractional orders only loosens the bound; it
#: changed epsilon by < 2 % wherever epsilon < 25 (q = 0.5, 40 steps, delta = 1e-5).
ACCOUNTING_ALPHAS: tuple[float, ...] = tuple(a for a in DEFAULT_ALPHAS if float(a).is_integer())
_MAX_NOISE_MULTIPLIER = 1e6


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _matrix(name: str, X: Any) -> np.ndarray:
    try:
        A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(name, type(X).__name__, "a numeric 2-d array") from None
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise ParameterError(name, f"array of shape {A.shape}", "a non-empty 2-d array")
    if not np.all(np.isfinite(A)):
        raise ParameterError(name, "an array with NaN or inf", "finite values (impute first)")
    return A


def _labels(name: str, y: Any, n: int) -> np.ndarray:
    a = np.asarray(y)
    if a.shape != (n,):
        raise ParameterError(name, f"array of shape {a.shape}", f"shape ({n},)")
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ParameterError(name, f"array of dtype {a.dtype}", "integer class codes 0..C-1")
    if a.min() < 0:
        raise ParameterError(name, f"labels with minimum {a.min()}", "integer class codes 0..C-1")
    return a.astype(np.int64, copy=False)


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
# building blocks
# ----------------------------------------------------------------------------------------------
def normalized_scores(proba: np.ndarray, strategy: str) -> np.ndarray:
    r"""Uncertainty scores rescaled to :math:`[0, 1]`, so one record's score has sensitivity 1.

    ``least_confident`` is divided by its maximum :math:`1 - 1/C`, ``entropy`` by :math:`\ln C`;
    ``margin`` already lies in :math:`[0, 1]`. The result is clipped to :math:`[0, 1]` against
    rounding. The ranking is that of :func:`ppal_lab.learning.active.uncertainty_scores`.

    Parameters
    ----------
    proba : numpy.ndarray of shape (n, C)
        Class probabilities, ``C >= 2``.
    strategy : {"least_confident", "margin", "entropy"}
        Score.

    Returns
    -------
    numpy.ndarray of shape (n,)
        Scores in :math:`[0, 1]`.
    """
    s = uncertainty_scores(proba, strategy)
    C = np.shape(proba)[1]
    if strategy == "least_confident":
        s = s / (1.0 - 1.0 / C)
    elif strategy == "entropy":
        s = s / math.log(C)
    return np.clip(s, 0.0, 1.0)


def make_model(kind: str, n_features: int, n_classes: int, hidden: int = 32,
               seed: int = 0) -> nn.Module:
    """The global model: ``"logreg"`` (one linear layer) or ``"mlp"`` (one hidden ReLU layer).

    Weights use PyTorch's default initialisation drawn from ``seed`` (the global torch RNG is left
    untouched).
    """
    check_choice("kind", kind, MODELS)
    d = check_int("n_features", n_features, 1)
    C = check_int("n_classes", n_classes, 2)
    h = check_int("hidden", hidden, 1)
    seed = check_int("seed", seed, 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "logreg":
            return nn.Sequential(nn.Linear(d, C))
        return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, C))


def check_average_inputs(vectors: Sequence[Any], weights: Sequence[float]) -> np.ndarray:
    """Validate the inputs of a weighted average of flat vectors (plain or secure FedAvg): one or more
    1-d vectors of equal length, as many non-negative, finite weights, not all zero. Returns the weights
    as float64."""
    if len(vectors) == 0 or len(vectors) != len(weights):
        raise ParameterError("vectors", f"{len(vectors)} vectors for {len(weights)} weights",
                             "one or more vectors, as many as weights")
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ParameterError("weights", list(weights), "non-negative and not all zero")
    shapes = [tuple(torch.as_tensor(v).shape) for v in vectors]
    if any(len(sh) != 1 or sh != shapes[0] for sh in shapes):
        raise ParameterError("vectors", shapes, "1-d and of equal length")
    return w


def fedavg(vectors: Sequence[torch.Tensor | np.ndarray], weights: Sequence[float]) -> torch.Tensor:
    r"""Weighted average :math:`\sum_p w_p v_p / \sum_p w_p` of flat parameter vectors (FedAvg).

    Weights are normalised in float64 before the sum, so a single participant returns its vector
    unchanged (bit for bit).

    Parameters
    ----------
    vectors : sequence of 1-d tensors or arrays
        Local parameter vectors, all of the same length.
    weights : sequence of float
        Non-negative weights (labelled-set sizes), not all zero.

    Returns
    -------
    torch.Tensor
        The average, in the dtype of the first vector.
    """
    w = check_average_inputs(vectors, weights)
    V = [torch.as_tensor(v) for v in vectors]
    w = w / w.sum()
    out = torch.zeros(V[0].shape, dtype=torch.float64)
    for wp, v in zip(w, V):
        out += float(wp) * v.to(torch.float64)
    return out.to(V[0].dtype)


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


@dataclass(frozen=True)
class TrainingPlan:
    r"""How every participant trains locally in one FedAvg round.

    Attributes
    ----------
    sample_rate : float
        Poisson rate :math:`q`: each labelled record joins a local batch with this probability.
    local_steps : int
        SGD steps per round, ``ceil(local_epochs / q)`` (``local_epochs`` expected passes).
    lr : float
        Step size; the update is ``lr * (sum of per-record gradients [+ noise]) / (q N_t)``.
    max_grad_norm : float
        Per-record clipping norm :math:`C` (private mode only).
    noise_multiplier : float or None
        :math:`z = \sigma / C`; ``None`` in the non-private mode.
    """

    sample_rate: float
    local_steps: int
    lr: float
    max_grad_norm: float
    noise_multiplier: float | None

    def __post_init__(self) -> None:
        check_real("sample_rate", self.sample_rate, 0.0, 1.0, high_open=False, low_open=True)
        check_int("local_steps", self.local_steps, 1)
        check_real("lr", self.lr, 0.0, math.inf, low_open=True, high_open=True)
        check_real("max_grad_norm", self.max_grad_norm, 0.0, math.inf, low_open=True, high_open=True)
        if self.noise_multiplier is not None:
            check_real("noise_multiplier", self.noise_multiplier, 0.0, math.inf, low_open=True, high_open=True)

    @property
    def private(self) -> bool:
        """Whether local training is DP-SGD."""
        return self.noise_multiplier is not None


# ----------------------------------------------------------------------------------------------
# accounting
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _sgm_rdp_one_step(noise_multiplier: float, sample_rate: float,
                      alphas: tuple[float, ...]) -> np.ndarray:
    """RDP curve of one DP-SGD step (Opacus's analysis); read-only, shared between calls."""
    out = np.asarray(_rdp.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                                      orders=list(alphas)), dtype=float)
    out.flags.writeable = False
    return out


class _SiteBudget(PrivacyBudget):
    """:class:`~ppal_lab.privacy.PrivacyBudget` with the sampled-Gaussian RDP curve memoised.

    Every round of every site charges the same ``(z, q, steps)`` entry, whose RDP is
    ``steps * compute_rdp(q, z, 1)`` (Opacus's ``compute_rdp`` multiplies by ``steps`` the same way),
    so the value is identical to the parent's and is computed once per process instead of at every
    check and spend.
    """

    def _entry_rdp(self, z: float, q: float, steps: int) -> np.ndarray:
        return _sgm_rdp_one_step(float(z), float(q), tuple(self.alphas)) * steps


@functools.lru_cache(maxsize=256)
def _plan_noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int,
                           pure: tuple[float, ...] = ()) -> float | None:
    r"""Smallest noise multiplier (to 0.5 %) such that ``steps`` DP-SGD steps plus the planned pure
    releases ``pure`` cost at most ``epsilon`` at ``delta`` in a site budget; ``None`` if that needs
    more than :math:`10^6`.

    Bisection on the very accountant that will charge the releases (same orders, same conversion,
    same composition rule), so the plan and the ledger agree; the training steps get everything the
    query releases leave over. :func:`ppal_lab.privacy.noise_multiplier_for` answers the DP-SGD-only
    question on Opacus's default orders, whose fractional members make it ~100x slower.
    """
    probe = _SiteBudget(epsilon, delta, owner="plan", alphas=ACCOUNTING_ALPHAS)
    for e in pure:
        probe.spend_pure(e)
    # the ledger charges the steps round by round; RDP is additive, so one entry of all the steps
    # is the same number up to rounding, which the 1e-9 margin absorbs
    target = epsilon * (1.0 - 1e-9)

    def cost(z: float) -> float:
        return probe.epsilon_if("dpsgd", noise_multiplier=z, sample_rate=sample_rate, steps=steps)

    # invariant once bracketed: cost(lo) > target >= cost(hi); epsilon falls as z grows
    if cost(1.0) <= target:
        hi, lo = 1.0, 0.5
        while cost(lo) <= target:
            if lo < 1e-3:  # practically no noise is needed
                return lo
            hi, lo = lo, lo / 2.0
    else:
        lo, hi = 1.0, 2.0
        while cost(hi) > target:
            if hi >= _MAX_NOISE_MULTIPLIER:
                return None
            lo, hi = hi, hi * 2.0
    while (hi - lo) > 5e-3 * hi:
        mid = 0.5 * (lo + hi)
        if cost(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


# ----------------------------------------------------------------------------------------------
# participant
# ----------------------------------------------------------------------------------------------
def _load_vector(params: Any, vector: torch.Tensor) -> None:
    """Copy a flat vector into parameters *in place*.

    ``torch.nn.utils.vector_to_parameters`` would make the parameters views of ``vector``, so local
    training would silently write into the global model that every site starts from.
    """
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vector[offset:offset + n].view_as(p))
            offset += n


def _local_sgd(module: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
               X: torch.Tensor, y: torch.Tensor, idx: np.ndarray, plan: TrainingPlan,
               generator: torch.Generator) -> None:
    """``plan.local_steps`` SGD steps on the rows ``idx`` with Opacus's Poisson sampler.

    ``optimizer`` is a plain SGD or Opacus's DPOptimizer around one; the code path is the same.
    """
    Xl, yl = X[idx], y[idx]
    # The step divides by the public expected batch q*N_t, never by the realised batch size
    # (which would depend on the sample and break the sensitivity analysis).
    for group in optimizer.param_groups:
        group["lr"] = plan.lr / (plan.sample_rate * idx.size)
    sampler = UniformWithReplacementSampler(num_samples=idx.size, sample_rate=plan.sample_rate,
                                            generator=generator, steps=plan.local_steps)
    with warnings.catch_warnings():
        # Opacus's full backward hooks warn when the inputs do not require grad (they need not).
        warnings.filterwarnings("ignore", message="Full backward hook")
        for batch in sampler:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(module(Xl[batch]), yl[batch])
            loss.backward()
            optimizer.step()


class Participant:
    r"""One site: its pool, its oracle, its labelled set, its local trainer and its privacy budget.

    The site keeps everything it holds (features, labels, scores, item identities). What leaves it
    is exactly what its methods return: :meth:`local_update` (a DP-SGD weight vector in private
    mode) and :meth:`propose` (noisy scores of its proposals). :meth:`label` consumes the
    orchestrator's allocation locally: the oracle is the site's own inspection, i.e. the true label
    of its own item.

    Parameters
    ----------
    name : str
        Name used in the budget ledger and the run log.
    X : numpy.ndarray of shape (n, d)
        The site's pool, already scaled with the public map.
    y : numpy.ndarray of shape (n,)
        The site's hidden labels (its oracle).
    initial : numpy.ndarray of int
        Local positions labelled before the first round (drawn uniformly at random: no privacy
        cost).
    model : torch.nn.Module
        The site's own copy of the model architecture (its weights are overwritten every round).
    plan : TrainingPlan
        Local training settings.
    budget : PrivacyBudget or None
        The site's budget (unit: one of its records); ``None`` in the non-private mode.
    rng : numpy.random.Generator
        The site's randomness for selection noise, Laplace noise and random proposals.
    sampling_seed, noise_seed : int
        Seeds of the torch generators of Poisson sampling and DP-SGD noise.
    """

    def __init__(self, name: str, X: np.ndarray, y: np.ndarray, initial: np.ndarray,
                 model: nn.Module, plan: TrainingPlan, budget: PrivacyBudget | None,
                 rng: np.random.Generator, sampling_seed: int, noise_seed: int) -> None:
        if not isinstance(name, str) or not name:
            raise ParameterError("name", name, "a non-empty string")
        if not isinstance(plan, TrainingPlan):
            raise ParameterError("plan", type(plan).__name__, "a TrainingPlan")
        if plan.private != (budget is not None) or not (budget is None
                                                         or isinstance(budget, PrivacyBudget)):
            raise ParameterError("budget", budget,
                                 "a PrivacyBudget exactly when the plan is private")
        X = _matrix("X", X)
        y = _labels("y", y, X.shape[0])
        start = np.asarray(initial)
        if start.ndim != 1 or start.size == 0 or start.dtype.kind not in "iu" or start.min() < 0 \
                or start.max() >= X.shape[0] or np.unique(start).size != start.size:
            raise ParameterError("initial", initial, "a non-empty 1-d array of distinct positions "
                                 f"in [0, {X.shape[0] - 1}]")
        if not isinstance(rng, np.random.Generator):
            raise ParameterError("rng", rng, "a numpy.random.Generator")
        self.name = name
        self.plan = plan
        self.budget = budget
        self.rng = rng
        self._X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        self._y = torch.as_tensor(np.asarray(y, dtype=np.int64))
        self._y_np = np.asarray(y, dtype=np.int64)
        self.n_pool = int(self._X.shape[0])
        self._labelled = np.zeros(self.n_pool, dtype=bool)
        self.order: list[int] = []  # local positions in the order they were labelled
        self._add(start.astype(np.int64))
        self.training_stopped = False
        self.querying_stopped = False
        self.events: list[tuple[int, str]] = []  # (round, message)
        self.noisy_steps = 0  # DP-SGD steps actually taken (checked against the ledger)
        self._proposals: np.ndarray | None = None
        self._released = np.zeros(0)
        self._sampling = torch.Generator().manual_seed(int(sampling_seed))
        self._loss = nn.CrossEntropyLoss(reduction="sum")
        optimizer = torch.optim.SGD(model.parameters(), lr=plan.lr)
        if plan.private:
            # One Opacus engine, wrapped module and DP optimizer per site for the whole run (Opacus
            # has a per-instance set-up cost). make_private needs a DataLoader to build its
            # DPDataLoader; that loader is bound to the data set it saw, but the labelled set grows,
            # so batches are drawn below with the same Opacus Poisson sampler over the current set.
            init_set = torch.utils.data.TensorDataset(self._X[self.order], self._y[self.order])
            loader = torch.utils.data.DataLoader(init_set, batch_size=max(1, len(init_set)))
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")
                warnings.filterwarnings("ignore", message=".*Optimal order.*")
                self._module, self._optimizer, _ = PrivacyEngine().make_private(
                    module=model, optimizer=optimizer, data_loader=loader,
                    noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.max_grad_norm,
                    loss_reduction="sum", poisson_sampling=True,
                    noise_generator=torch.Generator().manual_seed(int(noise_seed)))
            # The engine's own hook would account at the loader's rate; this site accounts in its
            # PrivacyBudget instead, and the hook only counts the noisy steps really taken.
            self._optimizer.attach_step_hook(self._count_step)
        else:
            self._module, self._optimizer = model, optimizer

    # -- bookkeeping ---------------------------------------------------------------------------
    def _count_step(self, _optimizer: Any) -> None:
        self.noisy_steps += 1

    def _add(self, positions: np.ndarray) -> None:
        self._labelled[positions] = True
        self.order.extend(int(i) for i in positions)

    def log(self, round_index: int, message: str) -> None:
        """Record an event of this site in the run log."""
        self.events.append((round_index, f"round {round_index}: {self.name}: {message}"))

    @property
    def n_labelled(self) -> int:
        """Size of the labelled set (public: the orchestrator allocated it)."""
        return len(self.order)

    @property
    def n_unlabelled(self) -> int:
        """Number of unlabelled items (public: pool size minus labelled-set size)."""
        return self.n_pool - len(self.order)

    @property
    def labelled_positions(self) -> np.ndarray:
        """Local positions of the labelled items, in labelling order (stays local)."""
        return np.asarray(self.order, dtype=np.int64)

    @property
    def epsilon_spent(self) -> float:
        """Epsilon spent at the budget's delta (``inf`` in the non-private mode)."""
        return math.inf if self.budget is None else self.budget.epsilon_spent()

    # -- training ------------------------------------------------------------------------------
    def local_update(self, global_params: torch.Tensor, round_index: int) -> torch.Tensor | None:
        r"""Train a copy of the global model on the labelled set for ``plan.local_steps`` steps.

        Private mode charges ``spend_dpsgd(z, q, local_steps)`` *before* training; a refusal stops
        this site's training for the rest of the run (logged) and returns ``None``.

        Returns
        -------
        torch.Tensor or None
            The local parameter vector (the only thing sent to the orchestrator), or ``None``.
        """
        if self.training_stopped or self.n_labelled == 0:
            return None
        plan = self.plan
        if self.budget is not None:
            try:
                self.budget.spend_dpsgd(plan.noise_multiplier, plan.sample_rate, plan.local_steps,
                                        label=f"round {round_index}: DP-SGD")
            except BudgetExceededError as err:
                self.training_stopped = True
                self.log(round_index, f"DP-SGD release refused ({err}); sends no more updates")
                return None
        params = list(self._module.parameters())
        _load_vector(params, global_params)
        steps_before = self.noisy_steps
        _local_sgd(self._module, self._optimizer, self._loss, self._X, self._y,
                   self.labelled_positions, plan, self._sampling)
        if self.budget is not None and self.noisy_steps - steps_before != plan.local_steps:
            raise RuntimeError(f"{self.name}: {self.noisy_steps - steps_before} noisy steps taken, "
                               f"{plan.local_steps} charged")
        return torch.nn.utils.parameters_to_vector(params).detach().clone()

    # -- querying ------------------------------------------------------------------------------
    def propose(self, global_model: nn.Module, strategy: str, k: int, epsilon_select: float | None,
                epsilon_value: float | None, round_index: int) -> np.ndarray | None:
        r"""Choose up to ``k`` candidates and release their (noisy) normalised scores.

        Private mode: report-noisy-max top-``k`` with :math:`\varepsilon_{\text{sel}}` (identities
        stay here), then Laplace(:math:`1/\varepsilon_{\text{val}}`) on their scores, both charged as
        pure releases after one check that their sum fits. Non-private: exact top-``k`` and exact
        scores. ``strategy="random"`` is not handled here (it needs no release).

        Returns
        -------
        numpy.ndarray or None
            The released values in proposal order, or ``None`` if nothing was proposed.
        """
        self._proposals = None
        k = min(k, self.n_unlabelled)
        if self.querying_stopped or k == 0:
            return None
        if self.budget is not None and self.budget.would_exceed(
                "pure", epsilon=epsilon_select + epsilon_value):
            # Checking the sum is conservative: two separate pure releases compose to no more.
            self.querying_stopped = True
            self.log(round_index, "query release refused (it would exceed the budget "
                                  f"{self.budget.epsilon:g}); proposes no more items")
            return None
        cand = np.flatnonzero(~self._labelled)
        with torch.no_grad():
            proba = torch.softmax(global_model(self._X[cand]), dim=1).double().numpy()
        scores = normalized_scores(proba, strategy)
        if self.budget is None:
            pick = top_k(scores, k)
            values = scores[pick]
        else:
            # sensitivity 1/2: monotone change of one score by <= 1, see the module docstring
            pick = report_noisy_max(scores, sensitivity=0.5, epsilon=epsilon_select, rng=self.rng,
                                    k=k)
            values = np.atleast_1d(laplace_mechanism(scores[pick], sensitivity=1.0,
                                                     epsilon=epsilon_value, rng=self.rng))
            self.budget.spend_pure(epsilon_select, label=f"round {round_index}: report-noisy-max")
            self.budget.spend_pure(epsilon_value, label=f"round {round_index}: Laplace scores")
        self._proposals = cand[pick]
        self._released = np.asarray(values, dtype=np.float64)
        return self._released.copy()

    def label(self, n: int) -> np.ndarray:
        """Label the ``n`` proposals with the highest released values (local inspection).

        Returns the local positions labelled.
        """
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if self._proposals is None or n > self._proposals.size:
            raise RuntimeError(f"{self.name}: allocated {n} labels without enough proposals")
        best = np.lexsort((np.arange(self._released.size), -self._released))[:n]
        chosen = self._proposals[best]
        self._add(chosen)
        self._proposals = None
        return chosen

    def label_random(self, n: int) -> np.ndarray:
        """Label ``n`` unlabelled items drawn uniformly (data-independent: no privacy cost)."""
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        chosen = self.rng.choice(np.flatnonzero(~self._labelled), size=n, replace=False)
        self._add(chosen)
        return chosen

    def labels_of(self, positions: np.ndarray) -> np.ndarray:
        """Oracle answers for labelled local positions (for the simulation's checks only)."""
        pos = np.asarray(positions, dtype=np.int64)
        if not np.all(self._labelled[pos]):
            raise RuntimeError(f"{self.name}: asked for the label of an unlabelled item")
        return self._y_np[pos]


def federated_round(participants: Sequence[Participant], global_params: torch.Tensor,
                    round_index: int) -> tuple[torch.Tensor, list[torch.Tensor | None], np.ndarray]:
    """One FedAvg round: local updates, then their average weighted by labelled-set sizes.

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
    local = [p.local_update(global_params, round_index) for p in participants]
    weights = np.array([p.n_labelled if v is not None else 0 for p, v in zip(participants, local)],
                       dtype=np.float64)
    sent = [v for v in local if v is not None]
    if not sent:
        return global_params.clone(), local, weights
    return fedavg(sent, weights[weights > 0]), local, weights


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


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------
def _initial_split(sizes: np.ndarray, total: int) -> np.ndarray:
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


_Streams = tuple[np.random.Generator, int, list[np.random.Generator], list[tuple[int, int]]]


def _seed_streams(seed: int, n_sites: int) -> _Streams:
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


def _validate(X, y, X_test, y_test, partition, label_budget, batch_size, strategy, epsilon, delta,
              query_share, model, local_epochs, sample_rate, lr, max_grad_norm, hidden,
              initial_labels, proposals, seed, progress, scaling) -> dict:
    Xa = _matrix("X", X)
    ya = _labels("y", y, Xa.shape[0])
    Xt = _matrix("X_test", X_test)
    if Xt.shape[1] != Xa.shape[1]:
        raise ParameterError("X_test", f"array with {Xt.shape[1]} columns",
                             f"{Xa.shape[1]} columns like X")
    yt = _labels("y_test", y_test, Xt.shape[0])
    n_classes = int(max(ya.max(), yt.max())) + 1
    if n_classes < 2:
        raise ParameterError("y", "a single class", "at least two classes")
    parts = _partition(partition, Xa.shape[0])
    n_part = len(parts)
    total = int(sum(p.size for p in parts))
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
    center, scale = _scaling(scaling, Xt, Xa.shape[1])
    return dict(X=Xa, y=ya, X_test=Xt, y_test=yt, n_classes=n_classes, parts=parts,
                initial_labels=initial_labels, label_budget=label_budget, batch_size=batch_size,
                strategy=strategy, epsilon=eps, delta=delta, query_share=query_share, model=model,
                local_epochs=local_epochs, sample_rate=sample_rate, lr=lr,
                max_grad_norm=max_grad_norm, hidden=hidden, proposals=proposals, seed=seed,
                progress=progress, center=center, scale=scale)


def run_federated_al(X: Any, y: Any, X_test: Any, y_test: Any, partition: Sequence[Any],
                     label_budget: int, batch_size: int, strategy: str,
                     epsilon: float | None = None, delta: float = 1e-5, query_share: float = 0.2,
                     model: str = "logreg", local_epochs: int = 2, seed: int = 0, *,
                     sample_rate: float = 0.5, lr: float = 2.0, max_grad_norm: float = 0.1,
                     hidden: int = 32, initial_labels: int = 20, proposals: int | None = None,
                     scaling: tuple[np.ndarray, np.ndarray] | None = None,
                     progress: bool = False) -> FederatedResult:
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

    Returns
    -------
    FederatedResult
    """
    v = _validate(X, y, X_test, y_test, partition, label_budget, batch_size, strategy, epsilon,
                  delta, query_share, model, local_epochs, sample_rate, lr, max_grad_norm, hidden,
                  initial_labels, proposals, seed, progress, scaling)
    return _run(v)


def run_centralized(X: Any, y: Any, X_test: Any, y_test: Any, label_budget: int, batch_size: int,
                    strategy: str, model: str = "logreg", local_epochs: int = 2, seed: int = 0, *,
                    sample_rate: float = 0.5, lr: float = 2.0, hidden: int = 32,
                    initial_labels: int = 20, pool: Any = None,
                    scaling: tuple[np.ndarray, np.ndarray] | None = None,
                    progress: bool = False) -> FederatedResult:
    """Centralized, non-private reference: one party holds the whole pool, same model and training.

    This is the like-for-like baseline for "fraction of centralized accuracy at the same label
    budget": the same model class, the same warm-started rounds of ``ceil(local_epochs /
    sample_rate)`` Poisson-sampled SGD steps, exact top-``batch_size`` uncertainty queries over the
    pooled items, and the same seed streams as a one-participant federated run. It is written
    without participants, FedAvg or allocation, so that a non-private one-participant federated run
    equalling it (tested) checks that machinery.

    Parameters
    ----------
    pool : array_like of int, optional
        Rows of ``X`` forming the pool (default: all; pass the union of a partition to compare with a
        federated run on it). Other parameters as in :func:`run_federated_al`.

    Returns
    -------
    FederatedResult
        With one participant, ``epsilon=None`` and ``epsilon_spent = [inf]``.
    """
    n = _matrix("X", X).shape[0]
    if pool is None:
        rows = np.arange(n)
    else:
        rows = np.asarray(pool)
        if rows.ndim != 1 or rows.dtype.kind not in "iu":
            raise ParameterError("pool", f"array of dtype {rows.dtype}, shape {rows.shape}",
                                 "a 1-d integer index array")
        rows = np.sort(rows)
    v = _validate(X, y, X_test, y_test, [rows], label_budget, batch_size, strategy, None, 1e-5, 0.2,
                  model, local_epochs, sample_rate, lr, 1.0, hidden, initial_labels, None, seed,
                  progress, scaling)
    return _run_centralized(v)


def _run_centralized(v: dict) -> FederatedResult:
    """Plain pool-based AL with the federated run's model, training steps and seed streams, but no
    participants, no FedAvg and no allocation: the reference the federated machinery must reduce to
    with one site."""
    t_start = time.perf_counter()
    rows = v["parts"][0]
    strategy, b, budget_labels = v["strategy"], v["batch_size"], v["label_budget"]
    plan = TrainingPlan(v["sample_rate"], math.ceil(v["local_epochs"] / v["sample_rate"]), v["lr"],
                        v["max_grad_norm"], None)
    _, model_seed, (rng,), ((sampling_seed, _),) = _seed_streams(v["seed"], 1)
    X = torch.as_tensor(((v["X"][rows] - v["center"]) / v["scale"]).astype(np.float32))
    y = torch.as_tensor(v["y"][rows])
    Xt = torch.as_tensor(((v["X_test"] - v["center"]) / v["scale"]).astype(np.float32))
    labelled = np.zeros(rows.size, dtype=bool)
    order = [int(i) for i in rng.choice(rows.size, size=v["initial_labels"], replace=False)]
    labelled[order] = True
    n_labels, accuracy, round_time = [], [], []
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = make_model(v["model"], X.shape[1], v["n_classes"], v["hidden"], model_seed)
        optimizer = torch.optim.SGD(net.parameters(), lr=v["lr"])
        loss_fn = nn.CrossEntropyLoss(reduction="sum")
        sampling = torch.Generator().manual_seed(sampling_seed)
        bar = None
        if v["progress"]:
            from tqdm.auto import tqdm

            bar = tqdm(total=math.ceil((budget_labels - len(order)) / b) + 1,
                       desc=f"centralized AL {strategy}", leave=False)
        while True:
            t0 = time.perf_counter()
            _local_sgd(net, optimizer, loss_fn, X, y, np.asarray(order), plan, sampling)
            with torch.no_grad():
                accuracy.append(float(np.mean(net(Xt).argmax(dim=1).numpy() == v["y_test"])))
            n_labels.append(len(order))
            if len(order) < budget_labels:
                want = min(b, budget_labels - len(order))
                cand = np.flatnonzero(~labelled)
                if strategy == "random":
                    new = rng.choice(cand, size=want, replace=False)
                else:
                    with torch.no_grad():
                        proba = torch.softmax(net(X[cand]), dim=1).double().numpy()
                    new = cand[top_k(uncertainty_scores(proba, strategy), want)]
                labelled[new] = True
                order.extend(int(i) for i in new)
            round_time.append(time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
            if n_labels[-1] >= budget_labels:
                break
        if bar is not None:
            bar.close()
    finally:
        torch.set_num_threads(prev_threads)
    queried = rows[np.asarray(order)]
    return FederatedResult(
        curve=LearningCurve(np.asarray(n_labels), np.asarray(accuracy), strategy, v["seed"],
                            queried),
        epsilon_spent=np.array([math.inf]), labels_per_participant=np.array([len(order)]),
        dpsgd_steps=np.array([0]), round_time_s=round_time, epsilon=None, delta=v["delta"],
        query_share=v["query_share"], noise_multiplier=None, plan=plan, labelled=[queried],
        ledgers=[{}], log=[], stopped_early=False, wall_time_s=time.perf_counter() - t_start)


def _run(v: dict) -> FederatedResult:
    t_start = time.perf_counter()
    parts: list[np.ndarray] = v["parts"]
    n_part = len(parts)
    eps, delta, strategy = v["epsilon"], v["delta"], v["strategy"]
    b, budget_labels = v["batch_size"], v["label_budget"]
    sizes = np.array([p.size for p in parts], dtype=np.int64)
    n_query_rounds = math.ceil((budget_labels - v["initial_labels"]) / b)
    local_steps = math.ceil(v["local_epochs"] / v["sample_rate"])
    k = v["proposals"] if v["proposals"] is not None else min(b, math.ceil(2 * b / n_part))
    uses_queries = strategy != "random"

    orchestrator_rng, model_seed, site_rngs, torch_seeds = _seed_streams(v["seed"], n_part)

    log: list[tuple[int, str]] = []  # orchestrator events (round, message); -1 = before round 0
    noise_multiplier = None
    eps_select = eps_value = None
    if eps is not None:
        if uses_queries:
            eps_select = eps_value = eps * v["query_share"] / n_query_rounds / 2.0
        planned_queries = (eps_select, eps_value) * n_query_rounds if uses_queries else ()
        noise_multiplier = _plan_noise_multiplier(eps, delta, v["sample_rate"],
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
                            _MAX_NOISE_MULTIPLIER)

    Xs = ((v["X"] - v["center"]) / v["scale"]).astype(np.float32)
    Xt = torch.as_tensor(((v["X_test"] - v["center"]) / v["scale"]).astype(np.float32))
    y_test = v["y_test"]
    d, C = Xs.shape[1], v["n_classes"]
    initial = _initial_split(sizes, v["initial_labels"])

    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread start-up costs more than it saves
    try:
        global_model = make_model(v["model"], d, C, v["hidden"], model_seed)
        params = torch.nn.utils.parameters_to_vector(global_model.parameters()).detach().clone()
        sites: list[Participant] = []
        for p, rows in enumerate(parts):
            rng = site_rngs[p]
            start = rng.choice(rows.size, size=int(initial[p]), replace=False)
            budget = None if eps is None else _SiteBudget(eps, delta, owner=f"site {p}",
                                                          alphas=ACCOUNTING_ALPHAS)
            site = Participant(f"site {p}", Xs[rows], v["y"][rows], start,
                               make_model(v["model"], d, C, v["hidden"], model_seed), plan, budget,
                               rng, *torch_seeds[p])
            if eps is not None and noise_multiplier is None:
                site.training_stopped = True
            sites.append(site)

        n_labels, accuracy, round_time = [], [], []
        # simulation record of global indices in labelling order (initial sets first)
        queried = [parts[p][s.labelled_positions] for p, s in enumerate(sites)]
        stopped_early = False
        bar = None
        if v["progress"]:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_query_rounds + 1, desc=f"federated AL {strategy}", leave=False)
        t = 0
        while True:
            t0 = time.perf_counter()
            params, _, _ = federated_round(sites, params, t)
            _load_vector(global_model.parameters(), params)
            with torch.no_grad():
                pred = global_model(Xt).argmax(dim=1).numpy()
            labelled_now = int(sum(s.n_labelled for s in sites))
            n_labels.append(labelled_now)
            accuracy.append(float(np.mean(pred == y_test)))
            if labelled_now >= budget_labels:
                round_time.append(time.perf_counter() - t0)
                if bar is not None:
                    bar.update(1)
                break
            want = min(b, budget_labels - labelled_now)
            if uses_queries:
                released = [s.propose(global_model, strategy, k, eps_select, eps_value, t)
                            for s in sites]
                counts = allocate_batch(released, want)
                for p, (s, c) in enumerate(zip(sites, counts)):
                    queried.append(parts[p][s.label(int(c))])
            else:
                unl = np.array([s.n_unlabelled for s in sites])
                # uniform sampling over the union of the pools, split by the public unlabelled
                # counts: data-independent, so free
                n_draw = min(want, int(unl.sum()))
                counts = (np.array([n_draw]) if n_part == 1 else
                          orchestrator_rng.multivariate_hypergeometric(unl, n_draw))
                for p, (s, c) in enumerate(zip(sites, counts)):
                    queried.append(parts[p][s.label_random(int(c))])
            round_time.append(time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
            if counts.sum() == 0:
                stopped_early = True
                log.append((t, f"round {t}: no site could propose; labelling stops at "
                               f"{labelled_now} labels"))
                break
            t += 1
        if bar is not None:
            bar.close()
    finally:
        torch.set_num_threads(prev_threads)

    labelled_global = [parts[p][s.labelled_positions] for p, s in enumerate(sites)]
    # chronological; within a round the sites' events come before the orchestrator's conclusion
    tagged = [(r, 0, m) for s in sites for r, m in s.events] + [(r, 1, m) for r, m in log]
    events = [m for _, _, m in sorted(tagged, key=lambda e: (e[0], e[1]))]
    curve = LearningCurve(np.asarray(n_labels), np.asarray(accuracy), strategy, v["seed"],
                          np.concatenate(queried))
    return FederatedResult(
        curve=curve,
        epsilon_spent=np.array([s.epsilon_spent for s in sites]),
        labels_per_participant=np.array([s.n_labelled for s in sites], dtype=np.int64),
        dpsgd_steps=np.array([s.noisy_steps for s in sites], dtype=np.int64),
        round_time_s=round_time, epsilon=eps, delta=delta, query_share=v["query_share"],
        noise_multiplier=noise_multiplier if eps is not None else None, plan=plan,
        labelled=labelled_global,
        ledgers=[s.budget.state() if s.budget is not None else {} for s in sites],
        log=events, stopped_early=stopped_early, wall_time_s=time.perf_counter() - t_start)

