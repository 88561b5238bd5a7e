r"""Every trajectory metric against a direct computation per step, from the
formulas in the docstrings (dense sums and brute force over pairs)."""
import itertools
import math

import pytest
import torch

from torch_geometric_diff import DiffConv
from torch_geometric_diff.metrics import (
    diffusion_trajectory_metrics,
    trajectory_metrics,
)


def energy(x, ei, w, normalization=None):
    r""":math:`\frac12 \sum_{(j, i)} w_{ji} \|x_i - x_j\|^2`, edge by edge;
    with 'sym', :math:`x_i` is first divided by :math:`\sqrt{d_i}`,
    :math:`d_i` the weighted in-degree (isolated: 0)."""
    if normalization == 'sym':
        deg = [sum(float(w[e]) for e in range(ei.size(1)) if ei[1, e] == i)
               for i in range(x.size(0))]
        x = torch.stack([x[i] / math.sqrt(d) if d > 0 else 0 * x[i]
                         for i, d in enumerate(deg)])
    total = 0.0
    for e in range(ei.size(1)):
        j, i = int(ei[0, e]), int(ei[1, e])
        total += float(w[e]) * float(((x[i] - x[j])**2).sum())
    return 0.5 * total


def pairs(x, y):
    r"""Distances of all unordered pairs, split into inter-group and, per
    group, intra-group lists."""
    inter, intra = [], {int(c): [] for c in y.unique()}
    for i, j in itertools.combinations(range(x.size(0)), 2):
        d = float((x[i] - x[j]).norm())
        if y[i] == y[j]:
            intra[int(y[i])].append(d)
        else:
            inter.append(d)
    return inter, intra


def ratio_parts(x, y, q=0.0):
    r"""(l, d): with q = 0 the smallest inter-group and the largest
    intra-group distance; else the ceil(q n)-th smallest inter-group distance
    and the largest over groups of the ceil(q n_c)-th largest intra-group
    distance (a group without pairs gives 0)."""
    inter, intra = pairs(x, y)
    if q == 0:
        return min(inter), max(max(v, default=0.0) for v in intra.values())
    k = max(1, math.ceil(q * len(inter)))
    l = sorted(inter)[k - 1]
    d = 0.0
    for v in intra.values():
        kc = max(1, math.ceil(q * len(v)))
        if len(v) >= kc:
            d = max(d, sorted(v, reverse=True)[kc - 1])
    return l, d


def states(seed=0, n=12, f=3, steps=5):
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, f, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 3])  # 3: a singleton
    ei = torch.randint(0, n, (2, 30), generator=gen)
    ei = ei[:, ei[0] != ei[1]]
    w = torch.rand(ei.size(1), generator=gen, dtype=torch.float64) + 0.1
    # Any trajectory will do: random-walk averaging steps.
    W = torch.zeros(n, n, dtype=torch.float64).index_put(
        (ei[1], ei[0]), w, accumulate=True) + torch.eye(n)
    P = W / W.sum(1, keepdim=True)
    xs = [x0]
    for _ in range(steps):
        xs.append(0.5 * xs[-1] + 0.5 * P @ xs[-1])
    return torch.stack(xs), ei, w, y


@pytest.mark.parametrize('every,normalization', [(1, None), (2, 'sym'),
                                                 (3, None)])
def test_every_metric_equals_direct_computation(every, normalization):
    xs, ei, w, y = states()
    m = trajectory_metrics(xs, ei, w, y=y, q=(0.1, 0.25), every=every,
                           normalization=normalization)
    # Every `every`-th step, and the last one always.
    steps = sorted(set(range(0, 6, every)) | {5})
    assert m['step'] == steps
    assert set(m) == {'step', 'energy', 'rayleigh', 'ratio', 'min_distance',
                      'max_diameter', 'ratio_q0.1', 'ratio_q0.25'}
    for r, t in enumerate(steps):
        x = xs[t]
        e = energy(x, ei, w, normalization)
        assert m['energy'][r] == pytest.approx(e, rel=1e-12)
        spread = float(((x - x.mean(0))**2).sum())
        assert m['rayleigh'][r] == pytest.approx(e / spread, rel=1e-12)
        l, d = ratio_parts(x, y)
        assert m['min_distance'][r] == pytest.approx(l, rel=1e-12)
        assert m['max_diameter'][r] == pytest.approx(d, rel=1e-12)
        assert m['ratio'][r] == pytest.approx(l / d, rel=1e-12)
        for q in (0.1, 0.25):
            lq, dq = ratio_parts(x, y, q)
            assert m[f'ratio_q{q:g}'][r] == pytest.approx(lq / dq,
                                                          rel=1e-12)
    # The quantile levels are different statistics here.
    assert m['ratio_q0.1'] != m['ratio_q0.25']


def test_keys_follow_the_inputs_and_constant_state():
    xs, ei, w, y = states(steps=2)
    assert set(trajectory_metrics(xs, ei, w)) == {'step', 'energy',
                                                  'rayleigh'}
    assert set(trajectory_metrics(xs, y=y, q=())) == {
        'step', 'ratio', 'min_distance', 'max_diameter'}
    # Unit weights by default; a constant state has zero energy and a
    # Rayleigh quotient of 0 (not 0 / 0).
    m = trajectory_metrics(xs, ei)
    assert m['energy'][1] == pytest.approx(
        energy(xs[1], ei, torch.ones(ei.size(1))), rel=1e-12)
    const = torch.ones(2, 12, 3, dtype=torch.float64)
    m = trajectory_metrics(const, ei, w)
    assert m['energy'] == [0.0, 0.0] and m['rayleigh'] == [0.0, 0.0]
    # A [K + 1, N] trajectory is one feature per node.
    m = trajectory_metrics(xs[..., 0], ei, w, y=y, q=())
    assert m['energy'][0] == pytest.approx(energy(xs[0, :, :1], ei, w),
                                           rel=1e-12)


def test_diffusion_trajectory_of_diffconv_equals_dense_steps():
    # The states of a real DiffConv (K steps of x <- x - gamma L x with
    # L = D - W, normalize=None) and the metrics of each of them.
    xs, ei, w, y = states(steps=0)
    x = xs[0]
    n, gamma, K = x.size(0), 0.1, 6
    W = torch.zeros(n, n, dtype=torch.float64).index_put(
        (ei[1], ei[0]), w, accumulate=True)
    L = torch.diag(W.sum(1)) - W
    ref = [x]
    for _ in range(K):
        ref.append(ref[-1] - gamma * L @ ref[-1])
    conv = DiffConv(gamma, K, normalize=None, dropout=0.5).train()
    m = diffusion_trajectory_metrics(conv, x, ei, w, y=y, q=(0.25, ),
                                     every=4)
    assert conv.training  # Restored after the evaluation-mode pass.
    assert m['step'] == [0, 4, 6]
    for r, t in enumerate(m['step']):
        assert m['energy'][r] == pytest.approx(energy(ref[t], ei, w),
                                               rel=1e-9)
        l, d = ratio_parts(ref[t], y)
        assert m['ratio'][r] == pytest.approx(l / d, rel=1e-9)
        lq, dq = ratio_parts(ref[t], y, 0.25)
        assert m['ratio_q0.25'][r] == pytest.approx(lq / dq, rel=1e-9)
    assert m['energy'][0] > m['energy'][1] > m['energy'][2]
