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


class BlockDiagonalLinear(torch.nn.Module):
    r"""M independent linear maps on [N, M * I] -> [N, M * O]."""
    def __init__(self, lins):
        super().__init__()
        Parameter = torch.nn.Parameter
        self.weight = Parameter(torch.stack([lin.weight for lin in lins]))
        self.bias = Parameter(torch.stack([lin.bias for lin in lins]))
        m, o, i = self.weight.shape
        self.in_features, self.out_features = m * i, m * o

    def forward(self, h):
        m, o, i = self.weight.shape
        out = torch.einsum('nmi,moi->nmo', h.view(-1, m, i), self.weight)
        return (out + self.bias).reshape(-1, m * o)


def shared_linear(lins):
    r"""M linear maps of one shared input, as one Linear [N, I] -> [N, M*O]."""
    out = torch.nn.Linear(lins[0].in_features,
                          len(lins) * lins[0].out_features)
    with torch.no_grad():
        out.weight.copy_(torch.cat([lin.weight for lin in lins]))
        out.bias.copy_(torch.cat([lin.bias for lin in lins]))
    return out


class SideBySide(DiffResNetGNN):
    r"""M models as one [N, M * F] state: only the linear modules and
    input_residual are swapped, forward and inference are inherited."""
    def __init__(self, models, **kwargs):
        first = models[0]
        super().__init__(first.in_channels, first.out_channels,
                         first.hidden_channels, num_blocks=first.num_blocks,
                         **kwargs)
        self.num_models = len(models)
        if first.lin_in is not None:
            self.lin_in = shared_linear([m.lin_in for m in models])
            self.lins[0] = BlockDiagonalLinear([m.lins[0] for m in models])
        else:
            self.lins[0] = shared_linear([m.lins[0] for m in models])
        for i in range(1, first.num_blocks):
            self.lins[i] = BlockDiagonalLinear([m.lins[i] for m in models])
        self.lin_out = BlockDiagonalLinear([m.lin_out for m in models])

    def input_residual(self, x):
        return super().input_residual(x).repeat(1, self.num_models)


@pytest.mark.parametrize('hidden,out_channels,num_blocks', [
    (None, 3, 1), (None, 16, 1), (6, 3, 2), (6, 8, 3)])
def test_subclass_runs_models_side_by_side(hidden, out_channels, num_blocks):
    # The factoring lets a subclass reuse forward and inference for M models
    # at once; commuting (C < F) and not commuting are both covered.
    n, F = 30, 12
    ei = small_graph(n)
    x = torch.rand(n, F) * (torch.rand(n, F) < 0.3)
    kwargs = dict(num_steps=4, step_size=0.3, dropout=0.25)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(DiffResNetGNN(F, out_channels, hidden,
                                    num_blocks=num_blocks, **kwargs).eval())
    batched = SideBySide(models, **kwargs).eval()
    width = hidden or F
    assert batched._commute() == (out_channels < width)
    with torch.no_grad():
        ref = torch.cat([m(x, ei) for m in models], dim=1)
        out = batched(x.to_sparse_csr(), ei)
    assert out.shape == (n, 3 * out_channels)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(batched.inference(x, ei, chunk_size=7), ref,
                          atol=1e-5)


@pytest.mark.parametrize('hidden', [None, 8])
def test_input_width_is_checked_for_every_layout(hidden):
    n = 30
    ei = small_graph(n)
    model = DiffResNetGNN(4, 3, hidden_channels=hidden, num_steps=2).eval()
    x = torch.rand(n, 7) * (torch.rand(n, 7) < 0.3)
    match = r"'x' has 7 features .*in_channels=4"
    for xs in (x, x.to_sparse(), x.to_sparse_csr()):
        with pytest.raises(ValueError, match=match):
            model(xs, ei)
        with pytest.raises(ValueError, match=match):
            model.inference(xs, ei)
    with pytest.raises(ValueError, match="'x' must be a 2-D"):
        model(torch.rand(n), ei)
    for xs in (x[:, :4], x[:, :4].to_sparse(), x[:, :4].to_sparse_csr()):
        assert model(xs, ei).shape == (n, 3)
