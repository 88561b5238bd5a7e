import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

_CHUNK_BUDGET = 2**24


def _auto_chunk(num_rows: int, num_cols: int,
                chunk_size: Optional[int]) -> int:
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_BUDGET // max(num_cols, 1))
    elif not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"'chunk_size' must be a positive integer or None "
                         f"(got {chunk_size!r})")
    return min(chunk_size, max(num_rows, 1))


def nearest_enemy_and_eccentricity(
    x: Tensor,
    y: Tensor,
    chunk_size: Optional[int] = None,
) -> Tuple[Tensor, Tensor]:
    r"""For every point :math:`i`, the distance to the nearest point of
    another group, :math:`l_i = \min_{j: y_j \neq y_i} \|x_i - x_j\|`, and the
    eccentricity inside its own group,
    :math:`e_i = \max_{j: y_j = y_i} \|x_i - x_j\|`.

    Computed in row blocks of :obj:`chunk_size` (:math:`O(\textrm{chunk}
    \cdot N)` memory). The arg-min/arg-max is found with
    :meth:`torch.cdist`; the returned distances are recomputed exactly.

    Returns:
        (l, e): two tensors of shape :math:`[N]`. :math:`l_i = \infty` when
        only one group exists; :math:`e_i = 0` for a singleton group.

    Raises:
        ValueError: If :obj:`x` holds NaN or infinite values.
    """
    x, y = _check_xy(x, y)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("'x' holds NaN or infinite values")
    N = x.size(0)
    chunk_size = _auto_chunk(N, N, chunk_size)
    enemy = torch.empty(N, dtype=x.dtype, device=x.device)
    ecc = torch.empty(N, dtype=x.dtype, device=x.device)
    for start in range(0, N, chunk_size):
        end = min(start + chunk_size, N)
        xc = x[start:end]
        d = torch.cdist(xc, x)
        same = y[start:end].view(-1, 1) == y.view(1, -1)
        j_min = d.masked_fill(same, float('inf')).argmin(dim=1)
        j_max = d.masked_fill(~same, float('-inf')).argmax(dim=1)
        has_enemy = (~same).any(dim=1)
        del d, same
        enemy[start:end] = torch.where(
            has_enemy, (xc - x[j_min]).norm(dim=-1),
            torch.full_like(xc[:, 0], float('inf')))
        ecc[start:end] = (xc - x[j_max]).norm(dim=-1)
    return enemy, ecc


