r"""The capturable diffusion loop of
:mod:`torch_geometric_diff.nn.diffusion.graphs`.

On the CPU (always run): its masks are bitwise those of
:func:`dropout_mask`, its forward and backward recursions equal the dense
formulas and the engine, and the cache captures, reuses, evicts and falls
back as documented (with a stand-in for the CUDA graph). On CUDA: a replayed
graph equals the eager loop bitwise, for new seeds and operator values too.
"""
import pytest
import torch

from torch_geometric_diff.nn.diffusion import (
    build_operator,
    diffuse,
    diffuse_reference,
    draw_seed,
    dropout_mask,
)
from torch_geometric_diff.nn.diffusion import graphs
from torch_geometric_diff.nn.diffusion.graphs import (
    GraphedDiffusion,
    StepGraph,
    StepPlan,
    diffuse_steps,
    graphs_enabled,
    run_steps,
    step_mask,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
N = 40


def directed_operator(n=N, seed=0, device='cpu'):
    # A weighted directed graph: M^T != M, so the transpose matters.
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, 4 * n), generator=gen)
    w = torch.rand(ei.size(1), generator=gen, dtype=torch.float64) + 0.1
    op = build_operator(ei[1].to(device), ei[0].to(device), w.to(device), n)
    assert op.perm_t is not None
    return op


def matrices(op, gamma, p):
    # M (scaled by 1 / (1 - p)) as CSR, its transpose as CSR, M dense.
    gamma = torch.tensor(gamma, dtype=torch.float64, device=op.crow.device)
    M = op.matrix(gamma, p, torch.float64)
    return M, op.csr(M.values(), transpose=True), M.to_dense()


def dense_forward(x, Md, steps, p, seed):
    for k in steps:
        if p > 0:
            x = dropout_mask(seed, k, tuple(x.shape), p, x.device,
                             x.dtype) * x
        x = Md @ x
    return x


def dense_backward(g, Md, steps, p, seed):
    for k in steps:
        g = Md.t() @ g
        if p > 0:
            g = dropout_mask(seed, k, tuple(g.shape), p, g.device,
                             g.dtype) * g
    return g


def eager(h, M, steps, p, seed, transpose=False):
    plan = StepPlan(h.shape, steps, p, h.device)
    seed_t = torch.full((), seed, dtype=torch.int64, device=h.device)
    return diffuse_steps(h, M, seed_t, plan, transpose)


SEEDS = [0, 17, 2**62 - 1, 123456789012345]


@pytest.mark.parametrize('p', [0.1, 0.25, 0.5, 0.3])
@pytest.mark.parametrize('shape', [(1, ), (7, 3), (100, 16), (33, 5)])
def test_step_mask_equals_dropout_mask(p, shape):
    for seed in SEEDS:
        for step in [0, 1, 5, 19]:
            want = dropout_mask(seed, step, shape, p, torch.device('cpu'))
            got = step_mask(torch.tensor([seed]), step, shape, p)
            assert got.dtype == torch.float32
            assert torch.equal(got, want)
            assert torch.equal(step_mask(seed, step, shape, p), want)
    assert not torch.equal(step_mask(1, 0, (100, 16), p),
                           step_mask(1, 1, (100, 16), p))


