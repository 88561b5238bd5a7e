import json
import os

import numpy as np
import pytest
import torch
from bench_loader import load_benchmark

from benchmarks.common.cli import run_main


def test_tiny_end_to_end(tmp_path):
    pytest.importorskip('sklearn')
    fewshot = load_benchmark('fewshot')
    out = str(tmp_path / 'fs')
    common = ['--episodes', '6', '--shot', '1', '--epochs', '5',
              '--no-progress']
    rows = fewshot.run(fewshot.parse_args(
        ['--out', out, '--dataset', 'digits', '--save-features',
         str(tmp_path / 'feat')] + common))
    assert [r['method'] for r in rows] == list(fewshot.METHODS)
    for f in ['results.jsonl', 'summary.csv', 'summary.json', 'table.md',
              'episodes_digits_1shot.npz']:
        assert os.path.getsize(os.path.join(out, f)) > 0

    # Mean, CI and paired difference agree with the per-episode record.
    acc = np.load(os.path.join(out, 'episodes_digits_1shot.npz'))
    assert acc['simpleshot'].shape == (6, )
    by = {r['method']: r for r in rows}
    d = acc['diffusion'] - acc['simpleshot']
    assert by['diffusion']['acc'] == pytest.approx(acc['diffusion'].mean())
    assert by['diffusion']['diff_vs_simpleshot'] == pytest.approx(d.mean())
    assert by['simpleshot']['ci95'] == pytest.approx(
        1.96 * acc['simpleshot'].std(ddof=1) / np.sqrt(6))

    # The same features from a .npz file give the same numbers.
    rows2 = fewshot.run(fewshot.parse_args(
        ['--out', str(tmp_path / 'fs2'), '--features',
         str(tmp_path / 'feat_digits.npz')] + common))
    assert [r['acc'] for r in rows2] == pytest.approx(
        [r['acc'] for r in rows])
    with open(os.path.join(out, 'summary.json')) as f:
        assert len(json.load(f)) == 4


def test_user_features_pt(tmp_path):
    fewshot = load_benchmark('fewshot')
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g) + torch.arange(6).repeat_interleave(
        10).view(-1, 1) * 3.0
    y = torch.arange(6).repeat_interleave(10)
    torch.save({'features': x, 'labels': y}, str(tmp_path / 'mine.pt'))
    rows = fewshot.run(fewshot.parse_args(
        ['--out', str(tmp_path / 'o'), '--features',
         str(tmp_path / 'mine.pt'), '--way', '3', '--shot', '2', '--query',
         '4', '--episodes', '3', '--methods', 'simpleshot', 'laplacianshot',
         '--no-progress']))
    assert [r['dataset'] for r in rows] == ['mine', 'mine']
    assert all(0 <= r['acc'] <= 100 for r in rows)


def test_usage_errors_exit_2_before_any_work(tmp_path, capsys):
    fewshot = load_benchmark('fewshot')
    out = tmp_path / 'o'
    assert run_main(fewshot.main, ['--out', str(out), '--features',
                                   str(tmp_path / 'missing.npz')]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --features: no such file " \
        f"'{tmp_path / 'missing.npz'}'\n"
    assert not (out / 'results.jsonl').exists()
    taken = tmp_path / 'file'
    taken.write_text('')
    assert run_main(fewshot.main, ['--out', str(taken)]) == 2
    assert capsys.readouterr().err.startswith('error: --out')
