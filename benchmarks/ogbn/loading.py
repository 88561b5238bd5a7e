r"""Safe, non-interactive loading of OGB node property prediction datasets.

:class:`ogb.nodeproppred.PygNodePropPredDataset` (ogb 1.3.6) has three
habits that break unattended runs:

* it calls :func:`torch.load` without :obj:`weights_only`, which fails on
  PyTorch :math:`\geq 2.6` because PyG's storage classes (such as
  :class:`~torch_geometric.data.data.DataEdgeAttr`) are not allow-listed;
* it asks :func:`input` whether to re-download when the dataset folder lacks
  its ``RELEASE_v*.txt`` file, and again before downloads above 1 GB;
* without network it fails deep inside :mod:`urllib` with a traceback.

:func:`load_ogb_node_dataset` checks the folder first, downloads (if needed)
without prompting, and constructs the unmodified OGB class inside a scoped
:func:`torch.serialization.safe_globals` context. Nothing in :mod:`ogb` is
patched. A processed file left empty or incomplete by a killed run is
processed again; raw files that are truncated, garbage or inconsistent (a
short label file) raise
:class:`~benchmarks.common.processing.CorruptDataError` naming the file.
"""
import contextlib
import os
import os.path as osp
import shutil
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from benchmarks.common.processing import build_dataset
from benchmarks.ogbn.synthetic import (
    ogb_dir_name,
    ogb_meta_dict,
    read_synthetic_marker,
)


class OGBDataUnavailableError(RuntimeError):
    r"""The dataset is neither on disk nor downloadable right now. The
    message says what to do; command-line tools print it without a
    traceback."""


def ogb_safe_globals() -> List[type]:
    r"""The classes a PyG dataset file written by :obj:`ogb` pickles, which
    :func:`torch.load` must allow with :obj:`weights_only=True`."""
    from torch_geometric.data import Data, HeteroData
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import (
        BaseStorage,
        EdgeStorage,
        GlobalStorage,
        NodeStorage,
    )
    return [
        Data, HeteroData, DataEdgeAttr, DataTensorAttr, BaseStorage,
        GlobalStorage, NodeStorage, EdgeStorage
    ]


@contextlib.contextmanager
def ogb_safe_loading() -> Iterator[None]:
    r"""A context in which :func:`torch.load` (with its default
    :obj:`weights_only=True` on PyTorch :math:`\geq 2.6`) accepts the classes
    of :func:`ogb_safe_globals`. The allow-list is restored on exit."""
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:  # PyTorch < 2.5: `weights_only` is off.
        yield
        return
    # Only add what is missing: leaving the context removes the entries it
    # added, which would also drop PyG's own registrations (such as Data).
    allowed = torch.serialization.get_safe_globals()
    with safe_globals([g for g in ogb_safe_globals() if g not in allowed]):
        yield


def ogb_dataset_dir(name: str, root: str,
                    meta_dict: Optional[Dict[str, Any]] = None) -> str:
    r"""The folder :class:`PygNodePropPredDataset` reads, e.g.
    ``<root>/ogbn_arxiv`` (or ``<root>/ogbn_arxiv_pyg`` if that exists)."""
    if meta_dict is not None:
        return meta_dict['dir_path']
    path = osp.join(root, ogb_dir_name(name))
    if osp.exists(path + '_pyg'):
        return path + '_pyg'
    return path


def _reachable(url: str, timeout: float) -> bool:
    # A HEAD request in a daemon thread, so that a stuck DNS lookup cannot
    # block for longer than `timeout` either.
    import urllib.request
    result: List[bool] = []

    def probe() -> None:
        try:
            req = urllib.request.Request(url, method='HEAD')
            with urllib.request.urlopen(req, timeout=timeout):
                result.append(True)
        except Exception:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result and result[0])


