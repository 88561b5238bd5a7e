r"""Optional C++ kernels on CPU: the diffusion steps of the fused engine and
the sparse-dense products of :func:`sparse_linear`.

The kernels in ``torch_geometric_diff/csrc/diffuse_cpu.cpp`` are compiled
once, on first use, with :func:`torch.utils.cpp_extension.load` (it needs a
C++ compiler and ``ninja``) and cached in ``TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``). They compute exactly what the pure PyTorch
path of :mod:`torch_geometric_diff.nn.diffusion.fused` computes, with the same
dropout masks bit for bit, in one pass over the node states per step.
With OpenMP (as in PyTorch's own CPU builds) the row loops run on
:func:`torch.get_num_threads` threads. Every output row is computed by one
thread in a fixed order, so results are bitwise the same for every thread
count.

Where they cannot be built, or with ``TGD_DISABLE_CPP=1`` in the environment,
the engine falls back to PyTorch operators, with a one-time warning in the
first case. :func:`cpu_kernels` returns the loaded module or :obj:`None`;
:func:`cpu_kernels_loaded` says whether it is loaded, without building it.
"""
import logging
import os
import shutil
import sys
from types import ModuleType
from typing import Optional

import torch
from torch import Tensor
from torch.nn import Linear

__all__ = [
    'cpu_kernels',
    'cpu_kernels_loaded',
    'sparse_linear',
]

logger = logging.getLogger(__name__)

# torch_geometric_diff/csrc/diffuse_cpu.cpp, shipped as package data.
_PACKAGE = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SOURCE = os.path.join(_PACKAGE, 'csrc', 'diffuse_cpu.cpp')
_STATE = {'loaded': False, 'module': None, 'error': None}


def _has_avx2() -> bool:
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return False
    return ' avx2' in flags and ' fma' in flags


def _ninja_on_path() -> None:
    # pip puts the `ninja` wheel's binary next to the interpreter, which is
    # not on PATH when a virtual environment is used without activating it.
    if shutil.which('ninja') is None:
        dirs = [os.path.dirname(sys.executable)]
        try:
            import ninja
            dirs.append(ninja.BIN_DIR)
        except (ImportError, AttributeError):
            pass
        os.environ['PATH'] = os.pathsep.join(
            dirs + [os.environ.get('PATH', '')])


def enabled() -> bool:
    r"""Whether the environment allows the C++ kernels
    (``TGD_DISABLE_CPP`` unset or ``0``)."""
    return os.environ.get('TGD_DISABLE_CPP', '0') in ('', '0')


def cpu_kernels_loaded() -> bool:
    r"""Whether the kernels have been built and loaded in this process
    (without building them)."""
    return _STATE['module'] is not None


def cpu_kernels() -> Optional[ModuleType]:
    r"""The compiled kernel module, building it on the first call, or
    :obj:`None` if disabled or unavailable."""
    if not enabled():
        return None
    if not _STATE['loaded']:
        _STATE['loaded'] = True
        try:
            from torch.utils.cpp_extension import load
            _ninja_on_path()
            flags, ldflags = ['-O3'], []
            name = 'tgd_diffuse_cpu'
            if _has_avx2():  # The name keys the build cache by target.
                flags += ['-mavx2', '-mfma']
                name += '_avx2'
            if torch.backends.openmp.is_available():
                # at::parallel_for runs on the OpenMP runtime torch loaded
                # (same soname), so torch.set_num_threads governs it.
                flags.append('-fopenmp')
                ldflags.append('-fopenmp')
                name += '_omp'
            logger.info('building the C++ diffusion kernels (once)')
            _STATE['module'] = load(name, [_SOURCE], extra_cflags=flags,
                                    extra_ldflags=ldflags, verbose=False)
        except Exception as e:  # No compiler, no ninja, build error, ...
            _STATE['error'] = f'{type(e).__name__}: {e}'
            logger.warning(
                'torch_geometric_diff: C++ CPU kernels unavailable (%s); '
                'using the PyTorch path (slower, same results)',
                _STATE['error'].splitlines()[0])
    return _STATE['module']


class _CSRLinear(torch.autograd.Function):
    r""":math:`\mathbf{X}\mathbf{W}^{\top}` for a constant CSR
    :math:`\mathbf{X}` with the C++ CPU kernels; the weight gradient
    :math:`(\mathbf{X}^{\top}\mathbf{G})^{\top}` is scattered row by row,
    without transposing :math:`\mathbf{X}`."""
    @staticmethod
    def forward(ctx, crow: Tensor, col: Tensor, val: Tensor,
                weight: Tensor) -> Tensor:
        ctx.save_for_backward(crow, col, val)
        ctx.in_channels = weight.size(1)
        ctx.ext = cpu_kernels()  # the same kernels in the backward pass
        return ctx.ext.csr_mm(crow, col, val, weight.t().contiguous())

    @staticmethod
    def backward(ctx, grad: Tensor):
        if not ctx.needs_input_grad[3]:
            return None, None, None, None
        crow, col, val = ctx.saved_tensors
        grad_w = ctx.ext.csr_t_mm(crow, col, val, grad.contiguous(),
                                  ctx.in_channels)
        return None, None, None, grad_w.t()


def sparse_linear(x: Tensor, lin: Linear) -> Tensor:
    r"""Applies :obj:`lin` to :obj:`x`, with a sparse-dense product when
    :obj:`x` is a :obj:`torch.sparse` tensor (COO or CSR). A constant CSR
    :obj:`x` on CPU goes through the C++ kernels when they are available.
    A sparse :obj:`x` needs only :obj:`lin.weight` and :obj:`lin.bias`, so any
    module holding an :math:`(O, I)` weight and an :math:`(O,)` bias (or
    :obj:`None`) qualifies."""
    if x.layout == torch.strided:
        return lin(x)
    w = lin.weight
    if (x.layout == torch.sparse_csr and x.device.type == 'cpu'
            and not x.requires_grad and x.dtype == w.dtype
            and w.dtype in (torch.float32, torch.float64)
            and x.crow_indices().dtype == torch.int64
            and cpu_kernels() is not None):
        out = _CSRLinear.apply(x.crow_indices(), x.col_indices(), x.values(),
                               w)
    else:
        out = torch.sparse.mm(x, w.t())
    return out + lin.bias if lin.bias is not None else out
