"""Shamir's t-out-of-n secret sharing over a prime field, written from scratch for teaching.

The scheme (Shamir 1979) and the way parties compute on shares follow Appendix B of seed 002, whose
notation we keep: a secret ``s`` in the field :math:`\\mathbb{F}_p` is shared with a random polynomial
``f`` of degree at most ``t`` with ``f(0) = s``; party ``i`` (numbered 1..n) receives ``f(i)``.

* any ``t + 1`` shares determine ``f`` and hence ``s`` (Lagrange interpolation at 0);
* any ``t`` shares are uniformly distributed whatever ``s`` is, so they say nothing about it;
* addition is local: the shares ``f(i) + g(i)`` lie on ``f + g``, again of degree ``t``;
* multiplication of shares is local too, but ``f(i) g(i)`` lie on ``f g`` of degree ``2t``: without a
  *degree reduction* the next multiplication would reach ``4t`` and soon no ``n`` points determine the
  polynomial. The reduction uses a random ``r`` shared twice, with degree ``t`` (``[r]_t``) and with
  degree ``2t`` (``[r]_2t``): the parties open ``d = ab - r`` from the degree-``2t`` shares of
  ``fg - [r]_2t`` (this needs ``n >= 2t + 1`` points) and set ``[ab]_t = d + [r]_t``. Since ``r`` is
  uniform and unknown to any ``t`` parties, the opened ``d`` is uniform too and reveals nothing.
  ``r = r_1 + ... + r_n`` where party ``j`` picks ``r_j`` and deals it twice; one honest party suffices
  to keep ``r`` secret. (This double-sharing trick is due to Damgard and Nielsen 2007; BGW 1988 reduced
  the degree differently.)

All parties are simulated in one process; every message one party sends another passes through
:meth:`CommCount.send`, which counts the field elements actually sent. It is for teaching: Python
integers, no side-channel care, and a seeded random generator is *insecure* (anyone with the seed can
recompute the polynomials). With ``rng=None`` the coefficients come from :mod:`secrets` (the operating
system's CSPRNG).
"""
from __future__ import annotations

import itertools
import math
import secrets
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from ppal_lab.compendium.errors import ParameterError

__all__ = [
    "MERSENNE_61", "DETERMINISTIC_MR_BOUND", "is_prime", "Sharing", "CommCount", "Shamir",
    "random_circuit", "evaluate_plain", "evaluate_shared", "share_observations", "opened_observations",
    "independence_test", "all_subsets", "reconstruction_rate", "circuit_trial",
]

MERSENNE_61 = 2**61 - 1
"""Default field modulus: the Mersenne prime 2^61 - 1 (field elements fit in 61 bits)."""

_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
DETERMINISTIC_MR_BOUND = 3_317_044_064_679_887_385_961_981
"""Miller-Rabin with the 13 prime bases up to 41 is *deterministic* below this bound (~3.3e24, Sorenson
and Webster 2015); above it :func:`is_prime` asks sympy (Baillie-PSW) when it is installed."""


# ------------------------------------------------------------------------------------------ primality

