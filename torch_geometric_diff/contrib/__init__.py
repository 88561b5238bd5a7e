r"""Extensions built on the core layers (benchmark helpers, batching)."""
from .batched import BatchedDiffResNet, fit_batched, per_model_cross_entropy

__all__ = [
    'BatchedDiffResNet',
    'fit_batched',
    'per_model_cross_entropy',
]
