import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.utils import coalesce, remove_self_loops
from torch_geometric.utils import to_torch_csr_tensor

from torch_geometric_diff import DiffResNetGNN
from benchmarks.planetoid.batched import (
    BatchedDiffResNet,
    fit_batched,
    per_model_cross_entropy,
)
from benchmarks.common import EarlyStopping


def _graph(n=40, f=16, c=3, seed=0, dtype=torch.float64):
    # Two-community-ish graph with class-dependent sparse features.
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    row = torch.randint(0, n, (4 * n, ), generator=gen)
    col = torch.randint(0, n, (4 * n, ), generator=gen)
    same = y[row] == y[col]
    keep = same | (torch.rand(4 * n, generator=gen) < 0.3)
    ei = torch.stack([row[keep], col[keep]])
    ei = coalesce(remove_self_loops(torch.cat([ei, ei.flip(0)], 1))[0])
    prob = 0.1 + 0.4 * (torch.arange(f).view(1, -1) % c == y.view(-1, 1))
    x = (torch.rand(n, f, generator=gen) < prob).to(dtype)
    x = x / x.sum(1, keepdim=True).clamp(min=1)
    adj = to_torch_csr_tensor(ei, size=(n, n)).to(dtype)
    perm = torch.randperm(n, generator=gen)
    return x, adj, y, perm[:9], perm[9:21], perm[21:]


def _single_run(seed, x, adj, y, train, val, hp):
    # The one-by-one loop of the benchmark (official Diff-ResNet loop).
    torch.manual_seed(seed)
    model = DiffResNetGNN(x.size(1), int(y.max()) + 1, hp['hidden'],
                          num_steps=hp['num_steps'], step_size=0.25,
                          dropout=hp['dropout'], cached=True).to(x.dtype)
    opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=5e-4)
    es = EarlyStopping(hp['patience'])
    for _ in range(hp['max_epochs']):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x, adj)[train], y[train]).backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            out = model(x, adj)[val]
            loss = float(F.cross_entropy(out, y[val]))
            acc = float((out.argmax(-1) == y[val]).double().mean())
        if es.step(loss, acc, model):
            break
    es.restore(model)
    model.eval()
    with torch.no_grad():
        return model(x, adj), es.epoch + 1, es.best_epoch


@pytest.mark.parametrize('hidden,sparse,num_blocks', [
    (None, True, 1), (8, False, 1), (None, False, 2), (8, True, 3),
    (2, False, 2)])
def test_forward_equals_single_models(hidden, sparse, num_blocks):
    # hidden=2 < 3 classes: the last diffusion and lin_out do not commute.
    x, adj, y, *_ = _graph()
    xin = x.to_sparse_csr() if sparse else x
    kwargs = dict(hidden_channels=hidden, num_steps=5, dropout=0.0,
                  num_blocks=num_blocks)
    batched = BatchedDiffResNet.from_seeds([3, 4, 5], 16, 3, **kwargs)
    batched = batched.to(torch.float64)
    assert batched._commute() == (3 < (hidden or 16))
    for seed, m in zip([3, 4, 5], range(3)):
        torch.manual_seed(seed)
        single = DiffResNetGNN(16, 3, **kwargs).to(torch.float64)
        for mode in (True, False):
            batched.train(mode)
            single.train(mode)
            out = batched(xin, adj)
            assert out.shape == (3, 40, 3)
            torch.testing.assert_close(out[m], single(xin, adj), rtol=1e-12,
                                       atol=1e-12)


def test_gradients_equal_single_models():
    # The summed loss gives every stacked slice its own model's gradient.
    x, adj, y, *_ = _graph()
    kwargs = dict(hidden_channels=8, num_steps=3, dropout=0.0, num_blocks=2)
    batched = BatchedDiffResNet.from_seeds([1, 2], 16, 3, **kwargs)
    batched = batched.to(torch.float64)
    per_model_cross_entropy(batched(x, adj), y).sum().backward()
    grads = {k: p.grad for k, p in batched.stacked_parameters().items()}
    for m, seed in enumerate([1, 2]):
        torch.manual_seed(seed)
        single = DiffResNetGNN(16, 3, **kwargs).to(torch.float64)
        F.cross_entropy(single(x, adj), y).backward()
        for name, p in single.named_parameters():
            if name.startswith('conv.'):
                continue
            module, key = name.rsplit('.', 1)
            torch.testing.assert_close(grads[f'{module}.stacked_{key}'][m],
                                       p.grad, rtol=1e-10, atol=1e-12)


def test_keep_and_inference():
    x, adj, *_ = _graph()
    batched = BatchedDiffResNet.from_seeds([0, 1, 2, 3], 16, 3,
                                           hidden_channels=8, num_blocks=2,
                                           num_steps=3).to(torch.float64)
    batched.eval()
    with torch.no_grad():
        full = batched(x, adj)
        torch.testing.assert_close(batched.inference(x, adj, chunk_size=7),
                                   full)
        old = batched.stacked_parameters()
        new = batched.keep_(torch.tensor([3, 1]))
        assert batched.num_models == 2 and 'num_models=2' in repr(batched)
        assert all(new[k].shape[0] == 2 and new[k] is not old[k]
                   for k in old)
        torch.testing.assert_close(batched(x, adj), full[[3, 1]])


