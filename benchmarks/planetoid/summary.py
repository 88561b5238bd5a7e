r"""Summaries of result files: the hyper-parameters selected by validation
accuracy, mean ± std and 95% confidence intervals, paired tests of
diffresnet against every baseline, written as Markdown, CSV and LaTeX."""
import csv
import json
import math
import os
import sys
from collections import defaultdict
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from benchmarks.common import (confidence_interval, iter_jsonl, mean_std,
                               paired_test)
from benchmarks.planetoid.datasets import DATASETS
from benchmarks.planetoid.models import MODELS
from benchmarks.planetoid.protocols import PROTOCOLS
from benchmarks.planetoid.records import KEY_FIELDS


def _config_key(rec: Dict[str, Any]) -> str:
    return json.dumps(rec['hparams'], sort_keys=True)


def _group_configs(records: List[Dict[str, Any]]
                   ) -> Dict[Tuple[str, str, str], Dict[str, List]]:
    groups: Dict[Tuple[str, str, str], Dict[str, List]] = defaultdict(
        lambda: defaultdict(list))
    for r in records:
        groups[(r['dataset'], r['protocol'], r['model'])][_config_key(r)] \
            .append(r)
    return groups


def _selection_val(configs: Dict[str, List[Dict[str, Any]]]
                   ) -> Dict[str, float]:
    r"""Mean validation accuracy per config, over the (split, init) runs that
    every config of the group holds (over all its runs when they share
    none), so a config is not favoured by the splits it happened to run."""
    runs = [{(r['split'], r['init']) for r in rs} for rs in configs.values()]
    shared = set.intersection(*runs)
    return {
        c: float(np.mean([r['val_acc'] for r in rs
                          if not shared or (r['split'], r['init']) in shared]))
        for c, rs in configs.items()
    }


def select_configs(records: List[Dict[str, Any]]
                   ) -> Dict[Tuple[str, str, str], List[Dict[str, Any]]]:
    r"""Groups records by (dataset, protocol, model) and keeps, per group,
    the hyper-parameters with the highest mean *validation* accuracy on the
    runs all configs share (the test accuracy is never looked at)."""
    out = {}
    for key, configs in _group_configs(records).items():
        val = _selection_val(configs)
        out[key] = configs[max(val, key=val.get)]
    return out


