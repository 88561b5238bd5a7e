import argparse

import pytest

from benchmarks.planetoid.datasets import DATASETS
from benchmarks.planetoid.models import model_hparams
from benchmarks.planetoid.runner import HPARAM_TYPES, parse_grid


def test_diffusion_options_enter_records_only_when_set():
    spec = DATASETS['cora']
    paper = model_hparams('diffresnet', spec, {})
    assert 'scheme' not in paper and 'learnable_step' not in paper
    same = model_hparams('diffresnet', spec,
                         dict(scheme='explicit', learnable_step=False))
    assert same == paper
    hp = model_hparams('diffresnet', spec,
                       dict(scheme='implicit', learnable_step=True))
    assert hp['scheme'] == 'implicit' and hp['learnable_step'] is True
    # Other models have neither option.
    assert 'scheme' not in model_hparams('gcn', spec, dict(scheme='implicit'))


def test_scheme_and_learnable_step_values():
    assert HPARAM_TYPES['scheme']('Implicit') == 'implicit'
    assert HPARAM_TYPES['learnable_step']('true') is True
    assert HPARAM_TYPES['learnable_step']('0') is False
    for key, bad in (('scheme', 'euler'), ('learnable_step', 'yes')):
        with pytest.raises(argparse.ArgumentTypeError):
            HPARAM_TYPES[key](bad)
    grid = parse_grid(['scheme=explicit,implicit', 'step_size=1,4'])
    assert len(grid) == 4
    assert {(g['scheme'], g['step_size']) for g in grid} == {
        ('explicit', 1.0), ('explicit', 4.0), ('implicit', 1.0),
        ('implicit', 4.0)}
