r"""Node-classification benchmark: Diff-ResNet next to standard GNNs on
identical splits and seeds.

Reproduces the protocol of the `"Diffusion Mechanism in Residual Neural
Network: Theory and Applications" <https://arxiv.org/abs/2105.03155>`_ paper
(``--protocol random``: largest connected component, 20 training and 30
validation nodes per class, seeds as in the official code, Adam with lr 0.01
and weight decay 5e-4, early stopping with patience 50), the public Planetoid
split (``public``) and the 10 fixed 60/20/20 Geom-GCN splits (``geom-gcn``).

Examples::

    python benchmarks/planetoid.py --dataset Cora --model diffresnet gcn \
        --protocol random --splits 100 --inits 20 --root DIR --out cora.jsonl
    python benchmarks/planetoid.py --dataset Cora --model diffresnet \
        --grid step_size=0.1,0.25 num_steps=10,20 --splits 10 --inits 2 \
        --root DIR --out grid.jsonl
    python benchmarks/planetoid.py --summary cora.jsonl grid.jsonl

Two processes (or machines) share one protocol with ``--shard 0/2`` and
``--shard 1/2``, each writing its own ``--out``; ``--summary`` reads both.

Every finished run is one line of ``--out`` (flushed and fsync-ed); rerunning
the same command skips the finished runs. ``--summary`` prints mean ± std,
the 95% CI and paired tests of diffresnet against every baseline, and writes
them as Markdown, CSV and LaTeX.
"""
import os.path as osp
import sys

if __name__ == '__main__':  # run as a script: import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
import copy
import csv
import itertools
import json
import math
import os
import shutil
import stat
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.common import (
    EarlyStopping,
    JSONLResults,
    NodeSplit,
    confidence_interval,
    environment_info,
    largest_connected_component,
    mask_splits,
    mean_std,
    paired_test,
    random_splits,
    read_jsonl,
)

# --------------------------------------------------------------------------
# Datasets: one row per dataset, all loaded through PyG's own classes.
#   folder:   sub-folder of --root that is the PyG class's `root`.
#   bow:      binary bag-of-words features (binarised and kept sparse).
#   row_norm: rows scaled to sum 1 (the paper's preprocessing).
#   fixed:    the fixed splits that serve `--protocol geom-gcn` (Planetoid,
#             WebKB, Actor, WikipediaNetwork: the 10 Geom-GCN 60/20/20 splits;
#             Minesweeper, Tolokers: the 10 50/25/25 splits shipped in their
#             masks).
#   step, steps, drop, hidden: Diff-ResNet defaults (hidden None = the
#             paper's model, features of width F all the way). Explicit
#             Euler needs step <= 2 / lambda_max(L): Actor's lambda_max is
#             16.99 (bound 0.118), hence 0.1; Chameleon's 8.095 (bound 0.247).
#             Every other set here allows 0.25.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    pyg_class: str
    folder: str
    kwargs: Tuple[Tuple[str, Any], ...]
    bow: bool
    row_norm: bool
    fixed: str
    step_size: float
    num_steps: int
    dropout: float
    hidden: Optional[int]


def _spec(name, cls, folder, kwargs, bow, row_norm, fixed, step, steps, drop,
          hidden):
    return DatasetSpec(name, cls, folder, tuple(kwargs.items()), bow,
                       row_norm, fixed, step, steps, drop, hidden)


_WP, _WK, _HG = 'WikipediaNetwork', 'WebKB', 'HeterophilousGraphDataset'
DATASETS: Dict[str, DatasetSpec] = {
    # key           name           class        folder       class kwargs                      bow    row_norm fixed      step  steps drop  hidden  # noqa
    'cora':        _spec('Cora',        'Planetoid', 'Planetoid', dict(name='Cora'),            True,  True,  'geom-gcn', 0.25, 20, 0.25, None),  # noqa
    'citeseer':    _spec('CiteSeer',    'Planetoid', 'Planetoid', dict(name='CiteSeer'),        True,  True,  'geom-gcn', 0.25, 20, 0.25, None),  # noqa
    'pubmed':      _spec('PubMed',      'Planetoid', 'Planetoid', dict(name='PubMed'),          True,  True,  'geom-gcn', 0.25, 20, 0.25, None),  # noqa
    'chameleon':   _spec('Chameleon',   _WP,         _WP,         dict(name='chameleon'),       True,  True,  'geom-gcn', 0.25, 20, 0.25, 64),    # noqa
    'squirrel':    _spec('Squirrel',    _WP,         _WP,         dict(name='squirrel'),        True,  True,  'geom-gcn', 0.25, 20, 0.25, 64),    # noqa
    'actor':       _spec('Actor',       'Actor',     'Actor',     dict(),                       True,  True,  'geom-gcn', 0.1,  20, 0.25, 64),    # noqa
    'cornell':     _spec('Cornell',     _WK,         _WK,         dict(name='cornell'),         True,  True,  'geom-gcn', 0.25, 20, 0.25, 64),    # noqa
    'texas':       _spec('Texas',       _WK,         _WK,         dict(name='texas'),           True,  True,  'geom-gcn', 0.25, 20, 0.25, 64),    # noqa
    'wisconsin':   _spec('Wisconsin',   _WK,         _WK,         dict(name='wisconsin'),       True,  True,  'geom-gcn', 0.25, 20, 0.25, 64),    # noqa
    'minesweeper': _spec('Minesweeper', _HG,         _HG,         dict(name='minesweeper'),     False, False, 'shipped',  0.25, 20, 0.25, 64),    # noqa
    'tolokers':    _spec('Tolokers',    _HG,         _HG,         dict(name='tolokers'),        False, False, 'shipped',  0.25, 20, 0.25, 64),    # noqa
}

PROTOCOLS = ('public', 'random', 'geom-gcn')
DEFAULT_SPLITS = {'public': 1, 'random': 100, 'geom-gcn': 10}

