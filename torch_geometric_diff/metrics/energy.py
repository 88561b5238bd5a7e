from typing import Optional

import torch
from torch import Tensor
from torch_geometric.utils import scatter

_CHUNK_BUDGET = 2**24


def dirichlet_energy(
    x: Tensor,
    edge_index: Tensor,
    edge_weight: Optional[Tensor] = None,
    normalization: Optional[str] = None,
    chunk_size: Optional[int] = None,
) -> Tensor:
    r"""The Dirichlet energy of the node signal :math:`\mathbf{X}` on a
    weighted graph,

    .. math::
        E(\mathbf{X}) = \frac{1}{2} \sum_{(j, i) \in \mathcal{E}} w_{ji}
        \, \|\mathbf{x}_i - \mathbf{x}_j\|^2,

    summed over the edges as given (:obj:`edge_weight` defaults to one).
    The sum is taken in the floating type of :obj:`x` and
    :obj:`edge_weight` promoted together (the default float type for an
    integer signal with integer or no weights). A NaN in :obj:`x` or in an
    edge weight makes the energy NaN.
    When every edge is stored in both directions with the same weight (an
    undirected graph), this is :math:`\sum_{\{i, j\}} w_{ij} \|x_i - x_j\|^2
    = \mathrm{tr}(\mathbf{X}^{\top} \mathbf{L} \mathbf{X})` with
    :math:`\mathbf{L} = \mathbf{D} - \mathbf{W}`. Self-loops contribute
    nothing.

    With :obj:`normalization="sym"` the signal is first scaled by the
    weighted in-degree :math:`d_i = \sum_{(j, i)} w_{ji}`,

    .. math::
        E_{\mathrm{sym}}(\mathbf{X}) = \frac{1}{2} \sum_{(j, i) \in
        \mathcal{E}} w_{ji} \left\| \frac{\mathbf{x}_i}{\sqrt{d_i}} -
        \frac{\mathbf{x}_j}{\sqrt{d_j}} \right\|^2
        = \mathrm{tr}(\mathbf{X}^{\top} (\mathbf{I} - \mathbf{D}^{-1/2}
        \mathbf{W} \mathbf{D}^{-1/2}) \mathbf{X})

    (the last form for undirected graphs without isolated nodes). The sum is
    taken over blocks of :obj:`chunk_size` edges, so memory stays
    :math:`O(\textrm{chunk} \cdot F)`.

    Args:
        x (torch.Tensor): Node features :math:`[N, F]` (or :math:`[N]`).
        edge_index (torch.Tensor): Edges :math:`[2, E]`
            (source, target).
        edge_weight (torch.Tensor, optional): Edge weights :math:`[E]`.
            (default: :obj:`None`)
        normalization (str, optional): :obj:`None` or :obj:`"sym"`.
            (default: :obj:`None`)
        chunk_size (int, optional): Edges per block; :obj:`None` picks
            blocks of at most :math:`2^{24}` entries. (default: :obj:`None`)

    Returns:
        A scalar tensor (differentiable with respect to :obj:`x`).
    """
    if normalization not in (None, 'sym'):
        raise ValueError(f"'normalization' must be None or 'sym' "
                         f"(got {normalization!r})")
    if not isinstance(x, Tensor):
        raise TypeError(f"'x' must be a tensor (got {type(x).__name__})")
    if x.dim() == 1:
        x = x.view(-1, 1)
    if x.dim() != 2:
        raise ValueError(f"'x' must be a [num_nodes, num_features] matrix "
                         f"(got shape {tuple(x.shape)})")
    if not isinstance(edge_index, Tensor) or edge_index.dtype not in (
            torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"'edge_index' must be an integer tensor (got "
                        f"{getattr(edge_index, 'dtype', type(edge_index))})")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, num_edges] "
                         f"(got {tuple(edge_index.shape)})")
    edge_index = edge_index.long()
    N, E = x.size(0), edge_index.size(1)
    if E > 0 and int(edge_index.min()) < 0:
        raise ValueError(f"'edge_index' holds a negative node index "
                         f"({int(edge_index.min())})")
    if E > 0 and int(edge_index.max()) >= N:
        raise ValueError(f"'edge_index' refers to node "
                         f"{int(edge_index.max())} but 'x' has {N} rows")
    if edge_weight is not None and not isinstance(edge_weight, Tensor):
        raise TypeError(f"'edge_weight' must be a tensor or None (got "
                        f"{type(edge_weight).__name__})")
    # The arithmetic runs in a floating type that holds both operands, so
    # an integer signal keeps fractional weights.
    dtype = x.dtype if edge_weight is None else torch.promote_types(
        x.dtype, edge_weight.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    x = x.to(dtype)
    if edge_weight is None:
        edge_weight = x.new_ones(E)
    elif edge_weight.numel() != E:
        raise ValueError(f"'edge_weight' must have {E} entries "
                         f"(got {edge_weight.numel()})")
    edge_weight = edge_weight.view(-1).to(dtype)

    if normalization == 'sym':
        deg = scatter(edge_weight, edge_index[1], dim=0, dim_size=N,
                      reduce='sum')
        deg_inv_sqrt = deg.pow(-0.5).masked_fill(deg <= 0, 0.0)
        x = x * deg_inv_sqrt.view(-1, 1)

    if chunk_size is None:
        chunk_size = max(1, _CHUNK_BUDGET // max(x.size(1), 1))
    elif not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"'chunk_size' must be a positive integer or None "
                         f"(got {chunk_size!r})")

    out = x.new_zeros(())
    for start in range(0, E, chunk_size):
        src = edge_index[0, start:start + chunk_size]
        dst = edge_index[1, start:start + chunk_size]
        w = edge_weight[start:start + chunk_size]
        out = out + (w * (x[dst] - x[src]).pow(2).sum(dim=-1)).sum()
    return 0.5 * out
