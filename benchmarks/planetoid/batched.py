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
from torch.nn import Linear, Parameter
from torch_geometric.typing import Adj, OptTensor

from torch_geometric_diff.nn import DiffResNetGNN
from benchmarks.common.early_stopping import BatchedEarlyStopping


class _StackedLinear(torch.nn.Module):
    # The linear layers of M models, stacked: stacked_weight [M, O, I] and
    # stacked_bias [M, O].
    def __init__(self, lins: Sequence[Linear]):
        super().__init__()
        self.stacked_weight = Parameter(
            torch.stack([lin.weight.detach() for lin in lins]).clone())
        self.stacked_bias = Parameter(
            torch.stack([lin.bias.detach() for lin in lins]).clone())
        self._set_sizes()

    @property
    def num_models(self) -> int:
        return self.stacked_weight.size(0)

    def _set_sizes(self) -> None:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        # Every model as Linear.reset_parameters() initialises it.
        with torch.no_grad():
            for m in range(self.num_models):
                lin = Linear(self.stacked_weight.size(2),
                             self.stacked_weight.size(1))
                self.stacked_weight[m].copy_(lin.weight)
                self.stacked_bias[m].copy_(lin.bias)

    def keep_(self, index: Tensor) -> None:
        # Keeps the models `index`, as new Parameter objects.
        self.stacked_weight = Parameter(self.stacked_weight.detach()[index])
        self.stacked_bias = Parameter(self.stacked_bias.detach()[index])
        self._set_sizes()


class SharedInputLinear(_StackedLinear):
    r"""The :math:`M` models' linear maps of one shared input: one
    :math:`(N, I) \to (N, MO)` product with the concatenated weights.
    :obj:`weight` and :obj:`bias` are views of the stacked parameters with the
    shapes of a :class:`~torch.nn.Linear`, so
    :func:`~torch_geometric_diff.nn.diffusion.kernels.sparse_linear` takes
    a :obj:`torch.sparse` input."""
    def _set_sizes(self) -> None:
        m, o, i = self.stacked_weight.shape
        self.in_features, self.out_features = i, m * o

    @property
    def weight(self) -> Tensor:
        return self.stacked_weight.view(-1, self.in_features)

    @property
    def bias(self) -> Tensor:
        return self.stacked_bias.view(-1)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class BlockDiagonalLinear(_StackedLinear):
    r"""The :math:`M` models' linear maps of their own inputs
    :math:`(N, MI) \to (N, MO)` (a block-diagonal weight), as one batched
    product."""
    def _set_sizes(self) -> None:
        m, o, i = self.stacked_weight.shape
        self.in_features, self.out_features = m * i, m * o

    @property
    def weight(self) -> Tensor:
        return self.stacked_weight

    def forward(self, h: Tensor) -> Tensor:
        m, o, i = self.stacked_weight.shape
        out = torch.baddbmm(self.stacked_bias.unsqueeze(1),
                            h.view(-1, m, i).transpose(0, 1),
                            self.stacked_weight.transpose(1, 2))
        return out.transpose(0, 1).reshape(-1, m * o)


