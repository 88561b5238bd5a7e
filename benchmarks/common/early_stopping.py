r"""Early stopping of the official Diff-ResNet and GCN-style training loops."""
import copy
import math
from typing import Any, Dict, Optional

import torch
from torch import Tensor


class EarlyStopping:
    r"""The early-stopping rule of the official code of the `"Diffusion
    Mechanism in Residual Neural Network: Theory and Applications"
    <https://arxiv.org/abs/2105.03155>`_ paper.

    After every epoch, call :meth:`step` with the validation loss
    :math:`\ell_t` and accuracy :math:`a_t`. An epoch *improves* when

    .. math::
        \ell_t \le \ell^{*} \quad \textrm{or} \quad a_t \ge a^{*},

    where :math:`\ell^{*}` is the smallest loss and :math:`a^{*}` the largest
    accuracy over the improving epochs so far (both start at
    :math:`\infty` and :math:`0`). An improving epoch sets
    :math:`\ell^{*} \leftarrow \min(\ell^{*}, \ell_t)`,
    :math:`a^{*} \leftarrow \max(a^{*}, a_t)`, resets the counter to zero
    and stores the current weights as the best weights; any other epoch
    increments the counter. Training stops once the counter reaches
    :obj:`patience`.

    **Which weights are "best".** As in the official code, the stored
    weights are those of the *last improving epoch*, that is the last epoch
    whose loss was at most the best loss or whose accuracy was at least the
    best accuracy (ties count: an epoch matching the best accuracy replaces
    the stored weights). They are not the weights of the minimal loss nor of
    the maximal accuracy alone. :meth:`restore` loads them; unlike the
    official code, which tests the final weights when :obj:`max_epochs` runs
    out before the patience does, callers here restore the best weights in
    both cases.

    Args:
        patience (int, optional): Number of epochs without improvement before
            stopping. (default: :obj:`50`)
        keep_state (bool, optional): If :obj:`False`, only track the epoch and
            do not copy weights. (default: :obj:`True`)
    """
    def __init__(self, patience: int = 50, keep_state: bool = True) -> None:
        if patience < 1:
            raise ValueError(f"'patience' must be at least 1 (got {patience})")
        self.patience = patience
        self.keep_state = keep_state
        self.reset()

    def reset(self) -> None:
        self.best_loss = math.inf
        self.best_acc = 0.0
        self.counter = 0
        self.epoch = -1
        self.best_epoch = -1
        self.best_state: Optional[Dict[str, Any]] = None
        self.stopped = False

    def step(self, val_loss: float, val_acc: float,
             model: Optional[torch.nn.Module] = None) -> bool:
        r"""Records one epoch. Returns :obj:`True` when training must stop.

        Args:
            val_loss (float): Validation loss of this epoch.
            val_acc (float): Validation accuracy of this epoch.
            model (torch.nn.Module, optional): Its :meth:`state_dict` is
                copied when the epoch improves.
        """
        if self.stopped:
            raise RuntimeError("EarlyStopping.step() called after stopping")
        val_loss, val_acc = float(val_loss), float(val_acc)
        if math.isnan(val_loss):
            val_loss = math.inf  # A diverged epoch never improves the loss.
        self.epoch += 1
        if val_loss <= self.best_loss or val_acc >= self.best_acc:
            self.best_loss = min(self.best_loss, val_loss)
            self.best_acc = max(self.best_acc, val_acc)
            self.counter = 0
            self.best_epoch = self.epoch
            if model is not None and self.keep_state:
                self.best_state = _copy_state(model)
        else:
            self.counter += 1
        self.stopped = self.counter >= self.patience
        return self.stopped

    def restore(self, model: torch.nn.Module) -> torch.nn.Module:
        r"""Loads the stored best weights into :obj:`model` (no-op when none
        were stored)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return model


def _copy_state(model: torch.nn.Module) -> Dict[str, Any]:
    return {
        k: v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v)
        for k, v in model.state_dict().items()
    }


class BatchedEarlyStopping:
    r"""The rule of :class:`EarlyStopping`, applied independently to
    :obj:`num_models` models trained together (one entry per model).

    :meth:`step` takes the per-model validation losses and accuracies of the
    models still running and returns the boolean mask of those that improved
    (whose weights the caller stores) and the mask of those that stop now.

    Args:
        num_models (int): Number of models :math:`M`.
        patience (int, optional): (default: :obj:`50`)
    """
    def __init__(self, num_models: int, patience: int = 50) -> None:
        if num_models < 1:
            raise ValueError(f"'num_models' must be positive "
                             f"(got {num_models})")
        if patience < 1:
            raise ValueError(f"'patience' must be at least 1 (got {patience})")
        self.num_models = num_models
        self.patience = patience
        self.best_loss = torch.full((num_models, ), math.inf,
                                    dtype=torch.float64)
        self.best_acc = torch.zeros(num_models, dtype=torch.float64)
        self.counter = torch.zeros(num_models, dtype=torch.long)
        self.epochs = torch.zeros(num_models, dtype=torch.long)
        self.best_epoch = torch.full((num_models, ), -1, dtype=torch.long)
        self.active = torch.ones(num_models, dtype=torch.bool)

    def step(self, val_loss: Tensor, val_acc: Tensor,
             index: Optional[Tensor] = None) -> 'tuple[Tensor, Tensor]':
        r"""Records one epoch of the models :obj:`index` (default: all active
        models, in order).

        Returns:
            (improved, stop): boolean masks aligned with :obj:`index`.
        """
        if index is None:
            index = self.active.nonzero().view(-1)
        index = index.cpu()
        if not bool(self.active[index].all()):
            raise RuntimeError("step() got a model that already stopped")
        loss = val_loss.detach().cpu().to(torch.float64).view(-1)
        acc = val_acc.detach().cpu().to(torch.float64).view(-1)
        if loss.numel() != index.numel() or acc.numel() != index.numel():
            raise ValueError(f"Expected {index.numel()} losses and "
                             f"accuracies (got {loss.numel()} and "
                             f"{acc.numel()})")
        loss = torch.nan_to_num(loss, nan=math.inf)
        improved = (loss <= self.best_loss[index]) | (acc >=
                                                      self.best_acc[index])
        self.best_loss[index] = torch.where(
            improved, torch.minimum(self.best_loss[index], loss),
            self.best_loss[index])
        self.best_acc[index] = torch.where(
            improved, torch.maximum(self.best_acc[index], acc),
            self.best_acc[index])
        self.counter[index] = torch.where(improved, 0, self.counter[index] + 1)
        self.best_epoch[index] = torch.where(improved, self.epochs[index],
                                             self.best_epoch[index])
        self.epochs[index] += 1
        stop = self.counter[index] >= self.patience
        self.active[index[stop]] = False
        return improved, stop
