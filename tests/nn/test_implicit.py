import math
import warnings

import pytest
import torch

from torch_geometric.nn import APPNP

from torch_geometric_diff import DiffResNetGNN
from torch_geometric_diff.nn.diffusion import (
    build_operator,
    cpu_kernels,
    dropout_mask,
)
from torch_geometric_diff.nn.diffusion.implicit import (
    implicit_diffuse,
    rw_sym_scale,
)
from torch_geometric_diff.nn.diffusion.operator import graph_entries

D = torch.float64


@pytest.fixture(params=['cpp', 'torch'])
def cg_path(request, monkeypatch):
    r"""Runs a test with the C++ CG solve and with the PyTorch one."""
    if request.param == 'cpp' and cpu_kernels() is None:
        pytest.skip('C++ CPU kernels not built here')
    monkeypatch.setenv('TGD_DISABLE_CPP', '0' if request.param == 'cpp'
                       else '1')
    return request.param


def random_graph(n, weighted, seed=0, directed=False):
    r"""A random graph without self-loops; symmetric unless
    :obj:`directed`, with symmetric weights in [0.5, 2] if :obj:`weighted`.
    Node ``n - 1`` is isolated."""
    gen = torch.Generator().manual_seed(seed)
    m = n - 1
    pairs = torch.randint(0, m, (2, 3 * m), generator=gen)
    pairs = pairs[:, pairs[0] != pairs[1]]
    w = 0.5 + 1.5 * torch.rand(pairs.size(1), generator=gen, dtype=D)
    if directed:
        return pairs, (w if weighted else None)
    edge_index = torch.cat([pairs, pairs.flip(0)], 1)
    return edge_index, (torch.cat([w, w]) if weighted else None)


def make(n, weighted, normalize, seed=0, directed=False):
    edge_index, w = random_graph(n, weighted, seed, directed)
    row, col, weight = graph_entries(edge_index, n, w, dtype=D)
    op = build_operator(row, col, weight, n, normalize=normalize)
    scale = rw_sym_scale(row, weight, n) if normalize == 'rw' else None
    return op, scale, edge_index, weight


def dense_laplacian(edge_index, weight, n, normalize):
    r""":math:`\mathbf{L} = \mathrm{diag}(\hat{\mathbf{A}}\mathbf{1}) -
    \hat{\mathbf{A}}` and the degrees of :math:`\mathbf{A} (+ \mathbf{I})`
    from the formulas (row = target = ``edge_index[1]``)."""
    A = torch.zeros(n, n, dtype=D)
    A.index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)
    if normalize is not None:
        A = A + torch.eye(n, dtype=D)
    d = A.sum(1)
    if normalize == 'sym':
        A = A / d.sqrt().view(-1, 1) / d.sqrt().view(1, -1)
    elif normalize == 'rw':
        A = A / d.view(-1, 1)
    return torch.diag(A.sum(1)) - A, d


def dense_implicit(x, L, gamma, K, p=0.0, seed=0):
    M = torch.eye(L.size(0), dtype=D) + gamma * L
    for k in range(K):
        if p > 0:
            x = x * dropout_mask(seed, k, tuple(x.shape), p, x.device,
                                 x.dtype) / (1 - p)
        x = torch.linalg.solve(M, x)
    return x


@pytest.mark.parametrize('normalize', ['sym', 'rw', None])
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('K', [1, 3])
@pytest.mark.parametrize('p', [0.0, 0.3])
def test_matches_dense_solve(normalize, weighted, K, p, cg_path):
    n = 14
    op, scale, edge_index, weight = make(n, weighted, normalize, seed=K)
    L, _ = dense_laplacian(edge_index, weight, n, normalize)
    assert torch.allclose(op.csr(op.lval).to_dense(), L, atol=1e-12)
    x = torch.randn(n, 5, dtype=D)
    gamma = torch.tensor(0.7, dtype=D)
    seed = torch.tensor([11])
    stats = {}
    out = implicit_diffuse(x, op, gamma, K, p, seed, tol=1e-12,
                           sym_scale=scale, stats=stats)
    ref = dense_implicit(x, L, 0.7, K, p, 11)
    assert torch.allclose(out, ref, atol=1e-10)
    assert len(stats['iterations']) == K
    assert all(1 <= it <= n for it in stats['iterations'])
    assert max(stats['residual']) <= 1e-12


