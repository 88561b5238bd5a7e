import sys
import warnings

import pytest
import torch
from torch_geometric.utils import to_undirected

from torch_geometric_diff.loader import (
    GraphPartition,
    PartitionLoader,
    metis_partition,
    partition_graph,
    random_partition,
)


def planted_graph(blocks=4, size=30, p_in=0.3, p_out=0.01, seed=0):
    r"""A stochastic block model: dense blocks, sparse between them."""
    gen = torch.Generator().manual_seed(seed)
    n = blocks * size
    block = torch.arange(n) // size
    prob = torch.where(block[:, None] == block[None, :], p_in, p_out)
    adj = torch.rand(n, n, generator=gen) < prob
    adj = torch.triu(adj, diagonal=1)
    edge_index = to_undirected(adj.nonzero().t(), num_nodes=n)
    return edge_index, n, block


def cut_edges(edge_index, part):
    return int((part[edge_index[0]] != part[edge_index[1]]).sum())


def test_random_partition():
    part = random_partition(103, 10, seed=1)
    assert part.shape == (103, ) and part.dtype == torch.long
    sizes = torch.bincount(part, minlength=10)
    assert int(sizes.sum()) == 103  # Every node in exactly one part.
    assert int(sizes.max() - sizes.min()) <= 1
    assert torch.equal(part, random_partition(103, 10, seed=1))
    assert not torch.equal(part, random_partition(103, 10, seed=2))
    with pytest.raises(ValueError, match='positive integer'):
        random_partition(10, 0)
    with pytest.raises(ValueError, match='exceeds'):
        random_partition(10, 11)


def test_metis_partition():
    pytest.importorskip('pymetis')
    edge_index, n, block = planted_graph()
    part = metis_partition(edge_index, n, 4, seed=0)
    assert part.shape == (n, )
    assert int(part.min()) >= 0 and int(part.max()) < 4
    sizes = torch.bincount(part, minlength=4)
    assert int(sizes.sum()) == n and int(sizes.min()) > 0
    # METIS finds the planted blocks: far fewer cut edges than random.
    rand = random_partition(n, 4, seed=0)
    assert cut_edges(edge_index, part) < 0.3 * cut_edges(edge_index, rand)
    assert cut_edges(edge_index, part) <= cut_edges(edge_index, block) * 1.5
    # Directions and self-loops do not matter.
    half = edge_index[:, edge_index[0] < edge_index[1]]
    loops = torch.arange(n).repeat(2, 1)
    assert torch.equal(metis_partition(torch.cat([half, loops], 1), n, 4),
                       part)
    assert torch.equal(metis_partition(edge_index, n, 1),
                       torch.zeros(n, dtype=torch.long))


def test_partition_graph_fallback(monkeypatch):
    edge_index, n, _ = planted_graph()
    monkeypatch.setitem(sys.modules, 'pymetis', None)  # Import fails.
    with pytest.warns(RuntimeWarning, match='pymetis'):
        part = partition_graph(edge_index, n, 4, method='metis', seed=3)
    assert torch.equal(part, random_partition(n, 4, seed=3))
    with pytest.raises(ValueError, match='Unknown partition method'):
        partition_graph(edge_index, n, 4, method='spectral')


@pytest.mark.parametrize('method', ['metis', 'random'])
def test_subgraph_is_induced(method):
    if method == 'metis':
        pytest.importorskip('pymetis')
    edge_index, n, _ = planted_graph(seed=1)
    gp = GraphPartition(edge_index, n, 6, method=method, seed=0)
    assert int(gp.part_sizes().sum()) == n
    assert torch.equal(torch.sort(gp.perm).values, torch.arange(n))
    edges = {tuple(e) for e in edge_index.t().tolist()}
    for parts in ([0], [1, 4], [5, 2, 3], list(range(6))):
        batch = gp.subgraph(torch.tensor(parts))
        nodes = set(batch.n_id.tolist())
        assert nodes == set(
            torch.nonzero(torch.isin(gp.part, torch.tensor(parts))).view(
                -1).tolist())
        assert batch.num_nodes == len(nodes) == batch.n_id.numel()
        got = sorted(map(tuple, batch.n_id[batch.edge_index].t().tolist()))
        ref = sorted(e for e in edges if e[0] in nodes and e[1] in nodes)
        assert got == ref  # Brute-force induced subgraph.
    # Internal scratch state is reset after every call.
    assert not bool(gp._mask.any()) and bool((gp._local == -1).all())


