r"""Training and evaluation of one OGB run.

A run trains one model from one seed, full-batch (:class:`FullBatch`) or over
Cluster-GCN partitions (:class:`ClusterBatches`, with full-graph layer-wise
evaluation), evaluates with OGB's ``Evaluator`` every few epochs, and
returns the record of the epoch of best validation accuracy together with
times, losses and peak memory.
"""
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from benchmarks.common.memory import PeakMemory
from benchmarks.ogbn.distributed import Distributed
from benchmarks.ogbn.models import (apply, build_model, graph_input,
                                    layerwise_inference)
from torch_geometric_diff.loader import (BlockedOperator, GraphPartition,
                                         PartitionLoader, place_operator)


@dataclass
class Schedule:
    r"""The optimizer and the epochs of a run."""
    epochs: int
    lr: float
    weight_decay: float = 0.0
    eval_every: int = 1
    log_every: int = 1


@dataclass
class ClusterSettings:
    r"""Cluster-GCN training over :obj:`partition`, :obj:`parts_per_batch`
    parts per mini-batch in an order drawn from :obj:`seed`, and layer-wise
    evaluation in chunks of :obj:`chunk_size` nodes (:obj:`channel_chunk`
    channels at a time where set), with the full-graph operator on
    :obj:`operator_device` (``'auto'``, ``'cpu'`` or ``'device'``)."""
    partition: GraphPartition
    parts_per_batch: int
    seed: int = 0
    operator_device: str = 'auto'
    chunk_size: int = 2**16
    channel_chunk: Optional[int] = None


def evaluate(evaluator, out: Tensor, y: Tensor,
             split_idx: Dict[str, Tensor]) -> Dict[str, float]:
    r"""OGB's accuracy of the predictions :obj:`out.argmax(-1)` against
    :obj:`y` (:math:`[N, 1]`, on the CPU) on each split."""
    pred = out.argmax(dim=-1, keepdim=True).cpu()
    return {
        key: evaluator.eval({
            'y_true': y[split_idx[key]],
            'y_pred': pred[split_idx[key]]
        })['acc']
        for key in ('train', 'valid', 'test')
    }


