import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from bench_loader import load_benchmark

pytest.importorskip('ogb')

from benchmarks.common.cli import run_main  # noqa: E402
from benchmarks.ogbn.models import (  # noqa: E402
    apply,
    build_model,
    graph_input,
    layerwise_inference,
    mean_adj,
    sym_norm_adj,
)
from benchmarks.ogbn.synthetic import (  # noqa: E402
    write_synthetic_ogb, )
from torch_geometric_diff.loader import BlockedOperator  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'benchmarks', 'ogbn.py')


bench = load_benchmark('ogbn')


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ogb'))
    write_synthetic_ogb('ogbn-arxiv', root, scale=0.005, seed=0)
    return root


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def env():
    out = dict(os.environ, OMP_NUM_THREADS='1')
    out['PYTHONPATH'] = REPO + os.pathsep + out.get('PYTHONPATH', '')
    return out


def test_full_batch_runs_and_resume(root, tmp_path, capsys):
    out = str(tmp_path / 'res.jsonl')
    argv = [
        '--dataset', 'ogbn-arxiv', '--root', root, '--model', 'diffresnet',
        'mlp', '--runs', '2', '--epochs', '3', '--hidden', '16',
        '--num-steps', '3', '--out', out, '--device', 'cpu'
    ]
    assert bench.main(argv) == 0
    records = read(out)
    assert [(r['model'], r['run']) for r in records] == [('diffresnet', 0),
                                                          ('diffresnet', 1),
                                                          ('mlp', 0),
                                                          ('mlp', 1)]
    for r in records:
        assert r['dataset'] == 'ogbn-arxiv' and r['data'] == 'synthetic'
        assert r['synthetic']['scale'] == 0.005
        assert r['config']['mode'] == 'full'
        assert len(r['losses']) == 3
        assert 1 <= r['best_epoch'] <= 3
        assert 0.0 <= r['test_at_best_valid'] <= 1.0
        assert r['peak_rss_mib'] > 0 and r['epoch_time_s'] > 0
        assert r['seed'] == r['run']
    text = capsys.readouterr().out
    assert 'SYNTHETIC stand-in, not an OGB result' in text
    assert 'Final Test:' in text and 'epoch 003' in text

    assert bench.main(argv) == 0  # Resume: nothing new.
    assert len(read(out)) == 4
    assert 'already in' in capsys.readouterr().out
    assert bench.main(argv[:-4] + ['--lr', '0.05', '--out', out,
                                   '--device', 'cpu']) == 0
    assert len(read(out)) == 8  # A new configuration runs again.


@pytest.mark.parametrize('partitioner', ['random', 'metis'])
def test_cluster_mode(root, tmp_path, partitioner):
    if partitioner == 'metis':
        pytest.importorskip('pymetis')
    out = str(tmp_path / 'res.jsonl')
    assert bench.main([
        '--dataset', 'ogbn-arxiv', '--root', root, '--model', 'diffresnet',
        'gcn', 'sage', '--mode', 'cluster', '--partitioner', partitioner,
        '--num-parts', '6', '--parts-per-batch', '2', '--runs', '1',
        '--epochs', '2', '--hidden', '16', '--num-steps', '3', '--out', out,
        '--device', 'cpu', '--operator-device', 'cpu', '--channel-chunk', '7'
    ]) == 0
    records = read(out)
    assert [r['model'] for r in records] == ['diffresnet', 'gcn', 'sage']
    for r in records:
        assert r['config']['partitioner'] == partitioner
        assert r['config']['num_parts'] == 6
        assert 0.0 <= r['test_at_best_valid'] <= 1.0


def dense_sym(edge_index, n):
    a = torch.zeros(n, n)
    a[edge_index[1], edge_index[0]] = 1
    a = a + torch.eye(n)
    d = a.sum(1).pow(-0.5)
    return d[:, None] * a * d[None, :]


def small_graph(n=20):
    gen = torch.Generator().manual_seed(0)
    from torch_geometric.utils import to_undirected
    ei = torch.randint(0, n, (2, 60), generator=gen)
    return to_undirected(ei[:, ei[0] != ei[1]], num_nodes=n)


def test_adjacency_helpers():
    n = 20
    ei = small_graph(n)
    assert torch.allclose(sym_norm_adj(ei, n).to_dense(),
                          dense_sym(ei, n), atol=1e-6)
    a = torch.zeros(n, n)
    a[ei[1], ei[0]] = 1
    mean = a / a.sum(1, keepdim=True).clamp(min=1)
    assert torch.allclose(mean_adj(ei, n).to_dense(), mean)


@pytest.mark.parametrize('name', ['gcn', 'sage', 'mlp'])
def test_baseline_layerwise_inference(name):
    torch.manual_seed(0)
    n = 20
    ei = small_graph(n)
    x = torch.randn(n, 6)
    args = bench.parse_args(['--dataset', 'ogbn-arxiv', '--hidden', '8'])
    model = build_model(name, 6, 4, cached=False,
                        **bench.model_kwargs(name, args))
    model.train()
    apply(model, x, graph_input(name, ei, n))  # Update BatchNorm statistics.
    model.eval()
    graph = graph_input(name, ei, n)
    with torch.no_grad():
        ref = apply(model, x, graph)
    op = None if graph is None else BlockedOperator(graph, max_block_nnz=9)
    out = layerwise_inference(model, x, op, 'cpu', chunk_size=7)
    assert torch.allclose(out, ref, atol=1e-5)


