import pytest
import torch

from torch_geometric_diff.metrics import dirichlet_energy


def test_path_graph_by_hand():
    # Path 0 - 1 - 2 stored in both directions, weights 1 and 2.
    x = torch.tensor([[0.0], [1.0], [3.0]])
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    w = torch.tensor([1.0, 1.0, 2.0, 2.0])
    # 1 * (1 - 0)^2 + 2 * (3 - 1)^2 = 9
    assert float(dirichlet_energy(x, edge_index, w)) == pytest.approx(9.0)
    assert float(dirichlet_energy(x, edge_index)) == pytest.approx(5.0)
    # A constant signal has zero energy.
    assert float(dirichlet_energy(torch.ones(3, 4), edge_index, w)) == 0.0


def dense_laplacians(edge_index, w, N):
    W = torch.zeros(N, N, dtype=torch.float64)
    W[edge_index[1], edge_index[0]] = w.double()
    D = torch.diag(W.sum(1))
    d = W.sum(1).pow(-0.5)
    return D - W, torch.eye(N, dtype=torch.float64) - d[:, None] * W * d


@pytest.mark.parametrize('chunk_size', [None, 3])
def test_trace_forms(chunk_size):
    torch.manual_seed(0)
    N = 12
    A = (torch.rand(N, N) < 0.4).float().triu(1)
    A = A + A.t()
    A.fill_diagonal_(1.0)  # Self-loops contribute nothing.
    edge_index = A.nonzero().t()
    sym = torch.rand(N, N)
    sym = sym + sym.t()
    w = sym[edge_index[1], edge_index[0]]
    x = torch.randn(N, 3)
    L, L_sym = dense_laplacians(edge_index, w, N)
    xd = x.double()
    e = dirichlet_energy(x, edge_index, w, chunk_size=chunk_size)
    assert float(e) == pytest.approx(float(torch.trace(xd.t() @ L @ xd)),
                                     rel=1e-5)
    e = dirichlet_energy(x, edge_index, w, normalization='sym',
                         chunk_size=chunk_size)
    assert float(e) == pytest.approx(float(torch.trace(xd.t() @ L_sym @ xd)),
                                     rel=1e-5)


def test_gradient():
    x = torch.randn(4, 2, requires_grad=True)
    edge_index = torch.tensor([[0, 1], [1, 0]])
    dirichlet_energy(x, edge_index).backward()
    # dE/dx_0 = 2 (x_0 - x_1) with both directions stored.
    assert torch.allclose(x.grad[0], 2 * (x[0] - x[1]).detach())
    assert torch.equal(x.grad[2:], torch.zeros(2, 2))


def test_bad_input():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match='normalization'):
        dirichlet_energy(x, torch.zeros(2, 0).long(), normalization='rw')
    with pytest.raises(ValueError, match='refers to node'):
        dirichlet_energy(x, torch.tensor([[0], [3]]))
    with pytest.raises(ValueError, match='edge_weight'):
        dirichlet_energy(x, torch.tensor([[0], [1]]), torch.ones(2))
