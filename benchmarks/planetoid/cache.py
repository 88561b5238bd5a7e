r"""The files the Planetoid harness writes next to the data: the mirror of a
read-only root in the cache, and PyG's ``processed/`` folder.

* :func:`mirror` copies raw files and records, per file, the source path,
  size and modification time in ``MIRROR.json``; a file is copied again when
  its source differs (another root, or the file changed), so a cache never
  serves another root's data.
* :func:`build_dataset` runs a PyG dataset class so that a run killed while
  processing does not break later runs: an incomplete ``processed/`` folder
  (PyG writes ``pre_filter.pt`` last) or one that cannot be loaded is
  removed and processed again, once, with a note. Raw files that cannot be
  processed end in :class:`CorruptDataError` naming the file.
* :func:`folder_lock` serialises processes that mirror or process the same
  folder (shards of one run).
"""
import contextlib
import fcntl
import json
import os
import shutil
import sys
from typing import Callable, Dict, Iterator, List, Optional, TypeVar

from benchmarks.common.cli import UsageError

MANIFEST = 'MIRROR.json'
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


def _stamp(path: str) -> Dict[str, object]:
    st = os.stat(path)
    return {'source': os.path.abspath(path), 'size': st.st_size,
            'mtime_ns': st.st_mtime_ns}


def _write_json(path: str, obj: object) -> None:
    with open(path + '.part', 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(path + '.part', path)


def mirror(sources: List[str], src_root: str, dst_root: str) -> bool:
    r"""Makes every file of :obj:`sources` (under :obj:`src_root`) present
    at the same relative path under :obj:`dst_root`, as a copy of that very
    source: a copy is kept only if ``MIRROR.json`` records the same source
    path, size and modification time. A copy whose source is gone is
    removed. Returns whether anything changed."""
    path = os.path.join(dst_root, MANIFEST)
    manifest: Dict[str, Dict[str, object]] = {}
    if os.path.isfile(path):
        try:
            with open(path, encoding='utf-8') as f:
                manifest = json.load(f)
        except ValueError:  # Unreadable: every copy is made again.
            manifest = {}
    changed = False
    for src in sources:
        rel = os.path.relpath(src, src_root)
        dst = os.path.join(dst_root, rel)
        if not os.path.isfile(src):
            if rel in manifest:  # A copy of a file this root lacks.
                with contextlib.suppress(FileNotFoundError):
                    os.remove(dst)
                del manifest[rel]
                changed = True
            continue
        stamp = _stamp(src)
        if manifest.get(rel) == stamp and os.path.isfile(dst):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst + '.part')
        os.replace(dst + '.part', dst)
        manifest[rel] = stamp
        changed = True
    if changed:
        _write_json(path, manifest)
    return changed


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


def find_corrupt_raw(paths: List[str]) -> Optional[str]:
    r"""The first of :obj:`paths` that cannot be read, among the formats
    checkable file by file: Planetoid's ``ind.<name>.<key>`` files (read as
    PyG reads them) and ``.npz`` archives. :obj:`None` if all read."""
    import numpy as np
    from torch_geometric.io.planetoid import read_file
    for path in paths:
        name = os.path.basename(path)
        try:
            if name.startswith('ind.') and name.count('.') >= 2:
                _, prefix, key = name.split('.', 2)
                read_file(os.path.dirname(path), prefix, key)
            elif name.endswith('.npz'):
                with np.load(path) as f:
                    for key in f.files:
                        f[key]
        except Exception:
            return path
    return None
