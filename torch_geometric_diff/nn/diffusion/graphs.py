r"""CUDA graphs for the cached diffusion loop.

On CUDA, a diffusion step is a few small kernels (mask, its application,
one sparse-dense product), so a small graph's epoch is bound by launches
and host work. Here the :math:`K` steps run as one replayed
:class:`torch.cuda.CUDAGraph`.

* :func:`diffuse_steps`: the steps in tensor operations only, with the
  masks of :func:`~torch_geometric_diff.nn.diffusion.dropout.dropout_mask`
  on the CPU (SplitMix64 over the element index) and per-step keys derived
  on the device from a seed tensor: nothing is read back to the host.
* :class:`StepGraph`: one captured loop with static input, operator
  values, seed and output.
* :class:`GraphedDiffusion`: a small LRU cache of them; :func:`run_steps`
  uses a module-wide one. Where capture is off (:obj:`enabled=False`,
  ``TGD_CUDA_GRAPHS=0`` in the environment, or a tensor not on CUDA), they
  call :func:`diffuse_steps` itself: the CPU runs the captured code.
"""
import math
import os
import warnings
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from torch_geometric_diff.nn.diffusion.dropout import (
    _GOLDEN,
    _VIEW,
    _keep,
    _mix,
    _mix_int,
    mask_bits,
)

__all__ = [
    'GraphedDiffusion',
    'StepGraph',
    'StepPlan',
    'diffuse_steps',
    'graphs_enabled',
    'run_steps',
    'step_mask',
]

Seed = Union[int, Tensor]
_BATCH_BYTES = 1 << 25  # Most bytes of random words drawn at once.


def graphs_enabled() -> bool:
    r""":obj:`False` if the environment variable ``TGD_CUDA_GRAPHS`` is
    ``0``, else :obj:`True`."""
    return os.environ.get('TGD_CUDA_GRAPHS', '1').strip() != '0'


class StepPlan:
    r"""The device constants of the masks of :obj:`steps` (step indices in
    running order) for features of :obj:`shape` and dropout :obj:`p`: the
    counters :math:`w \cdot \phi` of the random words and a salt
    :math:`\mathrm{mix}(k + 1)` per step :math:`k`. It copies from the host,
    so it is built outside any capture."""
    def __init__(self, shape: Tuple[int, ...], steps: Sequence[int],
                 p: float, device: torch.device) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"'p' must be in [0, 1) (got {p})")
        self.shape, self.steps, self.p = tuple(shape), tuple(steps), p
        self.numel = math.prod(self.shape)
        self.bits = mask_bits(p) if p > 0 else 0
        self.counters = self.salts = None
        self.batched = False  # Masks of all steps drawn at once.
        if p > 0:
            words = (self.numel * self.bits + 63) // 64
            self.counters = torch.arange(words, device=device,
                                         dtype=torch.int64) * _GOLDEN
            self.salts = torch.tensor([_mix_int(k + 1) for k in self.steps],
                                      dtype=torch.int64).to(device)
            self.batched = 8 * words * len(self.steps) <= _BATCH_BYTES


def _keep_masks(keys: Tensor, plan: StepPlan) -> Tensor:
    # Keep masks (0/1 integers) of the keys (...,), as (..., numel) views.
    z = _mix(plan.counters + keys.unsqueeze(-1))
    v = z.view(_VIEW[plan.bits])[..., :plan.numel]
    return _keep(v, plan.p, plan.bits)


def _seed_tensor(seed: Seed, device: torch.device) -> Tensor:
    if not isinstance(seed, Tensor):
        return torch.full((), int(seed), dtype=torch.int64, device=device)
    if seed.numel() != 1 or seed.dtype != torch.int64:
        raise TypeError(f"'seed' must be an int or a one-element int64 "
                        f"tensor (got {seed.dtype}, {seed.numel()} elements)")
    return seed.reshape(()).to(device)


