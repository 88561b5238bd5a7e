r"""Implicit (backward-Euler) diffusion steps.

:func:`implicit_diffuse` runs :math:`K` steps of

.. math::
    (\mathbf{I} + \gamma\mathbf{L})\,\mathbf{X}^{(k+1)} =
    \mathbf{m}^{(k)} \odot \mathbf{X}^{(k)} / (1 - p),

with the dropout masks :math:`\mathbf{m}^{(k)}` of the explicit engine
(:func:`~torch_geometric_diff.nn.diffusion.dropout_mask`). The step is stable
for every :math:`\gamma \geq 0`. With :obj:`normalize='rw'`,
:math:`\mathbf{L} = \mathbf{I} - \hat{\mathbf{A}}` and one step is
:math:`\frac{1}{1+\gamma}(\mathbf{I} - \frac{\gamma}{1+\gamma}
\hat{\mathbf{A}})^{-1}\mathbf{X}`, the personalised-PageRank propagation of
APPNP with :math:`\alpha = 1/(1+\gamma)`.

Each step is solved by conjugate gradients (CG), batched over the channels,
warm-started from its right-hand side (on CPU, with the C++ kernels, the
whole solve runs in C++). CG needs a symmetric positive definite matrix.
:math:`\mathbf{I} + \gamma\mathbf{L}` is one when :math:`\mathbf{L}` is
symmetric (:obj:`'sym'` or :obj:`None` on symmetric weights). Otherwise a
positive :obj:`sym_scale` :math:`\mathbf{s}` with
:math:`\mathbf{L} = \mathrm{diag}(\mathbf{s})^{-1}\,\mathbf{S}\,
\mathrm{diag}(\mathbf{s})` and :math:`\mathbf{S}` symmetric turns both
solves into ones with :math:`\mathbf{I} + \gamma\mathbf{S}`:

.. math::
    (\mathbf{I} + \gamma\mathbf{L})\mathbf{x} = \mathbf{b} \iff
    (\mathbf{I} + \gamma\mathbf{S})(\mathbf{s} \odot \mathbf{x}) =
    \mathbf{s} \odot \mathbf{b}, \qquad
    (\mathbf{I} + \gamma\mathbf{L})^{\top}\mathbf{z} = \mathbf{h} \iff
    (\mathbf{I} + \gamma\mathbf{S})(\mathbf{z} / \mathbf{s}) =
    \mathbf{h} / \mathbf{s}.

For :obj:`'rw'`, :math:`\mathbf{s} = \mathbf{d}^{1/2}` (:func:`rw_sym_scale`)
and :math:`\mathbf{S} = \mathbf{I} - \mathbf{D}^{-1/2}(\mathbf{A} +
\mathbf{I})\mathbf{D}^{-1/2}`.

For a symmetric :math:`\mathbf{L}`, CG is preconditioned by the diagonal of
:math:`\mathbf{I} + \gamma\mathbf{L}` (Jacobi). The diagonal of
:math:`\mathbf{L} = \mathrm{diag}(\hat{\mathbf{A}}\mathbf{1}) -
\hat{\mathbf{A}}` under :obj:`'sym'` holds the row sums of
:math:`\hat{\mathbf{A}}`, which spread with the degrees; scaling them away cuts
the iterations 1.5--1.7 times on Cora and PubMed at :math:`\gamma \in \{1, 4\}`
(``benchmarks/README.md``). Under :obj:`'rw'` the row sums are all one, the
diagonal is nearly constant and the preconditioner does not pay, so the solve
through :obj:`sym_scale` runs plain CG by default.

The backward pass differentiates the solves implicitly:
:math:`\mathbf{g}_k = \mathbf{m}^{(k)} \odot (\mathbf{I} +
\gamma\mathbf{L})^{-\top}\mathbf{g}_{k+1} / (1 - p)`, one more CG solve per
step, and :math:`\partial \mathcal{L} / \partial\gamma = -\sum_k
((\mathbf{I} + \gamma\mathbf{L})^{-\top}\mathbf{g}_{k+1})^{\top}
\mathbf{L}\mathbf{X}^{(k+1)}`, with the step outputs recomputed from
:math:`\lceil\sqrt{K}\rceil` checkpoints. Nothing per step or per CG
iteration is saved.
"""
import math
import warnings
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from torch_geometric_diff.nn.diffusion.dropout import (
    dropout_mask,
    dropout_scale,
    resolve_seed,
)
from torch_geometric_diff.nn.diffusion.kernels import cpu_kernels
from torch_geometric_diff.nn.diffusion.operator import DiffusionOperator, _csr

