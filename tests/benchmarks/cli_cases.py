r"""The table of bad command lines of the benchmark scripts, as data.

Every case must end in exit status 2 with exactly one line starting with
``error:`` (after argparse's usage line, if any) that contains the case's
:obj:`expect` text, no traceback, and no file written. The data roots of the
cases are empty, so a case that is not caught before loading data fails on
the missing data instead, with a message that lacks :obj:`expect`.

``tests/benchmarks/test_cli_cases.py`` runs the table; run this file to
print the tally (tried / clear error / traceback / silent / unclear)::

    python tests/benchmarks/cli_cases.py               # in this process
    python tests/benchmarks/cli_cases.py --subprocess  # one process each
"""
import contextlib
import io
import os
import shutil
import signal
import sys
import tempfile
import traceback
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

if __name__ == '__main__':  # The repository root, for `benchmarks`.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

SCRIPTS = ('planetoid', 'ogbn', 'speed', 'synthetic', 'fewshot',
           'make_synthetic_ogb', 'lambda_max')

# Arguments every case of a script starts from (a later flag wins).
# `{tmp}` is the case's temporary folder, prepared by `prepare`.
BASE: Dict[str, List[str]] = {
    'planetoid': ['--root', '{tmp}/empty', '--cache', '{tmp}/cache',
                  '--offline', '--out', '{tmp}/out/r.jsonl', '--splits', '1',
                  '--inits', '1'],
    'ogbn': ['--dataset', 'ogbn-arxiv', '--root', '{tmp}/empty',
             '--no-download', '--device', 'cpu', '--out',
             '{tmp}/out/r.jsonl', '--epochs', '1', '--runs', '1'],
    'speed': ['--graphs', 'cora', '--root', '{tmp}/empty', '--device', 'cpu',
              '--out', '{tmp}/out/speed', '--repeats', '1'],
    'synthetic': ['--out', '{tmp}/out/syn', '--datasets', 'xor', '--seeds',
                  '0', '--size-scale', '0.5', '--max-steps', '2',
                  '--paper-epochs', '1', '--converged-epochs', '1',
                  '--no-figures'],
    'fewshot': ['--out', '{tmp}/out/fs', '--dataset', 'clustered',
                '--episodes', '2', '--shot', '1', '--epochs', '1',
                '--no-progress'],
    'make_synthetic_ogb': ['--like', 'ogbn-arxiv', '--root', '{tmp}/out/ogb',
                           '--scale', '0.001'],
    'lambda_max': ['--dataset', 'Cora', '--root', '{tmp}/empty', '--cache',
                   '{tmp}/cache', '--offline'],
}


@dataclass(frozen=True)
class Case:
    r"""One bad command line: :obj:`args` after :obj:`BASE[script]` (or
    alone, without :obj:`base`), and a text the ``error:`` line must
    contain."""
    script: str
    args: Tuple[str, ...]
    expect: str
    base: bool = True
    without_cuda: bool = False  # Only meaningful on a machine without CUDA.

    @property
    def id(self) -> str:
        return f"{self.script}:{' '.join(self.args)}".replace('{tmp}/', '')


def _c(script: str, *args: str, expect: str, **kwargs) -> Case:
    return Case(script, tuple(args), expect, **kwargs)


