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
