r"""PyG's own conv test patterns (``test/nn/conv/test_appnp.py``,
``test_gcn_conv.py``, ``test/nn/test_compile_conv.py``) applied to
:class:`DiffConv`, and the citation-benchmark pattern on Cora."""
import copy
import io

import pytest
import torch
import torch.nn.functional as F

import torch_geometric.typing
from torch_geometric.nn import Sequential
from torch_geometric.testing import assert_module
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor

from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion import sparse_linear

from diffconv_helpers import dense_reference

EDGE_INDEX = torch.tensor([[0, 0, 0, 1, 2, 3], [1, 2, 3, 0, 0, 0]])


def test_diff_conv():  # test_appnp.py::test_appnp
    x = torch.randn(4, 16)
    adj1 = to_torch_csc_tensor(EDGE_INDEX, size=(4, 4))

    conv = DiffConv(0.25, 3, cached=True)
    assert str(conv) == 'DiffConv(step_size=0.25, num_steps=3)'
    out = conv(x, EDGE_INDEX)
    assert out.size() == (4, 16)
    ref, _ = dense_reference(x, EDGE_INDEX, None, 3, 0.25)
    assert torch.allclose(out.double(), ref, atol=1e-6)
    assert torch.allclose(conv(x, adj1.t()), out, rtol=1e-5, atol=1e-6)
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        adj2 = SparseTensor.from_edge_index(EDGE_INDEX, sparse_sizes=(4, 4))
        assert torch.allclose(conv(x, adj2.t()), out, rtol=1e-5, atol=1e-6)

    # Run again to test the cached functionality:
    assert conv._cached_op is not None
    assert torch.allclose(conv(x, EDGE_INDEX), conv(x, adj1.t()), rtol=1e-5,
                          atol=1e-6)
    conv.reset_parameters()
    assert conv._cached_op is None


@pytest.mark.parametrize('cached', [False, True])
def test_diff_conv_with_edge_weight(cached):  # test_gcn_conv.py
    x = torch.randn(4, 16)
    value = torch.rand(EDGE_INDEX.size(1))
    adj1 = to_torch_csc_tensor(EDGE_INDEX, size=(4, 4))
    adj2 = to_torch_csc_tensor(EDGE_INDEX, value, size=(4, 4))
    adj3 = to_torch_coo_tensor(EDGE_INDEX, value, size=(4, 4))

    conv = DiffConv(0.25, 3, normalize='rw')
    out1 = conv(x, EDGE_INDEX)
    assert torch.allclose(conv(x, adj1.t()), out1, atol=1e-6)
    out2 = conv(x, EDGE_INDEX, value)
    assert out2.size() == (4, 16)
    assert torch.allclose(conv(x, adj2.t()), out2, atol=1e-6)
    assert torch.allclose(conv(x, adj3.t().coalesce()), out2, atol=1e-6)
    ref, _ = dense_reference(x, EDGE_INDEX, value, 3, 0.25, 'rw')
    assert torch.allclose(out2.double(), ref, atol=1e-6)


@pytest.mark.parametrize('normalize', ['sym', 'rw', None])
def test_assert_module(normalize):
    # Shape, invariance to the edge order and to the layout of the graph.
    x = torch.randn(4, 16, dtype=torch.float64)
    conv = DiffConv(0.1, 3, normalize=normalize)
    out = assert_module(conv, x, EDGE_INDEX, expected_size=(4, 16),
                        test_sparse_layouts=['torch_sparse',
                                             torch.sparse_csc,
                                             torch.sparse_coo])
    ref, _ = dense_reference(x, EDGE_INDEX, None, 3, 0.1, normalize)
    assert torch.allclose(out, ref, atol=1e-12)


def test_diff_conv_dropout_is_unbiased():  # test_appnp.py::..._dropout
    # Each step is linear in the dropped-out state and masks are
    # independent, so the mean over many masks is the output without
    # dropout. The 2000 column copies of x draw independent masks.
    x = torch.randn(4, 1, dtype=torch.float64).repeat(1, 2000)
    conv = DiffConv(0.3, 3, dropout=0.5)
    torch.manual_seed(0)
    out = conv(x, EDGE_INDEX)
    expected = conv.eval()(x, EDGE_INDEX)
    std = out.std(1, keepdim=True) / 2000**0.5
    assert ((out.mean(1, keepdim=True) - expected[:, :1]).abs()
            < 5 * std).all()