class _CountMatmuls(torch.utils._python_dispatch.TorchDispatchMode):
    # Counts the dense-dense matrix products run under the mode (the
    # diffusion's sparse products are not counted).
    names = {'mm', 'addmm', 'bmm', 'baddbmm'}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        dense = all(a.layout == torch.strided for a in args
                    if isinstance(a, torch.Tensor))
        self.count += dense and func.overloadpacket.__name__ in self.names
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('hidden', [None, 8])
def test_linear_layers_are_one_product_for_all_models(hidden):
    # The number of dense products does not grow with the number of models.
    x, adj, *_ = _graph()
    counts = []
    for num_models in (1, 5):
        batched = BatchedDiffResNet(num_models, 16, 3, hidden, num_steps=2,
                                    num_blocks=2).to(torch.float64)
        with _CountMatmuls() as mode:
            batched(x, adj)
        counts.append(mode.count)
    # lin_in (if any), lins[0], lins[1], lin_out: one product each.
    assert counts[0] == counts[1] == (4 if hidden else 3)


@pytest.mark.parametrize('hidden', [None, 8])
def test_training_equals_one_by_one(hidden):
    # dropout=0: batched training must reproduce separate runs (epochs,
    # best epochs, restored logits), with models stopping at different
    # epochs and being removed from the batch on the way.
    x, adj, y, train, val, _ = _graph(seed=3)
    hp = dict(hidden=hidden, num_steps=4, dropout=0.0, patience=5,
              max_epochs=60)
    seeds = [11, 12, 13, 14]
    batched = BatchedDiffResNet.from_seeds(seeds, 16, 3,
                                           hidden_channels=hidden,
                                           num_steps=4, dropout=0.0)
    batched = batched.to(torch.float64)
    finished = []
    res = fit_batched(batched, x.to_sparse_csr(), adj, y, train, val,
                      lr=0.05, weight_decay=5e-4, patience=5, max_epochs=60,
                      on_finish=lambda m, *_: finished.append(m))
    assert sorted(finished) == [0, 1, 2, 3]
    epochs = []
    for m, seed in enumerate(seeds):
        logits, num_epochs, best_epoch = _single_run(
            seed, x.to_sparse_csr(), adj, y, train, val, hp)
        assert res[m]['epochs'] == num_epochs
        assert res[m]['best_epoch'] == best_epoch
        torch.testing.assert_close(res[m]['logits'], logits, rtol=1e-9,
                                   atol=1e-9)
        epochs.append(num_epochs)
    assert len(set(epochs)) > 1  # Some models were masked out early.


def test_dropout_is_independent_per_model():
    # Identical weights in every slot: the train-mode outputs differ between
    # slots (independent masks) but agree with the single model on average.
    x, adj, *_ = _graph()
    torch.manual_seed(0)
    single = DiffResNetGNN(16, 3, num_steps=3, dropout=0.5).to(torch.float64)
    batched = BatchedDiffResNet.from_modules([single] * 4).to(torch.float64)
    batched.train()
    single.train()
    torch.manual_seed(1)
    with torch.no_grad():
        # outs: [R, 4, N, C].
        outs = torch.stack([batched(x, adj) for _ in range(100)])
        singles = torch.stack([single(x, adj) for _ in range(400)])
    assert not torch.allclose(outs[:, 0], outs[:, 1])
    # Per entry, the mean of 400 batched draws (100 x 4 slots) and 400 single
    # draws agree within 5 standard errors.
    a = outs.flatten(0, 1)
    se = (a.var(0) / a.size(0) + singles.var(0) / singles.size(0)).sqrt()
    z = (a.mean(0) - singles.mean(0)).abs() / se.clamp(min=1e-12)
    assert float(z.max()) < 5.0
    single.eval()
    batched.eval()
    torch.testing.assert_close(batched(x, adj)[2], single(x, adj))


def test_per_model_cross_entropy_and_errors():
    out = torch.randn(3, 5, 4, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 1, 2])
    ref = torch.stack([F.cross_entropy(o, y) for o in out])
    torch.testing.assert_close(per_model_cross_entropy(out, y), ref)
    with pytest.raises(ValueError, match='num_models'):
        BatchedDiffResNet(0, 4, 2)
    with pytest.raises(ValueError, match='empty'):
        BatchedDiffResNet.from_modules([])
    a = DiffResNetGNN(4, 2)
    b = DiffResNetGNN(4, 2, hidden_channels=3)
    with pytest.raises(ValueError):
        BatchedDiffResNet.from_modules([a, b])


@pytest.mark.slow
def test_training_statistically_equal_with_dropout():
    # With dropout the runs cannot match exactly; the test accuracies of
    # batched and one-by-one training must agree in distribution.
    x, adj, y, train, val, test = _graph(n=90, f=24, seed=3)
    hp = dict(hidden=None, num_steps=4, dropout=0.3, patience=10,
              max_epochs=200)
    seeds = list(range(24))
    batched = BatchedDiffResNet.from_seeds(seeds, 24, 3, num_steps=4,
                                           dropout=0.3).to(torch.float64)
    res = fit_batched(batched, x, adj, y, train, val, lr=0.05,
                      weight_decay=5e-4, patience=10, max_epochs=200)
    acc_b = torch.tensor([
        float((r['logits'][test].argmax(-1) == y[test]).double().mean())
        for r in res
    ])
    acc_s = torch.tensor([
        float((_single_run(s, x, adj, y, train, val, hp)[0][test].argmax(-1)
               == y[test]).double().mean()) for s in seeds
    ])
    se = math.sqrt(acc_b.var() / len(seeds) + acc_s.var() / len(seeds))
    assert abs(float(acc_b.mean() - acc_s.mean())) < 4 * max(se, 1e-3)
