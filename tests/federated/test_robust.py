"""The seed's aggregator measured on arrays, and the robust rules' breakdown behaviour on constructed cases."""
import numpy as np
import pytest
import torch
from scipy import stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.federated.robust import (RULES, SeedByzantineRobustAggregator, aggregate, centered_clipping,
                                       check_rule, median_replace_one_shift, nearest_neighbour_mixing,
                                       seed_secure_aggregate)
from ppal_lab.privacy.audit import empirical_epsilon


# ------------------------------------------------------------------ the seed's aggregator
@pytest.mark.parametrize("n", [3, 5, 10, 11, 20, 31])
@pytest.mark.parametrize("trim_fraction", [0.0, 0.1, 0.2, 0.3])
def test_seed_aggregator_is_the_plain_coordinate_median_on_flat_vectors(n, trim_fraction):
    U = np.random.default_rng(n).standard_cauchy((n, 7))
    out = seed_secure_aggregate([torch.as_tensor(u) for u in U], trim_fraction)
    np.testing.assert_array_equal(out, np.median(U, axis=0))


def test_seed_aggregator_trims_nothing_with_five_sites():
    # int(5 * 0.1) = 0: one attacker at 1e6 among 5 is not trimmed (the median still resists it)
    assert int(5 * 0.1) == 0
    U = np.zeros((5, 3))
    U[4] = 1e6
    np.testing.assert_array_equal(seed_secure_aggregate(U), np.zeros(3))


def test_seed_aggregator_collapses_a_2d_layer_and_sorts_within_client_rows():
    rng = np.random.default_rng(0)
    layers = rng.normal(size=(5, 2, 3))           # 5 clients, a (2, 3) layer each
    out = seed_secure_aggregate([torch.as_tensor(L) for L in layers])
    assert out.shape == (2,)                      # 6 parameters came back as 2 numbers
    # each row is the median of all 15 values of that row, across clients AND columns
    np.testing.assert_allclose(out, [np.median(layers[:, r, :]) for r in range(2)])
    assert not np.allclose(out[:, None], np.median(layers, axis=0))


def test_seed_aggregator_on_2d_layers_trims_clients_by_position_not_by_value():
    # 10 clients, trim 0.1 -> the first and last client IN INPUT ORDER are cut, whatever their values
    layers = np.zeros((10, 1, 2))
    layers[1:9, 0, :] = np.arange(1, 9)[:, None]  # clients 1..8 send 1..8
    layers[[0, 9]] = -10.0                        # clients 0 and 9 send -10
    assert seed_secure_aggregate(layers, 0.1)[0] == 4.5           # median of clients 1..8 only
    assert np.median(layers.reshape(-1)) == 3.5                   # all clients
    layers[[0, 5]] = layers[[5, 0]]               # the same values in another order: another answer
    assert seed_secure_aggregate(layers, 0.1)[0] != 4.5


def test_seed_class_as_written_has_no_sensitivity_or_epsilon():
    with pytest.raises(AttributeError, match="sensitivity"):
        SeedByzantineRobustAggregator().secure_aggregate([torch.zeros(3)] * 5)


def audited_epsilon(spread, n_trials=4000):
    """Empirical epsilon lower bound of the seed's noisy median (declared sensitivity 1, epsilon 1) on
    the neighbouring pair of :func:`median_replace_one_shift` with updates spread over ``spread``."""
    low, high = median_replace_one_shift(5, spread)
    rng = np.random.default_rng(1)
    out = [seed_secure_aggregate(low, sensitivity=1.0, epsilon=1.0, rng=rng)[0] for _ in range(n_trials)]
    inn = [seed_secure_aggregate(high, sensitivity=1.0, epsilon=1.0, rng=rng)[0] for _ in range(n_trials)]
    return empirical_epsilon(np.array(out), np.array(inn), delta=0.0, alpha=0.05, rng=2).epsilon_lb


def test_laplace_on_the_unclipped_median_has_no_finite_sensitivity():
    low, high = median_replace_one_shift(5, spread=10.0)
    assert np.sum(np.any(low != high, axis=1)) == 1           # neighbours: one client's update differs
    assert seed_secure_aggregate(high)[0] - seed_secure_aggregate(low)[0] == 10.0
    # updates within the declared sensitivity: the audit finds nothing above epsilon = 1 ...
    assert audited_epsilon(1.0) <= 1.0
    # ... updates spread over 10 units: a proven leak far above it (measured 6.2)
    assert audited_epsilon(10.0) > 3.0


# ------------------------------------------------------------------ the rules
def test_rules_match_their_definitions_on_random_updates():
    U = np.random.default_rng(3).normal(size=(11, 6))
    np.testing.assert_allclose(aggregate(U, "fedavg"), U.mean(0))
    np.testing.assert_allclose(aggregate(U, "median", 3), np.median(U, 0))
    for f in range(0, 6):
        np.testing.assert_allclose(aggregate(U, "trimmed_mean", f), stats.trim_mean(U, f / 11, axis=0))