CASES: List[Case] = [
    # planetoid.py
    _c('planetoid', '--max-epochs', '0', expect='--max-epochs'),
    _c('planetoid', '--hidden', '0', '--model', 'gcn', expect='--hidden'),
    _c('planetoid', '--hidden', '-3', expect='--hidden'),
    _c('planetoid', '--num-steps', '-1', '--model', 'appnp',
       expect='--num-steps'),
    _c('planetoid', '--grid', 'step_size=', expect='--grid step_size'),
    _c('planetoid', '--grid', 'step_size=,', expect='--grid step_size'),
    _c('planetoid', '--grid', 'dropout=0.5', 'dropout=0.1',
       expect='--grid dropout'),
    _c('planetoid', '--grid', 'dropout=0.5,1', expect='--grid dropout'),
    _c('planetoid', '--grid', 'hidden=0', expect='--grid hidden'),
    _c('planetoid', '--grid', 'foo=1', expect="--grid key 'foo'"),
    _c('planetoid', '--grid', 'step_size', expect='--grid entries'),
    _c('planetoid', '--batch-inits', '--model', 'gcn',
       expect='--batch-inits'),
    _c('planetoid', '--summary', '{tmp}/good.jsonl', '--dataset', 'Foo',
       expect='--summary', base=False),
    _c('planetoid', '--summary', '{tmp}/good.jsonl', '--model', 'gcn',
       expect='--summary', base=False),
    _c('planetoid', '--summary', '{tmp}/fieldless.jsonl',
       '--summary-out', '{tmp}/out/s', expect='fieldless.jsonl:1',
       base=False),
    _c('planetoid', '--summary', '{tmp}/garbage.jsonl', '--summary-out',
       '{tmp}/out/s', expect='garbage.jsonl:2', base=False),
    _c('planetoid', '--summary', '{tmp}/good.jsonl', '--summary-out',
       '{tmp}/ro/s', expect='--summary-out', base=False),
    _c('planetoid', '--summary', '{tmp}/good.jsonl', '--summary-out',
       '{tmp}/taken', expect='--summary-out', base=False),
    _c('planetoid', '--summary', '{tmp}/none.jsonl', expect='none.jsonl',
       base=False),
    _c('planetoid', '--summary', '{tmp}/dir', expect='dir', base=False),
    _c('planetoid', '--out', '{tmp}/garbage.jsonl', expect='garbage.jsonl:2'),
    _c('planetoid', '--device', 'cuda', expect="--device 'cuda'",
       without_cuda=True),
    _c('planetoid', '--device', 'cuda:99', expect="--device 'cuda:99'"),
    _c('planetoid', '--device', 'foo', expect="--device 'foo'"),
    _c('planetoid', '--threads', '-1', expect='--threads'),
    _c('planetoid', '--threads', '0', expect='--threads'),
    _c('planetoid', '--root', '{tmp}/ro', '--cache', '{tmp}/ro/cache',
       expect='--cache'),
    _c('planetoid', '--root', '{tmp}/ro', '--cache', '{tmp}/file/cache',
       expect='--cache'),
    _c('planetoid', '--out', '{tmp}/dir', expect='--out'),
    _c('planetoid', '--out', '{tmp}/ro/r.jsonl', expect='--out'),
    _c('planetoid', '--out', '{tmp}/file/r.jsonl', expect='--out'),
    _c('planetoid', '--out', '{tmp}/ro_file.jsonl', expect='--out'),
    _c('planetoid', '--splits', '0', expect='--splits'),
    _c('planetoid', '--inits', '0', expect='--inits'),
    _c('planetoid', '--inits', 'two', expect='--inits'),
    _c('planetoid', '--dropout', '1.5', expect='--dropout'),
    _c('planetoid', '--dropout', 'nan', expect='--dropout'),
    _c('planetoid', '--step-size', '-1', expect='--step-size'),
    _c('planetoid', '--step-size', 'inf', expect='--step-size'),
    _c('planetoid', '--lr', '-1', expect='--lr'),
    _c('planetoid', '--lr', 'nan', expect='--lr'),
    _c('planetoid', '--weight-decay', '-1', expect='--weight-decay'),
    _c('planetoid', '--patience', '0', expect='--patience'),
    _c('planetoid', '--seed', '-1', expect='--seed'),
    _c('planetoid', '--shard', '2/2', expect='--shard'),
    _c('planetoid', '--shard', '1/2', '--splits', '1', expect='--shard'),
    _c('planetoid', '--splits', '10', '--first-split', '10',
       expect='--first-split 10'),
    _c('planetoid', '--first-split', '-1', expect='--first-split'),
    _c('planetoid', '--selected-from', '{tmp}/none.jsonl',
       expect='none.jsonl'),
    _c('planetoid', '--selected-from', '{tmp}/garbage.jsonl',
       expect='garbage.jsonl:2'),
    _c('planetoid', '--selected-from', '{tmp}/good.jsonl', '--hidden', '64',
       expect='drop --hidden'),
    _c('planetoid', '--selected-from', '{tmp}/good.jsonl', '--grid',
       'dropout=0.1,0.5', '--model', 'gcn', expect='drop --grid'),
    _c('planetoid', '--selected-from', '{tmp}/good.jsonl', '--dataset',
       'CiteSeer', '--model', 'gcn', expect="on 'CiteSeer' (random)"),
    _c('planetoid', '--selected-from', '{tmp}/good.jsonl',
       expect="diffresnet on 'Cora'"),
    _c('planetoid', '--dataset', 'Coraa', expect="dataset 'Coraa'"),
    _c('planetoid', '--model', 'foo', expect="model 'foo'"),
    _c('planetoid', '--protocol', 'foo', expect="protocol 'foo'"),
    _c('planetoid', '--unknown', expect='--unknown'),
    # ogbn.py
    _c('ogbn', '--step-size', '-1', expect='--step-size'),
    _c('ogbn', '--num-steps', '-1', expect='--num-steps'),
    _c('ogbn', '--dropout', '1.5', expect='--dropout'),
    _c('ogbn', '--lr', '-1', expect='--lr'),
    _c('ogbn', '--num-blocks', '0', expect='--num-blocks'),
    _c('ogbn', '--num-layers', '1', expect='--num-layers'),
    _c('ogbn', '--hidden', '0', expect='--hidden'),
    _c('ogbn', '--epochs', '0', expect='--epochs'),
    _c('ogbn', '--runs', '0', expect='--runs'),
    _c('ogbn', '--weight-decay', '-1', expect='--weight-decay'),
    _c('ogbn', '--eval-every', '0', expect='--eval-every'),
    _c('ogbn', '--chunk-size', '0', expect='--chunk-size'),
    _c('ogbn', '--mode', 'cluster', '--num-parts', '4',
       '--parts-per-batch', '5', expect='--parts-per-batch'),
    _c('ogbn', '--device', 'foo', expect="--device 'foo'"),
    _c('ogbn', '--device', 'cuda', expect="--device 'cuda'",
       without_cuda=True),
    _c('ogbn', '--threads', '-1', expect='--threads'),
    _c('ogbn', '--synthetic-in-memory', '0', expect='--synthetic-in-memory'),
    _c('ogbn', '--synthetic-in-memory', '1e-9',
       expect='--synthetic-in-memory'),
    _c('ogbn', '--synthetic-in-memory', '0.002', '--mode', 'cluster',
       '--num-parts', '100000', expect='num_parts'),
    _c('ogbn', '--out', '{tmp}/dir', expect='--out'),
    _c('ogbn', '--out', '{tmp}/ro/r.jsonl', expect='--out'),
    _c('ogbn', '--out', '{tmp}/garbage.jsonl', expect='garbage.jsonl:2'),
    _c('ogbn', '--ddp', expect='--ddp'),
    _c('ogbn', '--dataset', 'ogbn-mag', expect='--dataset'),
    # speed.py
    _c('speed', '--repeats', '0', expect='--repeats'),
    _c('speed', '--root', '{tmp}/missing', expect='--root'),
    _c('speed', '--num-steps', '0', expect='--num-steps'),
    _c('speed', '--step-size', '0', expect='--step-size'),
    _c('speed', '--dropout', '1', expect='--dropout'),
    _c('speed', '--warmup', '-1', expect='--warmup'),
    _c('speed', '--mem-steps', '0', expect='--mem-steps'),
    _c('speed', '--seed', '-1', expect='--seed'),
    _c('speed', '--graphs', 'foo', expect='--graphs'),
    _c('speed', '--device', 'foo', expect="--device 'foo'"),
    _c('speed', '--threads', '0', expect='--threads'),
    _c('speed', '--out', '{tmp}/file/x', '--graphs', 'arxiv-synthetic',
       expect='--out'),
    _c('speed', '--out', '{tmp}/ro/speed', '--graphs', 'arxiv-synthetic',
       expect='--out'),
    _c('speed', '--out', '{tmp}/speeddir', '--graphs', 'arxiv-synthetic',
       expect='--out'),
    # synthetic.py
    _c('synthetic', '--label-rate', '2', expect='--label-rate'),
    _c('synthetic', '--label-rate', '1', expect='--label-rate'),
    _c('synthetic', '--label-rate', '0', expect='--label-rate'),
    _c('synthetic', '--label-rate', '0.96', '--size-scale', '0.05',
       expect='--label-rate'),
    _c('synthetic', '--size-scale', '0', expect='--size-scale'),
    _c('synthetic', '--size-scale', '0.01', expect='--size-scale'),
    _c('synthetic', '--seeds', '-1', expect='--seeds'),
    _c('synthetic', '--threads', '-1', expect='--threads'),
    _c('synthetic', '--hidden', '0', expect='--hidden'),
    _c('synthetic', '--paper-epochs', '0', expect='--paper-epochs'),
    _c('synthetic', '--converged-epochs', '0', expect='--converged-epochs'),
    _c('synthetic', '--adam-lr', '0', expect='--adam-lr'),
    _c('synthetic', '--gif-frames', '0', expect='--gif-frames'),
    _c('synthetic', '--trajectory-steps', '0', expect='--trajectory-steps'),
    _c('synthetic', '--datasets', 'foo', expect='--datasets'),
    _c('synthetic', '--protocols', 'foo', expect='--protocols'),
    _c('synthetic', '--out', '{tmp}/file', expect='--out'),
    _c('synthetic', '--out', '{tmp}/ro/syn', expect='--out'),
    _c('synthetic', '--out', '{tmp}/garbage_dir', expect='results.jsonl:2'),
    # fewshot.py
    _c('fewshot', '--way', '1', expect='--way'),
    _c('fewshot', '--shot', '0', expect='--shot'),
    _c('fewshot', '--query', '0', expect='--query'),
    _c('fewshot', '--episodes', '0', expect='--episodes'),
    _c('fewshot', '--epochs', '0', expect='--epochs'),
    _c('fewshot', '--k', '0', expect='--k'),
    _c('fewshot', '--sigma-k', '0', expect='--sigma-k'),
    _c('fewshot', '--step-size', '0', expect='--step-size'),
    _c('fewshot', '--lr', '0', expect='--lr'),
    _c('fewshot', '--lam', '-1', expect='--lam'),
    _c('fewshot', '--lam', 'nan', expect='--lam'),
    _c('fewshot', '--knn', '0', expect='--knn'),
    _c('fewshot', '--threads', '0', expect='--threads'),
    _c('fewshot', '--way', '11', expect='--way'),
    _c('fewshot', '--way', '6', '--dataset', 'digits', expect='--way'),
    _c('fewshot', '--base-classes', '0', '1', '2', '3', '4', '5', '6', '7',
       '8', '9', '--dataset', 'digits', expect='--base-classes'),
    _c('fewshot', '--base-classes', '12', '--dataset', 'digits',
       expect='--base-classes'),
    _c('fewshot', '--features', '{tmp}/missing.npz', expect='--features'),
    _c('fewshot', '--features', '{tmp}/dir', expect='--features'),
    _c('fewshot', '--features', '{tmp}/garbage.npz', expect='garbage.npz'),
    _c('fewshot', '--features', '{tmp}/garbage.jsonl',
       expect='garbage.jsonl'),
    _c('fewshot', '--out', '{tmp}/file', expect='--out'),
    _c('fewshot', '--out', '{tmp}/ro/fs', expect='--out'),
    _c('fewshot', '--save-features', '{tmp}/ro/feats',
       expect='--save-features'),
    # make_synthetic_ogb.py
    _c('make_synthetic_ogb', '--scale', '0', expect='--scale'),
    _c('make_synthetic_ogb', '--scale', '-1', expect='--scale'),
    _c('make_synthetic_ogb', '--scale', 'nan', expect='--scale'),
    _c('make_synthetic_ogb', '--scale', 'inf', expect='--scale'),
    _c('make_synthetic_ogb', '--scale', '1e-9', expect='scale'),
    _c('make_synthetic_ogb', '--decimals', '-1', expect='--decimals'),
    _c('make_synthetic_ogb', '--compresslevel', '0',
       expect='--compresslevel'),
    _c('make_synthetic_ogb', '--like', 'foo', expect='--like'),
    _c('make_synthetic_ogb', '--root', '{tmp}/file', expect='--root'),
    _c('make_synthetic_ogb', '--root', '{tmp}/ro/ogb', expect='--root'),
    # lambda_max.py
    _c('lambda_max', '--dataset', 'Foo', expect="dataset 'Foo'"),
    _c('lambda_max', '--protocol', 'foo', expect='--protocol'),
    _c('lambda_max', expect="Dataset 'Cora'"),
    _c('lambda_max', '--root', '{tmp}/ro', '--cache', '{tmp}/ro/cache',
       expect='--cache'),
]