def grid_rows(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    r"""One row per config of every (dataset, protocol, model) that ran more
    than one: runs, the validation accuracy used for selection, validation
    and test accuracy over all its runs, and whether it was selected."""
    out = []
    for key, configs in _group_configs(dedupe(records)).items():
        if len(configs) < 2:
            continue
        val = _selection_val(configs)
        best = max(val, key=val.get)
        for c in sorted(configs, key=val.get, reverse=True):
            rs = configs[c]
            mean, std = mean_std([r['test_acc'] for r in rs])
            out.append({
                'dataset': key[0], 'protocol': key[1], 'model': key[2],
                'hparams': _short_hparams(rs[0]['hparams']),
                'runs': len(rs), 'selection_val': val[c],
                'val_mean': float(np.mean([r['val_acc'] for r in rs])),
                'test_mean': mean, 'test_std': std, 'selected': c == best,
            })
    return out


def dedupe(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    r"""Keeps the first record of every run (same :obj:`KEY_FIELDS`), so
    overlapping result files can be summarised together."""
    seen, out = set(), []
    for r in records:
        key = tuple(json.dumps(r.get(k), sort_keys=True) for k in KEY_FIELDS)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def summarize(records: List[Dict[str, Any]]
              ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    r"""Returns the rows of the main table and of the paired comparisons.

    Main table, per dataset x protocol x model (selected config): runs,
    splits, test accuracy mean ± sample std over all runs (the paper's
    figure), and the 95% t-interval of the mean over the per-split means
    (splits are the independent units; with a single split, over runs).

    Paired table, diffresnet against every other model: the (split, init)
    pairs both hold, averaged over inits per split; the paired t-test and the
    Wilcoxon signed-rank test over splits (over inits when there is one
    split). Differences are diffresnet minus baseline.
    """
    selected = select_configs(dedupe(records))
    rows, paired = [], []
    names = [s.name for s in DATASETS.values()]
    order = sorted(selected, key=lambda k: (
        names.index(k[0]) if k[0] in names else len(names), k[0],
        PROTOCOLS.index(k[1]) if k[1] in PROTOCOLS else 9, k[1],
        MODELS.index(k[2]) if k[2] in MODELS else len(MODELS), k[2]))
    for key in order:
        rs = selected[key]
        test = [r['test_acc'] for r in rs]
        mean, std = mean_std(test)
        per_split = _per_split(rs)
        units = list(per_split.values()) if len(per_split) > 1 else test
        lo, hi = confidence_interval(units)
        row = {
            'dataset': key[0], 'protocol': key[1], 'model': key[2],
            'runs': len(rs), 'splits': len(per_split),
            'test_mean': mean, 'test_std': std, 'ci_low': lo, 'ci_high': hi,
            'ci_unit': 'split' if len(per_split) > 1 else 'run',
            'val_mean': float(np.mean([r['val_acc'] for r in rs])),
            'epochs_mean': float(np.mean([r['epochs'] for r in rs])),
            'seconds_mean': float(np.mean([r['seconds'] for r in rs])),
            'hparams': _short_hparams(rs[0]['hparams']),
            'device': ', '.join(sorted({_device_name(r) for r in rs})),
        }
        if all('test_auc' in r for r in rs):
            row['test_auc_mean'], row['test_auc_std'] = mean_std(
                [r['test_auc'] for r in rs])
        rows.append(row)
    for key in order:
        if key[2] == 'diffresnet':
            continue
        ref_key = (key[0], key[1], 'diffresnet')
        if ref_key not in selected:
            continue
        a = {(r['split'], r['init']): r['test_acc'] for r in selected[ref_key]}
        b = {(r['split'], r['init']): r['test_acc'] for r in selected[key]}
        shared = sorted(set(a) & set(b))
        if not shared:
            continue
        splits = sorted({s for s, _ in shared})
        if len(splits) > 1:
            unit = 'split'
            xa = [np.mean([a[k] for k in shared if k[0] == s]) for s in splits]
            xb = [np.mean([b[k] for k in shared if k[0] == s]) for s in splits]
        else:
            unit = 'init'
            xa, xb = [a[k] for k in shared], [b[k] for k in shared]
        t = paired_test(xa, xb, 't-test')
        w = paired_test(xa, xb, 'wilcoxon')
        paired.append({
            'dataset': key[0], 'protocol': key[1], 'baseline': key[2],
            'pairs': len(shared), 'unit': unit, 'n': t['n'],
            'diff_mean': t['mean_diff'], 'wins': t['wins'],
            'ties': t['ties'], 'losses': t['losses'],
            't_test': t['test'], 't_pvalue': t['pvalue'],
            'wilcoxon_test': w['test'], 'wilcoxon_pvalue': w['pvalue'],
        })
    return rows, paired


def _device_name(r: Dict[str, Any]) -> str:
    return str(r.get('gpu') or r.get('device', 'n/a'))


def _per_split(rs: List[Dict[str, Any]]) -> Dict[int, float]:
    by: Dict[int, List[float]] = defaultdict(list)
    for r in rs:
        by[r['split']].append(r['test_acc'])
    return {s: float(np.mean(v)) for s, v in sorted(by.items())}


def _short_hparams(hp: Dict[str, Any]) -> str:
    # The diffusion options are in a record only when set (see
    # models.DIFFUSION_OPTIONS), and so in its name only then.
    keys = ('scheme', 'step_size', 'num_steps', 'dropout', 'hidden', 'lr',
            'weight_decay', 'learnable_step')
    return ' '.join(f'{k}={hp[k]}' for k in keys if k in hp)


def _pct(x: float) -> str:
    return 'n/a' if x is None or math.isnan(x) else f'{100 * x:.1f}'


def _p(x: float) -> str:
    if x is None or math.isnan(x):
        return 'n/a'
    return f'{x:.2g}' if x >= 1e-3 else f'{x:.1e}'


def format_markdown(rows: List[Dict[str, Any]],
                    paired: List[Dict[str, Any]]) -> str:
    out = [
        '| Dataset | Protocol | Model | Runs (splits) | Test acc. (%) '
        '| 95% CI | Val acc. (%) | Epochs | Hyper-parameters | Device |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        auc = (f' (AUC {_pct(r["test_auc_mean"])} ± '
               f'{_pct(r["test_auc_std"])})' if 'test_auc_mean' in r else '')
        out.append(
            f'| {r["dataset"]} | {r["protocol"]} | {r["model"]} '
            f'| {r["runs"]} ({r["splits"]}) '
            f'| {_pct(r["test_mean"])} ± {_pct(r["test_std"])}{auc} '
            f'| [{_pct(r["ci_low"])}, {_pct(r["ci_high"])}] '
            f'| {_pct(r["val_mean"])} | {r["epochs_mean"]:.0f} '
            f'| {r["hparams"]} | {r["device"]} |')
    out.append('')
    out.append('Mean ± sample std over all runs; 95% CI: Student t over the '
               'per-split means (over runs for one split). Hyper-parameters '
               'selected by validation accuracy only.')
    if paired:
        out += [
            '',
            '| Dataset | Protocol | diffresnet vs | Pairs | Units '
            '| Diff. (pp) | W/T/L | p (paired t-test) '
            '| p (Wilcoxon signed-rank) |',
            '|---|---|---|---|---|---|---|---|---|',
        ]
        for r in paired:
            out.append(
                f'| {r["dataset"]} | {r["protocol"]} | {r["baseline"]} '
                f'| {r["pairs"]} | {r["n"]} {r["unit"]}s '
                f'| {100 * r["diff_mean"]:+.2f} '
                f'| {r["wins"]}/{r["ties"]}/{r["losses"]} '
                f'| {_p(r["t_pvalue"])} | {_p(r["wilcoxon_pvalue"])} |')
        out.append('')
        out.append('Paired over the (split, init) runs both models hold, '
                   'averaged over inits per split; tests are two-sided, over '
                   'splits (over inits for one split). Diff. = diffresnet − '
                   'baseline test accuracy; W/T/L counts units.')
    return '\n'.join(out) + '\n'


def format_grid_markdown(rows: List[Dict[str, Any]]) -> str:
    out = [
        '| Dataset | Protocol | Model | Hyper-parameters | Runs '
        '| Val acc. for selection (%) | Val acc. (%) | Test acc. (%) '
        '| Selected |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        out.append(
            f'| {r["dataset"]} | {r["protocol"]} | {r["model"]} '
            f'| {r["hparams"]} | {r["runs"]} | {_pct(r["selection_val"])} '
            f'| {_pct(r["val_mean"])} '
            f'| {_pct(r["test_mean"])} ± {_pct(r["test_std"])} '
            f'| {"yes" if r["selected"] else ""} |')
    out.append('')
    out.append('Every config that ran; selection by the mean validation '
               'accuracy over the (split, init) runs all configs of a model '
               'share. Test accuracy is shown, never used.')
    return '\n'.join(out) + '\n'


def _tex_escape(s: str) -> str:
    return s.replace('_', r'\_').replace('%', r'\%')


def format_latex(rows: List[Dict[str, Any]],
                 paired: List[Dict[str, Any]]) -> str:
    out = [
        r'\begin{tabular}{lllrrcr}', r'\toprule',
        r'Dataset & Protocol & Model & Runs & Test acc. (\%) & 95\% CI '
        r'& Epochs \\', r'\midrule'
    ]
    for r in rows:
        out.append(
            f'{_tex_escape(r["dataset"])} & {r["protocol"]} & '
            f'{_tex_escape(r["model"])} & {r["runs"]} & '
            f'${_pct(r["test_mean"])} \\pm {_pct(r["test_std"])}$ & '
            f'[{_pct(r["ci_low"])}, {_pct(r["ci_high"])}] & '
            f'{r["epochs_mean"]:.0f} \\\\')
    out += [r'\bottomrule', r'\end{tabular}']
    if paired:
        out += [
            '', r'\begin{tabular}{lllrrrr}', r'\toprule',
            r'Dataset & Protocol & diffresnet vs & Units & $\Delta$ (pp) '
            r'& $p$ (paired $t$) & $p$ (Wilcoxon) \\', r'\midrule'
        ]
        for r in paired:
            out.append(
                f'{_tex_escape(r["dataset"])} & {r["protocol"]} & '
                f'{_tex_escape(r["baseline"])} & {r["n"]} {r["unit"]}s & '
                f'${100 * r["diff_mean"]:+.2f}$ & {_p(r["t_pvalue"])} & '
                f'{_p(r["wilcoxon_pvalue"])} \\\\')
        out += [r'\bottomrule', r'\end{tabular}']
    return '\n'.join(out) + '\n'


def write_csv(path: str, rows: List[Dict[str, Any]]) -> None:
    fields: List[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, 'w', newline='', encoding='utf-8') as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


# The fields a summary reads, and the numbers among them.
RECORD_FIELDS = KEY_FIELDS + ('val_acc', 'test_acc', 'epochs', 'seconds')
NUMBER_FIELDS = ('split', 'init', 'val_acc', 'test_acc', 'epochs', 'seconds')


def load_records(paths: Sequence[str],
                 skip_bad_lines: bool = False) -> List[Dict[str, Any]]:
    r"""The records of :obj:`paths`. Raises :class:`ValueError` naming
    ``FILE:LINE`` for a line that is not a JSON object (unless
    :obj:`skip_bad_lines`) or not a record of ``planetoid.py``."""
    records = []
    for path in paths:
        for lineno, r in iter_jsonl(path, skip_bad_lines):
            missing = [k for k in RECORD_FIELDS if k not in r]
            if missing:
                raise ValueError(f"{path}:{lineno}: not a planetoid.py "
                                 f"record (no {', '.join(missing)})")
            bad = [k for k in NUMBER_FIELDS
                   if not isinstance(r[k], (int, float))
                   or isinstance(r[k], bool)]
            if bad or not isinstance(r['hparams'], dict):
                raise ValueError(f"{path}:{lineno}: not a planetoid.py "
                                 f"record ({', '.join(bad) or 'hparams'} "
                                 f"of the wrong type)")
            records.append(r)
    return records


def run_summary(paths: Sequence[str], prefix: str,
                skip_bad_lines: bool = False) -> int:
    r"""Prints the summary of the result files :obj:`paths` as Markdown and
    writes :obj:`prefix` + ``.md``, ``.tex``, ``.csv`` (and ``_paired.csv``,
    ``_grid.csv`` when there are paired tests or several configs)."""
    records = load_records(paths, skip_bad_lines)
    if not records:
        raise ValueError(f"No finished runs in {', '.join(paths)}")
    rows, paired = summarize(records)
    grid = grid_rows(records)
    md = format_markdown(rows, paired)
    if grid:
        md += '\n' + format_grid_markdown(grid)
    print(md)
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    with open(prefix + '.md', 'w', encoding='utf-8') as f:
        f.write(md)
    with open(prefix + '.tex', 'w', encoding='utf-8') as f:
        f.write(format_latex(rows, paired))
    write_csv(prefix + '.csv', rows)
    written = [prefix + '.md', prefix + '.csv']
    for suffix, table in (('_paired', paired), ('_grid', grid)):
        if table:
            write_csv(prefix + suffix + '.csv', table)
            written.append(prefix + suffix + '.csv')
    print(f'wrote {", ".join(written)}, {prefix}.tex', file=sys.stderr)
    return 0
