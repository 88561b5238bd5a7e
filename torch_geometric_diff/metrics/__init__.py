from .separation import (
    distance_diameter_ratio,
    nearest_enemy_and_eccentricity,
)
from .energy import dirichlet_energy
from .trajectory import diffusion_trajectory_metrics, trajectory_metrics

__all__ = [
    'distance_diameter_ratio',
    'nearest_enemy_and_eccentricity',
    'dirichlet_energy',
    'trajectory_metrics',
    'diffusion_trajectory_metrics',
]
