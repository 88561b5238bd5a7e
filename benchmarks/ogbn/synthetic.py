r"""Synthetic stand-ins for OGB node property prediction datasets.

The generator plants a degree-corrected stochastic block model (Karrer and
Newman, `"Stochastic blockmodels and community structure in networks"
<https://arxiv.org/abs/1008.3926>`_) with class-correlated Gaussian features,
and writes it in the exact raw layout of the Open Graph Benchmark, so that the
unmodified :class:`ogb.nodeproppred.PygNodePropPredDataset` loads it offline.

Every node :math:`i` gets a planted community :math:`z_i` (skewed sizes), a
degree propensity :math:`\theta_i \sim \mathrm{LogNormal}(0, \sigma^2)`,
features

.. math::
    \mathbf{x}_i = s \cdot (\rho \, \boldsymbol{\mu}_{z_i} +
    \boldsymbol{\varepsilon}_i), \qquad
    \boldsymbol{\mu}_c, \boldsymbol{\varepsilon}_i \sim
    \mathcal{N}(\mathbf{0}, \mathbf{I}),

and the label :math:`y_i = z_i`, replaced with probability :math:`\eta` by
a uniformly random class (label noise caps the attainable accuracy near
:math:`1 - \eta`, as topic overlap does on the real data).

An edge picks its first end point with probability :math:`\propto \theta_i`;
with probability :math:`p_{\mathrm{in}}` its second end point is drawn
:math:`\propto \theta_j` from the community of the first, otherwise
:math:`\propto \theta_j` from all nodes (multinomial counts, no binary
search). Self-loops and duplicates (in either direction) are redrawn, so the
graph is simple and has exactly the requested number of edges. Averaging
features over neighbours removes noise faster than it mixes communities:
diffusion helps over an MLP. The split follows the real one: by year for
arxiv (edges point from the newer paper to the older), by a popularity rank
correlated with the degree for products (training nodes are the best
connected).

None of this is OGB data. Numbers measured on it are never OGB results.
"""
import json
import math
import os
import os.path as osp
import shutil
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, Optional

import numpy as np

from benchmarks.ogbn.csv_gz import (format_float_rows, format_int_rows,
                                   open_gzip, write_int_column)

#: Sizes of the real datasets, from the OGB paper and the processed files.
OGB_LIKE: Dict[str, Dict] = {
    'ogbn-arxiv': dict(
        num_nodes=169_343,
        num_edges=1_166_243,  # Directed citations, as in `raw/edge.csv.gz`.
        num_features=128,
        num_classes=40,
        split_type='time',
        split_sizes=(90_941, 29_799, 48_603),
        directed=True,
        homophily=0.65,
        class_skew=1.0,
        degree_sigma=1.0,
        feature_signal=0.22,
        label_noise=0.2,
    ),
    'ogbn-products': dict(
        num_nodes=2_449_029,
        num_edges=61_859_140,  # Undirected, each edge listed once.
        num_features=100,
        num_classes=47,
        split_type='sales_ranking',
        split_sizes=(196_615, 39_323, 2_213_091),
        directed=False,
        homophily=0.90,
        class_skew=1.2,
        degree_sigma=1.2,
        feature_signal=0.3,
        label_noise=0.15,
    ),
}

MARKER_FILE = 'SYNTHETIC.json'
_CHUNK = 1 << 16  # Rows per random chunk; fixed, so results do not depend
# on the write buffer size.


@dataclass
class SyntheticOGBSizes:
    r"""Node, edge and split counts of a synthetic OGB-like dataset."""
    name: str
    num_nodes: int
    num_edges: int
    num_features: int
    num_classes: int
    num_train: int
    num_valid: int
    num_test: int