def test_krum_returns_the_update_with_the_smallest_score():
    U = np.array([[0.0], [0.1], [0.2], [5.0], [9.0]])
    # f = 1: score = sum of squared distances to the n - f - 2 = 2 nearest others
    scores = [0.01 + 0.04, 0.01 + 0.01, 0.01 + 0.04, 4.8 ** 2 + 4.9 ** 2, 16 + 8.8 ** 2]
    np.testing.assert_array_equal(aggregate(U, "krum", 1), U[int(np.argmin(scores))])
    assert int(np.argmin(scores)) == 1
    # Multi-Krum keeps the n - f = 4 best scores: the three close updates and 5.0
    np.testing.assert_allclose(aggregate(U, "multikrum", 1), [(0.0 + 0.1 + 0.2 + 5.0) / 4])


def _records(U):
    from flwr.app import Array, ArrayRecord, RecordDict
    return [RecordDict({"arrays": ArrayRecord({"w": Array(u.copy())})}) for u in U]


def _vector(content):
    return content["arrays"]["w"].numpy()


def test_rules_equal_those_of_flowers_message_api_strategies_except_bulyan():
    """The in-process rules (Flower's aggregate functions) and the strategies a ServerApp runs
    (flwr.serverapp.strategy: Krum, MultiKrum, FedTrimmedAvg, FedMedian, Bulyan) pick the same updates,
    except Bulyan: the paper (El Mhamdi et al. 2018) and flwr's aggregate_bulyan select the n - 2f
    updates by Krum one at a time, removing each pick; the ServerApp strategy takes the n - 2f best
    Multi-Krum scores computed once."""
    from flwr.serverapp.strategy.bulyan import aggregate_n_closest_weights
    from flwr.serverapp.strategy.fedtrimmedavg import trim_mean
    from flwr.serverapp.strategy.multikrum import select_multikrum

    rng = np.random.default_rng(8)
    n, f = 7, 1
    bulyan_differs = 0
    for _ in range(50):
        U = rng.standard_cauchy((n, 3))
        np.testing.assert_array_equal(_vector(select_multikrum(_records(U), f, 1)[0]), aggregate(U, "krum", f))
        picked = np.mean([_vector(c) for c in select_multikrum(_records(U), f, n - f)], axis=0)
        np.testing.assert_allclose(picked, aggregate(U, "multikrum", f))
        np.testing.assert_allclose(trim_mean(U, f / n + 1e-9), aggregate(U, "trimmed_mean", f))
        np.testing.assert_array_equal(np.median(U, axis=0), aggregate(U, "median", f))
        S = [[_vector(c)] for c in select_multikrum(_records(U), f, n - 2 * f)]
        one_shot = aggregate_n_closest_weights([np.median([s[0] for s in S], axis=0)], S, n - 4 * f)[0]
        bulyan_differs += not np.allclose(one_shot, aggregate(U, "bulyan", f))
    assert bulyan_differs > 10                     # measured: 187 of 300 heavy-tailed cases


def test_aggregate_leaves_its_input_alone():
    U = np.random.default_rng(4).normal(size=(7, 3))
    before = U.copy()
    for rule in RULES:
        aggregate(U, rule, 1)
    np.testing.assert_array_equal(U, before)


@pytest.mark.parametrize("rule", ["median", "trimmed_mean", "krum", "multikrum", "bulyan", "cclip"])
def test_one_attacker_moves_fedavg_arbitrarily_but_not_the_robust_rules(rule):
    honest = np.random.default_rng(5).normal(size=(6, 4))
    for M in (1e3, 1e6):
        U = np.vstack([honest, np.full((1, 4), M)])
        assert np.abs(aggregate(U, "fedavg") - honest.mean(0)).max() > M / 8
        out = aggregate(U, rule, 1, tau=1.0, start=honest.mean(0))
        assert np.all(out >= honest.min(0) - 1.0) and np.all(out <= honest.max(0) + 1.0)


@pytest.mark.parametrize("rule", ["median", "trimmed_mean"])
def test_coordinate_rules_stay_within_the_honest_range_up_to_their_breakdown(rule):
    rng = np.random.default_rng(6)
    n = 9
    for f in range(0, 5):                         # f < n / 2
        honest = rng.normal(size=(n - f, 5))
        U = np.vstack([honest, rng.choice([-1e9, 1e9], size=(f, 5))])
        out = aggregate(U, rule, f)
        assert np.all(out >= honest.min(0)) and np.all(out <= honest.max(0))
    # at f = n/2 the attackers own the median: refused before any work
    with pytest.raises(ParameterError, match="byzantine_fraction"):
        aggregate(np.zeros((10, 2)), rule, 5)


