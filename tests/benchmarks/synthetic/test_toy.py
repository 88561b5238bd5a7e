import math

import pytest
import torch

from benchmarks.synthetic.toy import (
    TOY_DATASETS,
    load_toy,
    two_circles,
    two_moons,
    two_spirals,
    xor,
)


@pytest.mark.parametrize('name,size', [('two_moons', 1000),
                                       ('two_circles', 1000),
                                       ('two_spirals', 1000), ('xor', 400)])
def test_shapes_and_determinism(name, size):
    data = load_toy(name, seed=3)
    assert data.x.shape == (size, 2) and data.x.dtype == torch.float32
    assert data.pos is data.x
    assert data.y.shape == (size, ) and data.y.dtype == torch.long
    assert torch.equal(torch.bincount(data.y), torch.tensor([size // 2] * 2))
    assert torch.equal(load_toy(name, seed=3).x, data.x)
    assert not torch.equal(load_toy(name, seed=4).x, data.x)
    assert name in TOY_DATASETS


def test_moons_geometry():
    clean = two_moons(num_per_class=50, noise=0.0)
    outer, inner = clean.x[:50], clean.x[50:]
    assert torch.allclose(outer.norm(dim=1), torch.ones(50), atol=1e-6)
    assert torch.allclose((inner - torch.tensor([1.0, 0.5])).norm(dim=1),
                          torch.ones(50), atol=1e-6)
    noisy = two_moons(num_per_class=2000, noise=0.05, seed=0)
    resid = noisy.x - two_moons(num_per_class=2000, noise=0.0).x
    assert abs(float(resid.std()) - 0.05) < 0.003


def test_circles_geometry():
    clean = two_circles(num_per_class=40, noise=0.0)
    r = clean.x.norm(dim=1)
    assert torch.allclose(r[:40], torch.full((40, ), 2.0), atol=1e-6)
    assert torch.allclose(r[40:], torch.ones(40), atol=1e-6)
    assert torch.unique(clean.x, dim=0).size(0) == 80  # No repeated point.


def test_spirals_geometry():
    clean = two_spirals(num_per_class=30, noise=0.0)
    a, b = clean.x[:30], clean.x[30:]
    assert torch.allclose(a, -b)
    theta = torch.linspace(0, 2 * math.pi, 30)
    assert torch.allclose(a.norm(dim=1), 1 + theta, atol=1e-5)


def test_xor_geometry():
    data = xor(num_per_cluster=200, seed=1)
    centers = torch.tensor([[0., 0.], [2., 2.], [2., 0.], [0., 2.]])
    assert torch.equal(data.y, (data.cluster >= 2).long())
    dist = (data.x - centers[data.cluster]).norm(dim=1)
    assert float(dist.max()) <= 0.75 + 1e-6
    # Uniform on a disc: half of the points lie within radius 0.75 / sqrt(2).
    assert abs(float((dist < 0.75 / math.sqrt(2)).float().mean()) - 0.5) < 0.05


def test_bad_input():
    with pytest.raises(ValueError, match='Unknown'):
        load_toy('swiss_roll')
    with pytest.raises(ValueError, match='positive'):
        two_moons(num_per_class=0)
    with pytest.raises(ValueError, match='noise'):
        two_spirals(noise=-1.0)
