r"""Counter-based dropout masks for the diffusion engine.

A mask is a pure function of ``(seed, step, shape, p)``: SplitMix64 over the
element index, keyed by the seed and the step. The backward pass of
:func:`~torch_geometric_diff.nn.diffusion.diffuse` regenerates the masks of
the forward pass instead of storing them. Only as many random bits per
element are drawn as :math:`p` needs (8, 16 or 32).
"""
import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    'dropout_mask',
    'dropout_scale',
    'draw_seed',
    'mask_bits',
]

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64
_C1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_C2 = -7723592293110705685  # 0x94D049BB133111EB
_MASKS = {s: (1 << (64 - s)) - 1 for s in (27, 30, 31)}
_VIEW = {8: torch.int8, 16: torch.int16, 32: torch.int32}


def _mix(z: Tensor) -> Tensor:
    # SplitMix64 finalizer with logical shifts on int64 (wrapping multiply).
    z = z ^ ((z >> 30) & _MASKS[30])
    z = z * _C1
    z = z ^ ((z >> 27) & _MASKS[27])
    z = z * _C2
    return z ^ ((z >> 31) & _MASKS[31])


def _mix_int(z: int) -> int:
    # The same finalizer on a Python integer, returned as a signed int64.
    m64 = (1 << 64) - 1
    z &= m64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m64
    z ^= z >> 31
    return z - (1 << 64) if z >= (1 << 63) else z


def dropout_scale(p: float) -> float:
    r"""The factor :math:`1 / (1 - p)` of inverted dropout (:obj:`1.` for
    :math:`p = 0`)."""
    return 1.0 / (1.0 - p) if p > 0 else 1.0


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


def mask_threshold(p: float, bits: int) -> int:
    r"""The threshold :math:`t = -2^{b-1} + p \, 2^b`, rounded to an even
    integer: an element is kept iff its :obj:`bits` random bits, read as a
    signed integer, are at least :math:`t`."""
    return 2 * (-(1 << (bits - 2)) + round(p * (1 << (bits - 1))))


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


def _keep(v: Tensor, p: float, bits: int) -> Tensor:
    r"""Maps uniform signed :obj:`bits`-bit integers :obj:`v` to ``1`` where
    :math:`v \geq t` (see :func:`mask_threshold`) and ``0`` elsewhere, in
    place. As :math:`t` is even, :math:`v \geq t` iff
    :math:`(v \gg 1) - t/2 \geq 0`, which cannot overflow: four cheap integer
    ops instead of a comparison that produces :obj:`bool`."""
    half_t = mask_threshold(p, bits) // 2
    v >>= 1
    v -= half_t
    v >>= bits - 1
    v += 1
    return v


def dropout_mask(seed: int, step: int, shape: Tuple[int, ...], p: float,
                 device: torch.device, dtype: torch.dtype = torch.float32,
                 out: Optional[Tensor] = None) -> Tensor:
    r"""The keep mask (``1`` with probability :math:`1 - p`, else ``0``) of
    diffusion step ``step``, as a :obj:`dtype` tensor of :obj:`shape`.

    Element :math:`e` takes :math:`b` = :func:`mask_bits` bits of the
    SplitMix64 stream :math:`\mathrm{mix}(s_k + \lfloor e b / 64 \rfloor
    \cdot \phi)` with :math:`s_k = \mathrm{mix}(\mathrm{seed} \oplus
    \mathrm{mix}(k))`; it is kept iff those bits, read as a signed integer,
    are at least :math:`t = -2^{b-1} + p \, 2^b`. The same
    ``(seed, step)`` gives the same mask on every device, so that the CUDA
    graphs of :mod:`~torch_geometric_diff.nn.diffusion.graphs`, which derive
    :math:`s_k` on the device, draw the masks of this function. With
    :obj:`out`, the mask is written there.
    """
    s_k = _mix_int(seed ^ _mix_int(step + 1))
    numel = math.prod(shape)
    bits = mask_bits(p)
    words = (numel * bits + 63) // 64
    v = _mix(_counters(words, device) + s_k).view(_VIEW[bits])[:numel]
    keep = _keep(v, p, bits).view(shape)
    return keep.to(dtype) if out is None else out.copy_(keep)


def draw_seed() -> Tensor:
    r"""One dropout seed from PyTorch's global generator (so
    :func:`torch.manual_seed` makes runs reproducible)."""
    return torch.randint(0, 2**62, (1, ), dtype=torch.int64)


def resolve_seed(seed: Optional[Tensor], dropout: float) -> Tensor:
    r""":obj:`seed` if given; else a new seed from :func:`draw_seed` when
    :obj:`dropout` is active, and a zero seed (no masks are drawn) when it
    is not."""
    if seed is not None:
        return seed
    if dropout > 0:
        return draw_seed()
    return torch.zeros(1, dtype=torch.int64)
