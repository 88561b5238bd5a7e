r"""Mini-batching and layer-wise inference for large graphs."""
from .partition import (
    PARTITION_METHODS,
    GraphPartition,
    PartitionLoader,
    metis_partition,
    partition_graph,
    random_partition,
)
from .inference import BlockedOperator, apply_in_chunks, place_operator

__all__ = [
    'PARTITION_METHODS',
    'GraphPartition',
    'PartitionLoader',
    'metis_partition',
    'partition_graph',
    'random_partition',
    'BlockedOperator',
    'place_operator',
    'apply_in_chunks',
]
