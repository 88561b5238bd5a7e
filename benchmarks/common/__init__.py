from .results import (JSONLResults, BadLineError, ResultsLockedError,
                      check_results_file, iter_jsonl, read_jsonl,
                      environment_info)
from .splits import (NodeSplit, largest_connected_component, random_split,
                     random_splits, split_seeds, mask_splits)
from .early_stopping import EarlyStopping, BatchedEarlyStopping
from .stats import mean_std, confidence_interval, paired_test

__all__ = [
    'JSONLResults',
    'BadLineError',
    'ResultsLockedError',
    'check_results_file',
    'iter_jsonl',
    'read_jsonl',
    'environment_info',
    'NodeSplit',
    'largest_connected_component',
    'random_split',
    'random_splits',
    'split_seeds',
    'mask_splits',
    'EarlyStopping',
    'BatchedEarlyStopping',
    'mean_std',
    'confidence_interval',
    'paired_test',
]
