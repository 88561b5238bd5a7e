import warnings

import pytest
import torch

import torch_geometric.typing
from torch_geometric.typing import SparseTensor

from torch_geometric_diff import DiffConv

from diffconv_helpers import dense_reference, random_graph


@pytest.mark.parametrize('normalize', ['sym', 'rw', None])
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('undirected', [True, False])
@pytest.mark.parametrize('engine', ['fused', 'autograd'])
def test_matches_dense_reference(normalize, weighted, undirected, engine):
    ei, w = random_graph(weighted=weighted, undirected=undirected)
    x = torch.randn(40, 6, dtype=torch.float64)
    step = 0.25 if normalize is not None else 0.05
    conv = DiffConv(step, 7, normalize=normalize, engine=engine)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)  # Must be stable.
        out = conv(x, ei, w)
    ref, _ = dense_reference(x, ei, w, 7, step, normalize)
    assert out.shape == (40, 6)
    assert torch.allclose(out, ref, atol=1e-10)
    # Isolated nodes keep their features under every normalization.
    assert torch.allclose(out[-3:], x[-3:])


def test_without_self_loops():
    ei, w = random_graph()
    x = torch.randn(40, 3, dtype=torch.float64)
    out = DiffConv(0.25, 5, add_self_loops=False)(x, ei, w)
    ref, _ = dense_reference(x, ei, w, 5, 0.25, 'sym', add_self_loops=False)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, atol=1e-10)


def test_num_steps_zero_is_identity_and_no_edges():
    x = torch.randn(10, 4)
    ei, _ = random_graph(10, 20, isolated=0)
    assert torch.equal(DiffConv(num_steps=0)(x, ei), x)
    empty = torch.empty(2, 0, dtype=torch.long)
    for normalize in ['sym', 'rw', None]:
        out = DiffConv(0.5, 10, normalize=normalize)(x, empty)
        assert torch.allclose(out, x)


def test_float32_close_to_reference():
    ei, w = random_graph()
    x = torch.randn(40, 5)
    out = DiffConv(0.3, 20)(x, ei, w.float())
    ref, _ = dense_reference(x, ei, w, 20, 0.3)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), ref, atol=1e-5)


def to_csr(ei, w, n):
    return torch.sparse_coo_tensor(ei.flip(0), w, (n, n)).coalesce() \
        .to_sparse_csr()


def test_sparse_inputs_equal_edge_index():
    ei, w = random_graph()
    n = 40
    x = torch.randn(n, 4, dtype=torch.float64)
    conv = DiffConv(0.25, 6, normalize='rw')
    out = conv(x, ei, w)
    adj_coo = torch.sparse_coo_tensor(ei.flip(0), w, (n, n))  # Uncoalesced.
    adj_csr = to_csr(ei, w, n)
    assert torch.allclose(conv(x, adj_coo), out, atol=1e-12)
    assert torch.allclose(conv(x, adj_csr), out, atol=1e-12)
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        adj_t = SparseTensor(row=ei[1], col=ei[0], value=w,
                             sparse_sizes=(n, n))
        assert torch.allclose(conv(x, adj_t), out, atol=1e-12)


def test_caching_and_reset():
    ei1, _ = random_graph(seed=1)
    ei2, _ = random_graph(seed=2)
    x = torch.randn(40, 3)
    conv = DiffConv(0.25, 5, cached=True)
    out1 = conv(x, ei1)
    assert conv._cached_op is not None
    assert torch.allclose(conv(x, ei2), out1)  # The cache ignores ei2.
    conv.reset_parameters()
    assert conv._cached_op is None
    out2 = conv(x, ei2)
    assert torch.allclose(out2, DiffConv(0.25, 5)(x, ei2))
    assert not torch.allclose(out2, out1)
    with pytest.raises(ValueError, match='cached operator has 40 nodes'):
        conv(torch.randn(39, 3), ei2)


def test_mass_conservation_sym():
    ei, w = random_graph()
    x = torch.randn(40, 5, dtype=torch.float64)
    out = DiffConv(0.4, 30)(x, ei, w)
    assert torch.allclose(out.sum(0), x.sum(0), atol=1e-10)
    # 'rw' on a non-regular graph does not conserve mass.
    out_rw = DiffConv(0.4, 30, normalize='rw')(x, ei, w)
    assert not torch.allclose(out_rw.sum(0), x.sum(0), atol=1e-6)


