r"""The runs of one benchmark command: every dataset x protocol x split x
model x hyper-parameter point x init, sharded over processes and resumed
from the results file."""
import argparse
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from benchmarks.common import JSONLResults, environment_info
from benchmarks.common.cli import (nonnegative_float, nonnegative_int,
                                   positive_float, positive_int, probability)
from benchmarks.planetoid.datasets import (DATASETS, DatasetSpec, Graph,
                                           load_pyg_dataset, preprocess)
from benchmarks.planetoid.models import HPARAMS, model_hparams
from benchmarks.planetoid.protocols import DEFAULT_SPLITS
from benchmarks.planetoid.records import key_record
from benchmarks.planetoid.train import train_batched_inits, train_single


def hidden_width(text: str) -> Optional[int]:
    r"""An :mod:`argparse` type: a width :math:`\geq 1`, or ``none`` (the
    paper's Diff-ResNet, without input projection)."""
    return None if text.lower() == 'none' else positive_int(text)


def scheme_name(text: str) -> str:
    r"""An :mod:`argparse` type: a diffusion scheme of
    :class:`~torch_geometric_diff.DiffConv`."""
    if text.lower() not in ('explicit', 'implicit'):
        raise argparse.ArgumentTypeError(
            f"expected 'explicit' or 'implicit', got {text!r}")
    return text.lower()


