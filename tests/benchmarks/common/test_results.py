import json
import os
import subprocess
import sys
import textwrap

import pytest

from torch_geometric_diff.nn.diffusion import cpu_kernels
from benchmarks.common import JSONLResults, environment_info, read_jsonl
from benchmarks.common.results import BadLineError, ResultsLockedError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

GOOD = [{'a': 1, 'x': 0.5}, {'a': 2, 'x': 0.25}, {'a': 3, 'x': 0.125}]


def _write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def _line(record):
    return json.dumps(record, sort_keys=True) + '\n'


def _read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def test_environment_info_records_versions_and_kernels():
    loaded = cpu_kernels() is not None  # builds them where possible
    info = environment_info()
    for key in ('python', 'torch', 'torch_geometric', 'torch_geometric_diff',
                'cpu', 'num_threads', 'cpp_kernels'):
        assert key in info
    assert info['cpp_kernels'] is loaded
    json.dumps(info)  # Every value must serialise.


def test_jsonl_results_append_and_read_back(tmp_path):
    path = str(tmp_path / 'r.jsonl')
    with JSONLResults(path, key_fields=('a', )) as res:
        res.append({'a': 1, 'x': 0.5})
    with open(path, 'a') as f:
        f.write('{"a": 2, "x"')  # a torn last line
    assert read_jsonl([path]) == [{'a': 1, 'x': 0.5}]
    with JSONLResults(path, key_fields=('a', )) as res:  # Torn line dropped.
        assert list(res) == [{'a': 1, 'x': 0.5}]
    assert _read(path) == _line({'a': 1, 'x': 0.5})


@pytest.mark.parametrize('bad', ['garbage', '{"a": 9', '[1, 2]', '7'])
def test_bad_line_is_reported_as_file_and_line(tmp_path, bad):
    path = str(tmp_path / 'r.jsonl')
    text = _line(GOOD[0]) + bad + '\n' + _line(GOOD[1])
    _write(path, text)
    with pytest.raises(BadLineError, match=f'{path}:2: ') as e:
        JSONLResults(path, key_fields=('a', ))
    assert '--skip-bad-lines' in str(e.value)
    assert (e.value.path, e.value.lineno) == (path, 2)
    with pytest.raises(BadLineError, match=f'{path}:2: '):
        read_jsonl([path])
    assert _read(path) == text  # Nothing repaired, nothing lost.


def test_skip_bad_lines_keeps_the_file_and_warns(tmp_path, capsys):
    path = str(tmp_path / 'r.jsonl')
    text = _line(GOOD[0]) + 'garbage\n' + _line(GOOD[1])
    _write(path, text)
    with JSONLResults(path, ('a', ), skip_bad_lines=True) as res:
        assert list(res) == GOOD[:2]
        assert res.done({'a': 2}) and not res.done({'a': 3})
        res.append(GOOD[2])
    err = capsys.readouterr().err
    assert err.count('warning:') == 1 and f'{path}:2:' in err
    assert _read(path) == text + _line(GOOD[2])
    assert read_jsonl([path], skip_bad_lines=True) == GOOD
    assert f'{path}:2:' in capsys.readouterr().err


def test_complete_last_record_without_newline_is_kept(tmp_path):
    path = str(tmp_path / 'r.jsonl')
    _write(path, _line(GOOD[0]) + _line(GOOD[1]).rstrip('\n'))
    assert read_jsonl([path]) == GOOD[:2]  # Read-only: the file is as is.
    with JSONLResults(path, key_fields=('a', )) as res:
        assert list(res) == GOOD[:2] and res.done({'a': 2})
        res.append(GOOD[2])
    assert _read(path) == ''.join(_line(r) for r in GOOD)
    assert read_jsonl([path]) == GOOD


def test_second_writer_is_refused(tmp_path):
    path = str(tmp_path / 'r.jsonl')
    with JSONLResults(path, key_fields=('a', )) as res:
        res.append(GOOD[0])
        with pytest.raises(ResultsLockedError, match='another process'):
            JSONLResults(path, key_fields=('a', ))
        # Readers and separate files (shards) are not affected.
        assert read_jsonl([path]) == GOOD[:1]
        with JSONLResults(str(tmp_path / 'shard1.jsonl'), ('a', )) as other:
            other.append(GOOD[1])
    with JSONLResults(path, key_fields=('a', )) as res:  # Released.
        assert len(res) == 1


def test_second_process_is_refused(tmp_path):
    path = str(tmp_path / 'r.jsonl')
    holder = textwrap.dedent(f'''
        import sys, time
        from benchmarks.common import JSONLResults
        with JSONLResults({path!r}, ('a',)):
            print('locked', flush=True)
            sys.stdin.read()
    ''')
    proc = subprocess.Popen([sys.executable, '-c', holder], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == 'locked'
        with pytest.raises(ResultsLockedError) as e:
            JSONLResults(path, key_fields=('a', ))
        assert path in str(e.value) and '--shard' in str(e.value)
    finally:
        proc.communicate('')
    with JSONLResults(path, key_fields=('a', )):  # Free once it exits.
        pass


def test_reader_neither_locks_nor_repairs(tmp_path):
    path = str(tmp_path / 'r.jsonl')
    text = _line(GOOD[0]) + '{"a": 2, "x"'
    _write(path, text)
    with JSONLResults(path, ('a', )) as writer:
        assert len(writer) == 1
        _write(path, text)
        reader = JSONLResults(path, ('a', ), writable=False)
        assert list(reader) == GOOD[:1]
        with pytest.raises(RuntimeError, match='read-only'):
            reader.append(GOOD[1])
    assert _read(path) == text


def test_check_results_file_writes_nothing(tmp_path, capsys):
    from benchmarks.common import check_results_file
    path = str(tmp_path / 'r.jsonl')
    check_results_file(path)  # Absent: fine, and still absent.
    assert not os.path.exists(path)
    text = _line(GOOD[0]) + 'garbage\n' + _line(GOOD[1]).rstrip('\n')
    _write(path, text)
    with pytest.raises(BadLineError, match=f'{path}:2: '):
        check_results_file(path)
    check_results_file(path, skip_bad_lines=True)
    assert capsys.readouterr().err == ''  # The warning comes on opening.
    _write(path, _line(GOOD[0]))
    with JSONLResults(path, ('a', )):
        with pytest.raises(ResultsLockedError, match='another process'):
            check_results_file(path)
    check_results_file(path)
    assert _read(path) == _line(GOOD[0])
