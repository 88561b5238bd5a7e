import math

import pytest
import torch

from benchmarks.common import BatchedEarlyStopping, EarlyStopping


def _reference(losses, accs, patience):
    # Literal transcription of the official loop.
    best_loss, best_acc, counter, best, stop = math.inf, 0.0, 0, None, None
    for t, (loss, acc) in enumerate(zip(losses, accs)):
        if loss <= best_loss or acc >= best_acc:
            best_loss, best_acc = min(loss, best_loss), max(acc, best_acc)
            counter, best = 0, t
        else:
            counter += 1
        if counter >= patience:
            stop = t
            break
    return best, stop


CURVE_LOSS = [1.0, 0.8, 0.7, 0.75, 0.72, 0.9, 0.69, 0.8, 0.8, 0.8, 0.8, 0.6]
CURVE_ACC = [0.3, 0.5, 0.6, 0.6, 0.55, 0.5, 0.58, 0.59, 0.5, 0.5, 0.5, 0.9]


def test_scripted_curve():
    es = EarlyStopping(patience=3)
    stopped_at = None
    for t, (loss, acc) in enumerate(zip(CURVE_LOSS, CURVE_ACC)):
        if es.step(loss, acc):
            stopped_at = t
            break
    # t=3: acc ties 0.6 -> improves; t=4,5 fail; t=6: loss 0.69 <= 0.7;
    # t=7,8,9 fail -> stop at t=9 with best epoch 6.
    assert stopped_at == 9
    assert es.best_epoch == 6
    assert es.best_loss == 0.69 and es.best_acc == 0.6
    assert (es.best_epoch, stopped_at) == _reference(CURVE_LOSS, CURVE_ACC, 3)
    with pytest.raises(RuntimeError):
        es.step(0.1, 1.0)


def test_random_curves_match_reference():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        loss = (torch.rand(60, generator=gen) + 0.5).tolist()
        acc = (torch.randint(0, 5, (60, ), generator=gen) / 4).tolist()
        es = EarlyStopping(patience=4)
        stop = None
        for t, (lo, ac) in enumerate(zip(loss, acc)):
            if es.step(lo, ac):
                stop = t
                break
        assert (es.best_epoch, stop) == _reference(loss, acc, 4)


def test_restores_weights_of_last_improving_epoch():
    model = torch.nn.Linear(2, 1)
    es = EarlyStopping(patience=2)
    weights = []
    for t, (loss, acc) in enumerate([(1.0, 0.5), (0.9, 0.4), (1.1, 0.5),
                                     (1.2, 0.4), (1.3, 0.3)]):
        with torch.no_grad():
            model.weight.fill_(float(t))
        weights.append(float(t))
        if es.step(loss, acc, model):
            break
    # Epoch 2 ties the best accuracy, so its weights are the best ones.
    assert es.best_epoch == 2 and t == 4
    es.restore(model)
    assert model.weight.eq(2.0).all()


def test_nan_loss_never_improves():
    es = EarlyStopping(patience=1)
    es.step(1.0, 0.5)
    assert es.step(float('nan'), 0.1)


def test_batched_matches_single():
    gen = torch.Generator().manual_seed(1)
    m, t_max, patience = 6, 80, 5
    loss = torch.rand(t_max, m, generator=gen) + 0.5
    acc = torch.randint(0, 6, (t_max, m), generator=gen) / 5
    batched = BatchedEarlyStopping(m, patience)
    stop_at = [None] * m
    best_at = [None] * m
    for t in range(t_max):
        index = batched.active.nonzero().view(-1)
        if index.numel() == 0:
            break
        improved, stop = batched.step(loss[t, index], acc[t, index], index)
        for j, i in enumerate(index.tolist()):
            if improved[j]:
                best_at[i] = t
            if stop[j]:
                stop_at[i] = t
    for i in range(m):
        assert (best_at[i], stop_at[i]) == _reference(
            loss[:, i].tolist(), acc[:, i].tolist(), patience)
        assert batched.best_epoch[i] == best_at[i]
    with pytest.raises(ValueError):
        BatchedEarlyStopping(0)


def _reference_nan(losses, accs, patience):
    # The official rule with a diverged (NaN) loss read as +inf.
    return _reference([math.inf if math.isnan(x) else x for x in losses],
                      accs, patience)


def test_batched_nan_loss_matches_single():
    # Epoch 1 improves by accuracy with a NaN loss; the loss criterion must
    # keep working afterwards (epochs 2 and 3 improve by loss alone).
    loss = [1.0, float('nan'), 0.9, 0.8, 0.95, 0.97, 0.99]
    acc = [0.5, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1]
    best, stop = _reference_nan(loss, acc, 3)
    assert (best, stop) == (3, 6)
    single = EarlyStopping(patience=3)
    for t in range(len(loss)):
        if single.step(loss[t], acc[t]):
            break
    assert (single.best_epoch, t) == (best, stop)
    batched = BatchedEarlyStopping(2, patience=3)
    for t in range(len(loss)):
        _, halt = batched.step(torch.tensor([loss[t], 0.5], dtype=torch.float64),
                               torch.tensor([acc[t], 0.5], dtype=torch.float64))
        if bool(halt[0]):
            break
    assert int(batched.best_epoch[0]) == best and t == stop
    assert float(batched.best_loss[0]) == 0.8
