"""Crash-safe JSON-lines result files with resume.

One finished run is one JSON object on one line. Every append is flushed
and ``fsync``-ed, so a ``kill -9`` loses at most the run in flight. Bytes
after the last newline are a torn write (the process died mid-write) and are
dropped when the file is opened for writing again, unless they hold a
complete record, which is kept and given its newline. Any other line that is
not a JSON object stops reading with ``FILE:LINE``, unless bad lines are
skipped (the file is then left as it is, with a warning). A writer holds an
advisory lock (:func:`fcntl.flock`) on the file, so a second process writing
the same file is refused; processes that share work write separate files.
"""
import fcntl
import json
import os
import sys
from typing import (IO, Any, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Tuple)


class BadLineError(ValueError):
    r"""A line of a results file that is not a JSON object; the message
    starts with ``FILE:LINE``."""
    def __init__(self, path: str, lineno: int, reason: str) -> None:
        super().__init__(
            f'{path}:{lineno}: not a JSON record ({reason}). Fix or delete '
            f'the line, or pass --skip-bad-lines to leave it and go on')
        self.path, self.lineno, self.reason = path, lineno, reason


class ResultsLockedError(ValueError):
    r"""Another process is writing the same results file."""


def _locked(path: str) -> ResultsLockedError:
    return ResultsLockedError(
        f"'{path}' is being written by another process. Wait for it to "
        f"finish, or give each process its own --out (split the work with "
        f"--shard I/N where the script has it)")


def _parse(line: bytes, path: str, lineno: int) -> Dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError.
        raise BadLineError(path, lineno,
                           getattr(e, 'msg', type(e).__name__)) from None
    if not isinstance(record, dict):
        raise BadLineError(path, lineno, f'a JSON {type(record).__name__}, '
                           f'not an object')
    return record


def _complete(tail: bytes) -> bool:
    # Whether the bytes after the last newline are a whole JSON object.
    try:
        return isinstance(json.loads(tail), dict)
    except ValueError:
        return False


def _numbered(data: bytes, path: str, skip_bad_lines: bool,
              warn: bool = True) -> Iterator[Tuple[int, Dict[str, Any]]]:
    # The (line number, record) of the complete lines of `data`.
    for lineno, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, _parse(line, path, lineno)
        except BadLineError as e:
            if not skip_bad_lines:
                raise
            if warn:
                print(f'warning: {path}:{lineno}: not a JSON record '
                      f'({e.reason}); skipped (--skip-bad-lines)',
                      file=sys.stderr)


def _split_tail(data: bytes) -> Tuple[bytes, bytes]:
    # (complete lines, bytes after the last newline); a complete final
    # record without its newline counts as a line.
    end = data.rfind(b'\n') + 1
    tail = data[end:]
    if tail.strip() and _complete(tail):
        return data, b''
    return data[:end], tail


