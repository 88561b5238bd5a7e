r"""Speed and memory of Diff-ResNet against the official formulation and
PyG's own layers, measured side by side in one process.

Compared, on the same graph, device and settings:

* ``diffresnet``: :class:`torch_geometric_diff.DiffResNetGNN` (fused engine,
  cached operator, sparse input features where the data is sparse);
* ``diffresnet-torch``: the same fused engine on PyTorch operators only
  (``TGD_DISABLE_CPP=1``: no C++ CPU kernels; identical on CUDA);
* ``diffresnet-plain``: the same model with ``engine='autograd'``;
* ``official``: a literal re-implementation of the official code
  (``x - step * torch.matmul(diagonal - adj, x)`` with a sparse subtraction
  every step, ``F.dropout``, dense features, plain autograd);
* ``appnp``: the same residual block followed by PyG's ``APPNP`` with the same
  K (feature dropout once before propagation: APPNP has no per-step feature
  dropout);
* ``gcn``: a 2-layer PyG ``GCNConv`` network (hidden 64), for scale.

Example::

    python benchmarks/speed.py --graphs cora pubmed arxiv-synthetic \
        --root ../shared/data --out results/speed
"""
import os.path as osp
import sys

if __name__ == '__main__':  # run as a script: import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from torch_geometric.nn import APPNP, GCNConv
from torch_geometric.utils import to_undirected

from torch_geometric_diff import DiffConv, DiffResNetGNN
from torch_geometric_diff.nn.models.diff_resnet import sparse_linear
from benchmarks.common import environment_info
from benchmarks.planetoid.official import (OfficialDiffusionNet,
                                          official_operators)

MODELS = ['diffresnet', 'diffresnet-torch', 'diffresnet-plain', 'official',
          'appnp', 'gcn']


# Graphs ######################################################################


def load_graph(name: str, root: Optional[str], device: torch.device,
               seed: int = 0) -> Dict:
    r"""Returns features (dense and, where sparse, CSR), labels, train mask
    and the undirected edge_index of one benchmark graph."""
    if name in ('cora', 'citeseer', 'pubmed'):
        import shutil
        import tempfile

        from torch_geometric.datasets import Planetoid
        src = os.path.join(root or 'data', 'Planetoid')
        work = os.path.join(tempfile.gettempdir(), 'tgd_speed', 'Planetoid')
        if not os.path.isdir(os.path.join(work, _title(name), 'raw')):
            shutil.copytree(os.path.join(src, _title(name), 'raw'),
                            os.path.join(work, _title(name), 'raw'),
                            dirs_exist_ok=True)
        data = Planetoid(work, _title(name))[0]
        x = (data.x > 0).float()  # Binary bag of words, row-normalised.
        x = x / x.sum(1, keepdim=True).clamp(min=1)
        ei, y, mask = data.edge_index, data.y, data.train_mask
        sparse = True
    elif name == 'arxiv-synthetic':
        gen = torch.Generator().manual_seed(seed)
        n, e, f, c = 169_343, 1_166_243, 128, 40
        ei = torch.randint(0, n, (2, e), generator=gen)
        ei = to_undirected(ei, num_nodes=n)
        x = torch.randn(n, f, generator=gen)
        y = torch.randint(0, c, (n, ), generator=gen)
        mask = torch.rand(n, generator=gen) < 0.54
        sparse = False
    else:
        raise ValueError(f"Unknown graph '{name}'")
    out = dict(name=name, x=x.to(device), y=y.to(device),
               mask=mask.to(device), edge_index=ei.to(device),
               num_classes=int(y.max()) + 1, sparse=sparse)
    out['x_in'] = out['x'].to_sparse_csr() if sparse else out['x']
    return out


def _title(name: str) -> str:
    return {'cora': 'Cora', 'citeseer': 'CiteSeer', 'pubmed': 'PubMed'}[name]


# Models ######################################################################