def boolean(text: str) -> bool:
    r"""An :mod:`argparse` type: ``true``/``false`` (also ``1``/``0``)."""
    value = {'true': True, '1': True, 'false': False, '0': False}.get(
        text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(
            f"expected true or false, got {text!r}")
    return value


# The value type of every hyper-parameter (flags and `--grid` values).
HPARAM_TYPES: Dict[str, Callable[[str], Any]] = {
    'step_size': positive_float,
    'num_steps': nonnegative_int,
    'dropout': probability,
    'hidden': hidden_width,
    'lr': positive_float,
    'weight_decay': nonnegative_float,
    'patience': positive_int,
    'max_epochs': positive_int,
    'scheme': scheme_name,
    'learnable_step': boolean,
}


def parse_grid(items: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
    r"""``['step_size=0.1,0.25', 'num_steps=10,20']`` -> all combinations.
    Raises :class:`ValueError` for an unknown key or a bad value."""
    if not items:
        return [{}]
    keys, values = [], []
    for item in items:
        if '=' not in item:
            raise ValueError(f"--grid entries look like KEY=V1,V2 "
                             f"(got '{item}')")
        key, vals = item.split('=', 1)
        key = key.strip().replace('-', '_')
        if key not in HPARAMS:
            raise ValueError(f"Unknown --grid key '{key}' (choose from "
                             f"{', '.join(HPARAMS)})")
        if key in keys:
            raise ValueError(f"--grid {key} is given twice (list its values "
                             f"once: {key}=V1,V2)")
        keys.append(key)
        values.append([_parse_value(key, v) for v in vals.split(',') if v])
        if not values[-1]:
            raise ValueError(f"--grid {key} has no values (expected "
                             f"{key}=V1,V2)")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _parse_value(key: str, value: str) -> Any:
    try:
        return HPARAM_TYPES[key](value.strip())
    except argparse.ArgumentTypeError as e:
        raise ValueError(f'--grid {key}: {e}') from None


def parse_shard(text: Optional[str]) -> Tuple[int, int]:
    r"""Parses :obj:`--shard I/N` into :obj:`(I, N)`; :obj:`None` is
    :obj:`(0, 1)`."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split('/'))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"--shard '{text}': expected I/N with 0 <= I < N, "
                         f"e.g. 0/2 and 1/2 for two processes")
    return i, n


@dataclass(frozen=True)
class Plan:
    r"""What one command runs, validated: registry keys of
    :obj:`datasets`, :obj:`protocols` and :obj:`models`, hyper-parameter
    :obj:`overrides` (given flags only) and :obj:`grid` points, the number
    of splits (:obj:`None`: the protocol's default) and inits, the master
    :obj:`seed`, this process's :obj:`shard` :obj:`(I, N)`, whether
    Diff-ResNet inits are trained together (:obj:`batch_inits`), the first
    split to run (:obj:`first_split`; the splits and seeds are those of the
    whole run) and the hyper-parameters fixed per
    :obj:`(dataset name, protocol, model)` by :obj:`selected` (from
    ``--selected-from``), which replace defaults, flags and grid."""
    datasets: List[str]
    protocols: List[str]
    models: List[str]
    overrides: Dict[str, Any] = field(default_factory=dict)
    grid: List[Dict[str, Any]] = field(default_factory=lambda: [{}])
    num_splits: Optional[int] = None
    num_inits: int = 20
    seed: int = 42
    shard: Tuple[int, int] = (0, 1)
    batch_inits: bool = False
    first_split: int = 0
    selected: Dict[Tuple[str, str, str], Dict[str, Any]] = field(
        default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch_inits:
            other = [m for m in self.models if m != 'diffresnet']
            if other:
                raise ValueError(f"--batch-inits trains diffresnet only; "
                                 f"drop it or run {', '.join(other)} "
                                 f"separately")
        both = sorted(set(self.overrides) & set().union(*self.grid))
        if both:
            raise ValueError(f"--{both[0].replace('_', '-')} and --grid "
                             f"{both[0]} are both given; keep one")
        if self.selected and (self.overrides or self.grid != [{}]):
            given = sorted(self.overrides) or ['grid']
            raise ValueError(f"--selected-from fixes the hyper-parameters; "
                             f"drop --{given[0].replace('_', '-')}")
        for name, protocol in itertools.product(
                [DATASETS[d].name for d in self.datasets], self.protocols):
            if self.selected and not any((name, protocol, m) in self.selected
                                         for m in self.models):
                raise ValueError(f"--selected-from: the files hold no run of "
                                 f"{', '.join(self.models)} on '{name}' "
                                 f"({protocol})")
        shard, num_shards = self.shard
        for protocol in self.protocols:
            num_splits = self.num_splits or DEFAULT_SPLITS[protocol]
            if self.first_split >= num_splits:
                raise ValueError(
                    f"--first-split {self.first_split} leaves no splits: "
                    f"protocol '{protocol}' runs {num_splits} split(s) "
                    f"(--splits)")
            if shard >= num_splits:
                raise ValueError(
                    f"--shard {shard}/{num_shards} has no splits: protocol "
                    f"'{protocol}' runs {num_splits} split(s) (--splits)")


@dataclass
class Job:
    r"""One dataset under one protocol: its preprocessed graph (with this
    shard's splits) and the :obj:`(model, hparams)` configs to run on it."""
    spec: DatasetSpec
    protocol: str
    graph: Graph
    configs: List[Tuple[str, Dict[str, Any]]]


def model_configs(plan: Plan, spec: DatasetSpec,
                  protocol: str) -> List[Tuple[str, Dict[str, Any]]]:
    r"""The distinct :obj:`(model, hparams)` pairs of the grid on
    :obj:`spec` (grid points a model ignores collapse into one), or the
    selected hyper-parameters of a model that has them."""
    configs = []
    for model in plan.models:
        chosen = plan.selected.get((spec.name, protocol, model))
        if chosen is not None:
            configs.append((model, dict(chosen)))
            continue
        seen = set()
        for point in plan.grid:
            hp = model_hparams(model, spec, {**plan.overrides, **point})
            key = json.dumps(hp, sort_keys=True)
            if key not in seen:
                seen.add(key)
                configs.append((model, hp))
    return configs


def load_jobs(plan: Plan, root: str, cache: str,
              offline: bool = False) -> List[Job]:
    r"""Loads and preprocesses every dataset x protocol first, so that
    missing data fails before any training."""
    jobs = []
    shard, num_shards = plan.shard
    for dname, protocol in itertools.product(plan.datasets, plan.protocols):
        spec = DATASETS[dname]
        num_splits = plan.num_splits or DEFAULT_SPLITS[protocol]
        ds = load_pyg_dataset(spec, protocol, root, cache, offline)
        g = preprocess(ds[0], spec, protocol, num_splits, plan.num_inits,
                       plan.seed)
        # Seeds are drawn for all splits first, so a shard's splits (and
        # those from --first-split on) are those of the whole run.
        total = len(g.splits)
        g.splits = [s for s in g.splits if s.split % num_shards == shard
                    and s.split >= plan.first_split]
        if not g.splits:
            raise ValueError(f"--shard {shard}/{num_shards} with "
                             f"--first-split {plan.first_split} has no "
                             f"splits: '{spec.name}' has {total} under "
                             f"protocol '{protocol}'")
        jobs.append(Job(spec, protocol, g,
                        model_configs(plan, spec, protocol)))
    return jobs


def _todo(job: Job, split, model: str, hp: Dict[str, Any], seed: int,
          results: JSONLResults) -> List[Tuple[int, int, Dict[str, Any]]]:
    # The (init, init seed, key record) of the runs not in `results` yet.
    out = []
    for init, init_seed in enumerate(split.init_seeds):
        rec = key_record(job.spec, job.protocol, model, split, init,
                         init_seed, hp, seed)
        if not results.done(rec):
            out.append((init, init_seed, rec))
    return out


def run_jobs(plan: Plan, jobs: List[Job], results: JSONLResults,
             device: torch.device) -> int:
    r"""Trains every run of :obj:`jobs` that :obj:`results` does not hold
    yet and appends one record per finished run. Returns the number of
    runs done."""
    pending = sum(
        len(_todo(job, split, model, hp, plan.seed, results))
        for job in jobs for split in job.graph.splits
        for model, hp in job.configs)
    print(f'{pending} runs to do, {len(results)} already in '
          f'{results.path}', file=sys.stderr)

    # In a log file (no terminal), refresh the bar once a minute.
    bar = tqdm(total=pending, unit='run', dynamic_ncols=True,
               disable=pending == 0,
               mininterval=0.1 if sys.stderr.isatty() else 60.0)
    total_start = time.perf_counter()
    for job in jobs:
        g = job.graph.to(device)
        for split in g.splits:
            split_start, ran = time.perf_counter(), 0
            for model, hp in job.configs:
                todo = _todo(job, split, model, hp, plan.seed, results)
                if not todo:
                    continue
                ran += len(todo)

                def write(rec: Dict[str, Any], res: Dict[str, Any],
                          batched: int):
                    # Taken per run: the C++ kernels are built on first use.
                    line = {**rec, **res, 'batched': batched,
                            'num_nodes': g.num_nodes, 'device': str(device),
                            **environment_info(str(device))}
                    results.append(line)
                    bar.set_postfix_str(f'{job.spec.name}/{model} split '
                                        f'{split.split} test '
                                        f'{100 * res["test_acc"]:.1f}',
                                        refresh=False)
                    bar.update(1)

                if plan.batch_inits and model == 'diffresnet':
                    train_batched_inits(
                        g, split, [s for _, s, _ in todo], hp,
                        on_done=lambda i, res: write(todo[i][2], res,
                                                     len(todo)))
                else:
                    for init, init_seed, rec in todo:
                        write(rec, train_single(model, g, split, init_seed,
                                                hp), 1)
            if ran:
                now = time.perf_counter()
                tqdm.write(f'[{job.spec.name}/{job.protocol}] split '
                           f'{split.split}: {ran} runs in '
                           f'{now - split_start:.1f} s (elapsed '
                           f'{now - total_start:.1f} s)', file=sys.stderr)
    bar.close()
    return pending
