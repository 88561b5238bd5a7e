import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bench_loader import load_benchmark

from torch_geometric_diff.nn.cpu_kernels import cpu_kernels_loaded

planetoid = load_benchmark('planetoid')

SHARED = os.environ.get(
    'TGD_SHARED_DATA',
    os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared',
                 'data'))


def _lines(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f]


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
        assert planetoid.main(_cli(root, str(tmp_path / 'x.jsonl'),
                                   f'--shard={bad}')) == 2
        assert '--shard' in capsys.readouterr().err


def test_offline_missing_data_message(tmp_path, capsys):
    out = str(tmp_path / 'x.jsonl')
    code = planetoid.main(_cli(str(tmp_path / 'empty'), out, '--model',
                               'gcn'))
    err = capsys.readouterr().err
    assert code == 2
    assert 'Traceback' not in err
    assert "Dataset 'Cora' (protocol 'random') is not available" in err
    assert os.path.join('Planetoid', 'Cora', 'raw', 'ind.cora.x') in err
    assert os.path.join('Planetoid', 'Cora', 'raw', 'ind.cora.test.index') \
        in err
    assert not os.path.exists(out)

    code = planetoid.main(_cli(str(tmp_path / 'empty'), out, '--model', 'gcn',
                               '--protocol', 'geom-gcn', '--dataset',
                               'Texas'))
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


def _record(model, split, init, test, val=None, hp=None, dataset='Cora'):
    return {
        'dataset': dataset, 'protocol': 'random', 'model': model,
        'split': split, 'init': init, 'seed': 42,
        'hparams': hp or {'lr': 0.01}, 'test_acc': test,
        'val_acc': test if val is None else val, 'epochs': 10,
        'seconds': 1.0
    }


def test_summary_math_on_fixed_numbers():
    # diffresnet: per-split means 0.80, 0.82, 0.86; gcn: 0.79, 0.80, 0.81.
    acc = {
        'diffresnet': [[0.79, 0.81], [0.82, 0.82], [0.85, 0.87]],
        'gcn': [[0.78, 0.80], [0.80, 0.80], [0.81, 0.81]],
    }
    recs = [
        _record(m, s, i, a) for m, rows in acc.items()
        for s, pair in enumerate(rows) for i, a in enumerate(pair)
    ]
    # A worse config by validation (but better test) must not be selected.
    recs += [
        _record('gcn', s, i, 0.99, val=0.1, hp={'lr': 0.1}) for s in range(3)
        for i in range(2)
    ]
    recs.append(dict(recs[0]))  # A duplicate is counted once.
    rows, paired = planetoid.summarize(recs)
    by = {r['model']: r for r in rows}
    d = np.array([0.79, 0.81, 0.82, 0.82, 0.85, 0.87])
    assert by['diffresnet']['runs'] == 6 and by['diffresnet']['splits'] == 3
    assert math.isclose(by['diffresnet']['test_mean'], d.mean())
    assert math.isclose(by['diffresnet']['test_std'], d.std(ddof=1))
    # CI over the split means [0.80, 0.82, 0.86]: s = 0.030551, t_{.975,2}
    # = 4.302653.
    half = 4.302652729911275 * np.std([0.80, 0.82, 0.86], ddof=1) / 3**0.5
    assert math.isclose(by['diffresnet']['ci_low'], 0.08 / 3 + 0.8 - half)
    assert math.isclose(by['diffresnet']['ci_high'], 0.08 / 3 + 0.8 + half)
    assert by['gcn']['hparams'] == 'lr=0.01'
    assert math.isclose(by['gcn']['test_mean'], 0.80)
    (p, ) = paired
    assert p['baseline'] == 'gcn' and p['unit'] == 'split' and p['n'] == 3
    assert p['pairs'] == 6
    # Differences per split: 0.01, 0.02, 0.05 -> t = 2.2188 (2 d.o.f.),
    # whose two-sided p-value has the closed form 1 - t / sqrt(2 + t^2).
    diff = np.array([0.01, 0.02, 0.05])
    t = diff.mean() / (diff.std(ddof=1) / 3**0.5)
    assert math.isclose(t, 2.2188008, rel_tol=1e-6)
    assert math.isclose(p['diff_mean'], diff.mean())
    assert math.isclose(p['t_pvalue'], 1 - t / math.sqrt(2 + t * t))
    assert p['t_test'] == 'paired t-test'
    # Wilcoxon, 3 positive differences: exact two-sided p = 2 / 2^3.
    assert p['wilcoxon_test'] == 'Wilcoxon signed-rank'
    assert math.isclose(p['wilcoxon_pvalue'], 0.25)
    assert (p['wins'], p['ties'], p['losses']) == (3, 0, 0)
    md = planetoid.format_markdown(rows, paired)
    assert '| Cora | random | diffresnet | 6 (3) | 82.7 ± 2.9 |' in md
    tex = planetoid.format_latex(rows, paired)
    assert r'\begin{tabular}' in tex and r'$82.7 \pm 2.9$' in tex


