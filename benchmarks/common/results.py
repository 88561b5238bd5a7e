"""Crash-safe JSON-lines result files with resume.

One finished run is one JSON object on one line. Every append is flushed
and ``fsync``-ed, so a ``kill -9`` loses at most the run in flight. A
truncated last line (the process died mid-write) is dropped when the file is
opened again, so the file never holds a corrupt or duplicated record.
"""
import json
import os
from typing import (Any, Dict, Iterable, Iterator, List, Optional, Sequence,
                    Tuple)


class JSONLResults:
    r"""An append-only JSON-lines file of finished runs.

    Args:
        path (str): The ``.jsonl`` file. Parent folders are created.
        key_fields (Sequence[str]): The record fields that identify a run.
            :meth:`done` tests a run for membership on these fields, so a
            rerun of the same command skips it.
    """
    def __init__(self, path: str, key_fields: Sequence[str]) -> None:
        self.path = path
        self.key_fields = tuple(key_fields)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.records: List[Dict[str, Any]] = list(self._repair_and_load())
        self._done = {self.key(r) for r in self.records}

    def _repair_and_load(self) -> Iterator[Dict[str, Any]]:
        if not os.path.exists(self.path):
            return
        with open(self.path, 'rb') as f:
            data = f.read()
        # Bytes after the last newline are a torn write.
        end = data.rfind(b'\n') + 1
        if end < len(data):
            with open(self.path, 'r+b') as f:
                f.truncate(end)
        for line in data[:end].splitlines():
            if line.strip():
                yield json.loads(line)

    def key(self, record: Dict[str, Any]) -> Tuple:
        return tuple(json.dumps(record.get(k), sort_keys=True)
                     for k in self.key_fields)

    def done(self, record: Dict[str, Any]) -> bool:
        r"""Whether a run with the same key fields is already recorded."""
        return self.key(record) in self._done

    def append(self, record: Dict[str, Any]) -> None:
        r"""Appends one record as one line, then flushes and fsyncs."""
        line = json.dumps(record, sort_keys=True) + '\n'
        with open(self.path, 'a', encoding='utf-8') as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)
        self._done.add(self.key(record))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.records)


def read_jsonl(paths: Iterable[str]) -> List[Dict[str, Any]]:
    r"""Reads the complete lines of one or more ``.jsonl`` files."""
    out: List[Dict[str, Any]] = []
    for path in paths:
        with open(path, 'rb') as f:
            data = f.read()
        end = data.rfind(b'\n') + 1
        out.extend(json.loads(line) for line in data[:end].splitlines()
                   if line.strip())
    return out


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
