"""Poisoning attacks on update vectors: exact small cases from the papers' formulas, and what each does
to the rules it was designed against."""
import numpy as np
import pytest
import torch

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.federated.poisoning import (ATTACKS, adaptive, alie, alie_z, byzantine_updates, damage, flip_labels,
                                        gaussian, ipm, sign_flip)
from ppal_lab.federated.robust import aggregate


def honest_updates(n=16, d=40, seed=0):
    """Honest updates around a common direction, as gradients of one round are."""
    rng = np.random.default_rng(seed)
    return 1.0 + rng.normal(size=(n, d))


def test_label_flip_and_sign_flip_on_exact_cases():
    np.testing.assert_array_equal(flip_labels(np.array([0, 1, 2, 2]), 3), [2, 1, 0, 0])
    np.testing.assert_array_equal(flip_labels(np.array([0, 1, 1]), 2), [1, 0, 0])
    np.testing.assert_array_equal(sign_flip([[1.0, -2.0]]), [[-1.0, 2.0]])
    with pytest.raises(ParameterError, match="y"):
        flip_labels(np.array([0, 3]), 3)


def test_gaussian_attack_is_seeded_noise_of_the_given_scale():
    H = honest_updates()
    a, b = gaussian(H, 3, 5.0, 1), gaussian(H, 3, 5.0, 1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 40) and 4.0 < a.std() < 6.0 and abs(a.mean()) < 1.0


def test_alie_z_on_the_papers_cases():
    # s = floor(n/2 + 1) - f ; z = Phi^-1((n - s) / n)
    assert alie_z(50, 24) == pytest.approx(1.7506860712521692)     # s = 2: Phi^-1(0.96)
    assert alie_z(10, 2) == pytest.approx(0.2533471031357997)      # s = 4: Phi^-1(0.6)
    assert alie_z(20, 1) == 0.0   # s = 10: Phi^-1(1/2): one attacker hides nothing
    with pytest.raises(ParameterError, match="f"):
        alie_z(10, 6)                                               # s = 0: no majority to hide in


def test_alie_sends_mean_minus_z_sd():
    H = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    np.testing.assert_allclose(alie(H, 2, z=1.0), [[2.0 - 2.0, 2.0 - np.sqrt(3.0)]] * 2)


def test_alie_is_picked_by_krum_and_moves_the_median_only_within_its_bound():
    H = honest_updates(n=16)
    f = 4
    B = alie(H, f, z=1.0)
    U = np.vstack([H, B])
    # Krum cannot tell it apart: it selects the Byzantine vector
    np.testing.assert_array_equal(aggregate(U, "krum", f), B[0])
    # the median moves against the honest direction, but never past the ALIE value
    med = aggregate(U, "median", f)
    assert damage(med, H) > damage(np.median(H, 0), H) + 0.1
    assert np.all(med >= B[0] - 1e-12)


def test_ipm_turns_fedavg_against_the_honest_mean_exactly_when_f_eps_exceeds_n_minus_f():
    H = honest_updates(n=8)
    mu = H.mean(0)
    for eps, against in ((5.0, True), (3.0, False)):           # f eps = 10 > 8 ; 6 < 8
        avg = aggregate(np.vstack([H, ipm(H, 2, eps)]), "fedavg")
        np.testing.assert_allclose(avg, (8 - 2 * eps) * mu / 10)
        assert (avg @ mu < 0) == against
    # the median, with 2 of 10 Byzantine, stays on the honest side
    assert aggregate(np.vstack([H, ipm(H, 2, 5.0)]), "median", 2) @ mu > 0


@pytest.mark.parametrize("rule", ["krum", "median", "trimmed_mean", "bulyan"])
def test_adaptive_attack_does_at_least_as_much_damage_as_the_fixed_attacks(rule):
    H = honest_updates(n=12)
    f = 2
    fixed = {"sign_flip": -H[:f], "alie": alie(H, f), "ipm": ipm(H, f, 0.5), "ipm_big": ipm(H, f, 10.0)}
    hurt = {k: damage(aggregate(np.vstack([H, B]), rule, f), H) for k, B in fixed.items()}
    B = adaptive(H, f, rule)
    best = damage(aggregate(np.vstack([H, B]), rule, f), H)
    assert best >= max(hurt.values()) - 1e-9
    assert best > 0.1


