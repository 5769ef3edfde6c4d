"""Two-party secure training step of a small MLP whose input is split between the parties.

The building block of the secure MADDPG chapter -- its passes on shares are
:mod:`ppal_lab.secure.mlp_on_shares`, which the secure MADDPG (:mod:`ppal_lab.secure.maddpg_party`) runs on
stacks of networks -- shown here on one network: a 3-layer perceptron (``Linear -> ReLU -> Linear ->
ReLU -> Linear``, output either the identity -- a critic -- or ``out_scale * sigmoid`` -- an actor)

* whose **input** is the concatenation ``[x0 | x1]`` of party 0's private feature block ``x0`` and
  party 1's private feature block ``x1`` (each party secret-shares its own block, ``src`` = its rank);
* whose **weights** and **MSE target** belong to one party, the ``owner`` (shared with ``src=owner``);
* whose loss gradients with respect to the weights are computed on secret shares with an explicit,
  hand-written backward pass (matrix products, the ReLU derivative taken from the *same* secure
  comparison as the forward ReLU, so each hidden layer costs exactly one comparison), and are then
  **revealed to the owner only**, in a single batched opening, who applies Adam in plaintext
  (``torch.optim.Adam`` on its plaintext copy of the weights) and re-shares the updated weights.

Functions
---------
* :func:`init_weights`, :func:`plain_forward`, :func:`plain_gradients` -- the plaintext reference
  (the same MLP in torch, autograd gradients);
* :func:`secure_mlp_party` -- the party function (module level, for
  :func:`ppal_lab.secure.run_parties`);
* :func:`run_secure_training` -- runs ``iterations`` Adam steps securely (two processes) and in
  plaintext from identical initial weights and minibatches; returns a :class:`TrainingComparison`
  (both weight trajectories, final-weight MAE/RMSE, time per iteration and its phases, bytes and rounds
  per iteration).

Cheap wins used: one torch thread per party (the two parties share the cores; a second thread did not
speed up a 16k-element comparison); the MSE residual ``y - t`` is back-propagated *unscaled* and the
public factor ``2 / (B * out_dim)`` is applied by the owner after the reveal (saves a truncation and
keeps ~7 bits of precision that a 1/128 factor would throw away); the ReLU mask is a scale-1 share, so
``z * mask`` and ``g * mask`` need no truncation; all gradients are opened in one batched reveal (one
round); the bias gradients are sums (local, free). A step costs 29 communication rounds: 2 x 8 for the
two secure comparisons, 3 forward and 5 backward Beaver matrix products, 4 mask products, 1 reveal --
plus the wrap-around check on shares before the reveal (one small comparison and a one-bit opening).
:func:`crypten_autograd_party` is the same step through CrypTen's autograd, kept for the cost comparison
in ``benchmarks/bench_secure_mlp.py`` (32 rounds, same bytes, slower). The secure comparisons
(arithmetic-to-binary conversion and a 64-bit adder circuit) take about two thirds of the time.
``precision_bits`` changes accuracy, not cost (the ring is always 64-bit).

Threat model
------------
Semi-honest (honest-but-curious) parties that follow the protocol. Multiplications and comparisons use
Beaver triples from a dealer that is not a party (CrypTen's TTP provider in its own process, started by
:func:`ppal_lab.secure.twoparty.run_parties`; it sees only the kinds and shapes of the tuples it hands
out, and must not collude with either party). Everything a party receives during the computation -- its shares of the other party's inputs, of the
weights and of the target, and the opened Beaver differences ``x - a``, ``y - b`` -- is masked by
uniformly random ring elements, so on its own it is independent of the other party's private data.

What is revealed, and to whom:

* both learn one bit per step attempt: whether one of its truncations wrapped around (see below);
* the **non-owner** learns the public shapes (batch size, feature counts, hidden size), the number of
  iterations, and nothing else -- not the weights, not the target, not the outputs, not the gradients;
* the **owner** learns the weight gradients, and these leak information about the non-owner's inputs.
  With residual ``r = dL/dz3`` (known to the owner up to the weights it holds),
  ``dW1 = [x0 | x1]^T g1`` with ``g1`` the back-propagated signal: the rows of ``dW1`` belonging to
  the other party's features are ``x_other^T g1`` -- linear combinations of the other party's
  feature values, weighted by quantities the owner can largely reconstruct. For batch size 1 the
  input is recoverable exactly (``dW1[i, j] / db1[j] = x[i]`` wherever ``db1[j] != 0``); for larger
  batches the owner learns ``hidden`` weighted sums per feature per step (gradient-inversion attacks
  can exploit them). Revealing gradients to the owner is therefore a deliberate design choice of the
  seed, not a property of MPC; hiding them would need the Adam update itself on shares.

Fixed point: values are encoded with ``precision_bits`` fractional bits (CrypTen's default 16, allowed
:data:`PRECISION_BITS_RANGE`). Revealed gradients are decoded exactly (:func:`fixed_point.decode_exact`)
because CrypTen 0.4.1's decoder is off by one for some negative values. Two error sources matter:
(1) a pre-activation within the fixed-point error of 0 can get the other ReLU mask than in float, which
changes that unit's whole backward contribution for that sample (at 16 bits, hidden 128, batch 128:
single gradient entries off by up to ~5% of the largest gradient; at 20 bits ~1e-6 absolute); (2)
CrypTen's local 2-party truncation fails with probability ~|v| 2^(2b) / 2^64 per product element of
value v, giving an absurd value: ~1e-10 |v| at 16 bits, ~6e-8 |v| at 20 bits -- with ~1e5 product
elements per step, a few failures in 800 steps at 20 bits. As in the secure MADDPG, no gradient is opened
before that is checked on shares: every truncation of the step adds a checksum on shares
(:func:`~ppal_lab.secure.mlp_on_shares.watch_truncations`), the parties compare the checksums with a
bound on shares and open one bit to both (:func:`~ppal_lab.secure.maddpg_party.wrap_detected`); if it is
1, the step is recomputed with fresh randomness (counted as ``wrap_retries``; at most
:data:`MAX_RETRIES` times). A failure reveals that one bit.
The precision is therefore a trade-off, not "more is better"; cost does not depend on it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from ppal_lab.compendium.errors import ParameterError, check_choice, check_range
from ppal_lab.secure.fixed_point import PRECISION_BITS_RANGE
from ppal_lab.secure.maddpg_party import wrap_detected
from ppal_lab.secure.mlp_on_shares import backward, forward, watch_truncations

__all__ = [
    "PRECISION_BITS_RANGE", "OUTPUTS", "PARAM_NAMES", "MAX_RETRIES", "MLPConfig", "init_weights",
    "plain_forward",
    "plain_gradients", "plain_training", "secure_mlp_party", "crypten_autograd_party", "TrainingComparison",
    "run_secure_training", "weight_errors",
]

OUTPUTS = ("identity", "sigmoid")
MAX_RETRIES = 4
"""Recomputations of a step whose truncations wrapped before the run gives up."""
PARAM_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")
"""Weights in ``(in, out)`` layout: ``z = x @ W + b``."""


@dataclass(frozen=True)
class MLPConfig:
    """Public description of the network and the training (both parties know it)."""

    d0: int                    # party 0's feature count
    d1: int                    # party 1's feature count
    hidden: int = 128
    out_dim: int = 1
    output: str = "identity"   # "identity" (critic) or "sigmoid" (actor: out_scale * sigmoid)
    out_scale: float = 1.0
    owner: int = 0             # the party that owns weights and targets
    lr: float = 1e-3
    precision_bits: int = 16
    inject_wrap: tuple = ()    # (tests) iterations whose first attempt gets a real truncation wrap

    def __post_init__(self):
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in self.inject_wrap):
            raise ParameterError("inject_wrap", self.inject_wrap, "a tuple of iteration numbers >= 0")
        for name in ("d0", "d1", "hidden", "out_dim"):
            _check_int(name, getattr(self, name), 1)
        check_choice("output", self.output, OUTPUTS)
        _check_float("out_scale", self.out_scale, 0, low_open=True)
        check_choice("owner", self.owner, (0, 1))
        _check_float("lr", self.lr, 0, low_open=True)
        _check_int("precision_bits", self.precision_bits, *PRECISION_BITS_RANGE)

    @property
    def in_dim(self) -> int:
        return self.d0 + self.d1

    def shapes(self) -> dict:
        h, i, o = self.hidden, self.in_dim, self.out_dim
        return {"W1": (i, h), "b1": (h,), "W2": (h, h), "b2": (h,), "W3": (h, o), "b3": (o,)}


def _check_int(name, value, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(name, value, "an integer" + (f" >= {low}" if low is not None else ""))
    return check_range(name, int(value), low, high)


def _check_float(name, value, low=None, high=None, **kw):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value):
        raise ParameterError(name, value, "a finite number")
    return check_range(name, float(value), low, high, **kw)


# ------------------------------------------------------------------------------------ plaintext side

def init_weights(config: MLPConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """PyTorch's default ``nn.Linear`` initialisation (uniform +-1/sqrt(fan_in)), float32, seeded."""
    g = torch.Generator().manual_seed(int(seed))
    out = {}
    for name, shape in config.shapes().items():
        fan_in = config.in_dim if name in ("W1", "b1") else config.hidden
        bound = 1.0 / math.sqrt(fan_in)
        out[name] = (torch.rand(shape, generator=g) * 2 - 1) * bound
    return out