# --------------------------------------------------------------------------
# Models: defaults per model (the shared training defaults are those of the
# paper: Adam, lr 0.01, weight decay 5e-4 on all parameters, patience 50,
# at most 10 000 epochs). `--hidden`, `--dropout`, `--lr`, ... override.
# --------------------------------------------------------------------------
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
    # The official code's model, literally (benchmarks/speed.py): a reference
    # for diffresnet on the same splits and seeds (a Cora epoch: 6x slower).
    'official': dict(),
}
MODELS = tuple(MODEL_DEFAULTS)
# Command-line names of the hyper-parameters (also the `--grid` keys).
HPARAMS = ('step_size', 'num_steps', 'dropout', 'hidden', 'lr',
           'weight_decay', 'patience', 'max_epochs')


def model_hparams(model: str, spec: DatasetSpec,
                  overrides: Dict[str, Any]) -> Dict[str, Any]:
    r"""The resolved hyper-parameters of one model on one dataset: training
    defaults < model defaults < dataset defaults (Diff-ResNet) < overrides.
    Overrides of parameters the model does not have are ignored."""
    hp: Dict[str, Any] = dict(TRAIN_DEFAULTS)
    hp.update(MODEL_DEFAULTS[model])
    if model in ('diffresnet', 'official'):
        hp.update(step_size=spec.step_size, num_steps=spec.num_steps,
                  dropout=spec.dropout)
    if model == 'diffresnet':  # `official` has no input projection.
        hp.update(hidden=spec.hidden)
    for key, value in overrides.items():
        if value is not None and key in hp:
            hp[key] = value
    return hp


# --------------------------------------------------------------------------
# Data loading with offline check and read-only roots.
# --------------------------------------------------------------------------
class MissingDataError(Exception):
    pass


def _class_kwargs(spec: DatasetSpec, protocol: str) -> Dict[str, Any]:
    kwargs = dict(spec.kwargs)
    if spec.pyg_class == 'Planetoid':
        kwargs['split'] = 'geom-gcn' if protocol == 'geom-gcn' else 'public'
    if spec.pyg_class == 'WikipediaNetwork':
        kwargs['geom_gcn_preprocess'] = True
    return kwargs


def _pyg_class(spec: DatasetSpec):
    import torch_geometric.datasets as D
    return getattr(D, spec.pyg_class)


def expected_raw_paths(spec: DatasetSpec, protocol: str,
                       class_root: str) -> List[str]:
    r"""The raw files PyG's class reads, asked from the class itself."""
    cls = _pyg_class(spec)
    probe = cls.__new__(cls)  # No __init__: nothing is downloaded.
    probe.root = class_root
    for key, value in _class_kwargs(spec, protocol).items():
        setattr(probe, key, value.lower() if key == 'split' else value)
    paths = list(probe.raw_paths)
    if spec.pyg_class == 'Planetoid' and protocol == 'geom-gcn':
        # Planetoid downloads, but does not list, the split files.
        name = probe.name.lower()
        paths += [
            os.path.join(probe.raw_dir, f'{name}_split_0.6_0.2_{i}.npz')
            for i in range(10)
        ]
    return paths


def _processed_dir(spec: DatasetSpec, protocol: str, class_root: str) -> str:
    cls = _pyg_class(spec)
    probe = cls.__new__(cls)
    probe.root = class_root
    for key, value in _class_kwargs(spec, protocol).items():
        setattr(probe, key, value)
    return probe.processed_dir


