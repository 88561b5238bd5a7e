r"""OGB node classification: ogbn-arxiv and ogbn-products.

Behaves like OGB's own examples: the official loader
(``ogb.nodeproppred.PygNodePropPredDataset``), the official splits and the
official ``Evaluator``; every run reports the test accuracy at the epoch of
best validation accuracy, and the summary is mean ± std over runs.

    python benchmarks/ogbn.py --dataset ogbn-arxiv --model diffresnet gcn mlp \
        --runs 10 --root dataset --out results/ogb.jsonl

Training is full-batch (``--mode full``, the default for arxiv) or over
Cluster-GCN partitions (``--mode cluster``, the default for products: METIS
through pymetis, random partitions with ``--partitioner random``), where the
K diffusion steps run inside each mini-batch and evaluation is full-graph and
layer-wise, with the sparse operator on the CPU when it does not fit the
device. ``torchrun --nproc_per_node=N benchmarks/ogbn.py ... --ddp`` trains
with DistributedDataParallel over partitions (gloo on CPU, nccl on GPU).

``--root`` is ogb's own root (the dataset lives in ``<root>/ogbn_arxiv/``).
Without network the dataset must be there already; a synthetic stand-in
with OGB's exact layout comes from ``benchmarks/make_synthetic_ogb.py``, and
results on it are labelled synthetic (never OGB results).
"""
import os.path as osp
import sys

if __name__ == '__main__':  # run as a script: import `benchmarks` from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import argparse
import hashlib
import os
import resource
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, ModuleList

from torch_geometric.nn import GCNConv, SAGEConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_undirected

from torch_geometric_diff import DiffResNetGNN
from benchmarks.ogbn.loading import (
    OGBDataUnavailableError,
    load_ogb_node_dataset,
    ogb_dataset_dir,
)
from benchmarks.ogbn.synthetic import (
    OGB_LIKE,
    read_synthetic_marker,
    synthetic_ogb_data,
)
from torch_geometric_diff.loader import (
    BlockedOperator,
    GraphPartition,
    PartitionLoader,
    diff_resnet_layerwise_inference,
    diff_resnet_operator,
    place_operator,
)
from benchmarks.common import JSONLResults, environment_info, mean_std

DATASETS = ('ogbn-arxiv', 'ogbn-products')
MODELS = ('diffresnet', 'gcn', 'sage', 'mlp')

# OGB's example scripts: arxiv full-batch GNNs, products Cluster-GCN.
DEFAULTS: Dict[str, Dict[str, Any]] = {
    'ogbn-arxiv': dict(mode='full', epochs=500, lr=0.01, hidden=256,
                       num_layers=3, num_parts=32, parts_per_batch=4,
                       eval_every=1),
    'ogbn-products': dict(mode='cluster', epochs=50, lr=0.001, hidden=256,
                          num_layers=3, num_parts=15000, parts_per_batch=32,
                          eval_every=5),
}
DROPOUT = {'diffresnet': 0.25, 'gcn': 0.5, 'sage': 0.5, 'mlp': 0.5}


# Models ######################################################################


def sym_norm_adj(edge_index: Tensor, num_nodes: int) -> Tensor:
    r""":math:`\tilde{D}^{-1/2}(A + I)\tilde{D}^{-1/2}` as
    :obj:`torch.sparse_csr` (rows = targets), on the device of
    :obj:`edge_index`."""
    ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
    adj = torch.sparse_coo_tensor(ei.flip(0), w, (num_nodes, num_nodes))
    return adj.coalesce().to_sparse_csr()


def mean_adj(edge_index: Tensor, num_nodes: int) -> Tensor:
    r""":math:`D^{-1}A` (mean over in-neighbours) as
    :obj:`torch.sparse_csr`."""
    row, col = edge_index[1], edge_index[0]
    deg = torch.bincount(row, minlength=num_nodes).clamp_(min=1)
    w = 1.0 / deg[row].float()
    adj = torch.sparse_coo_tensor(torch.stack([row, col]), w,
                                  (num_nodes, num_nodes))
    return adj.coalesce().to_sparse_csr()


