"""A perceptron's forward and backward passes on secret shares, with one secure comparison per hidden layer.

The one implementation behind both secure trainers: :mod:`ppal_lab.secure.secure_mlp` (one network, 2-D
inputs ``(batch, in)``) and the secure MADDPG (:mod:`ppal_lab.secure.maddpg_party`, stacks of networks,
3-D inputs ``(networks, batch, in)``, one call per layer for several networks). ``params`` is the list
``[W1, b1, W2, b2, ..., WL, bL]`` of CrypTensors in ``(in, out)`` layout, so ``z = x @ W + b``.

* :func:`forward` runs ``Linear -> ReLU -> ... -> Linear`` and returns the last pre-activation with a
  cache. Each hidden layer's ReLU is ``z * (z > 0)``: the comparison gives a scale-1 share of the mask,
  so ``z * mask`` needs no truncation, and the same mask is reused by the backward pass (one comparison
  per hidden layer, no new one backward).
* :func:`backward` takes ``g`` = dL/d(last pre-activation), *unscaled* (the caller applies public factors
  such as ``2/B`` after the reveal, which keeps fixed-point precision), and returns every weight and
  bias gradient: ``dW = h^T g``, ``db = sum over rows of g``, ``g <- (g W^T) * mask``.

The order of the Beaver products (forward: one product per layer and one mask product per hidden layer;
backward: ``dW``, then ``g W^T``, then the mask, layer by layer from the top) fixes which triples each
product uses, so two callers that share inputs in the same order get identical numbers.

Instrumentation, per party process: :data:`tally` counts the compared elements (``comparisons``) and
their seconds (``comparison_s``); the secure MADDPG adds the shared elements and clears it each
iteration. A ``timer`` dict, when given, accumulates the seconds of the products (``matmul``) and of the
ReLUs (``relu``: comparison and mask products).
"""
from __future__ import annotations

import collections
import time

__all__ = ["backward", "flat_grads", "forward", "slice_cache", "tally"]

tally: collections.Counter = collections.Counter()
"""Elements shared / compared and comparison seconds in this process (the caller clears it)."""


def _add(timer: dict | None, key: str, start: float) -> None:
    if timer is not None:
        timer[key] += time.perf_counter() - start


def forward(params, x, timer: dict | None = None):
    """MLP forward on shares; returns the last layer's pre-activation and the cache ``(hs, masks)`` (each
    layer's input and each hidden layer's ReLU mask) for :func:`backward`."""
    hs, masks, h = [x], [], x
    n_layers = len(params) // 2
    for layer in range(n_layers):
        start = time.perf_counter()
        z = h.matmul(params[2 * layer]) + params[2 * layer + 1]
        _add(timer, "matmul", start)
        if layer < n_layers - 1:
            tally["comparisons"] += z.nelement()
            start = time.perf_counter()
            m = z.gt(0)            # the only comparison of this layer; reused backward
            tally["comparison_s"] += time.perf_counter() - start
            h = z * m              # no truncation: m has scale 1
            _add(timer, "relu", start)
            hs.append(h)
            masks.append(m)
    return z, (hs, masks)


def backward(params, cache, g, timer: dict | None = None) -> list:
    """Backward of :func:`forward` from ``g`` = dL/d(last pre-activation); returns the gradients in the
    order of ``params`` (bias gradients keep a row dimension of 1)."""
    hs, masks = cache
    n_layers = len(params) // 2
    grads = [None] * len(params)
    for layer in reversed(range(n_layers)):
        start = time.perf_counter()
        grads[2 * layer] = hs[layer].transpose(-2, -1).matmul(g)
        grads[2 * layer + 1] = g.sum(-2, keepdim=True)
        if layer > 0:
            g = g.matmul(params[2 * layer].transpose(-2, -1))
            _add(timer, "matmul", start)
            start = time.perf_counter()
            g = g * masks[layer - 1]      # ReLU derivative from the forward comparison
            _add(timer, "relu", start)
        else:
            _add(timer, "matmul", start)
    return grads


def slice_cache(cache, sl: slice):
    """The cache of the networks ``sl`` of a stacked forward pass."""
    hs, masks = cache
    return [h[sl] for h in hs], [m[sl] for m in masks]


def flat_grads(grads):
    """Stacked gradients ``(networks, ...)`` flattened to ``(networks, parameters)``, for one reveal."""
    from ppal_lab.secure.crypten_compat import crypten

    return crypten.cat([g.flatten(start_dim=1) for g in grads], dim=1)