class ResAPPNP(torch.nn.Module):
    def __init__(self, f: int, c: int, k: int, dropout: float):
        super().__init__()
        self.lin = torch.nn.Linear(f, f)
        self.prop = APPNP(K=k, alpha=0.1, cached=True)
        self.out = torch.nn.Linear(f, c)
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index) -> Tensor:
        h = F.relu(sparse_linear(x, self.lin))
        h = h + (x.to_dense() if x.layout != torch.strided else x)
        h = F.dropout(h, self.dropout, training=self.training)
        return self.out(self.prop(h, edge_index))


class GCN2(torch.nn.Module):
    def __init__(self, f: int, c: int, hidden: int = 64,
                 dropout: float = 0.5):
        super().__init__()
        self.conv1 = GCNConv(f, hidden, cached=True)
        self.conv2 = GCNConv(hidden, c, cached=True)
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index) -> Tensor:
        x = x.to_dense() if x.layout != torch.strided else x
        x = F.dropout(x, self.dropout, training=self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, training=self.training)
        return self.conv2(x, edge_index)


def build(model: str, g: Dict, k: int, args) -> Tuple[torch.nn.Module,
                                                     Callable[[], Tensor]]:
    f, c = g['x'].size(1), g['num_classes']
    n = g['x'].size(0)
    if model.startswith('diffresnet'):
        engine = 'autograd' if model == 'diffresnet-plain' else 'fused'
        m = DiffResNetGNN(f, c, num_steps=k, step_size=args.step_size,
                          dropout=args.dropout, cached=True, engine=engine)
        x, ei = g['x_in'], g['edge_index']
        return m, lambda: m(x, ei)
    if model == 'official':
        m = OfficialDiffusionNet(f, c, args.step_size, k, args.dropout)
        adj, diagonal = official_operators(g['edge_index'], n)
        x = g['x']
        return m, lambda: m(x, adj, diagonal)
    if model == 'appnp':
        m = ResAPPNP(f, c, k, args.dropout)
        x, ei = g['x_in'], g['edge_index']
        return m, lambda: m(x, ei)
    if model == 'gcn':
        m = GCN2(f, c)
        x, ei = g['x'], g['edge_index']
        return m, lambda: m(x, ei)
    raise ValueError(model)


# Measurement #################################################################


@contextlib.contextmanager
def kernels_for(model: str):
    r"""Disables the C++ CPU kernels while :obj:`model` is
    ``diffresnet-torch`` (forward and backward)."""
    old = os.environ.get('TGD_DISABLE_CPP')
    if model == 'diffresnet-torch':
        os.environ['TGD_DISABLE_CPP'] = '1'
    try:
        yield
    finally:
        if old is None:
            os.environ.pop('TGD_DISABLE_CPP', None)
        else:
            os.environ['TGD_DISABLE_CPP'] = old


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def time_model(model_name: str, g: Dict, k: int, args,
               device: torch.device) -> Dict:
    with kernels_for(model_name):
        return _time_model(model_name, g, k, args, device)


def _time_model(model_name: str, g: Dict, k: int, args,
                device: torch.device) -> Dict:
    torch.manual_seed(args.seed)
    model, forward = build(model_name, g, k, args)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    y, mask = g['y'], g['mask']
    fwd, bwd, epoch = [], [], []
    for rep in range(args.warmup + args.repeats):
        model.train()
        opt.zero_grad()
        sync(device)
        t0 = time.perf_counter()
        out = forward()
        loss = F.cross_entropy(out[mask], y[mask])
        sync(device)
        t1 = time.perf_counter()
        loss.backward()
        sync(device)
        t2 = time.perf_counter()
        opt.step()
        model.eval()
        with torch.no_grad():
            forward()
        sync(device)
        t3 = time.perf_counter()
        if rep >= args.warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            epoch.append(t3 - t0)
    return dict(epoch_ms=1e3 * statistics.median(epoch),
                forward_ms=1e3 * statistics.median(fwd),
                backward_ms=1e3 * statistics.median(bwd))


