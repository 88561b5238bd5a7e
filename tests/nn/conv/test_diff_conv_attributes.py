import warnings

import numpy as np
import pytest
import torch

from torch_geometric_diff import DiffConv

from diffconv_helpers import random_graph


def test_hyper_parameters_are_settable_properties():
    ei, w = random_graph()
    x = torch.randn(40, 3, dtype=torch.float64)
    conv = DiffConv(0.25, 10).eval()
    conv.step_size = 0.1
    conv.num_steps = 3
    assert conv.step_size == 0.1 and conv.num_steps == 3
    assert torch.allclose(conv(x, ei, w), DiffConv(0.1, 3)(x, ei, w))
    conv.train()
    conv.dropout = 0.5
    torch.manual_seed(0)
    out = conv(x, ei, w)
    torch.manual_seed(0)
    assert torch.equal(out, DiffConv(0.1, 3, dropout=0.5)(x, ei, w))
    # A cached operator holds I and L apart: a new step size applies.
    cached = DiffConv(0.25, 4, cached=True).eval()
    cached(x, ei, w)
    cached.step_size = 0.1
    assert torch.allclose(cached(x, ei, w), DiffConv(0.1, 4)(x, ei, w))


def test_numpy_scalars_are_accepted():
    conv = DiffConv(step_size=np.float32(0.1), num_steps=np.int64(10),
                    dropout=np.float64(0.25))
    assert type(conv.num_steps) is int and conv.num_steps == 10
    assert type(conv.dropout) is float and conv.dropout == 0.25
    assert abs(conv.step_size - 0.1) < 1e-7
    conv.step_size = np.float64(0.2)
    conv.num_steps = np.int32(4)
    conv.dropout = np.float32(0.5)
    assert (conv.step_size, conv.num_steps, conv.dropout) == (0.2, 4, 0.5)


@pytest.mark.parametrize('name,value', [
    ('step_size', 0.0), ('step_size', -1.0), ('step_size', float('nan')),
    ('step_size', float('inf')), ('step_size', True), ('step_size', '0.1'),
    ('num_steps', -1), ('num_steps', 2.5), ('num_steps', True),
    ('num_steps', np.float32(3)), ('dropout', 1.5), ('dropout', 1.0),
    ('dropout', -0.1), ('dropout', float('nan')), ('dropout', True),
])
def test_values_are_validated_on_set(name, value):
    conv = DiffConv(0.25, 10, dropout=0.25)
    with pytest.raises(ValueError, match=f"'{name}'"):
        setattr(conv, name, value)
    assert (conv.step_size, conv.num_steps, conv.dropout) == (0.25, 10, 0.25)
    with pytest.raises(ValueError, match=f"'{name}'"):
        DiffConv(**{name: value})


def test_learnable_step_setter_and_repr_show_the_current_gamma():
    ei, _ = random_graph()
    x = torch.randn(40, 3)
    conv = DiffConv(0.3, 2, learnable_step=True)
    assert repr(conv) == \
        'DiffConv(step_size=0.3, num_steps=2, learnable_step=True)'
    opt = torch.optim.SGD(conv.parameters(), lr=1.0)
    conv(x, ei).square().sum().backward()
    opt.step()
    gamma = float(torch.nn.functional.softplus(conv.step_param.detach()))
    assert abs(gamma - 0.3) > 1e-3
    assert f'step_size={gamma:g}' in repr(conv)
    conv.step_size = 0.1  # Sets the parameter.
    softplus = torch.nn.functional.softplus(conv.step_param.detach())
    assert abs(float(softplus) - 0.1) < 1e-6
    assert 'step_size=0.1,' in repr(conv)
    conv.reset_parameters()  # Back to the last value set.
    assert abs(conv.step_size - 0.1) < 1e-6


def test_setting_an_unstable_step_on_a_cached_layer_warns():
    ei, w = random_graph()
    x = torch.randn(40, 3)
    conv = DiffConv(0.25, 2, cached=True)
    conv(x, ei, w)
    with pytest.warns(RuntimeWarning, match='lambda_max'):
        conv.step_size = 5.0
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        conv.step_size = 0.3


class HeteroNet(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.conv = DiffConv(0.25, 3, **kwargs)

    def forward(self, x, edge_index):
        return self.conv(x, edge_index)


def test_bipartite_input_names_the_limitation():
    x_src, x_dst = torch.randn(4, 3), torch.randn(5, 3)
    ei = torch.tensor([[0, 3], [1, 2]])
    with pytest.raises(ValueError, match='square operator on one node type'):
        DiffConv()((x_src, x_dst), ei)


def test_to_hetero_within_node_types_and_bipartite_relations():
    from torch_geometric.nn import to_hetero
    x = {'paper': torch.randn(6, 3), 'author': torch.randn(5, 3)}
    ei = {('paper', 'cites', 'paper'): random_graph(6, 10, isolated=0)[0],
          ('author', 'knows', 'author'): random_graph(5, 8, isolated=0)[0]}
    # Relations within one node type: each type is diffused on its own graph.
    model = to_hetero(HeteroNet(), (list(x), list(ei)), aggr='sum')
    out = model(x, ei)
    ref = DiffConv(0.25, 3)
    assert torch.allclose(out['paper'],
                          ref(x['paper'], ei['paper', 'cites', 'paper']))
    assert torch.allclose(out['author'],
                          ref(x['author'], ei['author', 'knows', 'author']))
    # A relation between two node types has no square operator.
    ei['author', 'writes', 'paper'] = torch.tensor([[0, 4], [1, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        model = to_hetero(HeteroNet(add_self_loops=False),
                          (list(x), list(ei)), aggr='sum')
    with pytest.raises(ValueError, match='square operator on one node type'):
        model(x, ei)
