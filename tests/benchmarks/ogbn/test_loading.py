import builtins
import os
import os.path as osp
import pickle

import pytest
import torch

from benchmarks.ogbn.loading import (
    OGBDataUnavailableError,
    is_synthetic_ogb,
    load_ogb_node_dataset,
    ogb_dataset_dir,
    ogb_safe_globals,
    ogb_safe_loading,
)
from benchmarks.ogbn.synthetic import (
    ogb_meta_dict,
    write_synthetic_ogb,
)

pytest.importorskip('ogb')


@pytest.fixture
def no_input(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('input() must never be called')

    monkeypatch.setattr(builtins, 'input', fail)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ogb'))
    write_synthetic_ogb('ogbn-arxiv', root, scale=0.005, seed=0)
    return root


def test_load(root, no_input):
    dataset, split = load_ogb_node_dataset('ogbn-arxiv', root)
    assert type(dataset).__name__ == 'PygNodePropPredDataset'
    assert dataset[0].num_nodes == 847
    assert set(split) == {'train', 'valid', 'test'}
    assert is_synthetic_ogb('ogbn-arxiv', root)
    # Second time from the processed file (the torch.load path).
    dataset, _ = load_ogb_node_dataset('ogbn-arxiv', root, download=False)
    assert dataset[0].x.shape == (847, 128)


def test_load_meta_dict(root, no_input):
    path = ogb_dataset_dir('ogbn-arxiv', root)
    meta = ogb_meta_dict('ogbn-arxiv', path)
    dataset, split = load_ogb_node_dataset('ogbn-arxiv', meta_dict=meta)
    assert dataset[0].num_nodes == 847
    assert is_synthetic_ogb('ogbn-arxiv', '', meta)


def test_safe_loading_is_scoped(root):
    load_ogb_node_dataset('ogbn-arxiv', root)
    processed = osp.join(root, 'ogbn_arxiv', 'processed',
                         'geometric_data_processed.pt')
    if not hasattr(torch.serialization, 'safe_globals'):
        pytest.skip('torch.load has no weights_only default here')
    # ogb's own call, torch.load(path), fails without the allow-list ...
    with pytest.raises(pickle.UnpicklingError, match='DataEdgeAttr'):
        torch.load(processed)
    before = set(map(repr, torch.serialization.get_safe_globals()))
    with ogb_safe_loading():
        data, _ = torch.load(processed)
    assert data.num_nodes == 847
    # The allow-list is restored exactly (PyG's own entries included).
    assert set(map(repr, torch.serialization.get_safe_globals())) == before
    # ... and fails again afterwards: nothing was patched globally.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(processed)
    names = {cls.__name__ for cls in ogb_safe_globals()}
    assert {'DataEdgeAttr', 'DataTensorAttr', 'GlobalStorage'} <= names


def test_offline_no_download(tmp_path, no_input):
    with pytest.raises(OGBDataUnavailableError) as info:
        load_ogb_node_dataset('ogbn-arxiv', str(tmp_path), download=False)
    msg = str(info.value)
    assert 'ogbn-arxiv is not in' in msg
    assert 'make_synthetic_ogb.py --like ogbn-arxiv' in msg


def test_offline_unreachable(tmp_path, no_input):
    path = str(tmp_path / 'arxiv')
    meta = ogb_meta_dict('ogbn-arxiv', path)
    meta['url'] = 'http://127.0.0.1:9/arxiv.zip'  # Nothing listens there.
    with pytest.raises(OGBDataUnavailableError, match='cannot be reached'):
        load_ogb_node_dataset('ogbn-arxiv', meta_dict=meta, timeout=2.0)
    assert not osp.exists(path)


def test_missing_release_file(tmp_path, no_input):
    root = str(tmp_path)
    path = write_synthetic_ogb('ogbn-arxiv', root, scale=0.005)
    os.remove(osp.join(path, 'RELEASE_v1.txt'))
    with pytest.raises(OGBDataUnavailableError, match='RELEASE_v1.txt'):
        load_ogb_node_dataset('ogbn-arxiv', root)
    assert osp.exists(osp.join(path, 'raw', 'edge.csv.gz'))  # Untouched.


def test_unknown_name(tmp_path):
    with pytest.raises(ValueError, match='not an OGB'):
        load_ogb_node_dataset('ogbn-unknown', str(tmp_path))