class JSONLResults:
    r"""An append-only JSON-lines file of finished runs, locked against a
    second writer while open (use it as a context manager, or call
    :meth:`close`).

    Args:
        path (str): The ``.jsonl`` file. Parent folders are created.
        key_fields (Sequence[str]): The record fields that identify a run.
            :meth:`done` tests a run for membership on these fields, so a
            rerun of the same command skips it.
        skip_bad_lines (bool, optional): Skip, with a warning, lines that
            are not JSON objects instead of raising :class:`BadLineError`.
            The file keeps them. (default: :obj:`False`)
        writable (bool, optional): If :obj:`False`, only reads: no lock, no
            repair, no :meth:`append`. (default: :obj:`True`)

    Raises:
        BadLineError: A line is not a JSON object.
        ResultsLockedError: Another process has the file open for writing.
    """
    def __init__(self, path: str, key_fields: Sequence[str],
                 skip_bad_lines: bool = False,
                 writable: bool = True) -> None:
        self.path = path
        self.key_fields = tuple(key_fields)
        self._file: Optional[IO[bytes]] = None
        if writable:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            self._file = self._lock(path)
        try:
            self.records = self._load(skip_bad_lines)
        except BaseException:
            self.close()
            raise
        self._done = {self.key(r) for r in self.records}

    @staticmethod
    def _lock(path: str) -> IO[bytes]:
        f = open(path, 'a+b')
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise _locked(path) from None
        return f

    def _load(self, skip_bad_lines: bool) -> List[Dict[str, Any]]:
        if not os.path.exists(self.path):
            return []
        with open(self.path, 'rb') as f:
            data = f.read()
        lines, tail = _split_tail(data)
        records = [r for _, r in _numbered(lines, self.path,
                                           skip_bad_lines)]
        if self._file is not None:
            if tail:  # A torn write: dropped.
                self._file.truncate(len(lines))
            elif lines and not lines.endswith(b'\n'):  # A complete record.
                self._write(b'\n')
        return records

    def _write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    def key(self, record: Dict[str, Any]) -> Tuple:
        return tuple(json.dumps(record.get(k), sort_keys=True)
                     for k in self.key_fields)

    def done(self, record: Dict[str, Any]) -> bool:
        r"""Whether a run with the same key fields is already recorded."""
        return self.key(record) in self._done

    def append(self, record: Dict[str, Any]) -> None:
        r"""Appends one record as one line, then flushes and fsyncs."""
        if self._file is None:
            raise RuntimeError(f"'{self.path}' was opened read-only")
        line = json.dumps(record, sort_keys=True) + '\n'
        self._write(line.encode('utf-8'))
        self.records.append(record)
        self._done.add(self.key(record))

    def close(self) -> None:
        r"""Releases the lock."""
        if self._file is not None:
            self._file.close()  # Closing the descriptor drops the lock.
            self._file = None

    def __enter__(self) -> 'JSONLResults':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.records)


def check_results_file(path: str, skip_bad_lines: bool = False) -> None:
    r"""Raises what opening :obj:`path` with :class:`JSONLResults` would
    raise (:class:`BadLineError`, :class:`ResultsLockedError`), without
    writing, locking or warning: for a check before any work."""
    if not os.path.isfile(path):
        return
    with open(path, 'rb') as f:
        lines, _ = _split_tail(f.read())
        for _ in _numbered(lines, path, skip_bad_lines, warn=False):
            pass
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _locked(path) from None
        # Closing the file releases the lock.


def iter_jsonl(path: str, skip_bad_lines: bool = False
               ) -> Iterator[Tuple[int, Dict[str, Any]]]:
    r"""The :obj:`(line number, record)` pairs of :obj:`path`, read as
    :func:`read_jsonl` does."""
    with open(path, 'rb') as f:
        lines, _ = _split_tail(f.read())
    return _numbered(lines, path, skip_bad_lines)


def read_jsonl(paths: Iterable[str],
               skip_bad_lines: bool = False) -> List[Dict[str, Any]]:
    r"""Reads the records of one or more ``.jsonl`` files (a torn last line
    is ignored, a complete last record without newline is read). Raises
    :class:`BadLineError` for any other line that is not a JSON object,
    unless :obj:`skip_bad_lines`."""
    return [record for path in paths
            for _, record in iter_jsonl(path, skip_bad_lines)]


def environment_info(device: Optional[str] = None) -> Dict[str, Any]:
    r"""Package versions and hardware, for the record of every run."""
    import platform

    import torch
    import torch_geometric

    import torch_geometric_diff
    from torch_geometric_diff.nn.diffusion import cpu_kernels_loaded
    info: Dict[str, Any] = {
        'python': platform.python_version(),
        'torch': torch.__version__,
        'torch_geometric': torch_geometric.__version__,
        'torch_geometric_diff': torch_geometric_diff.__version__,
        'cpu': platform.processor() or platform.machine(),
        'num_threads': torch.get_num_threads(),
        # Whether the C++ CPU kernels are loaded in this process so far (they
        # are built on first use: call this after the work it describes).
        'cpp_kernels': cpu_kernels_loaded(),
    }
    if device is not None and str(device).startswith('cuda'):
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
    return info
