import argparse
import os

import pytest

from benchmarks.common.cli import (ArgumentParser, UsageError,
                                   check_input_file, check_output_dir,
                                   check_output_file, fraction, is_writable,
                                   run_main)


def test_run_main_turns_user_errors_into_one_line(capsys):
    def fails(error):
        def main(argv):
            raise error
        return main

    assert run_main(fails(UsageError('bad --x\nmore'))) == 2
    assert capsys.readouterr().err == 'error: bad --x\n  more\n'
    assert run_main(fails(ValueError("'k' must be positive"))) == 2
    assert capsys.readouterr().err == "error: 'k' must be positive\n"
    with pytest.raises(KeyError):  # A bug keeps its traceback.
        run_main(fails(KeyError('dataset')))
    assert run_main(lambda argv: None) == 0


def test_argument_parser_error_line(capsys):
    p = ArgumentParser(prog='x.py')
    p.add_argument('--n', type=fraction)
    with pytest.raises(SystemExit) as e:
        p.parse_args(['--n', '1.5'])
    assert e.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith('usage: x.py')
    assert err[-1] == "error: argument --n: expected a number in (0, 1], " \
        "got '1.5'"
    assert [line for line in err if 'error' in line] == [err[-1]]
    for bad in ('0', 'nan', '-1', 'x'):
        with pytest.raises(argparse.ArgumentTypeError):
            fraction(bad)
    assert fraction('1') == 1.0


@pytest.fixture
def ro(tmp_path):
    path = tmp_path / 'ro'
    path.mkdir()
    os.chmod(path, 0o555)
    yield path
    os.chmod(path, 0o755)


def test_output_checks_write_nothing(tmp_path, ro):
    before = sorted(os.walk(tmp_path))
    check_output_dir(str(tmp_path / 'new' / 'deeper'))  # Creatable.
    check_output_file(str(tmp_path / 'new' / 'r.jsonl'))
    assert sorted(os.walk(tmp_path)) == before  # Nothing created.
    # Read-only bits count even for the super-user.
    assert not is_writable(str(ro)) and is_writable(str(tmp_path))
    for path in (ro / 'x', ro / 'x' / 'y'):
        with pytest.raises(UsageError, match='--out'):
            check_output_dir(str(path))
    with pytest.raises(UsageError, match='not writable'):
        check_output_file(str(ro / 'r.jsonl'))
    (tmp_path / 'file').write_text('')
    with pytest.raises(UsageError, match='is a file'):
        check_output_dir(str(tmp_path / 'file' / 'sub'), '--cache')
    with pytest.raises(UsageError, match='is a directory'):
        check_output_file(str(tmp_path))
    with pytest.raises(UsageError, match='no such file'):
        check_input_file(str(tmp_path / 'missing'), '--features')
    with pytest.raises(UsageError, match='not a file'):
        check_input_file(str(tmp_path), '--features')