def test_adaptive_attack_on_krum_is_the_largest_deviation_krum_still_picks():
    H = honest_updates(n=12)
    B = adaptive(H, 2, "krum")
    np.testing.assert_array_equal(aggregate(np.vstack([H, B]), "krum", 2), B[0])
    bigger = H.mean(0) - 2.0 * (H.mean(0) - B[0])              # twice the deviation: Krum no longer picks it
    assert not np.array_equal(aggregate(np.vstack([H, np.tile(bigger, (2, 1))]), "krum", 2), bigger)


def test_byzantine_updates_dispatches_and_validates():
    H = honest_updates(n=6, d=5)
    own = H[:2] + 0.5
    np.testing.assert_array_equal(byzantine_updates("sign_flip", H, 2, own=own), -own)
    np.testing.assert_array_equal(byzantine_updates("none", H, 2, own=own), own)
    np.testing.assert_array_equal(byzantine_updates("ipm", H, 2, epsilon=2.0), ipm(H, 2, 2.0))
    for attack in ATTACKS:
        kw = {"own": own} if attack in ("none", "label_flip", "sign_flip") else {}
        assert byzantine_updates(attack, H, 2, rng=0, rule="median", **kw).shape == (2, 5)
        assert byzantine_updates(attack, H, 0, **kw).shape == (0, 5)
    with pytest.raises(ParameterError, match="attack"):
        byzantine_updates("backdoor", H, 2)
    with pytest.raises(ParameterError, match="own"):
        byzantine_updates("sign_flip", H, 2)
    with pytest.raises(ParameterError, match="n"):
        byzantine_updates("adaptive", H, 2, rule="bulyan")        # n = 8 < 4f + 3 = 11


# ----------------------------------------------------------------------------------------------
# ByzantineSites: the attacks on a site group
# ----------------------------------------------------------------------------------------------
def _group(fixed_sites, attack, rule="median", byz=(1, 3)):
    from ppal_lab.federated.poisoning import ByzantineSites
    from ppal_lab.federated.robust import RobustAggregate

    rng = np.random.default_rng(8)
    g, U = rng.normal(size=12), rng.normal(0.5, 1.0, size=(6, 12))
    server = RobustAggregate(rule, len(byz))
    server.start_round(torch.as_tensor(g))
    return ByzantineSites(fixed_sites(g + U), byz, attack, server, rng=0), g, U


def test_byzantine_sites_replace_only_their_own_updates_after_training(fixed_sites):
    group, g, U = _group(fixed_sites, "sign_flip")
    out = np.stack([v.numpy() for v in group.train(torch.as_tensor(g), 0)])
    honest = [0, 2, 4, 5]
    np.testing.assert_allclose(out[honest], g + U[honest], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[[1, 3]], g - U[[1, 3]], atol=1e-12)          # negated own update
    assert len(group) == 6 and group.public_counts().shape == (6, 3)             # the rest passes through


def test_omniscient_attacks_read_the_honest_updates_of_the_round(fixed_sites):
    honest = [0, 2, 4, 5]
    group, g, U = _group(fixed_sites, "alie")
    out = np.stack([v.numpy() for v in group.train(torch.as_tensor(g), 0)])
    np.testing.assert_allclose(out[[1, 3]], g + alie(U[honest], 2), atol=1e-12)
    group, g, U = _group(fixed_sites, "adaptive", rule="trimmed_mean")
    out = np.stack([v.numpy() for v in group.train(torch.as_tensor(g), 0)])
    spread = U[honest].std(0).mean()
    expected = adaptive(U[honest], 2, "trimmed_mean", gamma_max=10 * spread + 1e-12, steps=8)
    np.testing.assert_allclose(out[[1, 3]], g + expected, atol=1e-12)
    group, g, U = _group(fixed_sites, "none")
    np.testing.assert_allclose(np.stack([v.numpy() for v in group.train(torch.as_tensor(g), 0)]), g + U)


def test_byzantine_sites_need_two_honest_sites(fixed_sites):
    from ppal_lab.federated.poisoning import ByzantineSites
    from ppal_lab.federated.robust import RobustAggregate

    with pytest.raises(ParameterError, match="2 honest"):
        ByzantineSites(fixed_sites(np.zeros((4, 2))), [0, 1, 2], "ipm", RobustAggregate("fedavg", 3))
