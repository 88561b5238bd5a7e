r"""Transductive few-shot classifiers on pre-extracted embeddings: the
diffusion head of Diff-ResNet and the SimpleShot and LaplacianShot
baselines. Every method takes the support :math:`[NK, F]` with integer
labels covering :math:`\{0, \ldots, N-1\}` (every class has a support
example) and the query :math:`[NQ, F]`, and returns the predicted query
labels :math:`[NQ]`. Bad input (float labels, a class without support, NaN
features, impossible hyper-parameters) raises :class:`ValueError` or
:class:`TypeError` naming the argument."""
import math
from contextlib import nullcontext
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module

from torch_geometric_diff.nn import DiffConv
from torch_geometric_diff.transforms import gaussian_knn_graph


def center_l2(x: Tensor, mean: Optional[Tensor] = None,
              eps: float = 1e-12) -> Tensor:
    r"""Centering and L2 normalisation (CL2N of SimpleShot):
    :math:`(\mathbf{x} - \boldsymbol{\mu}) / \|\mathbf{x} -
    \boldsymbol{\mu}\|`. :obj:`mean` is normally the mean embedding of the
    base (training) classes; :obj:`None` skips the centering."""
    if mean is not None:
        x = x - mean.to(x.dtype).view(1, -1)
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)


def prototypes(support: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    r"""Class means of the support, :math:`[N, F]`."""
    out = support.new_zeros(n_way, support.size(1))
    out.index_add_(0, support_y, support)
    count = torch.bincount(support_y, minlength=n_way).clamp_min(1)
    return out / count.view(-1, 1).to(support.dtype)


def _check(support: Tensor, support_y: Tensor, query: Tensor,
           n_way: int) -> Tuple[Tensor, Tensor, Tensor]:
    # Validates an episode; returns it with the labels as int64.
    for name, x in (('support', support), ('query', query)):
        if not isinstance(x, Tensor) or x.layout != torch.strided:
            raise TypeError(f"'{name}' must be a dense tensor")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"'{name}' holds NaN or infinite values")
    if support.dim() != 2 or query.dim() != 2 \
            or support.size(1) != query.size(1):
        raise ValueError(f"'support' and 'query' must be matrices with the "
                         f"same number of columns (got {tuple(support.shape)}"
                         f" and {tuple(query.shape)})")
    if not isinstance(support_y, Tensor) or support_y.is_floating_point() \
            or support_y.is_complex() or support_y.dtype == torch.bool:
        raise TypeError(f"'support_y' must be an integer tensor (got "
                        f"{getattr(support_y, 'dtype', type(support_y))})")
    _integer('n_way', n_way, 1)
    if support_y.numel() != support.size(0):
        raise ValueError("'support_y' needs one label per support row")
    support_y = support_y.view(-1).long()
    if support_y.numel() and (int(support_y.min()) < 0
                              or int(support_y.max()) >= n_way):
        raise ValueError(f"'support_y' must lie in [0, {n_way})")
    missing = (torch.bincount(support_y, minlength=n_way) == 0).nonzero()
    if missing.numel():
        raise ValueError(f"'support_y' has no example of class(es) "
                         f"{missing.view(-1).tolist()} of the n_way={n_way} "
                         f"classes")
    return support, support_y, query


def _integer(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"'{name}' must be an integer >= {low} "
                         f"(got {value!r})")


def _number(name: str, value: Any, low: float, strict: bool) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (
        value > low if strict else value >= low)
    if not ok:
        raise ValueError(f"'{name}' must be a finite number "
                         f"{'>' if strict else '>='} {low} (got {value!r})")


def simple_shot(support: Tensor, support_y: Tensor, query: Tensor,
                n_way: int) -> Tensor:
    r"""SimpleShot (`Wang et al., 2019 <https://arxiv.org/abs/1911.04623>`_):
    nearest class mean in Euclidean distance. Apply :func:`center_l2` to the
    features first for the CL2N variant."""
    support, support_y, query = _check(support, support_y, query, n_way)
    return torch.cdist(query, prototypes(support, support_y,
                                         n_way)).argmin(dim=1)


def shift_query(support: Tensor, query: Tensor) -> Tensor:
    r"""The cross-domain shift of the Diff-ResNet code: moves the query so
    that its mean equals the support mean."""
    return query + support.mean(dim=0, keepdim=True) - query.mean(
        dim=0, keepdim=True)


