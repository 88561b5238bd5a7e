import math

import pytest
import torch

from torch_geometric_diff import DiffConv, DiffResNetGNN
from torch_geometric_diff.nn.diffusion import (
    diffuse,
    diffuse_reference,
    dropout_mask,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs CUDA')


def graph(n=50, e=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=gen)
    return torch.cat([ei, ei.flip(0)], dim=1)


def test_cuda_matches_cpu():
    ei = graph()
    x = torch.randn(50, 8, dtype=torch.float64)
    for normalize in ['sym', 'rw', None]:
        conv = DiffConv(0.1, 10, normalize=normalize)
        ref = conv(x, ei)
        out = conv(x.cuda(), ei.cuda())
        assert out.is_cuda
        assert torch.allclose(out.cpu(), ref, atol=1e-10)


def test_cuda_mask_is_bernoulli_and_deterministic():
    dev = torch.device('cuda')
    m = dropout_mask(5, 2, (400_000, ), 0.25, dev)
    assert m.is_cuda and set(m.unique().tolist()) <= {0.0, 1.0}
    sigma = math.sqrt(0.25 * 0.75 / 400_000)
    assert abs(m.mean().item() - 0.75) < 5 * sigma
    assert torch.equal(m, dropout_mask(5, 2, (400_000, ), 0.25, dev))
    assert not torch.equal(m, dropout_mask(5, 3, (400_000, ), 0.25, dev))


def test_cuda_fused_equals_plain_and_gradcheck():
    ei = graph().cuda()
    op = DiffConv().build_operator(ei, 50, dtype=torch.float64)
    x = torch.randn(50, 4, dtype=torch.float64, device='cuda',
                    requires_grad=True)
    gamma = torch.tensor(0.3, dtype=torch.float64, device='cuda',
                         requires_grad=True)
    seed = torch.tensor([17])
    a = diffuse(x, op, gamma, 6, 0.25, seed)
    b = diffuse_reference(x, op, gamma, 6, 0.25, seed)
    assert torch.allclose(a, b, atol=1e-12)
    ga = torch.autograd.grad(a.square().sum(), (x, gamma))
    gb = torch.autograd.grad(b.square().sum(), (x, gamma))
    assert all(torch.allclose(u, v, atol=1e-10) for u, v in zip(ga, gb))
    assert torch.autograd.gradcheck(
        lambda x, g: diffuse(x, op, g, 3, 0.25, seed), (x, gamma))


def test_cuda_model_trains():
    torch.manual_seed(0)
    y = torch.arange(200, device='cuda') % 3
    ei = graph(200, 2000).cuda()
    ei = ei[:, y[ei[0]] == y[ei[1]]]  # Homophilous: diffusion helps.
    x = torch.nn.functional.one_hot(y, 3).float().repeat(1, 4)
    x = x + 0.5 * torch.randn_like(x)
    model = DiffResNetGNN(12, 3, num_steps=5, cached=True).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, ei), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize('dtype,tol', [(torch.bfloat16, 2**-7),
                                       (torch.float16, 2**-10)])
@pytest.mark.parametrize('cached', [False, True])
def test_cuda_half_precision_close_to_float32(dtype, tol, cached):
    ei = graph().cuda()
    x = torch.randn(50, 8, device='cuda').to(dtype).requires_grad_()
    out = DiffConv(0.25, 10, cached=cached)(x, ei)
    assert out.dtype == dtype and out.is_cuda
    ref = DiffConv(0.25, 10)(x.detach().float(), ei)
    assert (out.float() - ref).abs().max() <= tol * ref.abs().max()
    out.float().sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()
