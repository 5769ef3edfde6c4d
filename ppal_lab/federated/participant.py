"""One site of the federated protocol: its pool, its oracle (its own inspections), its labelled set, its
local trainer and its privacy budget, and the normalised uncertainty score it releases (noisily) when it
proposes items.

What leaves a site is exactly what :class:`Participant`'s methods return; the privacy analysis of the
releases is in :mod:`ppal_lab.federated.orchestrator`.
"""
from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import torch
from opacus import PrivacyEngine
from torch import nn

from ppal_lab.compendium.errors import ParameterError, check_labels, check_matrix
from ppal_lab.federated.training import TrainingPlan, _load_vector, _local_sgd
from ppal_lab.learning.active import top_k, uncertainty_scores
from ppal_lab.privacy import BudgetExceededError, PrivacyBudget, laplace_mechanism, report_noisy_max

__all__ = ["Participant", "normalized_scores"]


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
        X = check_matrix("X", X)
        y = check_labels("y", y, X.shape[0])
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
        self._labelled = np.zeros(self.n_pool, dtype=bool)  # inspected (labels bought)
        self._n_inspected = 0
        self.order: list[int] = []  # training set: local positions in the order they were labelled
        self._add(start.astype(np.int64))
        self.training_stopped = False
        self.querying_stopped = False
        self.events: list[tuple[int, str]] = []  # (round, message)
        self.noisy_steps = 0  # DP-SGD steps actually taken (checked against the ledger)
        self._proposals: np.ndarray | None = None
        self._released = np.zeros(0)
        self._sampling = torch.Generator().manual_seed(int(sampling_seed))
        self._noise = torch.Generator().manual_seed(int(noise_seed))
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
                    noise_generator=self._noise)
            # The engine's own hook would account at the loader's rate; this site accounts in its
            # PrivacyBudget instead, and the hook only counts the noisy steps really taken.
            self._optimizer.attach_step_hook(self._count_step)
        else:
            self._module, self._optimizer = model, optimizer

    # -- state between messages ----------------------------------------------------------------
    #: what changes during a run; an engine that rebuilds the site for every message (Flower's
    #: ClientApp) saves it after a step and restores it before the next, so the site continues exactly
    _STATE = ("_labelled", "_n_inspected", "order", "training_stopped", "querying_stopped", "events",
              "noisy_steps", "_proposals", "_released", "budget")

    def get_state(self) -> dict:
        """Everything that changes during a run: labels, flags, log, ledger and every random state."""
        state = {k: copy.deepcopy(getattr(self, k)) for k in self._STATE}
        state.update(rng=copy.deepcopy(self.rng.bit_generator.state),
                     sampling=self._sampling.get_state(), noise=self._noise.get_state())
        return state

    def set_state(self, state: dict) -> None:
        """Continue from :meth:`get_state` of a site built with the same data, plan and model."""
        for k in self._STATE:
            setattr(self, k, copy.deepcopy(state[k]))
        self.rng.bit_generator.state = state["rng"]
        self._sampling.set_state(state["sampling"])
        self._noise.set_state(state["noise"])

    def report(self) -> dict:
        """What the site reports at the end of a run: epsilon spent, its ledger, labelled-set size,
        DP-SGD steps taken and its event log (no item identities)."""
        return {"epsilon_spent": self.epsilon_spent, "n_labelled": self.n_labelled,
                "noisy_steps": self.noisy_steps, "events": [list(e) for e in self.events],
                "ledger": self.budget.state() if self.budget is not None else {}}

    # -- bookkeeping ---------------------------------------------------------------------------
    def _count_step(self, _optimizer: Any) -> None:
        self.noisy_steps += 1

    def _add(self, positions: np.ndarray) -> None:
        self._labelled[positions] = True
        self._n_inspected += len(positions)
        self.order.extend(int(i) for i in positions)

    def reject(self, positions: np.ndarray) -> None:
        """Take labelled items out of the training set (e.g. labels that failed verification).

        The items stay inspected: they are not proposed again and their labels count as bought.
        The training set keeps its labelling order.
        """
        drop = set(int(i) for i in np.asarray(positions).ravel())
        if not drop:
            return
        if not all(0 <= i < self.n_pool and self._labelled[i] for i in drop):
            raise RuntimeError(f"{self.name}: rejected an item that was never labelled")
        self.order[:] = [i for i in self.order if i not in drop]

    def log(self, round_index: int, message: str) -> None:
        """Record an event of this site in the run log."""
        self.events.append((round_index, f"round {round_index}: {self.name}: {message}"))

    @property
    def n_labelled(self) -> int:
        """Size of the labelled training set (public: the orchestrator allocated it)."""
        return len(self.order)

    @property
    def n_inspected(self) -> int:
        """Labels bought so far, rejected ones included (public); equals :attr:`n_labelled` unless
        :meth:`reject` was called."""
        return self._n_inspected

    @property
    def n_unlabelled(self) -> int:
        """Number of items never inspected (public: pool size minus labels bought)."""
        return self.n_pool - self._n_inspected

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
            # sensitivity 1/2: monotone change of one score by <= 1, see ppal_lab.federated.orchestrator
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