def _writable(path: str) -> bool:
    r"""Whether :obj:`path` (or, if absent, its nearest existing parent) may
    be written. Write permission bits count even for the super-user, so a
    root marked read-only (``chmod a-w``) is treated as read-only."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    mode = os.stat(path).st_mode
    return os.access(path, os.W_OK) and bool(mode & stat.S_IWUSR)


def _missing_message(spec: DatasetSpec, protocol: str, root: str,
                     paths: List[str], class_root: str,
                     error: Optional[BaseException] = None) -> str:
    rel = [os.path.relpath(p, root) for p in paths]
    msg = [
        f"Dataset '{spec.name}' (protocol '{protocol}') is not available"
        f"{' and could not be downloaded' if error else ' (offline)'}.",
        f"Expected these raw files under --root '{root}' "
        f"(PyG {spec.pyg_class} layout):",
    ]
    msg += [f'  {r}' for r in rel]
    msg.append('Copy them there, or run once with network access so PyG '
               'can download them.')
    if error is not None:
        msg.append(f'(download error: {type(error).__name__}: '
                   f'{str(error).splitlines()[0] if str(error) else ""})')
    return '\n'.join(msg)


def load_pyg_dataset(spec: DatasetSpec, protocol: str, root: str,
                     cache: str, offline: bool = False):
    r"""Loads :obj:`spec` through its PyG class. A root that cannot be written
    is mirrored (raw files only) into :obj:`cache`, where PyG then writes its
    processed files. Raises :class:`MissingDataError` with the list of
    expected files when they are missing and cannot be downloaded."""
    class_root = os.path.join(root, spec.folder)
    raw = expected_raw_paths(spec, protocol, class_root)
    processed = _processed_dir(spec, protocol, class_root)
    have_raw = all(os.path.isfile(p) for p in raw)
    load_root = class_root
    if not _writable(processed):
        load_root = os.path.join(cache, spec.folder)
        for src in raw:
            dst = os.path.join(load_root, os.path.relpath(src, class_root))
            if os.path.isfile(src) and not os.path.isfile(dst):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst + '.part')
                os.replace(dst + '.part', dst)
        cached_raw = expected_raw_paths(spec, protocol, load_root)
        have_raw = all(os.path.isfile(p) for p in cached_raw)
    if not have_raw and offline:
        raise MissingDataError(
            _missing_message(spec, protocol, root, raw, class_root))
    kwargs = _class_kwargs(spec, protocol)
    try:
        return _pyg_class(spec)(load_root, **kwargs)
    except Exception as e:  # Download failures surface as many types.
        if have_raw:
            raise
        raise MissingDataError(
            _missing_message(spec, protocol, root, raw, class_root,
                             e)) from None


@dataclass
class Graph:
    r"""A preprocessed graph, ready for every model: :obj:`x` (torch.sparse
    CSR for bag-of-words features, else dense), :obj:`x_dense`, :obj:`adj_t`
    (unweighted, symmetric, without self-loops, torch.sparse CSR),
    :obj:`edge_index` and :obj:`y`. :obj:`node_index` maps rows to the
    nodes of the PyG data (the LCC for the random protocol)."""
    x: Tensor
    x_dense: Tensor
    adj_t: Tensor
    edge_index: Tensor
    y: Tensor
    num_classes: int
    node_index: Tensor
    splits: List[NodeSplit]

    @property
    def num_nodes(self) -> int:
        return self.y.numel()

    def to(self, device: torch.device) -> 'Graph':
        out = copy.copy(self)
        for key in ('x', 'x_dense', 'adj_t', 'edge_index', 'y'):
            setattr(out, key, getattr(self, key).to(device))
        return out


def preprocess(data, spec: DatasetSpec, protocol: str, num_splits: int,
               num_inits: int, seed: int) -> Graph:
    r"""The preprocessing of the official Diff-ResNet code, applied to every
    model alike: edges made undirected and unweighted without self-loops,
    the largest connected component for the random protocol, binary
    bag-of-words features, rows normalised to sum 1 (citation and other
    bag-of-words sets)."""
    from torch_geometric.utils import (
        remove_self_loops,
        subgraph,
        to_torch_csr_tensor,
        to_undirected,
    )
    num_nodes = data.num_nodes
    edge_index = remove_self_loops(to_undirected(data.edge_index,
                                                 num_nodes=num_nodes))[0]
    x, y = data.x.float(), data.y.view(-1).long()
    node_index = torch.arange(num_nodes)
    if protocol == 'random':
        node_index = largest_connected_component(edge_index, num_nodes)
        edge_index = subgraph(node_index, edge_index, relabel_nodes=True,
                              num_nodes=num_nodes)[0]
        x, y = x[node_index], y[node_index]
        splits = _random_splits(y, spec, num_splits, num_inits, seed)
    else:
        splits = _fixed_splits(data, spec, protocol, num_splits, num_inits,
                               seed)
    if spec.bow:
        x = (x != 0).float()
    if spec.row_norm:
        x = x / x.sum(dim=1, keepdim=True).clamp(min=1e-12)
    n = y.numel()
    xs = x.to_sparse_csr() if spec.bow else x
    adj_t = to_torch_csr_tensor(edge_index, size=(n, n))
    return Graph(xs, x, adj_t, edge_index, y, int(y.max()) + 1, node_index,
                 splits)


def _random_splits(y, spec, num_splits, num_inits, seed):
    counts = torch.bincount(y)
    if int(counts[counts > 0].min()) < 50:
        small = [i for i, c in enumerate(counts.tolist()) if 0 < c < 50]
        raise ValueError(f"'{spec.name}': classes {small} have fewer than "
                         f"50 nodes in the largest connected component; the "
                         f"random protocol (20 train + 30 val per class) "
                         f"needs 50 (use --protocol geom-gcn)")
    return random_splits(y, seed, num_splits, num_inits)


def _fixed_splits(data, spec, protocol, num_splits, num_inits, seed):
    if protocol == 'public':
        if spec.pyg_class != 'Planetoid':
            raise ValueError(f"'{spec.name}' has no public split; use "
                             f"--protocol geom-gcn or random")
        masks = (data.train_mask, data.val_mask, data.test_mask)
    else:
        masks = (data.train_mask, data.val_mask, data.test_mask)
        if masks[0].dim() != 2:
            raise ValueError(f"'{spec.name}' ships no fixed splits")
    available = 1 if masks[0].dim() == 1 else masks[0].size(1)
    if num_splits > available:  # --splits counts up to what is shipped.
        print(f"note: '{spec.name}' ships {available} fixed {protocol} "
              f"split(s); using {available}", file=sys.stderr)
        num_splits = available
    return mask_splits(*masks, num_splits=num_splits, seed=seed,
                       num_inits=num_inits)


# --------------------------------------------------------------------------
# Baselines, all built from PyG layers. Every model is `model(x, graph)`.
# --------------------------------------------------------------------------
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


class MLP(torch.nn.Module):
    def __init__(self, in_channels, out_channels, hidden, dropout, **kwargs):
        super().__init__()
        from torch_geometric.nn import Linear
        self.lin1 = Linear(in_channels, hidden)
        self.lin2 = Linear(hidden, out_channels)
        self.dropout = dropout

    def forward(self, x, g):
        x = input_dropout(x, self.dropout, self.training)
        x = F.relu(self.lin1(x))
        x = F.dropout(x, self.dropout, self.training)
        return self.lin2(x)


class GCN(torch.nn.Module):
    def __init__(self, in_channels, out_channels, hidden, dropout, **kwargs):
        super().__init__()
        from torch_geometric.nn import GCNConv
        self.conv1 = GCNConv(in_channels, hidden, cached=True)
        self.conv2 = GCNConv(hidden, out_channels, cached=True)
        self.dropout = dropout

    def forward(self, x, g):
        x = input_dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, g.adj_t))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, g.adj_t)


class GAT(torch.nn.Module):
    def __init__(self, in_channels, out_channels, hidden, heads, dropout,
                 **kwargs):
        super().__init__()
        from torch_geometric.nn import GATConv
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
    def __init__(self, in_channels, out_channels, hidden, dropout, num_steps,
                 alpha, **kwargs):
        super().__init__()
        from torch_geometric.nn import APPNP, Linear
        self.lin1 = Linear(in_channels, hidden)
        self.lin2 = Linear(hidden, out_channels)
        self.prop = APPNP(num_steps, alpha, cached=True)
        self.dropout = dropout

    def forward(self, x, g):
        x = input_dropout(x, self.dropout, self.training)
        x = F.relu(self.lin1(x))
        x = F.dropout(x, self.dropout, self.training)
        return self.prop(self.lin2(x), g.adj_t)


class SGC(torch.nn.Module):
    dense_input = True  # SGConv propagates the raw features once (cached).

    def __init__(self, in_channels, out_channels, num_steps, **kwargs):
        super().__init__()
        from torch_geometric.nn import SGConv
        self.conv = SGConv(in_channels, out_channels, K=num_steps,
                           cached=True)

    def forward(self, x, g):
        return self.conv(x, g.adj_t)


class GCNII(torch.nn.Module):
    def __init__(self, in_channels, out_channels, hidden, dropout, num_layers,
                 alpha, theta, **kwargs):
        super().__init__()
        from torch_geometric.nn import GCN2Conv, Linear
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

    def param_groups(self, hp):
        # As in GCNII: a larger weight decay on the convolutions.
        return [
            dict(params=self.convs.parameters(),
                 weight_decay=hp['conv_weight_decay']),
            dict(params=list(self.lin1.parameters()) +
                 list(self.lin2.parameters()),
                 weight_decay=hp['weight_decay']),
        ]


class DiffResNet(torch.nn.Module):
    r"""Adapter: :class:`torch_geometric_diff.DiffResNetGNN` as
    :obj:`model(x, graph)`, propagating over the cached normalised
    :obj:`adj_t`."""
    def __init__(self, in_channels, out_channels, hidden, dropout, step_size,
                 num_steps, **kwargs):
        super().__init__()
        try:
            from torch_geometric_diff import DiffResNetGNN
        except ImportError as e:  # pragma: no cover
            raise SystemExit(f'DiffResNetGNN is not available ({e})')
        self.model = DiffResNetGNN(in_channels, out_channels,
                                   hidden_channels=hidden,
                                   num_steps=num_steps, step_size=step_size,
                                   dropout=dropout, cached=True)

    def forward(self, x, g):
        return self.model(x, g.adj_t)


class Official(torch.nn.Module):
    r"""Adapter: the official code's :obj:`DiffusionNet`, literally (dense
    features, :obj:`F.dropout` before each step, :obj:`x - step *
    torch.matmul(diagonal - adj, x)` on COO tensors), from
    :obj:`benchmarks/speed.py`. Built like the official code: its two
    :class:`torch.nn.Linear` layers are drawn right after the init seed."""
    dense_input = True

    def __init__(self, in_channels, out_channels, dropout, step_size,
                 num_steps, **kwargs):
        super().__init__()
        speed = _sibling_script('speed')
        self.model = speed.OfficialDiffusionNet(in_channels, out_channels,
                                                step_size, num_steps, dropout)
        self._operators = speed.official_operators
        self._ops: Optional[Tuple[Tensor, Tensor]] = None

    def forward(self, x, g):
        if self._ops is None:  # adj and diagonal, as the official load_data.
            self._ops = self._operators(g.edge_index, g.num_nodes)
        return self.model(x, *self._ops)


def _sibling_script(name: str):
    r"""Imports :obj:`benchmarks/{name}.py` however this script was
    loaded (run as a script, or by path from the tests)."""
    import importlib.util
    key = f'tgd_benchmarks_{name}'
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(
        key, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[key] = module
    return module


MODEL_CLASSES = {
    'diffresnet': DiffResNet,
    'mlp': MLP,
    'gcn': GCN,
    'gat': GAT,
    'appnp': APPNPNet,
    'sgc': SGC,
    'gcn2': GCNII,
    'official': Official,
}


def build_model(name: str, g: Graph, hp: Dict[str, Any]) -> torch.nn.Module:
    return MODEL_CLASSES[name](g.x.size(1), g.num_classes, **hp)


# --------------------------------------------------------------------------
# Training.
# --------------------------------------------------------------------------
@torch.no_grad()
def evaluate(out: Tensor, y: Tensor, index: Tensor) -> Dict[str, float]:
    logits = out[index]
    res = {
        'loss': float(F.cross_entropy(logits, y[index])),
        'acc': float((logits.argmax(dim=-1) == y[index]).double().mean()),
    }
    if out.size(1) == 2:  # Binary sets are usually reported in ROC-AUC.
        res['auc'] = roc_auc(logits.softmax(dim=-1)[:, 1], y[index])
    return res


def roc_auc(score: Tensor, y: Tensor) -> float:
    r"""ROC-AUC from ranks (the Mann-Whitney U statistic, ties averaged)."""
    from scipy.stats import rankdata
    s, t = score.double().cpu().numpy(), y.cpu().numpy().astype(bool)
    pos, neg = int(t.sum()), int((~t).sum())
    if pos == 0 or neg == 0:
        return math.nan
    ranks = rankdata(s)
    return float((ranks[t].sum() - pos * (pos + 1) / 2) / (pos * neg))


def train_single(name: str, g: Graph, split: NodeSplit, init_seed: int,
                 hp: Dict[str, Any]) -> Dict[str, Any]:
    r"""Trains one model on one split from one init seed, as the official
    code: full-batch Adam, cross-entropy on the training nodes, early
    stopping on the validation loss/accuracy, best weights restored."""
    torch.manual_seed(init_seed)
    model = build_model(name, g, hp).to(g.y.device)
    x = g.x_dense if getattr(model, 'dense_input', False) else g.x
    groups = (model.param_groups(hp) if hasattr(model, 'param_groups') else
              model.parameters())
    opt = torch.optim.Adam(groups, lr=hp['lr'],
                           weight_decay=hp['weight_decay'])
    es = EarlyStopping(hp['patience'])
    train_i, val_i, test_i = (i.to(g.y.device) for i in
                              (split.train_index, split.val_index,
                               split.test_index))
    start = time.perf_counter()
    for _ in range(hp['max_epochs']):
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(x, g)[train_i], g.y[train_i])
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            val = evaluate(model(x, g), g.y, val_i)
        if es.step(val['loss'], val['acc'], model):
            break
    es.restore(model)
    model.eval()
    with torch.no_grad():
        out = model(x, g)
    if g.y.is_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return _result(out, g.y, train_i, val_i, test_i, es.epoch + 1,
                   es.best_epoch, seconds)


def _result(out, y, train_i, val_i, test_i, epochs, best_epoch, seconds):
    val, test = evaluate(out, y, val_i), evaluate(out, y, test_i)
    res = {
        'train_acc': evaluate(out, y, train_i)['acc'],
        'val_acc': val['acc'],
        'val_loss': val['loss'],
        'test_acc': test['acc'],
        'epochs': int(epochs),
        'best_epoch': int(best_epoch),
        'seconds': float(seconds),
    }
    if 'auc' in val:
        res['val_auc'], res['test_auc'] = val['auc'], test['auc']
    return res


def train_batched_inits(g: Graph, split: NodeSplit, init_seeds: List[int],
                        hp: Dict[str, Any],
                        on_done=None) -> List[Dict[str, Any]]:
    r"""Trains the Diff-ResNets of several init seeds of one split at once
    (:class:`benchmarks.planetoid.batched.BatchedDiffResNet`); every init
    keeps its own early stopping. :obj:`on_done(i, result)` is called as soon
    as init :obj:`i` stops."""
    from benchmarks.planetoid.batched import BatchedDiffResNet, fit_batched
    model = BatchedDiffResNet.from_seeds(init_seeds, g.x.size(1),
                                         g.num_classes,
                                         hidden_channels=hp['hidden'],
                                         num_steps=hp['num_steps'],
                                         step_size=hp['step_size'],
                                         dropout=hp['dropout'])
    model = model.to(g.y.device)
    train_i, val_i, test_i = (i.to(g.y.device) for i in
                              (split.train_index, split.val_index,
                               split.test_index))
    start = time.perf_counter()
    results: List[Optional[Dict[str, Any]]] = [None] * len(init_seeds)

    def finished(i: int, out: Tensor, epochs: int, best_epoch: int):
        if out.is_cuda:
            torch.cuda.synchronize()
        res = _result(out, g.y, train_i, val_i, test_i, epochs, best_epoch,
                      time.perf_counter() - start)
        results[i] = res
        if on_done is not None:
            on_done(i, res)

    fit_batched(model, g.x, g.adj_t, g.y, train_i, val_i, lr=hp['lr'],
                weight_decay=hp['weight_decay'], patience=hp['patience'],
                max_epochs=hp['max_epochs'], on_finish=finished)
    return results  # type: ignore


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------
def parse_grid(items: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
    r"""``['step_size=0.1,0.25', 'num_steps=10,20']`` -> all combinations."""
    if not items:
        return [{}]
    keys, values = [], []
    for item in items:
        if '=' not in item:
            raise ValueError(f"--grid entries look like KEY=V1,V2 "
                             f"(got '{item}')")
        key, vals = item.split('=', 1)
        key = key.strip().replace('-', '_')
        if key not in HPARAMS:
            raise ValueError(f"Unknown --grid key '{key}' (choose from "
                             f"{', '.join(HPARAMS)})")
        keys.append(key)
        values.append([_parse_value(key, v) for v in vals.split(',') if v])
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _parse_value(key: str, value: str) -> Any:
    if key == 'hidden' and value.lower() == 'none':
        return None
    if key in ('num_steps', 'hidden', 'patience', 'max_epochs'):
        return int(value)
    return float(value)


def parse_shard(text: Optional[str]) -> Tuple[int, int]:
    r"""Parses :obj:`--shard I/N` into :obj:`(I, N)`; :obj:`None` is
    :obj:`(0, 1)`."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split('/'))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"--shard '{text}': expected I/N with 0 <= I < N, "
                         f"e.g. 0/2 and 1/2 for two processes")
    return i, n