def time_propagation(g: Dict, k: int, args, device: torch.device) -> Dict:
    r"""Diffusion alone (DiffConv, fused) against APPNP's propagation alone:
    forward with dropout, backward, and per-step eval cost."""
    x = g['x'].detach().clone().requires_grad_()
    ei = g['edge_index']
    conv = DiffConv(args.step_size, k, dropout=args.dropout,
                    cached=True).to(device)
    appnp = APPNP(K=k, alpha=0.1, cached=True).to(device)
    conv(x, ei)
    appnp(x, ei)
    res: Dict[str, List[float]] = {
        'diff_fwd': [], 'diff_bwd': [], 'diff_eval': [], 'appnp_eval': [],
        'dropout_mask': [], 'torch_dropout': []
    }
    from torch_geometric_diff.nn.diffusion import draw_seed, dropout_mask
    lin = torch.nn.Linear(x.size(1), x.size(1)).to(device)
    x_in = g['x_in']

    def linear_step(inp: Tensor) -> None:
        lin.zero_grad()
        sparse_linear(inp, lin).sum().backward()

    res['linear_dense'], res['linear_input'] = [], []
    for rep in range(args.warmup + args.repeats):
        conv.train()
        sync(device)
        t0 = time.perf_counter()
        out = conv(x, ei)
        sync(device)
        t1 = time.perf_counter()
        out.backward(torch.ones_like(out))
        sync(device)
        t2 = time.perf_counter()
        conv.eval()
        with torch.no_grad():
            te = timed(lambda: conv(x, ei), device)
            ta = timed(lambda: appnp(x, ei), device)
            seed = int(draw_seed())
            tm = timed(lambda: dropout_mask(seed, 0, tuple(x.shape),
                                            args.dropout, device), device)
            td = timed(lambda: F.dropout(x, args.dropout, training=True),
                       device)
        tl = timed(lambda: linear_step(g['x']), device)
        ts = timed(lambda: linear_step(x_in), device)
        if rep >= args.warmup:
            res['linear_dense'].append(tl)
            res['linear_input'].append(ts)
            res['diff_fwd'].append(t1 - t0)
            res['diff_bwd'].append(t2 - t1)
            res['diff_eval'].append(te)
            res['appnp_eval'].append(ta)
            res['dropout_mask'].append(tm)
            res['torch_dropout'].append(td)
    out = {key + '_ms': 1e3 * statistics.median(v) for key, v in res.items()}
    out['diff_step_ms'] = out['diff_eval_ms'] / k
    out['appnp_step_ms'] = out['appnp_eval_ms'] / k
    return out


def profile_epoch(g: Dict, args, device: torch.device) -> str:
    r"""A :mod:`torch.profiler` table of one training epoch of diffresnet."""
    from torch.profiler import ProfilerActivity, profile
    model, forward = build('diffresnet', g, args.num_steps, args)
    model = model.to(device).train()
    forward().sum().backward()  # Warm up, build the cache.
    acts = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        acts.append(ProfilerActivity.CUDA)
    with profile(activities=acts) as prof:
        out = forward()
        F.cross_entropy(out[g['mask']], g['y'][g['mask']]).backward()
        model.eval()
        with torch.no_grad():
            forward()
        sync(device)
    sort = 'self_cuda_time_total' if device.type == 'cuda' \
        else 'self_cpu_time_total'
    table = prof.key_averages().table(sort_by=sort, row_limit=15)
    print(table, flush=True)
    return table


# Peak memory #################################################################


