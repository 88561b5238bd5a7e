import warnings

import pytest
import torch
from torch_geometric.nn import APPNP

from torch_geometric_diff import DiffConv, DiffResNetGNN
from torch_geometric_diff.nn.diffusion import draw_seed, implicit_diffuse
from torch_geometric_diff.nn.diffusion.implicit import rw_sym_scale
from torch_geometric_diff.nn.diffusion.operator import graph_entries

from diffconv_helpers import dense_reference, random_graph

D = torch.float64


def dense_implicit(x, L, gamma, K):
    A = torch.eye(L.size(0), dtype=D) + gamma * L
    for _ in range(K):
        x = torch.linalg.solve(A, x)
    return x


@pytest.mark.parametrize('normalize', ['sym', 'rw', None])
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('cached', [False, True])
def test_implicit_equals_implicit_diffuse_and_dense_solve(
        normalize, weighted, cached):
    ei, w = random_graph(weighted=weighted)
    x = torch.randn(40, 4, dtype=D)
    conv = DiffConv(2.0, 3, normalize=normalize, cached=cached,
                    scheme='implicit', tol=1e-10, max_iter=500)
    out = conv(x, ei, w)
    _, L = dense_reference(x, ei, w, 0, 0.0, normalize)
    assert torch.allclose(out, dense_implicit(x, L, 2.0, 3), atol=1e-8)
    op = conv.build_operator(ei, 40, w, D)
    ref = implicit_diffuse(x, op, torch.tensor(2.0, dtype=D), 3, tol=1e-10,
                           max_iter=500, sym_scale=op.sym_scale)
    assert torch.allclose(out, ref, atol=1e-12)
    assert len(conv.last_cg_iterations) == 3
    assert all(0 < it <= 500 for it in conv.last_cg_iterations)


def test_rw_scale_is_built_and_cached_with_the_operator():
    ei, w = random_graph()
    conv = DiffConv(normalize='rw', scheme='implicit', cached=True)
    conv(torch.randn(40, 2, dtype=D), ei, w)
    row, _, weight = graph_entries(ei, 40, w, D)
    assert torch.allclose(conv._cached_op.sym_scale,
                          rw_sym_scale(row, weight, 40))
    conv_nl = DiffConv(normalize='rw', scheme='implicit',
                       add_self_loops=False)
    op = conv_nl.build_operator(ei, 40, w, D)
    assert torch.allclose(op.sym_scale, rw_sym_scale(row, weight, 40, False))


def test_dropout_and_learnable_step():
    ei, w = random_graph()
    x = torch.randn(40, 3, dtype=D, requires_grad=True)
    conv = DiffConv(1.5, 2, dropout=0.3, scheme='implicit', tol=1e-10,
                    learnable_step=True).double()
    torch.manual_seed(3)
    out = conv(x, ei, w)
    torch.manual_seed(3)
    seed = draw_seed()
    op = conv.build_operator(ei, 40, w, D)
    gamma = torch.nn.functional.softplus(conv.step_param.detach())
    ref = implicit_diffuse(x, op, gamma, 2, 0.3, seed, tol=1e-10)
    assert torch.allclose(out, ref, atol=1e-10)

    # d/drho against central differences under the same masks.
    weights = torch.randn_like(out)

    def loss(rho):
        with torch.no_grad():
            conv.step_param.fill_(rho)
            torch.manual_seed(3)
            return float((conv(x, ei, w) * weights).sum())

    rho = float(conv.step_param.detach())
    conv.zero_grad()
    (out * weights).sum().backward()
    eps = 1e-5
    fd = (loss(rho + eps) - loss(rho - eps)) / (2 * eps)
    assert abs(float(conv.step_param.grad) - fd) < 1e-5 * max(1, abs(fd))
    assert x.grad is not None


def test_no_stability_warning_and_large_step_stays_finite():
    ei, w = random_graph()
    x = torch.randn(40, 3, dtype=D)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        out = DiffConv(100.0, 5, scheme='implicit', max_iter=1000)(x, ei, w)
        conv = DiffConv(0.25, 5, scheme='implicit', cached=True)
        conv(x, ei, w)
        conv.step_size = 100.0
    assert torch.isfinite(out).all()
    with pytest.warns(RuntimeWarning, match='lambda_max'):
        DiffConv(100.0, 5)(x, ei, w)  # Explicit: unstable.


