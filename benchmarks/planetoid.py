r"""Node-classification benchmark: Diff-ResNet next to standard GNNs on
identical splits and seeds.

Reproduces the protocol of the `"Diffusion Mechanism in Residual Neural
Network: Theory and Applications" <https://arxiv.org/abs/2105.03155>`_ paper
(``--protocol random``: largest connected component, 20 training and 30
validation nodes per class, seeds as in the official code, Adam with lr 0.01
and weight decay 5e-4, early stopping with patience 50), the public Planetoid
split (``public``) and the 10 fixed 60/20/20 Geom-GCN splits (``geom-gcn``).

Examples::

    python benchmarks/planetoid.py --dataset Cora --model diffresnet gcn \
        --protocol random --splits 100 --inits 20 --root DIR --out cora.jsonl
    python benchmarks/planetoid.py --dataset Cora --model diffresnet \
        --grid step_size=0.1,0.25 num_steps=10,20 --splits 10 --inits 2 \
        --root DIR --out grid.jsonl
    python benchmarks/planetoid.py --dataset Cora --model diffresnet appnp \
        --selected-from grid.jsonl --splits 40 --first-split 20 --inits 1 \
        --root DIR --out fresh.jsonl
    python benchmarks/planetoid.py --summary cora.jsonl grid.jsonl

Two processes (or machines) share one protocol with ``--shard 0/2`` and
``--shard 1/2``, each writing its own ``--out``; ``--summary`` reads both.
``--selected-from`` runs the setting a grid selected (by validation accuracy
only) on splits that grid never saw (``--first-split``).

Every finished run is one line of ``--out`` (flushed and fsync-ed); rerunning
the same command skips the finished runs. ``--summary`` prints mean ± std,
the 95% CI and paired tests of diffresnet against every baseline, and writes
them as Markdown, CSV and LaTeX.

The harness itself is the package ``benchmarks/planetoid/``: ``datasets``
(registry, loading, preprocessing), ``protocols`` (splits), ``models``,
``official`` (the official code's model), ``train``, ``batched`` (several
inits at once), ``runner`` (runs, grid, shards, resume) and ``summary``.
"""
import os.path as osp
import sys

if __name__ == '__main__':  # import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.common import JSONLResults, check_results_file
from benchmarks.common.cli import (ArgumentParser, UsageError, check_device,
                                   check_input_file, check_output_file,
                                   check_threads, nonnegative_int,
                                   positive_int, run_main)
from benchmarks.planetoid.datasets import DATASETS, canonical, check_cache
from benchmarks.planetoid.models import HPARAMS, MODELS
from benchmarks.planetoid.protocols import PROTOCOLS
from benchmarks.planetoid.records import KEY_FIELDS
from benchmarks.planetoid.runner import (HPARAM_TYPES, Plan, load_jobs,
                                         parse_grid, parse_shard, run_jobs)
from benchmarks.planetoid.summary import (dedupe, load_records, run_summary,
                                          select_configs)

HPARAM_HELP = {
    'num_steps': 'diffusion steps (diffresnet), propagation steps '
                 '(appnp, sgc)',
    'hidden': "hidden width; 'none' = the paper's Diff-ResNet",
    'scheme': 'diffusion scheme of diffresnet: explicit (the paper) or '
              'implicit (backward Euler)',
    'learnable_step': 'diffresnet: train the step size (true/false)',
}


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', nargs='+', default=['Cora'],
                   help='case-insensitive: ' + ', '.join(
                       s.name for s in DATASETS.values()))
    p.add_argument('--model', nargs='+', default=['diffresnet'],
                   help=', '.join(MODELS))
    p.add_argument('--protocol', nargs='+', default=['random'],
                   help=', '.join(PROTOCOLS))
    p.add_argument('--splits', type=positive_int, default=None,
                   help='number of splits (default: random 100, geom-gcn 10, '
                   'public 1)')
    p.add_argument('--inits', type=positive_int, default=20,
                   help='model initialisations per split (default: 20)')
    for key in HPARAMS:  # Absent unless given: model defaults apply.
        p.add_argument('--' + key.replace('_', '-'), type=HPARAM_TYPES[key],
                       default=argparse.SUPPRESS, help=HPARAM_HELP.get(key))
    p.add_argument('--grid', nargs='+', default=None, metavar='KEY=V1,V2',
                   help='sweep: every combination is run; --summary selects '
                   'per dataset x model by validation accuracy only. Keys: ' +
                   ', '.join(HPARAMS))
    p.add_argument('--shard', default=None, metavar='I/N',
                   help='run only the splits s with s %% N == I, so that N '
                   'processes (each with its own --out) share one protocol; '
                   '--summary merges their files')
    p.add_argument('--first-split', type=nonnegative_int, default=0,
                   metavar='S', help='run only splits S, S+1, ... of the '
                   '--splits (same seeds as the whole run), e.g. --splits 40 '
                   '--first-split 20 for fresh splits 20-39')
    p.add_argument('--selected-from', nargs='+', default=None,
                   metavar='JSONL', help='run each model with the '
                   'hyper-parameters --summary selects for it (by validation '
                   'accuracy) on each dataset in these result files; models '
                   'without runs there keep their defaults')
    p.add_argument('--batch-inits', action='store_true',
                   help='train the inits of one split together (diffresnet)')
    p.add_argument('--root', default='data',
                   help='one sub-folder per PyG dataset class')
    p.add_argument('--cache', default=os.environ.get(
        'TGD_CACHE', os.path.join(os.path.expanduser('~'), '.cache',
                                  'torch_geometric_diff', 'data')),
                   help='writable copy of a read-only --root')
    p.add_argument('--offline', action='store_true',
                   help='never try to download')
    p.add_argument('--out', default='results/planetoid.jsonl')
    p.add_argument('--device', default='cpu')
    p.add_argument('--seed', type=nonnegative_int, default=42,
                   help='master seed of the splits and inits (official: 42)')
    p.add_argument('--threads', type=positive_int, default=None)
    p.add_argument('--summary', nargs='*', default=None, metavar='JSONL',
                   help='summarise these files (default: --out) and exit')
    p.add_argument('--summary-out', default=None,
                   help='prefix of the .md/.csv/.tex files (default: the '
                   'first file without .jsonl, plus _summary)')
    p.add_argument('--skip-bad-lines', action='store_true',
                   help='skip (with a warning) lines of --out or --summary '
                   'files that are not JSON records, instead of stopping')
    return p