def _canonical(name: str, choices: Iterable[str], what: str) -> str:
    key = name.lower().replace('_', '-')
    key = {'geomgcn': 'geom-gcn'}.get(key, key)
    if key not in choices:
        raise ValueError(f"Unknown {what} '{name}' (choose from "
                         f"{', '.join(choices)})")
    return key


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', nargs='+', default=['Cora'],
                   help='case-insensitive: ' + ', '.join(
                       s.name for s in DATASETS.values()))
    p.add_argument('--model', nargs='+', default=['diffresnet'],
                   help=', '.join(MODELS))
    p.add_argument('--protocol', nargs='+', default=['random'],
                   help=', '.join(PROTOCOLS))
    p.add_argument('--splits', type=int, default=None,
                   help='number of splits (default: random 100, geom-gcn 10, '
                   'public 1)')
    p.add_argument('--inits', type=int, default=20,
                   help='model initialisations per split (default: 20)')
    p.add_argument('--step-size', type=float, default=None)
    p.add_argument('--num-steps', type=int, default=None,
                   help='diffusion steps (diffresnet), propagation steps '
                   '(appnp, sgc)')
    p.add_argument('--dropout', type=float, default=None)
    p.add_argument('--hidden', type=str, default=None,
                   help="hidden width; 'none' = the paper's Diff-ResNet")
    p.add_argument('--lr', type=float, default=None)
    p.add_argument('--weight-decay', type=float, default=None)
    p.add_argument('--patience', type=int, default=None)
    p.add_argument('--max-epochs', type=int, default=None)
    p.add_argument('--grid', nargs='+', default=None, metavar='KEY=V1,V2',
                   help='sweep: every combination is run; --summary selects '
                   'per dataset x model by validation accuracy only. Keys: ' +
                   ', '.join(HPARAMS))
    p.add_argument('--shard', default=None, metavar='I/N',
                   help='run only the splits s with s %% N == I, so that N '
                   'processes (each with its own --out) share one protocol; '
                   '--summary merges their files')
    p.add_argument('--batch-inits', action='store_true',
                   help='train the inits of one split together (diffresnet)')
    p.add_argument('--root', default='data',
                   help='one sub-folder per PyG dataset class')
    p.add_argument('--cache', default=os.environ.get(
        'TGD_CACHE', os.path.join(os.path.expanduser('~'), '.cache',
                                  'torch_geometric_diff', 'data')),
                   help='writable copy of a read-only --root')
    p.add_argument('--offline', action='store_true',
                   help='never try to download')
    p.add_argument('--out', default='results/planetoid.jsonl')
    p.add_argument('--device', default='cpu')
    p.add_argument('--seed', type=int, default=42,
                   help='master seed of the splits and inits (official: 42)')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--summary', nargs='*', default=None, metavar='JSONL',
                   help='summarise these files (default: --out) and exit')
    p.add_argument('--summary-out', default=None,
                   help='prefix of the .md/.csv/.tex files (default: the '
                   'first file without .jsonl, plus _summary)')
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        if args.summary is not None:
            paths = args.summary or [args.out]
            prefix = args.summary_out or (os.path.splitext(paths[0])[0] +
                                          '_summary')
            return run_summary(paths, prefix)
        return run_benchmark(args)
    except (MissingDataError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


def run_benchmark(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    if args.threads:
        torch.set_num_threads(args.threads)
    datasets = [_canonical(d, DATASETS, 'dataset') for d in args.dataset]
    models = [_canonical(m, MODELS, 'model') for m in args.model]
    protocols = [_canonical(p, PROTOCOLS, 'protocol') for p in args.protocol]
    if args.inits < 1 or (args.splits is not None and args.splits < 1):
        raise ValueError('--splits and --inits must be positive')
    hidden = args.hidden
    if hidden is not None:
        hidden = None if hidden.lower() == 'none' else int(hidden)
    overrides = dict(step_size=args.step_size, num_steps=args.num_steps,
                     dropout=args.dropout, lr=args.lr,
                     weight_decay=args.weight_decay, patience=args.patience,
                     max_epochs=args.max_epochs)
    if args.hidden is not None:
        overrides['hidden'] = hidden
    grid = parse_grid(args.grid)
    shard, num_shards = parse_shard(args.shard)
    device = torch.device(args.device)
    results = JSONLResults(args.out, KEY_FIELDS)

    # Load everything first: missing data fails before any training.
    jobs = []
    for dname, protocol in itertools.product(datasets, protocols):
        spec = DATASETS[dname]
        num_splits = args.splits or DEFAULT_SPLITS[protocol]
        ds = load_pyg_dataset(spec, protocol, args.root, args.cache,
                              args.offline)
        g = preprocess(ds[0], spec, protocol, num_splits, args.inits,
                       args.seed)
        # Seeds are drawn for all splits first, so a shard's splits are
        # those of the unsharded run.
        g.splits = [s for s in g.splits if s.split % num_shards == shard]
        configs = []
        for model in models:
            seen = set()
            for point in grid:
                hp = model_hparams(model, spec, {**overrides, **point})
                key = json.dumps(hp, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    configs.append((model, hp))
        jobs.append((spec, protocol, g, configs))

    pending = 0
    for spec, protocol, g, configs in jobs:
        for split in g.splits:
            for model, hp in configs:
                for init, init_seed in enumerate(split.init_seeds):
                    rec = _key_record(spec, protocol, model, split, init,
                                      init_seed, hp, args.seed)
                    pending += not results.done(rec)
    print(f'{pending} runs to do, {len(results)} already in {args.out}',
          file=sys.stderr)

    # In a log file (no terminal), refresh the bar once a minute.
    bar = tqdm(total=pending, unit='run', dynamic_ncols=True,
               disable=pending == 0,
               mininterval=0.1 if sys.stderr.isatty() else 60.0)
    total_start = time.perf_counter()
    for spec, protocol, g, configs in jobs:
        g = g.to(device)
        for split in g.splits:
            split_start, ran = time.perf_counter(), 0
            for model, hp in configs:
                todo = []
                for init, init_seed in enumerate(split.init_seeds):
                    rec = _key_record(spec, protocol, model, split, init,
                                      init_seed, hp, args.seed)
                    if not results.done(rec):
                        todo.append((init, init_seed, rec))
                if not todo:
                    continue
                ran += len(todo)

                def write(rec: Dict[str, Any], res: Dict[str, Any],
                          batched: int):
                    # Taken per run: the C++ kernels are built on first use.
                    line = {**rec, **res, 'batched': batched,
                            'num_nodes': g.num_nodes, 'device': str(device),
                            **environment_info(str(device))}
                    results.append(line)
                    bar.set_postfix_str(f'{spec.name}/{model} split '
                                        f'{split.split} test '
                                        f'{100 * res["test_acc"]:.1f}',
                                        refresh=False)
                    bar.update(1)

                if args.batch_inits and model == 'diffresnet':
                    train_batched_inits(
                        g, split, [s for _, s, _ in todo], hp,
                        on_done=lambda i, res: write(todo[i][2], res,
                                                     len(todo)))
                else:
                    for init, init_seed, rec in todo:
                        write(rec, train_single(model, g, split, init_seed,
                                                hp), 1)
            if ran:
                now = time.perf_counter()
                tqdm.write(f'[{spec.name}/{protocol}] split {split.split}: '
                           f'{ran} runs in {now - split_start:.1f} s '
                           f'(elapsed {now - total_start:.1f} s)',
                           file=sys.stderr)
    bar.close()
    return 0


KEY_FIELDS = ('dataset', 'protocol', 'model', 'split', 'init', 'seed',
              'hparams')


def _key_record(spec, protocol, model, split, init, init_seed, hp, seed):
    return {
        'dataset': spec.name,
        'protocol': protocol,
        'model': model,
        'split': split.split,
        'split_seed': split.seed,
        'init': init,
        'init_seed': init_seed,
        'seed': seed,
        'hparams': hp,
    }


# --------------------------------------------------------------------------
# Summary.
# --------------------------------------------------------------------------
def _config_key(rec: Dict[str, Any]) -> str:
    return json.dumps(rec['hparams'], sort_keys=True)


def _group_configs(records: List[Dict[str, Any]]
                   ) -> Dict[Tuple[str, str, str], Dict[str, List]]:
    groups: Dict[Tuple[str, str, str], Dict[str, List]] = defaultdict(
        lambda: defaultdict(list))
    for r in records:
        groups[(r['dataset'], r['protocol'], r['model'])][_config_key(r)] \
            .append(r)
    return groups


def _selection_val(configs: Dict[str, List[Dict[str, Any]]]
                   ) -> Dict[str, float]:
    r"""Mean validation accuracy per config, over the (split, init) runs that
    every config of the group holds (over all its runs when they share
    none), so a config is not favoured by the splits it happened to run."""
    runs = [{(r['split'], r['init']) for r in rs} for rs in configs.values()]
    shared = set.intersection(*runs)
    return {
        c: float(np.mean([r['val_acc'] for r in rs
                          if not shared or (r['split'], r['init']) in shared]))
        for c, rs in configs.items()
    }


def select_configs(records: List[Dict[str, Any]]
                   ) -> Dict[Tuple[str, str, str], List[Dict[str, Any]]]:
    r"""Groups records by (dataset, protocol, model) and keeps, per group,
    the hyper-parameters with the highest mean *validation* accuracy on the
    runs all configs share (the test accuracy is never looked at)."""
    out = {}
    for key, configs in _group_configs(records).items():
        val = _selection_val(configs)
        out[key] = configs[max(val, key=val.get)]
    return out


def grid_rows(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    r"""One row per config of every (dataset, protocol, model) that ran more
    than one: runs, the validation accuracy used for selection, validation
    and test accuracy over all its runs, and whether it was selected."""
    out = []
    for key, configs in _group_configs(dedupe(records)).items():
        if len(configs) < 2:
            continue
        val = _selection_val(configs)
        best = max(val, key=val.get)
        for c in sorted(configs, key=val.get, reverse=True):
            rs = configs[c]
            mean, std = mean_std([r['test_acc'] for r in rs])
            out.append({
                'dataset': key[0], 'protocol': key[1], 'model': key[2],
                'hparams': _short_hparams(rs[0]['hparams']),
                'runs': len(rs), 'selection_val': val[c],
                'val_mean': float(np.mean([r['val_acc'] for r in rs])),
                'test_mean': mean, 'test_std': std, 'selected': c == best,
            })
    return out


def dedupe(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    r"""Keeps the first record of every run (same :obj:`KEY_FIELDS`), so
    overlapping result files can be summarised together."""
    seen, out = set(), []
    for r in records:
        key = tuple(json.dumps(r.get(k), sort_keys=True) for k in KEY_FIELDS)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def summarize(records: List[Dict[str, Any]]
              ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    r"""Returns the rows of the main table and of the paired comparisons.

    Main table, per dataset x protocol x model (selected config): runs,
    splits, test accuracy mean ± sample std over all runs (the paper's
    figure), and the 95% t-interval of the mean over the per-split means
    (splits are the independent units; with a single split, over runs).

    Paired table, diffresnet against every other model: the (split, init)
    pairs both hold, averaged over inits per split; the paired t-test and the
    Wilcoxon signed-rank test over splits (over inits when there is one
    split). Differences are diffresnet minus baseline.
    """
    selected = select_configs(dedupe(records))
    rows, paired = [], []
    names = [s.name for s in DATASETS.values()]
    order = sorted(selected, key=lambda k: (
        names.index(k[0]) if k[0] in names else len(names), k[0],
        PROTOCOLS.index(k[1]) if k[1] in PROTOCOLS else 9, k[1],
        MODELS.index(k[2]) if k[2] in MODELS else len(MODELS), k[2]))
    for key in order:
        rs = selected[key]
        test = [r['test_acc'] for r in rs]
        mean, std = mean_std(test)
        per_split = _per_split(rs)
        units = list(per_split.values()) if len(per_split) > 1 else test
        lo, hi = confidence_interval(units)
        row = {
            'dataset': key[0], 'protocol': key[1], 'model': key[2],
            'runs': len(rs), 'splits': len(per_split),
            'test_mean': mean, 'test_std': std, 'ci_low': lo, 'ci_high': hi,
            'ci_unit': 'split' if len(per_split) > 1 else 'run',
            'val_mean': float(np.mean([r['val_acc'] for r in rs])),
            'epochs_mean': float(np.mean([r['epochs'] for r in rs])),
            'seconds_mean': float(np.mean([r['seconds'] for r in rs])),
            'hparams': _short_hparams(rs[0]['hparams']),
            'device': ', '.join(sorted({_device_name(r) for r in rs})),
        }
        if all('test_auc' in r for r in rs):
            row['test_auc_mean'], row['test_auc_std'] = mean_std(
                [r['test_auc'] for r in rs])
        rows.append(row)
    for key in order:
        if key[2] == 'diffresnet':
            continue
        ref_key = (key[0], key[1], 'diffresnet')
        if ref_key not in selected:
            continue
        a = {(r['split'], r['init']): r['test_acc'] for r in selected[ref_key]}
        b = {(r['split'], r['init']): r['test_acc'] for r in selected[key]}
        shared = sorted(set(a) & set(b))
        if not shared:
            continue
        splits = sorted({s for s, _ in shared})
        if len(splits) > 1:
            unit = 'split'
            xa = [np.mean([a[k] for k in shared if k[0] == s]) for s in splits]
            xb = [np.mean([b[k] for k in shared if k[0] == s]) for s in splits]
        else:
            unit = 'init'
            xa, xb = [a[k] for k in shared], [b[k] for k in shared]
        t = paired_test(xa, xb, 't-test')
        w = paired_test(xa, xb, 'wilcoxon')
        paired.append({
            'dataset': key[0], 'protocol': key[1], 'baseline': key[2],
            'pairs': len(shared), 'unit': unit, 'n': t['n'],
            'diff_mean': t['mean_diff'], 'wins': t['wins'],
            'ties': t['ties'], 'losses': t['losses'],
            't_test': t['test'], 't_pvalue': t['pvalue'],
            'wilcoxon_test': w['test'], 'wilcoxon_pvalue': w['pvalue'],
        })
    return rows, paired


def _device_name(r: Dict[str, Any]) -> str:
    return str(r.get('gpu') or r.get('device', 'n/a'))


def _per_split(rs: List[Dict[str, Any]]) -> Dict[int, float]:
    by: Dict[int, List[float]] = defaultdict(list)
    for r in rs:
        by[r['split']].append(r['test_acc'])
    return {s: float(np.mean(v)) for s, v in sorted(by.items())}


def _short_hparams(hp: Dict[str, Any]) -> str:
    keys = ('step_size', 'num_steps', 'dropout', 'hidden', 'lr',
            'weight_decay')
    return ' '.join(f'{k}={hp[k]}' for k in keys if k in hp)


def _pct(x: float) -> str:
    return 'n/a' if x is None or math.isnan(x) else f'{100 * x:.1f}'


def _p(x: float) -> str:
    if x is None or math.isnan(x):
        return 'n/a'
    return f'{x:.2g}' if x >= 1e-3 else f'{x:.1e}'


def format_markdown(rows, paired) -> str:
    out = [
        '| Dataset | Protocol | Model | Runs (splits) | Test acc. (%) '
        '| 95% CI | Val acc. (%) | Epochs | Hyper-parameters | Device |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        auc = (f' (AUC {_pct(r["test_auc_mean"])} ± '
               f'{_pct(r["test_auc_std"])})' if 'test_auc_mean' in r else '')
        out.append(
            f'| {r["dataset"]} | {r["protocol"]} | {r["model"]} '
            f'| {r["runs"]} ({r["splits"]}) '
            f'| {_pct(r["test_mean"])} ± {_pct(r["test_std"])}{auc} '
            f'| [{_pct(r["ci_low"])}, {_pct(r["ci_high"])}] '
            f'| {_pct(r["val_mean"])} | {r["epochs_mean"]:.0f} '
            f'| {r["hparams"]} | {r["device"]} |')
    out.append('')
    out.append('Mean ± sample std over all runs; 95% CI: Student t over the '
               'per-split means (over runs for one split). Hyper-parameters '
               'selected by validation accuracy only.')
    if paired:
        out += [
            '',
            '| Dataset | Protocol | diffresnet vs | Pairs | Units '
            '| Diff. (pp) | W/T/L | p (paired t-test) '
            '| p (Wilcoxon signed-rank) |',
            '|---|---|---|---|---|---|---|---|---|',
        ]
        for r in paired:
            out.append(
                f'| {r["dataset"]} | {r["protocol"]} | {r["baseline"]} '
                f'| {r["pairs"]} | {r["n"]} {r["unit"]}s '
                f'| {100 * r["diff_mean"]:+.2f} '
                f'| {r["wins"]}/{r["ties"]}/{r["losses"]} '
                f'| {_p(r["t_pvalue"])} | {_p(r["wilcoxon_pvalue"])} |')
        out.append('')
        out.append('Paired over the (split, init) runs both models hold, '
                   'averaged over inits per split; tests are two-sided, over '
                   'splits (over inits for one split). Diff. = diffresnet − '
                   'baseline test accuracy; W/T/L counts units.')
    return '\n'.join(out) + '\n'


def format_grid_markdown(rows: List[Dict[str, Any]]) -> str:
    out = [
        '| Dataset | Protocol | Model | Hyper-parameters | Runs '
        '| Val acc. for selection (%) | Val acc. (%) | Test acc. (%) '
        '| Selected |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        out.append(
            f'| {r["dataset"]} | {r["protocol"]} | {r["model"]} '
            f'| {r["hparams"]} | {r["runs"]} | {_pct(r["selection_val"])} '
            f'| {_pct(r["val_mean"])} '
            f'| {_pct(r["test_mean"])} ± {_pct(r["test_std"])} '
            f'| {"yes" if r["selected"] else ""} |')
    out.append('')
    out.append('Every config that ran; selection by the mean validation '
               'accuracy over the (split, init) runs all configs of a model '
               'share. Test accuracy is shown, never used.')
    return '\n'.join(out) + '\n'


def _tex_escape(s: str) -> str:
    return s.replace('_', r'\_').replace('%', r'\%')


def format_latex(rows, paired) -> str:
    out = [
        r'\begin{tabular}{lllrrcr}', r'\toprule',
        r'Dataset & Protocol & Model & Runs & Test acc. (\%) & 95\% CI '
        r'& Epochs \\', r'\midrule'
    ]
    for r in rows:
        out.append(
            f'{_tex_escape(r["dataset"])} & {r["protocol"]} & '
            f'{_tex_escape(r["model"])} & {r["runs"]} & '
            f'${_pct(r["test_mean"])} \\pm {_pct(r["test_std"])}$ & '
            f'[{_pct(r["ci_low"])}, {_pct(r["ci_high"])}] & '
            f'{r["epochs_mean"]:.0f} \\\\')
    out += [r'\bottomrule', r'\end{tabular}']
    if paired:
        out += [
            '', r'\begin{tabular}{lllrrrr}', r'\toprule',
            r'Dataset & Protocol & diffresnet vs & Units & $\Delta$ (pp) '
            r'& $p$ (paired $t$) & $p$ (Wilcoxon) \\', r'\midrule'
        ]
        for r in paired:
            out.append(
                f'{_tex_escape(r["dataset"])} & {r["protocol"]} & '
                f'{_tex_escape(r["baseline"])} & {r["n"]} {r["unit"]}s & '
                f'${100 * r["diff_mean"]:+.2f}$ & {_p(r["t_pvalue"])} & '
                f'{_p(r["wilcoxon_pvalue"])} \\\\')
        out += [r'\bottomrule', r'\end{tabular}']
    return '\n'.join(out) + '\n'


def write_csv(path: str, rows: List[Dict[str, Any]]) -> None:
    fields: List[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, 'w', newline='', encoding='utf-8') as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def run_summary(paths: Sequence[str], prefix: str) -> int:
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"No results file {', '.join(missing)}")
    records = read_jsonl(paths)
    if not records:
        raise ValueError(f"No finished runs in {', '.join(paths)}")
    rows, paired = summarize(records)
    grid = grid_rows(records)
    md = format_markdown(rows, paired)
    if grid:
        md += '\n' + format_grid_markdown(grid)
    print(md)
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    with open(prefix + '.md', 'w', encoding='utf-8') as f:
        f.write(md)
    with open(prefix + '.tex', 'w', encoding='utf-8') as f:
        f.write(format_latex(rows, paired))
    write_csv(prefix + '.csv', rows)
    written = [prefix + '.md', prefix + '.csv']
    for suffix, table in (('_paired', paired), ('_grid', grid)):
        if table:
            write_csv(prefix + suffix + '.csv', table)
            written.append(prefix + suffix + '.csv')
    print(f'wrote {", ".join(written)}, {prefix}.tex', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
