import pytest
import torch
from torch_geometric.utils import to_undirected

from torch_geometric_diff import DiffResNetGNN
from torch_geometric_diff.loader import (
    BlockedOperator,
    apply_in_chunks,
    place_operator,
)


def random_graph(n=60, m=300, seed=0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, m), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    return to_undirected(edge_index, num_nodes=n)


@pytest.mark.parametrize('max_block_nnz', [1, 7, 50, 10**9])
def test_blocked_operator(max_block_nnz):
    gen = torch.Generator().manual_seed(1)
    dense = torch.rand(23, 23, generator=gen)
    dense[dense < 0.7] = 0
    dense[5] = 0  # An empty row.
    x = torch.randn(23, 4, generator=gen)
    op = BlockedOperator(dense.to_sparse_csr(), max_block_nnz=max_block_nnz)
    assert op.nnz == int((dense != 0).sum())
    assert torch.allclose(op.matmul(x), dense @ x, atol=1e-6)
    assert torch.allclose(op @ x.double(), dense.double() @ x.double())
    # Blocks tile the rows and respect the size limit (one row at least).
    assert op.row_ranges[0][0] == 0 and op.row_ranges[-1][1] == 23
    for (s, e), (s2, _) in zip(op.row_ranges, op.row_ranges[1:]):
        assert e == s2
    for block, (s, e) in zip(op.blocks, op.row_ranges):
        assert block._nnz() <= max_block_nnz or e - s == 1
    if max_block_nnz == 10**9:
        assert len(op.blocks) == 1
    with pytest.raises(ValueError, match='rows'):
        op.matmul(torch.randn(22, 4))


@pytest.mark.parametrize('max_block_nnz', [1, 7, 10**9])
@pytest.mark.parametrize('shape', [(23, 23), (23, 19), (19, 23)])
def test_blocked_operator_diagonal(max_block_nnz, shape):
    gen = torch.Generator().manual_seed(3)
    dense = torch.rand(*shape, generator=gen)
    dense[dense < 0.7] = 0
    dense[5] = 0  # An empty row.
    dense[7, 7] = 0  # A row without its diagonal entry.
    op = BlockedOperator(dense.to_sparse_csr(), max_block_nnz=max_block_nnz)
    torch.testing.assert_close(op.diagonal(), dense.diagonal())


def test_place_operator_cpu():
    dense = torch.eye(5).to_sparse_csr()
    op = place_operator(dense, 'cpu', 'auto')
    assert op.blocks[0].device.type == 'cpu'
    with pytest.raises(ValueError, match='operator_device'):
        place_operator(dense, 'cpu', 'gpu')


def test_power_and_channel_chunks_against_dense():
    gen = torch.Generator().manual_seed(2)
    dense = torch.rand(17, 17, generator=gen, dtype=torch.float64)
    dense[dense < 0.6] = 0
    x = torch.randn(17, 5, generator=gen, dtype=torch.float64)
    op = BlockedOperator(dense.to_sparse_csr(), max_block_nnz=20)
    ref = torch.linalg.matrix_power(dense, 3) @ x
    assert torch.allclose(op.power(x, 3), ref, atol=1e-12)
    assert torch.allclose(op.power(x, 3, 'cpu', channel_chunk=2), ref,
                          atol=1e-12)
    assert torch.equal(op.power(x, 0), x)
    with pytest.raises(ValueError, match='channel_chunk'):
        op.power(x, 1, channel_chunk=0)


@pytest.mark.parametrize('layout', ['dense', 'coo', 'csr'])
def test_apply_in_chunks(layout):
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(11, 4, generator=gen)
    x[x < 0.5] = 0
    x[3] = 0  # An empty row.
    inp = {'dense': x, 'coo': x.to_sparse(), 'csr': x.to_sparse_csr()}[layout]
    w = torch.randn(4, 2, generator=gen)
    seen = []

    def fn(chunk):
        seen.append(chunk.size(0))
        return chunk.to_dense() @ w

    out = apply_in_chunks(fn, inp, 4, 'cpu')
    assert seen == [4, 4, 3]
    assert torch.allclose(out, x @ w)
    with pytest.raises(ValueError, match='chunk_size'):
        apply_in_chunks(fn, inp, 0, 'cpu')


@pytest.mark.parametrize('hidden,num_blocks', [(None, 1), (16, 1), (16, 2),
                                               (3, 1)])
def test_inference_equals_forward(hidden, num_blocks):
    torch.manual_seed(0)
    n = 60
    edge_index = random_graph(n)
    x = torch.randn(n, 8)
    model = DiffResNetGNN(8, 5, hidden_channels=hidden, num_steps=6,
                          step_size=0.4, dropout=0.3, num_blocks=num_blocks)
    model.train()
    out = model.inference(x, edge_index, device='cpu', chunk_size=7,
                          max_block_nnz=40)
    assert model.training  # Mode restored.
    model.eval()
    with torch.no_grad():
        ref = model(x, edge_index)
    assert out.shape == (n, 5)
    assert torch.allclose(out, ref, atol=1e-5)
    out = model.inference(x, edge_index, channel_chunk=2)
    assert torch.allclose(out, ref, atol=1e-5)
    with pytest.raises(ValueError, match='channel_chunk'):
        model.inference(x, edge_index, channel_chunk=0)
    with pytest.raises(ValueError, match='chunk_size'):
        model.inference(x, edge_index, chunk_size=0)


def test_inference_sparse_input_and_edge_weight():
    torch.manual_seed(2)
    n = 40
    edge_index = random_graph(n, 150, seed=2)
    weight = torch.rand(edge_index.size(1)) + 0.1
    x = torch.rand(n, 12) * (torch.rand(n, 12) < 0.3)
    model = DiffResNetGNN(12, 3, num_steps=4, step_size=0.3).eval()
    with torch.no_grad():
        ref = model(x, edge_index, weight)
        unweighted = model(x, edge_index)
    assert not torch.allclose(ref, unweighted, atol=1e-3)
    for inp in (x, x.to_sparse(), x.to_sparse_csr()):
        out = model.inference(inp, edge_index, weight, chunk_size=9)
        assert torch.allclose(out, ref, atol=1e-5)


def test_inference_against_dense_formula():
    torch.manual_seed(1)
    n = 30
    edge_index = random_graph(n, 80)
    x = torch.randn(n, 4)
    model = DiffResNetGNN(4, 3, hidden_channels=6, num_steps=3,
                          step_size=0.5).eval()
    # M = I - gamma (I - D^-1/2 (A + I) D^-1/2): Laplacian of the normalized
    # adjacency with self-loops, whose row sums are not one in general.
    a = torch.zeros(n, n)
    a[edge_index[1], edge_index[0]] = 1
    a = a + torch.eye(n)
    dis = a.sum(1).pow(-0.5)
    a_hat = dis[:, None] * a * dis[None, :]
    lap = torch.diag(a_hat.sum(1)) - a_hat
    m = torch.eye(n) - 0.5 * lap
    with torch.no_grad():
        h = model.lin_in(x)
        h = h + torch.relu(model.lins[0](h))
        ref = model.lin_out(torch.linalg.matrix_power(m, 3) @ h)
    op = model.blocked_operator(edge_index, n, 'cpu')
    assert torch.allclose(op.matmul(torch.eye(n)), m, atol=1e-6)
    out = model.inference(x, edge_index, operator=op)
    assert torch.allclose(out, ref, atol=1e-5)
    with pytest.raises(ValueError, match='operator'):
        model.inference(x[:20], edge_index, operator=op)