@pytest.mark.parametrize('weighted', [False, True])
def test_rw_similarity_transform(weighted):
    n = 12
    op, s, edge_index, weight = make(n, weighted, 'rw')
    L, d = dense_laplacian(edge_index, weight, n, 'rw')
    assert torch.allclose(s, d.sqrt())
    S = torch.diag(s) @ L @ torch.diag(1 / s)
    # S = I - D^{-1/2} (A + I) D^{-1/2}, symmetric positive semi-definite.
    At = torch.zeros(n, n, dtype=D)
    At.index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)
    At = At + torch.eye(n, dtype=D)
    S_ref = torch.eye(n, dtype=D) - At / d.sqrt().view(-1, 1) / d.sqrt()
    assert torch.allclose(S, S_ref, atol=1e-12)
    assert torch.allclose(S, S.T, atol=1e-12)
    assert torch.linalg.eigvalsh(S).min() > -1e-12
    assert not torch.allclose(L, L.T)  # The transform is needed.


def test_non_symmetric_raises():
    n = 10
    op, _, _, _ = make(n, True, 'sym', directed=True)
    with pytest.raises(ValueError, match='sym_scale'):
        implicit_diffuse(torch.randn(n, 2, dtype=D), op, 1.0, 1)
    op, s, _, _ = make(n, True, 'rw')
    with pytest.raises(ValueError, match='sym_scale'):
        implicit_diffuse(torch.randn(n, 2, dtype=D), op, 1.0, 1)
    with pytest.raises(ValueError, match='shape'):
        implicit_diffuse(torch.randn(n, 2, dtype=D), op, 1.0, 1,
                         sym_scale=s[:-1])
    # A directed graph: d^{1/2} does not symmetrise L_rw.
    op, s, _, _ = make(n, True, 'rw', directed=True)
    with pytest.raises(ValueError, match='does not symmetrise'):
        implicit_diffuse(torch.randn(n, 2, dtype=D), op, 1.0, 1, sym_scale=s)


def test_bad_gamma_raises():
    op, _, _, _ = make(8, False, 'sym')
    with pytest.raises(ValueError, match='gamma'):
        implicit_diffuse(torch.randn(8, 2, dtype=D), op, -0.5, 1)


@pytest.mark.parametrize('normalize', ['sym', 'rw'])
@pytest.mark.parametrize('K', [1, 5])
def test_gradcheck(normalize, K):
    n = 9
    op, scale, _, _ = make(n, True, normalize)
    x = torch.randn(n, 3, dtype=D, requires_grad=True)
    gamma = torch.tensor(0.8, dtype=D, requires_grad=True)
    seed = torch.tensor([5])

    def f(x, gamma):
        return implicit_diffuse(x, op, gamma, K, 0.3, seed, tol=1e-14,
                                max_iter=200, sym_scale=scale)

    assert torch.autograd.gradcheck(f, (x, gamma))
    # Only x requires grad: the backward pass without checkpoints.
    assert torch.autograd.gradcheck(lambda x: f(x, gamma.detach()), (x, ))


def test_gradients_match_dense_autograd(cg_path):
    n, K, p = 11, 4, 0.2
    op, scale, edge_index, weight = make(n, True, 'rw')
    L, _ = dense_laplacian(edge_index, weight, n, 'rw')
    x = torch.randn(n, 4, dtype=D, requires_grad=True)
    gamma = torch.tensor(2.5, dtype=D, requires_grad=True)
    w = torch.randn(n, 4, dtype=D)
    out = implicit_diffuse(x, op, gamma, K, p, torch.tensor([3]), tol=1e-13,
                           sym_scale=scale)
    gx, gg = torch.autograd.grad((out * w).sum(), (x, gamma))
    ref = dense_implicit(x, L, gamma, K, p, 3)
    rx, rg = torch.autograd.grad((ref * w).sum(), (x, gamma))
    assert torch.allclose(gx, rx, atol=1e-10)
    assert torch.allclose(gg, rg, atol=1e-10)


@pytest.mark.parametrize('normalize', ['sym', 'rw'])
def test_large_gamma_conserves_mass(normalize):
    n = 20
    op, scale, edge_index, weight = make(n, True, normalize)
    L, d = dense_laplacian(edge_index, weight, n, normalize)
    x = torch.zeros(n, 2, dtype=D)
    x[0, 0] = 1.0
    x[3, 1] = 1.0
    out = implicit_diffuse(x, op, 100.0, 3, tol=1e-12, sym_scale=scale)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, dense_implicit(x, L, 100.0, 3), atol=1e-10)
    # 'sym': L = diag(A_hat 1) - A_hat is symmetric with L 1 = 0, so
    # 1^T L = 0 and 1^T x is conserved. 'rw': L = I - D^{-1} (A + I), so
    # d^T L = d^T - 1^T (A + I) = 0 and d^T x is conserved.
    mass = torch.ones(n, dtype=D) if normalize == 'sym' else d
    assert torch.allclose(mass @ out, mass @ x, atol=1e-10)
    # The other weighting is not conserved: the check can fail.
    other = d if normalize == 'sym' else torch.ones(n, dtype=D)
    assert not torch.allclose(other @ out, other @ x, atol=1e-3)


