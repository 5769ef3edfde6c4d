"""The passes on shares of :mod:`ppal_lab.secure.mlp_on_shares` against the plaintext passes of
:mod:`ppal_lab.marl.networks`, on a stack of two networks (as the secure MADDPG runs them)."""
import numpy as np
import torch

from ppal_lab.marl.networks import NetStack, mlp_backward, mlp_forward
from ppal_lab.secure import run_parties
from ppal_lab.secure.examples import passes_party


def test_forward_and_backward_on_shares_equal_the_plaintext_passes():
    gen = torch.Generator().manual_seed(3)
    net = NetStack(2, (6, 8, 8, 2))
    for p in net.params:
        p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
    x = torch.randn(2, 5, 6, generator=gen)
    g = torch.randn(2, 5, 2, generator=gen)
    z, cache = mlp_forward(net.params, x)
    grads = net.zeros_like()
    mlp_backward(net.params, cache, g, grads.params)

    res = run_parties(passes_party, 2, args=([p.clone() for p in net.params], x, g), timeout=120, seed=3)[0]

    np.testing.assert_allclose(res["z"], z.numpy(), atol=1e-3)
    for mine, ref in zip(res["grads"], grads.params):
        np.testing.assert_allclose(mine, ref.numpy(), atol=1e-3)
    assert res["comparisons"] == 2 * 2 * 5 * 8          # one per hidden unit, row and network, forward only