# The flags --summary goes with: it reads result files and runs nothing.
SUMMARY_FLAGS = ('summary', 'summary_out', 'out', 'skip_bad_lines')


def given_flags(argv: Optional[Sequence[str]]) -> List[str]:
    r"""The destinations of the flags given on the command line."""
    p = get_parser()
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return list(vars(p.parse_args(argv)))


def summary_main(args: argparse.Namespace,
                 argv: Optional[Sequence[str]]) -> int:
    r"""``--summary``: checks the files, then summarises them."""
    extra = [f for f in given_flags(argv) if f not in SUMMARY_FLAGS]
    if extra:
        raise UsageError(f"--summary only reads result files and runs "
                         f"nothing; drop --{extra[0].replace('_', '-')}")
    paths = args.summary or [args.out]
    for path in paths:
        check_input_file(path, '--summary')
    prefix = args.summary_out or (os.path.splitext(paths[0])[0] +
                                  '_summary')
    for suffix in ('.md', '.tex', '.csv', '_paired.csv', '_grid.csv'):
        check_output_file(prefix + suffix, '--summary-out')
    return run_summary(paths, prefix, args.skip_bad_lines)


def selected_hparams(paths: Optional[Sequence[str]], skip_bad_lines: bool
                     ) -> Dict[Tuple[str, str, str], Dict[str, Any]]:
    r"""The hyper-parameters that ``--summary`` selects per
    :obj:`(dataset name, protocol, model)` in the result files
    :obj:`paths` (none if :obj:`None`)."""
    if paths is None:
        return {}
    for path in paths:
        check_input_file(path, '--selected-from')
    records = load_records(paths, skip_bad_lines)
    if not records:
        raise ValueError(f"--selected-from: no finished runs in "
                         f"{', '.join(paths)}")
    return {key: rs[0]['hparams']
            for key, rs in select_configs(dedupe(records)).items()}


def make_plan(args: argparse.Namespace) -> Plan:
    r"""The validated :class:`Plan` of the parsed flags; raises
    :class:`ValueError` for a bad name, grid or shard."""
    datasets = [canonical(d, DATASETS, 'dataset') for d in args.dataset]
    protocols = [canonical(p, PROTOCOLS, 'protocol') for p in args.protocol]
    for d in datasets:
        if DATASETS[d].pyg_class == 'npz' and protocols != ['random']:
            raise ValueError(f"'{DATASETS[d].name}' has the random protocol "
                             f"only (got --protocol {' '.join(protocols)})")
    return Plan(
        datasets=datasets,
        protocols=protocols,
        models=[canonical(m, MODELS, 'model') for m in args.model],
        overrides={k: getattr(args, k) for k in HPARAMS if k in args},
        grid=parse_grid(args.grid),
        num_splits=args.splits,
        num_inits=args.inits,
        seed=args.seed,
        shard=parse_shard(args.shard),
        batch_inits=args.batch_inits,
        first_split=args.first_split,
        selected=selected_hparams(args.selected_from, args.skip_bad_lines),
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    if args.summary is not None:
        return summary_main(args, argv)

    # Every flag and the output path are checked before any data is loaded.
    plan = make_plan(args)
    check_output_file(args.out)
    check_results_file(args.out, args.skip_bad_lines)
    device = check_device(args.device)
    check_threads(args.threads)
    check_cache(args.root, args.cache)
    jobs = load_jobs(plan, args.root, args.cache, args.offline)
    with JSONLResults(args.out, KEY_FIELDS, args.skip_bad_lines) as results:
        run_jobs(plan, jobs, results, device)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