@pytest.mark.parametrize('g', [1.0, 4.0])
def test_one_rw_step_is_appnp(g):
    n = 30
    op, scale, edge_index, weight = make(n, True, 'rw')
    x = torch.randn(n, 3, dtype=D)
    out = implicit_diffuse(x, op, g, 1, tol=1e-12, sym_scale=scale)
    # APPNP propagates A_hat x, A_hat[i, j] = (A + I)[i, j] / d_i on the
    # edge j -> i (source edge_index[0], target edge_index[1]).
    loops = torch.arange(n).repeat(2, 1)
    ei = torch.cat([edge_index, loops], 1)
    w = torch.cat([weight, torch.ones(n, dtype=D)])
    d = torch.zeros(n, dtype=D).index_add(0, ei[1], w)
    appnp = APPNP(K=200, alpha=1 / (1 + g), normalize=False)
    ref = appnp(x, ei, w / d[ei[1]])
    assert torch.allclose(out, ref, atol=1e-5)
    # The other direction (column normalisation) is a different operator.
    assert not torch.allclose(out, appnp(x, ei, w / d[ei[0]]), atol=1e-3)


def test_unconverged_warns_with_residual():
    n = 60
    op, _, _, _ = make(n, True, 'sym')
    x = torch.randn(n, 4, dtype=D)
    stats = {}
    with pytest.warns(RuntimeWarning, match=r'relative residual \d\.\d+e'):
        implicit_diffuse(x, op, 50.0, 2, tol=1e-12, max_iter=2, stats=stats)
    assert stats['iterations'] == [2, 2]
    assert min(stats['residual']) > 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        implicit_diffuse(x, op, 50.0, 2, tol=1e-8, max_iter=n)


def test_float32_default_tolerance():
    n = 40
    op, scale, edge_index, weight = make(n, True, 'rw')
    L, _ = dense_laplacian(edge_index, weight, n, 'rw')
    x = torch.randn(n, 3)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = implicit_diffuse(x, op, 9.0, 2, sym_scale=scale)
    assert out.dtype == torch.float32
    ref = dense_implicit(x.double(), L, 9.0, 2)
    assert torch.allclose(out.double(), ref, atol=1e-4)