def prepare(tmp: str) -> None:
    r"""Writes the inputs the cases refer to into :obj:`tmp`."""
    os.makedirs(os.path.join(tmp, 'empty'))
    os.makedirs(os.path.join(tmp, 'dir'))
    os.makedirs(os.path.join(tmp, 'speeddir.json'))
    os.makedirs(os.path.join(tmp, 'taken.tex'))
    os.makedirs(os.path.join(tmp, 'garbage_dir'))
    with open(os.path.join(tmp, 'file'), 'w') as f:
        f.write('not a folder\n')
    good = ('{"dataset": "Cora", "protocol": "random", "model": "gcn", '
            '"split": 0, "init": 0, "seed": 42, "hparams": {}, '
            '"val_acc": 0.5, "test_acc": 0.5, "epochs": 1, '
            '"seconds": 1.0}\n')
    with open(os.path.join(tmp, 'good.jsonl'), 'w') as f:
        f.write(good)
    for path in ('garbage.jsonl', 'garbage_dir/results.jsonl'):
        with open(os.path.join(tmp, path), 'w') as f:
            f.write(good + 'garbage\n' + good)
    with open(os.path.join(tmp, 'fieldless.jsonl'), 'w') as f:
        f.write('{"a": 1}\n')
    with open(os.path.join(tmp, 'garbage.npz'), 'wb') as f:
        f.write(b'PK\x03\x04 not a zip archive')
    ro_file = os.path.join(tmp, 'ro_file.jsonl')
    with open(ro_file, 'w'):
        pass
    os.chmod(ro_file, 0o444)
    os.makedirs(os.path.join(tmp, 'ro'))
    os.chmod(os.path.join(tmp, 'ro'), 0o555)


