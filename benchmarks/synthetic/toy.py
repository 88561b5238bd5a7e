r"""Two-dimensional toy sets of the synthetic binary classification
experiments of `"Diffusion Mechanism in Residual Neural Network: Theory and
Applications" <https://arxiv.org/abs/2105.03155>`_.

The default sizes, shapes and noise levels are those of the official code
(``synthetic/*_example.py`` in ``shwangtangjun/Diff-ResNet``). Every generator
returns a :class:`torch_geometric.data.Data` with

* ``x``: the points, :math:`[N, 2]`, :obj:`torch.float32`;
* ``pos``: the same tensor (for plotting and for
  :class:`~torch_geometric_diff.transforms.GaussianKNNGraph`);
* ``y``: the class, :math:`[N]`, :obj:`torch.long`, in :math:`\{0, 1\}`;
* ``cluster``: the connected piece each point was drawn from, :math:`[N]`
  (equal to ``y`` except for XOR, whose classes have two discs each).

The noise comes from :class:`numpy.random.RandomState` (a stream that NumPy
keeps stable across versions), so a seed gives the same points everywhere.
"""
from typing import Callable, Dict

import numpy as np
import torch
from torch_geometric.data import Data


def _check(num: int, noise: float) -> None:
    if not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"the number of points per class/cluster must be a "
                         f"positive integer (got {num!r})")
    if noise < 0:
        raise ValueError(f"'noise' must be non-negative (got {noise!r})")


def _to_data(points: np.ndarray, y: np.ndarray, cluster: np.ndarray,
             name: str) -> Data:
    x = torch.from_numpy(points.astype(np.float32))
    return Data(x=x, pos=x, y=torch.from_numpy(y).long(),
                cluster=torch.from_numpy(cluster).long(), name=name)


def two_moons(num_per_class: int = 500, noise: float = 0.05,
              seed: int = 0) -> Data:
    r"""Two interleaving half circles: class 0 on
    :math:`(\cos t, \sin t)`, class 1 on :math:`(1 - \cos t, 0.5 - \sin t)`,
    :math:`t` evenly spaced in :math:`[0, \pi]`, plus isotropic Gaussian noise
    of standard deviation :obj:`noise`.

    Args:
        num_per_class (int, optional): Points per class. (default: :obj:`500`)
        noise (float, optional): Noise standard deviation.
            (default: :obj:`0.05`)
        seed (int, optional): Random seed. (default: :obj:`0`)
    """
    _check(num_per_class, noise)
    rng = np.random.RandomState(seed)
    t = np.linspace(0, np.pi, num_per_class)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    points = np.concatenate([outer, inner])
    points += rng.randn(*points.shape) * noise
    y = np.repeat([0, 1], num_per_class)
    return _to_data(points, y, y, 'two_moons')


def two_circles(num_per_class: int = 500, noise: float = 0.05,
                seed: int = 0, radii: tuple = (2.0, 1.0)) -> Data:
    r"""Two concentric circles: class 0 of radius :obj:`radii[0]`, class 1
    of radius :obj:`radii[1]`, angles evenly spaced in :math:`[0, 2\pi)`, plus
    Gaussian noise.

    Args:
        num_per_class (int, optional): Points per class. (default: :obj:`500`)
        noise (float, optional): Noise standard deviation.
            (default: :obj:`0.05`)
        seed (int, optional): Random seed. (default: :obj:`0`)
        radii (tuple, optional): Radii of class 0 and class 1.
            (default: :obj:`(2.0, 1.0)`)
    """
    _check(num_per_class, noise)
    rng = np.random.RandomState(seed)
    # endpoint=False: the official code repeats the point at angle 0 = 2 pi.
    t = np.linspace(0, 2 * np.pi, num_per_class, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)
    points = np.concatenate([radii[0] * circle, radii[1] * circle])
    points += rng.randn(*points.shape) * noise
    y = np.repeat([0, 1], num_per_class)
    return _to_data(points, y, y, 'two_circles')


def two_spirals(num_per_class: int = 500, noise: float = 0.1, seed: int = 0,
                turns: float = 1.0) -> Data:
    r"""Two interleaved Archimedean spirals: class 0 on
    :math:`(1 + \theta)(\cos\theta, \sin\theta)`, class 1 on its point
    reflection :math:`-(1 + \theta)(\cos\theta, \sin\theta)`, :math:`\theta`
    evenly spaced in :math:`[0, 2\pi \cdot \textrm{turns}]`, plus Gaussian
    noise.

    Args:
        num_per_class (int, optional): Points per class. (default: :obj:`500`)
        noise (float, optional): Noise standard deviation.
            (default: :obj:`0.1`)
        seed (int, optional): Random seed. (default: :obj:`0`)
        turns (float, optional): Number of turns. (default: :obj:`1.0`)
    """
    _check(num_per_class, noise)
    rng = np.random.RandomState(seed)
    theta = np.linspace(0, 2 * np.pi * turns, num_per_class)
    arm = (1 + theta)[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1)
    points = np.concatenate([arm, -arm])
    points += rng.randn(*points.shape) * noise
    y = np.repeat([0, 1], num_per_class)
    return _to_data(points, y, y, 'two_spirals')


def xor(num_per_cluster: int = 100, diameter: float = 1.5,
        spacing: float = 2.0, seed: int = 0) -> Data:
    r"""XOR: points drawn uniformly from four discs of diameter
    :obj:`diameter` centred at :math:`(0, 0), (s, s)` (class 0) and
    :math:`(s, 0), (0, s)` (class 1), :math:`s` = :obj:`spacing`.
    ``data.cluster`` tells the four discs apart (in that order).

    Args:
        num_per_cluster (int, optional): Points per disc.
            (default: :obj:`100`)
        diameter (float, optional): Disc diameter. (default: :obj:`1.5`)
        spacing (float, optional): Distance between neighbouring centres.
            (default: :obj:`2.0`)
        seed (int, optional): Random seed. (default: :obj:`0`)
    """
    _check(num_per_cluster, 0.0)
    if not diameter > 0:
        raise ValueError(f"'diameter' must be positive (got {diameter!r})")
    rng = np.random.RandomState(seed)
    n = 4 * num_per_cluster
    # Uniform on a disc: the radius is the square root of a uniform variable.
    r = np.sqrt(rng.uniform(0, (diameter / 2)**2, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    points = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    centers = spacing * np.array([[0., 0.], [1., 1.], [1., 0.], [0., 1.]])
    cluster = np.repeat(np.arange(4), num_per_cluster)
    points += centers[cluster]
    y = (cluster >= 2).astype(np.int64)
    return _to_data(points, y, cluster, 'xor')


TOY_DATASETS: Dict[str, Callable[..., Data]] = {
    'two_moons': two_moons,
    'two_circles': two_circles,
    'two_spirals': two_spirals,
    'xor': xor,
}


def load_toy(name: str, seed: int = 0, **kwargs) -> Data:
    r"""Returns the toy set :obj:`name` (one of :obj:`TOY_DATASETS`)."""
    if name not in TOY_DATASETS:
        raise ValueError(f"Unknown toy data set '{name}' (choose from "
                         f"{sorted(TOY_DATASETS)})")
    return TOY_DATASETS[name](seed=seed, **kwargs)
