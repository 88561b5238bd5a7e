r"""Running a PyG dataset class so that a run killed while processing does
not break later runs, and corrupt raw files end in one clear error.

:func:`build_dataset` removes a ``processed/`` folder that PyG left
incomplete (it writes ``pre_filter.pt`` last) or that cannot be loaded, and
processes the raw files again, once, with a note; a failure to process them
raises :class:`CorruptDataError` naming the file. :func:`folder_lock`
serialises processes that process the same folder (shards of one run).
"""
import contextlib
import fcntl
import os
import shutil
import sys
from typing import Callable, Iterator, List, Optional, TypeVar

from benchmarks.common.cli import UsageError

T = TypeVar('T')


class CorruptDataError(UsageError):
    r"""A raw data file is truncated or not in its format."""


@contextlib.contextmanager
def folder_lock(folder: str) -> Iterator[None]:
    r"""Holds an exclusive :func:`fcntl.flock` on ``folder/.lock`` (waits
    for another holder)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, '.lock'), 'a') as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield


def is_complete(processed_dir: str) -> bool:
    r"""Whether PyG finished writing :obj:`processed_dir`
    (``pre_filter.pt`` is written after the data)."""
    return os.path.isfile(os.path.join(processed_dir, 'pre_filter.pt'))


def build_dataset(make: Callable[[], T], processed_dir: str,
                  raw_paths: List[str],
                  find_corrupt: Callable[[], Optional[str]],
                  shown: Callable[[str], str] = lambda p: p) -> T:
    r"""Returns :obj:`make()` (a PyG dataset constructor that processes the
    raw files into :obj:`processed_dir` if needed).

    An incomplete :obj:`processed_dir` is removed first; one that fails to
    load is removed and built again, once, with a note on stderr. If
    processing the raw files fails, raises :class:`CorruptDataError` naming
    the file :obj:`find_corrupt()` returns (else listing
    :obj:`raw_paths`), each path as :obj:`shown(path)`."""
    if os.path.isdir(processed_dir) and not is_complete(processed_dir):
        print(f"note: '{processed_dir}' was left incomplete (a run killed "
              f"while processing?); processing the raw files again",
              file=sys.stderr)
        shutil.rmtree(processed_dir)
    if os.path.isdir(processed_dir):
        try:
            return make()
        except Exception as e:  # torch.load fails in many ways.
            print(f"note: cannot load '{processed_dir}' ({type(e).__name__}"
                  f"); processing the raw files again", file=sys.stderr)
            shutil.rmtree(processed_dir)
    try:
        return make()
    except Exception as e:
        # What was processed came from bad raw files: it is not kept.
        shutil.rmtree(processed_dir, ignore_errors=True)
        bad = find_corrupt()
        if bad is not None:
            msg = (f"'{shown(bad)}' is truncated or corrupt; replace it "
                   f"with an intact copy")
        else:
            msg = ('cannot process the raw files (one of them is truncated '
                   'or corrupt): ' + ', '.join(shown(p) for p in raw_paths))
        reason = str(e).strip().splitlines()
        raise CorruptDataError(
            f"{msg} ({type(e).__name__}"
            f"{': ' + reason[0] if reason else ''})") from None
