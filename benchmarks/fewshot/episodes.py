from typing import Iterator, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor


class Episode(NamedTuple):
    r"""One :math:`N`-way :math:`K`-shot task with :math:`Q` queries per
    class. Indices point into the sampler's feature matrix; the episode
    labels are :math:`0, \ldots, N - 1` in the order of :obj:`classes`.
    Support and query are class-major: rows :math:`cK, \ldots, cK + K - 1`
    of the support belong to episode class :math:`c`."""
    support_idx: Tensor  # [N * K]
    support_y: Tensor  # [N * K]
    query_idx: Tensor  # [N * Q]
    query_y: Tensor  # [N * Q]
    classes: Tensor  # [N], the original labels


class EpisodeSampler:
    r"""Samples transductive few-shot episodes from a labelled pool.

    Every episode draws :obj:`n_way` distinct classes, then for every class
    :obj:`k_shot + n_query` distinct samples without replacement: the first
    :obj:`k_shot` form the support, the rest the query. Support and query of
    an episode are therefore disjoint, and every query's label is one of the
    episode's classes. Episodes are independent draws (a sample may appear in
    several episodes, as in the standard protocol).

    Args:
        labels (torch.Tensor or numpy.ndarray): The integer label of every
            sample :math:`[M]`.
        n_way (int): Classes per episode.
        k_shot (int): Labelled samples per class.
        n_query (int): Unlabelled query samples per class.
        classes (Sequence[int], optional): The classes to sample from (e.g.
            the novel classes). :obj:`None` uses every label.
            (default: :obj:`None`)
        seed (int, optional): Seed of the sampler's own generator.
            (default: :obj:`0`)
    """
    def __init__(
        self,
        labels: Union[Tensor, np.ndarray, Sequence[int]],
        n_way: int,
        k_shot: int,
        n_query: int,
        classes: Optional[Sequence[int]] = None,
        seed: int = 0,
    ) -> None:
        labels = torch.as_tensor(np.asarray(labels))
        if labels.is_floating_point() or labels.is_complex() \
                or labels.dtype == torch.bool:
            raise TypeError(f"'labels' must be integers (got "
                            f"{labels.dtype})")
        labels = labels.long().view(-1)
        for name, value, low in [('n_way', n_way, 2), ('k_shot', k_shot, 1),
                                 ('n_query', n_query, 1)]:
            if not isinstance(value, int) or value < low:
                raise ValueError(f"'{name}' must be an integer >= {low} "
                                 f"(got {value!r})")
        pool = torch.unique(labels) if classes is None else torch.as_tensor(
            list(classes)).long()
        need = k_shot + n_query
        self.class_index: List[Tensor] = []
        kept = []
        for c in pool.tolist():
            idx = (labels == c).nonzero().view(-1)
            if idx.numel() >= need:
                kept.append(c)
                self.class_index.append(idx)
        if len(kept) < n_way:
            raise ValueError(f"Only {len(kept)} classes have at least "
                             f"k_shot + n_query = {need} samples, but "
                             f"n_way = {n_way}")
        self.classes = torch.tensor(kept)
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> Episode:
        r"""Draws one episode."""
        g = self.generator
        pick = torch.randperm(len(self.classes), generator=g)[:self.n_way]
        support, query = [], []
        for c in pick.tolist():
            idx = self.class_index[c]
            perm = idx[torch.randperm(idx.numel(), generator=g)]
            support.append(perm[:self.k_shot])
            query.append(perm[self.k_shot:self.k_shot + self.n_query])
        ways = torch.arange(self.n_way)
        return Episode(
            support_idx=torch.cat(support),
            support_y=ways.repeat_interleave(self.k_shot),
            query_idx=torch.cat(query),
            query_y=ways.repeat_interleave(self.n_query),
            classes=self.classes[pick],
        )

    def __call__(self, num_episodes: int) -> Iterator[Episode]:
        for _ in range(num_episodes):
            yield self.sample()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.n_way}-way '
                f'{self.k_shot}-shot, {self.n_query} queries, '
                f'{len(self.classes)} classes)')


def mean_confidence_interval(values: Union[Sequence[float], np.ndarray,
                                           Tensor]) -> tuple:
    r"""Mean and half-width of the normal-approximation 95% confidence
    interval, :math:`1.96\, s / \sqrt{n}` with the sample standard deviation
    :math:`s` (ddof=1), over episodes."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError('no values')
    if a.size == 1:
        return float(a[0]), float('nan')
    return float(a.mean()), float(1.96 * a.std(ddof=1) / np.sqrt(a.size))
