r"""A GCN with a DiffConv layer on its hidden features, on Cora (public
Planetoid split):

    GCNConv -> ReLU -> dropout -> DiffConv (K steps, dropout) -> Linear

    python examples/gcn_diffconv.py --epochs 200

DiffConv has no weights: it smooths the hidden features along the graph
with K explicit Euler steps of the heat equation, x <- (I - gamma L) x.
Planetoid downloads the raw files into --root when they are missing (this
needs network access).
"""
import argparse
import os.path as osp

import torch
import torch.nn.functional as F

import torch_geometric.transforms as T
from torch_geometric.datasets import Planetoid
from torch_geometric.nn import GCNConv

from torch_geometric_diff import DiffConv

parser = argparse.ArgumentParser()
parser.add_argument('--dataset', type=str, default='Cora',
                    choices=['Cora', 'CiteSeer', 'PubMed'])
parser.add_argument('--root', type=str,
                    default=osp.join(osp.dirname(osp.realpath(__file__)),
                                     '..', 'data', 'Planetoid'),
                    help='writable Planetoid root (processed/ is written '
                    'there)')
parser.add_argument('--hidden_channels', type=int, default=64)
parser.add_argument('--step_size', type=float, default=0.25)
parser.add_argument('--num_steps', type=int, default=10)
parser.add_argument('--dropout', type=float, default=0.5)
parser.add_argument('--diff_dropout', type=float, default=0.1,
                    help='dropout before every diffusion step')
parser.add_argument('--lr', type=float, default=0.01)
parser.add_argument('--epochs', type=int, default=200)
parser.add_argument('--seed', type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.seed)
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

dataset = Planetoid(args.root, args.dataset, transform=T.NormalizeFeatures())
data = dataset[0].to(device)


class GCNDiff(torch.nn.Module):
    def __init__(self, in_channels, hidden_channels, out_channels):
        super().__init__()
        self.conv = GCNConv(in_channels, hidden_channels, cached=True)
        # Diffuse the hidden features (with dropout), not the class scores.
        self.diff = DiffConv(step_size=args.step_size,
                             num_steps=args.num_steps,
                             dropout=args.diff_dropout, cached=True)
        self.lin = torch.nn.Linear(hidden_channels, out_channels)

    def forward(self, x, edge_index):
        x = F.dropout(x, p=args.dropout, training=self.training)
        x = self.conv(x, edge_index).relu()
        x = F.dropout(x, p=args.dropout, training=self.training)
        x = self.diff(x, edge_index)
        return self.lin(x)


model = GCNDiff(dataset.num_features, args.hidden_channels,
                dataset.num_classes).to(device)
optimizer = torch.optim.Adam([
    dict(params=model.conv.parameters(), weight_decay=5e-4),
    dict(params=model.lin.parameters(), weight_decay=0)
], lr=args.lr)  # Weight decay on the first layer only, as in PyG's GCN.


def train():
    model.train()
    optimizer.zero_grad()
    out = model(data.x, data.edge_index)
    loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def test():
    model.eval()
    pred = model(data.x, data.edge_index).argmax(dim=-1)

    accs = []
    for mask in [data.train_mask, data.val_mask, data.test_mask]:
        accs.append(int((pred[mask] == data.y[mask]).sum()) / int(mask.sum()))
    return accs


best_val_acc = test_acc = 0
for epoch in range(1, args.epochs + 1):
    loss = train()
    train_acc, val_acc, tmp_test_acc = test()
    if val_acc > best_val_acc:
        best_val_acc = val_acc
        test_acc = tmp_test_acc
    print(f'Epoch: {epoch:03d}, Loss: {loss:.4f}, Train: {train_acc:.4f}, '
          f'Val: {val_acc:.4f}, Test: {tmp_test_acc:.4f}')
print(f'Final Test: {test_acc:.4f} (at best Val: {best_val_acc:.4f})')
