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

Wrap-around watch (:func:`watch_truncations`): CrypTen's two-party truncation (each party divides its
own share by ``2^b``) fails with probability about ``|v| 2^(2b) / 2^64`` per element, and a failure adds
exactly ``+-2^(64-b)`` ring units (``+-2^(64-2b)`` in value) to that element. While the watch is on,
every truncation in this process also adds, *locally and on shares*, a checksum of its output --
``s = sum_e r_e x_e`` with public signs ``r_e = +-1`` (the same on both parties) -- to a list. An
honest checksum is small (a signed sum of ordinary values); one wrap moves it by ``2^(64-2b)``. The
caller range-checks the checksums on shares and opens one bit (:mod:`ppal_lab.secure.maddpg_party`).
Nothing is compared or opened per element; the cost is one small comparison per stage.

Instrumentation, per party process: :data:`tally` counts the compared elements (``comparisons``: ReLU
masks) and their seconds (``comparison_s``); :data:`profile` sums the
bytes, rounds and seconds of each kind of operation (:func:`counted`). The secure MADDPG adds the
shared elements and clears both each iteration. A ``timer`` dict, when given, accumulates the seconds of
the products (``matmul``) and of the ReLUs (``relu``: comparison and mask products).
"""
from __future__ import annotations

import collections
import contextlib
import time

__all__ = ["backward", "counted", "crypten_is_negative", "flat_grads", "forward", "is_negative", "profile",
           "slice_cache", "tally", "watch_truncations"]

tally: collections.Counter = collections.Counter()
"""Elements shared / compared and comparison seconds in this process (the caller clears it)."""

profile: collections.Counter = collections.Counter()
"""``{kind}_bytes``, ``{kind}_rounds``, ``{kind}_s`` per operation kind in this process (the caller clears it)."""


@contextlib.contextmanager
def counted(kind: str):
    """Add this block's player-to-player bytes and rounds (CrypTen's counters: on only with
    ``verbose_comm``) and seconds to :data:`profile` under ``kind``. Blocks must not nest."""
    from ppal_lab.secure.crypten_compat import crypten

    comm = crypten.comm.get()
    before, start = comm.get_communication_stats(), time.perf_counter()
    try:
        yield
    finally:
        after = comm.get_communication_stats()
        profile[f"{kind}_bytes"] += after["bytes"] - before["bytes"]
        profile[f"{kind}_rounds"] += after["rounds"] - before["rounds"]
        profile[f"{kind}_s"] += time.perf_counter() - start


def _add(timer: dict | None, key: str, start: float) -> None:
    if timer is not None:
        timer[key] += time.perf_counter() - start


_watch: dict = {"sums": None, "inject": None}
_signs_cache: list = []


def _public_signs(n: int):
    """``n`` public pseudo-random signs (int64 +-1), the same in every process (a fixed generator)."""
    import torch

    if not _signs_cache or _signs_cache[0].numel() < n:
        g = torch.Generator().manual_seed(0x5EC2)
        size = max(n, 1 << 20)
        _signs_cache[:] = [torch.randint(0, 2, (size,), generator=g, dtype=torch.int64) * 2 - 1]
    return _signs_cache[0][:n]


@contextlib.contextmanager
def watch_truncations():
    """While on, every public-integer division (CrypTen's truncation) of an arithmetic shared tensor in
    this process appends this party's share of the output's checksum ``sum_e r_e x_e`` (int64, ring
    arithmetic) to the yielded list. The checksums are linear in the shares, so they cost no
    communication; a wrap moves one by ``2^(64-b)`` ring units."""
    import torch
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor

    from ppal_lab.secure.crypten_compat import crypten

    original = ArithmeticSharedTensor.div_
    rank = crypten.comm.get().get_rank()

    def div_(self, y):
        out = original(self, y)
        if isinstance(y, int) or (torch.is_tensor(y) and not y.is_floating_point()):
            inject, _watch["inject"] = _watch["inject"], None
            if inject is not None and rank == 0:          # tests: a wrap, where a real one happens
                out.share[inject[0]] += int(inject[1])
            flat = out.share.reshape(-1)
            _watch["sums"].append((flat * _public_signs(flat.numel())).sum())
        return out

    sums: list = []
    _watch["sums"], _watch["inject"] = sums, None
    ArithmeticSharedTensor.div_ = div_
    try:
        yield sums
    finally:
        ArithmeticSharedTensor.div_ = original
        _watch["sums"], _watch["inject"] = None, None


def _i64(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_EVEN_MASKS = [_i64(m) for m in (0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F, 0x00FF00FF00FF00FF,
                                 0x0000FFFF0000FFFF, 0x00000000FFFFFFFF)]


def _compress_even(x):
    """The even bits of each int64 (a share), moved together into the low half: XOR-linear, so local."""
    x = x & _EVEN_MASKS[0]
    for k, mask in enumerate(_EVEN_MASKS[1:]):
        x = (x ^ (x >> (1 << k))) & mask
    return x


def is_negative(z, bits: int = 64):
    """``[z < 0]`` as scale-1 arithmetic shares, for an MPCTensor ``z`` of two parties.

    CrypTen's ``ltz`` converts both shares to binary and adds them with a full 64-bit prefix adder: six
    levels of ANDs on whole 64-bit words for every element. Only the sign is needed, i.e. the carry into
    bit 63 of ``x0 + x1``: a tree that halves the (generate, propagate) pairs at every level, keeping the
    pairs of several elements packed in one word (32 bits per element, then 16, ..., 1), opens about a
    third of the words for the same rounds. Each party's own share is its binary input (party 0 holds
    ``x0``, party 1 ``x1``); the ANDs use the dealer's binary triples. Compressing and packing bits is
    XOR-linear, so each party does it on its own share.

    ``bits`` < 64 (a power of two): the sign of ``z`` read in the ring of ``2^bits`` -- each party keeps
    its share's low ``bits`` bits (reduction mod ``2^bits`` is a ring map, so it is local), ``64/bits``
    elements share a word from the start and the tree has ``log2(bits)`` levels: fewer bytes and one
    round less per halving. Exact while ``|z|`` is below ``2^(bits-1)`` ring units (``2^(bits-1-b)`` in
    value at ``b`` fractional bits); beyond that the sign is that of ``z mod 2^bits``."""
    import torch
    from crypten.mpc.primitives import beaver
    from crypten.mpc.primitives.binary import BinarySharedTensor as Bits

    from ppal_lab.secure.crypten_compat import crypten

    if bits not in (8, 16, 32, 64):
        raise ValueError(f"bits must be 8, 16, 32 or 64, got {bits!r}")
    rank = crypten.comm.get().get_rank()
    mine = z._tensor.share.reshape(-1)
    n, per = mine.numel(), 64 // bits
    if bits < 64:
        mine = mine & ((1 << bits) - 1)          # the share in the ring of 2^bits
    top = (mine >> (bits - 1)) & 1                # shares of x0_top xor x1_top
    order = torch.arange(n)
    if n % per:                                   # empty fields to fill the last word (ignored)
        mine = torch.cat([mine, mine.new_zeros(per - n % per)])
        order = torch.cat([order, order.new_full((per - n % per,), -1)])
    words = mine.view(-1, per)
    mine = words[:, 0]
    for j in range(1, per):                       # per elements to a word, field j at bits j*bits...
        mine = mine ^ (words[:, j] << (bits * j))
    order = order.view(-1, per)                   # which element each packed field belongs to
    zero = torch.zeros_like(mine)
    field_top = 0
    for j in range(per):
        field_top |= 1 << (bits * j + bits - 1)
    low, field_top = _i64(((1 << 64) - 1) ^ field_top), _i64(field_top)
    gen = (Bits.from_shares(mine if rank == 0 else zero) & Bits.from_shares(mine if rank == 1 else zero)).share
    gen = gen & low                               # generate, top bit cleared; propagate, top bit set: the
    prop = (mine & low) ^ (field_top if rank == 0 else 0)   # group's generate is the carry into the top bit
    for _ in range(bits.bit_length() - 1):
        parts = [_compress_even(v) for v in (gen >> 1, gen, prop >> 1, prop)]   # hi and lo of each pair
        if parts[0].numel() % 2:                  # an empty word to pair with (its fields are ignored)
            parts = [torch.cat([v, v.new_zeros(1)]) for v in parts]
            order = torch.cat([order, order.new_full((1, order.shape[1]), -1)])
        g_hi, g_lo, p_hi, p_lo = (v[0::2] ^ (v[1::2] << 32) for v in parts)   # two half-words to a word
        order = torch.cat([order[0::2], order[1::2]], dim=1)
        both = (Bits.from_shares(torch.cat([p_hi, p_hi])) & Bits.from_shares(torch.cat([g_lo, p_lo]))).share
        m = g_hi.numel()
        gen, prop = g_hi ^ both[:m], both[m:]     # (G, P) of pairs: G_hi ^ P_hi G_lo, P_hi P_lo
    fields = (gen[:, None] >> torch.arange(64, dtype=torch.int64)) & 1
    carry = torch.zeros(n, dtype=torch.int64)
    carry[order[order >= 0]] = fields[order >= 0]
    bit = beaver.B2A_single_bit(Bits.from_shares(carry ^ top[:n]))
    return crypten.mpc.MPCTensor.from_shares(bit.share.reshape(z.size()), precision=0)


def crypten_is_negative(z):
    """CrypTen's own ``z < 0`` (full 64-bit adder): the baseline :func:`is_negative` is measured against."""
    return z.lt(0)


