r"""The data of an OGB run: the dataset (OGB's files, or the synthetic
stand-in built in memory), its preparation, and the partition for
Cluster-GCN training, computed once on rank 0 under DDP."""
import time
from typing import Any, Dict, Optional, Tuple

from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from benchmarks.ogbn.distributed import Distributed
from benchmarks.ogbn.loading import load_ogb_node_dataset, ogb_dataset_dir
from benchmarks.ogbn.synthetic import (OGB_LIKE, read_synthetic_marker,
                                       synthetic_ogb_data)
from torch_geometric_diff.loader import GraphPartition


def load_data(
    dataset: str,
    root: str,
    download: bool = True,
    synthetic_scale: Optional[float] = None,
    dist: Optional[Distributed] = None,
) -> Tuple[Data, Dict[str, Tensor], str, Optional[Dict[str, Any]]]:
    r"""Returns :obj:`(data, split_idx, source, marker)`: the graph, OGB's
    split, ``'ogb'``, ``'synthetic'`` (a folder written by
    ``make_synthetic_ogb.py``) or ``'synthetic-in-memory'``, and the
    synthetic marker (:obj:`None` for OGB data).

    With :obj:`synthetic_scale` the stand-in is built in memory and no file
    is read. Under DDP rank 0 processes the raw files first and the other
    ranks then read its output.

    Raises:
        OGBDataUnavailableError: The dataset is not under :obj:`root` and
            cannot be downloaded.
    """
    if synthetic_scale is not None:
        data, split_idx = synthetic_ogb_data(dataset, synthetic_scale)
        return data, split_idx, 'synthetic-in-memory', dict(
            like=dataset, scale=synthetic_scale, seed=0)
    dist = dist or Distributed()
    for turn in range(2 if dist.enabled else 1):
        if (turn == 0) == dist.is_main:
            ogb_dataset, split_idx = load_ogb_node_dataset(
                dataset, root, download=download)
        dist.barrier()
    marker = read_synthetic_marker(ogb_dataset_dir(dataset, root))
    source = 'synthetic' if marker is not None else 'ogb'
    return ogb_dataset[0], split_idx, source, marker


def prepare(data: Data, dataset: str) -> int:
    r"""Makes arxiv's citation graph undirected (in place) and returns the
    number of classes (OGB's, or more where the labels say so)."""
    if dataset == 'ogbn-arxiv':
        data.edge_index = to_undirected(data.edge_index,
                                        num_nodes=data.num_nodes)
    return max(int(data.y.max()) + 1, OGB_LIKE[dataset]['num_classes'])


def partition(data: Data, num_parts: int, partitioner: str, seed: int,
              dist: Optional[Distributed] = None) -> GraphPartition:
    r"""The :obj:`partitioner` (``'metis'`` or ``'random'``) partition of
    :obj:`data` into :obj:`num_parts` parts; under DDP rank 0 computes it
    and every rank uses its result."""
    dist = dist or Distributed()
    t = time.perf_counter()
    part = None
    if dist.enabled:
        if dist.is_main:
            part = GraphPartition(data.edge_index, data.num_nodes, num_parts,
                                  partitioner, seed).part
        part = dist.broadcast(part)
    out = GraphPartition(data.edge_index, data.num_nodes, num_parts,
                         partitioner, seed, part=part)
    dist.log(f'{partitioner} partition into {num_parts} parts in '
             f'{time.perf_counter() - t:.1f} s')
    return out
