import json
import os

import numpy as np
import pytest
from bench_loader import load_benchmark

from benchmarks.common import environment_info
from benchmarks.common.cli import run_main
from benchmarks.planetoid.datasets import DATASETS
from benchmarks.planetoid.models import MODELS
from torch_geometric_diff.nn.diffusion import cpu_kernels_loaded

planetoid = load_benchmark('planetoid')  # The entry script.

SHARED = os.environ.get(
    'TGD_SHARED_DATA',
    os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared',
                 'data'))


# The fields of a record, besides those of `environment_info`.
RECORD_FIELDS = {
    'dataset', 'protocol', 'model', 'split', 'split_seed', 'init',
    'init_seed', 'seed', 'hparams', 'train_acc', 'val_acc', 'val_loss',
    'test_acc', 'epochs', 'best_epoch', 'seconds', 'batched', 'num_nodes',
    'device'
}


def _lines(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def _exit_code(argv):
    # The exit status of the command line, argparse's errors included.
    try:
        return run_main(planetoid.main, argv)
    except SystemExit as e:
        return e.code


def _cli(root, out, *extra, cache=None):
    return [
        '--dataset', 'cora', '--protocol', 'random', '--splits', '2',
        '--inits', '2', '--max-epochs', '3', '--root', root, '--out', out,
        '--cache', cache or os.path.join(os.path.dirname(out), 'cache'),
        '--offline', *extra
    ]


def test_cli_end_to_end_and_resume(data_copy, tmp_path, capsys):
    root = os.path.dirname(data_copy('Planetoid'))
    out = str(tmp_path / 'runs.jsonl')
    args = _cli(root, out, '--model', 'diffresnet', 'gcn', 'mlp',
                '--hidden', '16', '--num-steps', '2')
    assert planetoid.main(args) == 0
    lines = _lines(out)
    assert len(lines) == 2 * 2 * 3
    for r in lines:
        for key in ('dataset', 'model', 'protocol', 'split', 'init',
                    'hparams', 'val_acc', 'test_acc', 'epochs', 'seconds',
                    'device', 'torch', 'torch_geometric'):
            assert key in r
        assert r['dataset'] == 'Cora' and r['protocol'] == 'random'
        assert r['num_nodes'] == 2485  # The largest connected component.
        assert 0.0 <= r['val_acc'] <= 1.0 and 0.0 <= r['test_acc'] <= 1.0
        assert r['epochs'] == 3 and r['hparams']['max_epochs'] == 3
        assert set(r) == RECORD_FIELDS | set(environment_info('cpu'))
    dr = [r for r in lines if r['model'] == 'diffresnet']
    # Recorded per run, after the kernels were (or were not) built.
    assert all(r['cpp_kernels'] == cpu_kernels_loaded() for r in dr)
    assert dr[0]['hparams']['hidden'] == 16
    assert dr[0]['hparams']['num_steps'] == 2
    # Splits and init seeds are those of the official code (master seed 42).
    seeds = np.random.RandomState(42).randint(0, 10**6, 2).tolist()
    assert sorted({r['split_seed'] for r in lines}) == sorted(seeds)

    # Rerunning the same command adds nothing.
    assert planetoid.main(args) == 0
    assert _lines(out) == lines

    # A kill mid-write leaves a torn last line: it is dropped and only that
    # run is redone, without duplicates.
    with open(out, 'rb') as f:
        data = f.read()
    last_start = data.rstrip(b'\n').rfind(b'\n') + 1
    with open(out, 'wb') as f:
        f.write(data[:last_start + 40])
    assert planetoid.main(args) == 0
    again = _lines(out)
    assert len(again) == len(lines)
    keys = [(r['model'], r['split'], r['init']) for r in again]
    assert len(set(keys)) == len(keys)
    assert again[:-1] == lines[:-1]

    # The summary reads the file and writes Markdown, CSV and LaTeX.
    prefix = str(tmp_path / 'summary')
    assert planetoid.main(['--summary', out, '--summary-out', prefix]) == 0
    text = capsys.readouterr().out
    assert '| Cora | random | diffresnet | 4 (2) |' in text
    assert 'paired t-test' in text and 'Wilcoxon signed-rank' in text
    for ext in ('.md', '.csv', '.tex', '_paired.csv'):
        assert os.path.getsize(prefix + ext) > 0


def test_batch_inits_cli(data_copy, tmp_path):
    root = os.path.dirname(data_copy('Planetoid'))
    out = str(tmp_path / 'batched.jsonl')
    args = _cli(root, out, '--model', 'diffresnet', '--hidden', '16',
                '--num-steps', '2', '--batch-inits')
    assert planetoid.main(args) == 0
    lines = _lines(out)
    assert len(lines) == 4
    assert all(r['batched'] == 2 and r['epochs'] == 3 for r in lines)
    assert sorted((r['split'], r['init']) for r in lines) == [(0, 0), (0, 1),
                                                              (1, 0), (1, 1)]


def test_shards_partition_the_splits(data_copy, tmp_path, capsys):
    root = os.path.dirname(data_copy('Planetoid'))

    def run(name, *extra):
        out = str(tmp_path / name)
        args = _cli(root, out, '--model', 'gcn', *extra)
        args[args.index('--splits') + 1] = '3'
        args[args.index('--inits') + 1] = '1'
        assert planetoid.main(args) == 0
        return {(r['split'], r['split_seed'], r['init_seed']): r['test_acc']
                for r in _lines(out)}

    full = run('full.jsonl')
    shard0 = run('s0.jsonl', '--shard', '0/2')
    shard1 = run('s1.jsonl', '--shard', '1/2')
    assert sorted(k[0] for k in shard0) == [0, 2]
    assert sorted(k[0] for k in shard1) == [1]
    # Same splits, seeds and (deterministic CPU training) results.
    assert {**shard0, **shard1} == full

    for bad in ('2/2', '1', 'a/b', '-1/2'):
        assert _exit_code(_cli(root, str(tmp_path / 'x.jsonl'),
                               f'--shard={bad}')) == 2
        assert '--shard' in capsys.readouterr().err


def test_first_split_and_selected_from(data_copy, tmp_path):
    root = os.path.dirname(data_copy('Planetoid'))
    full = str(tmp_path / 'full.jsonl')
    args = _cli(root, full, '--model', 'gcn', '--inits', '1')
    args[args.index('--splits') + 1] = '3'
    assert planetoid.main(args) == 0
    fresh = str(tmp_path / 'fresh.jsonl')
    assert planetoid.main(args[:args.index('--out') + 1] + [fresh] +
                          args[args.index('--out') + 2:] +
                          ['--first-split', '1']) == 0
    # Splits 1 and 2 of the 3-split run: same seeds, same results.
    key = lambda r: (r['split'], r['split_seed'], r['init_seed'],  # noqa
                     r['test_acc'])
    assert sorted(map(key, _lines(fresh))) == sorted(
        key(r) for r in _lines(full) if r['split'] >= 1)

    # A grid file in which the config with the best validation accuracy
    # has the worst test accuracy: selection follows validation only.
    grid = str(tmp_path / 'grid.jsonl')
    with open(grid, 'w', encoding='utf-8') as f:
        for dropout, val, test in ((0.1, 0.70, 0.90), (0.3, 0.80, 0.10)):
            for split in (0, 1):
                hp = dict(lr=0.01, weight_decay=5e-4, patience=50,
                          max_epochs=2, step_size=0.25, num_steps=2,
                          dropout=dropout, hidden=8)
                f.write(json.dumps(dict(
                    dataset='Cora', protocol='random', model='diffresnet',
                    split=split, init=0, seed=42, hparams=hp, val_acc=val,
                    test_acc=test, epochs=2, seconds=1.0)) + '\n')
    out = str(tmp_path / 'confirm.jsonl')
    args = _cli(root, out, '--model', 'diffresnet', 'gcn', '--inits', '1',
                '--selected-from', grid, '--first-split', '1')
    # --selected-from fixes every hyper-parameter, --max-epochs included.
    assert _exit_code(args) == 2
    i = args.index('--max-epochs')
    assert planetoid.main(args[:i] + args[i + 2:]) == 0
    lines = _lines(out)
    assert sorted((r['model'], r['split']) for r in lines) == [
        ('diffresnet', 1), ('gcn', 1)]
    dr = next(r for r in lines if r['model'] == 'diffresnet')
    assert dr['hparams']['dropout'] == 0.3 and dr['epochs'] == 2
    gcn = next(r for r in lines if r['model'] == 'gcn')
    assert gcn['hparams']['hidden'] == 64  # Its defaults.
    assert gcn['hparams']['max_epochs'] == 10000


def test_offline_missing_data_message(tmp_path, capsys):
    out = str(tmp_path / 'x.jsonl')
    code = _exit_code(_cli(str(tmp_path / 'empty'), out, '--model', 'gcn'))
    err = capsys.readouterr().err
    assert code == 2
    assert 'Traceback' not in err
    assert "Dataset 'Cora' (protocol 'random') is not available" in err
    assert os.path.join('Planetoid', 'Cora', 'raw', 'ind.cora.x') in err
    assert os.path.join('Planetoid', 'Cora', 'raw', 'ind.cora.test.index') \
        in err
    assert not os.path.exists(out)

    code = _exit_code(_cli(str(tmp_path / 'empty'), out, '--model', 'gcn',
                           '--protocol', 'geom-gcn', '--dataset', 'Texas'))
    err = capsys.readouterr().err
    assert code == 2 and 'Traceback' not in err
    assert os.path.join('WebKB', 'texas', 'raw',
                        'texas_split_0.6_0.2_9.npz') in err


def test_read_only_root_is_copied_to_cache(data_copy, tmp_path):
    src = data_copy('Planetoid')
    root = tmp_path / 'ro'
    os.makedirs(root / 'Planetoid' / 'Cora' / 'raw')
    for name in os.listdir(os.path.join(src, 'Cora', 'raw')):
        with open(os.path.join(src, 'Cora', 'raw', name), 'rb') as f:
            (root / 'Planetoid' / 'Cora' / 'raw' / name).write_bytes(f.read())
    for dirpath, _, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)
    try:
        before = sorted(os.walk(root))
        cache = str(tmp_path / 'cache')
        out = str(tmp_path / 'ro.jsonl')
        assert planetoid.main(
            _cli(str(root), out, '--model', 'mlp', '--splits', '1',
                 '--inits', '1', cache=cache)) == 0
        assert len(_lines(out)) == 1
        assert sorted(os.walk(root)) == before  # Nothing written there.
        assert os.path.isdir(os.path.join(cache, 'Planetoid', 'Cora',
                                          'processed'))
    finally:
        for dirpath, _, _ in os.walk(root):
            os.chmod(dirpath, 0o755)


