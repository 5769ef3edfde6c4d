"""The networks of :mod:`ppal_lab.marl.networks`: hand-written forward and backward passes against
PyTorch autograd, Adam against ``torch.optim.Adam``."""
import pytest
import torch

from ppal_lab.marl.maddpg import CRITIC_IN
from ppal_lab.marl.networks import Adam, NetStack, mlp_backward, mlp_forward


@pytest.mark.parametrize("out_act", [None, "sigmoid"])
def test_forward_and_backward_equal_autograd(out_act):
    gen = torch.Generator().manual_seed(0)
    n, batch = 3, 9
    net = NetStack(n, (CRITIC_IN, 12, 12, 2))
    for p in net.params:
        p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
    x = torch.randn(n, batch, CRITIC_IN, generator=gen)
    mask = torch.ones(n, 1, CRITIC_IN)
    mask[1, :, 7:] = 0
    upstream = torch.randn(n, batch, 2, generator=gen)
    y, cache = mlp_forward(net.params, x, mask, out_act)
    grad_z = upstream * y * (1 - y) if out_act == "sigmoid" else upstream
    grads = net.zeros_like()
    g_in = mlp_backward(net.params, cache, grad_z, grads.params, need_input=True)

    params = [p.clone().requires_grad_() for p in net.params]
    xr = x.clone().requires_grad_()
    h = xr * mask
    for layer in range(3):
        h = torch.baddbmm(params[2 * layer + 1], h, params[2 * layer])
        h = torch.relu(h) if layer < 2 else h
    h = torch.sigmoid(h) if out_act == "sigmoid" else h
    torch.testing.assert_close(h, y)
    (h * upstream).sum().backward()
    for mine, ref in zip(grads.params, params):
        torch.testing.assert_close(mine, ref.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_in * mask, xr.grad, rtol=1e-5, atol=1e-6)
    assert grads.params[0][1, 7:].abs().max() == 0          # masked columns get no gradient


def test_adam_equals_torch_adam():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(200, generator=gen)
    ref = w.clone().requires_grad_()
    opt = torch.optim.Adam([ref], lr=3e-3, betas=(0.8, 0.99), eps=1e-7)
    mine = Adam(w, 3e-3, (0.8, 0.99), 1e-7)
    for _ in range(25):
        g = torch.randn(200, generator=gen)
        mine.step(g)
        ref.grad = g.clone()
        opt.step()
    torch.testing.assert_close(w, ref.detach(), rtol=0, atol=1e-6)


def test_largest_preactivation_sees_only_hidden_layers_and_only_inside_its_block():
    from ppal_lab.marl.networks import largest_preactivation, mlp_forward

    w1, b1 = torch.tensor([[[2.0, -3.0]]]), torch.zeros(1, 1, 2)      # one input -> 2 hidden
    w2, b2 = torch.tensor([[[100.0], [100.0]]]), torch.zeros(1, 1, 1)  # output layer: not a ReLU input
    x = torch.tensor([[[1.5], [-0.5]]])
    with largest_preactivation() as largest:
        mlp_forward([w1, b1, w2, b2], x)
    assert largest == [4.5]                   # |(-3) * 1.5|; the output 300 is not a hidden value
    mlp_forward([w1, b1, w2, b2], 10 * x)     # outside: not watched
    assert largest == [4.5]
