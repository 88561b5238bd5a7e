import math

import pytest
import torch

from benchmarks.planetoid.datasets import DATASETS
from benchmarks.planetoid.models import MODELS, model_hparams
from benchmarks.planetoid.train import roc_auc, train_single

RESULT_FIELDS = {'train_acc', 'val_acc', 'val_loss', 'test_acc', 'epochs',
                 'best_epoch', 'seconds'}


def test_roc_auc():
    score = torch.tensor([0.1, 0.4, 0.35, 0.8])
    y = torch.tensor([0, 0, 1, 1])
    assert math.isclose(roc_auc(score, y), 0.75)
    assert math.isclose(
        roc_auc(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])), 0.5)


@pytest.mark.parametrize('name', MODELS)
def test_result_fields_of_every_model(toy_graph, name):
    g = toy_graph
    hp = model_hparams(name, DATASETS['cora'],
                       {'max_epochs': 2, 'hidden': 8, 'num_steps': 2})
    res = train_single(name, g, g.splits[0], 7, hp)
    assert set(res) == RESULT_FIELDS
    assert res['epochs'] == 2 and 0 <= res['best_epoch'] < 2
    assert 0.0 <= res['test_acc'] <= 1.0 and math.isfinite(res['val_loss'])


def test_official_model_trains_in_the_harness(toy_graph):
    g = toy_graph
    hp = model_hparams('official', DATASETS['cora'],
                       {'max_epochs': 3, 'num_steps': 4})
    res = train_single('official', g, g.splits[0], 7, hp)
    assert res['epochs'] == 3 and 0.0 <= res['test_acc'] <= 1.0
    # Same init seed, same run: the harness's seeding covers the official
    # model's F.dropout too.
    assert train_single('official', g, g.splits[0], 7,
                        hp)['val_loss'] == res['val_loss']
