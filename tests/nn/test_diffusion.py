import math

import pytest
import torch

from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion import (
    _keep,
    diffuse,
    diffuse_reference,
    dropout_mask,
    mask_bits,
)


def grid_operator(side=6, dtype=torch.float64):
    idx = torch.arange(side * side).view(side, side)
    right = torch.stack([idx[:, :-1].reshape(-1), idx[:, 1:].reshape(-1)])
    down = torch.stack([idx[:-1].reshape(-1), idx[1:].reshape(-1)])
    ei = torch.cat([right, down, right.flip(0), down.flip(0)], dim=1)
    return DiffConv().build_operator(ei, side * side, dtype=dtype)


@pytest.mark.parametrize('p,bits', [(0.25, 8), (0.5, 8), (1 / 128, 8),
                                    (1 / 256, 16), (0.1, 32), (2**-12, 16),
                                    (0.3, 32), (0.0, 8)])
def test_mask_bits(p, bits):
    assert mask_bits(p) == bits


@pytest.mark.parametrize('p', [0.0, 0.25, 0.5, 0.75, 1 / 128, 127 / 128])
def test_keep_rule_is_exact_over_all_byte_values(p):
    v = torch.arange(-128, 128, dtype=torch.int8)
    t = -128 + round(p * 256)
    keep = _keep(v.clone(), p, 8)
    assert torch.equal(keep, (v >= t).to(torch.int8))
    assert int(keep.sum()) == round((1 - p) * 256)


def test_keep_rule_16_and_32_bits():
    gen = torch.Generator().manual_seed(0)
    for bits, dtype, p in [(16, torch.int16, 1 / 256), (32, torch.int32, 0.1)]:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1))
        v = torch.randint(lo, hi, (100_000, ), generator=gen).to(dtype)
        v = torch.cat([v, torch.tensor([lo, hi - 1], dtype=dtype)])
        t = lo + 2 * round(p * (1 << (bits - 1)))
        assert torch.equal(_keep(v.clone(), p, bits), (v >= t).to(dtype))


@pytest.mark.parametrize('p', [0.1, 0.25, 0.5, 0.8])
def test_dropout_mask_is_bernoulli(p):
    n = 200_000
    m = dropout_mask(1234, 3, (n, ), p, torch.device('cpu'))
    assert m.dtype == torch.float32
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    keep = m.mean().item()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(keep - (1 - p)) < 5 * sigma
    # Neighbouring elements and consecutive steps are uncorrelated.
    a = m[:-1] - m.mean()
    b = m[1:] - m.mean()
    assert abs((a * b).mean().item()) < 5 * p * (1 - p) / math.sqrt(n)
    m2 = dropout_mask(1234, 4, (n, ), p, torch.device('cpu'))
    cov = ((m - m.mean()) * (m2 - m2.mean())).mean().item()
    assert abs(cov) < 5 * p * (1 - p) / math.sqrt(n)


def test_dropout_mask_deterministic_and_shaped():
    dev = torch.device('cpu')
    a = dropout_mask(7, 0, (33, 17), 0.25, dev, torch.float64)
    assert a.shape == (33, 17) and a.dtype == torch.float64
    assert torch.equal(a, dropout_mask(7, 0, (33, 17), 0.25, dev,
                                       torch.float64))
    assert not torch.equal(a, dropout_mask(8, 0, (33, 17), 0.25, dev,
                                           torch.float64))
    assert not torch.equal(a, dropout_mask(7, 1, (33, 17), 0.25, dev,
                                           torch.float64))


def test_keep_rate_of_each_row_and_column_of_a_step():
    # 8 bits per element: each int64 word feeds 8 elements. Columns of a
    # [N, 8] mask must still be unbiased.
    m = dropout_mask(99, 0, (40_000, 8), 0.25, torch.device('cpu'))
    col_keep = m.mean(0)
    sigma = math.sqrt(0.25 * 0.75 / 40_000)
    assert ((col_keep - 0.75).abs() < 5 * sigma).all()


@pytest.mark.parametrize('p', [0.0, 0.25])
@pytest.mark.parametrize('num_steps', [1, 5, 16])
def test_fused_equals_plain_autograd(p, num_steps):
    op = grid_operator()
    x = torch.randn(36, 4, dtype=torch.float64, requires_grad=True)
    gamma = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    seed = torch.tensor([2024])
    a = diffuse(x, op, gamma, num_steps, p, seed)
    b = diffuse_reference(x, op, gamma, num_steps, p, seed)
    assert torch.allclose(a, b, atol=1e-12)
    w = torch.randn_like(a)
    ga = torch.autograd.grad((a * w).sum(), (x, gamma))
    gb = torch.autograd.grad((b * w).sum(), (x, gamma))
    assert torch.allclose(ga[0], gb[0], atol=1e-12)
    assert torch.allclose(ga[1], gb[1], atol=1e-10)


def test_gradcheck_non_symmetric_operator():
    ei = torch.randint(0, 12, (2, 30), generator=torch.Generator()
                       .manual_seed(5))
    op = DiffConv().build_operator(ei, 12, dtype=torch.float64)
    op_rw = DiffConv(normalize='rw').build_operator(ei, 12,
                                                    dtype=torch.float64)
    assert not op.symmetric and not op_rw.symmetric
    assert grid_operator().symmetric
    x = torch.randn(12, 2, dtype=torch.float64, requires_grad=True)
    gamma = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    seed = torch.tensor([1])
    for o in (op, op_rw):
        assert torch.autograd.gradcheck(
            lambda x, g: diffuse(x, o, g, 3, 0.5, seed), (x, gamma))


def saved_bytes(fn):
    r"""Bytes of all tensors autograd saves while running :obj:`fn`."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0]


def test_memory_flat_in_num_steps():
    op = grid_operator(side=10, dtype=torch.float32)
    x = torch.randn(100, 64, requires_grad=True)
    gamma = torch.tensor(0.25)
    seed = torch.tensor([3])
    fused = [saved_bytes(lambda: diffuse(x, op, gamma, k, 0.25, seed))
             for k in (1, 20, 100)]
    plain = [saved_bytes(lambda: diffuse_reference(x, op, gamma, k, 0.25,
                                                   seed))
             for k in (1, 20, 100)]
    assert fused[0] == fused[1] == fused[2]
    assert fused[2] < x.numel() * x.element_size()  # Not even one state.
    assert plain[2] > 50 * plain[0]  # The plain loop keeps every step.

    # With a learnable step, only the input state is kept.
    g = gamma.clone().requires_grad_()
    learn = [saved_bytes(lambda: diffuse(x, op, g, k, 0.25, seed))
             for k in (1, 100)]
    assert learn[0] == learn[1]
    assert learn[1] < 2 * x.numel() * x.element_size()
