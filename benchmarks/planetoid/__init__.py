"""The Planetoid-protocol harness behind ``benchmarks/planetoid.py``."""
