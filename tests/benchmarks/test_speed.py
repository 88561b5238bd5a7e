import json
import os

import pytest
import torch
from bench_loader import load_benchmark

from benchmarks.common.cli import run_main
from benchmarks.speed.models import build

speed = load_benchmark('speed')
SHARED_DATA = os.environ.get(
    'TGD_SHARED_DATA',
    os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..',
                 'shared', 'data'))


def need_cora():
    if not os.path.isdir(os.path.join(SHARED_DATA, 'Planetoid', 'Cora',
                                      'raw')):
        pytest.skip('no shared Planetoid data (set TGD_SHARED_DATA)')


def test_tiny_run_writes_report(tmp_path, capsys):
    need_cora()
    out = str(tmp_path / 'sub' / 'speed')
    models = ['diffresnet', 'official', 'gcn']
    argv = ['--graphs', 'cora', '--root', SHARED_DATA, '--models', *models,
            '--num-steps', '3', '--repeats', '1', '--warmup', '0',
            '--mem-steps', '1', '3', '--out', out]
    assert run_main(speed.main, argv) == 0
    with open(out + '.json') as f:
        report = json.load(f)
    r = report['results']['cora']
    assert list(r['timing']) == models
    for v in r['timing'].values():
        assert set(v) == {'epoch_ms', 'forward_ms', 'backward_ms'}
        assert all(t > 0 for t in v.values())
    p = r['propagation']
    assert p['diff_step_ms'] == pytest.approx(p['diff_eval_ms'] / 3)
    assert p['appnp_step_ms'] == pytest.approx(p['appnp_eval_ms'] / 3)
    # Peak memory from the child process, for every model but gcn.
    assert set(r['memory']) == {f'{m}@{k}' for m in models if m != 'gcn'
                                for k in (1, 3)}
    meta = report['meta']
    assert (meta['num_steps'], meta['mem_steps'], meta['models']) == \
        (3, [1, 3], models)
    md = open(out + '.md').read()
    assert '| cora | official |' in md and 'peak MiB K=3' in md
    assert '| cora | gcn |' in md and '| cora | diffresnet |' in md


def test_models_agree_with_the_official_code():
    # build() gives both the same K and step size: with the same weights
    # and no dropout they give the same logits.
    torch.manual_seed(0)
    n = 12
    ei = torch.randint(0, n, (2, 40))
    ei = ei[:, ei[0] != ei[1]]
    ei = torch.cat([ei, ei.flip(0)], 1).unique(dim=1)
    x = torch.rand(n, 5)
    g = dict(x=x, x_in=x, edge_index=ei, num_classes=3)
    ours, run_ours = build('diffresnet', g, 4, 0.3, 0.0)
    official, run_official = build('official', g, 4, 0.3, 0.0)
    official.linear.load_state_dict(ours.lins[0].state_dict())
    official.classifier.load_state_dict(ours.lin_out.state_dict())
    ours.eval(), official.eval()
    with torch.no_grad():
        assert torch.allclose(run_ours(), run_official(), atol=1e-5)


def test_usage_errors_exit_2_before_any_work(tmp_path, capsys):
    assert run_main(speed.main, ['--root', str(tmp_path), '--out',
                                 str(tmp_path / 'speed')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --root: no Planetoid files at')
    assert 'Traceback' not in err
    assert run_main(speed.main, ['--graphs', 'arxiv-synthetic', '--device',
                                 'tpu', '--out',
                                 str(tmp_path / 'speed')]) == 2
    assert capsys.readouterr().err.startswith("error: --device 'tpu'")
    (tmp_path / 'taken.json').mkdir()
    assert run_main(speed.main, ['--graphs', 'arxiv-synthetic', '--out',
                                 str(tmp_path / 'taken')]) == 2
    assert capsys.readouterr().err.startswith('error: --out')
    assert not os.path.exists(tmp_path / 'speed.json')
