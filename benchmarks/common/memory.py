r"""Peak memory of a block of work: the resident set size on the CPU, the
CUDA allocator on a GPU.

On Linux the peak resident set size (``VmHWM``) is reset by writing ``5`` to
``/proc/self/clear_refs``, so a peak can be taken over any stretch of a
process. Where that file cannot be written the peak is the process peak since
it started, and :attr:`PeakMemory.resettable` is :obj:`False`.
"""
import gc
import resource
from typing import Optional

import torch

__all__ = ['PeakMemory']


def _status_mib(field: str) -> Optional[float]:
    # One field of /proc/self/status in MiB, or None where unavailable.
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class PeakMemory:
    r"""Peak memory since :meth:`reset`.

    .. code-block:: python

        peak = PeakMemory(device)
        peak.reset()
        base = peak.current_rss_mib()
        train_step()
        extra_mib = peak.rss_mib() - base

    Args:
        device (torch.device): The device whose allocator :meth:`gpu_mib`
            reads (nothing is read on a CPU).
    """
    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.resettable = True

    def reset(self) -> None:
        r"""Frees what can be freed, then restarts both peaks from the memory
        in use now."""
        gc.collect()
        try:  # Hand freed heap pages back first, so RSS is live memory.
            import ctypes
            ctypes.CDLL('libc.so.6').malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
        except OSError:
            self.resettable = False
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    @staticmethod
    def current_rss_mib() -> float:
        r"""The resident set size now (0 where unavailable)."""
        rss = _status_mib('VmRSS')
        return 0.0 if rss is None else rss

    def rss_mib(self) -> float:
        r"""The peak resident set size since :meth:`reset` (the process peak
        where it cannot be reset)."""
        hwm = _status_mib('VmHWM')
        if hwm is None:  # ru_maxrss is in KiB on Linux.
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return hwm

    def current_gpu_mib(self) -> Optional[float]:
        r"""Memory held by CUDA tensors now, or :obj:`None` on a CPU."""
        if self.device.type != 'cuda':
            return None
        return torch.cuda.memory_allocated(self.device) / 2**20

    def gpu_mib(self) -> Optional[float]:
        r"""Peak memory held by CUDA tensors since :meth:`reset`, or
        :obj:`None` on a CPU."""
        if self.device.type != 'cuda':
            return None
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) / 2**20