def test_usage_errors_exit_2_before_any_work(tmp_path, capsys):
    assert _exit_code(['--dataset', 'Coraa', '--out', 'x.jsonl']) == 2
    assert "error: Unknown dataset 'Coraa'" in capsys.readouterr().err
    empty = str(tmp_path / 'empty')  # No data: loading would fail.
    out = str(tmp_path / 'out' / 'x.jsonl')
    bad = [
        (['--splits', '0'], '--splits'),
        (['--inits', 'two'], '--inits'),
        (['--dropout', '1.5'], '--dropout'),
        (['--hidden', '0'], '--hidden'),
        (['--step-size', '-0.1'], '--step-size'),
        (['--seed', '-1'], '--seed'),
        (['--threads', '0'], '--threads'),
        (['--grid', 'dropout=0.5,1'], '--grid dropout'),
        (['--grid', 'step_size'], '--grid entries'),
        (['--model', 'gcn3'], "Unknown model 'gcn3'"),
        (['--protocol', 'fixed'], "Unknown protocol 'fixed'"),
        (['--device', 'tpu'], "--device 'tpu'"),
        (['--out', str(tmp_path)], '--out'),
    ]
    for extra, what in bad:
        assert _exit_code(_cli(empty, out, *extra)) == 2, extra
        err = capsys.readouterr().err
        assert err.count('error:') == 1 and what in err, (extra, err)
        assert 'Traceback' not in err and 'not available' not in err
    assert not os.path.exists(out)
    assert _exit_code(['--summary', str(tmp_path / 'none.jsonl')]) == 2
    assert 'error: --summary: no such file' in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize('dataset', list(DATASETS))
