r"""The diffusion engine behind :class:`~torch_geometric_diff.nn.DiffConv`.

The operator of :math:`K` explicit Euler steps with per-step dropout is

.. math::
    \mathbf{X}^{(k)} = \mathbf{M}\,\big(\mathbf{m}^{(k)} \odot
    \mathbf{X}^{(k-1)}\big) / (1 - p), \qquad
    \mathbf{M} = \mathbf{I} - \gamma \mathbf{L},

with :math:`\mathbf{L} = \mathrm{diag}(\hat{\mathbf{A}}\mathbf{1}) -
\hat{\mathbf{A}}`. The engine keeps :math:`\mathbf{M}` as one CSR matrix with
its diagonal folded in, so that every step is a single sparse-dense product.

* :func:`diffuse` is a :func:`torch.library.custom_op` with its own autograd
  formula: the backward pass runs :math:`\mathbf{M}^{\top}` (which is
  :math:`\mathbf{M}` itself for symmetric operators) and saves no per-step
  activation. Dropout masks are regenerated in the backward pass from a
  counter-based random number generator, so peak memory does not grow with
  :math:`K`. Being a custom op, it is opaque to :func:`torch.compile`, which
  does not support sparse tensors itself.
* :func:`dropout_mask` is that generator: SplitMix64 over the element index,
  keyed by a seed and the step. It draws only as many random bits per element
  as the dropout probability needs (8, 16 or 32), is reproducible on every
  device, and costs a fraction of :func:`torch.nn.functional.dropout`.
"""
import math
import warnings
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from torch_geometric_diff.nn.cpu_kernels import cpu_kernels

__all__ = [
    'DiffusionOperator',
    'build_operator',
    'dropout_mask',
    'mask_bits',
    'diffuse',
    'diffuse_reference',
    'estimate_lambda_max',
]