class BatchedDiffResNet(DiffResNetGNN):
    r""":math:`M` independent :class:`~torch_geometric_diff.DiffResNetGNN`
    models evaluated together, from the `"Diffusion Mechanism in Residual
    Neural Network: Theory and Applications"
    <https://arxiv.org/abs/2105.03155>`_ paper.

    The forward is :class:`DiffResNetGNN`'s: the hidden states of the
    :math:`M` models lie side by side as one :math:`N \times MF` matrix
    :math:`[\mathbf{H}_1 \,\|\, \cdots \,\|\, \mathbf{H}_M]`, the linear
    layers of a shared input are one :class:`SharedInputLinear`, the others
    one :class:`BlockDiagonalLinear`, and :meth:`input_residual` repeats the
    input :math:`M` times. So model :math:`m` computes exactly what a
    :class:`DiffResNetGNN` with its weights computes, and one
    :class:`DiffConv` diffuses all models, with dropout masks drawn
    independently for every model and entry.

    Build it with :meth:`from_modules` or :meth:`from_seeds` (the latter
    initialises model :math:`m` exactly as :obj:`torch.manual_seed(seeds[m])`
    followed by :class:`DiffResNetGNN(...)` would). The constructor gives
    :math:`M` copies of one initialisation.

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
        if isinstance(num_models, bool) or not isinstance(num_models, int) \
                or num_models < 1:
            raise ValueError(f"'num_models' must be a positive integer "
                             f"(got {num_models!r})")
        # The single model built here validates the arguments and gives the
        # initial weights, repeated for every model.
        super().__init__(in_channels, out_channels, hidden_channels,
                         num_steps=num_steps, step_size=step_size,
                         dropout=dropout, num_blocks=num_blocks,
                         normalize=normalize, cached=True)
        self.config = dict(hidden_channels=hidden_channels,
                           num_steps=num_steps, step_size=step_size,
                           dropout=dropout, num_blocks=num_blocks,
                           normalize=normalize)
        if self.lin_in is not None:
            self.lin_in = SharedInputLinear([self.lin_in] * num_models)
            self.lins[0] = BlockDiagonalLinear([self.lins[0]] * num_models)
        else:
            self.lins[0] = SharedInputLinear([self.lins[0]] * num_models)
        for i in range(1, num_blocks):
            self.lins[i] = BlockDiagonalLinear([self.lins[i]] * num_models)
        self.lin_out = BlockDiagonalLinear([self.lin_out] * num_models)

    @property
    def num_models(self) -> int:
        return self.lin_out.num_models

    def _stacked(self) -> Dict[str, _StackedLinear]:
        return {
            name: module
            for name, module in self.named_modules()
            if isinstance(module, _StackedLinear)
        }

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
        stacked = out._stacked()
        with torch.no_grad():
            for m, model in enumerate(models):
                if not isinstance(model.act, torch.nn.ReLU):
                    raise ValueError("Only ReLU models can be batched")
                lins = {
                    name: module
                    for name, module in model.named_modules()
                    if isinstance(module, Linear)
                }
                if set(lins) != set(stacked):
                    raise ValueError(f"Model {m} differs in architecture")
                for name, lin in lins.items():
                    target = stacked[name]
                    for key, value in (('weight', lin.weight),
                                       ('bias', lin.bias)):
                        param = getattr(target, f'stacked_{key}')
                        if value is None or param.shape[1:] != value.shape:
                            raise ValueError(
                                f"Model {m}: '{name}.{key}' differs in "
                                f"shape from model 0")
                        param[m].copy_(value)
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
        Returns the new :meth:`stacked_parameters` (new parameter objects:
        the caller moves optimizer state, see :func:`fit_batched`)."""
        index = index.to(self.lin_out.weight.device)
        for module in self._stacked().values():
            module.keep_(index)
        return self.stacked_parameters()

    def input_residual(self, x: Tensor) -> Tensor:
        r"""The input, once per model: :math:`(N, MF)`."""
        return super().input_residual(x).repeat(1, self.num_models)

    def _per_model(self, out: Tensor) -> Tensor:
        # [N, M * C] -> [M, N, C].
        return out.view(out.size(0), self.num_models, -1).transpose(0, 1)

    def forward(self, x: Tensor, edge_index: Adj,
                edge_weight: OptTensor = None) -> Tensor:
        return self._per_model(super().forward(x, edge_index, edge_weight))

    def inference(self, x: Tensor, *args, **kwargs) -> Tensor:
        r""":meth:`DiffResNetGNN.inference` of every model:
        :math:`(M, N, C)`."""
        return self._per_model(super().inference(x, *args, **kwargs))

    def __repr__(self) -> str:
        hidden = f', hidden_channels={self.hidden_channels}' \
            if self.hidden_channels is not None else ''
        return (f'{self.__class__.__name__}(num_models={self.num_models}, '
                f'{self.in_channels}, {self.out_channels}{hidden}, '
                f'num_blocks={self.num_blocks}, conv={self.conv})')


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
            dev = improved.to(model.lin_out.weight.device)
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
    w = model.lin_out.weight
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
