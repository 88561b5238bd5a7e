import math
import warnings

import pytest
import torch

from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion import (
    build_operator,
    diffuse,
    diffuse_reference,
    dropout_mask,
    mask_bits,
    operator_values,
)
from torch_geometric_diff.nn.diffusion.dropout import _keep
from torch_geometric_diff.nn.diffusion.spectrum import warn_if_unstable


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


def directed_multigraph(n=15, e=50, seed=4):
    r"""Weighted directed edges with duplicates and self-loops."""
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=gen)
    ei = torch.cat([ei, ei[:, :5], torch.tensor([[2, 3], [2, 3]])], dim=1)
    w = torch.rand(ei.size(1), generator=gen, dtype=torch.float64) + 0.1
    return ei, w


def dense_m(ei, w, n, normalize, gamma, p):
    r"""(I - gamma L) / (1 - p) from the formulas, A[i, j] = sum of w(j->i)."""
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
    return (torch.eye(n, dtype=torch.float64) - gamma * L) / (1 - p)


@pytest.mark.parametrize('normalize', ['sym', 'rw', None])
@pytest.mark.parametrize('p', [0.0, 0.25])
def test_both_forms_of_m_equal_dense_formula(normalize, p):
    n = 15
    ei, w = directed_multigraph(n)
    op = build_operator(ei[1], ei[0], w, n, normalize)
    gamma = torch.tensor(0.3, dtype=torch.float64)
    ref = dense_m(ei, w, n, normalize, 0.3, p)
    assert torch.allclose(op.matrix(gamma, p).to_dense(), ref, atol=1e-12)
    edge = torch.zeros(n, n, dtype=torch.float64).index_put_(
        (op.edge_index[1], op.edge_index[0]), op.edge_values(gamma, p),
        accumulate=True)
    assert torch.allclose(edge, ref, atol=1e-12)
    vals = operator_values(op.ival, op.lval, gamma, p)
    assert torch.equal(op.matrix(gamma, p).values(), vals)


@pytest.mark.parametrize('normalize', ['sym', 'rw'])
def test_fused_and_reference_equal_dense_formula_with_masks(normalize):
    n, k, p = 15, 5, 0.25
    ei, w = directed_multigraph(n)
    op = build_operator(ei[1], ei[0], w, n, normalize)
    x = torch.randn(n, 3, dtype=torch.float64)
    gamma = torch.tensor(0.4, dtype=torch.float64)
    seed = torch.tensor([31])
    m = dense_m(ei, w, n, normalize, 0.4, p)
    h = x
    for step in range(k):
        h = m @ (dropout_mask(31, step, (n, 3), p, x.device, x.dtype) * h)
    assert torch.allclose(diffuse(x, op, gamma, k, p, seed), h, atol=1e-12)
    assert torch.allclose(diffuse_reference(x, op, gamma, k, p, seed), h,
                          atol=1e-12)


def test_warn_if_unstable_bound_and_caller():
    with pytest.warns(RuntimeWarning, match=r'2 / lambda_max = 0.5\b') as rec:
        assert warn_if_unstable(0.51, 4.0, 'DiffConv', stacklevel=1)
    assert rec[0].filename == __file__  # Attributed to the caller.
    assert "'DiffConv' with step_size=0.51" in str(rec[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        assert not warn_if_unstable(0.5, 4.0, 'DiffConv')
        assert not warn_if_unstable(10.0, 0.0, 'DiffConv')
