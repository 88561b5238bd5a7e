r"""Every bad command line of ``cli_cases.CASES`` ends in exit status 2 with
one ``error:`` line naming the mistake, no traceback and no file written,
before any data is loaded. A few run as real processes."""
import os
import subprocess
import sys

import pytest
from cli_cases import (CASES, Case, applicable, argv, cleanup, error_lines,
                       load_scripts, prepare, run_case, snapshot)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def scripts():
    return load_scripts()


@pytest.fixture
def tmp(tmp_path):
    prepare(str(tmp_path))
    yield str(tmp_path)
    cleanup(str(tmp_path))


def _check(case: Case, code, err: str, written) -> None:
    assert 'Traceback' not in err, err
    assert code == 2, (code, err)
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert case.expect in lines[0], err
    assert not written, written


@pytest.mark.parametrize('case', [c for c in CASES if applicable(c)],
                         ids=lambda c: c.id)
def test_bad_command_line(case, scripts, tmp):
    outcome = run_case(case, tmp, scripts[case.script])
    _check(case, outcome.code, outcome.err, outcome.written)


SUBPROCESS = [
    Case('planetoid', ('--max-epochs', '0'), '--max-epochs'),
    Case('planetoid', ('--out', '{tmp}/garbage.jsonl'), 'garbage.jsonl:2'),
    Case('ogbn', ('--num-steps', '-1'), '--num-steps'),
    Case('fewshot', ('--features', '{tmp}/garbage.npz'), 'garbage.npz'),
    Case('synthetic', ('--label-rate', '2'), '--label-rate'),
]


@pytest.mark.parametrize('case', SUBPROCESS, ids=lambda c: c.id)
def test_bad_command_line_as_a_process(case, tmp):
    before = snapshot(tmp)
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, 'benchmarks',
                                      f'{case.script}.py')] + argv(case, tmp),
        cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, timeout=600)
    after = snapshot(tmp)
    _check(case, proc.returncode, proc.stderr,
           [p for p in after if after[p] != before.get(p)])
