r"""From a graph to the diffusion operator
:math:`\mathbf{M} = \mathbf{I} - \gamma\mathbf{L}`.

:func:`graph_entries` validates a graph given as :obj:`edge_index` (with
optional weights) or as a sparse adjacency and returns its entries;
:func:`build_operator` turns them into a :class:`DiffusionOperator`, which
holds the identity and the Laplacian
:math:`\mathbf{L} = \mathrm{diag}(\hat{\mathbf{A}}\mathbf{1}) -
\hat{\mathbf{A}}` on one sparsity pattern; :func:`operator_values` is the
one place where the values of :math:`\mathbf{M}` are assembled from them.
"""
import numbers
import warnings
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from torch_geometric.typing import Adj, OptTensor, SparseTensor
from torch_geometric.utils import is_sparse, is_torch_sparse_tensor

from torch_geometric_diff.nn.diffusion.dropout import dropout_scale
from torch_geometric_diff.nn.diffusion.spectrum import (
    estimate_lambda_max,
    lambda_max_bound,
)

__all__ = [
    'accumulation_dtype',
    'DiffusionOperator',
    'EdgeOperator',
    'build_operator',
    'coalesce_csr',
    'edge_operator',
    'graph_entries',
    'operator_values',
]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    r"""The dtype in which the operator is built and the steps run for node
    features of :obj:`dtype`: :obj:`torch.float32` for half precision
    (:obj:`float16`, :obj:`bfloat16`), else :obj:`dtype` itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) \
        else dtype


def operator_values(ival: Tensor, lval: Tensor, gamma: Tensor,
                    dropout: float = 0.0) -> Tensor:
    r"""The values of :math:`\mathbf{M} = \mathbf{I} - \gamma\mathbf{L}`,
    ``ival - gamma * lval`` on the pattern of :obj:`ival` and :obj:`lval`,
    times :math:`1 / (1 - p)` for :obj:`dropout` :math:`p > 0`, so that one
    product applies a step of inverted dropout's scaling too.
    Differentiable in all three tensors."""
    vals = ival - gamma.to(lval.dtype) * lval
    return vals * dropout_scale(dropout) if dropout > 0 else vals


@dataclass
class DiffusionOperator:
    r"""The graph part of :math:`\mathbf{M} = \mathbf{I} - \gamma\mathbf{L}`.

    Two forms of the same matrix are kept. The CSR form drives the fused
    engine. The edge-list form (loop-free input edges in input order, then
    one diagonal entry per node, as PyG's explain machinery expects) drives
    :meth:`~torch_geometric.nn.conv.MessagePassing.propagate` when gradients
    must reach the edge weights.

    The values of :math:`\mathbf{M}` are ``ival - gamma * lval`` (see
    :func:`operator_values`), where ``ival`` is the identity and ``lval`` the
    Laplacian on the same pattern.
    """
    num_nodes: int
    # Edge-list form: edge_index[0] = source j, edge_index[1] = target i.
    edge_index: Tensor
    edge_ival: Tensor
    edge_lval: Tensor
    # CSR form of M (rows = targets), coalesced.
    crow: Tensor
    col: Tensor
    ival: Tensor
    lval: Tensor
    # CSR form of M^T as a permutation of the values, or None if symmetric.
    crow_t: Optional[Tensor]
    col_t: Optional[Tensor]
    perm_t: Optional[Tensor]
    # Upper bound on the spectral radius of L (see spectrum.py).
    lambda_bound: float
    # Positive s with diag(s) L diag(s)^-1 symmetric on undirected graphs:
    # the square roots of the degrees for 'rw', else None.
    sym_scale: Optional[Tensor] = None
    _lambda_max: Optional[float] = None

    @property
    def symmetric(self) -> bool:
        return self.perm_t is None

    @property
    def lambda_max(self) -> float:
        r"""An estimate of :math:`\lambda_{\max}(\mathbf{L})` from below,
        by Lanczos (see :func:`~.spectrum.estimate_lambda_max`), computed on
        first access."""
        if self._lambda_max is None:
            self._lambda_max = estimate_lambda_max(self)
        return self._lambda_max

    def csr(self, values: Tensor, transpose: bool = False) -> Tensor:
        r"""A :obj:`torch.sparse_csr` matrix with this pattern."""
        n = self.num_nodes
        if transpose and self.perm_t is not None:
            return _csr(self.crow_t, self.col_t, values[self.perm_t], n)
        return _csr(self.crow, self.col, values, n)

    def matrix(self, gamma: Tensor, dropout: float = 0.0,
               dtype: Optional[torch.dtype] = None) -> Tensor:
        r""":math:`\mathbf{M}` (times :math:`1 / (1 - p)`) as a
        :obj:`torch.sparse_csr` matrix of :obj:`dtype`."""
        dtype = dtype or self.lval.dtype
        return self.csr(
            operator_values(self.ival.to(dtype), self.lval.to(dtype), gamma,
                            dropout))

    def edge_values(self, gamma: Tensor, dropout: float = 0.0,
                    dtype: Optional[torch.dtype] = None) -> Tensor:
        r"""The values of :math:`\mathbf{M}` (times :math:`1 / (1 - p)`) on
        :obj:`edge_index`, differentiable in the edge weights."""
        dtype = dtype or self.edge_lval.dtype
        return operator_values(self.edge_ival.to(dtype),
                               self.edge_lval.to(dtype), gamma, dropout)


def _csr(crow: Tensor, col: Tensor, values: Tensor, n: int) -> Tensor:
    return torch.sparse_csr_tensor(crow, col, values, (n, n),
                                   check_invariants=False)


def _silence_csr_notices() -> None:
    # PyTorch prints its "sparse CSR is in beta" and "invariant checks are
    # disabled" notices once per process; spend them here, silently.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        _csr(torch.zeros(2, dtype=torch.long),
             torch.zeros(1, dtype=torch.long), torch.ones(1), 1)


_silence_csr_notices()


def compress_rows(row: Tensor, n: int) -> Tensor:
    r"""The CSR row pointer of the sorted row indices :obj:`row`."""
    crow = row.new_zeros(n + 1)
    torch.cumsum(torch.bincount(row, minlength=n), 0, out=crow[1:])
    return crow


class EdgeOperator(NamedTuple):
    r"""The entries of :math:`\mathbf{I}` and :math:`\mathbf{L}` on a
    static pattern: the :math:`|\mathcal{E}|` input entries in input order
    (self-loops among them carry zero), then one diagonal entry per node.
    Duplicates are not merged."""
    target: Tensor
    source: Tensor
    ival: Tensor
    lval: Tensor
    sym_scale: Optional[Tensor]


def edge_operator(row: Tensor, col: Tensor, weight: Tensor, num_nodes: int,
                  normalize: Optional[str] = 'sym',
                  add_self_loops: bool = True) -> EdgeOperator:
    r"""Normalizes the entries :math:`A_{ij}` = ``weight`` at (``row`` =
    target :math:`i`, ``col`` = source :math:`j`) and returns
    :math:`\mathbf{I}` and :math:`\mathbf{L} = \mathrm{diag}(\hat{\mathbf{A}}
    \mathbf{1}) - \hat{\mathbf{A}}` as an :class:`EdgeOperator`. Self-loops
    already in the input count towards :math:`A_{ii}`; with
    :obj:`add_self_loops`, one unit self-loop is added on top, as the paper's
    ``adj + I``. Every tensor has a shape fixed by :math:`|\mathcal{E}|` and
    :math:`N`, so this traces under :func:`torch.compile`; it is
    differentiable in ``weight``. For :obj:`'rw'`, :obj:`sym_scale` holds the
    square roots of the degrees (:obj:`1` where zero)."""
    n = num_nodes
    loop = (row == col).to(weight.dtype)
    w = weight * (1.0 - loop)  # Off-diagonal weights; loops carry zero.
    a_diag = weight.new_zeros(n).index_add(0, row, weight * loop)
    if add_self_loops and normalize is not None:
        a_diag = a_diag + 1.0

    sym_scale = None
    if normalize is None:
        a_off = w
    else:
        deg = a_diag.index_add(0, row, w)  # Row sums of A (+ I).
        if normalize == 'sym':
            dis = deg.pow(-0.5)
            dis = dis.masked_fill(torch.isinf(dis), 0.)
            a_off = (dis[row] * dis[col]) * w  # Exactly symmetric if w is.
            a_diag = dis * dis * a_diag
        elif normalize == 'rw':
            d = deg.detach()
            sym_scale = d.clamp_min(0).sqrt().masked_fill(d <= 0, 1.0)
            dinv = deg.reciprocal()
            dinv = dinv.masked_fill(torch.isinf(dinv), 0.)
            a_off = dinv[row] * w
            a_diag = dinv * a_diag
        else:
            raise ValueError(f"Unknown normalization '{normalize}'")
    d_hat = a_diag.index_add(0, row, a_off)  # \hat{A} 1

    nodes = torch.arange(n, device=row.device)
    return EdgeOperator(
        torch.cat([row, nodes]), torch.cat([col, nodes]),
        torch.cat([torch.zeros_like(w), w.new_ones(n)]),
        torch.cat([-a_off, d_hat - a_diag]), sym_scale)


@torch.no_grad()
def coalesce_csr(target: Tensor, source: Tensor, ival: Tensor, lval: Tensor,
                 num_nodes: int, transpose: bool = True) -> Tuple[Tensor, ...]:
    r"""Sums duplicate entries into the CSR form of :math:`\mathbf{M}`
    (``crow``, ``col``, ``ival``, ``lval``) and returns with it the CSR
    pattern of :math:`\mathbf{M}^{\top}` as a permutation of the values
    (``crow_t``, ``col_t``, ``perm_t``), or three :obj:`None` if
    :math:`\mathbf{L}` is symmetric or :obj:`transpose` is :obj:`False`."""
    n = num_nodes
    key = target * n + source
    key, inv = torch.unique(key, sorted=True, return_inverse=True)
    ival = ival.new_zeros(key.numel()).index_add_(0, inv, ival.detach())
    lval = lval.new_zeros(key.numel()).index_add_(0, inv, lval.detach())
    crow_row, ccol = key // n, key % n
    crow = compress_rows(crow_row, n)
    if not transpose:
        return crow, ccol, ival, lval, None, None, None

    key_t = ccol * n + crow_row
    perm_t = torch.argsort(key_t)
    if torch.equal(key_t[perm_t], key) and torch.equal(lval[perm_t], lval):
        return crow, ccol, ival, lval, None, None, None
    return (crow, ccol, ival, lval, compress_rows(ccol[perm_t], n),
            crow_row[perm_t], perm_t)


def build_operator(row: Tensor, col: Tensor, weight: Tensor, num_nodes: int,
                   normalize: Optional[str] = 'sym',
                   add_self_loops: bool = True) -> DiffusionOperator:
    r"""Builds the :class:`DiffusionOperator` of the entries :math:`A_{ij}`
    = ``weight`` at (``row`` = target :math:`i`, ``col`` = source :math:`j`)
    (see :func:`edge_operator`): duplicate entries are summed into one CSR
    matrix. The construction is differentiable in ``weight`` through the
    edge-list form. The operator carries the cheap upper bound
    :func:`~torch_geometric_diff.nn.diffusion.spectrum.lambda_max_bound` on
    :math:`\lambda_{\max}(\mathbf{L})`; its Lanczos estimate
    :attr:`DiffusionOperator.lambda_max` is computed on demand.
    """
    n = num_nodes
    eo = edge_operator(row, col, weight, n, normalize, add_self_loops)
    # The edge-list form drops the input self-loops (zero there), as PyG's
    # explain machinery expects.
    keep = torch.cat([row != col, torch.ones(n, dtype=torch.bool,
                                             device=row.device)])
    edge_index = torch.stack([eo.source[keep], eo.target[keep]])
    edge_ival, edge_lval = eo.ival[keep], eo.lval[keep]
    crow, col_, ival, lval, crow_t, col_t, perm_t = coalesce_csr(
        eo.target, eo.source, eo.ival, eo.lval, n)
    bound = lambda_max_bound(eo.target, eo.source, eo.lval.detach(), n)
    return DiffusionOperator(n, edge_index, edge_ival, edge_lval, crow, col_,
                             ival, lval, crow_t, col_t, perm_t, float(bound),
                             eo.sym_scale)


# Graph input validation ######################################################


def check_number(name: str, value, integer: bool, ok, what: str):
    r"""Returns :obj:`value` as an :obj:`int` or :obj:`float` if it is a
    Python or numpy number (not :obj:`bool`) for which :obj:`ok(value)`
    holds, else raises :class:`ValueError` naming :obj:`name`."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) \
            or not ok(value):
        raise ValueError(f"'{name}' must be {what} (got {value!r})")
    return int(value) if integer else float(value)


def node_features(x, owner: str) -> Tensor:
    r"""Checks that :obj:`x` is a 2-D floating-point tensor of node features
    (a sparse one is made dense) on one node type; :obj:`owner` names the
    layer in the message."""
    if isinstance(x, (tuple, list)):
        raise ValueError(
            f"'{owner}' needs a square operator on one node type, so "
            f"bipartite input (x as a tuple, as to_hetero passes for an edge "
            f"type between two node types) is not supported; use it on edge "
            f"types within one node type")
    if not isinstance(x, Tensor) or x.dim() != 2 \
            or not x.is_floating_point():
        raise ValueError(f"'x' must be a 2-D floating-point tensor of node "
                         f"features (got {getattr(x, 'dtype', type(x))} of "
                         f"shape {tuple(getattr(x, 'shape', ()))})")
    return x.to_dense() if x.layout != torch.strided else x


def graph_entries(
    edge_index: Adj,
    num_nodes: int,
    edge_weight: OptTensor = None,
    dtype: torch.dtype = torch.float32,
    flow: str = 'source_to_target',
    validate: bool = True,
) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Returns the entries (row = target, col = source, weight) of the
    adjacency matrix given as :obj:`edge_index` (with optional
    :obj:`edge_weight`, else unit weights) or as a sparse :obj:`adj_t`
    (:class:`torch_sparse.SparseTensor` or :obj:`torch.sparse`), with the
    weights cast to :obj:`dtype` (differentiably). With
    :obj:`flow="target_to_source"`, :obj:`edge_index[0]` holds the targets,
    as in :class:`~torch_geometric.nn.conv.MessagePassing`; a sparse
    adjacency is always read as :obj:`adj_t` (rows are targets) and so
    rejected with that flow, as PyG does.

    Shapes and dtypes are always checked (this costs nothing). With
    :obj:`validate`, the values are checked too, node indices in
    :math:`[0, N)` and weights finite and non-negative, by one fused
    :math:`O(|\mathcal{E}|)` reduction and a single synchronisation (under
    :func:`torch.compile`, an asynchronous assertion instead).
    Raises :class:`ValueError` naming the argument on bad input."""
    if flow not in ('source_to_target', 'target_to_source'):
        raise ValueError(f"Unknown 'flow' {flow!r}")
    if edge_weight is not None and not isinstance(edge_weight, Tensor):
        raise TypeError(f"'edge_weight' must be a tensor or None (got "
                        f"{type(edge_weight).__name__})")
    for name, t in (('edge_index', edge_index), ('edge_weight', edge_weight)):
        if isinstance(t, Tensor) and t.device.type == 'meta':
            raise ValueError(f"'{name}' is on the meta device, which holds "
                             f"no values to diffuse over")
    if isinstance(edge_index, Tensor) and edge_weight is not None \
            and edge_weight.device != edge_index.device:
        raise ValueError(f"'edge_weight' is on {edge_weight.device} but "
                         f"'edge_index' on {edge_index.device}")
    if flow == 'target_to_source' and is_sparse(edge_index):
        raise ValueError("Flow direction 'target_to_source' is invalid for "
                         "a sparse adjacency, which is read as adj_t (rows "
                         "are targets); pass its transpose instead")
    if isinstance(edge_index, SparseTensor):
        if edge_weight is not None:
            raise ValueError("'edge_weight' must be None for a sparse "
                             "adjacency: the weights are its values")
        n_rows, n_cols = edge_index.sparse_sizes()
        _check_square(n_rows, n_cols, num_nodes)
        row, col, value = edge_index.coo()
        if value is None:
            value = torch.ones(row.numel(), device=row.device, dtype=dtype)
        _check_float(value, "The values of the sparse adjacency")
        if validate:
            _check_values(None, value, num_nodes,
                          "The values of the sparse adjacency")
        return row, col, value.to(dtype)

    if not isinstance(edge_index, Tensor):
        raise ValueError(f"'edge_index' must be a tensor or a SparseTensor "
                         f"(got {type(edge_index).__name__})")

    if is_torch_sparse_tensor(edge_index):
        if edge_weight is not None:
            raise ValueError("'edge_weight' must be None for a sparse "
                             "adjacency: the weights are its values")
        if edge_index.dim() != 2 or edge_index.dense_dim() != 0:
            raise ValueError(f"A sparse adjacency must be a 2-D matrix with "
                             f"scalar values (got shape "
                             f"{tuple(edge_index.shape)})")
        _check_square(edge_index.size(0), edge_index.size(1), num_nodes)
        adj = edge_index.to_sparse_coo().coalesce()
        row, col = adj.indices()
        value = adj.values()
        _check_float(value, "The values of the sparse adjacency")
        if validate:
            _check_values(None, value, num_nodes,
                          "The values of the sparse adjacency")
        return row, col, value.to(dtype)

    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, num_edges] "
                         f"(got {list(edge_index.shape)})")
    if edge_index.is_floating_point() or edge_index.is_complex() \
            or edge_index.dtype == torch.bool:
        raise ValueError(f"'edge_index' must hold integer node indices "
                         f"(got {edge_index.dtype})")
    edge_index = edge_index.long()
    num_edges = edge_index.size(1)
    if edge_weight is None:
        edge_weight = torch.ones(num_edges, device=edge_index.device,
                                 dtype=dtype)
    elif edge_weight.dim() != 1 or edge_weight.size(0) != num_edges:
        raise ValueError(f"'edge_weight' must have shape [{num_edges}] "
                         f"(one weight per edge), got "
                         f"{list(edge_weight.shape)}")
    _check_float(edge_weight, "'edge_weight'")
    if validate:
        _check_values(edge_index, edge_weight, num_nodes, "'edge_weight'")
    target, source = (1, 0) if flow == 'source_to_target' else (0, 1)
    return edge_index[target], edge_index[source], edge_weight.to(dtype)


def _check_float(weight: Tensor, what: str) -> None:
    if not weight.is_floating_point():
        raise ValueError(f"{what} must be floating point "
                         f"(got {weight.dtype})")


def _check_values(index: Optional[Tensor], weight: Tensor, num_nodes: int,
                  what: str) -> None:
    # One fused reduction and one synchronisation; details only on failure.
    checks = []
    if index is not None and index.numel() > 0:
        lo, hi = torch.aminmax(index)
        checks += [lo >= 0, hi < num_nodes]
    if weight.numel() > 0:
        w_lo, w_hi = torch.aminmax(weight.detach())
        checks += [w_lo >= 0, w_hi < float('inf')]  # False for NaN.
    if not checks:
        return
    ok = torch.stack(checks).all()
    if torch.compiler.is_compiling():
        torch._assert_async(
            ok, "invalid graph: node indices outside [0, num_nodes) or "
            "negative or non-finite edge weights")
    elif not bool(ok):
        _raise_value_error(index, weight.detach(), num_nodes, what)


def _raise_value_error(index: Optional[Tensor], w: Tensor, num_nodes: int,
                       what: str) -> None:
    if index is not None and index.numel() > 0:
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"'edge_index' holds node indices outside "
                             f"[0, {num_nodes}) (found range [{lo}, {hi}]); "
                             f"'x' has {num_nodes} rows")
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{what} holds non-finite values")
    raise ValueError(f"{what} holds negative values (min {float(w.min()):g}); "
                     f"diffusion needs non-negative weights")


def _check_square(n_rows: int, n_cols: int, num_nodes: int) -> None:
    if n_rows != n_cols:
        raise ValueError(f"The sparse adjacency must be square "
                         f"(got {n_rows} x {n_cols})")
    if n_rows != num_nodes:
        raise ValueError(f"The sparse adjacency has size {n_rows} x "
                         f"{n_cols} but 'x' has {num_nodes} rows")
