import pytest
import torch

from torch_geometric_diff import DiffConv


def _graph(n=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, 4 * n), generator=gen)
    return torch.cat([ei, ei.flip(0)], 1)


@pytest.mark.parametrize('scheme', ['explicit', 'implicit'])
@pytest.mark.parametrize('normalize', ['sym', 'rw'])
def test_prebuilt_operator_equals_edge_index(scheme, normalize):
    ei, x = _graph(), torch.randn(30, 5, dtype=torch.float64)
    conv = DiffConv(0.3, 6, dropout=0.2, normalize=normalize, scheme=scheme)
    op = conv.build_operator(ei, 30, dtype=torch.float64)
    for training in (False, True):
        conv.train(training)
        torch.manual_seed(1)
        ref = conv(x, ei)
        torch.manual_seed(1)
        out = conv(x, op)
        torch.testing.assert_close(out, ref)
    # Gradients flow to x through a prebuilt operator too.
    xg = x.clone().requires_grad_()
    conv.eval()
    conv(xg, op).sum().backward()
    xr = x.clone().requires_grad_()
    conv(xr, ei).sum().backward()
    torch.testing.assert_close(xg.grad, xr.grad)


def test_prebuilt_operator_checks():
    conv = DiffConv(0.3, 3)
    op = conv.build_operator(_graph(), 30)
    with pytest.raises(ValueError, match="has 30 nodes but 'x' has 31"):
        conv(torch.randn(31, 2), op)
    with pytest.raises(ValueError, match="'edge_weight' must be None"):
        conv(torch.randn(30, 2), op, torch.ones(3))
