import json
import os.path as osp

import pytest
from bench_loader import load_benchmark

from benchmarks.common.cli import run_main

make = load_benchmark('make_synthetic_ogb')


def test_cli_writes_layout(tmp_path, capsys):
    root = str(tmp_path)
    assert make.main(['--like', 'ogbn-products', '--scale', '0.001',
                      '--root', root, '--seed', '2']) == 0
    out = capsys.readouterr().out
    assert '2,449 nodes, 61,859 edges, 100 features, 47 classes' in out
    path = osp.join(root, 'ogbn_products')
    for name in ('raw/edge.csv.gz', 'raw/node-feat.csv.gz',
                 'raw/node-label.csv.gz', 'raw/num-node-list.csv.gz',
                 'raw/num-edge-list.csv.gz', 'RELEASE_v1.txt',
                 'split/sales_ranking/train.csv.gz',
                 'split/sales_ranking/valid.csv.gz',
                 'split/sales_ranking/test.csv.gz'):
        assert osp.exists(osp.join(path, name)), name
    assert not osp.exists(osp.join(path, 'raw', 'node_year.csv.gz'))
    with open(osp.join(path, 'SYNTHETIC.json')) as f:
        marker = json.load(f)
    assert marker['seed'] == 2 and marker['num_edges'] == 61859

    # An existing folder is kept unless --overwrite.
    assert run_main(make.main, ['--like', 'ogbn-products', '--scale',
                                '0.001', '--root', root]) == 2
    assert 'overwrite' in capsys.readouterr().err
    assert make.main(['--like', 'ogbn-products', '--scale', '0.001',
                      '--root', root, '--overwrite']) == 0


def test_cli_dry_run_and_errors(tmp_path, capsys):
    assert make.main(['--like', 'ogbn-arxiv', '--root', str(tmp_path),
                      '--dry-run']) == 0
    out = capsys.readouterr().out
    assert '169,343 nodes, 1,166,243 edges, 128 features, 40 classes' in out
    assert '90,941 / 29,799 / 48,603' in out
    assert not osp.exists(osp.join(str(tmp_path), 'ogbn_arxiv'))
    with pytest.raises(SystemExit) as e:
        make.main(['--like', 'ogbn-arxiv', '--root', str(tmp_path),
                   '--scale', '-1'])
    assert e.value.code == 2
    assert 'error: argument --scale: expected a finite number > 0' in \
        capsys.readouterr().err
    assert run_main(make.main, ['--like', 'ogbn-arxiv', '--root',
                                str(tmp_path), '--scale', '1e-9']) == 2
    assert capsys.readouterr().err.startswith('error: --scale: scale=1e-09')
    with pytest.raises(SystemExit):
        make.main(['--like', 'ogbn-mag', '--root', str(tmp_path)])