def test_bulyan_stays_within_the_honest_range():
    rng = np.random.default_rng(7)
    honest = rng.normal(size=(9, 5))
    U = np.vstack([honest, np.full((2, 5), 1e6)])          # n = 11 = 4f + 3
    out = aggregate(U, "bulyan", 2)
    assert np.all(out >= honest.min(0)) and np.all(out <= honest.max(0))


def test_centered_clipping_on_exact_cases():
    U = np.array([[0.0], [0.0], [0.0], [100.0]])
    assert centered_clipping(U, tau=1.0)[0] == pytest.approx(0.25)           # (0 + 0 + 0 + 1) / 4
    assert centered_clipping(U, tau=1e9)[0] == pytest.approx(25.0)           # no clipping: the mean
    two = centered_clipping(U, tau=1.0, iterations=2)[0]
    assert two == pytest.approx(0.25 + (3 * -0.25 + 1.0) / 4)
    # in 2-d the clip acts on the norm of the difference
    V = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(centered_clipping(V, tau=1.0), [0.3, 0.4])


def test_nearest_neighbour_mixing_on_an_exact_case():
    U = np.array([[0.0], [1.0], [2.0], [10.0]])
    # f = 1: each update becomes the mean of its 3 nearest (itself included)
    np.testing.assert_allclose(nearest_neighbour_mixing(U, 1), [[1.0], [1.0], [1.0], [13 / 3]])  # 10: {10, 2, 1}
    np.testing.assert_allclose(nearest_neighbour_mixing(U, 0), np.full((4, 1), 3.25))
    # then the rule: the median of the mixed updates
    assert aggregate(U, "median", 1, pre="nnm")[0] == 1.0
    with pytest.raises(ParameterError, match="pre"):
        aggregate(U, "median", 1, pre="bucketing")


@pytest.mark.parametrize("rule,n,f,param", [
    ("median", 10, 5, "byzantine_fraction"), ("trimmed_mean", 4, 2, "byzantine_fraction"),
    ("cclip", 6, 3, "byzantine_fraction"), ("krum", 6, 2, "n"), ("multikrum", 4, 1, "n"),
    ("bulyan", 10, 2, "n"), ("nonsense", 10, 1, "aggregator"), ("median", 4, 5, "f"),
])
def test_rules_refuse_what_they_cannot_tolerate_in_one_line(rule, n, f, param):
    with pytest.raises(ParameterError) as e:
        check_rule(rule, n, f)
    assert e.value.name == param and "\n" not in str(e.value)


def test_bad_updates_are_refused():
    for bad in ([np.zeros(3), np.zeros(4)], np.zeros((0, 3)), np.zeros(3), np.full((3, 2), np.nan)):
        with pytest.raises(ParameterError, match="updates"):
            aggregate(bad, "median")
    assert "4f + 3 = 11" in str(pytest.raises(ParameterError, check_rule, "bulyan", 10, 2).value)


# ----------------------------------------------------------------------------------------------
# RobustAggregate: a rule as the federated protocol's aggregate
# ----------------------------------------------------------------------------------------------
def test_robust_aggregate_applies_the_rule_to_updates_from_the_rounds_global_model():
    from ppal_lab.federated.robust import RobustAggregate

    rng = np.random.default_rng(4)
    g, U = rng.normal(size=30), rng.normal(size=(7, 30))
    for rule in ("median", "trimmed_mean", "krum", "bulyan", "fedavg"):
        server = RobustAggregate(rule, 1)
        server.start_round(torch.as_tensor(g))
        got = server([torch.as_tensor(g + u) for u in U], np.arange(1, 8)).numpy()   # weights ignored
        np.testing.assert_allclose(got, g + aggregate(U, rule, 1), rtol=0, atol=1e-12)
    assert server.seconds > 0
    with pytest.raises(RuntimeError, match="start_round"):
        RobustAggregate("median", 1)([torch.zeros(3)] * 3)


def test_robust_aggregate_centered_clipping_starts_from_the_last_aggregated_update():
    from ppal_lab.federated.robust import RobustAggregate

    rng = np.random.default_rng(5)
    U1, U2 = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    server = RobustAggregate("cclip", 1)
    server.start_round(torch.zeros(8, dtype=torch.float64))
    first = server(list(torch.as_tensor(U1)), None).numpy()
    tau1 = np.median(np.linalg.norm(U1, axis=1))                     # from zero: the median norm
    np.testing.assert_allclose(first, centered_clipping(U1, tau1, 3), atol=1e-9)
    server.start_round(torch.as_tensor(first))
    second = server(list(torch.as_tensor(first + U2)), None).numpy() - first
    tau2 = np.median(np.linalg.norm(U2 - first, axis=1))
    np.testing.assert_allclose(second, centered_clipping(U2, tau2, 3, start=first), atol=1e-9)
