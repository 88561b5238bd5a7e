r"""Cluster-GCN-style partition mini-batches without :obj:`torch-sparse`.

From the `"Cluster-GCN: An Efficient Algorithm for Training Deep and Large
Graph Convolutional Networks" <https://arxiv.org/abs/1905.07953>`_ paper:
the graph is split once into :obj:`num_parts` parts (METIS through
:obj:`pymetis`, or uniformly at random), and every mini-batch is the induced
subgraph on a random group of parts, edges between the chosen parts
included. A :class:`~torch_geometric_diff.nn.DiffConv` then runs its
:math:`K` diffusion steps inside each batch.

PyG's :class:`~torch_geometric.loader.ClusterData` needs :obj:`torch-sparse`
or :obj:`pyg-lib`; this module only needs PyTorch (and optionally
:obj:`pymetis`).
"""
import math
import warnings
from typing import Iterator, List, Optional

import torch
from torch import Tensor
from torch_geometric.data import Data

PARTITION_METHODS = ('metis', 'random')


def _check(num_nodes: int, num_parts: int) -> None:
    if not isinstance(num_parts, int) or num_parts < 1:
        raise ValueError(f"'num_parts' must be a positive integer "
                         f"(got {num_parts!r})")
    if num_parts > num_nodes:
        raise ValueError(f"'num_parts' ({num_parts}) exceeds the number of "
                         f"nodes ({num_nodes})")


def random_partition(num_nodes: int, num_parts: int, seed: int = 0) -> Tensor:
    r"""Splits the nodes uniformly at random into :obj:`num_parts` parts
    whose sizes differ by at most one. Returns the part of every node,
    :math:`[N]`."""
    _check(num_nodes, num_parts)
    gen = torch.Generator().manual_seed(seed)
    part = torch.empty(num_nodes, dtype=torch.long)
    part[torch.randperm(num_nodes, generator=gen)] = \
        torch.arange(num_nodes) % num_parts
    return part


def _symmetric_csr(edge_index: Tensor, num_nodes: int):
    # Both directions, no self-loops, no duplicates; sorted by row.
    row, col = edge_index.cpu().long()
    keep = row != col
    row, col = row[keep], col[keep]
    key = torch.cat([row * num_nodes + col, col * num_nodes + row]).unique()
    row, col = key // num_nodes, key % num_nodes
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    rowptr[1:] = torch.bincount(row, minlength=num_nodes).cumsum(0)
    return rowptr, col


def metis_partition(edge_index: Tensor, num_nodes: int, num_parts: int,
                    seed: int = 0) -> Tensor:
    r"""Partitions the graph with METIS (via :obj:`pymetis`), minimising the
    number of cut edges between parts of balanced size. Edge directions are
    ignored. Returns the part of every node, :math:`[N]`.

    Raises:
        ImportError: If :obj:`pymetis` is not installed.
    """
    import numpy as np
    import pymetis
    _check(num_nodes, num_parts)
    if num_parts == 1:
        return torch.zeros(num_nodes, dtype=torch.long)
    rowptr, col = _symmetric_csr(edge_index, num_nodes)
    dtype = pymetis.zero_copy_dtype()
    adjacency = pymetis.CSRAdjacency(
        np.ascontiguousarray(rowptr.numpy(), dtype=dtype),
        np.ascontiguousarray(col.numpy(), dtype=dtype))
    del rowptr, col
    result = pymetis.part_graph(num_parts, adjacency=adjacency,
                                options=pymetis.Options(seed=seed))
    part = np.frombuffer(result.vertex_part, dtype=np.dtype(
        result.vertex_part.typecode)).astype(np.int64)
    return torch.from_numpy(part)


def partition_graph(edge_index: Tensor, num_nodes: int, num_parts: int,
                    method: str = 'metis', seed: int = 0) -> Tensor:
    r"""Returns the part of every node, :math:`[N]`, from
    :func:`metis_partition` (:obj:`method="metis"`; falls back to
    :func:`random_partition` with a warning when :obj:`pymetis` is missing)
    or :func:`random_partition` (:obj:`method="random"`)."""
    if method not in PARTITION_METHODS:
        raise ValueError(f"Unknown partition method {method!r} (expected "
                         f"one of {PARTITION_METHODS})")
    if method == 'metis':
        try:
            return metis_partition(edge_index, num_nodes, num_parts, seed)
        except ImportError:
            warnings.warn("'pymetis' is not installed; using random "
                          "partitions instead (pip install pymetis)",
                          RuntimeWarning, stacklevel=2)
    return random_partition(num_nodes, num_parts, seed)


