import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Stands in for the interpreter: logs each planetoid.py command line and
# creates its --out file, so the study's stages can be checked without
# training anything.
FAKE_PYTHON = f'''#!{sys.executable}
import sys
args = sys.argv[1:]
with open({{log!r}}, 'a') as f:
    f.write(' '.join(args) + '\\n')
if '--out' in args:
    open(args[args.index('--out') + 1], 'a').close()
'''


def _study(tmp_path, *args, env=None):
    log = str(tmp_path / 'commands.log')
    fake = tmp_path / 'python'
    fake.write_text(FAKE_PYTHON.format(log=log))
    fake.chmod(0o755)
    env = {**os.environ, 'PYTHON': str(fake), 'OUT': str(tmp_path / 'out'),
           'DATA': str(tmp_path / 'data'), **(env or {})}
    proc = subprocess.run(['bash', 'benchmarks/implicit_study.sh', *args],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    lines = []
    if os.path.exists(log):
        with open(log) as f:
            lines = [shlex.split(line) for line in f]
    return proc, lines


def _flag(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_stages_run_the_protocol(tmp_path):
    proc, cmds = _study(tmp_path, 'select', 'Cora', 'Texas')
    assert proc.returncode == 0, proc.stderr
    cora = [c for c in cmds if _flag(c, '--dataset') == 'Cora']
    texas = [c for c in cmds if _flag(c, '--dataset') == 'Texas']
    # Cora: the paper's model, the projection, 12 implicit points (one
    # grid) and two learnable steps, on init 0 of splits 0-9.
    assert len(cora) == 5 and len(texas) == 4
    for c in cora:
        assert _flag(c, '--splits') == '10' and _flag(c, '--inits') == '1'
        assert _flag(c, '--protocol') == 'random'
        assert '--first-split' not in c and '--selected-from' not in c
        assert _flag(c, '--device') == 'cpu'
    assert _flag(cora[0], '--hidden') == 'none'
    grid = next(c for c in cora if '--grid' in c)
    assert grid[grid.index('--grid') + 1:][:3] == [
        'scheme=implicit', 'num_steps=1,2,4', 'step_size=1,4,9,19']
    assert sum('--learnable-step' in c for c in cora) == 2
    # Geom-GCN sets: select on splits 0-4, no no-projection model.
    assert all(_flag(c, '--splits') == '5' and _flag(c, '--protocol') ==
               'geom-gcn' for c in texas)
    assert all(_flag(c, '--hidden') == '64' for c in texas)

    proc, cmds = _study(tmp_path, 'confirm', 'Cora', 'Texas')
    assert proc.returncode == 0, proc.stderr
    cora, texas = cmds[-2:]
    assert cora[cora.index('--model') + 1:][:3] == ['diffresnet', 'appnp',
                                                   'gcn']
    assert _flag(cora, '--selected-from').endswith('Cora_select.jsonl')
    assert (_flag(cora, '--splits'), _flag(cora, '--first-split')) == (
        '40', '20')
    assert (_flag(texas, '--splits'), _flag(texas, '--first-split')) == (
        '10', '5')

    proc, cmds = _study(tmp_path, 'summary', 'Cora')
    assert proc.returncode == 0, proc.stderr
    assert [c[c.index('--summary') + 1] for c in cmds[-2:]] == [
        str(tmp_path / 'out' / 'Cora_select.jsonl'),
        str(tmp_path / 'out' / 'Cora_fresh.jsonl')]


def test_shards_write_their_own_files(tmp_path):
    proc, cmds = _study(tmp_path, 'select', 'Cora', env={'SHARD': '1/2'})
    assert proc.returncode == 0, proc.stderr
    assert all(_flag(c, '--shard') == '1/2' for c in cmds)
    assert all(_flag(c, '--out').endswith('Cora_select_1.jsonl')
               for c in cmds)


def test_bad_stage_is_an_error(tmp_path):
    proc, cmds = _study(tmp_path, 'run', 'Cora')
    assert proc.returncode == 2 and not cmds
    assert proc.stderr.startswith('error: ') and 'select' in proc.stderr
