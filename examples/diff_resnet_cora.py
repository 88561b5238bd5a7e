r"""Diff-ResNet on Cora (public Planetoid split), the model of the paper
"Diffusion Mechanism in Residual Neural Network: Theory and Applications"
<https://arxiv.org/abs/2105.03155>.

    python examples/diff_resnet_cora.py --epochs 200

Planetoid downloads the raw files into --root/Cora/raw/ when they are
missing (this needs network access). Offline, point --root at a writable
folder that already holds Cora/raw/ (Planetoid writes Cora/processed/ next
to it).
"""
import argparse
import os.path as osp

import torch
import torch.nn.functional as F

import torch_geometric.transforms as T
from torch_geometric.datasets import Planetoid

from torch_geometric_diff import DiffResNetGNN

parser = argparse.ArgumentParser()
parser.add_argument('--dataset', type=str, default='Cora',
                    choices=['Cora', 'CiteSeer', 'PubMed'])
parser.add_argument('--root', type=str,
                    default=osp.join(osp.dirname(osp.realpath(__file__)),
                                     '..', 'data', 'Planetoid'),
                    help='writable Planetoid root (processed/ is written '
                    'there)')
parser.add_argument('--step_size', type=float, default=0.25)
parser.add_argument('--num_steps', type=int, default=20)
parser.add_argument('--dropout', type=float, default=0.25)
parser.add_argument('--lr', type=float, default=0.01)
parser.add_argument('--weight_decay', type=float, default=5e-4)
parser.add_argument('--epochs', type=int, default=200)
parser.add_argument('--seed', type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.seed)
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

dataset = Planetoid(args.root, args.dataset, transform=T.NormalizeFeatures())
data = dataset[0].to(device)
# Bag-of-words features are mostly zeros: keep them as a sparse CSR matrix.
x = data.x.to_sparse_csr()

# `cached=True` builds the diffusion operator once: the graph never changes.
model = DiffResNetGNN(dataset.num_features, dataset.num_classes,
                      step_size=args.step_size, num_steps=args.num_steps,
                      dropout=args.dropout, cached=True).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr,
                             weight_decay=args.weight_decay)


def train():
    model.train()
    optimizer.zero_grad()
    out = model(x, data.edge_index)
    loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def test():
    model.eval()
    pred = model(x, data.edge_index).argmax(dim=-1)

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
