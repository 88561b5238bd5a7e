r"""The synthetic binary classification benchmark behind
``benchmarks/synthetic.py``: the toy sets (:mod:`~.toy`), the official
settings and k-NN graphs (:mod:`~.paper`), the toy model and its training
(:mod:`~.model`), tables (:mod:`~.report`) and figures (:mod:`~.figures`)."""
