from typing import Any, Dict, Optional, Union

import torch
from torch import Tensor
from torch.nn import Linear, ModuleList

from torch_geometric.nn.resolver import activation_resolver
from torch_geometric.typing import Adj, OptTensor

from torch_geometric_diff.nn.conv import DiffConv
from torch_geometric_diff.nn.diffusion.kernels import sparse_linear


def _is_sparse(x: Tensor) -> bool:
    return x.layout != torch.strided


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
    \mathbf{1}`: the model then projects to :math:`C` channels first and
    diffuses those, which gives the same output at a fraction of the cost.

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
            :obj:`learnable_step` and :obj:`engine`.

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

    def forward(self, x: Tensor, edge_index: Adj,
                edge_weight: OptTensor = None) -> Tensor:
        if self.lin_in is not None:
            x = sparse_linear(x, self.lin_in)
            h = x + self.act(self.lins[0](x))
        else:
            h = self.act(sparse_linear(x, self.lins[0]))
            h = h + (x.to_dense() if _is_sparse(x) else x)
        commute = not (self.training and self.conv.dropout > 0) and \
            self.out_channels < h.size(-1)
        for i in range(self.num_blocks):
            if i > 0:
                h = h + self.act(self.lins[i](h))
            if i == self.num_blocks - 1 and commute:
                return self.conv(self.lin_out(h), edge_index, edge_weight)
            h = self.conv(h, edge_index, edge_weight)
        return self.lin_out(h)

    def __repr__(self) -> str:
        hidden = f', hidden_channels={self.hidden_channels}' \
            if self.hidden_channels is not None else ''
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}{hidden}, num_blocks={self.num_blocks}, '
                f'conv={self.conv})')