def test_summary_single_split_pairs_inits():
    recs = [_record('diffresnet', 0, i, a)
            for i, a in enumerate([0.8, 0.82, 0.84])]
    recs += [_record('gcn', 0, i, a) for i, a in enumerate([0.8, 0.8, 0.8])]
    recs += [_record('gcn', 0, 7, 0.5)]  # Not shared: ignored in the pairs.
    rows, paired = planetoid.summarize(recs)
    assert rows[0]['ci_unit'] == 'run'
    assert paired[0]['unit'] == 'init' and paired[0]['n'] == 3
    assert (paired[0]['wins'], paired[0]['ties']) == (2, 1)


def test_selection_compares_configs_on_shared_runs(tmp_path):
    # A: val 0.80 on splits 0-1 and 0.50 on split 2, which B did not run.
    # Over all runs B wins (0.79 > 0.70); on the shared runs A does.
    a, b = {'lr': 0.01}, {'lr': 0.1}
    recs = [_record('diffresnet', s, 0, 0.7, val=v, hp=a)
            for s, v in enumerate([0.8, 0.8, 0.5])]
    recs += [_record('diffresnet', s, 0, 0.9, val=0.79, hp=b)
             for s in range(2)]
    (selected, ) = planetoid.select_configs(recs).values()
    assert [r['hparams'] for r in selected] == [a] * 3
    grid = planetoid.grid_rows(recs + [dict(recs[0])])
    assert [(g['hparams'], g['runs'], g['selected']) for g in grid] == [
        ('lr=0.01', 3, True), ('lr=0.1', 2, False)]
    assert math.isclose(grid[0]['selection_val'], 0.8)
    assert math.isclose(grid[0]['val_mean'], 0.7)
    assert math.isclose(grid[1]['test_mean'], 0.9)
    # With no run in common, every config is judged on all its runs.
    recs[2]['split'] = 5
    assert planetoid._selection_val({'x': recs[:1], 'y': recs[2:3]}) == {
        'x': 0.8, 'y': 0.5}
    path = tmp_path / 'r.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in recs))
    assert planetoid.run_summary([str(path)], str(tmp_path / 's')) == 0
    md = (tmp_path / 's.md').read_text()
    assert '| Cora | random | diffresnet | lr=0.01 | 3 |' in md
    assert (tmp_path / 's_grid.csv').read_text().count('\n') == 3


def test_grid_and_hparams():
    grid = planetoid.parse_grid(['step_size=0.1,0.25', 'num-steps=10,20',
                                 'hidden=none,64'])
    assert len(grid) == 8
    assert {'step_size': 0.1, 'num_steps': 10, 'hidden': None} in grid
    assert {'step_size': 0.25, 'num_steps': 20, 'hidden': 64} in grid
    with pytest.raises(ValueError, match='Unknown --grid key'):
        planetoid.parse_grid(['alpha=1'])
    cora = planetoid.DATASETS['cora']
    hp = planetoid.model_hparams('diffresnet', cora, {'dropout': 0.5,
                                                      'heads': 3})
    assert hp == dict(lr=0.01, weight_decay=5e-4, patience=50,
                      max_epochs=10000, step_size=0.25, num_steps=20,
                      dropout=0.5, hidden=None)
    gcn = planetoid.model_hparams('gcn', cora, {'step_size': 0.1})
    assert 'step_size' not in gcn and gcn['hidden'] == 64
    assert planetoid.main(['--dataset', 'Coraa', '--out', 'x.jsonl']) == 2


def test_input_dropout_sparse():
    torch.manual_seed(0)
    x = (torch.rand(50, 40) < 0.2).float() * 3.0
    out = planetoid.input_dropout(x.to_sparse_csr(), 0.5, True).to_dense()
    kept = out != 0
    assert bool((kept <= (x != 0)).all())  # Zeros stay zero.
    assert torch.equal(out[kept], torch.full_like(out[kept], 6.0))
    frac = float(kept.sum()) / float((x != 0).sum())
    assert 0.4 < frac < 0.6
    assert planetoid.input_dropout(x, 0.5, False) is x


def test_roc_auc():
    score = torch.tensor([0.1, 0.4, 0.35, 0.8])
    y = torch.tensor([0, 0, 1, 1])
    assert math.isclose(planetoid.roc_auc(score, y), 0.75)
    assert math.isclose(
        planetoid.roc_auc(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])),
        0.5)


