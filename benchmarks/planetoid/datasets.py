r"""The datasets of the Planetoid harness: a registry of PyG dataset
classes, loading from a possibly read-only root (mirrored into a writable
cache), and the preprocessing every model shares."""
import copy
import os
import shutil
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
import torch_geometric.datasets
from torch import Tensor
from torch_geometric.io import read_npz
from torch_geometric.utils import (
    remove_self_loops,
    subgraph,
    to_torch_csr_tensor,
    to_undirected,
)

from benchmarks.common import NodeSplit, largest_connected_component
from benchmarks.common.cli import UsageError, check_output_dir, is_writable
from benchmarks.common.processing import (CorruptDataError, build_dataset,
                                          folder_lock)
from benchmarks.planetoid.cache import find_corrupt_raw, mirror
from benchmarks.planetoid.protocols import fixed_splits, random_protocol_splits

# One row per dataset, all loaded through PyG's own classes.
#   folder:   sub-folder of --root that is the PyG class's `root`.
#   bow:      binary bag-of-words features (binarised and kept sparse).
#   row_norm: rows scaled to sum 1 (the paper's preprocessing).
#   fixed:    the fixed splits that serve `--protocol geom-gcn` (Planetoid,
#             WebKB, Actor, WikipediaNetwork: the 10 Geom-GCN 60/20/20 splits;
#             Minesweeper, Tolokers: the 10 50/25/25 splits shipped in their
#             masks).
#   step, steps, drop, hidden: Diff-ResNet defaults (hidden None = the
#             paper's model, features of width F all the way). Explicit
#             Euler needs step <= 2 / lambda_max(L) (benchmarks/lambda_max.py
#             prints it): Actor's bound is below 0.25, hence 0.1;
#             Chameleon's lies just below 0.25; every other set allows 0.25.


@dataclass(frozen=True)
class DatasetSpec:
    r"""One dataset: its PyG class and preprocessing, and Diff-ResNet's
    defaults on it (see the table of :obj:`DATASETS`)."""
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
_GB = 'gnn-benchmark'
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
    # The official code's own data files (Shchur et al.'s gnn-benchmark),
    # read with torch_geometric.io.read_npz; random protocol only.
    'cora-npz':     _spec('Cora-npz',     'npz',      _GB,         dict(file='cora.npz'),        True,  True,  'none',     0.25, 20, 0.25, None),  # noqa
    'citeseer-npz': _spec('CiteSeer-npz', 'npz',      _GB,         dict(file='citeseer.npz'),    True,  True,  'none',     0.25, 20, 0.25, None),  # noqa
}


def canonical(name: str, choices: Iterable[str], what: str) -> str:
    r"""The registry key of :obj:`name` (case-insensitive, ``_`` = ``-``).
    Raises :class:`ValueError` naming :obj:`what` if there is none."""
    key = name.lower().replace('_', '-')
    key = {'geomgcn': 'geom-gcn'}.get(key, key)
    if key not in choices:
        raise ValueError(f"Unknown {what} '{name}' (choose from "
                         f"{', '.join(choices)})")
    return key


class MissingDataError(UsageError):
    r"""The raw files of a dataset are absent and cannot be downloaded."""


def _class_kwargs(spec: DatasetSpec, protocol: str) -> Dict[str, Any]:
    kwargs = dict(spec.kwargs)
    if spec.pyg_class == 'Planetoid':
        kwargs['split'] = 'geom-gcn' if protocol == 'geom-gcn' else 'public'
    if spec.pyg_class == 'WikipediaNetwork':
        kwargs['geom_gcn_preprocess'] = True
    return kwargs


def _pyg_class(spec: DatasetSpec):
    return getattr(torch_geometric.datasets, spec.pyg_class)


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
    be written (see :func:`~benchmarks.common.cli.is_writable`)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return is_writable(path)


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


def check_cache(root: str, cache: str) -> None:
    r"""Raises :class:`UsageError` if :obj:`root` cannot be written (so it
    will be mirrored into :obj:`cache`) and :obj:`cache` cannot be
    written either."""
    if not _writable(root):
        check_output_dir(cache, '--cache')


