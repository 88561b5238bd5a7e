r"""The models of the Planetoid harness and their default hyper-parameters.

Every model is called as :obj:`model(x, graph)` with a
:class:`benchmarks.planetoid.datasets.Graph`. The baselines are PyG's own
models where PyG ships the same model (:class:`~torch_geometric.nn.models.MLP`,
:class:`~torch_geometric.nn.models.GCN`, :class:`~torch_geometric.nn.APPNP`),
else they are built from PyG layers as in PyG's examples.
"""
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import APPNP, GATConv, GCN2Conv, Linear, SGConv
from torch_geometric.nn.models import GCN, MLP

from torch_geometric_diff import DiffResNetGNN
from benchmarks.planetoid.official import (OfficialDiffusionNet,
                                           official_operators)

# The shared training defaults are those of the paper: Adam, lr 0.01, weight
# decay 5e-4 on all parameters, patience 50, at most 10 000 epochs.
# `--hidden`, `--dropout`, `--lr`, ... override them.
TRAIN_DEFAULTS = dict(lr=0.01, weight_decay=5e-4, patience=50,
                      max_epochs=10000)
MODEL_DEFAULTS: Dict[str, Dict[str, Any]] = {
    # step_size/num_steps/dropout/hidden of diffresnet come from DATASETS.
    'diffresnet': dict(),
    'mlp': dict(hidden=64, dropout=0.5),
    'gcn': dict(hidden=64, dropout=0.5),
    'gat': dict(hidden=8, heads=8, dropout=0.6, lr=0.005),
    'appnp': dict(hidden=64, dropout=0.5, num_steps=10, alpha=0.1),
    'sgc': dict(num_steps=2, lr=0.2, weight_decay=5e-5),
    'gcn2': dict(hidden=64, dropout=0.6, num_layers=64, alpha=0.1, theta=0.5,
                 conv_weight_decay=0.01),
    # The official code's model, literally (benchmarks/planetoid/official.py):
    # a reference for diffresnet on the same splits and seeds.
    'official': dict(),
}
MODELS = tuple(MODEL_DEFAULTS)
# Command-line names of the hyper-parameters (also the `--grid` keys).
HPARAMS = ('step_size', 'num_steps', 'dropout', 'hidden', 'lr',
           'weight_decay', 'patience', 'max_epochs', 'scheme',
           'learnable_step')
# Diff-ResNet options that enter a run's hyper-parameters (and so its
# record) only when set, so that records of the paper's model keep their
# fields: the diffusion scheme and a trainable step size.
DIFFUSION_OPTIONS = dict(scheme='explicit', learnable_step=False)


def model_hparams(model: str, spec,
                  overrides: Dict[str, Any]) -> Dict[str, Any]:
    r"""The resolved hyper-parameters of one model on one dataset
    (a :class:`~benchmarks.planetoid.datasets.DatasetSpec`): training
    defaults < model defaults < dataset defaults (Diff-ResNet) < overrides.
    Overrides of parameters the model does not have are ignored, and so
    are :obj:`None` values, except diffresnet's :obj:`hidden=None` (the
    paper's model, without input projection)."""
    hp: Dict[str, Any] = dict(TRAIN_DEFAULTS)
    hp.update(MODEL_DEFAULTS[model])
    if model in ('diffresnet', 'official'):
        hp.update(step_size=spec.step_size, num_steps=spec.num_steps,
                  dropout=spec.dropout)
    if model == 'diffresnet':  # `official` has no input projection.
        hp.update(hidden=spec.hidden)
    for key, value in overrides.items():
        if model == 'diffresnet' and key in DIFFUSION_OPTIONS:
            if value != DIFFUSION_OPTIONS[key]:
                hp[key] = value
            continue
        if key not in hp:
            continue
        if value is not None or (model, key) == ('diffresnet', 'hidden'):
            hp[key] = value
    return hp


def input_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    r"""Dropout that also takes a torch.sparse CSR input (dropping stored
    values equals dropping the dense tensor: zeros stay zero)."""
    if not training or p == 0.0:
        return x
    if x.layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(),
                                       F.dropout(x.values(), p, True),
                                       x.size())
    return F.dropout(x, p, True)


def _mlp(in_channels: int, hidden: int, out_channels: int,
         dropout: float) -> MLP:
    # PyG's MLP draws its weights twice (in each Linear, then in its own
    # reset_parameters). Drawing again from the generator state before it
    # was built gives the weights, and the state after, of its two layers
    # drawn once and in order from the init seed.
    state = torch.get_rng_state()
    mlp = MLP([in_channels, hidden, out_channels], dropout=dropout,
              norm=None)
    torch.set_rng_state(state)
    mlp.reset_parameters()
    return mlp


class MLPNet(torch.nn.Module):
    r"""Input dropout, then PyG's 2-layer :class:`MLP` (linear, ReLU,
    dropout, linear)."""
    def __init__(self, in_channels, out_channels, hidden, dropout, **kwargs):
        super().__init__()
        self.mlp = _mlp(in_channels, hidden, out_channels, dropout)
        self.dropout = dropout

    def forward(self, x, g):
        return self.mlp(input_dropout(x, self.dropout, self.training))


class GCNNet(torch.nn.Module):
    r"""Input dropout, then PyG's 2-layer :class:`GCN` (conv, ReLU, dropout,
    conv) over the cached normalised :obj:`adj_t`."""
    def __init__(self, in_channels, out_channels, hidden, dropout, **kwargs):
        super().__init__()
        self.gcn = GCN(in_channels, hidden, num_layers=2,
                       out_channels=out_channels, dropout=dropout,
                       cached=True)
        self.dropout = dropout

    def forward(self, x, g):
        return self.gcn(input_dropout(x, self.dropout, self.training),
                        g.adj_t)