def synthetic_ogb_sizes(like: str, scale: float = 1.0) -> SyntheticOGBSizes:
    r"""Returns the sizes of a dataset like :obj:`like` at :obj:`scale`.

    Node and edge counts (and the split sizes) are the real ones multiplied by
    :obj:`scale` and rounded; features and classes are unchanged, so
    :obj:`scale=1.0` gives exactly the real sizes.

    Args:
        like (str): :obj:`"ogbn-arxiv"` or :obj:`"ogbn-products"`.
        scale (float, optional): Size multiplier. (default: :obj:`1.0`)
    """
    if like not in OGB_LIKE:
        raise ValueError(f"Unknown dataset '{like}' (choose from "
                         f"{', '.join(OGB_LIKE)})")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale)
            and scale > 0):
        raise ValueError(f"'scale' must be a positive number (got {scale})")
    spec = OGB_LIKE[like]
    num_nodes = int(round(spec['num_nodes'] * scale))
    num_edges = int(round(spec['num_edges'] * scale))
    if num_nodes < 2 * spec['num_classes']:
        raise ValueError(f"scale={scale} gives {num_nodes} nodes, fewer than "
                         f"two per class ({spec['num_classes']} classes)")
    if num_edges > num_nodes * (num_nodes - 1) // 4:
        raise ValueError(f"scale={scale} gives {num_edges} edges on "
                         f"{num_nodes} nodes, too dense for a simple graph")
    train, valid, _ = spec['split_sizes']
    num_train = int(round(train / spec['num_nodes'] * num_nodes))
    num_valid = int(round(valid / spec['num_nodes'] * num_nodes))
    return SyntheticOGBSizes(
        name=like,
        num_nodes=num_nodes,
        num_edges=num_edges,
        num_features=spec['num_features'],
        num_classes=spec['num_classes'],
        num_train=num_train,
        num_valid=num_valid,
        num_test=num_nodes - num_train - num_valid,
    )


# Planted structure ###########################################################


