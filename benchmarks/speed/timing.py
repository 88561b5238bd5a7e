r"""Timing of the compared models (median epoch, forward and backward of a
training step plus an evaluation pass) and of the diffusion alone against
APPNP's propagation, and a :mod:`torch.profiler` table of one epoch; also
the helpers every section shares: the kernel path, medians, machine load."""
import contextlib
import os
import statistics
import time
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import APPNP

from benchmarks.speed.models import build
from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion import (cpu_kernels, draw_seed,
                                               dropout_mask, sparse_linear)

PATHS = ('cpp', 'torch')


@contextlib.contextmanager
def kernel_path(path: str) -> Iterator[str]:
    r"""Runs the enclosed code on the C++ CPU kernels (:obj:`"cpp"`) or on
    PyTorch operators only (:obj:`"torch"`, ``TGD_DISABLE_CPP=1``), and
    yields the path actually taken: :obj:`"torch"` where the kernels cannot
    be built. Raises :class:`RuntimeError` if the library no longer reads
    ``TGD_DISABLE_CPP`` on every call, which this switch relies on."""
    if path not in PATHS:
        raise ValueError(f"Unknown kernel path '{path}' (choose from "
                         f"{', '.join(PATHS)})")
    old = os.environ.get('TGD_DISABLE_CPP')
    os.environ['TGD_DISABLE_CPP'] = '1' if path == 'torch' else '0'
    try:
        taken = 'cpp' if cpu_kernels() is not None else 'torch'
        if path == 'torch' and taken != 'torch':
            raise RuntimeError('TGD_DISABLE_CPP=1 did not disable the C++ '
                               'kernels in this process')
        yield taken
    finally:
        if old is None:
            os.environ.pop('TGD_DISABLE_CPP', None)
        else:
            os.environ['TGD_DISABLE_CPP'] = old


@contextlib.contextmanager
def kernels_for(model: str) -> Iterator[None]:
    r"""Disables the C++ CPU kernels (``TGD_DISABLE_CPP=1``) while
    :obj:`model` is ``diffresnet-torch``, forward and backward."""
    if model != 'diffresnet-torch':
        yield
        return
    with kernel_path('torch'):
        yield


def median_ms(seconds: Sequence[float]) -> float:
    r"""The median of :obj:`seconds`, in milliseconds."""
    return 1e3 * statistics.median(seconds)


