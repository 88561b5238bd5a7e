import warnings
from functools import partial
from typing import Any, Callable, Dict, Optional, Union

import torch
from torch import Tensor
from torch.nn import Linear, ModuleList

from torch_geometric.nn.resolver import activation_resolver
from torch_geometric.typing import Adj, OptTensor

from torch_geometric_diff.loader.inference import (
    BlockedOperator,
    Device,
    apply_in_chunks,
    place_operator,
)
from torch_geometric_diff.nn.conv import DiffConv
from torch_geometric_diff.nn.diffusion.implicit import (
    _checked_scale,
    conjugate_gradient,
)
from torch_geometric_diff.nn.diffusion.kernels import sparse_linear

# nodewise(fn, h): applies the row-wise map fn to the node states h.
NodeWise = Callable[[Callable[[Tensor], Tensor], Tensor], Tensor]


class DiffResNetGNN(torch.nn.Module):
    r"""The graph model of Diff-ResNet from the `"Diffusion Mechanism in
    Residual Neural Network: Theory and Applications"
    <https://arxiv.org/abs/2105.03155>`_ paper.

    .. math::
        \mathbf{H}^{(0)} &= \mathbf{X} \quad \text{or} \quad
        \mathbf{X}\mathbf{W}_{\mathrm{in}} + \mathbf{b}_{\mathrm{in}}

        \mathbf{H}^{(b)} &= \mathrm{Diff}_{\gamma, K}\Big(\mathbf{H}^{(b-1)}
        + \sigma\big(\mathbf{H}^{(b-1)} \mathbf{W}_b + \mathbf{b}_b\big)\Big),
        \qquad b = 1, \ldots, B

        \mathbf{Y} &= \mathbf{H}^{(B)} \mathbf{W}_{\mathrm{out}} +
        \mathbf{b}_{\mathrm{out}},

    where :math:`\mathrm{Diff}_{\gamma, K}` is :class:`DiffConv`: :math:`K`
    steps of :math:`\mathbf{H} \leftarrow (\mathbf{I} - \gamma\mathbf{L})\,
    \mathrm{dropout}(\mathbf{H})`. With :obj:`hidden_channels=None` and
    :obj:`num_blocks=1` this is exactly the paper's model, with
    :math:`F^2 + F + FC + C` parameters.

    All blocks share one :class:`DiffConv`, so the operator is built (and
    cached) once. When dropout is inactive (evaluation mode, or
    :obj:`dropout=0`), the last diffusion and the output layer commute,
    because :math:`\mathbf{M}` acts on rows and :math:`\mathbf{M}\mathbf{1} =
    \mathbf{1}` (as do the implicit steps: :math:`(\mathbf{I} +
    \gamma\mathbf{L})^{-1}\mathbf{1} = \mathbf{1}`, since
    :math:`\mathbf{L}\mathbf{1} = \mathbf{0}`): the model then projects to
    :math:`C` channels first and diffuses those, which gives the same output
    at a fraction of the cost.
    :meth:`inference` computes the same output layer by layer, for graphs
    that do not fit a device.

    The model is written once, in terms of :obj:`lin_in`, :obj:`lins`,
    :obj:`act`, :obj:`conv` and :obj:`lin_out`: :meth:`encode` and
    :meth:`block` are its node-wise parts, :obj:`conv` its propagation, and
    whether the last diffusion and :obj:`lin_out` commute is read from the
    widths of :obj:`lin_out`. A subclass can therefore run :math:`M` models
    side by side as one :math:`N \times MF` matrix by swapping the linear
    modules for block-diagonal ones (and :meth:`input_residual` for one that
    repeats the input :math:`M` times); one :obj:`conv` then diffuses all
    of them.

    Args:
        in_channels (int): Size of each input sample :math:`F`.
        out_channels (int): The number of classes :math:`C`.
        hidden_channels (int, optional): If set, a linear layer first
            projects the input to this width, as needed for wide inputs and
            large graphs. (default: :obj:`None`)
        num_steps (int, optional): Diffusion steps :math:`K` per block.
            (default: :obj:`20`)
        step_size (float, optional): The step size :math:`\gamma`.
            (default: :obj:`0.25`)
        dropout (float, optional): Dropout probability before every
            diffusion step. (default: :obj:`0.25`)
        num_blocks (int, optional): The number of residual blocks :math:`B`,
            each followed by diffusion. (default: :obj:`1`)
        act (str or Callable, optional): The non-linearity :math:`\sigma`.
            (default: :obj:`"relu"`)
        act_kwargs (Dict[str, Any], optional): Arguments of :obj:`act`.
            (default: :obj:`None`)
        **kwargs (optional): Further arguments of :class:`DiffConv`, such as
            :obj:`normalize`, :obj:`add_self_loops`, :obj:`cached`,
            :obj:`learnable_step`, :obj:`engine`, and :obj:`scheme`
            (:obj:`"explicit"` or :obj:`"implicit"`, with :obj:`tol` and
            :obj:`max_iter`).

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)`, dense or
          :obj:`torch.sparse`,
          edge indices :math:`(2, |\mathcal{E}|)`
          or sparse matrix :math:`(|\mathcal{V}|, |\mathcal{V}|)`,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** logits :math:`(|\mathcal{V}|, C)`
    """
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: Optional[int] = None,
        num_steps: int = 20,
        step_size: float = 0.25,
        dropout: float = 0.25,
        num_blocks: int = 1,
        act: Union[str, Any, None] = 'relu',
        act_kwargs: Optional[Dict[str, Any]] = None,
        **kwargs,
    ):
        super().__init__()
        for name, value in (('in_channels', in_channels),
                            ('out_channels', out_channels)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"'{name}' must be a positive integer "
                                 f"(got {value!r})")
        if hidden_channels is not None and (not isinstance(
                hidden_channels, int) or hidden_channels <= 0):
            raise ValueError(f"'hidden_channels' must be None or a positive "
                             f"integer (got {hidden_channels!r})")
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"'num_blocks' must be an integer >= 1 "
                             f"(got {num_blocks!r})")

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.num_blocks = num_blocks
        width = hidden_channels or in_channels

        self.lin_in = (Linear(in_channels, hidden_channels)
                       if hidden_channels is not None else None)
        self.lins = ModuleList(
            [Linear(width, width) for _ in range(num_blocks)])
        self.act = activation_resolver(act, **(act_kwargs or {}))
        self.conv = DiffConv(step_size=step_size, num_steps=num_steps,
                             dropout=dropout, **kwargs)
        self.lin_out = Linear(width, out_channels)
        self.reset_parameters()

    def reset_parameters(self):
        r"""Resets all learnable parameters and the cached operator."""
        if self.lin_in is not None:
            self.lin_in.reset_parameters()
        for lin in self.lins:
            lin.reset_parameters()
        self.conv.reset_parameters()
        self.lin_out.reset_parameters()

    def encode(self, x: Tensor) -> Tensor:
        r"""The node-wise part of the first block: the input projection
        (if any) and the residual update
        :math:`\mathbf{H} + \sigma(\mathbf{H}\mathbf{W}_1 + \mathbf{b}_1)`,
        before the first diffusion. :obj:`x` may be :obj:`torch.sparse`."""
        if self.lin_in is not None:
            x = sparse_linear(x, self.lin_in)
            return x + self.act(self.lins[0](x))
        h = self.act(sparse_linear(x, self.lins[0]))
        return h + self.input_residual(x)

    def input_residual(self, x: Tensor) -> Tensor:
        r"""The residual that the first block adds without an input
        projection: :obj:`x` itself, as a dense tensor."""
        return x.to_dense() if x.layout != torch.strided else x

    def block(self, i: int, h: Tensor) -> Tensor:
        r"""The node-wise residual update
        :math:`\mathbf{H} + \sigma(\mathbf{H}\mathbf{W}_i + \mathbf{b}_i)`
        of block :obj:`i` :math:`\geq 1` (block :obj:`0` is in
        :meth:`encode`)."""
        return h + self.act(self.lins[i](h))

    def _check_input(self, x: Tensor) -> None:
        # The same error for dense, COO and CSR x: the sparse products of
        # the first layer do not all check widths themselves.
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"'x' must be a 2-D tensor of node features "
                             f"(got shape {tuple(getattr(x, 'shape', ()))})")
        if x.size(1) != self.in_channels:
            raise ValueError(f"'x' has {x.size(1)} features but the model "
                             f"expects in_channels={self.in_channels}")

    def _commute(self) -> bool:
        # Project before the last diffusion when no dropout acts on it and
        # the output is narrower than the hidden state (see the class doc).
        return not (self.training and self.conv.dropout > 0) and \
            self.lin_out.out_features < self.lin_out.in_features

    def _layers(self, x: Tensor, nodewise: NodeWise,
                diffuse: Callable[[Tensor], Tensor]) -> Tensor:
        r"""The model, written once: :obj:`nodewise(fn, h)` applies the
        row-wise map :obj:`fn` to :obj:`h`, :obj:`diffuse(h)` runs one
        :class:`DiffConv`. :meth:`forward` passes plain calls,
        :meth:`inference` chunked ones and a blocked operator."""
        self._check_input(x)
        h = nodewise(self.encode, x)
        commute = self._commute()
        for i in range(self.num_blocks):
            if i > 0:
                h = nodewise(partial(self.block, i), h)
            if i == self.num_blocks - 1 and commute:
                return diffuse(nodewise(self.lin_out, h))
            h = diffuse(h)
        return nodewise(self.lin_out, h)

    def forward(self, x: Tensor, edge_index: Adj,
                edge_weight: OptTensor = None) -> Tensor:
        return self._layers(
            x, lambda fn, h: fn(h),
            lambda h: self.conv(h, edge_index, edge_weight))

    def blocked_operator(
        self,
        edge_index: Adj,
        num_nodes: int,
        device: Optional[Device] = None,
        edge_weight: OptTensor = None,
        operator_device: str = 'auto',
        max_block_nnz: int = 2**26,
    ) -> BlockedOperator:
        r"""Builds :math:`\mathbf{M} = \mathbf{I} - \gamma\mathbf{L}` of
        :obj:`self.conv` on the CPU, in the dtype of the model's weights,
        and places it with
        :func:`~torch_geometric_diff.loader.place_operator` for
        :meth:`inference`.

        Args:
            edge_index (torch.Tensor or SparseTensor): The graph.
            num_nodes (int): The number of nodes :math:`N`.
            device (torch.device or str, optional): The compute device; the
                model's device if :obj:`None`. (default: :obj:`None`)
            edge_weight (torch.Tensor, optional): Edge weights.
                (default: :obj:`None`)
            operator_device (str, optional): :obj:`"auto"`, :obj:`"cpu"` or
                :obj:`"device"`, see
                :func:`~torch_geometric_diff.loader.place_operator`.
                (default: :obj:`"auto"`)
            max_block_nnz (int, optional): Non-zeros per row block of the
                :class:`~torch_geometric_diff.loader.BlockedOperator`.
                (default: :obj:`2**26`)
        """
        if device is None:
            device = self.lin_out.weight.device
        if edge_weight is not None:
            edge_weight = edge_weight.detach().cpu()
        op = self.conv.build_operator(edge_index.cpu(), num_nodes,
                                      edge_weight, self.lin_out.weight.dtype)
        matrix = op.matrix(self.conv.gamma.detach().cpu())
        operator = place_operator(matrix, device, operator_device,
                                  max_block_nnz)
        if self.conv.scheme == 'implicit':  # CG needs the symmetric form.
            operator.sym_scale = _checked_scale(op, op.sym_scale,
                                                op.lval.dtype)
        return operator

    @torch.no_grad()
    def inference(
        self,
        x: Tensor,
        edge_index: Adj,
        edge_weight: OptTensor = None,
        device: Optional[Device] = None,
        chunk_size: int = 2**16,
        operator_device: str = 'auto',
        max_block_nnz: int = 2**26,
        operator: Optional[BlockedOperator] = None,
        channel_chunk: Optional[int] = None,
    ) -> Tensor:
        r"""The evaluation-mode output on the full graph, computed layer by
        layer, for graphs whose operator or activations do not fit the
        device: the node-wise parts (:meth:`encode`, :meth:`block`,
        :obj:`lin_out`) run in chunks of :obj:`chunk_size` nodes on
        :obj:`device`, and each diffusion is :math:`K` products with
        :math:`\mathbf{M}` held in a
        :class:`~torch_geometric_diff.loader.BlockedOperator` (under
        :obj:`scheme="implicit"`, :math:`K` CG solves with
        :math:`2\mathbf{I} - \mathbf{M}`, preconditioned as in the layer).
        Equals ``self.eval()(x, edge_index, edge_weight)`` up to
        floating-point rounding and the CG tolerance. The model's mode is
        restored afterwards.

        Args:
            x (torch.Tensor): Node features :math:`(N, F)`, dense or
                :obj:`torch.sparse`, usually on the CPU.
            edge_index (torch.Tensor or SparseTensor): The graph.
            edge_weight (torch.Tensor, optional): Edge weights.
                (default: :obj:`None`)
            device (torch.device or str, optional): The compute device; the
                model's device if :obj:`None`. (default: :obj:`None`)
            chunk_size (int, optional): Nodes per node-wise chunk.
                (default: :obj:`2**16`)
            operator_device (str, optional): See :meth:`blocked_operator`.
                (default: :obj:`"auto"`)
            max_block_nnz (int, optional): See :meth:`blocked_operator`.
                (default: :obj:`2**26`)
            operator (BlockedOperator, optional): A placed
                :math:`\mathbf{M}` from :meth:`blocked_operator` to reuse;
                :obj:`edge_index` and :obj:`edge_weight` are then not read.
                (default: :obj:`None`)
            channel_chunk (int, optional): If set, node states stay on the
                CPU and are diffused :obj:`channel_chunk` columns at a time
                on :obj:`device`, so that the device holds
                :math:`N \times` :obj:`channel_chunk` states only.
                (default: :obj:`None`)

        Returns:
            The logits :math:`(N, C)`, on :obj:`device` (on the CPU with
            :obj:`channel_chunk`).
        """
        if channel_chunk is not None and (
                isinstance(channel_chunk, bool)
                or not isinstance(channel_chunk, int) or channel_chunk < 1):
            raise ValueError(f"'channel_chunk' must be a positive integer "
                             f"(got {channel_chunk!r})")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) \
                or chunk_size < 1:
            raise ValueError(f"'chunk_size' must be a positive integer "
                             f"(got {chunk_size!r})")
        device = torch.device(self.lin_out.weight.device
                              if device is None else device)
        n = x.size(0)
        if operator is None:
            operator = self.blocked_operator(edge_index, n, device,
                                             edge_weight, operator_device,
                                             max_block_nnz)
        elif operator.shape != (n, n):
            raise ValueError(f"'operator' has shape {operator.shape} but "
                             f"'x' has {n} rows")
        # Node states live where the products run, or on the CPU when they
        # are diffused a few columns at a time.
        states = device if channel_chunk is None else torch.device('cpu')
        num_steps = self.conv.num_steps

        def nodewise(fn: Callable[[Tensor], Tensor], h: Tensor) -> Tensor:
            return apply_in_chunks(fn, h, chunk_size, device, states)

        def diffuse(h: Tensor) -> Tensor:
            if self.conv.scheme == 'implicit':
                return self._implicit_power(operator, h, device,
                                            channel_chunk)
            return operator.power(h, num_steps, device, channel_chunk)

        was_training = self.training
        self.eval()
        try:
            return self._layers(x, nodewise, diffuse)
        finally:
            self.train(was_training)

    def _implicit_power(self, operator: BlockedOperator, h: Tensor,
                        device: torch.device,
                        channel_chunk: Optional[int]) -> Tensor:
        # K implicit steps with M = I - gamma L held blocked: each step
        # solves (I + gamma L) y = h, that is (2 I - M) y = h, by CG in the
        # symmetric coordinates s * y when M is not symmetric. As in the
        # layer, CG is Jacobi-preconditioned (1 / diag(2 I - M)) when M is
        # symmetric, and plain under sym_scale.
        conv = self.conv
        residuals = []
        dinv = None
        if operator.sym_scale is None:
            dinv = (2 - operator.diagonal()).reciprocal()

        def solve(part: Tensor) -> Tensor:
            s = operator.sym_scale
            if s is not None:
                s = s.to(part.device, part.dtype).view(-1, 1)
            inv_diag = None if dinv is None else dinv.to(part.device,
                                                         part.dtype)

            def matvec(u: Tensor) -> Tensor:
                if s is None:
                    return 2 * u - operator.matmul(u)
                v = u / s
                return s * (2 * v - operator.matmul(v))

            for _ in range(conv.num_steps):
                b = part if s is None else part * s
                y, _, res = conjugate_gradient(matvec, b, conv.tol,
                                               conv.max_iter, inv_diag)
                residuals.append(res)
                part = y if s is None else y / s
            return part

        if channel_chunk is None:
            out = solve(h)
        else:
            out = torch.empty_like(h)
            for c in range(0, h.size(1), channel_chunk):
                part = solve(h[:, c:c + channel_chunk].to(device))
                out[:, c:c + channel_chunk] = part.to(out.device)
        worst = max(residuals, default=0.0)
        if not worst <= conv.tol:
            warnings.warn(
                f"DiffResNetGNN.inference: conjugate gradients did not "
                f"converge within max_iter={conv.max_iter} iterations (final "
                f"relative residual {worst:.3e} > tol={conv.tol:g})",
                RuntimeWarning, stacklevel=4)
        return out

    def __repr__(self) -> str:
        hidden = f', hidden_channels={self.hidden_channels}' \
            if self.hidden_channels is not None else ''
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}{hidden}, num_blocks={self.num_blocks}, '
                f'conv={self.conv})')
