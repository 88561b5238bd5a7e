r"""Diff-ResNet diffusion layers for PyTorch Geometric."""
__version__ = '0.1.0'

from .nn import DiffConv, DiffResNetGNN  # noqa: E402

__all__ = [
    'DiffConv',
    'DiffResNetGNN',
    '__version__',
]
