import pytest
import torch

from torch_geometric_diff import DiffConv

X = torch.randn(5, 3)
EI = torch.tensor([[0, 1, 2], [1, 2, 3]])


@pytest.mark.parametrize('cached', [False, True])
def test_meta_device_graph_is_rejected(cached):
    with pytest.raises(ValueError, match="'edge_index' is on the meta"):
        DiffConv(cached=cached)(X, EI.to('meta'))
    with pytest.raises(ValueError, match="'edge_weight' is on the meta"):
        DiffConv(cached=cached)(X, EI, torch.ones(3, device='meta'))


def test_edge_weight_must_be_a_tensor():
    with pytest.raises(TypeError, match="'edge_weight' must be a tensor"):
        DiffConv()(X, EI, [1.0, 1.0, 1.0])


def test_learnable_step_too_small_to_represent():
    with pytest.raises(ValueError, match="'step_size' .* too small to learn"):
        DiffConv(step_size=1e-320, learnable_step=True)
    conv = DiffConv(step_size=0.1, learnable_step=True)
    with pytest.raises(ValueError, match='too small to learn'):
        conv.step_size = 1e-320
    assert abs(conv.step_size - 0.1) < 1e-6  # Unchanged by the bad value.
    # Small but representable steps stay learnable and positive.
    assert DiffConv(step_size=1e-30, learnable_step=True).step_size > 0
    # A fixed step keeps any positive float.
    assert DiffConv(step_size=1e-320).step_size > 0
