"""Shamir t-out-of-n sharing (ppal_lab.secure.shamir): privacy, reconstruction, arithmetic, traffic, validation.

Statistical tests: each uses a fixed seed, so it is deterministic; with a fresh seed a correct scheme
would fail one of them with probability ALPHA. The seven tests below that a correct scheme must pass
together have a family-wise false-positive rate of at most 7 * ALPHA = 0.7% (Bonferroni). The power
checks show that the same tests do reject when the secret leaks (t + 1 shares, a dealer whose
randomness is not uniform, a degree reduction whose mask is small).
"""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from scipy import stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.secure.shamir import (DETERMINISTIC_MR_BOUND, MERSENNE_61, Shamir, Sharing, all_subsets,
                                    circuit_trial, evaluate_plain, evaluate_shared, independence_test,
                                    is_prime, opened_observations, random_circuit, share_observations)

ALPHA = 1e-3
SMALL_P = 13
SECRETS = (0, 1, 6, 12)


# ------------------------------------------------------------------------------------------- privacy

@pytest.mark.parametrize("parties, seed", [((1, 2), 0), ((3, 5), 1), ((2, 4), 2)])
def test_t_shares_are_independent_of_the_secret(parties, seed):
    """Contingency test, secret x joint value of t = 2 shares in GF(13)^2 (169 cells, ~60 expected each)."""
    scheme = Shamir(2, 5, SMALL_P, rng=seed)
    res = independence_test({s: share_observations(scheme, s, parties, 10_000) for s in SECRETS})
    assert res["table"].shape == (len(SECRETS), SMALL_P**2) and res["min_expected"] >= 5
    assert res["dof"] == (len(SECRETS) - 1) * (SMALL_P**2 - 1)
    assert res["pvalue"] > ALPHA


def test_t_shares_are_uniform_for_one_secret():
    """Stronger than independence, and what the theory says: their joint law is uniform on GF(13)^2."""
    counts = np.bincount(share_observations(Shamir(2, 5, SMALL_P, rng=10), 7, (1, 4), 30_000),
                         minlength=SMALL_P**2)
    assert stats.chisquare(counts).pvalue > ALPHA


def test_one_share_is_uniform_in_a_large_field():
    """Kolmogorov-Smirnov: share / p of one party is U(0, 1) in GF(2^61 - 1), for t = 1 and t = 3."""
    for t, n, seed in [(1, 3, 20), (3, 7, 21)]:
        scheme = Shamir(t, n, rng=seed)
        shares = scheme.share_many(123456789, 4000)[:, n - 1].astype(float) / scheme.p
        assert stats.kstest(shares, "uniform").pvalue > ALPHA


def test_values_opened_in_degree_reductions_are_independent_of_the_product():
    """What the parties see while multiplying (d = ab - r) does not depend on ab."""
    scheme, rng = Shamir(1, 3, SMALL_P, rng=30), np.random.default_rng(30)
    res = independence_test({v: opened_observations(scheme, v, 400, rng) for v in SECRETS})
    assert res["min_expected"] >= 5 and res["pvalue"] > ALPHA


def test_power_t_plus_one_shares_depend_on_the_secret():
    """The test is not blind: t + 1 shares determine the secret."""
    scheme = Shamir(1, 3, SMALL_P, rng=41)
    assert independence_test({s: share_observations(scheme, s, (1, 2), 500) for s in SECRETS})["pvalue"] < 1e-6