class _Planted:
    r"""Classes, degree propensities and split of every node, plus samplers.
    Memory is :math:`O(N)`; edges and features are produced in chunks."""
    def __init__(self, sizes: SyntheticOGBSizes, seed: int) -> None:
        spec = OGB_LIKE[sizes.name]
        self.sizes = sizes
        self.spec = spec
        self.seed = seed
        n, c = sizes.num_nodes, sizes.num_classes
        rng = np.random.default_rng([seed, 0])

        # Skewed class sizes in a random class order; every class non-empty.
        prop = np.arange(1, c + 1, dtype=np.float64)**(-spec['class_skew'])
        prop = rng.permutation(prop / prop.sum())
        z = np.concatenate([np.arange(c), rng.choice(c, size=n - c, p=prop)])
        self.z = rng.permutation(z).astype(np.int64)  # Planted community.
        # The observed label is the community, or with probability
        # `label_noise` a uniformly random class (an irreducible error).
        noisy = rng.random(n) < spec['label_noise']
        self.y = np.where(noisy, rng.integers(0, c, size=n), self.z)

        self.theta = rng.lognormal(0.0, spec['degree_sigma'], size=n)

        # Nodes grouped by class, for sampling inside a class.
        self.order = np.argsort(self.z, kind='stable')
        counts = np.bincount(self.z, minlength=c)
        self.start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.end = self.start + counts

        # Split: by year (arxiv) or by a popularity ranking (products).
        num_train, num_valid = sizes.num_train, sizes.num_valid
        if spec['split_type'] == 'time':
            perm = rng.permutation(n)
            year = np.empty(n, dtype=np.int64)
            older = np.arange(1971, 2018)
            w = np.exp(0.12 * (older - 2017))  # More papers every year.
            year[perm[:num_train]] = rng.choice(older, num_train,
                                                p=w / w.sum())
            year[perm[num_train:num_train + num_valid]] = 2018
            year[perm[num_train + num_valid:]] = rng.choice(
                [2019, 2020], n - num_train - num_valid, p=[0.7, 0.3])
            self.year: Optional[np.ndarray] = year
        else:  # Top sellers are training nodes, as in ogbn-products.
            score = np.log(self.theta) + rng.normal(0.0, 0.5, size=n)
            perm = np.argsort(-score, kind='stable')
            self.year = None
        self.split = {
            'train': np.sort(perm[:num_train]),
            'valid': np.sort(perm[num_train:num_train + num_valid]),
            'test': np.sort(perm[num_train + num_valid:]),
        }

        f = sizes.num_features
        self.centroids = rng.standard_normal((c, f)).astype(np.float32)

    def _draw(self, rng: np.random.Generator, k: int,
              members: np.ndarray) -> np.ndarray:
        # `k` nodes from `members`, each with probability proportional to its
        # theta, in random order: multinomial counts instead of a binary
        # search per draw (O(|members| + k), cache friendly).
        w = self.theta[members]
        out = np.repeat(members, rng.multinomial(k, w / w.sum()))
        rng.shuffle(out)
        return out

    def _sample_keys(self, rng: np.random.Generator, k: int) -> np.ndarray:
        r"""Draws :obj:`k` edges as keys :math:`a N + b` with :math:`a < b`
        (self-loops dropped, so possibly fewer)."""
        n = self.sizes.num_nodes
        src = self._draw(rng, k, np.arange(n))
        dst = np.empty_like(src)
        intra = rng.random(k) < self.spec['homophily']
        dst[~intra] = self._draw(rng, int(k - intra.sum()), np.arange(n))
        slots = np.flatnonzero(intra)
        cls = self.z[src[slots]].astype(np.int16)
        slots = slots[np.argsort(cls, kind='stable')]  # Radix sort.
        counts = np.bincount(cls, minlength=self.sizes.num_classes)
        offset = 0
        for c in np.flatnonzero(counts):
            members = self.order[self.start[c]:self.end[c]]
            dst[slots[offset:offset + counts[c]]] = self._draw(
                rng, int(counts[c]), members)
            offset += counts[c]
        a, b = np.minimum(src, dst), np.maximum(src, dst)
        keep = a != b
        return a[keep] * n + b[keep]

    def edge_keys(self) -> np.ndarray:
        r"""The sorted, unique keys of exactly :obj:`num_edges` edges."""
        m = self.sizes.num_edges
        rng = np.random.default_rng([self.seed, 1])
        chunk = max(1 << 22, self.sizes.num_nodes)
        keys = np.empty(0, dtype=np.int64)
        loss = 0.05  # Share of draws lost to loops and duplicates (adapted).
        for _ in range(100):
            need = m - keys.size
            if need <= 0:
                break
            draw = int(need / (1.0 - min(loss, 0.9)) * 1.01) + 64
            new = [self._sample_keys(rng, min(chunk, draw - i))
                   for i in range(0, draw, chunk)]
            new.append(keys)
            before = keys.size
            keys = np.concatenate(new)
            del new
            keys.sort()  # In place; faster than np.unique's hash table.
            keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
            loss = 1.0 - (keys.size - before) / draw
        else:
            raise RuntimeError('Could not draw enough distinct edges')
        if keys.size > m:  # Drop a random excess.
            keep = np.ones(keys.size, dtype=bool)
            keep[rng.choice(keys.size, keys.size - m, replace=False)] = False
            keys = keys[keep]
        return keys

    def edges(self, keys: np.ndarray,
              chunk: int = 1 << 19) -> Iterator[np.ndarray]:
        r"""Yields ``[k, 2]`` edge rows from :obj:`keys`. Arxiv-like edges
        point from the newer paper to the older one (citations)."""
        n = self.sizes.num_nodes
        for i, j in enumerate(range(0, keys.size, chunk)):
            k = keys[j:j + chunk]
            a, b = k // n, k % n
            if self.year is not None:
                rng = np.random.default_rng([self.seed, 2, i])
                ya, yb = self.year[a], self.year[b]
                flip = (ya < yb) | ((ya == yb) & (rng.random(k.size) < 0.5))
                a, b = np.where(flip, b, a), np.where(flip, a, b)
            yield np.stack([a, b], axis=1)

    def features(self, decimals: int) -> Iterator[np.ndarray]:
        r"""Yields ``[k, F]`` float32 feature rows, rounded to
        :obj:`decimals` (as stored in the text file)."""
        n, f = self.sizes.num_nodes, self.sizes.num_features
        signal = self.spec['feature_signal']
        for i, j in enumerate(range(0, n, _CHUNK)):
            rng = np.random.default_rng([self.seed, 3, i])
            z = self.z[j:j + _CHUNK]
            x = rng.standard_normal((z.size, f), dtype=np.float32)
            x += signal * self.centroids[z]
            x *= 0.1  # Per-dimension scale close to the real arxiv features.
            limit = 10.0 - 10.0**-decimals
            np.clip(x, -limit, limit, out=x)
            yield np.round(x, decimals)


