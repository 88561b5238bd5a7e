import pytest
import torch
from torch_geometric.data import Data

from torch_geometric_diff.transforms import (
    GaussianKNNGraph,
    gaussian_knn_graph,
)


def brute_force(x, k, sigma=None, normalize='sym', sigma_k=None,
                sigma_mode='node', symmetrize='mean', loop=True):
    r"""Dense reference written from the definition (float64)."""
    x = x.double()
    N = x.size(0)
    D2 = ((x[:, None, :] - x[None, :, :])**2).sum(-1)
    D2.fill_diagonal_(float('inf'))
    order = D2.argsort(dim=1)
    W = torch.zeros(N, N, dtype=torch.float64)
    sigma_k = k if sigma_k is None else sigma_k
    s2 = D2.gather(1, order[:, sigma_k - 1:sigma_k]).view(-1)
    for i in range(N):
        for j in order[i, :k].tolist():
            if sigma is not None:
                scale = sigma**2
            elif sigma_mode == 'node':
                scale = s2[i]
            else:
                scale = (s2[i] * s2[j]).sqrt()
            W[i, j] = torch.exp(-D2[i, j] / scale)
    if symmetrize == 'mean':
        W = (W + W.t()) / 2
    elif symmetrize == 'max':
        W = torch.maximum(W, W.t())
    if loop:
        W = W + torch.eye(N, dtype=torch.float64)
    d = W.sum(1)
    if normalize == 'row':
        W = W / d.view(-1, 1)
    elif normalize == 'sym':
        W = W / d.sqrt().view(-1, 1) / d.sqrt().view(1, -1)
    return W


def to_dense(edge_index, edge_weight, N):
    W = torch.zeros(N, N, dtype=torch.float64)
    # Entry W[i, j] lives on the edge (source j, target i).
    W[edge_index[1], edge_index[0]] = edge_weight.double()
    return W


@pytest.mark.parametrize('sigma', [None, 0.7])
@pytest.mark.parametrize('normalize', ['sym', 'row', None])
@pytest.mark.parametrize('symmetrize', ['mean', 'max', None])
def test_matches_brute_force(sigma, normalize, symmetrize):
    torch.manual_seed(0)
    x = torch.randn(40, 3)
    out = gaussian_knn_graph(x, 5, sigma=sigma, normalize=normalize,
                             symmetrize=symmetrize)
    ref = brute_force(x, 5, sigma=sigma, normalize=normalize,
                      symmetrize=symmetrize)
    assert torch.allclose(to_dense(*out, 40), ref, atol=1e-6)


@pytest.mark.parametrize('sigma_mode', ['node', 'pair'])
@pytest.mark.parametrize('sigma_k', [2, 5, 9])
def test_adaptive_sigma(sigma_mode, sigma_k):
    torch.manual_seed(1)
    x = torch.randn(50, 4) * torch.tensor([1.0, 3.0, 0.5, 2.0])
    out = gaussian_knn_graph(x, 6, sigma=None, sigma_k=sigma_k,
                             sigma_mode=sigma_mode, loop=False)
    ref = brute_force(x, 6, sigma=None, sigma_k=sigma_k,
                      sigma_mode=sigma_mode, loop=False)
    assert torch.allclose(to_dense(*out, 50), ref, atol=1e-6)


def test_structure():
    torch.manual_seed(2)
    x = torch.randn(30, 2)
    ei, w = gaussian_knn_graph(x, 4, normalize=None, symmetrize=None,
                               loop=False)
    # Every target has exactly k incoming edges, no self-loops, all w in (0,1]
    assert ei.size(1) == 30 * 4
    assert torch.equal(torch.bincount(ei[1], minlength=30),
                       torch.full((30, ), 4))
    assert bool((ei[0] != ei[1]).all())
    assert bool((w > 0).all()) and bool((w <= 1).all())

    ei, w = gaussian_knn_graph(x, 4, normalize='row')
    row_sum = torch.zeros(30).index_add_(0, ei[1], w)
    assert torch.allclose(row_sum, torch.ones(30), atol=1e-6)

    W = to_dense(*gaussian_knn_graph(x, 4, normalize='sym'), 30)
    assert torch.allclose(W, W.t(), atol=1e-7)
    eig = torch.linalg.eigvalsh(W)
    assert eig.max() <= 1 + 1e-6 and eig.min() >= -1 - 1e-6