class GATNet(torch.nn.Module):
    r"""The GAT of the GAT paper: :obj:`heads` concatenated heads, ELU, then
    one output head."""
    # Not PyG's `GAT` model: it gives the output layer as many (averaged)
    # heads as the hidden layer.
    def __init__(self, in_channels, out_channels, hidden, heads, dropout,
                 **kwargs):
        super().__init__()
        self.conv1 = GATConv(in_channels, hidden, heads=heads,
                             dropout=dropout)
        self.conv2 = GATConv(hidden * heads, out_channels, heads=1,
                             concat=False, dropout=dropout)
        self.dropout = dropout

    def forward(self, x, g):
        x = input_dropout(x, self.dropout, self.training)
        x = F.elu(self.conv1(x, g.edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, g.edge_index)


class APPNPNet(torch.nn.Module):
    r"""Input dropout, PyG's 2-layer :class:`MLP`, then PyG's :class:`APPNP`
    propagation (:obj:`num_steps` steps, teleport :obj:`alpha`)."""
    def __init__(self, in_channels, out_channels, hidden, dropout, num_steps,
                 alpha, **kwargs):
        super().__init__()
        self.mlp = _mlp(in_channels, hidden, out_channels, dropout)
        self.prop = APPNP(num_steps, alpha, cached=True)
        self.dropout = dropout

    def forward(self, x, g):
        x = self.mlp(input_dropout(x, self.dropout, self.training))
        return self.prop(x, g.adj_t)


class SGC(torch.nn.Module):
    r"""PyG's :class:`SGConv`: :obj:`num_steps` propagations of the raw
    features (cached), then one linear layer."""
    dense_input = True

    def __init__(self, in_channels, out_channels, num_steps, **kwargs):
        super().__init__()
        self.conv = SGConv(in_channels, out_channels, K=num_steps,
                           cached=True)

    def forward(self, x, g):
        return self.conv(x, g.adj_t)


class GCNII(torch.nn.Module):
    r"""GCNII from PyG's :class:`GCN2Conv` layers, as PyG's
    ``examples/gcn2_cora.py``: linear, :obj:`num_layers` convolutions with
    initial residual, linear."""
    def __init__(self, in_channels, out_channels, hidden, dropout, num_layers,
                 alpha, theta, **kwargs):
        super().__init__()
        self.lin1 = Linear(in_channels, hidden)
        self.lin2 = Linear(hidden, out_channels)
        self.convs = torch.nn.ModuleList([
            GCN2Conv(hidden, alpha, theta, layer + 1, cached=True)
            for layer in range(num_layers)
        ])
        self.dropout = dropout

    def forward(self, x, g):
        x = input_dropout(x, self.dropout, self.training)
        x = x_0 = F.relu(self.lin1(x))
        for conv in self.convs:
            x = F.dropout(x, self.dropout, self.training)
            x = F.relu(conv(x, x_0, g.adj_t))
        x = F.dropout(x, self.dropout, self.training)
        return self.lin2(x)

    def param_groups(self, hp: Dict[str, Any]) -> List[Dict[str, Any]]:
        # As in GCNII: a larger weight decay on the convolutions.
        return [
            dict(params=self.convs.parameters(),
                 weight_decay=hp['conv_weight_decay']),
            dict(params=list(self.lin1.parameters()) +
                 list(self.lin2.parameters()),
                 weight_decay=hp['weight_decay']),
        ]


class DiffResNet(torch.nn.Module):
    r""":class:`torch_geometric_diff.DiffResNetGNN` as :obj:`model(x, graph)`,
    propagating over the cached normalised :obj:`adj_t`."""
    def __init__(self, in_channels, out_channels, hidden, dropout, step_size,
                 num_steps, **kwargs):
        super().__init__()
        options = {k: kwargs[k] for k in DIFFUSION_OPTIONS if k in kwargs}
        self.model = DiffResNetGNN(in_channels, out_channels,
                                   hidden_channels=hidden,
                                   num_steps=num_steps, step_size=step_size,
                                   dropout=dropout, cached=True, **options)

    def forward(self, x, g):
        return self.model(x, g.adj_t)


class Official(torch.nn.Module):
    r"""The official code's :class:`OfficialDiffusionNet` as
    :obj:`model(x, graph)` (dense features, :obj:`F.dropout` before each
    step, COO operators built once). Built like the official code: its two
    :class:`torch.nn.Linear` layers are drawn right after the init seed."""
    dense_input = True

    def __init__(self, in_channels, out_channels, dropout, step_size,
                 num_steps, **kwargs):
        super().__init__()
        self.model = OfficialDiffusionNet(in_channels, out_channels,
                                          step_size, num_steps, dropout)
        self._ops: Optional[Tuple[Tensor, Tensor]] = None

    def forward(self, x, g):
        if self._ops is None:  # adj and diagonal, as the official load_data.
            self._ops = official_operators(g.edge_index, g.num_nodes)
        return self.model(x, *self._ops)


MODEL_CLASSES = {
    'diffresnet': DiffResNet,
    'mlp': MLPNet,
    'gcn': GCNNet,
    'gat': GATNet,
    'appnp': APPNPNet,
    'sgc': SGC,
    'gcn2': GCNII,
    'official': Official,
}


def build_model(name: str, g, hp: Dict[str, Any]) -> torch.nn.Module:
    r"""Model :obj:`name` for the graph :obj:`g` with hyper-parameters
    :obj:`hp` (from :func:`model_hparams`)."""
    return MODEL_CLASSES[name](g.x.size(1), g.num_classes, **hp)