def plain_forward(weights: Mapping[str, torch.Tensor], x: torch.Tensor, config: MLPConfig) -> torch.Tensor:
    """The network on the concatenated input ``x = [x0 | x1]`` in plaintext torch."""
    h1 = torch.relu(x @ weights["W1"] + weights["b1"])
    h2 = torch.relu(h1 @ weights["W2"] + weights["b2"])
    o = h2 @ weights["W3"] + weights["b3"]
    return config.out_scale * torch.sigmoid(o) if config.output == "sigmoid" else o


def plain_gradients(weights, x0, x1, target, config: MLPConfig) -> tuple[float, dict]:
    """MSE loss and its autograd gradients w.r.t. the weights (the reference for the secure pass)."""
    w = {k: v.detach().clone().requires_grad_(True) for k, v in weights.items()}
    loss = torch.nn.functional.mse_loss(plain_forward(w, torch.cat([x0, x1], 1), config), target)
    loss.backward()
    return float(loss.detach()), {k: v.grad.detach().clone() for k, v in w.items()}


def plain_training(weights, xs0, xs1, targets, config: MLPConfig):
    """``len(xs0)`` Adam steps in plaintext; returns (trajectory, seconds per iteration list)."""
    w = {k: v.detach().clone().requires_grad_(True) for k, v in weights.items()}
    opt = torch.optim.Adam([w[k] for k in PARAM_NAMES], lr=config.lr)
    traj, times = [], []
    for x0, x1, t in zip(xs0, xs1, targets):
        start = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(plain_forward(w, torch.cat([x0, x1], 1), config), t)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
        traj.append({k: v.detach().clone() for k, v in w.items()})
    return traj, times