def test_diff_conv_with_sparse_input_feature():  # test_gcn_conv.py
    x = torch.sparse_coo_tensor(indices=torch.tensor([[0, 0], [0, 1]]),
                                values=torch.tensor([1., 1.]),
                                size=torch.Size([4, 16]))
    out = DiffConv(0.25, 3)(x, EDGE_INDEX)
    assert out.size() == (4, 16)
    assert torch.allclose(out, DiffConv(0.25, 3)(x.to_dense(), EDGE_INDEX))


@pytest.mark.parametrize('requires_grad', [False, True])
def test_gradient_reaches_sparse_adjacency(requires_grad):
    # test_gcn_conv.py::test_gcn_norm_gradient
    x = torch.randn(4, 3, dtype=torch.float64)
    weight = torch.rand(EDGE_INDEX.size(1), dtype=torch.float64) + 0.5
    weight.requires_grad_(requires_grad)
    adj = to_torch_coo_tensor(EDGE_INDEX.flip(0), weight, size=(4, 4))
    out = DiffConv(0.25, 3)(x, adj)
    assert out.requires_grad == requires_grad
    if requires_grad:
        g1, = torch.autograd.grad(out.sum(), weight)
        w2 = weight.detach().clone().requires_grad_()
        g2, = torch.autograd.grad(
            DiffConv(0.25, 3)(x, EDGE_INDEX, w2).sum(), w2)
        assert torch.allclose(g1, g2)


def test_compile_conv():  # test_compile_conv.py
    x = torch.randn(10, 16)
    edge_index = torch.randint(0, x.size(0), (2, 40))
    conv = DiffConv(0.25, 5)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(conv)(x, edge_index)
    assert explanation.graph_break_count == 0
    torch._dynamo.reset()
    out = torch.compile(conv, backend='aot_eager')(x, edge_index)
    assert torch.allclose(conv(x, edge_index), out, atol=1e-6)


def test_copy_pickle_state_dict_and_sequential():
    x = torch.randn(4, 8)
    conv = DiffConv(0.2, 3, learnable_step=True, dropout=0.25)
    with torch.no_grad():
        conv.step_param.add_(0.3)
    conv.eval()
    out = conv(x, EDGE_INDEX)
    assert torch.allclose(copy.deepcopy(conv)(x, EDGE_INDEX), out)
    buf = io.BytesIO()
    torch.save(conv, buf)
    buf.seek(0)
    assert torch.allclose(torch.load(buf, weights_only=False)(x, EDGE_INDEX),
                          out)
    other = DiffConv(0.2, 3, learnable_step=True, dropout=0.25).eval()
    other.load_state_dict(conv.state_dict())
    assert torch.allclose(other(x, EDGE_INDEX), out)
    model = Sequential('x, edge_index', [
        (torch.nn.Linear(8, 8), 'x -> x'),
        (conv, 'x, edge_index -> x'),
    ]).eval()
    assert model(x, EDGE_INDEX).shape == (4, 8)


def test_citation_benchmark_pattern_on_cora(data_copy):
    r"""PyG's ``benchmark/citation/appnp.py`` with :class:`DiffConv` in
    APPNP's slot (on the class scores, without dropout there) trains on
    Cora's public split and beats the same model without propagation."""
    import torch_geometric.transforms as T
    from torch_geometric.datasets import Planetoid
    data = Planetoid(data_copy('Planetoid'), 'Cora',
                     transform=T.NormalizeFeatures())[0]
    x = data.x.to_sparse_csr()

    class Net(torch.nn.Module):
        def __init__(self, prop):
            super().__init__()
            self.lin1 = torch.nn.Linear(data.num_features, 32)
            self.lin2 = torch.nn.Linear(32, 7)
            self.prop = prop

        def forward(self, x, edge_index):
            x = F.relu(sparse_linear(x, self.lin1))
            x = F.dropout(x, p=0.5, training=self.training)
            x = self.lin2(x)
            return x if self.prop is None else self.prop(x, edge_index)

    def test_accuracy(prop) -> float:
        torch.manual_seed(0)
        model = Net(prop)
        opt = torch.optim.Adam(model.parameters(), lr=0.01,
                               weight_decay=5e-4)
        for _ in range(60):
            model.train()
            opt.zero_grad()
            out = model(x, data.edge_index)
            F.cross_entropy(out[data.train_mask],
                            data.y[data.train_mask]).backward()
            opt.step()
        pred = model.eval()(x, data.edge_index).argmax(1)
        mask = data.test_mask
        return float((pred[mask] == data.y[mask]).float().mean())

    mlp = test_accuracy(None)
    diff = test_accuracy(DiffConv(0.25, 10, cached=True))
    assert diff > 0.75 and diff > mlp + 0.15