def _rss_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_memory(model_name: str, g: Dict, k: int, args,
                device: torch.device) -> float:
    r"""Peak extra memory (MiB) of one training step: CUDA allocator peak on
    GPU; on CPU the peak resident set size (VmHWM after resetting it through
    /proc/self/clear_refs) above the resident size before the step."""
    torch.manual_seed(args.seed)
    model, forward = build(model_name, g, k, args)
    model = model.to(device).train()
    model.eval()
    with torch.no_grad():  # Builds caches outside the measured step.
        forward()
    model.train()
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = forward()
        F.cross_entropy(out[g['mask']], g['y'][g['mask']]).backward()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    base = _rss_kb('VmRSS')
    out = forward()
    F.cross_entropy(out[g['mask']], g['y'][g['mask']]).backward()
    peak = _rss_kb('VmHWM')
    del out, model
    gc.collect()
    return (peak - base) / 1024


def memory_probe(args) -> None:
    r"""Runs in a child process started with MALLOC_MMAP_THRESHOLD_ set, so
    freed tensors leave the resident set and successive peaks are exact."""
    device = torch.device(args.device)
    g = load_graph(args.graphs[0], args.root, device, args.seed)
    out = {}
    for model in args.models:
        if model == 'gcn':
            continue
        for k in args.mem_steps:
            with kernels_for(model):
                out[f'{model}@{k}'] = peak_memory(model, g, k, args, device)
    print('PROBE ' + json.dumps(out), flush=True)


def run_memory(graph: str, args) -> Dict[str, float]:
    if torch.device(args.device).type == 'cuda':
        g = load_graph(graph, args.root, torch.device(args.device), args.seed)
        out = {}
        for m in args.models:
            for k in args.mem_steps:
                if m != 'gcn':
                    with kernels_for(m):
                        out[f'{m}@{k}'] = peak_memory(
                            m, g, k, args, torch.device(args.device))
        return out
    cmd = [sys.executable, os.path.abspath(__file__), '--memory-probe',
           '--graphs', graph, '--device', args.device, '--models',
           *args.models, '--mem-steps', *map(str, args.mem_steps),
           '--step-size', str(args.step_size), '--dropout', str(args.dropout),
           '--seed', str(args.seed)]
    if args.root:
        cmd += ['--root', args.root]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in res.stdout.splitlines():
        if line.startswith('PROBE '):
            return json.loads(line[6:])
    raise RuntimeError(f'memory probe failed:\n{res.stderr[-3000:]}')


# Report ######################################################################


def markdown(results: Dict, meta: Dict) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['hardware']} "
        f"(torch {meta['torch']}, torch_geometric "
        f"{meta['torch_geometric']}), K = {meta['num_steps']}, "
        f"step {meta['step_size']}, dropout {meta['dropout']}; medians of "
        f"{meta['repeats']} epochs.", '', f"Command: `{meta['command']}`", '',
        '| graph | model | epoch (ms) | forward (ms) | backward (ms) | '
        'epoch speed-up vs official | vs appnp |',
        '|---|---|---:|---:|---:|---:|---:|'
    ]
    for graph, r in results.items():
        t = r['timing']
        off = t.get('official', {}).get('epoch_ms')
        app = t.get('appnp', {}).get('epoch_ms')
        for model, v in t.items():
            ratio = f"{off / v['epoch_ms']:.1f}x" if off else '-'
            ratio_a = f"{app / v['epoch_ms']:.2f}x" if app else '-'
            lines.append(f"| {graph} | {model} | {v['epoch_ms']:.1f} | "
                         f"{v['forward_ms']:.1f} | {v['backward_ms']:.1f} | "
                         f"{ratio} | {ratio_a} |")
    lines += [
        '', '| graph | diffusion fwd (ms) | diffusion bwd (ms) | bwd/fwd | '
        'DiffConv step (ms) | APPNP step (ms) | mask (ms) | F.dropout (ms) | '
        'first linear fwd+bwd, dense x (ms) | same, x as fed (ms) |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
    ]
    for graph, r in results.items():
        p = r['propagation']
        lines.append(
            f"| {graph} | {p['diff_fwd_ms']:.1f} | {p['diff_bwd_ms']:.1f} | "
            f"{p['diff_bwd_ms'] / p['diff_fwd_ms']:.2f} | "
            f"{p['diff_step_ms']:.2f} | {p['appnp_step_ms']:.2f} | "
            f"{p['dropout_mask_ms']:.2f} | {p['torch_dropout_ms']:.2f} | "
            f"{p['linear_dense_ms']:.1f} | {p['linear_input_ms']:.1f} |")
    if any('memory' in r for r in results.values()):
        ks = meta['mem_steps']
        lines += [
            '', '| graph | model | ' +
            ' | '.join(f'peak MiB K={k}' for k in ks) +
            f' | K={ks[-1]} / K={ks[0]} |',
            '|---|---|' + '---:|' * (len(ks) + 1)
        ]
        for graph, r in results.items():
            mem = r.get('memory', {})
            for model in meta['models']:
                vals = [mem.get(f'{model}@{k}') for k in ks]
                if vals[0] is None:
                    continue
                ratio = vals[-1] / vals[0] if vals[0] > 0 else float('nan')
                lines.append(f'| {graph} | {model} | ' +
                             ' | '.join(f'{v:.0f}' for v in vals) +
                             f' | {ratio:.2f} |')
    return '\n'.join(lines) + '\n'


