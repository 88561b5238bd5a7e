r"""Exact largest eigenvalue of Diff-ResNet's Laplacian per dataset, and the
step size bound :math:`\gamma \le 2 / \lambda_{\max}(\mathbf{L})` of explicit
Euler.

:math:`\mathbf{L}` is the Laplacian :class:`torch_geometric_diff.DiffConv`
diffuses with (its default ``normalize='sym'`` with self-loops), on the graph
``benchmarks/planetoid.py`` trains on (the largest connected component for
``--protocol random``). ``DiffConv`` itself only estimates
:math:`\lambda_{\max}` by power iteration; this script asks
:func:`scipy.sparse.linalg.eigsh`.

Example::

    python benchmarks/lambda_max.py --dataset Cora CiteSeer PubMed \
        --protocol random --root ../shared/data
"""
import os.path as osp
import sys

if __name__ == '__main__':  # import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import os
from typing import Optional, Sequence

import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

from benchmarks.common.cli import ArgumentParser, run_main
from benchmarks.planetoid.datasets import (DATASETS, canonical, check_cache,
                                           load_pyg_dataset, preprocess)
from benchmarks.planetoid.protocols import PROTOCOLS


def laplacian_lambda_max(edge_index, num_nodes: int) -> float:
    r"""The largest eigenvalue of the Laplacian of
    :meth:`DiffConv.build_operator`, by Lanczos iteration."""
    from torch_geometric_diff import DiffConv
    op = DiffConv().build_operator(edge_index, num_nodes)
    L = sp.csr_matrix((op.lval.double().numpy(), op.col.numpy(),
                       op.crow.numpy()), shape=(num_nodes, num_nodes))
    return float(eigsh(L, k=1, which='LA', return_eigenvectors=False)[0])


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--dataset', nargs='+', default=['Cora'])
    p.add_argument('--protocol', default='random', choices=PROTOCOLS)
    p.add_argument('--root', default='data')
    p.add_argument('--cache', default=os.environ.get(
        'TGD_CACHE', os.path.join(os.path.expanduser('~'), '.cache',
                                  'torch_geometric_diff', 'data')))
    p.add_argument('--offline', action='store_true')
    args = p.parse_args(argv)
    specs = [DATASETS[canonical(name, DATASETS, 'dataset')]
             for name in args.dataset]
    check_cache(args.root, args.cache)
    print('| Dataset | nodes | lambda_max(L) | step bound 2 / lambda_max |')
    print('|---|---:|---:|---:|')
    for spec in specs:
        data = load_pyg_dataset(spec, args.protocol, args.root, args.cache,
                                args.offline)[0]
        g = preprocess(data, spec, args.protocol, 1, 1, 42)
        lam = laplacian_lambda_max(g.edge_index, g.num_nodes)
        print(f'| {spec.name} | {g.num_nodes} | {lam:.4g} | {2 / lam:.4g} |',
              flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
