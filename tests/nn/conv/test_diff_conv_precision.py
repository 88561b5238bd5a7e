import pytest
import torch

from torch_geometric_diff import DiffConv, DiffResNetGNN

from diffconv_helpers import dense_reference, random_graph

# bf16 keeps 8 significant bits, fp16 11: the output, accumulated in float32
# and rounded once to x's dtype, is within one rounding of the float32 one.
HALF = [(torch.bfloat16, 2**-7), (torch.float16, 2**-10)]


@pytest.mark.parametrize('dtype,tol', HALF)
@pytest.mark.parametrize('engine', ['fused', 'autograd'])
@pytest.mark.parametrize('cached', [False, True])
def test_half_precision_close_to_float32(dtype, tol, engine, cached):
    ei, w = random_graph()
    x = torch.randn(40, 8).to(dtype)
    conv = DiffConv(0.25, 10, engine=engine, cached=cached)
    out = conv(x, ei, w.float())
    assert out.dtype == dtype
    ref = DiffConv(0.25, 10)(x.float(), ei, w.float())
    assert (out.float() - ref).abs().max() <= tol * ref.abs().max()


@pytest.mark.parametrize('dtype,tol', HALF)
def test_half_precision_dropout_and_gradient(dtype, tol):
    ei, w = random_graph()
    x = torch.randn(40, 8).to(dtype).requires_grad_()
    x32 = x.detach().float().requires_grad_()
    conv = DiffConv(0.25, 6, dropout=0.25)
    torch.manual_seed(5)
    out = conv(x, ei, w.float())
    torch.manual_seed(5)
    ref = conv(x32, ei, w.float())  # Same seed: same masks.
    assert (out.float() - ref).abs().max() <= tol * ref.abs().max()
    out.float().pow(2).sum().backward()
    ref.pow(2).sum().backward()
    assert x.grad.dtype == dtype
    err = (x.grad.float() - x32.grad).abs().max()
    assert err <= 4 * tol * x32.grad.abs().max()


def test_operator_dtype_follows_x_not_edge_weight():
    ei, w = random_graph()
    x = torch.randn(40, 5)
    ref, _ = dense_reference(x, ei, w.half().double(), 20, 0.3)
    for cached in [False, True]:
        out = DiffConv(0.3, 20, cached=cached)(x, ei, w.half())
        assert out.dtype == torch.float32
        # float32 accuracy, not float16's.
        assert torch.allclose(out.double(), ref, atol=1e-5)
    op = DiffConv().build_operator(ei, 40, w.half(), dtype=torch.float32)
    assert op.lval.dtype == torch.float32


def test_bf16_autocast_inference_like_pyg_citation_benchmark():
    ei, _ = random_graph()
    x = torch.randn(40, 12)
    torch.manual_seed(0)
    model = DiffResNetGNN(12, 3, hidden_channels=8, num_steps=5).eval()
    ref = model(x, ei)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(x.bfloat16(), ei)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max()
