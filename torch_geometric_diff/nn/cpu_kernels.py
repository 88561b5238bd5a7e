r"""Optional C++ kernels for the fused diffusion engine on CPU.

The kernels in ``torch_geometric_diff/csrc/diffuse_cpu.cpp`` are compiled
once, on first use, with :func:`torch.utils.cpp_extension.load` (it needs a
C++ compiler and ``ninja``) and cached in ``TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``). They compute exactly what the pure PyTorch
path of :mod:`torch_geometric_diff.nn.diffusion` computes, with the same
dropout masks bit for bit, in one pass over the node states per step.

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

logger = logging.getLogger(__name__)

_SOURCE = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'csrc',
                       'diffuse_cpu.cpp')
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
            flags = ['-O3']
            name = 'tgd_diffuse_cpu'
            if _has_avx2():  # The name keys the build cache by target.
                flags += ['-mavx2', '-mfma']
                name += '_avx2'
            logger.info('building the C++ diffusion kernels (once)')
            _STATE['module'] = load(name, [_SOURCE], extra_cflags=flags,
                                    verbose=False)
        except Exception as e:  # No compiler, no ninja, build error, ...
            _STATE['error'] = f'{type(e).__name__}: {e}'
            logger.warning(
                'torch_geometric_diff: C++ CPU kernels unavailable (%s); '
                'using the PyTorch path (slower, same results)',
                _STATE['error'].splitlines()[0])
    return _STATE['module']
