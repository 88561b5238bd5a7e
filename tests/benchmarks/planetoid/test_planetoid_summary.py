import json
import math

import numpy as np

from benchmarks.planetoid import summary


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
    rows, paired = summary.summarize(recs)
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
    md = summary.format_markdown(rows, paired)
    assert '| Cora | random | diffresnet | 6 (3) | 82.7 ± 2.9 |' in md
    tex = summary.format_latex(rows, paired)
    assert r'\begin{tabular}' in tex and r'$82.7 \pm 2.9$' in tex


def test_summary_single_split_pairs_inits():
    recs = [_record('diffresnet', 0, i, a)
            for i, a in enumerate([0.8, 0.82, 0.84])]
    recs += [_record('gcn', 0, i, a) for i, a in enumerate([0.8, 0.8, 0.8])]
    recs += [_record('gcn', 0, 7, 0.5)]  # Not shared: ignored in the pairs.
    rows, paired = summary.summarize(recs)
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
    (selected, ) = summary.select_configs(recs).values()
    assert [r['hparams'] for r in selected] == [a] * 3
    grid = summary.grid_rows(recs + [dict(recs[0])])
    assert [(g['hparams'], g['runs'], g['selected']) for g in grid] == [
        ('lr=0.01', 3, True), ('lr=0.1', 2, False)]
    assert math.isclose(grid[0]['selection_val'], 0.8)
    assert math.isclose(grid[0]['val_mean'], 0.7)
    assert math.isclose(grid[1]['test_mean'], 0.9)
    # With no run in common, every config is judged on all its runs.
    recs[2]['split'] = 5
    assert summary._selection_val({'x': recs[:1], 'y': recs[2:3]}) == {
        'x': 0.8, 'y': 0.5}
    path = tmp_path / 'r.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in recs))
    assert summary.run_summary([str(path)], str(tmp_path / 's')) == 0
    md = (tmp_path / 's.md').read_text()
    assert '| Cora | random | diffresnet | lr=0.01 | 3 |' in md
    assert (tmp_path / 's_grid.csv').read_text().count('\n') == 3


def test_grid_rows_name_scheme_and_learnable_step():
    # Configs that differ only in the diffusion scheme or a trainable step
    # size must be told apart in the tables.
    base = {'step_size': 4.0, 'num_steps': 2, 'hidden': 64}
    hps = [base, {**base, 'scheme': 'implicit'},
           {**base, 'learnable_step': True},
           {**base, 'scheme': 'implicit', 'learnable_step': True}]
    recs = [_record('diffresnet', 0, 0, 0.8, val=0.8 - 0.01 * i, hp=hp)
            for i, hp in enumerate(hps)]
    names = [g['hparams'] for g in summary.grid_rows(recs)]
    assert names == [
        'step_size=4.0 num_steps=2 hidden=64',
        'scheme=implicit step_size=4.0 num_steps=2 hidden=64',
        'step_size=4.0 num_steps=2 hidden=64 learnable_step=True',
        'scheme=implicit step_size=4.0 num_steps=2 hidden=64 '
        'learnable_step=True']