def _raw_files(meta: Dict[str, Any]) -> List[str]:
    if meta['binary'] == 'True':
        return ['data.npz']
    files = ['edge.csv.gz', 'num-node-list.csv.gz', 'num-edge-list.csv.gz']
    if meta['has_node_attr'] == 'True':
        files.append('node-feat.csv.gz')
    return files


def _download(meta: Dict[str, Any], root: str, path: str) -> None:
    # What `PygNodePropPredDataset.download` does, minus its size prompt.
    from ogb.utils.url import download_url, extract_zip
    os.makedirs(root, exist_ok=True)
    zip_path = download_url(meta['url'], root)
    extract_zip(zip_path, root)
    os.unlink(zip_path)
    if osp.exists(path):
        shutil.rmtree(path)
    shutil.move(osp.join(root, meta['download_name']), path)


def load_ogb_node_dataset(
    name: str,
    root: str = 'dataset',
    meta_dict: Optional[Dict[str, Any]] = None,
    transform: Optional[Callable] = None,
    pre_transform: Optional[Callable] = None,
    download: bool = True,
    timeout: float = 10.0,
) -> Tuple[Any, Dict[str, Tensor]]:
    r"""Loads an OGB node property prediction dataset with
    :class:`ogb.nodeproppred.PygNodePropPredDataset` and returns
    :obj:`(dataset, split_idx)`, never prompting on stdin.

    Args:
        name (str): The OGB name, e.g. :obj:`"ogbn-arxiv"`.
        root (str, optional): OGB's root folder; the dataset lives in
            ``<root>/ogbn_arxiv/``. (default: :obj:`"dataset"`)
        meta_dict (Dict, optional): OGB's :obj:`meta_dict` (see
            :func:`~benchmarks.ogbn.synthetic.ogb_meta_dict`)
            to read the dataset from ``meta_dict['dir_path']``.
            (default: :obj:`None`)
        transform (callable, optional): Passed to OGB. (default: :obj:`None`)
        pre_transform (callable, optional): Passed to OGB.
            (default: :obj:`None`)
        download (bool, optional): Download a missing dataset (no prompt).
            (default: :obj:`True`)
        timeout (float, optional): Seconds to wait for the download server
            before reporting that the machine is offline.
            (default: :obj:`10.0`)

    Raises:
        OGBDataUnavailableError: If the dataset is missing and cannot be
            downloaded, or its folder lacks the ``RELEASE_v*.txt`` file.
        CorruptDataError: If a raw or split file cannot be processed (the
            message names it).
    """
    from ogb.nodeproppred import PygNodePropPredDataset

    meta = ogb_meta_dict(name, '') if meta_dict is None else meta_dict
    path = ogb_dataset_dir(name, root, meta_dict)
    release = osp.join(path, f"RELEASE_v{meta['version']}.txt")
    generate = (f"For an offline stand-in (not OGB data) run: python "
                f"benchmarks/make_synthetic_ogb.py --like {name} --root "
                f"{osp.dirname(path) or '.'}")

    if osp.isdir(path) and not osp.exists(release):
        raise OGBDataUnavailableError(
            f"'{path}' exists but has no '{osp.basename(release)}', so ogb "
            f"would stop and ask on stdin whether to delete and re-download "
            f"it. Remove the folder to download a fresh copy, or, if its "
            f"files are complete, create '{release}'.")

    processed = osp.join(path, 'processed', 'geometric_data_processed.pt')
    raw_ok = all(
        osp.exists(osp.join(path, 'raw', f)) for f in _raw_files(meta))
    if not osp.exists(processed) and not raw_ok:
        url = meta['url']
        if not download:
            raise OGBDataUnavailableError(
                f"{name} is not in '{path}' and downloading is disabled. "
                f"{generate}")
        if not _reachable(url, timeout):
            raise OGBDataUnavailableError(
                f"{name} is not in '{path}' and '{url}' cannot be reached "
                f"(no network?). Copy the dataset folder there from a "
                f"machine with network access. {generate}")
        _download(meta, osp.dirname(path) if meta_dict is not None else root,
                  path)

    def make() -> Tuple[Any, Dict[str, Tensor]]:
        with ogb_safe_loading():
            if meta_dict is None:
                dataset = PygNodePropPredDataset(name, root, transform,
                                                 pre_transform)
            else:
                dataset = PygNodePropPredDataset(name, root, transform,
                                                 pre_transform, meta_dict)
            split_idx = dataset.get_idx_split()
        _check_loaded(dataset[0], split_idx)
        return dataset, split_idx

    return build_dataset(make, osp.join(path, 'processed'),
                         _csv_files(path), lambda: find_corrupt_ogb(path))