def count_saved(K, tol):
    n = 25
    op, _, _, _ = make(n, True, 'sym')
    x = torch.randn(n, 3, dtype=D, requires_grad=True)
    gamma = torch.tensor(3.0, dtype=D, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    stats = {}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = implicit_diffuse(x, op, gamma, K, 0.2, torch.tensor([1]),
                               tol=tol, max_iter=200, stats=stats)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(gamma.grad)
    return saved, sum(stats['iterations'])


def test_saves_no_per_step_or_per_iteration_tensors():
    few, it_few = count_saved(1, 1e-2)
    many, it_many = count_saved(8, 1e-12)
    assert it_many > 8 * it_few  # Far more steps and iterations ...
    assert many == few  # ... and the same saved tensors.
    n, nnz_bound = 25, 25 + 2 * 3 * 24 + 1
    # x, crow, col, lval, gamma, seed: one feature matrix at most.
    assert len(few) <= 7
    assert sum(few) <= n * 3 + (n + 1) + 2 * nnz_bound + 2


def test_zero_steps_is_identity():
    op, _, _, _ = make(6, False, 'sym')
    x = torch.randn(6, 2, dtype=D)
    stats = {}
    assert implicit_diffuse(x, op, 1.0, 0, stats=stats) is x
    assert stats == {'iterations': [], 'residual': []}


def test_zero_columns_and_gamma_zero():
    n = 10
    op, scale, _, _ = make(n, True, 'rw')
    x = torch.randn(n, 3, dtype=D)
    x[:, 1] = 0
    stats = {}
    out = implicit_diffuse(x, op, 0.0, 2, sym_scale=scale, stats=stats)
    assert torch.allclose(out, x, rtol=1e-15, atol=0)
    assert stats['iterations'] == [0, 0]
    out = implicit_diffuse(x, op, 1.0, 2, tol=1e-12, sym_scale=scale)
    assert torch.equal(out[:, 1], torch.zeros(n, dtype=D))
    assert math.isfinite(float(out.abs().max()))


def test_opcheck():
    # Schema, fake-tensor and autograd registration, as torch.compile needs.
    from torch_geometric_diff.nn.diffusion.implicit import (
        _checked_scale,
        _implicit_op,
    )
    op, s, _, _ = make(12, True, 'rw')
    x = torch.randn(12, 3, dtype=D, requires_grad=True)
    gamma = torch.tensor(0.5, dtype=D, requires_grad=True)
    for precondition in (True, False):
        args = (x, op.crow, op.col, op.lval, gamma, _checked_scale(op, s, D),
                3, 0.2, torch.tensor([4]), 1e-12, 100, precondition)
        torch.library.opcheck(_implicit_op, args)


def hub_graph(n, hubs, seed=0):
    r"""A symmetric graph in which half of the edges end in one of
    :obj:`hubs` nodes, so that the row sums of the :obj:`'sym'`
    :math:`\hat{\mathbf{A}}` spread with the degrees."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (4 * n, ), generator=gen)
    dst = torch.where(torch.rand(4 * n, generator=gen) < 0.5,
                      torch.randint(0, hubs, (4 * n, ), generator=gen),
                      torch.randint(0, n, (4 * n, ), generator=gen))
    keep = src != dst
    pairs = torch.stack([src[keep], dst[keep]])
    return torch.cat([pairs, pairs.flip(0)], 1)


@pytest.mark.parametrize('normalize', ['sym', 'rw', None])
def test_jacobi_preconditioner_same_solution_fewer_iterations(
        normalize, cg_path):
    # With and without the Jacobi preconditioner the steps and their
    # gradients match the dense solve; under 'sym' and None, whose
    # Laplacian diagonals spread with the degrees, the preconditioned solve
    # needs at least 1.3 times fewer iterations, and it is the default.
    n = 400
    edge_index = hub_graph(n, 16)
    row, col, weight = graph_entries(edge_index, n, None, dtype=D)
    op = build_operator(row, col, weight, n, normalize=normalize)
    scale = rw_sym_scale(row, weight, n) if normalize == 'rw' else None
    L, _ = dense_laplacian(edge_index, weight, n, normalize)
    x0 = torch.randn(n, 6, dtype=D)
    ref = dense_implicit(x0, L, 9.0, 2)
    its, grads = {}, {}
    for precondition in (True, False, None):
        x = x0.clone().requires_grad_()
        gamma = torch.tensor(9.0, dtype=D, requires_grad=True)
        stats = {}
        out = implicit_diffuse(x, op, gamma, 2, tol=1e-10, sym_scale=scale,
                               stats=stats, precondition=precondition)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-8)
        out.square().sum().backward()
        its[precondition] = sum(stats['iterations'])
        grads[precondition] = (x.grad, gamma.grad)
    for a, b in zip(grads[True], grads[False]):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-8)
    if normalize != 'rw':
        assert its[True] * 1.3 <= its[False]
    assert its[None] == its[normalize != 'rw']


@pytest.mark.parametrize('normalize', ['sym', 'rw'])
def test_model_inference_preconditions_as_the_layer(normalize):
    # DiffResNetGNN.inference solves with the blocked M = I - gamma L. It
    # picks the layer's preconditioner (Jacobi under 'sym', plain CG under
    # 'rw'), so it runs the layer's iterations (up to one per solve for
    # rounding) and returns the forward pass's logits.
    torch.manual_seed(0)
    n, K = 400, 2
    edge_index = hub_graph(n, 16)
    x = torch.randn(n, 8, dtype=D)
    model = DiffResNetGNN(8, 3, hidden_channels=16, num_steps=K,
                          step_size=9.0, scheme='implicit', tol=1e-8,
                          normalize=normalize).double().eval()
    out = model(x, edge_index)
    its = sum(model.conv.last_cg_iterations)
    op = model.blocked_operator(edge_index, n, max_block_nnz=500)
    calls = []
    matmul = op.matmul
    op.matmul = lambda u: calls.append(1) or matmul(u)
    torch.testing.assert_close(model.inference(x, edge_index, operator=op),
                               out, rtol=0, atol=1e-6)
    assert abs((len(calls) - K) - its) <= K  # One product before CG starts.
