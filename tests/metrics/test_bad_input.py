r"""Bad input to the metrics: a clear error naming the argument, or a
documented NaN, never a silent number (each value against brute force)."""
import itertools
import math

import pytest
import torch

from torch_geometric_diff.metrics import (
    dirichlet_energy,
    distance_diameter_ratio,
    nearest_enemy_and_eccentricity,
    trajectory_metrics,
)


def energy_reference(x, edge_index, w):
    # 1/2 sum_e w_e ||x_dst - x_src||^2 in float64, straight from the edges.
    x = x.double().view(x.size(0), -1)
    total = 0.0
    for e, (j, i) in enumerate(edge_index.t().tolist()):
        total += float(w[e]) * float((x[i] - x[j]).pow(2).sum())
    return 0.5 * total


@pytest.mark.parametrize('bad', [[[0, -1], [1, 0]], [[-3, 0], [1, 2]]])
def test_energy_negative_index(bad):
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="'edge_index'.*negative"):
        dirichlet_energy(x, torch.tensor(bad))


@pytest.mark.parametrize('dtype', [torch.float32, torch.bool])
def test_energy_edge_index_dtype(dtype):
    x = torch.randn(3, 2)
    with pytest.raises(TypeError, match="'edge_index'"):
        dirichlet_energy(x, torch.tensor([[0, 1], [1, 0]]).to(dtype))


def test_energy_integer_signal_keeps_fractional_weights():
    x = torch.tensor([[0, 1], [3, 5], [6, 2]])
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    w = 0.5 * torch.ones(4)
    out = dirichlet_energy(x, edge_index, w)
    assert out.is_floating_point()
    ref = energy_reference(x, edge_index, w)
    assert ref == 21.5 and float(out) == pytest.approx(ref)  # Not 0.
    # Integer weights with an integer signal: a float result all the same.
    out = dirichlet_energy(x, edge_index, torch.tensor([1, 1, 2, 2]))
    assert out.is_floating_point()
    assert float(out) == pytest.approx(
        energy_reference(x, edge_index, torch.tensor([1, 1, 2, 2])))
    # A float64 weight keeps float64.
    out = dirichlet_energy(x.float(), edge_index, w.double())
    assert out.dtype == torch.float64


def test_energy_edge_weight_type():
    x = torch.randn(3, 2)
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(TypeError, match="'edge_weight'"):
        dirichlet_energy(x, ei, [1.0, 1.0])
    with pytest.raises(TypeError, match="'x'"):
        dirichlet_energy([[0.0], [1.0]], ei)


def test_energy_nan_propagates():
    # Documented: a NaN in x or in a weight of an edge gives NaN.
    ei = torch.tensor([[0, 1], [1, 0]])
    x = torch.tensor([[0.0], [float('nan')]])
    assert math.isnan(float(dirichlet_energy(x, ei)))
    w = torch.tensor([1.0, float('nan')])
    assert math.isnan(float(dirichlet_energy(torch.randn(2, 1), ei, w)))


def ratio_reference(x, y):
    same = [(i, j) for i, j in itertools.combinations(range(len(y)), 2)
            if y[i] == y[j]]
    other = [(i, j) for i, j in itertools.combinations(range(len(y)), 2)
             if y[i] != y[j]]
    dist = lambda i, j: float((x[i] - x[j]).double().norm())  # noqa: E731
    l = min(dist(i, j) for i, j in other)
    d = max(dist(i, j) for i, j in same)
    return l / d


@pytest.mark.parametrize('q', [0.0, 0.2])
@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_ratio_non_finite_point_gives_nan(q, bad):
    torch.manual_seed(0)
    x = torch.randn(8, 2)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert distance_diameter_ratio(x, y) == pytest.approx(
        ratio_reference(x, y), rel=1e-5)
    x[3, 1] = bad
    ratio, l, d = distance_diameter_ratio(x, y, q=q, return_parts=True)
    assert math.isnan(ratio) and math.isnan(l) and math.isnan(d)
    with pytest.raises(ValueError, match="'x'.*NaN"):
        nearest_enemy_and_eccentricity(x, y)


def test_trajectory_metrics_keep_the_nan():
    x = torch.randn(3, 6, 2)
    x[2, 0, 0] = float('nan')
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    m = trajectory_metrics(x, y=y, q=())
    assert not math.isnan(m['ratio'][1]) and math.isnan(m['ratio'][2])


def test_ratio_bad_labels():
    x = torch.randn(4, 2)
    with pytest.raises(TypeError, match="'y'"):
        distance_diameter_ratio(x, torch.tensor([0.0, 0.5, 1.0, 1.0]))
    with pytest.raises(TypeError, match="'x'"):
        distance_diameter_ratio(x.to_sparse(), torch.tensor([0, 0, 1, 1]))
