r"""OGB data under faults: a run killed while processing does not break the
next one, and truncated, garbage or short raw files end in one error line
naming the file (and are processed again once replaced)."""
import builtins
import gzip
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from benchmarks.common.cli import run_main
from benchmarks.common.processing import CorruptDataError
from benchmarks.ogbn.loading import load_ogb_node_dataset
from benchmarks.ogbn.synthetic import write_synthetic_ogb

pytest.importorskip('ogb')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
SCRIPT = osp.join(REPO, 'benchmarks', 'ogbn.py')


@pytest.fixture(autouse=True)
def no_input(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('input() must never be called')

    monkeypatch.setattr(builtins, 'input', fail)


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ogb'))
    write_synthetic_ogb('ogbn-arxiv', root, scale=0.005, seed=0)
    return root


@pytest.fixture
def root(pristine, tmp_path):
    dst = str(tmp_path / 'ogb')
    shutil.copytree(pristine, dst)
    shutil.rmtree(osp.join(folder(dst), 'processed'), ignore_errors=True)
    return dst


def folder(root):
    return osp.join(root, 'ogbn_arxiv')


def processed_file(root):
    return osp.join(folder(root), 'processed', 'geometric_data_processed.pt')


def reference(pristine):
    dataset, split = load_ogb_node_dataset('ogbn-arxiv', pristine)
    return dataset[0], split


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in ('x', 'y', 'edge_index'))


def test_empty_processed_file_is_rebuilt(root, pristine, capsys):
    ref, _ = reference(pristine)
    load_ogb_node_dataset('ogbn-arxiv', root)
    with open(processed_file(root), 'wb'):  # Left at 0 bytes by a kill.
        pass
    capsys.readouterr()
    dataset, _ = load_ogb_node_dataset('ogbn-arxiv', root)
    assert same(dataset[0], ref)
    assert 'processing the raw files again' in capsys.readouterr().err
    # Processing that never finished (no pre_filter.pt) is redone too.
    os.remove(osp.join(osp.dirname(processed_file(root)), 'pre_filter.pt'))
    dataset, _ = load_ogb_node_dataset('ogbn-arxiv', root)
    assert same(dataset[0], ref)
    assert 'left incomplete' in capsys.readouterr().err


# ogbn.py with torch.save leaving the processed file empty, then waiting to
# be killed: a kill -9 in the middle of processing.
KILLED_WRITER = textwrap.dedent('''
    import sys, time, runpy
    import torch
    real = torch.save
    def torn_save(obj, f, *args, **kwargs):
        if str(f).endswith('geometric_data_processed.pt'):
            open(f, 'wb').close()
            print('writing', flush=True)
            time.sleep(600)
        return real(obj, f, *args, **kwargs)
    torch.save = torn_save
    sys.argv = ['ogbn.py'] + sys.argv[1:]
    runpy.run_path({script!r}, run_name='__main__')
''')


def _cli(root, out):
    return ['--dataset', 'ogbn-arxiv', '--root', root, '--no-download',
            '--device', 'cpu', '--model', 'mlp', '--epochs', '2', '--runs',
            '1', '--hidden', '8', '--out', out]


def test_kill_during_processing_then_rerun(root, tmp_path):
    out = str(tmp_path / 'r.jsonl')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        [sys.executable, '-c', KILLED_WRITER.format(script=SCRIPT),
         *_cli(root, out)], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # Lines of the script come before ours.
    try:
        assert 'writing' in (line.strip() for line in
                             iter(proc.stdout.readline, ''))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert osp.getsize(processed_file(root)) == 0
    rerun = subprocess.run([sys.executable, SCRIPT, *_cli(root, out)],
                           cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert 'Traceback' not in rerun.stderr
    assert 'processing the raw files again' in rerun.stderr
    assert osp.getsize(processed_file(root)) > 0
    with open(out) as f:
        assert len(f.readlines()) == 1


def _rewrite(path, transform):
    with gzip.open(path, 'rb') as f:
        lines = f.read().splitlines(keepends=True)
    with gzip.open(path, 'wb') as f:
        f.write(b''.join(transform(lines)))


def _truncate(path):
    size = osp.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size // 2)


def _garbage(path):
    with open(path, 'wb') as f:
        f.write(os.urandom(300))


def _short(path):
    _rewrite(path, lambda lines: lines[:len(lines) // 2])


def _out_of_range(path):
    _rewrite(path, lambda lines: lines[:-1] + [b'99999999\n'])


CASES = [
    ('raw/edge.csv.gz', _truncate),
    ('raw/node-feat.csv.gz', _garbage),
    ('raw/node-label.csv.gz', _short),
    ('raw/node-feat.csv.gz', _short),
    ('raw/num-node-list.csv.gz', _garbage),
    ('raw/edge.csv.gz', _out_of_range),
    ('split/time/train.csv.gz', _out_of_range),
    ('split/time/test.csv.gz', _truncate),
]


@pytest.mark.parametrize('rel,damage', CASES,
                         ids=[f'{r}-{d.__name__[1:]}' for r, d in CASES])
def test_corrupt_raw_file_is_named(root, tmp_path, capsys, rel, damage):
    path = osp.join(folder(root), rel)
    intact = str(tmp_path / 'intact')
    shutil.copyfile(path, intact)
    damage(path)
    with pytest.raises(CorruptDataError, match=f"'{path}'"):
        load_ogb_node_dataset('ogbn-arxiv', root)
    out = str(tmp_path / 'r.jsonl')
    assert run_main(bench_main(), _cli(root, out)) == 2
    err = capsys.readouterr().err  # ogb's progress bars come first.
    lines = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and err.splitlines()[-1] == lines[0], err
    assert f"'{path}'" in lines[0] and 'Traceback' not in err
    assert not osp.exists(out)
    # Once the file is replaced, the data loads (nothing stale is kept).
    shutil.copyfile(intact, path)
    dataset, split = load_ogb_node_dataset('ogbn-arxiv', root)
    assert dataset[0].y.size(0) == dataset[0].num_nodes == 847


def bench_main():
    import importlib.util
    spec = importlib.util.spec_from_file_location('bench_ogbn', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main
