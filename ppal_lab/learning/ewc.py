r"""Elastic weight consolidation (EWC; Kirkpatrick et al. 2017) for a small multilayer perceptron (MLP):
the network, its diagonal Fisher information, the penalty, and training one quarter with it.

**EWC.** After training on quarter :math:`t` we store the weights :math:`\theta^*_t` and the
diagonal Fisher information on that quarter's labelled drives, and while training on any later quarter
we minimise

.. math:: L(\theta) = \frac{1}{|B|}\sum_{(x, y)\in B} -\log p_\theta(y\mid x)
          + \frac{\lambda}{2} \sum_{t' < t} \sum_i F_{t',i}\,(\theta_i - \theta^*_{t',i})^2 .

* ``fisher="true"`` (default): :math:`F_i = \frac1N\sum_n \sum_c p_\theta(c\mid x_n)
  \big(\partial_{\theta_i} \log p_\theta(c\mid x_n)\big)^2`, the Fisher information of the model's own
  predictive distribution, with the expectation over :math:`c` computed exactly (two classes), as in
  Kirkpatrick et al. (2017); ``fisher="empirical"`` uses the observed label :math:`y_n` instead of the
  expectation (the "empirical Fisher", a different and often worse curvature proxy).
* ``consolidation="per_task"`` (default): one penalty per past quarter, each with its own anchor and
  Fisher, as in the original paper; ``"online"`` keeps a single penalty with anchor
  :math:`\theta^*_{t}` and running Fisher :math:`F \leftarrow \gamma F + F_t` ("online EWC",
  Schwarz et al. 2018).
* Both the loss and the Fisher are *means* over drives, so :math:`\lambda = 1` is the value at which
  each past quarter's quadratic approximation weighs as much as a quarter of fresh data with the same
  number of labels (the Laplace approximation of joint training). Larger values are common in practice.
"""
from __future__ import annotations

from numbers import Integral
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_labels, check_matrix, check_real

__all__ = ["CONSOLIDATIONS", "EWC", "FISHER_KINDS", "TorchClassifier", "check_hidden", "ewc_penalty",
           "fisher_diagonal", "make_mlp", "train_quarter"]

FISHER_KINDS = ("true", "empirical")
CONSOLIDATIONS = ("per_task", "online")


def check_hidden(value: Any) -> tuple[int, ...]:
    """Layer widths of the MLP: an int or a non-empty tuple of widths in [1, 4096]."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise ParameterError("hidden", value, "a non-empty tuple of layer widths >= 1")
    return tuple(check_int("hidden", v, 1, 4096) for v in value)


def _module(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ParameterError("model", type(model).__name__, "a torch.nn.Module")
    return model


# --------------------------------------------------------------------------------------------------
# Model, Fisher information, EWC penalty, training
# --------------------------------------------------------------------------------------------------
def make_mlp(n_inputs: int, hidden: Sequence[int] | int = (32, 32), n_classes: int = 2,
             seed: int = 0) -> nn.Sequential:
    """A ReLU MLP ``n_inputs -> hidden... -> n_classes`` (logits), initialised from ``seed`` only
    (torch's global random state is left untouched)."""
    n_inputs = check_int("n_inputs", n_inputs, 1)
    hidden = check_hidden(hidden)
    n_classes = check_int("n_classes", n_classes, 2)
    seed = check_int("seed", seed, 0)
    widths = (n_inputs, *hidden)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_classes))
        return nn.Sequential(*layers)


