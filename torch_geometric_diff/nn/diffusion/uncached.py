r"""The fused diffusion on an operator built for one call.

Without a cache, the operator is rebuilt on every call (mini-batches,
batches of graphs). :func:`~torch_geometric_diff.nn.diffusion.operator.
edge_operator` builds it as an edge list of static shape, which
:func:`torch.compile` traces; :func:`diffuse_edges` then runs the :math:`K`
steps as one :func:`torch.library.custom_op` that sums the duplicate
entries into CSR inside (where data-dependent shapes are allowed) and runs
the same steps and backward pass as
:func:`~torch_geometric_diff.nn.diffusion.diffuse`.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from torch_geometric_diff.nn.diffusion.dropout import resolve_seed
from torch_geometric_diff.nn.diffusion.fused import _backward_steps, _forward
from torch_geometric_diff.nn.diffusion.operator import (
    EdgeOperator,
    coalesce_csr,
    compress_rows,
)

__all__ = ['diffuse_edges']


@torch.library.custom_op('torch_geometric_diff::diffuse_edges',
                         mutates_args=())
def _edges_op(x: Tensor, target: Tensor, source: Tensor, ival: Tensor,
              lval: Tensor, gamma: Tensor, num_steps: int, dropout: float,
              seed: Tensor) -> Tensor:
    # The forward steps need the rows of M grouped, not merged: duplicate
    # entries of a row add up in the product, so one stable sort by target
    # replaces coalescing.
    perm = torch.sort(target, stable=True)[1]
    crow = compress_rows(target[perm], x.size(0))
    return _forward(x, crow, source[perm], ival[perm], lval[perm], gamma,
                    num_steps, dropout, seed)


@_edges_op.register_fake
def _(x, target, source, ival, lval, gamma, num_steps, dropout, seed):
    return torch.empty_like(x)


@torch.library.custom_op('torch_geometric_diff::diffuse_edges_backward',
                         mutates_args=())
def _edges_backward_op(grad: Tensor, x: Optional[Tensor], target: Tensor,
                       source: Tensor, ival: Tensor, lval: Tensor,
                       gamma: Tensor, num_steps: int, dropout: float,
                       seed: Tensor) -> Tuple[Tensor, Tensor]:
    csr = coalesce_csr(target, source, ival, lval, grad.size(0))
    return _backward_steps(grad, x, *csr[:4], gamma, *csr[4:], num_steps,
                           dropout, seed)


@_edges_backward_op.register_fake
def _(grad, x, target, source, ival, lval, gamma, num_steps, dropout, seed):
    return torch.empty_like(grad), torch.empty_like(gamma)


def _setup_context(ctx, inputs, output) -> None:
    x, target, source, ival, lval, gamma, num_steps, dropout, seed = inputs
    ctx.save_for_backward(x if gamma.requires_grad else None, target, source,
                          ival, lval, gamma, seed)
    ctx.num_steps, ctx.dropout = num_steps, dropout


def _backward(ctx, grad: Tensor):
    x, target, source, ival, lval, gamma, seed = ctx.saved_tensors
    gx, ggamma = _edges_backward_op(grad.contiguous(), x, target, source,
                                    ival, lval, gamma, ctx.num_steps,
                                    ctx.dropout, seed)
    return (gx, None, None, None, None, ggamma if x is not None else None,
            None, None, None)


_edges_op.register_autograd(_backward, setup_context=_setup_context)


def diffuse_edges(x: Tensor, eo: EdgeOperator, gamma: Tensor, num_steps: int,
                  dropout: float = 0.0,
                  seed: Optional[Tensor] = None) -> Tensor:
    r"""Runs :obj:`num_steps` steps of
    :math:`\mathbf{X} \leftarrow (\mathbf{I} - \gamma\mathbf{L})
    \,\mathrm{dropout}(\mathbf{X})` on the edge-list operator :obj:`eo` from
    :func:`~torch_geometric_diff.nn.diffusion.operator.edge_operator`, with
    the masks and the memory-flat backward pass of
    :func:`~torch_geometric_diff.nn.diffusion.diffuse` (gradients reach
    :obj:`x` and :obj:`gamma`, not the edge weights). Arguments as there.
    """
    if num_steps == 0:
        return x
    seed = resolve_seed(seed, dropout)
    dtype = x.dtype
    return _edges_op(x.contiguous(), eo.target, eo.source,
                     eo.ival.detach().to(dtype), eo.lval.detach().to(dtype),
                     gamma, num_steps, float(dropout), seed)
