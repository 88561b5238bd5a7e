r"""The largest eigenvalue of :math:`\mathbf{L}` and the stability of
explicit Euler.

:math:`K` steps of :math:`\mathbf{X} \leftarrow (\mathbf{I} -
\gamma\mathbf{L})\mathbf{X}` stay bounded for symmetric :math:`\mathbf{L}`
iff :math:`\gamma\,\lambda_{\max}(\mathbf{L}) \le 2`.
"""
import warnings
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # operator.py imports this module.
    from torch_geometric_diff.nn.diffusion.operator import DiffusionOperator

__all__ = [
    'estimate_lambda_max',
    'warn_if_unstable',
]


def estimate_lambda_max(op: 'DiffusionOperator', iters: int = 50) -> float:
    r"""Estimates the spectral radius of :math:`\mathbf{L}` by power
    iteration from a fixed, non-constant start vector (no global random
    state is consumed). For symmetric :math:`\mathbf{L}` the estimate
    approaches :math:`\lambda_{\max}` from below."""
    if op.num_nodes == 0 or iters <= 0:
        return 0.0
    L = op.csr(op.lval.double())
    v = torch.sin(torch.arange(op.num_nodes, device=op.lval.device,
                               dtype=torch.float64) + 1.0).view(-1, 1)
    v = v / v.norm()
    lam = 0.0
    for _ in range(iters):
        u = L @ v
        nrm = float(u.norm())
        if nrm == 0.0:
            return 0.0
        lam = nrm
        v = u / nrm
    if op.symmetric:
        lam = max(lam, float((v * (L @ v)).sum()))
    return lam


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
