import gzip
import hashlib
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.ogbn.loading import ogb_safe_loading
from benchmarks.ogbn.csv_gz import format_float_rows, format_int_rows
from benchmarks.ogbn.synthetic import (
    OGB_LIKE,
    ogb_meta_dict,
    read_synthetic_marker,
    synthetic_ogb_data,
    synthetic_ogb_sizes,
    write_synthetic_ogb,
)

ogb = pytest.importorskip('ogb')
from ogb.nodeproppred import Evaluator, PygNodePropPredDataset  # noqa: E402


@pytest.fixture(scope='module')
def arxiv_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ogb'))
    write_synthetic_ogb('ogbn-arxiv', root, scale=0.01, seed=0)
    return root


def test_sizes_at_scale_one():
    arxiv = synthetic_ogb_sizes('ogbn-arxiv', 1.0)
    assert (arxiv.num_nodes, arxiv.num_edges, arxiv.num_features,
            arxiv.num_classes) == (169_343, 1_166_243, 128, 40)
    assert (arxiv.num_train, arxiv.num_valid,
            arxiv.num_test) == (90_941, 29_799, 48_603)
    products = synthetic_ogb_sizes('ogbn-products', 1.0)
    assert (products.num_nodes, products.num_edges, products.num_features,
            products.num_classes) == (2_449_029, 61_859_140, 100, 47)
    assert (products.num_train, products.num_valid,
            products.num_test) == (196_615, 39_323, 2_213_091)


@pytest.mark.parametrize('like', list(OGB_LIKE))
@pytest.mark.parametrize('scale', [0.001, 0.01, 0.37, 2.0])
def test_sizes_scale(like, scale):
    spec = OGB_LIKE[like]
    s = synthetic_ogb_sizes(like, scale)
    assert s.num_nodes == round(spec['num_nodes'] * scale)
    assert s.num_edges == round(spec['num_edges'] * scale)
    assert (s.num_features, s.num_classes) == (spec['num_features'],
                                               spec['num_classes'])
    assert s.num_train + s.num_valid + s.num_test == s.num_nodes
    train, valid, _ = spec['split_sizes']
    assert abs(s.num_train - train * scale) <= 1
    assert abs(s.num_valid - valid * scale) <= 1


def test_sizes_errors():
    assert synthetic_ogb_sizes('ogbn-arxiv', 0.01).num_nodes == 1693
    with pytest.raises(ValueError, match='Unknown dataset'):
        synthetic_ogb_sizes('ogbn-mag', 1.0)
    for scale in (0, -1.0, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='positive'):
            synthetic_ogb_sizes('ogbn-arxiv', scale)
    with pytest.raises(ValueError, match='fewer than two per class'):
        synthetic_ogb_sizes('ogbn-arxiv', 0.0001)


def test_format_int_rows():
    values = np.array([[0, 7], [10, 123456789], [99, 100]])
    ref = ''.join(','.join(str(v) for v in row) + '\n' for row in values)
    assert format_int_rows(values).decode() == ref
    assert format_int_rows(np.array([3, 0, 45])).decode() == '3\n0\n45\n'
    assert format_int_rows(np.zeros((0, 2), dtype=np.int64)) == b''
    with pytest.raises(ValueError, match='non-negative'):
        format_int_rows(np.array([[-1]]))


def test_format_float_rows():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(0, 2, size=(50, 7)), 4)
    x[0, :3] = [0.0, -9.9999, 9.9999]
    text = format_float_rows(x, 4).decode()
    ref = ''.join(','.join(f'{v:.4f}' for v in row) + '\n' for row in x)
    assert text == ref.replace('-0.0000', '0.0000')
    back = np.array([[float(v) for v in line.split(',')]
                     for line in text.splitlines()])
    assert np.array_equal(back, x)
    assert format_float_rows(np.array([[0.5, -0.25]]), 2) == b'0.50,-0.25\n'
    with pytest.raises(ValueError, match='< 10'):
        format_float_rows(np.array([[10.0]]))