def _miller_rabin(n: int, bases: Iterable[int]) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in bases:
        if a % n == 0:
            continue
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def is_prime(n: int) -> bool:
    """Whether the integer ``n`` is prime.

    Exact for ``n < DETERMINISTIC_MR_BOUND`` (deterministic Miller-Rabin). Larger ``n`` are tested with
    ``sympy.isprime`` (Baillie-PSW: no composite is known to pass it); without sympy a
    :class:`ParameterError` says so rather than guessing.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ParameterError("n", n, "an int")
    n = int(n)
    if n < 2:
        return False
    for q in _MR_BASES:
        if n % q == 0:
            return n == q
    if n < DETERMINISTIC_MR_BOUND:
        return _miller_rabin(n, _MR_BASES)
    try:
        import sympy
    except ImportError:  # pragma: no cover - sympy comes with torch
        raise ParameterError("modulus", n, f"< {DETERMINISTIC_MR_BOUND} (a larger modulus needs sympy "
                             "installed for its primality test)") from None
    return bool(sympy.isprime(n))


# ------------------------------------------------------------------------------------------ randomness

class _Randomness:
    """Uniform field elements from ``rng``: None (OS CSPRNG), an int seed, a numpy Generator or a
    :class:`random.Random`."""

    def __init__(self, rng):
        import random

        if rng is None:
            self._kind, self._rng = "secrets", None
        elif isinstance(rng, np.random.Generator):
            self._kind, self._rng = "numpy", rng
        elif isinstance(rng, random.Random):
            self._kind, self._rng = "random", rng
        elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
            self._kind, self._rng = "numpy", np.random.default_rng(int(rng))
        else:
            raise ParameterError("rng", rng, "None, an int seed >= 0, a numpy Generator or a random.Random")

    @property
    def seeded(self) -> bool:
        return self._kind != "secrets"

    def below(self, p: int, size: int) -> list[int]:
        """``size`` independent uniform integers in [0, p)."""
        if self._kind == "secrets":
            return [secrets.randbelow(p) for _ in range(size)]
        if self._kind == "random":
            return [self._rng.randrange(p) for _ in range(size)]
        if p <= 2**63:
            return [int(v) for v in self._rng.integers(0, p, size=size, dtype=np.uint64)]
        nbits, out = p.bit_length(), []  # rejection sampling from random bytes
        nbytes = (nbits + 7) // 8
        while len(out) < size:
            v = int.from_bytes(self._rng.bytes(nbytes), "big") >> (8 * nbytes - nbits)
            if v < p:
                out.append(v)
        return out

    def array(self, p: int, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform integers in [0, p) as an int64 array (numpy generators with small p only)."""
        if self._kind == "numpy" and p < 2**31:
            return self._rng.integers(0, p, size=shape, dtype=np.int64)
        return np.array(self.below(p, int(np.prod(shape))), dtype=object).reshape(shape)


# --------------------------------------------------------------------------------------------- shares

@dataclass(frozen=True)
class Sharing:
    """The ``n`` shares of one value: ``shares[i - 1]`` is party ``i``'s share, the polynomial's value
    at ``x = i``. ``degree`` is the degree bound the shares were produced with (``t`` or ``2t``)."""

    shares: tuple[int, ...]
    degree: int
    modulus: int

    @property
    def n(self) -> int:
        return len(self.shares)

    def _check_compatible(self, other: "Sharing") -> None:
        if not isinstance(other, Sharing) or other.modulus != self.modulus or other.n != self.n:
            raise ParameterError("other", type(other).__name__,
                                 f"a Sharing with the same modulus {self.modulus} and n = {self.n}")

    def __add__(self, other):
        """Local addition: a sharing of a + b (or of a + c for a public int c, added by everyone to
        the constant term -- adding c to every share shifts the polynomial by c)."""
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool):
            return Sharing(tuple((s + int(other)) % self.modulus for s in self.shares), self.degree,
                           self.modulus)
        self._check_compatible(other)
        return Sharing(tuple((a + b) % self.modulus for a, b in zip(self.shares, other.shares)),
                       max(self.degree, other.degree), self.modulus)

    __radd__ = __add__

    def __neg__(self):
        return Sharing(tuple((-s) % self.modulus for s in self.shares), self.degree, self.modulus)

    def __sub__(self, other):
        return self + (-other if isinstance(other, Sharing) else -int(other))

    def scale(self, c: int) -> "Sharing":
        """Local multiplication by a public constant ``c``."""
        return Sharing(tuple(s * int(c) % self.modulus for s in self.shares), self.degree, self.modulus)


@dataclass
class CommCount:
    """The simulated network: every message between parties goes through :meth:`send`, which counts
    the field elements sent; ``rounds`` counts the protocol steps whose messages travel together."""

    elements: int = 0
    rounds: int = 0
    opened: list = field(default_factory=list)  # values made public during degree reductions

    def send(self, sender: int, receiver: int, value: int) -> int:
        """Deliver one field element from ``sender`` to ``receiver`` (parties 1..n; 0 is a dealer who
        is not a party) and return it as received. A party's value for itself never travels."""
        if sender != receiver:
            self.elements += 1
        return value

    def reset(self) -> None:
        self.elements, self.rounds = 0, 0
        self.opened.clear()


