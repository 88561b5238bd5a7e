import inspect
import json
import os

import pytest
import torch
from bench_loader import load_benchmark

from benchmarks.common.cli import run_main
from benchmarks.speed.models import build
from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion import cpu_kernels

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
    # The default runs section epoch alone.
    assert set(r) == {'timing', 'propagation', 'memory', 'epoch_config'}
    assert r['epoch_config']['x']['diffresnet'] == 'sparse_csr'
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
    assert report['meta']['sections'] == ['epoch']
    assert '- cora / epoch: cached=True' in md


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


SECTION_ARGV = ['--graphs', 'tiny-synthetic', '--num-steps', '2',
                '--repeats', '1', '--warmup', '0', '--thread-counts', '1',
                '2', '--gammas', '1', '4']


@pytest.fixture(scope='module')
def sections_report(tmp_path_factory):
    # One run of every section but epoch on the tiny random graph.
    out = str(tmp_path_factory.mktemp('speed') / 'sub' / 'sections')
    argv = SECTION_ARGV + ['--sections', 'masks,threads', 'uncached',
                           'implicit', '--out', out]
    assert run_main(speed.main, argv) == 0
    with open(out + '.json') as f:
        report = json.load(f)
    with open(out + '.md') as f:
        md = f.read()
    return report, md


def test_sections_write_their_configuration(sections_report):
    report, md = sections_report
    meta = report['meta']
    assert meta['sections'] == ['masks', 'threads', 'uncached', 'implicit']
    assert len(meta['load_start']) == 3 and len(meta['load_end']) == 3
    r = report['results']['tiny-synthetic']
    assert set(r) == {'masks', 'threads', 'uncached', 'implicit'}
    for name in r:
        conf = r[name]['config']
        assert len(conf['load_start']) == 3 and len(conf['load_end']) == 3
        assert conf['seconds'] >= 0 and conf['cpu_seconds'] >= 0
        assert f'- tiny-synthetic / {name}: ' in md
    assert r['masks']['config']['cached'] is True
    assert r['masks']['config']['x'] == 'dense'
    assert r['threads']['config']['x'] == 'sparse_csr'
    assert r['threads']['config']['x_official'] == 'dense'
    assert r['uncached']['config']['threads'] == torch.get_num_threads()
    assert 'Configuration: ' in md and 'speed-up vs official' not in md


def test_masks_section(sections_report):
    report, md = sections_report
    m = report['results']['tiny-synthetic']['masks']
    assert m['config']['width'] == 24  # The graph's own features.
    assert (m['config']['num_steps'], m['config']['dropout']) == (2, 0.25)
    assert set(m['paths']) == {'cpp', 'torch'}
    assert m['paths']['torch']['path_taken'] == 'torch'
    for v in m['paths'].values():
        assert v['overhead'] == pytest.approx(
            (v['on_ms'] - v['off_ms']) / v['off_ms'])
        assert v['on_ms'] > 0 and v['off_ms'] > 0
        s = v['step']
        assert s['mask_share'] == pytest.approx(
            (s['step_on_ms'] - s['step_off_ms']) / s['step_on_ms'])
    # The parts of a step exist where the engine runs them separately.
    parts = {'mask_generation_ms', 'mask_application_ms',
             'sparse_product_ms'}
    assert parts <= set(m['paths']['torch']['step'])
    if m['paths']['cpp']['path_taken'] == 'cpp':
        assert not parts & set(m['paths']['cpp']['step'])
    assert '| tiny-synthetic | 200 | 24 | 2 | 0.25 | torch |' in md
    assert 'mask generation (ms)' in md


def test_threads_section(sections_report):
    report, md = sections_report
    t = report['results']['tiny-synthetic']['threads']
    assert set(t['per_count']) == {'1', '2'}
    for c, per in t['per_count'].items():
        assert set(per) == {'diffresnet', 'official'}
        assert t['speedup'][c]['diffresnet'] == pytest.approx(
            per['official']['epoch_ms'] / per['diffresnet']['epoch_ms'])
    for m in ('diffresnet', 'official'):
        best = min(t['per_count'].values(), key=lambda p: p[m]['epoch_ms'])
        assert t['best'][m]['epoch_ms'] == best[m]['epoch_ms']
    best = t['best']
    assert t['speedup_best']['diffresnet'] == pytest.approx(
        best['official']['epoch_ms'] / best['diffresnet']['epoch_ms'])
    assert '| tiny-synthetic | 2 | diffresnet | sparse_csr |' in md


