import json
import os

import pytest
import torch

from benchmarks.common.cli import run_main
from benchmarks.synthetic.model import ToyDiffResNet
from benchmarks.synthetic.toy import load_toy
from torch_geometric_diff.metrics import distance_diameter_ratio
from bench_loader import load_benchmark


def test_tiny_end_to_end(tmp_path):
    pytest.importorskip('matplotlib')
    pytest.importorskip('PIL')
    from PIL import Image
    synthetic = load_benchmark('synthetic')
    out = str(tmp_path / 'syn')
    argv = ['--out', out, '--datasets', 'two_moons', 'xor', '--seeds', '0',
            '--size-scale', '0.1', '--max-steps', '8', '--paper-epochs',
            '2', '--converged-epochs', '3', '--gif-frames', '4']
    summary = synthetic.run(synthetic.parse_args(argv))
    for f in ['results.jsonl', 'summary.json', 'trajectory.csv',
              'accuracy.csv', 'table.md', 'before_after.png',
              'ratio_energy_vs_step.png', 'diffusion_two_moons.gif',
              'diffusion_xor.gif']:
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    with Image.open(os.path.join(out, 'diffusion_xor.gif')) as gif:
        assert gif.n_frames >= 3

    # The recorded step-0 ratio is the ratio of the raw points (XOR: over
    # its four discs).
    data = load_toy('xor', seed=0, num_per_cluster=10)
    assert summary['xor']['ratio_first'] == pytest.approx(
        distance_diameter_ratio(data.x, data.cluster), rel=1e-5)
    # 3 (schedule, protocol) pairs x with/without diffusion x 2 data sets.
    with open(os.path.join(out, 'results.jsonl')) as f:
        assert len(f.read().splitlines()) == 12
    table = open(os.path.join(out, 'table.md')).read()
    assert '| two moons | 24 | 8 |' in table and '| XOR | 19 | 8 |' in table
    with open(os.path.join(out, 'summary.json')) as f:
        assert set(json.load(f)) == {'two_moons', 'xor'}

    # A rerun resumes: nothing is trained or appended again.
    assert synthetic.main(argv + ['--no-figures']) == 0
    with open(os.path.join(out, 'results.jsonl')) as f:
        assert len(f.read().splitlines()) == 12

    # Curves only, over a longer horizon than the training K.
    out2 = str(tmp_path / 'curves')
    summary = synthetic.run(synthetic.parse_args([
        '--out', out2, '--datasets', 'two_moons', '--seeds', '0',
        '--size-scale', '0.1', '--max-steps', '8', '--schedules',
        '--trajectory-steps', '12', '--no-figures']))
    assert summary['two_moons']['steps'] == 12
    assert not os.path.exists(os.path.join(out2, 'results.jsonl')) or \
        os.path.getsize(os.path.join(out2, 'results.jsonl')) == 0


def test_model_is_the_paper_model():
    torch.manual_seed(0)
    model = ToyDiffResNet(num_steps=3, step_size=1.0)
    x = torch.randn(6, 2)
    W = torch.rand(6, 6)
    W = W / W.sum(1, keepdim=True)  # Row-stochastic, as in the paper.
    ei = torch.stack(torch.meshgrid(torch.arange(6), torch.arange(6),
                                    indexing='ij')).view(2, -1).flip(0)
    w = W[ei[1], ei[0]]
    h = x + model.fc2(torch.relu(model.fc1(x)))
    for _ in range(3):
        h = W @ h  # x - 1.0 * (I - W) x
    assert torch.allclose(model(x, ei, w), model.classifier(h), atol=1e-5)


def test_usage_errors_exit_2_before_any_work(tmp_path, capsys):
    synthetic = load_benchmark('synthetic')
    taken = tmp_path / 'file'
    taken.write_text('')
    assert run_main(synthetic.main, ['--out', str(taken), '--datasets',
                                     'xor', '--seeds', '0']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --out') and 'Traceback' not in err
    with pytest.raises(SystemExit) as e:
        synthetic.main(['--out', str(tmp_path / 'o'), '--threads', '0'])
    assert e.value.code == 2
    assert not (tmp_path / 'o').exists()


def test_no_test_points_is_an_error_not_nan():
    from benchmarks.synthetic.model import fit
    from benchmarks.synthetic.paper import build, settings
    s = settings('xor', max_steps=1, size_scale=0.05)
    data = build('xor', 0, s)
    acc, _ = fit(data, s, True, 'converged', 'transductive', 0,
                 converged_epochs=1, label_rate=0.5)
    assert 0.0 <= acc <= 1.0
    with pytest.raises(ValueError, match='label_rate'):
        fit(data, s, True, 'converged', 'transductive', 0,
            converged_epochs=1, label_rate=1.0)
