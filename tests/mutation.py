r"""Mutation testing of the core: does the test suite notice a real bug?

Every entry of :data:`MUTATIONS` is one single-point change of the kind a
real bug makes (file, exact original snippet, replacement, the tests that
should notice). For each, the repository is copied (without ``.venv`` and
``.git``) to a fixed folder under the system's temporary directory, the
snippet is replaced there, and ``pytest -x -q`` runs the listed test files
with the same interpreter. A failing run *kills* the mutation; a passing one
lets it *survive*. A snippet that is no longer in its file makes the
mutation *stale*: it is reported and not counted.

The C++ kernels are built by ``torch.utils.cpp_extension`` into a dedicated
``TORCH_EXTENSIONS_DIR`` (built once, then reused while the copy's source is
unchanged); a mutation of the kernel source gets a fresh one of its own.

Usage::

    python tests/mutation.py                  # all mutations
    python tests/mutation.py --list           # names only
    python tests/mutation.py --only NAME ...  # some of them
    python tests/mutation.py --only NAME --tests tests/x.py  # other tests

The score is killed / (killed + survived). The exit status is 0 whatever
the score; it is 2 when the unmutated copy already fails its tests.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(tempfile.gettempdir(), f'tgd-mutation-{os.getuid()}')
_IGNORE_EVERYWHERE = shutil.ignore_patterns('__pycache__', '.pytest_cache',
                                            '*.egg-info', '*.pyc')
_IGNORE_AT_ROOT = {'.venv', '.git', 'results', 'out', 'data', 'build', 'dist'}


def _ignore(folder: str, names: List[str]) -> set:
    out = set(_IGNORE_EVERYWHERE(folder, names))
    if os.path.abspath(folder) == ROOT:
        out |= _IGNORE_AT_ROOT & set(names)
    return out

# Test files per area.
DIFFUSION = ['tests/nn/test_diffusion.py', 'tests/nn/test_engine_reference.py']
CONV = ['tests/nn/conv/test_diff_conv.py']
KERNEL = ['tests/nn/test_cpu_kernels.py']
MODEL = ['tests/nn/models/test_diff_resnet.py',
         'tests/nn/models/test_diff_resnet_reference.py']
SPLITS = ['tests/benchmarks/common/test_splits.py']
STOPPING = ['tests/benchmarks/common/test_early_stopping.py']
RESULTS = ['tests/benchmarks/common/test_results.py',
           'tests/benchmarks/common/test_results_resume.py']
METRICS = ['tests/metrics/test_trajectory.py',
           'tests/metrics/test_trajectory_reference.py']
EXPLAIN = ['tests/nn/conv/test_diff_conv_explain.py']

OPERATOR_PY = 'torch_geometric_diff/nn/diffusion/operator.py'
DROPOUT_PY = 'torch_geometric_diff/nn/diffusion/dropout.py'
FUSED_PY = 'torch_geometric_diff/nn/diffusion/fused.py'
UNCACHED_PY = 'torch_geometric_diff/nn/diffusion/uncached.py'
KERNEL_CPP = 'torch_geometric_diff/csrc/diffuse_cpu.cpp'
CONV_PY = 'torch_geometric_diff/nn/conv/diff_conv.py'
MODEL_PY = 'torch_geometric_diff/nn/models/diff_resnet.py'
SPLITS_PY = 'benchmarks/common/splits.py'
STOPPING_PY = 'benchmarks/common/early_stopping.py'
RESULTS_PY = 'benchmarks/common/results.py'
TRAJECTORY_PY = 'torch_geometric_diff/metrics/trajectory.py'
ENERGY_PY = 'torch_geometric_diff/metrics/energy.py'
SEPARATION_PY = 'torch_geometric_diff/metrics/separation.py'


_MASK = '''            if p > 0:
                h = h * dropout_mask(seed, k, tuple(h.shape), p, h.device,
                                     h.dtype)
'''
_STEP = '''            h = self.propagate(adj, x=h, edge_weight=weight)
'''
_MASK_THEN_STEP, _STEP_THEN_MASK = _MASK + _STEP, _STEP + _MASK


@dataclass
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: Sequence[str]
    area: str
    env: Dict[str, str] = field(default_factory=dict)

    @property
    def kernel(self) -> bool:
        return self.path.endswith('.cpp')


def m(area, name, path, old, new, tests, **env) -> Mutation:
    return Mutation(name, path, old, new, tests, area, env)


MUTATIONS: List[Mutation] = [
    # The operator M = I - gamma L.
    m('operator', 'sym-normalisation-uses-target-twice', OPERATOR_PY,
      'a_off = (dis[row] * dis[col]) * w',
      'a_off = (dis[row] * dis[row]) * w',
      DIFFUSION + CONV),
    m('operator', 'rw-normalised-by-source-degree', OPERATOR_PY,
      'a_off = dinv[row] * w', 'a_off = dinv[col] * w', DIFFUSION + CONV),
    m('operator', 'two-self-loops', OPERATOR_PY,
      'a_diag = a_diag + 1.0', 'a_diag = a_diag + 2.0', DIFFUSION + CONV),
    m('operator', 'degree-from-sources', OPERATOR_PY,
      'deg = a_diag.index_add(0, row, w)',
      'deg = a_diag.index_add(0, col, w)',
      DIFFUSION + CONV),
    m('operator', 'values-plus-gamma-l', OPERATOR_PY,
      'vals = ival - gamma.to(lval.dtype) * lval',
      'vals = ival + gamma.to(lval.dtype) * lval', DIFFUSION + CONV),
    m('operator', 'no-inverted-dropout-scale', OPERATOR_PY,
      'return vals * dropout_scale(dropout) if dropout > 0 else vals',
      'return vals', DIFFUSION + CONV),
    m('operator', 'edge-list-reversed', OPERATOR_PY,
      'torch.stack([eo.source[keep], eo.target[keep]])',
      'torch.stack([eo.target[keep], eo.source[keep]])',
      DIFFUSION + CONV + EXPLAIN),
    m('operator', 'symmetric-pattern-taken-as-symmetric-matrix', OPERATOR_PY,
      'if torch.equal(key_t[perm_t], key) and '
      'torch.equal(lval[perm_t], lval):',
      'if torch.equal(key_t[perm_t], key):', DIFFUSION + CONV),
    m('operator', 'flow-reversed', OPERATOR_PY,
      "target, source = (1, 0) if flow == 'source_to_target' else (0, 1)",
      "target, source = (0, 1) if flow == 'source_to_target' else (1, 0)",
      DIFFUSION + CONV),

    # Dropout masks.
    m('masks', 'step-key-off-by-one', DROPOUT_PY,
      's_k = _mix_int(seed ^ _mix_int(step + 1))',
      's_k = _mix_int(seed ^ _mix_int(step))', DIFFUSION + KERNEL),
    m('masks', 'dropout-scale-1-plus-p', DROPOUT_PY,
      'return 1.0 / (1.0 - p) if p > 0 else 1.0',
      'return 1.0 / (1.0 + p) if p > 0 else 1.0', DIFFUSION + KERNEL),
    m('masks', 'threshold-sign', DROPOUT_PY, 'v -= half_t', 'v += half_t',
      DIFFUSION + KERNEL),
    m('masks', 'too-few-bits', DROPOUT_PY,
      'if float(p * (1 << (bits - 1))).is_integer():',
      'if float(p * (1 << bits)).is_integer():', DIFFUSION + KERNEL),
    m('masks', 'constant-seed', DROPOUT_PY,
      'return torch.randint(0, 2**62, (1, ), dtype=torch.int64)',
      'return torch.zeros(1, dtype=torch.int64)', DIFFUSION + CONV),

    # The fused operation.
    m('fused', 'backward-applies-m-not-m-transposed', FUSED_PY,
      'transpose = crow_t is not None', 'transpose = False', DIFFUSION),
    m('fused', 'gamma-gradient-sign', FUSED_PY,
      'dgamma = dgamma - scale * (lg * ys[k - start]).sum()',
      'dgamma = dgamma + scale * (lg * ys[k - start]).sum()', DIFFUSION),
    m('fused', 'gamma-backward-without-scale', FUSED_PY,
      'g = drop((g - gam * lg) * scale, k)', 'g = drop(g - gam * lg, k)',
      DIFFUSION),
    m('fused', 'no-input-saved-for-gamma', FUSED_PY,
      'saved_x = x if gamma.requires_grad else None', 'saved_x = None',
      DIFFUSION + CONV),
    m('fused', 'uncached-backward-applies-m', UNCACHED_PY,
      'csr = coalesce_csr(target, source, ival, lval, grad.size(0))',
      'csr = coalesce_csr(target, source, ival, lval, grad.size(0),'
      ' transpose=False)', DIFFUSION),
    m('fused', 'uncached-no-input-saved-for-gamma', UNCACHED_PY,
      'ctx.save_for_backward(x if gamma.requires_grad else None, target,',
      'ctx.save_for_backward(None, target,', DIFFUSION + CONV),
    m('fused', 'python-path-mask-of-next-step', FUSED_PY,
      'm = dropout_mask(seed, k, tuple(h.shape), p, h.device, h.dtype,',
      'm = dropout_mask(seed, k + 1, tuple(h.shape), p, h.device, h.dtype,',
      DIFFUSION, TGD_DISABLE_CPP='1'),
    m('fused', 'python-path-backward-mask-before-product', FUSED_PY,
      'if p > 0 and transpose:', 'if p > 0 and not transpose:', DIFFUSION,
      TGD_DISABLE_CPP='1'),

    # The C++ kernel (rebuilt for each).
    m('kernel', 'kernel-keep-rule-strict', KERNEL_CPP,
      'out[j] = v[j] >= t ? out[j] : scalar_t(0);',
      'out[j] = v[j] > t ? out[j] : scalar_t(0);', KERNEL + DIFFUSION),
    m('kernel', 'kernel-backward-skips-last-mask', KERNEL_CPP,
      'const bool masked = dropout && (transpose || j + 1 < K);',
      'const bool masked = dropout && j + 1 < K;', KERNEL + DIFFUSION),
    m('kernel', 'kernel-row-drops-last-entry', KERNEL_CPP,
      'for (int64_t k = s + 1; k < t; ++k) {',
      'for (int64_t k = s + 1; k + 1 < t; ++k) {', KERNEL + DIFFUSION),

    # DiffConv's step-by-step loop.
    m('conv', 'autograd-engine-masks-after-the-step', CONV_PY,
      _MASK_THEN_STEP, _STEP_THEN_MASK, DIFFUSION + CONV),
    m('conv', 'explain-through-csr', CONV_PY,
      'if self.explain or gamma.requires_grad or',
      'if gamma.requires_grad or', EXPLAIN + CONV),

    # The model.
    m('model', 'commute-shortcut-in-training', MODEL_PY,
      'return not (self.training and self.conv.dropout > 0) and \\\n'
      '            self.lin_out.out_features < self.lin_out.in_features',
      'return self.lin_out.out_features < self.lin_out.in_features', MODEL),
    m('model', 'no-input-residual', MODEL_PY,
      'return h + self.input_residual(x)', 'return h', MODEL),
    m('model', 'no-residual-after-projection', MODEL_PY,
      'return x + self.act(self.lins[0](x))',
      'return self.act(self.lins[0](x))', MODEL),
    m('model', 'block-uses-previous-weights', MODEL_PY,
      'h = nodewise(partial(self.block, i), h)',
      'h = nodewise(partial(self.block, i - 1), h)', MODEL),
    m('model', 'commute-at-first-block', MODEL_PY,
      'if i == self.num_blocks - 1 and commute:', 'if i == 0 and commute:',
      MODEL),

    # Splits.
    m('splits', 'random-splits-19-per-class', SPLITS_PY,
      'num_inits: int, num_train_per_class: int = 20,',
      'num_inits: int, num_train_per_class: int = 19,', SPLITS),
    m('splits', 'mask-splits-same-init-seeds', SPLITS_PY,
      'init = np.random.RandomState(seeds[i])',
      'init = np.random.RandomState(seeds[0])', SPLITS),
    m('splits', 'validation-may-overlap-training', SPLITS_PY,
      'num_val_per_class, forbidden=train)',
      'num_val_per_class, forbidden=None)', SPLITS),
    m('splits', 'strongly-connected-component', SPLITS_PY,
      "connection='weak')", "connection='strong')", SPLITS),
    m('splits', 'split-seed-shifted', SPLITS_PY,
      'rs = np.random.RandomState(seed)',
      'rs = np.random.RandomState(seed + 1)', SPLITS),

    # Early stopping.
    m('stopping', 'batched-without-nan-to-num', STOPPING_PY,
      'loss = torch.nan_to_num(loss, nan=math.inf)', 'loss = loss',
      STOPPING),
    m('stopping', 'ties-do-not-improve', STOPPING_PY,
      'if val_loss <= self.best_loss or val_acc >= self.best_acc:',
      'if val_loss < self.best_loss or val_acc > self.best_acc:', STOPPING),
    m('stopping', 'patience-off-by-one', STOPPING_PY,
      'self.stopped = self.counter >= self.patience',
      'self.stopped = self.counter > self.patience', STOPPING),
    m('stopping', 'batched-patience-off-by-one', STOPPING_PY,
      'stop = self.counter[index] >= self.patience',
      'stop = self.counter[index] > self.patience', STOPPING),
    m('stopping', 'batched-needs-both-criteria', STOPPING_PY,
      'improved = (loss <= self.best_loss[index]) | (acc >=',
      'improved = (loss <= self.best_loss[index]) & (acc >=', STOPPING),
    m('stopping', 'nan-loss-improves', STOPPING_PY,
      'val_loss = math.inf  # A diverged epoch never improves the loss.',
      'val_loss = -math.inf', STOPPING),

    # Results files.
    m('results', 'torn-line-not-truncated', RESULTS_PY,
      'self._file.truncate(len(lines))', 'pass', RESULTS),
    m('results', 'torn-tail-taken-as-record', RESULTS_PY,
      'if tail.strip() and _complete(tail):', 'if tail.strip():', RESULTS),
    m('results', 'append-not-marked-done', RESULTS_PY,
      '        self._done.add(self.key(record))\n', '', RESULTS),
    m('results', 'key-on-first-field-only', RESULTS_PY,
      'for k in self.key_fields)', 'for k in self.key_fields[:1])', RESULTS),
    m('results', 'bad-lines-skipped-silently', RESULTS_PY,
      '            if not skip_bad_lines:\n                raise\n',
      '', RESULTS),

    # Trajectory metrics.
    m('metrics', 'rayleigh-not-centred', TRAJECTORY_PY,
      'norm2 = float((xt - xt.mean(dim=0)).pow(2).sum())',
      'norm2 = float(xt.pow(2).sum())', METRICS),
    m('metrics', 'last-step-not-recorded', TRAJECTORY_PY,
      'steps.append(xs.size(0) - 1)', 'pass', METRICS),
    m('metrics', 'sym-energy-out-degree', ENERGY_PY,
      'deg = scatter(edge_weight, edge_index[1]',
      'deg = scatter(edge_weight, edge_index[0]', METRICS),
    m('metrics', 'robust-rank-floor', SEPARATION_PY,
      'k_inter = max(1, math.ceil(q * n_inter))',
      'k_inter = max(1, math.floor(q * n_inter))', METRICS),
    m('metrics', 'robust-diameter-largest', SEPARATION_PY,
      'd = max((float(h.min()) if h.numel() == k else 0.0)',
      'd = max((float(h.max()) if h.numel() == k else 0.0)', METRICS),
]


def copy_repo(dst: str) -> None:
    if os.path.exists(dst):
        shutil.rmtree(dst)
    # copy2 keeps modification times, so ninja sees an unchanged kernel
    # source as up to date.
    shutil.copytree(ROOT, dst, ignore=_ignore)


def run_tests(repo: str, tests: Sequence[str], env: Dict[str, str],
              ext_dir: str, stop_first: bool = True) -> Tuple[bool, str]:
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider']
    if stop_first:
        cmd.append('-x')
    full_env = dict(os.environ, TGD_TEST_THREADS='1',
                    TORCH_EXTENSIONS_DIR=ext_dir, PYTHONDONTWRITEBYTECODE='1')
    full_env.update(env)
    proc = subprocess.run(cmd + list(tests), cwd=repo, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    lines = proc.stdout.strip().splitlines()
    return proc.returncode == 0, lines[-1] if lines else ''


def failing_files(repo: str, tests: Sequence[str],
                  ext_dir: str) -> List[str]:
    r"""The test files that fail (or are missing) without any mutation."""
    bad = [t for t in tests if not os.path.exists(os.path.join(repo, t))]
    present = [t for t in tests if t not in bad]
    ok, _ = run_tests(repo, present, {}, ext_dir, stop_first=False)
    if not ok:
        for t in present:
            if not run_tests(repo, [t], {}, ext_dir)[0]:
                bad.append(t)
    return bad


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', nargs='+', default=None,
                        help='run only the mutations with these names')
    parser.add_argument('--tests', nargs='+', default=None,
                        help='run these test files instead of the listed ones')
    parser.add_argument('--list', action='store_true',
                        help='print the mutations and exit')
    args = parser.parse_args(argv)

    mutations = MUTATIONS
    if args.only:
        unknown = set(args.only) - {mu.name for mu in MUTATIONS}
        if unknown:
            parser.error(f'unknown mutation(s): {sorted(unknown)}')
        mutations = [mu for mu in MUTATIONS if mu.name in args.only]
    if args.tests:
        for mu in mutations:
            mu.tests = args.tests
    if args.list:
        for mu in mutations:
            print(f'{mu.area:9s} {mu.name:45s} {mu.path}')
        return 0

    repo = os.path.join(WORK, 'repo')
    ext_dir = os.path.join(WORK, 'ext')
    os.makedirs(WORK, exist_ok=True)
    copy_repo(repo)
    all_tests = sorted({t for mu in mutations for t in mu.tests})
    print(f'baseline: {len(all_tests)} test files on the unmutated copy '
          f'({repo})', flush=True)
    broken = failing_files(repo, all_tests, ext_dir)
    if broken:
        print(f'baseline FAILS or lacks: {broken}; these files are left out',
              flush=True)

    results: Dict[str, List[Mutation]] = {'killed': [], 'survived': [],
                                          'stale': [], 'untested': []}
    start = time.time()
    for i, mu in enumerate(mutations):
        copy_repo(repo)
        target = os.path.join(repo, mu.path)
        with open(target) as f:
            text = f.read()
        count = text.count(mu.old)
        tests = [t for t in mu.tests if t not in broken]
        if count != 1:
            status, detail = 'stale', f'snippet found {count} times'
        elif not tests:
            status, detail = 'untested', 'no working test file'
        else:
            with open(target, 'w') as f:
                f.write(text.replace(mu.old, mu.new))
            mu_ext = ext_dir
            if mu.kernel:  # A fresh build of the mutated kernel.
                mu_ext = os.path.join(WORK, f'ext-{mu.name}')
                shutil.rmtree(mu_ext, ignore_errors=True)
            t0 = time.time()
            ok, detail = run_tests(repo, tests, mu.env, mu_ext)
            detail = f'{detail} ({time.time() - t0:.0f} s)'
            status = 'survived' if ok else 'killed'
            if mu.kernel:
                shutil.rmtree(mu_ext, ignore_errors=True)
        results[status].append(mu)
        print(f'[{i + 1}/{len(mutations)}] {status:8s} {mu.area}/{mu.name}: '
              f'{detail}', flush=True)
    shutil.rmtree(repo, ignore_errors=True)

    killed, survived = len(results['killed']), len(results['survived'])
    total = killed + survived
    print(f'\n{time.time() - start:.0f} s')
    for area in dict.fromkeys(mu.area for mu in mutations):
        k = sum(mu.area == area for mu in results['killed'])
        s = sum(mu.area == area for mu in results['survived'])
        if k + s:
            print(f'  {area:9s} {k}/{k + s} killed')
    if total:
        print(f'score: {killed}/{total} killed = {100 * killed / total:.1f}%')
    for status in ('survived', 'stale', 'untested'):
        for mu in results[status]:
            print(f'{status}: {mu.area}/{mu.name} ({mu.path})')
    return 2 if broken and not total else 0


if __name__ == '__main__':
    sys.exit(main())
