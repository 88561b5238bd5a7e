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

if __name__ == '__main__':  # run as a script: import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
import csv
import io
import json
import os
import time
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module

from torch_geometric_diff import DiffConv
from benchmarks.synthetic.toy import load_toy
from torch_geometric_diff.metrics import diffusion_trajectory_metrics
from benchmarks.common import num_threads
from torch_geometric_diff.transforms import GaussianKNNGraph
from benchmarks.common import JSONLResults, environment_info

# Official settings (there ``n_top`` counts the point itself: k = n_top - 1).
PAPER = {
    'two_moons': dict(k=24, sigma=0.5, num_steps=60, lr=1.0),
    'two_circles': dict(k=49, sigma=0.5, num_steps=200, lr=1.0),
    'two_spirals': dict(k=24, sigma=0.5, num_steps=900, lr=0.8),
    'xor': dict(k=19, sigma=0.5, num_steps=200, lr=1.0),
}
TITLES = {'two_moons': 'two moons', 'two_circles': 'two circles',
          'two_spirals': 'two spirals', 'xor': 'XOR'}
SIZE_ARG = {'xor': 'num_per_cluster'}
DEFAULT_SIZE = {'two_moons': 500, 'two_circles': 500, 'two_spirals': 500,
                'xor': 100}
COLORS = np.array(['#d62728', '#1f77b4'])
ROBUST_Q = 0.01


class ToyDiffResNet(Module):
    r"""The toy model of the paper: one residual block, :math:`K` diffusion
    steps, a linear classifier."""
    def __init__(self, num_steps: int, step_size: float = 1.0,
                 hidden: int = 2) -> None:
        super().__init__()
        self.fc1 = Linear(2, hidden)
        self.fc2 = Linear(hidden, 2)
        self.diffusion = DiffConv(step_size=step_size, num_steps=num_steps,
                                  normalize=None, cached=True)
        self.classifier = Linear(2, 2)

    def features(self, x: Tensor, edge_index: Tensor,
                 edge_weight: Tensor) -> Tensor:
        h = x + self.fc2(F.relu(self.fc1(x)))
        return self.diffusion(h, edge_index, edge_weight)

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_weight: Tensor) -> Tensor:
        return self.classifier(self.features(x, edge_index, edge_weight))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--datasets', nargs='+', default=list(PAPER),
                   choices=list(PAPER))
    p.add_argument('--seeds', type=int, nargs='+', default=list(range(10)))
    p.add_argument('--schedules', nargs='*', default=['paper', 'converged'],
                   choices=['paper', 'converged'],
                   help='training schedules (none: trajectories and '
                   'figures only)')
    p.add_argument('--protocols', nargs='+',
                   default=['fit_all', 'transductive'],
                   choices=['fit_all', 'transductive'])
    p.add_argument('--label-rate', type=float, default=0.1,
                   help='labelled fraction per class (transductive)')
    p.add_argument('--paper-epochs', type=int, default=20)
    p.add_argument('--converged-epochs', type=int, default=200)
    p.add_argument('--adam-lr', type=float, default=0.05)
    p.add_argument('--size-scale', type=float, default=1.0,
                   help='scale the number of points (for quick checks)')
    p.add_argument('--max-steps', type=int, default=None,
                   help='cap the number of diffusion steps (quick checks)')
    p.add_argument('--hidden', type=int, default=2,
                   help='hidden units of the residual block (paper: 2)')
    p.add_argument('--trajectory-steps', type=int, default=None,
                   help='diffusion steps for the ratio/energy curves, GIFs '
                   'and scatter plots (default: the training K)')
    p.add_argument('--gif-frames', type=int, default=40)
    p.add_argument('--no-figures', action='store_true')
    p.add_argument('--threads', type=int, default=1)
    return p.parse_args(argv)


def settings(name: str, args) -> dict:
    s = dict(PAPER[name])
    if args.max_steps is not None:
        s['num_steps'] = min(s['num_steps'], args.max_steps)
    s['size'] = max(2, int(round(DEFAULT_SIZE[name] * args.size_scale)))
    return s


def build(name: str, seed: int, s: dict):
    data = load_toy(name, seed=seed, **{SIZE_ARG.get(name,
                                                     'num_per_class'):
                                        s['size']})
    graph = GaussianKNNGraph(k=s['k'], sigma=s['sigma'], normalize='row',
                             symmetrize=None, loop=True)
    return graph(data)


