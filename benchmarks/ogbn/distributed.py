r"""The process group of a ``--ddp`` run (launched with ``torchrun``), or a
single process behind the same interface, so that the training code has no
``if ddp`` branches: collectives of a single process return their input."""
import os
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor

from benchmarks.common.cli import UsageError


class Distributed:
    r"""Rank :obj:`rank` of :obj:`world_size` processes that talk through
    :mod:`torch.distributed` with :obj:`backend`; :obj:`backend=None` is a
    single process without a process group.

    Rank 0 reads and writes files and logs; the others follow it.
    """
    def __init__(self, rank: int = 0, world_size: int = 1,
                 backend: Optional[str] = None) -> None:
        self.rank = rank
        self.world_size = world_size
        self.backend = backend

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def log(self, *args: Any) -> None:
        r"""Prints on rank 0 only."""
        if self.is_main:
            print(*args, flush=True)

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def broadcast(self, obj: Any) -> Any:
        r"""Rank 0's :obj:`obj`, on every rank."""
        if not self.enabled:
            return obj
        holder = [obj]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    def all_gather(self, obj: Any) -> List[Any]:
        r"""Every rank's :obj:`obj`, in rank order."""
        if not self.enabled:
            return [obj]
        out: List[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def sum(self, values: Tensor, device: torch.device) -> Tensor:
        r"""The sum of :obj:`values` over ranks (reduced on :obj:`device`,
        returned on the CPU)."""
        if not self.enabled:
            return values
        values = values.to(device)
        torch.distributed.all_reduce(values)
        return values.cpu()

    def wrap(self, model: torch.nn.Module,
             device: torch.device) -> torch.nn.Module:
        r""":obj:`model` in
        :class:`~torch.nn.parallel.DistributedDataParallel`, or itself."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == 'cuda' else None)

    def close(self) -> None:
        if self.enabled:
            torch.distributed.destroy_process_group()


def init_distributed(ddp: bool, device: torch.device,
                     script: str = 'benchmarks/ogbn.py'
                     ) -> Tuple[Distributed, torch.device]:
    r"""Joins the process group that ``torchrun`` set up when :obj:`ddp` is
    set (``nccl`` on CUDA, on the local rank's GPU; ``gloo`` on the CPU) and
    returns it with the device of this rank."""
    if not ddp:
        return Distributed(), device
    if 'RANK' not in os.environ:
        raise UsageError(f'--ddp needs torchrun (torchrun '
                         f'--nproc_per_node=N {script} ... --ddp)')
    rank = int(os.environ['RANK'])
    world_size = int(os.environ['WORLD_SIZE'])
    if device.type == 'cuda':
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)))
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend)
    return Distributed(rank, world_size, backend), device