@pytest.mark.parametrize('normalize', ['sym', None])
def test_dirichlet_energy_non_increasing(normalize):
    ei, w = random_graph()
    x = torch.randn(40, 5, dtype=torch.float64)
    _, L = dense_reference(x, ei, w, 0, 0.0, normalize)
    lam = torch.linalg.eigvalsh(L).max().item()
    conv = DiffConv(1.9 / lam, 15, normalize=normalize)
    states = conv(x, ei, w, return_all=True)
    assert states.shape == (16, 40, 5)
    energy = torch.einsum('knf,nm,kmf->k', states, L, states)
    assert (energy[1:] <= energy[:-1] + 1e-12).all()
    assert energy[-1] < 0.5 * energy[0]


def test_stability_warning_names_bound():
    ei, w = random_graph()
    x = torch.randn(40, 2, dtype=torch.float64)
    _, L = dense_reference(x, ei, w, 0, 0.0, 'sym')
    lam = torch.linalg.eigvalsh(L).max().item()
    conv = DiffConv(0.25, 2)
    op = conv.build_operator(ei, 40, w, dtype=torch.float64)
    assert 0.95 * lam <= op.lambda_max <= lam * (1 + 1e-9)
    with pytest.warns(RuntimeWarning, match=r'step_size <= 2 / lambda_max'):
        DiffConv(2.2 / lam, 2)(x, ei, w)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        DiffConv(1.9 / lam, 2)(x, ei, w)


def test_gradcheck_float64():
    ei, w = random_graph(20, 40)
    x = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)
    conv = DiffConv(0.25, 4, dropout=0.3, cached=True).double()

    def f(x):
        torch.manual_seed(12345)
        return conv(x, ei, w)

    assert torch.autograd.gradcheck(f, (x, ))


def test_gradcheck_learnable_step_and_edge_weight():
    ei, w = random_graph(20, 40)
    x = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)
    conv = DiffConv(0.2, 3, dropout=0.2, learnable_step=True).double()

    def via_param(x, rho):
        torch.manual_seed(7)
        conv.step_param.data = rho.detach()
        return conv(x, ei, w)

    # Gradient w.r.t. the step parameter against finite differences.
    torch.manual_seed(7)
    out = conv(x, ei, w)
    (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(
        out)).sum().backward()
    analytic = conv.step_param.grad.item()
    eps = 1e-6
    rho = conv.step_param.detach().clone()
    weights = torch.linspace(-1, 1, out.numel(),
                             dtype=torch.float64).view_as(out)
    plus = (via_param(x, rho + eps) * weights).sum()
    minus = (via_param(x, rho - eps) * weights).sum()
    assert abs(analytic - ((plus - minus) / (2 * eps)).item()) < 1e-6

    # Gradients reach edge weights through the plain loop.
    wg = w.clone().requires_grad_()
    conv2 = DiffConv(0.25, 3).double()
    assert torch.autograd.gradcheck(lambda w_: conv2(x, ei, w_), (wg, ))


def test_same_seed_same_output():
    ei, _ = random_graph()
    x = torch.randn(40, 8)
    conv = DiffConv(0.25, 5, dropout=0.5)
    torch.manual_seed(3)
    a = conv(x, ei)
    torch.manual_seed(3)
    b = conv(x, ei)
    c = conv(x, ei)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    conv.eval()
    assert torch.allclose(conv(x, ei), DiffConv(0.25, 5)(x, ei))


def test_engines_agree_under_same_seed():
    ei, w = random_graph()
    x = torch.randn(40, 6, dtype=torch.float64, requires_grad=True)
    outs, grads = [], []
    for engine in ['fused', 'autograd']:
        conv = DiffConv(0.25, 8, dropout=0.25, engine=engine)
        torch.manual_seed(11)
        out = conv(x, ei, w)
        grads.append(torch.autograd.grad((out**2).sum(), x)[0])
        outs.append(out)
    assert torch.allclose(outs[0], outs[1], atol=1e-12)
    assert torch.allclose(grads[0], grads[1], atol=1e-12)


def test_compile_cached_path_has_no_graph_breaks():
    ei, _ = random_graph()
    x = torch.randn(40, 4, requires_grad=True)
    conv = DiffConv(0.25, 5, dropout=0.25, cached=True)
    conv(x, ei)  # Build the cache eagerly.
    torch._dynamo.reset()
    compiled = torch.compile(conv, fullgraph=True, backend='aot_eager')
    conv.eval()
    assert torch.allclose(compiled(x, ei), DiffConv(0.25, 5)(x, ei),
                          atol=1e-6)
    conv.train()
    out = compiled(x, ei)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    explanation = torch._dynamo.explain(conv)(x, ei)
    assert explanation.graph_break_count == 0