def test_uncached_section(sections_report):
    report, md = sections_report
    u = report['results']['tiny-synthetic']['uncached']
    assert u['config']['width'] == 64 and u['config']['num_steps'] == 2
    assert u['ratio_eval'] == pytest.approx(u['uncached_eval_ms'] /
                                            u['cached_eval_ms'])
    assert u['ratio_train'] == pytest.approx(u['uncached_train_ms'] /
                                             u['cached_train_ms'])
    assert u['build_ms'] == u['uncached_build_ms'] > 0
    assert '| tiny-synthetic | 64 | 2 | uncached |' in md
    # With validate=False where the layer offers it.
    validate = 'validate' in inspect.signature(DiffConv.__init__).parameters
    assert ('unvalidated' in u['config']['layers']) == validate
    if validate:
        assert u['ratio_eval_unvalidated'] == pytest.approx(
            u['unvalidated_eval_ms'] / u['cached_eval_ms'])
        assert '| tiny-synthetic | 64 | 2 | unvalidated |' in md


def test_implicit_section(sections_report):
    report, md = sections_report
    i = report['results']['tiny-synthetic']['implicit']
    steps = i['steps']
    implicit = {'implicit@1', 'implicit@4'}
    if cpu_kernels() is not None:  # The same solves on the PyTorch CG too.
        implicit |= {'implicit-torch@1', 'implicit-torch@4'}
        assert steps['implicit-torch@4']['gamma'] == 4
        assert 'implicit (gamma 4, PyTorch CG)' in md
    assert i['config']['cg'] == ('cpp and torch' if cpu_kernels() is not None
                                 else 'torch')
    implicit |= {'implicit-plain@1', 'implicit-plain@4'}
    assert set(steps) == {'explicit', 'appnp'} | implicit
    assert steps['explicit']['vs_explicit'] == 1.0
    for gamma in (1, 4):
        for key in ('implicit', 'implicit-plain'):
            v = steps[f'{key}@{gamma}']
            assert v['gamma'] == gamma and len(v['iterations']) == 2
            assert all(1 <= it <= 100 for it in v['iterations'])
            assert v['mean_iterations'] == sum(v['iterations']) / 2
            assert v['max_residual'] <= i['config']['tol']
    assert 'implicit (gamma 4, no preconditioner)' in md
    # A larger step needs at least as many CG iterations from the same x.
    assert steps['implicit@4']['mean_iterations'] >= \
        steps['implicit@1']['mean_iterations']
    assert 'implicit (gamma 4)' in md and 'APPNP (alpha 0.1)' in md


def test_kernel_path_switches_the_kernels():
    from benchmarks.speed.timing import kernel_path
    from torch_geometric_diff.nn.diffusion import cpu_kernels
    before = os.environ.get('TGD_DISABLE_CPP')
    with kernel_path('torch') as taken:
        assert taken == 'torch' and cpu_kernels() is None
    with kernel_path('cpp') as taken:
        assert taken == ('cpp' if cpu_kernels() is not None else 'torch')
    assert os.environ.get('TGD_DISABLE_CPP') == before
    with pytest.raises(ValueError, match='kernel path'):
        with kernel_path('cuda'):
            pass


def test_threads_section_restores_the_thread_count():
    from benchmarks.speed.graphs import load_graph
    from benchmarks.speed.threads import run_threads
    before = torch.get_num_threads()
    g = load_graph('tiny-synthetic', None, torch.device('cpu'))
    run_threads(g, ['diffresnet'], [1], num_steps=1, step_size=0.25,
                dropout=0.25, warmup=0, repeats=1, seed=0,
                device=torch.device('cpu'))
    assert torch.get_num_threads() == before


@pytest.mark.parametrize('argv,expect', [
    (['--sections', 'epoch,foo'], "--sections: unknown section 'foo'"),
    (['--sections', ','], '--sections: no section given'),
    (['--sections', 'masks', '--dropout', '0'], '--dropout must be > 0'),
])
def test_section_usage_errors(tmp_path, capsys, argv, expect):
    out = str(tmp_path / 'speed')
    assert run_main(speed.main, ['--graphs', 'tiny-synthetic', '--out', out]
                    + argv) == 2
    assert capsys.readouterr().err.startswith('error: ' + expect)
    assert not os.listdir(tmp_path)


def test_parse_sections_keeps_order_without_repeats():
    from benchmarks.speed.sections import parse_sections
    assert parse_sections(['implicit,masks', 'masks', 'epoch']) == \
        ['implicit', 'masks', 'epoch']
