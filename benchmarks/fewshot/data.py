import os
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

_FEATURE_KEYS = ('features', 'x', 'embeddings')
_LABEL_KEYS = ('labels', 'y')


class FewShotFeatures(NamedTuple):
    r"""Embeddings of the novel (test) classes, their labels and the mean
    embedding of the base (training) classes used for centering
    (:obj:`None` if unknown)."""
    features: Tensor  # [M, F], float32
    labels: Tensor  # [M], long
    base_mean: Optional[Tensor]  # [F] or None


def _pick(store, keys, what, path):
    for key in keys:
        if key in store:
            return store[key]
    raise ValueError(f"'{path}' has no {what} array (expected one of the "
                     f"keys {list(keys)}; found {sorted(store)})")


def load_features(path: str) -> FewShotFeatures:
    r"""Loads an embedding matrix and its labels from a :obj:`.npz` file
    (:func:`numpy.savez`) or a :obj:`.pt` file (:func:`torch.save` of a
    :obj:`dict`), e.g. features extracted with a pretrained backbone.

    Keys: :obj:`features` (or :obj:`x`, :obj:`embeddings`) :math:`[M, F]`;
    :obj:`labels` (or :obj:`y`) :math:`[M]`; optionally :obj:`base_mean`
    :math:`[F]` or :obj:`base_features` :math:`[M', F]` (embeddings of the
    base classes, whose mean is then used) for centering.
    """
    if not os.path.isfile(path):
        raise ValueError(f"No such file: '{path}'")
    if not path.endswith(('.npz', '.pt', '.pth')):
        raise ValueError(f"Unsupported file type '{path}' (use .npz or .pt)")
    try:
        if path.endswith('.npz'):
            with np.load(path, allow_pickle=False) as f:
                store = {k: f[k] for k in f.files}
        else:
            store = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # Corrupt files fail in zipfile, numpy, pickle.
        raise ValueError(f"'{path}' cannot be read as a "
                         f"{os.path.splitext(path)[1]} file "
                         f"({type(e).__name__}: {e})") from None
    if not isinstance(store, dict):
        raise ValueError(f"'{path}' must hold a dict of tensors")
    features = torch.as_tensor(np.asarray(
        _pick(store, _FEATURE_KEYS, 'feature', path))).float()
    labels = torch.as_tensor(np.asarray(_pick(store, _LABEL_KEYS, 'label',
                                              path))).long().view(-1)
    if features.dim() != 2 or features.size(0) != labels.numel():
        raise ValueError(f"features {tuple(features.shape)} and labels "
                         f"{tuple(labels.shape)} do not match")
    base_mean = None
    if 'base_mean' in store:
        base_mean = torch.as_tensor(np.asarray(store['base_mean'])).float()
    elif 'base_features' in store:
        base_mean = torch.as_tensor(np.asarray(
            store['base_features'])).float().mean(dim=0)
    if base_mean is not None and base_mean.numel() != features.size(1):
        raise ValueError(f"base_mean has {base_mean.numel()} entries but the "
                         f"features have {features.size(1)} columns")
    return FewShotFeatures(features, labels, base_mean)


def save_features(path: str, features: Tensor, labels: Tensor,
                  base_mean: Optional[Tensor] = None) -> None:
    r"""Writes the :obj:`.npz` (or :obj:`.pt`) layout read by
    :func:`load_features`."""
    store = {'features': features, 'labels': labels}
    if base_mean is not None:
        store['base_mean'] = base_mean
    if path.endswith('.npz'):
        np.savez(path, **{k: np.asarray(v) for k, v in store.items()})
    else:
        torch.save({k: torch.as_tensor(v) for k, v in store.items()}, path)


def digits_features(
    base_classes: Sequence[int] = (0, 1, 2, 3, 4)) -> FewShotFeatures:
    r"""The 8x8 digit images of :func:`sklearn.datasets.load_digits` (1797
    real handwritten digits, shipped with scikit-learn) as 64-d pixel
    vectors scaled to :math:`[0, 1]`. The digits in :obj:`base_classes`
    only provide the centering mean; the others are the novel classes.
    """
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = torch.from_numpy(digits.data).float() / 16.0
    y = torch.from_numpy(digits.target).long()
    base = torch.isin(y, torch.tensor(list(base_classes)))
    if bool(base.all()):
        raise ValueError('no novel classes left')
    base_mean = x[base].mean(dim=0) if bool(base.any()) else None
    return FewShotFeatures(x[~base], y[~base], base_mean)


def clustered_features(num_classes: int = 20, num_base_classes: int = 10,
                       num_per_class: int = 100, dim: int = 64,
                       latent_dim: int = 4, spread: float = 6.0,
                       noise: float = 0.3, seed: int = 0) -> FewShotFeatures:
    r"""A synthetic stand-in for backbone embeddings: every class is an
    elongated Gaussian cloud :math:`\boldsymbol{\mu}_c + \mathbf{A}_c
    \mathbf{z} + \boldsymbol{\epsilon}`, with centre
    :math:`\boldsymbol{\mu}_c \sim \mathcal{N}(\mathbf{0}, \mathbf{I})`,
    a random :math:`\textrm{dim} \times \textrm{latent\_dim}` factor
    :math:`\mathbf{A}_c` with orthonormal columns scaled by :obj:`spread`,
    :math:`\mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})` and
    isotropic noise of standard deviation :obj:`noise / sqrt(dim)`. The
    first :obj:`num_base_classes` classes only provide the centering mean.
    A single shot is a poor prototype for such a cloud, while the cloud's
    neighbourhood graph is informative: the regime where transductive
    methods help. The default :obj:`spread` was chosen by SimpleShot's
    accuracy alone (5-way 1-shot far from saturation; with
    :obj:`spread=1` every method scores 100%). Deterministic by
    :obj:`seed`.
    """
    if num_classes <= num_base_classes:
        raise ValueError("'num_classes' must exceed 'num_base_classes'")
    rng = np.random.RandomState(seed)
    xs, ys = [], []
    for c in range(num_classes):
        mu = rng.randn(dim)
        A, _ = np.linalg.qr(rng.randn(dim, latent_dim))
        z = rng.randn(num_per_class, latent_dim)
        eps = rng.randn(num_per_class, dim) * noise / np.sqrt(dim)
        xs.append(mu + spread * z @ A.T + eps)
        ys.append(np.full(num_per_class, c))
    x = torch.from_numpy(np.concatenate(xs)).float()
    y = torch.from_numpy(np.concatenate(ys)).long()
    base = y < num_base_classes
    base_mean = x[base].mean(dim=0) if num_base_classes > 0 else None
    return FewShotFeatures(x[~base], y[~base], base_mean)
