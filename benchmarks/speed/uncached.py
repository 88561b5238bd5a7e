r"""Section ``uncached``: :class:`~torch_geometric_diff.DiffConv` without a
cached operator (mini-batches, batches of graphs) against the cached layer,
on the same graph, features and settings, interleaved repeat by repeat.

Timed per repeat: the evaluation forward (no gradients), a training forward
and backward with dropout, and the operator's construction alone
(:meth:`DiffConv.build_operator`: validation, normalisation, the stability
check), which is what the uncached layer adds to every call. Where the layer
takes ``validate``, the uncached layer also runs with ``validate=False``
(``unvalidated``: the graph's values are not checked, as for a trusted
loader).
"""
import inspect
from typing import Any, Dict, List

import torch

from benchmarks.speed.graphs import features
from benchmarks.speed.timing import load_average, median_ms, timed
from torch_geometric_diff import DiffConv


def run_uncached(g: Dict[str, Any], width: int, num_steps: int,
                 step_size: float, dropout: float, warmup: int, repeats: int,
                 seed: int, device: torch.device) -> Dict[str, Any]:
    r"""Medians over :obj:`repeats` of the evaluation forward and of a
    training forward and backward of the cached and the uncached layer on
    :obj:`width` random feature columns, their ratios (uncached / cached),
    and the operator's construction alone; the same for the uncached layer
    with ``validate=False`` where :class:`DiffConv` has that argument."""
    load = load_average()
    x = features(g, width, seed).requires_grad_()
    ei, n = g['edge_index'], x.size(0)
    gen = torch.Generator().manual_seed(seed + 1)
    grad = torch.randn(x.shape, generator=gen).to(device)
    convs = {
        c: DiffConv(step_size, num_steps, dropout=dropout,
                    cached=c == 'cached').to(device)
        for c in ('cached', 'uncached')
    }
    if 'validate' in inspect.signature(DiffConv.__init__).parameters:
        convs['unvalidated'] = DiffConv(step_size, num_steps,
                                        dropout=dropout,
                                        validate=False).to(device)
    uncached = [c for c in convs if c != 'cached']
    with torch.no_grad():  # Builds the cache.
        convs['cached'](x, ei)

    def train(conv: DiffConv) -> None:
        x.grad = None
        conv.train()
        conv(x, ei).backward(grad)

    def evaluate(conv: DiffConv) -> None:
        conv.eval()
        with torch.no_grad():
            conv(x, ei)

    times: Dict[str, List[float]] = {
        f'{c}_{what}': []
        for c in convs for what in ('eval', 'train')
    }
    times.update({f'{c}_build': [] for c in uncached})
    torch.manual_seed(seed)
    for rep in range(warmup + repeats):
        res = {}
        for c, conv in convs.items():
            res[f'{c}_eval'] = timed(lambda: evaluate(conv), device)
            res[f'{c}_train'] = timed(lambda: train(conv), device)
        for c in uncached:
            res[f'{c}_build'] = timed(
                lambda: convs[c].build_operator(ei, n, dtype=x.dtype),
                device)
        if rep >= warmup:
            for key, t in res.items():
                times[key].append(t)
    out: Dict[str, Any] = {k + '_ms': median_ms(v) for k, v in times.items()}
    for c in uncached:
        suffix = '' if c == 'uncached' else '_' + c
        for what in ('eval', 'train'):
            out[f'ratio_{what}{suffix}'] = \
                out[f'{c}_{what}_ms'] / out[f'cached_{what}_ms']
    out['build_ms'] = out['uncached_build_ms']
    out['config'] = dict(
        width=width, num_nodes=n, num_edges=ei.size(1), num_steps=num_steps,
        step_size=step_size, dropout=dropout, layers=list(convs), x='dense',
        edge_index='COO (2, E)', synthetic='synthetic' in g['name'],
        threads=torch.get_num_threads(), repeats=repeats, warmup=warmup,
        load_start=load, load_end=load_average())
    return out


def markdown(results: Dict[str, Any]) -> List[str]:
    r"""The table of the ``uncached`` section of every graph in
    :obj:`results`."""
    lines = [
        '', 'DiffConv uncached vs cached (same features and settings).', '',
        '| graph | width | K | layer | eval forward cached (ms) | '
        'uncached (ms) | uncached / cached | train fwd+bwd cached (ms) | '
        'uncached (ms) | uncached / cached | operator build (ms) |',
        '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|'
    ]
    for graph, r in results.items():
        if 'uncached' not in r:
            continue
        u = r['uncached']
        c = u['config']
        for name in ('uncached', 'unvalidated'):
            if f'{name}_eval_ms' not in u:
                continue
            suffix = '' if name == 'uncached' else '_' + name
            lines.append(
                f"| {graph} | {c['width']} | {c['num_steps']} | {name} | "
                f"{u['cached_eval_ms']:.2f} | {u[f'{name}_eval_ms']:.2f} | "
                f"{u['ratio_eval' + suffix]:.2f}x | "
                f"{u['cached_train_ms']:.2f} | "
                f"{u[f'{name}_train_ms']:.2f} | "
                f"{u['ratio_train' + suffix]:.2f}x | "
                f"{u[f'{name}_build_ms']:.2f} |")
    return lines
