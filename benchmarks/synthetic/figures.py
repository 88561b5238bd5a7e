r"""Figures of the synthetic experiments: points before and after diffusion
and as learned, the ratio and energy against the diffusion step, and one
animated GIF of the points under diffusion per data set."""
import io
import os
from typing import Dict, List, Sequence

import numpy as np
from torch import Tensor

from benchmarks.synthetic.paper import ROBUST_Q, TITLES

COLORS = np.array(['#d62728', '#1f77b4'])


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


def make_figures(out: str, datasets: Sequence[str],
                 examples: Dict[str, dict], traj_rows: List[dict],
                 gif_frames: int) -> None:
    r"""Writes ``before_after.png``, ``ratio_energy_vs_step.png`` and
    ``diffusion_<name>.gif`` to the folder :obj:`out`. :obj:`examples` maps
    a data set to its first seed's ``data``, states ``xs``, metrics ``m``
    and, where trained, ``learned = (h, acc)``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [n for n in datasets if n in examples]
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
    fig.savefig(os.path.join(out, 'before_after.png'), dpi=110)
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
    fig.savefig(os.path.join(out, 'ratio_energy_vs_step.png'), dpi=110)
    plt.close(fig)

    # 3. One animated GIF per data set.
    for name in names:
        write_gif(plt, examples[name], name,
                  os.path.join(out, f'diffusion_{name}.gif'), gif_frames)


def write_gif(plt, ex: dict, name: str, path: str, num_frames: int) -> None:
    r"""An animated GIF of the states :obj:`ex['xs']` of one data set."""
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
