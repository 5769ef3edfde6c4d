"""How precise and how costly is CrypTen's fixed-point secure arithmetic? Measured against float32/64.

CrypTen (Knott et al. 2021) shares a real number ``x`` additively over the ring of 64-bit integers after
encoding it as the integer ``floor-toward-zero(x * 2^b)`` (``b`` = ``crypten.cfg.encoder.precision_bits``,
16 by default). Addition is local; multiplication uses a Beaver triple (Beaver 1991) from CrypTen's
default "trusted first party" provider and a truncation by ``2^b``; division, exp, log, sigmoid and
tanh are iterative approximations (limit, Newton-Raphson and Householder iterations) built from those;
relu needs a secure comparison (conversion to binary shares). The seed's SecFloat library instead
emulates IEEE float32 in MPC. This module measures the fixed-point side:

* :data:`OPS` -- the eight operations that SecFloat targets and the input range over which each one is
  measured (documented per op, chosen to cover where the op is used in small neural networks and a bit
  beyond, so the plots show where the approximations break down);
* :func:`secure_ops_party` -- the party function: each op runs on secret shares in two real processes,
  each party supplying its own operand; it returns the revealed results and, per op, CrypTen's
  communication counters and the time;
* :func:`run_op_table` -- draws the inputs, starts the two parties **once** for every op, seed and
  precision, and compares the revealed results with float64 (the reference "truth") and float32.

Errors are reported three ways: absolute error, relative error where ``|reference| >= REL_FLOOR``, and
error in float32 units in the last place (ULP) -- the yardstick a float32 library such as SecFloat is
measured with. Fixed point has *absolute* resolution ``2^-b`` everywhere, floats have *relative*
resolution ``2^-24``: so small results are where fixed point loses most in ULPs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ppal_lab.compendium.errors import ParameterError, check_choice, check_range

__all__ = [
    "OpSpec", "OPS", "OP_NAMES", "REL_FLOOR", "PRECISION_BITS_RANGE", "TRAINING_PRECISION_BITS_RANGE",
    "CFG_OVERRIDES",
    "draw_inputs", "reference", "ulp32", "crypten_algorithm", "secure_ops_party", "OpTable",
    "run_op_table", "encode_fixed_point", "beaver_multiply", "decode_exact",
]

REL_FLOOR = 1e-3
"""Relative errors are computed only where the float64 reference has magnitude >= this (near zero a
relative error says nothing about fixed point, whose error is absolute)."""

PRECISION_BITS_RANGE = (8, 24)
"""Allowed fractional bits of CrypTen's fixed point (this room's single definition, used by the op table and
:mod:`ppal_lab.secure.secure_mlp`). Below 8 the gradients of a small network are mostly rounding; above ~24
the products before truncation (value * 2^(2b)) approach the 2^63 limit of CrypTen's 64-bit ring -- e.g.
exp near the upper end of its range in :data:`OPS`: 2.2e4 * 2^(2b)."""

TRAINING_PRECISION_BITS_RANGE = (10, 20)
"""The narrower range a long secure training run works with (the secure MADDPG,
:class:`ppal_lab.secure.maddpg_party.SecureSettings`, and chapter 8's ``precision_bits``): below 10 the
fixed-point resolution (1e-3) swamps the gradients; above 20 truncation wrap-arounds (probability
~ |v| 2^(2b-64) per element, ~1e6 truncated elements per iteration) come so often that most iterations
need a retry."""

CFG_OVERRIDES = {
    "functions.exp_iterations": (int, 1, 16),
    "functions.reciprocal_nr_iters": (int, 1, 40),
    "functions.log_iterations": (int, 1, 10),
    "functions.log_exp_iterations": (int, 1, 16),
    "functions.log_order": (int, 1, 16),
}
"""CrypTen settings of the approximations that :func:`run_op_table` lets you change (type, low, high)."""


@dataclass(frozen=True)
class OpSpec:
    """One operation: arity, the input ranges, how inputs are drawn and what the error is plotted
    against. Party 0 supplies ``x``; party 1 supplies ``y`` (binary ops only)."""

    name: str
    arity: int
    x_range: tuple[float, float]
    y_range: tuple[float, float] | None = None
    x_log: bool = False        # draw |x| log-uniformly in x_range (x_range then bounds the magnitude)
    y_log: bool = False
    y_signed: bool = False     # with y_log: give y a random sign
    plot_against: str = "x"    # the operand that drives the error
    note: str = ""

    def range_text(self) -> str:
        def one(r, log, signed):
            lo, hi = r
            txt = f"[{lo:g}, {hi:g}]"
            if log:
                txt = ("±" if signed else "") + txt + " log-uniform"
            return txt
        text = "x in " + one(self.x_range, self.x_log, False)
        if self.arity == 2:
            text += ", y in " + one(self.y_range, self.y_log, self.y_signed)
        return text


OPS: dict[str, OpSpec] = {op.name: op for op in (
    OpSpec("add", 2, (-100.0, 100.0), (-100.0, 100.0), note="local: no communication"),
    OpSpec("mul", 2, (-10.0, 10.0), (-10.0, 10.0), note="one Beaver triple, one truncation"),
    OpSpec("div", 2, (-10.0, 10.0), (0.1, 100.0), y_log=True, y_signed=True, plot_against="y",
           note="x * reciprocal(y): sign, exp-based initial guess, 10 Newton-Raphson steps"),
    OpSpec("exp", 1, (-10.0, 10.0), note="limit (1 + x/2^8)^(2^8): 8 squarings"),
    OpSpec("log", 1, (0.01, 100.0), x_log=True, note="Householder iterations on exp"),
    OpSpec("sigmoid", 1, (-10.0, 10.0), note="sign, exp, 3 Newton-Raphson steps for the reciprocal"),
    OpSpec("tanh", 1, (-10.0, 10.0), note="2 sigmoid(2x) - 1"),
    OpSpec("relu", 1, (-10.0, 10.0), note="secure comparison (binary shares)"),
)}
OP_NAMES = tuple(OPS)


# ----------------------------------------------------------------------------------- plain helpers

def _draw(rng: np.random.Generator, bounds, log: bool, signed: bool, n: int) -> np.ndarray:
    lo, hi = bounds
    if log:
        v = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
        if signed:
            v *= rng.choice([-1.0, 1.0], n)
    else:
        v = rng.uniform(lo, hi, n)
    return v.astype(np.float32).astype(np.float64)  # exactly representable in float32


def draw_inputs(op: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` inputs for ``op`` (float64 values that float32 represents exactly, so both references see
    identical inputs); ``y`` is None for unary ops."""
    spec = OPS[check_choice("op", op, OP_NAMES)]
    x = _draw(rng, spec.x_range, spec.x_log, False, n)
    y = _draw(rng, spec.y_range, spec.y_log, spec.y_signed, n) if spec.arity == 2 else None
    return x, y


def reference(op: str, x: np.ndarray, y: np.ndarray | None = None, dtype=np.float64) -> np.ndarray:
    """The op computed by NumPy in ``dtype`` (float64 is our reference truth; float32 is the
    precision SecFloat emulates)."""
    check_choice("op", op, OP_NAMES)
    x = np.asarray(x, dtype=dtype)
    y = None if y is None else np.asarray(y, dtype=dtype)
    one = dtype(1)
    with np.errstate(over="ignore"):
        out = {
            "add": lambda: x + y, "mul": lambda: x * y, "div": lambda: x / y,
            "exp": lambda: np.exp(x), "log": lambda: np.log(x),
            "sigmoid": lambda: one / (one + np.exp(-x)), "tanh": lambda: np.tanh(x),
            "relu": lambda: np.maximum(x, dtype(0)),
        }[op]()
    return np.asarray(out, dtype=dtype)


def ulp32(values: np.ndarray) -> np.ndarray:
    """The float32 unit in the last place at each value (the gap to the next float32 away from 0)."""
    return np.spacing(np.abs(np.asarray(values, dtype=np.float32))).astype(np.float64)


# ------------------------------------------------ CrypTen's algorithms in float64, with error bounds
#
# Every approximated op is CrypTen 0.4.1's own algorithm (crypten/common/functions/approximations.py)
# re-implemented in float64 *without* fixed-point rounding: its distance to the true function is the
# *approximation error*, which more precision bits cannot remove. Alongside each value we carry a
# first-order bound on how far the fixed-point computation can drift from it (the *rounding error*):
#   * encoding an input truncates toward zero: error < u = 2^-b;
#   * a product of two fixed-point values, or of a value and a public non-integer constant, is
#     truncated by 2^b, each party dividing its own share: error < 2 units = 2u (ignoring the rare
#     wrap-around, probability ~ |value| 2^(2b) / 2^63, that gives a huge error instead);
#   * public constants are encoded with error < u (zero if c 2^b is an integer);
#   * additions, multiplications by public integers and by comparison bits (which CrypTen keeps at
#     scale 1) are exact.
# Errors are propagated with each step's derivative, so a self-correcting Newton step does not inflate
# them. Second-order terms are kept where cheap.

_DEFAULT_CFG = {"functions.exp_iterations": 8, "functions.reciprocal_nr_iters": 10,
                "functions.log_iterations": 2, "functions.log_exp_iterations": 8,
                "functions.log_order": 8}


def _enc_err(c: float, u: float) -> float:
    """Error of encoding the public constant ``c`` (truncation toward zero)."""
    return abs(c - math.trunc(c / u) * u)


def _exp_limit(z, e_z, iters: int, u: float):
    """CrypTen's exp: (1 + z / 2^iters) squared ``iters`` times. Returns value, error bound and the
    derivative of the approximation (for propagating input errors through later steps)."""
    a = 1 + z / 2**iters
    e = e_z / 2**iters + 2 * u  # the public division truncates
    for _ in range(iters):
        e = 2 * np.abs(a) * e + e * e + 2 * u
        a = a * a
    deriv = (1 + z / 2**iters) ** (2**iters - 1)
    return a, e, deriv


def _nr_step(r, e_r, y, e_y, u: float):
    """One Newton-Raphson step r <- 2r - r^2 y on secret r and y, with its rounding (square: 2u, times
    y: 2u) and the propagated error (derivative 2 - 2ry, close to 0 near 1/y)."""
    new = 2 * r - r * r * y
    e = (np.abs(2 - 2 * r * y) * e_r + np.abs(y) * e_r**2 + r * r * e_y + 2 * np.abs(r) * e_r * e_y
         + 2 * u * (np.abs(y) + 1))
    return new, e


def _reciprocal_pos(y, e_y, cfg: dict, u: float):
    """CrypTen's NR reciprocal for y > 0: initial 3 exp(1 - 2y) + 0.003, then NR steps."""
    ex, e_ex, d_ex = _exp_limit(1 - 2 * y, 2 * e_y, cfg["functions.exp_iterations"], u)
    # the initial guess's error enters the first NR step; the exp error is propagated through it
    r, e_r = 3 * ex + 0.003, 3 * e_ex + _enc_err(0.003, u)
    for _ in range(cfg["functions.reciprocal_nr_iters"]):
        r, e_r = _nr_step(r, e_r, y, e_y, u)
    return r, e_r


def _poly_round(h, order: int, u: float):
    """Rounding bound of CrypTen's polynomial sum_i h^i / i (powers by a doubling tree, each product
    truncated; coefficients encoded)."""
    powers, err = [h, h * h], [np.zeros_like(h), np.full_like(h, 2 * u)]
    while len(powers) < order:
        top, e_top = powers[-1], err[-1]
        for p, e in list(zip(powers, err)):
            powers.append(p * top)
            err.append(np.abs(p) * e_top + np.abs(top) * e + e * e_top + 2 * u)
    total = np.zeros_like(h)
    for i in range(order):
        c = 1 / (i + 1)
        total += c * err[i] + np.abs(powers[i]) * _enc_err(c, u) + 2 * u
    return total


def _log(x, e_x, cfg: dict, u: float):
    """CrypTen's log: initial guess x/120 - 20 exp(-2x - 1) + 3, then Householder steps of order
    ``log_order`` y <- y - sum_k h^k / k with h = 1 - x exp(-y)."""
    k0, k1, order = (cfg["functions.exp_iterations"], cfg["functions.log_exp_iterations"],
                     cfg["functions.log_order"])
    ex, e_ex, d_ex = _exp_limit(-(2 * x + 1), 2 * e_x, k0, u)
    y = x / 120 - 20 * ex + 3.0
    e_y = e_x / 120 + 2 * u + 20 * e_ex
    for _ in range(cfg["functions.log_iterations"]):
        q, q_round, dq = _exp_limit(-y, 0.0, k1, u)
        h = 1 - x * q
        poly = sum(h ** (i + 1) / (i + 1) for i in range(order))
        dpoly = sum(h**i for i in range(order))
        m_round = np.abs(x) * q_round + 2 * u
        e_y = (np.abs(1 - dpoly * x * dq) * e_y + np.abs(dpoly * q) * e_x + np.abs(dpoly) * m_round
               + _poly_round(h, order, u))
        y = y - poly
    return y, e_y


def _sigmoid(x, e_x, enc_neg, cfg: dict, u: float):
    """CrypTen's sigmoid ("reciprocal" method): r ~ 1 / (1 + exp(-|x|)) by 3 NR steps from 0.75,
    then r for x >= 0 and 1 - r for x < 0 (the sign is taken from the encoded input)."""
    pos = np.abs(x)
    ex, e_ex, d_ex = _exp_limit(-pos, e_x, cfg["functions.exp_iterations"], u)
    d, e_d = 1 + ex, e_ex
    r0 = 0.75  # public first iterate: 2 r0 - (r0^2) d, r0^2 encoded
    r = 2 * r0 - r0 * r0 * d
    e_r = r0 * r0 * e_d + np.abs(d) * _enc_err(r0 * r0, u) + 2 * u
    for _ in range(2):
        r, e_r = _nr_step(r, e_r, d, e_d, u)
    return np.where(enc_neg, 1 - r, r), e_r


def crypten_algorithm(op: str, x, y=None, precision_bits: int = 16, overrides: Mapping | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """CrypTen 0.4.1's algorithm for ``op`` evaluated in float64, and a first-order bound on the
    fixed-point rounding error at ``precision_bits``.

    Returns ``(value, bound)``: ``value`` differs from the true function only by the approximation
    (iterations, initial guesses); a secure result should satisfy ``|secure - value| <= bound``.
    For add, mul and relu the bound is the closed form ``2u``, ``(|x| + |y|) u + u^2 + 2u`` and ``u``
    (``u = 2^-b``). The bound is first order: it holds while rounding errors stay small against the
    values they perturb. Where they do not -- at 12 bits, CrypTen's division by |y| >~ 40 and its log
    of x <~ 0.08 diverge -- the bound grows to ``inf`` or is simply exceeded; measure, don't assume.
    Overflow of the 64-bit ring (large values at high precision) is not covered either.
    """
    check_choice("op", op, OP_NAMES)
    if isinstance(precision_bits, bool) or not isinstance(precision_bits, (int, np.integer)):
        raise ParameterError("precision_bits", precision_bits, f"an int in {list(PRECISION_BITS_RANGE)}")
    check_range("precision_bits", precision_bits, *PRECISION_BITS_RANGE)
    cfg = {**_DEFAULT_CFG, **_check_overrides(overrides)}
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging bound becomes inf: no guarantee
        return _algorithm(op, x, y, int(precision_bits), cfg)


def _algorithm(op, x, y, precision_bits: int, cfg: dict):
    u = 2.0 ** -precision_bits
    x = np.asarray(x, dtype=np.float64)
    enc = lambda v: np.trunc(v / u) * u  # noqa: E731  CrypTen's encoding
    if op == "add":
        return x + y, np.full_like(x, 2 * u)
    if op == "mul":
        return x * y, (np.abs(x) + np.abs(y)) * u + u * u + 2 * u
    if op == "relu":
        return np.maximum(x, 0.0), np.full_like(x, u)
    if op == "exp":
        value, bound, _ = _exp_limit(x, u, cfg["functions.exp_iterations"], u)
        return value, bound
    if op == "log":
        return _log(x, u, cfg, u)
    if op == "sigmoid":
        return _sigmoid(x, u, enc(x) < 0, cfg, u)
    if op == "tanh":
        s, e = _sigmoid(2 * x, 2 * u, enc(x) < 0, cfg, u)
        return 2 * s - 1, 2 * e
    # div: x * sign(y) * reciprocal(|y|); multiplying by the sign bit is exact
    y = np.asarray(y, dtype=np.float64)
    sign = np.where(enc(y) < 0, -1.0, 1.0)
    rec, e_rec = _reciprocal_pos(np.abs(y), u, cfg, u)
    rec = sign * rec
    return x * rec, np.abs(x) * e_rec + np.abs(rec) * u + u * e_rec + 2 * u


def encode_fixed_point(x, precision_bits: int = 16) -> np.ndarray:
    """CrypTen's encoding, in NumPy: ``trunc(x * 2^b)`` as int64 ring elements."""
    return np.trunc(np.asarray(x, dtype=np.float64) * 2.0**precision_bits).astype(np.int64)


def beaver_multiply(x_shares: Sequence[int], y_shares: Sequence[int], rng: np.random.Generator,
                    precision_bits: int = 16) -> dict:
    """One Beaver multiplication on two-party additive shares in Z_{2^64}, simulated in one process
    (for teaching; CrypTen does the same across processes).

    A dealer hands out shares of a random triple ``(a, b, c = ab)``. The parties open ``e = x - a`` and
    ``f = y - b`` (uniform, so they reveal nothing), then party i computes
    ``z_i = c_i + e b_i + f a_i (+ e f for party 0)``, shares of ``xy`` at scale ``2^(2b)``; each party
    then divides its own share by ``2^b`` (CrypTen's 2-party truncation, off by at most one unit and,
    with tiny probability, by a huge amount when the shares wrap around). Returns every intermediate.
    """
    with np.errstate(over="ignore"):
        x0, x1 = (np.uint64(int(s) % 2**64) for s in x_shares)
        y0, y1 = (np.uint64(int(s) % 2**64) for s in y_shares)
        a, b = (np.uint64(v) for v in rng.integers(0, 2**64, size=2, dtype=np.uint64))
        c = a * b
        a0, b0, c0 = (np.uint64(v) for v in rng.integers(0, 2**64, size=3, dtype=np.uint64))
        a1, b1, c1 = a - a0, b - b0, c - c0
        e = (x0 - a0) + (x1 - a1)  # opened
        f = (y0 - b0) + (y1 - b1)  # opened
        z0 = c0 + e * b0 + f * a0 + e * f
        z1 = c1 + e * b1 + f * a1
        scale = 2**precision_bits
        trunc = lambda v: v // scale if v >= 0 else -((-v) // scale)  # noqa: E731  toward zero, as CrypTen
        t0, t1 = trunc(int(z0.view(np.int64))), trunc(int(z1.view(np.int64)))
        product = int((z0 + z1).view(np.int64))
    return {"triple": (int(a), int(b), int(c)), "e": int(e.view(np.int64)), "f": int(f.view(np.int64)),
            "z_shares": (int(z0.view(np.int64)), int(z1.view(np.int64))),
            "product": product, "truncated_shares": (t0, t1),
            "result": ((t0 + t1 + 2**63) % 2**64 - 2**63) / scale}


def decode_exact(ring, scale: int) -> np.ndarray:
    """Decode revealed fixed-point ring elements exactly, in float64: ``ring / scale``.

    CrypTen 0.4.1's own ``FixedPointEncoder.decode`` (used by ``get_plain_text``) floor-divides negative
    values by ``scale - 1`` instead of ``scale`` and computes in float32: a negative value whose
    fractional part lies within about ``|v| / scale`` above an integer comes back exactly 1 too low
    (e.g. -111.9994 decodes as -112.9994). Use this function on ``crypten_tensor.reveal()`` instead.
    """
    arr = ring.numpy() if hasattr(ring, "numpy") else np.asarray(ring)
    return arr.astype(np.int64).astype(np.float64) / float(scale)


# ---------------------------------------------------------------------------------- party function

def _apply(op: str, x, y):
    if op == "add":
        return x + y
    if op == "mul":
        return x * y
    if op == "div":
        return x.div(y)
    return getattr(x, op)()


def secure_ops_party(rank: int, ops: Sequence[str], n_inputs: int, n_reps: int,
                     precision_bits: Sequence[int], overrides: Mapping, own: Mapping) -> dict:
    """Party function for :func:`ppal_lab.secure.run_parties` (world size 2).

    For every precision in ``precision_bits``, every op and every repeat, party 0 shares its ``x`` and
    party 1 its ``y`` (binary ops; for unary ops only party 0 has an input), both run the op on the
    shares, then reveal the result. ``own[(op, rep)]`` holds this party's operand (a float64 array of
    length ``n_inputs``); the peer's operand never reaches this process.

    Returns ``{"results": {(bits, op, rep): {"exact": ..., "crypten": ...}}, "cost": {(bits, op, rep):
    {"rounds", "bytes", "time_s"}}, "demo": ...}``. The result is revealed once as ring elements and
    decoded twice: exactly (:func:`decode_exact`) and by CrypTen's decoder (which has a bug for some
    negative values). The cost covers the op alone (not sharing the inputs, not revealing) as counted
    by *this* party; ``demo`` holds this party's raw share of the first few ``x`` of ``mul`` (to show
    that a share alone looks random).
    """
    import torch

    from ppal_lab.secure.crypten_compat import crypten

    torch.set_num_threads(1)  # small vectors: extra threads only contend for the CPU with the peer
    comm = crypten.comm.get()
    results, cost, demo = {}, {}, {}
    with crypten.cfg.temp_override(dict(overrides)):
        for bits in precision_bits:
            crypten.cfg.encoder.precision_bits = int(bits)  # cfg is per process: both parties set it
            for op in ops:
                arity = OPS[op].arity
                for rep in range(n_reps):
                    mine = own.get((op, rep))
                    if rank == 0:
                        x_plain, y_plain = torch.as_tensor(mine["x"], dtype=torch.float64), None
                    else:
                        x_plain = torch.empty(n_inputs, dtype=torch.float64)
                        y_plain = torch.as_tensor(mine["y"], dtype=torch.float64) if arity == 2 else None
                    x = crypten.cryptensor(x_plain, src=0)
                    y = None
                    if arity == 2:
                        if rank == 0:
                            y_plain = torch.empty(n_inputs, dtype=torch.float64)
                        y = crypten.cryptensor(y_plain, src=1)
                    if op == "mul" and rep == 0 and bits == precision_bits[0]:
                        demo = {"x_share": x.share[:4].clone().numpy(),
                                "precision_bits": int(bits)}
                    comm.barrier()  # both parties start the op together
                    comm.reset_communication_stats()
                    start = time.perf_counter()
                    z = _apply(op, x, y)
                    elapsed = time.perf_counter() - start
                    raw = comm.get_communication_stats()
                    cost[(int(bits), op, rep)] = {"rounds": int(raw["rounds"]),
                                                  "bytes": float(raw["bytes"]), "time_s": elapsed}
                    raw = z.reveal()  # the ring element x * 2^b, opened (one communication)
                    results[(int(bits), op, rep)] = {
                        "exact": decode_exact(raw, z.encoder.scale),
                        "crypten": z.encoder.decode(raw).double().numpy()}
    return {"results": results, "cost": cost, "demo": demo}


# ---------------------------------------------------------------------------------------- driver

@dataclass
class OpTable:
    """What :func:`run_op_table` measured.

    ``samples``: one row per input (op, precision_bits, rep, x, y, key operand, float64 reference,
    float32 result, secure result decoded exactly, the same decoded by CrypTen 0.4.1, CrypTen's algorithm
    in float64 (``approx``) with its rounding bound, and the errors: ``approx_err`` = approximation
    error, ``rounding_err`` = |secure - approx| = fixed-point rounding error). ``cost``: one row per (op, precision_bits, rep):
    rounds (party 0's communication calls), bytes (2-party total = (party 0 + party 1) / 2, CrypTen's
    convention), time of the op in seconds (party 0's clock, waiting included). ``wall_s``: the
    whole run including process start-up. ``demo``: raw shares from each party.
    """

    samples: pd.DataFrame
    cost: pd.DataFrame
    wall_s: float
    n_inputs: int
    demo: list = field(default_factory=list)

    def per_rep(self) -> pd.DataFrame:
        """Error statistics per (op, precision_bits, rep) -- the unit that seeds are repeated over."""
        s = self.samples
        rel_ok = s["ref64"].abs() >= REL_FLOOR
        s = s.assign(rel_secure=np.where(rel_ok, s["abs_err_secure"] / s["ref64"].abs(), np.nan),
                     rel_f32=np.where(rel_ok, s["abs_err_f32"] / s["ref64"].abs(), np.nan),
                     decode_slip=(s["crypten_decoded"] - s["secure"]).abs() > 0.5,
                     within_bound=s["rounding_err"] <= s["rounding_bound"],
                     bound_use=s["rounding_err"] / s["rounding_bound"])
        g = s.groupby(["op", "precision_bits", "rep"], sort=False)
        out = g.agg(max_abs_err=("abs_err_secure", "max"), mean_abs_err=("abs_err_secure", "mean"),
                    max_rel_err=("rel_secure", "max"), median_ulp32=("ulp_err_secure", "median"),
                    max_abs_err_f32=("abs_err_f32", "max"), max_rel_err_f32=("rel_f32", "max"),
                    median_ulp32_f32=("ulp_err_f32", "median"),
                    max_abs_err_crypten_decode=("abs_err_crypten_decode", "max"),
                    decode_slips=("decode_slip", "sum"),
                    max_approx_err=("approx_err", "max"), max_rounding_err=("rounding_err", "max"),
                    within_bound=("within_bound", "mean"), max_bound_use=("bound_use", "max")
                    ).reset_index()
        return out.merge(self.cost, on=["op", "precision_bits", "rep"])

    def summary(self) -> pd.DataFrame:
        """Mean over repeats of :meth:`per_rep`, one row per (op, precision_bits)."""
        r = self.per_rep()
        agg = r.groupby(["op", "precision_bits"], sort=False).mean(numeric_only=True).drop(columns="rep")
        agg["bytes_per_element"] = agg["bytes"] / self.n_inputs
        agg.insert(0, "input range", [OPS[op].range_text() for op, _ in agg.index])
        return agg


def _check_overrides(overrides) -> dict:
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ParameterError("overrides", overrides, "a dict of CrypTen settings")
    for key, value in overrides.items():
        if key not in CFG_OVERRIDES:
            raise ParameterError("overrides", key, "one of " + ", ".join(CFG_OVERRIDES))
        _, low, high = CFG_OVERRIDES[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ParameterError(key, value, f"an int in [{low}, {high}]")
        check_range(key, value, low, high)
    return {k: int(v) for k, v in overrides.items()}


def run_op_table(ops: Sequence[str] = OP_NAMES, n_inputs: int = 1000, n_seeds: int = 5, seed: int = 0,
                 precision_bits: int | Sequence[int] = 16, overrides: Mapping | None = None,
                 timeout: float = 300.0) -> OpTable:
    """Measure every op in ``ops`` on ``n_inputs`` random inputs for ``n_seeds`` seeds (seed, seed + 1,
    ...) and every precision in ``precision_bits``, in **one** start of two CrypTen parties.

    The inputs of repeat k are drawn from ``numpy.random.default_rng([seed, k, op index])``; the
    CrypTen players and the dealer are seeded from ``seed`` (reproducible and therefore insecure: an
    experiment, not a deployment; the secure results depend on the dealer's triples through rounding).
    ``overrides`` changes CrypTen's approximation settings (:data:`CFG_OVERRIDES`).
    """
    from ppal_lab.secure.twoparty import run_parties

    if isinstance(ops, str) or not isinstance(ops, Sequence) or not ops:
        raise ParameterError("ops", ops, "a non-empty list of ops from " + ", ".join(OP_NAMES))
    for op in ops:
        check_choice("ops", op, OP_NAMES)
    ops = list(dict.fromkeys(ops))
    for name, value, low, high in (("n_inputs", n_inputs, 1, 1_000_000), ("n_seeds", n_seeds, 1, 100),
                                   ("seed", seed, 0, 2**32 - 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ParameterError(name, value, f"an int in [{low}, {high}]")
        check_range(name, value, low, high)
    if isinstance(precision_bits, (int, np.integer)):
        bits_list = [precision_bits]
    elif isinstance(precision_bits, Sequence) and not isinstance(precision_bits, str):
        bits_list = list(precision_bits)
    else:
        bits_list = []
    if not bits_list:
        raise ParameterError("precision_bits", precision_bits, "an int or a non-empty list of ints")
    for b in bits_list:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
            raise ParameterError("precision_bits", b, f"an int in {list(PRECISION_BITS_RANGE)}")
        check_range("precision_bits", b, *PRECISION_BITS_RANGE)
    bits_list = [int(b) for b in dict.fromkeys(bits_list)]
    overrides = _check_overrides(overrides)

    inputs = {}
    for k in range(n_seeds):
        for i, op in enumerate(ops):
            rng = np.random.default_rng([seed, k, OP_NAMES.index(op)])
            inputs[(op, k)] = draw_inputs(op, n_inputs, rng)
    own0 = {key: {"x": x} for key, (x, _) in inputs.items()}
    own1 = {key: {"y": y} for key, (_, y) in inputs.items() if y is not None}
    res = run_parties(secure_ops_party, 2, args=(ops, n_inputs, n_seeds, bits_list, overrides),
                      party_args=[(own0,), (own1,)], timeout=timeout, verbose_comm=True, seed=seed,
                      dealer_seed=seed)  # an experiment: the dealer reproducible too (rounding depends on it)

    rows, cost_rows = [], []
    for (bits, op, rep), revealed in res[0]["results"].items():
        secure, crypten_decoded = revealed["exact"], revealed["crypten"]
        if not np.array_equal(secure, res[1]["results"][(bits, op, rep)]["exact"]):
            raise RuntimeError(f"the two parties revealed different results for {op}")  # never expected
        x, y = inputs[(op, rep)]
        ref64, f32 = reference(op, x, y), reference(op, x, y, np.float32).astype(np.float64)
        approx, bound = crypten_algorithm(op, x, y, bits, overrides)
        key = y if OPS[op].plot_against == "y" else x
        ulp = ulp32(ref64)
        rows.append(pd.DataFrame({
            "op": op, "precision_bits": bits, "rep": rep, "x": x, "y": np.nan if y is None else y,
            "key": key, "ref64": ref64, "f32": f32, "secure": secure, "crypten_decoded": crypten_decoded,
            "abs_err_crypten_decode": np.abs(crypten_decoded - ref64),
            "approx": approx, "approx_err": np.abs(approx - ref64), "rounding_err": np.abs(secure - approx),
            "rounding_bound": bound,
            "abs_err_secure": np.abs(secure - ref64), "abs_err_f32": np.abs(f32 - ref64),
            "ulp_err_secure": np.abs(secure - ref64) / ulp, "ulp_err_f32": np.abs(f32 - ref64) / ulp}))
        c0, c1 = res[0]["cost"][(bits, op, rep)], res[1]["cost"][(bits, op, rep)]
        cost_rows.append({"op": op, "precision_bits": bits, "rep": rep, "rounds": c0["rounds"],
                          "bytes": (c0["bytes"] + c1["bytes"]) / 2, "time_s": c0["time_s"]})
    return OpTable(pd.concat(rows, ignore_index=True), pd.DataFrame(cost_rows), res.wall_s, n_inputs,
                   [r["demo"] for r in res])
