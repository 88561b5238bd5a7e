import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import APPNP, GCNConv, Linear

from benchmarks.planetoid.datasets import DATASETS
from benchmarks.planetoid.models import (build_model, input_dropout,
                                         model_hparams)


def test_input_dropout_sparse():
    torch.manual_seed(0)
    x = (torch.rand(50, 40) < 0.2).float() * 3.0
    out = input_dropout(x.to_sparse_csr(), 0.5, True).to_dense()
    kept = out != 0
    assert bool((kept <= (x != 0)).all())  # Zeros stay zero.
    assert torch.equal(out[kept], torch.full_like(out[kept], 6.0))
    frac = float(kept.sum()) / float((x != 0).sum())
    assert 0.4 < frac < 0.6
    assert input_dropout(x, 0.5, False) is x


def test_official_model_is_diffresnet(toy_graph):
    # The official code's model in the harness against DiffResNetGNN with the
    # same weights: equal logits and gradients (dropout off), and built from
    # the init seed exactly as the official code builds its model.
    g = toy_graph
    cora = DATASETS['cora']
    hp_off = model_hparams('official', cora, {'hidden': 64})
    assert 'hidden' not in hp_off and hp_off['num_steps'] == 20
    torch.manual_seed(123)
    off = build_model('official', g, hp_off)
    torch.manual_seed(123)
    lin = torch.nn.Linear(g.x.size(1), g.x.size(1))
    cls = torch.nn.Linear(g.x.size(1), g.num_classes)
    assert torch.equal(off.model.linear.weight, lin.weight)
    assert torch.equal(off.model.classifier.bias, cls.bias)

    ours = build_model('diffresnet', g, model_hparams('diffresnet', cora, {}))
    ours.model.lins[0].load_state_dict(off.model.linear.state_dict())
    ours.model.lin_out.load_state_dict(off.model.classifier.state_dict())
    off.eval(), ours.eval()
    out_off, out_ours = off(g.x_dense, g), ours(g.x, g)
    assert torch.allclose(out_off, out_ours, atol=1e-5)
    assert not torch.allclose(out_off, out_off.mean(0), atol=1e-3)
    loss_off = F.cross_entropy(out_off, g.y)
    loss_ours = F.cross_entropy(out_ours, g.y)
    loss_off.backward(), loss_ours.backward()
    for a, b in ((off.model.linear, ours.model.lins[0]),
                 (off.model.classifier, ours.model.lin_out)):
        assert torch.allclose(a.weight.grad, b.weight.grad, atol=1e-5)
        assert torch.allclose(a.bias.grad, b.bias.grad, atol=1e-5)


# The hand-written baselines that PyG's models replace, written out layer by
# layer: input dropout, layer, ReLU, dropout, layer (APPNP: then propagate).
class HandMLP(torch.nn.Module):
    def __init__(self, in_channels, out_channels, hidden, dropout, **kwargs):
        super().__init__()
        self.lin1 = Linear(in_channels, hidden)
        self.lin2 = Linear(hidden, out_channels)
        self.dropout = dropout

    def forward(self, x, g):
        x = input_dropout(x, self.dropout, self.training)
        x = F.relu(self.lin1(x))
        x = F.dropout(x, self.dropout, self.training)
        return self.lin2(x)


class HandGCN(torch.nn.Module):
    def __init__(self, in_channels, out_channels, hidden, dropout, **kwargs):
        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden, cached=True)
        self.conv2 = GCNConv(hidden, out_channels, cached=True)
        self.dropout = dropout

    def forward(self, x, g):
        x = input_dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, g.adj_t))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, g.adj_t)


class HandAPPNP(HandMLP):
    def __init__(self, in_channels, out_channels, hidden, dropout, num_steps,
                 alpha, **kwargs):
        super().__init__(in_channels, out_channels, hidden, dropout)
        self.prop = APPNP(num_steps, alpha, cached=True)

    def forward(self, x, g):
        return self.prop(super().forward(x, g), g.adj_t)


@pytest.mark.parametrize('name,hand', [('mlp', HandMLP), ('gcn', HandGCN),
                                       ('appnp', HandAPPNP)])
def test_pyg_models_are_the_hand_written_ones(toy_graph, name, hand):
    g = toy_graph
    assert g.x.layout == torch.sparse_csr  # Bag-of-words input stays sparse.
    hp = model_hparams(name, DATASETS['cora'], {})
    torch.manual_seed(0)
    ref = hand(g.x.size(1), g.num_classes, **hp)
    torch.manual_seed(0)
    new = build_model(name, g, hp)
    ref_params, new_params = list(ref.parameters()), list(new.parameters())
    assert [p.shape for p in new_params] == [p.shape for p in ref_params]
    assert sum(p.numel() for p in new_params) == sum(
        p.numel() for p in ref_params)
    # Same init seed, same weights and generator state after: the same runs.
    assert all(torch.equal(a, b) for a, b in zip(ref_params, new_params))
    torch.manual_seed(0)
    hand(g.x.size(1), g.num_classes, **hp)
    after = torch.rand(3)
    torch.manual_seed(0)
    build_model(name, g, hp)
    assert torch.equal(torch.rand(3), after)
    # Same weights and dropout seed: equal outputs and gradients, in
    # training mode (same dropout draws in the same order) and in eval mode.
    for training in (True, False):
        ref.train(training), new.train(training)
        torch.manual_seed(1)
        out_ref = ref(g.x, g)
        torch.manual_seed(1)
        out_new = new(g.x, g)
        assert torch.allclose(out_new, out_ref, atol=1e-6)
        assert not torch.allclose(out_ref, out_ref.mean(0), atol=1e-3)
    F.cross_entropy(out_ref, g.y).backward()
    F.cross_entropy(out_new, g.y).backward()
    for a, b in zip(ref_params, new_params):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_dropout_placement_counts(toy_graph):
    # Dropout is live in training mode in every replaced model: two seeds
    # give different outputs, and eval mode is deterministic.
    g = toy_graph
    for name in ('mlp', 'gcn', 'appnp'):
        model = build_model(name, g, model_hparams(name, DATASETS['cora'],
                                                   {}))
        torch.manual_seed(1)
        a = model(g.x, g)
        torch.manual_seed(2)
        assert not torch.allclose(a, model(g.x, g))
        model.eval()
        assert torch.equal(model(g.x, g), model(g.x, g))