@pytest.mark.parametrize('chunk_size', [1, 7, 64])
def test_chunking_matches_unchunked(chunk_size):
    torch.manual_seed(3)
    x = torch.randn(64, 5)
    ei1, w1 = gaussian_knn_graph(x, 8, chunk_size=chunk_size)
    ei2, w2 = gaussian_knn_graph(x, 8, chunk_size=64)
    assert torch.equal(ei1, ei2)
    assert torch.allclose(w1, w2)


def test_large_n_is_chunked(monkeypatch):
    # N = 20k would need 1.6 GB for a dense float32 distance matrix; a
    # 256-row chunk needs 20 MB. Every distance block must be a row chunk.
    shapes = []
    cdist = torch.cdist

    def recording_cdist(a, b, *args, **kwargs):
        shapes.append((a.size(0), b.size(0)))
        return cdist(a, b, *args, **kwargs)

    monkeypatch.setattr(torch, 'cdist', recording_cdist)
    torch.manual_seed(4)
    x = torch.randn(20000, 2)
    ei, w = gaussian_knn_graph(x, 5, sigma=0.1, symmetrize=None, loop=False,
                               normalize=None, chunk_size=256)
    assert len(shapes) == 79 and max(r for r, _ in shapes) == 256
    # Automatic chunking stays within the 2**24-entry budget.
    shapes.clear()
    gaussian_knn_graph(x, 5, sigma=0.1)
    assert max(r * c for r, c in shapes) <= 2**24 and len(shapes) > 1
    assert ei.size(1) == 20000 * 5
    # Spot check a few rows against brute force.
    for i in [0, 1234, 19999]:
        d2 = ((x - x[i])**2).sum(-1)
        d2[i] = float('inf')
        nn = d2.topk(5, largest=False).indices
        mine = ei[0, ei[1] == i]
        assert set(mine.tolist()) == set(nn.tolist())
        assert torch.allclose(w[ei[1] == i].sort().values,
                              torch.exp(-d2[nn] / 0.01).sort().values)


def test_batch():
    torch.manual_seed(5)
    x = torch.randn(30, 2)
    batch = torch.tensor([0] * 12 + [1] * 18)
    ei, w = gaussian_knn_graph(x, 3, batch=batch)
    assert bool((batch[ei[0]] == batch[ei[1]]).all())
    W = to_dense(ei, w, 30)
    assert torch.allclose(W[:12, :12], brute_force(x[:12], 3), atol=1e-6)
    assert torch.allclose(W[12:, 12:], brute_force(x[12:], 3), atol=1e-6)


def test_duplicate_points_are_finite():
    x = torch.tensor([[0.0, 0.0]] * 4 + [[1.0, 0.0]] * 4)
    ei, w = gaussian_knn_graph(x, 3)
    assert torch.isfinite(w).all()


def test_transform():
    torch.manual_seed(6)
    pos = torch.randn(25, 2)
    data = Data(x=torch.randn(25, 7), pos=pos, edge_attr=torch.randn(3, 1))
    t = GaussianKNNGraph(k=4, sigma=0.5, normalize='row')
    out = t(data.clone())
    assert out.edge_attr is None
    ref = brute_force(pos, 4, sigma=0.5, normalize='row')
    assert torch.allclose(to_dense(out.edge_index, out.edge_weight, 25), ref,
                          atol=1e-6)
    # attr='x' uses the features instead of the positions.
    out = GaussianKNNGraph(k=4, attr='x')(data.clone())
    ref = brute_force(data.x, 4)
    assert torch.allclose(to_dense(out.edge_index, out.edge_weight, 25), ref,
                          atol=1e-6)
    assert 'GaussianKNNGraph(k=4' in repr(t)


