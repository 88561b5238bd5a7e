r"""Mini-batching and layer-wise inference for large graphs."""
from .partition import (
    PARTITION_METHODS,
    GraphPartition,
    PartitionLoader,
    metis_partition,
    partition_graph,
    random_partition,
)
from .inference import (
    BlockedOperator,
    diff_resnet_layerwise_inference,
    diff_resnet_operator,
    place_operator,
)

__all__ = [
    'PARTITION_METHODS',
    'GraphPartition',
    'PartitionLoader',
    'metis_partition',
    'partition_graph',
    'random_partition',
    'BlockedOperator',
    'place_operator',
    'diff_resnet_layerwise_inference',
    'diff_resnet_operator',
]