@pytest.mark.parametrize('p', [0.0, 0.1, 0.25, 0.5])
@pytest.mark.parametrize('num_steps', [1, 3, 8])
def test_forward_and_backward_recursions_equal_dense(p, num_steps):
    op = directed_operator()
    M, MT, Md = matrices(op, 0.3, p)
    x = torch.randn(N, 6, dtype=torch.float64)
    for seed in SEEDS[:3]:
        fwd = range(num_steps)
        bwd = list(reversed(fwd))
        out = eager(x, M, fwd, p, seed)
        torch.testing.assert_close(out, dense_forward(x, Md, fwd, p, seed),
                                   rtol=1e-12, atol=1e-12)
        back = eager(x, MT, bwd, p, seed, transpose=True)
        torch.testing.assert_close(back, dense_backward(x, Md, bwd, p, seed),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('p', [0.0, 0.25, 0.5])
def test_same_arithmetic_as_a_literal_loop(p):
    # The same CSR products and masks as the pure-PyTorch loop: bitwise.
    op = directed_operator()
    M, MT, _ = matrices(op, 0.4, p)
    x = torch.randn(N, 5, dtype=torch.float64)
    h, g = x, x
    for k in range(5):
        m = dropout_mask(9, k, (N, 5), p, x.device, x.dtype)
        h = M @ (h * m if p > 0 else h)
        g = MT @ g
        g = g * dropout_mask(9, 4 - k, (N, 5), p, x.device,
                             x.dtype) if p > 0 else g
    assert torch.equal(eager(x, M, range(5), p, 9), h)
    assert torch.equal(eager(x, MT, range(4, -1, -1), p, 9, True), g)


@pytest.mark.parametrize('p', [0.0, 0.25])
def test_equals_the_engine_and_its_gradient(p):
    op = directed_operator()
    gamma = torch.tensor(0.3, dtype=torch.float64)
    M, MT, _ = matrices(op, 0.3, p)
    x = torch.randn(N, 4, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(N, 4, dtype=torch.float64)
    seed = draw_seed()
    out = diffuse(x, op, gamma, 6, p, seed)
    want_x = torch.autograd.grad((out * grad).sum(), x)[0]
    got = run_steps(x.detach(), M, range(6), p, seed)
    torch.testing.assert_close(got, out.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        got, diffuse_reference(x, op, gamma, 6, p, seed).detach(),
        rtol=1e-12, atol=1e-12)
    got_x = run_steps(grad, MT, reversed(range(6)), p, seed, transpose=True)
    torch.testing.assert_close(got_x, want_x, rtol=1e-12, atol=1e-12)


def test_masks_drawn_at_once_equal_masks_per_step(monkeypatch):
    op = directed_operator()
    M, MT, _ = matrices(op, 0.3, 0.25)
    x = torch.randn(N, 7, dtype=torch.float64)
    assert StepPlan(x.shape, range(6), 0.25, x.device).batched
    at_once = eager(x, M, range(6), 0.25, 5)
    back_at_once = eager(x, MT, range(5, -1, -1), 0.25, 5, True)
    monkeypatch.setattr(graphs, '_BATCH_BYTES', 0)
    assert not StepPlan(x.shape, range(6), 0.25, x.device).batched
    assert torch.equal(eager(x, M, range(6), 0.25, 5), at_once)
    assert torch.equal(eager(x, MT, range(5, -1, -1), 0.25, 5, True),
                       back_at_once)


def test_input_kept_and_seed_forms():
    op = directed_operator()
    M, _, _ = matrices(op, 0.3, 0.5)
    x = torch.randn(N, 3, dtype=torch.float64)
    x0 = x.clone()
    a = run_steps(x, M, range(4), 0.5, 11)
    assert torch.equal(x, x0)
    assert torch.equal(run_steps(x, M, range(4), 0.5, torch.tensor([11])), a)
    assert not torch.equal(run_steps(x, M, range(4), 0.5, 12), a)
    empty = run_steps(x, M, [], 0.5, 11)
    assert torch.equal(empty, x) and empty.data_ptr() != x.data_ptr()
    with pytest.raises(TypeError, match='seed'):
        run_steps(x, M, range(4), 0.5, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="'p'"):
        run_steps(x, M, range(4), 1.0, 11)


def test_environment_switch(monkeypatch):
    monkeypatch.delenv('TGD_CUDA_GRAPHS', raising=False)
    assert graphs_enabled()
    monkeypatch.setenv('TGD_CUDA_GRAPHS', '0')
    assert not graphs_enabled()
    monkeypatch.setenv('TGD_CUDA_GRAPHS', '1')
    assert graphs_enabled()
    # A CPU tensor is never captured.
    assert not GraphedDiffusion(enabled=True).capturable(torch.zeros(1))


class FakeGraph:
    r"""A stand-in for :class:`StepGraph` on the CPU with the same static
    semantics: the pattern is fixed at construction, values, input and seed
    come with every run."""
    made = 0

    def __init__(self, M, shape, dtype, steps, p, transpose):
        FakeGraph.made += 1
        self.crow, self.col = M.crow_indices(), M.col_indices()
        self.args = (shape, dtype, steps, p, transpose)
        self.plan = StepPlan(shape, steps, p, M.device)

    def run(self, h, values, seed):
        assert (tuple(h.shape), h.dtype) == self.args[:2]
        M = torch.sparse_csr_tensor(self.crow, self.col, values,
                                    (h.size(0), h.size(0)))
        seed = torch.full((), int(seed), dtype=torch.int64)
        return diffuse_steps(h, M, seed, self.plan, self.args[4]).clone()


class CPUGraphs(GraphedDiffusion):
    graph_cls = FakeGraph

    def capturable(self, h):
        return graphs_enabled() if self.enabled is None else self.enabled


def test_cache_captures_on_second_call_and_replays_new_inputs():
    FakeGraph.made = 0
    cache = CPUGraphs(max_graphs=2)
    op = directed_operator()
    x = torch.randn(N, 4, dtype=torch.float64)
    M, MT, _ = matrices(op, 0.3, 0.25)
    assert torch.equal(cache.run(x, M, range(5), 0.25, 1),
                       eager(x, M, range(5), 0.25, 1))
    assert FakeGraph.made == 0 and not cache.graphs
    for seed, gamma in [(1, 0.3), (2, 0.3), (2, 0.1), (3, 0.2)]:
        M2 = matrices(op, gamma, 0.25)[0]  # New values, same pattern.
        assert torch.equal(cache.run(x, M2, range(5), 0.25, seed),
                           eager(x, M2, range(5), 0.25, seed))
    assert FakeGraph.made == 1 and len(cache.graphs) == 1
    # Other steps, direction, p or shape: other keys.
    cache.run(x, MT, range(4, -1, -1), 0.25, 1, transpose=True)
    cache.run(x, MT, range(4, -1, -1), 0.25, 1, transpose=True)
    assert FakeGraph.made == 2
    cache.run(x[:, :2].contiguous(), M, range(5), 0.25, 1)
    cache.run(x[:, :2].contiguous(), M, range(5), 0.25, 1)
    assert FakeGraph.made == 3 and len(cache.graphs) == 2  # LRU evicted one.
    cache.run(x, M, range(5), 0.25, 1)  # The evicted key counts anew.
    assert FakeGraph.made == 3
    cache.run(x, M, range(5), 0.25, 1)
    assert FakeGraph.made == 4


def test_cache_never_captures_a_rebuilt_operator():
    FakeGraph.made = 0
    cache = CPUGraphs()
    x = torch.randn(N, 4, dtype=torch.float64)
    for _ in range(5):
        M = matrices(directed_operator(), 0.3, 0.25)[0]
        assert torch.equal(cache.run(x, M, range(3), 0.25, 4),
                           eager(x, M, range(3), 0.25, 4))
    assert FakeGraph.made == 0


def test_counted_keys_hold_their_index_tensors():
    # While a key lives, no other operator can take its addresses.
    cache = CPUGraphs()
    x = torch.randn(N, 4, dtype=torch.float64)
    M = matrices(directed_operator(), 0.3, 0.25)[0]
    ptrs = {M.crow_indices().data_ptr(), M.col_indices().data_ptr()}
    cache.run(x, M, range(3), 0.25, 4)
    del M
    held = {t.data_ptr() for entry in cache._calls.values()
            for t in entry[1:]}
    assert ptrs <= held


def test_cache_disabled_and_failed_capture(monkeypatch):
    FakeGraph.made = 0
    M = matrices(directed_operator(), 0.3, 0.25)[0]
    x = torch.randn(N, 4, dtype=torch.float64)
    monkeypatch.setenv('TGD_CUDA_GRAPHS', '0')
    cache = CPUGraphs()
    for _ in range(3):
        cache.run(x, M, range(3), 0.25, 4)
    assert FakeGraph.made == 0
    monkeypatch.setenv('TGD_CUDA_GRAPHS', '1')

    class Broken(CPUGraphs):
        def graph_cls(self, *args):
            raise RuntimeError('operation not permitted when capturing')

    cache = Broken()
    with pytest.warns(RuntimeWarning, match='capture'):
        for _ in range(4):
            out = cache.run(x, M, range(3), 0.25, 4)
    assert torch.equal(out, eager(x, M, range(3), 0.25, 4))
    assert not cache.graphs


# CUDA ########################################################################


@cuda
@pytest.mark.parametrize('p', [0.1, 0.25, 0.5])
def test_cuda_masks_equal_cpu_masks(p):
    for seed in SEEDS:
        s = torch.tensor([seed], device='cuda')
        for shape in [(7, 3), (2708, 64)]:
            got = step_mask(s, 3, shape, p)
            assert got.is_cuda
            assert torch.equal(got.cpu(), dropout_mask(seed, 3, shape, p,
                                                       torch.device('cpu')))


@cuda
@pytest.mark.parametrize('p', [0.0, 0.25, 0.5])
@pytest.mark.parametrize('transpose', [False, True])
@pytest.mark.parametrize('batch', [True, False])
def test_cuda_graph_equals_eager_bitwise(monkeypatch, p, transpose, batch):
    if not batch:
        monkeypatch.setattr(graphs, '_BATCH_BYTES', 0)
    n, f = 3000, 32
    op = directed_operator(n, device='cuda')
    M, MT, _ = matrices(op, 0.3, p)
    A = MT if transpose else M
    steps = tuple(range(7, -1, -1) if transpose else range(8))
    x = torch.randn(n, f, dtype=torch.float64, device='cuda')
    g = StepGraph(A, (n, f), torch.float64, steps, p, transpose)
    assert g.plan.batched == batch or p == 0
    first = g.run(x, A.values(), 21)
    assert torch.equal(first, eager(x, A, steps, p, 21, transpose))
    kept = first.clone()
    second = g.run(x, A.values(), torch.tensor([22], device='cuda'))
    assert torch.equal(second, eager(x, A, steps, p, 22, transpose))
    assert torch.equal(first, kept)  # A new tensor, not the static output.
    if p > 0:
        assert not torch.equal(first, second)
    # New operator values and input through the same graph.
    M2, MT2, _ = matrices(op, 0.1, p)
    A2 = MT2 if transpose else M2
    y = torch.randn_like(x)
    assert torch.equal(g.run(y, A2.values(), 21),
                       eager(y, A2, steps, p, 21, transpose))
    # And the CPU computes the same.
    cpu = eager(y.cpu(), A2.cpu(), steps, p, 21, transpose)
    torch.testing.assert_close(g.run(y, A2.values(), 21).cpu(), cpu,
                               rtol=1e-10, atol=1e-12)


@cuda
def test_cuda_run_steps_captures_and_switch(monkeypatch):
    op = directed_operator(500, device='cuda')
    M = matrices(op, 0.3, 0.25)[0]
    x = torch.randn(500, 16, device='cuda', dtype=torch.float64)
    cache = GraphedDiffusion(enabled=None)
    monkeypatch.setenv('TGD_CUDA_GRAPHS', '0')
    cache.run(x, M, range(6), 0.25, 3)
    cache.run(x, M, range(6), 0.25, 3)
    assert not cache.graphs
    monkeypatch.setenv('TGD_CUDA_GRAPHS', '1')
    outs = [cache.run(x, M, range(6), 0.25, s) for s in (3, 4, 5)]
    assert len(cache.graphs) == 1
    for s, out in zip((3, 4, 5), outs):
        assert torch.equal(out, eager(x, M, range(6), 0.25, s))