def test_bad_input():
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match="'k'"):
        gaussian_knn_graph(x, 0)
    with pytest.raises(ValueError, match='more than'):
        gaussian_knn_graph(x, 5)
    with pytest.raises(ValueError, match="'sigma'"):
        gaussian_knn_graph(x, 2, sigma=-1.0)
    with pytest.raises(ValueError, match="'normalize'"):
        GaussianKNNGraph(2, normalize='rw')
    with pytest.raises(ValueError, match="'sigma_mode'"):
        GaussianKNNGraph(2, sigma_mode='global')
    with pytest.raises(ValueError, match="'x'"):
        gaussian_knn_graph(torch.randn(5), 2)
    with pytest.raises(ValueError, match="data.x"):
        GaussianKNNGraph(2)(Data(edge_index=torch.zeros(2, 0).long()))


def test_paper_toy_setting():
    # The official toy graph: Gaussian weights of all pairs, each row keeps
    # its n_top = 25 largest entries (the point itself included), then every
    # row is divided by its sum. Here: k = 24, loop=True, no symmetrisation.
    torch.manual_seed(7)
    x = torch.rand(120, 2) * 3
    D2 = ((x[:, None] - x[None])**2).sum(-1).double()
    W = torch.exp(-D2 / 0.5**2)
    keep = W.topk(25, dim=1).indices
    mask = torch.zeros_like(W, dtype=torch.bool).scatter_(1, keep, True)
    W = W * mask
    W = W / W.sum(1, keepdim=True)
    data = GaussianKNNGraph(k=24, sigma=0.5, normalize='row',
                            symmetrize=None)(Data(pos=x))
    assert torch.allclose(to_dense(data.edge_index, data.edge_weight, 120), W,
                          atol=1e-6)


@pytest.mark.parametrize('normalize', ['sym', 'row'])
def test_underflowing_sigma_is_an_error_not_nan(normalize):
    torch.manual_seed(7)
    x = torch.randn(10, 2)
    # Every Gaussian weight underflows: no node would have a degree.
    with pytest.raises(ValueError, match="'sigma'.*too small"):
        gaussian_knn_graph(x, 3, sigma=1e-6, loop=False, normalize=normalize)
    # With self-loops every degree is 1: finite, and equal to the formula.
    ei, w = gaussian_knn_graph(x, 3, sigma=1e-6, normalize=normalize)
    assert torch.isfinite(w).all()
    ref = brute_force(x, 3, sigma=1e-6, normalize=normalize)
    assert torch.allclose(to_dense(ei, w, 10), ref, atol=1e-6)
    # Unnormalised weights are exact zeros, as the formula says.
    ei, w = gaussian_knn_graph(x, 3, sigma=1e-6, loop=False, normalize=None)
    assert torch.equal(to_dense(ei, w, 10),
                       brute_force(x, 3, sigma=1e-6, normalize=None,
                                   loop=False))


def test_bad_points_and_batch():
    x = torch.randn(6, 2)
    with pytest.raises(TypeError, match="'x'.*dense"):
        gaussian_knn_graph(x.to_sparse_csr(), 2)
    with pytest.raises(TypeError, match="'x'.*dense"):
        gaussian_knn_graph(x.to_sparse(), 2)
    with pytest.raises(TypeError, match="'x'.*dense"):
        GaussianKNNGraph(2)(Data(x=x.to_sparse_csr()))
    bad = x.clone()
    bad[2, 0] = float('nan')
    with pytest.raises(ValueError, match="'x'.*NaN"):
        gaussian_knn_graph(bad, 2)
    with pytest.raises(TypeError, match="'batch'"):
        gaussian_knn_graph(x, 2, batch=torch.zeros(6))
    with pytest.raises(TypeError, match="'batch'"):
        gaussian_knn_graph(x, 2, batch=torch.zeros(6, dtype=torch.bool))
    with pytest.raises(ValueError, match="'batch'.*negative"):
        gaussian_knn_graph(x, 2, batch=torch.tensor([0, 0, 0, -1, -1, -1]))
