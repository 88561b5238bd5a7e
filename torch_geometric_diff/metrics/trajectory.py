from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

from .energy import dirichlet_energy
from .separation import distance_diameter_ratio


def trajectory_metrics(
    xs: Tensor,
    edge_index: Optional[Tensor] = None,
    edge_weight: Optional[Tensor] = None,
    y: Optional[Tensor] = None,
    q: Sequence[float] = (0.05, ),
    every: int = 1,
    normalization: Optional[str] = None,
) -> Dict[str, List[float]]:
    r"""Separation and smoothness of every state of a diffusion trajectory.

    For every recorded step :math:`t` (every :obj:`every`-th one, the last
    one always included) the returned lists hold

    * ``"step"``: :math:`t`;
    * ``"energy"``: :func:`dirichlet_energy` of :math:`\mathbf{X}_t` on
      :obj:`(edge_index, edge_weight)`;
    * ``"rayleigh"``: the energy divided by
      :math:`\|\mathbf{X}_t - \bar{\mathbf{X}}_t\|_F^2`, a scale-free
      measure (diffusion also shrinks the point cloud as a whole);
    * ``"ratio"``: :func:`distance_diameter_ratio` with respect to :obj:`y`,
      and ``"ratio_q{q}"`` for every robust level in :obj:`q`;
    * ``"min_distance"`` and ``"max_diameter"``: the two parts of the
      min/max ratio.

    Args:
        xs (torch.Tensor): The states :math:`[K + 1, N, F]`, e.g. from
            :obj:`DiffConv(..., return_all=True)`.
        edge_index (torch.Tensor, optional): Graph for the energy; without
            it the energy keys are left out. (default: :obj:`None`)
        edge_weight (torch.Tensor, optional): Edge weights.
            (default: :obj:`None`)
        y (torch.Tensor, optional): Groups for the ratio; without it the
            ratio keys are left out. (default: :obj:`None`)
        q (Sequence[float], optional): Robust quantile levels.
            (default: :obj:`(0.05,)`)
        every (int, optional): Record every :obj:`every`-th step.
            (default: :obj:`1`)
        normalization (str, optional): Passed to :func:`dirichlet_energy`.
            (default: :obj:`None`)
    """
    if xs.dim() == 2:
        xs = xs.unsqueeze(-1)
    if xs.dim() != 3:
        raise ValueError(f"'xs' must have shape [num_steps + 1, N, F] "
                         f"(got {tuple(xs.shape)})")
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"'every' must be a positive integer (got {every!r})")
    steps = list(range(0, xs.size(0), every))
    if steps[-1] != xs.size(0) - 1:
        steps.append(xs.size(0) - 1)

    out: Dict[str, List[float]] = {'step': steps}
    with torch.no_grad():
        for t in steps:
            xt = xs[t]
            if edge_index is not None:
                e = float(dirichlet_energy(xt, edge_index, edge_weight,
                                           normalization=normalization))
                norm2 = float((xt - xt.mean(dim=0)).pow(2).sum())
                out.setdefault('energy', []).append(e)
                out.setdefault('rayleigh',
                               []).append(e / norm2 if norm2 > 0 else 0.0)
            if y is not None:
                r, l, d = distance_diameter_ratio(xt, y, return_parts=True)
                out.setdefault('ratio', []).append(r)
                out.setdefault('min_distance', []).append(l)
                out.setdefault('max_diameter', []).append(d)
                for level in q:
                    out.setdefault(f'ratio_q{level:g}', []).append(
                        distance_diameter_ratio(xt, y, q=level))
    return out


def diffusion_trajectory_metrics(
    conv: torch.nn.Module,
    x: Tensor,
    edge_index: Tensor,
    edge_weight: Optional[Tensor] = None,
    y: Optional[Tensor] = None,
    q: Sequence[float] = (0.05, ),
    every: int = 1,
    normalization: Optional[str] = None,
) -> Dict[str, List[float]]:
    r"""Runs :obj:`conv` (a :class:`~torch_geometric_diff.nn.DiffConv`) once
    with :obj:`return_all=True` in evaluation mode without gradients, and
    returns :func:`trajectory_metrics` of its :math:`K + 1` states. The energy
    is measured on :obj:`(edge_index, edge_weight)` as passed to the
    convolution.

    Example:
        >>> conv = DiffConv(step_size=1.0, num_steps=60, normalize=None)
        >>> m = diffusion_trajectory_metrics(conv, data.x, data.edge_index,
        ...                                  data.edge_weight, y=data.y)
        >>> m['ratio'][0], m['ratio'][-1]
    """
    was_training = conv.training
    conv.eval()
    try:
        with torch.no_grad():
            xs = conv(x, edge_index, edge_weight=edge_weight, return_all=True)
    finally:
        conv.train(was_training)
    return trajectory_metrics(xs, edge_index, edge_weight, y=y, q=q,
                              every=every, normalization=normalization)
