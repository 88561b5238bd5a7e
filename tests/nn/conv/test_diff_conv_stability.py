import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import eigsh

from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion import spectrum

from diffconv_helpers import dense_reference


def path_graph(n=1000):
    ei = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    return torch.cat([ei, ei.flip(0)], dim=1)


def exact_lambda_max(edge_index, n, normalize):
    r"""lambda_max(L) from the dense formula: L is symmetric for 'sym' and
    None, and similar to a symmetric matrix for 'rw' on an undirected
    graph, so its eigenvalues are real."""
    _, L = dense_reference(torch.zeros(n, 1), edge_index, None, 0, 0.0,
                           normalize)
    if normalize == 'rw':
        return torch.linalg.eigvals(L).real.max().item()
    return torch.linalg.eigvalsh(L).max().item()


def warns(conv, x, edge_index) -> bool:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        conv(x, edge_index)
    hits = [w for w in rec if issubclass(w.category, RuntimeWarning)
            and 'lambda_max' in str(w.message)]
    return len(hits) > 0


@pytest.mark.parametrize('normalize', ['sym', 'rw', None])
@pytest.mark.parametrize('cached', [False, True])
def test_warning_on_path_graph_just_past_the_exact_bound(normalize, cached):
    n = 1000
    ei = path_graph(n)
    lam = exact_lambda_max(ei, n, normalize)
    x = torch.randn(n, 2)
    above = DiffConv(1.01 * 2 / lam, 2, normalize=normalize, cached=cached)
    below = DiffConv(0.99 * 2 / lam, 2, normalize=normalize, cached=cached)
    assert warns(above, x, ei)
    assert not warns(below, x, ei)


def cora_rw_lambda_max(data):
    # 'rw': L = I - D^-1 (A + I) is similar to the symmetric
    # I - D^-1/2 (A + I) D^-1/2, whose top eigenvalue eigsh finds.
    n = data.num_nodes
    row, col = data.edge_index.numpy()
    A = sp.coo_matrix((np.ones(row.size), (col, row)), shape=(n, n)).tocsr()
    A = A + sp.identity(n)
    dis = sp.diags(1 / np.sqrt(np.asarray(A.sum(1)).ravel()))
    S = sp.identity(n) - dis @ A @ dis
    return float(eigsh(S, k=1, which='LA', return_eigenvectors=False)[0])


@pytest.mark.parametrize('cached', [False, True])
def test_warning_on_cora_rw_just_past_the_exact_bound(data_copy, cached):
    from torch_geometric.datasets import Planetoid
    data = Planetoid(data_copy('Planetoid'), 'Cora')[0]
    lam = cora_rw_lambda_max(data)
    assert 1.45 < lam < 1.52
    x = torch.randn(data.num_nodes, 2)
    for factor, expected in [(1.01, True), (0.99, False)]:
        conv = DiffConv(factor * 2 / lam, 2, normalize='rw', cached=cached)
        assert warns(conv, x, data.edge_index) == expected


def test_bound_is_an_upper_bound_and_refinement_runs_only_past_it(
        monkeypatch):
    n = 1000
    ei = path_graph(n)
    for normalize in ['sym', 'rw', None]:
        lam = exact_lambda_max(ei, n, normalize)
        op = DiffConv(normalize=normalize).build_operator(ei, n)
        assert lam <= op.lambda_bound <= 1.3 * lam

    def fail(*args, **kwargs):
        raise AssertionError('the refinement ran')

    monkeypatch.setattr(spectrum, 'lanczos_lambda_max', fail)
    monkeypatch.setattr(spectrum, 'power_iteration', fail)
    x = torch.randn(n, 2)
    lam = exact_lambda_max(ei, n, 'sym')
    assert not warns(DiffConv(0.5 * 2 / lam, 2), x, ei)