# -------------------------------------------------------------------------------------- secure side

def _secure_step(crypten, rank: int, config: MLPConfig, w_plain, x0, x1, target, batch: int, timer,
                 wrap_at=None):
    """One secure forward + backward (the passes of :mod:`ppal_lab.secure.mlp_on_shares`); returns the
    encrypted, flattened, *unscaled* gradients. ``wrap_at`` (tests): a real wrap in the first layer."""
    owner = config.owner
    shapes = config.shapes()
    t = time.perf_counter()
    xa = crypten.cryptensor(x0 if rank == 0 else torch.empty(batch, config.d0), src=0)
    xb = crypten.cryptensor(x1 if rank == 1 else torch.empty(batch, config.d1), src=1)
    x = crypten.cat([xa, xb], dim=1)
    w = {k: crypten.cryptensor(w_plain[k] if rank == owner else torch.empty(shapes[k]), src=owner)
         for k in PARAM_NAMES}
    tgt = crypten.cryptensor(target if rank == owner else torch.empty(batch, config.out_dim), src=owner)
    timer["share"] += time.perf_counter() - t

    params = [w[k] for k in PARAM_NAMES]
    o, cache = forward(params, x, timer, wrap_at=wrap_at)
    t = time.perf_counter()
    if config.output == "sigmoid":
        s = o.sigmoid()
        y = s * config.out_scale
        # d(out_scale * sigmoid)/do = out_scale * s (1 - s); r = (y - t) * that, unscaled by 2/(B m)
        g3 = (y - tgt) * (s * (1 - s)) * config.out_scale
    else:
        g3 = o - tgt
    timer["output"] += time.perf_counter() - t
    grads = dict(zip(PARAM_NAMES, backward(params, cache, g3, timer)))
    return crypten.cat([grads[k].flatten() for k in PARAM_NAMES])


