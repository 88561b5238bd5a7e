import pytest
import torch

from benchmarks.common import num_threads


def test_num_threads_sets_and_restores():
    before = torch.get_num_threads()
    target = 2 if before != 2 else 1
    with num_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match='boom'):
        with num_threads(target):
            raise RuntimeError('boom')
    assert torch.get_num_threads() == before
    with num_threads(None):
        assert torch.get_num_threads() == before
