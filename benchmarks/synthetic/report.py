r"""Summaries and tables of the synthetic experiments: accuracy over seeds
per (schedule, protocol, with/without diffusion), and the ratio and energy
curves of pure diffusion."""
import csv
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from benchmarks.synthetic.paper import ROBUST_Q, TITLES


def combos(schedules: Sequence[str],
           protocols: Sequence[str]) -> List[tuple]:
    r"""The (schedule, protocol) pairs that run: the paper schedule is for
    ``fit_all`` only."""
    return [(s, p) for s in schedules for p in protocols
            if not (s == 'paper' and p == 'transductive')]


def summarize(results: Iterable[Dict[str, Any]], traj_rows: List[dict],
              settings: Dict[str, Dict[str, Any]], schedules: Sequence[str],
              protocols: Sequence[str], seeds: Sequence[int],
              model: Optional[str] = None) -> Dict[str, dict]:
    r"""Per data set (the keys of :obj:`settings`): accuracy statistics over
    :obj:`seeds` of the records of :obj:`model` (:obj:`None`: the paper's
    model), and the ratio and energy at the first and last recorded step of
    :obj:`traj_rows`."""
    results = list(results)
    out: Dict[str, dict] = {}
    for name, s in settings.items():
        entry: Dict[str, object] = {'settings': None}
        for schedule in schedules:
            for protocol in protocols:
                for diffusion in (True, False):
                    accs = [r['acc'] for r in results
                            if r['dataset'] == name
                            and r['schedule'] == schedule
                            and r['protocol'] == protocol
                            and r['diffusion'] == diffusion
                            and r.get('model') == model
                            and r['seed'] in seeds]
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
        for seed in seeds:
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
            settings=s)
        out[name] = entry
    return out


def _cell(e: Dict[str, Any], key: str) -> str:
    v = e.get(key)
    if v is None:
        return '–'
    return (f"{v['mean']:.1f} ± {v['std']:.1f} (min {v['min']:.1f}, "
            f"{v['n_ge_99']}/{v['n']} ≥ 99)")


def markdown(summary: Dict[str, dict], schedules: Sequence[str],
             protocols: Sequence[str], num_seeds: int) -> str:
    r"""The accuracy tables and the ratio/energy table in Markdown."""
    lines = []
    for schedule, protocol in combos(schedules, protocols):
        lines += [
            f'\n**{schedule} schedule, {protocol}** — accuracy (%) over '
            f'{num_seeds} seeds, mean ± std (min, seeds ≥ 99%)\n',
            '| data | k | K | with diffusion | without diffusion |',
            '|---|---|---|---|---|',
        ]
        for name, e in summary.items():
            s = e['settings']
            lines.append(
                f"| {TITLES[name]} | {s['k']} | {s['num_steps']} | "
                f"{_cell(e, f'{schedule}/{protocol}/diff')} | "
                f"{_cell(e, f'{schedule}/{protocol}/nodiff')} |")
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
    return '\n'.join(lines).lstrip('\n') + '\n'


def write_outputs(out: str, summary: Dict[str, dict], traj_rows: List[dict],
                  schedules: Sequence[str], protocols: Sequence[str],
                  num_seeds: int) -> None:
    r"""Writes ``summary.json``, ``trajectory.csv``, ``accuracy.csv`` and
    ``table.md`` to the folder :obj:`out`."""
    with open(os.path.join(out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    keys = sorted({k for r in traj_rows for k in r})
    with open(os.path.join(out, 'trajectory.csv'), 'w', newline='') as f:
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
    with open(os.path.join(out, 'accuracy.csv'), 'w', newline='') as f:
        if acc_rows:
            w = csv.DictWriter(f, list(acc_rows[0]))
            w.writeheader()
            w.writerows(acc_rows)
    with open(os.path.join(out, 'table.md'), 'w') as f:
        f.write(markdown(summary, schedules, protocols, num_seeds))
