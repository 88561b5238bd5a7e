r"""Section ``implicit``: the implicit (backward-Euler) diffusion step
against the explicit step and PyG's :class:`~torch_geometric.nn.conv.APPNP`
step, on the same graph and features, interleaved repeat by repeat.

An implicit step solves :math:`(\mathbf{I} + \gamma\mathbf{L})\mathbf{X}'
= \mathbf{X}` by conjugate gradients; its cost is the number of CG
iterations, each one sparse product, so it depends on :math:`\gamma`. The
explicit step and APPNP's step are one sparse product whatever their step
size or :math:`\alpha`. The implicit step runs through
``DiffConv(scheme='implicit')`` where the layer has that argument, else
through :func:`~torch_geometric_diff.nn.diffusion.implicit.implicit_diffuse`
on the operator the layer builds; the CG iterations are read from the
``stats`` of :func:`implicit_diffuse` on that operator. Each :math:`\gamma`
also runs without the Jacobi preconditioner (``implicit-plain``,
``implicit_diffuse(..., precondition=False)`` on the same operator) and, on
the CPU, with the PyTorch CG (``implicit-torch``, ``TGD_DISABLE_CPP=1``)
next to the C++ solve, in the same loop.
"""
import contextlib
import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.nn import APPNP

from benchmarks.speed.graphs import features
from benchmarks.speed.timing import (kernel_path, load_average, median_ms,
                                     timed)
from torch_geometric_diff import DiffConv
from torch_geometric_diff.nn.diffusion.implicit import implicit_diffuse


def implicit_layer(gamma: float, num_steps: int, dropout: float, tol: float,
                   max_iter: int) -> Optional[DiffConv]:
    r"""``DiffConv(scheme='implicit')`` with :obj:`tol` and
    :obj:`max_iter` where it accepts them, else :obj:`None`."""
    params = inspect.signature(DiffConv.__init__).parameters
    if 'scheme' not in params:
        return None
    kwargs = {k: v for k, v in dict(tol=tol, max_iter=max_iter).items()
              if k in params}
    return DiffConv(gamma, num_steps, dropout=dropout, cached=True,
                    scheme='implicit', **kwargs)