def test_every_dataset_model_protocol(dataset, tmp_path):
    # One epoch of every model on every dataset and protocol it has.
    if not os.path.isdir(SHARED):
        pytest.skip('no shared data')
    spec = DATASETS[dataset]
    protocols = ['geom-gcn', 'random']
    if spec.pyg_class == 'Planetoid':
        protocols.append('public')
    for protocol in protocols:
        out = str(tmp_path / f'{protocol}.jsonl')
        code = _exit_code([
            '--dataset', dataset, '--protocol', protocol, '--model',
            *MODELS, '--splits', '1', '--inits', '1',
            '--max-epochs', '1', '--root', SHARED, '--cache',
            str(tmp_path / 'cache'), '--offline', '--out', out, '--hidden',
            '16'
        ])
        if protocol == 'random' and code == 2 and dataset in (
                'cornell', 'texas', 'wisconsin'):
            continue  # Classes smaller than 50 nodes: clear error instead.
        assert code == 0, (dataset, protocol)
        assert len(_lines(out)) == len(MODELS)


def test_results_file_faults(data_copy, tmp_path, capsys):
    root = os.path.dirname(data_copy('Planetoid'))
    out = str(tmp_path / 'runs.jsonl')
    args = _cli(root, out, '--model', 'gcn', '--hidden', '8')
    args[args.index('--inits') + 1] = '1'
    assert planetoid.main(args) == 0
    lines = _lines(out)
    assert len(lines) == 2
    capsys.readouterr()

    def summary(*extra):
        code = _exit_code(['--summary', out, '--summary-out',
                           str(tmp_path / 's'), *extra])
        return code, capsys.readouterr()

    # A complete last record without its newline is kept, not redone.
    with open(out, 'rb') as f:
        data = f.read()
    with open(out, 'wb') as f:
        f.write(data.rstrip(b'\n'))
    code, cap = summary()
    assert code == 0 and '| Cora | random | gcn | 2 (2) |' in cap.out
    assert planetoid.main(args) == 0
    assert '0 runs to do' in capsys.readouterr().err
    with open(out, 'rb') as f:
        assert f.read() == data

    # A bad line stops resume and the summary with FILE:LINE, and the file
    # stays as it is; --skip-bad-lines goes on with a warning.
    first, second = data.splitlines(keepends=True)
    broken = first + b'{"dataset": "Cora", "mod\n' + second
    with open(out, 'wb') as f:
        f.write(broken)
    assert _exit_code(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: {out}:2: not a JSON record')
    assert '--skip-bad-lines' in err and 'Traceback' not in err
    code, cap = summary()
    assert code == 2 and cap.err.startswith(f'error: {out}:2:')
    assert planetoid.main(args + ['--skip-bad-lines']) == 0
    err = capsys.readouterr().err
    assert f'warning: {out}:2:' in err and '0 runs to do' in err
    code, cap = summary('--skip-bad-lines')
    assert code == 0 and '| Cora | random | gcn | 2 (2) |' in cap.out
    with open(out, 'rb') as f:
        assert f.read() == broken

    # A second writer on the same file is refused before any work.
    with open(out, 'wb') as f:
        f.write(data)
    from benchmarks.common import JSONLResults
    with JSONLResults(out, ('dataset', )):
        assert _exit_code(args) == 2
        err = capsys.readouterr().err
        assert 'is being written by another process' in err
    with open(out, 'rb') as f:
        assert f.read() == data
