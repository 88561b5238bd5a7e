"""The benchmark suite of torch_geometric_diff: importable helpers beside the entry scripts."""