def rectified_prototypes(support: Tensor, support_y: Tensor, query: Tensor,
                         n_way: int, temperature: float = 10.0) -> Tensor:
    r"""Prototype rectification (BD-CSPN, `Liu et al., 2020
    <https://arxiv.org/abs/1911.10713>`_), as used by the Diff-ResNet
    LaplacianShot baseline: every support and query point gets the
    pseudo-label of its most cosine-similar prototype, and each prototype
    becomes the mean of its members weighted by
    :math:`\mathrm{softmax}(\textrm{temperature} \cdot \cos)`. A class
    without members keeps its plain prototype."""
    proto = prototypes(support, support_y, n_way)
    whole = torch.cat([support, query])
    cos = F.cosine_similarity(whole.unsqueeze(1), proto.unsqueeze(0),
                              dim=2) * temperature
    pseudo = cos.argmax(dim=1)
    weight = cos.softmax(dim=1)
    out = proto.clone()
    for c in range(n_way):
        mask = pseudo == c
        if bool(mask.any()):
            w = weight[mask, c].view(-1, 1)
            out[c] = (w * whole[mask]).sum(0) / w.sum()
    return out


def laplacian_shot(support: Tensor, support_y: Tensor, query: Tensor,
                   n_way: int, knn: int = 3, lam: float = 0.5,
                   max_iter: int = 20, rectify: bool = True,
                   shift: bool = True) -> Tensor:
    r"""LaplacianShot (`Ziko et al., 2020
    <https://arxiv.org/abs/2006.15486>`_) in the form of the Diff-ResNet
    baseline code: the query assignment :math:`\mathbf{Y}` minimises
    :math:`\sum_q \mathbf{y}_q^{\top} \mathbf{a}_q - \frac{\lambda}{2}
    \sum_{q, r} w_{qr} \mathbf{y}_q^{\top} \mathbf{y}_r` (plus entropy),
    with :math:`a_{qc} = \|\mathbf{x}_q - \mathbf{m}_c\|` and the binary
    :obj:`knn`-NN graph :math:`w` among the queries, by the bound updates
    :math:`\mathbf{Y} \leftarrow \mathrm{softmax}(-\mathbf{A} + \lambda
    \mathbf{W} \mathbf{Y})` until the relative change of the bound is below
    :math:`10^{-6}` or :obj:`max_iter` iterations.

    Args:
        knn (int, optional): Neighbours per query (the node itself not
            counted). (default: :obj:`3`)
        lam (float, optional): Weight :math:`\lambda` of the Laplacian term.
            (default: :obj:`0.5`)
        max_iter (int, optional): Bound-update iterations.
            (default: :obj:`20`)
        rectify (bool, optional): Use :func:`rectified_prototypes`.
            (default: :obj:`True`)
        shift (bool, optional): Apply :func:`shift_query` first.
            (default: :obj:`True`)
    """
    support, support_y, query = _check(support, support_y, query, n_way)
    _integer('knn', knn, 0)
    _number('lam', lam, 0.0, strict=False)
    _integer('max_iter', max_iter, 1)
    support, query = support.double(), query.double()
    if shift:
        query = shift_query(support, query)
    if rectify:
        proto = rectified_prototypes(support, support_y, query, n_way)
    else:
        proto = prototypes(support, support_y, n_way)
    a = torch.cdist(query, proto)
    n = query.size(0)
    knn = min(knn, n - 1)
    W = torch.zeros(n, n, dtype=query.dtype)
    if knn > 0:
        d = torch.cdist(query, query)
        d.fill_diagonal_(float('inf'))
        W.scatter_(1, d.topk(knn, largest=False).indices, 1.0)

    def bound(y: Tensor) -> Tensor:
        return (y * (y.clamp_min(1e-300).log() + a - lam * (W @ y))).sum()

    y = (-a).softmax(dim=1)
    energy = bound(y)
    for _ in range(max_iter):
        y = (-a + lam * (W @ y)).softmax(dim=1)
        new = bound(y)
        if abs(float((new - energy) / energy)) < 1e-6:
            break
        energy = new
    return y.argmax(dim=1)


