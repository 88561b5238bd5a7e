import pytest
import torch

from torch_geometric_diff.metrics import (
    diffusion_trajectory_metrics,
    dirichlet_energy,
    distance_diameter_ratio,
    trajectory_metrics,
)


def dense_diffusion(x, W, step_size, num_steps):
    L = torch.diag(W.sum(1)) - W
    xs = [x]
    for _ in range(num_steps):
        xs.append(xs[-1] - step_size * L @ xs[-1])
    return torch.stack(xs)


def two_blobs():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(20, 2) * 0.5, torch.randn(20, 2) * 0.5 + 3])
    y = torch.tensor([0] * 20 + [1] * 20)
    # Each blob is a complete graph with row-normalised weights.
    W = torch.zeros(40, 40)
    W[:20, :20] = 1 / 20
    W[20:, 20:] = 1 / 20
    return x, y, W


def test_trajectory_metrics_values():
    x, y, W = two_blobs()
    xs = dense_diffusion(x, W, 0.5, 6)
    edge_index = W.nonzero().t().flip(0)
    w = W[edge_index[1], edge_index[0]]
    m = trajectory_metrics(xs, edge_index, w, y=y, q=(0.1, ), every=4)
    assert m['step'] == [0, 4, 6]
    for i, t in enumerate(m['step']):
        assert m['energy'][i] == pytest.approx(
            float(dirichlet_energy(xs[t], edge_index, w)), rel=1e-6)
        assert m['ratio'][i] == pytest.approx(
            distance_diameter_ratio(xs[t], y))
        assert m['ratio_q0.1'][i] == pytest.approx(
            distance_diameter_ratio(xs[t], y, q=0.1))
    # Averaging inside each blob: the diameter halves every step, the ratio
    # grows and the energy falls.
    assert m['max_diameter'][1] == pytest.approx(m['max_diameter'][0] / 16,
                                                 rel=1e-4)
    assert m['ratio'][0] < m['ratio'][1] < m['ratio'][2]
    assert m['energy'][0] > m['energy'][1] > m['energy'][2]


class ToyDiffusion(torch.nn.Module):
    r"""Stands in for DiffConv's return_all interface."""
    def __init__(self, W):
        super().__init__()
        self.W = W
        self.seen_training = None

    def forward(self, x, edge_index, edge_weight=None, return_all=False):
        self.seen_training = self.training
        xs = dense_diffusion(x, self.W, 0.5, 3)
        return xs if return_all else xs[-1]


def test_diffusion_trajectory_metrics_uses_return_all():
    x, y, W = two_blobs()
    conv = ToyDiffusion(W)
    edge_index = W.nonzero().t().flip(0)
    m = diffusion_trajectory_metrics(conv, x, edge_index, y=y)
    assert m['step'] == [0, 1, 2, 3]
    assert conv.seen_training is False and conv.training is True
    assert set(m) == {'step', 'energy', 'rayleigh', 'ratio', 'min_distance',
                      'max_diameter', 'ratio_q0.05'}


def test_bad_input():
    with pytest.raises(ValueError, match='every'):
        trajectory_metrics(torch.randn(3, 4, 2), every=0)
