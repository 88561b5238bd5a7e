import os

import pytest

from benchmarks.planetoid import datasets

SHARED = os.environ.get(
    'TGD_SHARED_DATA',
    os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'shared',
                 'data'))


def test_expected_raw_files_match_shared_layout():
    if not os.path.isdir(SHARED):
        pytest.skip('no shared data')
    for key, spec in datasets.DATASETS.items():
        if spec.pyg_class == 'npz':  # One gnn-benchmark file.
            assert os.path.isfile(os.path.join(
                SHARED, spec.folder, dict(spec.kwargs)['file'])), key
            continue
        protocols = ['geom-gcn'] + (['public', 'random'] if spec.pyg_class
                                    == 'Planetoid' else [])
        for protocol in protocols:
            paths = datasets.expected_raw_paths(
                spec, protocol, os.path.join(SHARED, spec.folder))
            assert paths and all(os.path.isfile(p) for p in paths), \
                (key, protocol)
