r"""Node splits for semi-supervised node classification.

Implements the protocol of the `"Diffusion Mechanism in Residual Neural
Network: Theory and Applications" <https://arxiv.org/abs/2105.03155>`_ paper
(which follows `"Pitfalls of Graph Neural Network Evaluation"
<https://arxiv.org/abs/1811.05868>`_): keep the largest connected component,
draw 20 training and 30 validation nodes per class at random and test on all
remaining nodes. Seeds are drawn exactly like the official code, so split
:obj:`i` of master seed :obj:`s` is the same split the official code uses.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from torch import Tensor

MAX_SEED = 10**6


@dataclass
class NodeSplit:
    r"""One train/validation/test split of the nodes of a graph.

    Args:
        train_index (torch.Tensor): Training node indices.
        val_index (torch.Tensor): Validation node indices.
        test_index (torch.Tensor): Test node indices.
        split (int): The position of the split in its protocol.
        seed (int, optional): The seed the split was drawn from (random
            splits only).
        init_seeds (List[int]): The seeds of the model initialisations that
            belong to this split.
    """
    train_index: Tensor
    val_index: Tensor
    test_index: Tensor
    split: int = 0
    seed: Optional[int] = None
    init_seeds: List[int] = field(default_factory=list)

    def masks(self, num_nodes: int) -> List[Tensor]:
        r"""Returns the boolean :obj:`[train_mask, val_mask, test_mask]`."""
        out = []
        for index in (self.train_index, self.val_index, self.test_index):
            mask = torch.zeros(num_nodes, dtype=torch.bool)
            mask[index] = True
            out.append(mask)
        return out


def _to_numpy(x: Union[Tensor, np.ndarray, Sequence[int]]) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def largest_connected_component(edge_index: Union[Tensor, np.ndarray],
                                num_nodes: int) -> Tensor:
    r"""Returns the sorted indices of the nodes in the largest connected
    component of a graph, with edges taken as undirected (weak
    connectivity), as in the official Diff-ResNet code.

    Args:
        edge_index (torch.Tensor): The edge indices :obj:`[2, E]`.
        num_nodes (int): The number of nodes :math:`N`.

    :rtype: :class:`torch.LongTensor` of shape :obj:`[N_lcc]`
    """
    if num_nodes <= 0:
        raise ValueError(f"'num_nodes' must be positive (got {num_nodes})")
    row, col = _to_numpy(edge_index)
    if row.size and max(row.max(), col.max()) >= num_nodes:
        raise ValueError(f"'edge_index' refers to node "
                         f"{max(row.max(), col.max())} but 'num_nodes' is "
                         f"{num_nodes}")
    adj = sp.coo_matrix((np.ones(row.size), (row, col)),
                        shape=(num_nodes, num_nodes))
    _, component = connected_components(adj, directed=True,
                                        connection='weak')
    # Ties between equally large components go to the one found first.
    largest = np.argmax(np.bincount(component))
    return torch.from_numpy(np.flatnonzero(component == largest))


def sample_per_class(random_state: np.random.RandomState,
                     y: Union[Tensor, np.ndarray], num_per_class: int,
                     forbidden: Optional[np.ndarray] = None) -> np.ndarray:
    r"""Draws :obj:`num_per_class` nodes of every class without replacement,
    class by class in ascending label order, each from its candidates in
    ascending node order (the order of the official code, so the same
    :obj:`random_state` gives the same nodes).

    Raises:
        ValueError: If a class has fewer than :obj:`num_per_class` allowed
            nodes.
    """
    y = _to_numpy(y)
    allowed = np.ones(y.shape[0], dtype=bool)
    if forbidden is not None and len(forbidden) > 0:
        allowed[np.asarray(forbidden)] = False
    out = []
    for c in np.unique(y):
        candidates = np.flatnonzero((y == c) & allowed)
        if candidates.size < num_per_class:
            raise ValueError(f"Class {c} has only {candidates.size} nodes "
                             f"left, fewer than the {num_per_class} per "
                             f"class requested")
        out.append(random_state.choice(candidates, num_per_class,
                                       replace=False))
    return np.concatenate(out)


def random_split(y: Union[Tensor, np.ndarray], seed: int,
                 num_train_per_class: int = 20, num_val_per_class: int = 30,
                 num_inits: int = 0, split: int = 0) -> NodeSplit:
    r"""Draws one split of the paper's random protocol:
    :obj:`num_train_per_class` training and :obj:`num_val_per_class`
    validation nodes per class, all remaining nodes for testing. The :obj:`num_inits` initialisation seeds
    are drawn afterwards from the same :class:`numpy.random.RandomState`, as
    in the official code.

    Args:
        y (torch.Tensor): Node labels :obj:`[N]` (of the graph the split is
            for, e.g. its largest connected component).
        seed (int): The split seed.
        num_train_per_class (int, optional): (default: :obj:`20`)
        num_val_per_class (int, optional): (default: :obj:`30`)
        num_inits (int, optional): Number of init seeds. (default: :obj:`0`)
        split (int, optional): The position of the split. (default: :obj:`0`)
    """
    if num_train_per_class < 1 or num_val_per_class < 0:
        raise ValueError(f"Need at least one training node per class and a "
                         f"non-negative number of validation nodes (got "
                         f"{num_train_per_class} and {num_val_per_class})")
    y = _to_numpy(y)
    rs = np.random.RandomState(seed)
    train = sample_per_class(rs, y, num_train_per_class)
    val = sample_per_class(rs, y, num_val_per_class, forbidden=train)
    test = np.setdiff1d(np.arange(y.shape[0]), np.concatenate([train, val]))
    init_seeds = rs.randint(0, MAX_SEED, num_inits).tolist()
    return NodeSplit(torch.from_numpy(train), torch.from_numpy(val),
                     torch.from_numpy(test), split=split, seed=int(seed),
                     init_seeds=[int(s) for s in init_seeds])


def split_seeds(seed: int, num_splits: int) -> List[int]:
    r"""The split seeds :obj:`np.random.RandomState(seed).randint(0, 10**6,
    num_splits)` of the official code."""
    if num_splits < 1:
        raise ValueError(f"'num_splits' must be positive (got {num_splits})")
    return [int(s) for s in
            np.random.RandomState(seed).randint(0, MAX_SEED, num_splits)]


def random_splits(y: Union[Tensor, np.ndarray], seed: int, num_splits: int,
                  num_inits: int, num_train_per_class: int = 20,
                  num_val_per_class: int = 30) -> List[NodeSplit]:
    r"""The first :obj:`num_splits` splits of the paper's random protocol for
    master seed :obj:`seed` (default 42 in the official code), each with
    :obj:`num_inits` init seeds. Asking for fewer splits or inits gives a
    prefix of the larger protocol."""
    return [
        random_split(y, s, num_train_per_class, num_val_per_class, num_inits,
                     split=i) for i, s in enumerate(split_seeds(seed,
                                                                num_splits))
    ]


def mask_splits(train_mask: Tensor, val_mask: Tensor, test_mask: Tensor,
                num_splits: Optional[int] = None, seed: int = 0,
                num_inits: int = 1) -> List[NodeSplit]:
    r"""Turns fixed boolean masks into splits: :obj:`[N]` masks give one split
    (the public Planetoid split), :obj:`[N, S]` masks give :obj:`S` splits
    (the 60/20/20 Geom-GCN splits, or the 10 splits that Minesweeper and
    Tolokers ship with). Init seeds are drawn per split as in
    :func:`random_splits`, from
    :obj:`np.random.RandomState(split_seeds(seed, S)[i])`.

    Args:
        train_mask (torch.Tensor): :obj:`[N]` or :obj:`[N, S]`.
        val_mask (torch.Tensor): Same shape as :obj:`train_mask`.
        test_mask (torch.Tensor): Same shape as :obj:`train_mask`.
        num_splits (int, optional): Use only the first :obj:`num_splits`.
        seed (int, optional): Master seed for the init seeds.
        num_inits (int, optional): Init seeds per split.
    """
    if not (train_mask.shape == val_mask.shape == test_mask.shape):
        raise ValueError(f"Mask shapes differ: {tuple(train_mask.shape)}, "
                         f"{tuple(val_mask.shape)}, {tuple(test_mask.shape)}")
    masks = [m.view(-1, 1) if m.dim() == 1 else m
             for m in (train_mask, val_mask, test_mask)]
    available = masks[0].size(1)
    if num_splits is None:
        num_splits = available
    if not 1 <= num_splits <= available:
        raise ValueError(f"Requested {num_splits} splits but the data ships "
                         f"{available} fixed split(s)")
    seeds = split_seeds(seed, num_splits)
    out = []
    for i in range(num_splits):
        index = [m[:, i].nonzero().view(-1) for m in masks]
        if len(index[0]) == 0:
            raise ValueError(f"Fixed split {i} has no training nodes")
        init = np.random.RandomState(seeds[i]).randint(0, MAX_SEED,
                                                       num_inits)
        out.append(NodeSplit(*index, split=i, seed=None,
                             init_seeds=[int(s) for s in init]))
    return out
