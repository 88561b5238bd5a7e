import os

import pytest
import torch

from benchmarks.common.memory import PeakMemory


def test_peak_memory():
    peak = PeakMemory(torch.device('cpu'))
    peak.reset()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB touched.
    assert peak.rss_mib() > 64
    del block
    assert peak.gpu_mib() is None
    assert peak.current_gpu_mib() is None


@pytest.mark.skipif(not os.access('/proc/self/clear_refs', os.W_OK),
                    reason='needs a resettable VmHWM (Linux)')
def test_peak_is_reset_and_measured_from_base():
    peak = PeakMemory(torch.device('cpu'))
    block = torch.ones(96 * 2**20 // 4)  # 96 MiB, freed before the reset.
    del block
    peak.reset()
    assert peak.resettable
    base = peak.current_rss_mib()
    assert 0 < base <= peak.rss_mib()
    block = torch.ones(32 * 2**20 // 4)  # 32 MiB touched after the reset.
    extra = peak.rss_mib() - base
    del block
    assert 32 <= extra < 96
