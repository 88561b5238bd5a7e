from .conv import DiffConv
from .models import DiffResNetGNN

__all__ = [
    'DiffConv',
    'DiffResNetGNN',
]
