r"""The evaluation protocols: which nodes a run sees and how they are split.

* ``random``: the paper's protocol (the largest connected component, 20
  training and 30 validation nodes per class, the rest for testing, seeds
  drawn as in the official code; see :mod:`benchmarks.common.splits`).
* ``public``: the public Planetoid split.
* ``geom-gcn``: the fixed splits a dataset ships (the 10 Geom-GCN 60/20/20
  splits; Minesweeper and Tolokers: their 10 50/25/25 splits).
"""
import sys
from typing import List

import torch
from torch import Tensor

from benchmarks.common import NodeSplit, mask_splits, random_splits

PROTOCOLS = ('public', 'random', 'geom-gcn')
DEFAULT_SPLITS = {'public': 1, 'random': 100, 'geom-gcn': 10}

# The random protocol draws 20 training and 30 validation nodes per class.
MIN_CLASS_SIZE = 50


def random_protocol_splits(y: Tensor, spec, num_splits: int, num_inits: int,
                           seed: int) -> List[NodeSplit]:
    r"""The random splits of :obj:`y` (labels of the largest connected
    component). Raises :class:`ValueError` if a class is too small."""
    counts = torch.bincount(y)
    if int(counts[counts > 0].min()) < MIN_CLASS_SIZE:
        small = [i for i, c in enumerate(counts.tolist())
                 if 0 < c < MIN_CLASS_SIZE]
        raise ValueError(f"'{spec.name}': classes {small} have fewer than "
                         f"50 nodes in the largest connected component; the "
                         f"random protocol (20 train + 30 val per class) "
                         f"needs 50 (use --protocol geom-gcn)")
    return random_splits(y, seed, num_splits, num_inits)


def fixed_splits(data, spec, protocol: str, num_splits: int, num_inits: int,
                 seed: int) -> List[NodeSplit]:
    r"""The public or shipped splits in the masks of :obj:`data`, at most
    :obj:`num_splits` of them (fewer, with a note, if fewer are shipped)."""
    masks = (data.train_mask, data.val_mask, data.test_mask)
    if protocol == 'public':
        if spec.pyg_class != 'Planetoid':
            raise ValueError(f"'{spec.name}' has no public split; use "
                             f"--protocol geom-gcn or random")
    elif masks[0].dim() != 2:
        raise ValueError(f"'{spec.name}' ships no fixed splits")
    available = 1 if masks[0].dim() == 1 else masks[0].size(1)
    if num_splits > available:  # --splits counts up to what is shipped.
        print(f"note: '{spec.name}' ships {available} fixed {protocol} "
              f"split(s); using {available}", file=sys.stderr)
        num_splits = available
    return mask_splits(*masks, num_splits=num_splits, seed=seed,
                       num_inits=num_inits)
