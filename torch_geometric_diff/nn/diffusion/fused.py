r"""The fused diffusion operation.

:func:`diffuse` runs :math:`K` steps of
:math:`\mathbf{X} \leftarrow \mathbf{M}\,(\mathbf{m}^{(k)} \odot \mathbf{X})
/ (1 - p)` as one :func:`torch.library.custom_op` with its own autograd
formula: the backward pass applies :math:`\mathbf{M}^{\top}` and regenerates
the dropout masks :math:`\mathbf{m}^{(k)}` (see
:mod:`~torch_geometric_diff.nn.diffusion.dropout`), so it saves no per-step
activation. :func:`diffuse_reference` computes the same with plain autograd.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from torch_geometric_diff.nn.diffusion.dropout import (
    draw_seed,
    dropout_mask,
    dropout_scale,
    mask_bits,
    mask_threshold,
    resolve_seed,
)
from torch_geometric_diff.nn.diffusion.graphs import run_steps
from torch_geometric_diff.nn.diffusion.kernels import cpu_kernels
from torch_geometric_diff.nn.diffusion.operator import (
    DiffusionOperator,
    _csr,
    operator_values,
)

__all__ = [
    'diffuse',
    'diffuse_reference',
]


def _apply_steps(h: Tensor, M: Tensor, steps, p: float, seed: int,
                 transpose: bool = False) -> Tensor:
    r"""Runs ``h <- M (m_k * h)`` over :obj:`steps` (or, with
    :obj:`transpose`, ``h <- m_k * (M h)``, the backward recursion), writing
    into two ping-pong buffers and one mask buffer: no allocation per step,
    and the input :obj:`h` is never written. On CPU, the C++ kernels of
    :mod:`~torch_geometric_diff.nn.diffusion.kernels` do the same in one pass
    per step when they are available. On CUDA,
    :func:`~torch_geometric_diff.nn.diffusion.graphs.run_steps` replays the
    steps as one CUDA graph once an operator has been seen twice (eagerly
    before, and with ``TGD_CUDA_GRAPHS=0``), with the same masks."""
    steps = list(steps)
    if h.device.type == 'cuda' and steps:
        return run_steps(h, M, steps, p, seed, transpose)
    if h.device.type == 'cpu' and steps and M.crow_indices().dtype == \
            torch.int64 and h.dtype in (torch.float32, torch.float64):
        ext = cpu_kernels()
        if ext is not None:
            bits = mask_bits(p) if p > 0 else 8
            return ext.diffuse_steps(h.contiguous(), M.crow_indices(),
                                     M.col_indices(), M.values(), steps,
                                     transpose, p, bits,
                                     mask_threshold(p, bits), seed)
    use_out = h.device.type != 'cuda'
    bufs = [torch.empty_like(h) for _ in range(2 if use_out else 1)]
    mask = torch.empty_like(h) if p > 0 else None

    def other(t: Tensor) -> Tensor:
        return bufs[1] if t is bufs[0] else bufs[0]

    first = True
    for k in steps:
        if p > 0 and not transpose:
            m = dropout_mask(seed, k, tuple(h.shape), p, h.device, h.dtype,
                             out=mask)
            h = torch.mul(h, m, out=bufs[0]) if first else h.mul_(m)
        h = torch.mm(M, h, out=other(h)) if use_out else M @ h
        first = False
        if p > 0 and transpose:
            h.mul_(dropout_mask(seed, k, tuple(h.shape), p, h.device,
                                h.dtype, out=mask))
    return h


@torch.library.custom_op('torch_geometric_diff::diffuse', mutates_args=())
def _diffuse_op(x: Tensor, crow: Tensor, col: Tensor, ival: Tensor,
                lval: Tensor, gamma: Tensor, crow_t: Optional[Tensor],
                col_t: Optional[Tensor], perm_t: Optional[Tensor],
                num_steps: int, dropout: float, seed: Tensor) -> Tensor:
    return _forward(x, crow, col, ival, lval, gamma, num_steps, dropout,
                    seed)


def _forward(x: Tensor, crow: Tensor, col: Tensor, ival: Tensor,
             lval: Tensor, gamma: Tensor, num_steps: int, dropout: float,
             seed: Tensor) -> Tensor:
    n = x.size(0)
    M = _csr(crow, col, operator_values(ival, lval, gamma, dropout), n)
    if num_steps == 0:
        return x.clone()
    return _apply_steps(x, M, range(num_steps), dropout, int(seed))


@_diffuse_op.register_fake
def _(x, crow, col, ival, lval, gamma, crow_t, col_t, perm_t, num_steps,
      dropout, seed):
    return torch.empty_like(x)


@torch.library.custom_op('torch_geometric_diff::diffuse_backward',
                         mutates_args=())
def _diffuse_backward_op(grad: Tensor, x: Optional[Tensor], crow: Tensor,
                         col: Tensor, ival: Tensor, lval: Tensor,
                         gamma: Tensor, crow_t: Optional[Tensor],
                         col_t: Optional[Tensor], perm_t: Optional[Tensor],
                         num_steps: int, dropout: float,
                         seed: Tensor) -> Tuple[Tensor, Tensor]:
    return _backward_steps(grad, x, crow, col, ival, lval, gamma, crow_t,
                           col_t, perm_t, num_steps, dropout, seed)


def _backward_steps(grad: Tensor, x: Optional[Tensor], crow: Tensor,
                    col: Tensor, ival: Tensor, lval: Tensor, gamma: Tensor,
                    crow_t: Optional[Tensor], col_t: Optional[Tensor],
                    perm_t: Optional[Tensor], num_steps: int, dropout: float,
                    seed: Tensor) -> Tuple[Tensor, Tensor]:
    n, p, seed_ = grad.size(0), dropout, int(seed)
    scale = dropout_scale(p)
    transpose = crow_t is not None

    def t_csr(values: Tensor) -> Tensor:
        if transpose:
            return _csr(crow_t, col_t, values[perm_t], n)
        return _csr(crow, col, values, n)

    def drop(h: Tensor, k: int) -> Tensor:
        if p == 0:
            return h
        return h * dropout_mask(seed_, k, tuple(h.shape), p, h.device,
                                h.dtype)

    g = grad
    if x is None:  # No gradient for gamma: K transposed products.
        MT = t_csr(operator_values(ival, lval, gamma, p))
        g = _apply_steps(g, MT, reversed(range(num_steps)), p, seed_,
                         transpose=True)
        return g, torch.zeros_like(gamma)

    # Gradient for gamma: d/dgamma of M_s y_k is -s L y_k, so it needs the
    # step inputs y_k, recomputed from sqrt(K) checkpoints.
    M = _csr(crow, col, operator_values(ival, lval, gamma, p), n)
    LT = t_csr(lval)
    gam = gamma.to(g.dtype)
    seg = math.isqrt(num_steps - 1) + 1  # ceil(sqrt(K))
    ckpts = {}
    h = x
    for k in range(num_steps):
        if k % seg == 0:
            ckpts[k] = h
        if k + 1 < num_steps:
            h = M @ drop(h, k)
    dgamma = torch.zeros((), dtype=g.dtype, device=g.device)
    for start in reversed(range(0, num_steps, seg)):
        end = min(start + seg, num_steps)
        ys, h = [], ckpts[start]
        for k in range(start, end):
            ys.append(drop(h, k))
            if k + 1 < end:
                h = M @ ys[-1]
        for k in reversed(range(start, end)):
            lg = LT @ g
            dgamma = dgamma - scale * (lg * ys[k - start]).sum()
            # M_s^T g from the L^T g that dgamma needs: one product a step.
            g = drop((g - gam * lg) * scale, k)
    return g, dgamma.to(gamma.dtype).reshape(gamma.shape)


@_diffuse_backward_op.register_fake
def _(grad, x, crow, col, ival, lval, gamma, crow_t, col_t, perm_t,
      num_steps, dropout, seed):
    return torch.empty_like(grad), torch.empty_like(gamma)


def _setup_context(ctx, inputs, output) -> None:
    (x, crow, col, ival, lval, gamma, crow_t, col_t, perm_t, num_steps,
     dropout, seed) = inputs
    saved_x = x if gamma.requires_grad else None
    ctx.save_for_backward(saved_x, crow, col, ival, lval, gamma, crow_t,
                          col_t, perm_t, seed)
    ctx.num_steps, ctx.dropout = num_steps, dropout


def _backward(ctx, grad: Tensor):
    x, crow, col, ival, lval, gamma, crow_t, col_t, perm_t, seed = \
        ctx.saved_tensors
    gx, ggamma = _diffuse_backward_op(grad.contiguous(), x, crow, col, ival,
                                      lval, gamma, crow_t, col_t, perm_t,
                                      ctx.num_steps, ctx.dropout, seed)
    return (gx, None, None, None, None, ggamma if x is not None else None,
            None, None, None, None, None, None)


_diffuse_op.register_autograd(_backward, setup_context=_setup_context)


def diffuse(x: Tensor, op: DiffusionOperator, gamma: Tensor, num_steps: int,
            dropout: float = 0.0, seed: Optional[Tensor] = None) -> Tensor:
    r"""Runs :obj:`num_steps` steps of
    :math:`\mathbf{X} \leftarrow (\mathbf{I} - \gamma\mathbf{L})
    \,\mathrm{dropout}(\mathbf{X})` with the fused engine.

    Args:
        x (torch.Tensor): Node features :math:`(N, F)`.
        op (DiffusionOperator): The operator from :func:`build_operator`.
        gamma (torch.Tensor): The step size, a 0-dim tensor (it may require
            gradients).
        num_steps (int): The number of steps :math:`K`.
        dropout (float, optional): The dropout probability before every
            step; pass :obj:`0.` in evaluation mode. (default: :obj:`0.`)
        seed (torch.Tensor, optional): The dropout seed, a one-element
            :obj:`int64` tensor; drawn from the global generator if
            :obj:`None`.
    """
    if num_steps == 0:
        return x
    seed = resolve_seed(seed, dropout)
    dtype = x.dtype
    return _diffuse_op(x.contiguous(), op.crow, op.col, op.ival.to(dtype),
                       op.lval.to(dtype), gamma, op.crow_t, op.col_t,
                       op.perm_t, num_steps, float(dropout), seed)


def diffuse_reference(x: Tensor, op: DiffusionOperator, gamma: Tensor,
                      num_steps: int, dropout: float = 0.0,
                      seed: Optional[Tensor] = None) -> Tensor:
    r"""The same computation as :func:`diffuse` with plain autograd (every
    step's activation and mask kept), for checking and as a fallback. Each
    step is one scatter over the uncoalesced edge-list form of
    :math:`\mathbf{M}`, so this path shares neither the CSR coalescing nor the
    transposed pattern with :func:`diffuse`."""
    if dropout > 0 and seed is None:
        seed = draw_seed()
    seed_ = int(seed) if seed is not None else 0
    weight = op.edge_values(gamma, dropout, x.dtype).view(-1, 1)
    src, dst = op.edge_index
    h = x
    for k in range(num_steps):
        if dropout > 0:
            h = h * dropout_mask(seed_, k, tuple(h.shape), dropout, h.device,
                                 h.dtype)
        h = h.new_zeros(h.shape).index_add(0, dst, weight * h[src])
    return h
