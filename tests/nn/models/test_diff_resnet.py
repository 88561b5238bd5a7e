import pytest
import torch

from torch_geometric_diff import DiffResNetGNN


def dense_laplacian(edge_index, n):
    A = torch.zeros(n, n, dtype=torch.float64)
    A.index_put_((edge_index[1], edge_index[0]),
                 torch.ones(edge_index.size(1), dtype=torch.float64),
                 accumulate=True)
    A = A + torch.eye(n, dtype=torch.float64)
    dis = A.sum(1).pow(-0.5)
    A_hat = dis.view(-1, 1) * A * dis.view(1, -1)
    return torch.diag(A_hat.sum(1)) - A_hat


def paper_model_reference(model, x, L):
    r"""x <- x + relu(W1 x + b1); K steps of x <- x - gamma L x; W2 x + b2."""
    W1, b1 = model.lins[0].weight.double(), model.lins[0].bias.double()
    W2, b2 = model.lin_out.weight.double(), model.lin_out.bias.double()
    h = x.double()
    h = h + torch.relu(h @ W1.t() + b1)
    for _ in range(model.conv.num_steps):
        h = h - model.conv.step_size * (L @ h)
    return h @ W2.t() + b2


def small_graph(n=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, 90), generator=gen)
    return torch.cat([ei, ei.flip(0)], dim=1)


def test_parameter_count_is_the_papers():
    F, C = 1433, 7
    model = DiffResNetGNN(F, C)
    count = sum(p.numel() for p in model.parameters())
    assert count == F * F + F + F * C + C
    model = DiffResNetGNN(100, 5, hidden_channels=16, num_blocks=2)
    assert sum(p.numel() for p in model.parameters()) == \
        100 * 16 + 16 + 2 * (16 * 16 + 16) + 16 * 5 + 5


def test_eval_output_matches_formula_and_sparse_input():
    n, F, C = 30, 12, 3
    ei = small_graph(n)
    x = torch.rand(n, F) * (torch.rand(n, F) < 0.2)
    model = DiffResNetGNN(F, C, num_steps=7, dropout=0.25).eval()
    ref = paper_model_reference(model, x, dense_laplacian(ei, n))
    out = model(x, ei)
    assert out.shape == (n, C)
    assert torch.allclose(out.double(), ref, atol=1e-5)
    for xs in (x.to_sparse(), x.to_sparse_csr()):
        assert torch.allclose(model(xs, ei), out, atol=1e-5)
    # Training mode without dropout takes the plain order of operations.
    model_nodrop = DiffResNetGNN(F, C, num_steps=7, dropout=0.0)
    model_nodrop.load_state_dict(model.state_dict())
    assert torch.allclose(model_nodrop.train()(x, ei).double(), ref,
                          atol=1e-5)


def test_train_mode_sparse_input_gradients_equal_dense():
    n, F, C = 30, 12, 3
    ei = small_graph(n)
    x = torch.rand(n, F) * (torch.rand(n, F) < 0.2)
    model = DiffResNetGNN(F, C, num_steps=4, dropout=0.25)
    grads = []
    for inp in (x, x.to_sparse_csr()):
        model.zero_grad()
        torch.manual_seed(5)
        model(inp, ei).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-5)


def test_hidden_blocks_and_reset():
    n = 30
    ei = small_graph(n)
    x = torch.randn(n, 20)
    model = DiffResNetGNN(20, 4, hidden_channels=8, num_blocks=3,
                          num_steps=3, cached=True, act='tanh')
    out = model(x, ei)
    assert out.shape == (n, 4) and torch.isfinite(out).all()
    assert model.conv._cached_op is not None
    before = model.lin_out.weight.clone()
    model.reset_parameters()
    assert model.conv._cached_op is None
    assert not torch.equal(before, model.lin_out.weight)
    assert 'hidden_channels=8' in repr(model)


@pytest.mark.parametrize('kwargs,match', [
    (dict(in_channels=0, out_channels=3), 'in_channels'),
    (dict(in_channels=4, out_channels=-1), 'out_channels'),
    (dict(in_channels=4, out_channels=3, hidden_channels=0),
     'hidden_channels'),
    (dict(in_channels=4, out_channels=3, num_blocks=0), 'num_blocks'),
    (dict(in_channels=4, out_channels=3, step_size=-0.1), 'step_size'),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiffResNetGNN(**kwargs)


def test_real_cora_eval_output(data_copy):
    from torch_geometric.datasets import Planetoid
    data = Planetoid(data_copy('Planetoid'), 'Cora')[0]
    assert (data.num_nodes, data.num_features) == (2708, 1433)
    x = data.x / data.x.sum(1, keepdim=True).clamp(min=1)
    torch.manual_seed(0)
    model = DiffResNetGNN(1433, 7, cached=True).eval()
    with torch.no_grad():
        out = model(x.to_sparse_csr(), data.edge_index)
        L = dense_laplacian(data.edge_index, 2708).to_sparse()
        ref = paper_model_reference(model, x, L)
    assert out.shape == (2708, 7)
    assert torch.allclose(out.double(), ref, atol=1e-4)