def _bn_eval(h, bn):
    # Batch normalization in evaluation mode, from its formula.
    return (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * \
        bn.weight + bn.bias


@pytest.mark.parametrize('name', ['gcn', 'sage', 'mlp'])
def test_baselines_are_ogbs_layer_order(name):
    # OGB's arxiv examples: layer, BatchNorm, ReLU (dropout) per hidden
    # layer, a plain last layer; written here with dense matrices.
    torch.manual_seed(0)
    n, x = 20, torch.randn(20, 6)
    ei = small_graph(n)
    model = build_model(name, 6, 4, hidden_channels=8, num_layers=3,
                        dropout=0.5)
    bns = [getattr(norm, 'module', norm) for norm in model.norms
           if isinstance(getattr(norm, 'module', norm),
                         torch.nn.BatchNorm1d)]
    assert len(bns) == 2
    for bn in bns:  # Non-trivial running statistics.
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
    model.eval()
    a = torch.zeros(n, n)
    a[ei[1], ei[0]] = 1
    h = x
    for i in range(3):
        if name == 'gcn':
            conv = model.convs[i]
            h = dense_sym(ei, n) @ h @ conv.lin.weight.T + conv.bias
        elif name == 'sage':
            conv = model.convs[i]
            mean = a / a.sum(1, keepdim=True).clamp(min=1)
            h = conv.lin_l(mean @ h) + h @ conv.lin_r.weight.T
        else:
            h = model.lins[i](h)
        if i < 2:
            h = torch.relu(_bn_eval(h, bns[i]))
    with torch.no_grad():
        out = apply(model, x, graph_input(name, ei, n))
    assert torch.allclose(out, h, atol=1e-5)
    model.train()  # Dropout is drawn in training mode.
    assert not torch.equal(apply(model, x, graph_input(name, ei, n)),
                           apply(model, x, graph_input(name, ei, n)))


def test_usage_errors_exit_2_before_loading(tmp_path, capsys, monkeypatch):
    base = ['--dataset', 'ogbn-arxiv', '--root', str(tmp_path / 'none'),
            '--no-download']
    monkeypatch.delenv('RANK', raising=False)
    out = str(tmp_path / 'r.jsonl')
    assert run_main(bench.main, base + ['--ddp', '--device', 'cpu',
                                        '--out', out]) == 2
    assert capsys.readouterr().err.startswith('error: --ddp needs torchrun')
    assert run_main(bench.main, base + ['--device', 'tpu', '--out',
                                        out]) == 2
    assert capsys.readouterr().err.startswith("error: --device 'tpu'")
    assert run_main(bench.main, base + ['--device', 'cpu', '--out',
                                        str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith('error: --out')
    assert not osp.exists(out)


def test_defaults_and_errors():
    args = bench.parse_args(['--dataset', 'ogbn-arxiv'])
    assert (args.epochs, args.lr, args.hidden, args.mode,
            args.runs) == (500, 0.01, 256, 'full', 10)
    assert args.dropout_of['gcn'] == 0.5
    args = bench.parse_args(['--dataset', 'ogbn-products'])
    assert (args.mode, args.num_parts, args.parts_per_batch) == ('cluster',
                                                                 15000, 32)
    assert bench.parse_args(['--dataset', 'ogbn-arxiv', '--ddp']).mode == \
        'cluster'
    with pytest.raises(SystemExit):
        bench.parse_args(['--dataset', 'ogbn-arxiv', '--epochs', '0'])
    with pytest.raises(SystemExit):
        bench.parse_args(['--dataset', 'ogbn-mag'])


def test_offline_message(tmp_path):
    # Runs as a user would, with a stdin that never delivers an answer.
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, '--dataset', 'ogbn-arxiv', '--root',
         str(tmp_path), '--out', str(tmp_path / 'r.jsonl')],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env(), cwd=REPO)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 2, stderr
    assert 'Traceback' not in stderr
    assert 'error: ogbn-arxiv is not in' in stderr
    assert 'make_synthetic_ogb.py' in stderr
    assert not osp.exists(tmp_path / 'r.jsonl')


def test_ddp_two_processes(root, tmp_path):
    out = str(tmp_path / 'ddp.jsonl')
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--standalone',
        '--nproc_per_node=2', SCRIPT, '--dataset', 'ogbn-arxiv', '--root',
        root, '--model', 'diffresnet', '--ddp', '--device', 'cpu',
        '--num-parts', '8', '--parts-per-batch', '1', '--runs', '1',
        '--epochs', '6', '--eval-every', '3', '--hidden', '32',
        '--num-steps', '4', '--out', out
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read(out)
    assert len(records) == 1  # Only rank 0 writes.
    r = records[0]
    assert r['ddp']['world_size'] == 2 and r['ddp']['backend'] == 'gloo'
    hashes = r['ddp']['param_hashes']
    assert len(hashes) == 2 and hashes[0] == hashes[1]  # Ranks agree.
    assert len(r['ddp']['peak_rss_mib_per_rank']) == 2
    assert r['config']['world_size'] == 2
    losses = r['losses']
    assert len(losses) == 6 and losses[-1] < losses[0]  # Loss falls.
