from typing import Callable, Dict, Iterable, Optional, Sequence

import numpy as np
from torch import Tensor

from .episodes import Episode, EpisodeSampler
from .methods import center_l2

Method = Callable[[Tensor, Tensor, Tensor, int], Tensor]


def evaluate_episodes(
    features: Tensor,
    labels: Tensor,
    methods: Dict[str, Method],
    n_way: int = 5,
    k_shot: int = 1,
    n_query: int = 15,
    num_episodes: int = 600,
    base_mean: Optional[Tensor] = None,
    classes: Optional[Sequence[int]] = None,
    seed: int = 0,
    progress: Optional[Callable[[Iterable], Iterable]] = None,
) -> Dict[str, np.ndarray]:
    r"""Query accuracy (in %) of every method on the same
    :obj:`num_episodes` episodes, so that methods can be compared episode
    by episode. Features are centred with :obj:`base_mean` and
    L2-normalised (:func:`center_l2`) once before sampling.

    Args:
        features (torch.Tensor): Embeddings :math:`[M, F]`.
        labels (torch.Tensor): Labels :math:`[M]`.
        methods (Dict[str, Callable]): Name to
            :obj:`f(support, support_y, query, n_way) -> query_pred`.
        progress (Callable, optional): Wraps the episode iterator, e.g.
            :obj:`tqdm.tqdm`. (default: :obj:`None`)

    Returns:
        Name to an array of :obj:`num_episodes` accuracies.
    """
    x = center_l2(features.float(), base_mean)
    sampler = EpisodeSampler(labels, n_way, k_shot, n_query, classes=classes,
                             seed=seed)
    episodes: Iterable[Episode] = sampler(num_episodes)
    if progress is not None:
        episodes = progress(episodes)
    acc: Dict[str, list] = {name: [] for name in methods}
    for ep in episodes:
        support, query = x[ep.support_idx], x[ep.query_idx]
        for name, method in methods.items():
            pred = method(support, ep.support_y, query, n_way)
            correct = (pred == ep.query_y).float().mean()
            acc[name].append(100.0 * float(correct))
    return {name: np.asarray(v) for name, v in acc.items()}
