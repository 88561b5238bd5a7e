r"""The cache of a read-only root and crash-safe processing: two roots with
a dataset of the same name never share data, a run killed while processing
does not break the next one, and corrupt raw files end in one error line
naming the file."""
import importlib.util
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from benchmarks.common.cli import run_main
from benchmarks.planetoid.datasets import DATASETS, load_pyg_dataset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SHARED = os.environ.get('TGD_SHARED_DATA',
                        os.path.join(REPO, '..', 'shared', 'data'))
CORA_RAW = os.path.join(SHARED, 'Planetoid', 'Cora', 'raw')
LABEL_FILES = ('ind.cora.y', 'ind.cora.ty', 'ind.cora.ally')

_spec = importlib.util.spec_from_file_location(
    'bench_planetoid', os.path.join(REPO, 'benchmarks', 'planetoid.py'))
planetoid = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(planetoid)  # The entry script.


@pytest.fixture(autouse=True)
def need_cora():
    if not os.path.isdir(CORA_RAW):
        pytest.skip('no shared Cora')


def make_root(path, shift=0, read_only=True):
    r"""A Planetoid root with Cora's raw files, the one-hot labels rolled
    by :obj:`shift` classes."""
    raw = os.path.join(path, 'Planetoid', 'Cora', 'raw')
    os.makedirs(raw)
    for name in os.listdir(CORA_RAW):
        src, dst = os.path.join(CORA_RAW, name), os.path.join(raw, name)
        if name in LABEL_FILES and shift:
            with open(src, 'rb') as f:
                labels = pickle.load(f, encoding='latin1')
            with open(dst, 'wb') as f:
                pickle.dump(np.roll(labels, shift, axis=1), f)
        else:
            shutil.copyfile(src, dst)
    if read_only:
        set_read_only(path, True)
    return str(path)


def set_read_only(root, read_only):
    for dirpath, _, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(dirpath, name),
                     0o444 if read_only else 0o644)
        os.chmod(dirpath, 0o555 if read_only else 0o755)


@pytest.fixture
def roots(tmp_path):
    made = []

    def make(name, **kwargs):
        made.append(make_root(tmp_path / name, **kwargs))
        return made[-1]

    yield make
    for root in made:
        set_read_only(root, False)


def load(root, cache):
    return load_pyg_dataset(DATASETS['cora'], 'public', root, cache,
                            offline=True)[0]


def test_two_read_only_roots_never_share_the_cache(roots, tmp_path):
    a, b = roots('a'), roots('b', shift=1)
    cache = str(tmp_path / 'cache')
    ya = load(a, cache).y
    yb = load(b, cache).y  # Same dataset name, same cache.
    assert torch.equal(yb, (ya + 1) % 7)
    assert torch.equal(load(a, cache).y, ya)  # And back.
    assert torch.equal(load(b, str(tmp_path / 'fresh')).y, yb)


def test_a_changed_source_file_is_copied_again(roots, tmp_path):
    a = roots('a')
    cache = str(tmp_path / 'cache')
    y = load(a, cache).y
    set_read_only(a, False)
    for name in LABEL_FILES:  # Same sizes: only the times tell.
        path = os.path.join(a, 'Planetoid', 'Cora', 'raw', name)
        with open(path, 'rb') as f:
            labels = pickle.load(f, encoding='latin1')
        with open(path, 'wb') as f:
            pickle.dump(np.roll(labels, 2, axis=1), f)
    set_read_only(a, True)
    assert torch.equal(load(a, cache).y, (y + 2) % 7)
    with open(os.path.join(cache, 'Planetoid', 'MIRROR.json')) as f:
        manifest = json.load(f)
    entry = manifest[os.path.join('Cora', 'raw', 'ind.cora.ally')]
    assert path.endswith('ind.cora.ally')
    assert entry['source'] == os.path.abspath(path)
    assert entry['size'] == os.path.getsize(path)


def _cli(root, cache, out):
    return ['--dataset', 'Cora', '--protocol', 'public', '--model', 'mlp',
            '--hidden', '8', '--splits', '1', '--inits', '1',
            '--max-epochs', '5', '--root', root, '--cache', cache,
            '--offline', '--out', out]


def _record(out):
    with open(out) as f:
        (rec, ) = [json.loads(line) for line in f]
    return {k: rec[k] for k in ('train_acc', 'val_acc', 'test_acc')}


def test_cli_two_roots_report_their_own_results(roots, tmp_path):
    a, b = roots('a'), roots('b', shift=1)
    cache, fresh = str(tmp_path / 'cache'), str(tmp_path / 'fresh')
    outs = [str(tmp_path / f'{n}.jsonl') for n in ('a', 'b', 'b_fresh')]
    for root, c, out in ((a, cache, outs[0]), (b, cache, outs[1]),
                         (b, fresh, outs[2])):
        assert planetoid.main(_cli(root, c, out)) == 0
    assert _record(outs[1]) == _record(outs[2])  # What a fresh cache gives.
    assert _record(outs[1]) != _record(outs[0])