def load_average() -> List[float]:
    r"""The machine load over 1, 5 and 15 minutes
    (:func:`os.getloadavg`)."""
    return [round(v, 2) for v in os.getloadavg()]


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    r"""Seconds of one call of :obj:`fn`, the device synchronized."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def epoch_runner(model_name: str, g: Dict[str, Any], num_steps: int,
                 step_size: float, dropout: float, seed: int,
                 device: torch.device
                 ) -> Callable[[], Tuple[float, float, float]]:
    r"""Builds :obj:`model_name` (seeded with :obj:`seed`) and an Adam
    optimizer, and returns a call that runs one epoch, a training step plus
    an evaluation pass, and returns the seconds of its training forward,
    its backward and the whole epoch."""
    with kernels_for(model_name):
        torch.manual_seed(seed)
        model, forward = build(model_name, g, num_steps, step_size, dropout)
        model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    y, mask = g['y'], g['mask']

    def epoch() -> Tuple[float, float, float]:
        with kernels_for(model_name):
            model.train()
            opt.zero_grad()
            sync(device)
            t0 = time.perf_counter()
            out = forward()
            loss = F.cross_entropy(out[mask], y[mask])
            sync(device)
            t1 = time.perf_counter()
            loss.backward()
            sync(device)
            t2 = time.perf_counter()
            opt.step()
            model.eval()
            with torch.no_grad():
                forward()
            sync(device)
            t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t0

    return epoch


def epoch_medians(times: Sequence[Tuple[float, float, float]]
                  ) -> Dict[str, float]:
    r"""Median ``epoch_ms``, ``forward_ms`` and ``backward_ms`` of the
    :func:`epoch_runner` results :obj:`times`."""
    fwd, bwd, epoch = zip(*times)
    return dict(epoch_ms=median_ms(epoch), forward_ms=median_ms(fwd),
                backward_ms=median_ms(bwd))


def time_model(model_name: str, g: Dict[str, Any], num_steps: int,
               step_size: float, dropout: float, warmup: int, repeats: int,
               seed: int, device: torch.device) -> Dict[str, float]:
    r"""Medians over :obj:`repeats` epochs (after :obj:`warmup`) of one
    training step with Adam plus one evaluation pass (``epoch_ms``), and of
    the training forward and backward alone."""
    epoch = epoch_runner(model_name, g, num_steps, step_size, dropout, seed,
                         device)
    times = [epoch() for _ in range(warmup + repeats)]
    return epoch_medians(times[warmup:])


def time_propagation(g: Dict[str, Any], num_steps: int, step_size: float,
                     dropout: float, warmup: int, repeats: int,
                     device: torch.device) -> Dict[str, float]:
    r"""Diffusion alone (:class:`DiffConv`, fused) against APPNP's
    propagation alone: forward with dropout, backward, and the per-step
    evaluation cost; also the dropout masks against :func:`F.dropout` and
    the first linear layer on dense features against the features as fed.
    Medians in milliseconds."""
    x = g['x'].detach().clone().requires_grad_()
    ei = g['edge_index']
    conv = DiffConv(step_size, num_steps, dropout=dropout,
                    cached=True).to(device)
    appnp = APPNP(K=num_steps, alpha=0.1, cached=True).to(device)
    conv(x, ei)
    appnp(x, ei)
    lin = torch.nn.Linear(x.size(1), x.size(1)).to(device)
    x_in = g['x_in']

    def linear_step(inp: Tensor) -> None:
        lin.zero_grad()
        sparse_linear(inp, lin).sum().backward()

    res: Dict[str, List[float]] = {
        'diff_fwd': [], 'diff_bwd': [], 'diff_eval': [], 'appnp_eval': [],
        'dropout_mask': [], 'torch_dropout': [], 'linear_dense': [],
        'linear_input': []
    }
    for rep in range(warmup + repeats):
        conv.train()
        sync(device)
        t0 = time.perf_counter()
        out = conv(x, ei)
        sync(device)
        t1 = time.perf_counter()
        out.backward(torch.ones_like(out))
        sync(device)
        t2 = time.perf_counter()
        conv.eval()
        with torch.no_grad():
            te = timed(lambda: conv(x, ei), device)
            ta = timed(lambda: appnp(x, ei), device)
            seed = int(draw_seed())
            tm = timed(lambda: dropout_mask(seed, 0, tuple(x.shape),
                                            dropout, device), device)
            td = timed(lambda: F.dropout(x, dropout, training=True),
                       device)
        tl = timed(lambda: linear_step(g['x']), device)
        ts = timed(lambda: linear_step(x_in), device)
        if rep >= warmup:
            res['linear_dense'].append(tl)
            res['linear_input'].append(ts)
            res['diff_fwd'].append(t1 - t0)
            res['diff_bwd'].append(t2 - t1)
            res['diff_eval'].append(te)
            res['appnp_eval'].append(ta)
            res['dropout_mask'].append(tm)
            res['torch_dropout'].append(td)
    out = {key + '_ms': median_ms(v) for key, v in res.items()}
    out['diff_step_ms'] = out['diff_eval_ms'] / num_steps
    out['appnp_step_ms'] = out['appnp_eval_ms'] / num_steps
    return out


def profile_epoch(g: Dict[str, Any], num_steps: int, step_size: float,
                  dropout: float, device: torch.device) -> str:
    r"""A :mod:`torch.profiler` table of one training epoch of
    ``diffresnet`` (printed and returned)."""
    from torch.profiler import ProfilerActivity, profile
    model, forward = build('diffresnet', g, num_steps, step_size, dropout)
    model = model.to(device).train()
    forward().sum().backward()  # Warm up, build the cache.
    acts = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        acts.append(ProfilerActivity.CUDA)
    with profile(activities=acts) as prof:
        out = forward()
        F.cross_entropy(out[g['mask']], g['y'][g['mask']]).backward()
        model.eval()
        with torch.no_grad():
            forward()
        sync(device)
    sort = 'self_cuda_time_total' if device.type == 'cuda' \
        else 'self_cpu_time_total'
    table = prof.key_averages().table(sort_by=sort, row_limit=15)
    print(table, flush=True)
    return table
