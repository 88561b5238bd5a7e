from .diff_conv import DiffConv

__all__ = [
    'DiffConv',
]