def cleanup(tmp: str) -> None:
    r"""Makes :obj:`tmp` deletable again."""
    os.chmod(os.path.join(tmp, 'ro'), 0o755)


def snapshot(tmp: str) -> Dict[str, Tuple[int, int]]:
    r"""(size, mtime) of every file under :obj:`tmp`."""
    out = {}
    for dirpath, _, files in os.walk(tmp):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            out[path] = (st.st_size, st.st_mtime_ns)
    return out


def argv(case: Case, tmp: str) -> List[str]:
    args = (BASE[case.script] if case.base else []) + list(case.args)
    return [a.replace('{tmp}', tmp) for a in args]


def load_scripts() -> Dict[str, object]:
    from bench_loader import load_benchmark
    return {name: load_benchmark(name) for name in SCRIPTS}


@dataclass
class Outcome:
    code: Optional[int]  # None: an exception escaped run_main.
    err: str
    written: List[str]


class _StartedWork(BaseException):
    pass


def _alarm(signum, frame):
    raise _StartedWork


def run_case(case: Case, tmp: str, module,
             timeout: Optional[float] = None) -> Outcome:
    r"""Runs :obj:`case` in this process with stderr captured. A run still
    going after :obj:`timeout` seconds is stopped and counts as exit 0 (it
    has started working)."""
    from benchmarks.common.cli import run_main
    before = snapshot(tmp)
    err = io.StringIO()
    if timeout is not None:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    with contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            code = run_main(module.main, argv(case, tmp))
        except SystemExit as e:
            code = e.code
        except _StartedWork:
            code = 0
        except BaseException:
            traceback.print_exc(file=err)
            code = None
        finally:
            if timeout is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
    after = snapshot(tmp)
    written = sorted(p for p in after if after[p] != before.get(p))
    return Outcome(code, err.getvalue(), written)