__all__ = ['implicit_diffuse', 'rw_sym_scale', 'conjugate_gradient']


def rw_sym_scale(row: Tensor, weight: Tensor, num_nodes: int,
                 add_self_loops: bool = True) -> Tensor:
    r"""The :obj:`sym_scale` :math:`\mathbf{d}^{1/2}` of the :obj:`'rw'`
    Laplacian, with :math:`\mathbf{d}` the row sums of :math:`\mathbf{A}`
    (plus :math:`\mathbf{I}` with :obj:`add_self_loops`), from the entries
    (``row`` = target, ``weight``) that
    :func:`~torch_geometric_diff.nn.diffusion.build_operator` takes. Nodes
    of degree zero get :obj:`1`."""
    w = weight.detach()
    deg = w.new_zeros(num_nodes).index_add(0, row, w)
    if add_self_loops:
        deg = deg + 1.0
    return deg.clamp_min(0).sqrt().masked_fill(deg <= 0, 1.0)


def conjugate_gradient(
        matvec: Callable[[Tensor], Tensor], b: Tensor, tol: float,
        max_iter: int,
        inv_diag: Optional[Tensor] = None) -> Tuple[Tensor, int, float]:
    r"""Solves :math:`\mathbf{A}\mathbf{X} = \mathbf{B}` for a symmetric
    positive definite :math:`\mathbf{A}`, given by :obj:`matvec`, by
    conjugate gradients on every column of :obj:`b` at once, starting from
    :obj:`b`, until :math:`\|\mathbf{r}\| \leq \mathrm{tol}\,
    \|\mathbf{b}\|` per column (converged columns stop moving) or
    :obj:`max_iter` iterations. With :obj:`inv_diag`
    :math:`= 1 / \mathrm{diag}(\mathbf{A})`, the iteration is
    Jacobi-preconditioned (:math:`\mathbf{z} = \mathbf{r} /
    \mathrm{diag}(\mathbf{A})`); the stopping rule stays on
    :math:`\mathbf{r}`. Returns the solution, the iterations run and the
    largest final relative residual."""
    x = b.clone()
    r = b - matvec(x)
    z = r if inv_diag is None else inv_diag.view(-1, 1) * r
    p = z.clone()
    rr = (r * r).sum(0)
    rz = rr if inv_diag is None else (r * z).sum(0)
    bb = (b * b).sum(0).clamp_min(torch.finfo(b.dtype).tiny)
    stop = tol * tol * bb
    it = 0
    while it < max_iter:
        active = rr > stop
        if not bool(active.any()):
            break
        ap = matvec(p)
        pap = (p * ap).sum(0)
        alpha = torch.where(active, rz / torch.where(active, pap, 1.), 0.)
        x.add_(alpha * p)
        r.sub_(alpha * ap)
        rr = (r * r).sum(0)
        z = r if inv_diag is None else inv_diag.view(-1, 1) * r
        rz_new = rr if inv_diag is None else (r * z).sum(0)
        beta = torch.where(active, rz_new / torch.where(active, rz, 1.), 0.)
        p.mul_(beta).add_(z)
        rz = rz_new
        it += 1
    return x, it, float((rr / bb).max().sqrt()) if rr.numel() else 0.0