def _unflatten(flat: torch.Tensor, config: MLPConfig) -> dict:
    out, pos = {}, 0
    for k in PARAM_NAMES:
        shape = config.shapes()[k]
        n = int(np.prod(shape))
        out[k] = flat[pos:pos + n].reshape(shape)
        pos += n
    return out


def secure_mlp_party(rank: int, config: MLPConfig, iterations: int, batch: int, own: Mapping) -> dict:
    """Party function for :func:`ppal_lab.secure.run_parties` (world size 2).

    ``own`` holds only this party's private data: ``"x"`` -- its feature blocks, shape
    ``(iterations, batch, d_rank)``; the owner also ``"weights"`` (initial plaintext weights) and
    ``"targets"`` (``(iterations, batch, out_dim)``). Per iteration: share inputs, weights and target;
    secure forward and backward; one batched reveal of all gradients to the owner; plaintext Adam at
    the owner. Returns, for the owner, the weight trajectory and the first iteration's gradients; for
    both, per-iteration wall times and communication, time per phase, and (for the statistical tests)
    this party's raw shares of the first iteration's peer input block and of the owner's ``W1``.
    """
    from ppal_lab.secure.crypten_compat import crypten
    from ppal_lab.secure.fixed_point import decode_exact
    from ppal_lab.secure.twoparty import reveal_to

    torch.set_num_threads(1)  # two parties share the cores: extra threads only contend
    crypten.cfg.encoder.precision_bits = int(config.precision_bits)
    owner, comm = config.owner, crypten.comm.get()
    is_owner = rank == owner
    xs = torch.as_tensor(own["x"], dtype=torch.float32)
    if is_owner:
        w = {k: torch.as_tensor(own["weights"][k], dtype=torch.float32).clone().requires_grad_(True)
             for k in PARAM_NAMES}
        opt = torch.optim.Adam([w[k] for k in PARAM_NAMES], lr=config.lr)
        targets = torch.as_tensor(own["targets"], dtype=torch.float32)
    grad_scale = 2.0 / (batch * config.out_dim)
    phases = dict.fromkeys(("share", "matmul", "relu", "output", "reveal", "adam"), 0.0)
    traj, iter_s, iter_rounds, iter_bytes = [], [], [], []
    first_grads, peek, retries = None, {}, 0
    for it in range(iterations):
        comm.barrier()
        stats0 = comm.get_communication_stats()
        start = time.perf_counter()
        for attempt in range(MAX_RETRIES + 1):
            # every truncation is watched; the check runs on shares and opens one bit to both, so a
            # wrapped gradient is never opened: the step is recomputed with fresh randomness instead
            with watch_truncations() as sums:
                flat = _secure_step(crypten, rank, config, {k: v.detach() for k, v in w.items()} if is_owner
                                    else None, xs[it] if rank == 0 else None, xs[it] if rank == 1 else None,
                                    targets[it] if is_owner else None, batch, phases,
                                    wrap_at=((0, 0), 2 ** (64 - config.precision_bits))
                                    if attempt == 0 and it in config.inject_wrap else None)
            if not wrap_detected(crypten, sums, config.precision_bits):
                break
            retries += 1
        else:
            raise RuntimeError(f"{MAX_RETRIES + 1} attempts in a row hit a fixed-point wrap-around at "
                               f"precision_bits={config.precision_bits}; use fewer bits")
        t = time.perf_counter()
        ring = reveal_to(flat, owner)  # one opening, to the owner only (point to point)
        phases["reveal"] += time.perf_counter() - t
        t = time.perf_counter()
        if is_owner:
            grads = _unflatten(torch.as_tensor(decode_exact(ring, flat.encoder.scale) * grad_scale,
                                               dtype=torch.float32), config)
            opt.zero_grad(set_to_none=False)
            for k in PARAM_NAMES:
                w[k].grad = grads[k].clone()
            opt.step()
            traj.append({k: v.detach().clone() for k, v in w.items()})
            if it == 0:
                first_grads = {k: v.clone() for k, v in grads.items()}
        phases["adam"] += time.perf_counter() - t
        iter_s.append(time.perf_counter() - start)
        stats1 = comm.get_communication_stats()
        iter_rounds.append(int(stats1["rounds"] - stats0["rounds"]))
        iter_bytes.append(float(stats1["bytes"] - stats0["bytes"]))
        if it == 0:
            # what this party holds of data it does not own (for the independence tests); both
            # parties make the same sharing calls in the same order
            for src, d in ((0, config.d0), (1, config.d1)):
                share = crypten.cryptensor(xs[0] if rank == src else torch.empty(batch, d), src=src)
                if src != rank:
                    peek["peer_input_share"] = share.share.clone()
            wshare = crypten.cryptensor(w["W1"].detach() if is_owner else
                                        torch.empty(config.shapes()["W1"]), src=owner)
            if not is_owner:
                peek["owner_W1_share"] = wshare.share.clone()
    return {"rank": rank, "trajectory": traj if is_owner else None, "first_grads": first_grads,
            "iter_s": iter_s, "rounds": iter_rounds, "bytes": iter_bytes, "phases": phases,
            "wrap_retries": retries, **peek}