# Public API ##################################################################


def ogb_dir_name(name: str) -> str:
    r"""The folder OGB uses for :obj:`name`, e.g. :obj:`"ogbn_arxiv"`."""
    return '_'.join(name.split('-'))


def ogb_meta_dict(name: str, dir_path: str) -> Dict[str, str]:
    r"""The :obj:`meta_dict` that makes :class:`PygNodePropPredDataset` read
    the dataset :obj:`name` from :obj:`dir_path` (OGB's own ``master.csv``
    entry with ``dir_path`` set)."""
    import pandas as pd
    import ogb.nodeproppred as ogbn
    master = pd.read_csv(osp.join(osp.dirname(ogbn.__file__), 'master.csv'),
                         index_col=0, keep_default_na=False)
    if name not in master:
        raise ValueError(f"'{name}' is not an OGB node property prediction "
                         f"dataset")
    meta = {k: str(v) for k, v in master[name].items()}
    meta['dir_path'] = dir_path
    return meta


def write_synthetic_ogb(
    like: str,
    root: str,
    scale: float = 1.0,
    seed: int = 0,
    decimals: int = 4,
    compresslevel: int = 1,
    overwrite: bool = False,
    verbose: bool = False,
) -> str:
    r"""Writes a synthetic dataset in OGB's raw layout to
    ``<root>/<ogbn_name>/`` and returns that folder:

    .. code-block:: none

        RELEASE_v1.txt  SYNTHETIC.json
        raw/edge.csv.gz  raw/node-feat.csv.gz  raw/node-label.csv.gz
        raw/num-node-list.csv.gz  raw/num-edge-list.csv.gz
        raw/node_year.csv.gz                   (arxiv only)
        split/<time|sales_ranking>/{train,valid,test}.csv.gz

    All files are header-less CSV, as OGB's. Edges are streamed from the
    sorted edge keys and features chunk by chunk, so peak memory is about
    :math:`16 |\mathcal{E}|` bytes (the keys and their sort).

    Args:
        like (str): :obj:`"ogbn-arxiv"` or :obj:`"ogbn-products"`.
        root (str): OGB's root folder.
        scale (float, optional): Size multiplier. (default: :obj:`1.0`)
        seed (int, optional): Random seed. (default: :obj:`0`)
        decimals (int, optional): Decimals of the features. (default: :obj:`4`)
        compresslevel (int, optional): gzip level. (default: :obj:`1`)
        overwrite (bool, optional): Replace an existing folder (including its
            ``processed/`` cache). (default: :obj:`False`)
        verbose (bool, optional): Print progress. (default: :obj:`False`)
    """
    sizes = synthetic_ogb_sizes(like, scale)
    if not 1 <= decimals <= 8:
        raise ValueError(f"'decimals' must be in 1..8 (got {decimals})")
    path = osp.join(root, ogb_dir_name(like))
    if osp.exists(path):
        if not overwrite:
            raise FileExistsError(f"'{path}' exists; pass overwrite=True "
                                  f"(--overwrite) to replace it")
        shutil.rmtree(path)
    raw = osp.join(path, 'raw')
    split_dir = osp.join(path, 'split', OGB_LIKE[like]['split_type'])
    os.makedirs(raw)
    os.makedirs(split_dir)

    def log(msg: str) -> None:
        if verbose:
            print(msg, flush=True)

    planted = _Planted(sizes, seed)
    log(f'Sampling {sizes.num_edges:,} edges on {sizes.num_nodes:,} nodes')
    keys = planted.edge_keys()
    log('Writing raw/edge.csv.gz')
    with open_gzip(osp.join(raw, 'edge.csv.gz'), compresslevel) as f:
        for rows in planted.edges(keys):
            f.write(format_int_rows(rows))
    del keys
    log('Writing raw/node-feat.csv.gz')
    with open_gzip(osp.join(raw, 'node-feat.csv.gz'), compresslevel) as f:
        for x in planted.features(decimals):
            for j in range(0, x.shape[0], 1 << 13):
                f.write(format_float_rows(x[j:j + (1 << 13)], decimals))
    write_int_column(osp.join(raw, 'node-label.csv.gz'), planted.y,
                      compresslevel)
    if planted.year is not None:
        write_int_column(osp.join(raw, 'node_year.csv.gz'), planted.year,
                          compresslevel)
    write_int_column(osp.join(raw, 'num-node-list.csv.gz'),
                      np.array([sizes.num_nodes]), compresslevel)
    write_int_column(osp.join(raw, 'num-edge-list.csv.gz'),
                      np.array([sizes.num_edges]), compresslevel)
    for key, idx in planted.split.items():
        write_int_column(osp.join(split_dir, f'{key}.csv.gz'), idx,
                          compresslevel)
    with open(osp.join(path, 'RELEASE_v1.txt'), 'w') as f:
        f.write(f'Synthetic {like}-like data written by torch_geometric_diff '
                f'(not OGB data).\n')
    with open(osp.join(path, MARKER_FILE), 'w') as f:
        json.dump(dict(asdict(sizes), like=like, scale=scale, seed=seed,
                       decimals=decimals, generator='torch_geometric_diff.'
                       'datasets.synthetic_ogb'), f, indent=2)
    log(f'Done: {path}')
    return path


