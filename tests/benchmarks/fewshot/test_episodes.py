import numpy as np
import pytest
import torch

from benchmarks.fewshot import EpisodeSampler, mean_confidence_interval


def make_labels():
    # 8 classes of 10..24 samples, shuffled.
    g = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((10 + 2 * c, ), c) for c in range(8)])
    return labels[torch.randperm(labels.numel(), generator=g)]


def test_no_leakage_and_consistent_labels():
    labels = make_labels()
    sampler = EpisodeSampler(labels, n_way=5, k_shot=3, n_query=7, seed=1)
    for ep in sampler(50):
        s, q = set(ep.support_idx.tolist()), set(ep.query_idx.tolist())
        assert len(s) == 15 and len(q) == 35 and not s & q
        assert len(set(ep.classes.tolist())) == 5
        assert torch.equal(labels[ep.support_idx], ep.classes[ep.support_y])
        assert torch.equal(labels[ep.query_idx], ep.classes[ep.query_y])
        assert torch.equal(ep.support_y, torch.arange(5).repeat_interleave(3))
        assert torch.equal(ep.query_y, torch.arange(5).repeat_interleave(7))


def test_determinism_and_coverage():
    labels = make_labels()
    a = [ep.query_idx for ep in EpisodeSampler(labels, 3, 1, 5, seed=7)(20)]
    b = [ep.query_idx for ep in EpisodeSampler(labels, 3, 1, 5, seed=7)(20)]
    c = [ep.query_idx for ep in EpisodeSampler(labels, 3, 1, 5, seed=8)(20)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    seen = torch.cat([ep.classes for ep in EpisodeSampler(labels, 3, 1, 5)(
        200)])
    assert set(seen.tolist()) == set(range(8))


def test_class_subset_and_small_classes():
    labels = make_labels()
    sampler = EpisodeSampler(labels, 2, 1, 5, classes=[1, 4, 6])
    for ep in sampler(20):
        assert set(ep.classes.tolist()) <= {1, 4, 6}
    # Classes 0..2 have 10, 12, 14 samples: with 1 + 12 needed only 6 remain.
    assert len(EpisodeSampler(labels, 2, 1, 12).classes) == 6
    with pytest.raises(ValueError, match='Only 2 classes'):
        EpisodeSampler(labels, 3, 4, 18)
    with pytest.raises(ValueError, match='n_way'):
        EpisodeSampler(labels, 1, 1, 1)


def test_mean_confidence_interval():
    mean, ci = mean_confidence_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert ci == pytest.approx(1.96 * np.std([1, 2, 3, 4], ddof=1) / 2)
    assert np.isnan(mean_confidence_interval([5.0])[1])


def test_labels_must_be_integers():
    for labels in (torch.tensor([0.0, 0.5, 1.0, 1.5] * 5),
                   np.array([0.0, 1.0] * 10),
                   torch.tensor([True, False] * 10)):
        with pytest.raises(TypeError, match="'labels'"):
            EpisodeSampler(labels, n_way=2, k_shot=1, n_query=1)
    # Integer labels of any width, list or array, are the same labels.
    ref = EpisodeSampler(torch.arange(4).repeat(5), 2, 1, 1, seed=3).sample()
    for labels in (np.arange(4).repeat(1).tolist() * 5,
                   np.tile(np.arange(4, dtype=np.int32), 5),
                   torch.arange(4, dtype=torch.int16).repeat(5)):
        ep = EpisodeSampler(labels, 2, 1, 1, seed=3).sample()
        assert all(torch.equal(a, b) for a, b in zip(ep, ref))
