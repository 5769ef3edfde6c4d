"""A sigmoid on secret shares, accurate to ~1e-5 at 18 fractional bits (CrypTen's own: ~2e-3).

The secure MADDPG applies it to the actors' outputs inside an update (:mod:`ppal_lab.secure.maddpg_party`);
chapter 8's exercise compares it with CrypTen's ``sigmoid`` (:func:`ppal_lab.secure.examples.sigmoid_party`).
CrypTen computes ``exp(-x)`` as ``(1 - x/2^9)^(2^9)``: nine squarings, each doubling the fixed-point
error. Here ``exp(-a)`` on ``a = min(|z|, 16)`` is a degree-8 polynomial on ``[0, 2]`` (in ``a/8``) followed by
only three squarings, and the reciprocal ``1/(1 + exp(-a))`` takes three Newton steps from a start that
is exact at both ends of its range.
"""
from __future__ import annotations

import time

import numpy as np

from ppal_lab.secure.mlp_on_shares import tally

__all__ = ["secure_sigmoid", "sigmoid_exp_coefficients"]

_SIGMOID_CLIP = 16.0       # |z| is clipped here before exp(-|z|); sigmoid(16) = 1 - 1.1e-7
_EXP_DEGREE = 8            # polynomial for exp(-t) on t in [0, 2] (t = |z| / 8), then 3 squarings
_RECIP_ITERS = 3           # Newton steps for 1 / d on d in [1, 2] from the line 1.5 - d/2


def sigmoid_exp_coefficients(degree: int = _EXP_DEGREE) -> np.ndarray:
    """Power-basis coefficients (constant first) of the Chebyshev interpolant of ``exp(-t)`` on [0, 2]
    (max error ~1e-9 at degree 8)."""
    cheb = np.polynomial.Chebyshev.interpolate(lambda t: np.exp(-t), degree, domain=[0.0, 2.0])
    return cheb.convert(kind=np.polynomial.Polynomial, domain=[0.0, 2.0], window=[0.0, 2.0]).coef


def secure_sigmoid(z):
    """``sigmoid(z)`` of a CrypTensor, accurate to ~1e-5 at 18 bits (CrypTen's own: ~2e-3).

    One batched comparison gives ``z < 0``, ``z > 16`` and ``z < -16``; ``a = min(|z|, 16)``;
    ``exp(-a) = p(a/8)^8`` with ``p`` a degree-8 polynomial for ``exp(-t)`` on [0, 2] (Horner, then 3
    squarings -- few squarings, because each doubles the fixed-point error; CrypTen's ``(1 - a/512)^512``
    multiplies it by 512); ``1/(1 + exp(-a))`` by 3 Newton steps from the line ``1.5 - d/2``, exact at
    both ends of ``d`` in [1, 2]; then ``sigmoid(z) = s + neg (1 - 2s)``. 28 rounds.
    """
    from ppal_lab.secure.crypten_compat import crypten

    n = z.size(0)
    flags = crypten.cat([-z, z - _SIGMOID_CLIP, -z - _SIGMOID_CLIP], dim=0)
    tally["comparisons"] += flags.nelement()
    start = time.perf_counter()
    flags = flags.gt(0)                                                    # scale-1 shares
    tally["comparison_s"] += time.perf_counter() - start
    neg, big = flags[:n], flags[n:2 * n] + flags[2 * n:]
    a = z * (1 - 2 * neg)                       # |z|; products with 0/1 shares need no truncation
    a = a - (a - _SIGMOID_CLIP) * big           # min(|z|, 16)
    t = a * 0.125
    coef = sigmoid_exp_coefficients()
    p = t * float(coef[-1]) + float(coef[-2])
    for c in coef[-3::-1]:
        p = p * t + float(c)
    for _ in range(3):
        p = p.square()
    d = p + 1.0
    y = 1.5 - 0.5 * d
    for _ in range(_RECIP_ITERS):
        y = y * (2.0 - d * y)
    return y + (1 - 2 * y) * neg
