r"""The toy experiment of the Diff-ResNet paper in miniature: diffusion on a
data-driven graph pulls the points of each of the two moons together, so
the distance-diameter ratio grows.

    python examples/toy_diffusion.py --num_steps 60 --plot moons.png

The graph is the Gaussian k-NN graph of the points (k = 24, sigma = 0.5,
self-loops, row-normalised, as in the paper's code), and DiffConv takes
K explicit Euler steps x <- (I - gamma L) x with gamma = 1 on it.
"""
import argparse

import numpy as np
import torch

from torch_geometric.data import Data

from torch_geometric_diff import DiffConv
from torch_geometric_diff.metrics import distance_diameter_ratio
from torch_geometric_diff.transforms import GaussianKNNGraph

parser = argparse.ArgumentParser()
parser.add_argument('--num_per_class', type=int, default=500)
parser.add_argument('--noise', type=float, default=0.05)
parser.add_argument('--k', type=int, default=24)
parser.add_argument('--sigma', type=float, default=0.5)
parser.add_argument('--step_size', type=float, default=1.0)
parser.add_argument('--num_steps', type=int, default=60)
parser.add_argument('--log_every', type=int, default=10)
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--plot', type=str, default=None,
                    help='save a before/after scatter plot to this file')
args = parser.parse_args()


def two_moons(num_per_class, noise, seed):
    # Class 0 on (cos t, sin t), class 1 on (1 - cos t, 0.5 - sin t).
    rng = np.random.default_rng(seed)
    t = np.linspace(0, np.pi, num_per_class)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    points = np.concatenate([outer, inner])
    points += noise * rng.standard_normal(points.shape)
    y = np.repeat([0, 1], num_per_class)
    return Data(x=torch.from_numpy(points).float(), y=torch.from_numpy(y))


data = two_moons(args.num_per_class, args.noise, args.seed)
# W_ij = exp(-|x_i - x_j|^2 / sigma^2) on the k nearest neighbours, then
# D^{-1} W: DiffConv takes these weights as they are (`normalize=None`).
data = GaussianKNNGraph(k=args.k, sigma=args.sigma, normalize='row',
                        symmetrize=None, loop=True)(data)

conv = DiffConv(step_size=args.step_size, num_steps=args.num_steps,
                normalize=None)
with torch.no_grad():
    # All K + 1 states x^(0), ..., x^(K):
    xs = conv(data.x, data.edge_index, data.edge_weight, return_all=True)

for step in range(0, args.num_steps + 1):
    if step % args.log_every == 0 or step == args.num_steps:
        ratio = distance_diameter_ratio(xs[step], data.y)
        print(f'Step: {step:03d}, Ratio: {ratio:.4f}')

before = distance_diameter_ratio(xs[0], data.y)
after = distance_diameter_ratio(xs[-1], data.y)
print(f'Distance-diameter ratio: before {before:.4f}, after {after:.4f}')

if args.plot is not None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, x, title in [(axes[0], xs[0], f'before (ratio {before:.3f})'),
                         (axes[1], xs[-1], f'after {args.num_steps} steps '
                          f'(ratio {after:.3f})')]:
        ax.scatter(x[:, 0], x[:, 1], c=data.y, cmap='coolwarm', s=4)
        ax.set_title(title)
        ax.set_aspect('equal')
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f'Saved {args.plot}')
