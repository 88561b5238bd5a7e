import numpy as np
import pytest
import torch

from benchmarks.fewshot import (
    clustered_features,
    digits_features,
    evaluate_episodes,
    load_features,
    save_features,
    simple_shot,
)


@pytest.mark.parametrize('ext', ['npz', 'pt'])
def test_roundtrip(tmp_path, ext):
    x, y, m = torch.randn(20, 4), torch.arange(20) % 4, torch.randn(4)
    path = str(tmp_path / f'feat.{ext}')
    save_features(path, x, y, m)
    out = load_features(path)
    assert torch.equal(out.features, x) and torch.equal(out.labels, y)
    assert torch.equal(out.base_mean, m)


def test_alternative_keys_and_errors(tmp_path):
    path = str(tmp_path / 'alt.npz')
    base = np.ones((3, 4), dtype=np.float32)
    np.savez(path, x=np.zeros((6, 4)), y=np.arange(6), base_features=base)
    out = load_features(path)
    assert out.features.dtype == torch.float32
    assert torch.equal(out.base_mean, torch.ones(4))
    bad = str(tmp_path / 'bad.npz')
    np.savez(bad, feats=np.zeros((6, 4)), y=np.arange(6))
    with pytest.raises(ValueError, match='feature'):
        load_features(bad)
    np.savez(bad, x=np.zeros((6, 4)), y=np.arange(5))
    with pytest.raises(ValueError, match='do not match'):
        load_features(bad)
    with pytest.raises(ValueError, match='No such file'):
        load_features(str(tmp_path / 'missing.npz'))
    with pytest.raises(ValueError, match='Unsupported'):
        load_features(__file__)


def test_digits():
    fs = digits_features()
    assert fs.features.shape[1] == 64 and fs.base_mean.shape == (64, )
    assert set(fs.labels.tolist()) == {5, 6, 7, 8, 9}
    assert fs.features.min() >= 0 and fs.features.max() <= 1


def test_clustered_deterministic():
    a = clustered_features(num_classes=6, num_base_classes=2,
                           num_per_class=30, dim=8, seed=1)
    b = clustered_features(num_classes=6, num_base_classes=2,
                           num_per_class=30, dim=8, seed=1)
    assert a.features.shape == (120, 8)
    assert set(a.labels.tolist()) == {2, 3, 4, 5}
    assert torch.equal(a.features, b.features)
    assert torch.equal(a.base_mean, b.base_mean)


def test_evaluate_episodes_pairs_methods():
    fs = clustered_features(num_classes=8, num_base_classes=2,
                            num_per_class=30, dim=8, seed=0)
    acc = evaluate_episodes(fs.features, fs.labels,
                            {'a': simple_shot, 'b': simple_shot}, n_way=3,
                            k_shot=2, n_query=5, num_episodes=12,
                            base_mean=fs.base_mean)
    assert acc['a'].shape == (12, )
    assert np.array_equal(acc['a'], acc['b'])  # Same episodes for all.
    assert ((acc['a'] >= 0) & (acc['a'] <= 100)).all()


@pytest.mark.parametrize('name,content', [
    ('garbage.npz', b'PK\x03\x04 not a zip archive'),
    ('empty.npz', b''),
    ('garbage.pt', b'\x80\x02 not a pickle'),
])
def test_corrupt_feature_file_names_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"'{path}' cannot be read"):
        load_features(str(path))
