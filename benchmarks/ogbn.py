r"""OGB node classification: ogbn-arxiv and ogbn-products.

Behaves like OGB's own examples: the official loader
(``ogb.nodeproppred.PygNodePropPredDataset``), the official splits and the
official ``Evaluator``; every run reports the test accuracy at the epoch of
best validation accuracy, and the summary is mean ± std over runs.

    python benchmarks/ogbn.py --dataset ogbn-arxiv --model diffresnet gcn mlp \
        --runs 10 --root dataset --out results/ogb.jsonl

Training is full-batch (``--mode full``, the default for arxiv) or over
Cluster-GCN partitions (``--mode cluster``, the default for products: METIS
through pymetis, random partitions with ``--partitioner random``), where the
K diffusion steps run inside each mini-batch and evaluation is full-graph and
layer-wise, with the sparse operator on the CPU when it does not fit the
device. ``torchrun --nproc_per_node=N benchmarks/ogbn.py ... --ddp`` trains
with DistributedDataParallel over partitions (gloo on CPU, nccl on GPU).

``--root`` is ogb's own root (the dataset lives in ``<root>/ogbn_arxiv/``).
Without network the dataset must be there already; a synthetic stand-in
with OGB's exact layout comes from ``benchmarks/make_synthetic_ogb.py``, and
results on it are labelled synthetic (never OGB results).
"""
import os.path as osp
import sys

if __name__ == '__main__':  # import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
from typing import Any, Dict

import torch

from benchmarks.common import (JSONLResults, check_results_file,
                               environment_info, mean_std)
from benchmarks.common.cli import (ArgumentParser, UsageError, check_device,
                                   check_output_file, check_threads,
                                   nonnegative_float, nonnegative_int,
                                   positive_float, positive_int, probability,
                                   run_main)
from benchmarks.ogbn.data import load_data, partition, prepare
from benchmarks.ogbn.distributed import Distributed, init_distributed
from benchmarks.ogbn.loading import OGBDataUnavailableError
from benchmarks.ogbn.models import MODELS
from benchmarks.ogbn.synthetic import synthetic_ogb_sizes
from benchmarks.ogbn.train import ClusterSettings, Schedule, run_once

DATASETS = ('ogbn-arxiv', 'ogbn-products')