def _chunks(fn, x: Tensor, device, chunk: int) -> Tensor:
    return torch.cat([fn(x[i:i + chunk].to(device))
                      for i in range(0, x.size(0), chunk)])


class _BNStack(torch.nn.Module):
    r"""Graph convolutions with BatchNorm, ReLU and dropout per hidden layer,
    as in OGB's arxiv examples; subclasses choose the convolution."""
    def __init__(self, in_channels: int, hidden: int, out_channels: int,
                 num_layers: int, dropout: float) -> None:
        super().__init__()
        dims = [in_channels] + [hidden] * (num_layers - 1) + [out_channels]
        self.convs = ModuleList(
            [self.conv(a, b) for a, b in zip(dims, dims[1:])])
        self.bns = ModuleList([BatchNorm1d(hidden)
                               for _ in range(num_layers - 1)])
        self.dropout = dropout

    @staticmethod
    def conv(in_channels: int, out_channels: int) -> torch.nn.Module:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        for m in list(self.convs) + list(self.bns):
            m.reset_parameters()

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        for conv, bn in zip(self.convs[:-1], self.bns):
            x = F.relu(bn(conv(x, adj)))
            x = F.dropout(x, self.dropout, self.training)
        return self.convs[-1](x, adj)


class GCN(_BNStack):
    r"""OGB's arxiv GCN: GCNConv, BatchNorm, ReLU and dropout per hidden
    layer, on a pre-normalized sparse adjacency."""
    @staticmethod
    def conv(in_channels: int, out_channels: int) -> torch.nn.Module:
        return GCNConv(in_channels, out_channels, normalize=False)

    @torch.no_grad()
    def inference(self, x: Tensor, op: BlockedOperator, device,
                  chunk: int) -> Tensor:
        for i, conv in enumerate(self.convs):
            h = op.matmul(_chunks(conv.lin, x, device, chunk)) + conv.bias
            if i < len(self.bns):
                h = F.relu(_chunks(self.bns[i], h, device, chunk))
            x = h
        return x


class SAGE(_BNStack):
    r"""OGB's GraphSAGE (mean aggregation) with BatchNorm on arxiv."""
    @staticmethod
    def conv(in_channels: int, out_channels: int) -> torch.nn.Module:
        # `aggr='sum'` over a row-normalized adjacency is the mean.
        return SAGEConv(in_channels, out_channels, aggr='sum')

    @torch.no_grad()
    def inference(self, x: Tensor, op: BlockedOperator, device,
                  chunk: int) -> Tensor:
        for i, conv in enumerate(self.convs):
            agg = op.matmul(x.to(device))
            h = _chunks(conv.lin_l, agg, device, chunk) + \
                _chunks(conv.lin_r, x, device, chunk)
            if i < len(self.bns):
                h = F.relu(_chunks(self.bns[i], h, device, chunk))
            x = h
        return x


class MLP(torch.nn.Module):
    r"""OGB's MLP baseline: Linear, BatchNorm, ReLU, dropout."""
    def __init__(self, in_channels: int, hidden: int, out_channels: int,
                 num_layers: int, dropout: float) -> None:
        super().__init__()
        dims = [in_channels] + [hidden] * (num_layers - 1) + [out_channels]
        self.lins = ModuleList([Linear(a, b) for a, b in zip(dims, dims[1:])])
        self.bns = ModuleList([BatchNorm1d(hidden)
                               for _ in range(num_layers - 1)])
        self.dropout = dropout

    def reset_parameters(self) -> None:
        for m in list(self.lins) + list(self.bns):
            m.reset_parameters()

    def forward(self, x: Tensor, adj: Optional[Tensor] = None) -> Tensor:
        for lin, bn in zip(self.lins[:-1], self.bns):
            x = F.relu(bn(lin(x)))
            x = F.dropout(x, self.dropout, self.training)
        return self.lins[-1](x)

    @torch.no_grad()
    def inference(self, x: Tensor, op: Any, device, chunk: int) -> Tensor:
        return _chunks(self, x, device, chunk)