def crypten_autograd_party(rank: int, config: MLPConfig, iterations: int, batch: int, own: Mapping) -> dict:
    """The same secure step written with CrypTen's autograd (``requires_grad`` cryptensors, ``backward``)
    instead of the hand-written backward pass -- for the cost comparison only (same sharing, same
    batched reveal to the owner, no Adam). Returns the owner's first-iteration gradients (scaled by
    CrypTen's own mean, so comparable to autograd in plaintext), per-iteration times and
    communication."""
    from ppal_lab.secure.crypten_compat import crypten
    from ppal_lab.secure.fixed_point import decode_exact
    from ppal_lab.secure.twoparty import reveal_to

    torch.set_num_threads(1)
    crypten.cfg.encoder.precision_bits = int(config.precision_bits)
    owner, comm, shapes = config.owner, crypten.comm.get(), config.shapes()
    xs = torch.as_tensor(own["x"], dtype=torch.float32)
    is_owner = rank == owner
    iter_s, rounds, nbytes, first = [], [], [], None
    for it in range(iterations):
        comm.barrier()
        stats0 = comm.get_communication_stats()
        start = time.perf_counter()
        xa = crypten.cryptensor(xs[it] if rank == 0 else torch.empty(batch, config.d0), src=0)
        xb = crypten.cryptensor(xs[it] if rank == 1 else torch.empty(batch, config.d1), src=1)
        x = crypten.cat([xa, xb], dim=1)
        w = {k: crypten.cryptensor(torch.as_tensor(own["weights"][k], dtype=torch.float32)
                                   if is_owner else torch.empty(shapes[k]), src=owner,
                                   requires_grad=True) for k in PARAM_NAMES}
        tgt = crypten.cryptensor(torch.as_tensor(own["targets"][it], dtype=torch.float32) if is_owner
                                 else torch.empty(batch, config.out_dim), src=owner)
        h1 = (x.matmul(w["W1"]) + w["b1"]).relu()
        h2 = (h1.matmul(w["W2"]) + w["b2"]).relu()
        o = h2.matmul(w["W3"]) + w["b3"]
        if config.output == "sigmoid":
            o = o.sigmoid() * config.out_scale
        loss = (o - tgt).square().mean()
        loss.backward()
        flat = crypten.cat([w[k].grad.flatten() for k in PARAM_NAMES])
        ring = reveal_to(flat, owner)
        iter_s.append(time.perf_counter() - start)
        stats1 = comm.get_communication_stats()
        rounds.append(int(stats1["rounds"] - stats0["rounds"]))
        nbytes.append(float(stats1["bytes"] - stats0["bytes"]))
        if it == 0 and is_owner:
            first = _unflatten(torch.as_tensor(decode_exact(ring, flat.encoder.scale),
                                               dtype=torch.float32), config)
    return {"first_grads": first, "iter_s": iter_s, "rounds": rounds, "bytes": nbytes}