def fisher_diagonal(model: nn.Module, X: Any, y: Any = None, kind: str = "true",
                    batch_size: int = 512) -> dict[str, torch.Tensor]:
    r"""Diagonal Fisher information of a classifier's log-likelihood, averaged over the rows of ``X``.

    ``kind="true"``: :math:`F_i = \frac1N\sum_n\sum_c p(c\mid x_n)\,(\partial_i\log p(c\mid x_n))^2`
    (expectation over the model's own predictions, computed exactly over the classes; ``y`` unused).
    ``kind="empirical"``: :math:`F_i = \frac1N\sum_n(\partial_i\log p(y_n\mid x_n))^2`.
    Per-drive gradients come from ``torch.func`` (``vmap`` of ``jacrev``), not a Python loop.

    Returns
    -------
    dict
        Parameter name -> tensor of its shape (detached, non-negative).
    """
    model = _module(model)
    check_choice("kind", kind, FISHER_KINDS)
    Xa = check_matrix("X", X, dtype=np.float32)
    batch_size = check_int("batch_size", batch_size, 1)
    if kind == "empirical":
        if y is None:
            raise ParameterError("y", None, "labels of X (needed by the empirical Fisher)")
        ya = check_labels("y", y, Xa.shape[0])
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def log_probs(p, x):
        return torch.log_softmax(functional_call(model, p, (x.unsqueeze(0),)), dim=-1).squeeze(0)

    per_sample = vmap(jacrev(log_probs), in_dims=(None, 0))
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    with torch.no_grad():
        for start in range(0, Xa.shape[0], batch_size):
            xb = torch.from_numpy(Xa[start:start + batch_size])
            jac = per_sample(params, xb)                                  # name -> (B, C, *shape)
            if kind == "true":
                w = torch.softmax(functional_call(model, params, (xb,)), dim=-1)   # (B, C)
            else:
                w = F.one_hot(torch.from_numpy(ya[start:start + batch_size]),
                              num_classes=next(iter(jac.values())).shape[1]).to(xb.dtype)
            for k, g in jac.items():
                wk = w.reshape(w.shape + (1,) * (g.dim() - 2))
                total[k] += (wk * g.pow(2)).sum(dim=(0, 1))
    return {k: v / Xa.shape[0] for k, v in total.items()}


def ewc_penalty(model: nn.Module, fishers: Sequence[dict[str, torch.Tensor]],
                anchors: Sequence[dict[str, torch.Tensor]], ewc_lambda: float) -> torch.Tensor:
    r""":math:`\frac{\lambda}{2}\sum_t\sum_i F_{t,i}(\theta_i-\theta^*_{t,i})^2` over the model's
    named parameters (a differentiable scalar; 0 without past tasks)."""
    model = _module(model)
    ewc_lambda = check_real("ewc_lambda", ewc_lambda, 0.0)
    if len(fishers) != len(anchors):
        raise ParameterError("anchors", f"{len(anchors)} anchors", f"one per Fisher ({len(fishers)})")
    params = dict(model.named_parameters())
    total = torch.zeros(())
    for fisher, anchor in zip(fishers, anchors):
        if set(fisher) != set(params) or set(anchor) != set(params):
            raise ParameterError("fishers", sorted(fisher), "one tensor per model parameter")
        for name, p in params.items():
            total = total + (fisher[name] * (p - anchor[name]).pow(2)).sum()
    return 0.5 * ewc_lambda * total


