"""Membership inference against a small model trained with and without DP (Opacus): an overfit
non-private model leaks, DP-trained ones stay within the bound their epsilon implies."""
import math

import numpy as np
import pytest
from scipy import stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.privacy.audit import clopper_pearson_upper
from ppal_lab.privacy.membership import dp_advantage_bound, dp_tpr_bound, dpsgd_trainer, membership_audit

DELTA = 1e-5


def noisy_task(n, d=20, label_noise=0.3, seed=0):
    """A linear rule with 30% of labels flipped: fitting the training set means memorising records."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ np.ones(d) > 0).astype(np.int64)
    flip = rng.random(n) < label_noise
    y[flip] = 1 - y[flip]
    return X, y


@pytest.fixture(scope="module")
def audits():
    X, y = noisy_task(400)
    out = {}
    for eps in (math.inf, 8.0, 1.0):
        train = dpsgd_trainer(eps, DELTA, epochs=60, batch_size=20, lr=0.5, hidden=64)
        out[eps] = membership_audit(train, X[:200], y[:200], X[200:], y[200:], epsilon=eps, delta=DELTA,
                                    n_shadow=2, seed=0)
    return out


def test_dp_bounds_on_exact_cases():
    assert dp_advantage_bound(1.0) == pytest.approx(math.tanh(0.5))            # (e - 1) / (e + 1)
    assert dp_advantage_bound(0.0, 0.01) == pytest.approx(0.01)
    assert dp_advantage_bound(math.inf) == 1.0
    assert dp_advantage_bound(8.0) == pytest.approx(math.tanh(4.0))             # 0.99933: a loose promise
    assert dp_tpr_bound(0.1, 1.0) == pytest.approx(math.e * 0.1)
    assert dp_tpr_bound(0.9, 1.0) == pytest.approx(1 - 0.1 / math.e)
    assert dp_tpr_bound(0.0, 1.0, 0.05) == pytest.approx(0.05)


def test_an_overfit_non_private_model_leaks_membership(audits):
    a = audits[math.inf]
    assert a.advantage_lower > 0.3            # a 95% lower bound, not a point estimate
    # ... more than any model trained with epsilon = 1 could: the audit would catch a false claim
    assert a.advantage_lower > dp_advantage_bound(1.0, DELTA)
    assert a.epsilon_lb > 1.0


@pytest.mark.parametrize("eps", [8.0, 1.0])
def test_dp_trained_models_stay_within_their_bound(audits, eps):
    a = audits[eps]
    assert a.advantage_lower <= a.advantage_bound
    # at the low-FPR threshold too: a lower bound on the TPR below what DP allows at the FPR's upper bound
    hits = round(a.tpr_low * a.n_members)
    assert 1 - clopper_pearson_upper(a.n_members - hits, a.n_members, a.alpha / 2) <= a.tpr_low_bound
    assert a.epsilon_lb <= eps
    assert a.advantage < audits[math.inf].advantage


def test_audit_reports_counts_and_is_reproducible(audits):
    a = audits[1.0]
    assert a.n_members + a.n_nonmembers == 200 and 60 < a.n_members < 140
    X, y = noisy_task(400)
    again = membership_audit(dpsgd_trainer(1.0, DELTA, epochs=60, batch_size=20, lr=0.5, hidden=64),
                             X[:200], y[:200], X[200:], y[200:], epsilon=1.0, delta=DELTA, n_shadow=2, seed=0)
    assert again == a


def test_bad_input_is_refused_before_training():
    X, y = noisy_task(60)
    def never(*_):
        raise AssertionError("trained on bad input")
    with pytest.raises(ParameterError, match="epsilon"):
        membership_audit(never, X[:30], y[:30], X[30:], y[30:], epsilon=0.0)
    with pytest.raises(ParameterError, match="X_target"):
        membership_audit(never, X[:10], y[:10], X[30:], y[30:], epsilon=1.0)
    with pytest.raises(ParameterError, match="X_shadow"):
        membership_audit(never, X[:30], y[:30], X[30:, :5], y[30:], epsilon=1.0)
    with pytest.raises(ParameterError, match="epsilon"):
        dpsgd_trainer(-1.0)


# ----------------------------------------------------------------------------------------------
# offline LiRA
# ----------------------------------------------------------------------------------------------
def test_logit_confidence_is_the_logit_of_the_true_class_probability():
    from scipy.special import logit

    from ppal_lab.privacy.membership import logit_confidence

    loss = np.array([0.01, 0.3, 0.6931471805599453, 2.0, 9.0])
    np.testing.assert_allclose(logit_confidence(loss), logit(np.exp(-loss)), rtol=1e-9)
    assert logit_confidence(np.array([0.0]))[0] == logit_confidence(np.array([1e-7]))[0] == pytest.approx(16.1, abs=0.1)


def _recipe(memorise: bool):
    """Per-record losses: a record-specific difficulty plus run noise; members get a loss of 1e-3
    when the recipe memorises, nothing when it does not."""
    def train(X, y, seed):
        members = {tuple(r) for r in np.round(X, 9)}
        noise = np.random.default_rng(seed)

        def losses(Xe, ye):
            base = 1.0 + np.abs(Xe[:, 0]) + 0.05 * noise.normal(size=len(Xe))
            hit = np.array([tuple(r) in members for r in np.round(Xe, 9)])
            return np.where(hit & memorise, 1e-3, base)
        return losses
    return train


def test_lira_finds_memorised_records_and_nothing_where_there_is_nothing():
    X, y = noisy_task(400)
    leak = membership_audit(_recipe(True), X[:200], y[:200], X[200:], y[200:], epsilon=math.inf,
                            n_shadow=4, seed=1)
    assert leak.lira_tpr == 1.0 and leak.lira_advantage_lower > 0.7
    blind = membership_audit(_recipe(False), X[:200], y[:200], X[200:], y[200:], epsilon=math.inf,
                             n_shadow=4, seed=1)
    assert blind.lira_advantage_lower < 0 < blind.lira_advantage + 0.2


def test_lira_on_dp_sgd_stays_within_the_bound_and_the_overfit_model_leaks(audits):
    assert audits[math.inf].lira_advantage_lower > 0
    for eps in (8.0, 1.0):
        assert audits[eps].lira_advantage_lower <= audits[eps].advantage_bound


@pytest.mark.parametrize("k", [2, 4])
def test_lira_test_has_its_level_when_scores_are_gaussian(k):
    """Non-members scored like the shadow models: the one-sided test calls 10% of them members."""
    from ppal_lab.privacy.membership import _offline_lira

    rng = np.random.default_rng(k)
    mu = rng.normal(0, 5, 20_000)                               # per-record difficulty
    phi_out = mu + rng.normal(0, 2.0, (k, mu.size))
    member = rng.random(mu.size) < 0.5
    phi = mu + rng.normal(0, 2.0, mu.size) + np.where(member, 4.0, 0.0)
    got = _offline_lira(phi_out, phi, member, 0.1, 0.05)
    # with k shadows the mean itself is noisy: the non-member deviation has variance sigma^2 (1 + 1/k)
    expected_fpr = 1 - stats.norm.cdf(stats.norm.ppf(0.9) / np.sqrt(1 + 1 / k))
    assert got["lira_fpr"] == pytest.approx(expected_fpr, abs=0.01)
    assert got["lira_tpr"] > 0.6
