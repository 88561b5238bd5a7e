import pytest
import torch

from torch_geometric_diff import DiffConv, DiffResNetGNN
from torch_geometric_diff.nn.diffusion import operator

from diffconv_helpers import dense_reference, random_graph


def explain_graph_breaks(module, *args) -> int:
    torch._dynamo.reset()
    return torch._dynamo.explain(module)(*args).graph_break_count


@pytest.mark.parametrize('normalize', ['sym', 'rw', None])
@pytest.mark.parametrize('weighted', [False, True])
def test_compile_uncached_fullgraph(normalize, weighted):
    ei, w = random_graph(weighted=weighted)
    w = w.float() if w is not None else None
    x = torch.randn(40, 4, requires_grad=True)
    step = 0.25 if normalize is not None else 0.05
    conv = DiffConv(step, 5, dropout=0.25, normalize=normalize)
    assert explain_graph_breaks(conv, x, ei, w) == 0
    conv.eval()
    assert explain_graph_breaks(conv, x, ei, w) == 0

    torch._dynamo.reset()
    compiled = torch.compile(conv, fullgraph=True, backend='aot_eager')
    ref, _ = dense_reference(x.detach(), ei, w, 5, step, normalize)
    assert torch.allclose(compiled(x, ei, w).double(), ref, atol=1e-5)
    # Another graph of the same size: nothing is cached between calls.
    ei2, _ = random_graph(seed=7, weighted=False)
    ref2, _ = dense_reference(x.detach(), ei2, None, 5, step, normalize)
    assert torch.allclose(compiled(x, ei2).double(), ref2, atol=1e-5)
    conv.train()
    torch.manual_seed(1)
    out = compiled(x, ei, w)
    torch.manual_seed(1)
    assert torch.allclose(out, conv(x, ei, w), atol=1e-6)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_compile_uncached_model_and_learnable_step():
    ei, _ = random_graph()
    x = torch.randn(40, 6)
    model = DiffResNetGNN(6, 3, hidden_channels=8, num_steps=4,
                          learnable_step=True)
    assert explain_graph_breaks(model, x, ei) == 0
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager')
    torch.manual_seed(2)
    out = compiled(x, ei)
    torch.manual_seed(2)
    assert torch.allclose(out, model(x, ei), atol=1e-6)
    out.sum().backward()
    assert model.conv.step_param.grad is not None


def test_compiled_validation_still_rejects_bad_graphs():
    x = torch.randn(5, 3)
    conv = DiffConv(0.25, 2)
    compiled = torch.compile(conv, fullgraph=True, backend='aot_eager')
    compiled(x, torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(Exception, match='outside'):
        compiled(x, torch.tensor([[0, 5], [1, 2]]))
    with pytest.raises(Exception, match='negative or non-finite'):
        compiled(x, torch.tensor([[0, 1], [1, 2]]), torch.tensor([1., -1.]))


def test_uncached_path_builds_no_csr_operator(monkeypatch):
    # The per-call path works on the edge list: no coalesced operator, no
    # lambda_max estimate below the bound.
    def fail(*args, **kwargs):
        raise AssertionError('build_operator ran on the uncached path')

    ei, w = random_graph()
    x = torch.randn(40, 3, dtype=torch.float64, requires_grad=True)
    ref = DiffConv(0.25, 6, dropout=0.25, cached=True)
    torch.manual_seed(4)
    expected = ref(x, ei, w)
    monkeypatch.setattr(operator, 'build_operator', fail)
    monkeypatch.setattr('torch_geometric_diff.nn.conv.diff_conv.'
                        'build_operator', fail)
    conv = DiffConv(0.25, 6, dropout=0.25)
    torch.manual_seed(4)
    out = conv(x, ei, w)
    assert torch.allclose(out, expected, atol=1e-12)
    g1, = torch.autograd.grad(out.square().sum(), x)
    g2, = torch.autograd.grad(expected.square().sum(), x)
    assert torch.allclose(g1, g2, atol=1e-12)


def test_validate_false_skips_the_value_checks():
    x = torch.randn(5, 3, dtype=torch.float64)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    neg = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match='negative'):
        DiffConv(0.25, 2)(x, ei, neg)
    out = DiffConv(0.25, 2, validate=False)(x, ei, neg)  # Trusted input.
    ref, _ = dense_reference(x, ei, neg, 2, 0.25, 'sym')
    assert out.shape == (5, 3)
    conv = DiffConv(0.25, 2)
    conv.validate = False
    assert torch.allclose(conv(x, ei, neg.abs()),
                          DiffConv(0.25, 2)(x, ei, neg.abs()))
    # Shape checks cost nothing and always run.
    with pytest.raises(ValueError, match=r'shape \[2, num_edges\]'):
        DiffConv(0.25, 2, validate=False)(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='validate'):
        DiffConv(validate='no')


def test_compile_uncached_mini_batches_of_changing_size():
    # Mini-batches change N and E: the compiled layer follows (with dynamic
    # shapes after the first change) and never graph-breaks.
    torch._dynamo.reset()
    conv = DiffConv(0.25, 4, dropout=0.2)
    compiled = torch.compile(conv, fullgraph=True, backend='aot_eager')
    for n, e in [(30, 90), (41, 120), (57, 200)]:
        gen = torch.Generator().manual_seed(n)
        ei = torch.randint(0, n, (2, e), generator=gen)
        x = torch.randn(n, 5, requires_grad=True)
        torch.manual_seed(0)
        out = compiled(x, ei)
        torch.manual_seed(0)
        assert torch.allclose(out, conv(x, ei), atol=1e-6)
        out.sum().backward()
        assert torch.isfinite(x.grad).all()