def build_model(name: str, in_channels: int, num_classes: int,
                args: argparse.Namespace, cached: bool) -> torch.nn.Module:
    if name == 'diffresnet':
        return DiffResNetGNN(in_channels, num_classes,
                             hidden_channels=args.hidden,
                             num_steps=args.num_steps,
                             step_size=args.step_size,
                             dropout=args.dropout_of[name],
                             num_blocks=args.num_blocks, cached=cached)
    cls = {'gcn': GCN, 'sage': SAGE, 'mlp': MLP}[name]
    return cls(in_channels, args.hidden, num_classes, args.num_layers,
               args.dropout_of[name])


def graph_input(name: str, edge_index: Tensor, num_nodes: int) -> Any:
    r"""What each model takes as its graph argument."""
    if name == 'diffresnet':
        return edge_index
    if name == 'gcn':
        return sym_norm_adj(edge_index, num_nodes)
    if name == 'sage':
        return mean_adj(edge_index, num_nodes)
    return None


# Measurement #################################################################


class PeakMemory:
    r"""Peak resident set size since :meth:`reset` (Linux ``VmHWM``, reset
    through ``/proc/self/clear_refs``; otherwise the process peak), and
    :func:`torch.cuda.max_memory_allocated` on a GPU."""
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.resettable = True

    def reset(self) -> None:
        import gc
        gc.collect()
        try:  # Hand freed heap pages back first, so RSS is live memory.
            import ctypes
            ctypes.CDLL('libc.so.6').malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
        except OSError:
            self.resettable = False
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)

    @staticmethod
    def _status_mib(field: str) -> Optional[float]:
        # One field of /proc/self/status in MiB, or None where unavailable.
        try:
            with open('/proc/self/status') as f:
                for line in f:
                    if line.startswith(field + ':'):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    @classmethod
    def current_rss_mib(cls) -> float:
        rss = cls._status_mib('VmRSS')
        return 0.0 if rss is None else rss

    def rss_mib(self) -> float:
        hwm = self._status_mib('VmHWM')
        if hwm is None:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return hwm

    def gpu_mib(self) -> Optional[float]:
        if self.device.type != 'cuda':
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20


def param_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(-1).numpy().tobytes())
    return h.hexdigest()[:16]


# Data ########################################################################


def load_data(args: argparse.Namespace, rank: int = 0,
              world_size: int = 1) -> Tuple[Any, Dict[str, Tensor], str,
                                            Optional[Dict]]:
    r"""Returns :obj:`(data, split_idx, source, marker)`."""
    if args.synthetic_in_memory is not None:
        data, split_idx = synthetic_ogb_data(args.dataset,
                                             args.synthetic_in_memory)
        return data, split_idx, 'synthetic-in-memory', dict(
            like=args.dataset, scale=args.synthetic_in_memory, seed=0)

    import torch.distributed as dist
    for turn in range(2 if world_size > 1 else 1):
        # Rank 0 processes the raw files once; the others read its output.
        if (turn == 0) == (rank == 0):
            dataset, split_idx = load_ogb_node_dataset(
                args.dataset, args.root, download=not args.no_download)
        if world_size > 1:
            dist.barrier()
    path = ogb_dataset_dir(args.dataset, args.root)
    marker = read_synthetic_marker(path)
    source = 'synthetic' if marker is not None else 'ogb'
    return dataset[0], split_idx, source, marker


# Training ####################################################################


