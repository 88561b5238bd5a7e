r"""The models the speed benchmark compares, each with the call that runs
it on a graph of :func:`~benchmarks.speed.graphs.load_graph`.

* ``diffresnet``: :class:`~torch_geometric_diff.DiffResNetGNN` (fused
  engine, cached operator, sparse input features where the data is sparse);
* ``diffresnet-torch``: the same, on PyTorch operators only (see
  :func:`~benchmarks.speed.timing.kernels_for`);
* ``diffresnet-plain``: the same model with ``engine='autograd'``;
* ``official``: the official code's model, literally;
* ``appnp``: the same residual block followed by PyG's ``APPNP`` with the
  same :math:`K`;
* ``gcn``: a 2-layer GCN (hidden 64), for scale.
"""
from typing import Any, Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import APPNP, GCNConv

from benchmarks.planetoid.official import (OfficialDiffusionNet,
                                          official_operators)
from torch_geometric_diff import DiffResNetGNN
from torch_geometric_diff.nn.diffusion import sparse_linear

MODELS = ('diffresnet', 'diffresnet-torch', 'diffresnet-plain', 'official',
          'appnp', 'gcn')


def _dense(x: Tensor) -> Tensor:
    return x.to_dense() if x.layout != torch.strided else x


class ResAPPNP(torch.nn.Module):
    r"""Diff-ResNet's residual block
    :math:`\mathbf{H} = \mathbf{X} + \mathrm{ReLU}(\mathbf{X}\mathbf{W})`
    with dropout once, then PyG's :class:`~torch_geometric.nn.conv.APPNP`
    (:math:`K` steps, :math:`\alpha = 0.1`) and a linear classifier: APPNP
    has no per-step feature dropout."""
    def __init__(self, in_channels: int, out_channels: int, num_steps: int,
                 dropout: float) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(in_channels, in_channels)
        self.prop = APPNP(K=num_steps, alpha=0.1, cached=True)
        self.out = torch.nn.Linear(in_channels, out_channels)
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = F.relu(sparse_linear(x, self.lin)) + _dense(x)
        h = F.dropout(h, self.dropout, training=self.training)
        return self.out(self.prop(h, edge_index))


class GCN2(torch.nn.Module):
    r"""Kipf and Welling's 2-layer GCN with dropout on the input features
    and on the hidden layer. Not PyG's
    :class:`~torch_geometric.nn.models.GCN`, which applies no dropout to its
    input."""
    def __init__(self, in_channels: int, out_channels: int,
                 hidden_channels: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden_channels, cached=True)
        self.conv2 = GCNConv(hidden_channels, out_channels, cached=True)
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.dropout(_dense(x), self.dropout, training=self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, training=self.training)
        return self.conv2(x, edge_index)


def build(model: str, g: Dict[str, Any], num_steps: int, step_size: float,
          dropout: float) -> Tuple[torch.nn.Module, Callable[[], Tensor]]:
    r"""Model :obj:`model` for graph :obj:`g` with :obj:`num_steps`
    diffusion (or propagation) steps, and a call that runs it on
    :obj:`g`."""
    f, c = g['x'].size(1), g['num_classes']
    n = g['x'].size(0)
    if model.startswith('diffresnet'):
        engine = 'autograd' if model == 'diffresnet-plain' else 'fused'
        m = DiffResNetGNN(f, c, num_steps=num_steps, step_size=step_size,
                          dropout=dropout, cached=True, engine=engine)
        x, ei = g['x_in'], g['edge_index']
        return m, lambda: m(x, ei)
    if model == 'official':
        m = OfficialDiffusionNet(f, c, step_size, num_steps, dropout)
        adj, diagonal = official_operators(g['edge_index'], n)
        x = g['x']
        return m, lambda: m(x, adj, diagonal)
    if model == 'appnp':
        m = ResAPPNP(f, c, num_steps, dropout)
        x, ei = g['x_in'], g['edge_index']
        return m, lambda: m(x, ei)
    if model == 'gcn':
        m = GCN2(f, c)
        x, ei = g['x'], g['edge_index']
        return m, lambda: m(x, ei)
    raise ValueError(f"Unknown model '{model}' (choose from "
                     f"{', '.join(MODELS)})")