def _check_int(name: str, value, low: int, allowed: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ParameterError(name, value, allowed or f"an int >= {low}")
    return int(value)


class Shamir:
    """Shamir t-out-of-n sharing over GF(``modulus``); the parties are simulated in this process.

    Parameters
    ----------
    t : degree of the sharing polynomials (1 <= t < n): any t shares reveal nothing, any t + 1 shares
        reconstruct. Multiplication needs n >= 2t + 1.
    n : number of parties (>= 2); party i holds the value at x = i.
    modulus : a prime p > n (default 2^61 - 1).
    rng : None (coefficients from the OS CSPRNG), or an int seed / numpy Generator / random.Random for a
        reproducible, *insecure* teaching run.
    """

    def __init__(self, t: int, n: int, modulus: int = MERSENNE_61, rng=None):
        n = _check_int("n", n, 2)
        t = _check_int("t", t, 1)
        if t >= n:
            raise ParameterError("t", t, f"an int with 1 <= t < n = {n} (t + 1 shares must exist)")
        modulus = _check_int("modulus", modulus, 2, "a prime int")
        if modulus <= n:
            raise ParameterError("modulus", modulus, f"a prime > n = {n} (each party needs its own "
                                 "non-zero evaluation point)")
        if not is_prime(modulus):
            raise ParameterError("modulus", modulus, "a prime (Z_p is a field only for prime p)")
        self.t, self.n, self.p = t, n, modulus
        self.rand = _Randomness(rng)
        self.comm = CommCount()

    def __repr__(self) -> str:
        return f"Shamir(t={self.t}, n={self.n}, modulus={self.p})"

    # --------------------------------------------------------------------------- dealing and opening
    def check_secret(self, secret) -> int:
        if isinstance(secret, bool) or not isinstance(secret, (int, np.integer)) or not 0 <= secret < self.p:
            raise ParameterError("secret", secret, f"an int in [0, {self.p - 1}] (an element of the field)")
        return int(secret)

    def random_polynomial(self, secret: int, degree: int | None = None) -> list[int]:
        """Coefficients ``[secret, a_1, ..., a_degree]`` with uniformly random ``a_k``."""
        secret = self.check_secret(secret)
        degree = self.t if degree is None else _check_int("degree", degree, 0)
        return [secret, *self.rand.below(self.p, degree)]

    def evaluate(self, coefficients: Sequence[int], x: int) -> int:
        """The polynomial at ``x`` (Horner's rule, mod p)."""
        acc = 0
        for c in reversed(coefficients):
            acc = (acc * x + c) % self.p
        return acc

    def share(self, secret: int, degree: int | None = None, dealer: int = 0) -> Sharing:
        """Deal ``secret``: evaluate a fresh random polynomial of degree ``t`` (or ``degree``) at 1..n
        and send party i its share. ``dealer`` 0 is outside the parties (n messages); a party
        1..n deals to the others and keeps its own share (n - 1 messages)."""
        return self.share_with_polynomial(secret, degree, dealer)[0]

    def share_with_polynomial(self, secret: int, degree: int | None = None, dealer: int = 0
                              ) -> tuple[Sharing, list[int]]:
        """Like :meth:`share`, also returning the polynomial's coefficients (to plot or inspect)."""
        dealer = _check_int("dealer", dealer, 0, f"0 (outside dealer) or a party in [1, {self.n}]")
        if dealer > self.n:
            raise ParameterError("dealer", dealer, f"0 (outside dealer) or a party in [1, {self.n}]")
        coeffs = self.random_polynomial(secret, degree)
        deg = len(coeffs) - 1
        if deg >= self.n:
            raise ParameterError("degree", deg, f"< n = {self.n} (otherwise no set of parties can "
                                 "reconstruct)")
        shares = tuple(self.comm.send(dealer, i, self.evaluate(coeffs, i)) for i in range(1, self.n + 1))
        return Sharing(shares, deg, self.p), coeffs

    def open(self, sharing: Sharing, degree: int | None = None) -> int:
        """Make a shared value public: every party sends its share to every other party (one round)
        and interpolates from the ``n`` shares it then holds (``degree``: the sharing's by default)."""
        self._points(sharing, None)  # same scheme
        received = {i: [(j, self.comm.send(j, i, s)) for j, s in enumerate(sharing.shares, start=1)]
                    for i in range(1, self.n + 1)}
        self.comm.rounds += 1
        # every party holds the same n points, so each interpolates the same value
        return self.reconstruct(received[1], degree=sharing.degree if degree is None else degree)

    def _points(self, shares, parties) -> list[tuple[int, int]]:
        if isinstance(shares, Sharing):
            if shares.modulus != self.p or shares.n != self.n:
                raise ParameterError("shares", "Sharing", f"shares over modulus {self.p} for n = {self.n}")
            parties = range(1, self.n + 1) if parties is None else parties
            pts = []
            for i in parties:
                i = _check_int("parties", i, 1)
                if i > self.n:
                    raise ParameterError("parties", i, f"party numbers in [1, {self.n}]")
                pts.append((i, shares.shares[i - 1]))
        elif isinstance(shares, Mapping):
            pts = [(_check_int("party", i, 1), int(v) % self.p) for i, v in shares.items()]
        else:
            pts = [(_check_int("party", i, 1), int(v) % self.p) for i, v in shares]
        xs = [x for x, _ in pts]
        if len(set(xs)) != len(xs) or any(x % self.p == 0 for x in xs):
            raise ParameterError("parties", xs, "distinct non-zero evaluation points")
        return pts

    def lagrange_at_zero(self, xs: Sequence[int]) -> list[int]:
        """Lagrange coefficients ``l_i(0) = prod_{j != i} x_j / (x_j - x_i)`` for the points ``xs``."""
        return self.lagrange_at(xs, 0)

    def lagrange_at(self, xs: Sequence[int], at: int) -> list[int]:
        """Lagrange coefficients ``l_i(at) = prod_{j != i} (at - x_j) / (x_i - x_j)``: the value at ``at``
        of the polynomial through ``(x_i, y_i)`` is ``sum_i y_i l_i(at)``."""
        xs = [int(x) % self.p for x in xs]
        if len(set(xs)) != len(xs):
            raise ParameterError("xs", xs, "distinct evaluation points")
        out = []
        for i, xi in enumerate(xs):
            num, den = 1, 1
            for j, xj in enumerate(xs):
                if j != i:
                    num = num * (at - xj) % self.p
                    den = den * (xi - xj) % self.p
            out.append(num * pow(den, -1, self.p) % self.p)
        return out

    def interpolate_at(self, points: Sequence[tuple[int, int]], at: int) -> int:
        """The value at ``at`` of the unique polynomial of degree < len(points) through ``points``
        (any distinct x, including 0)."""
        weights = self.lagrange_at([x for x, _ in points], at)
        return sum(int(y) * w for (_, y), w in zip(points, weights)) % self.p

    def reconstruct(self, shares, parties: Iterable[int] | None = None, degree: int | None = None) -> int:
        """Interpolate the secret ``f(0)`` from shares.

        ``shares`` is a :class:`Sharing` (optionally restricted to ``parties``), a mapping
        ``{party: share}`` or a list of ``(party, share)`` pairs. At least ``degree + 1`` points are
        needed (``degree`` defaults to the sharing's degree, else ``t``); fewer raise
        :class:`ParameterError`, because fewer points are consistent with *every* secret.
        """
        pts = self._points(shares, parties)
        if degree is None:
            degree = shares.degree if isinstance(shares, Sharing) else self.t
        if len(pts) < degree + 1:
            raise ParameterError("number of shares", len(pts), f"at least degree + 1 = {degree + 1} "
                                 "(fewer shares are consistent with every secret)")
        xs = [x for x, _ in pts]
        return sum(y * l for (_, y), l in zip(pts, self.lagrange_at_zero(xs))) % self.p

    def degree_of(self, sharing: Sharing) -> int:
        """The actual degree of the polynomial through all n shares (Newton divided differences; the
        degree is the index of the last non-zero coefficient). -1 for the zero polynomial."""
        xs = list(range(1, self.n + 1))
        coef = list(sharing.shares)
        for level in range(1, self.n):
            for k in range(self.n - 1, level - 1, -1):
                coef[k] = (coef[k] - coef[k - 1]) * pow(xs[k] - xs[k - level], -1, self.p) % self.p
        nonzero = [k for k, c in enumerate(coef) if c]
        return nonzero[-1] if nonzero else -1

    # ------------------------------------------------------------------------------------ arithmetic
    @staticmethod
    def add(a: Sharing, b: Sharing) -> Sharing:
        """Local addition (no communication)."""
        return a + b

    def mul_local(self, a: Sharing, b: Sharing) -> Sharing:
        """Each party multiplies its two shares: a sharing of ``ab`` of degree ``deg a + deg b``."""
        a._check_compatible(b)
        return Sharing(tuple(x * y % self.p for x, y in zip(a.shares, b.shares)), a.degree + b.degree,
                       self.p)

    def check_multiplication(self) -> None:
        """Raise :class:`ParameterError` unless n >= 2t + 1 (what multiplication needs)."""
        self._require_mul()

    def _require_mul(self) -> None:
        if self.n < 2 * self.t + 1:
            raise ParameterError("n", self.n, f">= 2t + 1 = {2 * self.t + 1} for multiplication (t = "
                                 f"{self.t}): all n parties together must determine a degree-2t "
                                 "polynomial")

    def double_random(self) -> tuple[Sharing, Sharing]:
        """Sharings ``[r]_t`` and ``[r]_2t`` of one random ``r`` that nobody knows.

        Every party j picks ``r_j`` and deals it to the others with a degree-t and a degree-2t
        polynomial, keeping its own shares (one round); ``r`` is the sum of all ``r_j``, so the
        sharings are the sums of the dealt sharings.
        """
        self._require_mul()
        r_t = r_2t = None
        for j in range(1, self.n + 1):
            r_j = self.rand.below(self.p, 1)[0]
            s_t, s_2t = self.share(r_j, dealer=j), self.share(r_j, 2 * self.t, dealer=j)
            r_t = s_t if r_t is None else r_t + s_t
            r_2t = s_2t if r_2t is None else r_2t + s_2t
        self.comm.rounds += 1
        return r_t, r_2t

    def reduce_degree(self, h: Sharing) -> Sharing:
        """Turn a degree-``2t`` sharing of ``v`` into a fresh degree-``t`` sharing of ``v``.

        The parties :meth:`open` ``d = v - r`` from the shares of ``h - [r]_2t`` and output
        ``d + [r]_t``. The opened ``d`` is recorded in ``self.comm.opened``: it is independent of ``v``.
        """
        self._require_mul()
        if h.degree > 2 * self.t:
            raise ParameterError("h.degree", h.degree, f"<= 2t = {2 * self.t}")
        r_t, r_2t = self.double_random()
        d = self.open(h - r_2t, degree=2 * self.t)
        self.comm.opened.append(d)
        out = r_t + d
        return Sharing(out.shares, self.t, self.p)

    def mul(self, a: Sharing, b: Sharing) -> Sharing:
        """Multiplication gate: local product (degree 2t), then :meth:`reduce_degree` (degree t)."""
        self._require_mul()
        return self.reduce_degree(self.mul_local(a, b))

    # ---------------------------------------------------------------------------- many sharings
    def share_many(self, secret: int, count: int, degree: int | None = None) -> np.ndarray:
        """``count`` independent sharings of one secret as a ``(count, n)`` array (for statistics: a
        dealing nobody sends, so nothing is counted)."""
        secret = self.check_secret(secret)
        count = _check_int("count", count, 1)
        degree = self.t if degree is None else _check_int("degree", degree, 0)
        coeffs = self.rand.array(self.p, (count, degree))
        xs = np.arange(1, self.n + 1, dtype=np.int64 if coeffs.dtype != object else object)
        acc = np.zeros((count, self.n), dtype=coeffs.dtype)
        for k in range(degree - 1, -1, -1):  # Horner: acc = (acc * x + a_k) mod p, then the secret
            acc = (acc * xs[None, :] + coeffs[:, k:k + 1]) % self.p
        return (acc * xs[None, :] + secret) % self.p


# -------------------------------------------------------------------------------------------- circuits

def random_circuit(n_inputs: int, n_gates: int, rng: np.random.Generator, p_mul: float = 0.5
                   ) -> list[tuple[str, int, int]]:
    """A random arithmetic circuit: gates ``(op, i, j)`` with ``op`` in {"add", "mul"}, whose operands
    are earlier wires (the inputs are wires 0..n_inputs-1, gate k is wire n_inputs + k)."""
    _check_int("n_inputs", n_inputs, 1)
    _check_int("n_gates", n_gates, 1)
    if not 0 <= p_mul <= 1:
        raise ParameterError("p_mul", p_mul, "in [0, 1]")
    gates = []
    for k in range(n_gates):
        wires = n_inputs + k
        op = "mul" if rng.random() < p_mul else "add"
        gates.append((op, int(rng.integers(wires)), int(rng.integers(wires))))
    return gates


def evaluate_plain(gates, inputs: Sequence[int], modulus: int) -> list[int]:
    """All wire values of the circuit computed in the clear, mod ``modulus``."""
    wires = [int(v) % modulus for v in inputs]
    for op, i, j in gates:
        wires.append((wires[i] + wires[j]) % modulus if op == "add" else wires[i] * wires[j] % modulus)
    return wires


def evaluate_shared(scheme: Shamir, gates, inputs: Sequence[Sharing]) -> list[Sharing]:
    """All wire values of the circuit computed on shares (addition local, multiplication with degree
    reduction)."""
    wires = list(inputs)
    for op, i, j in gates:
        wires.append(wires[i] + wires[j] if op == "add" else scheme.mul(wires[i], wires[j]))
    return wires


# -------------------------------------------------------------------------------------------- statistics

def _parties(scheme: Shamir, parties: Sequence[int]) -> list[int]:
    parties = [_check_int("parties", i, 1) for i in parties]
    if not parties or any(i > scheme.n for i in parties) or len(set(parties)) != len(parties):
        raise ParameterError("parties", parties, f"distinct party numbers in [1, {scheme.n}]")
    return parties


def share_observations(scheme: Shamir, secret: int, parties: Sequence[int], n_sharings: int) -> np.ndarray:
    """What ``parties`` see over ``n_sharings`` independent sharings of ``secret``: their joint shares,
    each tuple coded as one integer in [0, p^k) (base p)."""
    parties = _parties(scheme, parties)
    n_sharings = _check_int("n_sharings", n_sharings, 1)
    shares = scheme.share_many(secret, n_sharings)[:, [i - 1 for i in parties]]
    code = np.zeros(n_sharings, dtype=object if scheme.p ** len(parties) >= 2**63 else np.int64)
    for col in range(shares.shape[1]):
        code = code * scheme.p + shares[:, col].astype(code.dtype)
    return code


def opened_observations(scheme: Shamir, secret: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """The values opened by ``count`` multiplications whose product is ``secret``: each multiplies
    fresh sharings of a random non-zero ``a`` and of ``b = secret / a`` (a degree reduction opens one
    value)."""
    secret = scheme.check_secret(secret)
    count = _check_int("count", count, 1)
    start = len(scheme.comm.opened)
    for _ in range(count):
        a = int(rng.integers(1, min(scheme.p, 2**63)))
        scheme.mul(scheme.share(a), scheme.share(secret * pow(a, -1, scheme.p) % scheme.p))
    return np.array(scheme.comm.opened[start:], dtype=object if scheme.p >= 2**63 else np.int64)


def independence_test(observations: Mapping[int, Sequence[int]]) -> dict:
    """Chi-square test of independence between a secret and what is observed under it.

    ``observations[s]`` holds what was observed (one integer per independent run, e.g. from
    :func:`share_observations`) when the secret was ``s``. The contingency table secret x observed
    value (values seen under no secret dropped) goes to :func:`scipy.stats.chi2_contingency`; a
    scheme that hides the secret gives a p-value uniform on [0, 1]. The approximation needs about 5
    expected counts per cell (``min_expected``). Returns the statistic, p-value, degrees of freedom,
    the smallest expected count and the table.
    """
    from scipy import stats

    if len(observations) < 2:
        raise ParameterError("observations", list(observations), "runs under at least two secrets")
    rows = [np.asarray(list(v)) for v in observations.values()]
    if any(len(r) == 0 for r in rows):
        raise ParameterError("observations", [len(r) for r in rows], "at least one run per secret")
    values, codes = np.unique(np.concatenate(rows), return_inverse=True)
    table = np.zeros((len(rows), len(values)), dtype=np.int64)
    np.add.at(table, (np.repeat(np.arange(len(rows)), [len(r) for r in rows]), codes), 1)
    res = stats.chi2_contingency(table, correction=False)
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue), "dof": int(res.dof),
            "min_expected": float(res.expected_freq.min()), "table": table}