class DiffusionHead(Module):
    r"""The few-shot classifier of Diff-ResNet `"Diffusion Mechanism in
    Residual Neural Network: Theory and Applications"
    <https://arxiv.org/abs/2105.03155>`_: one residual block followed by
    :math:`K` diffusion steps on the data graph and a linear classifier,

    .. math::
        \mathbf{H} = \mathbf{X} + \mathbf{W}_2\, \mathrm{ReLU}(\mathbf{W}_1
        \mathbf{X} + \mathbf{b}_1) + \mathbf{b}_2, \qquad
        \mathbf{Y} = \big((\mathbf{I} - \gamma \mathbf{L})^K \mathbf{H}\big)
        \mathbf{W}_c + \mathbf{b}_c,

    with :math:`\mathbf{L} = \mathrm{diag}(\hat{W}\mathbf{1}) - \hat{W}` the
    Laplacian of the given (already normalised) graph weights.

    Args:
        in_channels (int): Embedding size :math:`F`.
        num_classes (int): Classes :math:`N` of the episode.
        num_steps (int, optional): Diffusion steps :math:`K` (:obj:`0`
            removes the diffusion). (default: :obj:`6`)
        step_size (float, optional): Step size :math:`\gamma`.
            (default: :obj:`0.5`)
    """
    def __init__(self, in_channels: int, num_classes: int,
                 num_steps: int = 6, step_size: float = 0.5) -> None:
        super().__init__()
        self.fc1 = Linear(in_channels, in_channels)
        self.fc2 = Linear(in_channels, in_channels)
        self.diffusion = DiffConv(step_size=step_size, num_steps=num_steps,
                                  normalize=None, cached=True)
        self.classifier = Linear(in_channels, num_classes)

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()
        self.diffusion.reset_parameters()
        self.classifier.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_weight: Optional[Tensor] = None) -> Tensor:
        h = x + self.fc2(F.relu(self.fc1(x)))
        h = self.diffusion(h, edge_index, edge_weight)
        return self.classifier(h)


def diffusion_shot(
    support: Tensor,
    support_y: Tensor,
    query: Tensor,
    n_way: int,
    k: int = 6,
    sigma_k: int = 3,
    num_steps: int = 6,
    step_size: float = 0.5,
    epochs: int = 100,
    lr: float = 0.1,
    weight_decay: float = 1e-4,
    shift: bool = True,
    seed: Optional[int] = None,
) -> Tensor:
    r"""The transductive Diff-ResNet few-shot pipeline for one episode:
    (optionally) :func:`shift_query`, the Gaussian :math:`k`-NN graph over
    support and query (:func:`~torch_geometric_diff.transforms.
    gaussian_knn_graph` with adaptive :math:`\sigma_i` = distance to the
    :obj:`sigma_k`-th neighbour, symmetric normalisation, self-loops), a
    fresh :class:`DiffusionHead` trained on the support labels by full-batch
    SGD (momentum 0.9, learning rate divided by 10 after 50% and 75% of the
    epochs), and the arg-max on the queries. Defaults follow the official
    code (:obj:`n_top=8, sigma=4, step_size=0.5, layer_num=6, epochs=100,
    lr=0.1, weight_decay=1e-4`). Apply :func:`center_l2` to the features
    first.

    Args:
        seed (int, optional): Seeds the head's initialisation (the global
            generator is left untouched). (default: :obj:`None`)
    """
    support, support_y, query = _check(support, support_y, query, n_way)
    _integer('epochs', epochs, 1)
    _number('lr', lr, 0.0, strict=True)
    _number('weight_decay', weight_decay, 0.0, strict=False)
    support, query = support.float(), query.float()
    if shift:
        query = shift_query(support, query)
    x = torch.cat([support, query])
    edge_index, edge_weight = gaussian_knn_graph(
        x, k, sigma=None, sigma_k=sigma_k, sigma_mode='node',
        normalize='sym', symmetrize='mean', loop=True)

    with torch.random.fork_rng(devices=[]) if seed is not None \
            else nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        model = DiffusionHead(x.size(1), n_way, num_steps, step_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=[int(0.5 * epochs),
                               int(0.75 * epochs)], gamma=0.1)
    n_support = support.size(0)
    model.train()
    for _ in range(epochs):
        optimizer.zero_grad()
        out = model(x, edge_index, edge_weight)
        F.cross_entropy(out[:n_support], support_y).backward()
        optimizer.step()
        scheduler.step()
    model.eval()
    with torch.no_grad():
        return model(x, edge_index, edge_weight)[n_support:].argmax(dim=1)

