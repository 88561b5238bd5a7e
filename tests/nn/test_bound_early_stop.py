import torch

from torch_geometric_diff.nn.diffusion.operator import edge_operator
from torch_geometric_diff.nn.diffusion.spectrum import lambda_max_bound


def _star_path(n=60):
    # A hub joined to every node of a path: loose row bounds under 'sym'.
    path = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    hub = torch.stack([torch.zeros(n - 1, dtype=torch.long),
                       torch.arange(1, n)])
    ei = torch.cat([path, hub], 1)
    return torch.cat([ei, ei.flip(0)], 1), n


def test_early_stop_keeps_an_upper_bound():
    ei, n = _star_path()
    eo = edge_operator(ei[1], ei[0], torch.ones(ei.size(1), dtype=torch.float64),
                       n, 'sym', True)
    L = torch.zeros(n, n, dtype=torch.float64)
    L.index_put_((eo.target, eo.source), eo.lval, accumulate=True)
    exact = float(torch.linalg.eigvalsh(L).max())
    full = float(lambda_max_bound(eo.target, eo.source, eo.lval, n))
    loose = float(lambda_max_bound(eo.target, eo.source, eo.lval, n, iters=0))
    assert exact <= full < loose
    # Stopping once the bound is below a threshold returns a bound that is
    # still above the exact value and at most the threshold.
    mid = (full + loose) / 2
    stopped = float(lambda_max_bound(eo.target, eo.source, eo.lval, n,
                                     stop_below=mid))
    assert exact <= stopped <= mid
    # A threshold below every bound runs all iterations.
    assert float(lambda_max_bound(eo.target, eo.source, eo.lval, n,
                                  stop_below=exact / 2)) == full