def test_layout(arxiv_root):
    path = osp.join(arxiv_root, 'ogbn_arxiv')
    files = sorted(
        osp.relpath(osp.join(d, f), path) for d, _, fs in os.walk(path)
        for f in fs)
    assert files == sorted([
        'RELEASE_v1.txt', 'SYNTHETIC.json', 'raw/edge.csv.gz',
        'raw/node-feat.csv.gz', 'raw/node-label.csv.gz',
        'raw/node_year.csv.gz', 'raw/num-node-list.csv.gz',
        'raw/num-edge-list.csv.gz', 'split/time/train.csv.gz',
        'split/time/valid.csv.gz', 'split/time/test.csv.gz'
    ])
    with gzip.open(osp.join(path, 'raw', 'num-node-list.csv.gz')) as f:
        assert f.read() == b'1693\n'  # No header, as OGB's files.
    with gzip.open(osp.join(path, 'raw', 'num-edge-list.csv.gz')) as f:
        assert f.read() == b'11662\n'
    with gzip.open(osp.join(path, 'raw', 'node-feat.csv.gz')) as f:
        first = f.readline().decode().strip().split(',')
    assert len(first) == 128
    assert read_synthetic_marker(path)['like'] == 'ogbn-arxiv'
    with pytest.raises(FileExistsError, match='overwrite'):
        write_synthetic_ogb('ogbn-arxiv', arxiv_root, scale=0.01)


def _check_against_memory(data, split, like, scale):
    ref, ref_split = synthetic_ogb_data(like, scale)
    assert data.num_nodes == ref.num_nodes
    assert torch.equal(data.edge_index, ref.edge_index)
    assert torch.allclose(data.x, ref.x, atol=1e-6, rtol=0)
    assert torch.equal(data.y, ref.y)
    for key in ('train', 'valid', 'test'):
        assert torch.equal(split[key], ref_split[key])


def test_real_loader_by_name(arxiv_root):
    with ogb_safe_loading():
        dataset = PygNodePropPredDataset('ogbn-arxiv', root=arxiv_root)
        split = dataset.get_idx_split()
    data = dataset[0]
    assert dataset.num_classes == 40
    assert data.x.shape == (1693, 128) and data.x.dtype == torch.float32
    assert data.edge_index.shape == (2, 11662)
    assert data.y.shape == (1693, 1) and data.node_year.shape == (1693, 1)
    assert int(data.y.max()) < 40
    assert sum(v.numel() for v in split.values()) == 1693
    assert torch.cat(list(split.values())).unique().numel() == 1693
    # Time split: train before 2018, valid 2018, test after.
    year = data.node_year.view(-1)
    assert int(year[split['train']].max()) < 2018
    assert bool((year[split['valid']] == 2018).all())
    assert int(year[split['test']].min()) > 2018
    # Arxiv-like edges point from newer to older papers.
    row, col = data.edge_index
    assert bool((year[row] >= year[col]).all())
    _check_against_memory(data, split, 'ogbn-arxiv', 0.01)

    evaluator = Evaluator('ogbn-arxiv')
    y = data.y[split['test']]
    assert evaluator.eval({'y_true': y, 'y_pred': y})['acc'] == 1.0
    wrong = (y + 1) % 40
    assert evaluator.eval({'y_true': y, 'y_pred': wrong})['acc'] == 0.0


def test_real_loader_meta_dict(tmp_path):
    root = str(tmp_path)
    path = write_synthetic_ogb('ogbn-products', root, scale=0.001, seed=3)
    meta = ogb_meta_dict('ogbn-products', path)
    assert meta['split'] == 'sales_ranking'
    with ogb_safe_loading():
        dataset = PygNodePropPredDataset('ogbn-products', meta_dict=meta)
        split = dataset.get_idx_split()
    data = dataset[0]
    assert data.num_nodes == 2449 and data.x.shape == (2449, 100)
    # OGB adds the inverse of every listed edge.
    assert data.edge_index.shape == (2, 2 * 61859)
    assert torch.equal(data.edge_index[:, 0::2],
                       data.edge_index[:, 1::2].flip(0))
    assert split['train'].numel() == 197 and split['valid'].numel() == 39
    ref, _ = synthetic_ogb_data('ogbn-products', 0.001, seed=3)
    assert torch.equal(data.edge_index, ref.edge_index)
    evaluator = Evaluator('ogbn-products')
    y = data.y[split['valid']]
    assert evaluator.eval({'y_true': y, 'y_pred': y})['acc'] == 1.0
    with pytest.raises(ValueError, match='not an OGB'):
        ogb_meta_dict('ogbn-nothing', path)