class _SmallCoefficients:
    """A leaky dealer's randomness: polynomial coefficients from {0, 1, 2} instead of the whole field."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def array(self, p, shape):
        return self.rng.integers(0, 3, size=shape)

    def below(self, p, size):
        return [int(v) for v in self.rng.integers(0, 3, size=size)]


def test_power_a_dealer_with_non_uniform_randomness_is_caught():
    scheme = Shamir(2, 5, SMALL_P, rng=42)
    scheme.rand = _SmallCoefficients(42)
    res = independence_test({s: share_observations(scheme, s, (1, 2), 2000) for s in SECRETS})
    assert res["pvalue"] < 1e-6


class _SmallMask(Shamir):
    """A leaky degree reduction: the mask r is drawn from {0, 1, 2}, so the opened d = v - r is near v."""

    def double_random(self):
        r = int(self._mask_rng.integers(0, 3))
        return self.share(r), self.share(r, 2 * self.t)


def test_power_a_degree_reduction_with_a_small_mask_is_caught():
    scheme, rng = _SmallMask(1, 3, SMALL_P, rng=43), np.random.default_rng(43)
    scheme._mask_rng = np.random.default_rng(44)
    res = independence_test({v: opened_observations(scheme, v, 200, rng) for v in SECRETS})
    assert res["pvalue"] < 1e-6


# ------------------------------------------------------------------------------------ reconstruction

@pytest.mark.parametrize("t, n", [(1, 2), (1, 3), (2, 5), (3, 7), (4, 6)])
def test_any_t_plus_one_shares_reconstruct(t, n):
    scheme = Shamir(t, n, rng=t * 100 + n)
    rng = np.random.default_rng(n)
    for secret in [0, 1, MERSENNE_61 - 1, *map(int, rng.integers(0, MERSENNE_61, 5))]:
        sharing = scheme.share(secret)
        for k in range(t + 1, n + 1):
            for subset in all_subsets(n, k):
                assert scheme.reconstruct(sharing, subset) == secret
        with pytest.raises(ParameterError, match="at least degree"):
            scheme.reconstruct(sharing, range(1, t + 1))


def test_t_shares_are_consistent_with_every_secret():
    """Information-theoretic privacy, constructively: for each candidate secret s' there is exactly one
    degree-t polynomial through the t shares and (0, s') -- so t shares rule out nothing."""
    scheme = Shamir(2, 4, SMALL_P, rng=50)
    sharing = scheme.share(9)
    seen = set()
    for candidate in range(SMALL_P):
        pts = [(0, candidate), (1, sharing.shares[0]), (2, sharing.shares[1])]
        share3 = scheme.interpolate_at(pts, 3)  # the polynomial through these t + 1 points, at x = 3
        seen.add((candidate, share3))
        assert scheme.reconstruct([(1, sharing.shares[0]), (2, sharing.shares[1]), (3, share3)]) == candidate
    assert len(seen) == SMALL_P


def test_reconstruct_accepts_mappings_and_pairs():
    scheme = Shamir(1, 3, rng=1)
    s = scheme.share(42)
    assert scheme.reconstruct({1: s.shares[0], 3: s.shares[2]}) == 42
    assert scheme.reconstruct([(2, s.shares[1]), (3, s.shares[2])]) == 42
    with pytest.raises(ParameterError):
        scheme.reconstruct([(1, 5), (1, 6)])  # the same party twice
    with pytest.raises(ParameterError):
        scheme.reconstruct(s, [1, 4])  # no party 4


# ---------------------------------------------------------------------------------------- arithmetic

@pytest.mark.parametrize("t, n, p", [(1, 3, MERSENNE_61), (2, 5, MERSENNE_61), (3, 7, MERSENNE_61),
                                     (2, 5, SMALL_P)])
def test_random_circuits_of_additions_and_multiplications_are_exact(t, n, p):
    scheme = Shamir(t, n, p, rng=7 * t + n)
    rng = np.random.default_rng(p % 1000 + t)
    for _ in range(40):
        gates = random_circuit(4, 12, rng)
        inputs = [int(v) for v in rng.integers(0, min(p, 2**62), 4)]
        plain = evaluate_plain(gates, inputs, p)
        shared = evaluate_shared(scheme, gates, [scheme.share(v) for v in inputs])
        for wire, value in zip(shared, plain):
            assert scheme.reconstruct(wire) == value
            assert wire.degree == t and scheme.degree_of(wire) <= t
        out = shared[-1]
        for subset in itertools.islice(all_subsets(n, t + 1), 5):
            assert scheme.reconstruct(out, subset) == plain[-1]


def test_public_constants_and_subtraction_are_local():
    scheme = Shamir(2, 5, rng=3)
    a = scheme.share(100)
    assert scheme.reconstruct(a + 5) == 105
    assert scheme.reconstruct(a.scale(3)) == 300
    assert scheme.reconstruct(a - scheme.share(1)) == 99
    assert scheme.reconstruct(-a) == scheme.p - 100
    assert scheme.degree_of(a.scale(3)) == 2


def test_degree_reduction_keeps_the_degree_at_t():
    scheme = Shamir(2, 5, rng=4)
    a, b = scheme.share(11), scheme.share(13)
    assert scheme.degree_of(a) == 2 and scheme.degree_of(b) == 2  # exactly t with prob. 1 - 1/p
    h = scheme.mul_local(a, b)
    assert h.degree == 4 and scheme.degree_of(h) == 4
    assert scheme.reconstruct(h) == 143  # all n = 2t + 1 points recover a degree-2t polynomial
    with pytest.raises(ParameterError):
        scheme.reconstruct(h, range(1, 4))  # t + 1 shares are not enough for degree 2t
    # without reduction the degree keeps growing: a^2 b^2 would need degree 8 >= n
    assert scheme.mul_local(h, h).degree == 8
    r_t, r_2t = scheme.double_random()
    assert scheme.degree_of(r_t) == 2 and scheme.degree_of(r_2t) == 4
    assert scheme.reconstruct(r_t) == scheme.reconstruct(r_2t)
    c = scheme.reduce_degree(h)
    assert c.degree == 2 and scheme.degree_of(c) == 2 and scheme.reconstruct(c) == 143
    for subset in all_subsets(5, 3):
        assert scheme.reconstruct(c, subset) == 143
    # repeated multiplications stay at degree t
    x = a
    for _ in range(6):
        x = scheme.mul(x, b)
        assert scheme.degree_of(x) == 2
    assert scheme.reconstruct(x) == 11 * 13**6 % scheme.p


@pytest.mark.parametrize("t, n", [(1, 3), (2, 5), (3, 7)])
def test_traffic_counted_from_messages_matches_the_protocol(t, n):
    """Exact counts: a dealer outside the parties sends n shares; opening sends n(n-1) (each party to
    each other); a multiplication sends 2n(n-1) for the double random sharing (each party deals twice
    and keeps its own shares) plus n(n-1) for the opening, in two rounds; additions send nothing."""
    scheme = Shamir(t, n, rng=5)
    a, b = scheme.share(2), scheme.share(3)
    assert (scheme.comm.elements, scheme.comm.rounds) == (2 * n, 0)
    scheme.comm.reset()
    scheme.share(4, dealer=1)
    assert scheme.comm.elements == n - 1
    scheme.comm.reset()
    assert scheme.open(a) == 2 and (scheme.comm.elements, scheme.comm.rounds) == (n * (n - 1), 1)
    scheme.comm.reset()
    assert scheme.reconstruct(scheme.add(a, b)) == 5 and scheme.comm.elements == 0
    assert scheme.reconstruct(scheme.mul(a, b)) == 6
    assert (scheme.comm.elements, scheme.comm.rounds) == (3 * n * (n - 1), 2) and len(scheme.comm.opened) == 1


def test_circuit_trial_counts_the_traffic_of_its_gates():
    """Inputs cost n each, every multiplication 3n(n-1), every addition nothing."""
    t, n = 2, 5
    res = circuit_trial(Shamir(t, n, rng=8), 6, np.random.default_rng(8), n_inputs=4, n_gates=10)
    assert res["multiplications"] > 0
    assert res["gate_elements"] == res["multiplications"] * 3 * n * (n - 1)
    assert res["elements_sent"] == 6 * 4 * n + res["gate_elements"]
    assert res["rounds"] == 2 * res["multiplications"]


def test_multiplication_needs_n_at_least_2t_plus_1():
    scheme = Shamir(2, 4, rng=6)  # sharing works ...
    a = scheme.share(3)
    assert scheme.reconstruct(a) == 3
    with pytest.raises(ParameterError, match="2t \\+ 1 = 5"):  # ... multiplying does not
        scheme.mul(a, a)
    with pytest.raises(ParameterError):
        scheme.double_random()


def test_seeded_runs_repeat_and_unseeded_runs_use_the_os_generator():
    assert Shamir(2, 5, rng=9).share(77) == Shamir(2, 5, rng=9).share(77)
    assert Shamir(2, 5, rng=random.Random(1)).share(77) == Shamir(2, 5, rng=random.Random(1)).share(77)
    secure = Shamir(2, 5)
    assert not secure.rand.seeded
    a, b = secure.share(77), secure.share(77)
    assert a != b and secure.reconstruct(a) == secure.reconstruct(b) == 77


def test_huge_prime_modulus_draws_uniform_elements():
    p = 2**127 - 1
    scheme = Shamir(1, 3, p, rng=np.random.default_rng(0))
    s = scheme.share(p - 5)
    assert scheme.reconstruct(s) == p - 5 and max(s.shares) < p
    assert max(s.shares) > 2**64  # not confined to 64 bits


# -------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, name", [
    ({"t": 3, "n": 3}, "t"), ({"t": 5, "n": 3}, "t"), ({"t": 1, "n": 1}, "n"), ({"t": 0, "n": 3}, "t"),
    ({"t": 1, "n": 3, "modulus": 15}, "modulus"), ({"t": 1, "n": 3, "modulus": 561}, "modulus"),
    ({"t": 1, "n": 3, "modulus": 2**61}, "modulus"), ({"t": 1, "n": 3, "modulus": 3}, "modulus"),
    ({"t": 1, "n": 3, "modulus": 1}, "modulus"), ({"t": 1.0, "n": 3}, "t"), ({"t": True, "n": 3}, "t"),
    ({"t": 1, "n": "3"}, "n"), ({"t": 1, "n": 3, "rng": -1}, "rng"), ({"t": 1, "n": 3, "rng": "x"}, "rng"),
])
def test_bad_parameters_raise_parameter_error(kwargs, name):
    with pytest.raises(ParameterError) as err:
        Shamir(**kwargs)
    assert err.value.name == name


