r"""Transductive few-shot classification on pre-extracted embeddings:
the Diff-ResNet diffusion head against SimpleShot and LaplacianShot.

Every method sees the same episodes (N-way K-shot, Q queries per class);
the script reports the mean query accuracy with its 95% confidence interval
over episodes, and the paired difference to SimpleShot.

Examples::

    # Real data shipped with scikit-learn, and a synthetic clustered set:
    python benchmarks/fewshot.py --dataset digits clustered --out /tmp/fs

    # Your own backbone features (.npz or .pt with 'features', 'labels' and
    # optionally 'base_mean' or 'base_features'):
    python benchmarks/fewshot.py --features feats.npz --out /tmp/fs
"""
import os.path as osp
import sys

if __name__ == '__main__':  # import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
import functools
import os
import time
from typing import Callable, Dict, List

import numpy as np
from tqdm import tqdm

from benchmarks.common import (JSONLResults, check_results_file,
                               environment_info)
from benchmarks.common.cli import (ArgumentParser, UsageError,
                                   check_input_file, check_output_dir,
                                   check_threads, nonnegative_float,
                                   nonnegative_int, positive_float,
                                   positive_int, run_main)
from benchmarks.fewshot import (
    FewShotFeatures,
    clustered_features,
    diffusion_shot,
    digits_features,
    evaluate_episodes,
    laplacian_shot,
    load_features,
    mean_confidence_interval,
    save_features,
    simple_shot,
)
from benchmarks.fewshot.report import LABELS, write_summary

METHODS = ('simpleshot', 'laplacianshot', 'residual', 'diffusion')
KEY_FIELDS = ('dataset', 'way', 'shot', 'query', 'episodes', 'seed',
              'method', 'config')
DIGITS = range(10)


