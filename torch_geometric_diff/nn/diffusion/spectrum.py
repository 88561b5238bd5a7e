r"""The largest eigenvalue of :math:`\mathbf{L}` and the stability of
explicit Euler.

:math:`K` steps of :math:`\mathbf{X} \leftarrow (\mathbf{I} -
\gamma\mathbf{L})\mathbf{X}` stay bounded for symmetric :math:`\mathbf{L}`
iff :math:`\gamma\,\lambda_{\max}(\mathbf{L}) \le 2`. The check runs in two
stages:

1. :func:`lambda_max_bound`, a cheap upper bound (a few sparse products on
   the entries of :math:`\mathbf{L}`, no synchronisation), computed with
   every operator;
2. only when :math:`\gamma` times the bound exceeds :math:`2`,
   :func:`estimate_lambda_max` (Lanczos, or power iteration where
   :math:`\mathbf{L}` has no symmetric form), and a warning when
   :math:`\gamma` times the estimate, plus a safety margin of
   :obj:`STABILITY_MARGIN`, exceeds :math:`2`.

The Lanczos estimate approaches :math:`\lambda_{\max}` from below, so the
margin makes the check fire just past the exact bound while a step below
it by more than the margin never warns.
"""
import warnings
from typing import TYPE_CHECKING, Callable, Optional

import torch
from torch import Tensor

if TYPE_CHECKING:  # operator.py imports this module.
    from torch_geometric_diff.nn.diffusion.operator import DiffusionOperator

__all__ = [
    'STABILITY_MARGIN',
    'lambda_max_bound',
    'estimate_lambda_max',
    'lanczos_lambda_max',
    'power_iteration',
    'check_stability',
    'warn_if_unstable',
]

#: Relative margin added to the estimate of :math:`\lambda_{\max}` before
#: it is compared with :math:`2 / \gamma`.
STABILITY_MARGIN = 0.005


def lambda_max_bound(row: Tensor, col: Tensor, lval: Tensor, num_nodes: int,
                     iters: int = 4,
                     stop_below: Optional[float] = None) -> Tensor:
    r"""An upper bound on the spectral radius of :math:`\mathbf{L}`, given
    by its entries (duplicates are summed) as a 0-dim tensor.

    :math:`\mathbf{L}` has a non-negative diagonal and non-positive
    off-diagonal entries, so :math:`\mathbf{B} = |\mathbf{L}|` (entrywise)
    satisfies :math:`|\lambda| \le \rho(\mathbf{B}) \le \max_i
    (\mathbf{B}\mathbf{s})_i / s_i` for every eigenvalue :math:`\lambda` of
    :math:`\mathbf{L}` and every positive :math:`\mathbf{s}` (Gershgorin's
    theorem for :math:`\mathrm{diag}(\mathbf{s})^{-1}\mathbf{L}\,
    \mathrm{diag}(\mathbf{s})`). :math:`\mathbf{s} = \mathbf{1}` gives the
    row bound :math:`2 \max_i \sum_{j \ne i} \hat{A}_{ij}` (at most
    :math:`2` for :obj:`'rw'`); the vectors
    :math:`\mathbf{s} = (\mathbf{B} + \mathbf{I})^k \mathbf{1}` for
    :math:`k = 1, \ldots,` :obj:`iters` tighten it towards
    :math:`\rho(\mathbf{B})`, which equals :math:`\lambda_{\max}` on
    bipartite graphs and is close to it under :obj:`'sym'` and
    :obj:`None`. The minimum over :math:`k` is returned. Every operation
    has a static shape, so the bound traces under :func:`torch.compile`.
    With :obj:`stop_below` (eager only: one synchronisation per
    iteration), the tightening stops as soon as the bound is at most that
    value, which is all a stability check needs.
    """
    if num_nodes == 0:
        return lval.new_zeros(())
    b = lval.abs()
    s = lval.new_ones(num_nodes)
    # Rounding in the products must not push the bound below the truth.
    safety = 1.0 + 64 * torch.finfo(lval.dtype).eps
    best = None
    for _ in range(iters + 1):
        t = s.index_add(0, row, b * s[col])  # (B + I) s
        bound = (t / s).max() - 1.0
        best = bound if best is None else torch.minimum(best, bound)
        if stop_below is not None and float(best) * safety <= stop_below:
            break
        s = (t / t.max()).clamp_min(torch.finfo(lval.dtype).tiny)
    return best * safety