# ------------------------------------------------------------------------------------------ driver

def weight_errors(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> dict:
    """MAE and RMSE between two weight sets, per tensor and over all weights together."""
    out = {}
    diffs = []
    for k in PARAM_NAMES:
        d = (a[k].double() - b[k].double()).flatten()
        diffs.append(d)
        out[k] = {"mae": float(d.abs().mean()), "rmse": float(d.pow(2).mean().sqrt())}
    d = torch.cat(diffs)
    out["all"] = {"mae": float(d.abs().mean()), "rmse": float(d.pow(2).mean().sqrt()),
                  "max": float(d.abs().max())}
    return out


@dataclass
class TrainingComparison:
    """What :func:`run_secure_training` measured (times in seconds, per iteration: medians)."""

    config: MLPConfig
    iterations: int
    batch: int
    secure_trajectory: list
    plain_trajectory: list
    first_grads_secure: dict
    first_grads_plain: dict
    errors: dict                  # weight_errors(final secure, final plain)
    secure_s_per_iter: float      # median over iterations after the first (owner's clock)
    plain_s_per_iter: float
    rounds_per_iter: float        # per party (both parties count the same rounds)
    bytes_per_iter: float         # sum over both parties / 2 (CrypTen's 2-party total)
    phases_s_per_iter: dict       # owner's time per phase, mean per iteration
    wall_s: float
    party_outputs: list = field(repr=False, default_factory=list)

    @property
    def ratio(self) -> float:
        return self.secure_s_per_iter / self.plain_s_per_iter

    def summary(self) -> dict:
        return {"hidden": self.config.hidden, "batch": self.batch, "iterations": self.iterations,
                "precision_bits": self.config.precision_bits, "output": self.config.output,
                "secure_ms": 1e3 * self.secure_s_per_iter, "plain_ms": 1e3 * self.plain_s_per_iter,
                "ratio": self.ratio, "rounds_per_iter": self.rounds_per_iter,
                "bytes_per_iter": self.bytes_per_iter,
                "phases_ms": {k: 1e3 * v for k, v in self.phases_s_per_iter.items()},
                "final_weight_mae": self.errors["all"]["mae"],
                "final_weight_rmse": self.errors["all"]["rmse"],
                "final_weight_max_abs": self.errors["all"]["max"],
                "first_grad_max_abs_err": max(float((self.first_grads_secure[k]
                                                     - self.first_grads_plain[k]).abs().max())
                                              for k in PARAM_NAMES),
                "first_grad_max_abs": max(float(self.first_grads_plain[k].abs().max())
                                          for k in PARAM_NAMES),
                "wrap_retries": int(self.party_outputs[self.config.owner]["wrap_retries"]),
                "wall_s": self.wall_s}


def _median_after_first(values):
    vals = list(values[1:]) if len(values) > 1 else list(values)
    return float(np.median(vals))


def run_secure_training(config: MLPConfig, x0, x1, targets, weights: Mapping | None = None, *,
                        world_size: int = 2, seed: int | None = None, weight_seed: int = 0,
                        timeout: float = 170.0) -> TrainingComparison:
    """Train the same MLP ``iterations = len(x0)`` Adam steps securely and in plaintext; compare.

    ``x0``: party 0's minibatches ``(iterations, batch, d0)``; ``x1``: party 1's ``(iterations, batch,
    d1)``; ``targets``: the owner's ``(iterations, batch, out_dim)``. ``weights``: initial weights
    (default :func:`init_weights` with ``weight_seed``). Both runs start from identical weights and see
    identical minibatches. ``seed`` is :func:`run_parties`'s (None: secure random sharing seeds).
    Raises :class:`ParameterError` before any work for a bad argument.
    """
    from ppal_lab.secure.twoparty import run_parties

    if not isinstance(config, MLPConfig):
        raise ParameterError("config", config, "an MLPConfig")
    if isinstance(world_size, bool) or world_size != 2:
        raise ParameterError("world_size", world_size, "2 (this protocol is two-party)")
    x0, x1, targets = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (x0, x1, targets))
    if x0.ndim != 3:
        raise ParameterError("x0", tuple(x0.shape), "shape (iterations, batch, d0)")
    iterations, batch = int(x0.shape[0]), int(x0.shape[1])
    _check_int("iterations", iterations, 1)
    _check_int("batch", batch, 1)
    if tuple(x0.shape) != (iterations, batch, config.d0):
        raise ParameterError("x0", tuple(x0.shape), f"shape (iterations, batch, {config.d0})")
    if tuple(x1.shape) != (iterations, batch, config.d1):
        raise ParameterError("x1", tuple(x1.shape), f"shape ({iterations}, {batch}, {config.d1})")
    if tuple(targets.shape) != (iterations, batch, config.out_dim):
        raise ParameterError("targets", tuple(targets.shape),
                             f"shape ({iterations}, {batch}, {config.out_dim})")
    for name, a in (("x0", x0), ("x1", x1), ("targets", targets)):
        if not torch.isfinite(a).all():
            raise ParameterError(name, "<non-finite values>", "finite")
    if weights is None:
        weights = init_weights(config, weight_seed)
    weights = {k: torch.as_tensor(weights[k], dtype=torch.float32).clone() for k in PARAM_NAMES}
    for k, shape in config.shapes().items():
        if tuple(weights[k].shape) != shape:
            raise ParameterError(f"weights[{k!r}]", tuple(weights[k].shape), f"shape {shape}")

    own = [{"x": x0}, {"x": x1}]
    own[config.owner].update(weights=weights, targets=targets)
    res = run_parties(secure_mlp_party, 2, args=(config, iterations, batch), timeout=timeout,
                      verbose_comm=True, seed=seed, party_args=[(own[0],), (own[1],)])
    mine = res[config.owner]

    torch.set_num_threads(1)
    plain_traj, plain_times = plain_training(weights, x0, x1, targets, config)
    _, g_plain = plain_gradients(weights, x0[0], x1[0], targets[0], config)
    n = iterations
    return TrainingComparison(
        config=config, iterations=n, batch=batch, secure_trajectory=mine["trajectory"],
        plain_trajectory=plain_traj, first_grads_secure=mine["first_grads"], first_grads_plain=g_plain,
        errors=weight_errors(mine["trajectory"][-1], plain_traj[-1]),
        secure_s_per_iter=_median_after_first(mine["iter_s"]),
        plain_s_per_iter=_median_after_first(plain_times),
        rounds_per_iter=float(np.mean(mine["rounds"])),
        bytes_per_iter=float(np.mean([np.mean(r["bytes"]) for r in res])),  # sum/2 over the 2 parties
        phases_s_per_iter={k: v / n for k, v in mine["phases"].items()},
        wall_s=res.wall_s, party_outputs=list(res))
