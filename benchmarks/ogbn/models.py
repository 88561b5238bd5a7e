r"""The models of the OGB benchmark, the graph argument each one takes, and
the layer-wise full-graph inference of the baselines.

The baselines are OGB's arxiv examples, built from PyG's own models with the
same layers in the same order: graph convolution (or linear map), batch
normalization, ReLU and dropout per hidden layer, a plain last layer.
:class:`~torch_geometric.nn.models.GCN` runs on the pre-normalized
adjacency :func:`sym_norm_adj`, :class:`~torch_geometric.nn.models.GraphSAGE`
on the row-normalized :func:`mean_adj` with ``aggr='sum'`` (the mean over
in-neighbours), :class:`~torch_geometric.nn.models.MLP` on the features
alone.
"""
from typing import Optional, Union

import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.nn.models import GCN, MLP, GraphSAGE

from torch_geometric_diff import DiffResNetGNN
from torch_geometric_diff.loader import BlockedOperator, apply_in_chunks

MODELS = ('diffresnet', 'gcn', 'sage', 'mlp')
Device = Union[str, torch.device]


def sym_norm_adj(edge_index: Tensor, num_nodes: int) -> Tensor:
    r""":math:`\tilde{\mathbf{D}}^{-1/2}(\mathbf{A} + \mathbf{I})
    \tilde{\mathbf{D}}^{-1/2}` as :obj:`torch.sparse_csr` (rows are
    targets), on the device of :obj:`edge_index`."""
    ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
    adj = torch.sparse_coo_tensor(ei.flip(0), w, (num_nodes, num_nodes))
    return adj.coalesce().to_sparse_csr()


def mean_adj(edge_index: Tensor, num_nodes: int) -> Tensor:
    r""":math:`\mathbf{D}^{-1}\mathbf{A}` (the mean over in-neighbours) as
    :obj:`torch.sparse_csr`."""
    row, col = edge_index[1], edge_index[0]
    deg = torch.bincount(row, minlength=num_nodes).clamp_(min=1)
    w = 1.0 / deg[row].float()
    adj = torch.sparse_coo_tensor(torch.stack([row, col]), w,
                                  (num_nodes, num_nodes))
    return adj.coalesce().to_sparse_csr()


def build_model(name: str, in_channels: int, out_channels: int,
                hidden_channels: int, num_layers: int, dropout: float,
                num_steps: int = 10, step_size: float = 0.25,
                num_blocks: int = 1,
                cached: bool = False) -> torch.nn.Module:
    r"""The model :obj:`name` (one of :obj:`MODELS`).

    Args:
        name (str): :obj:`"diffresnet"`, :obj:`"gcn"`, :obj:`"sage"` or
            :obj:`"mlp"`.
        in_channels (int): Input features.
        out_channels (int): Classes.
        hidden_channels (int): Hidden width.
        num_layers (int): Layers of the baselines (unused by diffresnet).
        dropout (float): Dropout probability (per diffusion step for
            diffresnet, per hidden layer for the baselines).
        num_steps (int, optional): Diffusion steps :math:`K` of diffresnet.
        step_size (float, optional): Step size :math:`\gamma` of diffresnet.
        num_blocks (int, optional): Residual blocks of diffresnet.
        cached (bool, optional): Whether diffresnet caches its operator (one
            fixed graph, i.e. full-batch training).
    """
    if name == 'diffresnet':
        return DiffResNetGNN(in_channels, out_channels,
                             hidden_channels=hidden_channels,
                             num_steps=num_steps, step_size=step_size,
                             dropout=dropout, num_blocks=num_blocks,
                             cached=cached)
    if name == 'gcn':
        return GCN(in_channels, hidden_channels, num_layers, out_channels,
                   dropout=dropout, norm='batch_norm', normalize=False)
    if name == 'sage':
        return GraphSAGE(in_channels, hidden_channels, num_layers,
                         out_channels, dropout=dropout, norm='batch_norm',
                         aggr='sum')
    if name == 'mlp':
        return MLP(in_channels=in_channels, hidden_channels=hidden_channels,
                   out_channels=out_channels, num_layers=num_layers,
                   dropout=dropout, norm='batch_norm')
    raise ValueError(f"Unknown model '{name}' (choose from "
                     f"{', '.join(MODELS)})")


def graph_input(name: str, edge_index: Tensor,
                num_nodes: int) -> Optional[Tensor]:
    r"""What model :obj:`name` takes as its graph argument: the edges for
    diffresnet, :func:`sym_norm_adj` for gcn, :func:`mean_adj` for sage,
    nothing for mlp."""
    if name == 'diffresnet':
        return edge_index
    if name == 'gcn':
        return sym_norm_adj(edge_index, num_nodes)
    if name == 'sage':
        return mean_adj(edge_index, num_nodes)
    return None


def apply(model: torch.nn.Module, x: Tensor,
          graph: Optional[Tensor]) -> Tensor:
    r"""Runs :obj:`model` on :obj:`x` and its graph argument (none for
    mlp)."""
    return model(x) if graph is None else model(x, graph)


@torch.no_grad()
def layerwise_inference(model: torch.nn.Module, x: Tensor,
                        op: Optional[BlockedOperator], device: Device,
                        chunk_size: int) -> Tensor:
    r"""The evaluation-mode output of a baseline on the full graph, layer by
    layer: node-wise maps in chunks of :obj:`chunk_size` nodes on
    :obj:`device`, propagation through :obj:`op` (:func:`graph_input` of
    the full graph, placed with
    :func:`~torch_geometric_diff.loader.place_operator`; :obj:`None` for
    mlp). The model must be in evaluation mode."""
    def chunked(fn, h: Tensor) -> Tensor:
        return apply_in_chunks(fn, h, chunk_size, device)

    if isinstance(model, MLP):
        return chunked(model, x)
    if not isinstance(model, (GCN, GraphSAGE)) or model.jk_mode is not None:
        raise TypeError(f"no layer-wise inference for {model}")
    for i, conv in enumerate(model.convs):
        if isinstance(model, GCN):  # A (X W) + b
            h = op.matmul(chunked(conv.lin, x)) + conv.bias
        else:  # (A X) W_l + b + X W_r
            agg = op.matmul(x.to(device))
            h = chunked(conv.lin_l, agg) + chunked(conv.lin_r, x)
        if i < model.num_layers - 1:
            norm = model.norms[i]
            h = chunked(lambda t: model.act(norm(t)), h)
        x = h
    return x