def synthetic_ogb_data(like: str, scale: float = 1.0, seed: int = 0,
                       decimals: int = 4):
    r"""Builds the same dataset as :func:`write_synthetic_ogb` in memory, in
    the form OGB's loader produces (``edge_index`` of arxiv directed, of
    products with interleaved inverse edges; ``y`` of shape ``[N, 1]``), and
    returns :obj:`(data, split_idx)`. Skips the text files entirely, which
    matters for products-size graphs."""
    import torch
    from torch_geometric.data import Data

    sizes = synthetic_ogb_sizes(like, scale)
    planted = _Planted(sizes, seed)
    keys = planted.edge_keys()
    edge = np.concatenate(list(planted.edges(keys))).T
    del keys
    if not OGB_LIKE[like]['directed']:  # As ogb's `add_inverse_edge`.
        dup = np.repeat(edge, 2, axis=1)
        dup[0, 1::2], dup[1, 1::2] = edge[1], edge[0]
        edge = dup
    x = np.concatenate(list(planted.features(decimals)))
    data = Data(num_nodes=sizes.num_nodes,
                edge_index=torch.from_numpy(np.ascontiguousarray(edge)),
                x=torch.from_numpy(x),
                y=torch.from_numpy(planted.y[:, None]))
    if planted.year is not None:
        data.node_year = torch.from_numpy(planted.year[:, None])
    split_idx = {k: torch.from_numpy(v) for k, v in planted.split.items()}
    return data, split_idx


def read_synthetic_marker(path: str) -> Optional[Dict]:
    r"""The generator's record in the dataset folder :obj:`path`, or
    :obj:`None` if the folder was not written by :func:`write_synthetic_ogb`.
    """
    marker = osp.join(path, MARKER_FILE)
    if not osp.exists(marker):
        return None
    with open(marker) as f:
        return json.load(f)


__all__ = [
    'OGB_LIKE',
    'SyntheticOGBSizes',
    'synthetic_ogb_sizes',
    'write_synthetic_ogb',
    'synthetic_ogb_data',
    'ogb_dir_name',
    'ogb_meta_dict',
    'read_synthetic_marker',
]
