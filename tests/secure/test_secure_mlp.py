"""Tests of ppal_lab.secure.secure_mlp: secure two-party MLP gradients and Adam training.

Fixed-point tolerance (16 fractional bits, u = 2^-16 ~ 1.5e-5). Every secure product is truncated
once per output element (error <= 2u in CrypTen's 2-party truncation); encoding an input truncates
(< u). The gradient of a weight is a chain of at most 5 secure products (3 forward matmuls, the
backward matmuls; the ReLU masks are exact 0/1 shares and add no error); each step multiplies the
incoming error by at most the l1 row norm of the factor it meets (|W| <= 1/sqrt(fan_in), inputs
~N(0,1), batch <= 32), and the unscaled batch sums are finally multiplied by 2/(B m) <= 1/8. A
first-order bound with these magnitudes is a few hundred u before the 2/(B m) factor, i.e.
<= ~1e-3 after it: we test ``GRAD_ATOL = 1e-3`` (measured errors are ~1e-5). The actor's output uses
CrypTen's approximate sigmoid (exp limit + Newton reciprocal, error ~1e-4 on [-10, 10], see
ppal_lab.secure.fixed_point), so its gradients get ``ACTOR_ATOL = 2e-3``.

Independence of what a party receives: the non-owner's share of the owner's W1 and its share of the
peer's input block are checked (i) not to be the fixed-point encoding, (ii) to change with the sharing
seed, (iii) with a chi-square goodness-of-fit test of the top 4 bits of the 64-bit ring elements
against uniform (16 bins, reject at p < 1e-3), and (iv) to have no linear correlation with the private
values (|Pearson r| < 4 / sqrt(n), i.e. a 4-sigma band under independence).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.secure.secure_mlp import (PARAM_NAMES, MLPConfig, init_weights, plain_gradients,
                                        run_secure_training, weight_errors)

GRAD_ATOL = 1e-3
ACTOR_ATOL = 2e-3
D0, D1, HIDDEN, BATCH, ITERS = 10, 8, 16, 32, 8


def _data(seed, iters=ITERS, out_dim=1, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(iters, BATCH, D0, generator=g)
    x1 = torch.randn(iters, BATCH, D1, generator=g)
    t = torch.randn(iters, BATCH, out_dim, generator=g) * scale
    return x0, x1, t


@pytest.fixture(scope="module")
def critic_run():
    cfg = MLPConfig(d0=D0, d1=D1, hidden=HIDDEN, out_dim=1, owner=0, lr=1e-3)
    x0, x1, t = _data(0)
    return cfg, (x0, x1, t), run_secure_training(cfg, x0, x1, t, seed=3, timeout=170)


@pytest.fixture(scope="module")
def actor_run():
    cfg = MLPConfig(d0=D0, d1=D1, hidden=HIDDEN, out_dim=2, output="sigmoid", out_scale=2.0, owner=1,
                    lr=1e-3)
    x0, x1, t = _data(1, iters=3, out_dim=2)
    t = t.abs().clamp(max=2.0)
    return cfg, (x0, x1, t), run_secure_training(cfg, x0, x1, t, seed=4, timeout=170)


@pytest.mark.timeout(180)
def test_secure_gradients_equal_autograd(critic_run):
    cfg, (x0, x1, t), res = critic_run
    _, ref = plain_gradients(init_weights(cfg, 0), x0[0], x1[0], t[0], cfg)
    for k in PARAM_NAMES:
        assert res.first_grads_secure[k].shape == ref[k].shape
        torch.testing.assert_close(res.first_grads_secure[k], ref[k], atol=GRAD_ATOL, rtol=0)
    # the gradients are not trivially small: the tolerance is meaningful
    assert max(float(ref[k].abs().max()) for k in PARAM_NAMES) > 50 * GRAD_ATOL


@pytest.mark.timeout(180)
def test_secure_adam_trajectory_matches_plaintext(critic_run):
    cfg, _, res = critic_run
    assert len(res.secure_trajectory) == len(res.plain_trajectory) == ITERS
    init = init_weights(cfg, 0)
    moved = weight_errors(res.plain_trajectory[-1], init)["all"]["rmse"]
    assert moved > 1e-4  # training did change the weights
    for step in (0, ITERS - 1):
        err = weight_errors(res.secure_trajectory[step], res.plain_trajectory[step])["all"]
        assert err["rmse"] <= 1e-3 and err["mae"] <= 1e-3
    assert res.errors["all"]["rmse"] <= 1e-3
    # cost figures are present and plausible
    assert res.secure_s_per_iter > 0 and res.plain_s_per_iter > 0 and res.ratio > 1
    assert 10 <= res.rounds_per_iter <= 200 and res.bytes_per_iter > 0
    assert set(res.phases_s_per_iter) >= {"matmul", "relu", "reveal", "adam"}


@pytest.mark.timeout(180)
def test_actor_owner_1_gradients_and_trajectory(actor_run):
    cfg, (x0, x1, t), res = actor_run
    _, ref = plain_gradients(init_weights(cfg, 0), x0[0], x1[0], t[0], cfg)
    for k in PARAM_NAMES:
        torch.testing.assert_close(res.first_grads_secure[k], ref[k], atol=ACTOR_ATOL, rtol=0)
    assert res.errors["all"]["rmse"] <= 1e-3
    non_owner = res.party_outputs[0]
    assert non_owner["trajectory"] is None and non_owner["first_grads"] is None  # learns no gradients


def _top4_uniform_p(ring: torch.Tensor) -> float:
    top = ((ring.numpy().astype(np.int64).view(np.uint64) >> np.uint64(60)).astype(np.int64))
    counts = np.bincount(top.ravel(), minlength=16)
    return float(stats.chisquare(counts).pvalue)


@pytest.mark.timeout(180)
def test_non_owner_shares_look_uniform_and_independent(critic_run, actor_run):
    from ppal_lab.secure import crypten

    enc = crypten.encoder.FixedPointEncoder(precision_bits=16)
    cfg, (x0, _, _), res = critic_run
    acfg, (ax0, ax1, _), ares = actor_run
    w1 = init_weights(cfg, 0)["W1"]  # the same initial W1 in both runs
    share_a = res.party_outputs[1]["owner_W1_share"]     # party 1 is the non-owner (seed 3)
    share_b = ares.party_outputs[0]["owner_W1_share"]    # party 0 is the non-owner (seed 4)
    for share in (share_a, share_b):
        assert share.shape == w1.shape and share.dtype == torch.int64
        assert not torch.equal(share, enc.encode(w1))
        assert _top4_uniform_p(share) > 1e-3
    assert not torch.equal(share_a, share_b)  # different sharing seed -> different share
    # what party 1 holds of party 0's private input block, and vice versa
    for share, private in ((res.party_outputs[1]["peer_input_share"], x0[0]),
                           (ares.party_outputs[0]["peer_input_share"], ax1[0])):
        assert share.shape == private.shape and not torch.equal(share, enc.encode(private))
        assert _top4_uniform_p(share) > 1e-3
        as_float = share.double().flatten().numpy()
        r = np.corrcoef(as_float, private.double().flatten().numpy())[0, 1]
        assert abs(r) < 4 / math.sqrt(private.numel())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kwargs", [
    {"precision_bits": 7}, {"precision_bits": 25}, {"precision_bits": 16.0}, {"hidden": 0},
    {"output": "tanh"}, {"owner": 2}, {"lr": 0.0}, {"out_scale": -1.0}, {"d0": True},
])
def test_bad_config_raises(kwargs):
    base = dict(d0=2, d1=2, hidden=4)
    base.update(kwargs)
    with pytest.raises(ParameterError):
        MLPConfig(**base)


@pytest.mark.timeout(60)
def test_bad_run_arguments_raise_before_work(monkeypatch):
    import ppal_lab.secure.twoparty as twoparty

    def boom(*a, **k):
        raise AssertionError("parties started despite bad parameters")

    monkeypatch.setattr(twoparty, "run_parties", boom)
    cfg = MLPConfig(d0=2, d1=3, hidden=4)
    x0, x1, t = torch.zeros(2, 5, 2), torch.zeros(2, 5, 3), torch.zeros(2, 5, 1)
    with pytest.raises(ParameterError, match="world_size"):
        run_secure_training(cfg, x0, x1, t, world_size=3)
    with pytest.raises(ParameterError, match="iterations"):
        run_secure_training(cfg, x0[:0], x1[:0], t[:0])
    with pytest.raises(ParameterError, match="x1"):
        run_secure_training(cfg, x0, x1[:, :, :2], t)
    with pytest.raises(ParameterError, match="targets"):
        run_secure_training(cfg, x0, x1, t[:1])
    with pytest.raises(ParameterError, match="config"):
        run_secure_training({"d0": 2}, x0, x1, t)
    with pytest.raises(ParameterError, match="x0"):
        run_secure_training(cfg, x0 * float("nan"), x1, t)


@pytest.mark.timeout(180)
def test_a_real_wrap_is_caught_on_shares_and_the_step_recomputed_before_any_gradient_is_opened():
    # A wrap added where CrypTen's truncation makes one (first layer, one element) would give the owner
    # a gradient off by ~2^(64-2b) in that unit's column (the other party's inputs of that row, exactly).
    cfg = MLPConfig(d0=D0, d1=D1, hidden=HIDDEN, out_dim=1, owner=0, lr=1e-3, inject_wrap=(0,))
    x0, x1, t = _data(0, iters=3)
    res = run_secure_training(cfg, x0, x1, t, seed=3, timeout=170)
    assert res.summary()["wrap_retries"] == 1                      # detected once, recomputed once
    _, ref = plain_gradients(init_weights(cfg, 0), x0[0], x1[0], t[0], cfg)
    for k in PARAM_NAMES:                                           # the owner got the honest gradients
        torch.testing.assert_close(res.first_grads_secure[k], ref[k], atol=GRAD_ATOL, rtol=0)
    clean = run_secure_training(MLPConfig(d0=D0, d1=D1, hidden=HIDDEN, owner=0, lr=1e-3), x0, x1, t, seed=3,
                                timeout=170)
    assert clean.summary()["wrap_retries"] == 0
