r"""Section ``masks``: what the per-step dropout masks add to the diffusion.

:class:`~torch_geometric_diff.DiffConv` alone (cached, training mode) runs
forward and backward on an :math:`(N, F)` tensor that requires gradients,
with dropout :math:`p` (masks on) and with :math:`p = 0` (masks off) at the
same width. A model is not used: with :math:`p = 0` it would project to the
classes before its last diffusion and diffuse only :math:`C` channels. Both
settings run on the C++ kernel path and on the PyTorch path, interleaved
repeat by repeat. One step is also timed alone with and without its mask
and, on the PyTorch path, split into mask generation, mask application and
the sparse product.
"""
import contextlib
import time
from typing import Any, ContextManager, Dict, List, Optional

import torch
from torch import Tensor

from benchmarks.speed.graphs import features
from benchmarks.speed.timing import (PATHS, kernel_path, load_average,
                                     median_ms, sync, timed)
from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion import (diffuse, draw_seed,
                                               dropout_mask, mask_bits)


def paths_for(device: torch.device) -> List[str]:
    r"""The kernel paths to compare: both on the CPU, CUDA's alone."""
    return list(PATHS) if device.type == 'cpu' else ['cuda']


def on_path(path: str) -> ContextManager[str]:
    r""":func:`kernel_path` on the CPU; nothing to switch on CUDA."""
    if path == 'cuda':
        return contextlib.nullcontext('cuda')
    return kernel_path(path)


def step_parts(x: Tensor, conv: DiffConv, edge_index: Tensor, p: float,
               path: str, warmup: int, repeats: int,
               device: torch.device) -> Dict[str, float]:
    r"""One step alone (:func:`diffuse` with :math:`K = 1`, no gradients)
    with and without its mask; on the PyTorch path also its parts: mask
    generation, mask application and the sparse product, each as the
    engine runs it."""
    h = x.detach()
    op = conv.build_operator(edge_index, h.size(0), dtype=h.dtype)
    gamma = torch.tensor(conv.step_size, dtype=h.dtype, device=device)
    M = op.matrix(gamma, p, h.dtype)
    mask, buf, out = (torch.empty_like(h) for _ in range(3))
    seed = int(draw_seed())
    cpu = device.type == 'cpu'
    calls = {
        'step_on': lambda: diffuse(h, op, gamma, 1, p),
        'step_off': lambda: diffuse(h, op, gamma, 1, 0.0),
    }
    if path != 'cpp':
        calls.update(
            mask_generation=lambda: dropout_mask(
                seed, 0, tuple(h.shape), p, device, h.dtype, out=mask),
            mask_application=lambda: torch.mul(h, mask, out=buf),
            sparse_product=(lambda: torch.mm(M, buf, out=out)) if cpu else
            (lambda: M @ buf))
    times: Dict[str, List[float]] = {k: [] for k in calls}
    with torch.no_grad():
        for rep in range(warmup + repeats):
            for key, fn in calls.items():
                t = timed(fn, device)
                if rep >= warmup:
                    times[key].append(t)
    res = {key + '_ms': median_ms(v) for key, v in times.items()}
    res['mask_share'] = (res['step_on_ms'] - res['step_off_ms']) / \
        res['step_on_ms']
    return res


