r"""The OGB node classification benchmark behind ``benchmarks/ogbn.py``:
OGB loading workarounds (:mod:`~.loading`), the synthetic stand-in in OGB's
raw layout (:mod:`~.synthetic`, :mod:`~.csv_gz`), the data of a run
(:mod:`~.data`), the models (:mod:`~.models`), training and evaluation
(:mod:`~.train`) and the DDP process group (:mod:`~.distributed`)."""
