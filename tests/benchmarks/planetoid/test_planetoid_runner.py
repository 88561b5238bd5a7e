import pytest

from benchmarks.planetoid import runner
from benchmarks.planetoid.datasets import DATASETS
from benchmarks.planetoid.models import HPARAMS, model_hparams


def test_grid_and_hparams():
    grid = runner.parse_grid(['step_size=0.1,0.25', 'num-steps=10,20',
                              'hidden=none,64'])
    assert len(grid) == 8
    assert {'step_size': 0.1, 'num_steps': 10, 'hidden': None} in grid
    assert {'step_size': 0.25, 'num_steps': 20, 'hidden': 64} in grid
    with pytest.raises(ValueError, match='Unknown --grid key'):
        runner.parse_grid(['alpha=1'])
    cora = DATASETS['cora']
    hp = model_hparams('diffresnet', cora, {'dropout': 0.5, 'heads': 3})
    assert hp == dict(lr=0.01, weight_decay=5e-4, patience=50,
                      max_epochs=10000, step_size=0.25, num_steps=20,
                      dropout=0.5, hidden=None)
    gcn = model_hparams('gcn', cora, {'step_size': 0.1})
    assert 'step_size' not in gcn and gcn['hidden'] == 64


def test_hidden_none_is_the_paper_model():
    # `--hidden none` (or `--grid hidden=none,64`) drops diffresnet's input
    # projection also where the dataset's default has one; models that need
    # a width keep theirs.
    chameleon = DATASETS['chameleon']
    assert chameleon.hidden == 64
    assert model_hparams('diffresnet', chameleon, {})['hidden'] == 64
    assert model_hparams('diffresnet', chameleon,
                         {'hidden': None})['hidden'] is None
    assert model_hparams('gcn', chameleon, {'hidden': None})['hidden'] == 64
    assert model_hparams('diffresnet', chameleon,
                         {'dropout': None})['dropout'] == chameleon.dropout
    plan = runner.Plan(['chameleon'], ['geom-gcn'], ['diffresnet', 'gcn'],
                       grid=runner.parse_grid(['hidden=none,64']))
    configs = runner.model_configs(plan, chameleon, "geom-gcn")
    assert [(m, hp['hidden']) for m, hp in configs] == [
        ('diffresnet', None), ('diffresnet', 64), ('gcn', 64)]


def test_grid_values_are_checked():
    assert runner.parse_grid(['hidden=None', 'lr=0.1']) == [
        {'hidden': None, 'lr': 0.1}]
    for item, what in (('dropout=1', "--grid dropout: expected a number"),
                       ('num_steps=2.5', '--grid num_steps'),
                       ('patience=0', '--grid patience'),
                       ('lr=-1', '--grid lr'),
                       ('hidden=0', '--grid hidden'),
                       ('step_size', '--grid entries look like')):
        with pytest.raises(ValueError, match=what):
            runner.parse_grid([item])
    assert set(runner.HPARAM_TYPES) == set(HPARAMS)


def test_parse_shard():
    assert runner.parse_shard(None) == (0, 1)
    assert runner.parse_shard('1/3') == (1, 3)
    for bad in ('3/3', '1', 'a/b', '-1/2', '0/0'):
        with pytest.raises(ValueError, match='--shard'):
            runner.parse_shard(bad)