def step_mask(seed: Seed, step: int, shape: Tuple[int, ...], p: float,
              device: Optional[torch.device] = None,
              dtype: torch.dtype = torch.float32) -> Tensor:
    r"""The keep mask of :obj:`step`, computed on :obj:`device` (default:
    the seed's) without reading the seed back to the host: bitwise equal to
    ``dropout_mask(int(seed), step, shape, p, torch.device('cpu'), dtype)``
    on every device."""
    device = device or (seed.device if isinstance(seed, Tensor) else
                        torch.device('cpu'))
    plan = StepPlan(shape, (step, ), p, device)
    if p == 0:
        return torch.ones(shape, device=device, dtype=dtype)
    keys = _mix(_seed_tensor(seed, device) ^ plan.salts)
    return _keep_masks(keys[0], plan).view(plan.shape).to(dtype)


def diffuse_steps(h: Tensor, M: Tensor, seed: Tensor, plan: StepPlan,
                  transpose: bool = False) -> Tensor:
    r"""Runs :math:`\mathbf{H} \leftarrow \mathbf{M}\,(\mathbf{m}^{(k)}
    \odot \mathbf{H})` for :math:`k` in :obj:`plan.steps` (with
    :obj:`transpose`, :math:`\mathbf{H} \leftarrow \mathbf{m}^{(k)} \odot
    (\mathbf{M}\mathbf{H})`: the backward recursion for
    :math:`\mathbf{M}^{\top}`) with the masks of :func:`step_mask`, for a
    :obj:`torch.sparse_csr` :obj:`M` (scaled by :math:`1 / (1 - p)`) and a
    0-dim :obj:`int64` :obj:`seed` on :obj:`h`'s device. No host sync, copy
    or read: the loop can be captured. :obj:`h` is never written (and is
    returned itself if there are no steps)."""
    keys = _mix(seed ^ plan.salts) if plan.p > 0 else None
    masks = _keep_masks(keys, plan) if plan.batched else None
    for i in range(len(plan.steps)):
        m = None
        if keys is not None:
            m = masks[i] if masks is not None else _keep_masks(keys[i], plan)
            m = m.view(plan.shape)
            h = h if transpose else h * m
        h = M @ h
        if m is not None and transpose:
            h.mul_(m)
    return h