def test_simple_graph_and_planted_structure():
    data, split = synthetic_ogb_data('ogbn-products', 0.002, seed=1)
    row, col = data.edge_index[:, 0::2]
    n = data.num_nodes
    assert row.numel() == 123_718  # round(61_859_140 * 0.002)
    assert bool((row != col).all())
    a, b = torch.minimum(row, col), torch.maximum(row, col)
    assert (a * n + b).unique().numel() == row.numel()  # No duplicates.
    # Labels agree along edges far more often than by chance.
    y = data.y.view(-1)
    homophily = float((y[row] == y[col]).float().mean())
    chance = float(((torch.bincount(y) / n)**2).sum())
    assert homophily > 0.5 > 3 * chance
    # Products-like split: training nodes are the best connected ones.
    deg = torch.bincount(data.edge_index[0], minlength=n).float()
    assert deg[split['train']].mean() > 2 * deg[split['test']].mean()


def test_deterministic(tmp_path):
    digests = []
    for name in ('a', 'b'):
        path = write_synthetic_ogb('ogbn-arxiv', str(tmp_path / name),
                                   scale=0.005, seed=7)
        h = hashlib.sha256()
        for d, _, fs in sorted(os.walk(path)):
            for f in sorted(fs):
                if f.endswith('.gz'):
                    with open(osp.join(d, f), 'rb') as fh:
                        h.update(fh.read())
        digests.append(h.hexdigest())
    assert digests[0] == digests[1]
    other, _ = synthetic_ogb_data('ogbn-arxiv', 0.005, seed=8)
    same, _ = synthetic_ogb_data('ogbn-arxiv', 0.005, seed=7)
    assert not torch.equal(other.x, same.x)


def _fit(model, x, graph, y, split, epochs, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
    best_val, test_at_best = -1.0, 0.0
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        out = model(x, graph)
        F.cross_entropy(out[split['train']], y[split['train']]).backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(x, graph).argmax(-1)
        val = float((pred[split['valid']] == y[split['valid']]).float().mean())
        if val > best_val:
            best_val = val
            test_at_best = float(
                (pred[split['test']] == y[split['test']]).float().mean())
    return test_at_best


class _MLP(torch.nn.Module):
    def __init__(self, fin, hidden, fout):
        super().__init__()
        self.lin1 = torch.nn.Linear(fin, hidden)
        self.lin2 = torch.nn.Linear(hidden, fout)

    def forward(self, x, graph=None):
        x = F.dropout(F.relu(self.lin1(x)), 0.5, self.training)
        return self.lin2(x)


def test_diffusion_beats_mlp():
    from torch_geometric.utils import to_undirected

    from torch_geometric_diff import DiffResNetGNN
    data, split = synthetic_ogb_data('ogbn-arxiv', 0.01, seed=0)
    edge_index = to_undirected(data.edge_index, num_nodes=data.num_nodes)
    y = data.y.view(-1)
    torch.manual_seed(0)
    mlp = _MLP(128, 64, 40)
    acc_mlp = _fit(mlp, data.x, None, y, split, epochs=60, lr=0.01)
    torch.manual_seed(0)
    diff = DiffResNetGNN(128, 40, hidden_channels=64, num_steps=10,
                         step_size=0.5, dropout=0.1, cached=True)
    acc_diff = _fit(diff, data.x, edge_index, y, split, epochs=60, lr=0.01)
    # Label noise caps accuracy near 80 %; features alone give much less.
    assert acc_diff > acc_mlp + 0.10, (acc_diff, acc_mlp)
    assert acc_diff < 0.9
