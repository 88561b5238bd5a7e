r"""Tools for full-graph, layer-wise inference on graphs that do not fit a
device (see :meth:`~torch_geometric_diff.nn.DiffResNetGNN.inference`).

Node-wise layers (linear maps, activations) run on the device in chunks of
nodes (:func:`apply_in_chunks`). Propagation runs through a
:class:`BlockedOperator`: the sparse matrix stays in host memory, split into
row blocks, and each block is moved to the device only while it is
multiplied. Device memory is then bounded by the node states plus one block,
instead of the whole graph and every intermediate activation.
"""
from typing import Callable, List, Optional, Union

import torch
from torch import Tensor

Device = Union[str, torch.device]


class BlockedOperator:
    r"""A sparse :math:`N \times N` matrix kept in CSR row blocks of at most
    :obj:`max_block_nnz` entries on a storage device (usually the CPU).
    :meth:`matmul` applies it on the device of the dense operand.

    Args:
        matrix (torch.Tensor): A :obj:`torch.sparse_csr` (or COO) matrix.
        max_block_nnz (int, optional): The most non-zeros per block.
            (default: :obj:`2**26`)
        pin_memory (bool, optional): Pin the blocks for faster, asynchronous
            host-to-GPU copies. (default: :obj:`False`)

    The attribute :obj:`sym_scale` (default :obj:`None`) may hold a
    positive :math:`\mathbf{s}` with :math:`\mathrm{diag}(\mathbf{s})
    \mathbf{A}\,\mathrm{diag}(\mathbf{s})^{-1}` symmetric, for solvers
    that need the symmetric form of a non-symmetric operator.
    """
    def __init__(self, matrix: Tensor, max_block_nnz: int = 2**26,
                 pin_memory: bool = False) -> None:
        if matrix.layout != torch.sparse_csr:
            matrix = matrix.to_sparse_csr()
        if max_block_nnz < 1:
            raise ValueError(f"'max_block_nnz' must be positive "
                             f"(got {max_block_nnz})")
        crow = matrix.crow_indices()
        col, val = matrix.col_indices(), matrix.values()
        self.sym_scale: Optional[Tensor] = None
        self.shape = tuple(matrix.shape)
        self.nnz = int(col.numel())
        self.blocks: List[Tensor] = []
        self.row_ranges: List[tuple] = []
        n = self.shape[0]
        start = 0
        while start < n or (n == 0 and not self.blocks):
            # Largest `end` whose block holds <= max_block_nnz entries (at
            # least one row).
            limit = int(crow[start]) + max_block_nnz
            end = int(torch.searchsorted(crow, limit, right=True)) - 1
            end = min(max(end, start + 1), n)
            lo, hi = int(crow[start]), int(crow[end])
            block = torch.sparse_csr_tensor(
                crow[start:end + 1] - lo, col[lo:hi], val[lo:hi],
                (end - start, self.shape[1]), check_invariants=False)
            if pin_memory:
                block = torch.sparse_csr_tensor(
                    block.crow_indices().pin_memory(),
                    block.col_indices().pin_memory(),
                    block.values().pin_memory(), block.shape,
                    check_invariants=False)
            self.blocks.append(block)
            self.row_ranges.append((start, end))
            start = end
            if n == 0:
                break

    @property
    def nbytes(self) -> int:
        r"""Bytes of the stored indices and values."""
        return sum(b.crow_indices().numel() * b.crow_indices().element_size()
                   + b.col_indices().numel() * b.col_indices().element_size()
                   + b.values().numel() * b.values().element_size()
                   for b in self.blocks)

    def matmul(self, x: Tensor) -> Tensor:
        r"""Returns :math:`\mathbf{A}\mathbf{X}` on :obj:`x.device`."""
        if x.size(0) != self.shape[1]:
            raise ValueError(f"Operand has {x.size(0)} rows, the operator "
                             f"{self.shape[1]} columns")
        if len(self.blocks) == 1 and self.blocks[0].device == x.device:
            return self.blocks[0].to(x.dtype) @ x
        out = x.new_empty(self.shape[0], x.size(1))
        for block, (start, end) in zip(self.blocks, self.row_ranges):
            block = block.to(x.device, non_blocking=True).to(x.dtype)
            out[start:end] = block @ x
        return out

    def diagonal(self) -> Tensor:
        r"""Returns the main diagonal, of length :math:`\min(N, M)` (zero
        where no entry is stored, duplicates summed), on the device of the
        blocks."""
        parts = []
        for block, (start, end) in zip(self.blocks, self.row_ranges):
            col = block.col_indices()
            rows = torch.repeat_interleave(
                torch.arange(start, end, device=col.device),
                block.crow_indices().diff())
            on = rows == col
            part = block.values().new_zeros(end - start)
            parts.append(part.index_add_(0, rows[on] - start,
                                         block.values()[on]))
        return torch.cat(parts)[:min(self.shape)]

    def power(self, x: Tensor, num_steps: int,
              device: Optional[Device] = None,
              channel_chunk: Optional[int] = None) -> Tensor:
        r"""Returns :math:`\mathbf{A}^{k}\mathbf{X}` for :math:`k` =
        :obj:`num_steps`, on :obj:`x.device`.

        Args:
            x (torch.Tensor): The dense operand.
            num_steps (int): The power :math:`k \geq 0`.
            device (torch.device or str, optional): Where the products run
                with :obj:`channel_chunk`. (default: :obj:`x.device`)
            channel_chunk (int, optional): If set, :obj:`x` stays where it is
                and :obj:`channel_chunk` columns at a time are moved to
                :obj:`device` and multiplied there (the columns are
                independent), so that :obj:`device` holds
                :math:`N \times` :obj:`channel_chunk` values only.
                (default: :obj:`None`)
        """
        if channel_chunk is None:
            for _ in range(num_steps):
                x = self.matmul(x)
            return x
        if channel_chunk < 1:
            raise ValueError(f"'channel_chunk' must be positive "
                             f"(got {channel_chunk})")
        device = x.device if device is None else torch.device(device)
        out = torch.empty_like(x)
        for c in range(0, x.size(1), channel_chunk):
            part = x[:, c:c + channel_chunk].to(device)
            for _ in range(num_steps):
                part = self.matmul(part)
            out[:, c:c + channel_chunk] = part.to(out.device)
        return out

    def to(self, device: Device) -> 'BlockedOperator':
        r"""Moves all blocks to :obj:`device` (when they fit)."""
        self.blocks = [b.to(device) for b in self.blocks]
        return self

    def __matmul__(self, x: Tensor) -> Tensor:
        return self.matmul(x)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(shape={self.shape}, '
                f'nnz={self.nnz}, blocks={len(self.blocks)})')