class _Solver:
    r"""Solves with :math:`\mathbf{I} + \gamma\mathbf{L}` (or its transpose)
    by CG in the coordinates where it is symmetric, and runs the steps."""
    def __init__(self, n: int, crow: Tensor, col: Tensor, lval: Tensor,
                 gamma: Tensor, scale: Optional[Tensor], dropout: float,
                 seed: Tensor, tol: float, max_iter: int,
                 precondition: bool = True):
        self.gamma = float(gamma)
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"'gamma' must be finite and non-negative for "
                             f"implicit steps (got {self.gamma})")
        self.L = _csr(crow, col, lval, n)
        self.s = None if scale is None else scale.to(lval.dtype).view(-1, 1)
        # I + gamma L in the symmetric coordinates, diagonal folded in, for
        # one sparse product per CG iteration.
        rows = torch.repeat_interleave(
            torch.arange(n, device=crow.device), crow.diff())
        vals = self.gamma * lval
        if self.s is not None:
            s = self.s.view(-1)
            vals = vals * (s[rows] / s[col])
        diag = rows == col
        vals = vals + diag.to(vals.dtype)
        # The Jacobi preconditioner 1 / diag(I + gamma L); ones for plain CG.
        d = vals.new_ones(n)
        if precondition:
            d = d.index_add(0, rows[diag], vals[diag] - 1.)
        self.dinv = d.reciprocal()
        # Every row holds its diagonal entry (build_operator keeps them all);
        # otherwise the identity is added separately.
        self.A = (crow, col, vals.contiguous(), bool(diag.sum() == n))
        self.ext = (cpu_kernels() if crow.device.type == 'cpu'
                    and crow.dtype == torch.int64 else None)
        self.p, self.seed, self.tol, self.max_iter = (dropout, int(seed), tol,
                                                      max_iter)
        self.log: List[Tuple[int, float]] = []  # (iterations, residual)

    def matvec(self, u: Tensor) -> Tensor:
        # The PyTorch CG's product; with the C++ kernels, cg() solves in C++.
        crow, col, vals, full_diagonal = self.A
        if not full_diagonal:
            if self.s is None:
                return u + self.gamma * (self.L @ u)
            return u + self.gamma * (self.s * (self.L @ (u / self.s)))
        return _csr(crow, col, vals, u.size(0)) @ u

    def solve(self, b: Tensor, transpose: bool = False) -> Tensor:
        r""":math:`(\mathbf{I} + \gamma\mathbf{L})^{-1}\mathbf{B}`, or
        :math:`(\mathbf{I} + \gamma\mathbf{L})^{-\top}\mathbf{B}`."""
        if self.s is None:
            return self.cg(b)
        t = self.s.reciprocal() if transpose else self.s
        return self.cg(t * b) / t

    def cg(self, b: Tensor) -> Tensor:
        crow, col, vals, full_diagonal = self.A
        if (self.ext is not None and full_diagonal and b.dtype == vals.dtype
                and b.dtype in (torch.float32, torch.float64)):
            # The whole solve in C++: no per-iteration Python overhead.
            x, it, res = self.ext.cg_solve(crow, col, vals, b.contiguous(),
                                           self.dinv, self.tol, self.max_iter)
        else:
            x, it, res = conjugate_gradient(self.matvec, b, self.tol,
                                            self.max_iter, self.dinv)
        self.log.append((it, res))
        return x

    def drop(self, h: Tensor, k: int) -> Tensor:
        if self.p == 0:
            return h
        mask = dropout_mask(self.seed, k, tuple(h.shape), self.p, h.device,
                            h.dtype)
        return h * mask * dropout_scale(self.p)

    def step(self, h: Tensor, k: int) -> Tensor:  # One implicit step.
        return self.solve(self.drop(h, k))

    def warn(self, what: str) -> None:
        bad = [res for _, res in self.log if not res <= self.tol]
        if bad:
            warnings.warn(
                f"implicit_diffuse: conjugate gradients did not converge in "
                f"{len(bad)} of {len(self.log)} {what} solves within "
                f"max_iter={self.max_iter} iterations (final relative "
                f"residual {max(bad):.3e} > tol={self.tol:g})",
                RuntimeWarning, stacklevel=2)


@torch.library.custom_op('torch_geometric_diff::implicit_diffuse',
                         mutates_args=())
def _implicit_op(x: Tensor, crow: Tensor, col: Tensor, lval: Tensor,
                 gamma: Tensor, scale: Optional[Tensor], num_steps: int,
                 dropout: float, seed: Tensor, tol: float, max_iter: int,
                 precondition: bool) -> Tuple[Tensor, Tensor]:
    solver = _Solver(x.size(0), crow, col, lval, gamma, scale, dropout, seed,
                     tol, max_iter, precondition)
    h = x
    for k in range(num_steps):
        h = solver.step(h, k)
    solver.warn('forward')
    return h, torch.tensor(solver.log, dtype=torch.float64).view(-1, 2)


@_implicit_op.register_fake
def _(x, crow, col, lval, gamma, scale, num_steps, dropout, seed, tol,
      max_iter, precondition):
    return (torch.empty_like(x),
            x.new_empty((num_steps, 2), dtype=torch.float64, device='cpu'))


@torch.library.custom_op('torch_geometric_diff::implicit_diffuse_backward',
                         mutates_args=())