@pytest.mark.parametrize("secret", [-1, MERSENNE_61, 2**70, 1.5, "7", True])
def test_secret_out_of_the_field_is_rejected(secret):
    with pytest.raises(ParameterError, match="secret"):
        Shamir(1, 3, rng=0).share(secret)


def test_mixing_sharings_of_different_schemes_is_rejected():
    a = Shamir(1, 3, rng=0).share(1)
    b = Shamir(1, 4, rng=0).share(1)
    with pytest.raises(ParameterError):
        a + b
    with pytest.raises(ParameterError):
        Shamir(1, 3, rng=0).mul_local(a, b)


def test_circuit_and_test_arguments_are_validated():
    rng = np.random.default_rng(0)
    with pytest.raises(ParameterError):
        random_circuit(0, 3, rng)
    with pytest.raises(ParameterError):
        random_circuit(2, 3, rng, p_mul=1.5)
    with pytest.raises(ParameterError, match="parties"):
        share_observations(Shamir(2, 5, SMALL_P, rng=0), 0, (1, 6), 100)
    with pytest.raises(ParameterError, match="n_sharings"):
        share_observations(Shamir(2, 5, SMALL_P, rng=0), 0, (1, 2), 0)
    with pytest.raises(ParameterError, match="observations"):
        independence_test({0: [1, 2, 3]})                      # one secret: nothing to compare
    with pytest.raises(ParameterError, match="dealer"):
        Shamir(2, 5, SMALL_P, rng=0).share(1, dealer=6)


# ---------------------------------------------------------------------------------------- primality

def test_is_prime_matches_sympy():
    sympy = pytest.importorskip("sympy")
    for n in range(-3, 20_000):
        assert is_prime(n) == sympy.isprime(n), n
    hard = [561, 1105, 1729, 2047, 3215031751, 2152302898747, 3474749660383, 341550071728321,
            3825123056546413051, 318665857834031151167461, 3317044064679887385961981,
            2**61 - 1, 2**61 + 1, 2**89 - 1, 2**89 + 1, 2**107 - 1, 2**127 - 1, 2**127 + 1]
    for n in hard:
        assert is_prime(n) == sympy.isprime(n), n
    assert DETERMINISTIC_MR_BOUND < 2**89 - 1  # the last ones take the sympy path


def test_sharing_dataclass_addition_with_constants():
    s = Sharing((1, 2, 3), 1, 13)
    assert (s + 12).shares == (0, 1, 2)
    assert (12 + s).shares == (0, 1, 2)
