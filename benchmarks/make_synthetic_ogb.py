r"""Writes a synthetic OGB-like node classification dataset, offline.

The output has OGB's exact raw layout, so the unmodified
``ogb.nodeproppred.PygNodePropPredDataset(name, root=DIR)`` and
``Evaluator(name)`` load it without network:

    python benchmarks/make_synthetic_ogb.py --like ogbn-arxiv --scale 1.0 \
        --root /tmp/ogb
    python benchmarks/ogbn.py --dataset ogbn-arxiv --root /tmp/ogb ...

The graph is a degree-corrected stochastic block model with class-correlated
features (see :mod:`benchmarks.ogbn.synthetic`). It is NOT
OGB data: numbers measured on it are not OGB results. A ``SYNTHETIC.json``
file in the dataset folder records how it was made; ``benchmarks/ogbn.py``
labels every result on such a folder as synthetic.
"""
import os.path as osp
import sys

if __name__ == '__main__':  # import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
import resource
import time

from benchmarks.common.cli import (ArgumentParser, UsageError,
                                   check_output_dir, nonnegative_int,
                                   positive_float, run_main)
from benchmarks.ogbn.synthetic import (
    OGB_LIKE,
    synthetic_ogb_sizes,
    write_synthetic_ogb,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--like', required=True, choices=list(OGB_LIKE))
    parser.add_argument('--scale', type=positive_float, default=1.0,
                        help='multiplies node and edge counts (default: 1.0 '
                        'gives the real sizes)')
    parser.add_argument('--root', required=True,
                        help="OGB's root: writes <root>/ogbn_<name>/")
    parser.add_argument('--seed', type=nonnegative_int, default=0)
    parser.add_argument('--decimals', type=nonnegative_int, default=4,
                        help='decimals of the feature values')
    parser.add_argument('--compresslevel', type=int, default=1,
                        choices=range(1, 10), metavar='{1..9}',
                        help='gzip level (default: 1, fastest)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing dataset folder')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the sizes only')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        sizes = synthetic_ogb_sizes(args.like, args.scale)
    except ValueError as e:
        raise UsageError(f'--scale: {e}') from None
    print(f'{args.like}-like (synthetic), scale {args.scale:g}: '
          f'{sizes.num_nodes:,} nodes, {sizes.num_edges:,} edges, '
          f'{sizes.num_features} features, {sizes.num_classes} classes; '
          f'split {sizes.num_train:,} / {sizes.num_valid:,} / '
          f'{sizes.num_test:,}', flush=True)
    if args.dry_run:
        return 0
    check_output_dir(args.root, '--root')

    t = time.perf_counter()
    try:
        path = write_synthetic_ogb(args.like, args.root, args.scale,
                                   seed=args.seed, decimals=args.decimals,
                                   compresslevel=args.compresslevel,
                                   overwrite=args.overwrite, verbose=True)
    except FileExistsError as e:
        raise UsageError(str(e)) from None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'Wrote {path} in {time.perf_counter() - t:.1f} s '
          f'(peak RSS {rss:,.0f} MiB)')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
