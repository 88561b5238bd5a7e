r"""The official settings of the synthetic experiments and the k-NN graph
each toy set is classified on."""
from typing import Any, Dict, Optional

from torch_geometric.data import Data

from benchmarks.synthetic.toy import load_toy
from torch_geometric_diff.transforms import GaussianKNNGraph

# Official settings (there ``n_top`` counts the point itself: k = n_top - 1).
PAPER: Dict[str, Dict[str, Any]] = {
    'two_moons': dict(k=24, sigma=0.5, num_steps=60, lr=1.0),
    'two_circles': dict(k=49, sigma=0.5, num_steps=200, lr=1.0),
    'two_spirals': dict(k=24, sigma=0.5, num_steps=900, lr=0.8),
    'xor': dict(k=19, sigma=0.5, num_steps=200, lr=1.0),
}
TITLES = {'two_moons': 'two moons', 'two_circles': 'two circles',
          'two_spirals': 'two spirals', 'xor': 'XOR'}
SIZE_ARG = {'xor': 'num_per_cluster'}
DEFAULT_SIZE = {'two_moons': 500, 'two_circles': 500, 'two_spirals': 500,
                'xor': 100}
# The quantile of the robust distance-diameter ratio.
ROBUST_Q = 0.01


def settings(name: str, max_steps: Optional[int] = None,
             size_scale: float = 1.0) -> Dict[str, Any]:
    r"""The official settings of :obj:`name`, with the number of diffusion
    steps capped at :obj:`max_steps` and the size scaled by
    :obj:`size_scale`; ``size`` counts points per class (per disc for
    XOR)."""
    s = dict(PAPER[name])
    if max_steps is not None:
        s['num_steps'] = min(s['num_steps'], max_steps)
    s['size'] = max(2, int(round(DEFAULT_SIZE[name] * size_scale)))
    return s


def class_size(name: str, s: Dict[str, Any]) -> int:
    r"""Points per class of :obj:`name` under settings :obj:`s` (XOR: two
    discs per class)."""
    return 2 * s['size'] if name == 'xor' else s['size']


def check_settings(name: str, s: Dict[str, Any],
                   label_rate: Optional[float] = None) -> None:
    r"""Raises :class:`ValueError` if the points of :obj:`name` under
    settings :obj:`s` cannot carry its k-NN graph, or if
    :obj:`label_rate` leaves no unlabelled point of a class to test on."""
    n = class_size(name, s)
    if 2 * n <= s['k']:
        raise ValueError(f"--size-scale: {name} would have {2 * n} points, "
                         f"but its k-NN graph needs more than k={s['k']}")
    if label_rate is not None and max(1, round(label_rate * n)) >= n:
        raise ValueError(f"--label-rate {label_rate}: every point of a "
                         f"{name} class ({n} points) would be labelled, "
                         f"leaving none to test on")


def build(name: str, seed: int, s: Dict[str, Any]) -> Data:
    r"""The toy set :obj:`name` drawn with :obj:`seed`, with its Gaussian
    k-NN graph (row-normalised, self included) as in the official code."""
    data = load_toy(name, seed=seed,
                    **{SIZE_ARG.get(name, 'num_per_class'): s['size']})
    graph = GaussianKNNGraph(k=s['k'], sigma=s['sigma'], normalize='row',
                             symmetrize=None, loop=True)
    return graph(data)
