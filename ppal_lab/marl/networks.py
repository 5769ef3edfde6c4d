r"""Networks as plain tensors for MADDPG: a stack of MLPs in one flat tensor, explicit forward and
backward passes, and a hand-written Adam.

They are built only from matrix products, additions, ReLU masks and the sigmoid -- operations a
secret-sharing engine provides -- so that the secure two-party learner
(:mod:`ppal_lab.secure.secure_maddpg`) can replace each step by its counterpart on shares and hand the
revealed gradients to the *same* :class:`Adam`. The unit tests (``tests/marl/test_networks.py``) check
the passes and Adam against PyTorch autograd and ``torch.optim.Adam``.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Sequence

import torch

__all__ = ["Adam", "NetStack", "largest_preactivation", "mlp_backward", "mlp_forward"]

_largest: list | None = None


@contextlib.contextmanager
def largest_preactivation() -> Iterator[list]:
    """Within this block, :func:`mlp_forward` keeps the largest ``|z|`` of any hidden (ReLU) pre-activation
    it computes in the yielded one-element list: how far from zero the values a secure ReLU compares get
    (the secure learner reads their signs in a ring of ``2^32``). Not for timed runs."""
    global _largest
    outer, _largest = _largest, [0.0]
    try:
        yield _largest
    finally:
        _largest = outer

class NetStack:
    """``n`` MLPs of the same shape stored in one flat tensor; ``params`` are views
    ``[W1 (n, in, h), b1 (n, 1, h), W2, b2, W3 (n, h, out), b3]`` into it."""

    def __init__(self, n: int, sizes: Sequence[int], flat: torch.Tensor | None = None):
        self.n, self.sizes = n, tuple(sizes)
        self.shapes = []
        for fin, fout in zip(self.sizes[:-1], self.sizes[1:]):
            self.shapes += [(n, fin, fout), (n, 1, fout)]
        total = sum(math.prod(s) for s in self.shapes)
        self.flat = torch.zeros(total, dtype=torch.float32) if flat is None else flat
        self.params, k = [], 0
        for s in self.shapes:
            size = math.prod(s)
            self.params.append(self.flat[k:k + size].view(s))
            k += size

    def zeros_like(self) -> "NetStack":
        return NetStack(self.n, self.sizes)

    def clone(self) -> "NetStack":
        return NetStack(self.n, self.sizes, self.flat.clone())

    def select(self, k: int) -> list[torch.Tensor]:
        """The parameters of network ``k`` (copies, without the leading dimension)."""
        return [p[k].clone() for p in self.params]


def mlp_forward(params: Sequence[torch.Tensor], x: torch.Tensor, mask: torch.Tensor | None = None,
                out_act: str | None = None):
    """Forward pass of a stack of MLPs. ``x``: ``(n, batch, in)``; ``mask``: ``(n, 1, in)`` or ``None``.

    Returns ``(y, cache)``: ``y`` is ``(n, batch, out)`` (after the sigmoid when ``out_act="sigmoid"``)
    and ``cache`` holds each layer's input and the pre-activation output, for :func:`mlp_backward`.
    """
    h = x * mask if mask is not None else x
    cache = [h]
    n_layers = len(params) // 2
    for layer in range(n_layers):
        z = torch.baddbmm(params[2 * layer + 1], h, params[2 * layer])
        if layer < n_layers - 1:
            if _largest is not None:
                _largest[0] = max(_largest[0], float(z.abs().max()))
            h = torch.relu(z)
            cache.append(h)
    cache.append(z)
    y = torch.sigmoid(z) if out_act == "sigmoid" else z
    return y, cache


def mlp_backward(params: Sequence[torch.Tensor], cache: list[torch.Tensor], grad_z: torch.Tensor,
                 grads: Sequence[torch.Tensor] | None = None, need_input: bool = False):
    """Backward pass: ``grad_z`` is the loss gradient w.r.t. the last layer's pre-activation output.

    Writes parameter gradients into ``grads`` (same shapes as ``params``) when given; returns the
    gradient w.r.t. the (masked) input when ``need_input``, else ``None``.
    """
    g = grad_z
    n_layers = len(params) // 2
    for layer in reversed(range(n_layers)):
        h_in = cache[layer]
        if grads is not None:
            torch.bmm(h_in.transpose(1, 2), g, out=grads[2 * layer])
            torch.sum(g, dim=1, keepdim=True, out=grads[2 * layer + 1])
        if layer > 0 or need_input:
            g = torch.bmm(g, params[2 * layer].transpose(1, 2))
            if layer > 0:
                g = g.masked_fill_(h_in <= 0, 0.0)        # ReLU: pass the gradient where the unit was on
    return g if need_input else None


class Adam:
    """Adam on a flat parameter tensor, written out (PyTorch's formula; no weight decay, no amsgrad)."""

    def __init__(self, flat: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.flat, self.lr, self.betas, self.eps = flat, lr, betas, eps
        self.m, self.v, self.t = torch.zeros_like(flat), torch.zeros_like(flat), 0

    def step(self, grad: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self.v.sqrt() / math.sqrt(1 - b2 ** self.t)).add_(self.eps)
        self.flat.addcdiv_(self.m, denom, value=-self.lr / (1 - b1 ** self.t))