def test_precomputed_part():
    edge_index, n, block = planted_graph()
    gp = GraphPartition(edge_index, n, 4, part=block)
    assert torch.equal(gp.part, block)
    with pytest.raises(ValueError, match='one part id'):
        GraphPartition(edge_index, n, 3, part=block)


def test_loader_epoch_covers_all_nodes():
    edge_index, n, _ = planted_graph()
    gp = GraphPartition(edge_index, n, 10, method='random')
    x = torch.randn(n, 5)
    y = torch.arange(n)
    from torch_geometric.data import Data
    loader = PartitionLoader(gp, batch_size=3, data=Data(x=x, y=y), seed=0)
    assert len(loader) == 4
    seen = []
    for batch in loader:
        assert torch.equal(batch.x, x[batch.n_id])
        assert torch.equal(batch.y, batch.n_id)
        seen.append(batch.n_id)
    seen = torch.cat(seen)
    assert torch.equal(torch.sort(seen).values, torch.arange(n))
    loader.set_epoch(0)
    first = [b.tolist() for b in loader.batches()]
    assert first == [b.tolist() for b in loader.batches()]
    loader.set_epoch(1)
    assert first != [b.tolist() for b in loader.batches()]
    ordered = PartitionLoader(gp, batch_size=4, shuffle=False)
    assert [b.tolist() for b in ordered.batches()] == [[0, 1, 2, 3],
                                                      [4, 5, 6, 7], [8, 9]]


def test_loader_replicas():
    edge_index, n, _ = planted_graph()
    gp = GraphPartition(edge_index, n, 11, method='random')
    shares = []
    for rank in range(3):
        loader = PartitionLoader(gp, batch_size=2, seed=5, num_replicas=3,
                                 rank=rank)
        loader.set_epoch(2)
        shares.append(loader.batches())
        assert len(loader) == 2 == len(shares[-1])  # 6 batches / 3 ranks.
    parts = torch.cat([torch.cat(s) for s in shares])
    assert parts.unique().numel() == parts.numel()  # Disjoint shares.
    with pytest.raises(ValueError, match='fewer than'):
        PartitionLoader(gp, batch_size=11, num_replicas=2)
    with pytest.raises(ValueError, match='rank'):
        PartitionLoader(gp, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match='batch_size'):
        PartitionLoader(gp, batch_size=0)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        PartitionLoader(gp, batch_size=1, num_replicas=11, rank=10)


def test_loader_reshuffles_every_epoch_by_itself():
    edge_index, n, _ = planted_graph()
    gp = GraphPartition(edge_index, n, 10, method='random')

    def epoch(loader):
        return [batch.n_id.tolist() for batch in loader]

    loader = PartitionLoader(gp, batch_size=3, seed=0)
    epochs = [epoch(loader) for _ in range(3)]
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2] \
        and epochs[0] != epochs[2]
    # The same seed gives the same sequence of epochs.
    again = PartitionLoader(gp, batch_size=3, seed=0)
    assert [epoch(again) for _ in range(3)] == epochs
    assert epoch(PartitionLoader(gp, batch_size=3, seed=1)) != epochs[0]
    # set_epoch() pins the next epoch, as DistributedSampler does, and
    # batches() lists the parts that the next iteration yields.
    loader.set_epoch(1)
    planned = loader.batches()
    assert epoch(loader) == epochs[1]
    assert [gp.subgraph(p).n_id.tolist() for p in planned] == epochs[1]
    loader.set_epoch(1)
    assert epoch(loader) == epochs[1]
    assert epoch(loader) == epochs[2]  # And counts on from there.
    ordered = PartitionLoader(gp, batch_size=3, shuffle=False)
    assert epoch(ordered) == epoch(ordered)