def profile_table(fn, device: torch.device) -> str:
    r"""A :mod:`torch.profiler` table of one call of :obj:`fn`."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        acts.append(ProfilerActivity.CUDA)
    with profile(activities=acts) as prof:
        fn()
        sync(device)
    sort = 'self_cuda_time_total' if device.type == 'cuda' \
        else 'self_cpu_time_total'
    return prof.key_averages().table(sort_by=sort, row_limit=12)


def run_masks(g: Dict[str, Any], num_steps: int, step_size: float,
              dropout: float, width: Optional[int], warmup: int,
              repeats: int, seed: int, device: torch.device,
              profile: bool = False) -> Dict[str, Any]:
    r"""Medians over :obj:`repeats` of the diffusion's forward and backward
    with masks on (:obj:`dropout`) and off (:math:`p = 0`) on every kernel
    path, their overhead :math:`(t_{on} - t_{off}) / t_{off}`, and
    :func:`step_parts`; with :obj:`profile`, a :mod:`torch.profiler` table
    of one forward and backward with masks on, per path."""
    if dropout <= 0:
        raise ValueError("the 'masks' section needs --dropout > 0")
    load = load_average()
    x = features(g, width, seed).requires_grad_()
    gen = torch.Generator().manual_seed(seed + 1)
    grad = torch.randn(x.shape, generator=gen).to(device)
    ei = g['edge_index']
    convs = {
        'on': DiffConv(step_size, num_steps, dropout=dropout, cached=True),
        'off': DiffConv(step_size, num_steps, dropout=0.0, cached=True),
    }
    for conv in convs.values():
        conv.to(device).train()
        with torch.no_grad():  # Builds the cached operator.
            conv(x, ei)
    paths = paths_for(device)
    taken: Dict[str, str] = {}
    times = {(path, mode, part): []
             for path in paths for mode in convs for part in ('fwd', 'bwd')}

    def fwd_bwd(conv: DiffConv) -> None:
        x.grad = None
        conv(x, ei).backward(grad)

    torch.manual_seed(seed)
    for rep in range(warmup + repeats):
        for path in paths:
            with on_path(path) as actual:
                taken[path] = actual
                for mode, conv in convs.items():
                    x.grad = None
                    sync(device)
                    t0 = time.perf_counter()
                    out = conv(x, ei)
                    sync(device)
                    t1 = time.perf_counter()
                    out.backward(grad)
                    sync(device)
                    t2 = time.perf_counter()
                    del out
                    if rep >= warmup:
                        times[(path, mode, 'fwd')].append(t1 - t0)
                        times[(path, mode, 'bwd')].append(t2 - t1)
    res: Dict[str, Any] = {}
    for path in paths:
        r = {}
        for mode in convs:
            f = median_ms(times[(path, mode, 'fwd')])
            b = median_ms(times[(path, mode, 'bwd')])
            both = [a + c for a, c in zip(times[(path, mode, 'fwd')],
                                          times[(path, mode, 'bwd')])]
            r.update({f'{mode}_fwd_ms': f, f'{mode}_bwd_ms': b,
                      f'{mode}_ms': median_ms(both)})
        r['overhead'] = (r['on_ms'] - r['off_ms']) / r['off_ms']
        with on_path(path):
            r['step'] = step_parts(x, convs['on'], ei, dropout, path, warmup,
                                   repeats, device)
            if profile:
                r['profile'] = profile_table(lambda: fwd_bwd(convs['on']),
                                             device)
                print(r['profile'], flush=True)
        r['path_taken'] = taken[path]
        res[path] = r
    config = dict(width=x.size(1), num_nodes=x.size(0),
                  num_steps=num_steps, step_size=step_size, dropout=dropout,
                  mask_bits=mask_bits(dropout), cached=True, x='dense',
                  x_source='graph' if width is None else 'random',
                  synthetic='synthetic' in g['name'],
                  threads=torch.get_num_threads(), repeats=repeats,
                  warmup=warmup, load_start=load, load_end=load_average())
    return dict(config=config, paths=res)


def markdown(results: Dict[str, Any]) -> List[str]:
    r"""The tables of the ``masks`` section of every graph in
    :obj:`results`."""
    lines = [
        '', 'Per-step dropout masks: DiffConv alone, forward+backward, '
        'masks on (p) vs off (p = 0) at the same width.', '',
        '| graph | N | width | K | p | path | on (ms) | off (ms) | '
        'overhead (on-off)/off | one step on (ms) | off (ms) | mask share '
        'of a step |',
        '|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|'
    ]
    parts = []
    for graph, r in results.items():
        if 'masks' not in r:
            continue
        c = r['masks']['config']
        for path, v in r['masks']['paths'].items():
            s = v['step']
            label = path if v['path_taken'] == path else \
                f"{path} (ran {v['path_taken']})"
            lines.append(
                f"| {graph} | {c['num_nodes']} | {c['width']} | "
                f"{c['num_steps']} | {c['dropout']:g} | {label} | "
                f"{v['on_ms']:.1f} | {v['off_ms']:.1f} | "
                f"{100 * v['overhead']:.0f}% | {s['step_on_ms']:.2f} | "
                f"{s['step_off_ms']:.2f} | {100 * s['mask_share']:.0f}% |")
            if 'mask_generation_ms' in s:
                parts.append(
                    f"| {graph} | {c['width']} | {path} | "
                    f"{s['mask_generation_ms']:.2f} | "
                    f"{s['mask_application_ms']:.2f} | "
                    f"{s['sparse_product_ms']:.2f} | {s['step_on_ms']:.2f} |")
    if parts:
        lines += [
            '', '| graph | width | path | mask generation (ms) | '
            'mask application (ms) | sparse product (ms) | whole step '
            '(ms) |', '|---|---:|---|---:|---:|---:|---:|'
        ] + parts
    return lines
