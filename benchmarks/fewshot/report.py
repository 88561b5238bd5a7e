r"""The summary files of the few-shot benchmark: ``summary.csv``,
``summary.json`` and a Markdown ``table.md``."""
import csv
import json
import os
from typing import Any, Dict, List

LABELS = {
    'simpleshot': 'SimpleShot (CL2N)',
    'laplacianshot': 'LaplacianShot',
    'residual': 'Residual head, no diffusion',
    'diffusion': 'Diff-ResNet head',
}
FIELDS = ['dataset', 'way', 'shot', 'method', 'acc', 'ci95',
          'diff_vs_simpleshot', 'diff_ci95', 'episodes']


def markdown(rows: List[Dict[str, Any]], way: int) -> str:
    r"""Accuracy with its 95% confidence interval and the paired difference
    to SimpleShot, one row per record."""
    lines = [
        f'| data | {way}-way | method | accuracy (%) ± 95% CI | '
        f'paired diff. vs SimpleShot |',
        '|---|---|---|---|---|',
    ]
    for r in rows:
        diff = ''
        if r.get('diff_vs_simpleshot') is not None:
            diff = f"{r['diff_vs_simpleshot']:+.2f} ± {r['diff_ci95']:.2f}"
        lines.append(f"| {r['dataset']} | {r['shot']}-shot | "
                     f"{LABELS[r['method']]} | {r['acc']:.2f} ± "
                     f"{r['ci95']:.2f} | {diff} |")
    return '\n'.join(lines) + '\n'


def write_summary(out: str, rows: List[Dict[str, Any]], way: int) -> None:
    r"""Writes the three summary files of :obj:`rows` to the folder
    :obj:`out`."""
    with open(os.path.join(out, 'summary.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, FIELDS, extrasaction='ignore')
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, 'summary.json'), 'w') as f:
        json.dump([{k: r.get(k) for k in FIELDS} for r in rows], f,
                  indent=1)
    with open(os.path.join(out, 'table.md'), 'w') as f:
        f.write(markdown(rows, way))