def all_subsets(n: int, k: int) -> list[tuple[int, ...]]:
    """All k-subsets of the parties 1..n (for reconstruction checks)."""
    return list(itertools.combinations(range(1, n + 1), k))


def reconstruction_rate(scheme: Shamir, n_secrets: int, rng: np.random.Generator,
                        max_subsets: int = 500) -> dict:
    """Share ``n_secrets`` random secrets and reconstruct each from every set of ``k >= t + 1`` parties
    (at most ``max_subsets`` sets per size, drawn at random when there are more). Also checks that
    every set of ``t`` parties is refused. Returns counts of checks and of correct reconstructions."""
    _check_int("n_secrets", n_secrets, 1)
    _check_int("max_subsets", max_subsets, 1)
    checked = correct = refused = tried = 0
    for _ in range(n_secrets):
        secret = int(rng.integers(0, min(scheme.p, 2**63)))
        sharing = scheme.share(secret)
        for k in range(scheme.t, scheme.n + 1):
            subsets = all_subsets(scheme.n, k) if math.comb(scheme.n, k) <= max_subsets else [
                tuple(sorted(rng.choice(np.arange(1, scheme.n + 1), k, replace=False).tolist()))
                for _ in range(max_subsets)]
            for subset in subsets:
                if k == scheme.t:
                    tried += 1
                    try:
                        scheme.reconstruct(sharing, subset)
                    except ParameterError:
                        refused += 1
                    continue
                checked += 1
                correct += scheme.reconstruct(sharing, subset) == secret
    return {"checked": checked, "correct": correct, "rate": correct / checked, "t_sets_tried": tried,
            "t_sets_refused": refused}


