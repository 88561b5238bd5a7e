r"""Diff-ResNet on ogbn-arxiv, full-batch, with OGB's loader, official split
and Evaluator:

    python examples/ogbn_arxiv.py --root ../data/OGB --epochs 500

OGB downloads ogbn-arxiv into --root/ogbn_arxiv/ when it is missing (this
needs network access). The citation graph is made undirected.
"""
import argparse
import glob
import os.path as osp
import sys

import torch
import torch.nn.functional as F
from ogb.nodeproppred import Evaluator, PygNodePropPredDataset

from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage
from torch_geometric.utils import to_undirected

from torch_geometric_diff import DiffResNetGNN

parser = argparse.ArgumentParser()
parser.add_argument('--root', type=str,
                    default=osp.join(osp.dirname(osp.realpath(__file__)),
                                     '..', 'data', 'OGB'),
                    help="OGB's root: the data lives in <root>/ogbn_arxiv/")
parser.add_argument('--hidden_channels', type=int, default=256)
parser.add_argument('--step_size', type=float, default=0.25)
parser.add_argument('--num_steps', type=int, default=10)
parser.add_argument('--dropout', type=float, default=0.25)
parser.add_argument('--lr', type=float, default=0.01)
parser.add_argument('--epochs', type=int, default=500)
parser.add_argument('--log_every', type=int, default=10)
parser.add_argument('--seed', type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.seed)
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

# ogb 1.3.6 asks on stdin (`input()`) whether to download again when the
# dataset folder lacks its RELEASE_v*.txt file: stop with a message instead.
folder = osp.join(args.root, 'ogbn_arxiv')
if osp.isdir(folder) and not glob.glob(osp.join(folder, 'RELEASE_v*.txt')):
    sys.exit(f"'{folder}' has no RELEASE_v*.txt file: remove the folder to "
             f"download ogbn-arxiv again")

# ogb 1.3.6 calls `torch.load` with PyTorch's default `weights_only=True`
# (PyTorch >= 2.6), which rejects PyG's storage classes unless allowed.
if hasattr(torch.serialization, 'add_safe_globals'):
    torch.serialization.add_safe_globals(
        [DataEdgeAttr, DataTensorAttr, GlobalStorage])

dataset = PygNodePropPredDataset('ogbn-arxiv', root=args.root)
split_idx = dataset.get_idx_split()
data = dataset[0]
data.edge_index = to_undirected(data.edge_index, num_nodes=data.num_nodes)
data = data.to(device)
train_idx = split_idx['train'].to(device)
evaluator = Evaluator('ogbn-arxiv')

# `cached=True`: one fixed graph, so the diffusion operator is built once.
model = DiffResNetGNN(data.num_features, dataset.num_classes,
                      hidden_channels=args.hidden_channels,
                      step_size=args.step_size, num_steps=args.num_steps,
                      dropout=args.dropout, cached=True).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)


def train():
    model.train()
    optimizer.zero_grad()
    out = model(data.x, data.edge_index)[train_idx]
    loss = F.cross_entropy(out, data.y.squeeze(1)[train_idx])
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def test():
    model.eval()
    y_pred = model(data.x, data.edge_index).argmax(dim=-1, keepdim=True)
    return [
        evaluator.eval({
            'y_true': data.y[split_idx[split]],
            'y_pred': y_pred[split_idx[split]],
        })['acc'] for split in ['train', 'valid', 'test']
    ]


best_val_acc = test_acc = 0
for epoch in range(1, args.epochs + 1):
    loss = train()
    train_acc, val_acc, tmp_test_acc = test()
    if val_acc > best_val_acc:
        best_val_acc = val_acc
        test_acc = tmp_test_acc
    if epoch % args.log_every == 0 or epoch == args.epochs:
        print(f'Epoch: {epoch:03d}, Loss: {loss:.4f}, Train: {train_acc:.4f}, '
              f'Val: {val_acc:.4f}, Test: {tmp_test_acc:.4f}')
print(f'Final Test: {test_acc:.4f} (at best Val: {best_val_acc:.4f})')
