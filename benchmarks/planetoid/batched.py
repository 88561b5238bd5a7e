r"""Several Diff-ResNets trained at once (multi-seed batching).

The :math:`M` models of one split share the graph, so their hidden states are
laid side by side as one :math:`N \times M F` matrix and every diffusion step
is **one** sparse product for all models (:class:`DiffConv` on the reshaped
tensor). The linear layers are stacked: a shared input is multiplied once by
the concatenated weights, per-model inputs go through one batched product.
Each model keeps its own loss, Adam state and early stopping; stopped models
are removed from the batch, so they cost nothing afterwards.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter

from torch_geometric_diff.nn import DiffConv, DiffResNetGNN
from benchmarks.common.early_stopping import BatchedEarlyStopping


def _shared_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    # x: [N, I] (dense or torch.sparse) shared by all models; weight:
    # [M, O, I]; bias: [M, O] -> [N, M, O] with one (sparse-)dense product.
    m, o, i = weight.shape
    w = weight.reshape(m * o, i).t()  # A view: no copy of the M weights.
    out = torch.sparse.mm(x, w) if x.layout != torch.strided else x @ w
    return (out + bias.reshape(m * o)).view(-1, m, o)


def _batched_linear(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    # h: [N, M, I]; weight: [M, O, I]; bias: [M, O] -> [N, M, O].
    out = torch.baddbmm(bias.unsqueeze(1), h.transpose(0, 1),
                        weight.transpose(1, 2))
    return out.transpose(0, 1)


class BatchedDiffResNet(torch.nn.Module):
    r""":math:`M` independent :class:`~torch_geometric_diff.DiffResNetGNN`
    models evaluated together, from the `"Diffusion Mechanism in Residual
    Neural Network: Theory and Applications"
    <https://arxiv.org/abs/2105.03155>`_ paper.

    Model :math:`m` computes exactly what a :class:`DiffResNetGNN` with its
    weights computes (same parametrisation, same block structure); the
    diffusion of all models runs as one :class:`DiffConv` over
    :math:`[\mathbf{H}_1 \,\|\, \cdots \,\|\, \mathbf{H}_M]`, so dropout
    masks are drawn independently for every model and entry.

    Build it with :meth:`from_modules` or :meth:`from_seeds` (the latter
    initialises model :math:`m` exactly as :obj:`torch.manual_seed(seeds[m])`
    followed by :class:`DiffResNetGNN(...)` would).

    Args:
        num_models (int): The number of models :math:`M`.
        in_channels (int): Input features :math:`F`.
        out_channels (int): Classes :math:`C`.
        hidden_channels (int, optional): As in :class:`DiffResNetGNN`.
        num_steps (int, optional): Diffusion steps :math:`K`.
            (default: :obj:`20`)
        step_size (float, optional): :math:`\gamma`. (default: :obj:`0.25`)
        dropout (float, optional): Dropout before every diffusion step.
            (default: :obj:`0.25`)
        num_blocks (int, optional): Residual blocks. (default: :obj:`1`)
        normalize (str, optional): As in :class:`DiffConv`.
            (default: :obj:`"sym"`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, dense or
          :obj:`torch.sparse`, edge indices or sparse adjacency
        - **output:** logits :math:`(M, |\mathcal{V}|, C)`
    """
    def __init__(self, num_models: int, in_channels: int, out_channels: int,
                 hidden_channels: Optional[int] = None, num_steps: int = 20,
                 step_size: float = 0.25, dropout: float = 0.25,
                 num_blocks: int = 1, normalize: Optional[str] = 'sym'):
        super().__init__()
        if not isinstance(num_models, int) or num_models < 1:
            raise ValueError(f"'num_models' must be a positive integer "
                             f"(got {num_models!r})")
        # A template validates the arguments and fixes the shapes.
        template = DiffResNetGNN(in_channels, out_channels, hidden_channels,
                                 num_steps=num_steps, step_size=step_size,
                                 dropout=dropout, num_blocks=num_blocks,
                                 normalize=normalize)
        self.num_models = num_models
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.num_blocks = num_blocks
        self.config = dict(hidden_channels=hidden_channels,
                           num_steps=num_steps, step_size=step_size,
                           dropout=dropout, num_blocks=num_blocks,
                           normalize=normalize)
        self.conv = DiffConv(step_size=step_size, num_steps=num_steps,
                             dropout=dropout, normalize=normalize,
                             cached=True)
        for name, value in self._module_params(template).items():
            self.register_parameter(
                name,
                Parameter(value.detach().unsqueeze(0).repeat(
                    num_models, *([1] * value.dim()))))

    @staticmethod
    def _module_params(model: DiffResNetGNN) -> Dict[str, Tensor]:
        out = {}
        if model.lin_in is not None:
            out['lin_in_weight'] = model.lin_in.weight
            out['lin_in_bias'] = model.lin_in.bias
        for i, lin in enumerate(model.lins):
            out[f'lin{i}_weight'] = lin.weight
            out[f'lin{i}_bias'] = lin.bias
        out['lin_out_weight'] = model.lin_out.weight
        out['lin_out_bias'] = model.lin_out.bias
        return out

    @classmethod
    def from_modules(cls, models: Sequence[DiffResNetGNN],
                     **kwargs) -> 'BatchedDiffResNet':
        r"""Stacks the weights of :obj:`models` (same architecture, ReLU).
        :obj:`kwargs` must repeat the :class:`DiffConv` settings
        (:obj:`num_steps`, :obj:`step_size`, :obj:`dropout`,
        :obj:`normalize`) when they differ from the defaults."""
        if len(models) == 0:
            raise ValueError("'models' is empty")
        first = models[0]
        kwargs.setdefault('num_steps', first.conv.num_steps)
        kwargs.setdefault('step_size', first.conv.initial_step_size)
        kwargs.setdefault('dropout', first.conv.dropout)
        kwargs.setdefault('normalize', first.conv.normalize)
        out = cls(len(models), first.in_channels, first.out_channels,
                  first.hidden_channels, num_blocks=first.num_blocks,
                  **kwargs)
        with torch.no_grad():
            for m, model in enumerate(models):
                if not isinstance(model.act, torch.nn.ReLU):
                    raise ValueError("Only ReLU models can be batched")
                params = cls._module_params(model)
                if set(params) != set(dict(out.named_parameters())) - set(
                        dict(out.conv.named_parameters(prefix='conv'))):
                    raise ValueError(f"Model {m} differs in architecture")
                for name, value in params.items():
                    target = getattr(out, name)
                    if target.shape[1:] != value.shape:
                        raise ValueError(f"Model {m}: '{name}' has shape "
                                         f"{tuple(value.shape)}, expected "
                                         f"{tuple(target.shape[1:])}")
                    target[m].copy_(value)
        return out.to(first.lin_out.weight.device, first.lin_out.weight.dtype)

    @classmethod
    def from_seeds(cls, seeds: Sequence[int], in_channels: int,
                   out_channels: int, **kwargs) -> 'BatchedDiffResNet':
        r"""Model :math:`m` is initialised as :obj:`torch.manual_seed(
        seeds[m]); DiffResNetGNN(in_channels, out_channels, **kwargs)`."""
        models = []
        for seed in seeds:
            torch.manual_seed(int(seed))
            models.append(DiffResNetGNN(in_channels, out_channels, **kwargs))
        return cls.from_modules(models, **{
            k: kwargs[k]
            for k in ('num_steps', 'step_size', 'dropout', 'normalize')
            if k in kwargs
        })

    def to_module(self, m: int) -> DiffResNetGNN:
        r"""Model :math:`m` as a :class:`DiffResNetGNN`."""
        c = self.config
        w = self.lin_out_weight
        model = DiffResNetGNN(self.in_channels, self.out_channels,
                              c['hidden_channels'], num_steps=c['num_steps'],
                              step_size=c['step_size'], dropout=c['dropout'],
                              num_blocks=c['num_blocks'],
                              normalize=c['normalize']).to(w.device, w.dtype)
        with torch.no_grad():
            for name, value in self._module_params(model).items():
                value.copy_(getattr(self, name)[m])
        return model

    def stacked_parameters(self) -> Dict[str, Tensor]:
        r"""The stacked weights (:obj:`[M, ...]` each), without the
        :class:`DiffConv`."""
        return {
            name: p
            for name, p in self.named_parameters() if not name.startswith(
                'conv.')
        }

    def keep_(self, index: Tensor) -> Dict[str, Tensor]:
        r"""Keeps only the models :obj:`index` (in that order), in place.
        Returns the map from old to new parameter objects' names (the caller
        moves optimizer state, see :func:`fit_batched`)."""
        index = index.to(self.lin_out_weight.device)
        for name, p in self.stacked_parameters().items():
            self.register_parameter(name, Parameter(p.detach()[index]))
        self.num_models = int(index.numel())
        return self.stacked_parameters()

    def forward(self, x: Tensor, edge_index: Any) -> Tensor:
        n = x.size(0)
        if self.hidden_channels is not None:
            x = _shared_linear(x, self.lin_in_weight, self.lin_in_bias)
            h = x + F.relu(_batched_linear(x, self.lin0_weight,
                                           self.lin0_bias))
        else:
            h = F.relu(_shared_linear(x, self.lin0_weight, self.lin0_bias))
            dense = x.to_dense() if x.layout != torch.strided else x
            h = h + dense.unsqueeze(1)
        m, width = self.num_models, h.size(-1)
        # As in DiffResNetGNN: without dropout, the last diffusion and the
        # output layer commute, so the (narrower) logits are diffused.
        commute = not (self.training and self.conv.dropout > 0) and \
            self.out_channels < width
        for i in range(self.num_blocks):
            if i > 0:
                h = h + F.relu(
                    _batched_linear(h, getattr(self, f'lin{i}_weight'),
                                    getattr(self, f'lin{i}_bias')))
            if i == self.num_blocks - 1 and commute:
                out = _batched_linear(h, self.lin_out_weight,
                                      self.lin_out_bias)
                out = self.conv(out.reshape(n, m * self.out_channels),
                                edge_index)
                return out.view(n, m, -1).transpose(0, 1)
            h = self.conv(h.reshape(n, m * width), edge_index).view(n, m,
                                                                    width)
        out = _batched_linear(h, self.lin_out_weight, self.lin_out_bias)
        return out.transpose(0, 1)

    def __repr__(self) -> str:
        hidden = f', hidden_channels={self.hidden_channels}' \
            if self.hidden_channels is not None else ''
        return (f'{self.__class__.__name__}(num_models={self.num_models}, '
                f'{self.in_channels}, {self.out_channels}{hidden}, '
                f'conv={self.conv})')


def per_model_cross_entropy(out: Tensor, y: Tensor) -> Tensor:
    r"""Mean cross-entropy of every model: :obj:`out` :math:`[M, T, C]`,
    :obj:`y` :math:`[T]` -> :math:`[M]`."""
    m, t, c = out.shape
    loss = F.cross_entropy(out.reshape(m * t, c), y.repeat(m),
                           reduction='none')
    return loss.view(m, t).mean(dim=1)


def fit_batched(
    model: BatchedDiffResNet,
    x: Tensor,
    edge_index: Any,
    y: Tensor,
    train_index: Tensor,
    val_index: Tensor,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    patience: int = 50,
    max_epochs: int = 10000,
    on_finish: Optional[Callable[[int, Tensor, int, int], None]] = None,
) -> List[Dict[str, Any]]:
    r"""Trains the :math:`M` models of :obj:`model` like :math:`M` separate
    runs of the official Diff-ResNet loop: full-batch Adam on the mean
    cross-entropy of the training nodes, one evaluation pass per epoch, and
    per model the early-stopping rule of
    :class:`~benchmarks.common.EarlyStopping` (counter reset when
    the validation loss is at most its best or the accuracy at least its
    best; the weights of the last such epoch are restored).

    Models are independent: the summed loss gives every model the gradient of
    its own loss, and Adam (with L2 weight decay) acts element-wise. A model
    that stops is evaluated with its best weights, reported through
    :obj:`on_finish(m, logits, epochs, best_epoch)` (:obj:`logits`:
    :math:`[N, C]`, evaluation mode) and removed from the batch together
    with its optimizer state.

    Returns:
        Per model :obj:`m`: :obj:`{'epochs', 'best_epoch', 'logits'}`.
        :obj:`model` is left holding the models still running at
        :obj:`max_epochs` (none, normally), so use the returned logits.
    """
    num_models = model.num_models
    slots = torch.arange(num_models)  # Original model id of each slot.
    best = {k: v.detach().clone()
            for k, v in model.stacked_parameters().items()}
    stopper = BatchedEarlyStopping(num_models, patience)
    opt = torch.optim.Adam(model.parameters(), lr=lr,
                           weight_decay=weight_decay)
    y_train, y_val = y[train_index], y[val_index]
    results: List[Dict[str, Any]] = [{} for _ in range(num_models)]

    for epoch in range(max_epochs):
        model.train()
        opt.zero_grad()
        out = model(x, edge_index)
        per_model_cross_entropy(out[:, train_index], y_train).sum().backward()
        opt.step()

        model.eval()
        with torch.no_grad():
            out = model(x, edge_index)[:, val_index]
            val_loss = per_model_cross_entropy(out, y_val)
            val_acc = (out.argmax(dim=-1) == y_val).double().mean(dim=1)
        improved, stop = stopper.step(val_loss, val_acc, slots)
        if bool(improved.any()):
            dev = improved.to(model.lin_out_weight.device)
            ids = slots[improved].to(dev.device)
            for name, p in model.stacked_parameters().items():
                best[name][ids] = p.detach()[dev]
        if epoch == max_epochs - 1:
            stop = torch.ones_like(stop)
        if not bool(stop.any()):
            continue

        done = slots[stop]
        _finish(model, best, done, x, edge_index, stopper, results,
                on_finish)
        keep = (~stop).nonzero().view(-1)
        if keep.numel() == 0:
            break
        old = list(model.stacked_parameters().values())
        new = list(model.keep_(keep).values())
        opt = _sliced_adam(opt, old, new, keep, lr, weight_decay)
        slots = slots[keep]
    return results


@torch.no_grad()
def _finish(model: BatchedDiffResNet, best: Dict[str, Tensor], done: Tensor,
            x: Tensor, edge_index: Any, stopper: BatchedEarlyStopping,
            results: List[Dict[str, Any]], on_finish) -> None:
    # Evaluates the best weights of the models `done` in one batched pass.
    c = model.config
    sub = BatchedDiffResNet(int(done.numel()), model.in_channels,
                            model.out_channels, c['hidden_channels'],
                            c['num_steps'], c['step_size'], c['dropout'],
                            c['num_blocks'], c['normalize'])
    w = model.lin_out_weight
    sub = sub.to(w.device, w.dtype)
    sub.conv._cached_op = model.conv._cached_op  # Same graph: reuse M.
    ids = done.to(w.device)
    for name, p in sub.stacked_parameters().items():
        p.copy_(best[name][ids])
    sub.eval()
    logits = sub(x, edge_index)
    for j, m in enumerate(done.tolist()):
        results[m] = {
            'epochs': int(stopper.epochs[m]),
            'best_epoch': int(stopper.best_epoch[m]),
            'logits': logits[j],
        }
        if on_finish is not None:
            on_finish(m, logits[j], results[m]['epochs'],
                      results[m]['best_epoch'])


def _sliced_adam(opt: torch.optim.Adam, old: List[Tensor], new: List[Tensor],
                 keep: Tensor, lr: float,
                 weight_decay: float) -> torch.optim.Adam:
    # A fresh Adam over the kept models that continues their moments.
    out = torch.optim.Adam(new, lr=lr, weight_decay=weight_decay)
    for p_old, p_new in zip(old, new):
        state = opt.state.get(p_old)
        if not state:
            continue
        idx = keep.to(p_old.device)
        out.state[p_new] = {
            k: (v if k == 'step' or v.dim() == 0 else v[idx]).clone()
            for k, v in state.items()
        }
    return out
