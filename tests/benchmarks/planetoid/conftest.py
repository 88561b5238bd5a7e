import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import erdos_renyi_graph

from benchmarks.planetoid.datasets import DATASETS, preprocess


@pytest.fixture
def toy_graph():
    r"""A random 3-class graph of 165 nodes with binary features,
    preprocessed like Cora under the random protocol (one split)."""
    def make(num_classes=3, per_class=55, features=24, seed=0):
        gen = torch.Generator().manual_seed(seed)
        n = num_classes * per_class
        x = (torch.rand(n, features, generator=gen) < 0.3).float()
        x[:, 0] = 1.0  # No empty rows.
        y = torch.arange(n) % num_classes
        torch.manual_seed(seed)
        edge_index = erdos_renyi_graph(n, 0.05)
        data = Data(x=x, edge_index=edge_index, y=y, num_nodes=n)
        return preprocess(data, DATASETS['cora'], 'random', 1, 1, 42)

    return make()
