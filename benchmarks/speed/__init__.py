r"""The speed and memory benchmark behind ``benchmarks/speed.py``: graphs,
compared models, timing, peak memory and the report."""