def evaluate(evaluator, out: Tensor, y: Tensor,
             split_idx: Dict[str, Tensor]) -> Dict[str, float]:
    pred = out.argmax(dim=-1, keepdim=True).cpu()
    return {
        key: evaluator.eval({
            'y_true': y[idx],
            'y_pred': pred[idx]
        })['acc']
        for key, idx in (('train', split_idx['train']),
                         ('valid', split_idx['valid']),
                         ('test', split_idx['test']))
    }


def run_once(name: str, run: int, data, split_idx: Dict[str, Tensor],
             evaluator, args: argparse.Namespace, device: torch.device,
             ddp: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    import torch.distributed as dist
    rank = ddp['rank'] if ddp else 0
    world = ddp['world_size'] if ddp else 1
    log = print if rank == 0 else (lambda *a, **k: None)
    seed = args.seed + run
    torch.manual_seed(seed)
    num_nodes = data.num_nodes
    x, y = data.x, data.y.view(-1, 1)
    num_classes = int(y.max()) + 1 if args.num_classes is None \
        else args.num_classes
    train_idx = split_idx['train']
    full = args.mode == 'full'

    model = build_model(name, x.size(1), num_classes, args,
                        cached=full).to(device)
    num_params = sum(p.numel() for p in model.parameters())
    module = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel
        model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else
            None)
    torch.manual_seed(seed * 1000 + rank)  # Per-rank dropout streams.
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr,
                                 weight_decay=args.weight_decay)
    # Peaks include moving the data and building the graph operators.
    peak = PeakMemory(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    peak.reset()
    rss_start = peak.current_rss_mib()

    if full:
        x_dev, y_dev = x.to(device), y.view(-1).to(device)
        graph = graph_input(name, data.edge_index.to(device), num_nodes)
        train_dev = train_idx.to(device)
    else:
        train_mask = torch.zeros(num_nodes, dtype=torch.bool)
        train_mask[train_idx] = True
        from torch_geometric.data import Data
        loader = PartitionLoader(
            args.partition, args.parts_per_batch, shuffle=True,
            data=Data(x=x, y=y.view(-1), train_mask=train_mask),
            seed=args.seed, num_replicas=world, rank=rank)
        eval_op = None

    def train_epoch(epoch: int) -> float:
        model.train()
        if full:
            optimizer.zero_grad()
            out = model(x_dev, graph)
            loss = F.cross_entropy(out[train_dev], y_dev[train_dev])
            loss.backward()
            optimizer.step()
            return float(loss.detach())
        loader.set_epoch(epoch)
        total, count = 0.0, 0
        for batch in loader:
            batch = batch.to(device)
            optimizer.zero_grad()
            out = model(batch.x, graph_input(name, batch.edge_index,
                                             batch.num_nodes))
            mask = batch.train_mask
            if bool(mask.any()):
                loss = F.cross_entropy(out[mask], batch.y[mask])
            else:  # Keeps DDP's collective backward in step.
                loss = out.sum() * 0.0
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            count += 1
        stats = torch.tensor([total, count], dtype=torch.float64)
        if ddp:
            stats = stats.to(device)
            dist.all_reduce(stats)
        return float(stats[0] / max(float(stats[1]), 1.0))

    @torch.no_grad()
    def test() -> Dict[str, float]:
        nonlocal eval_op
        module.eval()
        if full:
            out = module(x_dev, graph)
        elif name == 'diffresnet':
            if eval_op is None or module.conv.learnable_step:
                eval_op = diff_resnet_operator(
                    module, args.full_edge_index, num_nodes, device,
                    args.operator_device)
            out = diff_resnet_layerwise_inference(
                module, x, args.full_edge_index, device,
                args.chunk_size, operator=eval_op,
                channel_chunk=args.channel_chunk)
        else:
            if eval_op is None and name != 'mlp':
                adj = graph_input(name, args.full_edge_index, num_nodes)
                eval_op = place_operator(adj, device, args.operator_device)
            out = module.inference(x, eval_op, device, args.chunk_size)
        return evaluate(evaluator, out, y, split_idx)

    best = {'valid': -1.0}
    history: List[Dict[str, Any]] = []
    losses: List[float] = []
    epoch_times: List[float] = []
    for epoch in range(1, args.epochs + 1):
        t = time.perf_counter()
        loss = train_epoch(epoch)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        epoch_times.append(time.perf_counter() - t)
        losses.append(round(loss, 6))
        line = (f'{name} | run {run:02d} | epoch {epoch:03d} | '
                f'loss {loss:.4f} | {epoch_times[-1]:.2f} s')
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            if ddp:  # Rank 0 evaluates; everyone gets the numbers.
                result = [test() if rank == 0 else None]
                dist.broadcast_object_list(result, src=0)
                acc = result[0]
            else:
                acc = test()
            history.append(dict(epoch=epoch, **acc))
            if acc['valid'] > best['valid']:
                best = dict(epoch=epoch, **acc)
            line += (f" | train {100 * acc['train']:.2f} | valid "
                     f"{100 * acc['valid']:.2f} | test "
                     f"{100 * acc['test']:.2f}")
        if epoch % args.log_every == 0 or epoch == args.epochs:
            log(line, flush=True)
    train_rss = peak.rss_mib()
    gpu = peak.gpu_mib()

    steady = epoch_times[1:] or epoch_times
    record: Dict[str, Any] = dict(
        best_epoch=best['epoch'],
        best_valid=best['valid'],
        test_at_best_valid=best['test'],
        train_at_best_valid=best['train'],
        highest_train=max(h['train'] for h in history),
        final=history[-1],
        losses=losses,
        epoch_time_s=sum(steady) / len(steady),
        first_epoch_time_s=epoch_times[0],
        peak_rss_mib=round(train_rss, 1),
        rss_at_start_mib=round(rss_start, 1),
        peak_rss_resettable=peak.resettable,
        peak_gpu_mib=None if gpu is None else round(gpu, 1),
        num_params=num_params,
    )
    if ddp:
        hashes: List[Optional[str]] = [None] * world
        dist.all_gather_object(hashes, param_hash(module))
        rss: List[Optional[float]] = [None] * world
        dist.all_gather_object(rss, round(train_rss, 1))
        record['ddp'] = dict(world_size=world, backend=ddp['backend'],
                             param_hashes=hashes, peak_rss_mib_per_rank=rss)
    return record


def summarize(results: JSONLResults, key: Dict[str, Any]) -> None:
    rows = [
        r for r in results if all(r.get(k) == v for k, v in key.items())
    ]
    if not rows:
        return
    label = key['dataset']
    if key['data'] != 'ogb':
        label += ' [SYNTHETIC stand-in, not an OGB result]'
    print(f"\n{label} | {key['model']} | {len(rows)} runs "
          f"({key['config']['mode']})")
    for title, field in (('Highest Train', 'highest_train'),
                         ('Highest Valid', 'best_valid'),
                         ('Final Train', 'train_at_best_valid'),
                         ('Final Test', 'test_at_best_valid')):
        mean, std = mean_std([100 * r[field] for r in rows])
        print(f'  {title}: {mean:.2f} ± {std:.2f}')
    t, _ = mean_std([r['epoch_time_s'] for r in rows])
    rss = max(r['peak_rss_mib'] for r in rows)
    gpu = [r['peak_gpu_mib'] for r in rows if r.get('peak_gpu_mib')]
    print(f'  Epoch time: {t:.3f} s | peak RSS {rss:,.0f} MiB'
          + (f' | peak GPU {max(gpu):,.0f} MiB' if gpu else ''), flush=True)


# Main ########################################################################


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='OGB node classification with the official loader, '
        'splits and Evaluator.')
    parser.add_argument('--dataset', required=True, choices=DATASETS)
    parser.add_argument('--model', nargs='+', default=['diffresnet'],
                        choices=MODELS)
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--root', default='dataset',
                        help="ogb's root: the data lives in <root>/ogbn_*/")
    parser.add_argument('--out', default='results/ogb.jsonl')
    parser.add_argument('--epochs', type=int)
    parser.add_argument('--hidden', type=int)
    parser.add_argument('--num-layers', type=int,
                        help='layers of gcn/sage/mlp (default: 3)')
    parser.add_argument('--lr', type=float)
    parser.add_argument('--weight-decay', type=float, default=0.0)
    parser.add_argument('--dropout', type=float,
                        help='default: 0.5 for gcn/sage/mlp (OGB), 0.25 for '
                        'diffresnet (dropout before every diffusion step)')
    parser.add_argument('--step-size', type=float, default=0.25)
    parser.add_argument('--num-steps', type=int, default=10)
    parser.add_argument('--num-blocks', type=int, default=1)
    parser.add_argument('--device', default='auto',
                        help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--seed', type=int, default=0,
                        help='run r uses seed + r')
    parser.add_argument('--mode', choices=('full', 'cluster'),
                        help='full-batch or Cluster-GCN partitions (default: '
                        'full for arxiv, cluster for products)')
    parser.add_argument('--partitioner', choices=('metis', 'random'),
                        default='metis')
    parser.add_argument('--num-parts', type=int)
    parser.add_argument('--parts-per-batch', type=int)
    parser.add_argument('--operator-device', default='auto',
                        choices=('auto', 'cpu', 'device'),
                        help='where the full-graph operator lives during '
                        'layer-wise inference (cluster mode)')
    parser.add_argument('--chunk-size', type=int, default=2**16,
                        help='nodes per chunk in layer-wise inference')
    parser.add_argument('--channel-chunk', type=int,
                        help='diffuse this many channels at a time in '
                        'layer-wise inference, states on the CPU (cluster '
                        'mode, for graphs whose states do not fit the device)')
    parser.add_argument('--eval-every', type=int)
    parser.add_argument('--log-every', type=int, default=1)
    parser.add_argument('--threads', type=int,
                        help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--ddp', action='store_true',
                        help='DistributedDataParallel over partitions; '
                        'launch with torchrun')
    parser.add_argument('--no-download', action='store_true',
                        help='fail instead of downloading a missing dataset')
    parser.add_argument('--synthetic-in-memory', type=float, metavar='SCALE',
                        help='skip the files: build the synthetic stand-in '
                        'of this scale in memory (not OGB data)')
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.dataset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.ddp:
        args.mode = 'cluster'
    args.dropout_of = {
        m: DROPOUT[m] if args.dropout is None else args.dropout
        for m in MODELS
    }
    for key in ('runs', 'epochs', 'hidden', 'num_layers', 'num_parts',
                'parts_per_batch', 'eval_every', 'log_every', 'chunk_size'):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.num_layers < 2:
        parser.error('--num-layers must be >= 2')
    if args.channel_chunk is not None and args.channel_chunk < 1:
        parser.error('--channel-chunk must be >= 1')
    args.num_classes = None
    return args


