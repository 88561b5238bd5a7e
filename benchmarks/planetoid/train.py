r"""Training: one model from one init seed (:func:`train_single`), or the
Diff-ResNets of several init seeds of one split at once
(:func:`train_batched_inits`, over :mod:`benchmarks.planetoid.batched`).
Both train as the official code: full-batch Adam, cross-entropy on the
training nodes, early stopping on the validation loss and accuracy, best
weights restored."""
import math
import time
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import Tensor

from benchmarks.common import EarlyStopping, NodeSplit
from benchmarks.planetoid.batched import BatchedDiffResNet, fit_batched
from benchmarks.planetoid.datasets import Graph
from benchmarks.planetoid.models import build_model


@torch.no_grad()
def evaluate(out: Tensor, y: Tensor, index: Tensor) -> Dict[str, float]:
    r"""Cross-entropy and accuracy of the logits :obj:`out` on the nodes
    :obj:`index` (and the ROC-AUC for two classes)."""
    logits = out[index]
    res = {
        'loss': float(F.cross_entropy(logits, y[index])),
        'acc': float((logits.argmax(dim=-1) == y[index]).double().mean()),
    }
    if out.size(1) == 2:  # Binary sets are usually reported in ROC-AUC.
        res['auc'] = roc_auc(logits.softmax(dim=-1)[:, 1], y[index])
    return res


def roc_auc(score: Tensor, y: Tensor) -> float:
    r"""ROC-AUC from ranks (the Mann-Whitney U statistic, ties averaged)."""
    s, t = score.double().cpu().numpy(), y.cpu().numpy().astype(bool)
    pos, neg = int(t.sum()), int((~t).sum())
    if pos == 0 or neg == 0:
        return math.nan
    ranks = rankdata(s)
    return float((ranks[t].sum() - pos * (pos + 1) / 2) / (pos * neg))


def train_single(name: str, g: Graph, split: NodeSplit, init_seed: int,
                 hp: Dict[str, Any]) -> Dict[str, Any]:
    r"""Trains model :obj:`name` on one split from one init seed and returns
    its result fields (accuracies, epochs, seconds)."""
    torch.manual_seed(init_seed)
    model = build_model(name, g, hp).to(g.y.device)
    x = g.x_dense if getattr(model, 'dense_input', False) else g.x
    groups = (model.param_groups(hp) if hasattr(model, 'param_groups') else
              model.parameters())
    opt = torch.optim.Adam(groups, lr=hp['lr'],
                           weight_decay=hp['weight_decay'])
    es = EarlyStopping(hp['patience'])
    train_i, val_i, test_i = (i.to(g.y.device) for i in
                              (split.train_index, split.val_index,
                               split.test_index))
    start = time.perf_counter()
    for _ in range(hp['max_epochs']):
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(x, g)[train_i], g.y[train_i])
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            val = evaluate(model(x, g), g.y, val_i)
        if es.step(val['loss'], val['acc'], model):
            break
    es.restore(model)
    model.eval()
    with torch.no_grad():
        out = model(x, g)
    if g.y.is_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return _result(out, g.y, train_i, val_i, test_i, es.epoch + 1,
                   es.best_epoch, seconds)


def _result(out: Tensor, y: Tensor, train_i: Tensor, val_i: Tensor,
            test_i: Tensor, epochs: int, best_epoch: int,
            seconds: float) -> Dict[str, Any]:
    val, test = evaluate(out, y, val_i), evaluate(out, y, test_i)
    res = {
        'train_acc': evaluate(out, y, train_i)['acc'],
        'val_acc': val['acc'],
        'val_loss': val['loss'],
        'test_acc': test['acc'],
        'epochs': int(epochs),
        'best_epoch': int(best_epoch),
        'seconds': float(seconds),
    }
    if 'auc' in val:
        res['val_auc'], res['test_auc'] = val['auc'], test['auc']
    return res


def train_batched_inits(g: Graph, split: NodeSplit, init_seeds: List[int],
                        hp: Dict[str, Any],
                        on_done: Optional[Callable[[int, Dict[str, Any]],
                                                   None]] = None,
                        ) -> List[Dict[str, Any]]:
    r"""Trains the Diff-ResNets of several init seeds of one split at once
    (:class:`benchmarks.planetoid.batched.BatchedDiffResNet`); every init
    keeps its own early stopping. :obj:`on_done(i, result)` is called as soon
    as init :obj:`i` stops."""
    model = BatchedDiffResNet.from_seeds(init_seeds, g.x.size(1),
                                         g.num_classes,
                                         hidden_channels=hp['hidden'],
                                         num_steps=hp['num_steps'],
                                         step_size=hp['step_size'],
                                         dropout=hp['dropout'])
    model = model.to(g.y.device)
    train_i, val_i, test_i = (i.to(g.y.device) for i in
                              (split.train_index, split.val_index,
                               split.test_index))
    start = time.perf_counter()
    results: List[Optional[Dict[str, Any]]] = [None] * len(init_seeds)

    def finished(i: int, out: Tensor, epochs: int, best_epoch: int):
        if out.is_cuda:
            torch.cuda.synchronize()
        res = _result(out, g.y, train_i, val_i, test_i, epochs, best_epoch,
                      time.perf_counter() - start)
        results[i] = res
        if on_done is not None:
            on_done(i, res)

    fit_batched(model, g.x, g.adj_t, g.y, train_i, val_i, lr=hp['lr'],
                weight_decay=hp['weight_decay'], patience=hp['patience'],
                max_epochs=hp['max_epochs'], on_finish=finished)
    return results  # type: ignore