def _implicit_backward_op(grad: Tensor, x: Optional[Tensor], crow: Tensor,
                          col: Tensor, lval: Tensor, gamma: Tensor,
                          scale: Optional[Tensor], num_steps: int,
                          dropout: float, seed: Tensor, tol: float,
                          max_iter: int,
                          precondition: bool) -> Tuple[Tensor, Tensor]:
    solver = _Solver(grad.size(0), crow, col, lval, gamma, scale, dropout,
                     seed, tol, max_iter, precondition)
    g = grad
    if x is None:  # No gradient for gamma: K transposed solves.
        for k in reversed(range(num_steps)):
            g = solver.drop(solver.solve(g, transpose=True), k)
        solver.warn('backward')
        return g, torch.zeros_like(gamma)

    # The gamma gradient needs the step outputs: recompute them segment by
    # segment from ceil(sqrt(K)) checkpoints of the step inputs.
    seg = math.isqrt(num_steps - 1) + 1
    starts = list(range(0, num_steps, seg))
    ckpts, h = [x], x
    for k in range(starts[-1]):
        h = solver.step(h, k)
        if (k + 1) % seg == 0:
            ckpts.append(h)
    solver.log.clear()  # Only the backward solves are reported.
    dgamma = torch.zeros((), dtype=torch.float64, device=g.device)
    for start in reversed(starts):
        h, outs = ckpts.pop(), []
        for k in range(start, min(start + seg, num_steps)):
            h = solver.step(h, k)
            outs.append(h)
        del solver.log[-len(outs):]
        for k in reversed(range(start, start + len(outs))):
            gb = solver.solve(g, transpose=True)
            dgamma -= (gb * (solver.L @ outs.pop())).sum().double()
            g = solver.drop(gb, k)
    solver.warn('backward')
    return g, dgamma.to(gamma.dtype).reshape(gamma.shape)


@_implicit_backward_op.register_fake
def _(grad, x, crow, col, lval, gamma, scale, num_steps, dropout, seed, tol,
      max_iter, precondition):
    return torch.empty_like(grad), torch.empty_like(gamma)


def _setup_context(ctx, inputs, output) -> None:
    (x, crow, col, lval, gamma, scale, num_steps, dropout, seed, tol,
     max_iter, precondition) = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(x if gamma.requires_grad else None, crow, col, lval,
                          gamma, scale, seed)
    ctx.args = (num_steps, dropout, tol, max_iter, precondition)


def _backward(ctx, grad: Tensor, _grad_info: Optional[Tensor]):
    x, crow, col, lval, gamma, scale, seed = ctx.saved_tensors
    num_steps, dropout, tol, max_iter, precondition = ctx.args
    gx, ggamma = _implicit_backward_op(grad.contiguous(), x, crow, col, lval,
                                       gamma, scale, num_steps, dropout, seed,
                                       tol, max_iter, precondition)
    return (gx, None, None, None, ggamma if x is not None else None, None,
            None, None, None, None, None, None)


_implicit_op.register_autograd(_backward, setup_context=_setup_context)


def _checked_scale(op: DiffusionOperator, sym_scale: Optional[Tensor],
                   dtype: torch.dtype) -> Optional[Tensor]:
    r"""``None`` if :math:`\mathbf{L}` is symmetric (up to rounding, as
    duplicate edges summed in another order leave it), else
    :obj:`sym_scale` once :math:`\mathrm{diag}(\mathbf{s})\mathbf{L}
    \mathrm{diag}(\mathbf{s})^{-1}` is checked to be symmetric."""
    if op.symmetric:
        return None
    n = op.num_nodes
    if sym_scale is not None:
        s = sym_scale.detach()
        if s.shape != (n, ) or not bool((s > 0).all()
                                        & torch.isfinite(s).all()):
            raise ValueError(f"'sym_scale' must be a positive finite vector "
                             f"of shape [{n}] (got shape {list(s.shape)})")
    row = torch.repeat_interleave(torch.arange(n, device=op.crow.device),
                                  op.crow.diff())
    sval = op.lval.to(torch.float64)
    if sym_scale is not None:
        s64 = s.to(torch.float64)
        sval = s64[row] * sval / s64[op.col]
    atol = 1e-5 * float(sval.abs().max()) if sval.numel() else 0.
    if (torch.equal(op.crow_t, op.crow) and torch.equal(op.col_t, op.col)
            and torch.allclose(sval[op.perm_t], sval, rtol=1e-5, atol=atol)):
        return None if sym_scale is None else s.to(dtype)
    if sym_scale is None:
        raise ValueError(
            "Implicit steps need a symmetric Laplacian ('sym' or None on "
            "symmetric weights); for a non-symmetric one (such as 'rw') pass "
            "'sym_scale' s with diag(s) L diag(s)^-1 symmetric, e.g. "
            "rw_sym_scale(...)")
    raise ValueError("'sym_scale' does not symmetrise the Laplacian: "
                     "diag(s) L diag(s)^-1 is not symmetric, so the implicit "
                     "step has no symmetric form (is the graph directed?)")


