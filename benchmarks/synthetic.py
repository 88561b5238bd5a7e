r"""The synthetic binary classification of Diff-ResNet (two moons, two
circles, two spirals, XOR): accuracy of the paper's toy residual network
with and without diffusion, the distance-diameter ratio and the Dirichlet
energy against the diffusion step, and the figures (before/after scatter
plots, ratio-vs-step curves, animated GIFs of the points under diffusion).

One command writes everything to ``--out``::

    python benchmarks/synthetic.py --out /tmp/synthetic

Model (official ``synthetic/*_example.py``): ``h = x + fc2(relu(fc1(x)))``
with 2 hidden units, ``K`` diffusion steps ``h <- h - gamma L h`` on the
Gaussian k-NN graph of the inputs (fixed sigma = 0.5, row-normalised, self
included, gamma = 1), then a linear classifier. The graph is built by
:class:`GaussianKNNGraph` and the steps run in :class:`DiffConv` with
``normalize=None``. ``K = 0`` is the no-diffusion baseline.

Training schedules: ``paper`` = the official 20 full-batch SGD steps
(learning rate 1.0, 0.8 for spirals, weight decay 5e-4); ``converged`` =
200 full-batch Adam steps (learning rate 0.05). Protocols: ``fit_all`` =
the paper's (all labels used, accuracy on all points: separability);
``transductive`` = 10% of the labels per class, accuracy on the rest.
"""
import os.path as osp
import sys

if __name__ == '__main__':  # import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
import os
import time
from typing import Dict, List

from benchmarks.common import (JSONLResults, check_results_file,
                               environment_info)
from benchmarks.common.cli import (ArgumentParser, check_output_dir,
                                   check_threads, nonnegative_int,
                                   positive_float, positive_int, run_main)
from benchmarks.synthetic.figures import make_figures
from benchmarks.synthetic.model import fit, trajectory
from benchmarks.synthetic.paper import (PAPER, build, check_settings,
                                        settings)
from benchmarks.synthetic.report import combos, summarize, write_outputs


KEY_FIELDS = ('dataset', 'seed', 'schedule', 'protocol', 'diffusion',
              'settings', 'epochs', 'model')


def label_rate(text: str) -> float:
    r"""An :mod:`argparse` type: a fraction in :math:`(0, 1)`, so that some
    points are labelled and some are left to test on."""
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f'expected a number in (0, 1), got {text!r}')
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--datasets', nargs='+', default=list(PAPER),
                   choices=list(PAPER))
    p.add_argument('--seeds', type=nonnegative_int, nargs='+',
                   default=list(range(10)))
    p.add_argument('--schedules', nargs='*', default=['paper', 'converged'],
                   choices=['paper', 'converged'],
                   help='training schedules (none: trajectories and '
                   'figures only)')
    p.add_argument('--protocols', nargs='+',
                   default=['fit_all', 'transductive'],
                   choices=['fit_all', 'transductive'])
    p.add_argument('--label-rate', type=label_rate, default=0.1,
                   help='labelled fraction per class (transductive)')
    p.add_argument('--paper-epochs', type=positive_int, default=20)
    p.add_argument('--converged-epochs', type=positive_int, default=200)
    p.add_argument('--adam-lr', type=positive_float, default=0.05)
    p.add_argument('--size-scale', type=positive_float, default=1.0,
                   help='scale the number of points (for quick checks)')
    p.add_argument('--max-steps', type=nonnegative_int, default=None,
                   help='cap the number of diffusion steps (quick checks)')
    p.add_argument('--hidden', type=positive_int, default=2,
                   help='hidden units of the residual block (paper: 2)')
    p.add_argument('--trajectory-steps', type=positive_int, default=None,
                   help='diffusion steps for the ratio/energy curves, GIFs '
                   'and scatter plots (default: the training K)')
    p.add_argument('--gif-frames', type=positive_int, default=40)
    p.add_argument('--no-figures', action='store_true')
    p.add_argument('--threads', type=positive_int, default=1)
    p.add_argument('--skip-bad-lines', action='store_true',
                   help='skip (with a warning) lines of results.jsonl that '
                   'are not JSON records, instead of stopping')
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    r"""Trains, records and writes everything; returns the summary."""
    with JSONLResults(os.path.join(args.out, 'results.jsonl'), KEY_FIELDS,
                      args.skip_bad_lines) as results:
        return _run(args, results)


def _run(args: argparse.Namespace, results: JSONLResults) -> dict:
    model = None if args.hidden == 2 else f'hidden={args.hidden}'
    setting = {name: settings(name, args.max_steps, args.size_scale)
               for name in args.datasets}
    traj_rows: List[dict] = []
    examples: Dict[str, dict] = {}
    for name, s in setting.items():
        traj_steps = args.trajectory_steps or s['num_steps']
        every = max(1, traj_steps // 60)
        for seed in args.seeds:
            data = build(name, seed, s)
            m, xs = trajectory(data, traj_steps, every)
            for i, step in enumerate(m['step']):
                traj_rows.append({'dataset': name, 'seed': seed,
                                  'step': step,
                                  **{k: v[i] for k, v in m.items()
                                     if k != 'step'}})
            if seed == args.seeds[0]:
                examples[name] = dict(data=data, xs=xs, m=m, s=s)
            for schedule, protocol in combos(args.schedules, args.protocols):
                for diffusion in (True, False):
                    key = dict(dataset=name, seed=seed, schedule=schedule,
                               protocol=protocol, diffusion=diffusion,
                               settings=s,
                               epochs=args.paper_epochs if schedule ==
                               'paper' else args.converged_epochs)
                    if model is not None:  # Absent: the paper's model.
                        key['model'] = model
                    if results.done(key):
                        continue
                    t0 = time.time()
                    acc, h = fit(data, s, diffusion, schedule, protocol,
                                 seed, hidden=args.hidden,
                                 paper_epochs=args.paper_epochs,
                                 converged_epochs=args.converged_epochs,
                                 adam_lr=args.adam_lr,
                                 label_rate=args.label_rate)
                    results.append({**key, 'acc': acc,
                                    'seconds': time.time() - t0,
                                    'env': environment_info()})
                    if seed == args.seeds[0] and diffusion and \
                            schedule == args.schedules[-1] and \
                            protocol == 'fit_all':
                        examples[name]['learned'] = (h, acc)
                    print(f'{name:>11} seed={seed} {schedule:>9} '
                          f'{protocol:>12} diffusion={diffusion!s:5} '
                          f'acc={acc:.4f}', flush=True)
    summary = summarize(results, traj_rows, setting, args.schedules,
                        args.protocols, args.seeds, model)
    write_outputs(args.out, summary, traj_rows, args.schedules,
                  args.protocols, len(args.seeds))
    if not args.no_figures:
        make_figures(args.out, args.datasets, examples, traj_rows,
                     args.gif_frames)
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    check_output_dir(args.out)
    check_results_file(os.path.join(args.out, 'results.jsonl'),
                       args.skip_bad_lines)
    transductive = 'converged' in args.schedules and \
        'transductive' in args.protocols
    for name in args.datasets:
        check_settings(name, settings(name, args.max_steps, args.size_scale),
                       args.label_rate if transductive else None)
    check_threads(args.threads)
    run(args)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
