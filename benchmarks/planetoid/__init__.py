r"""The Planetoid-protocol harness behind ``benchmarks/planetoid.py``: the
dataset registry, loading and preprocessing (:mod:`~.datasets`), the splits
of each protocol (:mod:`~.protocols`), the models and their defaults
(:mod:`~.models`, the official code's model in :mod:`~.official`), training
(:mod:`~.train`, several inits at once in :mod:`~.batched`), the record key
(:mod:`~.records`), the runs of one command (:mod:`~.runner`) and the
summary tables (:mod:`~.summary`)."""
