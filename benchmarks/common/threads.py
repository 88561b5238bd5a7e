import contextlib
from typing import Iterator, Optional

import torch


@contextlib.contextmanager
def num_threads(threads: Optional[int]) -> Iterator[None]:
    r"""Runs the block with :obj:`threads` intra-op threads (unchanged if
    :obj:`None`) and restores the previous setting afterwards."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