def _ranges(start: Tensor, end: Tensor) -> Tensor:
    # cat([arange(s, e) for s, e in zip(start, end)]), vectorised.
    length = end - start
    offset = torch.repeat_interleave(start - (length.cumsum(0) - length),
                                     length)
    return torch.arange(int(length.sum())) + offset


class GraphPartition:
    r"""A graph with its nodes regrouped by part: nodes of one part get
    consecutive new ids, and the edges are stored as CSR in that order, so
    the edges leaving a group of parts are a few contiguous slices.

    Args:
        edge_index (torch.Tensor): The graph, :math:`[2, |\mathcal{E}|]`
            (stored as given; pass both directions for undirected graphs).
        num_nodes (int): The number of nodes :math:`N`.
        num_parts (int): The number of parts.
        method (str, optional): :obj:`"metis"` or :obj:`"random"`.
            (default: :obj:`"metis"`)
        seed (int, optional): Seed of the partitioner. (default: :obj:`0`)
        part (torch.Tensor, optional): A precomputed part of every node,
            :math:`[N]` (e.g. broadcast from rank 0); skips partitioning.
            (default: :obj:`None`)
    """
    def __init__(self, edge_index: Tensor, num_nodes: int, num_parts: int,
                 method: str = 'metis', seed: int = 0,
                 part: Optional[Tensor] = None) -> None:
        edge_index = edge_index.cpu().long()
        if part is None:
            part = partition_graph(edge_index, num_nodes, num_parts, method,
                                   seed)
        part = part.cpu().long()
        if part.numel() != num_nodes or (num_nodes > 0 and (
                int(part.min()) < 0 or int(part.max()) >= num_parts)):
            raise ValueError(f"'part' must hold one part id in "
                             f"[0, {num_parts}) per node")
        self.num_nodes = num_nodes
        self.num_parts = num_parts
        self.part = part
        #: Old id of every new id (nodes sorted by part).
        self.perm = torch.argsort(part, stable=True)
        self.inv = torch.empty_like(self.perm)
        self.inv[self.perm] = torch.arange(num_nodes)
        self.partptr = torch.zeros(num_parts + 1, dtype=torch.long)
        self.partptr[1:] = torch.bincount(part, minlength=num_parts).cumsum(0)

        idx = torch.int32 if num_nodes < 2**31 else torch.long
        row, col = self.inv[edge_index[0]], self.inv[edge_index[1]]
        order = torch.argsort(row, stable=True)
        self.row = row[order].to(idx)
        self.col = col[order].to(idx)
        del row, col, order
        self.rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        self.rowptr[1:] = torch.bincount(self.row.long(),
                                         minlength=num_nodes).cumsum(0)
        self._mask = torch.zeros(num_nodes, dtype=torch.bool)
        self._local = torch.full((num_nodes, ), -1, dtype=torch.long)

    def part_sizes(self) -> Tensor:
        r"""The number of nodes of every part."""
        return self.partptr[1:] - self.partptr[:-1]

    def subgraph(self, parts: Tensor) -> Data:
        r"""The subgraph induced by the nodes of :obj:`parts`: a
        :class:`~torch_geometric.data.Data` with local ``edge_index``,
        ``n_id`` (the original id of every local node) and ``part_id`` (the
        parts it holds)."""
        parts = torch.as_tensor(parts, dtype=torch.long).view(-1)
        nodes = _ranges(self.partptr[parts], self.partptr[parts + 1])
        edges = _ranges(self.rowptr[self.partptr[parts]],
                        self.rowptr[self.partptr[parts + 1]])
        row, col = self.row[edges].long(), self.col[edges].long()
        self._mask[nodes] = True
        keep = self._mask[col]
        self._mask[nodes] = False
        self._local[nodes] = torch.arange(nodes.numel())
        edge_index = torch.stack([self._local[row[keep]],
                                  self._local[col[keep]]])
        self._local[nodes] = -1
        return Data(edge_index=edge_index, n_id=self.perm[nodes],
                    part_id=parts, num_nodes=nodes.numel())

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_nodes={self.num_nodes}, '
                f'num_parts={self.num_parts})')


