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

That is section ``epoch``, the default. ``--sections`` adds others, each run
on every graph of ``--graphs`` in the same process (see
:mod:`benchmarks.speed.sections`): ``masks`` (per-step dropout masks on and
off, C++ and PyTorch kernel paths), ``threads`` (epochs at several thread
counts, interleaved), ``uncached`` (the uncached layer against the cached
one) and ``implicit`` (implicit steps against explicit and APPNP steps).
The modules behind it are in :mod:`benchmarks.speed`.

Examples::

    python benchmarks/speed.py --graphs cora pubmed arxiv-synthetic \
        --root ../shared/data --out results/speed
    python benchmarks/speed.py --sections uncached,implicit --graphs cora \
        pubmed --num-steps 10 --width 64 --root ../shared/data \
        --out results/speed-implicit
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
from benchmarks.common.cli import (ArgumentParser, UsageError, check_device,
                                   check_output_file, check_threads,
                                   nonnegative_int, positive_float,
                                   positive_int, probability, run_main)
from benchmarks.speed.graphs import GRAPHS, check_graphs, load_graph
from benchmarks.speed.memory import measure, print_probe, run_memory
from benchmarks.speed.models import MODELS
from benchmarks.speed.report import hardware, markdown
from benchmarks.speed.sections import SECTIONS, parse_sections, run_section
from benchmarks.speed.timing import load_average


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
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
                        'diffresnet epoch per graph (epoch) and of one '
                        'forward+backward with masks per path (masks)')
    parser.add_argument('--memory-probe', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--sections', nargs='+', default=['epoch'],
                        help='sections to run, space or comma separated: '
                        f'{", ".join(SECTIONS)} (default: epoch)')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='intra-op threads for the whole run '
                        '(default: torch\'s)')
    parser.add_argument('--width', type=positive_int, default=None,
                        help='feature columns diffused by masks, uncached '
                        'and implicit (random, seeded); default: the '
                        'graph\'s own features for masks, 64 for the others')
    parser.add_argument('--thread-counts', type=positive_int, nargs='+',
                        default=[1, 2], help='threads: the thread counts')
    parser.add_argument('--thread-models', nargs='+', choices=MODELS,
                        default=['diffresnet', 'official'],
                        help='threads: the models')
    parser.add_argument('--gammas', type=positive_float, nargs='+',
                        default=[1.0, 4.0],
                        help='implicit: the step sizes of the implicit step')
    parser.add_argument('--cg-tol', type=positive_float, default=1e-6,
                        help='implicit: relative residual at which CG stops')
    parser.add_argument('--cg-max-iter', type=positive_int, default=100,
                        help='implicit: most CG iterations per solve')
    return parser.parse_args(argv)


def run(args: argparse.Namespace,
        argv: Optional[List[str]] = None) -> Dict[str, Any]:
    r"""Runs every section in :obj:`args.sections` on every graph (section
    ``epoch``: every model's timing and, unless :obj:`args.no_memory`, peak
    memory), writes ``<out>.json`` and ``<out>.md`` and returns the
    report."""
    device = torch.device(args.device)
    load_start = load_average()
    results: Dict[str, Dict] = {}
    for graph in args.graphs:
        g = load_graph(graph, args.root, device, args.seed)
        results[graph] = {}
        for name in args.sections:
            out = run_section(name, graph, g, args, device)
            if name == 'epoch':  # Its fields stay at the graph's level.
                results[graph].update(out)
            else:
                results[graph][name] = out
        del g
        if 'epoch' in args.sections and not args.no_memory:
            results[graph]['memory'] = run_memory(
                graph, args.root, device, args.models, args.mem_steps,
                seed=args.seed, step_size=args.step_size,
                dropout=args.dropout)
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
        sections=args.sections, warmup=args.warmup, load_start=load_start,
        load_end=load_average(), **environment_info(args.device))
    report = dict(meta=meta, results=results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + '.json', 'w') as f:
        json.dump(report, f, indent=1)
    md = markdown(results, meta)
    with open(args.out + '.md', 'w') as f:
        f.write(md)
    print(md)
    return report


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    args.sections = parse_sections(args.sections)
    if 'masks' in args.sections and args.dropout == 0:
        raise UsageError('--dropout must be > 0 for section masks (it '
                         'compares masks on and off)')
    device = check_device(args.device)
    check_threads(args.threads)
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
