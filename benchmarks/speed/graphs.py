r"""The graphs of the speed benchmark: Planetoid's citation graphs with
binary, row-normalised bag-of-words features (sparse), a random graph
of ogbn-arxiv's size with dense features (synthetic), and a tiny random graph
with sparse features for quick checks."""
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

import torch
from torch import Tensor
from torch_geometric.utils import to_undirected

from benchmarks.common.cli import UsageError

GRAPHS = ('cora', 'citeseer', 'pubmed', 'arxiv-synthetic',
          'tiny-synthetic')
PLANETOID = {'cora': 'Cora', 'citeseer': 'CiteSeer', 'pubmed': 'PubMed'}


def planetoid_raw(root: Optional[str], name: str) -> str:
    r"""The folder of Planetoid :obj:`name`'s raw files under
    :obj:`root` (``data`` if :obj:`None`)."""
    return os.path.join(root or 'data', 'Planetoid', PLANETOID[name], 'raw')


def check_graphs(names, root: Optional[str]) -> None:
    r"""Raises :class:`UsageError` unless the raw files of every Planetoid
    graph in :obj:`names` are under :obj:`root`."""
    for name in names:
        if name in PLANETOID and not os.path.isdir(planetoid_raw(root,
                                                                 name)):
            raise UsageError(f"--root: no Planetoid files at "
                             f"'{planetoid_raw(root, name)}' (pass the "
                             f"folder that holds Planetoid/<name>/raw)")


def load_graph(name: str, root: Optional[str], device: torch.device,
               seed: int = 0) -> Dict[str, Any]:
    r"""Features (``x`` dense; ``x_in`` as fed to the models: CSR where the
    data is sparse), labels ``y``, the training ``mask``, the undirected
    ``edge_index`` and ``num_classes`` of graph :obj:`name`, on
    :obj:`device`. Planetoid's raw files are copied to a temporary folder
    before PyG processes them, so :obj:`root` is only read."""
    if name in PLANETOID:
        from torch_geometric.datasets import Planetoid
        title = PLANETOID[name]
        work = os.path.join(tempfile.gettempdir(), 'tgd_speed', 'Planetoid')
        if not os.path.isdir(os.path.join(work, title, 'raw')):
            shutil.copytree(planetoid_raw(root, name),
                            os.path.join(work, title, 'raw'),
                            dirs_exist_ok=True)
        data = Planetoid(work, title)[0]
        x = (data.x > 0).float()  # Binary bag of words, row-normalised.
        x = x / x.sum(1, keepdim=True).clamp(min=1)
        ei, y, mask = data.edge_index, data.y, data.train_mask
        sparse = True
    elif name == 'arxiv-synthetic':
        gen = torch.Generator().manual_seed(seed)
        n, e, f, c = 169_343, 1_166_243, 128, 40
        ei = torch.randint(0, n, (2, e), generator=gen)
        ei = to_undirected(ei, num_nodes=n)
        x = torch.randn(n, f, generator=gen)
        y = torch.randint(0, c, (n, ), generator=gen)
        mask = torch.rand(n, generator=gen) < 0.54
        sparse = False
    elif name == 'tiny-synthetic':
        gen = torch.Generator().manual_seed(seed)
        n, e, f, c = 200, 600, 24, 3
        ei = to_undirected(torch.randint(0, n, (2, e), generator=gen),
                           num_nodes=n)
        x = (torch.rand(n, f, generator=gen) < 0.2).float()
        x = x / x.sum(1, keepdim=True).clamp(min=1)
        y = torch.randint(0, c, (n, ), generator=gen)
        mask = torch.rand(n, generator=gen) < 0.5
        sparse = True
    else:
        raise ValueError(f"Unknown graph '{name}'")
    out = dict(name=name, x=x.to(device), y=y.to(device),
               mask=mask.to(device), edge_index=ei.to(device),
               num_classes=int(y.max()) + 1, sparse=sparse)
    out['x_in'] = out['x'].to_sparse_csr() if sparse else out['x']
    return out


def features(g: Dict[str, Any], width: Optional[int], seed: int) -> Tensor:
    r"""The graph's dense features, or seeded standard normal ones of
    :obj:`width` columns."""
    if width is None:
        return g['x'].detach().clone()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(g['x'].size(0), width, generator=gen)
    return x.to(g['x'].device)
