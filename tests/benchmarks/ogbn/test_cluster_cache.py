import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from benchmarks.ogbn.distributed import Distributed
from benchmarks.ogbn.models import build_model
from benchmarks.ogbn.train import ClusterBatches, ClusterSettings
from torch_geometric_diff import DiffConv
from torch_geometric_diff.loader import GraphPartition


def _data(n=120, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ei = to_undirected(torch.randint(0, n, (2, 4 * n), generator=gen),
                       num_nodes=n)
    return Data(x=torch.randn(n, 6, generator=gen), edge_index=ei,
                y=torch.randint(0, 3, (n, 1), generator=gen), num_nodes=n)


def _trainer(data, parts_per_batch, model_name='diffresnet'):
    part = GraphPartition(data.edge_index, data.num_nodes, 4,
                          method='random')
    settings = ClusterSettings(part, parts_per_batch, seed=0)
    return ClusterBatches(model_name, data, torch.arange(60), settings,
                          torch.device('cpu'), Distributed())


def test_fixed_parts_build_each_operator_once(monkeypatch):
    calls = []
    build = DiffConv.build_operator

    def counting(self, *args, **kwargs):
        calls.append(1)
        return build(self, *args, **kwargs)

    monkeypatch.setattr(DiffConv, 'build_operator', counting)
    data = _data()
    torch.manual_seed(0)
    model = build_model('diffresnet', 6, 3, 8, 1, 0.1, num_steps=3)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    trainer = _trainer(data, parts_per_batch=1)
    for epoch in range(3):
        trainer.train_epoch(model, opt, epoch)
    assert len(calls) == 4  # One per part, kept across the 3 epochs.

    # The kept operator gives what the subgraph's edge_index gives.
    model.eval()
    batch = next(iter(trainer.loader))
    ref = model(batch.x, batch.edge_index)
    torch.testing.assert_close(model(batch.x, trainer.graph(model, batch)),
                               ref)


def test_regrouped_parts_are_not_kept():
    data = _data()
    trainer = _trainer(data, parts_per_batch=2, model_name='gcn')
    assert trainer.graphs is None