# OGB's example scripts: arxiv full-batch GNNs, products Cluster-GCN.
DEFAULTS: Dict[str, Dict[str, Any]] = {
    'ogbn-arxiv': dict(mode='full', epochs=500, lr=0.01, hidden=256,
                       num_layers=3, num_parts=32, parts_per_batch=4,
                       eval_every=1),
    'ogbn-products': dict(mode='cluster', epochs=50, lr=0.001, hidden=256,
                          num_layers=3, num_parts=15000, parts_per_batch=32,
                          eval_every=5),
}
DROPOUT = {'diffresnet': 0.25, 'gcn': 0.5, 'sage': 0.5, 'mlp': 0.5}
# The record fields that identify a run (resume skips it).
KEY_FIELDS = ('dataset', 'data', 'model', 'config', 'run')


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        description='OGB node classification with the official loader, '
        'splits and Evaluator.')
    parser.add_argument('--dataset', required=True, choices=DATASETS)
    parser.add_argument('--model', nargs='+', default=['diffresnet'],
                        choices=MODELS)
    parser.add_argument('--runs', type=positive_int, default=10)
    parser.add_argument('--root', default='dataset',
                        help="ogb's root: the data lives in <root>/ogbn_*/")
    parser.add_argument('--out', default='results/ogb.jsonl')
    parser.add_argument('--epochs', type=positive_int)
    parser.add_argument('--hidden', type=positive_int)
    parser.add_argument('--num-layers', type=positive_int,
                        help='layers of gcn/sage/mlp (default: 3)')
    parser.add_argument('--lr', type=positive_float)
    parser.add_argument('--weight-decay', type=nonnegative_float,
                        default=0.0)
    parser.add_argument('--dropout', type=probability,
                        help='default: 0.5 for gcn/sage/mlp (OGB), 0.25 for '
                        'diffresnet (dropout before every diffusion step)')
    parser.add_argument('--step-size', type=positive_float, default=0.25)
    parser.add_argument('--num-steps', type=nonnegative_int, default=10)
    parser.add_argument('--num-blocks', type=positive_int, default=1)
    parser.add_argument('--device', default='auto',
                        help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--seed', type=nonnegative_int, default=0,
                        help='run r uses seed + r')
    parser.add_argument('--mode', choices=('full', 'cluster'),
                        help='full-batch or Cluster-GCN partitions (default: '
                        'full for arxiv, cluster for products)')
    parser.add_argument('--partitioner', choices=('metis', 'random'),
                        default='metis')
    parser.add_argument('--num-parts', type=positive_int)
    parser.add_argument('--parts-per-batch', type=positive_int)
    parser.add_argument('--operator-device', default='auto',
                        choices=('auto', 'cpu', 'device'),
                        help='where the full-graph operator lives during '
                        'layer-wise inference (cluster mode)')
    parser.add_argument('--chunk-size', type=positive_int, default=2**16,
                        help='nodes per chunk in layer-wise inference')
    parser.add_argument('--channel-chunk', type=positive_int,
                        help='diffuse this many channels at a time in '
                        'layer-wise inference, states on the CPU (cluster '
                        'mode, for graphs whose states do not fit the device)')
    parser.add_argument('--eval-every', type=positive_int)
    parser.add_argument('--log-every', type=positive_int, default=1)
    parser.add_argument('--threads', type=positive_int,
                        help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--ddp', action='store_true',
                        help='DistributedDataParallel over partitions; '
                        'launch with torchrun')
    parser.add_argument('--no-download', action='store_true',
                        help='fail instead of downloading a missing dataset')
    parser.add_argument('--synthetic-in-memory', type=positive_float,
                        metavar='SCALE',
                        help='skip the files: build the synthetic stand-in '
                        'of this scale in memory (not OGB data)')
    parser.add_argument('--skip-bad-lines', action='store_true',
                        help='skip (with a warning) lines of --out that are '
                        'not JSON records, instead of stopping')
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.dataset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.ddp:
        args.mode = 'cluster'
    if args.num_layers < 2:
        parser.error('--num-layers must be >= 2')
    if args.mode == 'cluster' and args.parts_per_batch > args.num_parts:
        parser.error(f'--parts-per-batch ({args.parts_per_batch}) exceeds '
                     f'--num-parts ({args.num_parts})')
    if args.synthetic_in_memory is not None:
        try:
            synthetic_ogb_sizes(args.dataset, args.synthetic_in_memory)
        except ValueError as e:
            parser.error(f'--synthetic-in-memory: {e}')
    args.dropout_of = {
        m: DROPOUT[m] if args.dropout is None else args.dropout
        for m in MODELS
    }
    return args


