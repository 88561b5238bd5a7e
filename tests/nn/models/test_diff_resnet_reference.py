r"""DiffResNetGNN in training mode, with dropout, against a dense step-by-step
reference written from the paper's formulas under the same dropout masks.

The layer draws one seed per diffusion from PyTorch's global generator
(:func:`draw_seed`); after :func:`torch.manual_seed` the same seeds are drawn
here, and :func:`dropout_mask` gives the mask of every step.
"""
import pytest
import torch

from torch_geometric_diff import DiffResNetGNN
from torch_geometric_diff.nn.diffusion import draw_seed, dropout_mask

N, F, C = 24, 10, 3


def graph(n=N, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, 3 * n), generator=gen)
    ei = ei[:, ei[0] != ei[1]]
    return torch.cat([ei, ei.flip(0)], dim=1)


def dense_m(edge_index, n, step_size):
    r""":math:`\mathbf{I} - \gamma\mathbf{L}`, :math:`\mathbf{L} =
    \mathrm{diag}(\hat{\mathbf{A}}\mathbf{1}) - \hat{\mathbf{A}}`,
    :math:`\hat{\mathbf{A}} = \tilde{\mathbf{D}}^{-1/2}(\mathbf{A} +
    \mathbf{I})\tilde{\mathbf{D}}^{-1/2}`, :math:`A_{ij}` = number of edges
    :math:`j \to i`."""
    A = torch.zeros(n, n, dtype=torch.float64)
    A.index_put_((edge_index[1], edge_index[0]),
                 torch.ones(edge_index.size(1), dtype=torch.float64),
                 accumulate=True)
    A = A + torch.eye(n, dtype=torch.float64)
    dis = A.sum(1).pow(-0.5)
    A_hat = dis.view(-1, 1) * A * dis.view(1, -1)
    L = torch.diag(A_hat.sum(1)) - A_hat
    return torch.eye(n, dtype=torch.float64) - step_size * L


def dense_diffusion(h, M, num_steps, p, seed):
    r"""K steps of :math:`\mathbf{H} \leftarrow \mathbf{M}\,(\mathbf{m}^{(k)}
    \odot \mathbf{H}) / (1 - p)`: the mask acts before every step."""
    for k in range(num_steps):
        mask = dropout_mask(seed, k, tuple(h.shape), p, h.device, h.dtype)
        h = M @ (mask * h) / (1 - p)
    return h


def reference(model, x, M, seeds):
    r"""H1 = Diff(H0 + relu(H0 W1 + b1)), H2 = Diff(H1 + relu(H1 W2 + b2)),
    ..., Y = HB Wout + bout, with H0 = X or X Win + bin; the diffusion of
    block b uses seeds[b]."""
    conv = model.conv
    h = x
    if model.lin_in is not None:
        h = h @ model.lin_in.weight.t() + model.lin_in.bias
    for b, lin in enumerate(model.lins):
        h = h + torch.relu(h @ lin.weight.t() + lin.bias)
        h = dense_diffusion(h, M, conv.num_steps, conv.dropout, seeds[b])
    return h @ model.lin_out.weight.t() + model.lin_out.bias


def seeds_of_forward(seed, num_blocks):
    # The seeds DiffResNetGNN's diffusions draw after torch.manual_seed(seed).
    torch.manual_seed(seed)
    return [int(draw_seed()) for _ in range(num_blocks)]


@pytest.mark.parametrize('num_blocks,hidden', [(1, None), (2, None), (2, 6),
                                               (3, 6)])
@pytest.mark.parametrize('conv_kwargs', [
    dict(engine='fused'), dict(engine='fused', cached=True),
    dict(engine='autograd')])
def test_training_with_dropout_equals_dense_reference(num_blocks, hidden,
                                                      conv_kwargs):
    # C < width, so the evaluation-mode shortcut (project to C channels
    # before the last diffusion) would apply if training were mistaken for
    # evaluation: its masks have C columns instead of the hidden width.
    ei = graph()
    x = torch.rand(N, F, dtype=torch.float64)
    torch.manual_seed(0)
    model = DiffResNetGNN(F, C, hidden, num_steps=4, step_size=0.3,
                          dropout=0.4, num_blocks=num_blocks,
                          **conv_kwargs).double().train()
    M = dense_m(ei, N, 0.3)
    seeds = seeds_of_forward(7, num_blocks)
    torch.manual_seed(7)
    out = model(x, ei)
    ref = reference(model, x, M, seeds)
    assert out.shape == (N, C)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)

    # The parameter gradients equal those of the dense formula (autograd
    # through dense products).
    w = torch.randn(N, C, dtype=torch.float64)
    params = [p for p in model.parameters()]
    torch.manual_seed(7)
    got = torch.autograd.grad((model(x, ei) * w).sum(), params)
    want = torch.autograd.grad((reference(model, x, M, seeds) * w).sum(),
                               params)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)

    # Evaluation mode is the same formula without masks.
    model.eval()
    with torch.no_grad():
        ev = x if hidden is None else x @ model.lin_in.weight.t() + \
            model.lin_in.bias
        for lin in model.lins:
            ev = ev + torch.relu(ev @ lin.weight.t() + lin.bias)
            ev = torch.linalg.matrix_power(M, 4) @ ev
        ev = ev @ model.lin_out.weight.t() + model.lin_out.bias
        torch.testing.assert_close(model(x, ei), ev, rtol=1e-10, atol=1e-12)
        assert not torch.allclose(out, ev)  # The masks matter in training.


def test_two_blocks_use_their_own_weights_and_seeds():
    # Swapping the two blocks' weights, or the seeds of the two diffusions,
    # changes the output: the reference tells the blocks apart.
    ei = graph(seed=1)
    x = torch.rand(N, F, dtype=torch.float64)
    torch.manual_seed(1)
    model = DiffResNetGNN(F, C, num_steps=3, dropout=0.3,
                          num_blocks=2).double().train()
    M = dense_m(ei, N, 0.25)
    seeds = seeds_of_forward(5, 2)
    torch.manual_seed(5)
    out = model(x, ei)
    torch.testing.assert_close(out, reference(model, x, M, seeds),
                               rtol=1e-10, atol=1e-12)
    assert not torch.allclose(out, reference(model, x, M, seeds[::-1]))
    with torch.no_grad():
        w0, w1 = model.lins[0].weight.clone(), model.lins[1].weight.clone()
        model.lins[0].weight.copy_(w1)
        model.lins[1].weight.copy_(w0)
    torch.manual_seed(5)
    assert not torch.allclose(model(x, ei), out)