def run_case_subprocess(case: Case, tmp: str, repo: str,
                        timeout: float) -> Outcome:
    r"""Runs :obj:`case` as ``python benchmarks/<script>.py`` from
    :obj:`repo`. A run still going after :obj:`timeout` seconds counts as
    exit 2 if it has printed an ``error:`` line, else as exit 0 (it has
    started working)."""
    import subprocess
    before = snapshot(tmp)
    cmd = [sys.executable, os.path.join(repo, 'benchmarks',
                                        f'{case.script}.py')]
    try:
        proc = subprocess.run(cmd + argv(case, tmp), cwd=repo,
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True,
                              timeout=timeout)
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as e:
        err = e.stderr or ''
        err = err if isinstance(err, str) else err.decode(errors='replace')
        code = 2 if error_lines(err) else 0
    after = snapshot(tmp)
    written = sorted(p for p in after if after[p] != before.get(p))
    return Outcome(code, err, written)


def error_lines(err: str) -> List[str]:
    return [line for line in err.splitlines() if line.startswith('error:')]


def classify(case: Case, outcome: Outcome) -> str:
    r"""``'clear'``, ``'traceback'``, ``'silent'`` (exit 0 or something
    written) or ``'unclear'`` (exit 2 without the expected message)."""
    if outcome.code is None or 'Traceback' in outcome.err:
        return 'traceback'
    if outcome.code == 0 or outcome.written:
        return 'silent'
    lines = error_lines(outcome.err)
    if outcome.code == 2 and len(lines) == 1 and case.expect in lines[0]:
        return 'clear'
    return 'unclear'


