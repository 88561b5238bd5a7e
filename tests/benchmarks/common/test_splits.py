import numpy as np
import pytest
import torch

from benchmarks.common import (
    largest_connected_component,
    mask_splits,
    random_split,
    random_splits,
    split_seeds,
)


def _labels(num_classes=3, per_class=60, seed=0):
    y = np.repeat(np.arange(num_classes), per_class)
    return torch.from_numpy(np.random.RandomState(seed).permutation(y))


def test_random_split_class_counts_and_disjointness():
    y = _labels(num_classes=4, per_class=70)
    s = random_split(y, seed=123, num_inits=5)
    assert torch.bincount(y[s.train_index], minlength=4).tolist() == [20] * 4
    assert torch.bincount(y[s.val_index], minlength=4).tolist() == [30] * 4
    all_index = torch.cat([s.train_index, s.val_index, s.test_index])
    assert all_index.numel() == y.numel()  # Disjoint and covering.
    assert torch.unique(all_index).numel() == y.numel()
    assert s.test_index.numel() == y.numel() - 4 * 50
    assert len(s.init_seeds) == 5
    assert all(0 <= i < 10**6 for i in s.init_seeds)
    train, val, test = s.masks(y.numel())
    assert int(train.sum()) == 80 and int(val.sum()) == 120
    assert not bool((train & val).any() | (train & test).any()
                    | (val & test).any())


def test_random_split_matches_official_sampling():
    # The official code: per class in label order, candidates in node order,
    # RandomState.choice without replacement; val excludes train; the init
    # seeds come from the same RandomState afterwards.
    y = _labels(num_classes=3, per_class=55, seed=1).numpy()
    rs = np.random.RandomState(7)
    train = np.concatenate([
        rs.choice([i for i in range(len(y)) if y[i] == c], 20, replace=False)
        for c in range(3)
    ])
    val = np.concatenate([
        rs.choice([i for i in range(len(y)) if y[i] == c and i not in train],
                  30, replace=False) for c in range(3)
    ])
    inits = rs.randint(0, 1000000, 4)
    s = random_split(y, seed=7, num_inits=4)
    assert s.train_index.tolist() == train.tolist()
    assert s.val_index.tolist() == val.tolist()
    assert s.init_seeds == inits.tolist()
    assert s.test_index.tolist() == sorted(
        set(range(len(y))) - set(train) - set(val))


def test_random_splits_determinism_and_seeds():
    y = _labels()
    a = random_splits(y, seed=42, num_splits=3, num_inits=2)
    b = random_splits(y, seed=42, num_splits=3, num_inits=2)
    c = random_splits(y, seed=43, num_splits=3, num_inits=2)
    assert [s.seed for s in a] == np.random.RandomState(42).randint(
        0, 10**6, 3).tolist() == split_seeds(42, 3)
    for sa, sb in zip(a, b):
        assert torch.equal(sa.train_index, sb.train_index)
        assert torch.equal(sa.val_index, sb.val_index)
        assert sa.init_seeds == sb.init_seeds
    assert not torch.equal(a[0].train_index, c[0].train_index)
    assert not torch.equal(a[0].train_index, a[1].train_index)
    # Fewer splits/inits give a prefix of the larger protocol.
    d = random_splits(y, seed=42, num_splits=2, num_inits=1)
    assert torch.equal(d[1].train_index, a[1].train_index)
    assert d[1].init_seeds == a[1].init_seeds[:1]


def test_random_splits_default_protocol_counts():
    # The paper's protocol: 20 training and 30 validation nodes per class,
    # every remaining node in the test set, for every split of the defaults.
    y = _labels(num_classes=5, per_class=64, seed=3)
    splits = random_splits(y, seed=42, num_splits=4, num_inits=3)
    for s in splits:
        assert torch.bincount(y[s.train_index], minlength=5).tolist() == \
            [20] * 5
        assert torch.bincount(y[s.val_index], minlength=5).tolist() == \
            [30] * 5
        assert s.test_index.numel() == 5 * 64 - 5 * 50
        assert len(s.init_seeds) == 3
    one = random_split(y, seed=0)
    assert torch.bincount(y[one.train_index]).tolist() == [20] * 5
    assert torch.bincount(y[one.val_index]).tolist() == [30] * 5


def test_random_split_errors():
    y = torch.tensor([0] * 60 + [1] * 10)
    with pytest.raises(ValueError, match='Class 1 has only 10'):
        random_split(y, seed=0)
    with pytest.raises(ValueError, match='positive'):
        split_seeds(0, 0)


def test_largest_connected_component():
    # Components {0, 1, 2} (directed edges count as undirected), {3, 4}, {5}.
    edge_index = torch.tensor([[0, 2, 3], [1, 1, 4]])
    assert largest_connected_component(edge_index, 6).tolist() == [0, 1, 2]
    edge_index = torch.tensor([[0, 3, 4, 5], [1, 4, 5, 6]])
    assert largest_connected_component(edge_index, 7).tolist() == [3, 4, 5, 6]
    with pytest.raises(ValueError, match='refers to node'):
        largest_connected_component(edge_index, 5)


def test_mask_splits():
    n = 10
    train = torch.zeros(n, 3, dtype=torch.bool)
    val = torch.zeros(n, 3, dtype=torch.bool)
    test = torch.zeros(n, 3, dtype=torch.bool)
    for i in range(3):
        train[i, i] = True
        val[i + 3, i] = True
        test[i + 6:, i] = True
    splits = mask_splits(train, val, test, seed=5, num_inits=2)
    assert len(splits) == 3
    assert splits[2].train_index.tolist() == [2]
    assert splits[2].val_index.tolist() == [5]
    assert splits[2].test_index.tolist() == [8, 9]
    # Init seeds of split i: RandomState(split_seeds(seed, S)[i]), as in
    # the official code's per-split draw.
    master = np.random.RandomState(5).randint(0, 10**6, 3)
    for i, s in enumerate(splits):
        assert s.init_seeds == np.random.RandomState(master[i]).randint(
            0, 10**6, 2).tolist()
    assert len({tuple(s.init_seeds) for s in splits}) == 3
    assert len(mask_splits(train, val, test, num_splits=2)) == 2
    one = mask_splits(train[:, 0], val[:, 0], test[:, 0])
    assert len(one) == 1 and one[0].train_index.tolist() == [0]
    with pytest.raises(ValueError, match='ships 3 fixed'):
        mask_splits(train, val, test, num_splits=4)
    with pytest.raises(ValueError, match='shapes differ'):
        mask_splits(train, val[:, :2], test)


def test_cora_lcc(data_copy):
    from torch_geometric.datasets import Planetoid
    data = Planetoid(data_copy('Planetoid'), 'Cora')[0]
    keep = largest_connected_component(data.edge_index, data.num_nodes)
    assert keep.numel() == 2485
    s = random_split(data.y[keep], seed=0)
    assert s.train_index.numel() == 7 * 20 and s.val_index.numel() == 7 * 30
    assert s.test_index.numel() == 2485 - 7 * 50