def test_explain_uses_message_path():
    from torch_geometric.explain import Explainer, GNNExplainer

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)
            self.conv = DiffConv(0.25, 3)

        def forward(self, x, edge_index):
            return self.conv(self.lin(x), edge_index)

    ei, _ = random_graph(20, 30, isolated=0)
    x = torch.randn(20, 4)
    explainer = Explainer(
        Net(), GNNExplainer(epochs=3), explanation_type='model',
        node_mask_type='attributes', edge_mask_type='object',
        model_config=dict(mode='multiclass_classification',
                          task_level='node', return_type='raw'))
    explanation = explainer(x, ei, index=0)
    assert explanation.edge_mask.shape == (ei.size(1), )
    assert explanation.edge_mask.abs().sum() > 0


def test_repr_and_learnable_step():
    assert repr(DiffConv(step_size=0.25, num_steps=20)) == \
        'DiffConv(step_size=0.25, num_steps=20)'
    conv = DiffConv(0.3, 2, learnable_step=True)
    assert abs(conv.step_size - 0.3) < 1e-6
    with torch.no_grad():
        conv.step_param.fill_(5.0)
    conv.reset_parameters()
    assert abs(conv.step_size - 0.3) < 1e-6
    assert [n for n, _ in conv.named_parameters()] == ['step_param']
    assert list(DiffConv().parameters()) == []


@pytest.mark.parametrize('kwargs,match', [
    (dict(step_size=0.0), 'step_size'),
    (dict(step_size=-1.0), 'step_size'),
    (dict(step_size=float('nan')), 'step_size'),
    (dict(step_size=float('inf')), 'step_size'),
    (dict(num_steps=-1), 'num_steps'),
    (dict(num_steps=2.5), 'num_steps'),
    (dict(dropout=1.0), 'dropout'),
    (dict(dropout=-0.1), 'dropout'),
    (dict(normalize='col'), 'normalize'),
    (dict(engine='dense'), 'engine'),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiffConv(**kwargs)


def test_bad_inputs():
    conv = DiffConv(0.25, 2)
    x = torch.randn(5, 3)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    with pytest.raises(ValueError, match=r'shape \[2, num_edges\]'):
        conv(x, torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match=r'shape \[2, num_edges\]'):
        conv(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='integer node indices'):
        conv(x, ei.float())
    with pytest.raises(ValueError, match=r'outside \[0, 5\)'):
        conv(x, torch.tensor([[0, 5], [1, 2]]))
    with pytest.raises(ValueError, match=r'outside \[0, 5\)'):
        conv(x, torch.tensor([[0, -1], [1, 2]]))
    with pytest.raises(ValueError, match=r"'edge_weight' must have shape"):
        conv(x, ei, torch.ones(4))
    with pytest.raises(ValueError, match='negative'):
        conv(x, ei, torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match='non-finite'):
        conv(x, ei, torch.tensor([1.0, float('nan'), 1.0]))
    with pytest.raises(ValueError, match='non-finite'):
        conv(x, ei, torch.tensor([1.0, float('inf'), 1.0]))
    with pytest.raises(ValueError, match='floating point'):
        conv(x, ei, torch.ones(3, dtype=torch.long))
    rect = torch.sparse_coo_tensor(ei, torch.ones(3), (5, 6))
    with pytest.raises(ValueError, match='must be square'):
        conv(x, rect)
    with pytest.raises(ValueError, match='must be square'):
        conv(x, rect.to_sparse_csr())
    big = torch.sparse_coo_tensor(ei, torch.ones(3), (6, 6))
    with pytest.raises(ValueError, match="has size 6 x 6 but 'x' has 5"):
        conv(x, big.to_sparse_csr())
    neg = torch.sparse_coo_tensor(ei, -torch.ones(3), (5, 5))
    with pytest.raises(ValueError, match='negative'):
        conv(x, neg)
    with pytest.raises(ValueError, match="'edge_weight' must be None"):
        conv(x, big, torch.ones(3))
    with pytest.raises(ValueError, match='2-D floating-point'):
        conv(torch.randn(5), ei)
    with pytest.raises(ValueError, match='2-D floating-point'):
        conv(torch.ones(5, 3, dtype=torch.long), ei)
    with pytest.raises(ValueError, match='must be a tensor'):
        conv(x, [[0, 1], [1, 2]])
