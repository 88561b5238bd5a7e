r"""The speed and memory benchmark behind ``benchmarks/speed.py``: graphs,
compared models, timing, peak memory, the sections (:mod:`.sections`:
``epoch``, :mod:`.masks`, :mod:`.threads`, :mod:`.uncached`,
:mod:`.implicit`) and the report."""