def n_way(text: str) -> int:
    r"""An :mod:`argparse` type: classes per episode, an integer
    :math:`\geq 2`."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f'expected an integer >= 2, got {text!r}')
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--features', nargs='*', default=[],
                   help='.npz/.pt embedding files (see load_features)')
    p.add_argument('--dataset', nargs='*', default=[],
                   choices=['digits', 'clustered'],
                   help='built-in feature sets (default: both when no '
                   '--features is given)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--way', type=n_way, default=5)
    p.add_argument('--shot', type=positive_int, nargs='+', default=[1, 5])
    p.add_argument('--query', type=positive_int, default=15)
    p.add_argument('--episodes', type=positive_int, default=600)
    p.add_argument('--seed', type=nonnegative_int, default=0)
    p.add_argument('--methods', nargs='+', default=list(METHODS),
                   choices=METHODS)
    # Diffusion head (defaults: official code, n_top=8 / sigma=4 there).
    p.add_argument('--k', type=positive_int, default=6,
                   help='neighbours per node')
    p.add_argument('--sigma-k', type=positive_int, default=3,
                   help='sigma_i = distance to this neighbour')
    p.add_argument('--num-steps', type=nonnegative_int, default=6)
    p.add_argument('--step-size', type=positive_float, default=0.5)
    p.add_argument('--epochs', type=positive_int, default=100)
    p.add_argument('--lr', type=positive_float, default=0.1)
    p.add_argument('--no-shift', action='store_true',
                   help='skip the cross-domain shift of the query')
    # LaplacianShot.
    p.add_argument('--lam', type=nonnegative_float, default=0.5)
    p.add_argument('--knn', type=positive_int, default=3)
    p.add_argument('--base-classes', type=nonnegative_int, nargs='*',
                   default=[0, 1, 2, 3, 4],
                   help='digits used only for the centering mean')
    p.add_argument('--save-features', default=None,
                   help='also write each built-in set as <this>_<name>.npz')
    p.add_argument('--threads', type=positive_int, default=1,
                   help='torch threads (1 is fastest for these tiny models '
                   'on a shared CPU)')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--skip-bad-lines', action='store_true',
                   help='skip (with a warning) lines of results.jsonl that '
                   'are not JSON records, instead of stopping')
    return p.parse_args(argv)


def load_sets(args: argparse.Namespace) -> Dict[str, FewShotFeatures]:
    r"""The built-in sets asked for (both when no file is given), then the
    feature files, by name."""
    sets: Dict[str, FewShotFeatures] = {}
    names = args.dataset or ([] if args.features else ['digits', 'clustered'])
    for name in names:
        if name == 'digits':
            sets[name] = digits_features(args.base_classes)
        else:
            sets[name] = clustered_features(seed=args.seed)
        if args.save_features:
            save_features(f'{args.save_features}_{name}.npz', *sets[name])
    for path in args.features:
        name = os.path.splitext(os.path.basename(path))[0]
        sets[name] = load_features(path)
    for name, fs in sets.items():
        need = max(args.shot) + args.query
        counts = np.bincount(fs.labels.numpy() - int(fs.labels.min()))
        usable = int((counts >= need).sum())
        if usable < args.way:
            raise UsageError(
                f"--way {args.way}: '{name}' has {usable} classes with at "
                f"least --shot + --query = {need} samples")
    return sets


def make_methods(args: argparse.Namespace,
                 episode_seed: List[int]) -> Dict[str, Callable]:
    r"""The methods of :obj:`args.methods`; each call of a diffusion head
    takes the next seed of :obj:`episode_seed[0]` for its init."""
    def head(num_steps):
        def run_head(s, y, q, n_way):
            episode_seed[0] += 1  # A fresh, reproducible init per episode.
            return diffusion_shot(s, y, q, n_way, k=args.k,
                                  sigma_k=args.sigma_k, num_steps=num_steps,
                                  step_size=args.step_size,
                                  epochs=args.epochs, lr=args.lr,
                                  shift=not args.no_shift,
                                  seed=episode_seed[0])
        return run_head

    table = {
        'simpleshot': simple_shot,
        'laplacianshot': functools.partial(laplacian_shot, knn=args.knn,
                                           lam=args.lam),
        'residual': head(0),
        'diffusion': head(args.num_steps),
    }
    return {m: table[m] for m in args.methods}


def run(args: argparse.Namespace) -> List[dict]:
    r"""Evaluates the methods on every set and shot, resuming from
    ``results.jsonl``, writes the summary and returns one record per
    (set, shot, method)."""
    sets = load_sets(args)
    os.makedirs(args.out, exist_ok=True)
    with JSONLResults(os.path.join(args.out, 'results.jsonl'), KEY_FIELDS,
                      args.skip_bad_lines) as results:
        rows = _run(args, sets, results)
    write_summary(args.out, rows, args.way)
    return rows


def _run(args: argparse.Namespace, sets: Dict[str, FewShotFeatures],
         results: JSONLResults) -> List[dict]:
    config = dict(k=args.k, sigma_k=args.sigma_k, num_steps=args.num_steps,
                  step_size=args.step_size, epochs=args.epochs, lr=args.lr,
                  shift=not args.no_shift, lam=args.lam, knn=args.knn)
    rows = []
    for name, fs in sets.items():
        for shot in args.shot:
            key = dict(dataset=name, way=args.way, shot=shot,
                       query=args.query, episodes=args.episodes,
                       seed=args.seed, config=config)
            todo = [m for m in args.methods
                    if not results.done({**key, 'method': m})]
            if todo:
                t0 = time.time()
                seed_box = [args.seed * 1_000_003]
                methods = make_methods(args, seed_box)
                methods = {m: methods[m] for m in todo}
                progress = None if args.no_progress else functools.partial(
                    tqdm, total=args.episodes, desc=f'{name} {shot}-shot',
                    file=sys.stderr)
                acc = evaluate_episodes(
                    fs.features, fs.labels, methods, n_way=args.way,
                    k_shot=shot, n_query=args.query,
                    num_episodes=args.episodes, base_mean=fs.base_mean,
                    seed=args.seed, progress=progress)
                seconds = time.time() - t0
                np.savez(os.path.join(args.out,
                                      f'episodes_{name}_{shot}shot.npz'),
                         **acc)
                for m in todo:
                    mean, ci = mean_confidence_interval(acc[m])
                    rec = {**key, 'method': m, 'acc': mean, 'ci95': ci,
                           'seconds_all_methods': seconds,
                           'env': environment_info()}
                    if 'simpleshot' in acc and m != 'simpleshot':
                        d_mean, d_ci = mean_confidence_interval(
                            acc[m] - acc['simpleshot'])
                        rec.update(diff_vs_simpleshot=d_mean,
                                   diff_ci95=d_ci)
                    results.append(rec)
            for m in args.methods:
                rec = next(r for r in results
                           if results.key(r) == results.key({**key,
                                                              'method': m}))
                rows.append(rec)
                print(f"{name:>10} {args.way}-way {shot}-shot "
                      f"{LABELS[m]:<28} {rec['acc']:6.2f} ± "
                      f"{rec['ci95']:.2f}", flush=True)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    check_output_dir(args.out)
    check_results_file(os.path.join(args.out, 'results.jsonl'),
                       args.skip_bad_lines)
    for path in args.features:
        check_input_file(path, '--features')
    uses_digits = 'digits' in (args.dataset or ([] if args.features else
                                                 ['digits']))
    if uses_digits and (not set(args.base_classes) <= set(DIGITS)
                        or set(DIGITS) <= set(args.base_classes)):
        raise UsageError(f"--base-classes: digits has the classes 0-9 and "
                         f"needs some left as novel classes (got "
                         f"{' '.join(map(str, args.base_classes))})")
    if args.save_features:
        check_output_dir(os.path.dirname(os.path.abspath(
            args.save_features)), '--save-features')
    check_threads(args.threads)
    run(args)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