def applicable(case: Case) -> bool:
    return not (case.without_cuda and torch.cuda.is_available())


def main() -> int:
    import argparse
    p = argparse.ArgumentParser(description='Tallies the bad command lines.')
    p.add_argument('--subprocess', action='store_true',
                   help='run every case as its own process')
    p.add_argument('--repo', default=os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))),
                   help='with --subprocess: the checkout whose scripts run')
    p.add_argument('--timeout', type=float, default=60.0,
                   help='seconds before a case counts as started work '
                   '(exit 0)')
    opts = p.parse_args()
    scripts = None if opts.subprocess else load_scripts()
    tally: Dict[str, Dict[str, int]] = {}
    for case in filter(applicable, CASES):
        tmp = tempfile.mkdtemp()
        try:
            prepare(tmp)
            if scripts is None:
                outcome = run_case_subprocess(case, tmp, opts.repo,
                                              opts.timeout)
            else:
                outcome = run_case(case, tmp, scripts[case.script],
                                   opts.timeout)
            kind = classify(case, outcome)
        finally:
            cleanup(tmp)
            shutil.rmtree(tmp)
        row = tally.setdefault(case.script, dict(tried=0, clear=0,
                                                 traceback=0, silent=0,
                                                 unclear=0))
        row['tried'] += 1
        row[kind] += 1
        if kind != 'clear':
            print(f'{kind:9s} {case.id}: exit {outcome.code}; '
                  f'{outcome.err.strip().splitlines()[-1:] or ""}',
                  file=sys.stderr)
    cols = ('tried', 'clear', 'traceback', 'silent', 'unclear')
    print('| script | ' + ' | '.join(cols) + ' |')
    print('|---|' + '---:|' * len(cols))
    total = {c: 0 for c in cols}
    for script, row in tally.items():
        print(f'| {script}.py | ' + ' | '.join(str(row[c]) for c in cols) +
              ' |')
        for c in cols:
            total[c] += row[c]
    print('| **all** | ' + ' | '.join(str(total[c]) for c in cols) + ' |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