def hardware(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return f'{cpu}, {torch.get_num_threads()} threads'


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--graphs', nargs='+', default=['cora'],
                        choices=['cora', 'citeseer', 'pubmed',
                                 'arxiv-synthetic'])
    parser.add_argument('--models', nargs='+', default=MODELS,
                        choices=MODELS)
    parser.add_argument('--root', default=os.environ.get('TGD_DATA'),
                        help='folder holding Planetoid/<name>/raw')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--num-steps', type=int, default=20)
    parser.add_argument('--step-size', type=float, default=0.25)
    parser.add_argument('--dropout', type=float, default=0.25)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--mem-steps', type=int, nargs='+',
                        default=[1, 20, 100])
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='results/speed',
                        help='output prefix: writes <out>.json and <out>.md')
    parser.add_argument('--profile', action='store_true',
                        help='print a torch.profiler table of one '
                        'diffresnet epoch per graph')
    parser.add_argument('--memory-probe', action='store_true',
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        memory_probe(args)
        return {}

    device = torch.device(args.device)
    results: Dict[str, Dict] = {}
    for graph in args.graphs:
        g = load_graph(graph, args.root, device, args.seed)
        timing = {}
        for model in args.models:
            timing[model] = time_model(model, g, args.num_steps, args, device)
            print(f'{graph:16s} {model:17s} ' +
                  ' '.join(f'{k}={v:.1f}'
                           for k, v in timing[model].items()), flush=True)
        results[graph] = dict(timing=timing, propagation=time_propagation(
            g, args.num_steps, args, device))
        print(f'{graph:16s} propagation ' + ' '.join(
            f'{k}={v:.2f}' for k, v in results[graph]['propagation'].items()),
              flush=True)
        if args.profile:
            results[graph]['profile'] = profile_epoch(g, args, device)
        del g
        if not args.no_memory:
            results[graph]['memory'] = run_memory(graph, args)
            print(f'{graph:16s} peak MiB {results[graph]["memory"]}',
                  flush=True)

    meta = dict(
        date=datetime.date.today().isoformat(), hardware=hardware(device),
        command='python ' + ' '.join([os.path.relpath(__file__)] +
                                     (argv if argv is not None else
                                      sys.argv[1:])),
        num_steps=args.num_steps, step_size=args.step_size,
        dropout=args.dropout, repeats=args.repeats,
        mem_steps=args.mem_steps, models=args.models,
        **environment_info(args.device))
    report = dict(meta=meta, results=results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + '.json', 'w') as f:
        json.dump(report, f, indent=1)
    md = markdown(results, meta)
    with open(args.out + '.md', 'w') as f:
        f.write(md)
    print(md)
    return report


if __name__ == '__main__':
    main()