def param_hash(model: torch.nn.Module) -> str:
    r"""A short hash of the parameters (equal on ranks that agree)."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(-1).numpy().tobytes())
    return h.hexdigest()[:16]


class FullBatch:
    r"""Full-batch training and evaluation with everything on
    :obj:`device`."""
    def __init__(self, name: str, data: Data, train_idx: Tensor,
                 device: torch.device) -> None:
        self.x = data.x.to(device)
        self.y = data.y.view(-1).to(device)
        self.graph = graph_input(name, data.edge_index.to(device),
                                 data.num_nodes)
        self.train_idx = train_idx.to(device)

    def train_epoch(self, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, epoch: int) -> float:
        model.train()
        optimizer.zero_grad()
        out = apply(model, self.x, self.graph)
        loss = F.cross_entropy(out[self.train_idx], self.y[self.train_idx])
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def predict(self, module: torch.nn.Module) -> Tensor:
        module.eval()
        return apply(module, self.x, self.graph)


class ClusterBatches:
    r"""Cluster-GCN training (each rank takes its share of the mini-batches
    under DDP) and full-graph layer-wise evaluation; the data stays on the
    CPU and each mini-batch moves to :obj:`device`."""
    def __init__(self, name: str, data: Data, train_idx: Tensor,
                 settings: ClusterSettings, device: torch.device,
                 dist: Distributed) -> None:
        self.name = name
        self.x = data.x
        self.edge_index = data.edge_index
        self.num_nodes = data.num_nodes
        self.settings = settings
        self.device = device
        self.dist = dist
        train_mask = torch.zeros(data.num_nodes, dtype=torch.bool)
        train_mask[train_idx] = True
        self.loader = PartitionLoader(
            settings.partition, settings.parts_per_batch, shuffle=True,
            data=Data(x=data.x, y=data.y.view(-1), train_mask=train_mask),
            seed=settings.seed, num_replicas=dist.world_size,
            rank=dist.rank)
        self.operator: Optional[BlockedOperator] = None
        # With one part per mini-batch, every epoch visits the same
        # subgraphs (in a new order): the graph input of each (diffresnet:
        # its operator M, built once) is kept across epochs.
        self.graphs: Optional[Dict[int, Any]] = (
            {} if settings.parts_per_batch == 1 else None)

    def graph(self, model: torch.nn.Module, batch: Data) -> Any:
        r"""The graph argument of :obj:`model` for :obj:`batch`."""
        key = int(batch.part_id[0]) if self.graphs is not None else None
        if key is not None and key in self.graphs:
            return self.graphs[key]
        if self.name == 'diffresnet':
            conv = getattr(model, 'module', model).conv  # DDP wraps it.
            graph = conv.build_operator(batch.edge_index, batch.num_nodes,
                                        dtype=batch.x.dtype)
        else:
            graph = graph_input(self.name, batch.edge_index, batch.num_nodes)
        if key is not None:
            self.graphs[key] = graph
        return graph

    def train_epoch(self, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, epoch: int) -> float:
        model.train()
        self.loader.set_epoch(epoch)
        total, count = 0.0, 0
        for batch in self.loader:
            batch = batch.to(self.device)
            optimizer.zero_grad()
            out = apply(model, batch.x, self.graph(model, batch))
            mask = batch.train_mask
            if bool(mask.any()):
                loss = F.cross_entropy(out[mask], batch.y[mask])
            else:  # Keeps DDP's collective backward in step.
                loss = out.sum() * 0.0
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            count += 1
        stats = self.dist.sum(torch.tensor([total, count],
                                           dtype=torch.float64), self.device)
        return float(stats[0] / max(float(stats[1]), 1.0))

    @torch.no_grad()
    def predict(self, module: torch.nn.Module) -> Tensor:
        module.eval()
        s = self.settings
        if self.name == 'diffresnet':
            # M depends on the step size: rebuilt when it is learned.
            if self.operator is None or module.conv.learnable_step:
                self.operator = module.blocked_operator(
                    self.edge_index, self.num_nodes, self.device,
                    operator_device=s.operator_device)
            return module.inference(self.x, self.edge_index,
                                    device=self.device,
                                    chunk_size=s.chunk_size,
                                    operator=self.operator,
                                    channel_chunk=s.channel_chunk)
        if self.operator is None and self.name != 'mlp':
            adj = graph_input(self.name, self.edge_index, self.num_nodes)
            self.operator = place_operator(adj, self.device,
                                           s.operator_device)
        return layerwise_inference(module, self.x, self.operator,
                                   self.device, s.chunk_size)


Trainer = Union[FullBatch, ClusterBatches]


def fit(name: str, run: int, model: torch.nn.Module,
        module: torch.nn.Module, optimizer: torch.optim.Optimizer,
        trainer: Trainer, evaluator, y: Tensor,
        split_idx: Dict[str, Tensor], schedule: Schedule,
        device: torch.device, dist: Distributed) -> Dict[str, Any]:
    r"""The epoch loop: trains :obj:`model` (:obj:`module` unwrapped from
    DDP), evaluates every :obj:`schedule.eval_every` epochs and after the
    last one (rank 0 evaluates, every rank gets the numbers), and returns
    the evaluation history, the best-validation entry, the losses and the
    epoch times."""
    best: Dict[str, Any] = {'valid': -1.0}
    history: List[Dict[str, Any]] = []
    losses: List[float] = []
    epoch_times: List[float] = []
    for epoch in range(1, schedule.epochs + 1):
        t = time.perf_counter()
        loss = trainer.train_epoch(model, optimizer, epoch)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        epoch_times.append(time.perf_counter() - t)
        losses.append(round(loss, 6))
        line = (f'{name} | run {run:02d} | epoch {epoch:03d} | '
                f'loss {loss:.4f} | {epoch_times[-1]:.2f} s')
        if epoch % schedule.eval_every == 0 or epoch == schedule.epochs:
            acc = dist.broadcast(
                evaluate(evaluator, trainer.predict(module), y, split_idx)
                if dist.is_main else None)
            history.append(dict(epoch=epoch, **acc))
            if acc['valid'] > best['valid']:
                best = dict(epoch=epoch, **acc)
            line += (f" | train {100 * acc['train']:.2f} | valid "
                     f"{100 * acc['valid']:.2f} | test "
                     f"{100 * acc['test']:.2f}")
        if epoch % schedule.log_every == 0 or epoch == schedule.epochs:
            dist.log(line)
    return dict(best=best, history=history, losses=losses,
                epoch_times=epoch_times)


def run_once(name: str, run: int, data: Data, split_idx: Dict[str, Tensor],
             evaluator, num_classes: int, model_kwargs: Dict[str, Any],
             schedule: Schedule, seed: int, device: torch.device,
             dist: Optional[Distributed] = None,
             cluster: Optional[ClusterSettings] = None) -> Dict[str, Any]:
    r"""Trains model :obj:`name` (:func:`build_model` with
    :obj:`model_kwargs`) from seed :obj:`seed`, full-batch or over
    :obj:`cluster`, and returns its record: accuracies at the epoch of best
    validation accuracy, losses, epoch times, peak memory and, under DDP,
    every rank's parameter hash and peak memory.

    Peak memory counts from before the data moves to the device, so it
    includes the data and the graph operators.
    """
    dist = dist or Distributed()
    torch.manual_seed(seed)
    module = build_model(name, data.x.size(1), num_classes,
                         cached=cluster is None, **model_kwargs).to(device)
    num_params = sum(p.numel() for p in module.parameters())
    model = dist.wrap(module, device)
    torch.manual_seed(seed * 1000 + dist.rank)  # Per-rank dropout streams.
    optimizer = torch.optim.Adam(model.parameters(), lr=schedule.lr,
                                 weight_decay=schedule.weight_decay)
    peak = PeakMemory(device)
    peak.reset()
    rss_start = peak.current_rss_mib()
    if cluster is None:
        trainer: Trainer = FullBatch(name, data, split_idx['train'], device)
    else:
        trainer = ClusterBatches(name, data, split_idx['train'], cluster,
                                 device, dist)
    out = fit(name, run, model, module, optimizer, trainer, evaluator,
              data.y.view(-1, 1), split_idx, schedule, device, dist)
    train_rss = peak.rss_mib()
    gpu = peak.gpu_mib()

    best, times = out['best'], out['epoch_times']
    steady = times[1:] or times
    record: Dict[str, Any] = dict(
        best_epoch=best['epoch'],
        best_valid=best['valid'],
        test_at_best_valid=best['test'],
        train_at_best_valid=best['train'],
        highest_train=max(h['train'] for h in out['history']),
        final=out['history'][-1],
        losses=out['losses'],
        epoch_time_s=sum(steady) / len(steady),
        first_epoch_time_s=times[0],
        peak_rss_mib=round(train_rss, 1),
        rss_at_start_mib=round(rss_start, 1),
        peak_rss_resettable=peak.resettable,
        peak_gpu_mib=None if gpu is None else round(gpu, 1),
        num_params=num_params,
    )
    if dist.enabled:
        record['ddp'] = dict(
            world_size=dist.world_size, backend=dist.backend,
            param_hashes=dist.all_gather(param_hash(module)),
            peak_rss_mib_per_rank=dist.all_gather(round(train_rss, 1)))
    return record
