r"""The fields of a result record that identify one run: two records with
the same key fields are the same run (resume skips it, summaries count it
once)."""
from typing import Any, Dict

from benchmarks.common import NodeSplit

KEY_FIELDS = ('dataset', 'protocol', 'model', 'split', 'init', 'seed',
              'hparams')


def key_record(spec, protocol: str, model: str, split: NodeSplit, init: int,
               init_seed: int, hp: Dict[str, Any],
               seed: int) -> Dict[str, Any]:
    r"""The identifying part of the record of one run of :obj:`model` on
    dataset :obj:`spec`, split :obj:`split`, init :obj:`init`."""
    return {
        'dataset': spec.name,
        'protocol': protocol,
        'model': model,
        'split': split.split,
        'split_seed': split.seed,
        'init': init,
        'init_seed': init_seed,
        'seed': seed,
        'hparams': hp,
    }
