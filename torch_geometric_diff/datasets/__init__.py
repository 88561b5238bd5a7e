from .ogb import (
    OGBDataUnavailableError,
    is_synthetic_ogb,
    load_ogb_node_dataset,
    ogb_safe_globals,
    ogb_safe_loading,
)
from .synthetic_ogb import (
    OGB_LIKE,
    ogb_meta_dict,
    synthetic_ogb_data,
    synthetic_ogb_sizes,
    write_synthetic_ogb,
)
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
    'load_ogb_node_dataset',
    'OGBDataUnavailableError',
    'ogb_safe_loading',
    'ogb_safe_globals',
    'is_synthetic_ogb',
    'write_synthetic_ogb',
    'synthetic_ogb_data',
    'synthetic_ogb_sizes',
    'ogb_meta_dict',
    'OGB_LIKE',
]