def model_kwargs(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    r"""The arguments of :func:`~benchmarks.ogbn.models.build_model`."""
    return dict(hidden_channels=args.hidden, num_layers=args.num_layers,
                dropout=args.dropout_of[name], num_steps=args.num_steps,
                step_size=args.step_size, num_blocks=args.num_blocks)


def config_of(name: str, args: argparse.Namespace,
              world_size: int = 1) -> Dict[str, Any]:
    r"""The configuration of model :obj:`name` as recorded (and matched on
    resume)."""
    cfg = dict(mode=args.mode, epochs=args.epochs, lr=args.lr,
               weight_decay=args.weight_decay, hidden=args.hidden,
               dropout=args.dropout_of[name], eval_every=args.eval_every)
    if name == 'diffresnet':
        cfg.update(step_size=args.step_size, num_steps=args.num_steps,
                   num_blocks=args.num_blocks)
    else:
        cfg.update(num_layers=args.num_layers)
    if args.mode == 'cluster':
        cfg.update(partitioner=args.partitioner, num_parts=args.num_parts,
                   parts_per_batch=args.parts_per_batch,
                   world_size=world_size)
    return cfg


def summarize(results: JSONLResults, key: Dict[str, Any]) -> None:
    r"""Prints OGB's summary (mean ± std over runs) of the records of
    :obj:`key`."""
    rows = [
        r for r in results if all(r.get(k) == v for k, v in key.items())
    ]
    if not rows:
        return
    label = key['dataset']
    if key['data'] != 'ogb':
        label += ' [SYNTHETIC stand-in, not an OGB result]'
    print(f"\n{label} | {key['model']} | {len(rows)} runs "
          f"({key['config']['mode']})")
    for title, field in (('Highest Train', 'highest_train'),
                         ('Highest Valid', 'best_valid'),
                         ('Final Train', 'train_at_best_valid'),
                         ('Final Test', 'test_at_best_valid')):
        mean, std = mean_std([100 * r[field] for r in rows])
        print(f'  {title}: {mean:.2f} ± {std:.2f}')
    t, _ = mean_std([r['epoch_time_s'] for r in rows])
    rss = max(r['peak_rss_mib'] for r in rows)
    gpu = [r['peak_gpu_mib'] for r in rows if r.get('peak_gpu_mib')]
    print(f'  Epoch time: {t:.3f} s | peak RSS {rss:,.0f} MiB'
          + (f' | peak GPU {max(gpu):,.0f} MiB' if gpu else ''), flush=True)


def run(args: argparse.Namespace, device: torch.device,
        dist: Distributed) -> None:
    r"""Loads the data once, then trains every model and run that
    :obj:`args.out` does not hold yet."""
    try:
        data, split_idx, source, marker = load_data(
            args.dataset, args.root, not args.no_download,
            args.synthetic_in_memory, dist)
    except OGBDataUnavailableError as e:
        raise UsageError(str(e)) from None
    from ogb.nodeproppred import Evaluator
    evaluator = Evaluator(args.dataset)
    if source != 'ogb':
        dist.log(f"NOTE: synthetic {args.dataset}-like data ({source}, "
                 f"scale {marker.get('scale')}); results are NOT OGB "
                 f"results.")
    num_classes = prepare(data, args.dataset)
    dist.log(f'{args.dataset}: {data.num_nodes:,} nodes, '
             f'{data.edge_index.size(1):,} directed edges, '
             f'{data.x.size(1)} features | mode {args.mode} | device '
             f'{device}' + (f' | DDP x{dist.world_size} ({dist.backend})'
                            if dist.enabled else ''))
    cluster = None
    if args.mode == 'cluster':
        cluster = ClusterSettings(
            partition(data, args.num_parts, args.partitioner, args.seed,
                      dist), args.parts_per_batch, args.seed,
            args.operator_device, args.chunk_size, args.channel_chunk)
    schedule = Schedule(args.epochs, args.lr, args.weight_decay,
                        args.eval_every, args.log_every)

    # Rank 0's file decides and is written; the other ranks only read it.
    with JSONLResults(args.out, KEY_FIELDS, args.skip_bad_lines,
                      writable=dist.is_main) as results:
        for name in args.model:
            key = dict(dataset=args.dataset, data=source, model=name,
                       config=config_of(name, args, dist.world_size))
            for run in range(args.runs):
                if dist.broadcast(results.done(dict(key, run=run))):
                    dist.log(f'{name} | run {run:02d} | already in '
                             f'{args.out}, skipped')
                    continue
                record = run_once(name, run, data, split_idx, evaluator,
                                  num_classes, model_kwargs(name, args),
                                  schedule, args.seed + run, device, dist,
                                  cluster)
                dist.log(f"{name} | run {run:02d} | best valid "
                         f"{100 * record['best_valid']:.2f} at epoch "
                         f"{record['best_epoch']} | test "
                         f"{100 * record['test_at_best_valid']:.2f} | "
                         f"{record['epoch_time_s']:.3f} s/epoch | peak RSS "
                         f"{record['peak_rss_mib']:,.0f} MiB")
                if dist.is_main:
                    results.append(
                        dict(key, run=run, seed=args.seed + run,
                             synthetic=marker, **record,
                             env=environment_info(str(device))))
            if dist.is_main:
                summarize(results, key)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = check_device(args.device)
    check_output_file(args.out)
    check_results_file(args.out, args.skip_bad_lines)
    check_threads(args.threads)
    dist, device = init_distributed(args.ddp, device)
    if device.type == 'cuda' and device.index is not None:
        torch.cuda.set_device(device)
    try:
        run(args, device, dist)
    finally:
        dist.close()
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
