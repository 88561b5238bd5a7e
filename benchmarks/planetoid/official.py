r"""The model of the official Diff-ResNet code, written as that code writes
it, as a reference for :class:`torch_geometric_diff.DiffResNetGNN` on the
same splits and seeds (``--model official`` in ``benchmarks/planetoid.py``,
the ``official`` row of ``benchmarks/speed.py``)."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


class OfficialDiffusionNet(torch.nn.Module):
    r"""The official model, literally: dense features, ``F.dropout`` per step,
    ``x - step * torch.matmul(diagonal - adj, x)`` with COO tensors."""
    def __init__(self, n_features: int, num_classes: int, step: float,
                 layer_num: int, dropout: float):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, n_features)
        self.classifier = torch.nn.Linear(n_features, num_classes)
        self.step, self.layer_num, self.dropout = step, layer_num, dropout

    def forward(self, x: Tensor, adj: Tensor, diagonal: Tensor) -> Tensor:
        x = x + F.relu(self.linear(x))
        for _ in range(self.layer_num):
            x = F.dropout(x, self.dropout, training=self.training)
            x = x - self.step * torch.matmul(diagonal - adj, x)
        return self.classifier(x)


def official_operators(edge_index: Tensor, n: int) -> Tuple[Tensor, Tensor]:
    r"""``adj = D^-1/2 (A + I) D^-1/2`` and ``diagonal = diag(adj 1)`` as COO
    tensors, as the official ``load_data`` builds them."""
    device = edge_index.device
    loops = torch.arange(n, device=device)
    ei = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    A = torch.sparse_coo_tensor(ei, torch.ones(ei.size(1), device=device),
                                (n, n)).coalesce()
    deg = torch.sparse.sum(A, 1).to_dense()
    dis = deg.pow(-0.5)
    row, col = A.indices()
    adj = torch.sparse_coo_tensor(A.indices(),
                                  dis[row] * A.values() * dis[col],
                                  (n, n)).coalesce()
    d = torch.sparse.sum(adj, 1).to_dense()
    diagonal = torch.sparse_coo_tensor(torch.stack([loops, loops]), d,
                                       (n, n)).coalesce()
    return adj, diagonal
