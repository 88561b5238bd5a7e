r"""Transductive few-shot classification on pre-extracted embeddings with
the Diff-ResNet diffusion head, and the SimpleShot / LaplacianShot
baselines."""
from .episodes import Episode, EpisodeSampler, mean_confidence_interval
from .methods import (
    DiffusionHead,
    center_l2,
    diffusion_shot,
    laplacian_shot,
    prototypes,
    rectified_prototypes,
    shift_query,
    simple_shot,
)
from .data import (
    FewShotFeatures,
    clustered_features,
    digits_features,
    load_features,
    save_features,
)
from .evaluate import evaluate_episodes

__all__ = [
    'Episode',
    'EpisodeSampler',
    'mean_confidence_interval',
    'DiffusionHead',
    'center_l2',
    'prototypes',
    'rectified_prototypes',
    'shift_query',
    'simple_shot',
    'laplacian_shot',
    'diffusion_shot',
    'FewShotFeatures',
    'load_features',
    'save_features',
    'digits_features',
    'clustered_features',
    'evaluate_episodes',
]
