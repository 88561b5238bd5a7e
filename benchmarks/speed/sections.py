r"""The sections of ``benchmarks/speed.py``, each switched on by name with
``--sections``:

* ``epoch``: every model's training epoch, the diffusion against APPNP's
  propagation, peak memory against :math:`K` (the default);
* ``masks``: the per-step dropout masks on and off, on both kernel paths
  (:mod:`~benchmarks.speed.masks`);
* ``threads``: epochs at several thread counts
  (:mod:`~benchmarks.speed.threads`);
* ``uncached``: the uncached layer against the cached one
  (:mod:`~benchmarks.speed.uncached`);
* ``implicit``: the implicit step against the explicit and APPNP steps
  (:mod:`~benchmarks.speed.implicit`).
"""
import argparse
import time
from typing import Any, Dict, Iterable, List

import torch

from benchmarks.common.cli import UsageError
from benchmarks.speed.implicit import run_implicit
from benchmarks.speed.masks import run_masks
from benchmarks.speed.threads import run_threads
from benchmarks.speed.timing import (load_average, profile_epoch,
                                     time_model, time_propagation)
from benchmarks.speed.uncached import run_uncached

SECTIONS = ('epoch', 'masks', 'threads', 'uncached', 'implicit')
DEFAULT_WIDTH = 64  # Of the uncached and implicit sections.


def parse_sections(values: Iterable[str]) -> List[str]:
    r"""The section names in :obj:`values` (each may hold several, comma
    separated), without repeats, in the order given. Raises
    :class:`UsageError` for an unknown one."""
    out: List[str] = []
    for value in values:
        for name in value.split(','):
            name = name.strip()
            if not name:
                continue
            if name not in SECTIONS:
                raise UsageError(f"--sections: unknown section '{name}' "
                                 f"(choose from {', '.join(SECTIONS)})")
            if name not in out:
                out.append(name)
    if not out:
        raise UsageError('--sections: no section given')
    return out


def run_epoch(graph: str, g: Dict[str, Any], args: argparse.Namespace,
              device: torch.device) -> Dict[str, Any]:
    r"""Section ``epoch`` on one graph, without peak memory (measured once
    the graph is freed): ``timing``, ``propagation``, optionally
    ``profile``, and its ``epoch_config``."""
    load = load_average()
    diffusion = dict(step_size=args.step_size, dropout=args.dropout)
    repeats = dict(warmup=args.warmup, repeats=args.repeats)
    timing = {}
    for model in args.models:
        timing[model] = time_model(model, g, args.num_steps, seed=args.seed,
                                   device=device, **diffusion, **repeats)
        print(f'{graph:16s} {model:17s} ' +
              ' '.join(f'{k}={v:.1f}' for k, v in timing[model].items()),
              flush=True)
    out: Dict[str, Any] = dict(timing=timing, propagation=time_propagation(
        g, args.num_steps, device=device, **diffusion, **repeats))
    print(f'{graph:16s} propagation ' + ' '.join(
        f'{k}={v:.2f}' for k, v in out['propagation'].items()), flush=True)
    if args.profile:
        out['profile'] = profile_epoch(g, args.num_steps, device=device,
                                       **diffusion)
    x = 'sparse_csr' if g['sparse'] else 'dense'
    out['epoch_config'] = dict(
        cached=True, x={m: 'dense' if m in ('official', 'gcn') else x
                        for m in args.models},
        threads=torch.get_num_threads(), load_start=load,
        load_end=load_average())
    return out


def run_section(name: str, graph: str, g: Dict[str, Any],
                args: argparse.Namespace,
                device: torch.device) -> Dict[str, Any]:
    r"""Section :obj:`name` on graph :obj:`g`, with the wall-clock and CPU
    seconds it took in its configuration; prints a one-line summary."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = _run_section(name, graph, g, args, device)
    conf = out['epoch_config' if name == 'epoch' else 'config']
    conf['seconds'] = round(time.perf_counter() - wall, 1)
    conf['cpu_seconds'] = round(time.process_time() - cpu, 1)
    return out


def _run_section(name: str, graph: str, g: Dict[str, Any],
                 args: argparse.Namespace,
                 device: torch.device) -> Dict[str, Any]:
    common = dict(num_steps=args.num_steps, step_size=args.step_size,
                  dropout=args.dropout, warmup=args.warmup,
                  repeats=args.repeats, seed=args.seed, device=device)
    if name == 'epoch':
        return run_epoch(graph, g, args, device)
    if name == 'masks':
        out = run_masks(g, width=args.width, profile=args.profile, **common)
        summary = ' '.join(f"{p}: on={v['on_ms']:.1f} off={v['off_ms']:.1f}"
                           f" overhead={100 * v['overhead']:.0f}%"
                           for p, v in out['paths'].items())
    elif name == 'threads':
        out = run_threads(g, args.thread_models, args.thread_counts,
                          **common)
        summary = ' '.join(f"{m}@best={b['threads']}:{b['epoch_ms']:.1f}"
                           for m, b in out['best'].items())
    elif name == 'uncached':
        out = run_uncached(g, width=args.width or DEFAULT_WIDTH, **common)
        summary = (f"eval uncached/cached={out['ratio_eval']:.2f} "
                   f"train={out['ratio_train']:.2f} "
                   f"build={out['build_ms']:.2f}ms")
    elif name == 'implicit':
        out = run_implicit(g, width=args.width or DEFAULT_WIDTH,
                           gammas=args.gammas, tol=args.cg_tol,
                           max_iter=args.cg_max_iter, **common)
        summary = ' '.join(
            f"{k}={v['step_eval_ms']:.3f}ms/step" +
            (f"({v['mean_iterations']:.1f}it)" if 'iterations' in v else '')
            for k, v in out['steps'].items())
    else:
        raise ValueError(f"Unknown section '{name}'")
    print(f'{graph:16s} {name:9s} {summary}', flush=True)
    return out