def _check_xy(x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
    if not isinstance(x, Tensor) or x.layout != torch.strided:
        raise TypeError(f"'x' must be a dense tensor (got "
                        f"{getattr(x, 'layout', type(x).__name__)})")
    if x.dim() != 2:
        raise ValueError(f"'x' must be a [num_points, num_features] matrix "
                         f"(got shape {tuple(x.shape)})")
    if not isinstance(y, Tensor) or y.is_floating_point() \
            or y.is_complex():
        raise TypeError(f"'y' must be an integer tensor of groups (got "
                        f"{getattr(y, 'dtype', type(y).__name__)})")
    if y.dim() != 1 or y.numel() != x.size(0):
        raise ValueError(f"'y' must have shape [{x.size(0)}] "
                         f"(got {tuple(y.shape)})")
    if not x.is_floating_point():
        x = x.float()
    return x, y.to(x.device)


def _robust_parts(x: Tensor, y: Tensor, groups: Tensor, q: float,
                  chunk_size: Optional[int]) -> Tuple[float, float]:
    # Streams over unordered pairs (i < j), keeping the k smallest
    # inter-group and, per group, the k_c largest intra-group distances.
    N = x.size(0)
    counts = torch.stack([(y == c).sum() for c in groups]).double()
    n_inter = (float(N) * (N - 1) / 2 - float((counts *
                                               (counts - 1) / 2).sum()))
    k_inter = max(1, math.ceil(q * n_inter))
    k_intra = [max(1, math.ceil(q * float(m * (m - 1) / 2))) for m in counts]
    low = x.new_empty(0)
    high = [x.new_empty(0) for _ in groups]
    chunk_size = _auto_chunk(N, N, chunk_size)
    cols = torch.arange(N, device=x.device)
    for start in range(0, N, chunk_size):
        end = min(start + chunk_size, N)
        d = torch.cdist(x[start:end], x)
        upper = cols.view(1, -1) > torch.arange(start, end,
                                                device=x.device).view(-1, 1)
        yc = y[start:end].view(-1, 1)
        same = yc == y.view(1, -1)
        low = torch.cat([low, d[upper & ~same]])
        low = low.topk(min(k_inter, low.numel()), largest=False).values
        for g, c in enumerate(groups):
            vals = torch.cat([high[g], d[upper & same & (yc == c)]])
            high[g] = vals.topk(min(k_intra[g], vals.numel())).values
        del d, upper, same
    l = float(low.max()) if low.numel() == k_inter else float('nan')
    d = max((float(h.min()) if h.numel() == k else 0.0)
            for h, k in zip(high, k_intra))
    return l, d


def distance_diameter_ratio(
    x: Tensor,
    y: Tensor,
    q: float = 0.0,
    chunk_size: Optional[int] = None,
    return_parts: bool = False,
) -> Union[float, Tuple[float, float, float]]:
    r"""The distance-diameter ratio of the Diff-ResNet paper
    `"Diffusion Mechanism in Residual Neural Network: Theory and Applications"
    <https://arxiv.org/abs/2105.03155>`_: the smallest distance between
    points of different groups (classes or clusters) divided by the largest
    diameter of a group,

    .. math::
        \frac{l}{d}, \qquad
        l = \min_{y_i \neq y_j} \|\mathbf{x}_i - \mathbf{x}_j\|, \qquad
        d = \max_c \max_{y_i = y_j = c} \|\mathbf{x}_i - \mathbf{x}_j\|.

    A larger ratio means better separated, more compact groups. Both terms
    are set by single points, so the ratio is dominated by outliers. With
    :obj:`q > 0` the robust percentile variant is returned: :math:`l_q` is
    the :math:`\lceil q\, n_{\neq} \rceil`-th smallest of the
    :math:`n_{\neq}` inter-group pair distances and :math:`d_q` is the
    largest, over groups :math:`c`, of the :math:`\lceil q\, n_c
    \rceil`-th largest of the :math:`n_c` intra-group pair distances of
    :math:`c` (unordered pairs :math:`i < j`; nearest-rank percentiles). So
    a fraction :obj:`q` of the closest inter-group pairs and of the widest
    intra-group pairs is ignored; :obj:`q=0` is the exact definition.

    The exact ratio needs :math:`O(\textrm{chunk} \cdot N)` memory (row
    blocks of pairwise distances, the arg-min/arg-max pairs recomputed
    exactly); the robust one keeps the :math:`\approx q N^2 / 2` extreme
    pair distances as well, so use small :obj:`q` (e.g. :obj:`0.01`) for
    large :math:`N`.

    Args:
        x (torch.Tensor): Points :math:`[N, F]`.
        y (torch.Tensor): Group of every point :math:`[N]` (class labels, or
            cluster ids, e.g. the four discs of XOR).
        q (float, optional): Percentile level in :math:`[0, 0.5)`.
            (default: :obj:`0.0`)
        chunk_size (int, optional): Rows per distance block; :obj:`None`
            picks blocks of at most :math:`2^{24}` entries.
            (default: :obj:`None`)
        return_parts (bool, optional): If :obj:`True`, returns
            :obj:`(ratio, l, d)`. (default: :obj:`False`)

    Returns:
        The ratio (and its parts), all NaN if :obj:`x` holds a NaN or an
        infinite value (a diverged diffusion state).
    """
    if not 0.0 <= q < 0.5:
        raise ValueError(f"'q' must lie in [0, 0.5) (got {q!r})")
    x, y = _check_xy(x, y)
    groups = torch.unique(y)
    if groups.numel() < 2:
        raise ValueError("'y' must contain at least two groups")
    if not bool(torch.isfinite(x).all()):  # A diverged state.
        nan = float('nan')
        return (nan, nan, nan) if return_parts else nan
    if q == 0.0:
        enemy, ecc = nearest_enemy_and_eccentricity(x, y, chunk_size)
        l, d = float(enemy.min()), float(ecc.max())
    else:
        l, d = _robust_parts(x, y, groups, q, chunk_size)
    ratio = l / d if d > 0 else float('inf')
    return (ratio, l, d) if return_parts else ratio
