import itertools
import math

import pytest
import torch

from torch_geometric_diff.metrics import (
    distance_diameter_ratio,
    nearest_enemy_and_eccentricity,
)


def test_hand_made_points():
    # Class 0: segment of length 2 on the x-axis; class 1: a point at (5, 0)
    # and a point at (5, 3).  l = 3 (from (2, 0) to (5, 0)), d = 3.
    x = torch.tensor([[0., 0.], [1., 0.], [2., 0.], [5., 0.], [5., 3.]])
    y = torch.tensor([0, 0, 0, 1, 1])
    ratio, l, d = distance_diameter_ratio(x, y, return_parts=True)
    assert (l, d) == (3.0, 3.0) and ratio == 1.0

    # Move (5, 3) to (5, 1): diameters 2 and 1, l still 3.
    x[4] = torch.tensor([5., 1.])
    assert distance_diameter_ratio(x, y) == pytest.approx(1.5)


def test_robust_variant_ignores_one_outlier():
    # Two tight clusters far apart plus one class-0 outlier next to class 1.
    torch.manual_seed(0)
    a = torch.randn(100, 2) * 0.1
    b = torch.randn(100, 2) * 0.1 + torch.tensor([10., 0.])
    outlier = torch.tensor([[9.0, 0.0]])
    x = torch.cat([a, outlier, b])
    y = torch.tensor([0] * 101 + [1] * 100)
    exact = distance_diameter_ratio(x, y)
    robust = distance_diameter_ratio(x, y, q=0.05)
    assert exact < 0.15
    assert robust > 10.0


def brute_force(x, y):
    l, d = math.inf, 0.0
    for i, j in itertools.combinations(range(x.size(0)), 2):
        dist = float((x[i] - x[j]).norm())
        if y[i] == y[j]:
            d = max(d, dist)
        else:
            l = min(l, dist)
    return l / d, l, d


@pytest.mark.parametrize('chunk_size', [None, 1, 13])
def test_matches_brute_force(chunk_size):
    torch.manual_seed(1)
    x = torch.randn(60, 3)
    y = torch.randint(0, 4, (60, ))
    ratio, l, d = distance_diameter_ratio(x, y, chunk_size=chunk_size,
                                          return_parts=True)
    ref = brute_force(x, y)
    assert ratio == pytest.approx(ref[0], rel=1e-5)
    assert l == pytest.approx(ref[1], rel=1e-5)
    assert d == pytest.approx(ref[2], rel=1e-5)


def test_per_point_quantities():
    x = torch.tensor([[0.], [1.], [3.], [7.]])
    y = torch.tensor([0, 0, 1, 2])
    enemy, ecc = nearest_enemy_and_eccentricity(x, y)
    assert torch.equal(enemy, torch.tensor([3., 2., 2., 4.]))
    assert torch.equal(ecc, torch.tensor([1., 1., 0., 0.]))


def test_bad_input():
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match='two groups'):
        distance_diameter_ratio(x, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="'q'"):
        distance_diameter_ratio(x, torch.arange(5), q=0.5)
    with pytest.raises(ValueError, match="'y'"):
        distance_diameter_ratio(x, torch.arange(4))


def brute_force_robust(x, y, q):
    inter, intra = [], {}
    for i, j in itertools.combinations(range(x.size(0)), 2):
        dist = float((x[i] - x[j]).norm())
        if y[i] == y[j]:
            intra.setdefault(int(y[i]), []).append(dist)
        else:
            inter.append(dist)
    inter.sort()
    l = inter[math.ceil(q * len(inter)) - 1]
    d = max(
        sorted(v, reverse=True)[math.ceil(q * len(v)) - 1]
        for v in intra.values())
    return l / d, l, d


@pytest.mark.parametrize('q', [0.01, 0.1, 0.3])
@pytest.mark.parametrize('chunk_size', [None, 7])
def test_robust_matches_brute_force(q, chunk_size):
    torch.manual_seed(2)
    x = torch.randn(45, 2)
    y = torch.randint(0, 3, (45, ))
    out = distance_diameter_ratio(x, y, q=q, chunk_size=chunk_size,
                                  return_parts=True)
    ref = brute_force_robust(x, y, q)
    for a, b in zip(out, ref):
        assert a == pytest.approx(b, rel=1e-5)