def train_mask(y: Tensor, rate: float, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(10_000 + seed)
    mask = torch.zeros(y.numel(), dtype=torch.bool)
    for c in torch.unique(y):
        idx = (y == c).nonzero().view(-1)
        n = max(1, int(round(rate * idx.numel())))
        mask[idx[torch.randperm(idx.numel(), generator=g)[:n]]] = True
    return mask


def fit(data, s: dict, diffusion: bool, schedule: str, protocol: str,
        seed: int, args):
    torch.manual_seed(seed)
    model = ToyDiffResNet(s['num_steps'] if diffusion else 0,
                          hidden=args.hidden)
    if schedule == 'paper':
        # The official script builds a fresh SGD optimizer every step, so
        # its momentum never acts: plain SGD.
        opt = torch.optim.SGD(model.parameters(), lr=s['lr'],
                              weight_decay=5e-4)
        epochs = args.paper_epochs
    else:
        opt = torch.optim.Adam(model.parameters(), lr=args.adam_lr)
        epochs = args.converged_epochs
    if protocol == 'fit_all':
        train = test = torch.ones(data.num_nodes, dtype=torch.bool)
    else:
        train = train_mask(data.y, args.label_rate, seed)
        test = ~train
    args_ = (data.x, data.edge_index, data.edge_weight)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(model(*args_)[train], data.y[train]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        h = model.features(*args_)
        pred = model.classifier(h).argmax(dim=1)
    acc = float((pred[test] == data.y[test]).float().mean())
    return acc, h


def trajectory(data, num_steps: int, every: int):
    conv = DiffConv(step_size=1.0, num_steps=num_steps, normalize=None)
    with torch.no_grad():
        xs = conv(data.x, data.edge_index, data.edge_weight, return_all=True)
    m = diffusion_trajectory_metrics(conv, data.x, data.edge_index,
                                     data.edge_weight, y=data.cluster,
                                     q=(ROBUST_Q, ), every=every)
    return m, xs


def main(argv=None) -> dict:
    args = parse_args(argv)
    with num_threads(args.threads):
        return run(args)


def run(args) -> dict:
    os.makedirs(args.out, exist_ok=True)
    results = JSONLResults(os.path.join(args.out, 'results.jsonl'),
                           ['dataset', 'seed', 'schedule', 'protocol',
                            'diffusion', 'settings', 'epochs', 'model'])
    traj_rows: List[dict] = []
    examples: Dict[str, dict] = {}
    for name in args.datasets:
        s = settings(name, args)
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
            for schedule in args.schedules:
                for protocol in args.protocols:
                    if schedule == 'paper' and protocol == 'transductive':
                        continue  # The paper schedule is for fit_all only.
                    for diffusion in (True, False):
                        key = dict(dataset=name, seed=seed,
                                   schedule=schedule, protocol=protocol,
                                   diffusion=diffusion, settings=s,
                                   epochs=args.paper_epochs if schedule ==
                                   'paper' else args.converged_epochs)
                        if args.hidden != 2:  # Absent: the paper's model.
                            key['model'] = f'hidden={args.hidden}'
                        if results.done(key):
                            continue
                        t0 = time.time()
                        acc, h = fit(data, s, diffusion, schedule, protocol,
                                     seed, args)
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
    summary = summarize(args, results, traj_rows)
    write_outputs(args, summary, traj_rows)
    if not args.no_figures:
        make_figures(args, examples, traj_rows)
    return summary


def summarize(args, results: JSONLResults, traj_rows: List[dict]) -> dict:
    out: Dict[str, dict] = {}
    model = None if args.hidden == 2 else f'hidden={args.hidden}'
    for name in args.datasets:
        entry: Dict[str, object] = {'settings': None}
        for schedule in args.schedules:
            for protocol in args.protocols:
                for diffusion in (True, False):
                    accs = [r['acc'] for r in results
                            if r['dataset'] == name
                            and r['schedule'] == schedule
                            and r['protocol'] == protocol
                            and r['diffusion'] == diffusion
                            and r.get('model') == model
                            and r['seed'] in args.seeds]
                    if not accs:
                        continue
                    a = np.asarray(accs) * 100
                    entry[f'{schedule}/{protocol}/'
                          f'{"diff" if diffusion else "nodiff"}'] = dict(
                              mean=float(a.mean()), std=float(a.std()),
                              min=float(a.min()), max=float(a.max()),
                              median=float(np.median(a)),
                              n_ge_99=int((a >= 99).sum()), n=int(a.size))
        rows = [r for r in traj_rows if r['dataset'] == name]
        steps = sorted({r['step'] for r in rows})
        by_step = {t: [r for r in rows if r['step'] == t] for t in steps}
        ratio = [float(np.mean([r['ratio'] for r in by_step[t]]))
                 for t in steps]
        robust = [float(np.mean([r[f'ratio_q{ROBUST_Q:g}']
                                 for r in by_step[t]])) for t in steps]
        # Per seed: is the exact ratio non-decreasing over recorded steps?
        mono = []
        for seed in args.seeds:
            seq = [r['ratio'] for r in rows if r['seed'] == seed]
            mono.append(bool(np.all(np.diff(seq) >= -1e-9)))
        entry.update(
            steps=steps[-1], ratio_first=ratio[0], ratio_last=ratio[-1],
            ratio_max=max(ratio), ratio_argmax=steps[int(np.argmax(ratio))],
            robust_first=robust[0],
            robust_last=robust[-1],
            energy_first=float(np.mean([r['energy'] for r in by_step[0]])),
            energy_last=float(np.mean([r['energy']
                                       for r in by_step[steps[-1]]])),
            ratio_monotone_seeds=int(sum(mono)), n_seeds=len(mono),
            settings=settings(name, args))
        out[name] = entry
    return out


def write_outputs(args, summary: dict, traj_rows: List[dict]) -> None:
    with open(os.path.join(args.out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    keys = sorted({k for r in traj_rows for k in r})
    with open(os.path.join(args.out, 'trajectory.csv'), 'w',
              newline='') as f:
        w = csv.DictWriter(f, ['dataset', 'seed', 'step'] +
                           [k for k in keys
                            if k not in ('dataset', 'seed', 'step')])
        w.writeheader()
        w.writerows(traj_rows)
    acc_rows = []
    for name, e in summary.items():
        for key, v in e.items():
            if isinstance(v, dict) and 'mean' in v:
                schedule, protocol, which = key.split('/')
                acc_rows.append(dict(dataset=name, schedule=schedule,
                                     protocol=protocol, model=which, **v))
    with open(os.path.join(args.out, 'accuracy.csv'), 'w', newline='') as f:
        if acc_rows:
            w = csv.DictWriter(f, list(acc_rows[0]))
            w.writeheader()
            w.writerows(acc_rows)

    def cell(e, key):
        v = e.get(key)
        if v is None:
            return '–'
        return (f"{v['mean']:.1f} ± {v['std']:.1f} (min {v['min']:.1f}, "
                f"{v['n_ge_99']}/{v['n']} ≥ 99)")

    lines = []
    combos = [(s, p) for s in args.schedules for p in args.protocols
              if not (s == 'paper' and p == 'transductive')]
    for schedule, protocol in combos:
        lines += [
            f'\n**{schedule} schedule, {protocol}** — accuracy (%) over '
            f'{len(args.seeds)} seeds, mean ± std (min, seeds ≥ 99%)\n',
            '| data | k | K | with diffusion | without diffusion |',
            '|---|---|---|---|---|',
        ]
        for name, e in summary.items():
            s = e['settings']
            lines.append(
                f"| {TITLES[name]} | {s['k']} | {s['num_steps']} | "
                f"{cell(e, f'{schedule}/{protocol}/diff')} | "
                f"{cell(e, f'{schedule}/{protocol}/nodiff')} |")
    lines += [
        '\n**Distance-diameter ratio and Dirichlet energy under pure '
        'diffusion of the inputs** (mean over seeds; groups: the two '
        'classes, for XOR its four discs)\n',
        f'| data | K | ratio step 0 | ratio step K | max (at step) | '
        f'robust (q={ROBUST_Q:g}) 0 → K | seeds with non-decreasing ratio '
        f'| energy 0 → K |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for name, e in summary.items():
        lines.append(
            f"| {TITLES[name]} | {e['steps']} | {e['ratio_first']:.3g} | "
            f"{e['ratio_last']:.3g} | {e['ratio_max']:.3g} "
            f"({e['ratio_argmax']}) | {e['robust_first']:.3g} → "
            f"{e['robust_last']:.3g} | {e['ratio_monotone_seeds']}/"
            f"{e['n_seeds']} | {e['energy_first']:.3g} → "
            f"{e['energy_last']:.3g} |")
    with open(os.path.join(args.out, 'table.md'), 'w') as f:
        f.write('\n'.join(lines).lstrip('\n') + '\n')


# Figures ------------------------------------------------------------------


def _scatter(ax, pts: Tensor, y: Tensor, title: str, lim=None) -> None:
    pts = pts.detach().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], c=COLORS[y.numpy()], s=3,
               linewidths=0)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if lim is not None:
        ax.set_xlim(lim[0])
        ax.set_ylim(lim[1])
    ax.set_aspect('equal', adjustable='datalim' if lim is None else 'box')


def _limits(x: Tensor, pad: float = 0.08):
    lo, hi = x.min(0).values.numpy(), x.max(0).values.numpy()
    c, r = (lo + hi) / 2, (hi - lo).max() / 2 * (1 + pad)
    return (c[0] - r, c[0] + r), (c[1] - r, c[1] + r)


def make_figures(args, examples: Dict[str, dict],
                 traj_rows: List[dict]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [n for n in args.datasets if n in examples]
    # 1. Before / after diffusion / learned representation, one row each.
    fig, axes = plt.subplots(len(names), 3, figsize=(7.2, 2.4 * len(names)),
                             squeeze=False)
    for row, name in enumerate(names):
        ex = examples[name]
        data, xs, m = ex['data'], ex['xs'], ex['m']
        K = xs.size(0) - 1
        _scatter(axes[row, 0], data.x, data.y,
                 f"{TITLES[name]}: input (ratio {m['ratio'][0]:.3g})")
        _scatter(axes[row, 1], xs[-1], data.y,
                 f"after {K} steps (ratio {m['ratio'][-1]:.3g})",
                 lim=_limits(data.x))
        if 'learned' in ex:
            h, acc = ex['learned']
            _scatter(axes[row, 2], h, data.y,
                     f'trained Diff-ResNet, acc {100 * acc:.1f}%')
        else:
            axes[row, 2].axis('off')
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, 'before_after.png'), dpi=110)
    plt.close(fig)

    # 2. Ratio and energy against the diffusion step (mean over seeds and
    #    the spread across seeds).
    fig, axes = plt.subplots(2, len(names), figsize=(3.0 * len(names), 5.0),
                             squeeze=False)
    for col, name in enumerate(names):
        rows = [r for r in traj_rows if r['dataset'] == name]
        steps = sorted({r['step'] for r in rows})
        for key, label, color in [('ratio', 'min/max ratio', 'C0'),
                                  (f'ratio_q{ROBUST_Q:g}',
                                   f'robust (q={ROBUST_Q:g})', 'C1')]:
            v = np.array([[r[key] for r in rows if r['step'] == t]
                          for t in steps])
            axes[0, col].semilogy(steps, v.mean(1), color=color,
                                  label=label)
            axes[0, col].fill_between(steps, v.min(1), v.max(1),
                                      color=color, alpha=0.2, lw=0)
        axes[0, col].set_title(TITLES[name] + (' (4 discs)' if name == 'xor'
                                               else ''), fontsize=10)
        axes[0, col].set_xlabel('diffusion step')
        e = np.array([[r['energy'] for r in rows if r['step'] == t]
                      for t in steps])
        axes[1, col].semilogy(steps, e.mean(1), color='C2')
        axes[1, col].fill_between(steps, e.min(1), e.max(1), color='C2',
                                  alpha=0.2, lw=0)
        axes[1, col].set_xlabel('diffusion step')
    axes[0, 0].set_ylabel('distance / diameter')
    axes[1, 0].set_ylabel('Dirichlet energy')
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, 'ratio_energy_vs_step.png'), dpi=110)
    plt.close(fig)

    # 3. One animated GIF per data set.
    for name in names:
        write_gif(plt, examples[name], name,
                  os.path.join(args.out, f'diffusion_{name}.gif'),
                  args.gif_frames)


def write_gif(plt, ex: dict, name: str, path: str, num_frames: int) -> None:
    from PIL import Image
    data, xs, m = ex['data'], ex['xs'], ex['m']
    K = xs.size(0) - 1
    # Denser frames early on, where the points move most.
    frames_at = np.unique(np.round(
        K * np.linspace(0, 1, max(num_frames, 2))**2).astype(int))
    lim = _limits(data.x)
    ratio_at = dict(zip(m['step'], m['ratio']))
    images = []
    fig, ax = plt.subplots(figsize=(3.2, 3.2))
    for t in frames_at.tolist():
        ax.clear()
        rt = ratio_at.get(t)
        title = f'{TITLES[name]}: step {t}/{K}'
        if rt is not None:
            title += f', ratio {rt:.3g}'
        _scatter(ax, xs[t], data.y, title, lim=lim)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format='png', dpi=80)
        buf.seek(0)
        images.append(Image.open(buf).convert('RGB').convert(
            'P', palette=Image.ADAPTIVE, colors=32))
    plt.close(fig)
    durations = [80] * (len(images) - 1) + [1500]
    images[0].save(path, save_all=True, append_images=images[1:],
                   duration=durations, loop=0, optimize=True)


if __name__ == '__main__':
    main()