class PartitionLoader:
    r"""Iterates over mini-batches of :obj:`batch_size` random parts of a
    :class:`GraphPartition` (Cluster-GCN). Every batch is the induced
    subgraph with local ``edge_index``, ``n_id`` and, when :obj:`data` is
    given, every node-level attribute of :obj:`data` sliced to the batch.

    With :obj:`shuffle=True`, every iteration over the loader is a new
    epoch with a new random grouping of the parts, as with PyG's
    :class:`~torch_geometric.loader.ClusterLoader`; the grouping of epoch
    :math:`e` is a function of :obj:`seed` and :math:`e` only, so the
    sequence of epochs is reproducible. :meth:`set_epoch` sets the epoch of
    the next iteration, which then counts on from there.

    For :class:`~torch.nn.parallel.DistributedDataParallel`, each of
    :obj:`num_replicas` processes takes a disjoint share of the batches of an
    epoch (the same shuffled order on every rank, from :obj:`seed` and the
    epoch); all ranks get the same number of batches, which DDP's collective
    gradient averaging requires.

    Args:
        partition (GraphPartition): The partitioned graph.
        batch_size (int, optional): Parts per mini-batch. (default: :obj:`1`)
        shuffle (bool, optional): Regroup parts randomly every epoch.
            (default: :obj:`True`)
        data (torch_geometric.data.Data, optional): Node-level attributes to
            slice (``x``, ``y``, masks). (default: :obj:`None`)
        seed (int, optional): Seed of the shuffling. (default: :obj:`0`)
        num_replicas (int, optional): Number of DDP processes.
            (default: :obj:`1`)
        rank (int, optional): This process' rank. (default: :obj:`0`)
    """
    def __init__(self, partition: GraphPartition, batch_size: int = 1,
                 shuffle: bool = True, data: Optional[Data] = None,
                 seed: int = 0, num_replicas: int = 1,
                 rank: int = 0) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"'batch_size' must be a positive integer "
                             f"(got {batch_size!r})")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"'rank' ({rank}) must lie in "
                             f"[0, {num_replicas})")
        num_batches = math.ceil(partition.num_parts / batch_size)
        if num_batches < num_replicas:
            raise ValueError(f"{partition.num_parts} parts in batches of "
                             f"{batch_size} give {num_batches} batches, "
                             f"fewer than the {num_replicas} replicas")
        self.partition = partition
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.data = data
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.num_batches = num_batches

    def set_epoch(self, epoch: int) -> None:
        r"""Sets the epoch of the next iteration, which seeds its shuffling
        (as :class:`~torch.utils.data.distributed.DistributedSampler`)."""
        self.epoch = epoch

    def batches(self) -> List[Tensor]:
        r"""The parts of each of this rank's batches in the epoch of the
        next iteration."""
        num_parts = self.partition.num_parts
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100003 +
                                                self.epoch)
            order = torch.randperm(num_parts, generator=gen)
        else:
            order = torch.arange(num_parts)
        groups = list(order.split(self.batch_size))
        per_rank = len(groups) // self.num_replicas
        return groups[self.rank::self.num_replicas][:per_rank]

    def __len__(self) -> int:
        return self.num_batches // self.num_replicas

    def __iter__(self) -> Iterator[Data]:
        batches = self.batches()
        self.epoch += 1  # The next iteration is the next epoch.
        return self._iterate(batches)

    def _iterate(self, batches: List[Tensor]) -> Iterator[Data]:
        n = self.partition.num_nodes
        for parts in batches:
            batch = self.partition.subgraph(parts)
            if self.data is not None:
                for key, value in self.data.items():
                    if isinstance(value, Tensor) and value.dim() > 0 \
                            and value.size(0) == n and key != 'edge_index':
                        batch[key] = value[batch.n_id]
            yield batch


__all__ = [
    'PARTITION_METHODS',
    'random_partition',
    'metis_partition',
    'partition_graph',
    'GraphPartition',
    'PartitionLoader',
]
