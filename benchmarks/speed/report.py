r"""The speed benchmark's Markdown report: epoch times with speed-ups, the
diffusion against APPNP's propagation, peak memory against K, the tables of
the other sections, and the configuration each ran under."""
import platform
from typing import Any, Dict, List

import torch

from benchmarks.speed import implicit, masks, threads, uncached

SECTION_TABLES = {
    'masks': masks.markdown,
    'threads': threads.markdown,
    'uncached': uncached.markdown,
    'implicit': implicit.markdown,
}


def markdown(results: Dict[str, Any], meta: Dict[str, Any]) -> str:
    r"""The tables of every section in :obj:`meta['sections']` (``epoch``
    alone if absent) over :obj:`results`, under a header from :obj:`meta`,
    followed by the configuration of every section and graph."""
    sections = meta.get('sections', ['epoch'])
    if 'epoch' in sections:
        lines = epoch_tables(results, meta)
    else:
        lines = [
            f"Measured {meta['date']} on {meta['hardware']} (torch "
            f"{meta['torch']}, torch_geometric {meta['torch_geometric']}); "
            f"medians of {meta['repeats']} repeats after {meta['warmup']} "
            f"warm-up.", '', f"Command: `{meta['command']}`"
        ]
    for name in sections:
        if name in SECTION_TABLES:
            lines += SECTION_TABLES[name](results)
    lines += configuration(results, meta)
    return '\n'.join(lines) + '\n'


def configuration(results: Dict[str, Any],
                  meta: Dict[str, Any]) -> List[str]:
    r"""One line per section and graph with the settings it ran under
    (cached or not, the layout of x, threads, machine load)."""
    lines = [
        '', f"Configuration: {meta['num_threads']} intra-op threads, C++ "
        f"kernels {'loaded' if meta['cpp_kernels'] else 'not loaded'}, "
        f"machine load (1, 5, 15 min) {meta['load_start']} at start, "
        f"{meta['load_end']} at end.", ''
    ]
    for graph, r in results.items():
        for key, value in r.items():
            if not isinstance(value, dict):
                continue
            conf = value if key == 'epoch_config' else value.get('config')
            if not isinstance(conf, dict):
                continue
            name = 'epoch' if key == 'epoch_config' else key
            lines.append(f'- {graph} / {name}: ' + ', '.join(
                f'{k}={v}' for k, v in conf.items()))
    return lines


def epoch_tables(results: Dict[str, Any], meta: Dict[str, Any]) -> List[str]:
    r"""The header and the tables of section ``epoch``: per graph
    ``timing``, ``propagation`` and optionally ``memory``."""
    lines = [
        f"Measured {meta['date']} on {meta['hardware']} "
        f"(torch {meta['torch']}, torch_geometric "
        f"{meta['torch_geometric']}), K = {meta['num_steps']}, "
        f"step {meta['step_size']}, dropout {meta['dropout']}; medians of "
        f"{meta['repeats']} epochs.", '', f"Command: `{meta['command']}`", '',
        '| graph | model | epoch (ms) | forward (ms) | backward (ms) | '
        'epoch speed-up vs official | vs appnp |',
        '|---|---|---:|---:|---:|---:|---:|'
    ]
    for graph, r in results.items():
        t = r['timing']
        off = t.get('official', {}).get('epoch_ms')
        app = t.get('appnp', {}).get('epoch_ms')
        for model, v in t.items():
            ratio = f"{off / v['epoch_ms']:.1f}x" if off else '-'
            ratio_a = f"{app / v['epoch_ms']:.2f}x" if app else '-'
            lines.append(f"| {graph} | {model} | {v['epoch_ms']:.1f} | "
                         f"{v['forward_ms']:.1f} | {v['backward_ms']:.1f} | "
                         f"{ratio} | {ratio_a} |")
    lines += [
        '', '| graph | diffusion fwd (ms) | diffusion bwd (ms) | bwd/fwd | '
        'DiffConv step (ms) | APPNP step (ms) | mask (ms) | F.dropout (ms) | '
        'first linear fwd+bwd, dense x (ms) | same, x as fed (ms) |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
    ]
    for graph, r in results.items():
        p = r['propagation']
        lines.append(
            f"| {graph} | {p['diff_fwd_ms']:.1f} | {p['diff_bwd_ms']:.1f} | "
            f"{p['diff_bwd_ms'] / p['diff_fwd_ms']:.2f} | "
            f"{p['diff_step_ms']:.2f} | {p['appnp_step_ms']:.2f} | "
            f"{p['dropout_mask_ms']:.2f} | {p['torch_dropout_ms']:.2f} | "
            f"{p['linear_dense_ms']:.1f} | {p['linear_input_ms']:.1f} |")
    if any('memory' in r for r in results.values()):
        ks = meta['mem_steps']
        lines += [
            '', '| graph | model | ' +
            ' | '.join(f'peak MiB K={k}' for k in ks) +
            f' | K={ks[-1]} / K={ks[0]} |',
            '|---|---|' + '---:|' * (len(ks) + 1)
        ]
        for graph, r in results.items():
            mem = r.get('memory', {})
            for model in meta['models']:
                vals = [mem.get(f'{model}@{k}') for k in ks]
                if vals[0] is None:
                    continue
                ratio = vals[-1] / vals[0] if vals[0] > 0 else float('nan')
                lines.append(f'| {graph} | {model} | ' +
                             ' | '.join(f'{v:.0f}' for v in vals) +
                             f' | {ratio:.2f} |')
    return lines


def hardware(device: torch.device) -> str:
    r"""The GPU's name, or the CPU model and the thread count."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return f'{cpu}, {torch.get_num_threads()} threads'
