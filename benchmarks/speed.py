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
* ``gcn``: a 2-layer ``GCNConv`` network (hidden 64), for scale.

The modules behind it are in :mod:`benchmarks.speed`.

Example::

    python benchmarks/speed.py --graphs cora pubmed arxiv-synthetic \
        --root ../shared/data --out results/speed
"""
import os.path as osp
import sys

if __name__ == '__main__':  # import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
import datetime
import json
import os
from typing import Any, Dict, List, Optional

import torch

from benchmarks.common import environment_info
from benchmarks.common.cli import (check_device, check_output_file,
                                   nonnegative_int, positive_float,
                                   positive_int, probability, run_main)
from benchmarks.speed.graphs import GRAPHS, check_graphs, load_graph
from benchmarks.speed.memory import measure, print_probe, run_memory
from benchmarks.speed.models import MODELS
from benchmarks.speed.report import hardware, markdown
from benchmarks.speed.timing import (profile_epoch, time_model,
                                     time_propagation)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--graphs', nargs='+', default=['cora'],
                        choices=GRAPHS)
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        choices=MODELS)
    parser.add_argument('--root', default=os.environ.get('TGD_DATA'),
                        help='folder holding Planetoid/<name>/raw')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--num-steps', type=positive_int, default=20)
    parser.add_argument('--step-size', type=positive_float, default=0.25)
    parser.add_argument('--dropout', type=probability, default=0.25)
    parser.add_argument('--repeats', type=positive_int, default=10)
    parser.add_argument('--warmup', type=nonnegative_int, default=2)
    parser.add_argument('--mem-steps', type=positive_int, nargs='+',
                        default=[1, 20, 100])
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument('--seed', type=nonnegative_int, default=0)
    parser.add_argument('--out', default='results/speed',
                        help='output prefix: writes <out>.json and <out>.md')
    parser.add_argument('--profile', action='store_true',
                        help='print a torch.profiler table of one '
                        'diffresnet epoch per graph')
    parser.add_argument('--memory-probe', action='store_true',
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(args: argparse.Namespace,
        argv: Optional[List[str]] = None) -> Dict[str, Any]:
    r"""Times every model on every graph, measures peak memory, writes
    ``<out>.json`` and ``<out>.md`` and returns the report."""
    device = torch.device(args.device)
    diffusion = dict(step_size=args.step_size, dropout=args.dropout)
    repeats = dict(warmup=args.warmup, repeats=args.repeats)
    results: Dict[str, Dict] = {}
    for graph in args.graphs:
        g = load_graph(graph, args.root, device, args.seed)
        timing = {}
        for model in args.models:
            timing[model] = time_model(model, g, args.num_steps,
                                       seed=args.seed, device=device,
                                       **diffusion, **repeats)
            print(f'{graph:16s} {model:17s} ' +
                  ' '.join(f'{k}={v:.1f}'
                           for k, v in timing[model].items()), flush=True)
        results[graph] = dict(timing=timing, propagation=time_propagation(
            g, args.num_steps, device=device, **diffusion, **repeats))
        print(f'{graph:16s} propagation ' + ' '.join(
            f'{k}={v:.2f}' for k, v in results[graph]['propagation'].items()),
              flush=True)
        if args.profile:
            results[graph]['profile'] = profile_epoch(
                g, args.num_steps, device=device, **diffusion)
        del g
        if not args.no_memory:
            results[graph]['memory'] = run_memory(
                graph, args.root, device, args.models, args.mem_steps,
                seed=args.seed, **diffusion)
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
    with open(args.out + '.json', 'w') as f:
        json.dump(report, f, indent=1)
    md = markdown(results, meta)
    with open(args.out + '.md', 'w') as f:
        f.write(md)
    print(md)
    return report


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    device = check_device(args.device)
    check_graphs(args.graphs, args.root)
    if args.memory_probe:  # The child process of run_memory on the CPU.
        print_probe(measure(args.graphs[0], args.root, device, args.models,
                            args.mem_steps, args.step_size, args.dropout,
                            args.seed))
        return 0
    check_output_file(args.out + '.json')
    check_output_file(args.out + '.md')
    run(args, argv)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