class StepGraph:
    r""":func:`diffuse_steps` captured into a :class:`torch.cuda.CUDAGraph`
    for the pattern of the CUDA CSR matrix :obj:`M` (its index tensors are
    kept, its values copied at each run), features of :obj:`shape` and
    :obj:`dtype`, :obj:`steps`, :obj:`p` and :obj:`transpose`. It reads
    static input, value and seed tensors and writes a static output.
    :obj:`warmup` eager runs on a side stream come first, where cuSPARSE
    sets up its handle and workspace."""
    def __init__(self, M: Tensor, shape: Tuple[int, ...], dtype: torch.dtype,
                 steps: Sequence[int], p: float, transpose: bool = False,
                 warmup: int = 2) -> None:
        if not steps:
            raise ValueError("'steps' must not be empty")
        device = M.device
        self.plan = StepPlan(shape, steps, p, device)
        self.transpose = transpose
        self.crow, self.col = M.crow_indices(), M.col_indices()
        self.values = M.values().detach().clone()
        self.M = torch.sparse_csr_tensor(self.crow, self.col, self.values,
                                         M.shape, check_invariants=False)
        self.x = torch.zeros(shape, dtype=dtype, device=device)
        self.seed = torch.zeros((), dtype=torch.int64, device=device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.device(device):
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    self._loop()
            torch.cuda.current_stream(device).wait_stream(side)
            with torch.cuda.graph(self.graph,
                                  capture_error_mode='thread_local'):
                self.out = self._loop()

    def _loop(self) -> Tensor:
        return diffuse_steps(self.x, self.M, self.seed, self.plan,
                             self.transpose)

    def run(self, h: Tensor, values: Tensor, seed: Seed) -> Tensor:
        r"""Copies :obj:`h`, the operator :obj:`values` and :obj:`seed` (an
        int or a one-element tensor) into the static tensors, replays, and
        returns a new tensor (not differentiable), which later replays leave
        unchanged."""
        with torch.no_grad(), torch.cuda.device(self.x.device):
            self.x.copy_(h)
            self.values.copy_(values)
            if isinstance(seed, Tensor):
                self.seed.copy_(_seed_tensor(seed, self.seed.device))
            else:  # A kernel argument: no copy from the host.
                self.seed.fill_(int(seed))
            self.graph.replay()
            return self.out.clone()


class GraphedDiffusion:
    r"""Runs diffusion steps through cached :class:`StepGraph` objects.

    A loop is keyed by the index tensors of :obj:`M` (by address), the
    feature shape and dtype, the steps, :math:`p` and the direction. It is
    captured on its :obj:`min_calls`-th call; earlier calls run eagerly, so
    an operator rebuilt at every call (an uncached layer) is never captured.
    Keys counted and graphs cached hold their index tensors, so that no
    other operator can take those addresses while they live. At most
    :obj:`max_graphs` graphs are kept, least recently used out first.

    Args:
        enabled (bool, optional): Whether to capture on CUDA; :obj:`None`
            follows :func:`graphs_enabled`. (default: :obj:`None`)
        max_graphs (int, optional): The cache size. (default: :obj:`8`)
        min_calls (int, optional): The call of a key that captures it.
            (default: :obj:`2`)
    """
    graph_cls = StepGraph

    def __init__(self, enabled: Optional[bool] = None, max_graphs: int = 8,
                 min_calls: int = 2) -> None:
        self.enabled, self.max_graphs = enabled, max_graphs
        self.min_calls = min_calls
        self.graphs: 'OrderedDict[tuple, StepGraph]' = OrderedDict()
        self._calls: 'OrderedDict[tuple, list]' = OrderedDict()
        self._failed: set = set()

    def clear(self) -> None:
        r"""Drops every graph and call count."""
        self.graphs.clear()
        self._calls.clear()
        self._failed.clear()

    def capturable(self, h: Tensor) -> bool:
        r"""Whether capture is on and :obj:`h` is on CUDA."""
        on = graphs_enabled() if self.enabled is None else self.enabled
        return on and h.is_cuda

    def run(self, h: Tensor, M: Tensor, steps: Sequence[int], p: float,
            seed: Seed, transpose: bool = False) -> Tensor:
        r"""The result of :func:`diffuse_steps` for :obj:`h` (never written)
        and :obj:`seed` (an int or a one-element :obj:`int64` tensor), from
        a graph where one is cached or due, else eagerly."""
        steps = tuple(steps)
        if not steps:
            return h.clone()
        graph = None
        if self.capturable(h):
            crow, col = M.crow_indices(), M.col_indices()
            key = (h.device, tuple(h.shape), h.dtype, M.dtype, M.size(0),
                   crow.data_ptr(), col.data_ptr(), col.numel(), steps,
                   float(p), bool(transpose))
            graph = self.graphs.get(key)
            if graph is not None:
                self.graphs.move_to_end(key)
            elif key not in self._failed:
                graph = self._capture(key, h, M, steps, p, transpose)
        if graph is not None:
            return graph.run(h, M.values(), seed)
        plan = StepPlan(h.shape, steps, p, h.device)
        return diffuse_steps(h, M, _seed_tensor(seed, h.device), plan,
                             transpose)

    def _capture(self, key: tuple, h: Tensor, M: Tensor, steps: tuple,
                 p: float, transpose: bool) -> Optional[StepGraph]:
        entry = self._calls.pop(key, None) or [0, M.crow_indices(),
                                               M.col_indices()]
        entry[0] += 1
        if entry[0] < self.min_calls:
            self._calls[key] = entry
            while len(self._calls) > self.max_graphs:
                self._calls.popitem(last=False)
            return None
        try:
            graph = self.graph_cls(M, tuple(h.shape), h.dtype, steps, p,
                                   transpose)
        except RuntimeError as e:  # Capture unsupported here: stay eager.
            warnings.warn(f"CUDA graph capture of the diffusion loop failed "
                          f"({e}); running it eagerly", RuntimeWarning)
            self._failed.add(key)
            return None
        self.graphs[key] = graph
        while len(self.graphs) > self.max_graphs:
            self.graphs.popitem(last=False)
        return graph


_DEFAULT = GraphedDiffusion()


def run_steps(h: Tensor, M: Tensor, steps: Sequence[int], p: float,
              seed: Seed, transpose: bool = False) -> Tensor:
    r""":meth:`GraphedDiffusion.run` of the module-wide cache."""
    return _DEFAULT.run(h, M, steps, p, seed, transpose)