def forward(params, x, timer: dict | None = None, wrap_at: tuple | None = None, negative=is_negative):
    """MLP forward on shares; returns the last layer's pre-activation and the cache ``(hs, masks)`` (each
    layer's input and each hidden layer's ReLU mask) for :func:`backward`.

    ``negative``: the comparison (:func:`is_negative`; :func:`crypten_is_negative` for the baseline).
    ``wrap_at`` (tests, under :func:`watch_truncations`): ``(index, ring_units)`` -- the truncation of the
    first layer's product fails at ``index`` on party 0's share by ``ring_units`` (a real failure adds
    ``+-2^(64-b)``), before its checksum is taken: the wrap goes through the detection path."""
    hs, masks, h = [x], [], x
    n_layers = len(params) // 2
    for layer in range(n_layers):
        start = time.perf_counter()
        with counted("matmul"):
            if layer == 0 and wrap_at is not None:
                _watch["inject"] = wrap_at
            z = h.matmul(params[2 * layer]) + params[2 * layer + 1]
        _add(timer, "matmul", start)
        if layer < n_layers - 1:
            tally["comparisons"] += z.nelement()
            start = time.perf_counter()
            with counted("relu"):
                m = negative(-z)       # [z > 0]: the only comparison of this layer; reused backward
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
        with counted("matmul"):
            grads[2 * layer] = hs[layer].transpose(-2, -1).matmul(g)
            grads[2 * layer + 1] = g.sum(-2, keepdim=True)
            if layer > 0:
                g = g.matmul(params[2 * layer].transpose(-2, -1))
        _add(timer, "matmul", start)
        if layer > 0:
            start = time.perf_counter()
            with counted("relu"):
                g = g * masks[layer - 1]      # ReLU derivative from the forward comparison
            _add(timer, "relu", start)
    return grads


def slice_cache(cache, sl: slice):
    """The cache of the networks ``sl`` of a stacked forward pass."""
    hs, masks = cache
    return [h[sl] for h in hs], [m[sl] for m in masks]


def flat_grads(grads):
    """Stacked gradients ``(networks, ...)`` flattened to ``(networks, parameters)``, for one reveal."""
    from ppal_lab.secure.crypten_compat import crypten

    return crypten.cat([g.flatten(start_dim=1) for g in grads], dim=1)