def lanczos_lambda_max(matrix: Tensor, steps: int = 60) -> float:
    r"""The largest Ritz value of the symmetric sparse :obj:`matrix` after
    :obj:`steps` Lanczos steps with full reorthogonalisation, from a fixed
    start vector (no global random state is consumed). It never exceeds
    :math:`\lambda_{\max}` and approaches it from below."""
    n = matrix.size(0)
    steps = min(steps, n)
    v = torch.sin(torch.arange(n, device=matrix.device,
                               dtype=torch.float64) + 1.0)
    v = v / v.norm()
    basis = v.new_empty(steps, n)
    alpha, beta = [], []
    scale = 0.0
    for k in range(steps):
        basis[k] = v
        w = (matrix @ v.view(-1, 1)).view(-1)
        alpha.append(float(w @ v))
        for _ in range(2):  # Twice is enough (Kahan).
            w = w - basis[:k + 1].t() @ (basis[:k + 1] @ w)
        b = float(w.norm())
        scale = max(scale, abs(alpha[-1]), b)
        if b <= 1e-12 * scale:  # Invariant subspace: exact eigenvalues.
            break
        beta.append(b)
        v = w / b
    m = len(alpha)
    T = torch.diag(torch.tensor(alpha, dtype=torch.float64))
    if m > 1:
        off = torch.tensor(beta[:m - 1], dtype=torch.float64)
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return float(torch.linalg.eigvalsh(T)[-1])


def power_iteration(matrix: Tensor, iters: int = 100) -> float:
    r"""The spectral radius of the sparse :obj:`matrix` by power iteration
    from a fixed, non-constant start vector."""
    n = matrix.size(0)
    v = torch.sin(torch.arange(n, device=matrix.device,
                               dtype=torch.float64) + 1.0).view(-1, 1)
    v = v / v.norm()
    lam = 0.0
    for _ in range(iters):
        u = matrix @ v
        nrm = float(u.norm())
        if nrm == 0.0:
            return 0.0
        lam = nrm
        v = u / nrm
    return lam


def estimate_lambda_max(op: 'DiffusionOperator', steps: int = 60) -> float:
    r"""Estimates :math:`\lambda_{\max}(\mathbf{L})` of :obj:`op` by Lanczos
    when :math:`\mathbf{L}` is symmetric, or similar to the symmetric
    :math:`\mathrm{diag}(\mathbf{s})\mathbf{L}\,\mathrm{diag}(\mathbf{s})^{-1}`
    for :obj:`op.sym_scale` :math:`\mathbf{s}` (:obj:`'rw'` on an undirected
    graph); else its spectral radius by :obj:`2 * steps` power
    iterations."""
    n = op.num_nodes
    if n == 0:
        return 0.0
    lval = op.lval.detach().double()
    if op.symmetric:
        return lanczos_lambda_max(op.csr(lval), steps)
    if op.sym_scale is not None and torch.equal(op.crow_t, op.crow) \
            and torch.equal(op.col_t, op.col):
        s = op.sym_scale.detach().double()
        row = torch.repeat_interleave(
            torch.arange(n, device=op.crow.device), op.crow.diff())
        sval = s[row] * lval / s[op.col]
        atol = 1e-9 * float(sval.abs().max())
        if torch.allclose(sval[op.perm_t], sval, rtol=1e-9, atol=atol):
            return lanczos_lambda_max(op.csr(sval), steps)
    return power_iteration(op.csr(lval), 2 * steps)


def warn_if_unstable(step_size: float, lambda_max: float, owner: str,
                     stacklevel: int = 2) -> bool:
    r"""Raises a :class:`RuntimeWarning` that names the safe bound
    :math:`2 / \lambda_{\max}` when :math:`\gamma\,\lambda_{\max} > 2`, on
    behalf of the layer named :obj:`owner`. Returns whether it warned."""
    if lambda_max > 0 and step_size * lambda_max > 2.0:
        warnings.warn(
            f"'{owner}' with step_size={step_size:g} is "
            f"unstable on this graph: the estimated largest eigenvalue "
            f"of L is {lambda_max:.4g}, so explicit Euler needs "
            f"step_size <= 2 / lambda_max = {2.0 / lambda_max:.4g}",
            RuntimeWarning, stacklevel=stacklevel + 1)
        return True
    return False


def check_stability(step_size: float, bound: float,
                    estimate: Callable[[], float], owner: str,
                    stacklevel: int = 2,
                    margin: Optional[float] = None) -> bool:
    r"""Warns (see :func:`warn_if_unstable`) when the step size may be
    unstable: nothing is computed when :math:`\gamma` times the upper
    :obj:`bound` is at most :math:`2`; otherwise :obj:`estimate()` gives
    :math:`\lambda_{\max}`, which is raised by the relative :obj:`margin`
    (default :obj:`STABILITY_MARGIN`) before the comparison. Returns
    whether it warned."""
    if not step_size * bound > 2.0:
        return False
    margin = STABILITY_MARGIN if margin is None else margin
    lam = estimate() * (1.0 + margin)
    return warn_if_unstable(step_size, lam, owner, stacklevel + 1)
