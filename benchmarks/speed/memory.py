r"""Peak memory of one training step of each compared model.

On a GPU the CUDA allocator's peak is exact in-process. On the CPU the peak
resident set size is read in a child process started with
``MALLOC_MMAP_THRESHOLD_`` set, so that freed tensors leave the resident set
and successive peaks in that process do not hide each other.
"""
import gc
import json
import os
import subprocess
import sys
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from benchmarks.common.memory import PeakMemory
from benchmarks.speed.graphs import load_graph
from benchmarks.speed.models import build
from benchmarks.speed.timing import kernels_for

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'speed.py')
PROBE = 'PROBE '


def peak_memory(model_name: str, g: Dict[str, Any], num_steps: int,
                step_size: float, dropout: float, seed: int,
                device: torch.device) -> float:
    r"""Peak extra memory (MiB) of one training step (forward, loss,
    backward) above the memory in use before it: the CUDA allocator on a
    GPU, the resident set size on the CPU. Caches are built before."""
    with kernels_for(model_name):
        torch.manual_seed(seed)
        model, forward = build(model_name, g, num_steps, step_size, dropout)
        model = model.to(device).eval()
        with torch.no_grad():  # Builds caches outside the measured step.
            forward()
        model.train()
        peak = PeakMemory(device)
        peak.reset()
        cuda = device.type == 'cuda'
        base = peak.current_gpu_mib() if cuda else peak.current_rss_mib()
        out = forward()
        F.cross_entropy(out[g['mask']], g['y'][g['mask']]).backward()
        top = peak.gpu_mib() if cuda else peak.rss_mib()
        del out, model
        gc.collect()
    return top - base


def measure(graph: str, root: Optional[str], device: torch.device,
            models: Sequence[str], mem_steps: Sequence[int],
            step_size: float, dropout: float,
            seed: int) -> Dict[str, float]:
    r""":func:`peak_memory` of every model but ``gcn`` at every number of
    steps in :obj:`mem_steps`, in this process, keyed ``model@K``."""
    g = load_graph(graph, root, device, seed)
    return {
        f'{m}@{k}': peak_memory(m, g, k, step_size, dropout, seed, device)
        for m in models if m != 'gcn' for k in mem_steps
    }


def run_memory(graph: str, root: Optional[str], device: torch.device,
               models: Sequence[str], mem_steps: Sequence[int],
               step_size: float, dropout: float,
               seed: int) -> Dict[str, float]:
    r""":func:`measure`, in this process on a GPU, in a child process of
    ``speed.py --memory-probe`` on the CPU."""
    if device.type == 'cuda':
        return measure(graph, root, device, models, mem_steps, step_size,
                       dropout, seed)
    cmd = [sys.executable, SCRIPT, '--memory-probe', '--graphs', graph,
           '--device', str(device), '--models', *models, '--mem-steps',
           *map(str, mem_steps), '--step-size', str(step_size),
           '--dropout', str(dropout), '--seed', str(seed)]
    if root:
        cmd += ['--root', root]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in res.stdout.splitlines():
        if line.startswith(PROBE):
            return json.loads(line[len(PROBE):])
    raise RuntimeError(f'memory probe failed:\n{res.stderr[-3000:]}')


def print_probe(values: Dict[str, float]) -> None:
    r"""The one line through which the child process reports."""
    print(PROBE + json.dumps(values), flush=True)