def place_operator(matrix: Tensor, device: Device,
                   operator_device: str = 'auto',
                   max_block_nnz: int = 2**26,
                   memory_fraction: float = 0.5) -> BlockedOperator:
    r"""Wraps :obj:`matrix` in a :class:`BlockedOperator` and places it.

    Args:
        matrix (torch.Tensor): The sparse matrix (on the CPU).
        device (torch.device or str): The compute device.
        operator_device (str, optional): :obj:`"device"` moves the whole
            operator to :obj:`device`; :obj:`"cpu"` keeps it on the CPU and
            streams blocks; :obj:`"auto"` moves it if it takes less than
            :obj:`memory_fraction` of the free device memory.
            (default: :obj:`"auto"`)
        max_block_nnz (int, optional): Non-zeros per block.
            (default: :obj:`2**26`)
        memory_fraction (float, optional): See :obj:`"auto"`.
            (default: :obj:`0.5`)
    """
    if operator_device not in ('auto', 'cpu', 'device'):
        raise ValueError(f"'operator_device' must be 'auto', 'cpu' or "
                         f"'device' (got {operator_device!r})")
    device = torch.device(device)
    cuda = device.type == 'cuda'
    op = BlockedOperator(matrix.cpu(), max_block_nnz,
                         pin_memory=cuda and operator_device != 'device')
    if device.type == 'cpu' or operator_device == 'cpu':
        return op
    if operator_device == 'auto' and cuda:
        free, _ = torch.cuda.mem_get_info(device)
        if op.nbytes > memory_fraction * free:
            return op
    return op.to(device)


def _rows(x: Tensor, start: int, end: int) -> Tensor:
    # Rows [start, end) of a dense, sparse COO or sparse CSR matrix.
    if x.layout == torch.strided:
        return x[start:end]
    if x.layout == torch.sparse_coo:
        return x.narrow_copy(0, start, end - start)
    if x.layout == torch.sparse_csr:
        crow = x.crow_indices()
        lo, hi = int(crow[start]), int(crow[end])
        return torch.sparse_csr_tensor(crow[start:end + 1] - lo,
                                       x.col_indices()[lo:hi],
                                       x.values()[lo:hi],
                                       (end - start, x.size(1)))
    raise ValueError(f"'x' has an unsupported layout ({x.layout})")


def apply_in_chunks(fn: Callable[[Tensor], Tensor], x: Tensor,
                    chunk_size: int, device: Device,
                    out_device: Optional[Device] = None) -> Tensor:
    r"""Applies the row-wise function :obj:`fn` to :obj:`x` (dense,
    sparse COO or sparse CSR) in chunks of :obj:`chunk_size` rows, each moved
    to :obj:`device`, and concatenates the results on :obj:`out_device`
    (:obj:`device` if :obj:`None`)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) \
            or chunk_size < 1:
        raise ValueError(f"'chunk_size' must be a positive integer "
                         f"(got {chunk_size!r})")
    device = torch.device(device)
    out_device = device if out_device is None else torch.device(out_device)
    n = x.size(0)
    outs = [
        fn(_rows(x, i, min(i + chunk_size, n)).to(device)).to(out_device)
        for i in range(0, n, chunk_size)
    ]
    if not outs:
        return fn(x.to(device)).to(out_device)
    return torch.cat(outs)


__all__ = [
    'BlockedOperator',
    'place_operator',
    'apply_in_chunks',
]
