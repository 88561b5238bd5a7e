"""OGB node-property benchmarks: loading workarounds and the synthetic OGB-layout writer."""
