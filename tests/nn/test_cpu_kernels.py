import os

import pytest
import torch

from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion import kernels
from torch_geometric_diff.nn.diffusion import (
    cpu_kernels,
    diffuse,
    dropout_mask,
    mask_bits,
    sparse_linear,
)

ext = cpu_kernels()
requires_ext = pytest.mark.skipif(ext is None,
                                  reason='C++ CPU kernels not built here')


def random_operator(normalize, n=23, e=90, seed=3):
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=gen)
    ei = ei[:, ei[0] != 7]  # node 7 has no out-edges
    w = torch.rand(ei.size(1), generator=gen, dtype=torch.float64)
    return DiffConv(normalize=normalize).build_operator(
        ei, n, edge_weight=w, dtype=torch.float64)


def test_kernel_source_is_in_the_package():
    assert kernels._SOURCE.endswith(
        os.path.join('torch_geometric_diff', 'csrc', 'diffuse_cpu.cpp'))
    assert os.path.isfile(kernels._SOURCE)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv('TGD_DISABLE_CPP', '1')
    assert cpu_kernels() is None


@requires_ext
@pytest.mark.parametrize('p', [0.0, 0.25, 1 / 256, 0.1])
@pytest.mark.parametrize('normalize', ['sym', 'rw'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_kernel_equals_pytorch_path(monkeypatch, p, normalize, dtype):
    op = random_operator(normalize)
    x = torch.randn(23, 5, dtype=dtype, requires_grad=True)
    w = torch.randn(23, 5, dtype=dtype)
    gamma = torch.tensor(0.3, dtype=dtype)
    seed = torch.tensor([77])
    outs = []
    for disable in ('0', '1'):
        monkeypatch.setenv('TGD_DISABLE_CPP', disable)
        y = diffuse(x, op, gamma, 6, p, seed)
        outs.append((y, torch.autograd.grad((y * w).sum(), x)[0]))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(outs[0][0], outs[1][0], atol=tol)
    assert torch.allclose(outs[0][1], outs[1][1], atol=tol)


@requires_ext
@pytest.mark.parametrize('p', [0.25, 0.25 + 1 / 256, 0.1])
@pytest.mark.parametrize('transpose', [False, True])
def test_kernel_masks_are_dropout_mask_bit_for_bit(p, transpose):
    # M = I: one step leaves exactly the mask. 7 columns put row starts in
    # the middle of the 64-bit words for every lane width.
    n, f, k = 13, 7, 4
    crow = torch.arange(n + 1)
    col = torch.arange(n)
    val = torch.ones(n, dtype=torch.float64)
    bits = {0.25: 8, 0.25 + 1 / 256: 16, 0.1: 32}[p]
    assert mask_bits(p) == bits
    t = 2 * (-(1 << (bits - 2)) + round(p * (1 << (bits - 1))))
    x = torch.ones(n, f, dtype=torch.float64)
    # Forward masks before the product with step k; backward after it.
    out = ext.diffuse_steps(x, crow, col, val, [k], transpose, p, bits, t, 9)
    ref = dropout_mask(9, k, (n, f), p, x.device, x.dtype)
    assert torch.equal(out, ref)
    assert 0 < int(ref.sum()) < n * f


@requires_ext
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_csr_products_against_dense(dtype):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(9, 6, generator=gen, dtype=dtype)
    a[a < 0.6] = 0
    a[4] = 0  # an empty row
    s = a.to_sparse_csr()
    h = torch.randn(6, 5, generator=gen, dtype=dtype)
    g = torch.randn(9, 5, generator=gen, dtype=dtype)
    idx = (s.crow_indices(), s.col_indices(), s.values())
    assert torch.allclose(ext.csr_mm(*idx, h), a @ h, atol=1e-6)
    assert torch.allclose(ext.csr_t_mm(*idx, g, 6), a.t() @ g, atol=1e-6)
    with pytest.raises(RuntimeError, match='out of range'):
        ext.csr_mm(*idx, h[:3])
    with pytest.raises(RuntimeError, match='same dtype'):
        ext.csr_mm(*idx, h.to(torch.float16 if dtype == torch.float32
                              else torch.float32))


@requires_ext
def test_sparse_linear_kernel_path_and_gradient():
    gen = torch.Generator().manual_seed(1)
    xd = torch.rand(30, 12, generator=gen, dtype=torch.float64)
    xd[xd < 0.7] = 0
    xd[5] = 0
    x = xd.to_sparse_csr()
    lin = torch.nn.Linear(12, 4).double()
    out = sparse_linear(x, lin)
    assert '_CSRLinear' in str(out.grad_fn.next_functions)
    assert torch.allclose(out, xd @ lin.weight.t() + lin.bias, atol=1e-12)
    g = torch.randn(30, 4, dtype=torch.float64)
    gw, = torch.autograd.grad((out * g).sum(), lin.weight)
    assert torch.allclose(gw, g.t() @ xd, atol=1e-12)
    weight = lin.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda w: _linear_with(x, w),
                                    (weight, ))


def _linear_with(x, weight):
    lin = torch.nn.Linear(weight.size(1), weight.size(0), bias=False)
    del lin.weight
    lin.weight = weight
    return sparse_linear(x, lin)