def _check_loaded(data, split_idx: Dict[str, Tensor]) -> None:
    # Short or inconsistent raw files load without an error in ogb.
    n = data.num_nodes
    for key in ('x', 'y'):
        value = getattr(data, key, None)
        if value is not None and value.size(0) != n:
            raise ValueError(f"'{key}' has {value.size(0)} rows for {n} "
                             f"nodes")
    tensors = [data.edge_index] + list(split_idx.values())
    if any(t.numel() and (int(t.min()) < 0 or int(t.max()) >= n)
           for t in tensors):
        raise ValueError(f'a node index outside [0, {n})')


def _csv_files(path: str) -> List[str]:
    # The gzipped CSV files ogb reads: raw/ and split/<type>/.
    out = []
    for sub in ('raw', 'split'):
        for dirpath, _, files in sorted(os.walk(osp.join(path, sub))):
            out += [osp.join(dirpath, f) for f in sorted(files)
                    if f.endswith('.csv.gz')]
    return out


def _read_csv(path: str):
    import pandas as pd
    return pd.read_csv(path, compression='gzip', header=None).values


def find_corrupt_ogb(path: str) -> Optional[str]:
    r"""The first gzipped CSV file of the OGB dataset folder :obj:`path`
    that cannot be read, or whose rows disagree with the node and edge
    counts of ``num-node-list.csv.gz`` and ``num-edge-list.csv.gz``;
    :obj:`None` if all agree."""
    tables = {}
    for file in _csv_files(path):
        try:
            tables[file] = _read_csv(file)
        except Exception:  # gzip, zlib, pandas and EOF errors.
            return file
    raw = osp.join(path, 'raw')
    nodes = tables.get(osp.join(raw, 'num-node-list.csv.gz'))
    edges = tables.get(osp.join(raw, 'num-edge-list.csv.gz'))
    if nodes is None or edges is None:
        return None
    n, e = int(nodes.sum()), int(edges.sum())

    def bad_index(table) -> bool:  # Node indices: integers in [0, n).
        return table.size > 0 and bool(
            np.isnan(table).any() or table.min() < 0 or table.max() >= n)

    for file, table in tables.items():
        base = osp.basename(file)
        if base == 'edge.csv.gz':
            bad = table.shape[0] != e or bad_index(table)
        elif file.startswith(raw) and base.startswith('node'):
            bad = table.shape[0] != n
        else:  # Counts (checked by their sums) and split indices.
            bad = not file.startswith(raw) and bad_index(table)
        if bad:
            return file
    return None


def is_synthetic_ogb(name: str, root: str,
                     meta_dict: Optional[Dict[str, Any]] = None) -> bool:
    r"""Whether the dataset folder was written by
    :func:`~benchmarks.ogbn.synthetic.write_synthetic_ogb`
    (results on it must never be reported as OGB results)."""
    return read_synthetic_marker(ogb_dataset_dir(name, root,
                                                 meta_dict)) is not None


__all__ = [
    'OGBDataUnavailableError',
    'ogb_safe_globals',
    'ogb_safe_loading',
    'ogb_dataset_dir',
    'load_ogb_node_dataset',
    'is_synthetic_ogb',
]