class EWC:
    """Elastic weight consolidation state: the anchors and Fisher diagonals of past quarters.

    Call :meth:`consolidate` after training on a quarter, and add :meth:`penalty` to the loss while
    training on the next ones (see the module docstring for the formula and the choices).

    Parameters
    ----------
    ewc_lambda : float
        Penalty strength :math:`\\lambda \\ge 0` (0 = plain fine-tuning).
    fisher : {"true", "empirical"}
        Which Fisher diagonal (see :func:`fisher_diagonal`).
    consolidation : {"per_task", "online"}
        One penalty per past quarter (Kirkpatrick et al. 2017), or one running penalty (online EWC).
    gamma : float
        Decay of the running Fisher in online mode, in [0, 1].
    """

    def __init__(self, ewc_lambda: float, fisher: str = "true", consolidation: str = "per_task",
                 gamma: float = 1.0):
        self.ewc_lambda = check_real("ewc_lambda", ewc_lambda, 0.0)
        self.fisher = check_choice("fisher", fisher, FISHER_KINDS)
        self.consolidation = check_choice("consolidation", consolidation, CONSOLIDATIONS)
        self.gamma = check_real("gamma", gamma, 0.0, 1.0)
        self.fishers: list[dict[str, torch.Tensor]] = []
        self.anchors: list[dict[str, torch.Tensor]] = []

    def consolidate(self, model: nn.Module, X: Any, y: Any = None) -> None:
        """Store the current weights and their Fisher diagonal on ``(X, y)``."""
        fisher = fisher_diagonal(model, X, y, kind=self.fisher)
        anchor = {k: v.detach().clone() for k, v in _module(model).named_parameters()}
        if self.consolidation == "online" and self.fishers:
            fisher = {k: self.gamma * self.fishers[0][k] + v for k, v in fisher.items()}
            self.fishers, self.anchors = [fisher], [anchor]
        else:
            self.fishers.append(fisher)
            self.anchors.append(anchor)
        # flat copies in parameter order: the penalty is evaluated at every training step
        self._flat = [(torch.cat([f[k].reshape(-1) for k in anchor]),
                       torch.cat([a[k].reshape(-1) for k in anchor]))
                      for f, a in zip(self.fishers, self.anchors)]

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """The EWC penalty at the model's current weights (equal to :func:`ewc_penalty`)."""
        flat = getattr(self, "_flat", [])
        if not flat:
            return torch.zeros(())
        theta = torch.cat([p.reshape(-1) for p in model.parameters()])
        total = sum((f * (theta - a).pow(2)).sum() for f, a in flat)
        return 0.5 * self.ewc_lambda * total


def train_quarter(model: nn.Module, X: Any, y: Any, *, epochs: int = 30, batch_size: int = 32,
                  lr: float = 1e-3, seed: int = 0,
                  penalty: Callable[[nn.Module], torch.Tensor] | None = None,
                  val: tuple[Any, Any] | None = None, patience: int = 3) -> list[float]:
    """Train ``model`` in place with Adam (fresh optimiser state) on mean cross-entropy, plus
    ``penalty(model)`` when given. Minibatch order comes from ``seed`` only. Returns the mean
    training loss of each epoch run.

    With ``val=(X_val, y_val)`` training runs to convergence of the held-out fit: it stops once the
    validation cross-entropy has not improved for ``patience`` epochs (or after ``epochs``) and
    restores the weights of the best epoch; ``model.best_epoch_`` is that epoch (1-based)."""
    model = _module(model)
    Xa = check_matrix("X", X, dtype=np.float32)
    ya = check_labels("y", y, Xa.shape[0])
    epochs = check_int("epochs", epochs, 1, 100_000)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_real("lr", lr, 0.0, 10.0, low_open=True)
    seed = check_int("seed", seed, 0)
    if penalty is not None and not callable(penalty):
        raise ParameterError("penalty", penalty, "None or a callable model -> scalar tensor")
    patience = check_int("patience", patience, 1)
    if val is not None:
        Xv = torch.from_numpy(check_matrix("val", val[0], dtype=np.float32))
        yv = torch.from_numpy(check_labels("val", val[1], Xv.shape[0]))
        best, best_state, wait = float("inf"), None, 0
    Xt, yt = torch.from_numpy(Xa), torch.from_numpy(ya)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    model.train()
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(Xt.shape[0], generator=gen)
        total = 0.0
        for start in range(0, Xt.shape[0], batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            if penalty is not None:
                loss = loss + penalty(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / Xt.shape[0])
        if val is not None:
            with torch.no_grad():
                v = float(F.cross_entropy(model(Xv), yv))
            if v < best:
                best, wait, model.best_epoch_ = v, 0, len(losses)
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            else:
                wait += 1
                if wait >= patience:
                    break
    if val is not None:
        model.load_state_dict(best_state)
    return losses


class TorchClassifier:
    """A scikit-learn-like view of a torch classifier (``predict_proba`` / ``predict``), so that
    :func:`ppal_lab.learning.active.query` can pick drives with it."""

    def __init__(self, model: nn.Module):
        self.model = _module(model)

    def predict_proba(self, X: Any) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            return torch.softmax(self.model(torch.from_numpy(check_matrix("X", X, dtype=np.float32))), dim=-1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)
