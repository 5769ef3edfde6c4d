"""What each party receives (ppal_lab.secure.transcript), checked against the threat model's table.

Chapter 09's secure similarity with a separate dealer; player 0 holds the readings m, player 1 the
simulated readings m_hat. Runs that differ only in one player's data, with the same randomness (the
same player seed and dealer seed), must give the *other* player transcripts that a two-sample KS test
cannot tell apart (Bonferroni over the messages, alpha = 1e-3), and the same requests to the dealer;
player 0 receives no output; player 1's only outputs are the scores and decision bits. The same
checks catch two deliberate leaks. A second honest pair with different randomness shows the
verdict does not rest on the runs sharing their masks.
"""
from __future__ import annotations

import ast

import numpy as np
import pytest

from ppal_lab.secure.similarity import plaintext_decision, plaintext_similarity, similarity_party
from ppal_lab.secure.transcript import compare_transcripts, leaky_similarity_party, recorded_party
from ppal_lab.secure.twoparty import run_parties

N, K, THRESHOLD = 16, 4, 0.5
SD = np.array([0.5, 1.0, 2.0, 4.0])
SEGMENTS = [("score", N), ("decision", N)]


def _data():
    rng = np.random.default_rng(0)
    m = rng.uniform(60.0, 90.0, (N, K))
    m_hat = m + rng.normal(0.0, 1.0, (N, K)) * SD
    return m, m_hat


def _run(m, m_hat, fn=similarity_party, seed=1, dealer_seed=2, **leak):
    extra = (leak["leak"],) if leak else ()
    return run_parties(recorded_party, 2, args=(fn, N, K, SD.tolist(), SEGMENTS, THRESHOLD),
                       party_args=[(m, *extra), (m_hat, *extra)], seed=seed, dealer_seed=dealer_seed,
                       timeout=200)


@pytest.fixture(scope="module")
def runs():
    m, m_hat = _data()
    shift = 2.0 * SD  # the other player's data moves by two noise SDs per channel
    return {"m": m, "m_hat": m_hat,
            "A": _run(m, m_hat), "B": _run(m, m_hat + shift), "C": _run(m + shift, m_hat),
            "D": _run(m, m_hat + shift, seed=5, dealer_seed=6)}


@pytest.mark.timeout(600)
def test_player0_receives_nothing_that_depends_on_player1_data(runs):
    a, b, d = runs["A"][0], runs["B"][0], runs["D"][0]
    same_randomness = compare_transcripts(a, b)
    other_randomness = compare_transcripts(a, d)
    assert same_randomness.indistinguishable and other_randomness.indistinguishable
    assert same_randomness.n_tested > 50  # masked openings and triple shares were really tested
    assert a.outputs() == [] and d.outputs() == []        # "party 0: no output"
    assert {msg.source for msg in a.received} == {"players", "dealer"}


@pytest.mark.timeout(600)
def test_player1_receives_the_scores_and_nothing_else_that_depends_on_player0_data(runs):
    a, c = runs["A"][1], runs["C"][1]
    assert compare_transcripts(a, c).indistinguishable
    assert {msg.source for msg in a.received} == {"players"}  # player 1 never hears from the dealer
    # The only output messages: one opening of the N scores, one of the N decision bits.
    assert [(msg.op, msg.shape) for msg in a.outputs()] == [("recv", (N,)), ("recv", (N,))]
    m, m_hat = runs["m"], runs["m_hat"]
    np.testing.assert_allclose(a.value["values"]["score"], plaintext_similarity(m, m_hat, SD), atol=1e-3)
    assert np.array_equal(a.value["values"]["decision"].astype(bool), plaintext_decision(m, m_hat, SD, THRESHOLD))


@pytest.mark.timeout(600)
def test_the_dealer_receives_only_tuple_kinds_and_shapes(runs):
    from ppal_lab.secure import crypten  # the shim first: a bare `import crypten` fails on torch 2

    TTP_FUNCTIONS = crypten.mpc.provider.ttp_provider.TTP_FUNCTIONS

    requests = [runs[k][0].sent_to_dealer for k in "ABCD"]
    assert requests[0] and all(r == requests[0] for r in requests)  # the same whatever the data
    for text in requests[0]:
        request = ast.literal_eval(text.replace("torch.Size(", "("))  # shapes, names: literals only
        assert request["function"] in TTP_FUNCTIONS and request["kwargs"] == {}
        assert all(isinstance(arg, (list, str)) for arg in request["args"])  # a shape, or an op name


@pytest.mark.timeout(600)
def test_the_same_checks_catch_a_leaky_protocol():
    m, m_hat = _data()
    # Opening an intermediate value: player 0's transcript now depends on player 1's data.
    la = _run(m, m_hat, leaky_similarity_party, leak="open_residuals")
    lb = _run(m, m_hat + 2.0 * SD, leaky_similarity_party, leak="open_residuals")
    caught = compare_transcripts(la[0], lb[0])
    assert not caught.indistinguishable and caught.min_p < 1e-6
    assert la[0].received[caught.worst].op == "all_reduce"
    # Opening the scores to the wrong player: player 0 receives an output it must not.
    wrong = _run(m, m_hat, leaky_similarity_party, leak="score_to_owner")
    assert [(msg.op, msg.shape) for msg in wrong[0].outputs()] == [("recv", (N,))]
