import pytest
import torch

from torch_geometric_diff.nn.diffusion import cpu_kernels, mask_bits
from torch_geometric_diff.nn.diffusion.dropout import mask_threshold

ext = cpu_kernels()
pytestmark = pytest.mark.skipif(ext is None, reason='no C++ CPU kernels')


def _csr(n: int, nnz: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    a = torch.zeros(n, n)
    a[torch.randint(0, n, (nnz, ), generator=gen),
      torch.randint(0, n, (nnz, ), generator=gen)] = torch.rand(
          nnz, generator=gen)
    m = a.to_sparse_csr()
    return m.crow_indices(), m.col_indices(), m.values(), a


@pytest.mark.parametrize('transpose', [False, True])
def test_results_do_not_depend_on_thread_count(transpose):
    # Rows are split between threads, each row computed by one thread in a
    # fixed order: outputs must be bitwise equal at 1 and 2 threads, and
    # equal to the dense formula up to rounding.
    crow, col, val, dense = _csr(3000, 30000, 0)
    x = torch.randn(3000, 37, generator=torch.Generator().manual_seed(1))
    p, bits = 0.25, mask_bits(0.25)
    before = torch.get_num_threads()
    outs = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs[threads] = (
                ext.diffuse_steps(x, crow, col, val, [0, 1, 2], transpose, p,
                                  bits, mask_threshold(p, bits), 7),
                ext.csr_mm(crow, col, val, x),
                ext.csr_t_mm(crow, col, val, x, 3000),
            )
    finally:
        torch.set_num_threads(before)
    for a, b in zip(outs[1], outs[2]):
        assert torch.equal(a, b)
    torch.testing.assert_close(outs[1][1], dense @ x, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(outs[1][2], dense.t() @ x, rtol=1e-5,
                               atol=1e-4)


def test_cg_solve_thread_independent_and_exact():
    # Column sums are added over fixed row blocks: the solve is bitwise the
    # same at 1 and 2 threads. It solves (I + gamma L) X = B for the 'sym'
    # Laplacian L = diag(A_hat 1) - A_hat of a 3000-node graph with hubs
    # (several row blocks) to its tolerance, Jacobi-preconditioned in as many
    # iterations as the PyTorch PCG, and unpreconditioned (dinv = 1) in as
    # many as the PyTorch CG, which needs at least 1.5 times more.
    from torch_geometric_diff.nn.diffusion.implicit import conjugate_gradient
    n, gamma = 3000, 4.0
    gen = torch.Generator().manual_seed(2)
    src = torch.randint(0, n, (6 * n, ), generator=gen)
    # Half of the edges end in one of 30 hubs: the row sums of A_hat spread.
    dst = torch.where(torch.rand(6 * n, generator=gen) < 0.5,
                      torch.randint(0, 30, (6 * n, ), generator=gen),
                      torch.randint(0, n, (6 * n, ), generator=gen))
    a = torch.zeros(n, n, dtype=torch.float64)
    a[src, dst] = 1.0
    a = ((a + a.t()) > 0).double() + torch.eye(n, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    a_hat = d.view(-1, 1) * a * d.view(1, -1)
    lap = torch.diag(a_hat.sum(1)) - a_hat
    m = torch.eye(n, dtype=torch.float64) + gamma * lap
    csr = m.to_sparse_csr()
    crow, col, val = csr.crow_indices(), csr.col_indices(), csr.values()
    dinv = m.diagonal().reciprocal().contiguous()
    b = torch.randn(n, 19, dtype=torch.float64, generator=gen)
    before = torch.get_num_threads()
    outs = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs[threads] = ext.cg_solve(crow, col, val, b, dinv, 1e-10, 200)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[1][0], outs[2][0])
    assert outs[1][1:] == outs[2][1:]
    x, iters, res = outs[1]
    ref = torch.linalg.solve(m, b)
    assert (x - ref).norm(dim=0).max() <= 1e-9 * ref.norm(dim=0).max()
    assert res <= 1e-10
    assert ((m @ x - b).norm(dim=0) / b.norm(dim=0)).max() <= 1.1e-10
    _, py_iters, _ = conjugate_gradient(lambda u: m @ u, b, 1e-10, 200, dinv)
    assert abs(iters - py_iters) <= 1
    ones = torch.ones_like(dinv)
    x_plain, plain, _ = ext.cg_solve(crow, col, val, b, ones, 1e-10, 200)
    _, py_plain, _ = conjugate_gradient(lambda u: m @ u, b, 1e-10, 200)
    assert abs(plain - py_plain) <= 1
    assert plain >= 1.5 * iters
    assert (x_plain - ref).norm(dim=0).max() <= 1e-9 * ref.norm(dim=0).max()
    # Unconverged within max_iter: the iterations and the residual say so.
    _, it3, res3 = ext.cg_solve(crow, col, val, b, dinv, 1e-10, 3)
    assert it3 == 3 and res3 > 1e-10