def run_implicit(g: Dict[str, Any], width: int, num_steps: int,
                 gammas: Sequence[float], step_size: float, dropout: float,
                 tol: float, max_iter: int, warmup: int, repeats: int,
                 seed: int, device: torch.device) -> Dict[str, Any]:
    r"""Per-step medians over :obj:`repeats` of the evaluation forward (no
    gradients) and of a training forward and backward (with
    :obj:`dropout`; APPNP has no per-step dropout) of :obj:`num_steps`
    explicit steps (:obj:`step_size`), APPNP steps and implicit steps at
    every :math:`\gamma` in :obj:`gammas`, with and without the Jacobi
    preconditioner, on :obj:`width` random feature columns; for the implicit
    steps also the CG iterations per step."""
    load = load_average()
    x = features(g, width, seed).requires_grad_()
    ei, n = g['edge_index'], x.size(0)
    gen = torch.Generator().manual_seed(seed + 1)
    grad = torch.randn(x.shape, generator=gen).to(device)
    explicit = DiffConv(step_size, num_steps, dropout=dropout,
                        cached=True).to(device)
    appnp = APPNP(K=num_steps, alpha=0.1, cached=True).to(device)
    op = explicit.build_operator(ei, n, dtype=x.dtype)
    layers = {gm: implicit_layer(gm, num_steps, dropout, tol, max_iter)
              for gm in gammas}
    via = 'DiffConv(scheme=implicit)' if layers[gammas[0]] is not None \
        else 'implicit_diffuse'

    def implicit(gm: float) -> Callable[[Tensor, bool], Tensor]:
        layer = layers[gm]
        if layer is not None:
            layer = layer.to(device)

            def run(h: Tensor, train: bool) -> Tensor:
                layer.train(train)
                return layer(h, ei)
            return run
        return via_function(gm)

    def via_function(gm: float, precondition: Optional[bool] = None
                     ) -> Callable[[Tensor, bool], Tensor]:
        gamma = torch.tensor(gm, dtype=x.dtype, device=device)
        return lambda h, train: implicit_diffuse(
            h, op, gamma, num_steps, dropout if train else 0.0, tol=tol,
            max_iter=max_iter, precondition=precondition)

    def module(m: torch.nn.Module) -> Callable[[Tensor, bool], Tensor]:
        def run(h: Tensor, train: bool) -> Tensor:
            m.train(train)
            return m(h, ei)
        return run

    runs = {'explicit': module(explicit), 'appnp': module(appnp)}
    runs.update({f'implicit@{gm:g}': implicit(gm) for gm in gammas})
    runs.update({f'implicit-plain@{gm:g}': via_function(gm, False)
                 for gm in gammas})
    with kernel_path('cpp') as taken:
        cpp = device.type == 'cpu' and taken == 'cpp'
    if cpp:
        runs.update({f'implicit-torch@{gm:g}': implicit(gm)
                     for gm in gammas})

    def evaluate(fn: Callable[[Tensor, bool], Tensor]) -> None:
        with torch.no_grad():
            fn(x, False)

    def train(fn: Callable[[Tensor, bool], Tensor]) -> None:
        x.grad = None
        fn(x, True).backward(grad)

    times = {(k, what): [] for k in runs for what in ('eval', 'train')}
    torch.manual_seed(seed)
    for rep in range(warmup + repeats):
        for key, fn in runs.items():
            # Forward and backward of the implicit-torch rows on PyTorch CG.
            with (kernel_path('torch') if key.startswith('implicit-torch')
                  else contextlib.nullcontext()):
                te = timed(lambda: evaluate(fn), device)
                tt = timed(lambda: train(fn), device)
            if rep >= warmup:
                times[(key, 'eval')].append(te)
                times[(key, 'train')].append(tt)
    rows: Dict[str, Dict[str, Any]] = {}
    for key in runs:
        rows[key] = dict(
            step_eval_ms=median_ms(times[(key, 'eval')]) / num_steps,
            step_train_ms=median_ms(times[(key, 'train')]) / num_steps)
    for gm in gammas:
        if cpp:
            rows[f'implicit-torch@{gm:g}']['gamma'] = gm
        for key, precondition in (('implicit', None), ('implicit-plain',
                                                       False)):
            stats: Dict[str, List] = {}
            with torch.no_grad():
                implicit_diffuse(x, op, torch.tensor(gm, dtype=x.dtype,
                                                     device=device),
                                 num_steps, 0.0, tol=tol, max_iter=max_iter,
                                 stats=stats, precondition=precondition)
            rows[f'{key}@{gm:g}'].update(
                gamma=gm, iterations=stats['iterations'],
                mean_iterations=sum(stats['iterations']) / num_steps,
                max_residual=max(stats['residual']))
    for r in rows.values():
        r['vs_explicit'] = r['step_eval_ms'] / \
            rows['explicit']['step_eval_ms']
    config = dict(
        width=width, num_nodes=n, num_steps=num_steps, gammas=list(gammas),
        explicit_step_size=step_size, appnp_alpha=0.1, dropout=dropout,
        tol=tol, max_iter=max_iter, cached=True, x='dense', implicit_via=via,
        cg='cpp and torch' if cpp else 'torch',
        synthetic='synthetic' in g['name'], threads=torch.get_num_threads(),
        repeats=repeats, warmup=warmup, load_start=load,
        load_end=load_average())
    return dict(config=config, steps=rows)


def markdown(results: Dict[str, Any]) -> List[str]:
    r"""The table of the ``implicit`` section of every graph in
    :obj:`results`."""
    lines = [
        '', 'Implicit step (CG) vs explicit step vs APPNP step, per step '
        '(train: forward+backward with dropout, divided by K).', '',
        '| graph | width | K | step | eval (ms/step) | train (ms/step) | '
        'CG iterations/step | eval vs explicit |',
        '|---|---:|---:|---|---:|---:|---:|---:|'
    ]
    for graph, r in results.items():
        if 'implicit' not in r:
            continue
        c = r['implicit']['config']
        fixed = {'explicit': f"explicit (gamma {c['explicit_step_size']:g})",
                 'appnp': f"APPNP (alpha {c['appnp_alpha']:g})"}
        for key, v in r['implicit']['steps'].items():
            cg = {'implicit-torch': ', PyTorch CG',
                  'implicit-plain': ', no preconditioner'}.get(
                      key.split('@')[0], '')
            name = fixed.get(key, f"implicit (gamma {v.get('gamma', 0):g}"
                                  f"{cg})")
            its = f"{v['mean_iterations']:.1f}" if 'iterations' in v else '-'
            lines.append(
                f"| {graph} | {c['width']} | {c['num_steps']} | {name} | "
                f"{v['step_eval_ms']:.3f} | {v['step_train_ms']:.3f} | "
                f"{its} | {v['vs_explicit']:.2f}x |")
    return lines
