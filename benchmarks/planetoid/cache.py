r"""The mirror of a read-only root in the cache, and the check of raw files
that can be read one by one.

:func:`mirror` copies raw files and records, per file, the source path, size
and modification time in ``MIRROR.json``; a file is copied again when its
source differs (another root, or the file changed), so a cache never serves
another root's data. :func:`find_corrupt_raw` names the raw file that
cannot be read after processing failed.
"""
import contextlib
import json
import os
import shutil
from typing import Dict, List, Optional

MANIFEST = 'MIRROR.json'


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
