r"""Full-graph, layer-wise inference for graphs that do not fit a device.

Node-wise layers (linear maps, activations) run on the device in chunks of
nodes. Propagation runs through a :class:`BlockedOperator`: the sparse
matrix stays in host memory, split into row blocks, and each block is moved
to the device only while it is multiplied. Device memory is then bounded by
the node states (:math:`N \times C` after the output projection) plus one
block, instead of the whole graph and every intermediate activation.
"""
from typing import List, Optional, Union

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


def _chunked(fn, x: Tensor, device: torch.device, chunk_size: int,
             out_device: torch.device) -> Tensor:
    outs = [fn(x[i:i + chunk_size].to(device)).to(out_device)
            for i in range(0, x.size(0), chunk_size)]
    return torch.cat(outs) if outs else x.new_empty(0, 0)


@torch.no_grad()
def diff_resnet_layerwise_inference(
    model: torch.nn.Module,
    x: Tensor,
    edge_index: Tensor,
    device: Optional[Device] = None,
    chunk_size: int = 2**16,
    operator_device: str = 'auto',
    max_block_nnz: int = 2**26,
    operator: Optional[BlockedOperator] = None,
    channel_chunk: Optional[int] = None,
) -> Tensor:
    r"""Evaluation-mode output of a
    :class:`~torch_geometric_diff.nn.DiffResNetGNN` on the full graph,
    computed layer by layer: node-wise layers in chunks of
    :obj:`chunk_size` nodes on :obj:`device`, the :math:`K` diffusion steps
    :math:`\mathbf{H} \leftarrow \mathbf{M}\mathbf{H}` with
    :math:`\mathbf{M} = \mathbf{I} - \gamma\mathbf{L}` through a
    :class:`BlockedOperator`. As in the model's own evaluation pass, the
    output projection is applied before the last diffusion (they commute),
    so the last :math:`K` products act on :math:`C` channels. Equals
    ``model.eval()(x, edge_index)`` up to floating-point rounding.

    Args:
        model (DiffResNetGNN): The model.
        x (torch.Tensor): Node features :math:`(N, F)`, on the CPU.
        edge_index (torch.Tensor): The graph, on the CPU.
        device (torch.device or str, optional): The compute device; the
            model's device if :obj:`None`. (default: :obj:`None`)
        chunk_size (int, optional): Nodes per node-wise chunk.
            (default: :obj:`2**16`)
        operator_device (str, optional): See :func:`place_operator`.
            (default: :obj:`"auto"`)
        max_block_nnz (int, optional): See :class:`BlockedOperator`.
            (default: :obj:`2**26`)
        operator (BlockedOperator, optional): A placed :math:`\mathbf{M}` to
            reuse (see :func:`diff_resnet_operator`). (default: :obj:`None`)
        channel_chunk (int, optional): If set, node states stay on the CPU
            and are diffused :obj:`channel_chunk` columns at a time on
            :obj:`device` (the columns diffuse independently), so that device
            memory holds :math:`N \times` :obj:`channel_chunk` states only.
            (default: :obj:`None`)

    Returns:
        The logits :math:`(N, C)`, on :obj:`device` (on the CPU with
        :obj:`channel_chunk`).
    """
    if channel_chunk is not None and channel_chunk < 1:
        raise ValueError(f"'channel_chunk' must be positive "
                         f"(got {channel_chunk})")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    was_training = model.training
    model.eval()
    if operator is None:
        operator = diff_resnet_operator(model, edge_index, x.size(0), device,
                                        operator_device, max_block_nnz)
    conv = model.conv
    # Node states live where the products run, or on the CPU when they are
    # diffused a few columns at a time.
    state_device = device if channel_chunk is None else torch.device('cpu')

    def diffuse(h: Tensor) -> Tensor:
        if channel_chunk is None:
            for _ in range(conv.num_steps):
                h = operator.matmul(h)
            return h
        out = torch.empty_like(h)
        for c in range(0, h.size(1), channel_chunk):
            part = h[:, c:c + channel_chunk].to(device)
            for _ in range(conv.num_steps):
                part = operator.matmul(part)
            out[:, c:c + channel_chunk] = part.to(out.device)
        return out

    def first(h: Tensor) -> Tensor:
        if model.lin_in is not None:
            h = model.lin_in(h)
            return h + model.act(model.lins[0](h))
        return h + model.act(model.lins[0](h))

    h = _chunked(first, x, device, chunk_size, state_device)
    for i in range(model.num_blocks):
        if i > 0:
            h = _chunked(lambda t: t + model.act(model.lins[i](t)), h, device,
                         chunk_size, state_device)
        if i == model.num_blocks - 1:
            h = _chunked(model.lin_out, h, device, chunk_size, state_device)
        h = diffuse(h)
    model.train(was_training)
    return h


def diff_resnet_operator(model: torch.nn.Module, edge_index: Tensor,
                         num_nodes: int, device: Device,
                         operator_device: str = 'auto',
                         max_block_nnz: int = 2**26) -> BlockedOperator:
    r"""Builds :math:`\mathbf{M} = \mathbf{I} - \gamma\mathbf{L}` of the
    model's :class:`~torch_geometric_diff.nn.DiffConv` on the CPU and places
    it with :func:`place_operator`."""
    conv = model.conv
    op = conv.build_operator(edge_index.cpu(), num_nodes)
    gamma = conv.gamma.detach().cpu().to(op.lval.dtype)
    matrix = op.csr(op.ival - gamma * op.lval)
    return place_operator(matrix, device, operator_device, max_block_nnz)


__all__ = [
    'BlockedOperator',
    'place_operator',
    'diff_resnet_layerwise_inference',
    'diff_resnet_operator',
]
