from .diff_resnet import DiffResNetGNN

__all__ = [
    'DiffResNetGNN',
]
