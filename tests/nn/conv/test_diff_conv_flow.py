import pytest
import torch
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

from torch_geometric_diff import DiffConv

from diffconv_helpers import dense_reference, random_graph

PATHS = ['fused', 'autograd', 'explain', 'edge_weight_grad']


def run_path(conv, x, edge_index, edge_weight, path):
    r"""Runs :obj:`conv` on one of its four execution paths."""
    conv.engine = 'autograd' if path == 'autograd' else 'fused'
    if path == 'edge_weight_grad':
        edge_weight = edge_weight.clone().requires_grad_()
    if path == 'explain':  # An all-ones mask leaves the function unchanged.
        mask = torch.ones(edge_index.size(1), dtype=x.dtype)
        set_masks(conv, mask, edge_index, apply_sigmoid=False)
    try:
        return conv(x, edge_index, edge_weight)
    finally:
        clear_masks(conv)


@pytest.mark.parametrize('normalize', ['sym', 'rw', None])
@pytest.mark.parametrize('path', PATHS)
def test_every_path_computes_the_same_function(normalize, path):
    ei, w = random_graph(undirected=False)  # Directed: flow matters.
    x = torch.randn(40, 3, dtype=torch.float64)
    step = 0.25 if normalize is not None else 0.05
    ref, _ = dense_reference(x, ei, w, 4, step, normalize)
    out = run_path(DiffConv(step, 4, normalize=normalize), x, ei, w, path)
    assert torch.allclose(out, ref, atol=1e-10)
    conv = DiffConv(step, 4, normalize=normalize, flow='target_to_source')
    out = run_path(conv, x, ei.flip(0), w, path)
    assert torch.allclose(out, ref, atol=1e-10)


def test_flow_like_gcn_conv():
    # The pattern of PyG's test_gcn_conv_flow.
    x = torch.randn(4, 16)
    edge_index = torch.tensor([[0, 0, 0], [1, 2, 3]])
    conv = DiffConv(0.3, 5, flow='source_to_target', normalize='rw')
    out1 = conv(x, edge_index)
    conv.flow = 'target_to_source'
    out2 = conv(x, edge_index.flip(0))
    assert torch.allclose(out1, out2, atol=1e-6)
    assert not torch.allclose(out1, conv(x, edge_index), atol=1e-3)


def test_flow_target_to_source_rejects_sparse_adjacency():
    ei, w = random_graph()
    adj_t = torch.sparse_coo_tensor(ei.flip(0), w, (40, 40))
    conv = DiffConv(flow='target_to_source')
    with pytest.raises(ValueError, match='target_to_source'):
        conv(torch.randn(40, 2, dtype=torch.float64), adj_t)


@pytest.mark.parametrize('aggr', ['mean', 'max', ['add', 'mean'], None])
def test_aggr_other_than_add_is_rejected(aggr):
    with pytest.raises(ValueError, match="'aggr'"):
        DiffConv(aggr=aggr)
    assert DiffConv(aggr='add').aggr == 'add'
