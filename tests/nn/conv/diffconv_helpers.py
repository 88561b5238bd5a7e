r"""Graphs and dense references shared by the DiffConv tests."""
import torch


def random_graph(num_nodes=40, num_edges=120, seed=0, weighted=True,
                 undirected=True, isolated=3):
    r"""A random multigraph with duplicate edges, self-loops and
    :obj:`isolated` nodes that no edge touches."""
    gen = torch.Generator().manual_seed(seed)
    n = num_nodes - isolated
    ei = torch.randint(0, n, (2, num_edges), generator=gen)
    ei = torch.cat([ei, ei[:, :10], torch.tensor([[0, 1], [0, 1]])], dim=1)
    w = torch.rand(ei.size(1), generator=gen, dtype=torch.float64) + 0.1
    if undirected:
        ei = torch.cat([ei, ei.flip(0)], dim=1)
        w = torch.cat([w, w])
    return ei, (w if weighted else None)


def dense_reference(x, edge_index, edge_weight, num_steps, step_size,
                    normalize='sym', add_self_loops=True):
    r"""K steps of x <- x - gamma L x, straight from the formulas, with
    A[i, j] = summed weight of the edges j -> i."""
    n = x.size(0)
    w = edge_weight if edge_weight is not None else torch.ones(
        edge_index.size(1), dtype=torch.float64)
    A = torch.zeros(n, n, dtype=torch.float64)
    A.index_put_((edge_index[1], edge_index[0]), w.double(), accumulate=True)
    if normalize is not None and add_self_loops:
        A = A + torch.eye(n, dtype=torch.float64)
    deg = A.sum(1)
    if normalize == 'sym':
        dis = deg.pow(-0.5)
        dis[torch.isinf(dis)] = 0
        A_hat = dis.view(-1, 1) * A * dis.view(1, -1)
    elif normalize == 'rw':
        dinv = 1.0 / deg
        dinv[torch.isinf(dinv)] = 0
        A_hat = dinv.view(-1, 1) * A
    else:
        A_hat = A
    L = torch.diag(A_hat.sum(1)) - A_hat
    out = x.double()
    for _ in range(num_steps):
        out = out - step_size * (L @ out)
    return out, L
