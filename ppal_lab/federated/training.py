"""Local training of the federated protocol: the global model, the plan every site trains by, and the
Poisson-sampled SGD steps (plain or Opacus DP-SGD) one site runs in a round.

See :mod:`ppal_lab.federated.orchestrator` for the protocol and its privacy accounting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch import nn

from ppal_lab.compendium.errors import check_choice, check_int, check_real
from ppal_lab.privacy.accounting import quiet_opacus

__all__ = ["MODELS", "TrainingPlan", "make_model"]

#: Global model classes: one linear layer, or one hidden ReLU layer.
MODELS: tuple[str, ...] = ("logreg", "mlp")


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
    with quiet_opacus():
        for batch in sampler:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(module(Xl[batch]), yl[batch])
            loss.backward()
            optimizer.step()
