r"""Section ``threads``: training epochs of the compared models at several
intra-op thread counts, side by side in one process.

Every repeat runs one epoch of every model at every thread count in turn
(:func:`torch.set_num_threads`; the C++ kernels follow it), so that a change
in machine load falls on all of them alike. ``diffresnet`` is the model as
the README recommends it: cached operator and, where the data is sparse, a
CSR input; ``official`` is the official formulation on dense features.
"""
from typing import Any, Dict, List, Sequence

import torch

from benchmarks.speed.timing import (epoch_medians, epoch_runner,
                                     load_average)


def run_threads(g: Dict[str, Any], models: Sequence[str],
                thread_counts: Sequence[int], num_steps: int,
                step_size: float, dropout: float, warmup: int, repeats: int,
                seed: int, device: torch.device) -> Dict[str, Any]:
    r"""Median epoch, forward and backward of every model in :obj:`models`
    at every count in :obj:`thread_counts`; per count the epoch ratio of
    ``official`` to every other model, and each model's best count. The
    thread count in force before is restored."""
    load = load_average()
    runners = {
        m: epoch_runner(m, g, num_steps, step_size, dropout, seed, device)
        for m in models
    }
    times = {(t, m): [] for t in thread_counts for m in models}
    before = torch.get_num_threads()
    try:
        for rep in range(warmup + repeats):
            for t in thread_counts:
                torch.set_num_threads(t)
                for m in models:
                    res = runners[m]()
                    if rep >= warmup:
                        times[(t, m)].append(res)
    finally:
        torch.set_num_threads(before)
    per_count = {
        str(t): {m: epoch_medians(times[(t, m)])
                 for m in models}
        for t in thread_counts
    }
    best = {}
    for m in models:
        t = min(thread_counts,
                key=lambda t: per_count[str(t)][m]['epoch_ms'])
        best[m] = dict(threads=t, epoch_ms=per_count[str(t)][m]['epoch_ms'])
    out: Dict[str, Any] = dict(per_count=per_count, best=best)
    if 'official' in models:
        out['speedup'] = {
            str(t): {
                m: per_count[str(t)]['official']['epoch_ms'] /
                per_count[str(t)][m]['epoch_ms']
                for m in models if m != 'official'
            }
            for t in thread_counts
        }
        out['speedup_best'] = {
            m: best['official']['epoch_ms'] / best[m]['epoch_ms']
            for m in models if m != 'official'
        }
    out['config'] = dict(
        models=list(models), thread_counts=list(thread_counts),
        num_steps=num_steps, step_size=step_size, dropout=dropout,
        width=g['x'].size(1), cached=True,
        x='sparse_csr' if g['sparse'] else 'dense', x_official='dense',
        cpu_count=torch.multiprocessing.cpu_count(), repeats=repeats,
        warmup=warmup, load_start=load, load_end=load_average())
    return out


def markdown(results: Dict[str, Any]) -> List[str]:
    r"""The table of the ``threads`` section of every graph in
    :obj:`results`."""
    lines = [
        '', 'Epochs at each thread count, interleaved in one process '
        '(official / model: speed-up over the official formulation).', '',
        '| graph | threads | model | x | epoch (ms) | forward (ms) | '
        'backward (ms) | official / model |',
        '|---|---|---|---|---:|---:|---:|---:|'
    ]
    for graph, r in results.items():
        if 'threads' not in r:
            continue
        s = r['threads']
        c = s['config']
        for t, per in s['per_count'].items():
            for m, v in per.items():
                x = c['x_official'] if m == 'official' else c['x']
                ratio = s.get('speedup', {}).get(t, {}).get(m)
                lines.append(
                    f"| {graph} | {t} | {m} | {x} | {v['epoch_ms']:.1f} | "
                    f"{v['forward_ms']:.1f} | {v['backward_ms']:.1f} | "
                    f"{f'{ratio:.2f}x' if ratio else '-'} |")
        for m, b in s['best'].items():
            ratio = s.get('speedup_best', {}).get(m)
            lines.append(f"| {graph} | best ({b['threads']}) | {m} | "
                         f"{c['x_official'] if m == 'official' else c['x']}"
                         f" | {b['epoch_ms']:.1f} | | | "
                         f"{f'{ratio:.2f}x' if ratio else '-'} |")
    return lines