def test_one_rw_step_is_appnp():
    # One implicit 'rw' step is APPNP's personalised PageRank with
    # alpha = 1 / (1 + gamma) on the random-walk matrix, which is
    # D^-1/2 (PPR on D^-1/2 (A + I) D^-1/2) D^1/2, PyG's APPNP.
    from torch_geometric.utils import to_undirected
    ei, _ = random_graph(weighted=False, isolated=0)
    # No self-loops or duplicates: gcn_norm would treat them otherwise.
    ei = to_undirected(ei[:, ei[0] != ei[1]], num_nodes=40)
    gamma = 4.0
    x = torch.randn(40, 3, dtype=D)
    out = DiffConv(gamma, 1, normalize='rw', scheme='implicit',
                   tol=1e-12, max_iter=1000)(x, ei)
    A = torch.zeros(40, 40, dtype=D)
    A.index_put_((ei[1], ei[0]), torch.ones(ei.size(1), dtype=D),
                 accumulate=True)
    s = (A + torch.eye(40, dtype=D)).sum(1).sqrt().view(-1, 1)
    appnp = APPNP(K=300, alpha=1 / (1 + gamma))
    ref = appnp((x * s).float(), ei).double() / s
    assert torch.allclose(out, ref, atol=1e-4)


def test_implicit_rejects_what_it_cannot_do():
    ei, w = random_graph(undirected=False)
    x = torch.randn(40, 3, dtype=D)
    with pytest.raises(ValueError, match='symmetric'):
        DiffConv(scheme='implicit')(x, ei, w)  # Directed 'sym'.
    ei, w = random_graph()
    conv = DiffConv(scheme='implicit')
    with pytest.raises(ValueError, match="scheme='implicit'"):
        conv(x, ei, w, return_all=True)
    with pytest.raises(ValueError, match="scheme='implicit'"):
        conv(x, ei, w.clone().requires_grad_())
    with pytest.raises(ValueError, match="scheme='implicit'"):
        DiffConv(scheme='implicit', engine='autograd')
    for kwargs, match in [(dict(scheme='backward'), 'scheme'),
                          (dict(tol=0.0), 'tol'), (dict(tol=float('nan')),
                                                   'tol'),
                          (dict(max_iter=0), 'max_iter'),
                          (dict(max_iter=2.5), 'max_iter')]:
        with pytest.raises(ValueError, match=match):
            DiffConv(**kwargs)
    assert 'scheme=' not in repr(DiffConv())
    assert "scheme='implicit'" in repr(DiffConv(scheme='implicit'))
    assert DiffConv().last_cg_iterations is None


def test_model_with_implicit_scheme_trains_and_infers():
    torch.manual_seed(0)
    n = 60
    y = torch.arange(n) % 3
    ei, _ = random_graph(n, 400, weighted=False, isolated=0)
    ei = ei[:, y[ei[0]] == y[ei[1]]]  # Homophilous: diffusion helps.
    x = torch.nn.functional.one_hot(y, 3).float().repeat(1, 4)
    x = x + 0.8 * torch.randn_like(x)
    model = DiffResNetGNN(12, 3, num_steps=2, step_size=4.0, dropout=0.25,
                          scheme='implicit', learnable_step=True)
    assert model.conv.scheme == 'implicit'
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, ei), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert model.conv.step_param.grad is not None
    # Eval mode projects before the last diffusion: (I + gL)^-1 1 = 1 and
    # the solve acts on rows, so both orders agree (up to the CG tolerance).
    model.eval()
    out = model(x, ei)
    h = model.encode(x)
    plain = model.lin_out(model.conv(h, ei))
    assert torch.allclose(out, plain, atol=1e-4)
    assert torch.allclose(model.inference(x, ei), out, atol=1e-4)
    assert torch.allclose(model.inference(x, ei, channel_chunk=2), out,
                          atol=1e-4)
    model.conv.normalize = 'rw'
    model.conv.reset_parameters()
    out = model(x, ei)
    assert torch.allclose(model.inference(x, ei), out, atol=1e-4)