def config_of(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    cfg = dict(mode=args.mode, epochs=args.epochs, lr=args.lr,
               weight_decay=args.weight_decay, hidden=args.hidden,
               dropout=args.dropout_of[name], eval_every=args.eval_every)
    if name == 'diffresnet':
        cfg.update(step_size=args.step_size, num_steps=args.num_steps,
                   num_blocks=args.num_blocks)
    else:
        cfg.update(num_layers=args.num_layers)
    if args.mode == 'cluster':
        cfg.update(partitioner=args.partitioner, num_parts=args.num_parts,
                   parts_per_batch=args.parts_per_batch,
                   world_size=args.world_size)
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch.distributed as dist
    if args.threads:
        torch.set_num_threads(args.threads)

    rank, world, local_rank = 0, 1, 0
    if args.ddp:
        if 'RANK' not in os.environ:
            print('error: --ddp needs torchrun (torchrun --nproc_per_node=N '
                  'benchmarks/ogbn.py ... --ddp)', file=sys.stderr)
            return 2
        rank = int(os.environ['RANK'])
        world = int(os.environ['WORLD_SIZE'])
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
    args.world_size = world

    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(args.device)
    if device.type == 'cuda' and args.ddp:
        device = torch.device('cuda', local_rank)
    if device.type == 'cuda' and device.index is not None:
        torch.cuda.set_device(device)
    ddp = None
    if args.ddp:
        backend = 'nccl' if device.type == 'cuda' else 'gloo'
        dist.init_process_group(backend)
        ddp = dict(rank=rank, world_size=world, backend=backend)
    log = print if rank == 0 else (lambda *a, **k: None)

    try:
        try:
            data, split_idx, source, marker = load_data(args, rank, world)
        except OGBDataUnavailableError as e:
            print(f'error: {e}', file=sys.stderr)
            return 2
        from ogb.nodeproppred import Evaluator
        evaluator = Evaluator(args.dataset)

        if source != 'ogb':
            log(f"NOTE: synthetic {args.dataset}-like data ({source}, "
                f"scale {marker.get('scale')}); results are NOT OGB "
                f"results.", flush=True)
        if args.dataset == 'ogbn-arxiv':  # Citations: make undirected.
            data.edge_index = to_undirected(data.edge_index,
                                            num_nodes=data.num_nodes)
        args.num_classes = max(int(data.y.max()) + 1,
                               OGB_LIKE[args.dataset]['num_classes'])
        log(f'{args.dataset}: {data.num_nodes:,} nodes, '
            f'{data.edge_index.size(1):,} directed edges, '
            f'{data.x.size(1)} features | mode {args.mode} | device '
            f'{device}' + (f' | DDP x{world} ({ddp["backend"]})'
                           if ddp else ''), flush=True)

        if args.mode == 'cluster':
            args.full_edge_index = data.edge_index
            t = time.perf_counter()
            part = None
            if ddp:  # Rank 0 partitions; everyone uses its result.
                holder = [None]
                if rank == 0:
                    holder[0] = GraphPartition(
                        data.edge_index, data.num_nodes, args.num_parts,
                        args.partitioner, args.seed).part
                dist.broadcast_object_list(holder, src=0)
                part = holder[0]
            args.partition = GraphPartition(data.edge_index, data.num_nodes,
                                            args.num_parts, args.partitioner,
                                            args.seed, part=part)
            log(f'{args.partitioner} partition into {args.num_parts} parts '
                f'in {time.perf_counter() - t:.1f} s', flush=True)

        results = JSONLResults(args.out, ('dataset', 'data', 'model', 'config',
                                          'run'))
        for name in args.model:
            key = dict(dataset=args.dataset, data=source, model=name,
                       config=config_of(name, args))
            for run in range(args.runs):
                done = [results.done(dict(key, run=run))]
                if ddp:  # Rank 0's file decides.
                    dist.broadcast_object_list(done, src=0)
                if done[0]:
                    log(f'{name} | run {run:02d} | already in {args.out}, '
                        f'skipped', flush=True)
                    continue
                record = run_once(name, run, data, split_idx, evaluator, args,
                                  device, ddp)
                log(f"{name} | run {run:02d} | best valid "
                    f"{100 * record['best_valid']:.2f} at epoch "
                    f"{record['best_epoch']} | test "
                    f"{100 * record['test_at_best_valid']:.2f} | "
                    f"{record['epoch_time_s']:.3f} s/epoch | peak RSS "
                    f"{record['peak_rss_mib']:,.0f} MiB", flush=True)
                if rank == 0:
                    results.append(
                        dict(key, run=run, seed=args.seed + run,
                             synthetic=marker, **record,
                             env=environment_info(str(device))))
            if rank == 0:
                summarize(results, key)
    finally:
        if ddp:
            dist.destroy_process_group()
    return 0


if __name__ == '__main__':
    sys.exit(main())