def test_expected_raw_files_match_shared_layout():
    if not os.path.isdir(SHARED):
        pytest.skip('no shared data')
    for key, spec in planetoid.DATASETS.items():
        protocols = ['geom-gcn'] + (['public', 'random'] if spec.pyg_class
                                    == 'Planetoid' else [])
        for protocol in protocols:
            paths = planetoid.expected_raw_paths(
                spec, protocol, os.path.join(SHARED, spec.folder))
            assert paths and all(os.path.isfile(p) for p in paths), \
                (key, protocol)


@pytest.mark.slow
@pytest.mark.parametrize('dataset', list(planetoid.DATASETS))
def test_every_dataset_model_protocol(dataset, tmp_path):
    # One epoch of every model on every dataset and protocol it has.
    if not os.path.isdir(SHARED):
        pytest.skip('no shared data')
    spec = planetoid.DATASETS[dataset]
    protocols = ['geom-gcn', 'random']
    if spec.pyg_class == 'Planetoid':
        protocols.append('public')
    for protocol in protocols:
        out = str(tmp_path / f'{protocol}.jsonl')
        code = planetoid.main([
            '--dataset', dataset, '--protocol', protocol, '--model',
            *planetoid.MODELS, '--splits', '1', '--inits', '1',
            '--max-epochs', '1', '--root', SHARED, '--cache',
            str(tmp_path / 'cache'), '--offline', '--out', out, '--hidden',
            '16'
        ])
        if protocol == 'random' and code == 2 and dataset in (
                'cornell', 'texas', 'wisconsin'):
            continue  # Classes smaller than 50 nodes: clear error instead.
        assert code == 0, (dataset, protocol)
        assert len(_lines(out)) == len(planetoid.MODELS)


def _toy_graph(num_classes=3, per_class=55, features=24, seed=0):
    from torch_geometric.data import Data
    from torch_geometric.utils import erdos_renyi_graph
    gen = torch.Generator().manual_seed(seed)
    n = num_classes * per_class
    x = (torch.rand(n, features, generator=gen) < 0.3).float()
    x[:, 0] = 1.0  # No empty rows.
    y = torch.arange(n) % num_classes
    torch.manual_seed(seed)
    edge_index = erdos_renyi_graph(n, 0.05)
    data = Data(x=x, edge_index=edge_index, y=y, num_nodes=n)
    return planetoid.preprocess(data, planetoid.DATASETS['cora'], 'random',
                                1, 1, 42)


def test_official_model_is_diffresnet():
    # The official code's model in the harness against DiffResNetGNN with the
    # same weights: equal logits and gradients (dropout off), and built from
    # the init seed exactly as the official code builds its model.
    g = _toy_graph()
    cora = planetoid.DATASETS['cora']
    hp_off = planetoid.model_hparams('official', cora, {'hidden': 64})
    assert 'hidden' not in hp_off and hp_off['num_steps'] == 20
    torch.manual_seed(123)
    off = planetoid.build_model('official', g, hp_off)
    torch.manual_seed(123)
    lin = torch.nn.Linear(g.x.size(1), g.x.size(1))
    cls = torch.nn.Linear(g.x.size(1), g.num_classes)
    assert torch.equal(off.model.linear.weight, lin.weight)
    assert torch.equal(off.model.classifier.bias, cls.bias)

    ours = planetoid.build_model('diffresnet', g,
                                 planetoid.model_hparams('diffresnet', cora,
                                                         {}))
    ours.model.lins[0].load_state_dict(off.model.linear.state_dict())
    ours.model.lin_out.load_state_dict(off.model.classifier.state_dict())
    off.eval(), ours.eval()
    out_off, out_ours = off(g.x_dense, g), ours(g.x, g)
    assert torch.allclose(out_off, out_ours, atol=1e-5)
    assert not torch.allclose(out_off, out_off.mean(0), atol=1e-3)
    loss_off = F.cross_entropy(out_off, g.y)
    loss_ours = F.cross_entropy(out_ours, g.y)
    loss_off.backward(), loss_ours.backward()
    for a, b in ((off.model.linear, ours.model.lins[0]),
                 (off.model.classifier, ours.model.lin_out)):
        assert torch.allclose(a.weight.grad, b.weight.grad, atol=1e-5)
        assert torch.allclose(a.bias.grad, b.bias.grad, atol=1e-5)


def test_official_model_trains_in_the_harness():
    g = _toy_graph()
    hp = planetoid.model_hparams('official', planetoid.DATASETS['cora'],
                                 {'max_epochs': 3, 'num_steps': 4})
    res = planetoid.train_single('official', g, g.splits[0], 7, hp)
    assert res['epochs'] == 3 and 0.0 <= res['test_acc'] <= 1.0
    # Same init seed, same run: the harness's seeding covers the official
    # model's F.dropout too.
    assert planetoid.train_single('official', g, g.splits[0], 7,
                                  hp)['val_loss'] == res['val_loss']
