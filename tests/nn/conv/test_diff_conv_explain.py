r"""Explaining DiffConv: the edge mask multiplies the messages of every step.

After :math:`K` steps, node :math:`v` depends on the message of edge
:math:`j \to i` at step :math:`k` only through :math:`K - k` further steps
from :math:`i` to :math:`v`. So the gradient of :math:`\mathbf{y}_v` with
respect to that edge's mask is exactly zero unless :math:`i` reaches
:math:`v` along at most :math:`K - 1` directed edges, whatever the source
:math:`j`; and GNNExplainer, which zeroes the entries whose first gradient is
zero, puts all its mass on those edges.
"""
import torch

from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

from torch_geometric_diff import DiffConv

N, K, V = 20, 3, 0


def ring_with_chords():
    # An undirected ring, a directed chord into the neighbourhood of V
    # (10 -> 2, counted by its target) and one out of it (0 -> 10, whose
    # target is far from V).
    ring = torch.stack([torch.arange(N), (torch.arange(N) + 1) % N])
    ei = torch.cat([ring, ring.flip(0), torch.tensor([[10, 0], [2, 10]])],
                   dim=1)
    return ei


def targets_within(ei, v, hops):
    r"""The nodes that reach :obj:`v` along at most :obj:`hops` directed
    edges (source -> target), by breadth-first search."""
    reach = {v}
    for _ in range(hops):
        reach |= {int(j) for j, i in ei.t() if int(i) in reach}
    return reach


def dense_m(ei, n, gamma):
    A = torch.zeros(n, n, dtype=torch.float64)
    A.index_put_((ei[1], ei[0]), torch.ones(ei.size(1), dtype=torch.float64),
                 accumulate=True)
    A = A + torch.eye(n, dtype=torch.float64)
    dis = A.sum(1).pow(-0.5)
    A_hat = dis.view(-1, 1) * A * dis.view(1, -1)
    L = torch.diag(A_hat.sum(1)) - A_hat
    return torch.eye(n, dtype=torch.float64) - gamma * L


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.conv = DiffConv(0.4, K)

    def forward(self, x, edge_index):
        return self.conv(self.lin(x), edge_index)


def test_edge_mask_gradient_equals_dense_formula():
    # y = M(m)^K lin(x), where the mask m_e scales the off-diagonal entry
    # M_ij of edge e = (j -> i); the diagonal is not masked.
    ei = ring_with_chords()
    torch.manual_seed(0)
    model = Net().double().eval()
    x = torch.randn(N, 4, dtype=torch.float64)
    mask = (torch.rand(ei.size(1), dtype=torch.float64) + 0.5)
    mask.requires_grad_()
    set_masks(model, mask, ei, apply_sigmoid=False)
    try:
        y = model(x, ei)
    finally:
        clear_masks(model)
    got_y = y[V]
    got = torch.autograd.grad(got_y.sum(), mask)[0]

    m = mask.detach().clone().requires_grad_()
    M0 = dense_m(ei, N, 0.4)
    off = torch.zeros(N, N, dtype=torch.float64).index_put(
        (ei[1], ei[0]), m * M0[ei[1], ei[0]])
    M = torch.diag(torch.diagonal(M0)) + off
    h = model.lin(x)
    for _ in range(K):
        h = M @ h
    torch.testing.assert_close(got_y, h[V], rtol=1e-10, atol=1e-12)
    want = torch.autograd.grad(h[V].sum(), m)[0]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)

    # Exactly zero outside the (K - 1)-hop in-neighbourhood of V, counted by
    # the edge's target; non-zero inside.
    inside = torch.tensor([int(i) in targets_within(ei, V, K - 1)
                           for i in ei[1]])
    assert torch.equal(got != 0, inside)
    chord_in, chord_out = ei.size(1) - 2, ei.size(1) - 1
    assert inside[chord_in] and not inside[chord_out]
    assert int(inside.sum()) == 2 * (2 * (K - 1) + 1) + 1


def test_gnn_explainer_mask_lies_in_the_receptive_field():
    ei = ring_with_chords()
    torch.manual_seed(1)
    model = Net().eval()
    x = torch.randn(N, 4)
    explainer = Explainer(
        model, GNNExplainer(epochs=20), explanation_type='model',
        node_mask_type='attributes', edge_mask_type='object',
        model_config=dict(mode='multiclass_classification',
                          task_level='node', return_type='raw'))
    explanation = explainer(x, ei, index=V)
    edge_mask = explanation.edge_mask
    inside = torch.tensor([int(i) in targets_within(ei, V, K - 1)
                           for i in ei[1]])
    assert edge_mask.shape == (ei.size(1), )
    assert torch.equal(edge_mask > 0, inside)
    assert float(edge_mask[~inside].abs().sum()) == 0.0
    # Node features outside the K-hop in-neighbourhood do not matter either.
    node_mask = explanation.node_mask
    far = torch.tensor([i not in targets_within(ei, V, K)
                        for i in range(N)])
    assert float(node_mask[far].abs().sum()) == 0.0
    assert bool((node_mask[~far].abs().sum(1) > 0).all())
