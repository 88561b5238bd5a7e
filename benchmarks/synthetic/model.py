r"""The toy model of the synthetic experiments, its training schedules and
the pure-diffusion trajectory of the inputs."""
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module
from torch_geometric.data import Data

from benchmarks.synthetic.paper import ROBUST_Q
from torch_geometric_diff import DiffConv
from torch_geometric_diff.metrics import diffusion_trajectory_metrics


class ToyDiffResNet(Module):
    r"""The toy model of the paper: one residual block, :math:`K` diffusion
    steps, a linear classifier.

    .. math::
        \mathbf{H} = \mathbf{X} + \mathrm{fc}_2(\mathrm{ReLU}(
        \mathrm{fc}_1(\mathbf{X}))), \qquad
        \mathbf{H} \leftarrow \mathbf{H} - \gamma \mathbf{L} \mathbf{H}
        \quad (K \text{ times})

    Args:
        num_steps (int): The number of diffusion steps :math:`K` (:obj:`0`:
            no diffusion).
        step_size (float, optional): The step size :math:`\gamma`.
            (default: :obj:`1.0`)
        hidden (int, optional): Hidden units of the residual block.
            (default: :obj:`2`)
    """
    def __init__(self, num_steps: int, step_size: float = 1.0,
                 hidden: int = 2) -> None:
        super().__init__()
        self.fc1 = Linear(2, hidden)
        self.fc2 = Linear(hidden, 2)
        self.diffusion = DiffConv(step_size=step_size, num_steps=num_steps,
                                  normalize=None, cached=True)
        self.classifier = Linear(2, 2)

    def features(self, x: Tensor, edge_index: Tensor,
                 edge_weight: Tensor) -> Tensor:
        h = x + self.fc2(F.relu(self.fc1(x)))
        return self.diffusion(h, edge_index, edge_weight)

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_weight: Tensor) -> Tensor:
        return self.classifier(self.features(x, edge_index, edge_weight))


def train_mask(y: Tensor, rate: float, seed: int) -> Tensor:
    r"""A random :obj:`rate` of the points of every class (at least one)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    mask = torch.zeros(y.numel(), dtype=torch.bool)
    for c in torch.unique(y):
        idx = (y == c).nonzero().view(-1)
        n = max(1, int(round(rate * idx.numel())))
        mask[idx[torch.randperm(idx.numel(), generator=g)[:n]]] = True
    return mask


def fit(data: Data, s: Dict[str, Any], diffusion: bool, schedule: str,
        protocol: str, seed: int, hidden: int = 2, paper_epochs: int = 20,
        converged_epochs: int = 200, adam_lr: float = 0.05,
        label_rate: float = 0.1) -> Tuple[float, Tensor]:
    r"""Trains :class:`ToyDiffResNet` (with :obj:`s['num_steps']` steps, or
    none without :obj:`diffusion`) and returns the test accuracy and the
    learned representation before the classifier.

    :obj:`schedule` is ``'paper'`` (full-batch SGD at :obj:`s['lr']`,
    weight decay 5e-4, :obj:`paper_epochs` steps) or ``'converged'`` (Adam
    at :obj:`adam_lr`, :obj:`converged_epochs` steps). :obj:`protocol` is
    ``'fit_all'`` (train and test on all points) or ``'transductive'``
    (train on :obj:`label_rate` of each class, test on the rest).
    """
    if protocol == 'fit_all':
        train = test = torch.ones(data.num_nodes, dtype=torch.bool)
    else:
        train = train_mask(data.y, label_rate, seed)
        test = ~train
        if not bool(test.any()):
            raise ValueError(f"label_rate={label_rate} labels every point: "
                             f"nothing is left to test on")
    torch.manual_seed(seed)
    model = ToyDiffResNet(s['num_steps'] if diffusion else 0, hidden=hidden)
    if schedule == 'paper':
        # The official script builds a fresh SGD optimizer every step, so
        # its momentum never acts: plain SGD.
        opt = torch.optim.SGD(model.parameters(), lr=s['lr'],
                              weight_decay=5e-4)
        epochs = paper_epochs
    else:
        opt = torch.optim.Adam(model.parameters(), lr=adam_lr)
        epochs = converged_epochs
    inputs = (data.x, data.edge_index, data.edge_weight)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(model(*inputs)[train], data.y[train]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        h = model.features(*inputs)
        pred = model.classifier(h).argmax(dim=1)
    acc = float((pred[test] == data.y[test]).float().mean())
    return acc, h


def trajectory(data: Data, num_steps: int,
               every: int) -> Tuple[Dict[str, List[float]], Tensor]:
    r"""Diffuses the inputs :obj:`num_steps` times with step size 1 and
    returns the distance-diameter ratio and Dirichlet energy every
    :obj:`every` steps, and all :math:`K + 1` states."""
    conv = DiffConv(step_size=1.0, num_steps=num_steps, normalize=None)
    with torch.no_grad():
        xs = conv(data.x, data.edge_index, data.edge_weight, return_all=True)
    m = diffusion_trajectory_metrics(conv, data.x, data.edge_index,
                                     data.edge_weight, y=data.cluster,
                                     q=(ROBUST_Q, ), every=every)
    return m, xs