@dataclass
class DiffusionOperator:
    r"""The graph part of :math:`\mathbf{M} = \mathbf{I} - \gamma\mathbf{L}`.

    Two forms of the same matrix are kept. The CSR form drives the fused
    engine. The edge-list form (loop-free input edges in input order, then
    one diagonal entry per node, as PyG's explain machinery expects) drives
    :meth:`~torch_geometric.nn.conv.MessagePassing.propagate` when gradients
    must reach the edge weights.

    The values of :math:`\mathbf{M}` are ``ival - gamma * lval``, where
    ``ival`` is the identity and ``lval`` the Laplacian on the same pattern.
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
    lambda_max: float

    @property
    def symmetric(self) -> bool:
        return self.perm_t is None

    def csr(self, values: Tensor, transpose: bool = False) -> Tensor:
        r"""A :obj:`torch.sparse_csr` matrix with this pattern."""
        n = self.num_nodes
        if transpose and self.perm_t is not None:
            return _csr(self.crow_t, self.col_t, values[self.perm_t], n)
        return _csr(self.crow, self.col, values, n)


def _csr(crow: Tensor, col: Tensor, values: Tensor, n: int) -> Tensor:
    return torch.sparse_csr_tensor(crow, col, values, (n, n),
                                   check_invariants=False)


def _silence_csr_notices() -> None:
    # PyTorch prints its "sparse CSR is in beta" and "invariant checks are
    # disabled" notices once per process; spend them here, silently, instead
    # of in every benchmark log.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        _csr(torch.zeros(2, dtype=torch.long), torch.zeros(1, dtype=torch.long),
             torch.ones(1), 1)


_silence_csr_notices()


def _compress(row: Tensor, n: int) -> Tensor:
    crow = row.new_zeros(n + 1)
    torch.cumsum(torch.bincount(row, minlength=n), 0, out=crow[1:])
    return crow


def build_operator(row: Tensor, col: Tensor, weight: Tensor, num_nodes: int,
                   normalize: Optional[str] = 'sym',
                   add_self_loops: bool = True,
                   lambda_iters: int = 50) -> DiffusionOperator:
    r"""Builds :math:`\hat{\mathbf{A}}` and :math:`\mathbf{L}` from the
    entries :math:`A_{ij}` = ``weight`` at (``row`` = target :math:`i`,
    ``col`` = source :math:`j`). Duplicate entries are summed and self-loops
    already in the input count towards :math:`A_{ii}`; with
    :obj:`add_self_loops`, one unit self-loop is added on top, as the paper's
    ``adj + I``. The construction is differentiable in ``weight``.
    """
    n = num_nodes
    loop = row == col
    off = ~loop
    r, c, w = row[off], col[off], weight[off]
    a_diag = weight.new_zeros(n).index_add(0, row[loop], weight[loop])
    if add_self_loops and normalize is not None:
        a_diag = a_diag + 1.0

    if normalize is None:
        a_off = w
    else:
        deg = a_diag.index_add(0, r, w)  # Row sums of A (+ I).
        if normalize == 'sym':
            dis = deg.pow(-0.5)
            dis = dis.masked_fill(torch.isinf(dis), 0.)
            a_off = (dis[r] * dis[c]) * w  # Exactly symmetric if w is.
            a_diag = dis * dis * a_diag
        elif normalize == 'rw':
            dinv = deg.reciprocal()
            dinv = dinv.masked_fill(torch.isinf(dinv), 0.)
            a_off = dinv[r] * w
            a_diag = dinv * a_diag
        else:
            raise ValueError(f"Unknown normalization '{normalize}'")
    d_hat = a_diag.index_add(0, r, a_off)  # \hat{A} 1

    nodes = torch.arange(n, device=row.device)
    edge_index = torch.stack([torch.cat([c, nodes]), torch.cat([r, nodes])])
    edge_ival = torch.cat([w.new_zeros(r.numel()), w.new_ones(n)])
    edge_lval = torch.cat([-a_off, d_hat - a_diag])

    # Coalesce into CSR; all diagonal entries stay in the pattern.
    with torch.no_grad():
        key = edge_index[1] * n + edge_index[0]
        key, inv = torch.unique(key, sorted=True, return_inverse=True)
        ival = edge_ival.new_zeros(key.numel()).index_add_(
            0, inv, edge_ival.detach())
        lval = edge_lval.new_zeros(key.numel()).index_add_(
            0, inv, edge_lval.detach())
        crow_row, ccol = key // n, key % n
        crow = _compress(crow_row, n)

        key_t = ccol * n + crow_row
        perm_t = torch.argsort(key_t)
        crow_t = col_t = None
        if not (torch.equal(key_t[perm_t], key)
                and torch.equal(lval[perm_t], lval)):
            crow_t = _compress(ccol[perm_t], n)
            col_t = crow_row[perm_t]
        else:
            perm_t = None
        op = DiffusionOperator(n, edge_index, edge_ival, edge_lval, crow, ccol,
                               ival, lval, crow_t, col_t, perm_t, 0.0)
        op.lambda_max = estimate_lambda_max(op, lambda_iters)
    return op


def estimate_lambda_max(op: DiffusionOperator, iters: int = 50) -> float:
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


# Counter-based dropout masks #################################################

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64
_C1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_C2 = -7723592293110705685  # 0x94D049BB133111EB
_MASKS = {s: (1 << (64 - s)) - 1 for s in (27, 30, 31)}


def _mix(z: Tensor) -> Tensor:
    # SplitMix64 finalizer with logical shifts on int64 (wrapping multiply).
    z = z ^ ((z >> 30) & _MASKS[30])
    z = z * _C1
    z = z ^ ((z >> 27) & _MASKS[27])
    z = z * _C2
    return z ^ ((z >> 31) & _MASKS[31])


def _mix_int(z: int) -> int:
    m64 = (1 << 64) - 1
    z &= m64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m64
    z ^= z >> 31
    return z - (1 << 64) if z >= (1 << 63) else z


def mask_bits(p: float) -> int:
    r"""The random bits drawn per element: the fewest of 8, 16 or 32 with
    which :math:`p \, 2^{b}` is an even integer, so that the mask is exactly
    Bernoulli(:math:`1 - p`); else 32, and the keep probability is within
    :math:`2^{-32}` of :math:`1 - p` (:func:`torch.rand` itself has 24
    bits)."""
    for bits in (8, 16):
        if float(p * (1 << (bits - 1))).is_integer():
            return bits
    return 32


_COUNTER_CACHE: Dict[Tuple[int, torch.device], Tensor] = {}


def _counters(words: int, device: torch.device) -> Tensor:
    key = (words, device)
    out = _COUNTER_CACHE.get(key)
    if out is None:
        if len(_COUNTER_CACHE) >= 4:
            _COUNTER_CACHE.clear()
        out = torch.arange(words, device=device, dtype=torch.int64) * _GOLDEN
        _COUNTER_CACHE[key] = out
    return out


_VIEW = {8: torch.int8, 16: torch.int16, 32: torch.int32}


def dropout_mask(seed: int, step: int, shape: Tuple[int, ...], p: float,
                 device: torch.device, dtype: torch.dtype = torch.float32,
                 out: Optional[Tensor] = None) -> Tensor:
    r"""The keep mask (``1`` with probability :math:`1 - p`, else ``0``) of
    diffusion step ``step``, as a :obj:`dtype` tensor of :obj:`shape`.

    Element :math:`e` takes :math:`b` = :func:`mask_bits` bits of the
    SplitMix64 stream :math:`\mathrm{mix}(s_k + \lfloor e b / 64 \rfloor
    \cdot \phi)` with :math:`s_k = \mathrm{mix}(\mathrm{seed} \oplus
    \mathrm{mix}(k))`; it is kept iff those bits, read as a signed integer,
    are at least :math:`t = -2^{b-1} + p \, 2^b`. On CUDA, the
    mask is one :meth:`~torch.Tensor.bernoulli_` launch of a Philox generator
    seeded with :math:`s_k`, which is cheaper there than eleven integer
    kernels. The same ``(seed, step)`` gives the same mask on the same kind
    of device. With :obj:`out`, the mask is written there.
    """
    s_k = _mix_int(seed ^ _mix_int(step + 1))
    if device.type == 'cuda':  # One Philox launch per mask.
        gen = torch.Generator(device=device)
        gen.manual_seed(s_k & ((1 << 63) - 1))
        if out is None:
            out = torch.empty(shape, device=device, dtype=dtype)
        return out.bernoulli_(1.0 - p, generator=gen)
    numel = math.prod(shape)
    bits = mask_bits(p)
    words = (numel * bits + 63) // 64
    v = _mix(_counters(words, device) + s_k).view(_VIEW[bits])[:numel]
    keep = _keep(v, p, bits).view(shape)
    return keep.to(dtype) if out is None else out.copy_(keep)


def _threshold(p: float, bits: int) -> int:
    # t = -2^(b-1) + p 2^b, rounded to an even integer as in _keep.
    return 2 * (-(1 << (bits - 2)) + round(p * (1 << (bits - 1))))


def _keep(v: Tensor, p: float, bits: int) -> Tensor:
    r"""Maps uniform signed :obj:`bits`-bit integers :obj:`v` to ``1`` where
    :math:`v \geq t = -2^{b-1} + p \, 2^b` and ``0`` elsewhere, in place.
    As :math:`t` is even, :math:`v \geq t` iff :math:`(v \gg 1) - t/2 \geq 0`,
    which cannot overflow: four cheap integer ops instead of a comparison
    that produces :obj:`bool`."""
    half_t = _threshold(p, bits) // 2
    v >>= 1
    v -= half_t
    v >>= bits - 1
    v += 1
    return v


def draw_seed() -> Tensor:
    r"""One dropout seed from PyTorch's global generator (so
    :func:`torch.manual_seed` makes runs reproducible)."""
    return torch.randint(0, 2**62, (1, ), dtype=torch.int64)


# The fused custom op ##########################################################


def _values(ival: Tensor, lval: Tensor, gamma: Tensor, scale: float) -> Tensor:
    vals = ival - gamma.to(lval.dtype) * lval
    return vals * scale if scale != 1.0 else vals


def _apply_steps(h: Tensor, M: Tensor, steps, p: float, seed: int,
                 transpose: bool = False) -> Tensor:
    r"""Runs ``h <- M (m_k * h)`` over :obj:`steps` (or, with
    :obj:`transpose`, ``h <- m_k * (M h)``, the backward recursion), writing
    into two ping-pong buffers and one mask buffer: no allocation per step,
    and the input :obj:`h` is never written. On CPU, the C++ kernels of
    :mod:`~torch_geometric_diff.nn.cpu_kernels` do the same in one pass per
    step when they are available. On CUDA the products allocate
    from the caching allocator instead, since cuSPARSE would first scale an
    ``out=`` tensor by zero: two extra kernels per step."""
    steps = list(steps)
    if h.device.type == 'cpu' and steps and M.crow_indices().dtype == \
            torch.int64 and h.dtype in (torch.float32, torch.float64):
        ext = cpu_kernels()
        if ext is not None:
            bits = mask_bits(p) if p > 0 else 8
            return ext.diffuse_steps(h.contiguous(), M.crow_indices(),
                                     M.col_indices(), M.values(), steps,
                                     transpose, p, bits,
                                     _threshold(p, bits), seed)
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
    n = x.size(0)
    scale = 1.0 / (1.0 - dropout) if dropout > 0 else 1.0
    M = _csr(crow, col, _values(ival, lval, gamma, scale), n)
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
    n, p, seed_ = grad.size(0), dropout, int(seed)
    scale = 1.0 / (1.0 - p) if p > 0 else 1.0
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
        MT = t_csr(_values(ival, lval, gamma, scale))
        g = _apply_steps(g, MT, reversed(range(num_steps)), p, seed_,
                         transpose=True)
        return g, torch.zeros_like(gamma)

    # Gradient for gamma: d/dgamma of M_s y_k is -s L y_k, so it needs the
    # step inputs y_k, recomputed from sqrt(K) checkpoints.
    M = _csr(crow, col, _values(ival, lval, gamma, scale), n)
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
    if dropout > 0 and seed is None:
        seed = draw_seed()
    if seed is None:
        seed = torch.zeros(1, dtype=torch.int64)
    dtype = x.dtype
    return _diffuse_op(x.contiguous(), op.crow, op.col, op.ival.to(dtype),
                       op.lval.to(dtype), gamma, op.crow_t, op.col_t,
                       op.perm_t, num_steps, float(dropout), seed)


def diffuse_reference(x: Tensor, op: DiffusionOperator, gamma: Tensor,
                      num_steps: int, dropout: float = 0.0,
                      seed: Optional[Tensor] = None) -> Tensor:
    r"""The same computation as :func:`diffuse` with plain autograd (every
    step's activation and mask kept), for checking and as a fallback."""
    if dropout > 0 and seed is None:
        seed = draw_seed()
    seed_ = int(seed) if seed is not None else 0
    L = op.csr(op.lval.to(x.dtype))
    scale = 1.0 / (1.0 - dropout) if dropout > 0 else 1.0
    h = x
    for k in range(num_steps):
        if dropout > 0:
            h = h * dropout_mask(seed_, k, tuple(h.shape), dropout, h.device,
                                 h.dtype)
        h = (h - gamma * (L @ h)) * scale
    return h