def test_unreadable_processed_file_is_rebuilt(roots, tmp_path, capsys):
    a = roots('a', read_only=False)
    y = load(a, str(tmp_path / 'cache')).y
    data_pt = os.path.join(a, 'Planetoid', 'Cora', 'processed', 'data.pt')
    size = os.path.getsize(data_pt)
    with open(data_pt, 'r+b') as f:  # As a kill mid-write leaves it.
        f.truncate(size // 7)
    capsys.readouterr()
    assert torch.equal(load(a, str(tmp_path / 'cache')).y, y)
    assert 'processing the raw files again' in capsys.readouterr().err
    assert os.path.getsize(data_pt) == size
    # Processing that never finished (no pre_filter.pt) is redone too.
    os.remove(os.path.join(os.path.dirname(data_pt), 'pre_filter.pt'))
    with open(data_pt, 'wb'):
        pass
    assert torch.equal(load(a, str(tmp_path / 'cache')).y, y)
    assert 'left incomplete' in capsys.readouterr().err


# Runs planetoid.py with PyG's torch_save writing a third of the file, then
# waiting to be killed: a kill -9 in the middle of processing.
KILLED_WRITER = textwrap.dedent('''
    import os, sys, time
    import torch_geometric.io.fs as fs
    real = fs.torch_save
    def torn_save(data, path):
        if path.endswith('data.pt'):
            real(data, path)
            with open(path, 'r+b') as f:
                f.truncate(os.path.getsize(path) // 3)
            print('writing', flush=True)
            time.sleep(600)
        real(data, path)
    fs.torch_save = torn_save
    sys.argv = ['planetoid.py'] + sys.argv[1:]
    import runpy
    runpy.run_path({script!r}, run_name='__main__')
''')


@pytest.mark.parametrize('read_only', [False, True])
def test_kill_during_processing_then_rerun(roots, tmp_path, read_only):
    a = roots('a', read_only=read_only)
    cache = str(tmp_path / 'cache')
    out = str(tmp_path / 'r.jsonl')
    code = KILLED_WRITER.format(
        script=os.path.join(REPO, 'benchmarks', 'planetoid.py'))
    proc = subprocess.Popen([sys.executable, '-c', code, *_cli(a, cache,
                                                               out)],
                            cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == 'writing'
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    folder = cache if read_only else a
    data_pt = os.path.join(folder, 'Planetoid', 'Cora', 'processed',
                           'data.pt')
    assert 0 < os.path.getsize(data_pt)  # The torn file is there.
    assert not os.path.exists(out)
    rerun = subprocess.run(
        [sys.executable, os.path.join(REPO, 'benchmarks', 'planetoid.py'),
         *_cli(a, cache, out)], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert 'Traceback' not in rerun.stderr
    assert 'processing the raw files again' in rerun.stderr
    fresh = str(tmp_path / 'fresh.jsonl')
    assert planetoid.main(_cli(a, str(tmp_path / 'fresh'), fresh)) == 0
    assert _record(out) == _record(fresh)


def _truncate(path):
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 2)


def _garbage(path):
    with open(path, 'wb') as f:
        f.write(os.urandom(256))


@pytest.mark.parametrize('read_only', [False, True])
@pytest.mark.parametrize('name,damage', [
    ('ind.cora.x', _truncate), ('ind.cora.graph', _garbage),
    ('ind.cora.ally', _truncate), ('ind.cora.test.index', _garbage)])
def test_corrupt_raw_file_is_named(roots, tmp_path, capsys, read_only, name,
                                   damage):
    a = roots('a', read_only=False)
    rel = os.path.join('Planetoid', 'Cora', 'raw', name)
    damage(os.path.join(a, rel))
    set_read_only(a, read_only)
    out = str(tmp_path / 'r.jsonl')
    assert run_main(planetoid.main, _cli(a, str(tmp_path / 'cache'),
                                         out)) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    assert f"'{rel}' is truncated or corrupt" in lines[0]
    assert not os.path.exists(out)


def test_corrupt_npz_is_named(tmp_path, capsys):
    folder = tmp_path / 'gnn-benchmark'
    folder.mkdir()
    (folder / 'cora.npz').write_bytes(b'PK\x03\x04' + os.urandom(64))
    out = str(tmp_path / 'r.jsonl')
    assert run_main(planetoid.main, [
        '--dataset', 'cora-npz', '--model', 'mlp', '--splits', '1',
        '--inits', '1', '--root', str(tmp_path), '--offline', '--out',
        out]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ')
    assert os.path.join('gnn-benchmark', 'cora.npz') in err
    assert not os.path.exists(out)
