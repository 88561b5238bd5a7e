import warnings

import pytest
import torch

from torch_geometric_diff import DiffConv

from diffconv_helpers import dense_reference, random_graph

HOOKS = ['propagate_forward_pre', 'propagate_forward', 'message_forward_pre',
         'message_forward', 'aggregate_forward_pre', 'aggregate_forward',
         'message_and_aggregate_forward_pre', 'message_and_aggregate_forward']


def register(conv, name, calls):
    if name.endswith('_pre'):
        def hook(module, inputs):
            calls.append(name)
    else:
        def hook(module, inputs, output):
            calls.append(name)
    return getattr(conv, f'register_{name}_hook')(hook)


@pytest.mark.parametrize('cached', [False, True])
@pytest.mark.parametrize('name', HOOKS)
def test_fused_engine_warns_that_hooks_need_autograd(name, cached):
    ei, w = random_graph()
    x = torch.randn(40, 3)
    conv = DiffConv(0.25, 4, cached=cached)
    calls = []
    handle = register(conv, name, calls)
    with pytest.warns(UserWarning, match="engine='autograd'"):
        conv(x, ei, w)
    assert calls == []
    handle.remove()
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        conv(x, ei, w)


@pytest.mark.parametrize('name', ['propagate_forward_pre', 'message_forward',
                                  'aggregate_forward_pre'])
def test_autograd_engine_fires_hooks_once_per_step(name):
    ei, w = random_graph()
    x = torch.randn(40, 3, dtype=torch.float64)
    conv = DiffConv(0.25, 4, engine='autograd')
    calls = []
    register(conv, name, calls)
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        out = conv(x, ei, w)
    assert calls == [name] * 4
    ref, _ = dense_reference(x, ei, w, 4, 0.25)
    assert torch.allclose(out, ref, atol=1e-10)


def test_message_hook_sees_every_entry_of_m():
    ei, w = random_graph(undirected=False)
    x = torch.randn(40, 3, dtype=torch.float64)
    conv = DiffConv(0.25, 1, engine='autograd')
    seen = []
    conv.register_message_forward_hook(
        lambda module, inputs, output: seen.append(output))
    out = conv(x, ei, w)
    # One message per loop-free input edge and one per node (the diagonal).
    loops = int((ei[0] == ei[1]).sum())
    assert seen[0].shape == (ei.size(1) - loops + 40, 3)
    assert torch.allclose(out, dense_reference(x, ei, w, 1, 0.25)[0])