def load_pyg_dataset(spec: DatasetSpec, protocol: str, root: str,
                     cache: str, offline: bool = False):
    r"""Loads :obj:`spec` through its PyG class. A root that cannot be written
    is mirrored (raw files only) into :obj:`cache`, where PyG then writes its
    processed files; a cached file is copied again when its source differs.
    A processed folder left broken by a killed run is rebuilt.

    Raises:
        MissingDataError: The raw files are missing and cannot be
            downloaded (the message lists them).
        CorruptDataError: A raw file cannot be processed (the message names
            it).
    """
    class_root = os.path.join(root, spec.folder)
    if spec.pyg_class == 'npz':
        return [_read_npz(spec, root, class_root)]
    raw = expected_raw_paths(spec, protocol, class_root)
    processed = _processed_dir(spec, protocol, class_root)
    have_raw = all(os.path.isfile(p) for p in raw)
    load_root = class_root
    if not _writable(processed):
        load_root = os.path.join(cache, spec.folder)
        check_output_dir(load_root, '--cache')
    elif not have_raw and offline:  # Nothing written to the root.
        raise MissingDataError(
            _missing_message(spec, protocol, root, raw, class_root))
    kwargs = _class_kwargs(spec, protocol)

    def make():
        return _pyg_class(spec)(load_root, **kwargs)

    with folder_lock(load_root):  # One process mirrors and processes.
        shown = {}
        if load_root != class_root:
            cached_raw = expected_raw_paths(spec, protocol, load_root)
            shown = dict(zip(cached_raw, raw))
            if mirror(raw, class_root, load_root):
                # The processed files were made from other raw files.
                shutil.rmtree(_processed_dir(spec, protocol, load_root),
                              ignore_errors=True)
            have_raw = all(os.path.isfile(p) for p in cached_raw)
        if not have_raw and offline:
            raise MissingDataError(
                _missing_message(spec, protocol, root, raw, class_root))
        if have_raw:
            paths = list(shown) or raw
            return build_dataset(
                make, _processed_dir(spec, protocol, load_root), paths,
                lambda: find_corrupt_raw(paths),
                lambda p: os.path.relpath(shown.get(p, p), root))
        try:
            return make()
        except Exception as e:  # Download failures surface as many types.
            raise MissingDataError(
                _missing_message(spec, protocol, root, raw, class_root,
                                 e)) from None


def _read_npz(spec: DatasetSpec, root: str, class_root: str):
    # read_npz makes the graph undirected without self-loops and binarises
    # the features, as the official code's standardisation does.
    path = os.path.join(class_root, dict(spec.kwargs)['file'])
    if not os.path.isfile(path):
        raise MissingDataError(
            f"Dataset '{spec.name}' is not available: expected the "
            f"gnn-benchmark file '{os.path.relpath(path, root)}' under "
            f"--root '{root}' (it is never downloaded)")
    try:
        return read_npz(path)
    except Exception as e:  # zipfile, numpy and scipy fail in many ways.
        raise CorruptDataError(
            f"'{os.path.relpath(path, root)}' under --root '{root}' is "
            f"truncated or not a gnn-benchmark .npz file "
            f"({type(e).__name__}: {e})") from None


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
        if spec.pyg_class == 'npz':
            # The official code one-hot encodes the labels of the component
            # (sklearn's LabelBinarizer) and takes the argmax: class ids are
            # the ranks of the labels present.
            y = torch.unique(y, return_inverse=True)[1]
        splits = random_protocol_splits(y, spec, num_splits, num_inits, seed)
    else:
        splits = fixed_splits(data, spec, protocol, num_splits, num_inits,
                              seed)
    if spec.bow:
        x = (x != 0).float()
    if spec.row_norm:
        x = x / x.sum(dim=1, keepdim=True).clamp(min=1e-12)
    n = y.numel()
    xs = x.to_sparse_csr() if spec.bow else x
    with warnings.catch_warnings():  # PyTorch's one-time sparse notices.
        warnings.simplefilter('ignore', UserWarning)
        adj_t = to_torch_csr_tensor(edge_index, size=(n, n))
    return Graph(xs, x, adj_t, edge_index, y, int(y.max()) + 1, node_index,
                 splits)