def implicit_diffuse(x: Tensor, op: DiffusionOperator, gamma: Tensor,
                     num_steps: int, dropout: float = 0.0,
                     seed: Optional[Tensor] = None, tol: float = 1e-6,
                     max_iter: int = 100, sym_scale: Optional[Tensor] = None,
                     stats: Optional[dict] = None,
                     precondition: Optional[bool] = None) -> Tensor:
    r"""Runs :obj:`num_steps` implicit steps
    :math:`\mathbf{X} \leftarrow (\mathbf{I} + \gamma\mathbf{L})^{-1}
    \,\mathrm{dropout}(\mathbf{X})`, solved by conjugate gradients.

    Args:
        x (torch.Tensor): Node features :math:`(N, F)`.
        op (DiffusionOperator): The operator from
            :func:`~torch_geometric_diff.nn.diffusion.build_operator`.
        gamma (torch.Tensor): The step size :math:`\gamma \geq 0`, a 0-dim
            tensor (it may require gradients).
        num_steps (int): The number of steps :math:`K`.
        dropout (float, optional): The dropout probability before every
            step; pass :obj:`0.` in evaluation mode. (default: :obj:`0.`)
        seed (torch.Tensor, optional): The dropout seed, a one-element
            :obj:`int64` tensor; drawn from the global generator if
            :obj:`None`.
        tol (float, optional): The relative residual
            :math:`\|\mathbf{r}\| / \|\mathbf{b}\|` per channel at which CG
            stops. (default: :obj:`1e-6`)
        max_iter (int, optional): The most CG iterations per solve; a solve
            that does not converge within them issues a
            :class:`RuntimeWarning`. (default: :obj:`100`)
        sym_scale (torch.Tensor, optional): For a non-symmetric
            :math:`\mathbf{L}`, the positive :math:`\mathbf{s}` with
            :math:`\mathrm{diag}(\mathbf{s})\mathbf{L}
            \mathrm{diag}(\mathbf{s})^{-1}` symmetric; for :obj:`'rw'`,
            :func:`rw_sym_scale`. Ignored for a symmetric one.
            (default: :obj:`None`)
        stats (dict, optional): If given, receives :obj:`'iterations'` and
            :obj:`'residual'`, the CG iterations and final relative residual
            of each forward step. (default: :obj:`None`)
        precondition (bool, optional): Whether CG is Jacobi-preconditioned.
            :obj:`None` preconditions when :math:`\mathbf{L}` is symmetric
            and solves through :obj:`sym_scale` without it (see the module
            docstring). The solution is the same up to :obj:`tol` either
            way. (default: :obj:`None`)
    """
    if num_steps < 0:
        raise ValueError(f"'num_steps' must be non-negative (got {num_steps})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"'dropout' must be in [0, 1) (got {dropout})")
    if not tol > 0 or max_iter < 1:
        raise ValueError(f"'tol' must be positive and 'max_iter' at least 1 "
                         f"(got {tol}, {max_iter})")
    if not isinstance(gamma, Tensor):
        gamma = torch.tensor(float(gamma), dtype=x.dtype)
    if num_steps == 0:
        if stats is not None:
            stats.update(iterations=[], residual=[])
        return x
    scale = _checked_scale(op, sym_scale, x.dtype)
    if precondition is None:
        precondition = scale is None
    seed = resolve_seed(seed, dropout)
    out, info = _implicit_op(x.contiguous(), op.crow, op.col,
                             op.lval.to(x.dtype), gamma, scale, num_steps,
                             float(dropout), seed, float(tol), int(max_iter),
                             bool(precondition))
    if stats is not None:
        stats.update(iterations=info[:, 0].long().tolist(),
                     residual=info[:, 1].tolist())
    return out
