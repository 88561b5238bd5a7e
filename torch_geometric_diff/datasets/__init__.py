from .toy import (
    TOY_DATASETS,
    load_toy,
    two_circles,
    two_moons,
    two_spirals,
    xor,
)

__all__ = [
    'two_moons',
    'two_circles',
    'two_spirals',
    'xor',
    'load_toy',
    'TOY_DATASETS',
]