def circuit_trial(scheme: Shamir, n_circuits: int, rng: np.random.Generator, n_inputs: int = 4,
                  n_gates: int = 12) -> dict:
    """Evaluate ``n_circuits`` random circuits in the clear and on shares; count exact wires, the
    largest actual degree of any wire's sharing, the multiplications, the field elements sent in all
    (``elements_sent``, inputs dealt included) and while evaluating the gates (``gate_elements``)."""
    _check_int("n_circuits", n_circuits, 1)
    scheme.comm.reset()
    wires = exact = max_degree = n_mul = gate_elements = 0
    for _ in range(n_circuits):
        gates = random_circuit(n_inputs, n_gates, rng)
        inputs = [int(v) for v in rng.integers(0, min(scheme.p, 2**63), n_inputs)]
        plain = evaluate_plain(gates, inputs, scheme.p)
        dealt = [scheme.share(v) for v in inputs]
        before = scheme.comm.elements
        shared = evaluate_shared(scheme, gates, dealt)
        gate_elements += scheme.comm.elements - before
        wires += len(plain)
        exact += sum(scheme.reconstruct(w) == v for w, v in zip(shared, plain))
        max_degree = max(max_degree, max(scheme.degree_of(w) for w in shared))
        n_mul += sum(op == "mul" for op, _, _ in gates)
    return {"circuits": n_circuits, "wires": wires, "exact": exact, "exact_rate": exact / wires,
            "max_degree": max_degree, "multiplications": n_mul, "elements_sent": scheme.comm.elements,
            "gate_elements": gate_elements, "rounds": scheme.comm.rounds}
