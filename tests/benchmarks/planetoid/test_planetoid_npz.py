import os

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from benchmarks.common import split_seeds
from benchmarks.planetoid.datasets import (DATASETS, load_pyg_dataset,
                                           preprocess)


def _official_standardized(path):
    # Transcription of the official code's loading: SparseGraph.standardize()
    # (unweighted, A + A^T binarised, no self-loops, largest component with
    # sorted nodes), binary bag-of-words rows normalised to sum 1, labels
    # one-hot by LabelBinarizer (sorted classes) and argmax.
    with np.load(path, allow_pickle=True) as f:
        adj = sp.csr_matrix((f['adj_data'], f['adj_indices'],
                             f['adj_indptr']), shape=f['adj_shape'])
        attr = sp.csr_matrix((f['attr_data'], f['attr_indices'],
                              f['attr_indptr']), shape=f['attr_shape'])
        labels = f['labels']
    adj.data = np.ones_like(adj.data)
    adj = adj + adj.T
    adj[adj != 0] = 1
    adj = adj.tolil()
    adj.setdiag(0)
    adj = adj.tocsr()
    adj.eliminate_zeros()
    _, comp = connected_components(adj)
    keep = np.argsort(np.bincount(comp))[::-1][:1]
    nodes = sorted(i for i, c in enumerate(comp) if c in keep)
    adj = adj[nodes][:, nodes]
    attr = attr[nodes].tocsr()
    attr.data[:] = 1.0
    feats = np.asarray(attr.todense())
    feats = feats / feats.sum(1, keepdims=True)
    classes = np.unique(labels[nodes])
    y = np.searchsorted(classes, labels[nodes])
    return adj, feats, y, len(classes)


def _official_sample_per_class(rs, y, num_classes, num, forbidden=None):
    per_class = {c: [] for c in range(num_classes)}
    for c in range(num_classes):
        for i in range(len(y)):
            if y[i] == c and (forbidden is None or i not in forbidden):
                per_class[c].append(i)
    return np.concatenate([rs.choice(per_class[c], num, replace=False)
                           for c in range(num_classes)])


def _official_split(seed, y, num_classes, num_inits):
    rs = np.random.RandomState(seed)
    train = _official_sample_per_class(rs, y, num_classes, 20)
    val = _official_sample_per_class(rs, y, num_classes, 30, train)
    test = np.setdiff1d(np.arange(len(y)), np.concatenate((train, val)))
    return train, val, test, rs.randint(0, 1000000, num_inits)


def test_cora_npz_is_the_official_data_and_splits(data_copy):
    root = os.path.dirname(data_copy('gnn-benchmark'))
    spec = DATASETS['cora-npz']
    data = load_pyg_dataset(spec, 'random', root, root)[0]
    g = preprocess(data, spec, 'random', num_splits=4, num_inits=3, seed=42)

    adj, feats, y, num_classes = _official_standardized(
        os.path.join(root, 'gnn-benchmark', 'cora.npz'))
    assert g.num_nodes == adj.shape[0] == 2485
    assert g.edge_index.size(1) == adj.nnz == 2 * 5069
    ours = sp.coo_matrix((np.ones(g.edge_index.size(1)),
                          g.edge_index.numpy()), shape=adj.shape).tocsr()
    assert (ours != adj).nnz == 0
    torch.testing.assert_close(g.x_dense, torch.from_numpy(feats).float())
    assert g.y.tolist() == y.tolist() and g.num_classes == num_classes

    # Split i of master seed 42 is the official sampler's, index for index,
    # and so are the init seeds drawn after it.
    for split, seed in zip(g.splits, split_seeds(42, 4)):
        train, val, test, inits = _official_split(seed, y, num_classes, 3)
        assert split.train_index.tolist() == train.tolist()
        assert split.val_index.tolist() == val.tolist()
        assert split.test_index.tolist() == test.tolist()
        assert split.init_seeds == inits.tolist()
