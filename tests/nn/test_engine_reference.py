r"""The diffusion engine against dense autograd of the dense formula

.. math::
    \mathbf{X}^{(k)} = \mathbf{M}\,\big(\mathbf{m}^{(k)} \odot
    \mathbf{X}^{(k-1)}\big) / (1 - p), \qquad
    \mathbf{M} = \mathbf{I} - \gamma\mathbf{L},

on operators that are not symmetric (so the backward pass must apply
:math:`\mathbf{M}^{\top}`, not :math:`\mathbf{M}`), on every code path of
:class:`DiffConv`, with and without the C++ kernels. The masks come from
:func:`dropout_mask` with the seed the layer draws (:func:`draw_seed`).
"""
import pytest
import torch

from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion import (
    cpu_kernels,
    draw_seed,
    dropout_mask,
)

N = 14


def undirected_uneven(n=N):
    # A path with a hub: very different degrees, so 'rw' is not symmetric.
    path = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    hub = torch.stack([torch.zeros(n - 3, dtype=torch.long),
                       torch.arange(3, n)])
    ei = torch.cat([path, hub], dim=1)
    return torch.cat([ei, ei.flip(0)], dim=1), None


def directed_weighted(n=N, seed=2):
    # Directed edges with weights, duplicates and one self-loop.
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, 3 * n), generator=gen)
    ei = torch.cat([ei, ei[:, :4], torch.tensor([[5], [5]])], dim=1)
    w = torch.rand(ei.size(1), generator=gen, dtype=torch.float64) + 0.2
    return ei, w


def dense_m(ei, w, n, normalize, gamma):
    r""":math:`\mathbf{I} - \gamma\mathbf{L}` from the formulas, with
    :math:`A_{ij}` the summed weight of the edges :math:`j \to i` (gamma may
    be a tensor that requires gradients)."""
    if w is None:
        w = torch.ones(ei.size(1), dtype=torch.float64)
    A = torch.zeros(n, n, dtype=torch.float64)
    A.index_put_((ei[1], ei[0]), w, accumulate=True)
    if normalize is not None:
        A = A + torch.eye(n, dtype=torch.float64)
        deg = A.sum(1)
        if normalize == 'sym':
            A = deg.pow(-0.5).view(-1, 1) * A * deg.pow(-0.5).view(1, -1)
        else:
            A = A / deg.view(-1, 1)
    L = torch.diag(A.sum(1)) - A
    return torch.eye(n, dtype=torch.float64) - gamma * L


def dense_steps(x, M, num_steps, p, seed):
    r"""Every state :math:`\mathbf{X}^{(0)}, \ldots, \mathbf{X}^{(K)}`,
    with the mask applied before every product."""
    states = [x]
    for k in range(num_steps):
        h = states[-1]
        if p > 0:
            h = dropout_mask(seed, k, tuple(h.shape), p, h.device,
                             h.dtype) * h / (1 - p)
        states.append(M @ h)
    return torch.stack(states)


# DiffConv's code paths: the fused op on an operator built per call, the
# fused op on the cached CSR operator, and the step-by-step loop.
PATHS = {
    'fused': dict(engine='fused'),
    'fused-cached': dict(engine='fused', cached=True),
    'autograd': dict(engine='autograd'),
}

GRAPHS = {
    'rw-undirected': (undirected_uneven, 'rw', 0.4),
    'sym-directed': (directed_weighted, 'sym', 0.4),
    'none-directed': (directed_weighted, None, 0.15),
}


@pytest.mark.parametrize('graph', list(GRAPHS))
@pytest.mark.parametrize('p', [0.0, 0.3])
@pytest.mark.parametrize('path,cpp', [('fused', True), ('fused', False),
                                      ('fused-cached', True),
                                      ('fused-cached', False),
                                      ('autograd', True)])
def test_gradient_of_non_symmetric_operator(monkeypatch, graph, p, path,
                                            cpp):
    if cpp and cpu_kernels() is None:
        pytest.skip('C++ CPU kernels not built here')
    monkeypatch.setenv('TGD_DISABLE_CPP', '0' if cpp else '1')
    make, normalize, gamma = GRAPHS[graph]
    ei, w = make()
    M = dense_m(ei, w, N, normalize, gamma)
    assert not torch.allclose(M, M.t())  # M^T != M: the test can tell.
    x = torch.randn(N, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(N, 5, dtype=torch.float64)

    conv = DiffConv(gamma, 6, dropout=p, normalize=normalize,
                    **PATHS[path]).train()
    torch.manual_seed(3)
    seed = int(draw_seed())
    torch.manual_seed(3)
    out = conv(x, ei, w)
    ref = dense_steps(x, M, 6, p, seed)[-1]
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    got = torch.autograd.grad((out * g).sum(), x)[0]
    want = torch.autograd.grad((ref * g).sum(), x)[0]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('graph', list(GRAPHS))
@pytest.mark.parametrize('path', list(PATHS))
def test_gradient_of_learnable_step_size(graph, path):
    # d/dgamma goes through L^T as well; softplus(rho) = gamma.
    make, normalize, gamma0 = GRAPHS[graph]
    ei, w = make()
    x = torch.randn(N, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(N, 3, dtype=torch.float64)
    conv = DiffConv(gamma0, 5, dropout=0.25, normalize=normalize,
                    learnable_step=True, **PATHS[path]).double().train()
    torch.manual_seed(4)
    seed = int(draw_seed())
    torch.manual_seed(4)
    out = conv(x, ei, w)
    got = torch.autograd.grad((out * g).sum(), (x, conv.step_param))

    rho = conv.step_param.detach().clone().requires_grad_()
    M = dense_m(ei, w, N, normalize, torch.nn.functional.softplus(rho))
    ref = dense_steps(x, M, 5, 0.25, seed)[-1]
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    want = torch.autograd.grad((ref * g).sum(), (x, rho))
    torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[1], want[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('path', list(PATHS))
@pytest.mark.parametrize('normalize', ['sym', 'rw'])
def test_dropout_acts_before_every_step(path, normalize):
    # X^(k) = M (m^(k) * X^(k-1)) / (1 - p): the mask of step k hits the
    # state before the product. Masking after the product gives another
    # result, which the reference tells apart.
    ei, w = directed_weighted(seed=7)
    p, gamma, K = 0.5, 0.3, 4
    M = dense_m(ei, w, N, normalize, gamma)
    x = torch.randn(N, 4, dtype=torch.float64, requires_grad=True)
    conv = DiffConv(gamma, K, dropout=p, normalize=normalize,
                    **PATHS[path]).train()
    torch.manual_seed(9)
    seed = int(draw_seed())
    ref = dense_steps(x, M, K, p, seed)

    torch.manual_seed(9)
    out = conv(x, ei, w)
    torch.testing.assert_close(out, ref[-1], rtol=1e-10, atol=1e-12)
    g = torch.randn_like(out)
    got = torch.autograd.grad((out * g).sum(), x)[0]
    want = torch.autograd.grad((ref[-1] * g).sum(), x)[0]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)

    # return_all runs the step-by-step loop: every state matches.
    torch.manual_seed(9)
    states = conv(x, ei, w, return_all=True)
    torch.testing.assert_close(states, ref, rtol=1e-10, atol=1e-12)

    # Mask after the product: a different formula, far from the output.
    after = [x]
    for k in range(K):
        after.append(dropout_mask(seed, k, (N, 4), p, x.device, x.dtype) *
                     (M @ after[-1]) / (1 - p))
    assert (after[-1] - out).abs().max() > 1e-3
